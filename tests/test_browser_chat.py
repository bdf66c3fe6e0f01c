"""The website chat in Chromium (#18): a visitor on a customer's site and an agent, two contexts.

The host page is served by this test from another origin, with a strict Content Security Policy
(no inline script or style; scripts and requests only from Mainland). The visitor writes, the agent
sees the conversation arrive live in the queue and answers, and the visitor reads the answer. Then
the network drops: a message written offline is sent once when the visitor is back online, and a
message whose answer is lost on the way back is sent again and still stored once. Every wait is
for an element's or the database's state, never a sleep. No worker runs: the test sends the due
replies itself (`send_due`), as the worker would.
"""

from __future__ import annotations

import re
import secrets
import struct
import threading
import urllib.request
import uuid
import zlib

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from inbox.outbox import send_due
from tests.axe import describe, run_axe
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 - fixture
from tests.test_web_auth import PASSWORD, make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000


class HostSite:
    """A customer's website on its own loopback port, embedding the widget of `app_url`."""

    def __init__(self) -> None:
        self.app_url = ""
        #: The site's `img-src`: 'none' (no pictures at all), or with `blob:` the widget's thumbnails.
        self.img_src = "'none'"
        #: The page's language, which the widget speaks.
        self.lang = "en"
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wsgi(self, environ, start_response):
        Request(environ)
        page = (f'<!doctype html><html lang="{self.lang}"><head><meta charset="utf-8"><title>Example shop</title></head>'
                f'<body><main><h1>Example shop</h1><p>Shoes and more.</p></main>'
                f'<script src="{self.app_url}/chat/widget.js" data-channel="site" defer></script></body></html>')
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src {self.app_url}; connect-src {self.app_url}; "
            f"style-src 'none'; img-src {self.img_src}; base-uri 'none'; frame-ancestors 'none'")
        return response(environ, start_response)


@pytest.fixture
def host_site():
    site = HostSite()
    site.thread.start()
    yield site
    site.server.shutdown()
    site.thread.join(timeout=5)


@pytest.fixture
def app_config(app_config, host_site):
    app_config["channels"] = {"site": {"kind": "chat", "title": "Example shop", "color": "#7a2e8e",
                                       "allowed_origins": [host_site.origin]}}
    return app_config


def stored_texts(store) -> list[str]:
    return [m["text"] for c in store.recent_conversations() for m in store.conversation_messages(c["id"])
            if m["direction"] == "in"]


