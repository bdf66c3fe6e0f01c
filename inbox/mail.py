"""Email in and out: raw RFC 5322 bytes to an `InboundItem`, and an agent's reply to safe bytes.

Parsing is built to never lose a message: the structure is read with the lenient compat32 parser
(fast, and it records defects instead of raising), charsets that lie are decoded best-effort with a
visible flag, and broken MIME gives best-effort text. Only a message with no sender at all is
refused (`ItemError`), and the caller quarantines its bytes. The raw bytes always travel with the
item so that the original can be downloaded or reprocessed.

Outgoing mail is built with `email.message.EmailMessage` and `email.policy.SMTP`, whose generator
refuses headers with embedded newlines (CVE-2024-6923): a hostile subject or display name can
not add a header to our mail.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import re
from collections.abc import Iterable
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import formataddr, make_msgid, parsedate_to_datetime

from connectors.base import ItemError
from inbox import triage
from inbox.models import (
    FLAG_BAD_DATE,
    FLAG_BOUNCE,
    FLAG_CHARSET_FALLBACK,
    FLAG_INVALID_SENDER,
    FLAG_MALFORMED,
    FLAG_NO_MESSAGE_ID,
    FLAG_OVERSIZED,
    FLAG_TRUNCATED,
    Attachment,
    Author,
    InboundItem,
    OutboundReply,
)

MAX_TEXT_CHARS = 1_000_000
MAX_PARTS = 500
MAX_DEPTH = 20
MAX_REFERENCES = 50
MAX_HEADER_CHARS = 2000
#: Headers kept with each message (lower-case), for triage, threading and the agent's eye.
KEPT_HEADERS = (
    "from", "to", "cc", "reply-to", "date", "subject", "message-id", "in-reply-to", "auto-submitted",
    "precedence", "x-precedence", "list-id", "list-unsubscribe", "list-post", "return-path", "x-autoreply",
    "x-autorespond", "x-auto-response-suppress", "x-loop", triage.LOOP_HEADER.lower(), "authentication-results",
)
_MSGID_RE = re.compile(r"<([^<>\s]{1,500})>")
_MBOX_FROM = b"From "


def _header_text(value: object) -> str:
    """A header as readable text: RFC 2047 words decoded, unknown charsets tolerated, no newlines."""
    if value is None:
        return ""
    raw = str(value)
    if "=?" in raw:
        try:
            raw = str(make_header(decode_header(raw)))
        except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
            parts = []
            for chunk, charset in decode_header(raw):
                if isinstance(chunk, bytes):
                    parts.append(_decode_bytes(chunk, charset or "utf-8")[0])
                else:
                    parts.append(chunk)
            raw = "".join(parts)
    # Folded or hostile headers must not smuggle line breaks into views or replies.
    return " ".join(raw.split())[:MAX_HEADER_CHARS] if ("\n" in raw or "\r" in raw or "\t" in raw) else raw[
        :MAX_HEADER_CHARS
    ].strip()


def _decode_bytes(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode `data` as `charset`; on a lie, try UTF-8, then Windows-1252. Returns (text, fell_back)."""
    charset = (charset or "us-ascii").strip().strip('"').lower()
    try:
        return data.decode(charset), False
    except (LookupError, UnicodeDecodeError):
        pass
    if charset in {"us-ascii", "ascii"}:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    for fallback in ("utf-8", "cp1252"):
        try:
            return data.decode(fallback), True
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), True


def _message_ids(value: str) -> list[str]:
    return _MSGID_RE.findall(value or "")


def _sender(msg: Message) -> Author:
    """The author from From (or Sender); `ItemError` when there is none at all."""
    from_value = msg.get("From") or msg.get("Sender")
    if from_value is None:
        raise ItemError("no sender: the message has no From header")
    text = _header_text(from_value)
    try:
        header = email.policy.default.header_factory("from", text)
        addresses = [a for a in header.addresses if a.addr_spec and "@" in a.addr_spec]
        defects = header.defects
    except (IndexError, ValueError, TypeError, email.errors.HeaderParseError):
        addresses, defects = [], ["unparsable"]
    if addresses:
        address = addresses[0]
        valid = not defects and bool(address.username) and bool(address.domain) and " " not in address.addr_spec
        handle = address.addr_spec.strip()
        name = address.display_name or ""
        return Author(handle=_normalize_address(handle), name=name, identity_kind="email", valid=valid)
    # Something is there but it is no address we could answer: keep the customer, disable replies.
    fallback = re.search(r"[^\s<>\"]+@[^\s<>\"]+", text)
    if fallback:
        return Author(handle=_normalize_address(fallback.group(0)), name="", identity_kind="email", valid=False)
    stripped = text.strip().strip("<>").strip()
    if not stripped or stripped.endswith(":;") or "@" not in stripped:
        raise ItemError(f"no sender: the From header {text[:80]!r} holds no address")
    return Author(handle=stripped.lower()[:320], name="", identity_kind="email", valid=False)


