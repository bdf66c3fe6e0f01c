"""The one function that fetches a URL someone else gave us (media in a webhook, an avatar).

Server-side fetching is how SSRF happens (osTicket CVE-2020-24881, Rocket.Chat CVE-2024-39713,
FreeScout CVE-2026-34443). So every such fetch goes through `safe_fetch`, which:

- allows only http and https, on ports 80 and 443;
- resolves the host once, refuses it unless every address is public (no loopback, private,
  link-local, carrier-grade NAT, multicast or reserved ranges; IPv4-mapped IPv6 unwrapped;
  decimal/octal/hex spellings end up as the address they resolve to), and connects to that
  pinned address, so a DNS answer that changes between check and connect (rebinding) cannot
  redirect the request;
- follows at most three redirects, checking each target the same way;
- stops reading past `max_bytes` and after `timeout` seconds.

`check_host` applies the same address rule to a host and port that are not HTTP (a mail server
typed into a channel's settings, reached by its connection test).

Hosts listed in `allow_hosts` skip the address check: that is how the tests and the demo reach
the loopback imitations of channel APIs. Never list a host there in production.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3

MAX_REDIRECTS = 3
DEFAULT_MAX_BYTES = 25 * 1024 * 1024


class FetchRefused(Exception):
    """The URL may not be fetched, or the answer was not usable; the message says why."""


@dataclass(frozen=True)
class Fetched:
    url: str
    data: bytes
    content_type: str
    filename: str | None


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def _resolve(host: str, port: int) -> tuple[str, list[str]]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchRefused(f"cannot resolve {host}: {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise FetchRefused(f"{host} has no address")
    return addresses[0], addresses


def check_url(url: str, allow_hosts: Collection[str] = ()) -> tuple[str, str, int, str]:
    """Validate `url`; return (scheme, host, port, pinned address) or raise `FetchRefused`."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"scheme {scheme or '(none)'!r} is not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchRefused("the URL has no host")
    if parts.username or parts.password:
        raise FetchRefused("URLs with credentials are not fetched")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchRefused("the URL has an invalid port") from None
    allowed = host in allow_hosts or f"{host}:{port}" in allow_hosts
    if port not in (80, 443) and not allowed:
        raise FetchRefused(f"port {port} is not allowed")
    return scheme, host, port, check_host(host, port, allow_hosts)


def check_host(host: str, port: int, allow_hosts: Collection[str] = ()) -> str:
    """Resolve `host` and return the address to connect to, or raise `FetchRefused` when any of its
    addresses is not public and neither `host` nor `host:port` is in `allow_hosts`. For connections
    that are not HTTP (a channel's IMAP or SMTP server, tested from the admin pages); any port."""
    allowed = host in allow_hosts or f"{host}:{port}" in allow_hosts
    pinned, addresses = _resolve(host, port)
    if not allowed:
        blocked = [a for a in addresses if not _public(a)]
        if blocked:
            raise FetchRefused(f"{host} resolves to a non-public address ({blocked[0]})")
    return pinned


def safe_fetch(
    url: str,
    *,
    allow_hosts: Collection[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 20.0,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """GET `url` under the rules in this module's docstring."""
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port, pinned = check_url(url, allow_hosts)
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        pool_kwargs = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(pinned, port, server_hostname=host, assert_hostname=host,
                                               cert_reqs="CERT_REQUIRED", **pool_kwargs)
        else:
            pool = urllib3.HTTPConnectionPool(pinned, port, **pool_kwargs)
        request_headers = {"Host": host if port in (80, 443) else f"{host}:{port}",
                           "User-Agent": "Mainland/0.1", **(headers or {})}
        try:
            response = pool.urlopen("GET", path, headers=request_headers, redirect=False, preload_content=False,
                                    assert_same_host=False)
        except urllib3.exceptions.HTTPError as exc:
            raise FetchRefused(f"fetching {host} failed: {type(exc).__name__}") from None
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise FetchRefused(f"{host} redirected without a Location")
                target = urljoin(url, location)
                if urlsplit(target).netloc.lower() != parts.netloc.lower():
                    # Credentials are for the host they were given for (as requests does on redirects).
                    headers = {k: v for k, v in (headers or {}).items()
                               if k.lower() not in ("authorization", "cookie", "proxy-authorization")}
                url = target
                continue
            if response.status != 200:
                raise FetchRefused(f"{host} answered {response.status}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchRefused(f"the file is {int(declared):,} bytes, over the {max_bytes:,} byte limit")
            data = response.read(max_bytes + 1, decode_content=True)
            if len(data) > max_bytes:
                raise FetchRefused(f"the file is over the {max_bytes:,} byte limit")
            content_type = (response.headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip()
            filename = None
            disposition = response.headers.get("Content-Disposition") or ""
            if "filename=" in disposition:
                filename = disposition.split("filename=", 1)[1].strip().strip('"') or None
            return Fetched(url=url, data=data, content_type=content_type.lower(), filename=filename)
        finally:
            response.release_conn()
            pool.close()
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")


@dataclass(frozen=True)
class Posted:
    status: int
    body: bytes


def pinned_pool(url: str, checked: tuple[str, str, int, str], timeout: float,
                ) -> tuple[urllib3.HTTPConnectionPool, str, str]:
    """(connection pool, request path, Host header) for one request to `url` at the address
    `check_url` resolved (`checked`), so the request cannot go anywhere the check did not see; TLS is
    verified against the URL's host name. No retries, no redirects: the caller decides."""
    scheme, host, port, pinned = checked
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    options: dict[str, Any] = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False,
                               "maxsize": 1}
    if scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            pinned, port, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED", **options)
    else:
        pool = urllib3.HTTPConnectionPool(pinned, port, **options)
    return pool, path, host if port in (80, 443) else f"{host}:{port}"


def safe_post(
    url: str,
    body: bytes,
    *,
    allow_hosts: Collection[str] = (),
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    max_bytes: int = 64 * 1024,
) -> Posted:
    """POST `body` to `url` once under the same address rules as `safe_fetch` (outbound webhooks).

    A redirect is not followed (its status is the answer): a receiver that moved must be changed by
    an admin, and following it would carry a signed body to an address nobody checked. Only the first
    `max_bytes` of the answer are read. Raises `FetchRefused` when the URL may not be used or the
    connection fails."""
    checked = check_url(url, allow_hosts)
    host = checked[1]
    pool, path, host_header = pinned_pool(url, checked, timeout)
    request_headers = {"Host": host_header, "User-Agent": "Mainland/0.1", **(headers or {})}
    try:
        response = pool.urlopen("POST", path, body=body, headers=request_headers, redirect=False,
                                preload_content=False, assert_same_host=False)
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        raise FetchRefused(f"posting to {host} failed: {type(exc).__name__}") from None
    try:
        return Posted(status=response.status, body=response.read(max_bytes, decode_content=True))
    except urllib3.exceptions.HTTPError as exc:
        raise FetchRefused(f"reading the answer of {host} failed: {type(exc).__name__}") from None
    finally:
        response.release_conn()
        pool.close()
