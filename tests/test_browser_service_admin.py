"""The service-level, business-hours, survey and digest pages in Chromium (issue #13).

An admin changes the first-response target and sees the queue's urgency of a waiting conversation
change; each page fits 1440x900 and 390x844 in English and Dutch with no serious axe violations.
Set MAINLAND_SCREENSHOTS=<folder> to keep a screenshot of each page and size.
"""

from __future__ import annotations

import datetime as dt

import pytest

from inbox.models import Author, FetchResult, InboundItem
from tests.axe import describe, run_axe
from tests.browser_helpers import keep_screenshot, new_page, sign_in
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

SIZES = {"wide": (1440, 900), "phone": (390, 844)}
PAGES = (("service-levels", "/admin/service-levels"), ("business-hours", "/admin/business-hours"),
         ("surveys", "/admin/surveys"), ("digest", "/admin/digest"))


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        "chat": {"kind": "telegram", "token": "123:abc"},
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none"},
    }
    return app_config


def _installation(app, *, waiting_for: dt.timedelta | None = None) -> None:
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, "ada@example.org", name="Ada Admin", role="admin")
    store.create_team("Support EU")
    store.create_team("Support US")
    if waiting_for is not None:
        when = dt.datetime.now(dt.UTC) - waiting_for
        ingestor = mainland.ingestor(store)
        ingestor.now = lambda: when
        item = InboundItem(channel="chat", external_id="waiting-1", author=Author("wendy", "Wendy Waiting"),
                           text="Where is my parcel?", thread_key="wendy")
        ingestor.ingest("chat", FetchResult(items=[item], cursor=None), save_cursor=False)
    store.close()


def test_an_admin_tightens_the_first_response_target_and_the_queue_follows(app, live_app, browser):
    _installation(app, waiting_for=dt.timedelta(minutes=30))
    page = new_page(browser, language="en")
    sign_in(page, live_app, "ada@example.org")
    row = page.locator("tr", has_text="Wendy Waiting")
    assert row.locator(".sla-within_desired").is_visible(), "30 minutes into a 1h target: on time"
    page.goto(live_app + "/admin/service-levels")
    page.fill("#policy-first_response-desired", "10m")
    page.fill("#policy-first_response-adequate", "twenty minutes")
    page.click("text=Save service levels")
    error = page.locator("#policy-first_response-adequate-error")
    assert "is not a duration" in error.inner_text()
    page.fill("#policy-first_response-adequate", "20m")
    page.click("text=Save service levels")
    assert page.locator(".flash-success").inner_text() == "The service levels are saved."
    page.goto(live_app + "/")
    row = page.locator("tr", has_text="Wendy Waiting")
    assert row.locator(".sla-past_adequate").is_visible(), "past the new 20-minute adequate target"


@pytest.mark.parametrize("language", ["en", "nl"])
@pytest.mark.parametrize("size", list(SIZES))
def test_the_settings_pages_fit_and_pass_axe(app, live_app, browser, language, size):
    _installation(app)
    width, height = SIZES[size]
    page = new_page(browser, width=width, height=height, language=language)
    sign_in(page, live_app, "ada@example.org")
    # Something to show: an override, team hours of their own, one field in error.
    page.goto(live_app + "/admin/service-levels")
    page.click("details.override >> summary")
    page.select_option("#new-channel", "chat")
    page.select_option("#new-first_response-mode", "set")
    page.fill("#new-first_response-desired", "15m")
    page.fill("#new-first_response-adequate", "1h")
    page.locator("details.override form button.primary").click()
    for name, path in PAGES:
        page.goto(live_app + path)
        assert page.locator("h1").is_visible()
        for opener in page.locator("details.override").all()[:1]:
            opener.locator("summary").click()
        found = run_axe(page)
        assert found == [], f"{path}: {describe(found)}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} is wider than the screen"
        keep_screenshot(page, f"{name}-{size}-{language}")
    page.goto(live_app + "/admin/digest")
    page.fill("#digest-recipients", "boss@example.com\nnot an address")
    page.locator("button.primary").click()
    assert page.locator("#digest-recipients-error").is_visible()
    assert run_axe(page) == []
    keep_screenshot(page, f"digest-error-{size}-{language}")
