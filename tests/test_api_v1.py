"""REST API v1 (issue 15): every endpoint through the Flask app with bearer tokens.

The installation is tests/test_access.py `build_world` (teams A and B, a conversation on mail-a,
mail-b and the unrouted mail-x). Tokens act for the whole installation, so a token sees team B's
conversation as well as team A's.
"""

from __future__ import annotations

import json

import pytest

from inbox.store.base import iso
from inbox.web.tokens import token_digest
from tests.test_access import build_world

READ_WRITE = "ml_test-read-write-token-0123456789abcdefghijkl"
READ_ONLY = "ml_test-read-only-token-0123456789abcdefghijklm"
WRITE_ONLY = "ml_test-write-only-token-0123456789abcdefghijk"
ADMIN = "ml_test-admin-token-0123456789abcdefghijklmnopq"


@pytest.fixture
def world(tmp_path, frozen_clock):
    world = build_world(tmp_path)
    for token, scopes in ((READ_WRITE, ["read", "write"]), (READ_ONLY, ["read"]), (WRITE_ONLY, ["write"]),
                          (ADMIN, ["admin"])):
        world.store.api_tokens.create(name=f"Test {' '.join(scopes)}", token_hash=token_digest(token),
                                      prefix=token[:9], scopes=scopes, created_by=None, now=iso(frozen_clock.now()))
    yield world
    world.store.close()


@pytest.fixture
def api(world):
    return world.app.test_client()


