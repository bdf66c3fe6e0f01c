"""Single sign-on through OpenID Connect (issue 13), against the loopback provider in sandbox/oidc.py.

Flask's test client does not follow redirects to another server, so each test walks the flow by
hand: the button's POST gives the provider's /authorize address, requests follows it to the
provider, whose redirect back (code and state) is then asked of the app.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.oidc import OIDCProvider
from tests.test_web_auth import PASSWORD, csrf_token, make_agent, signed_in

SECRET = "provider-secret-0123456789"

#: Every test here talks to the loopback provider (a server): not in the fast tier.
pytestmark = pytest.mark.server


@pytest.fixture
def provider(frozen_clock):
    with OIDCProvider(client_secret=SECRET, now=lambda: frozen_clock.now().timestamp()) as imitation:
        yield imitation


@pytest.fixture
def sso_config(app_config, provider):
    app_config["oidc"] = {"issuer": provider.url, "client_id": "mainland", "client_secret": SECRET,
                          "button_label": "Example ID"}
    return app_config


@pytest.fixture
def sso_app(sso_config):
    from inbox import create_app

    app = create_app(sso_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def db(sso_app):
    store = sso_app.extensions["mainland"].open_store()
    yield store
    store.close()


def to_provider(client, next_path=None):
    """Press the button: the app's redirect to the provider's authorization endpoint."""
    response = client.get("/login/oidc", query_string={"next": next_path} if next_path else {})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def back_from_provider(authorize_url):
    """What the provider sends the browser back to: the callback's path and query."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return back.path + "?" + back.query


def sign_in_through_provider(client, next_path=None):
    return client.get(back_from_provider(to_provider(client, next_path)))


def audit_entries(db, action):
    rows = db.execute("SELECT actor, details FROM audit_log WHERE action = ? ORDER BY id", (action,))
    return [{"actor": actor, "details": json.loads(details)} for actor, details in rows]


def refused_reasons(db):
    return [e["details"]["reason"] for e in audit_entries(db, "oidc_refused")]


# The flow ----------------------------------------------------------------------------------------

def test_the_sign_in_page_offers_the_provider_only_when_configured(client, sso_app):
    assert "Sign in with" not in client.get("/login").get_data(as_text=True)
    page = sso_app.test_client().get("/login").get_data(as_text=True)
    assert "Sign in with Example ID" in page and 'href="/login/oidc"' in page
    assert 'name="password"' in page, "passwords still work unless turned off"


def test_the_whole_flow_signs_the_agent_in(sso_app, db, provider):
    agent = make_agent(db, email="ann@example.org")
    provider.sign_in_as("Ann@Example.org")
    client = sso_app.test_client()
    authorize = urlsplit(to_provider(client, "/customers"))
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert authorize.netloc == provider.host and authorize.path == "/authorize"
    assert params["response_type"] == "code" and "openid" in params["scope"].split()
    assert params["code_challenge_method"] == "S256" and params["nonce"] and params["state"]
    assert params["redirect_uri"] == "http://127.0.0.1:5000/login/oidc/callback"

    response = client.get(back_from_provider(authorize.geturl()))
    assert response.status_code == 302 and response.headers["Location"] == "/customers"
    assert signed_in(client)
    [entry] = audit_entries(db, "login")
    assert entry["actor"] == f"agent:{agent['id']}" and entry["details"]["via"] == "oidc"
    # The token request carried the PKCE verifier and the client's secret (HTTP Basic).
    [token_request] = provider.requests_to(r"^/token$")
    assert "code_verifier=" in token_request.body.decode()
    assert token_request.headers.get("Authorization", "").startswith("Basic ")


def test_an_agent_with_a_second_factor_is_not_asked_for_the_code(sso_app, db, provider):
    agent = make_agent(db, email="ann@example.org")
    db.confirm_totp(agent["id"], "JBSWY3DPEHPK3PXP", 0, [])
    assert db.second_factor(agent["id"])["secret"]
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    response = sign_in_through_provider(client)
    assert response.headers["Location"] == "/", "the provider's own sign-in stands in for the code"
    assert signed_in(client)


