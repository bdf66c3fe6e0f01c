"""One `Store` per request: taken on first use, given back when the request ends.

Every page module reads the installation and the database through `mainland()` and `get_store()`
(imported from `inbox.web`, which re-exports them).

Connections are reused: opening one costs about 1.5 ms of CPU (SQLite reads the file's schema and
each connection's pragmas are set), which under `bench/chat_load.py` was a sixth of the server's
busy time, spent again on every request. A request's connection goes back to its app's pool of
idle ones when the request ends, unless it is inside a transaction (a request that failed half-way:
it is rolled back and closed) or the pool is full.

On PostgreSQL each connection is a server process, and the server admits `max_connections` (100 by
default) from every node together: a web process opens at most `web.database_connections` (default
DATABASE_CONNECTIONS) at once, and a request or live look that finds them all busy waits for one
(up to WAIT_SECONDS, then the busy page). Live pages borrow one per look (inbox/web/live.py), so
open tabs do not hold connections while they wait. SQLite connections are a file handle each and
have no limit unless `web.database_connections` sets one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from flask import Flask, current_app, g

from inbox.runtime import Mainland
from inbox.storage_errors import ConnectionsBusy
from inbox.store import Store
from inbox.store.base import is_postgresql_url

#: Idle connections an app keeps for its next requests; past that a finished request's is closed.
#: About one per page thread and a few more: the long polls and streams that end give theirs back too.
POOLED = 16
#: Connections a web process has open at once on PostgreSQL (in use and idle), unless
#: `web.database_connections` says otherwise: a request thread's each, and a few for live looks.
DATABASE_CONNECTIONS = 16
#: How long a request waits for a connection when all of them are busy.
WAIT_SECONDS = 30.0


class StorePool:
    """Idle request connections of one app, newest first (the warmest caches are reused)."""

    def __init__(self, mainland: Mainland, size: int = POOLED, *, limit: int | None = None,
                 wait_seconds: float = WAIT_SECONDS) -> None:
        self._mainland = mainland
        #: At most this many open at once (None: no limit); never fewer idle than may be open.
        self.limit = limit
        self._size = size if limit is None else min(size, limit)
        self._wait_seconds = wait_seconds
        self._changed = threading.Condition()
        self._idle: list[Store] = []
        #: Connections open now, lent and idle.
        self.open = 0

    def take(self) -> Store:
        with self._changed:
            if self.limit is not None and not self._idle and self.open >= self.limit:
                if not self._changed.wait_for(lambda: self._idle or self.open < self.limit,
                                              timeout=self._wait_seconds):
                    raise ConnectionsBusy(f"all {self.limit} database connections of this process stayed "
                                          f"busy for {self._wait_seconds:g} s")
            if self._idle:
                return self._idle.pop()
            self.open += 1
        try:
            # No integrity check per request: PRAGMA quick_check reads the whole file (about 2 s at a
            # million messages); create_app checks once at start-up.
            return self._mainland.open_store(check=False)
        except BaseException:
            self._forget()
            raise

    def give(self, store: Store) -> None:
        if store.conn.in_transaction:
            # Left inside a transaction (a failure between BEGIN and COMMIT outside `Store.write`):
            # never handed to another request.
            try:
                store.conn.rollback()
            finally:
                self._close(store)
            return
        with self._changed:
            if len(self._idle) < self._size:
                self._idle.append(store)
                self._changed.notify()
                return
        self._close(store)

    @contextlib.contextmanager
    def lent(self) -> Iterator[Store]:
        """A connection for a short piece of work (one live look), given back after it."""
        store = self.take()
        try:
            yield store
        finally:
            self.give(store)

    def _close(self, store: Store) -> None:
        try:
            store.close()
        finally:
            self._forget()

    def _forget(self) -> None:
        with self._changed:
            self.open -= 1
            self._changed.notify()

    def close(self) -> None:
        """Close the idle connections (the app stops, or its database is replaced)."""
        with self._changed:
            idle, self._idle = self._idle, []
        for store in idle:
            self._close(store)


def mainland() -> Mainland:
    return current_app.extensions["mainland"]


def pool_of(app: Flask) -> StorePool:
    return app.extensions["store_pool"]


def get_store() -> Store:
    """The request's store, taken on first use."""
    if "store" not in g:
        g.store = pool_of(current_app).take()
    return g.store


def _give_back_store(exc: BaseException | None) -> None:
    store = g.pop("store", None)
    if store is not None:
        pool_of(current_app).give(store)


def connection_limit(mainland: Mainland) -> int | None:
    """The most connections a web process opens at once: `web.database_connections`, else
    DATABASE_CONNECTIONS on PostgreSQL and no limit (None) on SQLite."""
    web = mainland.config.extra.get("web") or {}
    limit = web.get("database_connections") if isinstance(web, dict) else None
    if limit is None:
        return DATABASE_CONNECTIONS if is_postgresql_url(mainland.config.database) else None
    return max(2, int(limit))


def init_app(app: Flask) -> None:
    mainland = app.extensions["mainland"]
    app.extensions["store_pool"] = StorePool(mainland, limit=connection_limit(mainland))
    app.teardown_appcontext(_give_back_store)
