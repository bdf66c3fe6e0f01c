"""The worker: one scheduler polls (database lease), a standby takes over, failures stay contained.

The channels here are served by a connector defined in this file (`fake`), registered in the
registry for the test; it logs its fetch calls and can be told to crash, to answer 429 with a
retry-after, or to be slower than its interval. The database is a real SQLite file.

No test waits a fixed time and then counts: each waits (`Worker.wait_until`, up to TIMEOUT) for
the jobs it is about to have run, so a loaded machine makes a test slower, never wrong. The
worker's "now" is a frozen clock: a lease runs out when a test moves the clock past it, not when
a busy machine happens to delay a renewal.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent

import connectors
from connectors.base import Connector, RetryableError
from inbox import clock
from inbox import config as config_module
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import queue_reply
from inbox.runtime import Mainland
from inbox.store.base import iso, parse_iso
from inbox.worker import LEASE_NAME, Worker, poll_plans
from tests.mailfactory import raw_mail

#: Seconds between polls of the test channels (and between lease renewals): small, so the file is quick.
INTERVAL = 0.2
#: How long a test waits for the worker to get something done before it fails. Generous on purpose:
#: an idle machine gets there in a fraction of a second and the wait ends as soon as it does.
TIMEOUT = 30.0


class FetchLog:
    """Every fetch call: (channel, thread name, start time); plus the most that ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, float]] = []
        self.active: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self.sent: list[tuple[str, str, str]] = []

    def count(self, channel: str, thread_prefix: str | None = None) -> int:
        with self.lock:
            return sum(1 for c, t, _ in self.calls if c == channel and (thread_prefix is None or
                                                                         t.startswith(thread_prefix)))


LOG = FetchLog()


class FakeConnector(Connector):
    """A channel that does what its `mode` setting says: ok, crash, ratelimit or slow."""

    kind = "fake"
    display_name = "Fake"

    def fetch(self, cursor):
        name = self.name
        with LOG.lock:
            LOG.calls.append((name, threading.current_thread().name, time.monotonic()))
            LOG.active[name] = LOG.active.get(name, 0) + 1
            LOG.most_at_once[name] = max(LOG.most_at_once.get(name, 0), LOG.active[name])
        try:
            mode = self.config.get("mode", "ok")
            if mode == "crash":
                raise RuntimeError("the connector has a bug")
            if mode == "ratelimit":
                raise RetryableError("429 Too Many Requests", retry_after=120)
            if mode == "slow":
                time.sleep(float(self.config.get("delay", 1.0)))
            return FetchResult(items=[], cursor=str(int(cursor or 0) + 1))
        finally:
            with LOG.lock:
                LOG.active[name] -= 1

    def send(self, reply):
        with LOG.lock:
            LOG.sent.append((self.name, reply.text, threading.current_thread().name))
            return f"sent-{len(LOG.sent)}"


class PushConnector(FakeConnector):
    kind = "fakepush"
    push_only = True


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch):
    real = connectors.discover

    def discover(**kwargs):
        return {**real(**kwargs), "fake": FakeConnector, "fakepush": PushConnector}

    monkeypatch.setattr(connectors, "discover", discover)
    LOG.__init__()
    yield


@pytest.fixture(autouse=True)
def frozen(frozen_clock):
    """The worker's clock, stopped at conftest's FROZEN_START; a test moves it with `.advance()` to make
    a lease or a pause run out. (The scheduler itself runs on the machine's clock: that a frozen domain
    clock far from today neither stalls nor floods it is part of what these tests show.)"""
    return frozen_clock


@pytest.fixture
def make_mainland(tmp_path):
    def make(channels: dict, **worker) -> Mainland:
        cfg = config_module.from_mapping({
            "database": str(tmp_path / "mainland.db"),
            "data_dir": str(tmp_path / "data"),
            "secret_key": "test",
            "channels": channels,
            "worker": {"lease_seconds": 2, "renew_every": INTERVAL, **worker},
        }, base=tmp_path)
        return Mainland(cfg)
    return make


@pytest.fixture
def workers(frozen):
    started: list[Worker] = []

    def start(mainland: Mainland) -> Worker:
        w = Worker(mainland)
        w.start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def prefix(worker: Worker) -> str:
    """The names of the worker's job threads start with this."""
    return f"mainland-worker-{worker.holder.rsplit(':', 1)[-1][:8]}"


