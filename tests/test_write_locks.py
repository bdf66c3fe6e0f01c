"""Every write transaction's hold on SQLite's write lock is measured (#16: none over one second):
the longest and the slow ones are kept per process, logged with the code that held the lock, and
shown on /-/health to signed-in agents."""

from __future__ import annotations

import logging
import types

import pytest

import inbox.store as store_module
from inbox.store import write_locks
from tests.test_web_auth import login, make_agent


class SteppedClock:
    """perf_counter for the store: each reading is `step` seconds after the one before."""

    def __init__(self, step: float) -> None:
        self.step, self.now = step, 1000.0

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture(autouse=True)
def _fresh_figures():
    write_locks.reset()
    yield
    write_locks.reset()


def _hold_the_lock_in_a_slow_piece_of_code(store) -> None:
    with store.write():
        store.execute("CREATE TABLE IF NOT EXISTS scratch (x INTEGER)")


def test_a_slow_write_transaction_is_counted_and_logged_with_its_holder(store, monkeypatch, caplog):
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(perf_counter=SteppedClock(0.002).perf_counter))
    with store.write():
        store.execute("CREATE TABLE IF NOT EXISTS quick (x INTEGER)")
    assert write_locks.figures()["slow"] == 0 and write_locks.figures()["max_ms"] == pytest.approx(2.0)

    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(perf_counter=SteppedClock(1.5).perf_counter))
    with caplog.at_level(logging.WARNING, logger="mainland.store"):
        _hold_the_lock_in_a_slow_piece_of_code(store)
    figures = write_locks.figures()
    assert figures["transactions"] == 2 and figures["slow"] == 1 and figures["max_ms"] == pytest.approx(1500.0)
    assert "_hold_the_lock_in_a_slow_piece_of_code" in figures["max_at"]
    assert "held the database's write lock for 1.5 s" in caplog.text
    assert "_hold_the_lock_in_a_slow_piece_of_code" in caplog.text


def test_a_rolled_back_transaction_counts_too_and_a_nested_one_once(store):
    with pytest.raises(RuntimeError), store.write():
        with store.write():  # joins the outer transaction: one hold, not two
            store.execute("CREATE TABLE IF NOT EXISTS scratch (x INTEGER)")
        raise RuntimeError("the caller gave up")
    assert write_locks.figures()["transactions"] == 1


def test_health_shows_the_figures_to_agents_only(app, client):
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    store.close()
    assert "write_lock" not in client.get("/-/health").json
    login(client)
    shown = client.get("/-/health").json["write_lock"]
    assert shown["transactions"] >= 1 and set(shown) == {"transactions", "slow", "max_ms", "max_at"}


def test_this_process_writers_take_turns_instead_of_meeting_sqlites_lock(store):
    # SQLite's own wait sleeps and retries (up to 100 ms apart); within one process the writers queue
    # on `write_locks.turn` and each starts as soon as the one before committed. With SQLite's wait
    # switched off, any writer that met another's lock would fail with "database is locked".
    import threading

    from inbox.store import Store

    if store.engine != "sqlite":
        pytest.skip("SQLite's own lock wait; PostgreSQL's writers queue on its advisory lock (test_pg_connection)")
    store.execute("CREATE TABLE turns (key TEXT)")
    stores = [Store(store.path, check=False) for _ in range(4)]
    for each in stores:
        each.conn.execute("PRAGMA busy_timeout = 0")
    start, failures = threading.Barrier(len(stores)), []

    def write(each: Store, n: int) -> None:
        start.wait()
        for i in range(25):
            try:
                with each.write():
                    each.execute("INSERT INTO turns (key) VALUES (?)", (f"turn-{n}-{i}",))
            except Exception as exc:  # noqa: BLE001 - the failure is the finding
                failures.append(exc)

    threads = [threading.Thread(target=write, args=(each, n)) for n, each in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for each in stores:
        each.close()
    assert failures == []
    assert store.execute("SELECT count(DISTINCT key) FROM turns").fetchone()[0] == 100
