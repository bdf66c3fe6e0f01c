"""Reply signatures: one per agent, per team and per channel (see inbox/signatures.py):
`store.signatures`. A signature is the text of its template, so the concern returns strings, not rows.

A concern in the shape #17 asks for: an object the store holds (`store.signatures`) instead of a
mixin of `Store` (it was mixed in through OutboxQueries, whose replies the signatures sign).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inbox.store.base import as_dicts

if TYPE_CHECKING:
    from inbox.store import Store

SCOPES = ("agent", "team", "channel")


class Signatures:
    """`store.signatures`: the signature templates, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, scope: str, owner: str | int) -> str | None:
        """The signature template of an agent (id), a team (id) or a channel (name), or None."""
        row = self._store.conn.execute("SELECT text FROM signatures WHERE scope = ? AND owner = ?",
                                       (scope, str(owner))).fetchone()
        return row[0] if row else None

    def all(self, scope: str) -> dict[str, str]:
        """Every signature template of one scope, by owner."""
        return {r["owner"]: r["text"] for r in as_dicts(self._store.conn.execute(
            "SELECT owner, text FROM signatures WHERE scope = ?", (scope,)))}

    def set(self, scope: str, owner: str | int, text: str, now: str) -> None:
        """Save a signature template; an empty one deletes it."""
        if scope not in SCOPES:
            raise ValueError(f"unknown signature scope {scope!r}")
        with self._store.write():
            if text.strip():
                self._store.conn.execute(
                    "INSERT INTO signatures (scope, owner, text, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (scope, owner) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                    (scope, str(owner), text, now))
            else:
                self._store.conn.execute("DELETE FROM signatures WHERE scope = ? AND owner = ?", (scope, str(owner)))
