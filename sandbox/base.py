"""The base of every loopback imitation of a channel's API.

An imitation is a small HTTP server on 127.0.0.1 that answers like the real API: the same paths,
field names, cursors, paging, status codes, error bodies and rate-limit headers, as documented
(shared/channels.md). It keeps state: what "customers" posted, and what we sent back. Tests,
benchmarks and the demo all drive the same imitations.

Faults are injected per request: `fail_next(status, body, headers)` answers the next matching
request with an error (a 429 with its rate-limit headers, a 500), `delay_next(seconds)` makes it
slow (a timeout), `drop_next()` closes the connection without an answer.

Subclasses declare routes with the `route` decorator:

    class TelegramImitation(Imitation):
        @route("GET", r"/bot(?P<token>[^/]+)/getUpdates")
        def get_updates(self, request, token):
            return 200, {"ok": True, "result": [...]}
"""

from __future__ import annotations

import http.server
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the imitation received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Fault:
    kind: str  # "fail", "delay" or "drop"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    path_prefix: str | None = None


def route(method: str, pattern: str) -> Callable:
    """Declare a handler for `method` requests whose path matches the regular expression `pattern`."""

    def mark(func: Callable) -> Callable:
        func._route = (method.upper(), re.compile(f"^{pattern}$"))
        return func

    return mark


Response = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that hung up before its answer (a test's timeout, a dropped connection) is no
        # error of the imitation's: a real API would not report it either.
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)


class Imitation:
    """A loopback server imitating one API. Start it, point a connector at `url`, stop it."""

    name = "imitation"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._routes = []
        for attr in dir(type(self)):
            func = getattr(type(self), attr, None)
            if callable(func) and hasattr(func, "_route"):
                method, regex = func._route
                self._routes.append((method, regex, getattr(self, attr)))
        self._server = _Server((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> Imitation:
        # A short poll interval: stop() waits up to one interval, and tests start many imitations.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-imitation", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Imitation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Faults -------------------------------------------------------------------------------------

    def fail_next(self, status: int, body: Any = None, headers: dict[str, str] | None = None, *,
                  times: int = 1, path_prefix: str | None = None) -> None:
        """Answer the next `times` matching requests with `status` (and `body`, `headers`)."""
        with self.lock:
            self.faults += [Fault("fail", status, body, dict(headers or {}), path_prefix=path_prefix)] * times

    def delay_next(self, seconds: float, *, path_prefix: str | None = None) -> None:
        with self.lock:
            self.faults.append(Fault("delay", seconds=seconds, path_prefix=path_prefix))

    def drop_next(self, *, path_prefix: str | None = None) -> None:
        with self.lock:
            self.faults.append(Fault("drop", path_prefix=path_prefix))

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if fault.path_prefix is None or path.startswith(fault.path_prefix):
                    return self.faults.pop(index)
        return None

    def requests_to(self, pattern: str) -> list[Request]:
        regex = re.compile(pattern)
        with self.lock:
            return [r for r in self.requests if regex.search(r.path)]

    # Dispatch -----------------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response | None:
        for method, regex, handler in self._routes:
            if method != request.method:
                continue
            match = regex.match(request.path)
            if match:
                return handler(request, **match.groupdict())
        return None

    def not_found(self, request: Request) -> Response:
        return 404, {"error": f"no route {request.method} {request.path}"}

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        imitation = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                                  {k: v for k, v in self.headers.items()}, body)
                with imitation.lock:
                    imitation.requests.append(request)
                fault = imitation._take_fault(split.path)
                if fault and fault.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault and fault.kind == "delay":
                    time.sleep(fault.seconds)
                if fault and fault.kind == "fail":
                    self._send(fault.status, fault.body if fault.body is not None else {"error": "injected"},
                               fault.headers)
                    return
                try:
                    answer = imitation.dispatch(request) or imitation.not_found(request)
                except Exception as exc:  # an imitation bug must show up as a 500, not a hang
                    answer = (500, {"error": f"imitation error: {exc!r}"})
                status, payload, *rest = answer
                self._send(status, payload, rest[0] if rest else {})

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                if isinstance(payload, bytes):
                    data, ctype = payload, headers.get("Content-Type", "application/octet-stream")
                elif isinstance(payload, str):
                    data, ctype = payload.encode(), headers.get("Content-Type", "text/plain; charset=utf-8")
                else:
                    data, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for key, value in headers.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
