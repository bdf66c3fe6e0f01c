"""Chromium works a conversation: signs in, replies, and sees the reply turn "Sent" without reloading.

The reply goes out through the real outbox to an aiosmtpd sink (tests/servers.py `smtp_server`);
`send_due` runs here in the test as the worker would. The page learns of the change over the
Server-Sent Events stream (/events) — the test checks that the page was never reloaded. Also the
keyboard shortcuts: "?" help, "n"/"r" to the composer, and none of them fire while typing.
"""

from __future__ import annotations

import time

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import send_due
from tests import browser_helpers
from tests.mailfactory import raw_mail
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(app_config, smtp_server):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
    }
    return app_config


@pytest.fixture
def conversation(app):
    app.config.update(LIVE_POLL_SECONDS=0.2)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    item = parse_email(raw_mail(subject="Order 1234 arrived broken", body="The box was crushed."), channel="mail")
    report = mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor="c1"))
    [conversation_id] = report.new_conversations
    yield store, conversation_id
    store.close()


def sign_in(page, base: str, email: str, target: str) -> None:
    browser_helpers.sign_in(page, base, email, target)


def test_reply_turns_sent_on_the_page_without_reload(app, live_app, conversation, smtp_server):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    store, conversation_id = conversation
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, live_app, "ann@example.org", f"/conversations/{conversation_id}")
            expect(page.locator(".message.direction-in .text")).to_contain_text("The box was crushed.")
            page.evaluate("window.__sameDocument = true")

            page.fill("#reply-text", "We are sending a new one today.")
            page.click("#send-reply-open")  # "Send, keep open": the agent stays on the conversation
            reply = page.locator(".message.direction-out").last
            expect(reply).to_contain_text("We are sending a new one today.")
            expect(reply.locator(".delivery-status")).to_have_text("Queued")
            expect(page.locator("#reply-text")).to_have_value("")
            assert smtp_server.messages == []

            assert send_due(app.extensions["mainland"], store).sent == 1
            [mail] = smtp_server.wait_for(1)
            assert mail.rcpt_tos == ["jane@example.net"]
            assert b"We are sending a new one today." in mail.content

            expect(page.locator(".message.direction-out .delivery-status")).to_have_text("Sent", timeout=10_000)
            assert page.evaluate("window.__sameDocument") is True, "the page was not reloaded"
            assert errors == []
        finally:
            browser.close()


def test_keyboard_shortcuts_help_and_composer_but_not_while_typing(app, live_app, conversation):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    _store, conversation_id = conversation
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            sign_in(page, live_app, "ann@example.org", f"/conversations/{conversation_id}")
            help_overlay = page.locator("#shortcuts-help")
            expect(help_overlay).to_be_hidden()
            page.keyboard.press("?")
            expect(help_overlay).to_be_visible()
            expect(help_overlay).to_contain_text("Keyboard shortcuts")
            page.keyboard.press("Escape")
            expect(help_overlay).to_be_hidden()

            page.keyboard.press("n")
            expect(page.locator("#note-text")).to_be_focused()
            expect(page.locator("#reply-form")).to_be_hidden()
            page.keyboard.type("a note with the letters j k e a r n")
            expect(page.locator("#note-text")).to_have_value("a note with the letters j k e a r n")
            expect(help_overlay).to_be_hidden()
            page.keyboard.press("Escape")
            page.keyboard.press("r")
            expect(page.locator("#reply-text")).to_be_focused()
            page.keyboard.press("Escape")
            page.keyboard.press("e")
            # Resolved, and nothing else in the queue: back to it, with the flash saying so.
            page.wait_for_url(f"{live_app}/")
            expect(page.get_by_text("Status: Resolved.")).to_be_visible()
            deadline = time.monotonic() + 5
            while _store.conversation(conversation_id)["status"] != "resolved" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _store.conversation(conversation_id)["status"] == "resolved"
        finally:
            browser.close()


