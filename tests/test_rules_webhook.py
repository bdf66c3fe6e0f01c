"""The rules' webhook action (#15): a firing sent to a chosen webhook subscription through the outbound
webhooks' delivery (signed, retried, in that subscription's log), to a loopback receiver; a deleted
subscription fails the rule and nothing else; the dry run shows it and sends nothing."""

from __future__ import annotations

import json

import pytest

from inbox import rules, webhooks_out
from inbox.store.base import iso
from tests.engine_state import writes_seen
from tests.test_webhooks_out import SECRET, Receiver, ingest, make_mainland, subscribe

pytestmark = pytest.mark.server


@pytest.fixture
def setup(tmp_path, frozen_clock):
    receiver = Receiver()
    mainland = make_mainland(tmp_path, receiver)
    store = mainland.open_store(migrate=True)
    yield mainland, store, receiver, frozen_clock
    store.close()
    receiver.close()


def add_rule(store, *actions, name="Late orders", now) -> int:
    data = {"name": name, "trigger": "message_received", "trigger_minutes": None, "stop": False, "enabled": True,
            "conditions": [{"type": "text_contains", "value": "late"}], "actions": list(actions)}
    assert rules.check_rule(data) == []
    return store.create_rule(data, iso(now))


def test_a_firing_is_delivered_signed_to_the_chosen_subscription(setup):
    mainland, store, receiver, frozen = setup
    # The subscription listens for another event: the rule, not the event list, decides what it is sent.
    subscription = subscribe(mainland, store, receiver.url, events=("satisfaction.received",))
    rule_id = add_rule(store, {"type": "webhook", "value": subscription}, {"type": "add_label", "value": "late"},
                       now=frozen.now())
    ingest(mainland, store, body="My order is late.")

    report = webhooks_out.deliver_due(mainland, store, now=frozen.now())

    assert report.delivered == 1
    [request] = receiver.requests
    assert webhooks_out.verify(SECRET, request["headers"]["Mainland-Signature"], request["body"],
                               now=frozen.now().timestamp())
    event = json.loads(request["body"])
    assert event["type"] == webhooks_out.RULE_EVENT and request["headers"]["Mainland-Event-Id"] == event["id"]
    assert event["data"]["rule"]["id"] == rule_id and event["data"]["rule"]["name"] == "Late orders"
    assert event["data"]["rule"]["trigger"] == "message_received"
    cid = event["data"]["conversation"]["id"]
    assert event["data"]["message"]["text"].startswith("My order is late.")
    [firing] = store.conversation_rule_firings(cid)
    assert event["data"]["rule"]["firing_id"] == firing["id"]
    [logged] = store.webhook_deliveries(subscription)
    assert logged["event_type"] == webhooks_out.RULE_EVENT and logged["state"] == "delivered"
    assert logged["event_id"] == event["id"]
    [note] = [m for m in store.thread_messages(cid) if m["direction"] == "note"]
    assert note["text"] == f"Rule \u201cLate orders\u201d fired: sent it to the webhook {receiver.url}; added the label late."


def test_a_failed_delivery_of_a_firing_is_retried(setup):
    mainland, store, receiver, frozen = setup
    subscription = subscribe(mainland, store, receiver.url, events=("satisfaction.received",))
    add_rule(store, {"type": "webhook", "value": subscription}, now=frozen.now())
    ingest(mainland, store, body="Late again.")
    receiver.statuses = [503]

    assert webhooks_out.deliver_due(mainland, store, now=frozen.now()).retrying == 1
    frozen.advance(hours=1)
    assert webhooks_out.deliver_due(mainland, store, now=frozen.now()).delivered == 1
    first, second = (json.loads(r["body"]) for r in receiver.requests)
    assert first["id"] == second["id"], "the same event, sent again"


def test_a_deleted_subscription_fails_the_rule_not_the_ingest(setup):
    mainland, store, receiver, frozen = setup
    subscription = subscribe(mainland, store, receiver.url)
    rule_id = add_rule(store, {"type": "webhook", "value": subscription}, now=frozen.now())
    with store.write():
        store.delete_webhook_subscription(subscription)
    ingest(mainland, store, body="Still late.")

    rule = store.rule(rule_id)
    assert rule["failures"] == 1 and f"no webhook subscription {subscription}" in rule["last_error"]
    assert store.execute("SELECT count(*) FROM webhook_out_events").fetchone()[0] == 0
    assert store.execute("SELECT count(*) FROM messages").fetchone()[0] == 1, "the message is stored"


def test_the_dry_run_shows_the_webhook_and_sends_nothing(setup):
    mainland, store, receiver, frozen = setup
    subscription = subscribe(mainland, store, receiver.url, events=("satisfaction.received",))
    ingest(mainland, store, body="My parcel is late.")
    before = writes_seen(store)
    rule = {"name": "dry", "trigger": "message_received", "actions": [{"type": "webhook", "value": subscription}],
            "conditions": [{"type": "text_contains", "value": "late"}]}

    [hit] = rules.dry_run(rules.context_for(mainland, store, frozen.now()), rule)

    assert hit.would == ({"type": "webhook", "url": receiver.url},)
    assert writes_seen(store) == before, "nothing written"
    assert webhooks_out.deliver_due(mainland, store, now=frozen.now()).delivered == 0
    assert receiver.requests == []


@pytest.mark.parametrize("value", ["", "3", None, "webhook:3"])
def test_a_webhook_action_needs_a_subscription_id(value):
    data = {"name": "x", "trigger": "message_received", "actions": [{"type": "webhook", "value": value}]}
    assert rules.check_rule(data) == [("action:0", "choice")]
