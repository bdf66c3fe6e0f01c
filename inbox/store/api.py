"""The REST API v1's stored answers of idempotent writes (inbox/web/api_v1.py): `store.api_idempotency`,
rows as `KeptAnswer`.

A write sent with an `Idempotency-Key` header is answered once and its answer kept here, keyed by
the calling token and the key; the same request again gets the kept answer back. The key is claimed
*before* the request acts (`claim`: an "in progress" row, status `IN_PROGRESS`, under the table's
UNIQUE (token, key)), so of two requests in flight with the same key only one acts; the other sees
the claim. Rows older than `IDEMPOTENCY_TTL` are deleted by the worker's housekeeping (`expire`).

A concern in the shape #17 asks for: an object the store holds (`store.api_idempotency`) with typed
rows at its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.store.base import iso

if TYPE_CHECKING:
    from inbox.store import Store

#: How long a stored answer can be replayed.
IDEMPOTENCY_TTL = dt.timedelta(hours=24)
#: The status of a claimed key whose request has not been answered yet.
IN_PROGRESS = 0
#: A claim older than this belongs to a process that stopped mid-request: the key may be claimed again.
CLAIM_TIMEOUT = dt.timedelta(minutes=5)

_COLUMNS = "request, body_hash, status, response_body, created_at"


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """The row that holds a (token, key): a kept answer, or (status IN_PROGRESS, empty body) the claim
    of a request still acting. `request` is "METHOD /path"; `body_hash` the request's SHA-256."""

    request: str
    body_hash: str
    status: int
    response_body: str
    created_at: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> KeptAnswer | None:
        return None if row is None else cls(*row)


class ApiIdempotency:
    """`store.api_idempotency`: claimed keys and kept answers, on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def claim(self, token: str, key: str, *, request: str, body_hash: str, now: dt.datetime) -> KeptAnswer | None:
        """Claim (token, key) for a request about to act. None: claimed, act and then keep the answer
        (`keep`) or let the key go (`release`). Otherwise the row that holds the key: a kept answer,
        or a request in progress (status IN_PROGRESS)."""
        conn = self._store.conn
        with self._store.write():
            # An expired answer, or a claim whose process stopped, no longer holds the key.
            conn.execute(
                "DELETE FROM api_idempotency WHERE token = ? AND idempotency_key = ? "
                "AND (created_at <= ? OR (status = ? AND created_at <= ?))",
                (token, key, iso(now - IDEMPOTENCY_TTL), IN_PROGRESS, iso(now - CLAIM_TIMEOUT)))
            claimed = conn.execute(
                "INSERT INTO api_idempotency (token, idempotency_key, request, body_hash, status, response_body, "
                "created_at) VALUES (?, ?, ?, ?, ?, '', ?) ON CONFLICT (token, idempotency_key) DO NOTHING",
                (token, key, request, body_hash, IN_PROGRESS, iso(now))).rowcount
            if claimed:
                return None
            return KeptAnswer.from_row(conn.execute(
                f"SELECT {_COLUMNS} FROM api_idempotency WHERE token = ? AND idempotency_key = ?",  # noqa: S608
                (token, key)).fetchone())

    def release(self, token: str, key: str) -> None:
        """Let a claimed key go unanswered (the request failed): the same request may be sent again."""
        with self._store.write():
            self._store.conn.execute(
                "DELETE FROM api_idempotency WHERE token = ? AND idempotency_key = ? AND status = ?",
                (token, key, IN_PROGRESS))

    def keep(self, token: str, key: str, *, request: str, body_hash: str, status: int, response_body: str,
             now: dt.datetime) -> None:
        """Keep the answer to (token, key); a stale row of the same key (past the TTL) is replaced."""
        with self._store.write():
            self._store.conn.execute(
                "INSERT INTO api_idempotency (token, idempotency_key, request, body_hash, status, response_body, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token, idempotency_key) DO UPDATE SET "
                "request = excluded.request, body_hash = excluded.body_hash, status = excluded.status, "
                "response_body = excluded.response_body, created_at = excluded.created_at",
                (token, key, request, body_hash, status, response_body, iso(now)))

    def expire(self, now: dt.datetime) -> int:
        """Delete kept answers older than IDEMPOTENCY_TTL; returns how many."""
        with self._store.write():
            return self._store.conn.execute("DELETE FROM api_idempotency WHERE created_at <= ?",
                                            (iso(now - IDEMPOTENCY_TTL),)).rowcount
