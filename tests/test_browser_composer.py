"""Chromium uses the composer: @mention autocomplete in a note, a draft on another device, and undo send.

The replies' channel is the fake chat connector of tests/test_composer.py (nothing is sent: no
worker runs, and the frozen clock keeps every reply inside its undo window).
"""

from __future__ import annotations

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.axe import describe, run_axe
from tests.mailfactory import raw_mail
from tests.test_browser_conversation import sign_in
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_composer import app_config  # noqa: F401  (fixture: the fake chat channel)
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 10_000


@pytest.fixture
def setup(app, frozen_clock):
    app.config.update(LIVE_POLL_SECONDS=0.2)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    people = {
        "ann": make_agent(store),
        "anna": make_agent(store, email="anna@example.org", name="Anna Smith"),
        "bob": make_agent(store, email="bob@example.org", name="Bob Builder"),
        "andy": make_agent(store, email="andy@example.org", name="Andy Other"),
    }
    item = parse_email(raw_mail(subject="Where is my parcel", body="It did not arrive."), channel="chat")
    [conversation_id] = mainland.ingestor(store).ingest("chat", FetchResult(items=[item], cursor="c1")).new_conversations
    yield store, people, f"/conversations/{conversation_id}"
    store.close()


def test_mention_autocomplete_picks_agents_with_the_keyboard(live_app, setup):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    store, people, target = setup
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, live_app, "ann@example.org", target)
            page.click("#tab-note")
            note = page.locator("#note-text")
            listbox = page.locator("#mention-list")
            note.press_sequentially("Please check @an")
            expect(listbox).to_be_visible(timeout=TIMEOUT)
            expect(listbox.get_by_role("option")).to_have_count(2)  # Andy and Anna; not Ann herself
            expect(page.locator("#mention-option-0")).to_contain_text("Andy Other")
            expect(note).to_have_attribute("aria-activedescendant", "mention-option-0")
            page.keyboard.press("ArrowDown")
            expect(note).to_have_attribute("aria-activedescendant", "mention-option-1")
            expect(page.locator("#mention-option-1")).to_have_attribute("aria-selected", "true")
            expect(page.locator("#mention-option-1")).to_contain_text("Anna Smith")
            violations = run_axe(page)
            page.screenshot(path="test-artifacts/screenshots/composer-mentions.png")
            assert violations == [], describe(violations)
            page.keyboard.press("Enter")
            expect(note).to_have_value("Please check @anna ")
            expect(listbox).to_be_hidden()
            note.press_sequentially("and @bo")
            expect(listbox.get_by_role("option")).to_have_count(1, timeout=TIMEOUT)
            page.keyboard.press("Tab")
            expect(note).to_have_value("Please check @anna and @bob ")
            page.click("#add-note")
            expect(page.locator(".message.direction-note")).to_contain_text("Please check @anna and @bob",
                                                                            timeout=TIMEOUT)
            assert [n.kind for n in store.notifications.of(people["anna"]["id"], None)] == ["mention"]
            assert [n.kind for n in store.notifications.of(people["bob"]["id"], None)] == ["mention"]
            assert store.notifications.of(people["ann"]["id"], None) == []
            assert errors == []
        finally:
            browser.close()


def test_draft_follows_the_agent_and_undo_send_puts_the_reply_back(live_app, setup):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    store, people, target = setup
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            laptop = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
            errors: list[str] = []
            laptop.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(laptop, live_app, "ann@example.org", target)
            expect(laptop.locator("#reply-audience")).to_have_text("Private message on ChatApp")
            with laptop.expect_response(lambda r: r.url.endswith("/draft") and r.ok, timeout=TIMEOUT):
                laptop.locator("#reply-text").press_sequentially("Sorry, wrong customer")

            # The same agent on another device, and a colleague.
            phone = browser.new_context().new_page()
            sign_in(phone, live_app, "ann@example.org", target)
            expect(phone.locator("#reply-text")).to_have_value("Sorry, wrong customer")
            expect(phone.locator("#drafting")).to_have_count(0)
            bob = browser.new_context().new_page()
            sign_in(bob, live_app, "bob@example.org", target)
            expect(bob.locator("#drafting")).to_have_text("Ann Agent has a draft here.")

            # Send and keep open: the undo bar counts down; Ctrl+Z in the empty reply box undoes it.
            laptop.click("#send-reply-open")
            expect(laptop.locator(".message.direction-out")).to_contain_text("Sorry, wrong customer",
                                                                              timeout=TIMEOUT)
            expect(laptop.locator("#undo-send .undo-countdown")).to_contain_text("Sending in", timeout=TIMEOUT)
            expect(laptop.locator("#reply-text")).to_have_value("")
            violations = run_axe(laptop)
            laptop.screenshot(path="test-artifacts/screenshots/composer-undo.png", full_page=True)
            assert violations == [], describe(violations)
            assert store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1
            laptop.focus("#reply-text")
            laptop.keyboard.press("Control+z")
            expect(laptop.locator("#reply-text")).to_have_value("Sorry, wrong customer", timeout=TIMEOUT)
            expect(laptop.locator(".message.direction-out")).to_have_count(0)
            expect(laptop.locator("#undo-send")).to_be_hidden()
            expect(laptop.locator("#composer-status")).to_contain_text("Sending undone")
            assert store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
            assert store.drafts.of(people["ann"]["id"], store.execute(
                "SELECT id FROM conversations").fetchone()[0]) == {"reply": "Sorry, wrong customer"}
            assert errors == []
        finally:
            browser.close()
