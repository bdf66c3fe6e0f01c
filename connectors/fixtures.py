"""Fixture mode of the contract kit: recorded HTTP exchanges served on a loopback port.

A connector for a new channel needs no hand-written imitation of the channel's API: its test can
replay a folder of recorded request/response pairs instead (the imitations in `sandbox/` stay for
the demo). Each `*.json` file in the folder holds one exchange, or a list of them:

    {
      "note": "first page: two customers wrote",             (optional: why this exchange is here)
      "request": {
        "method": "GET",
        "path": "/v1/messages",
        "query": {"after": "0", "page": null},              (optional; null: must be absent)
        "headers": {"Authorization": "Bearer {{token}}"},    (optional; names ignore case)
        "json": {"chat": "c1"}                               (optional; or "form": {...}, or "body": "...")
      },
      "response": {
        "status": 200,
        "headers": {"Retry-After": "30"},                    (optional)
        "json": {"messages": [...], "more": false}           (or "body": "text")
      },
      "repeat": false                                        (optional; see "Sequences")
    }

**Matching.** A request matches an exchange when method and path are equal and every part the
recording names agrees: each named query parameter and header has the recorded value (a `null`
query value or JSON member means "absent"), `json` is matched as a subset (named members must
agree, recursively; lists agree element by element and in length), `form` names form fields,
`body` is the exact body text. What the recording does not name is free, so a recording says
only what matters.

**Placeholders.** `{{name}}` in any string is replaced by the variable `name`: the kit passes the
connector's settings (so a recording carries `{{token}}`, never a real secret) and `fixture_url`,
the server's own address (for links the API hands out). An unknown name stops the server at its
start with an error that names the file.

**Sequences.** Files are read in name order (`01-...json`, `02-...json`), a list in list order.
Each exchange answers once: when several match a request, the first one not yet used answers, so
the same request can get a page and then an empty page, or a 429 and then a 200. An exchange
with `"repeat": true` keeps answering once its turn has come and the ones before it are used.

**Nothing silent.** A request that no unused exchange matches gets `501` with a JSON body naming
the request and the closest recordings with what differs. The server keeps every request it got
(`requests`, `received()`), which exchange answered it, and `problems()` lists what went wrong:
unmatched requests and recordings never used (`required=False` folders, such as exchanges shared
by every test, may go unused).
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Exchange", "FixtureError", "FixtureServer", "Received", "load_exchanges"]

#: The status of an answer no recording gives: "Not Implemented" by the recordings.
UNMATCHED_STATUS = 501
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_REQUEST_KEYS = frozenset({"method", "path", "query", "headers", "json", "form", "body"})
_RESPONSE_KEYS = frozenset({"status", "headers", "json", "body"})


class FixtureError(Exception):
    """A recording that cannot be used as written (bad JSON, a missing field, an unknown placeholder)."""


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the answer to give it; `source` names the file (and list index)."""

    source: str
    request: Mapping[str, Any]
    response: Mapping[str, Any]
    repeat: bool = False
    required: bool = True
    note: str = ""

    def describe(self) -> str:
        method, path = self.request.get("method", "?"), self.request.get("path", "?")
        return f"{self.source} ({method} {path})"


@dataclass
class Received:
    """One request as the fixture server got it, and the exchange that answered it (None: unmatched)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    answered_by: str | None = None
    #: When no recording answered: why not, naming the closest recording and what differs.
    unanswered_because: str = ""

    def json(self) -> Any:
        """The body read as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def summary(self) -> dict[str, Any]:
        text = self.body.decode("utf-8", "replace")
        return {"method": self.method, "path": self.path, "query": self.query,
                "body": text if len(text) <= 500 else text[:500] + "..."}


