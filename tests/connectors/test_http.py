"""The API client reads every channel's rate-limit signal and types errors by what to do next."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest

from connectors._http import Http, Unreachable, retry_after_seconds
from connectors.base import PermanentError, RetryableError

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
