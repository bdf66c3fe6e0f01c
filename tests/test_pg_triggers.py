"""PostgreSQL's triggers (revisions/versions/0002_triggers.py) do what SQLite's do (#17).

Each scenario runs the same statements on a migrated SQLite database and on a PostgreSQL database
upgraded by `pg_schema.upgrade` (a throwaway cluster, tests/pg_cluster.py), and compares the rows of
the tables the triggers write, whole, between the two engines. A value that is random or the
clock's (a webhook event's id, "now") is held to its format on both instead.

A trigger SQLite gains later without a PostgreSQL twin on the same table, firing on the same
event and columns, fails the tests at the end. The triggers of SQLite's FTS5 search indexes have
twins of the same names that keep PostgreSQL's search documents (revision 0003, compared in
tests/test_pg_search.py), but for the three deletes a document's foreign key does there.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import uuid
from typing import Any

import pytest

from tests.test_pg_schema import _every_revision

pytestmark = pytest.mark.server

#: SQLite's triggers that keep its FTS5 search indexes; PostgreSQL has no twin for them.
SEARCH_TRIGGERS = frozenset({
    "messages_ai", "messages_au", "messages_ad",
    "conversation_search_ai", "conversation_search_au", "conversation_search_ad", "conversation_search_customer",
    "conversation_search_identity_ai", "conversation_search_identity_au", "conversation_search_identity_ad",
    "help_articles_ai", "help_articles_au", "help_articles_ad", "help_answers_au",
})
#: What those triggers write to: SQLite's search indexes and the batch marks that hold them back.
SEARCH_TABLES = ("messages_fts", "conversation_search", "help_search", "search_index_deferred")
#: Those of them PostgreSQL's search documents have no twin of: a document's foreign key deletes it
#: with its row (revisions/versions/0003_search.py).
SEARCH_TRIGGERS_WITHOUT_TWIN = frozenset({"messages_ad", "conversation_search_ad", "help_articles_ad"})

EVENT_ID = r"evt_[0-9a-f]{32}"
#: SQLite's strftime('%Y-%m-%dT%H:%M:%SZ', 'now') and strftime('%Y-%m-%dT%H:%M:%f000Z', 'now').
NOW_SECONDS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
NOW_MICROSECONDS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}000Z"
#: Either: a time the writer gave, or the time of the change.
ANY_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z"


def at(minute: int) -> str:
    """A timestamp as Mainland writes them, `minute` minutes into the morning of 2026-11-16."""
    return f"2026-11-16T{9 + minute // 60:02d}:{minute % 60:02d}:00.000000Z"


# --- Two engines ------------------------------------------------------------------------------------




@pytest.fixture
def store(tmp_path, migrated_database):
    """SQLite's side of every comparison, whatever engine the rest of the suite runs on."""
    from inbox.store import Store
    from tests.conftest import fresh_database

    lite = Store(fresh_database(migrated_database, tmp_path / "lite.db"))
    lite.migrate()
    yield lite
    lite.close()


