"""The API tokens page in a real Chromium: make a token with the keyboard, copy it, use it, see it used,
revoke it; in English and Dutch, at 1440x900 and 390x844, with no serious accessibility faults (axe-core).

Screenshots go to test-artifacts/screenshots/tokens-*.png (ignored by git).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.axe import describe, run_axe
from tests.browser_helpers import DESKTOP, PHONE, screenshots_at_both_sizes
from tests.browser_helpers import sign_in as sign_in_through_the_form
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

CONFIG_TOKEN = "config-file-token-for-the-browser-0123"


@pytest.fixture
def app_config(app_config):
    app_config["api_tokens"] = [CONFIG_TOKEN]
    return app_config


@pytest.fixture
def admin(app):
    store = app.extensions["mainland"].open_store()
    make_agent(store, "adam@example.org", name="Adam Admin", role="admin")
    store.close()


def sign_in(browser, base: str, *, viewport=DESKTOP, locale: str = "en-GB"):
    context = browser.new_context(viewport=viewport, locale=locale)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    sign_in_through_the_form(page, base, "adam@example.org", target="/admin/tokens")
    return page


def shoot(page, name: str) -> None:
    screenshots_at_both_sizes(page, f"tokens-{name}", must_fit=True)


def call_api(base: str, token: str) -> int:
    request = urllib.request.Request(f"{base}/api/customers", method="POST",
                                     data=json.dumps({"crm_ref": "B1", "emails": ["b1@example.com"]}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def no_faults(page, where: str) -> None:
    violations = run_axe(page)
    assert violations == [], f"{where}:\n{describe(violations)}"


def test_make_copy_use_and_revoke_a_token_with_the_keyboard(live_app, admin, browser):  # noqa: F811
    page = sign_in(browser, live_app)
    assert page.get_by_text("set in the config file", exact=True).is_visible()
    assert CONFIG_TOKEN not in page.content()
    no_faults(page, "the empty list")
    shoot(page, "list-empty")

    # The form by keyboard alone: every field reached by its label, the scopes ticked with the space bar.
    page.get_by_label("Name").focus()
    page.keyboard.type("CRM sync")
    for scope in ("customers:read", "customers:write"):
        page.get_by_label(scope, exact=False).focus()
        page.keyboard.press("Space")
    page.get_by_label("Expires after").select_option("30")
    page.get_by_role("button", name="Create token").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_app}/admin/tokens")

    field = page.get_by_label('Token "CRM sync"')
    token = field.input_value()
    assert token.startswith("ml_") and len(token) == 46
    assert page.get_by_role("alert").is_visible(), "the warning that it is shown once"
    copy = page.get_by_role("button", name="Copy token")
    copy.focus()
    page.keyboard.press("Enter")
    page.get_by_text("Copied", exact=True).wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    no_faults(page, "the new token")
    shoot(page, "created")

    assert call_api(live_app, token) == 201
    page.goto(f"{live_app}/admin/tokens")
    row = page.locator("tr", has_text="CRM sync")
    assert token not in page.content() and f"{token[:9]}…" in row.inner_text()
    assert "never" not in row.locator("td.time").nth(1).inner_text(), "last used is shown"
    no_faults(page, "the list")
    shoot(page, "list")

    # Revoke: the confirmation opens with Enter on its summary, then the button.
    row.get_by_text("Revoke…").focus()
    page.keyboard.press("Enter")
    assert row.get_by_role("button", name="Revoke token").is_visible()
    no_faults(page, "the revoke confirmation")
    row.get_by_role("button", name="Revoke token").focus()
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="is revoked").wait_for()
    assert "revoked" in page.locator("tr", has_text="CRM sync").inner_text()
    assert call_api(live_app, token) == 401
    shoot(page, "revoked")
    assert page.errors == []


def test_the_page_in_dutch_on_a_phone(live_app, admin, browser):  # noqa: F811
    page = sign_in(browser, live_app, viewport=PHONE, locale="nl-NL")
    assert page.locator("html").get_attribute("lang") == "nl"
    page.locator("#token-name").fill("Uptimebewaking")
    page.locator("input[value='health:read']").check()
    page.locator("#new-token button[type=submit]").click()
    page.wait_for_url(f"{live_app}/admin/tokens")
    assert page.locator("#new-token-value").input_value().startswith("ml_")
    no_faults(page, "the new token in Dutch")
    shoot(page, "created-nl")
    page.goto(f"{live_app}/admin/tokens")
    no_faults(page, "the list in Dutch")
    # Each token reads as a block: every fact inside the 390 px window (no scrolling sideways inside
    # the table), under its column's name.
    row = page.locator("tr", has_text="Uptimebewaking")
    for cell in row.locator("td").all():
        if cell.is_visible():
            box = cell.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], cell.inner_text()
    made = row.locator("td.time").first
    assert made.evaluate("td => getComputedStyle(td, '::before').content").startswith('"Gemaakt')
    shoot(page, "list-nl")
    assert page.errors == []
