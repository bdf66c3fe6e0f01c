"""The satisfaction question in the chat widget, in Chromium (#18): the scores are buttons under the
team's question, reachable by keyboard and named for a screen reader; pressing one answers the survey.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inbox import csat
from inbox.outbox import queue_reply, send_due
from inbox.store.base import iso
from tests.axe import describe, run_axe
from tests.test_browser_chat import (
    HostSite,
    host_site,  # noqa: F401 - fixture
)
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 - fixture
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000


@pytest.fixture
def app_config(app_config, host_site: HostSite):  # noqa: F811
    app_config["channels"] = {"site": {"kind": "chat", "title": "Example shop", "color": "#7a2e8e",
                                       "allowed_origins": [host_site.origin]}}
    app_config["service_levels"] = {"csat": {"delay": "10m", "expires": "7d"}}
    return app_config


def test_the_visitor_answers_the_satisfaction_question_with_one_key_press(app, live_app, host_site,  # noqa: F811
                                                                         frozen_clock):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    host_site.app_url = live_app
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for width, height in ((1440, 900), (390, 844)):
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.goto(host_site.origin + "/")
                page.get_by_role("button", name="Chat with us").click()
                page.get_by_label("Your message").fill(f"Where is my parcel? ({width})")
                page.keyboard.press("Enter")
                log = page.get_by_role("log")
                expect(log).to_contain_text("Delivered", timeout=TIMEOUT)
                [conversation] = [c for c in store.recent_conversations() if f"({width})" in c["first_text"]]
                queue_reply(mainland, store, conversation["id"], "It is on its way.", agent=agent)
                frozen_clock.advance(minutes=1)
                assert send_due(mainland, store).sent == 1
                with store.write():
                    store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                                  (iso(frozen_clock.now()), conversation["id"]))
                frozen_clock.advance(minutes=15)
                assert csat.send_due_surveys(mainland, store).asked == 1
                frozen_clock.advance(minutes=1)
                assert send_due(mainland, store).sent == 1

                scores = page.get_by_role("group", name="Your rating, from 1 (bad) to 5 (very good)")
                expect(scores).to_be_visible(timeout=TIMEOUT)
                expect(scores.get_by_role("button")).to_have_count(5)
                violations = run_axe(page)
                assert violations == [], describe(violations)
                if os.environ.get("MAINLAND_SCREENSHOTS"):
                    page.screenshot(path=str(Path(os.environ["MAINLAND_SCREENSHOTS"]) / f"chat-survey-{width}.png"))
                scores.get_by_role("button", name="Rate 4 of 5").focus()
                page.keyboard.press("Enter")
                expect(scores).to_have_count(0, timeout=TIMEOUT)  # answered: the buttons go
                mine = log.locator(".m.v").last
                expect(mine).to_contain_text("4")
                expect(mine).to_contain_text("Delivered", timeout=TIMEOUT)
                survey = store.survey_for_conversation(conversation["id"])
                assert (survey["state"], survey["score"]) == ("answered", 4)
                assert errors == []
        finally:
            browser.close()
            store.close()