@pytest.fixture(scope="module")
def upgraded_template(cluster):
    """A database upgraded once by `pg_schema.upgrade`; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    import psycopg

    from inbox.store import pg_schema

    with psycopg.connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE DATABASE upgraded")
    pg_schema.upgrade(cluster.rsplit("/", 1)[0] + "/upgraded")
    return "upgraded"


@pytest.fixture
def pg(cluster, upgraded_template):
    """A connection (autocommit, as the SQLite store's) to a fresh copy of the upgraded database."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {upgraded_template}")
    with psycopg.connect(cluster.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
        yield conn


class Engines:
    """The same statements on SQLite and PostgreSQL; the rows they hold, compared."""

    def __init__(self, lite: sqlite3.Connection, pg: Any) -> None:
        self.lite = lite
        self.pg = pg

    def run(self, sql: str, params: tuple = ()) -> None:
        self.lite.execute(sql, params)
        if params:
            self.pg.execute(sql.replace("%", "%%").replace("?", "%s"), params)
        else:
            self.pg.execute(sql)

    def same(self, table: str, order: str, *, formats: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The rows of `table` (in `order`), equal on both engines; the SQLite ones.

        `formats`: columns whose values are random or the clock's; each must match its pattern on
        both engines, and they are left out of the comparison.
        """
        sql = f"SELECT * FROM {table} ORDER BY {order}"  # noqa: S608 - the tests' own names
        lite, pg = _dicts(self.lite.execute(sql)), _dicts(self.pg.execute(sql))
        for rows, engine in ((lite, "SQLite"), (pg, "PostgreSQL")):
            for row in rows:
                for column, pattern in (formats or {}).items():
                    value = row.pop(column)
                    assert isinstance(value, str) and re.fullmatch(pattern, value), (engine, table, column, value)
        assert pg == lite, table
        return lite

    def setting_version(self) -> int:
        return self.same("settings_version", "id")[0]["version"]

    def conversation(self, id: int, status: str = "open", created: int = 0, **columns: Any) -> None:
        values = {"id": id, "token": f"tok{id}", "customer_id": 1, "channel": "email", "status": status,
                  "created_at": at(created), "updated_at": at(created), "last_message_at": at(created),
                  **columns}
        self.insert("conversations", **values)

    def message(self, id: int, conversation: int, direction: str, minute: int, **columns: Any) -> None:
        values = {"id": id, "conversation_id": conversation, "channel": "email", "external_id": f"ext{id}",
                  "direction": direction, "received_at": at(minute), "text": f"message {id}", **columns}
        self.insert("messages", **values)

    def insert(self, table: str, **values: Any) -> None:
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self.run(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(values.values()))  # noqa: S608

    def subscribe(self, events: str) -> None:
        self.insert("webhook_subscriptions", url="https://hooks.example.net/in", events=events, secret="sealed",
                    created_at=at(0), updated_at=at(0))


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture
def both(store, pg):
    """SQLite (a migrated store) and PostgreSQL, each with two agents, a team and a customer."""
    engines = Engines(store.conn, pg)
    engines.insert("agents", id=1, email="ada@mainland.test", created_at=at(0))
    engines.insert("agents", id=2, email="bo@mainland.test", created_at=at(0))
    engines.insert("teams", id=1, name="Billing")
    engines.insert("customers", id=1, display_name="Jane Doe", created_at=at(0), updated_at=at(0))
    # SQLite's m024 made this row; PostgreSQL's baseline makes the table only.
    engines.run("INSERT INTO settings_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
    return engines


def _near_now(text: str, fmt: str) -> bool:
    then = dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
    return abs(dt.datetime.now(dt.UTC) - then) < dt.timedelta(minutes=5)


# --- Settings ---------------------------------------------------------------------------------------


#: Saving a setting as the browser does: a new one is inserted, an existing one updated (an upsert).
SAVE_CHANNEL = ("INSERT INTO channel_settings (name, kind, created_at, updated_at) VALUES (?, 'imap', ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at")
SAVE_SECTION = ("INSERT INTO stored_settings (section, value, updated_at) VALUES (?, '{}', ?) "
                "ON CONFLICT (section) DO UPDATE SET updated_at = excluded.updated_at")


@pytest.mark.parametrize(("table", "key", "save", "times"), [
    ("channel_settings", "name", SAVE_CHANNEL, 2),
    ("stored_settings", "section", SAVE_SECTION, 1),
], ids=["channels", "sections"])
def test_every_setting_saved_or_removed_in_the_browser_tells_the_processes_to_reload(both, table, key, save, times):
    both.run(save, ("one", *[at(0)] * times))
    assert both.setting_version() == 1
    both.run(save, ("two", *[at(1)] * times))
    both.run(save, ("three", *[at(1)] * times))
    both.run(save, ("one", *[at(2)] * times))  # saved again: the upsert's UPDATE, a change like any other
    assert both.setting_version() == 4
    both.run(f"UPDATE {table} SET updated_at = ?", (at(3),))  # noqa: S608 - three rows, three changes
    assert both.setting_version() == 7
    both.run(f"DELETE FROM {table} WHERE {key} IN ('two', 'three')")  # noqa: S608
    both.run(f"DELETE FROM {table} WHERE {key} = 'nothing'")  # noqa: S608 - no row, no change
    assert both.setting_version() == 9
    both.same(table, key)


# --- Conversations ----------------------------------------------------------------------------------


def test_every_change_a_page_shows_moves_the_conversation_up_the_live_updates(both):
    both.insert("customers", id=2, display_name="John Roe", created_at=at(0), updated_at=at(0))
    both.conversation(1)
    both.conversation(2)
    rows = both.same("conversation_changes", "conversation_id")
    assert [(r["seq"], r["created_seq"]) for r in rows] == [(1, 1), (2, 2)]

    steps = [
        ("UPDATE conversations SET status = 'pending' WHERE id = 1", ()),
        ("UPDATE conversations SET flags = 'vip' WHERE id = 2", ()),  # not on a page: no change
        ("UPDATE conversations SET priority = 2, team_id = 1 WHERE id = 2", ()),
        ("UPDATE conversations SET subject = 'Refund' WHERE id = 1", ()),
        ("UPDATE conversations SET last_message_at = ? WHERE id = 1", (at(3),)),
        ("UPDATE conversations SET merged_into = 2 WHERE id = 1", ()),
        ("UPDATE conversations SET assignee_id = 1 WHERE id = 2", ()),
        ("UPDATE conversations SET customer_id = 2 WHERE id = 2", ()),
        ("UPDATE conversations SET snoozed_until = ? WHERE id = 1", (at(60),)),
    ]
    for sql, params in steps:
        both.run(sql, params)
        both.same("conversation_changes", "conversation_id")
    both.message(1, 1, "in", 4)
    both.message(2, 2, "in", 5)
    both.message(3, 2, "out", 6)
    for sql, params in [("UPDATE messages SET text = 'edited' WHERE id = 1", ()),
                        ("UPDATE messages SET deleted_at = ? WHERE id = 2", (at(7),)),
                        ("UPDATE messages SET delivery_status = 'sent' WHERE id = 3", ()),
                        ("UPDATE messages SET html = '<p>x</p>' WHERE id = 3", ()),  # not on a page: no change
                        ("UPDATE messages SET conversation_id = 1 WHERE conversation_id = 2", ())]:
        both.run(sql, params)
        both.same("conversation_changes", "conversation_id")
    rows = both.same("conversation_changes", "conversation_id")
    assert [(r["seq"], r["created_seq"]) for r in rows] == [(18, 1), (16, 2)]


def test_waking_a_snoozed_conversation_any_way_ends_its_snooze(both):
    both.conversation(1, status="snoozed", snoozed_until=at(120))
    both.conversation(2, status="snoozed", snoozed_until=at(120))
    both.run("UPDATE conversations SET status = 'snoozed', updated_at = ? WHERE id = 2", (at(1),))
    both.run("UPDATE conversations SET status = 'open', updated_at = ? WHERE id = 1", (at(2),))
    rows = both.same("conversations", "id")
    assert [r["snoozed_until"] for r in rows] == [None, at(120)]
    # The snooze's end is a change of its own for the live updates (it names snoozed_until).
    both.same("conversation_changes", "conversation_id")


def test_a_status_change_is_logged_at_the_writers_time_and_service_levels_are_recomputed(both):
    both.conversation(1, status="new", sla_computed_at=at(0))
    both.run("UPDATE conversations SET status = 'open', updated_at = ? WHERE id = 1", (at(10),))
    both.run("UPDATE conversations SET sla_computed_at = ? WHERE id = 1", (at(11),))
    both.run("UPDATE conversations SET status = 'open', updated_at = ? WHERE id = 1", (at(12),))  # no change
    rows = both.same("conversations", "id")
    assert rows[0]["sla_computed_at"] == at(11)
    log = both.same("conversation_status_log", "id")
    assert [(r["at"], r["old_status"], r["new_status"]) for r in log] == [(at(10), "new", "open")]


def test_a_status_change_by_a_writer_whose_clock_stood_still_is_logged_at_the_time_of_the_change(both):
    both.conversation(1, status="open", sla_computed_at=at(0))
    both.run("UPDATE conversations SET status = 'resolved' WHERE id = 1")
    log = both.same("conversation_status_log", "id", formats={"at": NOW_MICROSECONDS})
    assert [(r["old_status"], r["new_status"]) for r in log] == [("open", "resolved")]
    for conn in (both.lite, both.pg):
        (logged,) = conn.execute("SELECT at FROM conversation_status_log").fetchone()
        assert _near_now(logged, "%Y-%m-%dT%H:%M:%S.%fZ"), logged
    assert both.same("conversations", "id")[0]["sla_computed_at"] is None


@pytest.mark.parametrize(("change", "recompute"), [
    ("priority = 3", True),
    ("team_id = 1", True),
    ("channel = 'chat'", True),
    ("subject = 'Another subject'", False),
    ("flags = 'vip'", False),
], ids=["priority", "team", "channel", "subject", "flags"])
def test_changing_what_service_levels_depend_on_asks_for_them_again(both, change, recompute):
    both.conversation(1, sla_computed_at=at(0))
    both.run(f"UPDATE conversations SET {change} WHERE id = 1")  # noqa: S608 - the parameters above
    rows = both.same("conversations", "id")
    assert (rows[0]["sla_computed_at"] is None) == recompute


def test_a_new_message_asks_for_the_service_levels_again(both):
    both.conversation(1, sla_computed_at=at(0))
    both.conversation(2, sla_computed_at=at(0))
    both.message(1, 1, "note", 1)
    rows = both.same("conversations", "id")
    assert [r["sla_computed_at"] for r in rows] == [None, at(0)]


def test_assigning_by_hand_is_marked_as_a_persons_at_the_writers_time(both):
    both.conversation(1)
    both.run("UPDATE conversations SET assignee_id = 1, updated_at = ? WHERE id = 1", (at(1),))
    rows = both.same("conversations", "id")
    assert (rows[0]["assigned_by"], rows[0]["assigned_at"]) == ("person", at(1))
    # Routing marks its own; giving the same agent again is no new assignment.
    both.run("UPDATE conversations SET assigned_by = 'routing' WHERE id = 1")
    both.run("UPDATE conversations SET assignee_id = 1, updated_at = ? WHERE id = 1", (at(2),))
    assert both.same("conversations", "id")[0]["assigned_by"] == "routing"
    both.run("UPDATE conversations SET assignee_id = 2, updated_at = ? WHERE id = 1", (at(3),))
    assert both.same("conversations", "id")[0]["assigned_at"] == at(3)
    both.run("UPDATE conversations SET assignee_id = NULL, updated_at = ? WHERE id = 1", (at(4),))
    rows = both.same("conversations", "id")
    assert (rows[0]["assigned_by"], rows[0]["assigned_at"]) == (None, None)


# --- Messages ---------------------------------------------------------------------------------------


def test_a_customers_message_starts_the_wait_and_our_reply_ends_it(both):
    both.conversation(1)
    waiting = []
    for id, direction, minute in [(1, "in", 1), (2, "in", 2), (3, "note", 3), (4, "out", 4), (5, "in", 5)]:
        both.message(id, 1, direction, minute)
        waiting.append(both.same("conversations", "id")[0]["waiting_since"])
    assert waiting == [at(1), at(1), at(1), None, at(5)]


def test_moving_messages_to_another_conversation_works_out_both_waits_again(both):
    both.conversation(1)
    both.conversation(2)
    both.message(1, 1, "in", 1)
    both.message(2, 1, "out", 2)
    both.message(3, 1, "in", 3)
    both.message(4, 2, "out", 4)
    both.message(5, 2, "in", 5)
    assert [r["waiting_since"] for r in both.same("conversations", "id")] == [at(3), at(5)]
    # Our reply moved away: the customer has waited since their first message.
    both.run("UPDATE messages SET conversation_id = 2 WHERE id = 2")
    assert [r["waiting_since"] for r in both.same("conversations", "id")] == [at(1), at(5)]
    # Everything moved back: the latest reply is now the other conversation's, and nothing is left there.
    both.run("UPDATE messages SET conversation_id = 1 WHERE conversation_id = 2")
    assert [r["waiting_since"] for r in both.same("conversations", "id")] == [at(5), None]
    both.same("conversation_changes", "conversation_id")


def test_an_agent_with_the_conversation_open_has_read_the_customers_messages_so_far(both):
    both.conversation(1)
    both.conversation(2)
    both.message(1, 1, "in", 1)
    both.message(2, 1, "in", 2)
    both.message(3, 1, "out", 3)
    both.message(4, 1, "in", 4, deleted_at=at(5))  # withdrawn by the customer: not shown, not read
    both.message(5, 2, "out", 1)
    both.insert("presence", conversation_id=1, agent_id=1, state="viewing", seen_at=at(6))
    both.insert("presence", conversation_id=2, agent_id=1, state="viewing", seen_at=at(6))  # nothing to read
    assert both.same("conversation_marks", "conversation_id") == [
        {"conversation_id": 1, "team_read_up_to": 2, "customer_typing_at": None}]
    both.message(6, 1, "in", 7)
    both.run("UPDATE presence SET state = 'typing', seen_at = ? WHERE conversation_id = 1", (at(8),))
    assert both.same("conversation_marks", "conversation_id")[0]["team_read_up_to"] == 6
    # Only forward: a mark ahead of the messages (a merge moved them away) stays.
    both.run("UPDATE conversation_marks SET team_read_up_to = 99, customer_typing_at = ?", (at(8),))
    both.run("UPDATE presence SET seen_at = ? WHERE conversation_id = 1", (at(9),))
    both.insert("presence", conversation_id=1, agent_id=2, state="viewing", seen_at=at(9))
    assert both.same("conversation_marks", "conversation_id") == [
        {"conversation_id": 1, "team_read_up_to": 99, "customer_typing_at": at(8)}]


# --- Webhook events ---------------------------------------------------------------------------------

#: Written to a survey's comment and read back from the event's data: JSON's escapes on both engines.
AWKWARD = 'Quote " backslash \\ slash / tab \t newline \n \x01 \x1f \x7f é € 😀 \u2028 end'


def _created(both):
    both.conversation(1, created=1)
    both.conversation(2, created=2)


def _received(both):
    both.conversation(1)
    both.message(1, 1, "in", 1)
    both.message(2, 1, "out", 2)
    both.message(3, 1, "note", 3)
    both.message(4, 1, "in", 4)


def _sent(both):
    both.conversation(1)
    both.message(1, 1, "out", 1, delivery_status="queued")
    both.message(2, 1, "out", 2, delivery_status="queued")
    both.message(3, 1, "in", 3, delivery_status="queued")
    both.run("UPDATE messages SET delivery_status = 'sent', sent_at = ? WHERE id = 1", (at(5),))
    both.run("UPDATE messages SET delivery_status = 'sent', sent_at = ? WHERE id = 1", (at(6),))  # sent already
    both.run("UPDATE messages SET delivery_status = 'sent' WHERE id = 3")  # not ours
    both.run("UPDATE messages SET delivery_status = 'failed' WHERE id = 2")
    both.run("UPDATE messages SET delivery_status = 'sent' WHERE id = 2")  # no sent_at: the time of the change


def _status_changed(both):
    both.conversation(1, status="new")
    both.run("UPDATE conversations SET status = 'open', updated_at = ? WHERE id = 1", (at(1),))
    both.run("UPDATE conversations SET status = 'open', updated_at = ? WHERE id = 1", (at(2),))
    both.run("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = 1", (at(3),))


def _assigned(both):
    both.conversation(1)
    both.run("UPDATE conversations SET assignee_id = 1, updated_at = ? WHERE id = 1", (at(1),))
    both.run("UPDATE conversations SET assignee_id = 1, updated_at = ? WHERE id = 1", (at(2),))
    both.run("UPDATE conversations SET assignee_id = 2, updated_at = ? WHERE id = 1", (at(3),))
    both.run("UPDATE conversations SET assignee_id = NULL, updated_at = ? WHERE id = 1", (at(4),))


def _satisfaction(both):
    both.conversation(1)
    both.conversation(2)
    both.message(1, 1, "in", 1)
    for conversation in (1, 2):
        both.insert("csat_surveys", conversation_id=conversation, channel="email", kind="link",
                    asked_at=at(0), expires_at=at(600))
    both.run("UPDATE csat_surveys SET state = 'answered', score = 4, comment = ?, answered_at = ?, "
             "answer_message_id = 1 WHERE conversation_id = 1", (AWKWARD, at(2)))
    both.run("UPDATE csat_surveys SET state = 'answered', score = 5 WHERE conversation_id = 1")  # answered already
    both.run("UPDATE csat_surveys SET state = 'expired' WHERE conversation_id = 2")
    both.run("UPDATE csat_surveys SET state = 'answered', score = 1 WHERE conversation_id = 2")  # no time, no comment


def _breached(both):
    both.conversation(1)
    for kind, metric, minute in [("warning", "first_response", 1), ("breach", "first_response", 2),
                                 ("breach", "resolution", 3)]:
        both.insert("sla_notifications", conversation_id=1, metric=metric, kind=kind, due_at=at(minute),
                    created_at=at(minute + 1))


WEBHOOK_CASES = [
    pytest.param("conversation.created", _created, [
        (1, None, {}, at(1)),
        (2, None, {}, at(2))], id="conversation.created"),
    pytest.param("message.received", _received, [
        (1, 1, {}, at(1)),
        (1, 4, {}, at(4))], id="message.received"),
    pytest.param("message.sent", _sent, [
        (1, 1, {}, at(5)),
        (1, 2, {}, None)], id="message.sent"),
    pytest.param("conversation.status_changed", _status_changed, [
        (1, None, {"previous_status": "new", "status": "open"}, at(1)),
        (1, None, {"previous_status": "open", "status": "resolved"}, at(3))], id="conversation.status_changed"),
    pytest.param("conversation.assigned", _assigned, [
        (1, None, {"previous_assignee_id": None, "assignee_id": 1}, at(1)),
        (1, None, {"previous_assignee_id": 1, "assignee_id": 2}, at(3)),
        (1, None, {"previous_assignee_id": 2, "assignee_id": None}, at(4))], id="conversation.assigned"),
    pytest.param("satisfaction.received", _satisfaction, [
        (1, 1, {"score": 4, "comment": AWKWARD, "kind": "link"}, at(2)),
        (2, None, {"score": 1, "comment": None, "kind": "link"}, None)], id="satisfaction.received"),
    pytest.param("service_level.breached", _breached, [
        (1, None, {"metric": "first_response", "due_at": at(2)}, at(3)),
        (1, None, {"metric": "resolution", "due_at": at(3)}, at(4))], id="service_level.breached"),
]


@pytest.mark.parametrize(("event", "scenario", "expected"), WEBHOOK_CASES)
def test_a_webhook_subscriber_hears_of_what_it_listens_for(both, event, scenario, expected):
    """`expected`: (conversation, message, data, time) of each event; a time None is the time of the change."""
    both.subscribe(f"other.event {event}")
    scenario(both)
    rows = both.same("webhook_out_events", "id", formats={"event_id": EVENT_ID, "created_at": ANY_TIME})
    # SQLite's json_object: compact, keys in the order given, text as JSON's escapes.
    assert [(r["type"], r["conversation_id"], r["message_id"], r["data"], r["payload"], r["fanned_out_at"])
            for r in rows] == [(event, conversation, message, json.dumps(data, separators=(",", ":"),
                                                                          ensure_ascii=False), None, None)
                               for conversation, message, data, _ in expected]
    for conn in (both.lite, both.pg):
        times = [time for (time,) in conn.execute("SELECT created_at FROM webhook_out_events ORDER BY id")]
        for time, (*_, wanted) in zip(times, expected, strict=True):
            if wanted is None:
                assert re.fullmatch(NOW_SECONDS, time) and _near_now(time, "%Y-%m-%dT%H:%M:%SZ"), time
            else:
                assert time == wanted
        ids = [event_id for (event_id,) in conn.execute("SELECT event_id FROM webhook_out_events")]
        assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("event", "scenario", "expected"), WEBHOOK_CASES)
def test_no_webhook_event_is_kept_while_no_subscriber_listens_for_it(both, event, scenario, expected):
    # Listening for other events only, one of them named like this one but longer: nothing is recorded.
    both.subscribe(f"{event}s other.event")
    scenario(both)
    assert both.same("webhook_out_events", "id") == []


# --- The triggers themselves ------------------------------------------------------------------------


#: PostgreSQL's triggers without a SQLite twin: the notice live pages on other machines hear
#: (revision 0005; SQLite's processes share one machine and find changes on their next look).
POSTGRESQL_ONLY_TRIGGERS = {"notify_conversation_changes": "conversation_changes"}


def _sqlite_triggers(lite: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    return {name: (table, sql) for name, table, sql in lite.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")}


def test_every_sqlite_trigger_but_the_search_indexes_has_a_postgresql_twin_on_the_same_table(store, pg):
    sqlite_triggers = _sqlite_triggers(store.conn)
    search = {name for name, (_, sql) in sqlite_triggers.items()
              if any(re.search(rf"\b{table}\b", sql) for table in SEARCH_TABLES)}
    # A new trigger of the search indexes is left out on purpose only: name it in SEARCH_TRIGGERS.
    assert search == SEARCH_TRIGGERS
    pg_triggers = dict(pg.execute(
        "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"))
    assert pg_triggers == {**{name: table for name, (table, _) in sqlite_triggers.items()
                              if name not in SEARCH_TRIGGERS_WITHOUT_TWIN}, **POSTGRESQL_ONLY_TRIGGERS}


#: A trigger's time, event (with the columns of UPDATE OF) and table, in SQLite's and PostgreSQL's words.
FIRES = re.compile(r"\b(BEFORE|AFTER|INSTEAD OF)\s+(INSERT|DELETE|UPDATE)(?:\s+OF\s+(.+?))?\s+ON\s+(?:public\.)?(\w+)",
                   re.IGNORECASE | re.DOTALL)
#: Where a condition starts, up to the body (SQLite) or the function (PostgreSQL).
CONDITION = re.compile(r"\bWHEN\s+(.+?)\s+(?:BEGIN|EXECUTE FUNCTION)\b", re.IGNORECASE | re.DOTALL)


def _fires(sql: str) -> tuple[str, str, frozenset[str], str, bool]:
    timing, event, columns, table = FIRES.search(sql).groups()
    condition = CONDITION.search(sql)
    conditional = bool(condition) and condition.group(1).strip("() ") != "1"  # SQLite's WHEN 1: always
    return (timing.upper(), event.upper(), frozenset(c.strip() for c in (columns or "").split(",") if c.strip()),
            table, conditional)


def test_each_postgresql_twin_fires_when_its_sqlite_trigger_does(store, pg):
    sqlite_triggers = {name: _fires(sql) for name, (_, sql) in _sqlite_triggers(store.conn).items()
                       if name not in SEARCH_TRIGGERS}
    pg_triggers = {name: _fires(sql) for name, sql in pg.execute(
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal")
        if name not in SEARCH_TRIGGERS and name not in POSTGRESQL_ONLY_TRIGGERS}
    assert pg_triggers == sqlite_triggers
    rows = pg.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgtype & 1 = 0").fetchall()
    assert rows == [], "not row triggers, as all of SQLite's are"


def test_going_back_before_the_triggers_leaves_none_of_them(cluster, pg):
    from alembic import command
    from sqlalchemy import create_engine

    from inbox.store import pg_schema

    url = cluster.rsplit("/", 1)[0] + "/" + pg.info.dbname
    engine = create_engine(pg_schema.sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            command.downgrade(pg_schema.alembic_config(conn), "0001")
            conn.commit()
    finally:
        engine.dispose()
    assert pg.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").fetchall() == []
    assert pg.execute("SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                      "WHERE n.nspname = 'public'").fetchall() == []
    assert pg_schema.upgrade(url) == [revision for revision in _every_revision() if revision > "0001"]
