"""The rate-limit library's storage for Mainland: the counters every process of an installation shares.

Flask-Limiter (inbox/web/security.py) keeps one storage for its one `limiter`; this one
(`storage_uri="mainland://"`) finds the counters of the installation serving the request,
`<data_dir>/rate-limits.db` (inbox/store/rate_limits.py): every process of the installation
(`gunicorn -w N`, `mainland serve` beside a second web process) counts together, and two
installations in one process (the tests) count apart. An installation on PostgreSQL counts in its
database's `rate_counters` table instead, which every machine shares (`PgRateCounters`).
"""

from __future__ import annotations

import collections
import sqlite3
import threading
from pathlib import Path

from flask import current_app, has_app_context
from limits.storage import Storage

from inbox.store.base import is_postgresql_url, libpq_url
from inbox.store.rate_limits import PgRateCounters, RateCounters

#: The file's name in the installation's data directory.
FILE_NAME = "rate-limits.db"
#: Installations whose counters one process keeps open (more only in tests, which make many apps).
KEPT_OPEN = 16

_open: collections.OrderedDict[Path | str, RateCounters | PgRateCounters] = collections.OrderedDict()
_open_lock = threading.Lock()


def counters_path(app) -> Path | str:
    """Where `app`'s installation keeps its counters: a file, or its PostgreSQL database's URL."""
    config = app.extensions["mainland"].config
    if is_postgresql_url(config.database):
        return libpq_url(str(config.database))
    return Path(config.data_dir) / FILE_NAME


def counters_for(path: Path | str) -> RateCounters | PgRateCounters:
    with _open_lock:
        counters = _open.get(path)
        if counters is None:
            counters = _open[path] = PgRateCounters(path) if isinstance(path, str) else RateCounters(path)
            while len(_open) > KEPT_OPEN:
                _, oldest = _open.popitem(last=False)
                oldest.close()
        else:
            _open.move_to_end(path)
        return counters


class SharedCounters(Storage):
    """Fixed-window counting in the installation's counters file (the limiter's default strategy)."""

    STORAGE_SCHEME = ["mainland"]

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (sqlite3.Error, psycopg.Error)

    def _counters(self) -> RateCounters | PgRateCounters:
        return counters_for(counters_path(current_app))

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._counters().incr(key, expiry, amount)

    def get(self, key: str) -> int:
        return self._counters().get(key)

    def get_expiry(self, key: str) -> float:
        return self._counters().expires_at(key)

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        """Forget the counts: the serving installation's, or outside a request every open one's."""
        if has_app_context():
            return self._counters().reset()
        with _open_lock:
            open_now = list(_open.values())
        return sum(counters.reset() for counters in open_now)

    def clear(self, key: str) -> None:
        self._counters().clear(key)
