"""Generic API channel (#15): an outside system (an app's in-app chat, an SMS gateway, a shop) posts its
customers' messages in, signed, and receives the agents' replies at its callback URL, signed.

Setup: choose a long random shared secret (`secret`, at least 16 characters) and give it to the
outside system; set `callback_url` to the address that takes the replies (https; plain http only for
a host `fetch_allow_hosts` lists, as the tests do). The system posts to this channel's webhook
address, `POST /webhooks/<channel>`. docs/api-channel.md has the formats, with examples.

- **Signature, both ways.** `Mainland-Signature: t=<unix seconds>,v1=<hex>` where the hex is
  HMAC-SHA256(secret, "<t>.<raw body>"), as Mainland's outbound webhooks sign
  (`inbox.webhooks_out.signature`). Inbound, a missing or wrong signature, or a `t` more than
  300 seconds from our clock (replay protection), is answered 401 with the reason.
- **Inbound, exactly once.** The body is `{"id", "customer": {"id", "name"?, "email"?}, "text",
  "sent_at"?, "attachments"?}`. `id` is the idempotency key and the message's external id: the same
  id again is answered 200 `{"duplicate": true}` and stores nothing, however often and however close
  together it comes. A body that is not JSON or lacks a field is answered 400 naming the `field`.
- **One outside user, one customer.** The customer's `id` is their identity of kind "api", as
  "<channel>:<id>" (two outside systems may both have a customer "42"); every message of theirs
  on this channel joins one conversation thread. `email` is kept with the message for the agent to
  see; it is not proof of an address, so it does not join the customer to anyone.
- **Replies** go through the outbox to `callback_url` as `{"type": "reply", "id", "conversation",
  "customer": {"id"}, "text", "in_reply_to", "attachments", "sent_at"}`; `id` stays the same on
  every retry so the receiver can drop a second copy. 2xx: sent. 408, 429 and 5xx: retried with
  backoff (`Retry-After` honoured). Another 4xx: failed, with the receiver's `error`/`message`
  shown to the agent. No answer after the request went out (a timeout, a reset connection):
  "possibly sent", for an agent to decide; never resent blindly. The callback URL passes the SSRF
  check on every send, and the connection goes to the address that was checked.
- **Connection test.** `probe()` POSTs a signed `{"type": "ping", "id", "sent_at"}` to the callback
  URL; any 2xx passes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

import urllib3

from connectors._http import USER_AGENT, retry_after_seconds
from connectors._probe import probe_timeout
from connectors.base import (
    N_,
    Connector,
    IdentityRule,
    ItemError,
    Limits,
    PermanentError,
    ProbeResult,
    RetryableError,
    Setting,
    UncertainError,
    WebhookRequest,
)
from inbox import clock
from inbox.models import Attachment, Author, FetchResult, InboundItem, OutboundReply
from inbox.safe_fetch import FetchRefused, check_url, pinned_pool
from inbox.sanitize import CONTROLS
from inbox.signing import SIGNATURE_HEADER, signature, verify

#: How far a signature's timestamp may be from our clock, either way (Stripe's and Chatwoot's 5 minutes).
TOLERANCE_SECONDS = 300
#: The header that carries a reply's id, besides the body (receivers may dedupe before parsing).
REPLY_ID_HEADER = "Mainland-Reply-Id"
MAX_ID_CHARS = 200
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 20000
MAX_INBOUND_FILES = 10
#: How much of the receiver's answer is read (its id, or its error message).
MAX_ANSWER_BYTES = 64 * 1024
MIN_SECRET_CHARS = 16


class ApiRefused(PermanentError):
    """The request is refused, with the HTTP `status` the webhook endpoint answers (401: signature or
    timestamp; 400: a malformed body, naming the `field`) and a message the integrator can act on."""

    def __init__(self, message: str, *, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return str(value or "")


def _short_text(value: Any, field: str, limit: int, *, required: bool) -> str | None:
    """A one-line string field (an id, a name) checked for type, length and control characters."""
    if value is None or value == "":
        if required:
            raise ApiRefused(f"{field} is required", status=400, field=field)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ApiRefused(f"{field} must be a string", status=400, field=field)
    value = value.strip()
    if (required and not value) or len(value) > limit or CONTROLS.search(value) or "\n" in value:
        raise ApiRefused(f"{field} must be 1 to {limit} characters on one line", status=400, field=field)
    return value or None


def _sent_at(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ApiRefused("sent_at must be an ISO 8601 time with its offset, e.g. 2026-03-05T10:15:02Z",
                         status=400, field="sent_at")
    return when.astimezone(dt.UTC)


def _inbound_files(value: Any, cap: int) -> tuple[Attachment, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_INBOUND_FILES:
        raise ApiRefused(f"attachments must be a list of at most {MAX_INBOUND_FILES} files", status=400,
                         field="attachments")
    files = []
    for index, raw in enumerate(value):
        where = f"attachments[{index}]"
        if not isinstance(raw, dict):
            raise ApiRefused(f"{where} must be an object", status=400, field=where)
        filename = _short_text(raw.get("filename"), f"{where}.filename", 255, required=True)
        content_type = _short_text(raw.get("content_type"), f"{where}.content_type", 255, required=False)
        try:
            data = base64.b64decode(str(raw.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            raise ApiRefused(f"{where}.data must be the file's bytes in base64", status=400, field=f"{where}.data")
        if len(data) > cap:
            raise ApiRefused(f"{where} is over the {cap:,} byte limit", status=400, field=f"{where}.data")
        files.append(Attachment(filename=filename, content_type=content_type or "application/octet-stream",
                                data=data, size=len(data)))
    return tuple(files)


class ApiConnector(Connector):
    """An outside system that posts its customers' messages in and takes the replies at a callback URL."""

    kind = "api"
    # The pages add "channel" themselves ("Een API-kanaal toevoegen"), so not "API channel".
    display_name = N_("API")
    icon_text = "A"
    icon_color = "#37474f"
    push_only = True
    # A reply that may have arrived is left to an agent (the receiver dedupes by id, but a receiver
    # that does not would show the customer the reply twice).
    idempotent_sends = False
    #: Bodies may carry files in base64 (4 bytes for every 3).
    webhook_max_bytes = 16 * 1024 * 1024
    #: The outside system's own customer id, unique within this channel; several per person
    #: (a person may be known to several systems), never typed by anyone, so no import column.
    identities = (IdentityRule("api", single=False, contacts_in_text=True, handle=False),)
    writes_to = ("api",)
    limits = Limits(max_text_length=10000, formatting="plain", reply_window_hours=None,
                    max_attachment_bytes=5 * 1024 * 1024, max_attachments=5, starts_conversations="any")

    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("callback_url", required=True,
                help=N_("Where replies are POSTed, signed (https://...). The outside system answers 2xx when it "
                        "has the reply.")),
        # The number in the help is MIN_SECRET_CHARS (a literal, so the sentence can be translated).
        Setting("secret", required=True, secret=True,
                help=N_("Shared secret (at least 16 characters) of the HMAC-SHA256 signatures, both ways. Give "
                        "the same value to the outside system.")),
        Setting("system_name", default="", help=N_("Name of the outside system, used in messages to agents "
                                                   "(empty: the callback URL's host).")),
        Setting("timeout", default=10, help=N_("Seconds the outside system has to answer a reply.")),
    )

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems = []
        url = urlsplit(str(merged["callback_url"]))
        if url.scheme not in ("https", "http") or not url.hostname:
            problems.append("callback_url: must be an https:// address")
        if len(str(merged["secret"])) < MIN_SECRET_CHARS:
            problems.append(f"secret: must be at least {MIN_SECRET_CHARS} characters")
        timeout = merged.get("timeout")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 60:
            problems.append("timeout: must be a number of seconds from 1 to 60")
        if problems:
            raise PermanentError("; ".join(problems))
        return merged

    @classmethod
    def thread_key_for(cls, handle: str) -> str | None:
        # The customer's identity is also their thread: a conversation we start is the one they answer in.
        return handle

    @property
    def system(self) -> str:
        return str(self.config.get("system_name") or urlsplit(self.config["callback_url"]).hostname)

    # Inbound ------------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Refuse (401) a request without a valid signature made within 300 seconds of our clock."""
        header = _header(request.headers, SIGNATURE_HEADER)
        if not header:
            raise ApiRefused(f"the {SIGNATURE_HEADER} header is missing", status=401)
        fields = dict(part.strip().partition("=")[::2] for part in header.split(","))
        try:
            timestamp = int(fields.get("t", ""))
        except ValueError:
            raise ApiRefused(f"the {SIGNATURE_HEADER} header has no t=<unix seconds>", status=401) from None
        now = clock.now().timestamp()
        if abs(now - timestamp) > TOLERANCE_SECONDS:
            raise ApiRefused(f"the signature's time is {abs(now - timestamp):.0f} s away from ours; at most "
                             f"{TOLERANCE_SECONDS} s is accepted (check the sender's clock)", status=401)
        if not verify(str(self.config["secret"]), header, request.body, now=now, tolerance=TOLERANCE_SECONDS):
            raise ApiRefused("the signature does not match the body (check the shared secret, and sign the "
                             "exact bytes sent)", status=401)

    def webhook_event_id(self, request: WebhookRequest) -> str | None:
        """The sender's idempotency key: a second post with the same `id` is answered 200 and not parsed."""
        data = json.loads(request.body)
        key = data.get("id") if isinstance(data, dict) else None
        return f"id:{key}" if isinstance(key, str | int) and not isinstance(key, bool) and str(key) else None

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        """The message as one item; `ApiRefused` (400, naming the field) when the body is not one."""
        return FetchResult(items=[self._item(request.body, received=clock.now())], cursor=None)

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        """A stored message (the body as posted) as an item again."""
        try:
            return self._item(raw, received=None)
        except ApiRefused as exc:
            raise ItemError(f"not a stored API message: {exc}") from None

    def fetch(self, cursor: str | None) -> FetchResult:
        """Nothing to poll: messages are posted to the webhook address."""
        return FetchResult(items=[], cursor=cursor)

    def _item(self, body: bytes, *, received: dt.datetime | None) -> InboundItem:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiRefused("the body is not JSON", status=400, field="body") from None
        if not isinstance(data, dict):
            raise ApiRefused("the body must be a JSON object", status=400, field="body")
        key = _short_text(data.get("id"), "id", MAX_ID_CHARS, required=True)
        customer = data.get("customer")
        if not isinstance(customer, dict):
            raise ApiRefused("customer is required: an object with the customer's id", status=400, field="customer")
        customer_id = _short_text(customer.get("id"), "customer.id", MAX_ID_CHARS, required=True)
        name = _short_text(customer.get("name"), "customer.name", MAX_NAME_CHARS, required=False)
        email = _short_text(customer.get("email"), "customer.email", 254, required=False)
        text = data.get("text")
        if text is not None and not isinstance(text, str):
            raise ApiRefused("text must be a string", status=400, field="text")
        text = CONTROLS.sub("", (text or "").replace("\r\n", "\n")).strip()
        cap = self.context.max_attachment_bytes if self.context else 25 * 1024 * 1024
        files = _inbound_files(data.get("attachments"), cap)
        if not text and not files:
            raise ApiRefused("text is required (or at least one attachment)", status=400, field="text")
        if len(text) > MAX_TEXT_CHARS:
            raise ApiRefused(f"text must be at most {MAX_TEXT_CHARS} characters", status=400, field="text")
        sent_at = _sent_at(data.get("sent_at")) or received or clock.now()
        handle = f"{self.name}:{customer_id}"
        first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
        return InboundItem(
            channel=self.name,
            external_id=key,
            author=Author(handle=handle, name=name or f"{self.system} customer {customer_id}", identity_kind="api",
                          name_given=bool(name)),
            text=text,
            subject=first_line[:120] or None,
            sent_at=sent_at,
            thread_key=handle,
            public=False,
            attachments=files,
            headers={"Customer-Email": email} if email else {},
            raw=body,
            source_ref=f"api:{key}",
            size=len(body),
        )

    # Outbound -----------------------------------------------------------------------------------

    def send(self, reply: OutboundReply) -> str:
        """POST the reply, signed, to the callback URL; the receiver's id for it (else the reply's id)."""
        prefix = f"{self.name}:"
        if not reply.to.handle.startswith(prefix):
            raise PermanentError(f"this customer is not known to {self.system} (their id there is missing)")
        if not reply.text.strip() and not reply.attachments:
            raise PermanentError("a reply needs text or a file")
        body = json.dumps({
            "type": "reply",
            "id": reply.idempotency_key,
            "conversation": reply.conversation_id,
            "customer": {"id": reply.to.handle[len(prefix):]},
            "text": reply.text,
            "in_reply_to": reply.reply_to_external_id,
            "attachments": [{"filename": f.filename, "content_type": f.content_type, "size": len(f.data or b""),
                             "data": base64.b64encode(f.data or b"").decode("ascii")} for f in reply.attachments],
            "sent_at": clock.now().isoformat().replace("+00:00", "Z"),
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        status, headers, answer = self._post(body, {REPLY_ID_HEADER: reply.idempotency_key},
                                             timeout=float(self.config["timeout"]))
        if 200 <= status < 300:
            found = _json(answer)
            given = found.get("id") if isinstance(found, dict) else None
            return str(given)[:200] if isinstance(given, str | int) and str(given) else reply.idempotency_key
        said = _error_text(answer)
        text = self.redact(f"{self.system} answered {status}" + (f": {said}" if said else ""))
        if status in (408, 429) or status >= 500:
            raise RetryableError(text, retry_after=retry_after_seconds(headers))
        if 300 <= status < 400:
            raise PermanentError(self.redact(f"{self.system} redirected the reply ({status}): set the callback URL "
                                             f"to its new address"))
        raise PermanentError(text)

    def probe(self) -> ProbeResult:
        """A signed ping to the callback URL: does the receiver take our signature?"""
        body = json.dumps({"type": "ping", "id": f"ping_{uuid.uuid4().hex}",
                           "sent_at": clock.now().isoformat().replace("+00:00", "Z")}).encode()
        try:
            status, _headers, answer = self._post(body, {}, timeout=probe_timeout(self))
        except RetryableError as exc:
            return ProbeResult.said(False, N_("{system} did not answer the signed ping: check the callback URL, "
                                              "and that this server may reach it"), {"system": self.system},
                                    detail=str(exc)).redacted(self.redact)
        except PermanentError as exc:
            return ProbeResult.said(False, N_("The signed ping was not sent: {reason}"),
                                    {"reason": str(exc)}).redacted(self.redact)
        detail = self.redact(f"HTTP {status}\n{answer[:600].decode('utf-8', 'replace')}".strip())
        values = {"system": self.system, "status": status}
        if 200 <= status < 300:
            return ProbeResult.said(True, N_("{system} accepted a signed ping ({status})"), values, detail=detail,
                                    status=status).redacted(self.redact)
        if status in (401, 403):
            result = ProbeResult.said(False, N_("{system} refused the signature ({status}): give it the same shared "
                                                "secret, and check that both clocks are right"), values)
        elif status >= 500:
            result = ProbeResult.said(False, N_("{system} has a problem at its end ({status}): try again later"),
                                      values)
        else:
            result = ProbeResult.said(False, N_("{system} refused the ping ({status}): check the callback URL"),
                                      values)
        return replace(result, detail=detail, status=status).redacted(self.redact)

    def _post(self, body: bytes, headers: Mapping[str, str], *, timeout: float) -> tuple[int, Mapping[str, str], bytes]:
        """One signed POST to the callback URL, to the address the SSRF check resolved (no redirects).

        Raises `RetryableError` when the request could not leave (refused, unreachable, TLS),
        `UncertainError` when it may have arrived without an answer, `PermanentError` for an address
        that may not be used."""
        url = str(self.config["callback_url"])
        checked = self._checked(url)
        host = checked[1]
        pool, path, host_header = pinned_pool(url, checked, timeout)
        timestamp = int(clock.now().timestamp())
        sent_headers = {"Host": host_header, "User-Agent": USER_AGENT,
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: signature(str(self.config["secret"]), timestamp, body), **headers}
        try:
            response = pool.urlopen("POST", path, body=body, headers=sent_headers, redirect=False,
                                    preload_content=False, assert_same_host=False)
            try:
                answer = response.read(MAX_ANSWER_BYTES, decode_content=True)
            finally:
                response.release_conn()
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.SSLError) as exc:
            # Includes a refused connection and a name that does not resolve: nothing left us.
            raise RetryableError(self.redact(f"cannot connect to {host}: {_cause(exc)}")) from None
        except urllib3.exceptions.ReadTimeoutError:
            raise UncertainError(self.redact(f"{self.system} did not answer within {timeout:.0f} s; the reply may "
                                             f"have arrived")) from None
        except urllib3.exceptions.HTTPError as exc:
            raise UncertainError(self.redact(f"the connection to {host} dropped before the answer ({_cause(exc)}); "
                                             f"the reply may have arrived")) from None
        finally:
            pool.close()
        return response.status, dict(response.headers), answer

    def _checked(self, url: str) -> tuple[str, str, int, str]:
        allow = self.context.fetch_allow_hosts if self.context else ()
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise PermanentError("the callback URL has an invalid port") from None
        if parts.scheme != "https" and host not in allow and f"{host}:{port}" not in allow:
            raise PermanentError("the callback URL must start with https://")
        try:
            return check_url(url, allow)
        except FetchRefused as exc:
            if str(exc).startswith("cannot resolve"):  # DNS may answer again later
                raise RetryableError(self.redact(f"the callback URL's host: {exc}")) from None
            raise PermanentError(self.redact(f"the callback URL may not be used: {exc}")) from None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _error_text(data: bytes) -> str | None:
    """The receiver's own reason: `error` or `message` of a JSON answer, else the start of the text."""
    found = _json(data)
    if isinstance(found, dict):
        for key in ("error", "message", "detail"):
            if isinstance(found.get(key), str) and found[key].strip():
                return found[key].strip()[:300]
    text = data.decode("utf-8", "replace").strip()
    return text[:300] or None


def _cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    return text if len(text) < 200 else text[:200] + "..."