def _normalize_address(address: str) -> str:
    """Lower-case the domain (case-insensitive by DNS) and, in practice, the local part too.

    RFC 5321 lets a server treat the local part case-sensitively, but no mail provider in use
    does, and customers type their address in any case; docs/identity.md explains the rule.
    """
    return address.strip().lower()


def external_id_for(raw: bytes, message_id: str | None, sender: str, date: str, subject: str) -> str:
    """The dedupe key of an email within its channel.

    A re-delivery of the same message (a rescan after UIDVALIDITY changed, an import run twice)
    has the same Message-ID, sender, date and subject and is dropped. Two different messages that
    share a Message-ID (a collision or a forgery) differ in the rest and are both kept. Mail without
    a Message-ID is known by the hash of its bytes.
    """
    if message_id:
        key = "\0".join((message_id, sender, date, subject)).encode("utf-8", "surrogateescape")
        return "mid:" + hashlib.sha256(key).hexdigest()[:40]
    return "raw:" + hashlib.sha256(raw).hexdigest()[:40]


def _strip_mbox_line(raw: bytes) -> bytes:
    if raw.startswith(_MBOX_FROM):
        end = raw.find(b"\n")
        return raw[end + 1 :] if end != -1 else b""
    return raw


def parse_email(
    raw: bytes,
    *,
    channel: str,
    source_ref: str | None = None,
    max_bytes: int | None = None,
    max_attachment_bytes: int | None = None,
) -> InboundItem:
    """Turn one raw email into an item. Raises `ItemError` only when there is no sender at all."""
    raw = _strip_mbox_line(raw)
    oversized = max_bytes is not None and len(raw) > max_bytes
    if oversized:
        header_end = raw.find(b"\r\n\r\n")
        header_end = raw.find(b"\n\n") if header_end == -1 else header_end
        to_parse = raw[: header_end if header_end != -1 else 65536] + b"\n\n"
    else:
        to_parse = raw
    msg = email.message_from_bytes(to_parse, policy=email.policy.compat32)
    return item_from_message(
        msg,
        raw,
        channel=channel,
        source_ref=source_ref,
        oversized_size=len(raw) if oversized else None,
        max_attachment_bytes=max_attachment_bytes,
    )


def parse_email_headers(header_bytes: bytes, size: int, *, channel: str, source_ref: str | None = None) -> InboundItem:
    """A stub item for a message too large to fetch, from its headers alone (IMAP RFC822.SIZE)."""
    msg = email.message_from_bytes(_strip_mbox_line(header_bytes) + b"\n\n", policy=email.policy.compat32)
    return item_from_message(msg, header_bytes, channel=channel, source_ref=source_ref, oversized_size=size)


