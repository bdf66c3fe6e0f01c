"""Service levels on a frozen clock: two targets per metric, business hours, pauses, reopening.

The pure tests call `measure()` with hand-made events; the store tests go through the real
ingest pipeline, outbox and SQLite triggers with the clock set by the test.
"""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from inbox import service_levels as sl
from inbox.config import ConfigError, from_mapping
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import queue_reply
from inbox.runtime import Mainland
from inbox.service_levels import Event, measure, urgency
from inbox.store.base import iso, parse_iso

#: Unique external ids for the items the tests make.
_SEQUENCE = itertools.count(1)
AMS = ZoneInfo("Europe/Amsterdam")
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)

SECTION = {
    "policy": {
        "first_response": {"desired": "1h", "adequate": "4h"},
        "next_response": {"desired": "2h", "adequate": "8h"},
        "resolution": {"desired": "8h", "adequate": "24h"},
    },
    "business_hours": {"timezone": "Europe/Amsterdam", "hours": {"weekdays": "09:00-17:00"},
                       "holidays": ["2026-12-25"]},
}
LEVELS = sl.from_config(SECTION)
POLICY = LEVELS.default
HOURS = LEVELS.hours


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=AMS)


def run(events, now, created=None, first_status="new"):
    created = created or events[0].at
    return measure(POLICY, HOURS, events, now, created_at=created, first_status=first_status)


# Pure: due times, both targets, business hours ------------------------------------------------------

def test_both_due_times_of_a_message_on_friday_afternoon_fall_on_monday():
    friday = at(2026, 11, 20, 16, 30)
    m = run([Event(friday, "in")], now=friday + M)
    fr = m.first_response
    assert fr.due_desired == at(2026, 11, 23, 9, 30)
    assert fr.due_adequate == at(2026, 11, 23, 12, 30)
    assert m.resolution.due_desired == at(2026, 11, 23, 16, 30)
    # Three whole days (24 business hours) for the adequate resolution: Mon, Tue, Wed.
    assert m.resolution.due_adequate == at(2026, 11, 25, 16, 30)


def test_a_holiday_moves_the_due_time_past_it():
    christmas_eve = at(2026, 12, 24, 16, 30)
    m = run([Event(christmas_eve, "in")], now=christmas_eve)
    assert m.first_response.due_desired == at(2026, 12, 28, 9, 30)


@pytest.mark.parametrize("answered_after, level", [
    (30 * M, "desired"), (H, "desired"), (2 * H, "adequate"), (4 * H, "adequate"), (5 * H, "missed"),
])
def test_first_response_is_measured_against_both_targets(answered_after, level):
    start = at(2026, 11, 24, 9, 0)
    m = run([Event(start, "in"), Event(start + answered_after, "out")], now=start + 10 * H)
    assert m.first_response.level == level
    assert m.first_response.elapsed == answered_after
    assert m.open_clocks == [m.resolution]  # answered: only resolution still runs


def test_an_unanswered_conversation_counts_as_missed_once_adequate_passed():
    start = at(2026, 11, 24, 9, 0)
    assert run([Event(start, "in")], now=start + 3 * H).first_response.level is None
    assert run([Event(start, "in")], now=start + 4 * H + M).first_response.level == "missed"


def test_business_time_not_wall_time_decides_the_level():
    # Written at 16:30 on Friday, answered at 09:20 on Monday: 50 business minutes, within desired.
    m = run([Event(at(2026, 11, 20, 16, 30), "in"), Event(at(2026, 11, 23, 9, 20), "out")],
            now=at(2026, 11, 23, 12, 0))
    assert m.first_response.elapsed == 50 * M
    assert m.first_response.level == "desired"


# Pure: pauses and reopening --------------------------------------------------------------------------

