"""One poll of one channel: fetch pages and ingest them until the channel has nothing more.

The worker runs this on a schedule and `mainland poll <channel> --once` runs it by hand. Each
page is ingested together with the cursor after it, so a poll killed at any moment resumes where
the last committed page ended. A retryable error (429, 5xx, a dropped connection) ends the poll
and records until when the channel is paused (the channel's own retry-after when it gave one, or
exponential backoff with full jitter); a permanent error is recorded for a person to fix.

A connector that fetches raw pages (`Connector.fetch_raw`: mail) has its pages parsed here, through
the same `ParsePipeline` as `mainland import` (#16): when the poll is large (`RawPage.to_read`, the
threshold of `parse_pool.workers_for`) the pages are parsed in worker processes while the connector
fetches the next ones, and this process stays the one writer, storing the pages in order, each
with its cursor. A poll of a few mails parses in this process, page by page, as before.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass

from connectors.base import Connector, ConnectorError, PermanentError, RetryableError
from inbox import clock
from inbox.ingest import Ingestor, IngestReport
from inbox.parse_pool import Batch, ParsePipeline, parse_page, workers_for
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
    progress = _Progress()
    try:
        if type(connector).fetches_raw():
            _ingest_raw_pages(connector, ingestor, channel, store.cursor(channel), max_pages, report, progress)
        else:
            while progress.pages < max_pages:
                result = connector.fetch(store.cursor(channel))
                progress.pages += 1
                report.add(ingestor.ingest(channel, result))
                if not result.more:
                    break
    except RetryableError as exc:
        return _failed(store, connector.redact(str(exc)), channel, report, progress.pages, health, exc.retry_after)
    except PermanentError as exc:
        return _failed(store, connector.redact(str(exc)), channel, report, progress.pages, health, None)
    except ConnectorError as exc:
        return _failed(store, connector.redact(str(exc)), channel, report, progress.pages, health, None)
    finally:
        connector.close()
    with store.write():
        store.record_poll(channel, iso(clock.now()), items=report.stored)
    return PollOutcome(channel, report, progress.pages)


@dataclass
class _Progress:
    """Pages fetched so far in one poll (a failed poll reports them too)."""

    pages: int = 0


def _raw_pages(connector: Connector, cursor: str | None, max_pages: int, progress: _Progress) -> Iterator[Batch]:
    """The connector's raw pages from `cursor` on, each asked for with the cursor of the page before it
    (the cursor that page is stored with), as pipeline batches: the parse job, the page as meta."""
    while progress.pages < max_pages:
        page = connector.fetch_raw(cursor)
        progress.pages += 1
        yield Batch(payload=(page.parse, page.payload, page.options), meta=page)
        if not page.more:
            return
        cursor = page.cursor


def _ingest_raw_pages(connector: Connector, ingestor: Ingestor, channel: str, cursor: str | None, max_pages: int,
                      report: IngestReport, progress: _Progress) -> None:
    """Parse the raw pages (in worker processes for a large poll) and store each, in order, with its cursor.

    Pages are fetched ahead while earlier ones parse; one that fails to parse or store ends the poll
    with nothing after it stored, and the next poll starts again from the last stored cursor.
    """
    pages = _raw_pages(connector, cursor, max_pages, progress)
    first = next(pages, None)
    if first is None:
        return
    workers = workers_for(first.meta.to_read)
    if workers:
        log.info("%s: parsing about %d messages in %d processes", channel, first.meta.to_read, workers)
    with ParsePipeline(parse_page, {}, workers=workers) as pipeline:
        for batch, (parsed, sanitized) in pipeline.run(itertools.chain([first], pages)):
            report.add(ingestor.ingest(channel, connector.page_result(batch.meta, parsed), sanitized=sanitized))


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
