"""triggers: SQLite's triggers of m001 to m045, as PL/pgSQL

Revision ID: 0002
Revises: 0001
Created: 2026-12-07 11:09:21.000000

Every trigger SQLite's migrations leave (their final versions, as `sqlite_master` holds them), with
its name, its timing and event (`UPDATE OF` the same columns), its condition as the trigger's `WHEN`,
and its statements, in order, in one PL/pgSQL function of the same name. SQLite's triggers are all
row triggers that run AFTER, so each is `FOR EACH ROW` and its function returns NULL.
tests/test_pg_triggers.py runs the same statements on both engines and compares the rows.

Left out: the triggers that keep SQLite's FTS5 search indexes (`messages_fts`,
`conversation_search`, `help_search`, and `search_index_deferred` that holds them back during an
import batch). Those tables are FTS5 virtual tables, which PostgreSQL has not; its search is built
its own way in a later change, so nothing here has an index to keep:

    messages_ai, messages_au, messages_ad                     (messages_fts)
    conversation_search_ai, conversation_search_au, conversation_search_ad,
    conversation_search_customer, conversation_search_identity_ai,
    conversation_search_identity_au, conversation_search_identity_ad   (conversation_search)
    help_articles_ai, help_articles_au, help_articles_ad, help_answers_au   (help_search)

Translated from SQLite's dialect, to the same effect:

* `a IS NOT b` is `a IS DISTINCT FROM b`; `WHEN 1` is no condition; `ifnull` is `coalesce`;
  `max(a, b)` of two values is `greatest`; `instr(a, b)` is `strpos(a, b)`; a subquery in FROM has
  an alias (PostgreSQL 15 wants one); SQLite's `WHERE 1`, there only to tell its parser that
  `ON CONFLICT` belongs to the INSERT, is dropped.
* Timestamps are text compared as text: the comparisons and `min()` of timestamps say
  `COLLATE "C"`, SQLite's byte order, whatever the database's collation.
* SQLite's `'now'` is the time the statement started (the same for every row it changes), in UTC:
  `statement_timestamp() AT TIME ZONE 'UTC'`, formatted by `to_char` into the same text
  (`%f` is seconds with milliseconds, so `'%H:%M:%f000Z'` gives microseconds ending in 000).
* `json_object(...)` gives compact JSON with the keys in the order given; jsonb's text has spaces
  and sorts its keys, so the object is written out, each value by `to_json` (which escapes strings
  as SQLite does, control characters as lowercase `\\u00xx`) and a NULL as `null`.
* `'evt_' || lower(hex(randomblob(16)))`, 16 random bytes as lowercase hex, is `webhook_event_id()`:
  PostgreSQL 15 has no random bytes without pgcrypto, so it takes the random digits of two
  `gen_random_uuid()` (a version 4 UUID has 122 random bits in fixed places) to make 32 digits.
"""

from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


class Trigger:
    """One of SQLite's triggers: AFTER `event` ON `table` FOR EACH ROW, `when` it holds, `body`."""

    def __init__(self, name: str, event: str, table: str, when: str, body: str) -> None:
        self.name = name
        #: "INSERT", "UPDATE", "UPDATE OF a, b" or "DELETE".
        self.event = event
        self.table = table
        #: The condition, on OLD and NEW only; "" for none.
        self.when = when
        #: The statements, in order, each ending in ";".
        self.body = body


#: SQLite's `strftime('%Y-%m-%dT%H:%M:%SZ', 'now')`.
NOW_SECONDS = """to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""

#: 32 random lowercase hex digits after "evt_": the 30 random digits of one version 4 UUID (all but
#: the version digit, 13th, and the variant digit, 17th) and the first two of another.
EVENT_ID_FUNCTION = """
CREATE FUNCTION webhook_event_id() RETURNS text LANGUAGE sql VOLATILE AS $fn$
    SELECT 'evt_' || substr(a, 1, 12) || substr(a, 14, 3) || substr(a, 18, 15) || substr(b, 1, 2)
    FROM (SELECT encode(uuid_send(gen_random_uuid()), 'hex') AS a,
                 encode(uuid_send(gen_random_uuid()), 'hex') AS b) AS digits
$fn$
"""

#: An agent with the conversation open has seen the customer's messages so far; the mark only moves forward.
TEAM_READ = """
INSERT INTO conversation_marks (conversation_id, team_read_up_to)
SELECT NEW.conversation_id, newest FROM (SELECT max(id) AS newest FROM messages
    WHERE conversation_id = NEW.conversation_id AND direction = 'in' AND deleted_at IS NULL) AS latest
