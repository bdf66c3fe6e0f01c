"""Changes other processes and machines commit, told at once by PostgreSQL's LISTEN/NOTIFY (#17).

Live pages (inbox/web/live.py) learn of a change written by their own process as it commits, and of
every other process's on their next look, about a second later. On PostgreSQL the database tells:
revision 0005's trigger sends `NOTIFY mainland_changes, '<newest change number>'` with every
statement that moves `conversation_changes`, delivered when its transaction commits to every
session listening, on any machine. One `ChangeListener` a process and database holds such a
session on a thread of its own and hands each number to its callback.

A listener whose connection drops (a restart, a failover) connects again, a second later and then
up to `MAX_BACKOFF_SECONDS` apart; meanwhile the pages still find changes on their next look, so
nothing is missed, only told later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("mainland.store")

#: The channel revision 0005's trigger notifies.
CHANNEL = "mainland_changes"
#: How long one wait for a notification lasts before the listener checks whether it should stop.
WAIT_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


class ChangeListener:
    """LISTENs on `CHANNEL` of the database at `url` and calls `on_change(seq)` for each change number.

    Runs on a daemon thread from `start()` until `stop()`; the callback runs on that thread.
    """

    def __init__(self, url: str, on_change: Callable[[int], None]) -> None:
        self.url = url
        self.on_change = on_change
        self._stop = threading.Event()
        #: Set each time the listener's session is listening (tests wait for it; so may a caller).
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mainland-listen", daemon=True)

    def start(self) -> ChangeListener:
        self._thread.start()
        return self

    def stop(self, *, wait: bool = True) -> None:
        """End the session; with `wait`, return once it has ended (at most `WAIT_SECONDS` on)."""
        self._stop.set()
        if wait:
            self._thread.join(WAIT_SECONDS * 5)

    def _run(self) -> None:
        import psycopg  # only an installation on PostgreSQL needs the driver

        backoff = 1.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    backoff = 1.0
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=WAIT_SECONDS):
                            self._tell(notice.payload)
            except psycopg.Error as error:
                self.listening.clear()
                log.warning("live updates from other processes wait for the database (%s); trying again "
                            "in %.0f s", error.__class__.__name__, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _tell(self, payload: str) -> None:
        try:
            seq = int(payload)
        except ValueError:
            return  # not one of ours: someone else NOTIFYing on the channel
        try:
            self.on_change(seq)
        except Exception:
            log.exception("a live-update callback failed")
