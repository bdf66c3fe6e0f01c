"""On PostgreSQL, live pages hear of other processes' changes as they commit (#17: several web
processes and machines; the rate limits they share: tests/test_rate_limits_shared.py).

On a real throwaway cluster (tests/pg_cluster.py). The "other process" is a second Store on the
same database: nothing of it reaches the listening side but what PostgreSQL tells (its commits run
no hook of the `_LocalChanges` under test). Waits are for events, with generous limits that only
a broken listener reaches.
"""

from __future__ import annotations

import threading

import pytest

from inbox.store import Store
from inbox.store.pg_notify import ChangeListener
from inbox.web.live import _LocalChanges
from tests.pg_cluster import create_database, drop_database

pytestmark = pytest.mark.server

NOW = "2026-03-02T09:00:00.000000Z"
#: Only a listener that never hears reaches it.
PATIENCE = 60.0


@pytest.fixture
def url(cluster):
    url = create_database(cluster)
    store = Store(url)
    store.migrate()
    store.close()
    yield url
    drop_database(url)


def _new_conversation(store: Store, token: str) -> int:
    with store.write():
        customer = store.create_customer("Ann", NOW)
        return store.create_conversation(token=token, customer_id=customer, channel="mail", thread_key=token,
                                         subject="Parcel", public=False, automatic=False, flags="", now=NOW)


def test_a_change_another_process_commits_wakes_this_process_s_live_pages(url):
    changes = _LocalChanges()
    here, other, third = Store(url), Store(url), Store(url)
    try:
        with changes.following(str(here.path), here.url), changes.following(str(third.path), third.url):
            [(listener, streams)] = changes._followed.values()
            assert streams == 2, "the process's streams of one database share one session"
            assert listener.listening.wait(PATIENCE)
            before = here.change_watermark()
            woke = threading.Event()

            def page() -> None:
                with changes.listening() as wait:
                    wait(str(here.path), before, PATIENCE)
                woke.set()

            waiting = threading.Thread(target=page)
            waiting.start()
            _new_conversation(other, "a")
            assert woke.wait(PATIENCE), "the page was never told"
            waiting.join()
            assert changes.latest(str(here.path)) == other.change_watermark() > before
        assert changes._followed == {}
        listener._thread.join(PATIENCE)
        assert not listener._thread.is_alive(), "the session ends with the last stream"
    finally:
        for store in (here, other, third):
            store.close()


def test_one_transaction_that_changes_many_conversations_tells_once_with_the_newest_number(url):
    store = Store(url)
    heard: list[int] = []
    told = threading.Event()
    listener = ChangeListener(store.url, lambda seq: (heard.append(seq), told.set())).start()
    try:
        assert listener.listening.wait(PATIENCE)
        with store.write():  # an import: three conversations, each with its own row triggers
            ids = [_new_conversation(store, token) for token in "abc"]
            store.conn.execute("UPDATE conversations SET status = 'open' WHERE id IN (?, ?, ?)", ids)
        assert told.wait(PATIENCE)
        _new_conversation(store, "d")  # a later transaction's notice comes after the first one's
        while heard[-1] != store.change_watermark():
            assert told.wait(PATIENCE)
            told.clear()
        assert heard == [store.change_watermark() - 1, store.change_watermark()]
    finally:
        listener.stop()
        store.close()


def test_a_listener_whose_session_is_cut_listens_again(url, monkeypatch):
    import psycopg

    from inbox.store import pg_notify

    monkeypatch.setattr(pg_notify, "MAX_BACKOFF_SECONDS", 0.1)
    store = Store(url)
    heard = threading.Event()
    listener = ChangeListener(store.url, lambda seq: heard.set()).start()
    try:
        assert listener.listening.wait(PATIENCE)
        listener.listening.clear()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE query LIKE 'LISTEN%' AND pid != pg_backend_pid()")
        assert listener.listening.wait(PATIENCE), "the listener never came back"
        _new_conversation(store, "after")
        assert heard.wait(PATIENCE)
    finally:
        listener.stop()
        store.close()
