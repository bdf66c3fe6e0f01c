"""Store verbs for the website chat (#18): one visitor's conversation as their widget shows it."""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dicts

#: A reply the visitor may see: handed to the channel (and, later, delivered or read).
VISIBLE_REPLY_STATES = ("sent", "delivered", "read")


class ChatQueries:
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
        marks = ",".join("?" * len(VISIBLE_REPLY_STATES))
        rows = as_dicts(self.conn.execute(
            "SELECT m.id, m.external_id, m.direction, m.text, m.author_name, m.agent_id, "  # noqa: S608
            "COALESCE(m.sent_at, m.received_at) AS at, m.delivery_status, "
            "(m.direction = 'in' AND m.id <= COALESCE(k.team_read_up_to, 0)) AS team_read "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "LEFT JOIN conversation_marks k ON k.conversation_id = c.id "
            "JOIN identities i ON i.customer_id = c.customer_id AND i.kind = 'chat' AND i.value = ? "
            "WHERE c.channel = ? AND c.thread_key = ? AND m.deleted_at IS NULL "
            f"AND (m.direction = 'in' OR (m.direction = 'out' AND m.delivery_status IN ({marks}))) "
            "ORDER BY m.id DESC LIMIT ?",
            (visitor, channel, visitor, *VISIBLE_REPLY_STATES, limit),
        ))
        return rows[::-1]

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
