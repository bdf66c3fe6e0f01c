"""Automation rules (issue 15): every trigger, condition and action, order and "stop here", the dry
run, loop protection, the timeline and the audit log, failures that never reach ingest."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from connectors.base import Connector, Limits
from inbox import rules
from inbox.config import from_mapping
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import send_due
from inbox.runtime import Mainland
from inbox.store.base import iso
from tests.engine_state import writes_seen

T0 = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)  # a Wednesday, 09:00 UTC
M = dt.timedelta(minutes=1)
_IDS = itertools.count(1)


class RuleChat(Connector):
    kind = "rule-chat"
    display_name = "Chat"
    limits = Limits(max_text_length=1000, supports_attachments=False)
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        RuleChat.sent.append(reply)
        return f"chat-{len(RuleChat.sent)}"


@pytest.fixture
def mainland(tmp_path):
    RuleChat.sent = []
    config = from_mapping({
        "database": str(tmp_path / "m.db"), "mail_domain": "mainland.test",
        "channels": {"chat": {"kind": RuleChat.kind}, "shop": {"kind": RuleChat.kind}},
        "service_levels": {"policy": {"first_response": {"desired": "30m", "adequate": "2h"}},
                           "warn_before": "15m",
                           "business_hours": {"timezone": "UTC", "hours": {"weekdays": "09:00-17:00"}}},
    }, base=tmp_path)
    return Mainland(config, extra_connectors=[RuleChat])


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def ingest(mainland, store, text="Where is my parcel?", *, channel="chat", when=T0, handle="cleo-42", thread=None,
           public=False):
    n = next(_IDS)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel=channel, external_id=f"in-{n}", author=Author(handle, "Cleo Customer"), text=text,
                       thread_key=thread or f"{handle}-{n}", sent_at=when, public=public)
    report = ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)
    return report.new_conversations[0] if report.new_conversations else None


def add_rule(store, *actions, trigger="message_received", conditions=(), stop=False, name=None, minutes=None,
             enabled=True):
    data = {"name": name or f"rule {next(_IDS)}", "trigger": trigger, "trigger_minutes": minutes,
            "conditions": list(conditions), "actions": list(actions), "stop": stop, "enabled": enabled}
    assert rules.check_rule(data) == []
    return store.create_rule(data, iso(T0))


def labels(store, cid):
    return [label["name"] for label in store.labels_of([cid]).get(cid, [])]


def label(name):
    return {"type": "add_label", "value": name}


# Triggers --------------------------------------------------------------------------------------------------

def test_message_received_fires_on_every_customer_message_once(mainland, store):
    add_rule(store, label("seen"))
    cid = ingest(mainland, store, thread="t1")
    assert labels(store, cid) == ["seen"]
    ingest(mainland, store, "And again", thread="t1", when=T0 + M)
    firings = store.conversation_rule_firings(cid)
    assert [f["event_key"].split(":")[0] for f in firings] == ["received", "received"]
    assert len({f["event_key"] for f in firings}) == 2, "one firing per message"


def test_conversation_created_fires_only_for_a_new_conversation(mainland, store):
    add_rule(store, {"type": "set_priority", "value": 3}, trigger="conversation_created")
    cid = ingest(mainland, store, thread="t2")
    store.set_conversation_priority(cid, 0, iso(T0))
    ingest(mainland, store, "more", thread="t2", when=T0 + M)
    assert store.conversation(cid)["priority"] == 0, "the second message starts no conversation"
    assert len(store.conversation_rule_firings(cid)) == 1


def test_status_changed_fires_after_a_status_change(mainland, store):
    add_rule(store, label("parked"), trigger="status_changed", conditions=[{"type": "status", "value": "pending"}])
    cid = ingest(mainland, store)
    store.set_conversation_status(cid, "pending", None, iso(T0 + M))
    assert rules.after_status_change(mainland, store, cid, "new", "pending", T0 + M) == 1
    assert labels(store, cid) == ["parked"]


@pytest.mark.parametrize("level, due_after", [("desired", 30 * M), ("adequate", 120 * M)])
def test_service_level_about_to_pass_fires_once_per_due_time(mainland, store, level, due_after):
    add_rule(store, label(f"near-{level}"), trigger=f"sla_{level}")
    cid = ingest(mainland, store)
    assert store.conversation(cid)["first_response_due_" + level] == iso(T0 + due_after)
    assert rules.run_timed(mainland, store, T0 + due_after - 20 * M) == 0, "not yet within warn_before"
    assert rules.run_timed(mainland, store, T0 + due_after - 10 * M) == 1
    assert rules.run_timed(mainland, store, T0 + due_after - 5 * M) == 0, "once per due time"
    assert labels(store, cid) == [f"near-{level}"]


def test_waiting_longer_than_fires_once_per_waiting_period(mainland, store):
    add_rule(store, label("long wait"), trigger="waiting", minutes=45)
    cid = ingest(mainland, store)
    assert rules.run_timed(mainland, store, T0 + 44 * M) == 0
    assert rules.run_timed(mainland, store, T0 + 46 * M) == 1
    assert rules.run_timed(mainland, store, T0 + 90 * M) == 0
    assert labels(store, cid) == ["long wait"]


# Conditions ------------------------------------------------------------------------------------------------

CASES = [
    ({"type": "channel", "value": "shop"}, {"channel": "shop"}, {"channel": "chat"}),
    ({"type": "visibility", "value": "public"}, {"public": True}, {"public": False}),
    ({"type": "text_contains", "value": "REFUND"}, {"text": "I want a refund"}, {"text": "Hello there"}),
    ({"type": "text_matches", "value": r"order\s*#?\d{5}"}, {"text": "About order #12345"}, {"text": "order 12"}),
    ({"type": "language", "value": "nl"}, {"text": "Waar is mijn pakket? Ik heb het nog niet ontvangen"},
     {"text": "Where is my parcel? I have not received it"}),
]


@pytest.mark.parametrize("condition, fits, misses", CASES, ids=[c[0]["type"] for c in CASES])
def test_condition_on_the_message(mainland, store, condition, fits, misses):
    add_rule(store, label("hit"), conditions=[condition])
    hit = ingest(mainland, store, **fits)
    miss = ingest(mainland, store, **misses)
    assert labels(store, hit) == ["hit"]
    assert labels(store, miss) == []


def test_condition_customer_attribute(mainland, store):
    add_rule(store, label("vip"), conditions=[{"type": "customer_attribute", "key": "plan", "value": "Gold"}])
    first = ingest(mainland, store, handle="gold-1", thread="g1")
    customer_id = store.conversation(first)["customer_id"]
    store.set_customer_attribute(customer_id, "plan", "gold", iso(T0))
    second = ingest(mainland, store, "again", handle="gold-1", thread="g1", when=T0 + M)
    other = ingest(mainland, store, handle="plain-2")
    assert second is None, "the same thread"
    assert labels(store, first) == ["vip"], "fires on the message after the attribute was set"
    assert labels(store, other) == []


def test_condition_team_and_priority(mainland, store):
    team = store.create_team("Billing")
    add_rule(store, label("billing urgent"), trigger="status_changed",
             conditions=[{"type": "team", "value": team}, {"type": "priority", "op": "at_least", "value": 3}])
    cid = ingest(mainland, store)
    other = ingest(mainland, store)
    for conversation_id in (cid, other):
        store.assign_conversation(conversation_id, assignee_id=None, team_id=team, now=iso(T0))
    store.set_conversation_priority(cid, 4, iso(T0))
    store.set_conversation_priority(other, 2, iso(T0))
    for conversation_id in (cid, other):
        rules.after_status_change(mainland, store, conversation_id, "new", "open", T0 + M)
    assert labels(store, cid) == ["billing urgent"]
    assert labels(store, other) == []


def test_condition_within_business_hours(mainland, store):
    add_rule(store, label("after hours"), conditions=[{"type": "business_hours", "value": "outside"}])
    daytime = ingest(mainland, store, when=T0 + 60 * M)
    night = ingest(mainland, store, when=T0 + 12 * 60 * M)  # 21:00
    assert labels(store, daytime) == []
    assert labels(store, night) == ["after hours"]


# Actions ---------------------------------------------------------------------------------------------------

def test_actions_assign_team_and_agent_priority_status_label_and_note(mainland, store):
    team = store.create_team("Returns")
    agent = store.create_agent(email="rita@example.org", name="Rita", role="agent", password_hash=None)
    store.add_team_member(team, agent)
    add_rule(store, {"type": "assign_team", "value": team}, {"type": "assign_agent", "value": agent},
             {"type": "set_priority", "value": 4}, {"type": "set_status", "value": "pending"},
             label("returns"), {"type": "note", "value": "Check the return label first."})
    cid = ingest(mainland, store)
    row = store.conversation(cid)
    assert (row["team_id"], row["assignee_id"], row["priority"], row["status"]) == (team, agent, 4, "pending")
    assert labels(store, cid) == ["returns"]
    notes = [m for m in store.thread_messages(cid) if m["direction"] == "note"]
    assert any(m["text"] == "Check the return label first." for m in notes)
    assert [n.kind for n in store.notifications.of(agent, None)] == ["assigned"]


def test_action_remove_label(mainland, store):
    add_rule(store, {"type": "remove_label", "value": "new customer"}, trigger="status_changed")
    cid = ingest(mainland, store)
    store.bulk_update([cid], action="label_add", value=store.ensure_label("new customer"), actor="test")
    rules.after_status_change(mainland, store, cid, "new", "open", T0 + M)
    assert labels(store, cid) == []


def test_action_notify_the_team_leads(mainland, store):
    lead = store.create_agent(email="lea@example.org", name="Lea", role="lead", password_hash=None)
    add_rule(store, {"type": "notify", "value": "leads"})
    cid = ingest(mainland, store)
    [notice] = store.notifications.of(lead, None)
    assert (notice.kind, notice.conversation_id) == ("rule", cid)


def test_action_reply_with_a_library_answer_goes_out_through_the_outbox(mainland, store):
    answer = store.answers.create(title="Parcel times", body="Hello {{customer_name}}, parcels take two days.",
                                  language="en", tags=["parcel"], owner_id=None, now=iso(T0))
    add_rule(store, {"type": "reply", "value": answer}, conditions=[{"type": "text_contains", "value": "parcel"}])
    cid = ingest(mainland, store)
    send_due(mainland, store, now=T0 + M)
    [sent] = RuleChat.sent
    assert sent.text == "Hello Cleo Customer, parcels take two days." and sent.automatic
    row = store.conversation(cid)
    assert row["status"] == "new" and row["first_response_at"] is None, "an automatic answer is no answer"


def test_a_reply_is_never_sent_in_public(mainland, store):
    answer = store.answers.create(title="Hi", body="Hello", language="en", tags=[], owner_id=None, now=iso(T0))
    add_rule(store, {"type": "reply", "value": answer})
    cid = ingest(mainland, store, public=True)
    send_due(mainland, store, now=T0 + M)
    assert RuleChat.sent == []
    [firing] = store.conversation_rule_firings(cid)
    assert firing["done"] == [{"type": "reply", "refused": "public"}]


# Order, stop, enabled ---------------------------------------------------------------------------------------

def test_rules_run_in_order(mainland, store):
    add_rule(store, {"type": "set_priority", "value": 1})
    later = add_rule(store, {"type": "set_priority", "value": 3})
    cid = ingest(mainland, store)
    assert store.conversation(cid)["priority"] == 3, "the later rule ran last"
    assert store.move_rule(later, -1, iso(T0 + M))
    assert not store.move_rule(later, -1, iso(T0 + M)), "already first"
    other = ingest(mainland, store)
    assert store.conversation(other)["priority"] == 1, "after the move, the other rule runs last"


def test_stop_here_ends_the_list_when_the_rule_fires(mainland, store):
    add_rule(store, {"type": "set_priority", "value": 3}, stop=True,
             conditions=[{"type": "text_contains", "value": "urgent"}])
    add_rule(store, label("looked at"))
    stopped = ingest(mainland, store, "urgent: broken")
    went_on = ingest(mainland, store, "just a question")
    assert labels(store, stopped) == [] and store.conversation(stopped)["priority"] == 3
    assert labels(store, went_on) == ["looked at"], "a rule that did not fire does not stop the list"


def test_a_mailbox_import_runs_no_rules(mainland, store):
    add_rule(store, label("imported?"))
    item = InboundItem(channel="chat", external_id="old-1", author=Author("old", "Old Customer"), text="From 2019",
                       thread_key="old-1", sent_at=T0)
    report = mainland.ingestor(store, rules_run=False).ingest("chat", FetchResult(items=[item], cursor=None))
    assert labels(store, report.new_conversations[0]) == []


def test_a_changed_rule_is_compiled_again_even_in_the_same_instant(mainland, store):
    rule_id = add_rule(store, label("first"))
    first = ingest(mainland, store)
    store.update_rule(rule_id, {"name": "same", "trigger": "message_received", "conditions": [],
                                "actions": [label("second")], "enabled": True}, iso(T0))
    second = ingest(mainland, store)
    assert (labels(store, first), labels(store, second)) == (["first"], ["second"])


def test_a_disabled_rule_does_nothing(mainland, store):
    rule_id = add_rule(store, label("off"))
    store.set_rule_enabled(rule_id, False, iso(T0 + M))
    cid = ingest(mainland, store)
    assert labels(store, cid) == []


# Loops, timeline, audit ---------------------------------------------------------------------------------------

def test_two_rules_that_undo_each_other_stop(mainland, store):
    add_rule(store, {"type": "remove_label", "value": "hot"}, {"type": "set_status", "value": "open"},
             trigger="status_changed", conditions=[{"type": "status", "value": "pending"}], name="cool down")
    add_rule(store, label("hot"), {"type": "set_status", "value": "pending"},
             trigger="status_changed", conditions=[{"type": "status", "value": "open"}], name="heat up")
    cid = ingest(mainland, store)
    store.set_conversation_status(cid, "pending", None, iso(T0 + M))
    fired = rules.after_status_change(mainland, store, cid, "new", "pending", T0 + M)
    assert fired == 2, "each rule once in the chain, then it stops"
    assert [f["rule_name"] for f in store.conversation_rule_firings(cid)] == ["cool down", "heat up"]
    assert store.conversation(cid)["status"] == "pending"


def test_a_firing_is_in_the_timeline_and_the_audit_log(mainland, store):
    rule_id = add_rule(store, label("hot"), name="Hot words")
    cid = ingest(mainland, store)
    [note] = [m for m in store.thread_messages(cid) if m["direction"] == "note"]
    assert note["text"] == "Rule \u201cHot words\u201d fired: added the label hot."
    assert store.rule_firing_for_note(note)["rule_id"] == rule_id
    [entry] = [e for e in store.audit_entries(object_type="conversation", object_id=cid)
               if e["action"] == "rule_fired"]
    assert entry["actor"] == f"rule:{rule_id}"
    assert json.loads(entry["details"])["done"] == [{"type": "add_label", "label": "hot"}]


def test_a_failing_rule_is_recorded_on_the_rule_and_ingest_goes_on(mainland, store):
    broken = add_rule(store, {"type": "assign_team", "value": 999})
    add_rule(store, label("still here"))
    cid = ingest(mainland, store)
    assert cid is not None and store.thread_length(cid) >= 1, "the message is stored"
    assert labels(store, cid) == ["still here"], "the next rule ran"
    rule = store.rule(broken)
    assert rule["failures"] == 1 and "no team 999" in rule["last_error"]
    assert [f["outcome"] for f in store.rule_firings(broken)] == ["failed"]


# Checks on save, the dry run ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, problem", [
    ("(a+)+$", "nested"), (r"(\w*)*x", "nested"), (r"(a)\1", "backreference"), ("[unclosed", "invalid"),
    ("a" * 201, "too_long"), ("", "empty"),
])
def test_a_bad_pattern_is_refused(pattern, problem):
    assert rules.pattern_problem(pattern) == problem


def test_a_good_pattern_passes():
    assert rules.pattern_problem(r"order\s*#?\d{5}") is None


def test_the_dry_run_lists_matches_of_the_last_seven_days_and_changes_nothing(mainland, store):
    old = ingest(mainland, store, "refund please", when=T0 - dt.timedelta(days=8))
    recent = ingest(mainland, store, "refund please", when=T0 - dt.timedelta(days=2))
    ingest(mainland, store, "hello", when=T0 - dt.timedelta(days=1))
    before = writes_seen(store)
    rule = {"name": "refunds", "trigger": "message_received", "actions": [label("refund")],
            "conditions": [{"type": "text_contains", "value": "refund"}]}
    hits = rules.dry_run(rules.context_for(mainland, store, T0), rule)
    assert [h.conversation_id for h in hits] == [recent]
    assert hits[0].would == ({"type": "add_label", "label": "refund"},)
    assert writes_seen(store) == before, "nothing written"
    assert labels(store, recent) == [] and labels(store, old) == []
