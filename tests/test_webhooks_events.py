"""Outbound webhook events (#15) are recorded where they happen, in the same transaction, and only while
someone listens; the worker fans each out once, to the subscriptions that listen for its type."""

from __future__ import annotations

import json

import pytest

from inbox import webhooks_out
from inbox.config import ConfigError, from_mapping
from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.mailfactory import raw_mail

NOW = "2026-11-23T09:00:00Z"


def subscribe(store, *events: str, url: str = "https://hooks.example.com/in") -> int:
    with store.write():
        return store.create_webhook_subscription(url=url, events=list(events), secret='{"$encrypted": "x"}',
                                                 created_by=None, now=NOW)


def ingest(ingestor, message_id: str = "<e1@example.net>") -> int:
    item = parse_email(raw_mail(message_id=message_id), channel="mail")
    return ingestor.ingest("mail", FetchResult(items=[item], cursor=None)).message_ids[0]


def event_types(store) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT type FROM webhook_out_events ORDER BY id")]


def test_nothing_is_recorded_while_no_subscription_listens(store, ingestor):
    message_id = ingest(ingestor)
    conversation_id = store.message(message_id)["conversation_id"]
    store.set_conversation_status(conversation_id, "resolved", None, NOW)
    assert event_types(store) == []


def test_each_change_is_recorded_once_with_what_changed(store, ingestor):
    subscribe(store, *webhooks_out.EVENT_TYPES)
    message_id = ingest(ingestor)
    conversation_id = store.message(message_id)["conversation_id"]
    agent = store.create_agent(email="ann@example.org", name="Ann", role="agent", password_hash=None)
    store.assign_conversation(conversation_id, assignee_id=agent, team_id=None, now=NOW)
    store.set_conversation_status(conversation_id, "resolved", None, NOW)
    store.set_conversation_status(conversation_id, "resolved", None, NOW)  # no change, no event

    assert event_types(store) == ["conversation.created", "message.received", "conversation.assigned",
                                  "conversation.status_changed"]
    rows = {r[0]: json.loads(r[1]) for r in store.conn.execute("SELECT type, data FROM webhook_out_events")}
    assert rows["conversation.status_changed"] == {"previous_status": "new", "status": "resolved"}
    assert rows["conversation.assigned"] == {"previous_assignee_id": None, "assignee_id": agent}


def test_a_write_rolled_back_leaves_no_event(store, ingestor):
    subscribe(store, "conversation.status_changed")
    conversation_id = store.message(ingest(ingestor))["conversation_id"]
    with pytest.raises(RuntimeError), store.write():
        store.conn.execute("UPDATE conversations SET status = 'resolved' WHERE id = ?", (conversation_id,))
        raise RuntimeError("the request failed after the change")
    assert event_types(store) == []


def test_fan_out_makes_one_delivery_per_listening_active_subscription_once(store, ingestor):
    listening = subscribe(store, "message.received")
    other = subscribe(store, "message.sent")
    paused = subscribe(store, "message.received")
    with store.write():
        store.set_webhook_subscription_state(paused, "paused", NOW)
    ingest(ingestor)

    assert webhooks_out.fan_out(store) == 1
    assert webhooks_out.fan_out(store) == 0
    assert [len(store.webhook_deliveries(s)) for s in (listening, other, paused)] == [1, 0, 0]
    [event] = store.conn.execute("SELECT payload FROM webhook_out_events").fetchall()
    body = json.loads(event[0])
    assert set(body) == {"id", "type", "created_at", "data"}
    assert body["data"]["message"]["attachments"] == []


@pytest.mark.parametrize("value, ok", [("24h", True), ("90m", True), (3600, True), ("soon", False),
                                       ("10s", False), ("60d", False)])
def test_pause_after_is_checked(tmp_path, value, ok):
    mapping = {"database": str(tmp_path / "m.db"), "data_dir": str(tmp_path / "d"), "webhooks": {"pause_after": value}}
    if ok:
        assert webhooks_out.pause_after(from_mapping(mapping, base=tmp_path)).total_seconds() > 0
    else:
        with pytest.raises(ConfigError, match="webhooks.pause_after"):
            from_mapping(mapping, base=tmp_path)


def test_an_unknown_webhooks_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="did you mean pause_after"):
        from_mapping({"database": str(tmp_path / "m.db"), "data_dir": str(tmp_path / "d"),
                      "webhooks": {"pause_afer": "1h"}}, base=tmp_path)


@pytest.mark.parametrize("url, problem", [
    ("http://hooks.example.com/in", "https://"),
    ("https://127.0.0.1/in", "non-public"),
    ("https://10.0.0.8/in", "non-public"),
    ("https://[::1]/in", "non-public"),
    ("ftp://hooks.example.com/in", "https://"),
    ("https://user:pw@8.8.8.8/in", "credentials"),
])
def test_receiver_addresses_are_refused_by_the_ssrf_guard(url, problem):
    assert problem in (webhooks_out.url_problem(url) or "")


