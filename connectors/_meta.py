"""What the Facebook Page and Instagram connectors share: Meta's Graph API, webhooks and Send API.

Both channels speak the Graph API (`https://graph.facebook.com/<version>/...`, or
`https://graph.instagram.com/<version>/...` for Instagram Login apps) with one long-lived
access token, take webhooks signed with the app secret, and answer customers through the Send
API. This module holds that common part (shared/channels.md section 3):

- `signature` / `verify_signature`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret,
  raw body)>`, compared with `hmac.compare_digest` over the exact bytes, before any parsing.
  A missing app secret refuses every delivery (a configuration error, never "valid").
- `Graph`: one API client. The token goes in `Authorization: Bearer` (never in a URL, so it
  cannot leak into a log line); `appsecret_proof` is added when asked. Errors are read from
  Graph's own body `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`:
  throttling codes 4, 17, 32, 613 and 80001-80014 (and HTTP 429) are `RetryableError` with the
  delay from `X-Business-Use-Case-Usage.estimated_time_to_regain_access`; code 190 (invalid or
  expired token) is a `PermanentError` that says how to get a new token; code 10 / subcode
  2018278 (outside the messaging window) says what the window is; 5xx and `is_transient`
  errors are retried. Every answer's `X-App-Usage` and `X-Business-Use-Case-Usage` are read:
  at `usage_limit_percent` or above, the channel stops calling until Meta's estimate of regained
  access has passed (at least a minute), so it slows down before Meta cuts it off.
- `MetaConnector`: the base class of both connectors: webhook verification and the
  `hub.challenge` handshake, Messenger-shaped `messaging` events (messages, echoes,
  deliveries, reads), polling of the Conversations API, and sending with the reply windows.

The reply windows (Send API): inside 24 hours of the customer's last message a reply goes as
`messaging_type=RESPONSE`; from 24 hours to 7 days as `MESSAGE_TAG` with `tag=HUMAN_AGENT`
(when `human_agent` is on); later the reply is refused with an explanation. The customer's last
message time is asked from the Graph API just before sending
(`GET /{node}/conversations?user_id=<customer>&fields=messages{created_time,from}`), because the
reply handed to the connector does not carry it and webhooks may have missed a newer message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from connectors._http import Http, retry_after_seconds
from connectors._probe import http_probe
from connectors.base import (
    N_,
    Connector,
    ItemError,
    PermanentError,
    Phrase,
    ProbeResult,
    RetryableError,
    Setting,
    WebhookRequest,
    pick,
)
from inbox.models import Attachment, Author, DeliveryUpdate, FetchResult, InboundItem, OutboundReply, Reject

#: Graph error codes that mean "too many calls, wait" (app, user, page, custom, business use case).
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014})
#: Code 10 with this subcode: "This message is sent outside of allowed window".
OUTSIDE_WINDOW = (10, 2018278)
#: Code 100 with this subcode: "Upload attachment failure" (the file's type does not match its
#: content, or Meta could not take it).
UPLOAD_FAILED = (100, 2018047)
#: The Send API's cap on an uploaded file (Messenger "Saving assets": up to 25MB).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: Content types Messenger shows as an image; any other image goes as a file.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif"})
#: Private replies to comments, as integrations report them (not in Meta's pages we had).
ALREADY_REPLIED = 10900
CANNOT_REPLY = 10903
TOKEN_INVALID = 190

#: Header of a message that is a button press (postback or quick reply): "<title> (<payload>)".
PRESSED_HEADER = "pressed"

RESPONSE_WINDOW = dt.timedelta(hours=24)
HUMAN_AGENT_WINDOW = dt.timedelta(days=7)

#: Hosts Meta serves webhook media from; a media URL elsewhere is never fetched (IN-50).
MEDIA_HOST_SUFFIXES = ("fbcdn.net", "fbsbx.com", "facebook.com", "cdninstagram.com", "instagram.com",
                       "fbcdn.com")

_SIGNATURE = re.compile(r"^sha256=[0-9a-f]{64}$")

#: Channels that must not call the Graph API before a time (epoch seconds): usage near the cap.
_PAUSED: dict[str, float] = {}
_PAUSED_LOCK = threading.Lock()
#: Display names looked up per (channel, user id), kept for the process: a webhook request builds
#: a fresh connector each time, and a person writes many messages.
_NAMES: dict[tuple[str, str], str] = {}
_NAMES_MAX = 10_000


def forget_process_state() -> None:
    """Forget the pauses Meta's usage headers asked for and the names learnt (a test's fresh start)."""
    with _PAUSED_LOCK:
        _PAUSED.clear()
    _NAMES.clear()


# Webhook signatures ----------------------------------------------------------------------------

def signature(secret: str | bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secrets: list[str]) -> None:
    """Raise `PermanentError` unless `header` is the HMAC of the raw `body` with one of `secrets`."""
    if not secrets:
        raise PermanentError("no app_secret is configured, so no webhook can be verified")
    if not header:
        raise PermanentError("the X-Hub-Signature-256 header is missing")
    if not _SIGNATURE.match(header):
        raise PermanentError("X-Hub-Signature-256 is not sha256=<64 lowercase hex digits>")
    given = header.encode("ascii")
    # Every secret is tried, so the time taken does not tell which one nearly matched.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given, signature(secret, body).encode("ascii"))
    if not matched:
        raise PermanentError("X-Hub-Signature-256 does not match the body (another app secret, or a changed body)")


def challenge_answer(args: Mapping[str, str], verify_token: str | None) -> str | None:
    """Meta's subscription handshake: the bare `hub.challenge` when mode and verify token match."""
    token = str(verify_token or "")
    given = str(args.get("hub.verify_token") or "")
    if args.get("hub.mode") != "subscribe" or not token or not given:
        return None
    # Bytes compare: compare_digest refuses non-ASCII str, and a query may hold anything.
    if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
        return None
    return str(args.get("hub.challenge") or "")[:256] or None