def item_from_message(
    msg: Message,
    raw: bytes,
    *,
    channel: str,
    source_ref: str | None = None,
    oversized_size: int | None = None,
    max_attachment_bytes: int | None = None,
) -> InboundItem:
    flags: set[str] = set()
    author = _sender(msg)
    if not author.valid:
        flags.add(FLAG_INVALID_SENDER)

    headers: dict[str, str] = {}
    for name in KEPT_HEADERS:
        value = msg.get(name)
        if value is not None:
            headers[name] = _header_text(value)
    for name in msg.keys():  # List-* headers mark list mail, whatever their exact name
        lower = name.lower()
        if lower.startswith("list-") and lower not in headers:
            headers[lower] = _header_text(msg.get(name))
    flags |= triage.header_flags(headers, author.handle)

    subject = headers.get("subject", "")
    message_ids = _message_ids(headers.get("message-id", ""))
    bare_id = headers.get("message-id", "").strip()
    # Some mailers omit the angle brackets; an id without spaces is still an id.
    message_id = message_ids[0] if message_ids else (bare_id[:500] if bare_id and " " not in bare_id else None)
    if message_id is None:
        flags.add(FLAG_NO_MESSAGE_ID)
    references = _message_ids(headers.get("in-reply-to", "")) + _message_ids(_header_text(msg.get("references")))
    # Keep order, drop repeats; the nearest parent (In-Reply-To) is tried first by threading.
    references = list(dict.fromkeys(references))[:MAX_REFERENCES]

    sent_at = None
    date_header = headers.get("date", "")
    if date_header:
        try:
            sent_at = parsedate_to_datetime(date_header)
            if sent_at.tzinfo is None:
                sent_at = sent_at.replace(tzinfo=dt.UTC)
            if not (dt.datetime(1990, 1, 1, tzinfo=dt.UTC) <= sent_at <= dt.datetime.now(dt.UTC) + dt.timedelta(days=2)):
                flags.add(FLAG_BAD_DATE)
        except (TypeError, ValueError, IndexError, OverflowError):
            flags.add(FLAG_BAD_DATE)
            sent_at = None
    else:
        flags.add(FLAG_BAD_DATE)

    external_id = external_id_for(raw, message_id, author.handle, date_header, subject)
    defects = [type(d).__name__ for d in msg.defects]

    if oversized_size is not None:
        flags.add(FLAG_OVERSIZED)
        return InboundItem(
            channel=channel, external_id=external_id, author=author, subject=subject,
            text=f"[This message is {oversized_size:,} bytes, over the size limit: only its headers were stored.]",
            sent_at=sent_at, message_id=message_id, references=tuple(references), flags=frozenset(flags),
            headers=headers, raw=raw if len(raw) < 1_000_000 else None, source_ref=source_ref,
            size=oversized_size, defects=tuple(defects),
        )

    body = _Body(max_attachment_bytes=max_attachment_bytes)
    body.walk(msg, depth=0)
    flags |= body.flags
    defects.extend(body.defects)
    if defects:
        flags.add(FLAG_MALFORMED)
    if body.bounce_of:
        flags.add(FLAG_BOUNCE)
        references = list(dict.fromkeys(references + body.bounce_of))[:MAX_REFERENCES]

    text = body.text
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        flags.add(FLAG_TRUNCATED)
    return InboundItem(
        channel=channel,
        external_id=external_id,
        author=author,
        text=text,
        html=body.html,
        subject=subject,
        sent_at=sent_at,
        message_id=message_id,
        references=tuple(references),
        attachments=tuple(body.attachments),
        flags=frozenset(flags),
        headers=headers,
        raw=raw,
        source_ref=source_ref,
        size=len(raw),
        defects=tuple(dict.fromkeys(defects)),
    )


class _Body:
    """Collects text, HTML and attachments from a MIME tree, within part and depth caps."""

    def __init__(self, *, max_attachment_bytes: int | None) -> None:
        self.max_attachment_bytes = max_attachment_bytes
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.attachments: list[Attachment] = []
        self.flags: set[str] = set()
        self.defects: list[str] = []
        self.bounce_of: list[str] = []
        self.parts = 0

    @property
    def text(self) -> str:
        return "\n\n".join(t for t in self.texts if t.strip())

    @property
    def html(self) -> str | None:
        return "\n".join(self.htmls) if self.htmls else None

    def walk(self, part: Message, depth: int) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            self.flags.add(FLAG_TRUNCATED)
            return
        if part is not None and depth > 0:
            self.defects.extend(type(d).__name__ for d in part.defects)
        ctype = part.get_content_type()
        if part.is_multipart():
            payload = part.get_payload()
            if ctype == "multipart/report" and part.get_param("report-type", "").lower() == "delivery-status":
                self._read_bounce(payload)
            if ctype == "message/rfc822" or (depth > 0 and not isinstance(payload, list)):
                self._attach_message(part)
                return
            if ctype == "multipart/alternative":
                self._walk_alternative(payload, depth)
                return
            for sub in payload if isinstance(payload, list) else []:
                if isinstance(sub, Message):
                    self.walk(sub, depth + 1)
            return
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = self._filename(part)
        if ctype in {"text/plain", "text/html"} and disposition != "attachment" and not filename:
            text, fell_back = self._decode(part)
            if fell_back:
                self.flags.add(FLAG_CHARSET_FALLBACK)
            (self.texts if ctype == "text/plain" else self.htmls).append(text)
            return
        if ctype in {"message/delivery-status", "text/rfc822-headers"}:
            text, _ = self._decode(part)
            if ctype == "text/rfc822-headers":
                self.bounce_of.extend(_message_ids(_find_header(text, "message-id")))
            self.texts.append(text)
            return
        self._attach(part, ctype, filename, disposition)

    def _walk_alternative(self, payload: object, depth: int) -> None:
        # Keep the plain and the HTML versions; agents see HTML, search and text channels use text.
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                self.walk(sub, depth + 1)

    def _read_bounce(self, payload: object) -> None:
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message) and sub.get_content_type() == "message/rfc822":
                inner = sub.get_payload()
                inner = inner[0] if isinstance(inner, list) and inner else inner
                if isinstance(inner, Message):
                    self.bounce_of.extend(_message_ids(_header_text(inner.get("Message-ID"))))

    def _decode(self, part: Message) -> tuple[str, bool]:
        data = part.get_payload(decode=True)
        if data is None:
            data = str(part.get_payload()).encode("utf-8", "replace")
        return _decode_bytes(data, part.get_content_charset())

    def _filename(self, part: Message) -> str:
        try:
            name = part.get_filename()
        except (LookupError, UnicodeError, ValueError):
            name = None
        return _header_text(name) if name else ""

    def _attach_message(self, part: Message) -> None:
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        try:
            data = inner.as_bytes(policy=email.policy.compat32) if isinstance(inner, Message) else b""
        except (LookupError, UnicodeError, ValueError, TypeError, IndexError):
            data = str(inner).encode("utf-8", "replace")
        self._store(Attachment(filename=self._filename(part) or "forwarded-message.eml",
                               content_type="message/rfc822", data=data, size=len(data)))

    def _attach(self, part: Message, ctype: str, filename: str, disposition: str) -> None:
        try:
            data = part.get_payload(decode=True)
        except (ValueError, TypeError, IndexError):  # broken uuencode or base64
            data = None
        if data is None:
            data = str(part.get_payload()).encode("utf-8", "replace")
        content_id = _message_ids(str(part.get("Content-ID") or ""))
        self._store(Attachment(
            filename=filename,
            content_type=ctype,
            data=data,
            size=len(data),
            content_id=content_id[0] if content_id else None,
            inline=disposition == "inline" or bool(content_id),
        ))

    def _store(self, attachment: Attachment) -> None:
        if self.max_attachment_bytes is not None and (attachment.size or 0) > self.max_attachment_bytes:
            # Keep the fact of it (name, size) without the bytes; the raw message still has them.
            self.flags.add(FLAG_TRUNCATED)
            attachment = Attachment(filename=attachment.filename, content_type=attachment.content_type, data=None,
                                    size=attachment.size, content_id=attachment.content_id, inline=attachment.inline)
        self.attachments.append(attachment)


