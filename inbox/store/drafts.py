"""Composer drafts: `store.drafts`, one per agent, conversation and box ('reply' or 'note').

A draft is saved as the agent types and restored on any device; it is deleted when the reply or
note is sent, or when the box is emptied. Colleagues are told who has a draft, never its text
(`colleagues()`, rows as `DraftingColleague`).

A concern in the shape #17 asks for: an object the store holds (`store.drafts`) with typed rows at
its boundary, instead of a mixin of `Store` returning dicts. `of()` stays a mapping of box -> text,
which is what the composer fills its boxes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inbox.store import Store

DRAFT_KINDS = ("reply", "note")


@dataclass(frozen=True, slots=True)
class DraftingColleague:
    """Another agent with a draft in a conversation (who, never what), since their oldest draft there."""

    id: int
    name: str
    email: str
    since: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> DraftingColleague:
        return cls(*row)


class Drafts:
    """`store.drafts`: the composer's drafts, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def save(self, agent_id: int, conversation_id: int, kind: str, text: str, now: str) -> None:
        """Keep the agent's draft; an empty (or blank) text deletes it."""
        if not text.strip():
            self.delete(agent_id, conversation_id, kind)
            return
        self._store.conn.execute(
            "INSERT INTO drafts (agent_id, conversation_id, kind, text, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (agent_id, conversation_id, kind) DO UPDATE SET text = excluded.text, "
            "updated_at = excluded.updated_at",
            (agent_id, conversation_id, kind, text, now),
        )

    def delete(self, agent_id: int, conversation_id: int, kind: str) -> None:
        self._store.conn.execute("DELETE FROM drafts WHERE agent_id = ? AND conversation_id = ? AND kind = ?",
                                 (agent_id, conversation_id, kind))

    def of(self, agent_id: int, conversation_id: int) -> dict[str, str]:
        """The agent's own drafts in a conversation: {kind: text}."""
        return dict(self._store.conn.execute(
            "SELECT kind, text FROM drafts WHERE agent_id = ? AND conversation_id = ?",
            (agent_id, conversation_id)).fetchall())

    def colleagues(self, conversation_id: int, agent_id: int) -> list[DraftingColleague]:
        """The other agents with a draft in a conversation (names only, never the text), oldest first."""
        return [DraftingColleague.from_row(row) for row in self._store.conn.execute(
            "SELECT a.id, a.name, a.email, min(d.updated_at) AS since FROM drafts d JOIN agents a ON a.id = d.agent_id "
            "WHERE d.conversation_id = ? AND d.agent_id != ? GROUP BY a.id ORDER BY since, a.id",
            (conversation_id, agent_id),
        ).fetchall()]
