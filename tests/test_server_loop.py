"""`mainland serve`'s waitress loop asks only the connections that changed (inbox/web/server_loop.py).

A real waitress server from `inbox.commands.running.create_server`'s helper on a loopback port,
with a small WSGI app: `/wait` blocks until the test releases it (a widget's long poll), `/quick`
answers at once, `/big` answers 8 MB (more than the socket takes at once, so output waits in
waitress's buffer for the loop to send). Nothing here waits a fixed time: each step waits for the
answer it needs (or a generous deadline).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from waitress import create_server

from inbox.web.server_loop import ChangedOnlyLoop, use_changed_only_loop

pytestmark = pytest.mark.server

BIG = 8 * 1024 * 1024
DEADLINE = 30.0


class App:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/wait":
            self.waiting.release()
            self.release.wait(DEADLINE)
            body = b"released"
        elif path == "/big":
            body = b"x" * BIG
        else:
            body = b"quick " + path.encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def served():
    app = App()
    server = create_server(app, host="127.0.0.1", port=0, threads=260, connection_limit=400,
                           channel_timeout=2, cleanup_interval=1, asyncore_use_poll=True)
    assert use_changed_only_loop(server)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield app, server
    app.release.set()
    server.close()
    server.task_dispatcher.shutdown(timeout=5)
    thread.join(timeout=DEADLINE)
    assert not thread.is_alive(), "the loop ends once its sockets are closed"


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.effective_port), timeout=DEADLINE)
    return sock


def _close(sock: socket.socket) -> None:
    reader = _readers.pop(id(sock), None)
    if reader is not None:
        reader.close()  # the file keeps the socket open otherwise
    sock.close()


def _request(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())


_readers: dict[int, object] = {}


def _response(sock: socket.socket) -> bytes:
    """The next whole response's body (Content-Length framed), read through one buffer per socket."""
    reader = _readers.setdefault(id(sock), sock.makefile("rb"))
    status = reader.readline()
    assert status.startswith(b"HTTP/1.1 200"), status
    length = None
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    assert length is not None, "a framed response"
    body = reader.read(length)
    assert len(body) == length, "the whole body"
    return body


def test_requests_are_answered_beside_hundreds_of_waiting_ones_without_asking_them_each_turn(served):
    app, server = served
    loop: ChangedOnlyLoop = server.asyncore
    waiting = [_connect(server) for _ in range(200)]
    for sock in waiting:
        _request(sock, "/wait")
    for _ in waiting:
        assert app.waiting.acquire(timeout=DEADLINE), "every long poll reached the app"
    turns, asked = loop.turns, loop.asked
    quick = _connect(server)
    for n in range(50):  # one keep-alive connection, one request after another
        _request(quick, f"/quick/{n}")
        assert _response(quick) == f"quick /quick/{n}".encode()
    turns, asked = loop.turns - turns, loop.asked - asked
    assert turns >= 50
    # waitress's own loop asked all ~200 open connections on every turn; this one the listener, the
    # trigger and the connections that changed: a handful a turn, whatever else is open.
    assert asked < 6 * turns, (asked, turns)
    app.release.set()
    for sock in waiting:
        assert _response(sock) == b"released", "a request ended in its thread reached its client"
        _close(sock)
    _close(quick)


def test_pipelined_requests_and_a_reply_bigger_than_the_socket_takes(served):
    app, server = served
    sock = _connect(server)
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\nGET /quick/after HTTP/1.1\r\nHost: test\r\n\r\n")
    # 8 MB is more than the socket takes at once: the rest waits in waitress's buffer, which only
    # the loop sends (polled for writing while the next request waits its turn).
    assert _response(sock) == b"x" * BIG
    assert _response(sock) == b"quick /quick/after"
    _close(sock)


def test_an_idle_connection_is_closed_by_waitress_maintenance(served):
    # Maintenance marks it for closing without any event on it: the loop must ask it again.
    app, server = served
    sock = _connect(server)
    _request(sock, "/quick/once")
    assert _response(sock) == b"quick /quick/once"
    sock.settimeout(DEADLINE)
    assert sock.recv(10) == b"", "closed after channel_timeout (2 s) of idleness"
    _close(sock)


def test_a_client_that_goes_away_mid_request_leaves_the_server_serving(served):
    app, server = served
    gone = _connect(server)
    _request(gone, "/wait")
    assert app.waiting.acquire(timeout=DEADLINE)
    _close(gone)
    app.release.set()
    sock = _connect(server)
    _request(sock, "/quick/still")
    assert _response(sock) == b"quick /quick/still"
    _close(sock)
    loop: ChangedOnlyLoop = server.asyncore

    def settled() -> bool:  # the listener and the trigger; the loop forgets a closed socket a turn later
        return len(server._map) == 2 and set(loop.registered) <= set(server._map)

    deadline = time.monotonic() + DEADLINE
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server._map) == 2, "both connections closed"
    assert set(loop.registered) <= set(server._map), "no closed socket stays polled"
