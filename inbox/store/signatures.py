"""Store verbs for reply signatures: one per agent, per team and per channel (see inbox/signatures.py).

Mixed into the store through OutboxQueries, whose replies they sign.
"""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dicts

SCOPES = ("agent", "team", "channel")


class SignatureQueries:
    conn: Any
    write: Any

    def signature(self, scope: str, owner: str | int) -> str | None:
        """The signature template of an agent (id), a team (id) or a channel (name), or None."""
        row = self.conn.execute("SELECT text FROM signatures WHERE scope = ? AND owner = ?",
                                (scope, str(owner))).fetchone()
        return row[0] if row else None

    def signatures(self, scope: str) -> dict[str, str]:
        """Every signature template of one scope, by owner."""
        return {r["owner"]: r["text"] for r in as_dicts(self.conn.execute(
            "SELECT owner, text FROM signatures WHERE scope = ?", (scope,)))}

    def set_signature(self, scope: str, owner: str | int, text: str, now: str) -> None:
        """Save a signature template; an empty one deletes it."""
        if scope not in SCOPES:
            raise ValueError(f"unknown signature scope {scope!r}")
        with self.write():
            if text.strip():
                self.conn.execute(
                    "INSERT INTO signatures (scope, owner, text, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (scope, owner) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                    (scope, str(owner), text, now))
            else:
                self.conn.execute("DELETE FROM signatures WHERE scope = ? AND owner = ?", (scope, str(owner)))
