"""How long this process's write transactions hold SQLite's one write lock (#16).

While one transaction writes, every other writer in every process waits (up to the busy timeout,
then "Mainland is busy"), so the goal is that none holds it for more than `SLOW_SECONDS`. Every
`Store.write()` reports its hold time here: the longest, how many ran and how many were slow are
kept for the process, shown on `/-/health` to signed-in agents and tokens and read by
`bench/load.py`; a slow one is logged with the code that held it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass

log = logging.getLogger("mainland.store")

#: A write transaction holding the lock longer than this is logged as slow.
SLOW_SECONDS = 1.0


@dataclass
class WriteLockFigures:
    transactions: int = 0
    slow: int = 0
    max_ms: float = 0.0
    max_at: str = ""  # the code that held it longest ("module:function:line")


_lock = threading.Lock()
_figures = WriteLockFigures()


def _holder() -> str:
    """The first frame outside the store's own plumbing: who opened the transaction."""
    for frame in reversed(traceback.extract_stack(limit=12)[:-1]):
        if not frame.filename.endswith(("contextlib.py", "store/__init__.py", "store/write_locks.py")):
            return f"{frame.filename.rsplit('/', 2)[-1]}:{frame.name}:{frame.lineno}"
    return "?"


_turns: dict[str, threading.RLock] = {}
_turns_lock = threading.Lock()


@contextlib.contextmanager
def turn(database: str, timeout: float) -> Iterator[None]:
    """This process's writers to `database` take turns here before they ask SQLite for its write lock.

    SQLite lets a waiting writer sleep and try again (1, 2, 5 ... 100 ms apart), so under contention
    a write that could start the moment the lock is free sleeps on past it, and with many threads
    waiting the order is chance: a visitor's chat message waited behind later typing reports and
    receipts (bench/chat_load.py). Here the next writer of the process starts as soon as the one
    before commits. Writers in other processes still meet at SQLite's lock. Reentrant: a thread
    that writes through a second connection inside a write meets SQLite's lock as it did before.
    Waiting longer than `timeout` fails as SQLite's own wait does ("database is locked").
    """
    with _turns_lock:
        lock = _turns.setdefault(database, threading.RLock())
    if not lock.acquire(timeout=timeout):
        raise sqlite3.OperationalError("database is locked")
    try:
        yield
    finally:
        lock.release()


def record(seconds: float) -> None:
    """One write transaction held the lock for `seconds` (committed or rolled back)."""
    milliseconds = seconds * 1000
    slow = seconds > SLOW_SECONDS
    holder = _holder() if slow or milliseconds > _figures.max_ms else ""
    with _lock:
        _figures.transactions += 1
        _figures.slow += slow
        if milliseconds > _figures.max_ms:
            _figures.max_ms, _figures.max_at = milliseconds, holder
    if slow:
        log.warning("a write transaction held the database's write lock for %.1f s (%s): other writers "
                    "waited", seconds, holder)


def figures() -> dict[str, float | int | str]:
    """This process's figures since it started (or since `reset`)."""
    with _lock:
        return {**asdict(_figures), "max_ms": round(_figures.max_ms, 1)}


def reset() -> None:
    global _figures
    with _lock:
        _figures = WriteLockFigures()