def wait(worker: Worker, condition: Callable[[], bool]) -> None:
    """Until `condition()` holds, checked each time one of `worker`'s jobs finishes; fail after TIMEOUT."""
    assert worker.wait_until(condition, TIMEOUT), f"still not so after {TIMEOUT:g} s: {worker.status()}"


def wait_for_runs(worker: Worker, job_id: str, runs: int = 2) -> None:
    """Until `runs` more runs of the job have finished, the last of them begun after this call.

    The first run to finish may have begun before (and so seen the clock before a test moved it);
    the next begins only once it has finished (one instance at a time).
    """
    target = worker.runs[job_id] + runs
    wait(worker, lambda: worker.runs[job_id] >= target)


def lease_holder(mainland: Mainland) -> str | None:
    store = mainland.open_store()
    try:
        return store.lease_holder(LEASE_NAME, iso(clock.now()))
    finally:
        store.close()


def test_plans_skip_push_only_and_disabled_channels(make_mainland):
    mainland = make_mainland({
        "a": {"kind": "fake", "poll_every": "2m"},
        "b": {"kind": "fake"},
        "form": {"kind": "fakepush"},
        "off": {"kind": "fake", "enabled": False},
    })
    assert {(p.channel, p.every) for p in poll_plans(mainland)} == {("a", 120.0), ("b", 60.0)}


def test_two_workers_on_one_database_only_one_polls(make_mainland, workers):
    channels = {"mail": {"kind": "fake", "poll_every": INTERVAL}}
    first = workers(make_mainland(channels))
    second = workers(make_mainland(channels))
    wait(first, lambda: first.polls["mail"] >= 5)
    # The standby's poll job came due as often; each time it found it does not hold the lease.
    wait(second, lambda: second.runs["poll:mail"] >= 5 and second.runs["lease"] >= 2)
    assert first.is_leader and not second.is_leader
    assert LOG.count("mail", prefix(first)) >= 5
    assert LOG.count("mail", prefix(second)) == 0 and second.polls["mail"] == 0
    assert lease_holder(first.mainland) == first.holder


def test_the_holder_keeps_the_lease_by_renewing_it(make_mainland, workers, frozen):
    channels = {"mail": {"kind": "fake", "poll_every": INTERVAL}}
    first = workers(make_mainland(channels))
    second = workers(make_mainland(channels))
    wait(first, lambda: first.polls["mail"] >= 1)
    # Three steps of three quarters of the lease: the lease taken at the start ran out long ago, and
    # at every step the holder renewed before the standby could take it.
    for _ in range(3):
        frozen.advance(seconds=first.lease_seconds * 0.75)
        wait_for_runs(first, "lease")
        wait_for_runs(second, "lease")
        assert first.is_leader and not second.is_leader
    polled = first.polls["mail"]
    wait(first, lambda: first.polls["mail"] >= polled + 2)
    assert LOG.count("mail", prefix(second)) == 0
    assert lease_holder(first.mainland) == first.holder


def test_standby_takes_over_when_the_holder_stops(make_mainland, workers):
    channels = {"mail": {"kind": "fake", "poll_every": INTERVAL}}
    first = workers(make_mainland(channels))
    second = workers(make_mainland(channels))
    wait(first, lambda: first.polls["mail"] >= 2)
    first.stop()
    stopped_at = LOG.count("mail", prefix(first))
    # The clock stands still: the standby takes over because the lease was released, not because it expired.
    wait(second, lambda: second.polls["mail"] >= 2)
    assert second.is_leader
    assert LOG.count("mail", prefix(first)) == stopped_at
    assert lease_holder(second.mainland) == second.holder


def test_standby_takes_over_when_a_killed_holder_lease_expires(make_mainland, workers, frozen):
    mainland = make_mainland({"mail": {"kind": "fake", "poll_every": INTERVAL}})
    store = mainland.open_store(migrate=True)
    now = frozen.now()
    # A worker that died without releasing: its lease runs out a minute from now, never renewed.
    with store.write():
        assert store.acquire_lease(LEASE_NAME, "gone:1:x", iso(now), iso(now + dt.timedelta(seconds=60)))
    worker = workers(mainland)
    wait(worker, lambda: worker.runs["lease"] >= 3 and worker.runs["poll:mail"] >= 3)
    assert not worker.is_leader and LOG.count("mail") == 0
    # Up to the last moment of the lease, the standby keeps its hands off.
    frozen.advance(seconds=59.9)
    wait_for_runs(worker, "lease")
    wait_for_runs(worker, "poll:mail")
    assert not worker.is_leader and LOG.count("mail") == 0
    frozen.advance(seconds=0.2)
    wait(worker, lambda: worker.polls["mail"] >= 1)
    assert worker.is_leader
    assert store.lease_holder(LEASE_NAME, iso(clock.now())) == worker.holder
    store.close()


