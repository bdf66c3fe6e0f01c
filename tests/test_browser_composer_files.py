"""Chromium replies by email with files and a copy: picked, dropped and pasted files become chips (a file
over the cap is refused in the page before sending), one is removed with the keyboard, Cc comes
pre-filled, Bcc is typed; the SMTP sink then receives the files, the Cc header and the Bcc only in
the envelope. Screenshots of the composer at 1440x900 and 390x844, with axe checks.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import send_due
from tests.axe import describe, run_axe
from tests.mailfactory import raw_mail
from tests.test_browser_conversation import sign_in
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 10_000
PDF = b"%PDF-1.4\n" + b"x" * 3000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 500


@pytest.fixture
def app_config(app_config, smtp_server):
    app_config["max_attachment_bytes"] = 50_000
    app_config["max_message_bytes"] = 80_000  # the cap of one whole request, files together
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
    }
    return app_config


@pytest.fixture
def setup(app):
    app.config.update(LIVE_POLL_SECONDS=0.2)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    item = parse_email(raw_mail(subject="Invoice for order 1234", body="Could you send the invoice again?",
                                to="support@mainland.test, Carol <carol@example.com>"), channel="mail")
    [cid] = mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor="c1")).new_conversations
    yield mainland, store, f"/conversations/{cid}"
    store.close()


def drop_files(page, files: list[tuple[str, str, bytes]]) -> None:
    """Drop files onto the composer the way a browser does: dragover, then drop with a DataTransfer."""
    transfer = page.evaluate_handle("""(files) => {
        const dt = new DataTransfer();
        for (const [name, type, bytes] of files) { dt.items.add(new File([new Uint8Array(bytes)], name, {type})); }
        return dt;
    }""", [[name, ctype, list(data)] for name, ctype, data in files])
    page.dispatch_event("#composer", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#composer", "drop", {"dataTransfer": transfer})


def test_reply_with_a_file_and_a_copy_reaches_the_smtp_sink(live_app, setup, smtp_server):  # noqa: F811
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
            expect(page.locator("#reply-cc")).to_have_value("carol@example.com")
            page.fill("#reply-bcc", "boss@example.com")
            page.fill("#reply-text", "Here is the invoice again.")
            page.set_input_files("#reply-files-input", files=[
                {"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": PDF}])
            drop_files(page, [("photo.png", "image/png", PNG), ("huge.pdf", "application/pdf", b"%PDF" + b"x" * 60_000)])
            chips = page.locator("#file-chips .file-chip")
            expect(chips).to_have_count(2, timeout=TIMEOUT)
            expect(page.locator("#file-error")).to_contain_text("huge.pdf is too large")
            # A pasted screenshot becomes a chip too, and the text box gets no junk.
            page.evaluate("""(bytes) => {
                const dt = new DataTransfer();
                dt.items.add(new File([new Uint8Array(bytes)], "screenshot.png", {type: "image/png"}));
                document.getElementById("reply-text").dispatchEvent(
                    new ClipboardEvent("paste", {clipboardData: dt, bubbles: true, cancelable: true}));
            }""", list(PNG))
            expect(chips).to_have_count(3, timeout=TIMEOUT)
            expect(page.locator("#reply-text")).to_have_value("Here is the invoice again.")
            page.get_by_role("button", name="Remove screenshot.png").click()
            expect(chips).to_have_count(2)
            expect(chips.nth(0)).to_contain_text("invoice.pdf")
            expect(chips.nth(0)).to_contain_text("2.9 kB")
            page.set_input_files("#reply-files-input", files=[
                {"name": "huge.pdf", "mimeType": "application/pdf", "buffer": b"%PDF" + b"x" * 60_000}])
            expect(page.locator("#file-error")).to_contain_text("huge.pdf is too large")
            expect(chips).to_have_count(2)
            page.set_input_files("#reply-files-input", files=[
                {"name": f"scan{i}.pdf", "mimeType": "application/pdf", "buffer": b"%PDF" + b"s" * 40_000}
                for i in (1, 2)])
            expect(page.locator("#file-error")).to_contain_text("Together the files are too large")
            expect(chips).to_have_count(3)
            page.get_by_role("button", name="Remove scan1.pdf").click()
            expect(chips).to_have_count(2)
            violations = run_axe(page)
            page.locator("#composer").screenshot(path="test-artifacts/screenshots/composer-files-1440.png")
            page.screenshot(path="test-artifacts/screenshots/composer-files-1440-page.png")
            assert violations == [], describe(violations)

            # The photo goes again, by keyboard: its Remove button is reachable and named.
            remove = page.get_by_role("button", name="Remove photo.png")
            remove.focus()
            page.keyboard.press("Enter")
            expect(chips).to_have_count(1)

            page.set_viewport_size({"width": 390, "height": 844})
            page.locator("#composer").scroll_into_view_if_needed()
            violations = run_axe(page)
            page.screenshot(path="test-artifacts/screenshots/composer-files-390.png", full_page=True)
            assert violations == [], describe(violations)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways at 390 px ({width})"
            page.set_viewport_size({"width": 1440, "height": 900})
            # The Forward tool opens from the toolbar with the keyboard, every field labelled.
            page.focus("#forward-tool summary")
            page.keyboard.press("Enter")
            expect(page.locator("#forward-to")).to_be_visible()
            violations = run_axe(page)
            page.screenshot(path="test-artifacts/screenshots/composer-forward-1440.png")
            assert violations == [], describe(violations)
            page.keyboard.press("Enter")  # closes it again: focus is still on its summary

            page.click("#send-reply-open")
            sent = page.locator(".message.direction-out")
            expect(sent).to_contain_text("Here is the invoice again.", timeout=TIMEOUT)
            expect(sent.locator(".attachments")).to_contain_text("invoice.pdf")
            expect(sent).to_contain_text("Cc: carol@example.com")
            expect(chips).to_have_count(0)
            assert errors == []
        finally:
            browser.close()
    assert send_due(mainland, store).sent == 1
    [mail] = smtp_server.messages
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert [a.addr_spec for a in message["Cc"].addresses] == ["carol@example.com"]
    assert "boss@example.com" in mail.rcpt_tos and b"boss@example.com" not in mail.content
    [part] = list(message.iter_attachments())
    assert (part.get_filename(), part.get_content()) == ("invoice.pdf", PDF)
