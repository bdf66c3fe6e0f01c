"""Store verbs for the REST API v1 (inbox/web/api_v1.py): stored answers of idempotent writes.

A write sent with an `Idempotency-Key` header is answered once and its answer kept here, keyed by
the calling token and the key; the same request again gets the kept answer back. Rows older than
`IDEMPOTENCY_TTL` are deleted by the worker's housekeeping (`expire_idempotency_keys`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from inbox.store.base import as_dict, iso

#: How long a stored answer can be replayed.
IDEMPOTENCY_TTL = dt.timedelta(hours=24)


class ApiQueries:
    """Mixed into `Store`; uses `self.conn` and `self.write()`."""

    conn: Any
    write: Any

    def idempotent_answer(self, token: str, key: str, *, now: dt.datetime) -> dict[str, Any] | None:
        """The kept answer for (token, key) younger than IDEMPOTENCY_TTL, or None."""
        cur = self.conn.execute(
            "SELECT request, body_hash, status, response_body, created_at FROM api_idempotency "
            "WHERE token = ? AND idempotency_key = ? AND created_at > ?",
            (token, key, iso(now - IDEMPOTENCY_TTL)))
        return as_dict(cur, cur.fetchone())

    def keep_idempotent_answer(self, token: str, key: str, *, request: str, body_hash: str, status: int,
                               response_body: str, now: dt.datetime) -> None:
        """Keep the answer to (token, key); a stale row of the same key (past the TTL) is replaced."""
        with self.write():
            self.conn.execute(
                "INSERT INTO api_idempotency (token, idempotency_key, request, body_hash, status, response_body, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token, idempotency_key) DO UPDATE SET "
                "request = excluded.request, body_hash = excluded.body_hash, status = excluded.status, "
                "response_body = excluded.response_body, created_at = excluded.created_at",
                (token, key, request, body_hash, status, response_body, iso(now)))

    def expire_idempotency_keys(self, now: dt.datetime) -> int:
        """Delete kept answers older than IDEMPOTENCY_TTL; returns how many."""
        with self.write():
            return self.conn.execute("DELETE FROM api_idempotency WHERE created_at <= ?",
                                     (iso(now - IDEMPOTENCY_TTL),)).rowcount
