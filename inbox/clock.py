"""Where Mainland reads "now": one injectable clock for the domain, the web app and the worker.

Every place that needs the current time asks `clock.now()` (or the clock of its `Mainland`, which
is the same object unless one was passed in). Production runs on the system clock; tests install a
`FrozenClock` and move it by hand, so no test depends on today's date and an expiry such as a survey
link's seven days is checked against the test's own calendar. Measuring durations (timeouts, rate
limits, benchmarks) is not "now": that keeps using `time.monotonic()` / `time.process_time()`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Clock:
    """The system clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def timestamp(self) -> float:
        """Seconds since the epoch, as `time.time()` but from this clock."""
        return self.now().timestamp()


class FrozenClock(Clock):
    """A clock that stands still until told to move (thread-safe: the worker reads it from its threads)."""

    def __init__(self, moment: dt.datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime (UTC)")
        self._lock = threading.Lock()
        self._moment = moment.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        with self._lock:
            return self._moment

    def set(self, moment: dt.datetime) -> None:
        with self._lock:
            self._moment = moment.astimezone(dt.UTC)

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> dt.datetime:
        """Move forward by `delta` (or timedelta keyword arguments) and return the new now."""
        step = delta if delta is not None else dt.timedelta(**kwargs)
        with self._lock:
            self._moment += step
            return self._moment


SYSTEM = Clock()
_installed: Clock = SYSTEM


def now() -> dt.datetime:
    """The current time (aware, UTC) from the installed clock."""
    return _installed.now()


def current() -> Clock:
    """The installed clock."""
    return _installed


def install(clock: Clock) -> Clock:
    """Make `clock` the process's clock; returns the one it replaces (to put back)."""
    global _installed
    previous, _installed = _installed, clock
    return previous


@contextmanager
def installed(clock: Clock) -> Iterator[Clock]:
    """`install` for the length of a `with` block."""
    previous = install(clock)
    try:
        yield clock
    finally:
        install(previous)


class _Installed(Clock):
    """Follows whatever clock is installed when asked (the default clock of a `Mainland`)."""

    def now(self) -> dt.datetime:
        return _installed.now()


INSTALLED = _Installed()
