"""Store verbs for API tokens made in the browser (`/admin/tokens`).

A row keeps the token's SHA-256 (never the token), a short prefix to recognise it by, its scopes,
who made it and when, when it was last used, an optional expiry and when it was revoked. Whether a
token may be used (revoked, expired) is decided by the caller with `now`; this module only reads
and writes rows. `last_used_at` is written at most once per `LAST_USED_EVERY` per token, so a busy
integration does not turn every API call into a database write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from inbox.store.base import as_dict, as_dicts, iso, now_iso, parse_iso

#: How stale `last_used_at` may get before a use writes it again.
LAST_USED_EVERY = dt.timedelta(minutes=1)

_COLUMNS = ("t.id, t.name, t.prefix, t.scopes, t.created_by, t.created_at, t.expires_at, t.last_used_at, "
            "t.revoked_at, t.revoked_by, a.name AS created_by_name, a.email AS created_by_email")


def _with_scope_list(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is not None:
        row["scopes"] = row["scopes"].split()
    return row


class TokenQueries:
    """Mixed into `Store`; uses `self.conn` and `self.write()`."""

    def create_api_token(self, *, name: str, token_hash: str, prefix: str, scopes: Iterable[str],
                         created_by: int | None, expires_at: str | None = None, now: str | None = None) -> int:
        """Store a new token (its hash only); returns its id."""
        with self.write():
            return self.conn.execute(
                "INSERT INTO api_tokens (name, token_hash, prefix, scopes, created_by, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, token_hash, prefix, " ".join(sorted(set(scopes))), created_by, now or now_iso(),
                 expires_at)).lastrowid

    def api_tokens(self) -> list[dict[str, Any]]:
        """Every token made in the browser, newest first, with its maker's name."""
        cur = self.conn.execute(
            f"SELECT {_COLUMNS} FROM api_tokens t LEFT JOIN agents a ON a.id = t.created_by "  # noqa: S608
            "ORDER BY t.id DESC")
        return [_with_scope_list(row) for row in as_dicts(cur)]

    def api_token(self, token_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute(
            f"SELECT {_COLUMNS} FROM api_tokens t LEFT JOIN agents a ON a.id = t.created_by "  # noqa: S608
            "WHERE t.id = ?", (token_id,))
        return _with_scope_list(as_dict(cur, cur.fetchone()))

    def api_token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The token with this hash, whatever its state (the caller checks expiry and revocation)."""
        cur = self.conn.execute(
            f"SELECT {_COLUMNS} FROM api_tokens t LEFT JOIN agents a ON a.id = t.created_by "  # noqa: S608
            "WHERE t.token_hash = ?", (token_hash,))
        return _with_scope_list(as_dict(cur, cur.fetchone()))

    def note_api_token_used(self, token: dict[str, Any], now: dt.datetime) -> bool:
        """Record a use of `token` (a row as read) unless one was recorded within LAST_USED_EVERY.

        Checked on the row already read, so a busy token costs no write at all between minutes; the
        UPDATE checks again, so two requests at once write once. True when it wrote.
        """
        last = parse_iso(token.get("last_used_at"))
        if last is not None and now - last < LAST_USED_EVERY:
            return False
        with self.write():
            cur = self.conn.execute(
                "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
                (iso(now), token["id"], iso(now - LAST_USED_EVERY)))
        return cur.rowcount > 0

    def revoke_api_token(self, token_id: int, *, by: int | None, now: str | None = None) -> bool:
        """Revoke a token; False when there is no such token or it was revoked already."""
        with self.write():
            cur = self.conn.execute(
                "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
                (now or now_iso(), by, token_id))
        return cur.rowcount > 0
