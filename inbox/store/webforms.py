"""The public web form's one question to the store: `store.webforms`, which conversation a
submission went into (a scalar, so no row class).

A concern in the shape #17 asks for: an object the store holds (`store.webforms`) with typed rows at
its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inbox.store import Store


class Webforms:
    """`store.webforms`: the web form's reads, on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def conversation_token_for_item(self, channel: str, external_id: str) -> str | None:
        """The token of the conversation holding the item `external_id` of `channel`, if stored.

        A replayed form submission (same submission_id) answers with the token of the first one.
        """
        row = self._store.conn.execute(
            "SELECT c.token FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.channel = ? AND m.external_id = ?",
            (channel, external_id),
        ).fetchone()
        return row[0] if row else None
