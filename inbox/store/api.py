"""Store verbs for the REST API v1 (inbox/web/api_v1.py): stored answers of idempotent writes.

A write sent with an `Idempotency-Key` header is answered once and its answer kept here, keyed by
the calling token and the key; the same request again gets the kept answer back. The key is claimed
*before* the request acts (`claim_idempotency_key`: an "in progress" row, status `IN_PROGRESS`, under
the table's UNIQUE (token, key)), so of two requests in flight with the same key only one acts; the
other sees the claim. Rows older than `IDEMPOTENCY_TTL` are deleted by the worker's housekeeping
(`expire_idempotency_keys`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from inbox.store.base import as_dict, iso

#: How long a stored answer can be replayed.
IDEMPOTENCY_TTL = dt.timedelta(hours=24)
#: The status of a claimed key whose request has not been answered yet.
IN_PROGRESS = 0
#: A claim older than this belongs to a process that stopped mid-request: the key may be claimed again.
CLAIM_TIMEOUT = dt.timedelta(minutes=5)


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

    def claim_idempotency_key(self, token: str, key: str, *, request: str, body_hash: str,
                              now: dt.datetime) -> dict[str, Any] | None:
        """Claim (token, key) for a request about to act. None: claimed, act and then keep the answer
        (`keep_idempotent_answer`) or let the key go (`release_idempotency_key`). Otherwise the row
        that holds the key: a kept answer, or a request in progress (status IN_PROGRESS)."""
        with self.write():
            # An expired answer, or a claim whose process stopped, no longer holds the key.
            self.conn.execute(
                "DELETE FROM api_idempotency WHERE token = ? AND idempotency_key = ? "
                "AND (created_at <= ? OR (status = ? AND created_at <= ?))",
                (token, key, iso(now - IDEMPOTENCY_TTL), IN_PROGRESS, iso(now - CLAIM_TIMEOUT)))
            claimed = self.conn.execute(
                "INSERT INTO api_idempotency (token, idempotency_key, request, body_hash, status, response_body, "
                "created_at) VALUES (?, ?, ?, ?, ?, '', ?) ON CONFLICT (token, idempotency_key) DO NOTHING",
                (token, key, request, body_hash, IN_PROGRESS, iso(now))).rowcount
            if claimed:
                return None
            cur = self.conn.execute(
                "SELECT request, body_hash, status, response_body, created_at FROM api_idempotency "
                "WHERE token = ? AND idempotency_key = ?", (token, key))
            return as_dict(cur, cur.fetchone())

    def release_idempotency_key(self, token: str, key: str) -> None:
        """Let a claimed key go unanswered (the request failed): the same request may be sent again."""
        with self.write():
            self.conn.execute("DELETE FROM api_idempotency WHERE token = ? AND idempotency_key = ? AND status = ?",
                              (token, key, IN_PROGRESS))

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
