"""One `Store` per request: opened on first use, closed when the request ends.

Every page module reads the installation and the database through `mainland()` and `get_store()`
(imported from `inbox.web`, which re-exports them).
"""

from __future__ import annotations

from flask import Flask, current_app, g

from inbox.runtime import Mainland
from inbox.store import Store


def mainland() -> Mainland:
    return current_app.extensions["mainland"]


def get_store() -> Store:
    """The request's store, opened on first use."""
    if "store" not in g:
        # No integrity check per request: PRAGMA quick_check reads the whole file (about 2 s at a
        # million messages); create_app checks once at start-up.
        g.store = mainland().open_store(check=False)
    return g.store


def _close_store(exc: BaseException | None) -> None:
    store = g.pop("store", None)
    if store is not None:
        store.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close_store)
