"""Signing in and out: sessions end when they must, forms need their token, no open redirects (SEC-08/10/11)."""

from __future__ import annotations

import re
import sqlite3
import statistics
import time

import pytest
from argon2 import PasswordHasher

from inbox import store as store_module
from inbox.web.auth import hash_password, role_required
from tests.engine_state import sqlite_only

PASSWORD = "correct horse battery"


# Helpers shared with the other web tests ------------------------------------------------------

@pytest.fixture
def web_store(app):
    """The app's own database (the `store` fixture is a separate file)."""
    store = app.extensions["mainland"].open_store()
    yield store
    store.close()


def make_agent(store, email="ann@example.org", password=PASSWORD, *, name="Ann Agent", role="agent", **kw):
    agent_id = store.create_agent(email=email, name=name, role=role, password_hash=hash_password(password), **kw)
    return store.agent(agent_id)


def csrf_token(client, path="/login"):
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def login(client, email="ann@example.org", password=PASSWORD, next=None, **kw):
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if next is not None:
        data["next"] = next
    return client.post("/login", data=data, **kw)


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


# Sign in and out ------------------------------------------------------------------------------

def test_anonymous_visitor_is_sent_to_the_sign_in_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_sign_in_then_sign_out(client, web_store):
    make_agent(web_store)
    response = login(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "Ann Agent" in page.get_data(as_text=True)

    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(client)


def test_a_copied_cookie_stops_working_after_sign_out(app, client, web_store):
    make_agent(web_store)
    login(client)
    stolen = client.get_cookie("session").value
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert not signed_in(replay)


def test_sign_in_replaces_the_session(client, web_store):
    make_agent(web_store)
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    login(client)
    with client.session_transaction() as sess:
        first_nonce = sess["nonce"]
        assert "planted" not in sess
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client)
    with client.session_transaction() as sess:
        assert sess["nonce"] != first_nonce


def test_session_cookie_is_httponly_and_samesite(client, web_store):
    make_agent(web_store)
    response = login(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # not configured in tests


def test_session_cookie_is_secure_when_configured(app_config):
    from inbox import create_app

    app = create_app({**app_config, "session_cookie_secure": True})
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    client = app.test_client()
    response = login(client)
    assert "Secure" in response.headers["Set-Cookie"]
    store.close()


def test_wrong_password_and_unknown_address_look_the_same(client, web_store):
    make_agent(web_store)

    def attempt(email, n):
        response = login(client, email=email, password="wrong password",
                         environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        body = re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True))
        return response.status_code, body.replace(email, "EMAIL")

    assert attempt("ann@example.org", 1) == attempt("nobody@example.org", 2)
    status, body = attempt("ann@example.org", 3)
    assert status == 401 and "Wrong email address or password." in body


def test_unknown_address_takes_as_long_as_a_wrong_password(client, web_store):
    make_agent(web_store)

    def timed(email, n):
        started = time.perf_counter()
        login(client, email=email, password="wrong password", environ_base={"REMOTE_ADDR": f"10.0.1.{n}"})
        return time.perf_counter() - started

    known, unknown = [], []
    for n in range(5):  # interleaved, so a burst of load elsewhere hits both alike
        known.append(timed("ann@example.org", n))
        unknown.append(timed(f"nobody{n}@example.org", 10 + n))
    # Without the dummy hash the unknown address would answer about a hundred times faster.
    assert 1 / 3 < statistics.median(unknown) / statistics.median(known) < 3


def test_disabled_agent_cannot_sign_in_and_their_session_ends(client, web_store):
    agent = make_agent(web_store)
    login(client)
    assert signed_in(client)
    web_store.set_agent_active(agent["id"], False)
    assert not signed_in(client)
    response = login(client)
    assert response.status_code == 401
    assert not signed_in(client)


