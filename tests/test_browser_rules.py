"""Automation rules in Chromium (issue 15): an admin creates a rule in the form, a new message arrives,
and the rule's firing shows in the conversation's timeline; the rules pages fit 1440x900 and 390x844
with no serious axe violations. Set MAINLAND_SCREENSHOTS=<folder> to keep a screenshot of each page.
"""

from __future__ import annotations

import itertools

import pytest

from inbox.models import Author, FetchResult, InboundItem
from tests.axe import describe, run_axe
from tests.browser_helpers import keep_screenshot, new_page, sign_in
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

SIZES = {"wide": (1440, 900), "phone": (390, 844)}
_IDS = itertools.count(1)


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    return app_config


def _message(app, text: str) -> int:
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    try:
        n = next(_IDS)
        item = InboundItem(channel="chat", external_id=f"browser-{n}", author=Author(f"ron-{n}", "Ron Refund"),
                           text=text, thread_key=f"ron-{n}")
        report = mainland.ingestor(store).ingest("chat", FetchResult(items=[item], cursor=None), save_cursor=False)
        return report.new_conversations[0]
    finally:
        store.close()


def _admin(app) -> None:
    store = app.extensions["mainland"].open_store()
    make_agent(store, "ada@example.org", name="Ada Admin", role="admin")
    store.close()


def _create_rule(page, base: str) -> None:
    page.goto(base + "/admin/rules")
    page.click("text=New rule")
    page.fill("#rule-name", "Refund requests")
    page.select_option("#rule-trigger", "message_received")
    page.select_option("#condition-type-0", "text_contains")
    page.fill("#condition-value-0", "refund")
    page.select_option("#action-type-0", "add_label")
    page.fill("#action-value-0", "refund")
    page.select_option("#action-type-1", "set_priority")
    page.select_option("#action-choice-1", "priority:4")
    page.click("text=Save rule")
    assert page.locator(".flash-success").inner_text() == "Rule saved."


def test_an_admin_creates_a_rule_and_sees_it_fire_on_a_new_message(app, live_app, browser):
    _admin(app)
    page = new_page(browser, language="en")
    sign_in(page, live_app, "ada@example.org")
    _create_rule(page, live_app)
    cid = _message(app, "I would like a refund for my order")
    page.goto(f"{live_app}/conversations/{cid}")
    note = page.locator(".message.direction-note", has_text="Refund requests")
    assert "fired: added the label refund; set the priority to Urgent." in note.inner_text()
    page.goto(live_app + "/admin/rules")
    row = page.locator("tr", has_text="Refund requests")
    assert row.locator("time").count() == 1, "last fired is shown"


@pytest.mark.parametrize("size", list(SIZES))
def test_the_rules_pages_fit_and_pass_axe(app, live_app, browser, size):
    _admin(app)
    width, height = SIZES[size]
    page = new_page(browser, width=width, height=height, language="en")
    sign_in(page, live_app, "ada@example.org")
    _create_rule(page, live_app)
    edit_url = page.url
    cid = _message(app, "refund please")
    pages = {"list": "/admin/rules", "form": edit_url.removeprefix(live_app),
             "dry-run": edit_url.removeprefix(live_app) + "/dry-run",
             "timeline": f"/conversations/{cid}"}
    for name, path in pages.items():
        page.goto(live_app + path)
        found = run_axe(page)
        assert found == [], f"{path}: {describe(found)}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} is wider than the screen"
        keep_screenshot(page, f"rules-{name}-{size}")
    page.goto(live_app + "/admin/rules/new")
    page.fill("#rule-name", "Bad pattern")
    page.select_option("#condition-type-0", "text_matches")
    page.fill("#condition-value-0", "(a+)+$")
    page.select_option("#action-type-0", "add_label")
    page.fill("#action-value-0", "x")
    page.click("text=Save rule")
    assert "can take forever" in page.locator(".field-error").inner_text()
    assert run_axe(page) == []
    keep_screenshot(page, f"rules-refused-{size}")