def test_stop_releases_the_lease(make_mainland, workers):
    mainland = make_mainland({"mail": {"kind": "fake", "poll_every": INTERVAL}})
    worker = workers(mainland)
    assert worker.is_leader
    worker.stop()
    assert lease_holder(mainland) is None


def test_a_crashing_poll_is_recorded_and_the_scheduler_goes_on(make_mainland, workers):
    worker = workers(make_mainland({
        "broken": {"kind": "fake", "mode": "crash", "poll_every": INTERVAL},
        "mail": {"kind": "fake", "poll_every": INTERVAL},
    }))
    wait(worker, lambda: worker.polls["broken"] >= 1 and worker.polls["mail"] >= 2)
    before = worker.polls["mail"]
    wait(worker, lambda: worker.polls["mail"] >= before + 3)
    assert worker.scheduler.running and LOG.count("broken") >= 1
    store = worker.mainland.open_store()
    health = store.channel_health()
    store.close()
    assert "RuntimeError: the connector has a bug" in health["broken"]["last_error"]
    assert health["broken"]["failures"] >= 1
    assert health["mail"]["last_error"] is None


def test_retry_after_pauses_one_channel_while_another_keeps_polling(make_mainland, workers, frozen):
    worker = workers(make_mainland({
        "limited": {"kind": "fake", "mode": "ratelimit", "poll_every": INTERVAL},
        "mail": {"kind": "fake", "poll_every": INTERVAL},
    }))
    wait(worker, lambda: worker.polls["mail"] >= 5 and worker.polls["limited"] >= 5)
    # The 429 came once; every later run saw the pause and did not call the channel again.
    assert LOG.count("limited") == 1
    assert LOG.count("mail") >= 5
    store = worker.mainland.open_store()
    health = store.channel_health()["limited"]
    store.close()
    assert parse_iso(health["paused_until"]) == frozen.now() + dt.timedelta(seconds=120)
    assert "429" in health["last_error"]
    # Once the channel's retry-after has passed, it is asked again.
    frozen.advance(seconds=121)
    wait(worker, lambda: LOG.count("limited") >= 2)


def test_a_poll_slower_than_its_interval_never_overlaps(make_mainland, workers):
    worker = workers(make_mainland({"slow": {"kind": "fake", "mode": "slow", "delay": 0.4, "poll_every": INTERVAL}}))
    skipped: list[JobSubmissionEvent] = []
    worker.scheduler.add_listener(lambda event: skipped.append(event) if event.job_id == "poll:slow" else None,
                                  EVENT_JOB_MAX_INSTANCES)
    # A run that comes due while the poll still runs is skipped, not queued up to run after it.
    wait(worker, lambda: worker.polls["slow"] >= 3 and len(skipped) >= 1)
    assert LOG.most_at_once["slow"] == 1


def test_taking_the_lease_removes_old_temporary_attachment_files_only(make_mainland, workers):
    mainland = make_mainland({})
    folder = mainland.config.attachments_dir / "ab" / "cd"
    folder.mkdir(parents=True)
    old, fresh = folder / ".tmp-crashed", folder / ".tmp-being-written"
    old.write_bytes(b"half a file")
    fresh.write_bytes(b"a file on its way")
    # Both ages are set from the same clock the worker compares them with (the file system's own stamp
    # would not move with a faked calendar).
    now = time.time()
    os.utime(old, (now - 7200, now - 7200))
    os.utime(fresh, (now, now))
    worker = workers(mainland)
    assert worker.is_leader
    assert not old.exists() and fresh.exists()


