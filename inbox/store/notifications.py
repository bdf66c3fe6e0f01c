"""Store verbs for notification settings and delivery: each agent's choices per event and medium,
"customer replied" detection over new inbound messages, and the batch mails' own outbox.

An agent's settings are JSON {event: {medium: bool}} holding only what differs from `DEFAULTS`, so a
default changed later reaches everyone who never touched it. Notification kinds map to events by
`KIND_EVENTS`; kinds without an event (review_returned, routing_moved) are in-app only.
"""

from __future__ import annotations

import json
from typing import Any

from inbox.store.base import as_dict, as_dicts

EVENTS = ("assigned", "mention", "customer_replied", "sla")
MEDIA = ("in_app", "browser", "email")
DEFAULTS: dict[str, dict[str, bool]] = {
    "assigned": {"in_app": True, "browser": True, "email": False},
    "mention": {"in_app": True, "browser": True, "email": True},
    "customer_replied": {"in_app": True, "browser": True, "email": False},
    "sla": {"in_app": True, "browser": False, "email": True},
}
#: Notification kind -> the event an agent switches on or off.
KIND_EVENTS = {"assigned": "assigned", "mention": "mention", "customer_replied": "customer_replied",
               "sla_warning": "sla", "sla_breach": "sla"}
#: Automatic messages (auto-replies, bounces, bulk, our own loops) and survey answers notify nobody.
QUIET_FLAGS = ("auto_submitted", "bulk", "bounce", "loop", "survey_answer")


def resolve_settings(stored: dict[str, Any] | None) -> dict[str, dict[str, bool]]:
    """Every event and medium: the agent's choice where they made one, else the default."""
    stored = stored if isinstance(stored, dict) else {}
    return {event: {medium: bool((stored.get(event) or {}).get(medium, default))
                    for medium, default in media.items()} for event, media in DEFAULTS.items()}


def wants(settings: dict[str, dict[str, bool]], kind: str, medium: str) -> bool:
    """Whether a notification of `kind` goes out through `medium` under these (resolved) settings."""
    event = KIND_EVENTS.get(kind)
    if event is None:
        return medium == "in_app"
    return settings[event][medium]


