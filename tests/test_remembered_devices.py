""""Remember this device" at the sign-in code step (issue 13): off by default; when on, ticking the box
sets a long-lived cookie whose token skips the code step after the password on that browser, until it
expires or anything that must end it happens (one test per stop condition); the security page lists
the devices, to forget one or all; everything is audited.

Codes come from pyotp at the frozen clock (tests/conftest.py), never from the real time.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pyotp
import pytest

from tests.test_second_factor import STEP, enrol, enter_code, post_security
from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent, signed_in

CHROMIUM_ON_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/120.0.0.0 Safari/537.36")
FIREFOX_ON_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_ON_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                    "Version/17.1 Mobile/15E148 Safari/604.1")
COOKIE = "mainland_device"


def make_app(app_config, **web):
    from inbox import create_app

    app_config["web"] = {**app_config["web"], **web}
    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def app(app_config):
    return make_app(app_config, remember_device_days=30)


@pytest.fixture
def store(app):
    store = app.extensions["mainland"].open_store()
    yield store
    store.close()


@pytest.fixture
def enrolled(app, store, frozen_clock):
    """Ann, with two-step sign-in on; returns (agent, secret, recovery codes)."""
    agent = make_agent(store)
    client = app.test_client()
    login(client)
    secret, codes = enrol(client, frozen_clock)
    frozen_clock.advance(STEP * 3)
    return agent, secret, codes


def code_now(secret, clock) -> str:
    # Each use takes the next step, so that the same code is never asked twice.
    clock.advance(STEP)
    return pyotp.TOTP(secret).at(clock.now())


def sign_in_remembering(app, secret, clock, *, user_agent=CHROMIUM_ON_LINUX):
    """A new browser that signs in with password and code, ticking "Remember this device"."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    assert login(client).headers["Location"].startswith("/login/code")
    response = client.post("/login/code", data={"code": code_now(secret, clock), "remember": "1",
                                                "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302 and signed_in(client)
    return client, response


def sign_in_again(client):
    """Sign out (if still signed in), then type the password again in the same browser: where does it lead?"""
    if signed_in(client):
        client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    assert not signed_in(client)
    return login(client).headers["Location"]


def audit_actions(store, agent_id) -> list[tuple[str, dict]]:
    rows = store.conn.execute("SELECT action, details FROM audit_log WHERE object_id = ? ORDER BY id",
                              (str(agent_id),)).fetchall()
    return [(action, json.loads(details) if details else {}) for action, details in rows]


# Off by default, and the setting -------------------------------------------------------------

def test_off_by_default_no_box_and_no_cookie(app_config, frozen_clock):
    plain = make_app(app_config)
    store = plain.extensions["mainland"].open_store()
    try:
        make_agent(store)
        client = plain.test_client()
        login(client)
        secret, _codes = enrol(client, frozen_clock)
        frozen_clock.advance(STEP * 3)
        other = plain.test_client()
        login(other)
        assert "Remember this device" not in other.get("/login/code").get_data(as_text=True)
        response = other.post("/login/code", data={"code": code_now(secret, frozen_clock), "remember": "1",
                                                   "csrf_token": csrf_token(other, "/login")})
        assert response.status_code == 302 and COOKIE not in response.headers.get("Set-Cookie", "")
        assert sign_in_again(other).startswith("/login/code")
        assert store.conn.execute("SELECT count(*) FROM remembered_devices").fetchone()[0] == 0
    finally:
        store.close()


@pytest.mark.parametrize("days", [-1, 91, 1.5, "30", True])
def test_the_setting_is_a_whole_number_of_days_up_to_90(tmp_path, days):
    from inbox.config import ConfigError, from_mapping

    with pytest.raises(ConfigError, match="web.remember_device_days"):
        from_mapping({"secret_key": "x", "web": {"remember_device_days": days}}, base=tmp_path)


@pytest.mark.parametrize("days", [0, 1, 90])
def test_the_setting_takes_0_to_90(tmp_path, days):
    from inbox.config import from_mapping

    assert from_mapping({"secret_key": "x", "web": {"remember_device_days": days}}, base=tmp_path)


# Remembering and skipping ---------------------------------------------------------------------

def test_the_code_step_offers_the_box_with_the_days(app, enrolled):
    client = app.test_client()
    login(client)
    assert "Remember this device for 30 days" in client.get("/login/code").get_data(as_text=True)


def test_without_ticking_the_box_the_next_sign_in_asks_for_the_code(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client = app.test_client()
    login(client)
    response = enter_code(client, code_now(secret, frozen_clock))
    assert response.status_code == 302 and COOKIE not in response.headers.get("Set-Cookie", "")
    assert sign_in_again(client).startswith("/login/code")


def test_ticking_the_box_skips_the_code_next_time_on_that_browser_only(app, store, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    client, response = sign_in_remembering(app, secret, frozen_clock)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Max-Age=2592000" in cookie, "30 days"
    assert "Secure" not in cookie  # not configured in tests
    token = client.get_cookie(COOKIE).value
    assert not store.conn.execute("SELECT 1 FROM remembered_devices WHERE token_hash = ?", (token,)).fetchone(), \
        "only the token's hash is stored"

    assert sign_in_again(client) == "/", "the password alone signs in on this browser"
    assert signed_in(client)
    elsewhere = app.test_client()
    assert login(elsewhere).headers["Location"].startswith("/login/code"), "another browser still needs the code"
    assert login(app.test_client(), password="wrong password").status_code == 401, "the password is still needed"

    actions = audit_actions(store, agent["id"])
    assert ("device_remembered", {"ip": "127.0.0.1", "label": "Chrome on Linux", "days": 30}) in actions
    assert actions[-1][0] == "login" and actions[-1][1]["via"] == "remembered_device"


def test_the_token_is_only_for_the_agent_it_was_made_for(app, store, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    make_agent(store, email="bob@example.org", name="Bob")
    bob = app.test_client()
    login(bob, email="bob@example.org")
    bob_secret, _ = enrol(bob, frozen_clock)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    assert login(client, email="bob@example.org").headers["Location"].startswith("/login/code")


def test_a_copied_cookie_value_that_was_never_issued_does_nothing(app, enrolled):
    client = app.test_client()
    client.set_cookie(COOKIE, "made-up-token")
    assert login(client).headers["Location"].startswith("/login/code")


def test_the_cookie_is_secure_with_the_host_prefix_when_the_session_cookie_is(app_config, frozen_clock):
    secure = make_app({**app_config, "session_cookie_secure": True, "base_url": "https://inbox.example.org"},
                      remember_device_days=7)
    store = secure.extensions["mainland"].open_store()
    try:
        make_agent(store)
        # The browser talks HTTPS to the proxy in front: the test client does so directly.
        client = secure.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        login(client)
        secret, _codes = enrol(client, frozen_clock)
        frozen_clock.advance(STEP * 3)
        other = secure.test_client()
        other.environ_base["wsgi.url_scheme"] = "https"
        login(other)
        response = other.post("/login/code", data={"code": code_now(secret, frozen_clock), "remember": "1",
                                                   "csrf_token": csrf_token(other, "/login")})
        cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-device="))
        assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
        assert "Max-Age=604800" in cookie
    finally:
        store.close()


# Each thing that ends it ----------------------------------------------------------------------

def test_stops_when_it_expires(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    frozen_clock.advance(dt.timedelta(days=29))
    assert sign_in_again(client) == "/", "still within the 30 days"
    frozen_clock.advance(dt.timedelta(days=1, minutes=1))
    assert sign_in_again(client).startswith("/login/code")


def test_stops_when_the_setting_is_turned_off(app_config, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    app_on = make_app(dict(app_config), remember_device_days=30)
    client, _response = sign_in_remembering(app_on, secret, frozen_clock)
    token = client.get_cookie(COOKIE).value
    app_off = make_app(dict(app_config), remember_device_days=0)
    browser = app_off.test_client()
    browser.set_cookie(COOKIE, token)
    assert login(browser).headers["Location"].startswith("/login/code")


def test_stops_when_the_agent_changes_the_password(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    changed = client.post("/settings", data={
        "action": "password", "current_password": PASSWORD, "new_password": "a brand new passphrase",
        "repeat_password": "a brand new passphrase", "csrf_token": csrf_token(client, "/settings")})
    assert changed.status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    assert login(client, password="a brand new passphrase").headers["Location"].startswith("/login/code")


def test_stops_when_the_password_is_reset_by_mail(app, store, enrolled, frozen_clock):
    from inbox.web.admin import token_hash

    agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    store.create_password_reset(agent["id"], token_hash("reset-token-0123456789"),
                                expires_at="2999-01-01T00:00:00.000000Z")
    path = "/password/reset/reset-token-0123456789"
    mail_reader = app.test_client()
    done = mail_reader.post(path, data={"password": "a brand new passphrase", "repeat_password": "a brand new passphrase",
                                        "csrf_token": csrf_token(mail_reader, path)})
    assert done.status_code == 302
    assert login(client, password="a brand new passphrase").headers["Location"].startswith("/login/code")


def test_stops_when_the_password_is_set_on_the_command_line_but_not_when_it_is_rehashed(app, store, enrolled,
                                                                                       frozen_clock):
    from inbox.web.auth import hash_password

    agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    # Sign-in upgrades an outdated hash with end_sessions=False: not a new password.
    store.set_agent_password(agent["id"], hash_password(PASSWORD), end_sessions=False)
    assert sign_in_again(client) == "/"
    # What `mainland set-password` does.
    store.set_agent_password(agent["id"], hash_password(PASSWORD), end_sessions=True)
    assert login(client).headers["Location"].startswith("/login/code")


def test_stops_when_the_agent_turns_off_the_second_factor(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    assert post_security(client, action="disable", proof=PASSWORD).status_code == 302
    # Back on with a new key: the device remembered under the old one is not.
    enrol(client, frozen_clock)
    frozen_clock.advance(STEP * 3)
    assert sign_in_again(client).startswith("/login/code")


def test_stops_when_the_agent_re_enrols(app, store, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    # A new set-up replaces the old key (the store call behind "Turn on" after a reset).
    store.confirm_totp(agent["id"], pyotp.random_base32(), 1, [])
    client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    assert login(client).headers["Location"].startswith("/login/code")


def test_stops_when_the_agent_makes_new_recovery_codes(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    assert post_security(client, action="new_codes", proof=PASSWORD).status_code == 200
    assert sign_in_again(client).startswith("/login/code")


def test_stops_when_the_agent_signs_out_everywhere(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    assert post_security(client, action="sign_out_everywhere").status_code == 302
    assert login(client).headers["Location"].startswith("/login/code")


def test_a_plain_sign_out_keeps_it(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    assert sign_in_again(client) == "/"
    assert sign_in_again(client) == "/"


def admin_client(app, store):
    make_agent(store, email="root@example.org", name="Root Admin", role="admin")
    admin = app.test_client()
    login(admin, email="root@example.org")
    return admin


def test_stops_when_an_admin_signs_the_agent_out_everywhere(app, store, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    admin = admin_client(app, store)
    page = f"/admin/agents/{agent['id']}"
    assert admin.post(f"{page}/sessions", data={"csrf_token": csrf_token(admin, page)}).status_code == 302
    assert login(client).headers["Location"].startswith("/login/code")


def test_stops_when_the_agent_is_disabled(app, store, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    store.set_agent_active(agent["id"], False)
    assert login(client).status_code == 401
    store.set_agent_active(agent["id"], True)
    assert login(client).headers["Location"].startswith("/login/code"), "enabled again: the code is asked"


def test_stops_when_an_admin_turns_off_the_second_factor(app, store, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    client, _response = sign_in_remembering(app, secret, frozen_clock)
    admin = admin_client(app, store)
    page = f"/admin/agents/{agent['id']}"
    assert admin.post(f"{page}/second-factor", data={"csrf_token": csrf_token(admin, page)}).status_code == 302
    assert store.conn.execute("SELECT count(*) FROM remembered_devices").fetchone()[0] == 0
    login(client)
    enrol(client, frozen_clock)
    frozen_clock.advance(STEP * 3)
    assert sign_in_again(client).startswith("/login/code")


# The security page ------------------------------------------------------------------------------

def test_the_security_page_lists_devices_and_forgets_one(app, store, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    firefox, _ = sign_in_remembering(app, secret, frozen_clock, user_agent=FIREFOX_ON_WINDOWS)
    iphone, _ = sign_in_remembering(app, secret, frozen_clock, user_agent=SAFARI_ON_IPHONE)
    page = iphone.get("/account/security").get_data(as_text=True)
    assert "Firefox on Windows" in page and "Safari on iOS" in page
    assert re.search(r"Safari on iOS</strong> <span[^>]*>this browser", page)
    device_id = store.conn.execute("SELECT id FROM remembered_devices WHERE label = 'Firefox on Windows'").fetchone()[0]
    done = post_security(iphone, action="forget_device", device_id=str(device_id))
    assert done.status_code == 302
    assert "<strong>Firefox on Windows" not in iphone.get("/account/security").get_data(as_text=True)
    assert sign_in_again(firefox).startswith("/login/code")
    assert sign_in_again(iphone) == "/"
    assert ("device_forgotten", {"ip": "127.0.0.1", "device": device_id, "label": "Firefox on Windows"}) in \
        audit_actions(store, agent["id"])


def test_an_agent_cannot_forget_another_agents_device(app, store, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    sign_in_remembering(app, secret, frozen_clock)
    device_id = store.conn.execute("SELECT id FROM remembered_devices").fetchone()[0]
    make_agent(store, email="bob@example.org", name="Bob")
    bob = app.test_client()
    login(bob, email="bob@example.org")
    assert post_security(bob, action="forget_device", device_id=str(device_id)).status_code == 404
    assert store.conn.execute("SELECT count(*) FROM remembered_devices").fetchone()[0] == 1


def test_forget_all_devices(app, store, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    firefox, _ = sign_in_remembering(app, secret, frozen_clock, user_agent=FIREFOX_ON_WINDOWS)
    chromium, _ = sign_in_remembering(app, secret, frozen_clock)
    done = post_security(chromium, action="forget_devices")
    assert done.status_code == 302
    assert "No device is remembered" in chromium.get("/account/security").get_data(as_text=True)
    assert sign_in_again(firefox).startswith("/login/code")
    assert sign_in_again(chromium).startswith("/login/code")
    assert ("devices_forgotten", {"ip": "127.0.0.1", "count": 2}) in audit_actions(store, agent["id"])


@pytest.mark.parametrize(("headers", "label"), [
    ({"User-Agent": CHROMIUM_ON_LINUX}, "Chrome on Linux"),
    ({"User-Agent": CHROMIUM_ON_LINUX, "Sec-CH-UA": '"Chromium";v="120", "Not?A_Brand";v="24"',
      "Sec-CH-UA-Platform": '"Linux"'}, "Chromium on Linux"),
    ({"User-Agent": CHROMIUM_ON_LINUX.replace("X11; Linux x86_64", "Windows NT 10.0; Win64; x64") + " Edg/120.0",
      "Sec-CH-UA": '"Not_A Brand";v="8", "Chromium";v="120", "Microsoft Edge";v="120"'}, "Edge on Windows"),
    ({"User-Agent": FIREFOX_ON_WINDOWS}, "Firefox on Windows"),
    ({"User-Agent": SAFARI_ON_IPHONE}, "Safari on iOS"),
    ({"User-Agent": "curl/8.5.0"}, "A browser on an unknown system"),
    ({}, "A browser on an unknown system"),
])
def test_device_labels_are_readable(app, headers, label):
    from inbox.web.devices import device_label

    with app.test_request_context("/"):
        assert device_label(headers) == label
