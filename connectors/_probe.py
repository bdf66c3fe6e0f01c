"""Connection tests: the part of `Connector.probe` every HTTP channel shares.

The admin page's "Test connection" calls `probe()` on a connector built from the settings being
edited. A probe asks the channel's documented "who am I" call (X `GET /2/users/me`, Telegram
`getMe`, ...) and turns the answer into a `ProbeResult`. Its rules:

- **Read-only.** Only calls that change nothing at the provider; nothing is stored, no message is
  consumed and no cursor moves. Tokens are not refreshed.
- **Bounded.** At most the channel's `timeout`, and never more than `PROBE_TIMEOUT` seconds.
- **Guarded.** An admin types the addresses a probe connects to (a Mastodon server, an IMAP host,
  an `api_url`), so they pass the same SSRF check as media downloads (`inbox.safe_fetch`): a host
  that resolves to a loopback, private or otherwise non-public address is refused unless
  `fetch_allow_hosts` lists it (as the tests and the demo do for their loopback imitations). The
  address is checked before connecting and redirects are not followed.
- **Nothing secret shown.** `detail` holds the provider's status line and a trimmed body, run
  through `connector.redact()`, with token-like fields masked as well.
- **Says what to do next.** Refused credentials, an unreachable host, a timeout, a server error
  and an answer that is not JSON each give `ok=False` with a summary that names the next step.

The summaries are English (`ProbeResult.summary`, for logs, the CLI and the REST API); connectors
translate nothing (they run in the worker, outside any request). Each also comes as a `Phrase`: a
template marked with `N_` plus its values, which the admin page translates before filling in.
`signed_in` readers, `refused` and `Mismatch` take a Phrase (or a marked template) the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors._http import Http, Unreachable
from connectors.base import N_, Connector, ConnectorError, Phrase, ProbeResult

#: The longest a connection test may take, whatever the channel's own timeout says.
PROBE_TIMEOUT = 15.0
#: Characters of the provider's body kept in `ProbeResult.detail`.
DETAIL_CHARS = 600
#: JSON fields whose values are credentials: masked in `detail` even when no setting holds them.
SECRET_FIELDS = frozenset({"accessJwt", "refreshJwt", "access_token", "refresh_token", "token", "password",
                           "app_password", "client_secret"})

_NOT_JSON = object()


class Mismatch(Exception):  # noqa: N818 - a finding, not a failure of the code
    """Raised by a `signed_in` reader: the credentials work, but for another account than the settings name.
    Its one argument is the summary: a `Phrase` (translated on the admin page) or plain English."""


def probe_timeout(connector: Connector) -> float:
    """The channel's `timeout` setting, capped at `PROBE_TIMEOUT` (and at least one second)."""
    try:
        configured = float(connector.config.get("timeout") or PROBE_TIMEOUT)
    except (TypeError, ValueError):
        configured = PROBE_TIMEOUT
    return max(1.0, min(configured, PROBE_TIMEOUT))


def allow_hosts(connector: Connector) -> tuple[str, ...]:
    return tuple(connector.context.fetch_allow_hosts) if connector.context else ()


def refuse_url(connector: Connector, url: str) -> ProbeResult | None:
    """A refusal when `url` may not be contacted (see the module docstring), else None."""
    from inbox.safe_fetch import FetchRefused, check_host, check_url

    parts = urlsplit(url)
    try:
        if parts.hostname and parts.scheme in ("http", "https"):
            # The address first: "a non-public address" says more than "port 8080 is not allowed".
            check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), allow_hosts(connector))
        check_url(url, allow_hosts(connector))
    except (FetchRefused, ValueError) as exc:
        host = urlsplit(url).netloc or url
        return ProbeResult.said(False, N_(
            "{host} was not contacted: {reason}. Enter the provider's public address; a server inside your "
            "own network is only reached when fetch_allow_hosts lists it"),
            {"host": host, "reason": str(exc)}).redacted(connector.redact)
    return None


def refuse_host(connector: Connector, host: str, port: int, what: str) -> ProbeResult | None:
    """As `refuse_url`, for a host and port that are not HTTP (IMAP, SMTP)."""
    from inbox.safe_fetch import FetchRefused, check_host

    try:
        check_host(host, port, allow_hosts(connector))
    except FetchRefused as exc:
        return ProbeResult.said(False, N_(
            "{what}: {host} was not contacted: {reason}. Enter the mail server's public name; a server inside "
            "your own network is only reached when fetch_allow_hosts lists it"),
            {"what": what, "host": host, "reason": str(exc)}).redacted(connector.redact)
    return None


