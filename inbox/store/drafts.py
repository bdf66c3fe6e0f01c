"""Store verbs for composer drafts: one per agent, conversation and box ('reply' or 'note').

A draft is saved as the agent types and restored on any device; it is deleted when the reply or
note is sent, or when the box is emptied. Colleagues are told who has a draft, never its text.
"""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dicts

DRAFT_KINDS = ("reply", "note")


class DraftQueries:
    conn: Any

    def save_draft(self, agent_id: int, conversation_id: int, kind: str, text: str, now: str) -> None:
        """Keep the agent's draft; an empty (or blank) text deletes it."""
        if not text.strip():
            self.delete_draft(agent_id, conversation_id, kind)
            return
        self.conn.execute(
            "INSERT INTO drafts (agent_id, conversation_id, kind, text, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (agent_id, conversation_id, kind) DO UPDATE SET text = excluded.text, "
            "updated_at = excluded.updated_at",
            (agent_id, conversation_id, kind, text, now),
        )

    def delete_draft(self, agent_id: int, conversation_id: int, kind: str) -> None:
        self.conn.execute("DELETE FROM drafts WHERE agent_id = ? AND conversation_id = ? AND kind = ?",
                          (agent_id, conversation_id, kind))

    def drafts_of(self, agent_id: int, conversation_id: int) -> dict[str, str]:
        """The agent's own drafts in a conversation: {kind: text}."""
        return {r["kind"]: r["text"] for r in as_dicts(self.conn.execute(
            "SELECT kind, text FROM drafts WHERE agent_id = ? AND conversation_id = ?", (agent_id, conversation_id)))}

    def drafting_colleagues(self, conversation_id: int, agent_id: int) -> list[dict[str, Any]]:
        """The other agents with a draft in a conversation (names only, never the text), oldest first."""
        return as_dicts(self.conn.execute(
            "SELECT a.id, a.name, a.email, min(d.updated_at) AS since FROM drafts d JOIN agents a ON a.id = d.agent_id "
            "WHERE d.conversation_id = ? AND d.agent_id != ? GROUP BY a.id ORDER BY since, a.id",
            (conversation_id, agent_id),
        ))