WHERE newest IS NOT NULL
ON CONFLICT (conversation_id) DO UPDATE
SET team_read_up_to = greatest(conversation_marks.team_read_up_to, EXCLUDED.team_read_up_to);
"""


def json_object(*pairs: tuple[str, str]) -> str:
    """SQLite's `json_object(key, value, ...)`: compact, keys in order, NULL as null."""
    parts = []
    for index, (key, value) in enumerate(pairs):
        comma = "," if index else ""
        parts.append(f"""'{comma}"{key}":' || coalesce(to_json({value})::text, 'null')""")
    return "'{' || " + " || ".join(parts) + " || '}'"


def webhook_event(name: str, event: str, table: str, when: str, event_type: str, conversation: str,
                  message: str, data: str, at: str) -> Trigger:
    """m032's outbound webhook events: a row for the worker to fan out, while a subscription listens."""
    body = f"""
INSERT INTO webhook_out_events (event_id, type, conversation_id, message_id, data, created_at)
SELECT webhook_event_id(), '{event_type}', {conversation}, {message}, {data}, coalesce({at}, {NOW_SECONDS})
WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE strpos(' ' || events || ' ', ' {event_type} ') > 0);
"""  # noqa: S608 - fixed names from TRIGGERS below
    return Trigger(f"webhook_event_{name}", event, table, when, body)


