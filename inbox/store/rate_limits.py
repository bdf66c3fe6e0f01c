"""Rate-limit counters every process of an installation shares: a small SQLite file of their own,
or on PostgreSQL an unlogged table every machine shares (`PgRateCounters`).

The web app's limits (failed sign-ins, a chat visitor's posts per visitor and per address, API calls)
must hold however many processes serve it: counted in each process's memory, `gunicorn -w 4` let
every client four times the limit, and a restart forgot every count. Here a counter is one row,
changed by one statement, so processes that count the same key never lose a hit.

A file of its own (`<data_dir>/rate-limits.db`), not the main database: counting a request must not
wait for the main database's write lock (held by a reply, an ingest, a report's refresh), and the
counters are cheap to lose, so they are written without waiting for the disk (`synchronous = OFF`):
after a power cut they start again from zero, which lets a client a few more attempts, never fewer.

On PostgreSQL (#17) the installation may be several machines, which share no file: the counters
are the database's `rate_counters` table (revision 0005), UNLOGGED for the same reason the file is
not synchronous, and counted on connections of their own in autocommit, outside the store's write
turns: a few a process (PG_CONNECTIONS), shared by its threads, since a counter statement takes well
under a millisecond and each connection is a server process (the server admits `max_connections`
from every node together; one per request thread ran it out at about 90 agents).

Times are the machine's (`time.time()`), as the rate-limit library's windows are.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: How long a process waits for another's write to the counters before it gives up (the request
#: then fails as "busy"; a single counter statement takes microseconds).
BUSY_TIMEOUT_MS = 5000
#: Expired counters are deleted after about this many increments of one process.
SWEEP_EVERY = 1000
#: PostgreSQL connections one process counts on, shared by its threads.
PG_CONNECTIONS = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


class _Counters:
    """Fixed-window counters by key, each with the moment its window ends; the engine's connection
    and its spelling of the statements come from the subclass. Thread-safe: each thread has its own
    connection."""

    #: The counters' table: `counters` in the file, `rate_counters` in PostgreSQL's main database.
    TABLE = "counters"
    _INCR = ("INSERT INTO {table} AS c (key, hits, expires_at) VALUES (:key, :amount, :ends) "
             "ON CONFLICT (key) DO UPDATE SET "
             "hits = CASE WHEN c.expires_at <= :now THEN :amount ELSE c.hits + :amount END, "
             "expires_at = CASE WHEN c.expires_at <= :now THEN :ends ELSE c.expires_at END "
             "RETURNING hits")
    _SWEEP = "DELETE FROM {table} WHERE expires_at <= :now"
    _GET = "SELECT hits, expires_at FROM {table} WHERE key = :key AND expires_at > :now"
    _CLEAR = "DELETE FROM {table} WHERE key = :key"
    _RESET = "DELETE FROM {table}"

    def __init__(self) -> None:
        self._incr, self._sweep, self._get, self._clear, self._reset = (
            sql.format(table=self.TABLE) for sql in (self._INCR, self._SWEEP, self._GET, self._CLEAR, self._RESET))
        self._local = threading.local()
        self._increments = 0
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        raise NotImplementedError

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _borrowed(self) -> Iterator[Any]:
        """A connection for one statement: the thread's own (the subclass may share a few instead)."""
        yield self._conn()

    def _one(self, sql: str, params: dict[str, Any]) -> Any:
        with self._borrowed() as conn:
            return conn.execute(sql, params).fetchone()

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> int:
        with self._borrowed() as conn:
            return conn.execute(sql, params or {}).rowcount

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` hits to `key` and return its count; a key without a live window starts one
        that ends `expiry` seconds from now."""
        now = time.time()
        (hits,) = self._one(self._incr, {"key": key, "amount": amount, "ends": now + expiry, "now": now})
        self._increments += 1
        if self._increments % SWEEP_EVERY == 0:
            self._run(self._sweep, {"now": now})
        return int(hits)

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        row = self._one(self._get, {"key": key, "now": now})
        return (int(row[0]), float(row[1])) if row else None

    def get(self, key: str) -> int:
        """The hits in `key`'s live window (0 when it has none)."""
        live = self._live(key, time.time())
        return live[0] if live else 0

    def expires_at(self, key: str) -> float:
        """When `key`'s window ends (now when it has none)."""
        now = time.time()
        live = self._live(key, now)
        return live[1] if live else now

    def clear(self, key: str) -> None:
        self._run(self._clear, {"key": key})

    def reset(self) -> int:
        """Forget every counter; returns how many there were."""
        return self._run(self._reset)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()


class RateCounters(_Counters):
    """The counters in a SQLite file of their own."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn().executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        return conn


class PgRateCounters(_Counters):
    """The counters in PostgreSQL's `rate_counters` table: the same counts for every machine. Each
    thread's connection is the store's own kind (`PgConnection`), which reads the same statements."""

    TABLE = "rate_counters"

    def __init__(self, url: str, connections: int = PG_CONNECTIONS) -> None:
        super().__init__()
        self.url = url
        self._limit = connections
        self._idle: list[Any] = []
        self._open = 0
        self._free = threading.Condition(self._lock)

    @contextlib.contextmanager
    def _borrowed(self) -> Iterator[Any]:
        with self._free:
            self._free.wait_for(lambda: self._idle or self._open < self._limit)
            if self._idle:
                conn = self._idle.pop()
            else:
                conn = None
                self._open += 1
        healthy = False
        try:
            if conn is None:
                conn = self._connect()
                with self._lock:
                    self._connections.append(conn)
            yield conn
            healthy = True
        finally:
            with self._free:
                if healthy:
                    self._idle.append(conn)
                else:
                    # Failed (the server gone, or the statement): never handed to another thread.
                    self._open -= 1
                    if conn is not None:
                        self._connections.remove(conn)
                self._free.notify()
            if not healthy and conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        with self._free:
            self._idle, self._open = [], 0
        super().close()

    def _connect(self) -> Any:
        from inbox.store.pg_connection import PgConnection  # only an installation on PostgreSQL needs it

        return PgConnection(self.url, id_tables=())
