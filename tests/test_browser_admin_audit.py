"""The audit log and quarantine pages in Chromium (issue 13): at 1440x900 and 390x844, English and Dutch,
no serious axe violations, nothing wider than the screen, the filters usable from the keyboard.

Set MAINLAND_SCREENSHOTS=<folder> to keep a screenshot of each page and size.
"""

from __future__ import annotations

import pytest

from tests.axe import describe, run_axe
from tests.browser_helpers import keep_screenshot, new_page, sign_in
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

SIZES = {"wide": (1440, 900), "phone": (390, 844)}
RAW = b"From: <broken\r\nSubject: a long subject line that goes on " + b"and on " * 40 + b"\r\n\r\n<b>not bold</b>\r\n"


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    return app_config


def _installation(app) -> int:
    store = app.extensions["mainland"].open_store()
    admin = make_agent(store, "ada@example.org", name="Ada Admin", role="admin")
    actor = f"agent:{admin['id']}"
    with store.write():
        for i in range(60):
            store.audit(f"2026-03-05T10:{i:02d}:00.000000Z", actor, ("login", "customer_viewed", "agent_role_changed")[i % 3],
                        ("agent", "customer", "agent")[i % 3], i, ip="127.0.0.1", before="agent", after="lead")
        item = store.quarantine_put("chat", RAW, "message has no sender: the update carried no 'from' object",
                                    source_ref="update 4711", exception="ItemError", now="2026-03-05T10:00:00.000000Z")
    store.close()
    return item


@pytest.mark.parametrize("language", ["en", "nl"])
@pytest.mark.parametrize("size", list(SIZES))
def test_audit_and_quarantine_pages_fit_and_pass_axe(app, live_app, browser, language, size):
    item = _installation(app)
    width, height = SIZES[size]
    page = new_page(browser, width=width, height=height, language=language)
    sign_in(page, live_app, "ada@example.org")
    for name, path in (("audit", "/admin/audit"), ("quarantine", "/admin/quarantine"),
                       ("quarantine-item", f"/admin/quarantine/{item}")):
        page.goto(live_app + path)
        assert page.locator("h1").is_visible()
        found = run_axe(page)
        assert found == [], f"{path}: {describe(found)}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} is wider than the screen"
        keep_screenshot(page, f"{name}-{size}-{language}")
    # The filters work from the keyboard: choose an action, press Enter in the form.
    page.goto(live_app + "/admin/audit")
    page.focus("#audit-action")
    page.select_option("#audit-action", "customer_viewed")
    page.focus("#audit-object-id")
    page.keyboard.press("Enter")
    page.wait_for_url("**action=customer_viewed**")
    assert page.locator("tbody tr").count() == 20
