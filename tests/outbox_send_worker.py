"""Test harness: the outbox's sender in its own process, so a test can SIGKILL it mid-send.

    python -m tests.outbox_send_worker CONFIG NOW

Installs a frozen clock at NOW (ISO 8601) and calls `send_due` until a round finds nothing due,
printing each round's report as one JSON line. Used by tests/test_outbox_kill.py, which kills it
while the SMTP server holds a message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys

from inbox import clock
from inbox.config import load
from inbox.outbox import send_due
from inbox.runtime import Mainland


def main(config_path: str, now_text: str) -> None:
    now = dt.datetime.fromisoformat(now_text)
    clock.install(clock.FrozenClock(now))
    mainland = Mainland(load(config_path))
    store = mainland.open_store(migrate=False)
    try:
        while True:
            report = dataclasses.asdict(send_due(mainland, store, now=now))
            print(json.dumps(report), flush=True)
            if not any(report.values()):
                return
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
