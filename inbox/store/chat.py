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
        messages are never shown.
        """
        marks = ",".join("?" * len(VISIBLE_REPLY_STATES))
        rows = as_dicts(self.conn.execute(
            "SELECT m.id, m.external_id, m.direction, m.text, m.author_name, m.agent_id, "  # noqa: S608
            "COALESCE(m.sent_at, m.received_at) AS at, m.delivery_status "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
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

    def chat_team_typing(self, channel: str, visitor: str, since: str) -> bool:
        """True when an agent typed in one of this visitor's conversations after `since`."""
        return self.conn.execute(
            "SELECT 1 FROM presence p JOIN conversations c ON c.id = p.conversation_id "
            "JOIN identities i ON i.customer_id = c.customer_id AND i.kind = 'chat' AND i.value = ? "
            "WHERE c.channel = ? AND c.thread_key = ? AND p.state = 'typing' AND p.seen_at > ? LIMIT 1",
            (visitor, channel, visitor, since)).fetchone() is not None
