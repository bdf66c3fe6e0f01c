"""In Chromium (issue 13): reset a password through the test SMTP server, set up two-step sign-in and
sign in with a code and with a recovery code, remember the browser at the code step and forget it
again; every page without axe violations, at desktop and phone
sizes, usable from the keyboard. Screenshots go to $MAINLAND_SCREENSHOTS when it is set."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import re
from pathlib import Path

import pyotp
import pytest

from tests.axe import describe, run_axe
from tests.test_browser_smoke import _require_chromium, live_app  # noqa: F401
from tests.test_web_auth import PASSWORD, make_agent

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture
def app(app_config, smtp_server):
    from inbox import create_app

    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none"},
    }
    # The code step offers "Remember this device" (off by default): its box is part of the checked page.
    app_config["web"] = {**app_config["web"], "remember_device_days": 30}
    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield chromium
        chromium.close()


def check(page, name: str) -> None:
    """No axe violations; a screenshot when asked for."""
    violations = run_axe(page)
    assert violations == [], f"{name}:\n{describe(violations)}"
    folder = os.environ.get("MAINLAND_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("size", SIZES)
def test_reset_a_password_through_the_mail(app, live_app, browser, smtp_server, size):  # noqa: F811
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    store.close()
    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{live_app}/login")
    page.get_by_role("link", name="Forgot your password?").click()
    check(page, f"forgot-{size}")
    page.get_by_label("Email address").fill("ann@example.org")
    page.keyboard.press("Enter")
    page.get_by_text("If that address has an account, a link is on its way.").wait_for()
    check(page, f"forgot-sent-{size}")

    [raw] = smtp_server.wait_for(1)
    mail = email.message_from_bytes(raw.content, policy=email.policy.default)
    path = re.search(r"(/password/reset/[A-Za-z0-9_-]+)", mail.get_content()).group(1)
    page.goto(live_app + path)
    check(page, f"reset-{size}")
    page.get_by_label("New password", exact=True).fill("a new browser passphrase")
    page.get_by_label("New password again").fill("a new browser passphrase")
    page.get_by_role("button", name="Set new password").click()
    page.get_by_text("Your password is changed").wait_for()
    page.get_by_label("Email address").fill("ann@example.org")
    page.get_by_label("Password").fill("a new browser passphrase")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_app}/")
    page.goto(live_app + path)
    assert page.get_by_role("heading", name="This link does not work").is_visible()
    check(page, f"reset-gone-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_two_step_sign_in_with_a_code_and_a_recovery_code(app, live_app, browser, frozen_clock, size):  # noqa: F811
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    store.close()
    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})

    def sign_in_with_password():
        page.goto(f"{live_app}/login")
        page.get_by_label("Email address").fill("ann@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")

    sign_in_with_password()
    page.goto(f"{live_app}/settings")
    page.get_by_role("link", name="Sign-in security").click()
    check(page, f"security-off-{size}")
    page.get_by_role("button", name="Set up two-step sign-in").click()
    assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
    check(page, f"security-qr-{size}")
    secret = page.locator(".totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).at(frozen_clock.now()))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    codes = page.locator(".recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    check(page, f"security-codes-{size}")

    page.context.clear_cookies()
    frozen_clock.advance(dt.timedelta(seconds=60))  # past the set-up code's step
    sign_in_with_password()
    page.wait_for_url(re.compile(r".*/login/code.*"))
    check(page, f"code-step-{size}")
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).at(frozen_clock.now()))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_url(f"{live_app}/")

    page.context.clear_cookies()
    sign_in_with_password()
    page.wait_for_url(re.compile(r".*/login/code.*"))
    page.get_by_label("Code", exact=True).fill(codes[0])
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_url(f"{live_app}/")
    assert page.get_by_text("You used a recovery code. 9 are left").is_visible()
    page.goto(f"{live_app}/account/security")
    check(page, f"security-on-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_remember_this_device_skips_the_code_until_forgotten(app, live_app, browser, frozen_clock, size):  # noqa: F811
    store = app.extensions["mainland"].open_store()
    agent = make_agent(store)
    secret = pyotp.random_base32()
    store.confirm_totp(agent["id"], secret, 0, [])
    store.close()
    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})

    def sign_in_with_password():
        page.goto(f"{live_app}/login")
        page.get_by_label("Email address").fill("ann@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")

    def sign_out():
        page.locator(".whoami summary").click()
        with page.expect_navigation():
            page.get_by_role("button", name="Sign out", exact=True).click()

    sign_in_with_password()
    page.wait_for_url(re.compile(r".*/login/code.*"))
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).at(frozen_clock.now()))
    page.get_by_label("Remember this device for 30 days").check()
    check(page, f"code-step-remember-{size}")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_app}/")

    sign_out()
    sign_in_with_password()
    page.wait_for_url(f"{live_app}/")  # no code asked on this browser

    page.goto(f"{live_app}/account/security")
    devices = page.locator(".remembered-devices li")
    assert devices.count() == 1 and "Chromium on Linux" in devices.inner_text()
    assert "this browser" in devices.inner_text()
    check(page, f"security-devices-{size}")
    with page.expect_navigation():
        page.get_by_role("button", name="Forget Chromium on Linux").click()
    page.get_by_text("No device is remembered").wait_for()

    sign_out()
    sign_in_with_password()
    page.wait_for_url(re.compile(r".*/login/code.*"))