def test_a_provider_key_rotation_is_followed(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    first = sso_app.test_client()
    assert sign_in_through_provider(first).status_code == 302
    provider.rotate_keys()
    second = sso_app.test_client()
    assert sign_in_through_provider(second).status_code == 302 and signed_in(second)


def test_a_flow_can_only_be_used_once(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    back = back_from_provider(to_provider(client))
    assert client.get(back).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    assert client.get(back).status_code == 400
    assert refused_reasons(db) == ["flow_expired"]


# Refusals ----------------------------------------------------------------------------------------

def assert_refused(response, db, reason, status=403):
    page = response.get_data(as_text=True)
    assert response.status_code == status, page
    assert "You are not signed in" in page and 'role="alert"' in page
    assert refused_reasons(db) == [reason]
    assert not audit_entries(db, "login")


def test_the_provider_saying_no_is_refused(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    provider.refuse_next("access_denied")
    client = sso_app.test_client()
    response = sign_in_through_provider(client)
    assert_refused(response, db, "provider:access_denied")
    assert "did not sign you in" in response.get_data(as_text=True)
    assert not signed_in(client)


def test_a_wrong_state_is_refused(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    back = back_from_provider(to_provider(client))
    forged = back.replace("state=", "state=x")
    response = client.get(forged)
    assert_refused(response, db, "wrong_state", 400)
    assert not signed_in(client)


def test_a_callback_without_a_flow_in_this_browser_is_refused(sso_app, db, provider):
    """Login CSRF: someone else's code and state, sent to a victim's browser."""
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    attacker = sso_app.test_client()
    back = back_from_provider(to_provider(attacker))
    victim = sso_app.test_client()
    assert_refused(victim.get(back), db, "flow_expired", 400)
    assert not signed_in(victim)


def test_a_flow_older_than_ten_minutes_is_refused(sso_app, db, provider, frozen_clock):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    back = back_from_provider(to_provider(client))
    frozen_clock.advance(dt.timedelta(minutes=11))
    assert_refused(client.get(back), db, "flow_expired", 400)


@pytest.mark.parametrize("tamper", [
    {"aud": "someone-else"},
    {"nonce": "not-the-one-we-sent"},
    {"iss": "http://evil.example"},
    "expired",
    "wrong key",
], ids=["audience", "nonce", "issuer", "expired", "signature"])
def test_an_id_token_that_fails_a_check_is_refused(sso_app, db, provider, frozen_clock, tamper):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    if tamper == "wrong key":
        provider.sign_next_with_wrong_key()
    elif tamper == "expired":
        now = int(frozen_clock.now().timestamp())
        provider.tamper_next(iat=now - 3600, exp=now - 600)
    else:
        provider.tamper_next(**tamper)
    client = sso_app.test_client()
    response = sign_in_through_provider(client)
    assert_refused(response, db, "invalid_id_token")
    assert "could not be verified" in response.get_data(as_text=True)
    assert not signed_in(client)


def test_a_code_the_provider_will_not_redeem_is_refused(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    back = back_from_provider(to_provider(client))
    provider.fail_next(400, {"error": "invalid_grant"}, path_prefix="/token")
    assert_refused(client.get(back), db, "token_refused")


def test_a_wrong_client_secret_is_refused_by_the_provider(app_config, provider):
    from inbox import create_app

    app_config["oidc"] = {"issuer": provider.url, "client_id": "mainland", "client_secret": "not-the-secret"}
    app = create_app(app_config)
    app.config.update(TESTING=True)
    store = app.extensions["mainland"].open_store()
    try:
        make_agent(store, email="ann@example.org")
        provider.sign_in_as("ann@example.org")
        client = app.test_client()
        assert_refused(sign_in_through_provider(client), store, "token_refused")
    finally:
        store.close()


def test_an_unreachable_provider_is_a_page_not_a_500(app_config, provider):
    from inbox import create_app

    app_config["oidc"] = {"issuer": provider.url, "client_id": "mainland", "client_secret": SECRET}
    app = create_app(app_config)
    app.config.update(TESTING=True)
    provider.fail_next(503, path_prefix="/.well-known")
    client = app.test_client()
    response = client.get("/login/oidc")
    assert response.status_code == 502 and "cannot be reached" in response.get_data(as_text=True)


def test_an_unverified_email_is_refused(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org", email_verified=False)
    client = sso_app.test_client()
    assert_refused(sign_in_through_provider(client), db, "email_not_verified")
    assert not signed_in(client)


def test_an_unknown_email_is_refused_and_no_account_is_made(sso_app, db, provider):
    provider.sign_in_as("stranger@example.org")
    before = len(db.agents())
    client = sso_app.test_client()
    response = sign_in_through_provider(client)
    assert_refused(response, db, "no_active_agent")
    assert "Ask an administrator for an invitation" in response.get_data(as_text=True)
    assert len(db.agents()) == before


def test_a_disabled_agent_is_refused(sso_app, db, provider):
    agent = make_agent(db, email="ann@example.org")
    db.set_agent_active(agent["id"], False)
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    assert_refused(sign_in_through_provider(client), db, "no_active_agent")
    assert not signed_in(client)


def test_a_head_on_the_callback_signs_nobody_in_and_keeps_the_flow(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    assert client.head("/login/oidc").status_code == 405, "a HEAD starts no flow either"
    assert not provider.requests_to(r"openid-configuration")
    back = back_from_provider(to_provider(client))
    assert client.head(back).status_code == 405
    assert not signed_in(client) and not audit_entries(db, "login")
    assert client.get(back).status_code == 302 and signed_in(client)


def test_refusals_are_rate_limited_like_the_sign_in_form(sso_app, db, provider):
    client = sso_app.test_client()
    statuses = [client.get("/login/oidc/callback?code=x&state=y").status_code for _ in range(61)]
    assert statuses[:60] == [400] * 60 and statuses[60] == 429


def test_password_sign_in_can_be_turned_off(sso_config):
    from inbox import create_app

    sso_config["oidc"]["allow_password_sign_in"] = False
    app = create_app(sso_config)
    app.config.update(TESTING=True)
    store = app.extensions["mainland"].open_store()
    try:
        make_agent(store, email="ann@example.org")
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        assert "Sign in with Example ID" in page and 'name="password"' not in page
        token = csrf_token(client, "/password/forgot")
        response = client.post("/login", data={"email": "ann@example.org", "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 403 and "passwords are not used here" in response.get_data(as_text=True)
        assert not signed_in(client)
    finally:
        store.close()


# Signing out at the provider (RP-Initiated Logout 1.0) --------------------------------------------

LOGIN_PAGE = "http://127.0.0.1:5000/login"


def sign_out(client):
    return client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})


def provider_sign_out_url(response) -> str:
    """The provider address the sign-out page moves on to (by meta refresh, and as a link)."""
    page = response.get_data(as_text=True)
    match = re.search(r'<meta http-equiv="refresh" content="0; url=\'([^\']+)\'">', page)
    assert match, page
    url = html.unescape(match.group(1))
    assert f'href="{match.group(1)}"' in page, "the same address as a link, for when the refresh does not run"
    return url


def test_signing_out_sends_the_browser_to_the_providers_end_session_endpoint(sso_app, db, provider):
    agent = make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    provider.post_logout_redirect_uris.add(LOGIN_PAGE)
    client = sso_app.test_client()
    sign_in_through_provider(client)
    with client.session_transaction() as session:
        id_token = session["oidc_id_token"]

    response = sign_out(client)
    assert response.status_code == 200
    url = urlsplit(provider_sign_out_url(response))
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.netloc == provider.host and url.path == "/logout"
    assert params == {"id_token_hint": id_token, "client_id": "mainland", "post_logout_redirect_uri": LOGIN_PAGE}
    assert not signed_in(client), "our session ended before the trip to the provider"
    with client.session_transaction() as session:
        assert "oidc_id_token" not in session, "the ID token is kept no longer than the session"
    assert audit_entries(db, "logout")[0]["actor"] == f"agent:{agent['id']}"

    back = requests.get(url.geturl(), allow_redirects=False, timeout=5)
    assert back.status_code == 302 and back.headers["Location"] == LOGIN_PAGE
    assert provider.signed_out == ["sub-" + hashlib.sha256(b"ann@example.org").hexdigest()[:12]]
    assert "You are signed out." in client.get("/login").get_data(as_text=True)


def test_without_an_end_session_endpoint_signing_out_is_local(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.offer_end_session = False
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    sign_in_through_provider(client)
    response = sign_out(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(client) and provider.signed_out == []


def test_an_unreachable_provider_at_sign_out_still_signs_out_here(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    client = sso_app.test_client()
    sign_in_through_provider(client)
    sso_app.extensions.pop("oidc", None)  # the discovery document must be read again
    provider.fail_next(503, path_prefix="/.well-known")
    response = sign_out(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(client)


def test_a_password_sign_in_signs_out_here_only(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    client = sso_app.test_client()
    client.post("/login", data={"email": "ann@example.org", "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert signed_in(client)
    response = sign_out(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert provider.requests_to(r"^/logout$") == []


# The imitation's end-session endpoint follows the spec ----------------------------------------------

def issued_id_token(sso_app, provider):
    client = sso_app.test_client()
    sign_in_through_provider(client)
    with client.session_transaction() as session:
        return session["oidc_id_token"]


def test_the_provider_redirects_only_to_a_registered_post_logout_uri(sso_app, db, provider):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    provider.post_logout_redirect_uris.add(LOGIN_PAGE)
    id_token = issued_id_token(sso_app, provider)
    elsewhere = requests.get(f"{provider.url}/logout", params={
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example/login"},
        allow_redirects=False, timeout=5)
    assert elsewhere.status_code == 200 and "Location" not in elsewhere.headers
    with_state = requests.post(f"{provider.url}/logout", data={
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGIN_PAGE, "state": "s1"},
        allow_redirects=False, timeout=5)
    assert with_state.status_code == 302 and with_state.headers["Location"] == LOGIN_PAGE + "?state=s1"


def test_the_provider_refuses_an_id_token_hint_it_did_not_issue(sso_app, db, provider):
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    provider.post_logout_redirect_uris.add(LOGIN_PAGE)
    id_token = issued_id_token(sso_app, provider)
    claims = jwt.decode(id_token, KeySet([provider.key])).claims
    impostor = RSAKey.generate_key(2048, parameters={"kid": provider.key.kid})
    forged = jwt.encode({"alg": "RS256", "kid": impostor.kid}, claims, KeySet([impostor]))
    for params in ({"id_token_hint": forged, "post_logout_redirect_uri": LOGIN_PAGE},
                   {"id_token_hint": id_token, "client_id": "someone-else", "post_logout_redirect_uri": LOGIN_PAGE}):
        answer = requests.get(f"{provider.url}/logout", params=params, allow_redirects=False, timeout=5)
        assert answer.status_code == 400 and "Location" not in answer.headers
    assert provider.signed_out == []
    provider.rotate_keys()
    before_rotation = requests.get(f"{provider.url}/logout", params={
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGIN_PAGE}, allow_redirects=False, timeout=5)
    assert before_rotation.status_code == 302, "a token signed before a key rotation is still the provider's own"


def test_the_provider_accepts_an_expired_id_token_hint(sso_app, db, provider, frozen_clock):
    make_agent(db, email="ann@example.org")
    provider.sign_in_as("ann@example.org")
    provider.post_logout_redirect_uris.add(LOGIN_PAGE)
    id_token = issued_id_token(sso_app, provider)
    frozen_clock.advance(dt.timedelta(hours=2))
    answer = requests.get(f"{provider.url}/logout", params={
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGIN_PAGE}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302 and answer.headers["Location"] == LOGIN_PAGE