def test_a_visitor_and_an_agent_chat_and_a_dropped_network_loses_and_doubles_nothing(app, live_app,  # noqa: F811
                                                                                      host_site):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    app.config.update(LIVE_POLL_SECONDS=0.2)
    host_site.app_url = live_app
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    # Another visitor is already waiting, so the agent's queue is a list that grows live.
    other = app.test_client().post("/chat/site/messages", json={"client_id": str(uuid.uuid4()), "text": "Hello?"},
                                   headers={"X-Mainland-Visitor": secrets.token_urlsafe(32)})
    assert other.status_code == 200
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            visitor_context = browser.new_context(viewport={"width": 1280, "height": 800})
            visitor = visitor_context.new_page()
            visitor.on("pageerror", lambda exc: errors.append(str(exc)))
            visitor.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text
                       else None)
            agent = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            agent.goto(f"{live_app}/login")
            agent.fill("#email", "ann@example.org")
            agent.fill("#password", PASSWORD)
            agent.click("button[type=submit]")
            agent.wait_for_url(f"{live_app}/")
            agent.wait_for_function("() => window.Live && Live.lastEventId() !== null", timeout=TIMEOUT)

            # The visitor opens the chat with the keyboard and writes.
            visitor.goto(host_site.origin + "/")
            launcher = visitor.get_by_role("button", name="Chat with us")
            expect(launcher).to_be_visible(timeout=TIMEOUT)
            launcher.focus()
            visitor.keyboard.press("Enter")
            expect(visitor.get_by_role("dialog", name="Example shop")).to_contain_text("We usually answer within 1 hour.")
            box = visitor.get_by_label("Your message")
            expect(box).to_be_focused()
            assert errors == []
            violations = run_axe(visitor)
            assert violations == [], describe(violations)
            errors.clear()  # axe's own injection is refused by the host's CSP first (tests/axe.py): not the widget
            box.fill("Do you have these shoes in size 44?")
            visitor.keyboard.press("Enter")

            # The agent sees it arrive live, opens it and answers.
            row = agent.locator("table.queue tbody tr").filter(has_text="Do you have these shoes in size 44?")
            expect(row).to_be_visible(timeout=TIMEOUT)
            conversation_id = row.get_attribute("data-id")
            agent.goto(f"{live_app}/conversations/{conversation_id}")
            agent.fill("#reply-text", "Yes, size 44 is in stock.")
            agent.click("#send-reply-open")  # "Send, keep open": the agent stays on the conversation
            reply = agent.locator(".message.direction-out").last
            expect(reply.locator(".delivery-status")).to_have_text("Queued", timeout=TIMEOUT)
            assert send_due(mainland, store).sent == 1
            # Sent; or already Read when the open widget read it before the agent's page next looked.
            expect(reply.locator(".delivery-status")).to_have_text(re.compile(r"^\s*(Sent|Read)\s*$"), timeout=TIMEOUT)

            log = visitor.get_by_role("log")
            expect(log).to_contain_text("Yes, size 44 is in stock.", timeout=TIMEOUT)
            # The open chat showed it: the agent sees the reply read, live.
            expect(reply.locator(".delivery-status")).to_have_text("Read", timeout=TIMEOUT)

            # Offline: the message waits in the widget, then goes once when the network is back.
            visitor_context.set_offline(True)
            box.fill("Can I pick them up today?")
            visitor.keyboard.press("Enter")
            expect(log).to_contain_text("Not sent yet", timeout=TIMEOUT)
            assert "Can I pick them up today?" not in stored_texts(store)
            visitor_context.set_offline(False)
            expect(log).not_to_contain_text("Not sent yet", timeout=TIMEOUT)

            # The answer to a post is lost on the way back (stored, but the widget never hears so):
            # the widget sends it again with the same client id, and it is still stored once.
            lost = []

            def drop_answer(route):
                if route.request.method == "POST" and not lost:
                    # The server gets the post and stores it, but its answer never reaches the widget.
                    sent = urllib.request.Request(route.request.url, data=route.request.post_data_buffer,
                                                  headers=route.request.headers, method="POST")
                    with urllib.request.urlopen(sent, timeout=10) as answer:
                        lost.append(answer.status)
                    route.abort("connectionreset")
                else:
                    route.continue_()

            visitor.route("**/chat/site/messages", drop_answer)
            box.fill("And do you deliver on Saturday?")
            with visitor.expect_event("requestfailed"):
                visitor.keyboard.press("Enter")
            assert lost == [200] and "And do you deliver on Saturday?" in stored_texts(store)
            visitor_context.set_offline(True)  # a drop and a return make the widget resend at once
            visitor_context.set_offline(False)
            expect(log.get_by_text("And do you deliver on Saturday?")).to_have_count(1, timeout=TIMEOUT)
            expect(log).not_to_contain_text("Sending", timeout=TIMEOUT)
            assert lost, "the lost answer was never simulated"

            texts = stored_texts(store)
            assert texts.count("Do you have these shoes in size 44?") == 1
            assert texts.count("Can I pick them up today?") == 1
            assert texts.count("And do you deliver on Saturday?") == 1

            # Back another day: the whole conversation is there.
            visitor.reload()  # the chat was open: it opens again by itself
            expect(visitor.get_by_role("button", name="Chat with us")).to_have_attribute("aria-expanded", "true",
                                                                                         timeout=TIMEOUT)
            for text in ("size 44?", "Yes, size 44 is in stock.", "pick them up today?", "Saturday?"):
                expect(visitor.get_by_role("log")).to_contain_text(text, timeout=TIMEOUT)
            assert errors == []
        finally:
            browser.close()
            store.close()