# Graph API -------------------------------------------------------------------------------------

def graph_error(body: Any) -> dict[str, Any]:
    """The `error` object of a Graph error body ({} when there is none)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return {}


def usage_of(headers: Mapping[str, str]) -> tuple[float, float]:
    """(highest usage percent, seconds until access is regained) from Meta's usage headers."""
    lower = {k.lower(): v for k, v in headers.items()}
    highest, regain = 0.0, 0.0
    app = _json_header(lower.get("x-app-usage"))
    if isinstance(app, dict):
        highest = max([highest] + [float(v) for v in app.values() if isinstance(v, int | float)])
    business = _json_header(lower.get("x-business-use-case-usage"))
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                for key in ("call_count", "total_cputime", "total_time"):
                    if isinstance(entry.get(key), int | float):
                        highest = max(highest, float(entry[key]))
                minutes = entry.get("estimated_time_to_regain_access")
                if isinstance(minutes, int | float):
                    regain = max(regain, float(minutes) * 60)
    return highest, regain


#: The post a comment answers is shown above it trimmed to this many characters.
CONTEXT_CHARS = 500


def reply_context(text: Any, url: Any) -> tuple[str | None, str | None]:
    """`(context_text, context_url)` of an item from a post's text and link as Graph gives them.

    Text is trimmed to `CONTEXT_CHARS`; a link that is not http(s) is dropped.
    """
    clean = text.strip() if isinstance(text, str) else ""
    if len(clean) > CONTEXT_CHARS:
        clean = clean[: CONTEXT_CHARS - 1].rstrip() + "…"
    link = url.strip() if isinstance(url, str) else ""
    if not link.lower().startswith(("https://", "http://")):
        link = ""
    return clean or None, link or None


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def graph_time(value: Any) -> dt.datetime:
    """A Graph timestamp as aware UTC: "2021-07-23T09:28:50+0000", epoch seconds or epoch ms."""
    if isinstance(value, bool):
        raise ItemError("time is not a time")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 100_000_000_000 else value
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ItemError(f"time {value!r} is out of range") from None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return graph_time(int(text))
        # Python before 3.12 does not read "+0000" in fromisoformat.
        text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text.replace("Z", "+00:00"))
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ItemError(f"time {value[:40]!r} is not a date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)
    raise ItemError("time is missing")


def format_graph_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class Graph:
    """The Graph API for one channel: Bearer token, Graph's errors, usage-based slowing down."""

    def __init__(self, base_url: str, version: str, token: str, *, key: str, channel: str,
                 app_secret: str | None = None, proof: bool = False, timeout: float = 30.0,
                 usage_limit: float = 90.0, redact: Callable[[str], str] = lambda text: text) -> None:
        version = version.strip("/")
        self.http = Http(f"{base_url.rstrip('/')}/{version}" if version else base_url, timeout=timeout,
                         headers={"Authorization": f"Bearer {token}"}, redact=redact)
        self.redact = redact
        self.key = key
        self.channel = channel
        self.usage_limit = usage_limit
        # appsecret_proof = HMAC-SHA256(app secret, token): proves the call comes from the app's server.
        self.proof = hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest() \
            if proof and app_secret else None

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             json_body: Any = None, form: dict[str, str] | None = None,
             files: dict[str, tuple[str, bytes, str]] | None = None) -> Any:
        """One Graph call; the parsed JSON answer, or `RetryableError`/`PermanentError`.

        `form` and `files` send a multipart body instead of JSON (the Send API's file upload).
        """
        self._check_pause()
        params = dict(params or {})
        if self.proof:
            params["appsecret_proof"] = self.proof
        response = self.http.request(method, path, params=params or None, json=json_body, data=form,
                                     files=files, expect=range(100, 600))
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if 200 <= response.status_code < 300:
            # An error answer says how long to wait itself; a good one may warn that the cap is near.
            self._note_usage(response.headers)
            if body is None and response.content:
                raise RetryableError(f"{method} {path.split('?')[0]} answered with something that is not JSON")
            return body
        raise self.failure(response.status_code, body, response.headers, f"{method} {path.split('?')[0]}")

    def failure(self, status: int, body: Any, headers: Mapping[str, str], where: str) -> Exception:
        """The error to raise for a Graph error answer."""
        error = graph_error(body)
        code = error.get("code") if isinstance(error.get("code"), int) else None
        subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
        message = str(error.get("message") or "")[:300] or f"status {status}"
        named = f"{message} (code {code}{f'/{subcode}' if subcode else ''})" if code is not None else message
        if status == 429 or code in THROTTLE_CODES:
            _, regain = usage_of(headers)
            # The caller (poller or outbox) waits this long; no pause is kept here as well.
            wait = regain or retry_after_seconds(headers) or 60.0
            return RetryableError(self.redact(f"Meta's rate limit was reached: {named}; waiting {wait:.0f} s"),
                                  retry_after=wait)
        if code == TOKEN_INVALID or (status == 401 and code is None):
            return PermanentError(self.redact(
                f"Meta refused the access token: {named}. Create a new long-lived token (a Page access "
                f"token from a system user in Business Settings does not expire) and put it in "
                f"channels.{self.channel}.access_token"))
        if (code, subcode) == OUTSIDE_WINDOW:
            return PermanentError(self.redact(
                f"Meta refused the message because the messaging window is closed: {named}. A Page may "
                f"answer within 24 hours of the customer's last message, or within 7 days with the "
                f"HUMAN_AGENT tag; the conversation can go on once the customer writes again."))
        if (code, subcode) == UPLOAD_FAILED:
            return PermanentError(self.redact(
                f"Meta did not take the file: {named}. Messenger takes images (JPEG, PNG, GIF), video, "
                f"audio and other files up to 25 MB whose content matches their type: send a smaller "
                f"file, save it again in a common format, or share a link to it instead."))
        if code == ALREADY_REPLIED:
            return PermanentError(self.redact(
                f"Meta allows one private reply per comment and this comment already has one: {named}"))
        if code == CANNOT_REPLY:
            return PermanentError(self.redact(
                f"This comment can no longer be answered privately (private replies are allowed within "
                f"7 days of the comment): {named}"))
        if status >= 500 or code in (1, 2) or error.get("is_transient") is True:
            return RetryableError(self.redact(f"{where} answered {status}: {named}"))
        return PermanentError(self.redact(f"{where} answered {status}: {named}"))

    def _note_usage(self, headers: Mapping[str, str]) -> None:
        highest, regain = usage_of(headers)
        if highest >= self.usage_limit:
            self._pause(max(regain, 60.0))

    def _pause(self, seconds: float) -> None:
        with _PAUSED_LOCK:
            _PAUSED[self.key] = max(_PAUSED.get(self.key, 0.0), time.time() + seconds)

    def _check_pause(self) -> None:
        with _PAUSED_LOCK:
            until = _PAUSED.get(self.key, 0.0)
        left = until - time.time()
        if left > 0:
            raise RetryableError(f"Meta's usage of this app or Page is near its limit; calls resume in {left:.0f} s",
                                 retry_after=left)

    def pages(self, path: str, params: dict[str, Any], *, max_pages: int,
              after: str | None = None) -> Iterator[tuple[list[Any], str | None, str | None]]:
        """(data, after cursor used, after cursor of the next page or None) for up to `max_pages` pages.

        Follows `paging.cursors.after` (only while `paging.next` says there is a next page), not the
        `next` URL itself, which carries the token in its query. A cursor that comes back unchanged
        ends the walk (IN-57).
        """
        for _ in range(max(1, max_pages)):
            asked = dict(params)
            if after:
                asked["after"] = after
            page = self.call("GET", path, params=asked)
            if not isinstance(page, dict):
                raise RetryableError(f"GET {path} answered with something that is not an object")
            data = page.get("data") if isinstance(page.get("data"), list) else []
            paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
            cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
            following = cursors.get("after") if paging.get("next") and isinstance(cursors.get("after"), str) else None
            if following and following == after:
                following = None
            yield data, after, following
            if not following:
                return
            after = following

    def close(self) -> None:
        self.http.close()