def test_queue_shows_new_conversations_live_and_moves_by_keyboard(app, live_app, conversation):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    store, conversation_id = conversation
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            sign_in(page, live_app, "ann@example.org", "/")
            page.evaluate("window.__sameDocument = true")
            page.wait_for_timeout(500)  # the live stream is open
            item = parse_email(raw_mail(sender="Joe <joe@example.net>", subject="Second question"), channel="mail")
            app.extensions["mainland"].ingestor(store).ingest("mail", FetchResult(items=[item], cursor="c2"))
            banner = page.locator("[data-live-new]")
            expect(banner).to_be_visible(timeout=10_000)
            expect(banner).to_contain_text("1")
            assert page.evaluate("window.__sameDocument") is True
            banner.click()
            page.wait_for_load_state()
            expect(page.get_by_text("Second question")).to_be_visible()

            page.keyboard.press("j")
            page.keyboard.press("j")
            selected = page.locator("tr.selected")
            expect(selected).to_have_count(1)
            expect(selected).to_contain_text("Order 1234 arrived broken")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{live_app}/conversations/{conversation_id}")
            page.keyboard.press("k")
            page.wait_for_url(lambda url: url != f"{live_app}/conversations/{conversation_id}")
            expect(page.locator("h1")).to_contain_text("Second question")
        finally:
            browser.close()


def test_ctrl_enter_sends_with_the_default_status_and_opens_the_next_conversation(app, live_app,  # noqa: F811
                                                                                conversation):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    store, first_id = conversation
    item = parse_email(raw_mail(sender="Joe <joe@example.net>", subject="Second question"), channel="mail")
    [second_id] = app.extensions["mainland"].ingestor(store).ingest(
        "mail", FetchResult(items=[item], cursor="c2")).new_conversations
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, live_app, "ann@example.org", f"/conversations/{second_id}")
            expect(page.locator("#send-reply")).to_contain_text("Pending")
            page.fill("#reply-text", "Sent with the keyboard.")
            page.keyboard.press("Control+Enter")
            page.wait_for_url(f"{live_app}/conversations/{first_id}")
            expect(page.locator(".flash").first).to_contain_text("Status: Pending.")
            assert store.conversation(second_id)["status"] == "pending"
            assert [m["text"] for m in store.thread_messages(second_id) if m["direction"] == "out"] == [
                "Sent with the keyboard."]
            expect(page.locator("#reply-text")).to_have_value("")
            assert errors == []
        finally:
            browser.close()


def test_a_trainees_held_reply_stays_in_the_thread_and_a_returned_one_comes_back_to_the_composer(
        app, live_app, conversation):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from inbox import review

    store, conversation_id = conversation
    ann = store.agent_by_email("ann@example.org")
    store.set_agent_routing(ann["id"], capacity=5, languages=(), topics=(), trainee=True)
    lead = {"id": make_agent(store, email="lea@example.org", name="Lea Lead", role="lead")["id"]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, live_app, "ann@example.org", f"/conversations/{conversation_id}")
            page.fill("#reply-text", "its coming")
            page.click("#send-reply")
            expect(page.locator("#composer-status")).to_contain_text("waits for a lead's review")
            held = page.locator("#held-replies .held-reply")
            expect(held).to_contain_text("its coming")
            expect(held).to_contain_text("Waiting for review")
            assert page.url == f"{live_app}/conversations/{conversation_id}", "nothing was sent: she stays"
            assert store.conversation(conversation_id)["status"] == "new"

            [item] = store.review.items(None)
            review.return_reply(store, item.id, reviewer=lead, comment="Greet Jane and give a date.")
            page.reload()
            expect(held).to_contain_text("Greet Jane and give a date.")
            expect(page.locator("#reply-text")).to_have_value("its coming")
            page.fill("#reply-text", "")
            page.get_by_text("Edit and resubmit").click()
            expect(page.locator("#reply-text")).to_have_value("its coming")
            expect(page.locator("#reply-text")).to_be_focused()
            assert errors == []
        finally:
            browser.close()
