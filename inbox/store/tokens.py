"""API tokens made in the browser (`/admin/tokens`): `store.api_tokens`, rows as `ApiToken`.

A row keeps the token's SHA-256 (never the token), a short prefix to recognise it by, its scopes,
who made it and when, when it was last used, an optional expiry and when it was revoked. Whether a
token may be used (revoked, expired) is decided by the caller with `now`; this module only reads
and writes rows. `last_used_at` is written at most once per `LAST_USED_EVERY` per token, so a busy
integration does not turn every API call into a database write.

The first of the store's concerns in the shape #17 asks for: an object the store holds
(`store.api_tokens`) with typed rows at its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.store.base import iso, now_iso, parse_iso

if TYPE_CHECKING:
    from inbox.store import Store

#: How stale `last_used_at` may get before a use writes it again.
LAST_USED_EVERY = dt.timedelta(minutes=1)

_COLUMNS = ("t.id, t.name, t.prefix, t.scopes, t.created_by, t.created_at, t.expires_at, t.last_used_at, "
            "t.revoked_at, t.revoked_by, a.name AS created_by_name, a.email AS created_by_email")
_FROM = "FROM api_tokens t LEFT JOIN agents a ON a.id = t.created_by"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One token as stored (never the token itself: `prefix` is its first characters)."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: int | None
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    revoked_by: int | None
    created_by_name: str | None
    created_by_email: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> ApiToken | None:
        if row is None:
            return None
        values = list(row)
        values[3] = tuple(values[3].split())
        return cls(*values)


class ApiTokens:
    """`store.api_tokens`: the tokens' rows, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, *, name: str, token_hash: str, prefix: str, scopes: Iterable[str], created_by: int | None,
               expires_at: str | None = None, now: str | None = None) -> int:
        """Store a new token (its hash only); returns its id."""
        with self._store.write():
            return self._store.conn.execute(
                "INSERT INTO api_tokens (name, token_hash, prefix, scopes, created_by, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, token_hash, prefix, " ".join(sorted(set(scopes))), created_by, now or now_iso(),
                 expires_at)).lastrowid

    def all(self) -> list[ApiToken]:
        """Every token made in the browser, newest first, with its maker's name."""
        rows = self._store.conn.execute(f"SELECT {_COLUMNS} {_FROM} ORDER BY t.id DESC").fetchall()  # noqa: S608
        return [ApiToken.from_row(row) for row in rows]

    def get(self, token_id: int) -> ApiToken | None:
        return ApiToken.from_row(self._store.conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE t.id = ?", (token_id,)).fetchone())  # noqa: S608

    def by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, whatever its state (the caller checks expiry and revocation)."""
        return ApiToken.from_row(self._store.conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE t.token_hash = ?", (token_hash,)).fetchone())  # noqa: S608

    def note_used(self, token: ApiToken, now: dt.datetime) -> bool:
        """Record a use of `token` (a row as read) unless one was recorded within LAST_USED_EVERY.

        Checked on the row already read, so a busy token costs no write at all between minutes; the
        UPDATE checks again, so two requests at once write once. True when it wrote.
        """
        last = parse_iso(token.last_used_at)
        if last is not None and now - last < LAST_USED_EVERY:
            return False
        with self._store.write():
            cur = self._store.conn.execute(
                "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
                (iso(now), token.id, iso(now - LAST_USED_EVERY)))
        return cur.rowcount > 0

    def revoke(self, token_id: int, *, by: int | None, now: str | None = None) -> bool:
        """Revoke a token; False when there is no such token or it was revoked already."""
        with self._store.write():
            cur = self._store.conn.execute(
                "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
                (now or now_iso(), by, token_id))
        return cur.rowcount > 0
