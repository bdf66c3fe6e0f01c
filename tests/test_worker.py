"""The worker: one scheduler polls (database lease), a standby takes over, failures stay contained.

The channels here are served by a connector defined in this file (`fake`), registered in the
registry for the test; it counts its fetch calls and can be told to crash, to answer 429 with a
retry-after, or to be slower than its interval. The database is a real SQLite file.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

import connectors
from connectors.base import Connector, RetryableError
from inbox import config as config_module
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import queue_reply
from inbox.runtime import Mainland
from inbox.store.base import iso, parse_iso
from inbox.worker import LEASE_NAME, Worker, poll_plans
from tests.mailfactory import raw_mail

INTERVAL = 0.2


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


@pytest.fixture
def make_mainland(tmp_path):
    def make(channels: dict, **worker) -> Mainland:
        cfg = config_module.from_mapping({
            "database": str(tmp_path / "mainland.db"),
            "data_dir": str(tmp_path / "data"),
            "secret_key": "test",
            "channels": channels,
            "worker": {"lease_seconds": 2, "renew_every": 0.2, **worker},
        }, base=tmp_path)
        return Mainland(cfg)
    return make


@pytest.fixture
def workers():
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
    return f"mainland-worker-{worker.holder.rsplit(':', 1)[-1][:8]}"


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


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
    time.sleep(1.5)
    assert first.is_leader and not second.is_leader
    assert LOG.count("mail", prefix(first)) >= 4
    assert LOG.count("mail", prefix(second)) == 0
    # One scheduler's cadence, not two: about 1.5 s / 0.2 s polls in all.
    assert LOG.count("mail") <= 10
    holder = first.mainland.open_store().lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC)))
    assert holder == first.holder


def test_standby_takes_over_when_the_holder_stops(make_mainland, workers):
    channels = {"mail": {"kind": "fake", "poll_every": INTERVAL}}
    first = workers(make_mainland(channels))
    second = workers(make_mainland(channels))
    assert wait_for(lambda: LOG.count("mail", prefix(first)) >= 2)
    first.stop()
    stopped_at = LOG.count("mail", prefix(first))
    assert wait_for(lambda: LOG.count("mail", prefix(second)) >= 2, timeout=3)
    assert second.is_leader
    assert LOG.count("mail", prefix(first)) == stopped_at


def test_standby_takes_over_when_a_killed_holder_lease_expires(make_mainland, workers):
    mainland = make_mainland({"mail": {"kind": "fake", "poll_every": INTERVAL}})
    store = mainland.open_store(migrate=True)
    now = dt.datetime.now(dt.UTC)
    # A worker that died without releasing: its lease runs out 1.5 s from now, never renewed.
    with store.write():
        assert store.acquire_lease(LEASE_NAME, "gone:1:x", iso(now), iso(now + dt.timedelta(seconds=1.5)))
    worker = workers(mainland)
    time.sleep(0.8)
    assert not worker.is_leader and LOG.count("mail") == 0
    assert wait_for(lambda: LOG.count("mail") >= 1, timeout=3)
    assert worker.is_leader
    assert store.lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC))) == worker.holder


def test_stop_releases_the_lease(make_mainland, workers):
    mainland = make_mainland({"mail": {"kind": "fake", "poll_every": INTERVAL}})
    worker = workers(mainland)
    assert worker.is_leader
    worker.stop()
    store = mainland.open_store()
    assert store.lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC))) is None


def test_a_crashing_poll_is_recorded_and_the_scheduler_goes_on(make_mainland, workers):
    worker = workers(make_mainland({
        "broken": {"kind": "fake", "mode": "crash", "poll_every": INTERVAL},
        "mail": {"kind": "fake", "poll_every": INTERVAL},
    }))
    assert wait_for(lambda: LOG.count("broken") >= 1 and LOG.count("mail") >= 2)
    before = LOG.count("mail")
    assert wait_for(lambda: LOG.count("mail") >= before + 3)
    assert worker.scheduler.running
    health = worker.mainland.open_store().channel_health()
    assert "RuntimeError: the connector has a bug" in health["broken"]["last_error"]
    assert health["broken"]["failures"] >= 1
    assert health["mail"]["last_error"] is None


def test_retry_after_pauses_one_channel_while_another_keeps_polling(make_mainland, workers):
    worker = workers(make_mainland({
        "limited": {"kind": "fake", "mode": "ratelimit", "poll_every": INTERVAL},
        "mail": {"kind": "fake", "poll_every": INTERVAL},
    }))
    time.sleep(1.5)
    # The 429 came once; every later run saw the pause and did not call the channel again.
    assert LOG.count("limited") == 1
    assert LOG.count("mail") >= 5
    health = worker.mainland.open_store().channel_health()["limited"]
    paused_for = parse_iso(health["paused_until"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=100) < paused_for <= dt.timedelta(seconds=120)
    assert "429" in health["last_error"]


def test_a_poll_slower_than_its_interval_never_overlaps(make_mainland, workers):
    workers(make_mainland({"slow": {"kind": "fake", "mode": "slow", "delay": 0.7, "poll_every": INTERVAL}}))
    time.sleep(2.2)
    assert LOG.most_at_once["slow"] == 1
    # Runs that came due during a poll were skipped, not queued up to run back to back later.
    assert 2 <= LOG.count("slow") <= 4


def test_taking_the_lease_removes_old_temporary_attachment_files_only(make_mainland, workers):
    mainland = make_mainland({})
    folder = mainland.config.attachments_dir / "ab" / "cd"
    folder.mkdir(parents=True)
    old, fresh = folder / ".tmp-crashed", folder / ".tmp-being-written"
    old.write_bytes(b"half a file")
    fresh.write_bytes(b"a file on its way")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    worker = workers(mainland)
    assert worker.is_leader
    assert not old.exists() and fresh.exists()


def test_housekeeping_checkpoints_the_write_ahead_log(make_mainland, workers):
    mainland = make_mainland({}, checkpoint_every=0.3)
    store = mainland.open_store(migrate=True)
    with store.write():
        for n in range(2000):
            store.save_cursor(f"channel-{n}", "x" * 200, iso(dt.datetime.now(dt.UTC)))
    wal = Path(str(mainland.config.database) + "-wal")
    assert wal.stat().st_size > 100_000
    workers(mainland)
    assert wait_for(lambda: wal.stat().st_size == 0, timeout=3), f"WAL still {wal.stat().st_size} bytes"
    store.close()


def test_the_lease_holder_sends_queued_replies_once(make_mainland, workers):
    channels = {"mail": {"kind": "fake", "poll_every": 60}}
    mainland = make_mainland(channels, outbox_every=0.2)
    store = mainland.open_store(migrate=True)
    item = parse_email(raw_mail(), channel="mail")
    mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor=None))
    [conversation] = store.recent_conversations()
    queue_reply(mainland, store, conversation["id"], "A new kettle is on its way.", agent={"id": None, "name": "Ann"})
    first = workers(mainland)
    second = workers(make_mainland(channels, outbox_every=0.2))
    assert wait_for(lambda: len(LOG.sent) == 1)
    time.sleep(0.6)
    [(channel, text, thread)] = LOG.sent
    assert (channel, text) == ("mail", "A new kettle is on its way.")
    assert thread.startswith(prefix(first)) and not second.is_leader
    assert store.conversation_messages(conversation["id"])[-1]["delivery_status"] == "sent"
