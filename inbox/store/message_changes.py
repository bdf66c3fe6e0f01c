"""Store verbs for a customer's edits and withdrawals of messages we already hold.

The message keeps its row, its place in the thread and its conversation's state: an edit replaces
the text and keeps the earlier one in `message_edits`; a withdrawal only marks the message. Neither
reopens a conversation or counts as a new message. Called inside the ingest batch's transaction.
"""

from __future__ import annotations

from typing import Any

from inbox.models import CHANGE_DELETED, CHANGE_EDITED
from inbox.store.base import as_dicts


class MessageChangeQueries:
    conn: Any

    def apply_message_change(self, channel: str, external_id: str, kind: str, text: str | None,
                             at: str) -> bool:
        """Apply one change to the inbound message `(channel, external_id)`; False when we hold no such
        message (or the change says nothing new), so the caller can count it as dropped."""
        row = self.conn.execute(
            "SELECT id, text, html, deleted_at FROM messages WHERE channel = ? AND external_id = ? "
            "AND direction = 'in'", (channel, external_id)).fetchone()
        if row is None:
            return False
        message_id, old_text, old_html, deleted_at = row
        if kind == CHANGE_DELETED:
            if deleted_at is not None:
                return False
            self.conn.execute("UPDATE messages SET deleted_at = ? WHERE id = ?", (at, message_id))
            return True
        if kind == CHANGE_EDITED:
            if text is None or text == old_text:
                return False
            self.conn.execute(
                "INSERT INTO message_edits (message_id, previous_text, previous_html, replaced_at) VALUES (?, ?, ?, ?)",
                (message_id, old_text, old_html, at))
            # The customer's new words are plain text: an HTML body of the old version no longer applies.
            self.conn.execute("UPDATE messages SET text = ?, html = NULL, edited_at = ? WHERE id = ?",
                              (text, at, message_id))
            return True
        raise ValueError(f"unknown message change {kind!r}")

    def message_edit_history(self, message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Earlier versions of each message, oldest first: {message_id: [{previous_text, replaced_at}]}."""
        if not message_ids:
            return {}
        marks = ",".join("?" * len(message_ids))
        history: dict[int, list[dict[str, Any]]] = {}
        for edit in as_dicts(self.conn.execute(
                f"SELECT message_id, previous_text, replaced_at FROM message_edits WHERE message_id IN ({marks}) "  # noqa: S608
                "ORDER BY message_id, id", message_ids)):
            history.setdefault(edit["message_id"], []).append(edit)
        return history
