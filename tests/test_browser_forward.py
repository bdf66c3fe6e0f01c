"""Chromium forwards a customer's mail to someone outside Mainland: the Forward tool in the toolbar,
keyboard only; the thread records who forwarded what to whom, and the SMTP sink receives a new mail
("Fwd: ...") to that address alone, with the note and the forwarded text (files: tests/test_composer_forward.py)."""

from __future__ import annotations

import email
import email.policy

import pytest

from inbox.outbox import send_due
from tests.test_browser_composer_files import TIMEOUT, app_config, setup  # noqa: F401  (fixtures)
from tests.test_browser_conversation import sign_in
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)

pytestmark = pytest.mark.browser


def test_forward_a_mail_with_the_keyboard_reaches_the_smtp_sink(live_app, setup, smtp_server):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    mainland, store, target = setup
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, live_app, "ann@example.org", target)
            page.focus("#forward-tool summary")
            page.keyboard.press("Enter")
            page.fill("#forward-to", "finance@partner.example")
            page.fill("#forward-comment", "Can you resend this invoice?")
            page.locator("#forward-form button[type=submit]").press("Enter")
            note = page.locator(".message.direction-note").last
            expect(note).to_contain_text("finance@partner.example", timeout=TIMEOUT)
            assert errors == []
        finally:
            browser.close()
    assert send_due(mainland, store).sent == 1
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["finance@partner.example"]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert message["Subject"].startswith("Fwd: Invoice for order 1234")
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Can you resend this invoice?" in body and "Could you send the invoice again?" in body