TRIGGERS: tuple[Trigger, ...] = (
    # m024: every change to a setting made in the browser moves the version the processes watch.
    *(Trigger(f"{table}_{event.lower()}", event, table, "",
              "UPDATE settings_version SET version = version + 1 WHERE id = 1;")
      for table in ("channel_settings", "stored_settings") for event in ("INSERT", "UPDATE", "DELETE")),

    # m005, m015: the change number of a conversation, for the live updates.
    Trigger("conversations_changed_insert", "INSERT", "conversations", "", """
INSERT INTO conversation_changes (conversation_id, seq, created_seq)
SELECT NEW.id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s)
    AS next_change;
"""),
    Trigger("conversations_changed_update", "UPDATE OF status, assignee_id, team_id, priority, last_message_at, "
            "snoozed_until, merged_into, subject, customer_id", "conversations", "", """
INSERT INTO conversation_changes (conversation_id, seq, created_seq)
SELECT NEW.id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s)
    AS next_change
ON CONFLICT (conversation_id) DO UPDATE SET seq = EXCLUDED.seq;
"""),
    Trigger("messages_changed_insert", "INSERT", "messages", "", """
INSERT INTO conversation_changes (conversation_id, seq, created_seq)
SELECT NEW.conversation_id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s)
    AS next_change
ON CONFLICT (conversation_id) DO UPDATE SET seq = EXCLUDED.seq;
"""),
    Trigger("messages_changed_update", "UPDATE OF delivery_status, conversation_id, text, deleted_at", "messages",
            "", """
INSERT INTO conversation_changes (conversation_id, seq, created_seq)
SELECT NEW.conversation_id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s)
    AS next_change
ON CONFLICT (conversation_id) DO UPDATE SET seq = EXCLUDED.seq;
"""),
    # m005: leaving 'snoozed' any way at all ends the snooze.
    Trigger("conversations_unsnooze", "UPDATE OF status", "conversations",
            "NEW.status <> 'snoozed' AND NEW.snoozed_until IS NOT NULL",
            "UPDATE conversations SET snoozed_until = NULL WHERE id = NEW.id;"),

    # m004: since when the customer waits for an answer.
    Trigger("conversations_waiting_in", "INSERT", "messages", "NEW.direction = 'in'", """
UPDATE conversations SET waiting_since = coalesce(waiting_since, NEW.received_at)
WHERE id = NEW.conversation_id;
"""),
    Trigger("conversations_waiting_out", "INSERT", "messages", "NEW.direction = 'out'",
            "UPDATE conversations SET waiting_since = NULL WHERE id = NEW.conversation_id;"),
    Trigger("conversations_waiting_moved", "UPDATE OF conversation_id", "messages", "", """
UPDATE conversations SET waiting_since = (
    SELECT min(m.received_at COLLATE "C") FROM messages m
    WHERE m.conversation_id = conversations.id AND m.direction = 'in'
      AND m.id > coalesce((SELECT max(o.id) FROM messages o
                           WHERE o.conversation_id = conversations.id AND o.direction = 'out'), 0))
WHERE id IN (OLD.conversation_id, NEW.conversation_id);
"""),

    # m007: the status log, and service levels marked for the worker to compute again.
    Trigger("conversation_status_logged", "UPDATE OF status", "conversations",
            "OLD.status IS DISTINCT FROM NEW.status", """
INSERT INTO conversation_status_log (conversation_id, at, old_status, new_status)
VALUES (NEW.id,
        CASE WHEN NEW.updated_at > OLD.updated_at COLLATE "C" THEN NEW.updated_at
             ELSE to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"000Z"') END,
        OLD.status, NEW.status);
UPDATE conversations SET sla_computed_at = NULL WHERE id = NEW.id;
"""),
    Trigger("conversation_sla_inputs_changed", "UPDATE OF priority, team_id, channel", "conversations", "",
            "UPDATE conversations SET sla_computed_at = NULL WHERE id = NEW.id;"),
    Trigger("message_marks_sla_stale", "INSERT", "messages", "",
            "UPDATE conversations SET sla_computed_at = NULL WHERE id = NEW.conversation_id;"),

    # m011: a change of assignee is a person's, whoever writes it; routing marks its own afterwards.
    Trigger("conversations_assigned", "UPDATE OF assignee_id", "conversations",
            "NEW.assignee_id IS DISTINCT FROM OLD.assignee_id", """
UPDATE conversations SET
    assigned_by = CASE WHEN NEW.assignee_id IS NULL THEN NULL ELSE 'person' END,
    assigned_at = CASE WHEN NEW.assignee_id IS NULL THEN NULL ELSE NEW.updated_at END
WHERE id = NEW.id;
"""),

    # m032: outbound webhook events.
    webhook_event("conversation_created", "INSERT", "conversations", "", "conversation.created",
                  "NEW.id", "NULL::bigint", "'{}'", "NEW.created_at"),
    webhook_event("message_received", "INSERT", "messages", "NEW.direction = 'in'", "message.received",
                  "NEW.conversation_id", "NEW.id", "'{}'", "NEW.received_at"),
    webhook_event("message_sent", "UPDATE OF delivery_status", "messages",
                  "NEW.direction = 'out' AND NEW.delivery_status = 'sent' "
                  "AND OLD.delivery_status IS DISTINCT FROM 'sent'",
                  "message.sent", "NEW.conversation_id", "NEW.id", "'{}'", "NEW.sent_at"),
    webhook_event("status_changed", "UPDATE OF status", "conversations", "OLD.status IS DISTINCT FROM NEW.status",
                  "conversation.status_changed", "NEW.id", "NULL::bigint",
                  json_object(("previous_status", "OLD.status"), ("status", "NEW.status")), "NEW.updated_at"),
    webhook_event("assigned", "UPDATE OF assignee_id", "conversations",
                  "OLD.assignee_id IS DISTINCT FROM NEW.assignee_id", "conversation.assigned", "NEW.id",
                  "NULL::bigint",
                  json_object(("previous_assignee_id", "OLD.assignee_id"), ("assignee_id", "NEW.assignee_id")),
                  "NEW.updated_at"),
    webhook_event("satisfaction_received", "UPDATE OF state", "csat_surveys",
                  "NEW.state = 'answered' AND OLD.state IS DISTINCT FROM 'answered'", "satisfaction.received",
                  "NEW.conversation_id", "NEW.answer_message_id",
                  json_object(("score", "NEW.score"), ("comment", "NEW.comment"), ("kind", "NEW.kind")),
                  "NEW.answered_at"),
    webhook_event("service_level_breached", "INSERT", "sla_notifications", "NEW.kind = 'breach'",
                  "service_level.breached", "NEW.conversation_id", "NULL::bigint",
                  json_object(("metric", "NEW.metric"), ("due_at", "NEW.due_at")), "NEW.created_at"),

    # m039: how far the team has read the customer's messages (the website chat shows it).
    Trigger("presence_marks_read_insert", "INSERT", "presence", "", TEAM_READ),
    Trigger("presence_marks_read_update", "UPDATE", "presence", "", TEAM_READ),
)


def upgrade() -> None:
    op.execute(EVENT_ID_FUNCTION)
    for trigger in TRIGGERS:
        op.execute(f"CREATE FUNCTION {trigger.name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
                   f"BEGIN\n{trigger.body.strip()}\nRETURN NULL;\nEND\n$fn$")
        when = f" WHEN ({trigger.when})" if trigger.when else ""
        op.execute(f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} ON {trigger.table} "
                   f"FOR EACH ROW{when} EXECUTE FUNCTION {trigger.name}()")


def downgrade() -> None:
    for trigger in reversed(TRIGGERS):
        op.execute(f"DROP TRIGGER {trigger.name} ON {trigger.table}")
        op.execute(f"DROP FUNCTION {trigger.name}()")
    op.execute("DROP FUNCTION webhook_event_id()")
