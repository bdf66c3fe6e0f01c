"""One `Store` per request: taken on first use, given back when the request ends.

Every page module reads the installation and the database through `mainland()` and `get_store()`
(imported from `inbox.web`, which re-exports them).

Connections are reused: opening one costs about 1.5 ms of CPU (SQLite reads the file's schema and
each connection's pragmas are set), which under `bench/chat_load.py` was a sixth of the server's
busy time, spent again on every request. A request's connection goes back to its app's pool of
idle ones when the request ends, unless it is inside a transaction (a request that failed half-way:
it is rolled back and closed) or the pool is full.
"""

from __future__ import annotations

import threading

from flask import Flask, current_app, g

from inbox.runtime import Mainland
from inbox.store import Store

#: Idle connections an app keeps for its next requests; past that a finished request's is closed.
#: About one per page thread and a few more: the long polls and streams that end give theirs back too.
POOLED = 16


class StorePool:
    """Idle request connections of one app, newest first (the warmest caches are reused)."""

    def __init__(self, mainland: Mainland, size: int = POOLED) -> None:
        self._mainland = mainland
        self._size = size
        self._lock = threading.Lock()
        self._idle: list[Store] = []

    def take(self) -> Store:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # No integrity check per request: PRAGMA quick_check reads the whole file (about 2 s at a
        # million messages); create_app checks once at start-up.
        return self._mainland.open_store(check=False)

    def give(self, store: Store) -> None:
        if store.conn.in_transaction:
            # Left inside a transaction (a failure between BEGIN and COMMIT outside `Store.write`):
            # never handed to another request.
            store.conn.rollback()
            store.close()
            return
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(store)
                return
        store.close()

    def close(self) -> None:
        """Close the idle connections (the app stops, or its database is replaced)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for store in idle:
            store.close()


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


def init_app(app: Flask) -> None:
    app.extensions["store_pool"] = StorePool(app.extensions["mainland"])
    app.teardown_appcontext(_give_back_store)