def detail_of(connector: Connector, response: requests.Response) -> str:
    """The status line and the start of the body, redacted: what the provider itself answered."""
    line = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text.strip()
    else:
        text = json.dumps(_masked(body), ensure_ascii=False)
    if len(text) > DETAIL_CHARS:
        text = text[:DETAIL_CHARS] + "…"
    return connector.redact(f"{line}\n{text}" if text else line)


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: ("***" if k in SECRET_FIELDS and v else _masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def json_of(response: requests.Response) -> Any:
    """The parsed body, or `_NOT_JSON`."""
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def ask(connector: Connector, http: Http, path: str, *, what: str, method: str = "GET",
        **kwargs: Any) -> requests.Response | ProbeResult:
    """One guarded request: the response whatever its status, or a `ProbeResult` when there was none."""
    refusal = refuse_url(connector, http.url(path))
    if refusal:
        return refusal
    timeout = probe_timeout(connector)
    try:
        return http.request(method, path, expect=tuple(range(100, 600)), allow_redirects=False,
                            timeout=timeout, **kwargs)
    except Unreachable as exc:
        if exc.timed_out:
            summary = Phrase(N_("{what} did not answer within {seconds} s: check the address, or try again later"),
                             {"what": what, "seconds": f"{timeout:.0f}"})
        else:
            summary = Phrase(N_("Could not connect to {what}: check the address, and that this server may reach it"),
                             {"what": what})
        return ProbeResult.of(False, summary, detail=str(exc)).redacted(connector.redact)
    except ConnectorError as exc:
        return ProbeResult.said(False, N_("Could not reach {what}: {error}"),
                                {"what": what, "error": str(exc)}).redacted(connector.redact)


def judge(connector: Connector, response: requests.Response, *, what: str, refused: str,
          signed_in: Callable[[Any], str | Phrase],
          is_refusal: Callable[[int, Any], bool] = lambda status, body: status in (401, 403),
          error_text: Callable[[Any], str | None] | None = None) -> ProbeResult:
    """The `ProbeResult` for a "who am I" answer.

    `refused` is the summary for refused credentials (a template marked with `N_`, with `{status}` for the
    status code); `signed_in(body)` the summary of a good answer, a `Phrase` or plain English (a KeyError,
    TypeError or ValueError in it means the answer lacks what the documentation promises; `Mismatch` that it
    names another account); `is_refusal(status, body)` tells a credentials refusal from other errors (Meta
    answers 400 with code 190).
    """
    status = response.status_code
    detail = detail_of(connector, response)
    body = json_of(response)

    def result(ok: bool, summary: str | Phrase) -> ProbeResult:
        return ProbeResult.of(ok, summary, detail=detail, status=status).redacted(connector.redact)

    def phrase(template: str, **values: Any) -> Phrase:
        return Phrase(template, {"what": what, "status": status, **values})

    if body is not _NOT_JSON and is_refusal(status, body):
        return result(False, phrase(refused))
    if status == 429:
        return result(False, phrase(N_("{what} is limiting requests right now (429): try again in a few minutes")))
    if status >= 500:
        return result(False, phrase(N_("{what} has a problem at its end ({status}): try again later")))
    if 300 <= status < 400:
        target = response.headers.get("Location")
        return result(False, phrase(N_("{what} sent us to {target} ({status}): check the address"), target=target)
                      if target else phrase(N_("{what} sent us elsewhere ({status}): check the address")))
    if body is _NOT_JSON:
        return result(False, phrase(N_("{what} answered with something that is not JSON ({status}): check the "
                                       "address; it does not look like the {what} API")))
    if status != 200:
        said = _error_text(body, error_text)
        return result(False, phrase(N_("{what} refused the request ({status}): {error}: check the channel's settings"),
                                    error=said) if said
                      else phrase(N_("{what} refused the request ({status}): check the channel's settings")))
    try:
        return result(True, signed_in(body))
    except Mismatch as exc:
        return result(False, exc.args[0] if exc.args and isinstance(exc.args[0], Phrase) else str(exc))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return result(False, phrase(N_("{what} answered without the fields its documentation promises: "
                                       "check the address")))


def _error_text(body: Any, error_text: Callable[[Any], str | None] | None) -> str | None:
    if error_text:
        try:
            found = error_text(body)
        except (KeyError, TypeError, IndexError, AttributeError):
            found = None
        if found:
            return str(found)[:200]
    if isinstance(body, dict):
        for key in ("error_description", "message", "detail", "description", "error", "title"):
            if isinstance(body.get(key), str):
                return body[key][:200]
    return None


def http_probe(connector: Connector, http: Http, path: str, *, what: str, refused: str,
               signed_in: Callable[[Any], str | Phrase], method: str = "GET",
               is_refusal: Callable[[int, Any], bool] = lambda status, body: status in (401, 403),
               error_text: Callable[[Any], str | None] | None = None, **kwargs: Any) -> ProbeResult:
    """`ask` then `judge`: the whole probe of a channel with one "who am I" call."""
    response = ask(connector, http, path, what=what, method=method, **kwargs)
    if isinstance(response, ProbeResult):
        return response
    return judge(connector, response, what=what, refused=refused, signed_in=signed_in, is_refusal=is_refusal,
                 error_text=error_text)
