"""Two agents in two Chromium contexts: "Ann has a draft here." and Ann's sent or undone reply reach
Bob's open conversation through the live stream, without a reload and without touching what Bob types.

The replies' channel is the fake chat connector of tests/test_composer.py (nothing is sent: no worker
runs, and the frozen clock keeps every reply inside its undo window). Every wait is for an element's
state (generous timeouts), never a sleep.
"""

from __future__ import annotations

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.mailfactory import raw_mail
from tests.test_browser_conversation import sign_in
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_composer import app_config  # noqa: F401  (fixture: the fake chat channel)
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000


@pytest.fixture
def setup(app, frozen_clock):
    app.config.update(LIVE_POLL_SECONDS=0.2)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    make_agent(store, email="bob@example.org", name="Bob Builder")
    item = parse_email(raw_mail(subject="Where is my parcel", body="It did not arrive."), channel="chat")
    [conversation_id] = mainland.ingestor(store).ingest("chat", FetchResult(items=[item], cursor="c1")).new_conversations
    yield store, f"/conversations/{conversation_id}"
    store.close()


def test_a_colleagues_draft_and_undone_reply_show_live(live_app, setup):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    store, target = setup
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            ann = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            bob = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            errors: list[str] = []
            for page in (ann, bob):
                page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(bob, live_app, "bob@example.org", target)
            sign_in(ann, live_app, "ann@example.org", target)
            drafting = bob.locator("#drafting")
            expect(drafting).to_be_hidden()

            # Bob starts a note; Ann starts a reply. Bob's page tells him, his note stays as he typed it.
            bob.click("#tab-note")
            bob.locator("#note-text").press_sequentially("Checking the courier")
            bob.evaluate("window.__sameDocument = true")
            with ann.expect_response(lambda r: r.url.endswith("/draft") and r.ok, timeout=TIMEOUT):
                ann.locator("#reply-text").press_sequentially("Your parcel is on its way")
            expect(drafting).to_have_text("Ann Agent has a draft here.", timeout=TIMEOUT)
            expect(drafting).to_be_visible()
            expect(bob.locator("#note-text")).to_have_value("Checking the courier")
            expect(bob.locator("#note-text")).to_be_focused()
            bob.screenshot(path="test-artifacts/screenshots/live-draft-notice.png")

            # Bob empties his note (so new messages are shown at once, not counted); Ann sends.
            bob.locator("#note-text").fill("")
            ann.click("#send-reply-open")
            expect(ann.locator("#undo-send .undo-countdown")).to_contain_text("Sending in", timeout=TIMEOUT)
            expect(bob.locator(".message.direction-out")).to_contain_text("Your parcel is on its way",
                                                                          timeout=TIMEOUT)
            expect(drafting).to_be_hidden(timeout=TIMEOUT)

            # Ann undoes it: the reply leaves Bob's thread, and her draft is back.
            ann.click("#undo-send .undo-button")
            expect(ann.locator("#reply-text")).to_have_value("Your parcel is on its way", timeout=TIMEOUT)
            expect(bob.locator(".message.direction-out")).to_have_count(0, timeout=TIMEOUT)
            expect(drafting).to_have_text("Ann Agent has a draft here.", timeout=TIMEOUT)

            # Ann empties her reply: the notice goes.
            with ann.expect_response(lambda r: r.url.endswith("/draft") and r.ok, timeout=TIMEOUT):
                ann.locator("#reply-text").fill("")
            expect(drafting).to_be_hidden(timeout=TIMEOUT)
            assert bob.evaluate("window.__sameDocument") is True  # never reloaded
            assert store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
            assert errors == []
        finally:
            browser.close()


def test_the_draft_notice_follows_the_agents_language(live_app, setup):  # noqa: F811
    """The sentence comes from the server in the viewer's language (here Dutch, from the browser)."""
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    store, target = setup
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            ann = browser.new_context().new_page()
            bob = browser.new_context(locale="nl-NL", extra_http_headers={"Accept-Language": "nl"}).new_page()
            sign_in(bob, live_app, "bob@example.org", target)
            sign_in(ann, live_app, "ann@example.org", target)
            ann.locator("#reply-text").press_sequentially("Een moment")
            expect(bob.locator("#drafting")).to_have_text("Ann Agent heeft hier een concept.", timeout=TIMEOUT)
        finally:
            browser.close()
