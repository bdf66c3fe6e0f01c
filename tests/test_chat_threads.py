"""Open chat widgets never starve the pages under `mainland serve`'s waitress server (issue #18).

The server is `inbox.commands.running.create_server`, the one `serve` runs, on a loopback port. Each
widget's long poll is a real HTTP request held by the server; waits are for events (the polls held,
an answer), each bounded by a timeout.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

import inbox.cli  # noqa: F401  (loads the commands in their order: running.py is imported through it)
from inbox.commands.running import CONNECTION_LIMIT, create_server
from inbox.web import chat as chat_web
from tests.test_chat import ALLOWED, visitor

pytestmark = pytest.mark.server

#: Page threads of the server under test: fewer than the widgets that wait at once.
PAGE_THREADS = 2
WAITS = 6
HELD = 10  # seconds a test waits at most for polls to be held or answered


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {"site": {"kind": "chat", "allowed_origins": [ALLOWED]}}
    app_config["web"] = {**app_config["web"], "live_streams": 1, "chat_waits": WAITS}
    return app_config


def serving(app):
    server = create_server(app, host="127.0.0.1", port=0, threads=PAGE_THREADS)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def served(app):
    app.config.update(CHAT_CHECK_SECONDS=3600)  # a held poll answers when woken, or at the end of its wait
    server, thread = serving(app)
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(timeout=5)


def widget_headers(token: str, since: str | None = None) -> dict[str, str]:
    return {"X-Mainland-Visitor": token, "Origin": ALLOWED, **({"X-Mainland-Since": since} if since else {})}


class Widget(threading.Thread):
    """One open widget's long poll, over HTTP."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base, self.token = base, token
        self.version = requests.get(f"{base}/chat/site/messages", headers=widget_headers(token), timeout=HELD
                                    ).json()["version"]
        self.answer: dict | None = None
        self.failure: Exception | None = None

    def run(self) -> None:
        # Kept, not raised: a poll still held when its test ends is cut by the server's closing, and
        # that must not surface as a thread's exception in whichever test runs next.
        try:
            self.answer = requests.get(f"{self.base}/chat/site/messages?wait=25",
                                       headers=widget_headers(self.token, self.version), timeout=60).json()
        except (requests.RequestException, ValueError) as failure:
            self.failure = failure

    def answered(self) -> dict:
        self.join(HELD)
        assert not self.is_alive(), "the long poll was not answered"
        assert self.failure is None, f"the long poll failed: {self.failure!r}"
        return self.answer


def test_pages_answer_while_more_widgets_wait_than_there_are_page_threads(app, served):
    widgets = [Widget(served, visitor()) for _ in range(WAITS)]
    for widget in widgets:
        widget.start()
    assert chat_web.waits_of(app).wait_until(WAITS, HELD), "every open widget's poll is held"
    assert requests.get(f"{served}/login", timeout=HELD).status_code == 200, "a page answered meanwhile"
    past_the_cap = Widget(served, visitor())
    past_the_cap.start()
    assert past_the_cap.answered()["busy"] is True, "past web.chat_waits a widget is told to back off"
    first = widgets[0]
    sent = requests.post(f"{served}/chat/site/messages", json={"client_id": "6f1c1c0e-4e0b-4a57-9d61-0b8f5d8a3b10",
                                                                "text": "Hello?"},
                         headers=widget_headers(first.token), timeout=HELD)
    assert sent.status_code == 200
    assert [m["text"] for m in first.answered()["messages"]] == ["Hello?"]


def test_by_default_serve_holds_five_hundred_widgets_with_their_connections(app_config):
    from inbox import create_app

    del app_config["web"]["chat_waits"]
    app = create_app(app_config)
    server, thread = serving(app)
    try:
        assert app.config["CHAT_WAITS"] == chat_web.SERVED_WAITS == 500
        assert server.adj.threads == PAGE_THREADS + 1 + 500  # pages, the one live stream, the widgets' waits
        # Each widget's browser may keep a second connection for its posts beside the waiting one.
        assert server.adj.connection_limit == CONNECTION_LIMIT + 1 + 2 * 500
    finally:
        server.close()
        thread.join(timeout=5)


def test_behind_a_trusted_proxy_each_visitor_has_their_own_address_for_the_limits(app_config):
    # waitress drops X-Forwarded-For from every request unless told otherwise: behind a proxy every
    # visitor shared the proxy's address, and the chat's per-address limit, for the whole site.
    from inbox import create_app

    app_config["web"] = {**app_config["web"], "trusted_proxies": 1}
    app_config["channels"]["site"]["per_ip_per_hour"] = 2
    app = create_app(app_config)
    server, thread = serving(app)
    base = f"http://127.0.0.1:{server.effective_port}"
    try:
        def post_from(address: str) -> int:
            return requests.post(f"{base}/chat/site/messages", json={"client_id": str(uuid.uuid4()), "text": "Hi"},
                                 headers={**widget_headers(visitor()), "X-Forwarded-For": address},
                                 timeout=HELD).status_code

        assert [post_from(f"203.0.113.{n}") for n in range(1, 5)] == [200] * 4, "four visitors, four addresses"
        assert [post_from("198.51.100.7") for _ in range(3)] == [200, 200, 429], "one address: its own limit"
    finally:
        server.close()
        thread.join(timeout=5)
