"""A conversation's life: status rules as pure functions, snooze and wake-up, reopening, the change watermark."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from inbox.config import from_mapping
from inbox.lifecycle import (
    SETTABLE,
    TransitionRefused,
    after_inbound,
    parse_snooze,
    should_wake,
    transition,
    wake_snoozed,
)
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.runtime import Mainland
from inbox.store.base import iso
from inbox.worker import Worker
from tests.mailfactory import raw_mail

NOW = dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC)


# Pure rules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["open", "pending", "resolved", "spam"])
def test_agent_can_move_between_the_working_statuses(target):
    for current in ("new", "open", "pending", "snoozed", "resolved", "spam"):
        change = transition(current, target, now=NOW)
        assert (change.status, change.snoozed_until) == (target, None)


def test_new_is_never_chosen_by_hand():
    assert "new" not in SETTABLE
    with pytest.raises(TransitionRefused) as caught:
        transition("open", "new", now=NOW)
    assert caught.value.code == "invalid"


def test_unknown_target_is_refused():
    with pytest.raises(TransitionRefused):
        transition("open", "archived", now=NOW)


def test_snooze_needs_a_future_time_within_a_year():
    change = transition("open", "snoozed", now=NOW, snooze_until=NOW + dt.timedelta(hours=4))
    assert change.status == "snoozed"
    assert change.snoozed_until == iso(NOW + dt.timedelta(hours=4))
    for until, code in ((None, "snooze_missing"), (NOW - dt.timedelta(minutes=5), "snooze_past"),
                        (NOW + dt.timedelta(days=400), "snooze_far")):
        with pytest.raises(TransitionRefused) as caught:
            transition("open", "snoozed", now=NOW, snooze_until=until)
        assert caught.value.code == code


def test_a_merged_conversation_takes_no_status_changes():
    with pytest.raises(TransitionRefused) as caught:
        transition("resolved", "open", now=NOW, merged=True)
    assert caught.value.code == "merged"


@pytest.mark.parametrize(("current", "automatic", "expected"), [
    ("resolved", False, "open"), ("pending", False, "open"), ("snoozed", False, "open"),
    ("open", False, "open"), ("new", False, "new"), ("spam", False, "spam"),
    ("resolved", True, "resolved"), ("snoozed", True, "snoozed"), ("pending", True, "pending"),
])
def test_a_customer_message_reopens_unless_it_is_automatic(current, automatic, expected):
    assert after_inbound(current, automatic=automatic) == expected


def test_should_wake_only_snoozed_ones_whose_time_came():
    assert should_wake("snoozed", iso(NOW - dt.timedelta(seconds=1)), NOW)
    assert should_wake("snoozed", iso(NOW), NOW)
    assert not should_wake("snoozed", iso(NOW + dt.timedelta(seconds=1)), NOW)
    assert not should_wake("open", iso(NOW - dt.timedelta(hours=1)), NOW)
    assert not should_wake("snoozed", None, NOW)


@pytest.mark.parametrize(("value", "expected"), [
    ("1h", NOW + dt.timedelta(hours=1)),
    ("1w", NOW + dt.timedelta(weeks=1)),
    ("+90m", NOW + dt.timedelta(minutes=90)),
    ("2d", NOW + dt.timedelta(days=2)),
    ("2026-03-06T09:30:00+01:00", dt.datetime(2026, 3, 6, 8, 30, tzinfo=dt.UTC)),
    ("2026-03-06T08:30:00.000Z", dt.datetime(2026, 3, 6, 8, 30, tzinfo=dt.UTC)),
    ("2026-03-06T08:30", dt.datetime(2026, 3, 6, 8, 30, tzinfo=dt.UTC)),
    ("", None), ("soon", None), ("9" * 60, None), ("+99999999h", None),
])
def test_snooze_times_from_the_form(value, expected):
    assert parse_snooze(value, NOW) == expected


# With the store -------------------------------------------------------------------------------

def _conversation(store, ingestor, **mail):
    report = ingestor.ingest("mail", FetchResult(items=[parse_email(raw_mail(**mail), channel="mail")], cursor=None))
    return report, store.recent_conversations()[0]


def test_wake_snoozed_reopens_only_those_whose_time_came(store, ingestor):
    _conversation(store, ingestor, subject="due")
    _conversation(store, ingestor, subject="later", sender="Joe <joe@example.net>")
    rows = {c["subject"]: c["id"] for c in store.recent_conversations()}
    now = dt.datetime.now(dt.UTC)
    store.set_conversation_status(rows["due"], "snoozed", iso(now - dt.timedelta(minutes=1)), iso(now))
    store.set_conversation_status(rows["later"], "snoozed", iso(now + dt.timedelta(hours=1)), iso(now))
    assert wake_snoozed(store, now) == [rows["due"]]
    due, later = store.conversation(rows["due"]), store.conversation(rows["later"])
    assert (due["status"], due["snoozed_until"]) == ("open", None)
    assert later["status"] == "snoozed" and later["snoozed_until"]
    assert wake_snoozed(store, now) == []


def test_customer_message_wakes_a_snoozed_conversation_and_clears_the_time(store, ingestor):
    _, conversation = _conversation(store, ingestor, message_id="<first@example.net>")
    now = dt.datetime.now(dt.UTC)
    store.set_conversation_status(conversation["id"], "snoozed", iso(now + dt.timedelta(days=1)), iso(now))
    ingestor.ingest("mail", FetchResult(items=[parse_email(raw_mail(
        message_id="<second@example.net>", in_reply_to="<first@example.net>", subject="Re: Order 1234"),
        channel="mail")], cursor=None))
    after = store.conversation(conversation["id"])
    assert (after["status"], after["snoozed_until"]) == ("open", None)


def test_an_auto_reply_does_not_wake_a_snoozed_conversation(store, ingestor):
    _, conversation = _conversation(store, ingestor, message_id="<first@example.net>")
    now = dt.datetime.now(dt.UTC)
    until = iso(now + dt.timedelta(days=1))
    store.set_conversation_status(conversation["id"], "snoozed", until, iso(now))
    ingestor.ingest("mail", FetchResult(items=[parse_email(raw_mail(
        message_id="<ooo@example.net>", in_reply_to="<first@example.net>", subject="Out of office",
        extra_headers="Auto-Submitted: auto-replied"), channel="mail")], cursor=None))
    after = store.conversation(conversation["id"])
    assert store.newest_message_id(conversation["id"]) > 1, "the auto-reply is in the thread"
    assert (after["status"], after["snoozed_until"]) == ("snoozed", until)


def test_any_way_out_of_snoozed_clears_the_time(store, ingestor):
    _, conversation = _conversation(store, ingestor)
    now = dt.datetime.now(dt.UTC)
    store.set_conversation_status(conversation["id"], "snoozed", iso(now + dt.timedelta(days=1)), iso(now))
    store.execute("UPDATE conversations SET status = 'resolved' WHERE id = ?", (conversation["id"],))
    assert store.conversation(conversation["id"])["snoozed_until"] is None


def test_the_worker_wakes_snoozed_conversations(tmp_path):
    config = from_mapping({"database": str(tmp_path / "w.db"), "channels": {}}, base=tmp_path)
    mainland = Mainland(config)
    store = mainland.open_store(migrate=True)
    try:
        ingestor = mainland.ingestor(store)
        _, conversation = _conversation(store, ingestor)
        now = dt.datetime.now(dt.UTC)
        store.set_conversation_status(conversation["id"], "snoozed", iso(now - dt.timedelta(seconds=1)), iso(now))
        worker = Worker(mainland, lease_seconds=30, renew_every=5)
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while store.conversation(conversation["id"])["status"] == "snoozed" and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            worker.stop()
        assert store.conversation(conversation["id"])["status"] == "open"
    finally:
        store.close()


def test_every_change_moves_the_watermark(store, ingestor):
    start = store.change_watermark()
    _, conversation = _conversation(store, ingestor)
    created = store.change_watermark()
    assert created > start
    [row] = store.changes_since(start, None)
    assert row["id"] == conversation["id"] and row["created_seq"] > start, "a new conversation is told apart"
    store.set_conversation_priority(conversation["id"], 3, iso(dt.datetime.now(dt.UTC)))
    [row] = store.changes_since(created, None)
    assert row["id"] == conversation["id"] and row["created_seq"] <= created, "then it is only changed"
    moved = store.change_watermark()
    store.add_note(conversation["id"], agent_id=None, author_name="Ann", text="note", external_id="note:x",
                   now=iso(dt.datetime.now(dt.UTC)))
    assert store.change_watermark() > moved


def test_changes_of_other_teams_are_not_listed(store, ingestor):
    _, conversation = _conversation(store, ingestor)
    team = store.create_team("B")
    store.set_conversation_team(conversation["id"], team)
    start = store.change_watermark()
    store.set_conversation_priority(conversation["id"], 2, iso(dt.datetime.now(dt.UTC)))
    assert store.change_watermark() > start
    assert store.changes_since(start, set()) == []
    assert [r["id"] for r in store.changes_since(start, {team})] == [conversation["id"]]
    assert store.status_counts(set()) == {}