def auth(token: str = READ_WRITE, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    return body


def audit_rows(world, action: str) -> list[dict]:
    rows = world.store.execute("SELECT actor, action, object_id, details FROM audit_log WHERE action = ? ORDER BY id",
                               [action]).fetchall()
    return [{"actor": r[0], "action": r[1], "object_id": r[2], "details": json.loads(r[3] or "{}")} for r in rows]


def token_actor(world, token: str) -> str:
    return f"token:{world.store.api_tokens.by_hash(token_digest(token)).id}"


# Authentication and scopes -------------------------------------------------------------------------

def test_no_token_is_a_401_problem_with_a_challenge(api, world):
    response = api.get("/api/v1/conversations")
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    problem(api.get("/api/v1/conversations", headers=auth("ml_unknown")), 401)


def test_reads_need_read_and_writes_need_write(api, world):
    conv = world.conversation["a"]
    body = problem(api.get(f"/api/v1/conversations/{conv}", headers=auth(WRITE_ONLY)), 403)
    assert body["missing_scope"] == "read"
    body = problem(api.patch(f"/api/v1/conversations/{conv}", json={"priority": 3}, headers=auth(READ_ONLY)), 403)
    assert body["missing_scope"] == "write"
    assert world.store.conversation(conv)["priority"] == 0, "a refused write changes nothing"
    assert api.get(f"/api/v1/conversations/{conv}", headers=auth(READ_ONLY)).status_code == 200


def test_revoked_token_is_refused(api, world):
    token_id = world.store.api_tokens.by_hash(token_digest(READ_WRITE)).id
    world.store.api_tokens.revoke(token_id, by=None)
    problem(api.get("/api/v1/agents", headers=auth()), 401)


def test_old_customer_api_keeps_its_scopes(api, world):
    # The v1 scopes do not open the CRM endpoints: those keep customers:read / customers:write.
    response = api.get(f"/api/customers/{world.customer['a']}", headers=auth())
    assert response.status_code == 403 and response.get_json()["missing_scope"] == "customers:read"


# Conversations ------------------------------------------------------------------------------------

def test_list_shows_every_team_newest_activity_first(api, world):
    data = api.get("/api/v1/conversations", headers=auth()).get_json()
    ids = [c["id"] for c in data["data"]]
    assert set(ids) == set(world.conversation.values()), "a token sees every team"
    times = [c["last_message_at"] for c in data["data"]]
    assert times == sorted(times, reverse=True)
    assert data["next_cursor"] is None


def test_list_filters(api, world):
    def ids(**params):
        response = api.get("/api/v1/conversations", query_string=params, headers=auth())
        assert response.status_code == 200, response.get_data(as_text=True)
        return {c["id"] for c in response.get_json()["data"]}

    assert ids(channel="mail-b") == {world.conversation["b"]}
    assert ids(team=str(world.team_a)) == {world.conversation["a"]}
    assert ids(team="none") == {world.conversation["x"]}
    assert ids(assignee="unassigned") == set(world.conversation.values())
    world.store.assign_conversation(world.conversation["a"], assignee_id=world.agents["agent_a"]["id"],
                                    team_id=world.team_a, now="2026-11-23T09:00:00Z")
    assert ids(assignee=str(world.agents["agent_a"]["id"])) == {world.conversation["a"]}
    world.store.set_conversation_priority(world.conversation["b"], 4, "2026-11-23T09:00:00Z")
    assert ids(priority="4") == {world.conversation["b"]}
    assert ids(status="resolved") == set()
    assert ids(q="alpha") == {world.conversation["a"]}


@pytest.mark.parametrize("params", [{"status": "bogus"}, {"channel": "nope"}, {"assignee": "mine"},
                                    {"limit": "0"}, {"limit": "1000"}, {"cursor": "not-a-cursor"},
                                    {"team": "99999"}, {"priority": "9"}])
def test_bad_filters_are_400_problems_naming_the_field(api, world, params):
    body = problem(api.get("/api/v1/conversations", query_string=params, headers=auth()), 400)
    assert [e["field"] for e in body["errors"]] == list(params)


def test_cursor_pages_are_stable_when_new_conversations_arrive(api, world, frozen_clock):
    first = api.get("/api/v1/conversations", query_string={"limit": 2}, headers=auth()).get_json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    # A conversation arriving between pages neither repeats nor shifts the next page.
    world.store.execute("UPDATE conversations SET last_message_at = '2099-01-01T00:00:00Z' WHERE id = ?",
                        [first["data"][0]["id"]])
    second = api.get("/api/v1/conversations", query_string={"limit": 2, "cursor": first["next_cursor"]},
                     headers=auth()).get_json()
    seen = [c["id"] for c in first["data"]] + [c["id"] for c in second["data"]]
    assert sorted(seen) == sorted(world.conversation.values()), "every conversation once"
    assert second["next_cursor"] is None
    again = api.get("/api/v1/conversations", query_string={"limit": 2, "cursor": first["next_cursor"]},
                    headers=auth()).get_json()
    assert again == second, "the same cursor gives the same page"


def test_one_conversation_and_unknown_ids(api, world):
    conv = api.get(f"/api/v1/conversations/{world.conversation['b']}", headers=auth()).get_json()
    assert conv["channel"] == "mail-b" and conv["team_id"] == world.team_b and conv["status"] == "new"
    problem(api.get("/api/v1/conversations/999999", headers=auth()), 404)
    problem(api.get("/api/v1/conversations/999999/messages", headers=auth()), 404)


def test_patch_changes_with_the_web_apps_rules_and_audit(api, world):
    conv = world.conversation["a"]
    agent_a = world.agents["agent_a"]["id"]
    response = api.patch(f"/api/v1/conversations/{conv}", headers=auth(),
                         json={"status": "pending", "assignee_id": agent_a, "priority": 3, "labels": ["VIP", "Refund"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["status"], body["assignee_id"], body["priority"]) == ("pending", agent_a, 3)
    assert sorted(body["labels"]) == ["Refund", "VIP"]
    actor = token_actor(world, READ_WRITE)
    [status] = audit_rows(world, "status")
    assert status["actor"] == actor and status["details"]["before"] == "new" and status["details"]["after"] == "pending"
    [assign] = audit_rows(world, "assign")
    assert assign["actor"] == actor and assign["details"]["assignee"] == agent_a
    [priority] = audit_rows(world, "priority")
    assert priority["details"] == {"before": 0, "after": 3}
    assert len(audit_rows(world, "bulk_label_add")) == 2
    # Labels are the full list: what is left out is removed.
    body = api.patch(f"/api/v1/conversations/{conv}", headers=auth(), json={"labels": ["vip"]}).get_json()
    assert body["labels"] == ["VIP"]
    assert len(audit_rows(world, "bulk_label_remove")) == 1


def test_patch_refuses_what_the_web_app_refuses(api, world):
    conv = world.conversation["a"]
    body = problem(api.patch(f"/api/v1/conversations/{conv}", headers=auth(), json={"status": "new"}), 422)
    assert body["errors"][0]["field"] == "status"
    body = problem(api.patch(f"/api/v1/conversations/{conv}", headers=auth(), json={"status": "snoozed"}), 409)
    assert body["code"] == "snooze_missing"
    # Agent B is not in team A: the web app refuses that assignment too.
    body = problem(api.patch(f"/api/v1/conversations/{conv}", headers=auth(),
                             json={"assignee_id": world.agents["agent_b"]["id"]}), 422)
    assert body["errors"] == [{"field": "assignee_id", "message": "this agent is not in the conversation's team"}]
    body = problem(api.patch(f"/api/v1/conversations/{conv}", headers=auth(),
                             json={"priority": 7, "team_id": 999, "colour": "red"}), 422)
    assert {e["field"] for e in body["errors"]} == {"priority", "team_id", "colour"}
    problem(api.patch(f"/api/v1/conversations/{conv}", headers=auth(), data="{not json",
                      content_type="application/json"), 400)
    assert world.store.conversation(conv)["status"] == "new" and not audit_rows(world, "status")


def test_snooze_through_patch(api, world, frozen_clock):
    conv = world.conversation["a"]
    until = "2026-11-24T09:00:00+00:00"
    body = api.patch(f"/api/v1/conversations/{conv}", headers=auth(),
                     json={"status": "snoozed", "snooze_until": until}).get_json()
    assert body["status"] == "snoozed"
    assert world.store.conversation(conv)["snoozed_until"].startswith("2026-11-24T09:00")


# Messages -------------------------------------------------------------------------------------------

def test_messages_list_in_order(api, world):
    data = api.get(f"/api/v1/conversations/{world.conversation['a']}/messages", headers=auth()).get_json()["data"]
    assert [m["direction"] for m in data] == ["in"] and "alpha parcel" in data[0]["text"]


def test_reply_goes_through_the_outbox_and_sets_the_send_status(api, world):
    conv = world.conversation["a"]
    response = api.post(f"/api/v1/conversations/{conv}/messages", headers=auth(),
                        json={"kind": "reply", "text": "Your parcel is on its way."})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["kind"] == "reply" and body["outbox_id"]
    assert body["message"]["direction"] == "out" and body["message"]["author_name"] == "API: Test read write"
    [row] = world.store.execute("SELECT m.text, o.state FROM outbox o JOIN messages m ON m.id = o.message_id "
                                "WHERE o.id = ?", [body["outbox_id"]]).fetchall()
    assert row[0] == "Your parcel is on its way." and row[1] == "pending"
    expected = world.store.team_default_send_status(world.team_a)
    assert body["conversation_status"] == expected == world.store.conversation(conv)["status"]


def test_reply_refused_by_sendability_says_why(api, world):
    conv = world.conversation["a"]
    world.store.set_conversation_status(conv, "spam", None, "2026-11-23T09:00:00Z")
    body = problem(api.post(f"/api/v1/conversations/{conv}/messages", headers=auth(),
                            json={"kind": "reply", "text": "Hello"}), 422)
    assert body["code"] == "blocked" and body["detail"].startswith("This conversation is marked as spam")
    assert world.store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_note_is_stored_as_the_web_app_stores_notes(api, world):
    conv = world.conversation["b"]
    response = api.post(f"/api/v1/conversations/{conv}/messages", headers=auth(),
                        json={"kind": "note", "text": "Checked with finance."})
    assert response.status_code == 201
    message = response.get_json()["message"]
    assert message["direction"] == "note" and message["text"] == "Checked with finance."
    assert world.store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0, "a note never leaves"


@pytest.mark.parametrize("body", [{"kind": "shout", "text": "x"}, {"kind": "note", "text": "  "},
                                  {"kind": "reply", "text": "Order {{order_number}}"}, {"text": "x"}])
def test_bad_messages_are_422(api, world, body):
    problem(api.post(f"/api/v1/conversations/{world.conversation['a']}/messages", headers=auth(), json=body), 422)
    assert world.store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


# Idempotency ----------------------------------------------------------------------------------------

def test_same_key_and_body_replays_without_acting_again(api, world):
    path = f"/api/v1/conversations/{world.conversation['a']}/messages"
    first = api.post(path, headers=auth(**{"Idempotency-Key": "k-1"}), json={"kind": "note", "text": "Once"})
    again = api.post(path, headers=auth(**{"Idempotency-Key": "k-1"}), json={"kind": "note", "text": "Once"})
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotency-Replayed"] == "true"
    notes = world.store.execute("SELECT count(*) FROM messages WHERE direction = 'note'").fetchone()[0]
    assert notes == 1


def test_same_key_with_another_body_is_422(api, world):
    path = f"/api/v1/conversations/{world.conversation['a']}/messages"
    api.post(path, headers=auth(**{"Idempotency-Key": "k-2"}), json={"kind": "note", "text": "One"})
    body = problem(api.post(path, headers=auth(**{"Idempotency-Key": "k-2"}), json={"kind": "note", "text": "Two"}),
                   422)
    assert body["type"].endswith("idempotency-key-reused")
    assert world.store.execute("SELECT count(*) FROM messages WHERE direction = 'note'").fetchone()[0] == 1


def test_keys_belong_to_one_token_and_expire_after_a_day(api, world, frozen_clock):
    path = f"/api/v1/conversations/{world.conversation['a']}"
    api.patch(path, headers=auth(**{"Idempotency-Key": "k-3"}), json={"priority": 1})
    frozen_clock.advance(hours=25)
    assert world.store.api_idempotency.expire(frozen_clock.now()) == 1
    response = api.patch(path, headers=auth(**{"Idempotency-Key": "k-3"}), json={"priority": 2})
    assert response.status_code == 200 and response.get_json()["priority"] == 2


def test_two_requests_in_flight_with_one_key_act_once(world, monkeypatch):
    """The second request arrives while the first is acting: it gets a 409, not a second note; after the
    first is answered, the same request replays its answer."""
    import threading

    from inbox.web import api_v1

    entered, release = threading.Event(), threading.Event()
    add_note = api_v1._add_note
    calls = []

    def held_add_note(conversation, text):
        calls.append(text)
        if len(calls) == 1:  # only the first request waits; a second one acting would count two calls
            entered.set()
            assert release.wait(10), "the test never let the first request go"
        return add_note(conversation, text)

    monkeypatch.setattr(api_v1, "_add_note", held_add_note)
    path = f"/api/v1/conversations/{world.conversation['a']}/messages"
    request = {"headers": auth(**{"Idempotency-Key": "race-1"}), "json": {"kind": "note", "text": "Once"}}
    answers = {}
    first = threading.Thread(target=lambda: answers.update(first=world.app.test_client().post(path, **request)))
    first.start()
    try:
        assert entered.wait(10), "the first request never reached the note"
        body = problem(world.app.test_client().post(path, **request), 409)
        assert body["type"].endswith("idempotency-key-in-progress")
    finally:
        release.set()
        first.join(10)
    assert answers["first"].status_code == 201
    again = world.app.test_client().post(path, **request)
    assert again.status_code == 201 and again.headers["Idempotency-Replayed"] == "true"
    assert again.get_json() == answers["first"].get_json()
    assert calls == ["Once"]
    assert world.store.execute("SELECT count(*) FROM messages WHERE direction = 'note'").fetchone()[0] == 1


def test_a_failed_request_lets_its_key_go(api, world, monkeypatch):
    from inbox.web import api_v1

    path = f"/api/v1/conversations/{world.conversation['a']}/messages"
    request = {"headers": auth(**{"Idempotency-Key": "fails-once"}), "json": {"kind": "note", "text": "Retry me"}}
    add_note = api_v1._add_note

    def broken(conversation, text):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(api_v1, "_add_note", broken)
    problem(api.post(path, **request), 500)
    monkeypatch.setattr(api_v1, "_add_note", add_note)
    response = api.post(path, **request)
    assert response.status_code == 201 and "Idempotency-Replayed" not in response.headers


def test_a_claim_left_by_a_stopped_process_expires(api, world, frozen_clock):
    from inbox.store.api import CLAIM_TIMEOUT

    path = f"/api/v1/conversations/{world.conversation['a']}/messages"
    request = {"headers": auth(**{"Idempotency-Key": "orphan"}), "json": {"kind": "note", "text": "Later"}}
    # A claim as a process that stopped mid-request leaves it (same request, never answered).
    with world.app.test_request_context(path, method="POST", **request):
        what, body_hash = "POST " + path, api_v1_hash()
    assert world.store.api_idempotency.claim(token_actor(world, READ_WRITE), "orphan", request=what,
                                             body_hash=body_hash, now=frozen_clock.now()) is None
    problem(api.post(path, **request), 409)
    frozen_clock.advance(seconds=CLAIM_TIMEOUT.total_seconds() + 1)
    assert api.post(path, **request).status_code == 201


def api_v1_hash() -> str:
    from inbox.web.api_v1 import _request_hash

    return _request_hash()


# Customers, agents, teams, the document -----------------------------------------------------------------

def test_customers_search_and_read(api, world):
    data = api.get("/api/v1/customers", query_string={"q": "bettina@example.net"}, headers=auth()).get_json()["data"]
    assert [c["id"] for c in data] == [world.customer["b"]]
    by_name = api.get("/api/v1/customers", query_string={"q": "alpha"}, headers=auth()).get_json()["data"]
    assert [c["id"] for c in by_name] == [world.customer["a"]]
    assert len(api.get("/api/v1/customers", headers=auth()).get_json()["data"]) == 3
    customer = api.get(f"/api/v1/customers/{world.customer['b']}", headers=auth()).get_json()
    assert {"kind": "email", "value": "bettina@example.net"} in customer["identities"]
    problem(api.get("/api/v1/customers/987654", headers=auth()), 404)


def test_agents_and_teams(api, world):
    agents = api.get("/api/v1/agents", headers=auth()).get_json()["data"]
    assert {a["email"] for a in agents} >= {"ann@example.org", "bob@example.org"}
    assert all("password_hash" not in a for a in agents)
    teams = api.get("/api/v1/teams", headers=auth()).get_json()["data"]
    assert {t["name"] for t in teams} == {"Team A", "Team B"}


def test_rate_limit_is_per_token(api, world, monkeypatch):
    from inbox.web import security

    security.limiter.reset()
    statuses = [api.get("/api/v1/teams", headers=auth()).status_code for _ in range(601)]
    assert statuses[:600] == [200] * 600
    problem(api.get("/api/v1/teams", headers=auth()), 429)
    assert api.get("/api/v1/teams", headers=auth(READ_ONLY)).status_code == 200, "another token has its own limit"
    security.limiter.reset()


def test_head_and_options_change_nothing(api, world):
    conv = world.conversation["a"]
    for method in ("HEAD", "OPTIONS"):
        api.open(f"/api/v1/conversations/{conv}/messages", method=method, headers=auth(),
                 json={"kind": "note", "text": "not stored"})
        api.open(f"/api/v1/conversations/{conv}", method=method, headers=auth(), json={"priority": 4})
    assert world.store.execute("SELECT count(*) FROM messages WHERE direction = 'note'").fetchone()[0] == 0
    assert world.store.conversation(conv)["priority"] == 0


# Problems for what no route serves, and for bodies the API cannot read ----------------------------------

@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/conversations/1/nothing", "/api/v1"])
def test_an_unknown_path_is_a_404_problem(api, world, method, path):
    for headers in ({}, auth()):
        body = problem(api.open(path, method=method, headers=headers), 404)
        assert body["title"] == "Not Found"


def test_a_method_the_path_does_not_take_is_a_405_problem_with_allow(api, world):
    response = api.delete(f"/api/v1/conversations/{world.conversation['a']}", headers=auth())
    problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PATCH"}
    response = api.post("/api/v1/teams", headers=auth(), json={})
    problem(response, 405)
    assert "POST" not in response.headers["Allow"] and "GET" in response.headers["Allow"]


def test_pages_outside_the_api_keep_the_web_apps_error_page(api, world):
    response = api.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_head_answers_as_get_without_a_body(api, world):
    response = api.head("/api/v1/teams", headers=auth())
    assert response.status_code == 200 and response.get_data() == b""
    assert response.mimetype == "application/json"
    missing = api.head("/api/v1/nothing", headers=auth())
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert api.head("/api/v1/teams").status_code == 401


def test_options_names_the_methods_and_runs_nothing(api, world):
    conv = world.conversation["a"]
    response = api.options(f"/api/v1/conversations/{conv}")
    assert response.status_code == 204 and response.get_data() == b""
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PATCH"}
    problem(api.options("/api/v1/nothing"), 404)


def test_an_oversized_body_is_a_413_problem(api, world):
    path = f"/api/v1/conversations/{world.conversation['a']}/messages"
    text = "x" * (300 * 1024)
    problem(api.post(path, headers=auth(), json={"kind": "note", "text": text}), 413)
    assert world.store.execute("SELECT count(*) FROM messages WHERE direction = 'note'").fetchone()[0] == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415_problem(api, world, content_type):
    path = f"/api/v1/conversations/{world.conversation['a']}"
    headers = auth(**({"Content-Type": content_type} if content_type else {}))
    body = problem(api.patch(path, headers=headers, data='{"priority": 3}'), 415)
    assert body["type"].endswith("unsupported-media-type")
    assert world.store.conversation(world.conversation["a"])["priority"] == 0


def test_a_body_that_does_not_parse_is_a_400_problem(api, world):
    path = f"/api/v1/conversations/{world.conversation['a']}"
    body = problem(api.patch(path, headers=auth(**{"Content-Type": "application/json"}), data="{priority: 3"), 400)
    assert body["errors"] == [{"field": "body", "message": "not valid JSON"}]
    assert api.patch(path, headers=auth(**{"Content-Type": "application/merge-patch+json"}),
                     data='{"priority": 3}').status_code == 200


# mainland api-token ---------------------------------------------------------------------------------

def test_cli_token_create_list_revoke(tmp_path, frozen_clock):
    import yaml
    from click.testing import CliRunner

    from inbox import create_app
    from inbox.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": str(tmp_path / "cli.db"), "data_dir": str(tmp_path / "data"),
                                      "secret_key": "test-secret", "channels": {}}))

    def cli(*args: str):
        return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)

    made = cli("api-token", "create", "--name", "CRM sync", "--scope", "read,write", "--expires-days", "30")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("ml_") and len(token) == 46
    assert cli("api-token", "create", "--name", "x", "--scope", "read,fly").exit_code == 2

    listed = cli("api-token", "list")
    assert "CRM sync" in listed.output and "read write" in listed.output and token not in listed.output
    assert token[:9] in listed.output and "active" in listed.output and "2026-12-23" in listed.output

    app = create_app({"database": str(tmp_path / "cli.db"), "data_dir": str(tmp_path / "data"),
                      "secret_key": "test-secret", "channels": {}})
    client = app.test_client()
    assert client.get("/api/v1/teams", headers=auth(token)).status_code == 200
    store = app.extensions["mainland"].open_store()
    token_id = store.api_tokens.by_hash(token_digest(token)).id
    assert cli("api-token", "revoke", str(token_id)).exit_code == 0
    problem(client.get("/api/v1/teams", headers=auth(token)), 401)
    actions = [r[0] for r in store.execute("SELECT action FROM audit_log WHERE actor = 'cli' ORDER BY id")]
    assert actions == ["api_token_created", "api_token_revoked"]
    assert "revoked already" in cli("api-token", "revoke", str(token_id)).output
    assert cli("api-token", "revoke", "999").exit_code == 1
    store.close()


