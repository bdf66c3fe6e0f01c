"""A lead works through /review/triage in Chromium with the keyboard alone (#14): j/k move, c says
customer (the conversation enters the queue), s says spam; the rows leave the list as they are decided.
Also takes the screenshots of /review/triage and /admin/blocks at 1440x900 and 390x844 when
MAINLAND_SCREENSHOTS names a folder."""

from __future__ import annotations

import sys

import pytest

from inbox import triage_flow
from inbox.mail import parse_email
from inbox.models import FetchResult
from tests import spam_double
from tests.browser_helpers import keep_screenshot, sign_in
from tests.mailfactory import raw_mail
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

GREY = [("Offer: ten chairs, can you deliver?", "Piet <piet@example.nl>"),
        ("A special offer for you", "Promo <deals@promo.example>"),
        ("Your offer of last week", "Anna <anna@example.com>")]


@pytest.fixture(autouse=True)
def spam_model(monkeypatch):
    monkeypatch.setitem(sys.modules, "inbox.spam_model", spam_double)
    monkeypatch.setattr(triage_flow, "_models", {})


def _grey_area(app) -> list[int]:
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, email="lena@example.org", name="Lena Lead", role="lead")
    admin = make_agent(store, email="root@example.org", name="Root Admin", role="admin")
    ids = []
    for n, (body, sender) in enumerate(GREY):
        item = parse_email(raw_mail(sender=sender, body=body, subject=body[:30], message_id=f"<grey-{n}@x>"),
                           channel="mail")
        report = mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor=None), save_cursor=False)
        ids.append(store.message(report.message_ids[0])["conversation_id"])
    with store.write():
        for kind, identity_kind, value in (("domain", "email", "shady.example"),
                                           ("address", "email", "spam@bulk.example"), ("handle", "x", "cheapwatches")):
            store.triage.add_block(kind, identity_kind, value, agent_id=admin["id"], now="2026-03-04T09:00:00.000000Z")
    store.close()
    return ids


def test_a_lead_decides_the_grey_area_with_the_keyboard(app, live_app, browser):
    from playwright.sync_api import expect

    first, second, third = _grey_area(app)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    sign_in(page, live_app, "lena@example.org")
    page.goto(f"{live_app}/review/triage")
    rows = page.locator("#triage-list tbody tr")
    assert rows.count() == 3
    keep_screenshot(page, "triage-1440x900")
    assert rows.nth(0).get_attribute("aria-selected") == "true", "the first item is ready for a key"
    page.keyboard.press("j")
    assert rows.nth(1).get_attribute("aria-selected") == "true"
    page.keyboard.press("s")  # the promotion: spam
    expect(rows).to_have_count(2)
    assert "A special offer for you" not in page.locator("#triage-list").inner_text()
    page.keyboard.press("k")
    page.keyboard.press("c")  # the chairs: a customer
    expect(rows).to_have_count(1)
    page.keyboard.press("c")
    expect(page.locator("#triage-empty")).to_be_visible()

    page.goto(f"{live_app}/")
    queue = page.locator("table.queue").inner_text()
    assert "Offer: ten chairs" in queue and "Your offer of last week" in queue
    assert "A special offer" not in queue
    store = app.extensions["mainland"].open_store()
    assert [store.conversation(c)["status"] for c in (first, second, third)] == ["new", "spam", "new"]
    store.close()


def test_screenshots_of_triage_and_blocks_on_a_phone_and_a_laptop(app, live_app, browser):
    held = _grey_area(app)[0]
    for width, height in ((1440, 900), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        sign_in(page, live_app, "root@example.org")
        for path, name in (("/review/triage", "triage"), ("/admin/blocks", "blocks"),
                           (f"/conversations/{held}", "held-conversation")):
            page.goto(f"{live_app}{path}")
            if name == "held-conversation":
                page.locator("#block-sender summary").click()
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{path} is wider than the {width} px screen ({scroll} px)"
            table = page.locator("main table").first
            if table.count():
                box = table.bounding_box()
                assert box["x"] + box["width"] <= width, f"{path}: the list is cut off at {width} px"
            keep_screenshot(page, f"{name}-{width}x{height}")
        page.close()
