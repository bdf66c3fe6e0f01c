"""API tokens made at /admin/tokens: shown once, stored hashed, scoped, last used, expiring, revoked.

Through the Flask app as an admin and as an API client: a token is made on the page, used on the CRM
API and the health JSON, seen as used on the page, revoked; scopes give 403s that name what is
missing; expiry and revocation give 401s; the database file never holds a token; the tokens of the
config file (`api_tokens`, the bootstrap) keep every scope and are shown without their value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest

from inbox.store.tokens import ApiTokens
from inbox.web import tokens as tokens_module
from tests.engine_state import sqlite_only
from tests.test_web_auth import csrf_token, login, make_agent, web_store  # noqa: F401

CONFIG_TOKEN = "config-file-token-0123456789abcdef"
OTHER_CONFIG_TOKEN = "another-config-token-9876543210"
ALL_SCOPES = ("customers:read", "customers:write", "health:read")


@pytest.fixture
def app_config(app_config):
    app_config["api_tokens"] = [CONFIG_TOKEN, OTHER_CONFIG_TOKEN]
    return app_config


@pytest.fixture
def admin(client, web_store, frozen_clock):  # noqa: F811
    person = make_agent(web_store, "adam@example.org", name="Adam Admin", role="admin")
    assert login(client, "adam@example.org").status_code == 302
    return person


def make_token(client, name="CRM sync", scopes=ALL_SCOPES, expiry="90") -> tuple[str, int]:
    """Create a token on the page; returns (token, id)."""
    response = client.post("/admin/tokens", data={"name": name, "scope": list(scopes), "expiry": expiry,
                                                  "csrf_token": csrf_token(client, "/admin/tokens")})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    token = re.search(r'id="new-token-value" type="text" value="(ml_[^"]+)"', page).group(1)
    return token, _id_by_name(client, name)


def _id_by_name(client, name: str) -> int:
    page = client.get("/admin/tokens").get_data(as_text=True)
    return int(re.search(rf'<tr id="token-(\d+)">\s*<td class="subject">{re.escape(name)}</td>', page).group(1))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_customer(client, token: str, ref: str = "C1"):
    return client.post("/api/customers", json={"crm_ref": ref, "name": "Api Person", "emails": [f"{ref}@example.com"]},
                       headers=bearer(token))


def token_row(client, token_id: int) -> str:
    page = client.get("/admin/tokens").get_data(as_text=True)
    return re.search(rf'<tr id="token-{token_id}">(.*?)</tr>', page, re.S).group(1)


def test_made_used_seen_as_used_then_revoked(client, admin, web_store, frozen_clock):  # noqa: F811
    token, token_id = make_token(client)
    assert len(token) == 3 + 43 and token.startswith("ml_")
    row = token_row(client, token_id)
    assert f"{token[:9]}…" in row and token not in row, "only the first characters stay visible"
    assert "Adam Admin" in row and "customer" in row
    last_used = re.findall(r"<td class=\"time\"[^>]*>(.*?)</td>", row, re.S)[1]
    assert "never" in last_used

    frozen_clock.advance(minutes=5)
    created = create_customer(client.application.test_client(), token)
    assert created.status_code == 201, created.get_json()
    last_used = re.findall(r"<td class=\"time\"[^>]*>(.*?)</td>", token_row(client, token_id), re.S)[1]
    assert "never" not in last_used and "<time" in last_used
    [entry] = [e for e in web_store.audit_entries(object_type="customer") if e["action"] == "customer_api_create"]
    assert entry["actor"] == f"token:{token_id}"

    revoke = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/admin/tokens")})
    assert revoke.status_code == 302
    refused = create_customer(client.application.test_client(), token, "C2")
    assert refused.status_code == 401 and refused.get_json()["ok"] is False
    assert "revoked" in token_row(client, token_id)
    actions = [e["action"] for e in web_store.audit_entries(object_type="api_token", object_id=token_id)]
    assert actions == ["api_token_revoked", "api_token_created"]


def test_a_token_without_the_scope_gets_403_naming_it(client, admin, web_store):  # noqa: F811
    reader, _ = make_token(client, "Reader", scopes=("customers:read",))
    api = client.application.test_client()
    refused = create_customer(api, reader)
    assert refused.status_code == 403
    assert refused.get_json() == {"ok": False, "error": "this token lacks the scope customers:write",
                                  "missing_scope": "customers:write"}
    assert web_store.customer_by_crm_ref("C1") is None
    assert api.get("/api/customers/999999", headers=bearer(reader)).status_code == 404, "reading is allowed"
    health = api.get("/-/connectors", headers=bearer(reader))
    assert health.status_code == 403 and health.get_json()["missing_scope"] == "health:read"
    assert "counts" not in api.get("/-/health", headers=bearer(reader)).get_json()

    writer, _ = make_token(client, "Writer", scopes=("customers:write",))
    assert create_customer(api, writer).status_code == 201
    read = api.get("/api/customers/1", headers=bearer(writer))
    assert read.status_code == 403 and read.get_json()["missing_scope"] == "customers:read"

    monitor, _ = make_token(client, "Monitor", scopes=("health:read",))
    assert api.get("/-/connectors", headers=bearer(monitor)).status_code == 200
    assert "messages" in api.get("/-/health", headers=bearer(monitor)).get_json()["counts"]
    assert create_customer(api, monitor, "C3").status_code == 403


def test_an_expired_token_gets_401(client, admin, frozen_clock):
    token, token_id = make_token(client, expiry="30")
    api = client.application.test_client()
    frozen_clock.advance(days=30, seconds=-1)
    assert create_customer(api, token).status_code == 201
    frozen_clock.advance(seconds=1)
    expired = create_customer(api, token, "C2")
    assert expired.status_code == 401 and expired.headers["WWW-Authenticate"].startswith("Bearer")
    login(client, "adam@example.org")  # the admin's session has timed out in those 30 days
    assert "expired" in token_row(client, token_id)


def test_last_used_is_written_at_most_once_a_minute(client, admin, web_store, frozen_clock,  # noqa: F811
                                                   monkeypatch):
    token, token_id = make_token(client)
    api = client.application.test_client()
    writes = []
    real = ApiTokens.note_used

    def counting(self, row, now):
        wrote = real(self, row, now)
        writes.append(wrote)
        return wrote

    # The app opens a store per request: count on the class.
    monkeypatch.setattr(ApiTokens, "note_used", counting)
    for _ in range(6):
        assert api.get("/api/customers/999999", headers=bearer(token)).status_code == 404
        frozen_clock.advance(seconds=10)
    first = web_store.api_tokens.get(token_id).last_used_at
    frozen_clock.advance(seconds=10)
    api.get("/api/customers/999999", headers=bearer(token))
    assert writes == [True, False, False, False, False, False, True]
    assert web_store.api_tokens.get(token_id).last_used_at > first


def test_the_database_file_holds_the_hash_never_the_token(app, client, admin, web_store):  # noqa: F811
    sqlite_only("the database file's bytes")
    token, token_id = make_token(client)
    assert create_customer(client.application.test_client(), token).status_code == 201
    database = Path(app.extensions["mainland"].config.database)
    files = [p for p in (database, Path(f"{database}-wal")) if p.exists()]
    content = b"".join(p.read_bytes() for p in files)
    assert token.encode() not in content
    assert token[9:].encode() not in content, "not even the secret part without the prefix"
    assert hashlib.sha256(token.encode()).hexdigest().encode() in content, "the hash is what is kept"


def test_lookup_is_by_hash_and_config_tokens_are_compared_in_constant_time(client, admin, web_store,  # noqa: F811
                                                                          monkeypatch):
    """The time taken must not tell how much of a token matched: a stored token is found by the hash of
    what was sent (never compared as text), a config token by `hmac.compare_digest` on equal-length digests,
    against every configured token."""
    token, _ = make_token(client)
    near_miss = token[:-1] + ("A" if token[-1] != "A" else "B")
    looked_up, compared = [], []
    real_lookup = ApiTokens.by_hash
    monkeypatch.setattr(ApiTokens, "by_hash",
                        lambda self, digest: looked_up.append(digest) or real_lookup(self, digest))
    real_compare = tokens_module.hmac.compare_digest
    monkeypatch.setattr(tokens_module.hmac, "compare_digest",
                        lambda a, b: compared.append((len(a), len(b))) or real_compare(a, b))
    api = client.application.test_client()
    assert create_customer(api, near_miss).status_code == 401
    assert looked_up == [hashlib.sha256(near_miss.encode()).hexdigest()]
    assert compared == [(32, 32), (32, 32)], "both config tokens, as SHA-256 digests"
    compared.clear()
    assert create_customer(api, CONFIG_TOKEN).status_code == 201
    assert compared == [(32, 32), (32, 32)], "the second is compared even when the first matched"


def test_config_file_tokens_keep_every_scope_and_are_shown_read_only(client, admin, web_store):  # noqa: F811
    api = client.application.test_client()
    assert create_customer(api, CONFIG_TOKEN).status_code == 201
    assert api.get("/api/customers/1", headers=bearer(OTHER_CONFIG_TOKEN)).status_code == 200
    assert api.get("/-/connectors", headers=bearer(CONFIG_TOKEN)).status_code == 200
    assert "counts" in api.get("/-/health", headers=bearer(CONFIG_TOKEN)).get_json()
    [entry] = [e for e in web_store.audit_entries(object_type="customer") if e["action"] == "customer_api_create"]
    assert entry["actor"] == "api:0"
    page = client.get("/admin/tokens").get_data(as_text=True)
    assert page.count("set in the config file") == 2
    assert CONFIG_TOKEN not in page and OTHER_CONFIG_TOKEN not in page
    assert "/revoke" not in page, "nothing to revoke here: they are changed in the file"


def test_the_form_checks_its_fields_and_its_csrf_token(client, admin, web_store):  # noqa: F811
    no_scope = client.post("/admin/tokens", data={"name": "Nothing", "expiry": "90",
                                                  "csrf_token": csrf_token(client, "/admin/tokens")})
    assert no_scope.status_code == 400 and "Choose at least one scope." in no_scope.get_data(as_text=True)
    no_name = client.post("/admin/tokens", data={"name": " \u202e ", "scope": "health:read", "expiry": "90",
                                                 "csrf_token": csrf_token(client, "/admin/tokens")})
    assert no_name.status_code == 400
    made_up = client.post("/admin/tokens", data={"name": "Odd", "scope": ["admin:all"], "expiry": "90",
                                                 "csrf_token": csrf_token(client, "/admin/tokens")})
    assert made_up.status_code == 400, "an unknown scope is no scope"
    bad_expiry = client.post("/admin/tokens", data={"name": "Odd", "scope": "health:read", "expiry": "99999",
                                                    "csrf_token": csrf_token(client, "/admin/tokens")})
    assert bad_expiry.status_code == 400
    no_csrf = client.post("/admin/tokens", data={"name": "Forged", "scope": "health:read", "expiry": ""})
    assert no_csrf.status_code == 400
    assert web_store.api_tokens.all() == []
    token, token_id = make_token(client, "Forever", expiry="")
    assert web_store.api_tokens.get(token_id).expires_at is None
    forged = client.post(f"/admin/tokens/{token_id}/revoke")
    assert forged.status_code == 400 and web_store.api_tokens.get(token_id).revoked_at is None
    assert client.post("/admin/tokens/999/revoke",
                       data={"csrf_token": csrf_token(client, "/admin/tokens")}).status_code == 404


def test_the_link_is_in_the_admins_navigation_only(client, admin, web_store):  # noqa: F811
    assert "/admin/tokens" in client.get("/").get_data(as_text=True)
    make_agent(web_store, "ann@example.org", role="manager")
    other = client.application.test_client()
    login(other, "ann@example.org")
    assert "/admin/tokens" not in other.get("/").get_data(as_text=True)
    assert other.get("/admin/tokens").status_code == 403


def test_expiry_is_counted_from_creation(client, admin, web_store, frozen_clock):  # noqa: F811
    _token, token_id = make_token(client, expiry="365")
    row = web_store.api_tokens.get(token_id)
    assert row.expires_at == (frozen_clock.now() + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
