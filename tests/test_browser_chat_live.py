"""The website chat live in Chromium (#18): a visitor on a customer's site and a signed-in agent, two
contexts, both there at once.

The visitor's message shows Delivered, then Read once the agent opens the conversation; the visitor
types and the agent's page says so; the agent types and the widget says so with their first name; the
agent's reply reaches the open widget through its waiting long poll (never a 3-second poll); the
widget shows it and the agent sees it Read. Every wait is for an element, never a sleep. No worker
runs: the test sends the due replies itself (`send_due`), as the worker would.

With MAINLAND_SHOTS=<dir> the test also saves screenshots of the widget and the agent's page with
the typing lines (1440x900 and 390x844).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inbox.outbox import queue_reply, send_due
from tests.axe import describe, run_axe
from tests.test_browser_chat import app_config, host_site  # noqa: F401 - fixtures
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 - fixture
from tests.test_web_auth import PASSWORD, make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
SHOTS = os.environ.get("MAINLAND_SHOTS")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_typing_both_ways_read_markers_and_a_reply_through_the_long_poll(
        app, live_app, host_site):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    # Agents' streams look every 0.2 s; a held long poll looks for the worker's sends as often.
    app.config.update(LIVE_POLL_SECONDS=0.2, CHAT_CHECK_SECONDS=0.2)
    host_site.app_url = live_app
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, name="Ann Agent")
    errors: list[str] = []
    asked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            width, height = (390, 844) if os.environ.get("MAINLAND_SHOTS_NARROW") else (1440, 900)
            visitor = browser.new_context(viewport={"width": width, "height": height}).new_page()
            visitor.on("pageerror", lambda exc: errors.append(str(exc)))
            visitor.on("request", lambda r: asked.append(r.url) if r.method == "GET" and "/messages" in r.url
                       else None)
            agent = browser.new_context(viewport={"width": width, "height": height}).new_page()
            agent.on("pageerror", lambda exc: errors.append(str(exc)))

            visitor.goto(host_site.origin + "/")
            visitor.get_by_role("button", name="Chat with us").click()
            box = visitor.get_by_label("Your message")
            box.fill("Hello, is anyone there?")
            visitor.keyboard.press("Enter")
            log = visitor.get_by_role("log")
            mine = log.locator(".m.v").last
            expect(mine).to_contain_text("Delivered", timeout=TIMEOUT)
            asked.clear()  # the chat is open: from now on only long polls

            # The agent opens the conversation: the visitor's message is read.
            [conversation] = store.recent_conversations()
            agent.goto(f"{live_app}/login")
            agent.fill("#email", "ann@example.org")
            agent.fill("#password", PASSWORD)
            agent.click("button[type=submit]")
            agent.wait_for_url(f"{live_app}/")
            agent.goto(f"{live_app}/conversations/{conversation['id']}")
            agent.wait_for_function("() => window.Live && Live.lastEventId() !== null", timeout=TIMEOUT)
            expect(mine).to_contain_text("Read", timeout=TIMEOUT)

            # The visitor types: the agent's page says so.
            box.press_sequentially("Also, do you ship")
            customer_typing = agent.locator("#customer-typing")
            expect(customer_typing).to_have_text("Website visitor " + conversation["customer_name"][-6:]
                                                 + " is typing…", timeout=TIMEOUT)
            shot(agent, f"agent-customer-typing-{width}")
            violations = run_axe(agent)
            assert violations == [], describe(violations)
            box.blur()  # the visitor leaves the box: stopped
            expect(customer_typing).to_be_hidden(timeout=TIMEOUT)

            # The agent types: the widget says so, with the agent's first name.
            agent.locator("#reply-text").press_sequentially("Yes, we ship")
            expect(log).to_contain_text("Ann is typing…", timeout=TIMEOUT)
            shot(visitor, f"widget-agent-typing-{width}")
            violations = run_axe(visitor)
            assert violations == [], describe(violations)

            # The agent answers; the open widget's waiting long poll brings it (no 3-second tick).
            agent.locator("#reply-text").fill("Yes, we ship to Belgium too.")
            agent.click("#send-reply-open")
            reply = agent.locator(".message.direction-out").last
            expect(reply.locator(".delivery-status")).to_have_text("Queued", timeout=TIMEOUT)
            assert send_due(mainland, store).sent == 1
            expect(log).to_contain_text("Yes, we ship to Belgium too.", timeout=TIMEOUT)
            expect(log).not_to_contain_text("is typing…", timeout=TIMEOUT)
            assert asked and all(url.endswith("/messages?wait=25") for url in asked), asked

            # The open window on a visible tab showed it: the agent sees it read, live.
            expect(reply.locator(".delivery-status")).to_have_text("Read", timeout=TIMEOUT)
            shot(visitor, f"widget-read-{width}")
            assert errors == []
        finally:
            browser.close()
            store.close()


def test_with_no_wait_to_spare_the_widget_polls_with_a_back_off_and_still_gets_the_reply(
        app, live_app, host_site):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    app.config.update(CHAT_WAITS=0)  # every long poll is answered at once with "busy"
    host_site.app_url = live_app
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    asked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            visitor = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            visitor.on("request", lambda r: asked.append(r.url) if r.method == "GET" and "/messages" in r.url
                       else None)
            visitor.goto(host_site.origin + "/")
            visitor.get_by_role("button", name="Chat with us").click()
            visitor.get_by_label("Your message").fill("Is the shop open on Sunday?")
            visitor.keyboard.press("Enter")
            log = visitor.get_by_role("log")
            expect(log.locator(".m.v").last).to_contain_text("Delivered", timeout=TIMEOUT)
            [conversation] = store.recent_conversations()
            queue_reply(mainland, store, conversation["id"], "No, Monday to Saturday.")
            assert send_due(mainland, store).sent == 1
            expect(log).to_contain_text("No, Monday to Saturday.", timeout=TIMEOUT)
            # Asked again after 3 s, then 6 s...: a handful of requests, not one after another.
            assert len(asked) < 8, asked
        finally:
            browser.close()
            store.close()