@pytest.mark.parametrize("pause", ["pending", "snoozed"])
def test_pending_and_snoozed_time_does_not_count(pause):
    start = at(2026, 11, 24, 10, 0)
    events = [Event(start, "in"), Event(start + 20 * M, "status", pause),
              Event(start + 2 * H + 20 * M, "status", "open")]
    m = run(events, now=start + 3 * H)
    # Two hours paused: both due times move two hours later.
    assert m.first_response.due_desired == at(2026, 11, 24, 13, 0)
    assert m.first_response.due_adequate == at(2026, 11, 24, 16, 0)
    assert m.paused == 2 * H
    assert m.first_response.elapsed == H  # 20 minutes before the pause, 40 after it


def test_while_paused_there_is_no_due_time_and_no_urgency():
    start = at(2026, 11, 24, 10, 0)
    m = run([Event(start, "in"), Event(start + 20 * M, "status", "pending")], now=start + 6 * H)
    assert m.first_response.due_desired is None and m.first_response.paused
    assert m.paused_since == start + 20 * M
    row = {"status": "pending", **sl.due_columns(m)}
    assert urgency(row, start + 6 * H) is None
    assert row["sla_paused_since"] == iso(start + 20 * M)


def test_a_pause_outside_business_hours_changes_nothing():
    friday = at(2026, 11, 20, 16, 30)
    events = [Event(friday, "in"), Event(at(2026, 11, 21, 10, 0), "status", "snoozed"),
              Event(at(2026, 11, 22, 10, 0), "status", "open")]
    assert run(events, now=at(2026, 11, 23, 8, 0)).first_response.due_desired == at(2026, 11, 23, 9, 30)


def test_reopen_starts_a_next_response_clock_and_resolution_carries_on():
    tuesday = at(2026, 11, 24, 10, 0)
    events = [
        Event(tuesday, "in"),
        Event(tuesday + 30 * M, "out"),
        Event(tuesday + H, "status", "resolved"),
        Event(at(2026, 11, 25, 10, 0), "in"),
        Event(at(2026, 11, 25, 10, 0), "status", "open"),  # reopened by the customer's message
    ]
    m = run(events, now=at(2026, 11, 25, 10, 5))
    assert m.first_response.level == "desired"
    [cycle] = m.next_responses
    assert cycle.started_at == at(2026, 11, 25, 10, 0)
    assert cycle.due_desired == at(2026, 11, 25, 12, 0)
    assert cycle.due_adequate == at(2026, 11, 26, 10, 0)  # 8 business hours: Thursday 10:00
    # One hour used before resolving; seven of the desired eight are left from Wednesday 10:00.
    assert m.resolution.due_desired == at(2026, 11, 25, 17, 0)
    assert m.resolution.due_adequate == at(2026, 11, 27, 17, 0)
    assert m.resolved_at is None


def test_resolution_time_excludes_paused_time_and_is_final_when_resolved():
    start = at(2026, 11, 24, 9, 0)
    events = [Event(start, "in"), Event(start + H, "out"), Event(start + H, "status", "pending"),
              Event(start + 5 * H, "status", "open"), Event(start + 6 * H, "status", "resolved")]
    m = run(events, now=start + 7 * H)
    assert m.resolution.elapsed == 2 * H
    assert m.resolution.level == "desired"
    assert m.resolved_at == start + 6 * H
    assert m.open_clocks == []
    columns = sl.due_columns(m)
    assert columns["resolution_seconds"] == 7200 and columns["resolution_level"] == "desired"
    assert columns["sla_due_desired"] is None


def test_next_response_breaches_are_counted_per_cycle():
    start = at(2026, 11, 24, 9, 0)
    events = [Event(start, "in"), Event(start + 10 * M, "out"),
              Event(at(2026, 11, 24, 9, 30), "in"), Event(at(2026, 11, 25, 16, 0), "out"),  # 14.5 h: missed
              Event(at(2026, 11, 26, 9, 0), "in"), Event(at(2026, 11, 26, 9, 30), "out")]  # desired
    m = run(events, now=at(2026, 11, 26, 10, 0))
    assert [c.level for c in m.next_responses] == ["missed", "desired"]
    assert m.next_response_breaches == 1
    assert m.breaches == 1