def load_exchanges(folder: Path, *, required: bool = True) -> list[Exchange]:
    """Every exchange recorded in `folder`'s `*.json` files, in file-name order ([] when it is missing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    exchanges: list[Exchange] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise FixtureError(f"{path}: not JSON ({exc})") from None
        entries = data if isinstance(data, list) else [data]
        for index, entry in enumerate(entries):
            source = f"{folder.name}/{path.name}" + (f"#{index + 1}" if isinstance(data, list) else "")
            exchanges.append(_exchange(entry, source, required))
    return exchanges


def _exchange(entry: Any, source: str, required: bool) -> Exchange:
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict) \
            or not isinstance(entry.get("response"), dict):
        raise FixtureError(f"{source}: an exchange is an object with a `request` and a `response` object")
    request, response = entry["request"], entry["response"]
    for part, allowed, value in (("request", _REQUEST_KEYS, request), ("response", _RESPONSE_KEYS, response)):
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise FixtureError(f"{source}: unknown {part} field(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(allowed))})")
    if not request.get("method") or not str(request.get("path", "")).startswith("/"):
        raise FixtureError(f"{source}: the request needs a `method` and a `path` starting with /")
    if not isinstance(response.get("status"), int):
        raise FixtureError(f"{source}: the response needs an integer `status`")
    if "json" in response and "body" in response:
        raise FixtureError(f"{source}: a response has `json` or `body`, not both")
    return Exchange(source=source, request=request, response=response, repeat=bool(entry.get("repeat")),
                    required=required, note=str(entry.get("note", "")))


def expand(value: Any, variables: Mapping[str, Any], source: str) -> Any:
    """`value` with every `{{name}}` in its strings replaced from `variables`."""
    if isinstance(value, str):
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name not in variables:
                raise FixtureError(f"{source}: unknown placeholder {{{{{name}}}}} "
                                   f"(known: {', '.join(sorted(variables))})")
            return str(variables[name])
        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {expand(k, variables, source): expand(v, variables, source) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, variables, source) for v in value]
    return value


def differences(recorded: Mapping[str, Any], request: Received) -> list[str]:
    """What in `request` disagrees with the `recorded` request (already expanded); [] is a match."""
    found = []
    if str(recorded["method"]).upper() != request.method:
        found.append(f"method: recorded {recorded['method']}, got {request.method}")
    if recorded["path"] != request.path:
        found.append(f"path: recorded {recorded['path']}, got {request.path}")
    for name, value in (recorded.get("query") or {}).items():
        got = request.query.get(name)
        if value is None:
            if got is not None:
                found.append(f"query {name}: recorded absent, got {got[0] if len(got) == 1 else got}")
            continue
        wanted = [str(v) for v in value] if isinstance(value, list) else [_text(value)]
        if got != wanted:
            found.append(f"query {name}: recorded {wanted[0] if len(wanted) == 1 else wanted}, got {got}")
    headers = {k.lower(): v for k, v in request.headers.items()}
    for name, value in (recorded.get("headers") or {}).items():
        if headers.get(name.lower()) != str(value):
            found.append(f"header {name}: recorded {value!r}, got {headers.get(name.lower())!r}")
    if "json" in recorded:
        body = request.json()
        problem = _subset(recorded["json"], body, "json")
        if problem:
            found.append(problem)
    if "form" in recorded:
        form = request.form()
        for name, value in recorded["form"].items():
            if form.get(name) != (None if value is None else _text(value)):
                found.append(f"form {name}: recorded {value!r}, got {form.get(name)!r}")
    if "body" in recorded and request.body.decode("utf-8", "replace") != recorded["body"]:
        found.append("body: differs from the recorded text")
    return found


def _text(value: Any) -> str:
    """A recorded query or form value as it travels (JSON `true` is "true", as requests sends it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _subset(expected: Any, actual: Any, where: str) -> str | None:
    """Where `actual` fails to hold everything `expected` names, or None."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: recorded an object, got {_short(actual)}"
        for key, value in expected.items():
            if value is None:
                if actual.get(key) is not None:
                    return f"{where}.{key}: recorded absent, got {_short(actual[key])}"
                continue
            if key not in actual:
                return f"{where}.{key}: recorded {_short(value)}, got nothing"
            problem = _subset(value, actual[key], f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: recorded {_short(expected)}, got {_short(actual)}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            problem = _subset(want, got, f"{where}[{index}]")
            if problem:
                return problem
        return None
    # True == 1 in Python, but not in JSON.
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return f"{where}: recorded {_short(expected)}, got {_short(actual)}"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class _State:
    used: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)


class FixtureServer:
    """Serves recorded exchanges on 127.0.0.1; start it, point a connector at `url`, read what it got.

        with FixtureServer(folder, variables={"token": "t-123"}) as server:
            connector = AcmeConnector("acme", {"token": "t-123", "api_url": server.url})
            ...
        assert not server.problems()

    Set `variables` before the start (`url` is known from construction on): `start()` fills every
    recording's placeholders once and raises `FixtureError` naming the file of an unknown one.
    """

    def __init__(self, *folders: Path, optional: Iterable[Path] = (), variables: Mapping[str, Any] | None = None,
                 exchanges: Iterable[Exchange] = (), host: str = "127.0.0.1") -> None:
        self.exchanges: list[Exchange] = [e for folder in optional for e in load_exchanges(folder, required=False)]
        self.exchanges += [e for folder in folders for e in load_exchanges(folder)]
        self.exchanges += list(exchanges)
        self.variables: dict[str, Any] = dict(variables or {})
        self.lock = threading.RLock()
        self._state = _State()
        self._server = http.server.ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def start(self) -> FixtureServer:
        try:
            for exchange in self.exchanges:
                expand([exchange.request, exchange.response], self._variables(), exchange.source)
        except FixtureError:
            self._server.server_close()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fixture-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for a loop that never started otherwise
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FixtureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # What happened -----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        with self.lock:
            return list(self._state.requests)

    def received(self, method: str | None = None, path: str | None = None) -> list[Received]:
        """The requests with this method and whose path ends with `path` (either may be None: any)."""
        return [r for r in self.requests if (method is None or r.method == method.upper())
                and (path is None or r.path.endswith(path))]

    def used(self) -> list[str]:
        """The sources of the exchanges that answered, in the order they did."""
        with self.lock:
            return list(self._state.used)

    def unused(self) -> list[Exchange]:
        """Required exchanges that never answered."""
        used = set(self.used())
        return [e for e in self.exchanges if e.required and e.source not in used]

    def unmatched(self) -> list[Received]:
        return [r for r in self.requests if r.answered_by is None]

    def problems(self) -> list[str]:
        """What a test should fail on: requests no recording answered, and recordings never used."""
        found = [f"no recording answered {r.method} {r.path} {r.query or ''} {r.body[:200]!r}".rstrip()
                 + (f" ({r.unanswered_because})" if r.unanswered_because else "") for r in self.unmatched()]
        found += [f"recorded but never requested: {e.describe()}" for e in self.unused()]
        return found

    # Answering ---------------------------------------------------------------------------------------

    def answer(self, request: Received) -> tuple[int, dict[str, str], bytes]:
        """The recorded answer to `request` (and the request logged), or a 501 that says why there is none."""
        with self.lock:
            self._state.requests.append(request)
            matching = [e for e in self.exchanges if not self._differences(e, request)]
            chosen = self._next_of(matching)
            if chosen is None:
                return self._unmatched_answer(request, matching)
            request.answered_by = chosen.source
            self._state.used.append(chosen.source)
            return self._response(chosen)

    def _next_of(self, matching: list[Exchange]) -> Exchange | None:
        used = set(self._state.used)
        fresh = [e for e in matching if e.source not in used]
        if fresh:
            return fresh[0]
        repeating = [e for e in matching if e.repeat]
        return repeating[-1] if repeating else None

    def _differences(self, exchange: Exchange, request: Received) -> list[str]:
        return differences(expand(exchange.request, self._variables(), exchange.source), request)

    def _variables(self) -> dict[str, Any]:
        return {"fixture_url": self.url, **self.variables}

    def _response(self, exchange: Exchange) -> tuple[int, dict[str, str], bytes]:
        response = expand(exchange.response, self._variables(), exchange.source)
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        if "json" in response:
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            return response["status"], headers, json.dumps(response["json"]).encode()
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return response["status"], headers, str(response.get("body", "")).encode()

    def _unmatched_answer(self, request: Received, matching: list[Exchange]) -> tuple[int, dict[str, str], bytes]:
        if matching:
            reason = ("every recording of this request has answered already: record the next answer, or mark "
                      "the last one \"repeat\": true")
            closest = [{"recording": e.describe(), "differs": ["already used"]} for e in matching[:3]]
            request.unanswered_because = f"{', '.join(e.source for e in matching)} answered already"
        else:
            reason = "no recording matches this request"
            closest = self._closest(request)
            if closest:
                nearest = closest[0]
                request.unanswered_because = f"closest: {nearest['recording']}: {'; '.join(nearest['differs'])}"
        body = {"error": f"fixture server: {reason}: {request.method} {request.path}",
                "request": request.summary(), "closest": closest}
        return UNMATCHED_STATUS, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()

    def _closest(self, request: Received) -> list[dict[str, Any]]:
        def distance(exchange: Exchange) -> tuple[int, int, int]:
            found = self._differences(exchange, request)
            return (any(f.startswith("method") for f in found), any(f.startswith("path") for f in found), len(found))

        ranked = sorted(self.exchanges, key=distance)[:3]
        return [{"recording": e.describe(), "differs": self._differences(e, request)} for e in ranked]

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                                   dict(self.headers.items()), self.rfile.read(length) if length else b"")
                try:
                    status, headers, data = server.answer(request)
                except FixtureError as exc:  # a broken recording shows up as an answer, not a hang
                    status, headers = UNMATCHED_STATUS, {"Content-Type": "application/json; charset=utf-8"}
                    data = json.dumps({"error": f"fixture server: {exc}"}).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
