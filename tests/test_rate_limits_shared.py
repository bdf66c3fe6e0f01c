"""Rate limits hold across the processes of one installation (#17: several web processes).

Counted in each process's memory, every web process of `gunicorn -w N` let a client the whole limit
again. The counters now live in `<data_dir>/rate-limits.db` (inbox/store/rate_limits.py), which the
processes share (on PostgreSQL, the database's `rate_counters` table, which machines share): here a
second real process (a child Python) makes failed sign-ins on the same installation, and this
process's app refuses the attempt past the limit; and hits counted at once by threads and by two
processes are all counted, on both engines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inbox.store import Store, rate_limits
from inbox.store.base import is_postgresql_url
from inbox.store.rate_limits import PgRateCounters, RateCounters
from inbox.web.rate_limit_storage import FILE_NAME
from tests.test_web_auth import login, make_agent, signed_in, web_store  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]

CHILD_SIGN_INS = textwrap.dedent("""
    import json, sys
    from inbox.web import create_app
    from tests.test_web_auth import login
    app = create_app(json.loads(sys.argv[1]))
    app.config.update(TESTING=True)
    client = app.test_client()
    print(json.dumps([login(client, password="nope").status_code for _ in range(int(sys.argv[2]))]))
""")

CHILD_HITS = textwrap.dedent("""
    import sys
    from inbox.store.rate_limits import PgRateCounters, RateCounters
    where = sys.argv[1]
    counters = PgRateCounters(where) if where.startswith("postgresql://") else RateCounters(where)
    for _ in range(int(sys.argv[2])):
        counters.incr("shared", 3600)
""")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def counters_at(request, tmp_path) -> Iterator[str]:
    """Where an installation's counters are: its file, or (on PostgreSQL, which several machines
    share) a migrated database's URL on a throwaway cluster."""
    if request.param == "sqlite":
        yield str(tmp_path / FILE_NAME)
        return
    from tests.pg_cluster import create_database, drop_database

    url = create_database(request.getfixturevalue("cluster"))
    Store(url).migrate()
    yield url
    drop_database(url)


def _counters(where: str) -> RateCounters | PgRateCounters:
    return PgRateCounters(where) if is_postgresql_url(where) else RateCounters(where)


def _in_threads(count: int, target) -> None:
    """Runs `target` in `count` threads at once and waits for them all."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _child(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)


def test_failed_sign_ins_in_another_process_count_toward_the_limit(app, client, web_store, app_config):  # noqa: F811
    make_agent(web_store)
    other = _child(CHILD_SIGN_INS, json.dumps(app_config), "6")
    assert json.loads(other.stdout.strip().splitlines()[-1]) == [401] * 6
    if is_postgresql_url(app_config["database"]):
        # Machines share no data_dir: the counts are in the database every machine reaches.
        import psycopg

        with psycopg.connect(app_config["database"]) as conn:
            assert conn.execute("SELECT count(*) FROM rate_counters").fetchone()[0] > 0
        assert not (Path(app_config["data_dir"]) / FILE_NAME).exists()
    else:
        assert (Path(app_config["data_dir"]) / FILE_NAME).exists()
    for _ in range(4):
        assert login(client, password="nope").status_code == 401
    response = login(client)  # the eleventh attempt from this address, even with the right password
    assert response.status_code == 429
    assert not signed_in(client)


def test_hits_counted_at_once_by_threads_and_by_two_processes_are_all_counted(counters_at):
    counters = _counters(counters_at)
    child = subprocess.Popen([sys.executable, "-c", CHILD_HITS, counters_at, "400"], cwd=ROOT)

    def hit() -> None:
        for _ in range(100):
            counters.incr("shared", 3600)

    _in_threads(4, hit)
    assert child.wait(timeout=120) == 0
    assert counters.get("shared") == 800
    assert _counters(counters_at).get("shared") == 800, "a process starting later sees the same count"
    counters.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


def test_a_window_ends_and_a_new_one_starts_from_zero(counters_at, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rate_limits, "time", clock)
    counters = _counters(counters_at)
    assert [counters.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert counters.expires_at("k") == clock.now + 60
    clock.now += 59
    assert counters.incr("k", 60) == 4, "the window does not move with each hit"
    clock.now += 1
    assert counters.get("k") == 0 and counters.expires_at("k") == clock.now
    assert counters.incr("k", 60) == 1
    assert counters.expires_at("k") == clock.now + 60
    counters.clear("k")
    assert counters.get("k") == 0
    counters.incr("a", 60)
    counters.incr("b", 60)
    assert counters.reset() == 2
    counters.close()


@pytest.mark.server
def test_on_postgresql_many_threads_count_on_a_few_shared_connections(cluster):
    """Each connection is a server process, and the server admits only so many from every node: one
    per request thread ran `max_connections` out at about 90 agents on two web processes (#17)."""
    import psycopg

    from inbox.store.rate_limits import PG_CONNECTIONS
    from tests.pg_cluster import create_database, drop_database

    url = create_database(cluster)
    migrated = Store(url)
    migrated.migrate()
    migrated.close()
    counters = PgRateCounters(url)
    try:
        start = threading.Barrier(24)

        def hit() -> None:
            start.wait()
            for _ in range(25):
                counters.incr("busy", 3600)

        _in_threads(24, hit)
        assert counters.get("busy") == 600, "no hit lost"
        with psycopg.connect(url, autocommit=True) as conn:
            sessions = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND pid <> pg_backend_pid()").fetchall()
            assert 1 <= len(sessions) <= PG_CONNECTIONS, "24 threads counted on the process's few connections"
            for (pid,) in sessions:  # the server drops them (a failover, an administrator)
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        outcomes = []
        for _ in range(PG_CONNECTIONS + 1):
            try:
                outcomes.append(counters.incr("busy", 3600))
            except psycopg.OperationalError:
                outcomes.append("dropped")
        assert outcomes[-1] != "dropped", "a dropped connection is replaced, not handed out again"
        assert counters.get("busy") == 600 + len([o for o in outcomes if o != "dropped"])
    finally:
        counters.close()
        drop_database(url)
