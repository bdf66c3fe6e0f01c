"""Chromium starts a WhatsApp conversation by template (#12): pick the customer's number, pick a
template, fill its variables while the preview follows, send; the outbox delivers it to the WhatsApp
imitation. Also the composer's "Send a template" once the 24-hour window has closed. Screenshots at
1440x900 and 390x844, in English and Dutch, with axe-core finding no serious violation."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from inbox.outbox import send_due
from inbox.store.base import iso
from sandbox.whatsapp import WhatsAppImitation
from tests.axe import describe, run_axe
from tests.test_browser_conversation import sign_in
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 10_000
SHOTS = Path("test-artifacts/screenshots")
SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation




@pytest.fixture
def app_config(app_config, whatsapp):
    app_config["channels"] = {"whatsapp": {
        "kind": "whatsapp", "phone_number_id": whatsapp.phone_number_id, "access_token": whatsapp.access_token,
        "app_secret": whatsapp.app_secret, "verify_token": whatsapp.verify_token, "api_url": whatsapp.url,
        "business_account_id": whatsapp.business_account_id},
        # Mail is only queued here (no worker runs): the host is never reached.
        "mail": {"kind": "imap", "host": "imap.invalid", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "smtp_host": "smtp.invalid"}}
    return app_config


@pytest.fixture
def setup(app, frozen_clock):
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, role="admin")  # sees a customer who has no conversation yet
    make_agent(store, email="anke@example.org", name="Anke", role="admin", locale="nl")
    now = iso(frozen_clock.now())
    with store.write():
        customer_id = store.create_customer_record("Sheena Nelson", now)
        store.add_identity(customer_id, "phone", "+16505551234", "+1 650-555-1234", True, now)
        store.add_identity(customer_id, "x", "sheena_n", "@sheena_n", True, now)
    yield mainland, store, customer_id
    store.close()


def test_start_a_whatsapp_conversation_by_template(live_app, setup, whatsapp):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    mainland, store, customer_id = setup
    target = f"/customers/{customer_id}/conversations/new"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, live_app, "ann@example.org", target)
            # The number goes by WhatsApp, template only: no free text, the picker instead.
            expect(page.get_by_label(re.compile(r"\+1 650-555-1234"))).to_be_checked()
            expect(page.locator("#free-text")).to_be_hidden()
            expect(page.locator("#cannot-start")).to_contain_text("@sheena_n")
            picker = page.locator("#template-picker-whatsapp")
            expect(picker).to_be_visible()
            # With the keyboard: the template select, then the variables.
            page.get_by_label("Template", exact=True).focus()
            page.get_by_label("Template", exact=True).select_option("appointment_reminder|en_US")
            expect(page.locator("#param-whatsapp-1")).to_be_visible()
            expect(page.locator("#param-whatsapp-2")).to_be_visible()
            page.keyboard.press("Tab")
            expect(page.locator("#param-whatsapp-1")).to_be_focused()
            page.keyboard.type("Sheena")
            preview = page.locator("#template-preview-whatsapp")
            expect(preview).to_have_text("Hi Sheena, a reminder of your appointment on {{2}}.")
            page.keyboard.press("Tab")
            page.keyboard.type("4 May")
            expect(preview).to_have_text("Hi Sheena, a reminder of your appointment on 4 May.")
            page.get_by_label("Template", exact=True).select_option("order_update|nl")
            expect(page.locator("#param-whatsapp-2")).to_be_hidden()
            expect(preview).to_have_text("Je bestelling Sheena is verzonden. Vragen? Antwoord gewoon hier.")
            page.get_by_label("Template", exact=True).select_option("appointment_reminder|en_US")
            expect(preview).to_have_text("Hi Sheena, a reminder of your appointment on 4 May.")
            violations = run_axe(page)
            assert violations == [], describe(violations)
            for name, (width, height) in SIZES.items():
                page.set_viewport_size({"width": width, "height": height})
                page.screenshot(path=str(SHOTS / f"new-conversation-template-{name}-en.png"), full_page=True)
            page.set_viewport_size({"width": 1440, "height": 900})
            page.click("#start-send")
            page.wait_for_url(re.compile(r"/conversations/\d+$"), timeout=TIMEOUT)
            expect(page.locator(".message.direction-out")).to_contain_text(
                "Hi Sheena, a reminder of your appointment on 4 May.", timeout=TIMEOUT)
            assert send_due(mainland, store).sent == 1
            [sent] = whatsapp.sent
            assert (sent["to"], sent["template"], sent["language"], sent["parameters"]) == (
                "16505551234", "appointment_reminder", "en_US", ["Sheena", "4 May"])

            # The same page in Dutch, on a laptop and a phone.
            dutch = browser.new_context(viewport={"width": 1440, "height": 900}, locale="nl").new_page()
            sign_in(dutch, live_app, "anke@example.org", target)
            dutch.locator("#template-whatsapp").select_option("order_update|nl")
            dutch.locator("#param-whatsapp-1").fill("A-77")
            expect(dutch.locator("#template-preview-whatsapp")).to_contain_text("A-77")
            violations = run_axe(dutch)
            assert violations == [], describe(violations)
            for name, (width, height) in SIZES.items():
                dutch.set_viewport_size({"width": width, "height": height})
                assert dutch.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"
                dutch.screenshot(path=str(SHOTS / f"new-conversation-template-{name}-nl.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()


def test_the_composer_sends_a_template_when_the_window_is_closed(live_app, setup, whatsapp, frozen_clock):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    mainland, store, _customer = setup
    whatsapp.customer_text("16505551234", "Where is my order?", name="Sheena Nelson")
    connector = mainland.connector("whatsapp")
    for request in whatsapp.take_requests():
        mainland.ingestor(store).ingest("whatsapp", connector.parse_webhook(request))
    [row] = store.recent_conversations()
    frozen_clock.advance(dt.timedelta(hours=30))
    target = f"/conversations/{row['id']}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            for language, who in (("nl", "anke@example.org"), ("en", "ann@example.org")):
                page = browser.new_context(viewport={"width": 1440, "height": 900}, locale=language).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                sign_in(page, live_app, who, target)
                expect(page.locator("#window-closed")).to_be_visible()
                form = page.locator("#template-form")
                expect(form).to_be_visible()
                page.click("#tab-note")
                expect(form).to_be_hidden()  # the template belongs to the Reply tab
                page.click("#tab-reply")
                page.locator("#template-whatsapp").select_option("order_update|en_US")
                page.locator("#param-whatsapp-1").fill("A-1234")
                expect(page.locator("#template-preview-whatsapp")).to_have_text(
                    "Your order A-1234 has shipped. Questions? Just reply here.")
                violations = run_axe(page)
                assert violations == [], describe(violations)
                for name, (width, height) in SIZES.items():
                    page.set_viewport_size({"width": width, "height": height})
                    form.scroll_into_view_if_needed()
                    page.screenshot(path=str(SHOTS / f"composer-template-{name}-{language}.png"))
                assert errors == []
            page.set_viewport_size({"width": 1440, "height": 900})
            page.click("#send-template")
            expect(page.locator(".message.direction-out")).to_contain_text(
                "Your order A-1234 has shipped.", timeout=TIMEOUT)
            assert send_due(mainland, store).sent == 1
            assert whatsapp.sent[0]["template"] == "order_update" and whatsapp.sent[0]["parameters"] == ["A-1234"]
        finally:
            browser.close()


def test_a_conversation_to_a_new_email_address_from_the_top_bar(live_app, setup):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    mainland, store, _customer = setup
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            for language, who in (("nl", "anke@example.org"), ("en", "ann@example.org")):
                page = browser.new_context(viewport={"width": 1440, "height": 900}, locale=language).new_page()
                sign_in(page, live_app, who, "/customers")
                page.locator(".whoami .menu summary").click()
                page.locator("a[href='/conversations/new']").click()
                page.wait_for_url(f"{live_app}/conversations/new")
                expect(page.locator("#free-text")).to_be_visible()
                violations = run_axe(page)
                assert violations == [], describe(violations)
                for name, (width, height) in SIZES.items():
                    page.set_viewport_size({"width": width, "height": height})
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"
                    page.screenshot(path=str(SHOTS / f"new-conversation-email-{name}-{language}.png"), full_page=True)
            # Keyboard only: address, name, subject, message, Send.
            page.set_viewport_size({"width": 1440, "height": 900})
            page.locator("#start-address").focus()
            page.keyboard.type("new.person@example.net")
            for value in ("New Person", "Welcome", "Hello and welcome."):
                page.keyboard.press("Tab")
                page.keyboard.type(value)
            page.keyboard.press("Tab")
            expect(page.locator("#start-send")).to_be_focused()
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r"/conversations/\d+$"), timeout=TIMEOUT)
            expect(page.locator(".message.direction-out")).to_contain_text("Hello and welcome.")
            customer_id = store.identity_owner("email", "new.person@example.net")
            assert store.customer_record(customer_id)["display_name"] == "New Person"
        finally:
            browser.close()
