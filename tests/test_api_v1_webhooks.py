"""REST API v1: webhook subscriptions (scope admin) through the same checks, changes and audit as
/admin/webhooks (inbox/webhooks_out.py), with the delivery log in keyset pages and replay."""

from __future__ import annotations

import pytest

from inbox import webhooks_out
from tests.test_api_v1 import ADMIN, READ_ONLY, READ_WRITE, api, audit_rows, auth, problem, token_actor, world  # noqa: F401

RECEIVER = "https://203.0.114.20/hooks/mainland"  # an address literal: the test machine resolves no names
PATH = "/api/v1/webhooks"


def admin(**more: str) -> dict[str, str]:
    return auth(ADMIN, **more)


def subscribe(api, url: str = RECEIVER, events=("message.received", "conversation.assigned"), **headers: str):  # noqa: F811
    return api.post(PATH, headers=admin(**headers), json={"url": url, "events": list(events)})


def test_subscribing_shows_the_secret_once_and_is_audited(api, world):  # noqa: F811
    response = subscribe(api)

    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    created = response.get_json()
    assert created["secret"].startswith(webhooks_out.SECRET_PREFIX)
    assert created["events"] == ["message.received", "conversation.assigned"] and created["state"] == "active"
    assert response.headers["Location"] == f"{PATH}/{created['id']}"
    stored = world.store.webhook_subscription(created["id"])
    assert created["secret"] not in stored["secret"], "the database keeps it sealed"
    listed = api.get(PATH, headers=admin()).get_json()["data"]
    one = api.get(f"{PATH}/{created['id']}", headers=admin()).get_json()
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0] and "secret" not in one
    [entry] = audit_rows(world, "webhook_created")
    assert entry["actor"] == token_actor(world, ADMIN) and entry["details"]["url"] == RECEIVER


def test_a_replayed_subscribe_acts_once_and_does_not_show_the_secret_again(api, world):  # noqa: F811
    first = subscribe(api, **{"Idempotency-Key": "sub-1"})
    again = subscribe(api, **{"Idempotency-Key": "sub-1"})
    assert again.status_code == 201 and again.headers["Idempotency-Replayed"] == "true"
    assert again.get_json() == {**first.get_json(), "secret": None}
    assert len(world.store.webhook_subscriptions()) == 1
    kept = world.store.execute("SELECT response_body FROM api_idempotency").fetchone()[0]
    assert first.get_json()["secret"] not in kept


@pytest.mark.parametrize("token", [READ_WRITE, READ_ONLY])
def test_subscriptions_need_the_admin_scope(api, world, token):  # noqa: F811
    assert problem(api.get(PATH, headers=auth(token)), 403)["missing_scope"] == "admin"
    body = problem(api.post(PATH, headers=auth(token), json={"url": RECEIVER, "events": ["message.sent"]}), 403)
    assert body["missing_scope"] == "admin"
    assert world.store.webhook_subscriptions() == []


@pytest.mark.parametrize("body, field, words", [
    ({"url": RECEIVER, "events": ["message.received", "message.exploded"]}, "events", "message.exploded"),
    ({"url": RECEIVER, "events": []}, "events", "at least one"),
    ({"url": RECEIVER, "events": "message.sent"}, "events", "list"),
    ({"url": "http://203.0.114.20/hook", "events": ["message.sent"]}, "url", "https://"),
    ({"url": "https://127.0.0.1/hook", "events": ["message.sent"]}, "url", "non-public"),
    ({"url": "https://169.254.169.254/latest/meta-data", "events": ["message.sent"]}, "url", "non-public"),
    ({"events": ["message.sent"]}, "url", "required"),
    ({"url": RECEIVER, "events": ["message.sent"], "secret": "mine"}, "secret", "not a field"),
])
def test_bad_subscriptions_are_422_problems_naming_the_field(api, world, body, field, words):  # noqa: F811
    refused = problem(api.post(PATH, headers=admin(**{"Accept-Language": "nl"}), json=body), 422)
    [error] = [e for e in refused["errors"] if e["field"] == field]
    assert words in error["message"], "the API speaks English, whatever the caller's language"
    assert world.store.webhook_subscriptions() == []


