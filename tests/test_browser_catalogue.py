"""The whole hostile-input catalogue rendered in a real Chromium: nothing runs, nothing is fetched.

Every script payload (IN-01, IN-02) and every remote-content payload (IN-04) of
tests/test_hostile_input.py arrives as its own mail, together with a hostile encoded subject
(IN-05), display name (IN-06) and attachment name (IN-07). A signed-in agent then opens the queue,
a search that matches them all, and every conversation with its sandboxed message frame. The
browser must show no dialog (every payload calls alert), set no `window.__pwned` in any frame, and
request nothing from any host but the app (SEC-01 to SEC-05).
"""

from __future__ import annotations

import base64
import itertools
from urllib.parse import urlsplit

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 - fixture
from tests.test_hostile_input import REMOTE, XSS
from tests.test_web_auth import PASSWORD, make_agent

pytestmark = pytest.mark.browser

_ids = itertools.count(1)
SUBJECT = "=?UTF-8?B?" + base64.b64encode(b"<script>alert(1)</script> catalogue").decode() + "?="


def catalogue_mail(html: str) -> bytes:
    n = next(_ids)
    boundary = "b0undary"
    return (
        f'From: "<img src=x onerror=alert(1)>" <mallory{n}@evil.example>\r\n'
        f"To: support@mainland.test\r\nSubject: {SUBJECT}\r\n"
        f"Date: Thu, 05 Mar 2026 10:15:02 +0000\r\nMessage-ID: <cat{n}@evil.example>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"<p>catalogue payload {n}</p>{html}\r\n"
        f"--{boundary}\r\nContent-Type: application/pdf\r\n"
        f"Content-Disposition: attachment; filename=\"\\\"><svg onload=alert(1)>.pdf\"\r\n\r\n%PDF-1.4 x\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def test_chromium_renders_the_hostile_catalogue_inertly(app, live_app):  # noqa: F811 - fixture
    _require_chromium()
    from playwright.sync_api import sync_playwright

    payloads = [p.values[0] for p in XSS + REMOTE]
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    items = [parse_email(catalogue_mail(html), channel="mail") for html in payloads]
    app.extensions["mainland"].ingestor(store).ingest("mail", FetchResult(items=items, cursor="c1"))
    conversations = [c["id"] for c in store.recent_conversations(limit=500)]
    store.close()
    assert len(conversations) == len(payloads)

    requested: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context()
            context.on("request", lambda request: requested.append(request.url))
            page = context.new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(f"{live_app}/login")
            page.fill("#email", "ann@example.org")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_app}/")
            page.wait_for_load_state("networkidle")
            page.goto(f"{live_app}/search?q=catalogue")
            page.wait_for_load_state("networkidle")
            assert "catalogue" in page.content()

            for conversation_id in conversations:
                page.goto(f"{live_app}/conversations/{conversation_id}")
                page.wait_for_selector("#messages")
                frame_element = page.query_selector(".html-frame iframe")
                if frame_element is not None:
                    assert frame_element.get_attribute("sandbox") == ""
                    page.frame_locator(".html-frame iframe").locator("p", has_text="catalogue payload").wait_for()
                else:
                    # Sanitised down to plain paragraphs and links, it reads as its plain text, escaped.
                    assert "catalogue payload" in page.locator("#messages").inner_text()
                page.wait_for_load_state("networkidle")
                for frame in page.frames:
                    assert frame.evaluate("typeof window.__pwned") == "undefined"
        finally:
            browser.close()

    assert dialogs == [], f"a payload ran: {dialogs}"
    hosts = {urlsplit(url).hostname for url in requested if not url.startswith(("data:", "about:"))}
    assert hosts == {"127.0.0.1"}, f"the browser fetched from elsewhere: {sorted(set(requested) - {''})[:10]}"
