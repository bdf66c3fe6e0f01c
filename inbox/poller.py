"""One poll of one channel: fetch pages and ingest them until the channel has nothing more.

The worker runs this on a schedule and `mainland poll <channel> --once` runs it by hand. Each
page is ingested together with the cursor after it, so a poll killed at any moment resumes where
the last committed page ended. A retryable error (429, 5xx, a dropped connection) ends the poll
and records until when the channel is paused (the channel's own retry-after when it gave one, or
exponential backoff with full jitter); a permanent error is recorded for a person to fix.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass

from connectors.base import ConnectorError, PermanentError, RetryableError
from inbox import clock
from inbox.ingest import IngestReport
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso, parse_iso

log = logging.getLogger("mainland.poller")

#: Pages one poll takes at most, so a huge backlog cannot hold the worker forever.
MAX_PAGES_PER_POLL = 200
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0


@dataclass
class PollOutcome:
    channel: str
    report: IngestReport
    pages: int
    error: str | None = None
    retry_after: float | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None


def backoff_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait: the channel's own retry-after first, else full-jitter exponential backoff."""
    if retry_after is not None and retry_after > 0:
        return min(float(retry_after), BACKOFF_CAP_SECONDS * 24)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(failures - 1, 0)))
    return random.uniform(0, ceiling)


def poll_channel(
    mainland: Mainland,
    store: Store,
    channel: str,
    *,
    now: dt.datetime | None = None,
    ignore_pause: bool = False,
    max_pages: int = MAX_PAGES_PER_POLL,
) -> PollOutcome:
    """Fetch and ingest `channel` until it has no more (or `max_pages`); never raises a connector error."""
    now = now or clock.now()
    health = store.channel_health().get(channel, {})
    paused_until = parse_iso(health.get("paused_until"))
    if paused_until and paused_until > now and not ignore_pause:
        return PollOutcome(channel, IngestReport(), 0, skipped=f"paused until {iso(paused_until)}")

    connector = mainland.connector(channel)
    ingestor = mainland.ingestor(store)
    report = IngestReport()
    pages = 0
    try:
        while pages < max_pages:
            result = connector.fetch(store.cursor(channel))
            pages += 1
            report.add(ingestor.ingest(channel, result))
            if not result.more:
                break
    except RetryableError as exc:
        return _failed(store, connector.redact(str(exc)), channel, report, pages, health, exc.retry_after)
    except PermanentError as exc:
        return _failed(store, connector.redact(str(exc)), channel, report, pages, health, None)
    except ConnectorError as exc:
        return _failed(store, connector.redact(str(exc)), channel, report, pages, health, None)
    finally:
        connector.close()
    with store.write():
        store.record_poll(channel, iso(clock.now()), items=report.stored)
    return PollOutcome(channel, report, pages)


def _failed(store: Store, message: str, channel: str, report: IngestReport, pages: int, health: dict,
            retry_after: float | None) -> PollOutcome:
    failures = int(health.get("failures") or 0) + 1
    delay = backoff_delay(failures, retry_after)
    moment = clock.now()
    log.warning("poll of %s failed (%s); next try in %.0f s", channel, message, delay)
    with store.write():
        store.record_poll(channel, iso(moment), error=message,
                          paused_until=iso(moment + dt.timedelta(seconds=delay)))
    return PollOutcome(channel, report, pages, error=message, retry_after=delay)
