"""The API client reads every channel's rate-limit signal and types errors by what to do next."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest

from connectors._http import Http, Unreachable, retry_after_seconds
from connectors.base import Connector, PermanentError, RetryableError, Setting, UncertainError
from connectors.http import FetchRefused, http_for, safe_fetch

pytestmark = pytest.mark.server  # answers from a loopback HTTP server

NOW = dt.datetime(2026, 3, 5, 10, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Retry-After": "120"}, 120),
    ({"Retry-After": "Thu, 05 Mar 2026 10:01:00 GMT"}, 60),
    ({"x-rate-limit-reset": str(int(NOW.timestamp()) + 900)}, 900),          # X: epoch seconds
    ({"X-RateLimit-Reset": "2026-03-05T10:05:00.000Z"}, 300),                # Mastodon: ISO 8601
    ({"ratelimit-reset": str(int(NOW.timestamp()) + 30)}, 30),               # Bluesky: epoch seconds
    ({}, None),
])
def test_retry_after_from_each_channels_header(headers, expected):
    assert retry_after_seconds(headers, now=NOW) == expected


class _Api(http.server.BaseHTTPRequestHandler):
    answer: tuple = (200, {}, {})

    def do_GET(self):  # noqa: N802
        status, headers, body = _Api.answer
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield Http(f"http://127.0.0.1:{srv.server_address[1]}", redact=lambda t: t.replace("tok-SECRET", "***"))
    srv.shutdown()


def test_ok_answer_is_json(api):
    _Api.answer = (200, {}, {"ok": True})
    assert api.get_json("/x") == {"ok": True}


def test_429_is_retryable_with_the_channels_delay(api):
    _Api.answer = (429, {"Retry-After": "42"}, {"error": "slow down"})
    with pytest.raises(RetryableError) as raised:
        api.get_json("/x")
    assert raised.value.retry_after == 42


def test_5xx_is_retryable(api):
    _Api.answer = (503, {}, {})
    with pytest.raises(RetryableError):
        api.get_json("/x")


def test_401_is_permanent_with_the_apis_message_and_no_secret(api):
    _Api.answer = (401, {}, {"error": "invalid token tok-SECRET"})
    with pytest.raises(PermanentError) as raised:
        api.get_json("/bottok-SECRET/getUpdates")
    assert "invalid token" in str(raised.value)
    assert "tok-SECRET" not in str(raised.value)


def test_unreachable_is_retryable():
    with pytest.raises(RetryableError, match="cannot connect") as raised:
        Http("http://127.0.0.1:9", timeout=2).get_json("/x")
    # No answer at all, told apart from a timeout (the connection test words them differently).
    assert isinstance(raised.value, Unreachable) and not raised.value.timed_out


class _Listener:
    """A loopback server that reads one request and then hangs up or says nothing, as `mode` says."""

    def __init__(self, mode: str) -> None:
        import socket

        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.got = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        self.got.set()
        if self.mode == "silent":
            self.release.wait(10)
        conn.close()

    def close(self) -> None:
        self.release.set()
        self.sock.close()


@pytest.mark.parametrize("mode", ["hang_up", "silent"])
def test_a_write_that_got_no_answer_is_uncertain(mode):
    listener = _Listener(mode)
    try:
        with pytest.raises(UncertainError):
            Http(listener.url, timeout=0.5).request("POST", "/messages", json={"text": "hi"})
        assert listener.got.is_set(), "the request reached the server"
    finally:
        listener.close()


@pytest.mark.parametrize("mode", ["hang_up", "silent"])
def test_a_read_that_got_no_answer_is_simply_retryable(mode):
    listener = _Listener(mode)
    try:
        with pytest.raises(RetryableError) as caught:
            Http(listener.url, timeout=0.5).request("GET", "/updates")
        assert not isinstance(caught.value, UncertainError)
    finally:
        listener.close()


def test_a_write_that_could_not_connect_is_certain_not_sent():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RetryableError) as caught:
        Http(f"http://127.0.0.1:{port}", timeout=2).request("POST", "/messages", json={})
    assert not isinstance(caught.value, UncertainError)


# The public helper (connectors/http.py) -----------------------------------------------------------

class _SecretApi(Connector):
    """An outside connector with a secret token and a timeout setting, as `http_for` reads them."""

    kind = "http-helper-test"
    display_name = "Helper test"
    settings = (Setting("token", required=True, secret=True, help="API token"),
                Setting("timeout", default=7, help="Seconds"))

    def fetch(self, cursor):
        raise NotImplementedError

    def send(self, reply):
        raise NotImplementedError


@pytest.fixture
def api_url():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_the_public_helper_redacts_the_connectors_secrets_and_uses_its_timeout(api_url):
    connector = _SecretApi("helper", {"token": "tok-PUBLIC-SECRET"})
    client = http_for(connector, api_url)
    assert client.timeout == 7
    _Api.answer = (403, {}, {"message": "token tok-PUBLIC-SECRET is revoked"})
    with pytest.raises(PermanentError) as raised:
        client.get_json("/me")
    assert "revoked" in str(raised.value) and "tok-PUBLIC-SECRET" not in str(raised.value)
    _Api.answer = (429, {"ratelimit-reset": "12"}, {})
    with pytest.raises(RetryableError) as limited:
        client.get_json("/me")
    assert limited.value.retry_after == 12
    client.close()


def test_the_public_helper_refuses_private_addresses():
    with pytest.raises(FetchRefused, match="non-public address"):
        safe_fetch("http://127.0.0.1/media.jpg", max_bytes=1024)
