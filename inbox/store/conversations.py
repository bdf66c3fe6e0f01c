"""Store verbs that read conversations and their messages for the web inbox."""

from __future__ import annotations

from typing import Any

from inbox.store.base import NotFound, as_dict, as_dicts
from inbox.store.teams import team_clause


class ConversationQueries:
    conn: Any
    write: Any

    def recent_conversations(self, limit: int = 50, before_id: int | None = None,
                             team_ids: set[int] | None = None) -> list[dict[str, Any]]:
        """Conversations by last activity, newest first, with their customer's name.

        `team_ids` limits them to those teams plus the unrouted ones (None: every conversation).
        """
        sql = (
            "SELECT c.id, c.token, c.channel, c.subject, c.status, c.public, c.automatic, c.flags, "
            "c.last_message_at, c.created_at, cu.display_name AS customer_name, cu.id AS customer_id, "
            "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count, "
            "(SELECT m.author_handle FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in' "
            "ORDER BY m.id LIMIT 1) AS customer_handle, "
            "(SELECT substr(m.text, 1, 300) FROM messages m WHERE m.conversation_id = c.id "
            "ORDER BY m.id LIMIT 1) AS first_text "
            "FROM conversations c JOIN customers cu ON cu.id = c.customer_id"
        )
        where, params = team_clause(team_ids)
        if before_id is not None:
            # Keyset on the sort key itself: the page after conversation `before_id` in this order.
            where += (" AND (c.last_message_at, c.id) < "
                      "(SELECT last_message_at, id FROM conversations WHERE id = ?)")
            params.append(before_id)
        sql += " WHERE " + where + " ORDER BY c.last_message_at DESC, c.id DESC LIMIT ?"
        return as_dicts(self.conn.execute(sql, (*params, limit)))

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        cur = self.conn.execute(
            "SELECT c.*, cu.display_name AS customer_name FROM conversations c "
            "JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ?",
            (conversation_id,),
        )
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no conversation {conversation_id}")
        return row

    def conversation_messages(self, conversation_id: int) -> list[dict[str, Any]]:
        messages = as_dicts(self.conn.execute(
            "SELECT id, channel, external_id, direction, author_name, author_handle, subject, text, html, "
            "message_id, flags, defects, sent_at, received_at, delivery_status, delivery_error "
            "FROM messages WHERE conversation_id = ? ORDER BY received_at, id",
            (conversation_id,),
        ))
        if messages:
            ids = [m["id"] for m in messages]
            marks = ",".join("?" * len(ids))
            attachments = as_dicts(self.conn.execute(
                "SELECT id, message_id, filename, content_type, size, sha256, stored, inline, type_mismatch "  # noqa: S608
                f"FROM attachments WHERE message_id IN ({marks}) ORDER BY id",
                ids,
            ))
            by_message: dict[int, list] = {}
            for att in attachments:
                by_message.setdefault(att["message_id"], []).append(att)
            for m in messages:
                m["attachments"] = by_message.get(m["id"], [])
        return messages

    def customer_identities(self, customer_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT kind, value, display, valid, delivery_failed FROM identities WHERE customer_id = ? ORDER BY id",
            (customer_id,),
        ))

    def attachment(self, attachment_id: int) -> dict[str, Any]:
        cur = self.conn.execute(
            "SELECT a.*, m.conversation_id FROM attachments a JOIN messages m ON m.id = a.message_id WHERE a.id = ?",
            (attachment_id,),
        )
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no attachment {attachment_id}")
        return row

    def message(self, message_id: int) -> dict[str, Any]:
        """One message with its conversation id (for the body and raw downloads)."""
        cur = self.conn.execute(
            "SELECT id, conversation_id, channel, direction, subject, text, html, received_at FROM messages "
            "WHERE id = ?",
            (message_id,),
        )
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no message {message_id}")
        return row

    def raw_message_ids(self, conversation_id: int) -> set[int]:
        """Ids of the conversation's messages whose original bytes are kept."""
        rows = self.conn.execute(
            "SELECT r.message_id FROM raw_messages r JOIN messages m ON m.id = r.message_id "
            "WHERE m.conversation_id = ?",
            (conversation_id,),
        )
        return {r[0] for r in rows}

    def raw_message(self, message_id: int) -> bytes | None:
        row = self.conn.execute("SELECT data FROM raw_messages WHERE message_id = ?", (message_id,)).fetchone()
        return row[0] if row else None

    def team_default_send_status(self, team_id: int | None) -> str:
        """The status a plain "Send" sets in a conversation of `team_id` (pending without a team)."""
        if team_id is None:
            return "pending"
        row = self.conn.execute("SELECT default_send_status FROM teams WHERE id = ?", (team_id,)).fetchone()
        return row[0] if row else "pending"

    def set_team_default_send_status(self, team_id: int, status: str) -> None:
        """Change a team's default (admin tools and tests; the value is checked by the schema)."""
        with self.write():
            self.conn.execute("UPDATE teams SET default_send_status = ? WHERE id = ?", (status, team_id))