# Pure: one policy for every channel, deliberate overrides ----------------------------------------------

def test_every_channel_gets_the_same_policy_unless_overridden():
    levels = sl.from_config({**SECTION, "overrides": [
        {"channel": "vip-mail", "first_response": {"desired": "15m", "adequate": "1h"}},
        {"priority": 2, "resolution": {"desired": "2h", "adequate": "4h"}},
    ]})
    for channel in ("support-mail", "telegram", "x", "webform"):
        assert levels.policy_for(channel, 0) is levels.default
        assert not levels.policy_for(channel, 0).is_override
    vip = levels.policy_for("vip-mail", 0)
    assert vip.is_override and vip.name == "override: channel vip-mail"
    assert vip.first_response == sl.Target(15 * M, H)
    assert vip.resolution == levels.default.resolution  # the rest comes from the default
    urgent = levels.policy_for("telegram", 2)
    assert urgent.name == "override: priority 2" and urgent.resolution.adequate == 4 * H
    # The same message on two channels is due at the same moment.
    start = at(2026, 11, 24, 10, 0)
    dues = {ch: measure(levels.policy_for(ch, 0), levels.hours, [Event(start, "in")], start,
                        created_at=start).first_response.due_adequate for ch in ("support-mail", "telegram", "x")}
    assert len(set(dues.values())) == 1


@pytest.mark.parametrize("section, problem", [
    ({"policy": {"first_response": {"desired": "4h", "adequate": "1h"}}}, "shorter than desired"),
    ({"policy": {"first_response": {"desired": "1h"}}}, "give both targets"),
    ({"policy": {"first_response": {"desired": "soon", "adequate": "4h"}}}, "not a duration"),
    ({"overrides": [{"first_response": {"desired": "1h", "adequate": "2h"}}]}, "channel and/or a priority"),
    ({"business_hours": {"timezone": "Nowhere/Land"}}, "unknown time zone"),
    ({"polcy": {}}, "unknown key"),
])
def test_config_problems_are_reported_with_their_key(tmp_path, section, problem):
    with pytest.raises(ConfigError, match=problem):
        from_mapping({"database": str(tmp_path / "x.db"), "service_levels": section}, base=tmp_path)


def test_urgency_levels_over_time():
    start = at(2026, 11, 24, 10, 0)
    row = {"status": "open", **sl.due_columns(run([Event(start, "in")], now=start))}
    assert urgency(row, start + 30 * M) == "within_desired"
    assert urgency(row, start + 90 * M) == "past_desired"
    assert urgency(row, start + 5 * H) == "past_adequate"
    assert urgency({**row, "status": "resolved"}, start + 5 * H) is None
    assert urgency({"status": "open"}, start) is None  # no service level at all
    later = {"status": "open", "id": 2, **sl.due_columns(run([Event(start + H, "in")], now=start + H))}
    ordered = sorted([later, {**row, "id": 1}], key=lambda r: sl.urgency_sort_key(r, start + 70 * M))
    assert [r["id"] for r in ordered] == [1, 2]


# Through the store: ingest, reply, status changes, lead notifications --------------------------------

@pytest.fixture
def mainland(tmp_path):
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"), "data_dir": str(tmp_path / "data"), "secret_key": "k",
        "instance_id": "sl-test", "mail_domain": "mainland.test", "service_levels": SECTION,
        "channels": {"mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test",
                              "password": "x", "address": "support@mainland.test", "security": "none"},
                     "chat": {"kind": "telegram", "token": "123:abc"}},
    }, base=tmp_path)
    return Mainland(config)


@pytest.fixture
def sl_store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def ingest(mainland, store, channel, when, text="Help please", handle="cus@example.org", thread=None,
           subject="Question"):
    n = next(_SEQUENCE)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel=channel, external_id=f"ext-{n}", author=Author(handle, "Cus Tomer"),
                       text=text, thread_key=thread, subject=subject)
    return ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)


def set_status(store, conversation_id, status, when):
    with store.write():
        store.execute("UPDATE conversations SET status = ?, updated_at = ? WHERE id = ?",
                      (status, iso(when), conversation_id))


