"""The reports page and its CSV exports: who may see them, that every count matches the
conversations behind it, overrides shown as such, and spreadsheets that cannot be tricked."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re

import pytest

from inbox import charts, reports
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import queue_reply
from inbox.reports import Period, csv_safe
from inbox.store.base import iso
from tests.test_web_auth import login, make_agent

#: Unique external ids for the items the tests make.
_SEQUENCE = itertools.count(1)
MONDAY = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)
WEEK = "2026-W47"
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


@pytest.fixture
def report_app(app_config):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none"},
        "chat": {"kind": "telegram", "token": "123:abc"},
        "vip": {"kind": "telegram", "token": "456:def"},
    }
    app_config["service_levels"] = {
        "policy": {"first_response": {"desired": "1h", "adequate": "4h"}},
        "overrides": [{"channel": "vip", "first_response": {"desired": "15m", "adequate": "1h"}}],
    }
    from inbox import create_app

    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


def _conversation(mainland, store, channel, arrival, *, name, reply_after=None, agent=None):
    n = next(_SEQUENCE)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: arrival
    item = InboundItem(channel=channel, external_id=f"rep-{n}", text="Hello", subject="Hello",
                       author=Author(f"c{n}@example.org" if channel == "mail" else str(n), name,
                                     identity_kind="email" if channel == "mail" else "telegram"),
                       thread_key=None if channel == "mail" else f"t{n}")
    [cid] = ingestor.ingest(channel, FetchResult(items=[item], cursor=None)).new_conversations
    if reply_after is not None:
        queue_reply(mainland, store, cid, "On it", agent=agent, now=arrival + reply_after)
    return cid


@pytest.fixture
def week(report_app):
    mainland = report_app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, "mia@example.org", role="manager", name="Mia Manager")
    ann = make_agent(store, "ann@example.org", name="Ann Agent")
    made = {
        "mail_desired": _conversation(mainland, store, "mail", MONDAY, name="Dora", reply_after=30 * M, agent=ann),
        "mail_adequate": _conversation(mainland, store, "mail", MONDAY, name="Eve", reply_after=2 * H, agent=ann),
        "mail_missed": _conversation(mainland, store, "mail", MONDAY, name="=HYPERLINK(\"http://evil\")",
                                     reply_after=6 * H, agent=ann),
        "chat_desired": _conversation(mainland, store, "chat", MONDAY, name="Finn", reply_after=5 * M, agent=ann),
        "chat_waiting": _conversation(mainland, store, "chat", MONDAY + 2 * H, name="Gus"),
        # On the VIP channel 30 minutes is only adequate (its override: 15m / 1h).
        "vip_adequate": _conversation(mainland, store, "vip", MONDAY, name="Hal", reply_after=30 * M, agent=ann),
        "last_week": _conversation(mainland, store, "mail", MONDAY - dt.timedelta(days=3), name="Ida",
                                   reply_after=10 * M, agent=ann),
    }
    store.close()
    return made


def _csv(client, **params):
    response = client.get("/reports/export.csv", query_string={"week": WEEK, **params})
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


@pytest.mark.parametrize("role, status", [("agent", 403), ("lead", 403), ("manager", 200), ("admin", 200)])
def test_reports_are_for_managers_and_admins(report_app, role, status):
    store = report_app.extensions["mainland"].open_store()
    make_agent(store, f"{role}@example.org", role=role)
    store.close()
    client = report_app.test_client()
    for path in ("/reports", "/reports/export.csv", "/reports/digests", "/reports/charts/first_response.png"):
        assert client.get(path).status_code == 302  # anonymous: to the sign-in page
    login(client, f"{role}@example.org")
    for path in ("/reports", "/reports/export.csv", "/reports/digests", "/reports/charts/first_response.png"):
        assert client.get(path).status_code == status, path
    assert ("/reports\"" in client.get("/settings").get_data(as_text=True)) == (status == 200)  # the nav link


def test_figures_and_the_conversations_behind_them_agree(report_app, week):
    client = report_app.test_client()
    login(client, "mia@example.org")
    now = MONDAY + dt.timedelta(days=1)
    store = report_app.extensions["mainland"].open_store()
    report = reports.build(store, Period.parse(WEEK), now)
    by_channel = {c["channel"]: c for c in report.channels}
    assert {ch: c["volume"] for ch, c in by_channel.items()} == {"mail": 3, "chat": 2, "vip": 1}
    mail = by_channel["mail"]["first_response"]
    assert (mail["desired"], mail["adequate"], mail["missed"], mail["decided"]) == (1, 2, 1, 3)
    assert mail["median_seconds"] == 2 * 3600
    chat = by_channel["chat"]["first_response"]
    assert (chat["decided"], chat["missed"]) == (2, 1)  # Gus has waited past adequate: a miss already
    assert by_channel["vip"]["first_response"]["desired"] == 0  # judged by its own, stricter targets
    assert by_channel["vip"]["policies"] == ["override: channel vip"]
    assert report.backlog["longest_waiting"][0]["customer_name"] == "Gus"
    store.close()

    ids = {name: cid for name, cid in week.items()}
    assert {int(r["conversation"]) for r in _csv(client, figure="volume", channel="mail")} == {
        ids["mail_desired"], ids["mail_adequate"], ids["mail_missed"]}
    assert [int(r["conversation"]) for r in _csv(client, figure="first_response", channel="mail", level="desired")] \
        == [ids["mail_desired"]]
    adequate = _csv(client, figure="first_response", channel="mail", level="adequate")
    assert {int(r["conversation"]) for r in adequate} == {ids["mail_desired"], ids["mail_adequate"]}
    [missed] = _csv(client, figure="first_response", channel="mail", level="missed")
    assert missed["first_response_business_minutes"] == "360.0" and missed["first_response_level"] == "missed"
    assert [int(r["conversation"]) for r in _csv(client, figure="waiting")] == [ids["chat_waiting"]]
    assert len(_csv(client, figure="volume")) == 6  # last week's conversation is not in this week
    # Every figure, unfiltered, lists exactly as many rows as its table counts.
    for channel, c in by_channel.items():
        assert len(_csv(client, figure="first_response", channel=channel)) == c["first_response"]["decided"]


def test_the_page_shows_the_week_and_marks_the_override(report_app, week):
    client = report_app.test_client()
    login(client, "mia@example.org")
    page = client.get(f"/reports?week={WEEK}").get_data(as_text=True)
    assert "2026-W47" in page and "2026-W46" in page  # the week and a link to the one before
    assert 'class="badge badge-override"' in page and "override: channel vip" in page
    assert 'data-channel="mail"' in page and 'data-channel="vip"' in page
    assert "/reports/export.csv?week=2026-W47&amp;figure=first_response&amp;level=missed&amp;channel=mail" in page
    assert client.get("/reports?week=2026-W99").status_code == 404
    assert client.get("/reports/export.csv?figure=nonsense").status_code == 400


def test_csv_cells_cannot_become_formulas(report_app, week):
    client = report_app.test_client()
    login(client, "mia@example.org")
    rows = _csv(client, figure="volume", channel="mail")
    names = {r["customer"] for r in rows}
    assert "'=HYPERLINK(\"http://evil\")" in names
    assert all(not r["customer"].startswith(("=", "+", "-", "@")) for r in rows)
    for value, safe in [("=1+1", "'=1+1"), ("+31 6", "'+31 6"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
                        ("\tx", "'\tx"), ("plain", "plain"), (-2, -2), (None, None)]:
        assert csv_safe(value) == safe


def test_weeks_are_iso_weeks_in_the_configured_time_zone():
    period = Period.parse("2026-W47", "Europe/Amsterdam")
    assert period.start == dt.datetime(2026, 11, 15, 23, 0, tzinfo=dt.UTC)
    assert period.end == dt.datetime(2026, 11, 22, 23, 0, tzinfo=dt.UTC)
    assert period.previous().key == "2026-W46" and Period.parse("2026-W53").key == "2026-W53"
    assert Period.parse("2027-W01").previous().key == "2026-W53"
    with pytest.raises(ValueError):
        Period.parse("2025-W53")  # 2025 has 52 weeks
    assert iso(period.start) < iso(period.end)


def test_first_responses_are_credited_to_who_sent_them_not_to_the_assignee(report_app, frozen_clock):
    frozen_clock.set(MONDAY + dt.timedelta(days=1))
    mainland = report_app.extensions["mainland"]
    store = mainland.open_store()
    ann = make_agent(store, "ann@example.org", name="Ann Agent")
    bob = make_agent(store, "bob@example.org", name="Bob Agent")
    make_agent(store, "mia@example.org", role="manager", name="Mia Manager")
    helped = _conversation(mainland, store, "mail", MONDAY, name="Dora")
    late = _conversation(mainland, store, "mail", MONDAY, name="Eve")
    for cid in (helped, late):
        store.assign_conversation(cid, assignee_id=ann["id"], team_id=None, now=iso(MONDAY))
    # Both are Ann's. Bob answered Dora first, within the desired hour; Ann only wrote to her later.
    queue_reply(mainland, store, helped, "On it", agent=bob, now=MONDAY + 20 * M)
    queue_reply(mainland, store, helped, "Anything else?", agent=ann, now=MONDAY + 5 * H)
    # Eve's first response is Ann's own, after the adequate four hours.
    queue_reply(mainland, store, late, "Sorry for the wait", agent=ann, now=MONDAY + 6 * H)

    report = reports.build(store, Period.parse(WEEK), MONDAY + dt.timedelta(days=1))
    store.close()
    first = {a["name"]: a["first_response"] for a in report.agents}
    assert (first["Bob Agent"]["decided"], first["Bob Agent"]["desired"]) == (1, 1)
    assert (first["Ann Agent"]["decided"], first["Ann Agent"]["missed"]) == (1, 1)
    assert first["Bob Agent"]["median_seconds"] == 20 * 60 and first["Ann Agent"]["median_seconds"] == 6 * 3600
    # The conversations themselves stay with their assignee.
    assert {a["name"]: a["conversations"] for a in report.agents}["Ann Agent"] == 2

    client = report_app.test_client()
    login(client, "mia@example.org")
    page = client.get(f"/reports?week={WEEK}").get_data(as_text=True)
    bob_row = re.search(rf'<tr data-agent="{bob["id"]}">.*?</tr>', page, re.S)[0]
    assert "100%" in bob_row and "20 min" in bob_row


def test_counts_of_one_read_in_the_singular(report_app, frozen_clock):
    frozen_clock.set(MONDAY + dt.timedelta(days=1))
    mainland = report_app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, "mia@example.org", role="manager", name="Mia Manager")
    ann = make_agent(store, "ann@example.org", name="Ann Agent")
    answered = _conversation(mainland, store, "chat", MONDAY, name="Finn", reply_after=5 * M, agent=ann)
    _conversation(mainland, store, "chat", MONDAY + H, name="Gus")  # still waiting for us
    conversation = store.conversation(answered)
    with store.write():
        survey = store.create_survey(conversation_id=answered, channel="chat", customer_id=conversation["customer_id"],
                                     agent_id=ann["id"], team_id=None, kind="chat", token_hash=None, message_id=None,
                                     first_response_seconds=300.0, asked_at=iso(MONDAY + H),
                                     expires_at=iso(MONDAY + dt.timedelta(days=7)))
        assert store.answer_survey(survey, 5, None, iso(MONDAY + 2 * H))
    store.close()
    client = report_app.test_client()
    login(client, "mia@example.org")
    page = re.sub(r"\s+", " ", client.get(f"/reports?week={WEEK}").get_data(as_text=True))
    assert "1 answer<" in page and "1 answers" not in page
    assert "1 waiting for us" in page


def test_the_backlog_is_counted_by_age_status_and_channel_as_its_export_lists_it(report_app, frozen_clock):
    # The backlog's figures are counted in the database (a busy inbox has tens of thousands open); each
    # count must still match the conversations its CSV lists, and time alone moves them between ages.
    now = MONDAY + dt.timedelta(days=1)
    frozen_clock.set(now)
    mainland = report_app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, "mia@example.org", role="manager", name="Mia Manager")
    ann = make_agent(store, "ann@example.org", name="Ann Agent")
    day = dt.timedelta(days=1)
    old = _conversation(mainland, store, "mail", now - 10 * day, name="Olga")
    week_old = _conversation(mainland, store, "chat", now - 5 * day, name="Wim")
    pending = _conversation(mainland, store, "mail", now - 2 * day, name="Pia", reply_after=H, agent=ann)
    snoozed = _conversation(mainland, store, "chat", now - 2 * day - H, name="Sam")
    young = _conversation(mainland, store, "chat", now - 3 * H, name="Yara")
    done = _conversation(mainland, store, "mail", now - 4 * day, name="Dirk")
    machine = _conversation(mainland, store, "mail", now - 6 * day, name="Auto")
    store.set_conversation_status(pending, "pending", None, iso(now))
    store.set_conversation_status(snoozed, "snoozed", iso(now + day), iso(now))
    store.set_conversation_status(done, "resolved", None, iso(now))
    with store.write():
        store.execute("UPDATE conversations SET automatic = 1 WHERE id = ?", (machine,))

    backlog = reports.build(store, Period.parse(WEEK), now).backlog
    assert backlog["total"] == 5
    assert backlog["by_status"] == {"new": 3, "open": 0, "pending": 1, "snoozed": 1}
    assert backlog["by_channel"] == {"chat": 3, "mail": 2}
    assert backlog["by_age"] == {"1d": 1, "3d": 2, "7d": 1, "older": 1}
    assert backlog["median_age_seconds"] == (2 * day + H).total_seconds()  # Sam's: the middle of five
    assert backlog["waiting"] == 3  # Pia has our answer; a snoozed conversation waits for nobody
    assert [w["id"] for w in backlog["longest_waiting"]] == [old, week_old, young]

    client = report_app.test_client()
    login(client, "mia@example.org")
    for age, count in backlog["by_age"].items():
        assert len(_csv(client, figure="backlog", age=age)) == count, age
    assert {int(r["conversation"]) for r in _csv(client, figure="backlog")} == {old, week_old, pending, snoozed,
                                                                               young}
    # Olga's is done; two days on, Wim has waited over a week and Yara over a day. Four left: the
    # median age is the mean of the middle two (Pia's and Sam's).
    store.set_conversation_status(old, "resolved", None, iso(now))
    later = reports.build(store, Period.parse(WEEK), now + 2 * day + H).backlog
    assert later["median_age_seconds"] == (4 * day + 1.5 * H).total_seconds()
    assert later["by_age"] == {"1d": 0, "3d": 1, "7d": 2, "older": 1}
    store.close()


def test_the_satisfaction_chart_gives_each_count_its_own_words():
    said = []

    def answers(n: int) -> str:
        said.append(n)
        return f"{n} answer" if n == 1 else f"{n} answers"

    bands = [{"band": "15m", "answers": 1, "average": 5.0}, {"band": "1h", "answers": 3, "average": 4.0}]
    png = charts.csat_by_wait_chart(bands, {"15m": "≤ 15 min", "1h": "15–60 min"}, title="Satisfaction",
                                    answers_label=answers, empty_label="No data")
    assert png.startswith(b"\x89PNG") and said == [1, 3]


def test_a_report_is_built_once_for_its_page_charts_and_csv_and_again_when_the_data_changes(report_app,
                                                                                              frozen_clock):
    frozen_clock.set(MONDAY + dt.timedelta(days=1))
    mainland = report_app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, "mia@example.org", role="manager", name="Mia Manager")
    ann = make_agent(store, "ann@example.org", name="Ann Agent")
    _conversation(mainland, store, "chat", MONDAY, name="Finn", reply_after=5 * M, agent=ann)
    client = report_app.test_client()
    login(client, "mia@example.org")
    cache = report_app.extensions["mainland_reports"]

    assert client.get(f"/reports?week={WEEK}").status_code == 200
    for name in ("first_response", "resolution", "csat_by_wait"):
        chart = client.get(f"/reports/charts/{name}.png?week={WEEK}")
        assert chart.status_code == 200 and chart.data.startswith(b"\x89PNG")
    assert len(_csv(client, figure="volume")) == 1
    assert cache.builds == 1  # the page, its three charts and the CSV: one report

    # A customer writes in: the very next request counts them, within the same minute.
    gus = _conversation(mainland, store, "chat", MONDAY + H, name="Gus")
    assert len(_csv(client, figure="volume")) == 2
    assert [int(r["conversation"]) for r in _csv(client, figure="waiting")] == [gus]
    # An agent answers Gus: no longer waiting.
    queue_reply(mainland, store, gus, "Here you are", agent=ann, now=MONDAY + dt.timedelta(days=1))
    assert _csv(client, figure="waiting") == []
    assert cache.builds == 3
    # The backlog's export still carries every column (read for the export, not kept in the report).
    [row] = [r for r in _csv(client, figure="backlog") if int(r["conversation"]) == gus]
    assert row["customer"] == "Gus" and row["agent"] and row["first_response_at"]
    # The chart of the changed report is drawn again, not served from before the change.
    assert client.get(f"/reports/charts/first_response.png?week={WEEK}").status_code == 200
    assert cache.builds == 3
    # Time moves on (ages and misses depend on it): a new minute builds again.
    frozen_clock.advance(dt.timedelta(minutes=2))
    assert client.get(f"/reports?week={WEEK}").status_code == 200
    assert cache.builds == 4
    store.close()


def test_replies_per_agent_and_first_responders_read_the_reply_indexes(tmp_path):
    # m033: the week's replies per agent and each conversation's first responder come from partial
    # indexes of our replies, not from every message of the year.
    from inbox.store import Store

    store = Store(tmp_path / "plan.db")
    store.migrate()

    def plan(sql: str) -> str:
        return " ".join(str(row[3]) for row in store.execute("EXPLAIN QUERY PLAN " + sql).fetchall())

    assert "USING COVERING INDEX messages_replies_by_time" in plan(
        "SELECT agent_id, count(*) FROM messages WHERE direction = 'out' AND agent_id IS NOT NULL "
        "AND received_at >= '2026-11-16' AND received_at < '2026-11-23' "
        "AND ' ' || flags || ' ' NOT LIKE '% auto_submitted %' GROUP BY agent_id")
    assert "USING COVERING INDEX messages_replies" in plan(
        "SELECT f.agent_id FROM messages f WHERE f.conversation_id = 7 AND f.direction = 'out' "
        "AND ' ' || f.flags || ' ' NOT LIKE '% survey %' ORDER BY f.received_at, f.id LIMIT 1")
    store.close()


def test_who_waits_longest_is_read_from_the_waiting_time_index(tmp_path):
    # Not by sorting every open conversation: at a million messages tens of thousands are open (#16).
    from inbox.store import Store

    store = Store(tmp_path / "plan.db")
    store.migrate()
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    assert store.report_longest_waiting(5) == []
    store.conn.set_trace_callback(None)
    [query] = [s for s in statements if "waiting_since" in s]
    plan = " ".join(str(row[3]) for row in store.execute("EXPLAIN QUERY PLAN " + query).fetchall())
    assert plan.count("USING INDEX queue_waiting") == 2 and "SCAN c" not in plan
    store.close()


def test_the_backlogs_counts_and_median_read_its_own_index_alone(tmp_path):
    # m043: a busy inbox has tens of thousands open; the counts and the median age read the backlog's
    # partial index (every column they need), not each open conversation's row, nor a sort of them all.
    from inbox.store import Store

    store = Store(tmp_path / "plan.db")
    store.migrate()
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    store.report_backlog_counts([("1d", "2026-11-22")], "older")
    store.report_backlog_middle(3)
    store.conn.set_trace_callback(None)
    for query in [s for s in statements if "conversations_backlog" in s]:
        plan = " ".join(str(row[3]) for row in store.execute("EXPLAIN QUERY PLAN " + query).fetchall())
        assert "USING COVERING INDEX conversations_backlog" in plan and "ORDER BY" not in plan, plan
    assert len([s for s in statements if "conversations_backlog" in s]) == 2
    store.close()
