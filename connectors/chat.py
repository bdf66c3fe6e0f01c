"""Website chat (#18): a widget on the company's own site whose messages join the queue.

Nothing is polled: the widget posts to the web layer (inbox/web/chat.py), which hands each post to
`verify_webhook` and `parse_webhook` as a `WebhookRequest`, so the protocol lives here and is
testable without Flask. It is asynchronous by design:

- **The visitor token is the key.** The widget makes a random token (32 bytes, base64url) once and
  keeps it in the browser's storage; it travels in the `X-Mainland-Visitor` header, never in a
  cookie, so no other site can send it for the visitor (no CSRF) and no token is in a URL or a log.
  The store never holds the token: the visitor's id is HMAC-SHA256(signing_key("chat:<channel>"),
  token), which is the customer's `chat` identity and the conversation's thread key. Whoever does
  not hold the token cannot compute the id, so another visitor's history is out of reach.
- **Signed-in users.** A site that signs its users in may name the user (`data-user-id`) with
  `data-user-hash` = HMAC-SHA256(identity_secret, user id) in hex, made on its server; the visitor
  id is then derived from the user id instead of the token, so the user finds the same conversation
  on every device. A wrong hash is refused (401), never quietly taken as a new visitor.
- **Exactly once.** Each message carries a `client_id` (UUID) the widget makes before sending and
  keeps until the server confirms; the item's external id is "<visitor id>:<client_id>", so a resend
  after a dropped connection is stored once (and one visitor cannot collide with another's ids).
- **Text, or one file.** A visitor's message is plain text; control characters are dropped and the
  widget shows every message as text, never as HTML. A file is a message of its own, uploaded as the
  request's raw body (`parse_upload`) with its client id, name and type in headers: within `limits`
  (size, and the types of `FILE_TYPES`), its bytes checked against the type where the type has a
  signature, its name without path parts. The same client id twice is one message and one file.
- **Replies** are delivered by being stored: an agent's reply is a message of the conversation,
  and the widget reads the conversation (only sent replies; never notes), with the reply's files,
  which it fetches with the visitor token. `send` therefore only acknowledges; the outbox marks the
  reply sent and the widget fetches it. Once it is recorded as sent, `send_recorded` tells the listeners of
  this process (`on_reply_sent`: the web app wakes the visitor's waiting widget), so a reply sent by
  a worker in the web server's process reaches an open widget at once, not on its next look.
- **By email** (`email_channel`, `followup_minutes`): a reply the widget has not reported read follows
  the visitor by email, and a sign-in link by email opens the chat on another device; that is
  inbox/chat_followup.py's, this connector only declares the settings.

See docs/chat.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import unquote

from connectors.base import (
    N_,
    Connector,
    IdentityRule,
    ItemError,
    Limits,
    PermanentError,
    ProbeResult,
    Setting,
    WebhookRequest,
)
from connectors.webform import checked_origins
from inbox.attachments import safe_filename, type_mismatch
from inbox.models import Attachment, Author, FetchResult, InboundItem, OutboundReply
from inbox.sanitize import CONTROLS

#: The header that carries the visitor token (a custom header: a cross-site form cannot set it).
VISITOR_HEADER = "X-Mainland-Visitor"
#: A user the host site has signed in, and the site's proof of it (see `ChatConnector.user_visitor_id`).
USER_HEADER = "X-Mainland-User"
USER_HASH_HEADER = "X-Mainland-User-Hash"
MAX_USER_ID_CHARS = 200
#: 32 random bytes in base64url are 43 characters; longer tokens are allowed, shorter are guessable.
_VISITOR_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43,128}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_NAME_CHARS = 200
#: The largest JSON body of one message besides its text (client id, name, framing).
BODY_OVERHEAD_BYTES = 2048
#: A UTF-8 character takes at most 4 bytes, and JSON may escape it as a 12-character surrogate pair.
BYTES_PER_CHAR = 12
#: A file's client id and name (percent-encoded UTF-8) travel in headers; its type is the Content-Type.
CLIENT_ID_HEADER = "X-Mainland-Client-Id"
FILE_NAME_HEADER = "X-Mainland-File-Name"
#: The largest file either side may send (the installation's `max_attachment_bytes` may lower it).
MAX_FILE_BYTES = 10 * 1024 * 1024
#: What a visitor may send and receive: pictures a browser shows, PDF, plain text and office documents.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
FILE_TYPES = (
    *IMAGE_TYPES, "application/pdf", "text/plain", "text/csv",
    "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
)
#: The names of those files, for the widget's file picker (Chromium's picker takes extensions more
#: reliably than types).
FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".txt", ".csv", ".doc", ".docx", ".xls",
                   ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp")
#: Office files inbox/attachments.py has no signature for: the new ones are ZIP archives, the old OLE files.
_ZIP, _OLE = (b"PK\x03\x04",), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
_OFFICE_SIGNATURES = {
    "application/msword": _OLE, "application/vnd.ms-excel": _OLE, "application/vnd.ms-powerpoint": _OLE,
    **{kind: _ZIP for kind in FILE_TYPES if "openxmlformats" in kind or "opendocument" in kind},
}


class ChatRefused(PermanentError):
    """The post is not a genuine widget message. `reason`: "visitor" (no or a malformed visitor
    token), "unreadable" (not a JSON object), "empty", "too_long" or "client_id"; for a file
    "file_too_large", "file_type" (not an allowed type, or bytes that are not what the type says),
    "file_empty" or "file_incomplete" (fewer bytes arrived than announced)."""

    def __init__(self, message: str, *, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


#: Who wants to know, in this process, that a reply to a visitor was sent: (channel, visitor) -> None.
_sent_listeners: list[Callable[[str, str], None]] = []


def on_reply_sent(listener: Callable[[str, str], None]) -> None:
    """Call `listener(channel, visitor)` whenever this process records a chat reply as sent (once each)."""
    if listener not in _sent_listeners:
        _sent_listeners.append(listener)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return str(value or "")


def _decoded(name: str) -> str:
    """A percent-encoded file name (the widget's encodeURIComponent) as text."""
    return unquote(name[:1000], errors="replace")


def file_type(declared: str, filename: str) -> str:
    """The file's type: the one the browser declared, or (none, or a generic one) the name's extension's."""
    kind = declared.split(";")[0].strip().lower()
    if kind in ("", "application/octet-stream"):
        kind = (mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream").lower()
    return kind


def bytes_match_type(content_type: str, data: bytes) -> bool:
    """Whether the bytes are what the type says, as far as a signature tells (text: no NUL byte, which
    binary files have and text in any 8-bit charset has not; UTF-16 with its byte order mark is text)."""
    if type_mismatch(content_type, data):
        return False
    signatures = _OFFICE_SIGNATURES.get(content_type)
    if signatures is not None:
        return data.startswith(signatures)
    if content_type.startswith("text/"):
        return data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" not in data[:65536]
    return True


def valid_visitor_token(token: str) -> bool:
    """True for a token of the widget's shape (at least 32 random bytes in base64url)."""
    return bool(_VISITOR_TOKEN.match(token or ""))


class ChatConnector(Connector):
    """A chat widget on the company's site. Visitors post through the web layer; replies are stored."""

    kind = "chat"
    display_name = N_("Website chat")
    icon_text = "C"
    icon_color = "#1b6e53"
    push_only = True
    idempotent_sends = True  # "sending" is storing: a second time changes nothing the visitor sees
    #: Posts come through the chat's own endpoints (inbox/web/chat.py), with their origin check and
    #: per-visitor limits; the generic `POST /webhooks/<channel>` must not be a way around them.
    webhook_enabled = False
    own_endpoint = True
    #: A visitor is known by the HMAC of their widget's token (or of the host site's user id): one per
    #: person, never typed by anyone, so not a column of the customer import and no evidence in text.
    identities = (IdentityRule("chat", single=True, contacts_in_text=False, handle=False),)
    #: Files both ways (#18): one per message, of `FILE_TYPES`, up to `MAX_FILE_BYTES`; a reply's text and
    #: files are one message of the conversation, which the widget shows together.
    limits = Limits(max_text_length=4000, formatting="plain", supports_attachments=True,
                    max_attachment_bytes=MAX_FILE_BYTES, attachment_types=FILE_TYPES, max_attachments=5)

    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("title", default="", help=N_("Heading of the chat window (empty: a translated 'Chat with us').")),
        Setting("greeting", default="", help=N_("First line the visitor reads (empty: a translated greeting).")),
        Setting("color", default="#1b6e53", help=N_("The site's colour for the button and the visitor's messages "
                                                   "(#rrggbb, dark enough for white text).")),
        Setting("allowed_origins", default=(),
                help=N_("Sites that embed the widget, e.g. [\"https://www.example.com\"]. "
                        "Mainland's own origin is always allowed.")),
        Setting("identity_secret", secret=True, default="",
                help=N_("For sites that sign their users in: the secret of HMAC-SHA256(identity_secret, user_id), "
                        "which the site puts in the widget's data-user-hash so that a user finds their chat on "
                        "every device. Empty: visitors are known by their browser only.")),
        Setting("max_text_chars", default=4000, help=N_("Longest message a visitor may send, in characters.")),
        Setting("per_ip_per_hour", default=300, help=N_("Messages accepted from one IP address per hour.")),
        Setting("per_visitor_per_minute", default=20, help=N_("Messages accepted from one visitor per minute.")),
        # By email (#18): see `email_channel` and inbox/chat_followup.py.
        Setting("email_channel", default="",
                help=N_("An email channel (kind imap) through which an answer the visitor has not read in the chat "
                        "follows them by email, and sign-in links for another device go out. Empty: no email.")),
        Setting("followup_minutes", default=5,
                help=N_("Minutes an answer may stay unread in the chat before it follows the visitor by email.")),
    )

    #: Seconds since the epoch; tests replace it to travel in time.
    clock: ClassVar = staticmethod(time.time)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems: list[str] = []
        merged["allowed_origins"] = checked_origins(merged.get("allowed_origins"), problems)
        if not _COLOR.match(str(merged.get("color") or "")):
            problems.append("color: must be a colour like #1b6e53")
        for key in ("max_text_chars", "per_ip_per_hour", "per_visitor_per_minute", "followup_minutes"):
            value = merged.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{key}: must be a whole number of at least 1")
        if not isinstance(merged.get("email_channel"), str):
            problems.append("email_channel: must be the name of an email channel")
        if problems:
            raise PermanentError("; ".join(problems))
        return merged

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return self.config["allowed_origins"]

    @property
    def max_text_chars(self) -> int:
        return min(int(self.config["max_text_chars"]), self.limits.max_text_length or 4000)

    @property
    def max_request_bytes(self) -> int:
        """The largest body a genuine message can have; the web layer answers 413 above it."""
        return self.max_text_chars * BYTES_PER_CHAR + MAX_NAME_CHARS * BYTES_PER_CHAR + BODY_OVERHEAD_BYTES

    @property
    def max_file_bytes(self) -> int:
        """The largest file a visitor may send: the channel's cap, lowered by the installation's."""
        caps = [self.limits.max_attachment_bytes or MAX_FILE_BYTES]
        if self.context is not None and self.context.max_attachment_bytes:
            caps.append(self.context.max_attachment_bytes)
        return min(caps)

    # The visitor ------------------------------------------------------------------------------------

    def visitor_id(self, token: str) -> str:
        """The visitor's stable id (their identity and thread key); `ChatRefused` for a bad token."""
        if not valid_visitor_token(token):
            raise ChatRefused("the visitor token is missing or malformed", reason="visitor", status=401)
        if self.context is None:
            raise PermanentError("the chat needs the installation's signing key (no context given)")
        key = self.context.signing_key(f"chat:{self.name}")
        return hmac.new(key, token.encode("ascii"), hashlib.sha256).hexdigest()[:40]

    def user_visitor_id(self, user_id: str, user_hash: str) -> str:
        """The id of a visitor the host site signed in: the same on every device and browser.

        The site proves the user id with HMAC-SHA256(identity_secret, user_id) in hex (as Intercom's
        and Chatwoot's identity verification do); a wrong or missing hash, or a channel without an
        `identity_secret`, is refused, so nobody can claim another user's history by naming their id.
        """
        secret = str(self.config.get("identity_secret") or "")
        user_id = user_id.strip()
        if not secret or not user_id or len(user_id) > MAX_USER_ID_CHARS or CONTROLS.search(user_id):
            raise ChatRefused("this chat does not take signed-in users, or the user id is malformed",
                              reason="user", status=401)
        expected = hmac.new(secret.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, user_hash.strip().lower()):
            raise ChatRefused("the user hash does not match the user id", reason="user", status=401)
        if self.context is None:
            raise PermanentError("the chat needs the installation's signing key (no context given)")
        key = self.context.signing_key(f"chat:{self.name}")
        return hmac.new(key, b"user:" + user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:40]

    def visitor_of(self, request: WebhookRequest) -> str:
        """The visitor of a request: the signed-in user when the site names one, else the visitor token."""
        user_id = _header(request.headers, USER_HEADER)
        if user_id:
            return self.user_visitor_id(user_id, _header(request.headers, USER_HASH_HEADER))
        return self.visitor_id(_header(request.headers, VISITOR_HEADER).strip())

    # The connector contract -------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Refuse (`ChatRefused`) a post without a well-formed visitor token or over the size cap."""
        self.visitor_of(request)
        if len(request.body) > self.max_request_bytes:
            raise ChatRefused("the message is too long", reason="too_long", status=413)

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        """The visitor's message as one item; `ChatRefused` when it is not one."""
        visitor = self.visitor_of(request)
        try:
            data = json.loads(request.body.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            raise ChatRefused("the body is not valid JSON", reason="unreadable") from None
        if not isinstance(data, dict):
            raise ChatRefused("the body must be a JSON object", reason="unreadable")
        try:
            client_id = str(uuid.UUID(str(data.get("client_id") or "")))
        except ValueError:
            raise ChatRefused("client_id must be a UUID made by the widget", reason="client_id") from None
        text = data.get("text")
        if not isinstance(text, str):
            raise ChatRefused("text must be a string", reason="unreadable")
        # NUL and other control characters are never meaningful in a typed message.
        text = CONTROLS.sub("", text).replace("\r\n", "\n").strip()
        if not text:
            raise ChatRefused("write a message", reason="empty")
        if len(text) > self.max_text_chars:
            raise ChatRefused(f"at most {self.max_text_chars} characters", reason="too_long", status=413)
        name = data.get("name") if isinstance(data.get("name"), str) else ""
        name = " ".join(CONTROLS.sub(" ", name).split())[:MAX_NAME_CHARS]
        headers = self._headers(request)
        raw = json.dumps({"chat": 1, "visitor": visitor, "client_id": client_id, "name": name, "text": text,
                          "headers": headers}, ensure_ascii=False).encode("utf-8")
        return FetchResult(items=[self._item(visitor, client_id, name, text, headers, raw)], cursor=None)

    def parse_upload(self, request: WebhookRequest, announced: int | None = None) -> FetchResult:
        """A visitor's file (the request's raw body) as one item of its own; `ChatRefused` when it is
        not one the channel takes. `announced` is the Content-Length: fewer bytes mean the upload broke
        off (the widget sends it again with the same client id), so nothing is stored."""
        visitor = self.visitor_of(request)
        try:
            client_id = str(uuid.UUID(_header(request.headers, CLIENT_ID_HEADER).strip()))
        except ValueError:
            raise ChatRefused("the X-Mainland-Client-Id header must be a UUID", reason="client_id") from None
        data = request.body
        if announced is not None and len(data) < announced:
            raise ChatRefused("the file arrived incomplete", reason="file_incomplete")
        if len(data) > self.max_file_bytes:
            raise ChatRefused(f"at most {self.max_file_bytes} bytes", reason="file_too_large", status=413)
        if not data:
            raise ChatRefused("the file is empty", reason="file_empty")
        filename = safe_filename(_decoded(_header(request.headers, FILE_NAME_HEADER)), content_type="")
        content_type = file_type(_header(request.headers, "Content-Type"), filename)
        if not self.limits.accepts_type(content_type) or not bytes_match_type(content_type, data):
            raise ChatRefused(f"{content_type} files are not taken here", reason="file_type", status=415)
        attachment = Attachment(filename=filename, content_type=content_type, data=data, size=len(data))
        headers = self._headers(request)
        raw = json.dumps({"chat": 1, "visitor": visitor, "client_id": client_id, "name": "", "text": "",
                          "file": {"filename": filename, "content_type": content_type, "size": len(data)},
                          "headers": headers}, ensure_ascii=False).encode("utf-8")
        return FetchResult(items=[self._item(visitor, client_id, "", "", headers, raw, (attachment,))], cursor=None)

    def _headers(self, request: WebhookRequest) -> dict[str, str]:
        headers = {
            "Origin": _header(request.headers, "Origin")[:300],
            "User-Agent": _header(request.headers, "User-Agent")[:500],
            "Remote-Addr": (request.remote_addr or "")[:64],
        }
        return {k: " ".join(CONTROLS.sub(" ", v).split()) for k, v in headers.items() if v}

    def _item(self, visitor: str, client_id: str, name: str, text: str, headers: dict[str, str],
              raw: bytes, attachments: tuple[Attachment, ...] = ()) -> InboundItem:
        first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if not first_line and attachments:
            first_line = attachments[0].filename
        return InboundItem(
            channel=self.name,
            external_id=f"{visitor}:{client_id}",
            # Without a name the visitor is listed by a short, stable mark rather than a 40-digit id.
            author=Author(handle=visitor, name=name or f"Website visitor {visitor[:6]}", identity_kind="chat",
                          name_given=bool(name)),
            text=text,
            subject=first_line[:120],
            sent_at=dt.datetime.fromtimestamp(self.clock(), dt.UTC),
            thread_key=visitor,
            public=False,
            headers=headers,
            raw=raw,
            source_ref=f"chat:{visitor}:{client_id}",
            size=len(raw) + sum(a.size or 0 for a in attachments),
            attachments=attachments,
        )

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        """A stored message (the JSON kept as the item's raw bytes) as an item again."""
        try:
            data = json.loads(raw.decode("utf-8"))
            client_id = str(uuid.UUID(data["client_id"]))
            visitor = str(data["visitor"])
            text = str(data["text"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ItemError(f"not a stored chat message: {exc}") from None
        headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
        # A file's bytes are in the attachment store, not in the raw JSON: an item made again from it
        # names the file without its bytes.
        file = data.get("file") if isinstance(data.get("file"), dict) else None
        files = (Attachment(filename=str(file.get("filename") or ""), content_type=str(file.get("content_type") or ""),
                            size=int(file.get("size") or 0)),) if file else ()
        return self._item(visitor, client_id, str(data.get("name") or ""), text, headers, raw, files)

    def fetch(self, cursor: str | None) -> FetchResult:
        """Nothing to poll: messages arrive through the web layer."""
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply: OutboundReply) -> str:
        """The reply is already a message of the conversation, which the widget reads: acknowledge it."""
        if not reply.text.strip() and not reply.attachments:
            raise PermanentError("a chat reply needs text or a file")
        return f"chat:{reply.idempotency_key}"

    def send_recorded(self, reply: OutboundReply, provider_id: str) -> None:
        """The reply is recorded as sent: the visitor's widgets waiting in this process may show it now."""
        if reply.thread_key:
            for listener in list(_sent_listeners):
                listener(self.name, reply.thread_key)

    def probe(self) -> ProbeResult:
        """Nothing to connect to: the widget's script address, for the admin to embed."""
        base = (self.context.base_url if self.context else "").rstrip("/")
        return ProbeResult.said(True, N_("Website chat receives posts from its widget; nothing to connect to"),
                                detail=f'<script src="{base}/chat/widget.js" data-channel="{self.name}" defer></script>')