def test_a_new_conversation_carries_both_due_times_at_once(mainland, sl_store):
    report = ingest(mainland, sl_store, "mail", at(2026, 11, 20, 16, 30))
    [cid] = report.new_conversations
    row = sl_store.conversation(cid)
    assert parse_iso(row["first_response_due_desired"]) == at(2026, 11, 23, 9, 30)
    assert parse_iso(row["first_response_due_adequate"]) == at(2026, 11, 23, 12, 30)
    assert row["sla_due_desired"] == row["first_response_due_desired"]
    assert row["sla_policy"] == "default"
    assert urgency(row, at(2026, 11, 23, 9, 0)) == "within_desired"
    assert urgency(row, at(2026, 11, 23, 13, 0)) == "past_adequate"


def test_the_same_policy_on_an_email_and_a_chat_channel(mainland, sl_store):
    when = at(2026, 11, 24, 11, 0)
    [mail] = ingest(mainland, sl_store, "mail", when, handle="a@example.org").new_conversations
    [chat] = ingest(mainland, sl_store, "chat", when, handle="555", thread="chat-1").new_conversations
    a, b = sl_store.conversation(mail), sl_store.conversation(chat)
    for column in sl.DUE_COLUMNS:
        assert a[column] == b[column]


def test_reply_pause_and_reopen_through_the_store(mainland, sl_store):
    start = at(2026, 11, 24, 10, 0)
    [cid] = ingest(mainland, sl_store, "mail", start).new_conversations
    queue_reply(mainland, sl_store, cid, "We are on it", now=start + 45 * M)
    row = sl_store.conversation(cid)
    assert row["first_response_level"] == "desired" and row["first_response_seconds"] == 45 * 60
    assert row["first_response_due_desired"] is None
    set_status(sl_store, cid, "pending", start + H)
    sl.run_checks(sl_store, LEVELS, start + H + M)
    row = sl_store.conversation(cid)
    assert row["resolution_due_desired"] is None and row["sla_paused_since"] == iso(start + H)
    # The customer answers two hours later, quoting the conversation's token: it reopens.
    token = sl_store.conversation(cid)["token"]
    report = ingest(mainland, sl_store, "mail", start + 3 * H, text="Here is the order number",
                    subject=f"Re: Question [#{token}]")
    assert report.new_conversations == [] and sl_store.conversation(cid)["status"] == "open"
    sl.run_checks(sl_store, LEVELS, start + 3 * H + M)
    row = sl_store.conversation(cid)
    assert parse_iso(row["next_response_due_desired"]) == start + 5 * H
    # Resolution: one hour used before the pause, seven left from 13:00 -> Wednesday 12:00.
    assert parse_iso(row["resolution_due_desired"]) == at(2026, 11, 25, 12, 0)
    assert row["sla_paused_seconds"] == 2 * 3600


def test_chat_reopen_by_a_new_message_in_the_thread(mainland, sl_store):
    start = at(2026, 11, 24, 10, 0)
    [cid] = ingest(mainland, sl_store, "chat", start, handle="777", thread="t-7").new_conversations
    queue_reply(mainland, sl_store, cid, "Hello!", now=start + 5 * M)
    set_status(sl_store, cid, "snoozed", start + 10 * M)
    report = ingest(mainland, sl_store, "chat", start + 2 * H, text="Any news?", handle="777", thread="t-7")
    assert report.new_conversations == []  # joined the snoozed conversation and woke it
    row = sl_store.conversation(cid)
    assert row["status"] == "open"
    assert parse_iso(row["next_response_due_desired"]) == start + 4 * H
    assert sl_store.execute("SELECT old_status, new_status FROM conversation_status_log WHERE conversation_id = ? "
                            "ORDER BY id", (cid,)).fetchall() == [("new", "open"), ("open", "snoozed"),
                                                                  ("snoozed", "open")]