def test_an_allow_listed_loopback_receiver_may_use_http():
    assert webhooks_out.url_problem("http://127.0.0.1:8025/in", ("127.0.0.1:8025",)) is None


def test_the_verification_example_in_the_docs_accepts_our_signature_and_nothing_else():
    import re
    import time
    from pathlib import Path

    docs = (Path(__file__).parents[1] / "docs" / "webhooks.md").read_text()
    namespace: dict = {}
    exec(re.search(r"```python\n(.*?)```", docs, re.S).group(1), namespace)  # noqa: S102 - our own docs
    verify = namespace["verify"]
    body = webhooks_out.payload("evt_1", "webhook.test", NOW, {"message": "hi"}).encode()
    now = int(time.time())
    assert verify("whsec_a", webhooks_out.signature("whsec_a", now, body), body)
    assert not verify("whsec_b", webhooks_out.signature("whsec_a", now, body), body)
    assert not verify("whsec_a", webhooks_out.signature("whsec_a", now, body), body + b"x")
    assert not verify("whsec_a", webhooks_out.signature("whsec_a", now - 900, body), body)


def test_a_reply_is_an_event_once_its_channel_accepted_it(store, ingestor):
    subscribe(store, "message.sent")
    conversation_id = store.message(ingest(ingestor))["conversation_id"]
    with store.write():
        reply = store.queue_outbound(outbox_id="ob-1", conversation_id=conversation_id, channel="mail", agent_id=None,
                                     text="On its way.", html=None, subject="Re: Order", message_id=None, refs="",
                                     author_name="Ann", now=NOW)
    assert event_types(store) == [], "queued is not sent"
    with store.write():
        store.mark_outbox_sent("ob-1", "provider-1", NOW)
    [row] = store.conn.execute("SELECT type, message_id FROM webhook_out_events").fetchall()
    assert tuple(row) == ("message.sent", reply)


def test_a_breach_announced_once_is_one_event(store, ingestor):
    subscribe(store, "service_level.breached")
    conversation_id = store.message(ingest(ingestor))["conversation_id"]
    with store.write():
        store.record_sla_notice(conversation_id, "first_response", "warning", NOW, NOW)
        store.record_sla_notice(conversation_id, "first_response", "breach", NOW, NOW)
        store.record_sla_notice(conversation_id, "first_response", "breach", NOW, NOW)
    rows = store.conn.execute("SELECT type, data FROM webhook_out_events").fetchall()
    assert [(r[0], json.loads(r[1])) for r in rows] == [
        ("service_level.breached", {"metric": "first_response", "due_at": NOW})]


def test_a_survey_answered_is_an_event_with_its_score(store, ingestor):
    subscribe(store, "satisfaction.received")
    conversation = store.conversation(store.message(ingest(ingestor))["conversation_id"])
    with store.write():
        survey = store.create_survey(conversation_id=conversation["id"], channel="mail",
                                     customer_id=conversation["customer_id"], agent_id=None, team_id=None, kind="link",
                                     token_hash="h" * 64, message_id=None, first_response_seconds=None, asked_at=NOW,
                                     expires_at="2026-12-23T09:00:00Z")
        store.answer_survey(survey, 4, "Quick and kind.", "2026-11-24T09:00:00Z")
        store.answer_survey(survey, 1, "again", "2026-11-24T09:00:00Z")  # single use: no second answer
    rows = store.conn.execute("SELECT type, data, created_at FROM webhook_out_events").fetchall()
    assert [(r[0], json.loads(r[1]), r[2]) for r in rows] == [
        ("satisfaction.received", {"score": 4, "comment": "Quick and kind.", "kind": "link"}, "2026-11-24T09:00:00Z")]


def test_finished_deliveries_are_forgotten_after_the_log_keeps_them(store, ingestor):
    sub = subscribe(store, "message.received")
    ingest(ingestor, "<old-1@example.net>")
    ingest(ingestor, "<old-2@example.net>")
    webhooks_out.fan_out(store)
    done, waiting = sorted(d["id"] for d in store.webhook_deliveries(sub))
    with store.write():
        store.finish_webhook_attempt(done, state="delivered", now=NOW, status_code=200, response_body=None,
                                     duration_ms=3, error=None)
        store.conn.execute("UPDATE webhook_out_events SET created_at = '2026-10-01T00:00:00Z'")
        assert store.forget_webhook_out_events("2026-10-20T00:00:00Z") == 1
    assert [d["id"] for d in store.webhook_deliveries(sub)] == [waiting], "one still waiting is kept"