class NotificationQueries:
    conn: Any
    write: Any

    # Settings ------------------------------------------------------------------------------------

    def notification_settings(self, agent_id: int) -> dict[str, dict[str, bool]]:
        row = self.conn.execute("SELECT settings FROM notification_settings WHERE agent_id = ?",
                                (agent_id,)).fetchone()
        try:
            stored = json.loads(row[0]) if row else {}
        except ValueError:
            stored = {}
        return resolve_settings(stored)

    def set_notification_settings(self, agent_id: int, settings: dict[str, dict[str, bool]], now: str) -> None:
        """Store the agent's choices (only those that differ from the defaults)."""
        resolved = resolve_settings(settings)
        changed = {event: {m: v for m, v in media.items() if v != DEFAULTS[event][m]}
                   for event, media in resolved.items()}
        changed = {event: media for event, media in changed.items() if media}
        with self.write():
            self.conn.execute(
                "INSERT INTO notification_settings (agent_id, settings, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (agent_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                (agent_id, json.dumps(changed, sort_keys=True), now))

    # Watermarks ----------------------------------------------------------------------------------

    def mark_or_start(self, name: str, table: str) -> tuple[int, bool]:
        """The watermark `name` over the ids of `table` (a constant of the caller), and True when it was
        only now started at the newest row: a job switched on never works through the past."""
        row = self.conn.execute("SELECT value FROM notification_marks WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return row[0], False
        newest = self.conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]  # noqa: S608
        self.conn.execute("INSERT INTO notification_marks (name, value) VALUES (?, ?)", (name, newest))
        return newest, True

    # Customer replied ----------------------------------------------------------------------------

    def customer_replies_since_mark(self, limit: int = 500) -> tuple[int, list[dict[str, Any]]]:
        """Inbound messages stored after the "customer replied" watermark, with their conversation's
        assignee, and the watermark itself. Call inside a write transaction with `move_mark`."""
        mark, started = self.mark_or_start("customer_replied", "messages")
        if started:
            return mark, []
        rows = as_dicts(self.conn.execute(
            "SELECT m.id, m.conversation_id, m.direction, m.flags, c.assignee_id, "
            "EXISTS (SELECT 1 FROM messages e WHERE e.conversation_id = m.conversation_id AND e.id < m.id "
            "AND e.direction != 'note') AS has_earlier "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.id > ? ORDER BY m.id LIMIT ?", (mark, limit)))
        return mark, rows

    def sla_notices_since_mark(self, limit: int = 500) -> tuple[int, list[dict[str, Any]]]:
        """Service-level notices announced after the "sla_assignee" watermark, with the conversation's
        assignee and team (the leads had theirs; the assignee gets one too)."""
        mark, started = self.mark_or_start("sla_assignee", "sla_notifications")
        if started:
            return mark, []
        rows = as_dicts(self.conn.execute(
            "SELECT s.id, s.conversation_id, s.kind, c.assignee_id, c.team_id FROM sla_notifications s "
            "JOIN conversations c ON c.id = s.conversation_id WHERE s.id > ? ORDER BY s.id LIMIT ?",
            (mark, limit)))
        return mark, rows

    def move_mark(self, name: str, value: int) -> None:
        self.conn.execute(
            "INSERT INTO notification_marks (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = max(notification_marks.value, excluded.value)", (name, value))

    # The newest notification (browser notifications) ---------------------------------------------

    def newest_notification(self, agent_id: int) -> dict[str, Any] | None:
        """The agent's newest notification with what a browser notification shows, hidden or not."""
        cur = self.conn.execute(
            "SELECT n.id, n.kind, n.conversation_id, n.message_id, n.read_at, n.in_app, c.subject, c.team_id, "
            "a.name AS actor_name, a.email AS actor_email, cu.display_name AS customer_name "
            "FROM notifications n JOIN conversations c ON c.id = n.conversation_id "
            "LEFT JOIN customers cu ON cu.id = c.customer_id LEFT JOIN agents a ON a.id = n.actor_id "
            "WHERE n.agent_id = ? ORDER BY n.id DESC LIMIT 1", (agent_id,))
        return as_dict(cur, cur.fetchone())

    def newest_notification_id(self, agent_id: int) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM notifications WHERE agent_id = ?",
                                 (agent_id,)).fetchone()[0]

    # Email batches -------------------------------------------------------------------------------

    def agents_with_pending_email(self, created_before: str) -> list[int]:
        """Agents whose oldest notification still waiting for a mail is older than `created_before`."""
        return [r[0] for r in self.conn.execute(
            "SELECT agent_id FROM notifications WHERE email_state = 'pending' GROUP BY agent_id "
            "HAVING min(created_at) <= ? ORDER BY agent_id", (created_before,))]

    def pending_email_notifications(self, agent_id: int) -> list[dict[str, Any]]:
        """The agent's notifications waiting for a mail, oldest first, with what the mail lists."""
        return as_dicts(self.conn.execute(
            "SELECT n.id, n.kind, n.conversation_id, n.message_id, n.created_at, n.read_at, c.subject, c.channel, "
            "a.name AS actor_name, a.email AS actor_email, cu.display_name AS customer_name "
            "FROM notifications n LEFT JOIN conversations c ON c.id = n.conversation_id "
            "LEFT JOIN customers cu ON cu.id = c.customer_id LEFT JOIN agents a ON a.id = n.actor_id "
            "WHERE n.agent_id = ? AND n.email_state = 'pending' ORDER BY n.id", (agent_id,)))

    def queue_notification_email(self, *, agent_id: int, to_address: str, subject: str, text: str, message_id: str,
                                 notification_ids: list[int], skipped_ids: list[int], now: str) -> int | None:
        """In the caller's transaction: the mail (if it lists anything) and each notification's fate."""
        email_id = None
        if notification_ids:
            email_id = self.conn.execute(
                "INSERT INTO notification_emails (agent_id, to_address, subject, text, message_id, item_count, "
                "next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (agent_id, to_address, subject, text, message_id, len(notification_ids), now, now)).lastrowid
            for start in range(0, len(notification_ids), 500):
                chunk = notification_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                self.conn.execute(
                    f"UPDATE notifications SET email_state = 'mailed', email_id = ? "  # noqa: S608
                    f"WHERE id IN ({marks}) AND email_state = 'pending'", (email_id, *chunk))
        for start in range(0, len(skipped_ids), 500):
            chunk = skipped_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            self.conn.execute(f"UPDATE notifications SET email_state = 'skipped' "  # noqa: S608
                              f"WHERE id IN ({marks}) AND email_state = 'pending'", chunk)
        return email_id

    def claim_notification_emails(self, now: str, lease_until: str, limit: int = 20) -> list[dict[str, Any]]:
        """Take due mails for sending; one whose lease ran out (a sender died) is taken again, flagged
        as a possible duplicate (it keeps its Message-ID, so mail clients show one)."""
        rows = as_dicts(self.conn.execute(
            "SELECT id, state FROM notification_emails WHERE (state IN ('pending', 'retry_wait') AND next_at <= ?) "
            "OR (state = 'sending' AND lease_until < ?) ORDER BY next_at, id LIMIT ?", (now, now, limit)))
        claimed = []
        for row in rows:
            cur = self.conn.execute(
                "UPDATE notification_emails SET state = 'sending', lease_until = ?, attempts = attempts + 1, "
                "possible_duplicate = CASE WHEN state = 'sending' THEN 1 ELSE possible_duplicate END "
                "WHERE id = ? AND state = ?",
                (lease_until, row["id"], row["state"]))
            if cur.rowcount:
                found = self.conn.execute("SELECT * FROM notification_emails WHERE id = ?", (row["id"],))
                claimed.append(as_dict(found, found.fetchone()))
        return claimed

    def mark_notification_email(self, email_id: int, state: str, now: str, *, next_at: str | None = None,
                                error: str | None = None) -> None:
        """sent (the body is dropped: the mail is out, the notifications stay), retry_wait or failed."""
        if state == "sent":
            self.conn.execute(
                "UPDATE notification_emails SET state = 'sent', sent_at = ?, text = '', lease_until = NULL, "
                "last_error = NULL WHERE id = ?", (now, email_id))
        else:
            self.conn.execute(
                "UPDATE notification_emails SET state = ?, next_at = coalesce(?, next_at), lease_until = NULL, "
                "last_error = ? WHERE id = ?", (state, next_at, error, email_id))

    def notification_emails(self, agent_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT id, subject, item_count, state, attempts, created_at, sent_at, last_error "
            "FROM notification_emails WHERE agent_id = ? ORDER BY id", (agent_id,)))