def test_changing_the_address_events_and_state_is_audited(api, world):  # noqa: F811
    subscription_id = subscribe(api).get_json()["id"]
    path = f"{PATH}/{subscription_id}"
    changed = api.patch(path, headers=admin(), json={"url": "https://203.0.114.21/new", "events": ["message.sent"]})
    assert changed.status_code == 200
    assert changed.get_json()["url"] == "https://203.0.114.21/new" and changed.get_json()["events"] == ["message.sent"]
    [entry] = audit_rows(world, "webhook_changed")
    assert entry["details"]["before"] == {"url": RECEIVER, "events": ["message.received", "conversation.assigned"]}
    assert entry["details"]["after"] == {"url": "https://203.0.114.21/new", "events": ["message.sent"]}

    assert api.patch(path, headers=admin(), json={"state": "paused"}).get_json()["state"] == "paused"
    assert world.store.webhook_subscription(subscription_id)["state"] == "paused"
    assert api.patch(path, headers=admin(), json={"state": "active"}).get_json()["state"] == "active"
    assert [e["actor"] for e in audit_rows(world, "webhook_paused") + audit_rows(world, "webhook_resumed")] == \
        [token_actor(world, ADMIN)] * 2

    problem(api.patch(path, headers=admin(), json={"state": "asleep"}), 422)
    problem(api.patch(path, headers=admin(), json={"events": ["nothing.happened"]}), 422)
    problem(api.patch(path, headers=admin(), json={"url": "https://10.0.0.1/x"}), 422)
    assert world.store.webhook_subscription(subscription_id)["events"] == ["message.sent"]
    api.patch(path, headers=admin(), json={"events": ["message.sent"]})
    assert len(audit_rows(world, "webhook_changed")) == 1, "no change, no audit entry"


def test_deleting_a_subscription(api, world):  # noqa: F811
    subscription_id = subscribe(api).get_json()["id"]
    response = api.delete(f"{PATH}/{subscription_id}", headers=admin())
    assert response.status_code == 204 and response.get_data() == b""
    assert world.store.webhook_subscription(subscription_id) is None
    assert [e["object_id"] for e in audit_rows(world, "webhook_deleted")] == [str(subscription_id)]
    problem(api.get(f"{PATH}/{subscription_id}", headers=admin()), 404)
    problem(api.delete(f"{PATH}/{subscription_id}", headers=admin()), 404)


def test_the_delivery_log_in_keyset_pages(api, world):  # noqa: F811
    subscription_id = subscribe(api).get_json()["id"]
    made = [api.post(f"{PATH}/{subscription_id}/test", headers=admin()).get_json() for _ in range(5)]
    assert all(d["event_type"] == webhooks_out.TEST_EVENT and d["state"] == "pending" for d in made)
    assert len(audit_rows(world, "webhook_test_sent")) == 5

    seen, cursor = [], None
    while True:
        page = api.get(f"{PATH}/{subscription_id}/deliveries", headers=admin(),
                       query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}).get_json()
        seen.append([d["id"] for d in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A delivery made meanwhile is newer than every page still to come: it never shifts them.
        api.post(f"{PATH}/{subscription_id}/test", headers=admin())
    assert seen == [[made[4]["id"], made[3]["id"]], [made[2]["id"], made[1]["id"]], [made[0]["id"]]]
    problem(api.get(f"{PATH}/{subscription_id}/deliveries", headers=admin(), query_string={"cursor": "nope"}), 400)
    problem(api.get(f"{PATH}/987654/deliveries", headers=admin()), 404)


def test_replay_sends_the_same_event_again_and_is_audited(api, world):  # noqa: F811
    subscription_id = subscribe(api).get_json()["id"]
    other_id = subscribe(api, url="https://203.0.114.22/other").get_json()["id"]
    first = api.post(f"{PATH}/{subscription_id}/test", headers=admin()).get_json()

    replay = api.post(f"{PATH}/{subscription_id}/deliveries/{first['id']}/replay", headers=admin())
    assert replay.status_code == 201
    again = replay.get_json()
    assert again["event_id"] == first["event_id"] and again["replay_of"] == first["id"] and again["id"] != first["id"]
    [entry] = audit_rows(world, "webhook_replayed")
    assert entry["details"]["event"] == first["event_id"] and entry["actor"] == token_actor(world, ADMIN)
    problem(api.post(f"{PATH}/{other_id}/deliveries/{first['id']}/replay", headers=admin()), 404)
    problem(api.post(f"{PATH}/{subscription_id}/deliveries/987654/replay", headers=admin()), 404)


def test_a_subscription_made_through_the_api_is_sent_its_events(api, world, frozen_clock):  # noqa: F811
    subscription_id = subscribe(api, events=("conversation.status_changed",)).get_json()["id"]
    api.patch(f"/api/v1/conversations/{world.conversation['a']}", headers=auth(), json={"status": "resolved"})
    webhooks_out.fan_out(world.store, frozen_clock.now())
    log = api.get(f"{PATH}/{subscription_id}/deliveries", headers=admin()).get_json()["data"]
    assert [d["event_type"] for d in log] == ["conversation.status_changed"]
