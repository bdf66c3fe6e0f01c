"""Live streams never starve the pages under `mainland serve`'s waitress server (issue #16).

The server is `inbox.commands.running.create_server`, the one `serve` runs, on a loopback port.
Waits are for events (a line of the stream, an answer), each bounded by a timeout.
"""

from __future__ import annotations

import heapq
import json
import re
import socket
import threading

import pytest
import requests

import inbox.cli  # noqa: F401  (loads the commands in their order: running.py is imported through it)
from inbox.commands.running import CONNECTION_LIMIT, create_server
from tests.test_web_auth import PASSWORD, make_agent

pytestmark = pytest.mark.server

#: Page threads of the server under test: fewer than the streams it lets run.
PAGE_THREADS = 2
STREAMS = 3


@pytest.fixture
def app_config(app_config):
    app_config["web"] = {**app_config["web"], "live_streams": STREAMS}
    return app_config


@pytest.fixture
def served(app):
    app.config.update(LIVE_POLL_SECONDS=0.1, LIVE_HEARTBEAT_SECONDS=0.3, LIVE_MAX_SECONDS=60)
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    store.close()
    server = create_server(app, host="127.0.0.1", port=0, threads=PAGE_THREADS)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(timeout=5)


def signed_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert session.post(f"{base}/login", data={"email": "ann@example.org", "password": PASSWORD,
                                               "csrf_token": token}, timeout=10).ok
    return session


def hello(response: requests.Response) -> dict:
    """The stream's first event (`hello`), read as it arrives."""
    lines = response.iter_lines(decode_unicode=True)
    data = next(line for line in lines if line.startswith("data:"))
    return json.loads(data[5:])


def test_pages_answer_while_more_tabs_are_open_than_streams_may_run(served):
    # More streams than page threads: each has a thread of its own, so the pages keep theirs.
    session = signed_in(served)
    streams = [session.get(f"{served}/events", stream=True, timeout=10) for _ in range(STREAMS)]
    try:
        assert [hello(s)["mode"] for s in streams] == ["stream"] * STREAMS
        extra = session.get(f"{served}/events", timeout=10)
        assert extra.status_code == 200 and '"mode":"poll"' in extra.text, "past the limit a tab polls"
        for page in ("/", "/notifications", "/"):
            assert session.get(f"{served}{page}", timeout=10).status_code == 200, f"{page} answered meanwhile"
    finally:
        for stream in streams:
            stream.close()


def test_pages_answer_with_more_connections_open_than_waitress_allows_by_default(served):
    # Idle tabs keep connections open (waitress's own default stops accepting at 100).
    idle = []
    try:
        host, port = served.removeprefix("http://").split(":")
        for _ in range(CONNECTION_LIMIT // 4 + 110):
            idle.append(socket.create_connection((host, int(port)), timeout=10))
        assert requests.get(f"{served}/login", timeout=10).status_code == 200
    finally:
        for connection in idle:
            connection.close()



def polling(tabs: int, seconds: float) -> tuple[list[float], list[int]]:
    """`tabs` EventSources in poll mode, each asking again when its answer's `retry:` says (a simulated
    clock): when each asked, and the wait it was given."""
    from inbox.web.live import POLL_RETRY_MS, _PollPace

    pace = _PollPace()
    due = [(tab * POLL_RETRY_MS / 1000 / tabs, tab) for tab in range(tabs)]  # first asks spread over 5 s
    heapq.heapify(due)
    asked, waits = [], []
    while due[0][0] < seconds:
        now, tab = heapq.heappop(due)
        wait = pace.next_retry_ms(now)
        asked.append(now)
        waits.append(wait)
        heapq.heappush(due, (now + wait / 1000, tab))
    return asked, waits


def test_a_few_polling_tabs_ask_every_five_seconds():
    from inbox.web.live import POLL_RETRY_MS

    assert set(polling(20, 120)[1]) == {POLL_RETRY_MS}


def test_many_polling_tabs_wait_longer_so_that_together_they_ask_at_most_the_budget():
    from inbox.web.live import MAX_POLL_RETRY_MS, POLL_RETRY_MS, POLLS_PER_SECOND

    asked, waits = polling(200, 300)
    last_minute = [at for at in asked if at >= 240]
    assert len(last_minute) / 60 <= POLLS_PER_SECOND * 1.1
    assert POLL_RETRY_MS < waits[-1] <= MAX_POLL_RETRY_MS
    # Past what the longest wait allows, they still ask: at most a wait of MAX_POLL_RETRY_MS, never silence.
    asked, waits = polling(600, 200)
    assert max(waits) == MAX_POLL_RETRY_MS and len([at for at in asked if at >= 140]) / 60 >= 600 / 30 * 0.9


def test_a_change_written_in_this_process_reaches_an_open_stream_before_its_next_look(app, served):
    # The stream looks at the database once an hour here: only the write's own wake-up can tell the
    # second conversation (a visitor's chat message must reach the agents' pages at once, bench/chat_load.py).
    from inbox.attachments import AttachmentStore
    from inbox.ingest import Ingestor
    from tests.inbound import ingest_raw
    from tests.mailfactory import raw_mail

    app.config.update(LIVE_POLL_SECONDS=3600, LIVE_HEARTBEAT_SECONDS=3600)
    store = app.extensions["mainland"].open_store()
    ingestor = Ingestor(store, AttachmentStore(app.extensions["mainland"].config.attachments_dir), instance_id="t")
    session = signed_in(served)
    try:
        ingest_raw(ingestor, raw_mail(subject="Before the stream"))

        def told(lines) -> tuple[str, dict]:
            event = next(line for line in lines if line.startswith("event:") and line != "event: counts")
            return event, json.loads(next(line for line in lines if line.startswith("data:"))[5:])

        # since=0: the stream's first look tells the earlier conversation, so it has looked once and waits.
        with session.get(f"{served}/events?since=0", stream=True, timeout=30) as stream:
            lines = stream.iter_lines(decode_unicode=True)
            assert told(lines)[1]["mode"] == "stream"
            assert told(lines)[1]["subject"] == "Before the stream"
            ingest_raw(ingestor, raw_mail(subject="Where is my parcel?", message_id="<parcel@example.net>"))
            event, data = told(lines)
    finally:
        store.close()
    assert event == "event: conversation.new" and data["subject"] == "Where is my parcel?"