def test_password_change_ends_the_other_sessions(app, web_store):
    make_agent(web_store)
    laptop, phone = app.test_client(), app.test_client()
    login(laptop)
    login(phone)
    assert signed_in(laptop) and signed_in(phone)

    response = laptop.post("/settings", data={
        "action": "password", "current_password": PASSWORD, "new_password": "a brand new secret",
        "repeat_password": "a brand new secret", "csrf_token": csrf_token(laptop, "/settings"),
    })
    assert response.status_code == 302
    assert signed_in(laptop)
    assert not signed_in(phone)
    assert login(phone).status_code == 401
    assert login(phone, password="a brand new secret").status_code == 302


def test_password_change_needs_the_current_password(client, web_store):
    make_agent(web_store)
    login(client)
    response = client.post("/settings", data={
        "action": "password", "current_password": "not it", "new_password": "a brand new secret",
        "repeat_password": "a brand new secret", "csrf_token": csrf_token(client, "/settings"),
    })
    assert response.status_code == 400
    assert "This is not your current password." in response.get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert login(client).status_code == 302


def test_passwords_are_argon2id_and_rehashed_when_parameters_change(client, web_store):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    agent_id = web_store.create_agent(email="ann@example.org", name="Ann", role="agent", password_hash=weak)
    assert login(client).status_code == 302
    upgraded = web_store.agent(agent_id)["password_hash"]
    assert upgraded != weak
    params = dict(p.split("=") for p in upgraded.split("$")[3].split(","))
    assert upgraded.startswith("$argon2id$v=19$")
    assert int(params["m"]) >= 19456 and int(params["t"]) >= 2
    assert signed_in(client)  # the rehash does not end the session it happened in


# Rate limits ----------------------------------------------------------------------------------

def test_eleventh_failed_attempt_on_one_account_from_one_address_is_refused(client, web_store):
    make_agent(web_store)
    for _ in range(10):
        assert login(client, password="nope").status_code == 401
    response = login(client)  # even the right password
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert not signed_in(client)


def test_guesses_at_other_accounts_from_a_shared_address_lock_nobody_out(client, web_store):
    """Behind one office or proxy address, ten people's typos must not lock out the eleventh."""
    make_agent(web_store)
    for n in range(10):
        assert login(client, email=f"guess{n}@example.org", password="nope").status_code == 401
    assert login(client).status_code == 302


def test_spraying_many_accounts_from_one_address_is_stopped(client, web_store):
    make_agent(web_store)
    for n in range(60):
        assert login(client, email=f"spray{n}@example.org", password="nope").status_code == 401
    assert login(client).status_code == 429