def _pause_key(channel: str, token: str) -> str:
    return f"{channel}:{hashlib.sha256(token.encode()).hexdigest()[:12]}"


# The shared connector ---------------------------------------------------------------------------

COMMON_SETTINGS = (
    Setting("access_token", required=True, secret=True,
            help=N_("Long-lived access token: a Page access token (Facebook Login) or an Instagram user token "
                    "(Instagram Login).")),
    Setting("app_secret", secret=True,
            help=N_("The Meta app's secret: verifies webhook signatures (X-Hub-Signature-256). Without it "
                    "every webhook is refused.")),
    Setting("previous_app_secret", secret=True,
            help=N_("The app secret before a rotation, accepted for webhooks until you remove it.")),
    Setting("verify_token", secret=True, copy_to_provider=True,
            help=N_("The Verify Token you typed into the app's webhook settings (hub.verify_token).")),
    Setting("appsecret_proof", default=False,
            help=N_("Send appsecret_proof with every call (when the app requires it; needs app_secret).")),
    Setting("api_version", default="v25.0", help=N_("Graph API version, e.g. v25.0.")),
    Setting("human_agent", default=True,
            help=N_("Answer messages from 24 hours to 7 days old with the HUMAN_AGENT tag (the app needs Meta's "
                    "Human Agent permission); off: only within 24 hours.")),
    Setting("poll", default=True,
            help=N_("Also poll the Graph API (fallback for missed webhooks); off: webhooks only.")),
    Setting("messages", default=True, help=N_("Take in private messages.")),
    Setting("comments", default=True, help=N_("Take in comments (public).")),
    Setting("page_size", default=25, help=N_("Items per Graph page when polling (1-100).")),
    Setting("pages_per_fetch", default=5, help=N_("Pages of conversations read per poll at most.")),
    Setting("recent_posts", default=10, help=N_("Newest posts (media) whose comments a poll reads.")),
    Setting("first_poll_hours", default=168,
            help=N_("The first poll takes what is newer than this many hours (default: the 7 days a reply "
                    "can still go out).")),
    Setting("download_media", default=True, help=N_("Download images and files sent in messages as attachments.")),
    Setting("lookup_names", default=True,
            help=N_("Ask the Graph API for the name of a person who wrote by webhook (one call per person "
                    "and process).")),
    Setting("usage_limit_percent", default=90,
            help=N_("Stop calling the Graph API when X-App-Usage or X-Business-Use-Case-Usage reaches this "
                    "percentage, until Meta says access is regained.")),
    Setting("timeout", default=30, help=N_("Seconds an API call may take.")),
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MetaConnector(Connector):
    """The common part of the Facebook Page and Instagram connectors (not a channel of its own)."""

    #: "messenger" or "instagram": the Conversations API `platform` and the webhook flavour.
    platform: ClassVar[str]
    #: The webhook body's `object` for this channel ("page" or "instagram").
    webhook_object: ClassVar[str]
    identity_kind: ClassVar[str]
    max_dm_length: ClassVar[int]
    #: Prefix of the thread keys of comment conversations ("post:" / "media:").
    comment_prefix: ClassVar[str]
    #: Meta retries a webhook for days; bodies are small, but a batch may hold many entries.
    webhook_max_bytes: ClassVar[int] = 3 * 1024 * 1024

    #: The clock the reply windows are measured with (tests put a frozen one here).
    clock: Callable[[], dt.datetime] = staticmethod(_utcnow)

    def __init__(self, name: str, config: Any, **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.graph = Graph(
            self.api_url, str(self.config["api_version"]), str(self.config["access_token"]),
            key=_pause_key(name, str(self.config["access_token"])), channel=name,
            app_secret=self.config.get("app_secret"), proof=_truthy(self.config["appsecret_proof"]),
            timeout=float(self.config["timeout"]), usage_limit=float(self.config["usage_limit_percent"]),
            redact=self.redact)

    # What a subclass provides ---------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        raise NotImplementedError

    @property
    def account_id(self) -> str:
        """The id Meta puts in `entry[].id` of this channel's webhooks."""
        raise NotImplementedError

    @property
    def node(self) -> str:
        """The id whose `/conversations` and `/messages` edges this channel uses."""
        raise NotImplementedError

    @property
    def own_ids(self) -> set[str]:
        """Ids that are us (the Page, the Instagram account): their messages are never customers'."""
        raise NotImplementedError

    def comment_change(self, change: dict[str, Any], entry: dict[str, Any]) -> InboundItem | None:
        raise NotImplementedError

    def poll_comments(self, watermark: dt.datetime) -> tuple[list[InboundItem], list[Reject], dt.datetime | None]:
        raise NotImplementedError

    def reply_to_comment(self, comment_id: str, text: str) -> str:
        raise NotImplementedError

    # Settings -----------------------------------------------------------------------------------

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems = []
        for key, low, high in (("page_size", 1, 100), ("pages_per_fetch", 1, 100), ("recent_posts", 0, 100),
                               ("first_poll_hours", 0, 24 * 366), ("usage_limit_percent", 1, 100),
                               ("timeout", 1, 600)):
            try:
                if not low <= float(merged[key]) <= high:
                    problems.append(f"{key}: must be between {low} and {high}")
            except (TypeError, ValueError):
                problems.append(f"{key}: not a number")
        if not re.fullmatch(r"v\d+\.\d+", str(merged["api_version"])):
            problems.append(f"api_version: {str(merged['api_version'])[:20]!r} is not like v25.0")
        if _truthy(merged["appsecret_proof"]) and not merged.get("app_secret"):
            problems.append("appsecret_proof: needs app_secret")
        if problems:
            raise PermanentError("; ".join(problems))
        return merged

    # Webhooks -----------------------------------------------------------------------------------

    def webhook_challenge(self, args: Mapping[str, str]) -> str | None:
        return challenge_answer(args, self.config.get("verify_token"))

    def verify_webhook(self, request: WebhookRequest) -> None:
        secrets = [str(s) for s in (self.config.get("app_secret"), self.config.get("previous_app_secret")) if s]
        header = None
        for key, value in request.headers.items():
            if key.lower() == "x-hub-signature-256":
                header = value
        verify_signature(request.body, header, secrets)

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        try:
            payload = json.loads(request.body)
        except (ValueError, RecursionError):
            return FetchResult(items=[], cursor=None,
                               rejects=[Reject(raw=request.body, reason="webhook body is not JSON")])
        if not isinstance(payload, dict) or payload.get("object") != self.webhook_object:
            got = payload.get("object") if isinstance(payload, dict) else None
            return FetchResult(items=[], cursor=None, rejects=[Reject(
                raw=request.body, reason=f"webhook object {str(got)[:40]!r} is not {self.webhook_object!r}")])
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        updates: list[DeliveryUpdate] = []
        for entry in payload.get("entry") or []:
            if not isinstance(entry, dict):
                continue
            if str(entry.get("id")) != self.account_id:
                # One Meta app may serve several Pages; this channel takes only its own.
                self.log.info("channel %s: webhook entry for another account (%s) ignored", self.name,
                              str(entry.get("id"))[:30])
                continue
            for event in entry.get("messaging") or []:
                self._take(lambda e=event: self._messaging_event(e), event, items, rejects, updates)
            for change in entry.get("changes") or []:
                self._take(lambda c=change, en=entry: self._change(c, en), change, items, rejects, updates)
        return FetchResult(items=items, cursor=None, rejects=rejects, updates=updates)

    def _take(self, convert: Callable[[], tuple[InboundItem | None, list[DeliveryUpdate]]], raw: Any,
              items: list[InboundItem], rejects: list[Reject], updates: list[DeliveryUpdate]) -> None:
        try:
            item, found = convert()
        except RetryableError:
            raise  # a lookup hit a rate limit: the whole delivery is retried by Meta
        except Exception as exc:  # one bad event must not lose the others in the same delivery
            rejects.append(Reject(raw=_raw("webhook", raw), reason=self.redact(str(exc)) or type(exc).__name__,
                                  exception=type(exc).__name__))
            return
        if item is not None:
            items.append(item)
        updates += found

    def _change(self, change: Any, entry: dict[str, Any]) -> tuple[InboundItem | None, list[DeliveryUpdate]]:
        if not isinstance(change, dict):
            raise ItemError("a change that is not an object")
        if not _truthy(self.config["comments"]):
            return None, []
        return self.comment_change(change, entry), []

    def _messaging_event(self, event: Any) -> tuple[InboundItem | None, list[DeliveryUpdate]]:
        if not isinstance(event, dict):
            raise ItemError("a messaging event that is not an object")
        if isinstance(event.get("delivery"), dict):
            return None, self._deliveries(event)
        if isinstance(event.get("read"), dict):
            return None, self._reads(event)
        if isinstance(event.get("postback"), dict):
            return self._postback(event), []
        message = event.get("message")
        if not isinstance(message, dict):
            return None, []  # reactions, referrals, optins: nothing for an agent to answer
        if message.get("is_echo") or message.get("is_deleted"):
            # Echoes are what our Page sent (from us or another app): never a customer's message.
            return None, []
        if not _truthy(self.config["messages"]):
            return None, []
        sender = pick(event, "sender", "id", type=(str, int))
        if str(sender) in self.own_ids:
            return None, []
        mid = pick(message, "mid", type=str)
        sent_at = graph_time(pick(event, "timestamp"))
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        reply_to = message.get("reply_to") if isinstance(message.get("reply_to"), dict) else {}
        refs = (str(reply_to["mid"]),) if isinstance(reply_to.get("mid"), str) else ()
        attachments = []
        for index, attachment in enumerate(message.get("attachments") or []):
            if isinstance(attachment, dict):
                payload = attachment.get("payload") if isinstance(attachment.get("payload"), dict) else {}
                attachments.append(self._attachment(str(attachment.get("type") or "file"), payload.get("url"),
                                                    f"{mid[-12:]}-{index}"))
        headers = {"platform": self.platform}
        quick_reply = message.get("quick_reply") if isinstance(message.get("quick_reply"), dict) else {}
        if isinstance(quick_reply.get("payload"), str) and quick_reply["payload"]:
            # The text is the button the customer saw; the payload is what our bot set behind it.
            headers[PRESSED_HEADER] = _pressed(text, quick_reply["payload"])
        return InboundItem(
            channel=self.name, external_id=mid,
            author=Author(handle=str(sender), name=self._name_of(str(sender)), identity_kind=self.identity_kind),
            text=text, sent_at=sent_at, thread_key=str(sender), references=refs, public=False,
            attachments=tuple(a for a in attachments if a), headers=headers,
            raw=_raw("message", event),
        ), []

    def _postback(self, event: dict[str, Any]) -> InboundItem | None:
        """A button press (a postback button, "Get started", a persistent-menu item) as a message.

        The text is the button's title, what the customer saw and pressed; the payload our bot
        set behind it is kept in the `pressed` header. Meta leaves out `mid` for some postbacks
        (a "Get started" press): the id is then derived from sender, time and payload, so a
        delivery Meta repeats is still stored once.
        """
        if not _truthy(self.config["messages"]):
            return None
        postback = event["postback"]
        sender = str(pick(event, "sender", "id", type=(str, int)))
        if sender in self.own_ids:
            return None
        timestamp = pick(event, "timestamp", type=(str, int))
        title = postback.get("title") if isinstance(postback.get("title"), str) else ""
        payload = postback.get("payload") if isinstance(postback.get("payload"), str) else ""
        if not title and not payload:
            raise ItemError("a postback without title or payload")
        mid = postback.get("mid") if isinstance(postback.get("mid"), str) and postback["mid"] else \
            postback_id(sender, timestamp, payload or title)
        return InboundItem(
            channel=self.name, external_id=mid,
            author=Author(handle=sender, name=self._name_of(sender), identity_kind=self.identity_kind),
            text=title or payload, sent_at=graph_time(timestamp), thread_key=sender, public=False,
            headers={"platform": self.platform, PRESSED_HEADER: _pressed(title, payload)},
            raw=_raw("message", event),
        )

    def _deliveries(self, event: dict[str, Any]) -> list[DeliveryUpdate]:
        delivery = event["delivery"]
        at = graph_time(delivery["watermark"]) if isinstance(delivery.get("watermark"), int) else None
        mids = [m for m in delivery.get("mids") or [] if isinstance(m, str)]
        if not mids and at is not None:
            customer = (event.get("sender") or {}).get("id") if isinstance(event.get("sender"), dict) else None
            mids = self._our_messages_until(str(customer), at) if customer else []
        return [DeliveryUpdate(provider_id=mid, status="delivered", at=at) for mid in mids]

    def _reads(self, event: dict[str, Any]) -> list[DeliveryUpdate]:
        read = event["read"]
        if isinstance(read.get("mid"), str):  # Instagram names the message that was seen
            return [DeliveryUpdate(provider_id=read["mid"], status="read",
                                   at=graph_time(event["timestamp"]) if event.get("timestamp") else None)]
        if not isinstance(read.get("watermark"), int):
            raise ItemError("a read receipt without watermark")
        # Messenger only says "everything up to this time was read": ask which messages those were.
        at = graph_time(read["watermark"])
        customer = str(pick(event, "sender", "id"))
        return [DeliveryUpdate(provider_id=mid, status="read", at=at) for mid in self._our_messages_until(customer, at)]

    def _our_messages_until(self, customer: str, until: dt.datetime) -> list[str]:
        """Ids of the messages we sent `customer` up to `until` (the 20 newest Meta shows)."""
        found = []
        for conversation in self._conversations_with(customer, "messages.limit(20){id,created_time,from}"):
            for message in _data(conversation.get("messages"))[::-1]:
                sender = str((message.get("from") or {}).get("id")) if isinstance(message.get("from"), dict) else ""
                try:
                    created = graph_time(message.get("created_time"))
                except ItemError:
                    continue
                if sender in self.own_ids and created <= until and isinstance(message.get("id"), str):
                    found.append(message["id"])
        return found

    def _conversations_with(self, customer: str, fields: str) -> list[dict[str, Any]]:
        answer = self.graph.call("GET", f"/{self.node}/conversations",
                                 params={"platform": self.platform, "user_id": customer, "fields": fields})
        return [c for c in _data(answer)]

    def _name_of(self, user_id: str) -> str:
        if not _truthy(self.config["lookup_names"]):
            return ""
        key = (self.name, user_id)
        with _PAUSED_LOCK:
            known = _NAMES.get(key)
        if known is not None:
            return known
        try:
            profile = self.graph.call("GET", f"/{user_id}", params={"fields": self.profile_fields})
        except (RetryableError, PermanentError) as exc:
            # A name is nice to have; the message is not held back for it.
            self.log.info("channel %s: no name for %s (%s)", self.name, user_id, exc)
            return ""
        profile = profile if isinstance(profile, dict) else {}
        name = _display(profile.get("name") or profile.get("username") or "")
        with _PAUSED_LOCK:
            if len(_NAMES) >= _NAMES_MAX:
                _NAMES.clear()
            _NAMES[key] = name
        return name

    profile_fields: ClassVar[str] = "name"

    def _attachment(self, kind: str, url: Any, stem: str) -> Attachment | None:
        """A media URL of a message as an attachment: downloaded from Meta's hosts, else noted."""
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return None
        content_type = {"image": "image/jpeg", "sticker": "image/png", "video": "video/mp4",
                        "audio": "audio/mpeg"}.get(kind, "application/octet-stream")
        filename = f"{kind}-{stem}{_extension(content_type)}"
        if _truthy(self.config["download_media"]) and self._media_host_allowed(url):
            try:
                return self.download(url, filename=filename)
            except ItemError as exc:
                self.log.warning("channel %s: %s", self.name, exc)
        elif _truthy(self.config["download_media"]):
            self.log.warning("channel %s: media URL on %s is not one of Meta's hosts; not fetched", self.name,
                             urlsplit(url).hostname)
        return Attachment(filename=filename, content_type=content_type, url=url, size=0)

    def _media_host_allowed(self, url: str) -> bool:
        split = urlsplit(url)
        host = (split.hostname or "").lower()
        allowed = set(self.context.fetch_allow_hosts) if self.context else set()
        if split.netloc.lower() in allowed or host in allowed:
            return True
        return split.scheme == "https" and any(host == s or host.endswith("." + s) for s in MEDIA_HOST_SUFFIXES)

    # Polling ------------------------------------------------------------------------------------

    def fetch(self, cursor: str | None) -> FetchResult:
        state = self._parse_cursor(cursor)
        if not _truthy(self.config["poll"]):
            return FetchResult(items=[], cursor=cursor)
        now = self.clock()
        first = now - dt.timedelta(hours=float(self.config["first_poll_hours"]))
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        more = False
        if _truthy(self.config["messages"]):
            found, bad, more = self._walk_conversations(state, first)
            items += found
            rejects += bad
        # Comments are read in full each time, so only when no conversation walk is half done.
        if _truthy(self.config["comments"]) and not more and int(self.config["recent_posts"]) > 0:
            watermark = _parse_state_time(state.get("comments")) or first
            found, bad, newest = self.poll_comments(watermark)
            items += found
            rejects += bad
            if newest and newest > watermark:
                state["comments"] = format_graph_time(newest)
            elif "comments" not in state:
                state["comments"] = format_graph_time(watermark)
        unique: dict[str, InboundItem] = {}
        for item in items:
            unique.setdefault(item.external_id, item)
        ordered = sorted(unique.values(), key=lambda i: i.sent_at or now)
        return FetchResult(ordered, json.dumps(state, sort_keys=True), rejects, more=more)

    def _parse_cursor(self, cursor: str | None) -> dict[str, Any]:
        if not cursor:
            return {}
        try:
            state = json.loads(cursor)
        except ValueError:
            state = None
        if not isinstance(state, dict):
            self.log.warning("channel %s: cursor %r not understood; starting again", self.name, cursor[:60])
            return {}
        return {k: v for k, v in state.items() if isinstance(v, str) and v}

    def _walk_conversations(self, state: dict[str, Any], first: dt.datetime
                            ) -> tuple[list[InboundItem], list[Reject], bool]:
        """Conversations newest first down to the stored `updated_time` (inclusive: equal seconds)."""
        watermark = _parse_state_time(state.get("conversations")) or first
        top = _parse_state_time(state.get("conversations_top"))
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        fields = ("id,updated_time,participants,messages.limit(20)"
                  "{id,created_time,from,to,message,attachments}")
        params = {"platform": self.platform, "fields": fields, "limit": int(self.config["page_size"])}
        finished = True
        following = None
        batches: list[list[Any]] = []
        for data, _used, following in self.graph.pages(f"/{self.node}/conversations", params,
                                                       max_pages=int(self.config["pages_per_fetch"]),
                                                       after=state.get("conversations_next")):
            reached = False
            for conversation in data:
                try:
                    updated = graph_time(conversation.get("updated_time")) if isinstance(conversation, dict) \
                        else None
                except ItemError:
                    updated = None
                if updated is not None and updated < watermark:
                    reached = True  # newest first: the rest was read before
                    break
                if updated is not None:
                    top = max(top or updated, updated)
                # Graph lists messages newest first; equal seconds keep their order when reversed.
                messages = _data(conversation.get("messages"))[::-1] if isinstance(conversation, dict) else []
                batches.append([m for m in messages if not _is_ours(m, self.own_ids) and _not_before(m, watermark)])
            if reached:
                following = None
                break
        # Oldest conversation first, so that messages of the same second keep the order they had.
        for fresh in reversed(batches):
            found, bad = self.each(fresh, self._graph_message, raw_of=lambda m: _raw("graph_message", m))
            items += found
            rejects += bad
        if following:
            finished = False
            state["conversations_next"] = following
        if finished:
            state.pop("conversations_next", None)
            state.pop("conversations_top", None)
            newest = top or watermark
            state["conversations"] = format_graph_time(max(newest, watermark))
        elif top is not None:
            state["conversations_top"] = format_graph_time(top)
        return items, rejects, not finished

    def _graph_message(self, raw: Any) -> InboundItem:
        mid = pick(raw, "id", type=str)
        sender = pick(raw, "from", "id", type=(str, int))
        sender_info = raw["from"]
        text = raw.get("message") if isinstance(raw.get("message"), str) else ""
        attachments = []
        for index, attachment in enumerate(_data(raw.get("attachments"))):
            url = ((attachment.get("image_data") or {}).get("url") if isinstance(attachment.get("image_data"), dict)
                   else None) or attachment.get("file_url") or \
                ((attachment.get("video_data") or {}).get("url") if isinstance(attachment.get("video_data"), dict)
                 else None)
            kind = "image" if attachment.get("image_data") else "video" if attachment.get("video_data") else "file"
            attachments.append(self._attachment(kind, url, f"{mid[-12:]}-{index}"))
        name = sender_info.get("name") or sender_info.get("username") or ""
        return InboundItem(
            channel=self.name, external_id=mid,
            author=Author(handle=str(sender), name=_display(name), identity_kind=self.identity_kind),
            text=text, sent_at=graph_time(raw.get("created_time")), thread_key=str(sender), public=False,
            attachments=tuple(a for a in attachments if a), headers={"platform": self.platform},
            raw=_raw("graph_message", raw),
        )

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        try:
            data = json.loads(raw)
            kind, body = data["kind"], data["item"]
        except (ValueError, KeyError, TypeError):
            raise ItemError(f"not a stored {self.display_name} item") from None
        if kind == "graph_message":
            return self._graph_message(body)
        if kind == "message":
            item, _ = self._messaging_event(body)
        else:
            item = self.parse_raw_comment(kind, body)
        if item is None:
            raise ItemError("the stored event holds no customer message")
        return item

    def parse_raw_comment(self, kind: str, body: Any) -> InboundItem | None:
        if kind != "comment":
            raise ItemError(f"unknown stored item kind {kind!r}")
        return self._comment_item(body)

    def _comment_item(self, comment: dict[str, Any]) -> InboundItem:
        """A public comment as an item; each platform names its fields its own way."""
        raise NotImplementedError

    # Sending ------------------------------------------------------------------------------------

    #: Why a reply with files is refused in a comment conversation (public reply or private reply).
    comment_files_refused: ClassVar[str] = (
        "Replies to comments can carry a file only as a public link in Meta's API, which Mainland does "
        "not make. Remove the file, or put a link to it in the text.")
    #: Why a private message with files is refused; None when the channel uploads them (Messenger).
    message_files_refused: ClassVar[str | None] = None

    def send(self, reply: OutboundReply) -> str:
        text = reply.text.strip()
        files = tuple(reply.attachments)
        if not text and not files:
            raise PermanentError("the reply is empty")
        thread = reply.thread_key or ""
        if thread.startswith(self.comment_prefix):
            if files:
                raise PermanentError(self.comment_files_refused)
            if not reply.reply_to_external_id:
                raise PermanentError("a reply in a comment conversation needs the comment it answers")
            if reply.public:
                return self.reply_to_comment(reply.reply_to_external_id, text)
            return self.private_reply(reply.reply_to_external_id, text)
        customer = thread or reply.to.handle
        if not customer:
            raise PermanentError(f"no {self.display_name} user to send this message to")
        if files:
            return self.send_file(customer, files, text)
        return self.send_message(customer, text)

    def send_file(self, customer: str, files: tuple[Attachment, ...], text: str) -> str:
        """One file as one Send API call that uploads it (multipart `filedata`); its message id.

        A Messenger message holds text or a file, never both, and one file: the outbox sends the
        text and each file as replies of their own (`Limits.files_with_text`, `max_attachments`).
        """
        if self.message_files_refused:
            raise PermanentError(self.message_files_refused)
        if text:
            raise PermanentError(f"A {self.display_name} message holds either text or a file, not both: send "
                                 f"the text and the file as separate replies.")
        if len(files) > 1:
            raise PermanentError(f"A {self.display_name} message holds one file; this reply has {len(files)}. "
                                 f"Send each file as a reply of its own.")
        [file] = files
        if file.data is None:
            raise PermanentError(f"The file {file.filename!r} has no content to upload; attach it again.")
        if len(file.data) > MAX_UPLOAD_BYTES:
            raise PermanentError(
                f"The file {file.filename!r} is {len(file.data) / 1024 / 1024:.1f} MB; {self.display_name} "
                f"takes files up to {MAX_UPLOAD_BYTES // 1024 // 1024} MB. Send a smaller file or a link to it.")
        content_type = (file.content_type or "application/octet-stream").split(";")[0].strip().lower()
        attachment = {"type": attachment_kind(content_type), "payload": {"is_reusable": False}}
        form = {"recipient": json.dumps({"id": customer}), **self.messaging_type(customer),
                "message": json.dumps({"attachment": attachment})}
        answer = self.graph.call("POST", f"/{self.node}/messages", form=form,
                                 files={"filedata": (file.filename or "file", file.data, content_type)})
        return str(pick(answer, "message_id"))

    def _check_length(self, text: str) -> None:
        if len(text) > self.max_dm_length:
            raise PermanentError(f"The message is {len(text)} characters; {self.display_name} messages allow "
                                 f"{self.max_dm_length}. Shorten it by {len(text) - self.max_dm_length}.")

    def messaging_type(self, customer: str) -> dict[str, str]:
        """RESPONSE, MESSAGE_TAG/HUMAN_AGENT, or a `PermanentError`, by the customer's last message time."""
        last = self.last_customer_message_at(customer)
        if last is None:
            # Meta shows no message from this person (e.g. older than the 20 it lists): let it decide.
            self.log.info("channel %s: no recent message from %s found; sending as RESPONSE", self.name, customer)
            return {"messaging_type": "RESPONSE"}
        age = self.clock() - last
        if age <= RESPONSE_WINDOW:
            return {"messaging_type": "RESPONSE"}
        hours = age.total_seconds() / 3600
        if age <= HUMAN_AGENT_WINDOW:
            if _truthy(self.config["human_agent"]):
                return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
            raise PermanentError(
                f"The customer's last message was {hours:.0f} hours ago. {self.display_name} allows a reply "
                f"within 24 hours; from 24 hours to 7 days only with the HUMAN_AGENT tag, which is off for "
                f"this channel (setting human_agent). It can be answered when the customer writes again.")
        raise PermanentError(
            f"The customer's last message was {age.days} days ago. {self.display_name} lets a business answer "
            f"within 24 hours, or within 7 days with the HUMAN_AGENT tag; this window has closed. The "
            f"conversation can go on once the customer writes again.")

    def last_customer_message_at(self, customer: str) -> dt.datetime | None:
        newest = None
        for conversation in self._conversations_with(customer, "messages.limit(20){id,created_time,from}"):
            for message in _data(conversation.get("messages")):
                sender = message.get("from") if isinstance(message.get("from"), dict) else {}
                if str(sender.get("id")) != customer:
                    continue
                try:
                    created = graph_time(message.get("created_time"))
                except ItemError:
                    continue
                newest = max(newest or created, created)
        return newest

    def send_message(self, customer: str, text: str) -> str:
        self._check_length(text)
        body = {"recipient": {"id": customer}, **self.messaging_type(customer), "message": {"text": text}}
        answer = self.graph.call("POST", f"/{self.node}/messages", json_body=body)
        return str(pick(answer, "message_id"))

    def private_reply(self, comment_id: str, text: str) -> str:
        """Answer a public comment with one private message (once per comment, within 7 days)."""
        self._check_length(text)
        body = {"recipient": {"comment_id": comment_id}, "message": {"text": text}}
        answer = self.graph.call("POST", f"/{self.node}/messages", json_body=body)
        return str(pick(answer, "message_id"))

    def probe(self) -> ProbeResult:
        """The Graph API's "who am I" for this channel (`probe_request`), with the configured token; Meta
        answers a bad token with code 190 (often as a 400), which counts as refused credentials."""
        path, fields = self.probe_request()
        params = {"fields": fields}
        if self.graph.proof:
            params["appsecret_proof"] = self.graph.proof
        return http_probe(
            self, self.graph.http, path, what="Meta's Graph API", params=params, signed_in=self.probe_summary,
            is_refusal=lambda status, body: status == 401 or graph_error(body).get("code") == TOKEN_INVALID,
            error_text=lambda body: graph_error(body).get("message"),
            refused=N_("Meta refused the access token ({status}): create a new long-lived token (a system user's "
                       "Page access token in Business Settings does not expire) and paste it here"))

    def probe_request(self) -> tuple[str, str]:
        """The path and `fields` of the channel's "who am I" call."""
        raise NotImplementedError

    def probe_summary(self, body: Any) -> str | Phrase:
        """The summary of a good answer to `probe_request` (raise `Mismatch` for another account)."""
        raise NotImplementedError

    def close(self) -> None:
        self.graph.close()


# Helpers ------------------------------------------------------------------------------------------

def _data(value: Any) -> list[dict[str, Any]]:
    """The `data` list of a Graph edge (or of a whole answer), objects only."""
    data = value.get("data") if isinstance(value, dict) else None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _is_ours(message: Any, own: set[str]) -> bool:
    sender = message.get("from") if isinstance(message, dict) else None
    return isinstance(sender, dict) and str(sender.get("id")) in own


def _not_before(message: Any, watermark: dt.datetime) -> bool:
    """True unless the message is known to be older than the watermark (broken ones go to quarantine)."""
    try:
        return graph_time(message.get("created_time") or message.get("timestamp")) >= watermark
    except (ItemError, AttributeError):
        return True


def attachment_kind(content_type: str) -> str:
    """The Send API's attachment `type` for a file: image, video, audio or file."""
    if content_type in IMAGE_TYPES:
        return "image"
    family = content_type.split("/")[0]
    return family if family in ("video", "audio") else "file"


def postback_id(sender: str, timestamp: Any, payload: str) -> str:
    """A stable id for a postback Meta sent without `mid`: the same press always gets the same id."""
    digest = hashlib.sha256(f"{sender}\n{timestamp}\n{payload}".encode()).hexdigest()[:32]
    return f"postback_{digest}"


def _pressed(title: str, payload: str) -> str:
    """The `pressed` header: the button's title and, when it says more, the payload behind it."""
    title, payload = title.strip()[:200], payload.strip()[:1000]
    if not payload or payload == title:
        return title
    return f"{title} ({payload})" if title else payload


def _parse_state_time(value: Any) -> dt.datetime | None:
    try:
        return graph_time(value) if value else None
    except ItemError:
        return None


def _raw(kind: str, item: Any) -> bytes:
    return json.dumps({"kind": kind, "item": item}, ensure_ascii=False, default=str).encode("utf-8")


def _display(name: Any) -> str:
    """A display name as a customer's name: text, at most 200 characters (IN-51)."""
    return str(name or "")[:200]


def _extension(content_type: str) -> str:
    return {"image/jpeg": ".jpg", "image/png": ".png", "video/mp4": ".mp4", "audio/mpeg": ".mp3"}.get(content_type, "")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
