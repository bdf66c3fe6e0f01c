"""Test harness: one poll of a channel in its own process, which can SIGKILL itself at a fault point.

    python -m tests.imap_poll_worker CONFIG CHANNEL

`MAINLAND_TEST_FAULT=<point>:<n>` kills the process (SIGKILL: no cleanup, no rollback by Python)
at the n-th time it reaches <point>:

- `imap.fetch`: as the n-th page's bodies are asked for (a kill during UID FETCH, FI-01);
- `store.save_cursor`: inside the n-th page's transaction, after its rows were inserted and
  before its cursor is saved (FI-02);
- `ingest.after_commit`: right after the n-th page was committed (FI-03).

Used by tests/test_imap_kill.py; it prints the poll's outcome as JSON when it survives.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from imapclient import IMAPClient

from inbox.config import load
from inbox.ingest import Ingestor
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store import Store

FAULT_ENV = "MAINLAND_TEST_FAULT"


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: type, name: str, nth: int, *, after: bool = False,
          counts: Callable[[tuple, dict], bool] = lambda args, kwargs: True) -> None:
    real = getattr(owner, name)
    seen = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        if counts(args, kwargs):
            seen += 1
            if seen == nth and not after:
                _die()
        result = real(*args, **kwargs)
        if after and seen == nth:
            _die()
        return result

    setattr(owner, name, wrapper)


def arm(fault: str) -> None:
    point, _, nth_text = fault.partition(":")
    nth = int(nth_text or 1)
    if point == "imap.fetch":
        _wrap(IMAPClient, "fetch", nth, counts=lambda args, kwargs: "BODY.PEEK[]" in (args[2] if len(args) > 2
                                                                                       else kwargs.get("data")))
    elif point == "store.save_cursor":
        _wrap(Store, "save_cursor", nth)
    elif point == "ingest.after_commit":
        _wrap(Ingestor, "ingest", nth, after=True)
    else:
        raise SystemExit(f"unknown fault point {point!r}")


def main(config_path: str, channel: str) -> int:
    if os.environ.get(FAULT_ENV):
        arm(os.environ[FAULT_ENV])
    mainland = Mainland(load(config_path), include_entry_points=False)
    store = mainland.open_store(migrate=True)
    try:
        outcome = poll_channel(mainland, store, channel, ignore_pause=True)
    finally:
        store.close()
    print(json.dumps({"stored": outcome.report.stored, "quarantined": outcome.report.quarantined,
                      "duplicates": outcome.report.duplicates, "pages": outcome.pages, "error": outcome.error}))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
