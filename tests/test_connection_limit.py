"""A web process opens at most `web.database_connections` at once, and open live pages hold none
while they wait (inbox/web/request_store.py, inbox/web/live.py; #17).

On PostgreSQL each connection is a server process and the server admits only `max_connections`
(100 by default) from every node together: before this, each open live tab held a connection of its
own for its whole life, and `bench/load.py --engine postgresql --web-processes 2 --agents 100` failed
at the 92nd agent ("too many clients"). Waits are for events, each bounded by a timeout.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from inbox.storage_errors import ConnectionsBusy
from inbox.store.base import is_postgresql_url
from inbox.web import live
from inbox.web.request_store import StorePool, connection_limit, pool_of
from tests.test_live_threads import signed_in
from tests.test_web_auth import login, make_agent

#: Only a broken pool or stream reaches it.
PATIENCE = 30.0


def test_a_request_that_finds_every_connection_busy_waits_for_the_next_one_given_back(app):
    pool = StorePool(app.extensions["mainland"], limit=2, wait_seconds=PATIENCE)
    first, second = pool.take(), pool.take()
    taken: list = []
    waiting = threading.Thread(target=lambda: taken.append(pool.take()))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and not taken, "a third connection was opened past the limit"
    pool.give(first)
    waiting.join(PATIENCE)
    assert taken == [first], "the waiting request got the connection given back"
    assert pool.open == 2
    for store in (second, first):
        pool.give(store)
    pool.close()
    assert pool.open == 0


def test_a_connection_that_fails_to_open_does_not_count_against_the_limit(app, monkeypatch):
    mainland = app.extensions["mainland"]
    pool = StorePool(mainland, limit=1, wait_seconds=0.1)
    opener = mainland.open_store
    monkeypatch.setattr(mainland, "open_store", lambda **kw: (_ for _ in ()).throw(OSError("refused")))
    with pytest.raises(OSError):
        pool.take()
    monkeypatch.setattr(mainland, "open_store", opener)
    with pool.lent() as store:
        assert store.agents() is not None
    pool.close()


def test_past_the_wait_the_agent_gets_a_busy_page_that_says_to_try_again(app, client):
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    store.close()
    login(client)
    pool = pool_of(app)
    pool.close()
    pool.limit, pool._wait_seconds = 1, 0.1
    held = pool.take()  # every connection this process may open is busy
    try:
        response = client.get("/")
        json_answer = client.get("/", headers={"Accept": "application/json"})
    finally:
        pool.give(held)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "try again" in response.get_data(as_text=True).lower()
    assert json_answer.status_code == 503 and json_answer.get_json()["ok"] is False
    assert client.get("/").status_code == 200, "the connection given back serves the next request"


def test_the_limit_is_the_config_s_else_sixteen_on_postgresql_and_none_on_sqlite(app):
    mainland = app.extensions["mainland"]
    expected = 16 if is_postgresql_url(mainland.config.database) else None
    assert connection_limit(mainland) == expected
    mainland.config.extra["web"] = {**(mainland.config.extra.get("web") or {}), "database_connections": 5}
    assert connection_limit(mainland) == 5


def test_connections_busy_is_a_storage_failure_the_operator_reads_as_busy():
    from inbox import storage_errors

    assert storage_errors.kind(ConnectionsBusy("all 16 stayed busy")) == storage_errors.LOCKED


def told(lines) -> tuple[str, dict]:
    """The next event of a stream but `counts` and heartbeats, and its data, read as they arrive."""
    event = next(line for line in lines
                 if line.startswith("event:") and line not in ("event: counts", "event: heartbeat"))
    return event, json.loads(next(line for line in lines if line.startswith("data:"))[5:])


@pytest.mark.server
def test_open_live_pages_share_the_process_s_few_connections_and_are_still_told_at_once(app, app_config):
    """Three open streams and the pages beside them, on a process that may open two connections."""
    import inbox.cli  # noqa: F401  (loads the commands in their order)
    from inbox.attachments import AttachmentStore
    from inbox.commands.running import create_server
    from inbox.ingest import Ingestor
    from inbox.store import Store
    from tests.inbound import ingest_raw
    from tests.mailfactory import raw_mail

    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    store.close()
    # Another process's writer: its own Store, not through the app.
    writer = Store(mainland.config.database)
    ingestor = Ingestor(writer, AttachmentStore(mainland.config.attachments_dir), instance_id="t")
    app.config.update(LIVE_STREAMS=3, LIVE_POLL_SECONDS=0.2, LIVE_HEARTBEAT_SECONDS=0.3, LIVE_MAX_SECONDS=120)
    pool = pool_of(app)
    pool.close()
    pool.limit = 2
    slots_before = live._slots.active
    opened: list[int] = []
    opener = mainland.open_store

    def counted(**kw):
        opened.append(1)
        return opener(**kw)

    mainland.open_store = counted
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    try:
        session = signed_in(base)
        streams = [session.get(f"{base}/events", stream=True, timeout=PATIENCE) for _ in range(3)]
        readers = [stream.iter_lines(decode_unicode=True) for stream in streams]
        assert [told(lines)[1]["mode"] for lines in readers] == ["stream"] * 3
        for page in ("/", "/notifications", "/"):
            assert session.get(f"{base}{page}", timeout=PATIENCE).status_code == 200, f"{page} answered meanwhile"
        ingest_raw(ingestor, raw_mail(subject="Where is my parcel?", message_id="<parcel@example.net>"))
        for lines in readers:
            event, data = told(lines)
            assert event == "event: conversation.new" and data["subject"] == "Where is my parcel?"
        for stream in streams:
            stream.close()
        # A closed tab's stream ends at its next write (a heartbeat here) and gives its slot back, so
        # the process's later streams are not turned into polls.
        deadline = time.monotonic() + PATIENCE
        while live._slots.active > slots_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live._slots.active == slots_before
    finally:
        server.close()
        thread.join(timeout=5)
        mainland.open_store = opener
        writer.close()
    assert 1 <= len(opened) <= 2, "three open streams and their pages used at most the two connections allowed"