def test_admin_page_offers_the_v1_scopes_and_its_tokens_work(world, frozen_clock):
    from tests.test_api_tokens import make_token
    from tests.test_web_auth import login

    browser = world.app.test_client()
    assert login(browser, "ada@example.org").status_code == 302
    page = browser.get("/admin/tokens").get_data(as_text=True)
    for scope in ("read", "write", "admin"):
        assert f'value="{scope}"' in page
    token, _token_id = make_token(browser, name="Reader", scopes=("read",))
    api = world.app.test_client()
    assert api.get("/api/v1/teams", headers=auth(token)).status_code == 200
    problem(api.patch(f"/api/v1/conversations/{world.conversation['a']}", headers=auth(token), json={"priority": 1}),
            403)
    admin_token, _ = make_token(browser, name="Everything", scopes=("admin",))
    response = api.patch(f"/api/v1/conversations/{world.conversation['a']}", headers=auth(admin_token),
                         json={"priority": 1})
    assert response.status_code == 200


def test_housekeeping_deletes_idempotency_keys_a_day_old(tmp_path, frozen_clock):
    import datetime as dt

    from inbox import config as config_module
    from inbox.runtime import Mainland
    from inbox.worker import Worker
    from tests.test_worker import wait

    cfg = config_module.from_mapping({"database": str(tmp_path / "hk.db"), "data_dir": str(tmp_path / "data"),
                                      "secret_key": "test", "channels": {},
                                      "worker": {"lease_seconds": 2, "renew_every": 0.05, "checkpoint_every": 0.2}},
                                     base=tmp_path)
    mainland = Mainland(cfg)
    store = mainland.open_store(migrate=True)
    for key, age in (("old", dt.timedelta(hours=25)), ("new", dt.timedelta(hours=1))):
        store.api_idempotency.keep("token:1", key, request="POST /api/v1/x", body_hash="h", status=201,
                                   response_body="{}", now=frozen_clock.now() - age)

    def keys() -> list[str]:
        return [r[0] for r in store.execute("SELECT idempotency_key FROM api_idempotency")]

    worker = Worker(mainland)
    worker.start()
    try:
        wait(worker, lambda: worker.runs["housekeeping"] >= 1 and keys() == ["new"])
    finally:
        worker.stop()
        store.close()