def test_housekeeping_checkpoints_the_write_ahead_log(make_mainland, workers):
    mainland = make_mainland({}, checkpoint_every=0.3)
    store = mainland.open_store(migrate=True)
    with store.write():
        for n in range(2000):
            store.save_cursor(f"channel-{n}", "x" * 200, iso(clock.now()))
    wal = Path(str(mainland.config.database) + "-wal")
    assert wal.stat().st_size > 100_000
    worker = workers(mainland)
    wait(worker, lambda: worker.runs["housekeeping"] >= 1 and wal.stat().st_size == 0)
    store.close()


def test_housekeeping_gathers_the_query_planners_statistics(make_mainland, workers):
    # PRAGMA optimize on the housekeeping schedule (#16): before it, nothing ever ran ANALYZE.
    mainland = make_mainland({}, checkpoint_every=0.3)
    store = mainland.open_store(migrate=True)
    has_statistics = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
    assert store.execute(has_statistics).fetchone()[0] == 0
    worker = workers(mainland)
    wait(worker, lambda: worker.runs["housekeeping"] >= 1 and store.execute(has_statistics).fetchone()[0] == 1)
    store.close()


def test_the_lease_holder_sends_queued_replies_once(make_mainland, workers):
    channels = {"mail": {"kind": "fake", "poll_every": 60}}
    mainland = make_mainland(channels, outbox_every=INTERVAL)
    store = mainland.open_store(migrate=True)
    item = parse_email(raw_mail(), channel="mail")
    mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor=None))
    [conversation] = store.recent_conversations()
    queue_reply(mainland, store, conversation["id"], "A new kettle is on its way.", agent={"id": None, "name": "Ann"})
    first = workers(mainland)
    second = workers(make_mainland(channels, outbox_every=INTERVAL))
    wait(first, lambda: len(LOG.sent) >= 1)
    # Both workers' outbox jobs ran again after the send: neither sent the reply a second time.
    wait_for_runs(first, "outbox")
    wait_for_runs(second, "outbox")
    [(channel, text, thread)] = LOG.sent
    assert (channel, text) == ("mail", "A new kettle is on its way.")
    assert thread.startswith(prefix(first)) and not second.is_leader
    assert store.conversation_messages(conversation["id"])[-1]["delivery_status"] == "sent"
    store.close()


def _conversation(mainland: Mainland, store) -> dict:
    item = parse_email(raw_mail(), channel="mail")
    mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor=None))
    [conversation] = store.recent_conversations()
    return conversation


def test_a_reply_goes_out_when_its_undo_window_ends_not_at_the_next_round(make_mainland, workers, frozen):
    # A chat's reply waited out the undo window and then up to a whole outbox round more (#18).
    mainland = make_mainland({"mail": {"kind": "fake", "poll_every": 3600}}, outbox_every=3600)
    store = mainland.open_store(migrate=True)
    conversation = _conversation(mainland, store)
    worker = workers(mainland)
    wait(worker, lambda: worker.runs["outbox"] >= 1)  # the first round, at start; the next in an hour
    queue_reply(mainland, store, conversation["id"], "Undo window over.", agent={"id": None, "name": "Ann"},
                hold_seconds=0.5)
    frozen.advance(dt.timedelta(seconds=0.5))
    wait(worker, lambda: len(LOG.sent) == 1)
    assert LOG.sent[0][1] == "Undo window over."
    assert worker.scheduler.get_job("outbox").next_run_time > clock.SYSTEM.now() + dt.timedelta(minutes=50), \
        "sent by a round of its own, not the scheduled one"
    store.close()


def test_a_round_sets_the_next_one_for_a_reply_queued_elsewhere(make_mainland, workers, frozen):
    # Queued by another process (here: before this worker started, so nobody was told): the round
    # that finds it not yet due comes back when it is.
    mainland = make_mainland({"mail": {"kind": "fake", "poll_every": 3600}}, outbox_every=3600)
    store = mainland.open_store(migrate=True)
    conversation = _conversation(mainland, store)
    queue_reply(mainland, store, conversation["id"], "Now.", agent={"id": None, "name": "Ann"})
    queue_reply(mainland, store, conversation["id"], "In a second.", agent={"id": None, "name": "Ann"},
                hold_seconds=1)
    worker = workers(mainland)
    wait(worker, lambda: len(LOG.sent) == 1)
    frozen.advance(dt.timedelta(seconds=1))
    wait(worker, lambda: len(LOG.sent) == 2)
    assert [text for _, text, _ in LOG.sent] == ["Now.", "In a second."]
    store.close()
