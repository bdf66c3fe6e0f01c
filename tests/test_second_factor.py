"""Two-step sign-in with TOTP (issue 13): set up with a QR code and a first code, ten recovery codes
shown once, a second step at sign-in before any session, codes that cannot be replayed, one step of
clock skew, rate limits, turning it off, and roles that must have it.

Codes come from pyotp at the frozen clock (tests/conftest.py), never from the real time.
"""

from __future__ import annotations

import datetime as dt
import re

import pyotp
import pytest

from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent, signed_in, web_store  # noqa: F401

STEP = dt.timedelta(seconds=30)


def post_security(client, **form):
    return client.post("/account/security", data={**form, "csrf_token": csrf_token(client, "/account/security")})


def enrol(client, clock) -> tuple[str, list[str]]:
    """Set up TOTP as the signed-in agent; returns the secret and the recovery codes."""
    assert post_security(client, action="start").status_code == 302
    page = client.get("/account/security").get_data(as_text=True)
    assert "<svg" in page, "the QR code is inline SVG"
    secret = re.search(r'class="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    done = post_security(client, action="confirm", code=pyotp.TOTP(secret).at(clock.now()))
    assert done.status_code == 200
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", done.get_data(as_text=True))
    return secret, codes


def enter_code(client, code, next=None):
    data = {"code": code, "csrf_token": csrf_token(client, "/login")}
    if next:
        data["next"] = next
    return client.post("/login/code", data=data)


@pytest.fixture
def enrolled(app, web_store, frozen_clock):  # noqa: F811
    agent = make_agent(web_store)
    client = app.test_client()
    login(client)
    secret, codes = enrol(client, frozen_clock)
    # Later codes are asked a few steps on, so the set-up code's step is behind us.
    frozen_clock.advance(STEP * 3)
    return agent, secret, codes


def test_setting_up_shows_a_qr_code_then_ten_recovery_codes_once(app, web_store, frozen_clock):  # noqa: F811
    make_agent(web_store)
    client = app.test_client()
    login(client)
    assert "Set up two-step sign-in" in client.get("/account/security").get_data(as_text=True)
    secret, codes = enrol(client, frozen_clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    page = client.get("/account/security").get_data(as_text=True)
    assert not any(code in page for code in codes), "recovery codes are shown once"
    assert "10 recovery codes left." in page
    stored = [r[0] for r in web_store.execute("SELECT code_hash FROM agent_recovery_codes")]
    assert len(stored) == 10 and not set(codes) & set(stored), "kept hashed"


def test_a_wrong_first_code_does_not_turn_it_on(app, web_store, frozen_clock):  # noqa: F811
    agent = make_agent(web_store)
    client = app.test_client()
    login(client)
    post_security(client, action="start")
    response = post_security(client, action="confirm", code="000000")
    assert response.status_code == 400 and "This code is not right." in response.get_data(as_text=True)
    assert web_store.second_factor(agent["id"])["secret"] is None


def test_sign_in_asks_for_the_code_before_any_session(app, enrolled, frozen_clock):
    agent, secret, _codes = enrolled
    client = app.test_client()
    response = login(client, next="/search")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login/code")
    assert not signed_in(client), "no session after the password alone"
    assert enter_code(client, "123456").status_code == 401
    assert not signed_in(client)
    done = enter_code(client, pyotp.TOTP(secret).at(frozen_clock.now()), next="/search")
    assert done.status_code == 302 and done.headers["Location"] == "/search"
    assert signed_in(client)


def test_a_code_cannot_be_used_twice(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    code = pyotp.TOTP(secret).at(frozen_clock.now())
    first = app.test_client()
    login(first)
    assert enter_code(first, code).status_code == 302
    second = app.test_client()
    login(second)
    assert enter_code(second, code).status_code == 401, "the same code, within its window, is refused"
    frozen_clock.advance(STEP)
    assert enter_code(second, pyotp.TOTP(secret).at(frozen_clock.now())).status_code == 302


def test_one_step_of_clock_skew_is_accepted_two_are_not(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    totp = pyotp.TOTP(secret)
    client = app.test_client()
    login(client)
    assert enter_code(client, totp.at(frozen_clock.now() + 2 * STEP)).status_code == 401
    assert enter_code(client, totp.at(frozen_clock.now() - 2 * STEP)).status_code == 401
    assert enter_code(client, totp.at(frozen_clock.now() + STEP)).status_code == 302


def test_a_recovery_code_works_once_instead_of_a_code(app, web_store, enrolled, frozen_clock):  # noqa: F811
    agent, _secret, codes = enrolled
    client = app.test_client()
    login(client)
    assert enter_code(client, codes[0].upper().replace("-", " ")).status_code == 302, "case and dashes do not matter"
    assert web_store.second_factor(agent["id"])["codes_left"] == 9
    other = app.test_client()
    login(other)
    assert enter_code(other, codes[0]).status_code == 401, "used up"
    assert enter_code(other, codes[1]).status_code == 302


def test_the_code_step_expires(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client = app.test_client()
    login(client)
    frozen_clock.advance(dt.timedelta(minutes=6))
    response = enter_code(client, pyotp.TOTP(secret).at(frozen_clock.now()))
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(client)


def test_the_code_step_is_rate_limited(app, enrolled, frozen_clock):
    _agent, secret, _codes = enrolled
    client = app.test_client()
    login(client)
    answers = [enter_code(client, "000000").status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]
    assert enter_code(client, pyotp.TOTP(secret).at(frozen_clock.now())).status_code == 429
    assert not signed_in(client)


def test_without_a_pending_password_the_code_step_sends_to_sign_in(client):
    response = client.get("/login/code")
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def test_turning_it_off_needs_a_code_or_the_password(app, web_store, enrolled, frozen_clock):  # noqa: F811
    agent, secret, _codes = enrolled
    client = app.test_client()
    login(client)
    enter_code(client, pyotp.TOTP(secret).at(frozen_clock.now()))
    refused = post_security(client, action="disable", proof="not my password")
    assert refused.status_code == 400 and web_store.second_factor(agent["id"])["secret"] == secret
    assert post_security(client, action="disable", proof=PASSWORD).status_code == 302
    assert web_store.second_factor(agent["id"])["secret"] is None
    assert web_store.second_factor(agent["id"])["codes_left"] == 0
    fresh = app.test_client()
    assert login(fresh).headers["Location"] == "/", "the password alone signs in again"


def test_turning_it_on_ends_the_other_sessions(app, web_store, frozen_clock):  # noqa: F811
    make_agent(web_store)
    elsewhere = app.test_client()
    login(elsewhere)
    client = app.test_client()
    login(client)
    enrol(client, frozen_clock)
    assert signed_in(client) and not signed_in(elsewhere)


@pytest.fixture
def strict_app(app_config):
    from inbox import create_app

    app_config["web"] = {**app_config["web"], "require_second_factor": ["admin"]}
    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


def test_a_role_can_be_required_to_have_a_second_factor(strict_app, frozen_clock):
    store = strict_app.extensions["mainland"].open_store()
    try:
        make_agent(store, email="ada@example.org", role="admin")
        make_agent(store, email="ann@example.org", role="agent")
        admin = strict_app.test_client()
        login(admin, email="ada@example.org")
        for path in ("/", "/admin/agents", "/settings"):
            response = admin.get(path)
            assert response.status_code == 302 and response.headers["Location"] == "/account/security", path
        enrol(admin, frozen_clock)
        assert admin.get("/admin/agents").status_code == 200
        agent = strict_app.test_client()
        login(agent, email="ann@example.org")
        assert agent.get("/").status_code == 200, "other roles are not held up"
    finally:
        store.close()


def test_the_setting_must_name_roles(tmp_path):
    from inbox.config import ConfigError, from_mapping

    with pytest.raises(ConfigError, match="web.require_second_factor"):
        from_mapping({"secret_key": "x", "web": {"require_second_factor": ["boss"]}}, base=tmp_path)


def test_new_recovery_codes_replace_the_old_ones(app, web_store, enrolled, frozen_clock):  # noqa: F811
    agent, secret, old_codes = enrolled
    client = app.test_client()
    login(client)
    enter_code(client, pyotp.TOTP(secret).at(frozen_clock.now()))
    refused = post_security(client, action="new_codes", proof="not my password")
    assert refused.status_code == 400
    done = post_security(client, action="new_codes", proof=PASSWORD)
    new_codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", done.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    other = app.test_client()
    login(other)
    assert enter_code(other, old_codes[0]).status_code == 401, "the old codes stopped working"
    assert enter_code(other, new_codes[0]).status_code == 302


def test_an_admin_turns_off_the_factor_of_an_agent_who_lost_everything(app, web_store, enrolled,  # noqa: F811
                                                                        frozen_clock):
    agent, _secret, _codes = enrolled
    make_agent(web_store, email="root@example.org", name="Root Admin", role="admin")
    admin = app.test_client()
    login(admin, email="root@example.org")
    page = admin.get(f"/admin/agents/{agent['id']}").get_data(as_text=True)
    assert "Turn off the second factor" in page
    done = admin.post(f"/admin/agents/{agent['id']}/second-factor",
                      data={"csrf_token": csrf_token(admin, f"/admin/agents/{agent['id']}")})
    assert done.status_code == 302
    assert web_store.second_factor(agent["id"])["secret"] is None
    client = app.test_client()
    assert login(client).status_code == 302 and signed_in(client), "the password alone signs in again"
    assert "Turn off the second factor" not in admin.get(f"/admin/agents/{agent['id']}").get_data(as_text=True)
