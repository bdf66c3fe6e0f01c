"""The public HTTP helper for connectors: one stable import for talking to a channel's API.

    from connectors.http import Http, http_for

A connector shipped outside this repository uses these names; they keep their meaning across
releases (the implementation lives in `connectors/_http.py` and `inbox/safe_fetch.py`, which may
change). What you get:

- `http_for(connector, base_url, ...)` -> `Http`: a session bound to one API's base URL, with the
  connector's secrets redacted from every error and its `timeout` setting (seconds) when it has one.
  `Http.request(method, path, expect=...)`, `get_json(path)`, `post_json(path, payload)`, `close()`.
- **Timeouts** on every request (30 s unless told otherwise).
- **Rate limits and retries, the channel's way.** `Http` never sleeps or loops itself: a 429, 408 or
  5xx raises `RetryableError` whose `retry_after` is the delay the channel asked for, read from
  `Retry-After` (seconds or an HTTP date), `x-rate-limit-reset` (X), `X-RateLimit-Reset` (Mastodon)
  or `ratelimit-reset` (Bluesky) (`retry_after_seconds(headers)`). The worker then waits exactly
  that long (or backs off with jitter when the channel said nothing) and polls again from the same
  cursor; the outbox sends a reply again. A write (POST, PUT, PATCH, DELETE) that may have reached
  the server without an answer raises `UncertainError` instead, so a reply is never resent blindly.
- 401 and 403 raise `PermanentError` (a person must fix the credentials); another 4xx raises
  `PermanentError` with the API's own message (`error_message(body)` picks it from your API's shape).
- **The SSRF guard** for media URLs a channel hands you: `Connector.download(url)` in a connector,
  or `safe_fetch(url, allow_hosts=, max_bytes=)` here, which refuses (`FetchRefused`) any address
  that is not public, redirects to one, or a body over the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connectors._http import USER_AGENT, Http, retry_after_seconds
from connectors._probe import http_probe
from connectors.base import Connector
from inbox.safe_fetch import Fetched, FetchRefused, safe_fetch

__all__ = ["USER_AGENT", "FetchRefused", "Fetched", "Http", "http_for", "http_probe", "retry_after_seconds",
           "safe_fetch"]

DEFAULT_TIMEOUT = 30.0


def http_for(connector: Connector, base_url: str, *, timeout: float | None = None,
             headers: Mapping[str, str] | None = None,
             error_message: Callable[[Any], str | None] | None = None) -> Http:
    """An `Http` for `connector`'s API: errors pass through `connector.redact`, and the timeout is
    `timeout`, else the connector's `timeout` setting, else 30 seconds."""
    configured = connector.config.get("timeout")
    seconds = timeout if timeout is not None else float(configured) if configured else DEFAULT_TIMEOUT
    return Http(base_url, timeout=seconds, headers=headers, redact=connector.redact, error_message=error_message)