def test_leads_hear_before_and_when_adequate_passes_once(mainland, sl_store):
    from tests.test_web_auth import make_agent

    lead = make_agent(sl_store, "lead@example.org", role="lead", name="Lee Lead")
    other = make_agent(sl_store, "agent@example.org", role="agent")
    start = at(2026, 11, 24, 10, 0)
    [cid] = ingest(mainland, sl_store, "mail", start).new_conversations
    adequate = start + 4 * H
    assert sl.run_checks(sl_store, LEVELS, adequate - 30 * M)[1] == 0  # too early
    assert sl.run_checks(sl_store, LEVELS, adequate - 10 * M)[1] == 1  # the warning
    assert sl.run_checks(sl_store, LEVELS, adequate - 5 * M)[1] == 0  # not twice
    assert sl.run_checks(sl_store, LEVELS, adequate + M)[1] == 1  # the breach
    assert sl.run_checks(sl_store, LEVELS, adequate + 2 * M)[1] == 0
    kinds = [n.kind for n in sl_store.notifications.of(lead["id"], None)]
    assert sorted(kinds) == ["sla_breach", "sla_warning"]
    assert sl_store.notifications.of(other["id"], None) == []
    assert [(n["metric"], n["kind"]) for n in sl_store.sla_notices(cid)] == [
        ("first_response", "warning"), ("first_response", "breach")]
    row = sl_store.conversation(cid)
    assert row["first_response_level"] == "missed"  # the minute check moved the stored result on


def test_auto_replies_and_spam_carry_no_service_level(mainland, sl_store):
    start = at(2026, 11, 24, 10, 0)
    ingestor = mainland.ingestor(sl_store)
    ingestor.now = lambda: start
    item = InboundItem(channel="mail", external_id="auto-1", author=Author("ooo@example.org"), text="I am away",
                       flags=frozenset({"auto_submitted"}))
    [cid] = ingestor.ingest("mail", FetchResult(items=[item], cursor=None)).new_conversations
    assert sl_store.conversation(cid)["sla_due_desired"] is None
    [spam] = ingest(mainland, sl_store, "mail", start, handle="spam@example.org").new_conversations
    set_status(sl_store, spam, "spam", start + M)
    sl.run_checks(sl_store, LEVELS, start + 2 * M)
    assert sl_store.conversation(spam)["sla_due_desired"] is None


def test_the_queue_shows_urgency_and_sorts_by_it(app_config):
    from inbox import create_app
    from tests.test_web_auth import login, make_agent

    app_config["service_levels"] = {"policy": {"first_response": {"desired": "1h", "adequate": "4h"}}}
    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    app = create_app(app_config)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    now = dt.datetime.now(dt.UTC)
    made = {}
    for name, age in (("Rita Recent", 10 * M), ("Olga Overdue", 5 * H), ("Dave Desired", 2 * H)):
        made[name] = ingest(mainland, store, "chat", now - age, handle=name, thread=name).new_conversations[0]
    store.close()
    client = app.test_client()
    login(client)
    page = client.get("/?sort=urgency").get_data(as_text=True)
    positions = {name: page.index(name) for name in made}
    assert positions["Olga Overdue"] < positions["Dave Desired"] < positions["Rita Recent"]
    assert page.count("sla sla-past_adequate") == 1
    assert page.count("sla sla-past_desired") == 1
    assert page.count("sla sla-within_desired") == 1


def test_a_lead_reads_the_service_level_notices(app_config):
    from inbox import create_app
    from tests.test_web_auth import login, make_agent

    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    app = create_app(app_config)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, "lead@example.org", role="lead")
    now = dt.datetime.now(dt.UTC)
    ingest(mainland, store, "chat", now - 5 * H, handle="Late Larry", thread="larry", subject="Broken parcel")
    assert sl.run_checks(store, sl.for_config(mainland.config), now)[1] == 1
    store.close()
    client = app.test_client()
    login(client, "lead@example.org")
    page = client.get("/notifications").get_data(as_text=True)
    assert "past the adequate time" in page and "Broken parcel" in page
