"""Sessions end after `web.idle_timeout_minutes` without use, and "sign out everywhere" (issue 13)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.test_web_auth import csrf_token, login, make_agent, signed_in, web_store  # noqa: F401


def test_a_session_unused_for_two_hours_ends_with_a_reason(app, web_store, frozen_clock):  # noqa: F811
    make_agent(web_store)
    client = app.test_client()
    login(client)
    frozen_clock.advance(dt.timedelta(minutes=119))
    assert signed_in(client), "used within the timeout"
    frozen_clock.advance(dt.timedelta(minutes=119))
    assert signed_in(client), "each use starts the timeout again"
    frozen_clock.advance(dt.timedelta(minutes=121))
    response = client.get("/conversations/1")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You were signed out after 120 minutes without activity." in page
    assert not signed_in(client)


def test_what_an_open_page_asks_by_itself_is_not_use(app, web_store, frozen_clock):  # noqa: F811
    make_agent(web_store)
    client = app.test_client()
    login(client)
    for _ in range(13):  # ten-minute steps: 130 minutes of live updates and nothing else
        frozen_clock.advance(dt.timedelta(minutes=10))
        client.get("/events", query_string={"once": "1", "since": "0"})
    assert not signed_in(client)


@pytest.fixture
def idle_app(app_config):
    def make(minutes):
        from inbox import create_app

        app = create_app({**app_config, "web": {**app_config["web"], "idle_timeout_minutes": minutes}})
        app.config.update(TESTING=True)
        return app

    return make


def test_the_timeout_is_a_setting_and_0_turns_it_off(idle_app, frozen_clock):
    short = idle_app(15)
    store = short.extensions["mainland"].open_store()
    try:
        make_agent(store)
    finally:
        store.close()
    client = short.test_client()
    login(client)
    frozen_clock.advance(dt.timedelta(minutes=16))
    assert not signed_in(client)

    never = idle_app(0).test_client()
    login(never)
    frozen_clock.advance(dt.timedelta(hours=11))
    assert signed_in(never), "only the 12-hour limit of any session applies"


def test_the_setting_is_checked(tmp_path):
    from inbox.config import ConfigError, from_mapping

    with pytest.raises(ConfigError, match="web.idle_timeout_minutes"):
        from_mapping({"secret_key": "x", "web": {"idle_timeout_minutes": "soon"}}, base=tmp_path)


def test_sign_out_everywhere_ends_every_session(app, web_store, frozen_clock):  # noqa: F811
    agent = make_agent(web_store)
    phone, laptop = app.test_client(), app.test_client()
    login(phone)
    login(laptop)
    response = laptop.post("/account/security", data={"action": "sign_out_everywhere",
                                                      "csrf_token": csrf_token(laptop, "/account/security")})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(laptop) and not signed_in(phone)
    actions = [e["action"] for e in web_store.audit_entries(object_type="agent", object_id=agent["id"])]
    assert "signed_out_everywhere" in actions


def test_a_session_from_before_the_timeout_counts_from_its_sign_in(app, web_store, frozen_clock):  # noqa: F811
    make_agent(web_store)
    client = app.test_client()
    login(client)
    with client.session_transaction() as sess:
        del sess["seen_at"]
    frozen_clock.advance(dt.timedelta(minutes=60))
    assert signed_in(client), "not ended at once on upgrade"
    frozen_clock.advance(dt.timedelta(minutes=121))
    assert not signed_in(client)
