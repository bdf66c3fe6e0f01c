"""Each request's database connection comes from its app's pool of idle ones (inbox/web/request_store.py).

Opening a connection costs SQLite a read of the whole schema; reusing one must never hand a request
an old view of the data or another request's unfinished transaction.
"""

from __future__ import annotations

from inbox.web import request_store
from inbox.web.request_store import pool_of
from tests.test_web_auth import login, make_agent


def opened(app, monkeypatch) -> list[int]:
    """Counts the connections the app opens from now on."""
    calls: list[int] = []
    mainland = app.extensions["mainland"]
    open_store = mainland.open_store
    monkeypatch.setattr(mainland, "open_store", lambda **kw: calls.append(1) or open_store(**kw))
    return calls


def test_requests_one_after_another_reuse_one_connection(app, client, monkeypatch):
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    store.close()
    assert login(client).status_code == 302
    calls = opened(app, monkeypatch)
    for _ in range(5):
        assert client.get("/").status_code == 200
    assert len(calls) <= 1


def test_a_reused_connection_sees_what_another_process_wrote_since(app):
    with app.test_request_context():
        first = request_store.get_store()
        assert "Bob Builder" not in [a["name"] for a in first.agents()]
    other = app.extensions["mainland"].open_store()  # another connection, as another process
    make_agent(other, email="bob@example.org", name="Bob Builder")
    other.close()
    with app.test_request_context():
        again = request_store.get_store()
        assert again is first, "the idle connection was reused"
        assert "Bob Builder" in [a["name"] for a in again.agents()]


def test_a_connection_left_inside_a_transaction_is_rolled_back_and_never_reused(app):
    pool = pool_of(app)
    with app.test_request_context():
        store = request_store.get_store()
        store._begin_write()  # as Store.write() begins, on either engine
        make_agent(store, email="half@example.org", name="Half Written")
    # The request ended inside its transaction: its writes are gone, the write lock is free, and the
    # next request gets another connection.
    with app.test_request_context():
        again = request_store.get_store()
        assert again is not store
        assert not any(a["email"] == "half@example.org" for a in again.agents())
        with again.write():
            make_agent(again, email="next@example.org")
    assert pool._idle and pool._idle[-1] is again
