"""Store verbs for working a conversation: the thread with delivery states, the customer's history,
status, assignment, priority, notes and mentions, presence, merge and split, and the change
watermark behind live updates. The notifications themselves are `store.notifications`
(inbox/store/notifications.py).

Lists that could show another team's conversations take `team_ids` (None = no restriction) and
filter in SQL with `team_clause`, so nothing of another team is counted or listed. Verbs that
write are their own `BEGIN IMMEDIATE` transaction unless the caller already holds one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from inbox.store.base import NotFound, StoreError, as_dict, as_dicts
from inbox.store.teams import team_clause

_THREAD_COLUMNS = (
    "m.id, m.conversation_id, m.channel, m.external_id, m.direction, m.agent_id, m.author_name, m.author_handle, "
    "m.subject, m.text, m.html, m.message_id, m.flags, m.defects, m.sent_at, m.received_at, m.delivery_status, "
    "m.delivery_error, m.context_text, m.context_url, m.edited_at, m.deleted_at, "
    "json_extract(m.headers, '$.pressed') AS pressed, m.cc, m.bcc, m.signature, "
    "o.id AS outbox_id, o.state AS outbox_state, o.attempts AS outbox_attempts, o.forward_of, "
    # A reply sent in parts (m016) has one outbox row per part: the message is shown once, with
    # its first part's row, and flagged when any part may have gone out twice.
    "(SELECT max(p.possible_duplicate) FROM outbox p WHERE p.message_id = m.id) AS possible_duplicate"
)


class MergeRefused(StoreError):
    """A merge, undo or split that cannot be done; `code` says which rule refused it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WorkQueries:
    conn: Any
    write: Any

    # The thread ----------------------------------------------------------------------------------

    def thread_messages(self, conversation_id: int, after_id: int | None = None, *, offset: int = 0,
                        limit: int | None = None) -> list[dict[str, Any]]:
        """The conversation's messages in order, each with its outbox state and attachments.

        With `after_id`, only messages stored after that one (what a page that showed up to
        `after_id` has not seen yet). `offset`/`limit` take a window of the thread in its order
        (a long thread opens with its latest part; earlier parts are fetched as the agent scrolls).
        """
        sql = (f"SELECT {_THREAD_COLUMNS} FROM messages m "  # noqa: S608
               "LEFT JOIN outbox o ON o.message_id = m.id AND o.part_index = 0 "
               "WHERE m.conversation_id = ?")
        params: list[Any] = [conversation_id]
        if after_id is not None:
            sql += " AND m.id > ?"
            params.append(after_id)
        sql += " ORDER BY m.received_at, m.id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params.extend([limit, offset])
        elif offset:
            sql += " LIMIT -1 OFFSET ?"  # SQLite has no OFFSET without a LIMIT: -1 is none
            params.append(offset)
        messages = as_dicts(self.conn.execute(sql, params))
        if messages:
            ids = [m["id"] for m in messages]
            marks = ",".join("?" * len(ids))
            by_message: dict[int, list] = {}
            for att in as_dicts(self.conn.execute(
                "SELECT id, message_id, filename, content_type, size, sha256, stored, inline, type_mismatch "  # noqa: S608
                f"FROM attachments WHERE message_id IN ({marks}) ORDER BY id", ids,
            )):
                by_message.setdefault(att["message_id"], []).append(att)
            raw = {r[0] for r in self.conn.execute(
                f"SELECT message_id FROM raw_messages WHERE message_id IN ({marks})", ids)}  # noqa: S608
            edited = [m["id"] for m in messages if m["edited_at"]]
            history = self.message_changes.edit_history(edited) if edited else {}
            for m in messages:
                m["attachments"] = by_message.get(m["id"], [])
                m["has_raw"] = m["id"] in raw
                m["edits"] = history.get(m["id"], [])
        return messages

    def thread_length(self, conversation_id: int) -> int:
        return self.conn.execute("SELECT count(*) FROM messages WHERE conversation_id = ?",
                                 (conversation_id,)).fetchone()[0]

    def newest_message_id(self, conversation_id: int) -> int:
        row = self.conn.execute("SELECT max(id) FROM messages WHERE conversation_id = ?", (conversation_id,)).fetchone()
        return row[0] or 0

    def message_ids_after(self, conversation_id: int, after_id: int) -> list[dict[str, Any]]:
        """Id, direction and author agent of the messages stored after `after_id` (for live updates)."""
        return as_dicts(self.conn.execute(
            "SELECT id, direction, agent_id FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id",
            (conversation_id, after_id)))

    def unseen_message_ids(self, conversation_id: int, seen_up_to: int, agent_id: int) -> list[int]:
        """Messages and notes added after `seen_up_to` by anyone but `agent_id` (the stale-reply check)."""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM messages WHERE conversation_id = ? AND id > ? AND (agent_id IS NULL OR agent_id != ?) "
            "ORDER BY id", (conversation_id, seen_up_to, agent_id))]

    def message_delivery(self, conversation_id: int) -> list[dict[str, Any]]:
        """Delivery state of each of our replies in the conversation (for live status updates)."""
        return as_dicts(self.conn.execute(
            "SELECT m.id, m.delivery_status, m.delivery_error, (SELECT max(p.possible_duplicate) FROM outbox p "
            "WHERE p.message_id = m.id) AS possible_duplicate FROM messages m "
            "WHERE m.conversation_id = ? AND m.direction = 'out'",
            (conversation_id,)))

    def outbox_id_for_message(self, message_id: int) -> str | None:
        row = self.conn.execute("SELECT id FROM outbox WHERE message_id = ? ORDER BY part_index LIMIT 1",
                                (message_id,)).fetchone()
        return row[0] if row else None

    # The customer beside it ----------------------------------------------------------------------

    def customer_history(self, customer_id: int, team_ids: Iterable[int] | None, *, exclude_id: int | None = None,
                         limit: int = 50) -> list[dict[str, Any]]:
        """The customer's conversations on every channel, newest activity first (only visible ones).

        Includes conversations of customer records merged into this one.
        """
        clause, params = team_clause(team_ids)
        return as_dicts(self.conn.execute(
            "SELECT c.id, c.channel, c.subject, c.status, c.last_message_at, c.created_at, c.merged_into, "  # noqa: S608
            "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count, "
            "(SELECT substr(m.text, 1, 200) FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id LIMIT 1) "
            "AS first_text FROM conversations c "
            "WHERE c.customer_id IN (SELECT ? UNION ALL SELECT id FROM customers WHERE merged_into = ?) "
            f"AND c.id != ? AND {clause} ORDER BY c.last_message_at DESC, c.id DESC LIMIT ?",
            (customer_id, customer_id, exclude_id or 0, *params, limit)))

    def customer(self, customer_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute(
            "SELECT id, display_name, locale, crm_ref, created_at FROM customers WHERE id = ?", (customer_id,))
        return as_dict(cur, cur.fetchone())

    def neighbours(self, conversation: dict[str, Any], team_ids: Iterable[int] | None) -> tuple[int | None, int | None]:
        """The newer and older visible conversation with the same status, by latest activity (j/k).

        Written so that the (status, last_message_at) index answers it: one short index walk each.
        """
        clause, params = team_clause(team_ids)
        status, at, cid = conversation["status"], conversation["last_message_at"], conversation["id"]
        newer = self.conn.execute(
            "SELECT c.id FROM conversations c WHERE c.status = ? AND c.last_message_at >= ? "  # noqa: S608
            f"AND (c.last_message_at > ? OR c.id > ?) AND {clause} AND c.merged_into IS NULL "
            "ORDER BY c.last_message_at, c.id LIMIT 1", (status, at, at, cid, *params)).fetchone()
        older = self.conn.execute(
            "SELECT c.id FROM conversations c WHERE c.status = ? AND c.last_message_at <= ? "  # noqa: S608
            f"AND (c.last_message_at < ? OR c.id < ?) AND {clause} AND c.merged_into IS NULL "
            "ORDER BY c.last_message_at DESC, c.id DESC LIMIT 1", (status, at, at, cid, *params)).fetchone()
        return (newer[0] if newer else None, older[0] if older else None)

    # Status, assignment, priority ----------------------------------------------------------------

    def set_conversation_status(self, conversation_id: int, status: str, snoozed_until: str | None, now: str) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE conversations SET status = ?, snoozed_until = ?, updated_at = ? WHERE id = ?",
                (status, snoozed_until, now, conversation_id))

    def wake_snoozed(self, now: str) -> list[int]:
        """Reopen snoozed conversations whose time has come (the trigger clears `snoozed_until`)."""
        with self.write():
            ids = [r[0] for r in self.conn.execute(
                "SELECT id FROM conversations WHERE status = 'snoozed' AND snoozed_until IS NOT NULL "
                "AND snoozed_until <= ?", (now,))]
            for conversation_id in ids:
                self.conn.execute("UPDATE conversations SET status = 'open', updated_at = ? WHERE id = ?",
                                  (now, conversation_id))
            return ids

    def assign_conversation(self, conversation_id: int, *, assignee_id: int | None, team_id: int | None,
                            now: str) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE conversations SET assignee_id = ?, team_id = ?, updated_at = ? WHERE id = ?",
                (assignee_id, team_id, now, conversation_id))

    def set_conversation_priority(self, conversation_id: int, priority: int, now: str) -> None:
        with self.write():
            self.conn.execute("UPDATE conversations SET priority = ?, updated_at = ? WHERE id = ?",
                              (priority, now, conversation_id))

    # Notes and notifications ---------------------------------------------------------------------

    def add_note(self, conversation_id: int, *, agent_id: int, author_name: str, text: str, external_id: str,
                 now: str) -> int:
        """An internal note: a message with direction 'note' that never leaves Mainland."""
        with self.write():
            channel = self.conn.execute("SELECT channel FROM conversations WHERE id = ?",
                                        (conversation_id,)).fetchone()
            if channel is None:
                raise NotFound(f"no conversation {conversation_id}")
            cur = self.conn.execute(
                "INSERT INTO messages (conversation_id, channel, external_id, direction, agent_id, author_name, "
                "text, received_at) VALUES (?, ?, ?, 'note', ?, ?, ?, ?)",
                (conversation_id, channel[0], external_id, agent_id, author_name, text, now))
            self.conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
            return cur.lastrowid

    def team_names(self) -> list[dict[str, Any]]:
        """Every team's id and name, by name (for the assignment form)."""
        return as_dicts(self.conn.execute("SELECT id, name FROM teams ORDER BY lower(name), id"))

    def mentionable_agents(self) -> list[dict[str, Any]]:
        """Active agents with what a mention can name them by."""
        return as_dicts(self.conn.execute(
            "SELECT id, email, name, role FROM agents WHERE active = 1 ORDER BY name, id"))

    # Presence ------------------------------------------------------------------------------------

    def touch_presence(self, conversation_id: int, agent_id: int, state: str, now: str,
                       forget_before: str | None = None) -> None:
        """Record that the agent views or types in the conversation; drop their rows older than
        `forget_before` (pages closed without saying goodbye), so the table stays small."""
        with self.write():
            if forget_before:
                self.conn.execute("DELETE FROM presence WHERE agent_id = ? AND seen_at < ?", (agent_id, forget_before))
            self.conn.execute(
                "INSERT INTO presence (conversation_id, agent_id, state, seen_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (conversation_id, agent_id) DO UPDATE SET state = excluded.state, seen_at = excluded.seen_at",
                (conversation_id, agent_id, state, now))

    def leave_presence(self, conversation_id: int, agent_id: int) -> None:
        with self.write():
            self.conn.execute("DELETE FROM presence WHERE conversation_id = ? AND agent_id = ?",
                              (conversation_id, agent_id))

    def presence(self, conversation_id: int, since: str) -> list[dict[str, Any]]:
        """Who has the conversation open (heard from after `since`), typing first."""
        return as_dicts(self.conn.execute(
            "SELECT p.agent_id, p.state, p.seen_at, a.name, a.email FROM presence p JOIN agents a ON a.id = p.agent_id "
            "WHERE p.conversation_id = ? AND p.seen_at > ? AND a.active = 1 "
            "ORDER BY p.state = 'typing' DESC, a.name, a.id", (conversation_id, since)))

    # Merge and split -----------------------------------------------------------------------------

    def merge_conversations(self, source_id: int, target_id: int, *, agent_id: int | None, now: str) -> int:
        """Move every message of `source_id` into `target_id`; the source points to the target.

        Returns the merge record's id (what undo needs). Raises MergeRefused for conversations of
        different customers, a conversation merged already, or the same one twice.
        """
        with self.write():
            rows = {r["id"]: r for r in as_dicts(self.conn.execute(
                "SELECT id, customer_id, status, merged_into, last_message_at, last_inbound_at "
                "FROM conversations WHERE id IN (?, ?)", (source_id, target_id)))}
            if source_id == target_id:
                raise MergeRefused("same", "a conversation cannot be merged into itself")
            if len(rows) != 2:
                raise NotFound("no such conversation")
            source, target = rows[source_id], rows[target_id]
            if source["customer_id"] != target["customer_id"]:
                raise MergeRefused("customers", "the conversations belong to different customers")
            if source["merged_into"] is not None or target["merged_into"] is not None:
                raise MergeRefused("merged", "one of the conversations was merged already")
            message_ids = [r[0] for r in self.conn.execute(
                "SELECT id FROM messages WHERE conversation_id = ? ORDER BY id", (source_id,))]
            cur = self.conn.execute(
                "INSERT INTO conversation_merges (source_id, target_id, agent_id, message_ids, source_status, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (source_id, target_id, agent_id, json.dumps(message_ids), source["status"], now))
            self.conn.execute("UPDATE messages SET conversation_id = ? WHERE conversation_id = ?",
                              (target_id, source_id))
            self.conn.execute("UPDATE notifications SET conversation_id = ? WHERE conversation_id = ?",
                              (target_id, source_id))
            self.conn.execute("DELETE FROM presence WHERE conversation_id = ?", (source_id,))
            self.conn.execute(
                "UPDATE conversations SET merged_into = ?, status = 'resolved', updated_at = ? WHERE id = ?",
                (target_id, now, source_id))
            self._refresh_activity(target_id, now)
            return cur.lastrowid

    def undo_merge(self, merge_id: int, *, now: str) -> dict[str, Any]:
        """Move the merged messages back (those still in the target) and reopen the source as it was."""
        with self.write():
            merge = self.merge_record(merge_id)
            if merge is None:
                raise NotFound(f"no merge {merge_id}")
            if merge["undone_at"] is not None:
                raise MergeRefused("undone", "this merge was undone already")
            ids = json.loads(merge["message_ids"])
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                self.conn.execute(
                    f"UPDATE messages SET conversation_id = ? WHERE conversation_id = ? AND id IN ({marks})",  # noqa: S608
                    (merge["source_id"], merge["target_id"], *chunk))
            self.conn.execute(
                "UPDATE conversations SET merged_into = NULL, status = ?, updated_at = ? WHERE id = ?",
                (merge["source_status"], now, merge["source_id"]))
            self.conn.execute("UPDATE conversation_merges SET undone_at = ? WHERE id = ?", (now, merge_id))
            self._refresh_activity(merge["source_id"], now)
            self._refresh_activity(merge["target_id"], now)
            return merge

    def merge_record(self, merge_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM conversation_merges WHERE id = ?", (merge_id,))
        return as_dict(cur, cur.fetchone())

    def merges_of(self, conversation_id: int) -> list[dict[str, Any]]:
        """Merges into or out of this conversation, newest first."""
        return as_dicts(self.conn.execute(
            "SELECT g.*, a.name AS agent_name FROM conversation_merges g LEFT JOIN agents a ON a.id = g.agent_id "
            "WHERE g.source_id = ? OR g.target_id = ? ORDER BY g.id DESC", (conversation_id, conversation_id)))

    def split_message(self, conversation_id: int, message_id: int, *, token: str, now: str) -> int:
        """Move one message into a new conversation of the same customer; returns the new id."""
        with self.write():
            cur = self.conn.execute(
                "SELECT m.id, m.channel, m.subject, m.text, m.received_at, m.direction, c.customer_id, c.team_id, "
                "c.assignee_id, c.public, c.thread_key, c.channel AS conversation_channel "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE m.id = ? AND m.conversation_id = ?", (message_id, conversation_id))
            row = as_dict(cur, cur.fetchone())
            if row is None:
                raise NotFound(f"no message {message_id} in conversation {conversation_id}")
            left = self.conn.execute("SELECT count(*) FROM messages WHERE conversation_id = ? AND id != ?",
                                     (conversation_id, message_id)).fetchone()[0]
            if not left:
                raise MergeRefused("only_message", "the conversation has only this message")
            subject = row["subject"] or next((line.strip()[:160] for line in (row["text"] or "").splitlines()
                                              if line.strip()), "")
            # No thread_key: the customer's next chat message keeps threading into the old conversation.
            new_id = self.conn.execute(
                "INSERT INTO conversations (token, customer_id, channel, subject, status, team_id, assignee_id, "
                "public, created_at, updated_at, last_message_at, last_inbound_at) "
                "VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
                (token, row["customer_id"], row["channel"], subject, row["team_id"], row["assignee_id"],
                 row["public"], now, now, row["received_at"],
                 row["received_at"] if row["direction"] == "in" else None)).lastrowid
            self.conn.execute("UPDATE messages SET conversation_id = ? WHERE id = ?", (new_id, message_id))
            self.conn.execute(
                "UPDATE notifications SET conversation_id = ? WHERE message_id = ?", (new_id, message_id))
            self._refresh_activity(conversation_id, now)
            return new_id

    def _refresh_activity(self, conversation_id: int, now: str) -> None:
        """Recompute a conversation's activity times from the messages it holds now."""
        self.conn.execute(
            "UPDATE conversations SET updated_at = ?, "
            "last_message_at = coalesce((SELECT max(received_at) FROM messages WHERE conversation_id = ? "
            "AND direction != 'note'), last_message_at), "
            "last_inbound_at = (SELECT max(received_at) FROM messages WHERE conversation_id = ? AND direction = 'in') "
            "WHERE id = ?", (now, conversation_id, conversation_id, conversation_id))

    # Live updates --------------------------------------------------------------------------------

    def change_watermark(self) -> int:
        """The sequence number of the latest change to any conversation."""
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM conversation_changes").fetchone()[0]

    def conversation_change_seq(self, conversation_id: int) -> int:
        row = self.conn.execute("SELECT seq FROM conversation_changes WHERE conversation_id = ?",
                                (conversation_id,)).fetchone()
        return row[0] if row else 0

    def changes_since(self, seq: int, team_ids: Iterable[int] | None, *, limit: int = 200) -> list[dict[str, Any]]:
        """Visible conversations changed after `seq`, oldest change first, with what the queue shows."""
        clause, params = team_clause(team_ids)
        return as_dicts(self.conn.execute(
            "SELECT ch.seq, ch.created_seq, c.id, c.channel, c.subject, c.status, c.priority, c.assignee_id, "  # noqa: S608
            "c.team_id, c.last_message_at, c.created_at, c.merged_into, cu.display_name AS customer_name "
            "FROM conversation_changes ch JOIN conversations c ON c.id = ch.conversation_id "
            "JOIN customers cu ON cu.id = c.customer_id "
            f"WHERE ch.seq > ? AND {clause} ORDER BY ch.seq LIMIT ?", (seq, *params, limit)))

    def status_counts(self, team_ids: Iterable[int] | None) -> dict[str, int]:
        """Visible conversations per status still being worked on (new, open, pending, snoozed).

        Resolved and spam grow for ever and are left out: counting them would read the whole table.
        """
        clause, params = team_clause(team_ids)
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT c.status, count(*) FROM conversations c "  # noqa: S608
            f"WHERE c.status IN ('new', 'open', 'pending', 'snoozed') AND {clause} GROUP BY c.status", params)}
