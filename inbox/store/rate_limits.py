"""Rate-limit counters every process of an installation shares: a small SQLite file of their own.

The web app's limits (failed sign-ins, a chat visitor's posts per visitor and per address, API calls)
must hold however many processes serve it: counted in each process's memory, `gunicorn -w 4` let
every client four times the limit, and a restart forgot every count. Here a counter is one row,
changed by one statement, so processes that count the same key never lose a hit.

A file of its own (`<data_dir>/rate-limits.db`), not the main database: counting a request must not
wait for the main database's write lock (held by a reply, an ingest, a report's refresh), and the
counters are cheap to lose, so they are written without waiting for the disk (`synchronous = OFF`):
after a power cut they start again from zero, which lets a client a few more attempts, never fewer.

Times are the machine's (`time.time()`), as the rate-limit library's windows are.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

#: How long a process waits for another's write to the counters before it gives up (the request
#: then fails as "busy"; a single counter statement takes microseconds).
BUSY_TIMEOUT_MS = 5000
#: Expired counters are deleted after about this many increments of one process.
SWEEP_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


class RateCounters:
    """Fixed-window counters by key, each with the moment its window ends. Thread-safe: each thread
    has its own connection."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._increments = 0
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` hits to `key` and return its count; a key without a live window starts one
        that ends `expiry` seconds from now."""
        now = time.time()
        (hits,) = self._conn().execute(
            "INSERT INTO counters (key, hits, expires_at) VALUES (:key, :amount, :ends) "
            "ON CONFLICT (key) DO UPDATE SET "
            "hits = CASE WHEN expires_at <= :now THEN :amount ELSE hits + :amount END, "
            "expires_at = CASE WHEN expires_at <= :now THEN :ends ELSE expires_at END "
            "RETURNING hits",
            {"key": key, "amount": amount, "ends": now + expiry, "now": now}).fetchone()
        self._increments += 1
        if self._increments % SWEEP_EVERY == 0:
            self._conn().execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
        return int(hits)

    def get(self, key: str) -> int:
        """The hits in `key`'s live window (0 when it has none)."""
        row = self._conn().execute("SELECT hits FROM counters WHERE key = ? AND expires_at > ?",
                                   (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def expires_at(self, key: str) -> float:
        """When `key`'s window ends (now when it has none)."""
        now = time.time()
        row = self._conn().execute("SELECT expires_at FROM counters WHERE key = ? AND expires_at > ?",
                                   (key, now)).fetchone()
        return float(row[0]) if row else now

    def clear(self, key: str) -> None:
        self._conn().execute("DELETE FROM counters WHERE key = ?", (key,))

    def reset(self) -> int:
        """Forget every counter; returns how many there were."""
        return self._conn().execute("DELETE FROM counters").rowcount

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
