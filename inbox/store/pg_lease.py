"""A lock PostgreSQL holds for as long as one session lives: the scheduler's lease on PostgreSQL (#17).

The scheduler lease (`leases` row, inbox/worker.py) is renewed by its holder and taken by a standby
only once it expired: a worker killed with kill -9, or a machine that lost power, leaves every
channel unpolled for up to the lease's length. On PostgreSQL the leader also holds a session-level
advisory lock on a connection of its own. The server lets it go the moment that session ends,
however the process ended, so a standby that gets the lock knows no other worker leads and takes
the row at once, expired or not. The row stays the record every job checks before it touches a
channel, so a worker that lost its session (and so the lock) stops at its next job.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

log = logging.getLogger("mainland.store")


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for `name` (signed, as PostgreSQL's bigint is)."""
    return int.from_bytes(hashlib.sha256(f"mainland:{name}".encode()).digest()[:8], "big", signed=True)


class SessionLock:
    """The advisory lock `name` on a session of its own; `hold()` takes or confirms it."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.key = lock_key(name)
        self._conn: Any = None
        self._lock = threading.Lock()

    def hold(self) -> bool:
        """True when this session holds the lock: it already did and is still alive, or it took it now."""
        import psycopg  # only an installation on PostgreSQL needs the driver

        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("SELECT 1")
                    return True
                except psycopg.Error:
                    log.warning("the scheduler's session lock was lost with its connection")
                    self._close()
            try:
                conn = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error:
                return False
            try:
                (taken,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            except psycopg.Error:
                conn.close()
                return False
            if taken:
                self._conn = conn
            else:
                conn.close()
            return bool(taken)

    def release(self) -> None:
        """Let go of the lock (ending the session lets go of it too)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a connection already broken has nothing more to let go
                log.debug("closing the session lock's connection failed", exc_info=True)
            self._conn = None
