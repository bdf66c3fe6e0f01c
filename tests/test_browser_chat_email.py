"""The website chat by email in Chromium (#18), as the issue tells it: the visitor chats, leaves an
address and goes; the agent answers; the answer waits unread for the set minutes (the frozen clock
moves, the worker's job runs) and the SMTP sink gets it by email; the visitor's reply by mail is
ingested; then on a "new device" (a second browser context, no token, no history) the visitor asks
for a link by address, opens the link from the sink's mail and sees everything.

The host site (tests/test_browser_chat.py's `HostSite`) has a strict CSP. Screenshots of the new
parts at 1440x900 and 390x844 go to MAINLAND_SCREENSHOTS (when set); axe checks them.
"""

from __future__ import annotations

import email
import email.policy
import os
from pathlib import Path

import pytest

from inbox import chat_followup
from inbox.mail import parse_email
from inbox.outbox import queue_reply, send_due
from tests.axe import describe, run_axe
from tests.mailfactory import raw_mail
from tests.test_browser_chat import HostSite  # noqa: F401 - the host page
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 - fixture
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
SIZES = {"wide": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def host_site():
    site = HostSite()
    site.thread.start()
    yield site
    site.server.shutdown()
    site.thread.join(timeout=5)


@pytest.fixture
def app_config(app_config, host_site, smtp_server):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
        "site": {"kind": "chat", "title": "Example shop", "color": "#7a2e8e", "allowed_origins": [host_site.origin],
                 "email_channel": "mail", "followup_minutes": 5},
    }
    return app_config


def shoot(page, name: str) -> None:
    folder = os.environ.get("MAINLAND_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"chat-email-{name}.png"))


def check_axe(page) -> None:
    violations = run_axe(page)
    assert violations == [], describe(violations)


def test_the_answer_follows_by_email_and_a_link_shows_everything_on_a_new_device(app, live_app, host_site,  # noqa: F811
                                                                                  smtp_server, frozen_clock):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    host_site.app_url = live_app
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            for size_name, viewport in SIZES.items():
                # The phone size only for the look of the new parts; the story runs at the wide size.
                if size_name == "phone":
                    phone = browser.new_context(viewport=viewport).new_page()
                    phone.goto(host_site.origin + "/")
                    phone.get_by_role("button", name="Chat with us").click()
                    phone.get_by_role("button", name="Chatted with us on another device?").click()
                    expect(phone.get_by_label("Your email address")).to_be_focused(timeout=TIMEOUT)
                    shoot(phone, "new-device-phone")
                    check_axe(phone)
                    continue
                first = browser.new_context(viewport=viewport)
                page = first.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(host_site.origin + "/")
                page.get_by_role("button", name="Chat with us").click()
                page.get_by_label("Your message").fill("Do you have these shoes in size 44?")
                page.keyboard.press("Enter")
                log = page.get_by_role("log")
                expect(log).to_contain_text("size 44?", timeout=TIMEOUT)
                # Stored before the visitor leaves: the text shows at once (kept in the tab), "Delivered"
                # only when the server has it (a busy machine takes a while over its first ingest).
                expect(log).to_contain_text("Delivered", timeout=TIMEOUT)
                # After the first message: "Get our answer by email too".
                page.get_by_role("button", name="Get our answer by email too").click()
                field = page.get_by_label("Your email address")
                expect(field).to_be_focused()
                field.fill("pat@example.net")
                shoot(page, "leave-address-wide")
                check_axe(page)
                page.get_by_role("button", name="Save").click()
                expect(page.get_by_role("status")).to_contain_text("pat@example.net", timeout=TIMEOUT)
                first.close()  # the visitor leaves

            # The agent answers; nobody reads it in the chat.
            [conversation] = store.recent_conversations()
            queue_reply(mainland, store, conversation["id"], "Yes, size 44 is in stock.", agent=agent)
            assert send_due(mainland, store).sent == 1
            frozen_clock.advance(minutes=6)
            assert chat_followup.run(mainland, store).queued == 1
            assert send_due(mainland, store).sent == 1
            [followup] = smtp_server.wait_for(1)
            mail = email.message_from_bytes(followup.content, policy=email.policy.default)
            assert followup.rcpt_tos == ["pat@example.net"]
            assert "Yes, size 44 is in stock." in mail.get_body(("plain",)).get_content()

            # The visitor answers the mail; it joins the chat's conversation.
            reply = parse_email(raw_mail(sender="Pat <pat@example.net>", subject=f"Re: {mail['Subject']}",
                                         in_reply_to=mail["Message-ID"], body="Great, I will pick them up."),
                                channel="mail")
            assert mainland.ingestor(store).ingest_one("mail", reply).new_conversations == []

            # A new device: no token, no history. The visitor asks for a link and opens it.
            device = browser.new_context(viewport=SIZES["wide"]).new_page()
            device.on("pageerror", lambda exc: errors.append(str(exc)))
            device.goto(host_site.origin + "/")
            device.get_by_role("button", name="Chat with us").click()
            device.get_by_role("button", name="Chatted with us on another device?").click()
            device.get_by_label("Your email address").fill("pat@example.net")
            device.get_by_role("button", name="Email me a link").click()
            expect(device.get_by_role("status")).to_contain_text("If we know this address", timeout=TIMEOUT)
            shoot(device, "link-sent-wide")
            assert send_due(mainland, store).sent == 1
            signin = email.message_from_bytes(smtp_server.wait_for(2)[1].content, policy=email.policy.default)
            [link] = [line.strip() for line in signin.get_body(("plain",)).get_content().splitlines()
                      if chat_followup.SIGNIN_FRAGMENT in line]
            device = device.context.new_page()  # the link from the mail opens in a new tab
            device.on("pageerror", lambda exc: errors.append(str(exc)))
            device.goto(link)
            log = device.get_by_role("log")
            for text in ("size 44?", "Yes, size 44 is in stock.", "Great, I will pick them up."):
                expect(log).to_contain_text(text, timeout=TIMEOUT)
            expect(log).to_contain_text("by email")
            expect(device.get_by_role("status")).to_contain_text("Welcome back", timeout=TIMEOUT)
            assert chat_followup.SIGNIN_FRAGMENT not in device.url  # taken out of the address bar
            shoot(device, "signed-in-wide")
            check_axe(device)
            assert errors == []
        finally:
            browser.close()
            store.close()
