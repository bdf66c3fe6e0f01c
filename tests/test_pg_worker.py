"""On PostgreSQL exactly one worker polls, and a killed leader's place is taken at once (#17).

The scheduler lease is a row every job checks (tests/test_worker.py); on PostgreSQL its holder also
holds an advisory lock on a session of its own (inbox/store/pg_lease.py), which the server lets go
of when that process dies. Here a real child process takes the lock and the row, and is killed
with SIGKILL: with the domain clock standing still (so the row's lease never expires), the standby
takes over at its next renewal (on SQLite it waits for the row to expire: tests/test_worker.py).
On a real throwaway cluster (tests/pg_cluster.py).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inbox import config as config_module
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso
from tests.pg_cluster import create_database, drop_database
from tests.test_worker import (  # noqa: F401 - fixtures
    INTERVAL,
    LOG,
    fake_registry,
    frozen,
    lease_holder,
    prefix,
    wait,
    workers,
)

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[1]

#: A leader that will die: it holds the session lock and an hour's lease row, then waits to be killed.
LEADER = textwrap.dedent("""
    import sys, time
    from inbox.store import Store
    from inbox.store.pg_lease import SessionLock
    url, now, until = sys.argv[1:4]
    lock = SessionLock(url, "scheduler")
    assert lock.hold()
    store = Store(url)
    with store.write():
        assert store.acquire_lease("scheduler", "doomed:1:x", now, until)
    print("leading", flush=True)
    time.sleep(3600)
""")


@pytest.fixture
def database(cluster):
    url = create_database(cluster)
    Store(url).migrate()
    yield url
    drop_database(url)


@pytest.fixture
def pg_mainland(tmp_path, database):
    def make(channels: dict, **worker) -> Mainland:
        return Mainland(config_module.from_mapping({
            "database": database, "data_dir": str(tmp_path / "data"), "secret_key": "test", "channels": channels,
            "worker": {"lease_seconds": 2, "renew_every": INTERVAL, **worker}}, base=tmp_path))
    return make


def test_two_workers_on_one_postgresql_database_only_one_polls(pg_mainland, workers):  # noqa: F811
    channels = {"mail": {"kind": "fake", "poll_every": INTERVAL}}
    first = workers(pg_mainland(channels))
    second = workers(pg_mainland(channels))
    wait(first, lambda: first.polls["mail"] >= 3)
    wait(second, lambda: second.runs["poll:mail"] >= 3 and second.runs["lease"] >= 2)
    assert first.is_leader and not second.is_leader
    assert LOG.count("mail", prefix(second)) == 0
    assert lease_holder(first.mainland) == first.holder


def test_a_killed_leader_is_replaced_at_once_not_when_its_lease_expires(pg_mainland, workers, database,  # noqa: F811
                                                                          frozen):  # noqa: F811
    now = frozen.now()
    child = subprocess.Popen([sys.executable, "-c", LEADER, database, iso(now), iso(now + dt.timedelta(hours=1))],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "leading"
        standby = workers(pg_mainland({"mail": {"kind": "fake", "poll_every": INTERVAL}}))
        wait(standby, lambda: standby.runs["lease"] >= 3 and standby.runs["poll:mail"] >= 3)
        assert not standby.is_leader and LOG.count("mail") == 0, "the living leader keeps its place"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        # The clock stands still: the dead leader's row says it leads for another hour.
        wait(standby, lambda: standby.polls["mail"] >= 2)
        assert standby.is_leader
        assert lease_holder(standby.mainland) == standby.holder
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