def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour, which a browser decodes (a thumbnail must load, not only exist)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def test_files_go_both_ways_between_the_widget_and_the_agent(app, live_app, host_site):  # noqa: F811
    """The visitor attaches a picture with the keyboard (a refused file says why), the agent sees it
    on the conversation and answers with a PDF and a picture, which the widget shows as a download
    and a thumbnail (the site allows blob: images in its CSP)."""
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    app.config.update(LIVE_POLL_SECONDS=0.2)
    host_site.app_url = live_app
    host_site.img_src = "blob:"
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            visitor = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True).new_page()
            # Playwright turns on its interception of file pickers when the first listener comes; one from the
            # start keeps a picker that opens quickly from reaching Chromium's own (absent) dialog instead.
            visitor.on("filechooser", lambda chooser: None)
            visitor.on("pageerror", lambda exc: errors.append(str(exc)))
            visitor.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text
                       else None)
            visitor.goto(host_site.origin + "/")
            visitor.get_by_role("button", name="Chat with us").click()
            box = visitor.get_by_label("Your message")
            box.fill("The box arrived broken")
            visitor.keyboard.press("Enter")
            log = visitor.get_by_role("log")
            expect(log).to_contain_text("Delivered", timeout=TIMEOUT)

            # A program is refused in the widget, with what to do instead; nothing is uploaded.
            attach = visitor.get_by_role("button", name="Attach a file")
            attach.focus()
            with visitor.expect_file_chooser() as chooser:
                visitor.keyboard.press("Enter")
            chooser.value.set_files(files=[{"name": "setup.exe", "mimeType": "application/x-msdownload",
                                            "buffer": b"MZ\x90\x00"}])
            expect(visitor.get_by_role("alert")).to_contain_text("Send a picture, a PDF", timeout=TIMEOUT)

            photo = solid_png(40, 30, (200, 60, 40))
            with visitor.expect_file_chooser() as chooser:
                attach.click()
            chooser.value.set_files(files=[{"name": "broken box.png", "mimeType": "image/png", "buffer": photo}])
            thumbnail = log.get_by_role("img", name="broken box.png")
            expect(thumbnail).to_be_visible(timeout=TIMEOUT)
            expect(visitor.get_by_text("Send a picture, a PDF")).to_have_count(0)  # the refusal is gone
            [(conversation_id, message)] = [(c["id"], m) for c in store.recent_conversations()
                                            for m in store.conversation_messages(c["id"]) if m["attachments"]]
            assert [a["filename"] for a in message["attachments"]] == ["broken box.png"]

            # The agent sees the picture on the conversation and answers with two files.
            agent = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            agent.goto(f"{live_app}/login")
            agent.fill("#email", "ann@example.org")
            agent.fill("#password", PASSWORD)
            agent.click("button[type=submit]")
            agent.wait_for_url(f"{live_app}/")
            agent.goto(f"{live_app}/conversations/{conversation_id}")
            expect(agent.locator(".media img[alt='broken box.png']")).to_be_visible(timeout=TIMEOUT)
            expect(agent.locator(".attachments")).to_contain_text("broken box.png")
            agent.fill("#reply-text", "Sorry! Here is a return label and where to drop it.")
            agent.set_input_files("#reply-files-input", files=[
                {"name": "return label.pdf", "mimeType": "application/pdf", "buffer": PDF},
                {"name": "map.png", "mimeType": "image/png", "buffer": solid_png(60, 40, (40, 120, 200))}])
            agent.click("#send-reply-open")
            reply = agent.locator(".message.direction-out").last
            expect(reply.locator(".delivery-status")).to_have_text("Queued", timeout=TIMEOUT)
            assert send_due(mainland, store).sent == 1

            expect(log).to_contain_text("Here is a return label", timeout=TIMEOUT)
            expect(log.get_by_role("img", name="map.png")).to_be_visible(timeout=TIMEOUT)
            with visitor.expect_download() as download:
                log.get_by_role("button", name="Download return label.pdf").click()
            assert download.value.suggested_filename == "return label.pdf"
            with open(download.value.path(), "rb") as fh:
                assert fh.read() == PDF
            assert errors == []
        finally:
            browser.close()
            store.close()
