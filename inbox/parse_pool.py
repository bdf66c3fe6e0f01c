"""Parsing raw mail in worker processes while one writer stores it, in order (#16).

Parsing is most of the CPU an import spends, and Python parses on one core. `ParsePipeline` takes
batches of raw messages, parses each batch in a worker process (`concurrent.futures`), and hands
the parsed batches back **in the order they were given**, with at most a few batches in flight
(memory stays flat whatever the size of the source). The caller stays the only writer: it stores
each batch with its cursor in one transaction, exactly as the in-process path does, so the
order guarantees and exactly-once semantics of the import do not change.

A worker that dies (killed, out of memory, a crash in C code) breaks the pool: every batch not yet
handed back is parsed again by a fresh pool, and a batch whose parse kills a worker twice is
parsed in this process. Nothing of such a batch was stored (only the caller writes), so nothing
is doubled; the idempotency keys of the ingest (`(channel, external_id)`) are the second guard.

Small runs are parsed in this process (starting processes costs more than it saves:
`workers_for`), and so is everything where processes cannot be had (`workers=0`, one CPU, a
sandbox without semaphores).

Two callers: `mainland import` (inbox/importer.py: batches of files) and the poller
(inbox/poller.py: the pages of a connector that fetches raw pages, `parse_page`).
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from inbox import clock
from inbox.mail_batch import Sanitized, presanitize
from inbox.models import ParsedPage

log = logging.getLogger("mainland.parse_pool")

#: Below this many messages an import parses in its own process.
MIN_MESSAGES_FOR_PROCESSES = 2000
#: Batches in flight per worker: enough to keep every worker busy while the writer commits.
IN_FLIGHT_PER_WORKER = 2
#: Pools started again after a worker died, per import, before parsing stays in this process.
MAX_POOL_RESTARTS = 5


def default_workers() -> int:
    """Worker processes for parsing: the CPUs this process may use, the writer keeping one busy too."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


def workers_for(messages: int, workers: int | None = None) -> int:
    """Parsing processes for a run of `messages`: `workers` when given, else one per CPU from
    `MIN_MESSAGES_FOR_PROCESSES` messages on, else none (a few mails parse faster than a process starts)."""
    if workers is not None:
        return workers
    return default_workers() if messages >= MIN_MESSAGES_FOR_PROCESSES else 0


def parse_page(job: tuple[Callable[..., ParsedPage], Any, dict]) -> tuple[ParsedPage, dict[str, Sanitized]]:
    """A connector's raw page parsed, `(parse, payload, options)` of a `RawPage`, and the HTML of its
    items worked out ahead (`Ingestor.ingest(sanitized=...)`): CPU work taken off the one writer."""
    parse, payload, options = job
    parsed = parse(payload, **options)
    return parsed, presanitize(parsed.items)


@dataclass
class Batch:
    """One batch of work: `payload` goes to `parse(payload, **options)`; `meta` stays with the caller."""

    payload: Any
    meta: Any = None
    attempts: int = 0


def _parse_in_worker(parse: Callable[..., Any], payload: Any, options: dict, now: dt.datetime) -> Any:
    # The parent's "now" (bad-date checks compare with it): a frozen clock in tests, the same
    # moment give or take the queue's delay in production.
    with clock.installed(clock.FrozenClock(now)):
        return parse(payload, **options)


class ParsePipeline:
    """Ordered parsing of batches; processes when `workers` > 0, else in this process."""

    def __init__(self, parse: Callable[..., Any], options: dict, *, workers: int) -> None:
        self.parse = parse
        self.options = options
        self.workers = workers
        self.restarts = 0
        self._pool: ProcessPoolExecutor | None = None
        #: Whether a batch was handed out yet (the first is parsed here while the pool starts).
        self._started = False

    def __enter__(self) -> ParsePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def in_process(self) -> bool:
        return self.workers <= 0

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Any]]:
        """(batch, parsed) for every batch, in the order given."""
        if self.in_process:
            for batch in batches:
                yield batch, self.parse(batch.payload, **self.options)
            return
        pending: deque[tuple[Batch, Future | None]] = deque()
        source = iter(batches)
        limit = max(1, self.workers * IN_FLIGHT_PER_WORKER)
        exhausted = False
        failure: Exception | None = None
        while pending or not exhausted:
            while not exhausted and len(pending) < limit:
                try:
                    batch = next(source, None)
                except Exception as exc:
                    # The source fails (an unreadable file): what was read before it is still
                    # handed back, in order, and only then the failure.
                    batch, failure = None, exc
                if batch is None:
                    exhausted = True
                    break
                pending.append((batch, self._submit(batch)))
            if not pending:
                break
            batch, future = pending[0]
            try:
                parsed = self._result(batch, future)
            except BrokenProcessPool:
                # A worker died: the pool is gone with every batch in it. None of them was handed
                # back (so none stored): parse them all again; a batch in flight at a second
                # death is parsed in this process (it may be what kills the workers).
                log.warning("a parsing worker died; parsing the %d batches in flight again", len(pending))
                self._restart()
                pending = deque((b, self._submit(b)) for b, _ in pending)
                continue
            pending.popleft()
            yield batch, parsed
        if failure is not None:
            raise failure

    def _result(self, batch: Batch, future: Future | None) -> Any:
        if future is None:
            return self.parse(batch.payload, **self.options)
        return future.result()

    def _submit(self, batch: Batch) -> Future | None:
        """The batch given to the pool; None (parse it here) after it broke a pool twice, or without a
        pool, or when it is the first: this process parses that one while the workers start (a
        worker's start costs about what parsing a batch does, and the writer would only wait)."""
        batch.attempts += 1
        if batch.attempts > 2 or self.in_process:
            return None
        if not self._started:
            self._started = True
            return None
        for _ in range(2):
            try:
                return self._ensure_pool().submit(_parse_in_worker, self.parse, batch.payload, self.options,
                                                  clock.now())
            except BrokenProcessPool:  # a worker died while idle: the batches in flight were handed back
                self._restart()
                if self.in_process:
                    return None
            except (OSError, NotImplementedError, PermissionError) as exc:
                log.warning("parsing in this process: worker processes are not available (%s)", exc)
                self.workers = 0
                return None
        return None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context())
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.restarts += 1
        if self.restarts > MAX_POOL_RESTARTS:
            log.warning("parsing workers keep dying; parsing the rest in this process")
            self.workers = 0

    def worker_pids(self) -> list[int]:
        """The worker processes now running (for tests that kill one)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return list(processes)


def _context() -> multiprocessing.context.BaseContext:
    """spawn: a fresh interpreter per worker. Not fork: the writer has a SQLite connection and
    threads (the pool's own manager thread, a progress bar) whose locks a forked child would copy
    mid-use. Not forkserver: it listens on a Unix socket, which some sandboxes refuse. Starting a
    worker costs about a second of imports, once per import; small imports parse in-process."""
    return multiprocessing.get_context("spawn")
