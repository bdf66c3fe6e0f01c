"""The workspace's frame in a real Chromium: the top bar fits 1280 px in English and Dutch, the queue
pane sits beside an open conversation from 1280 px, and a long thread opens at its latest message
with the composer on screen."""

from __future__ import annotations

import pytest

from inbox.models import Author, FetchResult, InboundItem
from tests.browser_helpers import new_page, sign_in
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    return app_config


def _thread(app, store, messages: int) -> int:
    ingestor = app.extensions["mainland"].ingestor(store)
    items = [InboundItem(channel="chat", external_id=f"m{i}", thread_key="t1",
                         text=f"Message {i}: " + "a fairly long line of customer text " * 3,
                         author=Author(handle="4711", name="Piet Chat", identity_kind="telegram"))
             for i in range(messages)]
    ids = ingestor.ingest("chat", FetchResult(items=items, cursor="1")).message_ids
    return store.message(ids[0])["conversation_id"]


@pytest.mark.parametrize("language", ["en", "nl"])
def test_the_top_bar_fits_1280_pixels(app, live_app, browser, language):
    store = app.extensions["mainland"].open_store()
    make_agent(store, role="admin")
    store.close()
    page = new_page(browser, width=1280, height=800, language=language)
    sign_in(page, live_app)
    bar = page.locator("header.topbar")
    assert bar.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert bar.bounding_box()["height"] < 60, "the top bar wrapped onto a second line"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_three_panes_and_a_long_thread_opens_at_its_end(app, live_app, browser):
    from playwright.sync_api import expect

    store = app.extensions["mainland"].open_store()
    make_agent(store)
    cid = _thread(app, store, 60)
    store.close()
    page = new_page(browser)
    sign_in(page, live_app)
    page.goto(f"{live_app}/conversations/{cid}")
    pane = page.locator("#queue-pane li.current a")
    expect(pane).to_be_visible(timeout=15_000)
    assert pane.get_attribute("aria-current") == "page"
    assert page.locator("#queue-pane").bounding_box()["x"] < 50  # the list is the left pane
    composer = page.locator("#reply-text")
    box = composer.bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= 900, "the composer is off screen"
    assert page.get_by_text("Message 59:").is_visible()  # the latest message, just above it
