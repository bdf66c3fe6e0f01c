"""A customer's edits and withdrawals of messages we already hold: `store.message_changes`, the
earlier versions as `MessageEdit`.

The message keeps its row, its place in the thread and its conversation's state: an edit replaces
the text and keeps the earlier one in `message_edits`; a withdrawal only marks the message. Neither
reopens a conversation or counts as a new message. `apply` runs inside the ingest batch's
transaction and opens none of its own.

A concern in the shape #17 asks for: an object the store holds (`store.message_changes`) with typed
rows at its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.models import CHANGE_DELETED, CHANGE_EDITED

if TYPE_CHECKING:
    from inbox.store import Store


@dataclass(frozen=True, slots=True)
class MessageEdit:
    """An earlier version of a message the customer edited: its text until `replaced_at`."""

    message_id: int
    previous_text: str | None
    replaced_at: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> MessageEdit:
        return cls(*row)


class MessageChanges:
    """`store.message_changes`: changes applied to stored inbound messages, and their edit history."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def apply(self, channel: str, external_id: str, kind: str, text: str | None, at: str) -> bool:
        """Apply one change to the inbound message `(channel, external_id)`; False when we hold no such
        message (or the change says nothing new), so the caller can count it as dropped.

        Writes on the caller's transaction (the ingest batch's): a change stands or falls with the
        page it came in, so this opens no transaction of its own."""
        conn = self._store.conn
        row = conn.execute(
            "SELECT id, text, html, deleted_at FROM messages WHERE channel = ? AND external_id = ? "
            "AND direction = 'in'", (channel, external_id)).fetchone()
        if row is None:
            return False
        message_id, old_text, old_html, deleted_at = row
        if kind == CHANGE_DELETED:
            if deleted_at is not None:
                return False
            conn.execute("UPDATE messages SET deleted_at = ? WHERE id = ?", (at, message_id))
            return True
        if kind == CHANGE_EDITED:
            if text is None or text == old_text:
                return False
            conn.execute(
                "INSERT INTO message_edits (message_id, previous_text, previous_html, replaced_at) VALUES (?, ?, ?, ?)",
                (message_id, old_text, old_html, at))
            # The customer's new words are plain text: an HTML body of the old version no longer applies.
            conn.execute("UPDATE messages SET text = ?, html = NULL, edited_at = ? WHERE id = ?",
                         (text, at, message_id))
            return True
        raise ValueError(f"unknown message change {kind!r}")

    def edit_history(self, message_ids: list[int]) -> dict[int, list[MessageEdit]]:
        """Earlier versions of each message, oldest first, by message id (messages never edited are absent)."""
        if not message_ids:
            return {}
        marks = ",".join("?" * len(message_ids))
        history: dict[int, list[MessageEdit]] = {}
        for row in self._store.conn.execute(
                f"SELECT message_id, previous_text, replaced_at FROM message_edits WHERE message_id IN ({marks}) "  # noqa: S608
                "ORDER BY message_id, id", message_ids).fetchall():
            edit = MessageEdit.from_row(row)
            history.setdefault(edit.message_id, []).append(edit)
        return history
