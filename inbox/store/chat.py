"""Store verbs for the website chat (#18): one visitor's conversation as their widget shows it."""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dicts

#: A reply the visitor may see: handed to the channel (and, later, delivered or read).
VISIBLE_REPLY_STATES = ("sent", "delivered", "read")

#: What a visitor's widget shows of the messages `m` of conversations `c` (one rule for the history and
#: for the files it lets them fetch): their own chat conversations on the channel, without withdrawn
#: messages, and of the team's replies only those sent on. Parameters: `_shown_to(channel, visitor)`.
_SHOWN_TO_VISITOR = (
    "JOIN identities i ON i.customer_id = c.customer_id AND i.kind = 'chat' AND i.value = ? "
    "WHERE c.channel = ? AND c.thread_key = ? AND m.deleted_at IS NULL "
    f"AND (m.direction = 'in' OR (m.direction = 'out' AND m.delivery_status IN "
    f"({','.join('?' * len(VISIBLE_REPLY_STATES))})))")


def _shown_to(channel: str, visitor: str) -> tuple:
    return (visitor, channel, visitor, *VISIBLE_REPLY_STATES)


class ChatEmailQueries:
    """Store verbs for the chat's mail (#18): the address a visitor left, the follow-ups of unread
    replies and the sign-in links sent through an email channel, and the devices those links bound."""

    conn: Any

    def chat_save_email_address(self, channel: str, visitor: str, address: str, language: str, page: str | None,
                                now: str) -> None:
        self.conn.execute(
            "INSERT INTO chat_email_addresses (channel, visitor, address, language, page, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, visitor) DO UPDATE SET address = excluded.address, "
            "language = excluded.language, page = COALESCE(excluded.page, chat_email_addresses.page), created_at = excluded.created_at",
            (channel, visitor, address, language, page, now))

    def chat_email_address(self, channel: str, visitor: str) -> dict[str, Any] | None:
        rows = as_dicts(self.conn.execute(
            "SELECT address, language, page, created_at FROM chat_email_addresses WHERE channel = ? AND visitor = ?",
            (channel, visitor)))
        return rows[0] if rows else None

    def chat_conversation_of(self, channel: str, visitor: str) -> int | None:
        """The visitor's latest conversation on `channel` (thread key and `chat` identity both theirs)."""
        row = self.conn.execute(
            "SELECT c.id FROM conversations c JOIN identities i ON i.customer_id = c.customer_id "
            "AND i.kind = 'chat' AND i.value = ? WHERE c.channel = ? AND c.thread_key = ? ORDER BY c.id DESC LIMIT 1",
            (visitor, channel, visitor)).fetchone()
        return row[0] if row else None

    def chat_bound_visitor(self, channel: str, device: str) -> str | None:
        """The visitor whose conversation a sign-in link bound this device's visitor id to, or None."""
        row = self.conn.execute("SELECT visitor FROM chat_device_links WHERE channel = ? AND device = ?",
                                (channel, device)).fetchone()
        return row[0] if row else None

    def chat_bind_device(self, channel: str, device: str, visitor: str, now: str) -> None:
        self.conn.execute(
            "INSERT INTO chat_device_links (channel, device, visitor, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, device) DO UPDATE SET visitor = excluded.visitor, created_at = excluded.created_at",
            (channel, device, visitor, now))

    def chat_visitor_of_customer(self, channel: str, customer_id: int) -> str | None:
        """The visitor id of the customer's latest chat conversation on `channel` (its thread key, which
        is their `chat` identity), or None when they never chatted there."""
        row = self.conn.execute(
            "SELECT c.thread_key FROM conversations c JOIN identities i ON i.customer_id = c.customer_id "
            "AND i.kind = 'chat' AND i.value = c.thread_key WHERE c.channel = ? AND c.customer_id = ? "
            "ORDER BY c.id DESC LIMIT 1", (channel, customer_id)).fetchone()
        return row[0] if row else None

    def chat_unread_replies(self, channel: str, sent_before: str, sent_after: str,
                            limit: int = 100) -> list[dict[str, Any]]:
        """Agents' replies in `channel`'s conversations, sent between the two moments, that the widget
        has not reported read, whose visitor left an address, and that no mail followed yet."""
        return as_dicts(self.conn.execute(
            "SELECT m.id AS reply_id, m.conversation_id, c.customer_id, c.thread_key AS visitor, a.address, "
            "a.language, a.page FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "JOIN chat_email_addresses a ON a.channel = c.channel AND a.visitor = c.thread_key "
            "WHERE c.channel = ? AND m.channel = c.channel AND m.direction = 'out' AND m.agent_id IS NOT NULL "
            "AND m.deleted_at IS NULL AND m.delivery_status IN ('sent', 'delivered') "
            "AND m.sent_at <= ? AND m.sent_at > ? "
            "AND NOT EXISTS (SELECT 1 FROM chat_emails e WHERE e.reply_id = m.id) ORDER BY m.id LIMIT ?",
            (channel, sent_before, sent_after, limit)))

    def chat_queue_email(self, *, outbox_id: str, kind: str, conversation_id: int, via: str, visitor: str,
                         address: str, language: str, note: str, message_id: str, now: str, note_author: str = "",
                         reply_id: int | None = None, page: str | None = None, nonce: str | None = None,
                         expires_at: str | None = None) -> bool:
        """One chat mail in the caller's transaction: its record, the internal note that shows the agent
        it went (on the email channel, to `address`) and the note's outbox row. False, and nothing
        written, when the reply already has its follow-up (exactly once)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO chat_emails (outbox_id, kind, channel, visitor, address, language, reply_id, page, "
            "nonce, expires_at, created_at) SELECT ?, ?, channel, ?, ?, ?, ?, ?, ?, ?, ? FROM conversations "
            "WHERE id = ?",
            (outbox_id, kind, visitor, address, language, reply_id, page, nonce, expires_at, now, conversation_id))
        if not cur.rowcount:
            return False
        note_id = self.conn.execute(
            "INSERT INTO messages (conversation_id, channel, external_id, direction, author_name, text, message_id, "
            "received_at, delivery_status, cc) VALUES (?, ?, ?, 'note', ?, ?, ?, ?, 'queued', ?)",
            (conversation_id, via, f"chatmail:{outbox_id}", note_author, note, message_id, now, address)).lastrowid
        self.conn.execute(
            "INSERT INTO outbox (id, message_id, channel, state, next_at, created_at) VALUES (?, ?, ?, 'pending', ?, ?)",
            (outbox_id, note_id, via, now, now))
        return True

    def chat_email_of_outbox(self, outbox_id: str) -> dict[str, Any] | None:
        """The chat mail an outbox row sends, with its conversation, or None for any other row."""
        rows = as_dicts(self.conn.execute(
            "SELECT e.*, m.conversation_id FROM chat_emails e JOIN outbox o ON o.id = e.outbox_id "
            "JOIN messages m ON m.id = o.message_id WHERE e.outbox_id = ?", (outbox_id,)))
        return rows[0] if rows else None

    def chat_signin_link(self, nonce: str) -> dict[str, Any] | None:
        rows = as_dicts(self.conn.execute(
            "SELECT outbox_id, channel, visitor, address, expires_at, used_at FROM chat_emails "
            "WHERE kind = 'signin' AND nonce = ?", (nonce,)))
        return rows[0] if rows else None

    def chat_use_signin_link(self, nonce: str, now: str) -> bool:
        """Spend a sign-in link: True once, while it has not expired; False ever after."""
        return self.conn.execute(
            "UPDATE chat_emails SET used_at = ? WHERE kind = 'signin' AND nonce = ? AND used_at IS NULL "
            "AND expires_at > ?", (now, nonce, now)).rowcount == 1

    def chat_visitor_messages(self, conversation_id: int, limit: int = 6) -> list[dict[str, Any]]:
        """The conversation's latest customer messages and sent replies, oldest first (a mail's quote)."""
        rows = as_dicts(self.conn.execute(
            "SELECT id, direction, text, author_name FROM messages WHERE conversation_id = ? AND deleted_at IS NULL "
            "AND (direction = 'in' OR (direction = 'out' AND delivery_status IN ('sent', 'delivered', 'read'))) "
            "ORDER BY id DESC LIMIT ?", (conversation_id, limit)))
        return rows[::-1]


class ChatQueries(ChatEmailQueries):
    conn: Any

    def chat_history(self, channel: str, visitor: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """The visitor's latest `limit` messages and the team's sent replies on `channel`, oldest first.

        Whole, not "after an id": a reply queued before the visitor's last message may be sent after
        it, so an id cursor would skip it.

        `visitor` is the visitor id (the conversations' thread key and the customer's `chat`
        identity, both required, so a thread key alone never shows another customer's messages).
        Internal notes, replies still queued (undo window, review) or failed, and withdrawn
        messages are never shown. `team_read` is true for the visitor's messages an agent has had in
        front of them (`conversation_marks`, kept from the agents' presence heartbeats).
        """
        rows = as_dicts(self.conn.execute(
            "SELECT m.id, m.external_id, m.direction, m.text, m.author_name, m.agent_id, m.channel, "  # noqa: S608
            "COALESCE(m.sent_at, m.received_at) AS at, m.delivery_status, m.flags, "
            "(m.direction = 'in' AND m.id <= COALESCE(k.team_read_up_to, 0)) AS team_read "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "LEFT JOIN conversation_marks k ON k.conversation_id = c.id "
            f"{_SHOWN_TO_VISITOR} ORDER BY m.id DESC LIMIT ?",
            (*_shown_to(channel, visitor), limit),
        ))
        return rows[::-1]

    def chat_files(self, message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """The stored files of these messages (the caller's `chat_history` rows), by message id."""
        if not message_ids:
            return {}
        marks = ",".join("?" * len(message_ids))
        found: dict[int, list[dict[str, Any]]] = {}
        for row in as_dicts(self.conn.execute(
                "SELECT id, message_id, filename, content_type, size, sha256, stored, type_mismatch "  # noqa: S608
                f"FROM attachments WHERE message_id IN ({marks}) AND stored = 1 ORDER BY id", message_ids)):
            found.setdefault(row["message_id"], []).append(row)
        return found

    def chat_attachment(self, channel: str, visitor: str, attachment_id: int) -> dict[str, Any] | None:
        """A file of this visitor's conversation that their widget shows (their own, or the team's sent
        reply), or None: any other id, a note's file, a queued or withdrawn reply's, another visitor's."""
        rows = as_dicts(self.conn.execute(
            "SELECT a.id, a.filename, a.content_type, a.size, a.sha256, a.stored, a.type_mismatch "  # noqa: S608
            "FROM attachments a JOIN messages m ON m.id = a.message_id "
            f"JOIN conversations c ON c.id = m.conversation_id {_SHOWN_TO_VISITOR} AND a.id = ?",
            (*_shown_to(channel, visitor), attachment_id)))
        return rows[0] if rows else None

    def chat_reply_provider_ids(self, channel: str, visitor: str, message_ids: list[int]) -> list[str]:
        """The channel ids (`Connector.send`'s answers) of those `message_ids` that are the team's sent
        replies in this visitor's conversations: what the visitor's receipts may move, and nothing else."""
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        return [r[0] for r in self.conn.execute(
            "SELECT o.provider_id FROM outbox o JOIN messages m ON m.id = o.message_id "  # noqa: S608
            "JOIN conversations c ON c.id = m.conversation_id "
            "JOIN identities i ON i.customer_id = c.customer_id AND i.kind = 'chat' AND i.value = ? "
            f"WHERE c.channel = ? AND c.thread_key = ? AND m.direction = 'out' AND m.id IN ({marks}) "
            "AND o.provider_id IS NOT NULL",
            (visitor, channel, visitor, *message_ids))]

    # Live while both are there: typing both ways, and what the team has read -------------------------

    def chat_team_typist(self, channel: str, visitor: str, since: str) -> str | None:
        """The name of an agent who typed in one of this visitor's conversations after `since` ("" for
        an agent without a name), or None when nobody did."""
        row = self.conn.execute(
            "SELECT COALESCE(a.name, '') FROM presence p JOIN conversations c ON c.id = p.conversation_id "
            "JOIN agents a ON a.id = p.agent_id "
            "JOIN identities i ON i.customer_id = c.customer_id AND i.kind = 'chat' AND i.value = ? "
            "WHERE c.channel = ? AND c.thread_key = ? AND p.state = 'typing' AND p.seen_at > ? "
            "ORDER BY p.seen_at DESC LIMIT 1",
            (visitor, channel, visitor, since)).fetchone()
        return None if row is None else str(row[0])

    def chat_view_stamp(self, channel: str, visitor: str, typing_since: str) -> tuple:
        """A cheap stand-in for what `chat_history` and `chat_team_typist` show this visitor: it changes
        whenever they may have (a message added, moved, edited, withdrawn or further delivered, the
        conversation merged or moved to another customer: each moves the conversation's change number
        kept by triggers; the team read further; an agent started or stopped typing). Equal stamps mean
        an unchanged view, so a waiting widget looks at this once a second instead of at its history."""
        row = self.conn.execute(
            "SELECT max(cc.seq), max(k.team_read_up_to), count(c.id), ("
            "  SELECT p.agent_id FROM presence p WHERE p.conversation_id IN ("
            "    SELECT c2.id FROM conversations c2 WHERE c2.channel = ? AND c2.thread_key = ?)"
            "  AND p.state = 'typing' AND p.seen_at > ? ORDER BY p.seen_at DESC LIMIT 1) "
            "FROM conversations c "
            "JOIN identities i ON i.customer_id = c.customer_id AND i.kind = 'chat' AND i.value = ? "
            "LEFT JOIN conversation_changes cc ON cc.conversation_id = c.id "
            "LEFT JOIN conversation_marks k ON k.conversation_id = c.id "
            "WHERE c.channel = ? AND c.thread_key = ?",
            (channel, visitor, typing_since, visitor, channel, visitor)).fetchone()
        return tuple(row)

    def thread_news(self, after_seq: int, touched_since: str, typing_since: str) -> dict[str, Any]:
        """What may have changed for the threads (channel, thread key) that waiting widgets show, for one
        look of the process's news watcher (inbox/web/chat.py): `watermark`, the newest change number;
        `changed`, the threads of conversations changed after `after_seq` and up to it; `touched`, those
        an agent's heartbeat reached at or after `touched_since` (read marks, typing); `typing`, those
        with an agent typing after `typing_since`."""
        watermark = self.change_watermark()
        changed = self.conn.execute(
            "SELECT DISTINCT c.channel, c.thread_key FROM conversation_changes ch "
            "JOIN conversations c ON c.id = ch.conversation_id "
            "WHERE ch.seq > ? AND ch.seq <= ? AND c.thread_key IS NOT NULL", (after_seq, watermark)).fetchall()
        touched = self.conn.execute(
            "SELECT DISTINCT c.channel, c.thread_key, p.state = 'typing' AND p.seen_at > ? "
            "FROM presence p JOIN conversations c ON c.id = p.conversation_id "
            "WHERE (p.seen_at >= ? OR (p.state = 'typing' AND p.seen_at > ?)) AND c.thread_key IS NOT NULL",
            (typing_since, touched_since, typing_since)).fetchall()
        return {"watermark": watermark, "changed": {(r[0], r[1]) for r in changed},
                "touched": {(r[0], r[1]) for r in touched}, "typing": {(r[0], r[1]) for r in touched if r[2]}}

    def chat_conversation_id(self, channel: str, visitor: str) -> int | None:
        """The visitor's latest conversation on `channel` (where their typing shows), if any."""
        row = self.conn.execute(
            "SELECT c.id FROM conversations c "
            "JOIN identities i ON i.customer_id = c.customer_id AND i.kind = 'chat' AND i.value = ? "
            "WHERE c.channel = ? AND c.thread_key = ? AND c.merged_into IS NULL ORDER BY c.id DESC LIMIT 1",
            (visitor, channel, visitor)).fetchone()
        return None if row is None else int(row[0])

    def mark_customer_typing(self, conversation_id: int, at: str | None) -> None:
        """The customer typed at `at` (an ISO moment), or stopped (None)."""
        with self.write():
            self.conn.execute(
                "INSERT INTO conversation_marks (conversation_id, customer_typing_at) VALUES (?, ?) "
                "ON CONFLICT (conversation_id) DO UPDATE "
                "SET customer_typing_at = excluded.customer_typing_at",
                (conversation_id, at))

    def customer_typing(self, conversation_id: int, since: str) -> str | None:
        """The customer's name when they reported typing in the conversation after `since`, else None."""
        row = self.conn.execute(
            "SELECT cu.display_name FROM conversation_marks k "
            "JOIN conversations c ON c.id = k.conversation_id "
            "JOIN customers cu ON cu.id = c.customer_id "
            "WHERE k.conversation_id = ? AND k.customer_typing_at > ?",
            (conversation_id, since)).fetchone()
        return None if row is None else str(row[0] or "")
