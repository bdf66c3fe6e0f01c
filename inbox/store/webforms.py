"""Store verbs for the public web form: which conversation a submission went into."""

from __future__ import annotations

from typing import Any


class WebformQueries:
    conn: Any

    def conversation_token_for_item(self, channel: str, external_id: str) -> str | None:
        """The token of the conversation holding the item `external_id` of `channel`, if stored.

        A replayed form submission (same submission_id) answers with the token of the first one.
        """
        row = self.conn.execute(
            "SELECT c.token FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.channel = ? AND m.external_id = ?",
            (channel, external_id),
        ).fetchone()
        return row[0] if row else None