def _find_header(block: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}:\s*(.+)$", block, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else ""


# Outgoing --------------------------------------------------------------------------------------


def reply_subject(subject: str | None) -> str:
    subject = " ".join((subject or "").split()) or "(no subject)"
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def conversation_message_id(token: str, unique: str, domain: str) -> str:
    """A Message-ID that names its conversation, so replies thread even if the subject changes."""
    return f"<mainland.{token}.{unique}@{domain}>"


_TOKEN_IN_MSGID = re.compile(r"^mainland\.([A-Za-z0-9]{6,32})\.[^@]+@")
_TOKEN_IN_SUBJECT = re.compile(r"\[#([A-Z0-9]{8})\]")


def tokens_in(references: Iterable[str], subject: str | None) -> list[str]:
    """Conversation tokens found in our own Message-IDs and in a `[#TOKEN]` subject tag."""
    found = [m.group(1) for ref in references if (m := _TOKEN_IN_MSGID.match(ref))]
    found += _TOKEN_IN_SUBJECT.findall(subject or "")
    return list(dict.fromkeys(found))


def build_reply(
    reply: OutboundReply,
    *,
    from_address: str,
    from_name: str | None,
    instance_id: str,
    domain: str,
    token: str | None = None,
) -> EmailMessage:
    """The email for an agent's reply, threaded to what it answers, marked against loops."""
    msg = EmailMessage(policy=email.policy.SMTP)
    # formataddr + the SMTP policy quote or encode any name; a newline in it cannot start a header.
    msg["From"] = formataddr((" ".join((from_name or "").split()), from_address))
    msg["To"] = formataddr((" ".join((reply.to.name or "").split()), reply.to.handle))
    subject = reply_subject(reply.subject)
    if token and f"[#{token}]" not in subject:
        subject = f"{subject} [#{token}]"
    msg["Subject"] = subject
    msg["Message-ID"] = reply.message_id or make_msgid(domain=domain)
    msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
    if reply.reply_to_message_id:
        msg["In-Reply-To"] = f"<{reply.reply_to_message_id}>"
    refs = [r for r in reply.references if r] + (
        [reply.reply_to_message_id] if reply.reply_to_message_id and reply.reply_to_message_id not in reply.references
        else []
    )
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs[-MAX_REFERENCES:])
    msg["Auto-Submitted"] = "no"
    msg[triage.LOOP_HEADER] = instance_id
    msg.set_content(reply.text)
    if reply.html:
        msg.add_alternative(reply.html, subtype="html")
    for att in reply.attachments:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(att.data or b"", maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=att.filename)
    return msg