def test_one_account_from_many_addresses_is_stopped_after_thirty(client, web_store):
    make_agent(web_store)
    for n in range(30):
        response = login(client, password="nope", environ_base={"REMOTE_ADDR": f"192.0.2.{n + 1}"})
        assert response.status_code == 401
    response = login(client, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert response.status_code == 429


def test_successful_sign_ins_are_not_counted(client, web_store):
    make_agent(web_store)
    for _ in range(12):
        assert login(client).status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    assert login(client, password="nope").status_code == 401


def test_behind_a_trusted_proxy_each_client_has_its_own_address(app_config):
    from inbox import create_app

    def client_of(app, address):
        client = app.test_client()
        client.environ_base.update(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=address)
        return client

    proxied = create_app({**app_config, "web": {**app_config["web"], "trusted_proxies": 1}})
    store = store_module.Store(app_config["database"])
    make_agent(store)
    store.close()
    attacker, colleague = client_of(proxied, "203.0.113.9"), client_of(proxied, "198.51.100.20")
    for n in range(60):
        assert login(attacker, email=f"spray{n}@example.org", password="nope").status_code == 401
    assert login(attacker).status_code == 429
    assert login(colleague).status_code == 302, "the proxy's address is not everyone's address"

    # Without the setting a client cannot pick its own address by sending the header.
    direct = create_app(app_config)
    liar = direct.test_client()
    liar.environ_base.update(REMOTE_ADDR="192.0.2.50")
    for n in range(60):
        liar.environ_base["HTTP_X_FORWARDED_FOR"] = f"192.0.2.{100 + n}"
        assert login(liar, email=f"other{n}@example.org", password="nope").status_code == 401
    assert login(liar).status_code == 429


def test_trusted_proxies_must_be_a_small_number(app_config):
    from inbox import create_app
    from inbox.config import ConfigError

    with pytest.raises(ConfigError, match="web.trusted_proxies"):
        create_app({**app_config, "web": {"trusted_proxies": "yes"}})


# Redirects ------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "//evil.example", "https:evil.example", "https://evil.example/", "/\\evil.example", "\\/\\/evil.example",
    "javascript:alert(1)", "/\t/evil.example", "/\r\nSet-Cookie:x=1", "evil.example", "",
])
def test_next_only_leads_to_this_site(client, web_store, target):
    make_agent(web_store)
    response = login(client, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_percent_encoded_in_the_url_is_checked_after_decoding(client, web_store):
    make_agent(web_store)
    data = {"email": "ann@example.org", "password": PASSWORD, "csrf_token": csrf_token(client)}
    response = client.post("/login?next=%2F%2Fevil.example", data=data)
    assert response.headers["Location"] == "/"


def test_next_keeps_a_path_on_this_site(client, web_store):
    make_agent(web_store)
    first = client.get("/conversations/7?tab=notes")
    assert first.headers["Location"] == "/login?next=/conversations/7?tab%3Dnotes"
    response = login(client, next="/conversations/7?tab=notes")
    assert response.headers["Location"] == "/conversations/7?tab=notes"


# CSRF -----------------------------------------------------------------------------------------

def test_logout_without_token_is_refused_and_changes_nothing(client, web_store):
    make_agent(web_store)
    login(client)
    response = client.post("/logout")
    assert response.status_code == 400
    assert "The form expired, reload the page and try again." in response.get_data(as_text=True)
    assert signed_in(client)


def test_logout_with_another_sessions_token_is_refused(app, web_store):
    make_agent(web_store)
    make_agent(web_store, email="bob@example.org", name="Bob")
    ann, bob = app.test_client(), app.test_client()
    login(ann)
    login(bob, email="bob@example.org")
    response = ann.post("/logout", data={"csrf_token": csrf_token(bob, "/")})
    assert response.status_code == 400
    assert signed_in(ann)


def test_logout_is_not_a_get(client, web_store):
    make_agent(web_store)
    login(client)
    assert client.get("/logout").status_code == 405
    assert signed_in(client)


def test_settings_without_token_change_nothing(client, web_store):
    agent = make_agent(web_store)
    login(client)
    response = client.post("/settings", data={"action": "language", "locale": "nl"})
    assert response.status_code == 400
    assert web_store.agent(agent["id"])["locale"] is None


def test_agent_picks_dutch_and_sees_dutch(client, web_store):
    agent = make_agent(web_store)
    login(client)
    response = client.post("/settings", data={"action": "language", "locale": "nl",
                                              "csrf_token": csrf_token(client, "/settings")})
    assert response.status_code == 302
    assert web_store.agent(agent["id"])["locale"] == "nl"
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Gesprekken" in page and "Uitloggen" in page


def test_expired_form_page_speaks_the_agents_language(client, web_store):
    make_agent(web_store, locale="nl")
    login(client)
    response = client.post("/logout", headers={"Accept-Language": "en"})
    assert response.status_code == 400
    assert "Het formulier is verlopen, laad de pagina opnieuw en probeer het nog eens." in response.get_data(
        as_text=True)


def test_settings_refuse_an_unknown_language(client, web_store):
    agent = make_agent(web_store)
    login(client)
    response = client.post("/settings", data={"action": "language", "locale": "xx",
                                              "csrf_token": csrf_token(client, "/settings")})
    assert response.status_code == 400
    assert web_store.agent(agent["id"])["locale"] is None


# Roles, health, a busy database ---------------------------------------------------------------

def test_role_required_lets_only_those_roles_in(app, web_store):
    app.add_url_rule("/only-admins", "only_admins", role_required("admin", "manager")(lambda: "admin area"))
    make_agent(web_store)
    make_agent(web_store, email="boss@example.org", role="admin")
    agent_client, admin_client, anonymous = app.test_client(), app.test_client(), app.test_client()
    login(agent_client)
    login(admin_client, email="boss@example.org")
    assert agent_client.get("/only-admins").status_code == 403
    assert admin_client.get("/only-admins").get_data(as_text=True) == "admin area"
    assert anonymous.get("/only-admins").headers["Location"].startswith("/login")


def test_health_needs_no_sign_in_and_shows_totals_only_to_agents(client, web_store):
    make_agent(web_store)
    response = client.get("/-/health")
    assert response.status_code == 200
    assert response.json == {"ok": True, "db": "ok"}, "outsiders learn it is up, not how busy it is"
    login(client)
    response = client.get("/-/health")
    assert response.json["ok"] is True and response.json["db"] == "ok"
    assert set(response.json["counts"]) >= {"messages", "conversations", "customers"}
    assert "ann@example.org" not in response.get_data(as_text=True)


def test_locked_database_gives_a_busy_page_and_no_session(client, web_store, app_config, monkeypatch):
    sqlite_only("another process holding the file's write lock past the busy timeout")
    make_agent(web_store)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    token = csrf_token(client)
    blocker = sqlite3.connect(app_config["database"], isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = client.post("/login", data={"email": "ann@example.org", "password": PASSWORD,
                                                "csrf_token": token})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 503
    assert "Mainland is busy" in response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    assert not signed_in(client)


def test_static_files_carry_their_content_hash_and_are_kept_by_the_browser(client):
    page = client.get("/login").get_data(as_text=True)
    [url] = re.findall(r'href="(/static/mainland\.css\?v=[0-9a-f]{12})"', page)
    kept = client.get(url)
    assert kept.status_code == 200
    assert "max-age=31536000" in kept.headers["Cache-Control"] and "no-cache" not in kept.headers["Cache-Control"]
    # Without the hash (an old bookmark, a hand-typed URL) the browser asks again every time.
    assert "max-age=31536000" not in client.get("/static/mainland.css").headers.get("Cache-Control", "")


def test_behind_https_the_session_cookie_is_host_only_and_hsts_is_sent(app_config):
    from inbox import create_app

    app = create_app({**app_config, "base_url": "https://care.example.com"})
    store = store_module.Store(app_config["database"])
    try:
        make_agent(store)
    finally:
        store.close()
    site = "https://care.example.com"
    client = app.test_client()
    page = client.get("/login", base_url=site).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": "ann@example.org", "password": PASSWORD, "csrf_token": token},
                           base_url=site, headers={"Referer": f"{site}/login"})
    assert response.status_code == 302
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-session="))
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_over_plain_http_no_hsts_is_sent(client):
    assert "Strict-Transport-Security" not in client.get("/login").headers


@pytest.mark.parametrize("headers", [
    {"Accept": "text/event-stream", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"},
    {"Accept": "application/json"},
    {"Accept": "*/*", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"},
])
def test_a_script_signed_out_gets_401_and_no_session(client, web_store, headers):
    # Were it sent to the sign-in page, the session that page starts would replace the one of a sign-in
    # form open in another tab, and that form would then fail with "expired" (seen with the live stream).
    response = client.get("/events", headers=headers)
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    page = client.get("/events", headers={"Accept": "text/html", "Sec-Fetch-Dest": "document"})
    assert page.status_code == 302 and "/login" in page.headers["Location"]
