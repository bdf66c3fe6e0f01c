"""The HTTP client every API connector uses: timeouts, rate-limit signals, typed errors, redaction.

It turns what an API answers into what the poller and the outbox need to know:

- 429, or a channel's own throttle code -> `RetryableError` with the delay the channel asked for,
  read from `Retry-After` (seconds or an HTTP date), `x-rate-limit-reset` (Unix seconds, X),
  `X-RateLimit-Reset` (ISO 8601, Mastodon) or `ratelimit-reset` (Bluesky);
- 5xx, timeouts, refused or dropped connections -> `RetryableError` (`Unreachable` when there was
  no answer at all); but a request that writes (POST, PUT, PATCH, DELETE) and may have reached the
  server without an answer coming back (a read timeout, a connection dropped after sending) ->
  `UncertainError` as well, so the outbox never resends a reply blindly;
- 401 and 403 -> `PermanentError` (credentials must be fixed by a person);
- any other 4xx -> `PermanentError` with the API's own error message.

No configured secret ever appears in an error message: `redact` is applied to every text.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3

from connectors.base import PermanentError, RetryableError, UncertainError

USER_AGENT = "Mainland/0.1 (+self-hosted customer-care inbox)"
#: Methods that change nothing at the server: repeating one after an unanswered try is harmless.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _before_sending(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before the request could leave (refused, no such host, TLS)."""
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return True
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError):
            return True
        reason = getattr(cause, "reason", None)
        inner = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = reason if isinstance(reason, BaseException) else inner or cause.__cause__ or cause.__context__
    return False


def retry_after_seconds(headers: Mapping[str, str], now: dt.datetime | None = None) -> float | None:
    """The delay a response asks for, from whichever rate-limit header it carries."""
    now = now or dt.datetime.now(dt.UTC)
    lower = {k.lower(): v for k, v in headers.items()}
    value = lower.get("retry-after")
    if value:
        value = value.strip()
        if value.replace(".", "", 1).isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - now).total_seconds())
        except (TypeError, ValueError):
            pass
    for name in ("x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"):
        value = lower.get(name)
        if not value:
            continue
        value = value.strip()
        if value.isdigit():
            number = int(value)
            # Epoch seconds (X, Bluesky) versus a plain number of seconds to wait.
            return max(0.0, number - now.timestamp()) if number > 1_000_000_000 else float(number)
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return max(0.0, (when - now).total_seconds())
        except ValueError:
            continue
    return None


class Unreachable(RetryableError):
    """No answer at all: the connection was refused or dropped, or (`timed_out`) the time ran out."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class UncertainUnreachable(Unreachable, UncertainError):
    """No answer to a request that writes and may have arrived: unreachable, and its effect unknown."""


class Http:
    """A `requests.Session` bound to one API's base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        redact: Callable[[str], str] = lambda text: text,
        error_message: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.redact = redact
        self.error_message = error_message
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        if headers:
            self.session.headers.update(headers)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201, 202, 204),
                **kwargs: Any) -> requests.Response:
        """Send a request; raise `RetryableError`/`PermanentError` unless the status is expected."""
        kwargs.setdefault("timeout", self.timeout)
        # A request that may have reached the server but got no answer is "uncertain" when it writes
        # (the outbox must not resend it blindly); a read is simply tried again.
        writes = method.upper() not in SAFE_METHODS
        try:
            response = self.session.request(method, self.url(path), **kwargs)
        except requests.ConnectTimeout:
            raise Unreachable(self.redact(f"{method} {path}: cannot connect within {self.timeout:.0f} s"),
                              timed_out=True) from None
        except requests.Timeout:
            error = UncertainUnreachable if writes else Unreachable
            raise error(self.redact(f"{method} {path}: no answer within {self.timeout:.0f} s"), timed_out=True) \
                from None
        except requests.ConnectionError as exc:
            if writes and not _before_sending(exc):
                raise UncertainUnreachable(self.redact(f"{method} {path}: the connection dropped before the answer "
                                                       f"({_short(exc)})")) from None
            raise Unreachable(self.redact(f"{method} {path}: cannot connect ({_short(exc)})")) from None
        except requests.RequestException as exc:
            error = UncertainError if writes else RetryableError
            raise error(self.redact(f"{method} {path}: {_short(exc)}")) from None
        if response.status_code in expect:
            return response
        self.raise_for(response, method, path)
        return response  # pragma: no cover - raise_for always raises

    def raise_for(self, response: requests.Response, method: str, path: str) -> None:
        status = response.status_code
        detail = self._detail(response)
        where = self.redact(f"{method} {path.split('?')[0]}")
        text = self.redact(f"{where} answered {status}" + (f": {detail}" if detail else ""))
        if status == 429:
            raise RetryableError(text, retry_after=retry_after_seconds(response.headers))
        if status >= 500 or status == 408:
            raise RetryableError(text, retry_after=retry_after_seconds(response.headers))
        raise PermanentError(text)

    def _detail(self, response: requests.Response) -> str | None:
        try:
            body = response.json()
        except (ValueError, json.JSONDecodeError):
            return response.text[:200].strip() or None
        if self.error_message:
            try:
                found = self.error_message(body)
            except (KeyError, TypeError, IndexError):
                found = None
            if found:
                return str(found)[:300]
        if isinstance(body, dict):
            for key in ("error_description", "message", "detail", "description", "error", "title"):
                if isinstance(body.get(key), str):
                    return body[key][:300]
        return None

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self._json(self.request("GET", path, **kwargs))

    def post_json(self, path: str, payload: Any = None, **kwargs: Any) -> Any:
        return self._json(self.request("POST", path, json=payload, **kwargs))

    def _json(self, response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RetryableError(f"{response.request.method} answered with something that is not JSON") from None

    def close(self) -> None:
        self.session.close()


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
