"""Email in and out: raw RFC 5322 bytes to an `InboundItem`, and an agent's reply to safe bytes.

Parsing is built to never lose a message: the structure is read with the lenient compat32 parser
(fast, and it records defects instead of raising), charsets that lie are decoded best-effort with a
visible flag, and broken MIME gives best-effort text. Only a message with no sender at all is
refused (`ItemError`), and the caller quarantines its bytes. The raw bytes always travel with the
item so that the original can be downloaded or reprocessed.

Every input is hostile (reliability.md 4.1): header and parameter lengths that make the stdlib
slow are capped (SEC-15), nesting deeper than the stack falls back to text, a part that cannot
be read becomes a defect rather than an exception, and no string leaves with lone surrogates.

Outgoing mail is built with `email.message.EmailMessage` and `email.policy.SMTP`. CPython before
3.11.10 writes out newlines that an encoded-word in a header value decodes to (CVE-2024-6923),
so values are decoded and flattened first and the folded headers are checked before returning:
a hostile subject or display name cannot add a header to our mail.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import hashlib
import re
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import make_msgid, parsedate_to_datetime
from typing import NamedTuple

from inbox import charsets, clock, triage
from inbox.errors import ItemError
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
#: Parts looked at for the charsets a message declares (hints for its raw 8-bit headers).
MAX_HINT_PARTS = 50
MAX_HEADER_CHARS = 2000
#: Header bytes looked at at all; the rest of a longer header is hostile padding (SEC-15).
MAX_RAW_HEADER_CHARS = 16_000
#: Content-Type/-Disposition longer than this are cut before their parameters are parsed:
#: the stdlib parameter parser takes quadratic time (50,000 parameters: seconds).
MAX_PARAM_HEADER_CHARS = 8_000
#: RFC 2046 allows 70 characters; the stdlib compiles each boundary into a regex.
MAX_BOUNDARY_CHARS = 200
MAX_ADDRESS_CHARS = 320
#: Bytes of a message over the size cap that are read for its headers and text (see parse_email_prefix).
MAX_OVERSIZE_PREFIX_BYTES = 1024 * 1024
#: Defects that cutting a message short causes by itself; they say nothing about the mail.
_CUT_DEFECTS = frozenset({"CloseBoundaryNotFoundDefect", "InvalidBase64PaddingDefect", "InvalidBase64LengthDefect",
                          "InvalidBase64CharactersDefect", "InvalidUuencodeDefect"})
#: The author of a delivery report that names no sender (`.invalid` is reserved, RFC 2606).
DSN_SENDER = "mailer-daemon@unknown.invalid"
#: Flag: the receiving server's DMARC check failed, so the From address is not proven (IN-35).
FLAG_UNVERIFIED_SENDER = "unverified_sender"
#: From headers longer than this are not given to the strict address parser, which takes
#: quadratic time on runs of quotes or commas (2,000 quotes: 0.25 s).
MAX_FROM_PARSE_CHARS = 1000
#: Headers kept with each message (lower-case), for triage, threading and the agent's eye.
KEPT_HEADERS = (
    "from", "to", "cc", "reply-to", "date", "subject", "message-id", "in-reply-to", "auto-submitted",
    "precedence", "x-precedence", "list-id", "list-unsubscribe", "list-post", "return-path", "x-autoreply",
    "x-autorespond", "x-auto-response-suppress", "x-loop", triage.LOOP_HEADER.lower(), "authentication-results",
)
_MSGID_RE = re.compile(r"<([^<>\s]{1,500})>")
_WORD_CHARSET = re.compile(r"=\?([^?*\s]{1,75})[?*]")
_MBOX_FROM = b"From "
#: A header field line (RFC 5322 2.2: printable ASCII but the colon, then a colon).
_FIELD_LINE = re.compile(rb"[!-9;-~]{1,200}:")
_MAIL_FIELD_LINE = re.compile(rb"^(?:from|sender|reply-to|return-path|received|message-id|date|subject|to)[ \t]*:",
                              re.IGNORECASE | re.MULTILINE)
_HEAD_END = re.compile(rb"\n\r?\n")
#: Lines looked at for junk before the headers, and bytes of the header block that are tidied at all.
MAX_JUNK_LINES = 20
MAX_TIDY_HEAD_BYTES = 256 * 1024
_SURROGATES = re.compile("[\udc80-\udcff]")
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
#: `<addr>` at the very end of a header: the address of a From with a giant display name.
_TRAILING_ADDR = re.compile(r"<([^<>\s]{1,320})>\s*$")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")
_BASE64_BAD = re.compile(r"[^A-Za-z0-9+/=\s]|=[^=\s]")
_DROP_WHITESPACE = dict.fromkeys(map(ord, " \t\r\n\f\v"))
_UU_END = re.compile(r"^end\s*$", re.MULTILINE)
_UUENCODE = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_PLAIN_TRANSFER_ENCODINGS = frozenset({"", "7bit", "8bit", "binary", "quoted-printable"})
#: Defect recorded when reading one MIME part raised; the rest of the message is kept.
UNREADABLE_PART = "UnreadablePartDefect"
_PART_ERRORS = (ValueError, TypeError, LookupError, IndexError, AttributeError, UnicodeError, KeyError,
                email.errors.MessageError)
_DMARC_FAIL = re.compile(r"\bdmarc\s*=\s*fail\b", re.IGNORECASE)
_PARAM_HEADERS = frozenset({"content-type", "content-disposition"})
_RETURNED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global", "message/global-headers"})
#: Header defects that concern only how a display name was encoded, not the address.
_NAME_ONLY_DEFECTS = ("encoded word", "encoded-word", "period in 'phrase'")
_NAME_ONLY_DEFECT_TYPES = frozenset({
    "CharsetError", "InvalidBase64CharactersDefect", "InvalidBase64PaddingDefect", "InvalidBase64LengthDefect",
    "UndecodableBytesDefect",
})


@dataclass
class _HeaderCharsets:
    """While one message is read: the charsets it declares (raw 8-bit header bytes are written in
    the body's charset, so they are tried first) and whether any header text had to be guessed."""

    hints: tuple[str, ...] = ()
    guessed: bool = False


_HEADER_CHARSETS: ContextVar[_HeaderCharsets | None] = ContextVar("mainland_header_charsets", default=None)


def _fix_8bit(raw: str) -> str:
    """Undo compat32's surrogate escapes: raw 8-bit header bytes read as UTF-8, else guessed."""
    if raw.isascii() or not _SURROGATES.search(raw):
        return raw
    context = _HEADER_CHARSETS.get()
    text, guessed = charsets.decode_8bit_header(raw.encode("utf-8", "surrogateescape"),
                                                context.hints if context else ())
    if guessed and context is not None:
        context.guessed = True
    return text


def _scrub(text: str) -> str:
    """No lone surrogates (from UTF-7, or an unknown charset decoded with surrogateescape):
    SQLite and every encoder refuse them, and one such string would fail its whole batch."""
    if text.isascii():
        return text
    return _LONE_SURROGATES.sub("\ufffd", text)


def _header_text(value: object) -> str:
    """A header as readable text: RFC 2047 words decoded, unknown charsets tolerated, no newlines."""
    if value is None:
        return ""
    # Decoding encoded-words costs more than linear time; what is kept is capped anyway.
    raw = _fix_8bit(str(value)[:MAX_RAW_HEADER_CHARS])
    if "=?" in raw:
        raw = _decode_words(raw)
    # Folded or hostile headers must not smuggle line breaks or NULs into views or replies.
    if not raw.isprintable():
        raw = " ".join(_CONTROL_CHARS.sub(" ", _scrub(raw)).split())
    return raw[:MAX_HEADER_CHARS].strip()


def _decode_words(raw: str) -> str:
    """RFC 2047 encoded-words decoded; a word in an unknown charset or with broken base64 is
    decoded best-effort (see `charsets.decode_words`) instead of failing the whole header."""
    context = _HEADER_CHARSETS.get()
    text, guessed = charsets.decode_words(raw, context.hints if context else ())
    if guessed and context is not None:
        context.guessed = True
    return text


def _declared_charsets(msg: Message) -> tuple[str, ...]:
    """The legacy charsets a message declares, in its parts and its encoded-words: hints for raw 8-bit headers."""
    found: list[str] = []
    stack, seen = [msg], 0
    while stack and seen < MAX_HINT_PARTS:
        part = stack.pop(0)
        seen += 1
        try:
            label = part.get_content_charset()
        except _PART_ERRORS:
            label = None
        if label:
            found.append(label)
        payload = _raw_payload(part)
        if isinstance(payload, list):
            stack.extend(p for p in payload[:MAX_HINT_PARTS] if isinstance(p, Message))
    for name, raw in msg._headers[:100]:
        # An ASCII value without `=?` names no charset: skip decoding it for the look.
        if raw.__class__ is not str or "=?" in raw or not raw.isascii():
            found += _WORD_CHARSET.findall(str(msg.policy.header_fetch_parse(name, raw))[:MAX_RAW_HEADER_CHARS])
    return tuple(label for label in dict.fromkeys(x.lower() for x in found)
                 if charsets.codec_for(label) not in (None, "utf-8") and label not in ("us-ascii", "ascii"))


def _message_ids(value: str) -> list[str]:
    return _MSGID_RE.findall(value or "")


def _sender(msg: Message) -> Author:
    """The party of a mail; `ItemError` only when no header names one.

    The first From that holds an address, else Sender (RFC 5322 3.6.2), Reply-To and the envelope's
    Return-Path: a From that is only a name, `<>` or an empty group must not cost the customer their
    message. A delivery report (RFC 3464) without any is from the mail system.
    """
    froms = [value for value in (msg.get_all("From") or [])[:10] if value is not None]
    for value in froms:
        if (author := _author_from(value)) is not None:
            return author
    name = _name_only(froms[0]) if froms else ""
    for header in ("Sender", "Reply-To", "Return-Path"):
        value = msg.get(header)
        if value is not None and (author := _author_from(value)) is not None:
            return author if author.name or not name else dataclasses.replace(author, name=name)
    if msg.get_content_type() == "multipart/report":
        # A delivery report some MTAs send with no or an empty From (Chatwoot's `bounced_with_no_from`):
        # it is mail from the mail system, and it must still reach the reply it reports on.
        return Author(handle=DSN_SENDER, name="Mail Delivery System", identity_kind="email", valid=False)
    if not froms:
        raise ItemError("no sender: the message has no From header")
    raise ItemError(f"no sender: the From header {_header_text(froms[0])[:80]!r} holds no address")


def _name_only(value: object) -> str:
    """The display name of a From that holds no address (`"Jane Doe" <>`), for the address found elsewhere."""
    text = _header_text(value).replace("<>", "").strip()
    return "" if text.endswith(";") else text.strip('"').strip()[:MAX_HEADER_CHARS]


def _author_from(from_value: object) -> Author | None:
    """The author one From-like header names, or None when it holds no address.

    The header is parsed *before* its encoded-words are decoded (by `email.headerregistry`, which
    decodes them inside the display name only): decoding first would let a display name such as
    `=?utf-8?q?<victim@example.com>?=` pose as the address (IN-19).
    """
    raw = _FOLD.sub("", _fix_8bit(str(from_value)))
    long_name = None
    if len(raw) > MAX_FROM_PARSE_CHARS:
        # A giant display name (RT CVE-2014-1474 shape): keep the address at its end, cap the name.
        tail = _TRAILING_ADDR.search(raw, len(raw) - 400)
        if tail:
            long_name = _header_text(raw[: tail.start()]).strip().strip('"').strip()
            raw = raw[tail.start():]
        else:
            raw = raw[:MAX_FROM_PARSE_CHARS]
    raw = " ".join(_CONTROL_CHARS.sub(" ", raw).split())
    addresses, defects = _parse_addresses(raw)
    if not addresses and (tail := _TRAILING_ADDR.search(raw)):
        # The strict parser gave up on the display name (an encoded newline, say); the address
        # itself may still be there, but such a header does not get replies.
        addresses, _ = _parse_addresses(tail.group(0))
        defects = ["unparsable display name"]
        long_name = _header_text(raw[: tail.start()]).strip().strip('"').strip()
    if addresses:
        address = addresses[0]
        handle = _scrub(address.addr_spec.strip())
        valid = len(addresses) == 1 and not defects and _plausible_address(handle)
        if long_name is None and len(addresses) == 1 and "=?" in raw and (tail := _TRAILING_ADDR.search(raw)):
            # The stdlib decodes encoded-words in a display name with the label as it stands (gb2312
            # for GBK text); ours widen it to what mailers write. The address still comes from above.
            long_name = _header_text(raw[: tail.start()]).strip().strip('"').strip()
        name = long_name if long_name is not None else " ".join(_header_text(address.display_name).split())
        return Author(handle=_normalize_address(handle)[:MAX_ADDRESS_CHARS], name=name[:MAX_HEADER_CHARS],
                      identity_kind="email", valid=valid)
    text = _header_text(raw)
    # Something is there but it is no address we could answer: keep the customer, disable replies.
    fallback = re.search(r"[^\s<>\"]{1,256}@[^\s<>\"]{1,256}", text)
    if fallback:
        return Author(handle=_normalize_address(fallback.group(0))[:MAX_ADDRESS_CHARS], name="",
                      identity_kind="email", valid=False)
    stripped = text.strip().strip("<>").strip()
    if not stripped or stripped.endswith(":;") or "@" not in stripped:
        return None
    return Author(handle=stripped.lower()[:MAX_ADDRESS_CHARS], name="", identity_kind="email", valid=False)


class _PlainAddress(NamedTuple):
    """A mailbox read by the cheap path: what `email.headerregistry.Address` gives for the same value."""

    display_name: str
    addr_spec: str


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
#: The common From shapes, in ASCII without comments, encoded-words, escapes or lists: `addr`,
#: `<addr>`, `Name Words <addr>`, `"Any, Name" <addr>` (dot-atom local part and domain). A name that
#: ends in a period is left to the full parser, which finds a defect there ("comment found without atom").
_PLAIN_FROM = re.compile(
    rf'(?P<bare>{_DOT_ATOM}@{_DOT_ATOM})'
    rf'|(?:(?P<phrase>{_ATEXT}[A-Za-z0-9!#$%&\'*+/=?^_`{{|}}~.-]*(?: {_ATEXT}[A-Za-z0-9!#$%&\'*+/=?^_`{{|}}~.-]*)*)(?<!\.)'
    rf'|"(?P<quoted>[^"\\]*)")? ?<(?P<angle>{_DOT_ATOM}@{_DOT_ATOM})>'
)


def _plain_addresses(raw: str) -> list[_PlainAddress] | None:
    """The mailbox of a From in one of the common plain shapes, or None when the full parser must decide.

    The modern header parser costs about a millisecond per From; most mail writes one of a few
    shapes in which it finds exactly this mailbox and no defect that concerns the address (a
    period in an unquoted name is a defect about the name only). tests/test_mail_fast_path.py
    holds this to the full parser's answer on the corpus and on hostile headers.
    """
    if "=?" in raw or not raw.isascii():
        return None
    match = _PLAIN_FROM.fullmatch(raw)
    if match is None:
        return None
    if match["bare"] is not None:
        return [_PlainAddress("", match["bare"])]
    name = match["quoted"] if match["quoted"] is not None else match["phrase"] or ""
    return [_PlainAddress(name, match["angle"])]


def _parse_addresses(raw: str) -> tuple[list, list]:
    """Mailboxes with an `@` in a From value, and the defects that matter for the address."""
    plain = _plain_addresses(raw)
    if plain is not None:
        return plain, []
    return _parse_addresses_fully(raw)


def _parse_addresses_fully(raw: str) -> tuple[list, list]:
    """`_parse_addresses` by the modern header parser (`email.policy.default`), for any From."""
    try:
        header = email.policy.default.header_factory("from", raw)
        addresses = [a for a in header.addresses if a.addr_spec and "@" in a.addr_spec]
        defects = [d for d in header.defects if type(d).__name__ not in _NAME_ONLY_DEFECT_TYPES
                   and not any(word in str(d) for word in _NAME_ONLY_DEFECTS)]
    # RecursionError: thousands of nested comments `((((` (SEC-15).
    except (IndexError, ValueError, TypeError, AttributeError, RecursionError, email.errors.HeaderParseError):
        return [], ["unparsable"]
    return addresses, defects


def _plausible_address(address: str) -> bool:
    """A plain `local@domain.tld` we could send to: dot-atom ASCII local part, no quotes, no literals."""
    local, _, domain = address.rpartition("@")
    if not local or len(address) > 254 or not _LOCAL_PART.fullmatch(local):
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)


def _normalize_address(address: str) -> str:
    """Lower-case the domain (case-insensitive by DNS) and, in practice, the local part too.

    RFC 5321 lets a server treat the local part case-sensitively, but no mail provider in use
    does, and customers type their address in any case; docs/architecture.md, "Identities", explains the rule.
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


class JunkBeforeHeadersDefect(email.errors.MessageDefect):
    """Lines that are no header came before the header block (a gateway's banner, blank lines); skipped."""


class MalformedHeaderLineDefect(email.errors.MessageDefect):
    """A line inside the header block was neither a field nor a continuation; skipped, the fields after it kept."""


def _tidy_head(data: bytes) -> tuple[bytes, list[email.errors.MessageDefect]]:
    """The message with its header block made readable for the parser, and what was wrong with it.

    The stdlib ends the header block at the first line that is not a field: junk before the headers
    (or an mbox `From ` line after a blank line) makes the whole mail a body without From, and one
    broken line in the middle loses every field after it. Such lines are skipped here; the raw
    original is kept as it came.
    """
    defects: list[email.errors.MessageDefect] = []
    lines = data[:MAX_TIDY_HEAD_BYTES].split(b"\n", MAX_JUNK_LINES)[:MAX_JUNK_LINES]
    if lines and not _FIELD_LINE.match(lines[0]):
        start = next((i for i, line in enumerate(lines) if _FIELD_LINE.match(line)), None)
        if start is not None and _MAIL_FIELD_LINE.search(b"\n".join(lines[start:])):
            junk = lines[:start]
            if any(line.strip() and not line.startswith((b"From ", b">From ")) for line in junk):
                defects.append(JunkBeforeHeadersDefect())
            data = data[sum(len(line) + 1 for line in junk):]
    end = _HEAD_END.search(data, 0, MAX_TIDY_HEAD_BYTES)
    if end is None:
        return data, defects
    head = data[: end.start() + 1].split(b"\n")
    fields = [i for i, line in enumerate(head) if _FIELD_LINE.match(line)]
    if not fields:
        return data, defects
    kept = [line for i, line in enumerate(head)
            if i >= fields[-1] or _FIELD_LINE.match(line) or line[:1] in (b" ", b"\t")]
    if len(kept) == len(head):
        return data, defects
    defects.append(MalformedHeaderLineDefect())
    return b"\n".join(kept) + data[end.start() + 1 :], defects


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
    """Turn one raw email into an item. Raises `ItemError` only when there is no sender at all.

    A message over `max_bytes` is read from its first `oversize_prefix_bytes(max_bytes)` only (see
    `parse_email_prefix`), as the IMAP connector fetches it.
    """
    raw = _strip_mbox_line(raw)
    if max_bytes is not None and len(raw) > max_bytes:
        return parse_email_prefix(raw[: oversize_prefix_bytes(max_bytes)], len(raw), channel=channel,
                                  source_ref=source_ref, max_attachment_bytes=max_attachment_bytes)
    to_parse, head_defects = _tidy_head(raw)
    msg = _parse_bytes(to_parse)
    msg.defects.extend(head_defects)
    return item_from_message(msg, raw, channel=channel, source_ref=source_ref,
                             max_attachment_bytes=max_attachment_bytes)


def oversize_prefix_bytes(max_bytes: int) -> int:
    """How much of a message over the size cap is read: enough for its headers and text."""
    return max(min(max_bytes, MAX_OVERSIZE_PREFIX_BYTES), 1)


def parse_email_prefix(prefix: bytes, size: int, *, channel: str, source_ref: str | None = None,
                       max_attachment_bytes: int | None = None) -> InboundItem:
    """A message over the size cap from its first bytes: headers and text kept, the rest dropped.

    Mailers put the text first (the multipart/alternative body, then the attachments), so the
    first bytes hold what the customer wrote. The part the cut falls into, if it is a file, and
    every part after it are not stored; a note at the end of the text says so, and the message is
    flagged `oversized` and `truncated`. The original stays where it came from.
    """
    prefix = _strip_mbox_line(prefix)
    to_parse = prefix[: prefix.rfind(b"\n") + 1] or prefix  # no half line
    to_parse, head_defects = _tidy_head(to_parse)
    msg = _parse_bytes(to_parse)
    msg.defects.extend(head_defects)
    return item_from_message(msg, prefix, channel=channel, source_ref=source_ref, oversized_size=size,
                             max_attachment_bytes=max_attachment_bytes)


class NestingTooDeepDefect(email.errors.MessageDefect):
    """The MIME tree was nested deeper than the parser can follow; the body was kept as text."""


class _Policy(email.policy.Compat32):
    """compat32, except that raw 8-bit header bytes read as text (UTF-8, else Windows-1252).

    Plain compat32 turns every such byte into U+FFFD: `Grüße` would show as `Gr����e`.
    """

    def header_fetch_parse(self, name: str, value: str) -> object:
        if value.__class__ is str and not value.isascii():
            return _fix_8bit(value)
        return super().header_fetch_parse(name, value)


_POLICY = _Policy()


class _Message(Message):
    """compat32 `Message` that will not spend quadratic time on hostile MIME parameters (SEC-15).

    The stdlib parses a Content-Type's parameters anew on every `get_param` call, in time
    quadratic in the header's length, and compiles each multipart boundary into a regular
    expression. Parameter headers are cut at `MAX_PARAM_HEADER_CHARS` and a boundary longer than
    `MAX_BOUNDARY_CHARS` counts as none (the part's body is then read as text).

    Header look-ups go through an index built once per message instead of compat32's linear scan.
    """

    #: The header index: lower-case name -> its (name, raw value) pairs in order, built once per
    #: message (compat32 scans every header and lower-cases its name on each look-up: ~36 per message).
    _index: dict[str, list[tuple[str, str]]] | None = None
    _indexed: tuple[int, int] = (0, -1)

    def _lookup(self, name: str) -> list[tuple[str, str]]:
        headers = self._headers
        # The parser appends while it reads (the length tells); the mutators below drop the index.
        if self._index is None or self._indexed != (id(headers), len(headers)):
            index: dict[str, list[tuple[str, str]]] = {}
            for pair in headers:
                index.setdefault(pair[0].lower(), []).append(pair)
            self._index, self._indexed = index, (id(headers), len(headers))
        return self._index.get(name.lower(), ())

    def get(self, name: str, failobj: object = None) -> object:
        found = self._lookup(name)
        if not found:
            return failobj
        key, raw = found[0]
        value = self.policy.header_fetch_parse(key, raw)
        if value.__class__ is str and len(value) > MAX_PARAM_HEADER_CHARS and name.lower() in _PARAM_HEADERS:
            return value[:MAX_PARAM_HEADER_CHARS]
        return value

    def get_all(self, name: str, failobj: object = None) -> object:
        found = self._lookup(name)
        if not found:
            return failobj
        return [self.policy.header_fetch_parse(key, raw) for key, raw in found]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._lookup(name))

    # Every stdlib mutator but `set_raw` (the parser's append, which the length check sees) drops the index.
    def __setitem__(self, name: str, val: object) -> None:
        self._index = None
        super().__setitem__(name, val)

    def __delitem__(self, name: str) -> None:
        self._index = None
        super().__delitem__(name)

    def replace_header(self, _name: str, _value: str) -> None:
        self._index = None
        super().replace_header(_name, _value)

    def add_header(self, _name: str, _value: str, **_params: object) -> None:
        self._index = None
        super().add_header(_name, _value, **_params)

    def set_boundary(self, boundary: str) -> None:
        self._index = None
        super().set_boundary(boundary)

    def get_boundary(self, failobj: object = None) -> object:
        boundary = super().get_boundary(failobj)
        if isinstance(boundary, str) and len(boundary) > MAX_BOUNDARY_CHARS:
            return failobj
        return boundary


def _parse_bytes(data: bytes) -> Message:
    try:
        return email.message_from_bytes(data, _class=_Message, policy=_POLICY)
    except RecursionError:
        # MIME nested deeper than the interpreter's stack (IN-25): headers parsed, body kept as text.
        end = data.find(b"\r\n\r\n")
        end, gap = (data.find(b"\n\n"), 2) if end == -1 else (end, 4)
        head, body = (data, b"") if end == -1 else (data[:end], data[end + gap :])
        msg = email.message_from_bytes(head + b"\n\n", _class=_Message, policy=_POLICY)
        del msg["Content-Transfer-Encoding"]
        del msg["Content-Type"]
        msg["Content-Type"] = "text/plain"
        msg.set_payload(body.decode("ascii", "surrogateescape"))
        msg.defects.append(NestingTooDeepDefect())
        return msg


def parse_email_headers(header_bytes: bytes, size: int, *, channel: str, source_ref: str | None = None) -> InboundItem:
    """A stub item for a message too large to fetch, from its headers alone (IMAP RFC822.SIZE)."""
    data, head_defects = _tidy_head(_strip_mbox_line(header_bytes) + b"\n\n")
    msg = _parse_bytes(data)
    msg.defects.extend(head_defects)
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
    """The item for a parsed message; header text whose charset had to be guessed flags it too."""
    context = _HeaderCharsets(hints=_declared_charsets(msg))
    token = _HEADER_CHARSETS.set(context)
    try:
        item = _item_from_message(msg, raw, channel=channel, source_ref=source_ref, oversized_size=oversized_size,
                                  max_attachment_bytes=max_attachment_bytes)
    finally:
        _HEADER_CHARSETS.reset(token)
    if context.guessed:
        item = dataclasses.replace(item, flags=item.flags | {FLAG_CHARSET_FALLBACK})
    return item


def _item_from_message(
    msg: Message,
    raw: bytes,
    *,
    channel: str,
    source_ref: str | None,
    oversized_size: int | None,
    max_attachment_bytes: int | None,
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
    if _DMARC_FAIL.search(headers.get("authentication-results", "")):
        flags.add(FLAG_UNVERIFIED_SENDER)

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
            if not (dt.datetime(1990, 1, 1, tzinfo=dt.UTC) <= sent_at <= clock.now() + dt.timedelta(days=2)):
                flags.add(FLAG_BAD_DATE)
        except (TypeError, ValueError, IndexError, OverflowError):
            flags.add(FLAG_BAD_DATE)
            sent_at = None
    else:
        flags.add(FLAG_BAD_DATE)

    external_id = external_id_for(raw, message_id, author.handle, date_header, subject)
    defects = [type(d).__name__ for d in msg.defects]
    if "NestingTooDeepDefect" in defects:
        flags.add(FLAG_TRUNCATED)

    body = _Body(max_attachment_bytes=max_attachment_bytes)
    body.walk(msg, depth=0)
    if oversized_size is not None:
        body.drop_cut_part()
        defects = [d for d in defects if d not in _CUT_DEFECTS]
        flags |= {FLAG_OVERSIZED, FLAG_TRUNCATED}
    flags |= body.flags
    defects.extend(body.defects)
    if defects:
        flags.add(FLAG_MALFORMED)
    text = body.text
    # A report that returned nothing of the original still names it in its own In-Reply-To.
    bounce_of = body.bounce_of or (references if body.dsn_actions else [])
    # A delay notice ("Action: delayed") is no bounce: the reply may still arrive.
    if bounce_of and (not body.dsn_actions or "failed" in body.dsn_actions):
        flags.add(FLAG_BOUNCE)
        references = list(dict.fromkeys(references + bounce_of))[:MAX_REFERENCES]
        if body.dsn_summary:
            # First line: what agents see in lists and what the bounced reply is marked with.
            text = f"{body.dsn_summary}\n\n{text}"
    if oversized_size is not None:
        text = _with_oversize_note(text, oversized_size, len(raw))
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
        size=oversized_size if oversized_size is not None else len(raw),
        defects=tuple(dict.fromkeys(defects)),
    )


def _with_oversize_note(text: str, size: int, read: int) -> str:
    """The text of an oversized message with a note, at its end, of what was not stored."""
    if not text.strip():
        return f"[This message is {size:,} bytes, over the size limit: only its headers were stored.]"
    return (f"{text}\n\n[This message is {size:,} bytes, over the size limit: its text was kept; what came after "
            f"its first {read:,} bytes (attachments) was not stored. The original is where it came from.]")


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
        self.dsn_actions: list[str] = []
        self.dsn_summary = ""
        self.parts = 0
        #: Whether the last part read was a file (in an oversized mail, the one the cut may fall into).
        self.last_was_file = False

    def drop_cut_part(self) -> None:
        """After reading only the first bytes of an oversized mail: the last file may be cut short."""
        if self.last_was_file and self.attachments:
            self.attachments[-1] = dataclasses.replace(self.attachments[-1], data=None)
        self.defects = [d for d in self.defects if d not in _CUT_DEFECTS]

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
        try:
            self._visit(part, depth)
        except _PART_ERRORS:
            # The stdlib's lenient parser has corners where reading a part raises; one such part
            # must not cost the message. The fuzz tests fail on this defect, so each is fixed.
            self.defects.append(UNREADABLE_PART)

    def _visit(self, part: Message, depth: int) -> None:
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):  # RFC 3464, RFC 6533
            self._read_delivery_status(part)
            return
        if part.is_multipart():
            payload = _raw_payload(part)
            report_type = email.utils.collapse_rfc2231_value(part.get_param("report-type", ""))
            if ctype == "multipart/report" and report_type.lower() == "delivery-status":
                self._read_bounce(payload)
            if ctype in ("message/rfc822", "message/global") or (depth > 0 and not isinstance(payload, list)):
                self._attach_message(part)
                return
            if ctype == "multipart/alternative":
                self._walk_alternative(payload, depth)
                return
            for sub in payload if isinstance(payload, list) else []:
                if isinstance(sub, Message):
                    self.walk(sub, depth + 1)
            return
        if ctype.startswith("multipart/"):
            # A multipart without a usable boundary: its body is all there is; read it as text.
            text, fell_back = self._decode(part)
            self.texts.append(text)
            self.flags.add(FLAG_MALFORMED)
            return
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = self._filename(part)
        if ctype in {"text/plain", "text/html"} and disposition != "attachment" and not filename:
            text, fell_back = self._decode(part)
            if fell_back:
                self.flags.add(FLAG_CHARSET_FALLBACK)
            (self.texts if ctype == "text/plain" else self.htmls).append(text)
            self.last_was_file = False
            return
        if ctype == "text/rfc822-headers":
            text, _ = self._decode(part)
            self.bounce_of.extend(_message_ids(_find_header(text, "message-id")))
            self.texts.append(text)
            return
        self._attach(part, ctype, filename, disposition)

    def _walk_alternative(self, payload: object, depth: int) -> None:
        # Keep the plain and the HTML versions; agents see HTML, search and text channels use text.
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                self.walk(sub, depth + 1)

    def _read_delivery_status(self, part: Message) -> None:
        """RFC 3464 per-recipient fields as text, and a one-line summary of the failures."""
        payload = _raw_payload(part)
        if isinstance(payload, list):  # compat32 parses each field block as a header-only message
            blocks = [[(k, _header_text(v)) for k, v in b.items()] for b in payload if isinstance(b, Message)]
        else:
            text, _ = self._decode(part)
            blocks = [[(k, v.strip()) for k, _, v in (line.partition(":") for line in chunk.splitlines()) if v]
                      for chunk in re.split(r"\n\s*\n", text)]
        lines = []
        for block in blocks[:50]:
            fields = {k.lower(): v for k, v in block}
            lines.extend(f"{k}: {v}" for k, v in block)
            lines.append("")
            action = fields.get("action", "").lower()
            if action:
                self.dsn_actions.append(action)
            for name in ("original-message-id", "x-original-message-id"):  # some MTAs name the original here
                self.bounce_of.extend(_message_ids(fields.get(name, "")))
            if action == "failed" and not self.dsn_summary:
                recipient = fields.get("final-recipient", fields.get("original-recipient", "")).partition(";")[2]
                detail = fields.get("diagnostic-code", "").partition(";")[2].strip() or fields.get("status", "")
                self.dsn_summary = f"Delivery to {recipient.strip() or 'the recipient'} failed: {detail}"[:500]
        self.texts.append("\n".join(lines).strip())

    def _read_bounce(self, payload: object) -> None:
        for sub in payload if isinstance(payload, list) else []:
            # message/global and message/global-headers: the same for an internationalized original (RFC 6533).
            if isinstance(sub, Message) and sub.get_content_type() in _RETURNED_MESSAGE_TYPES:
                inner = _raw_payload(sub)
                inner = inner[0] if isinstance(inner, list) and inner else inner
                if isinstance(inner, Message):
                    self.bounce_of.extend(_message_ids(_header_text(inner.get("Message-ID"))))

    def _payload(self, part: Message) -> bytes:
        """The part's decoded bytes; a transfer encoding that did not decode cleanly is a defect.

        compat32 decodes best-effort and silently: bad base64 loses bytes, broken uuencode and
        unknown encodings come back undecoded. The agent should see that the text may be wrong.
        """
        try:
            data = part.get_payload(decode=True)
        except (ValueError, TypeError, IndexError):
            data = None
        payload = _raw_payload(part)
        if data is None or not isinstance(payload, str):
            return data if data is not None else str(payload).encode("utf-8", "replace")
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if cte == "base64":
            if _BASE64_BAD.search(payload):
                self.defects.append("InvalidBase64CharactersDefect")
            elif len(payload.translate(_DROP_WHITESPACE)) % 4:
                self.defects.append("InvalidBase64PaddingDefect")
        elif cte in _UUENCODE:
            # compat32 returns broken uuencode undecoded, or decodes up to where it stops.
            if data == payload.encode("raw-unicode-escape", "replace") or not _UU_END.search(payload):
                self.defects.append("InvalidUuencodeDefect")
        elif cte not in _PLAIN_TRANSFER_ENCODINGS:
            self.defects.append("UnknownTransferEncodingDefect")
        return data

    def _decode(self, part: Message) -> tuple[str, bool]:
        data = self._payload(part)
        text, fell_back = charsets.decode(data, part.get_content_charset())
        text = _scrub(text)
        # One line-ending convention for agents and search; NUL cuts text short in many tools.
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\x00" in text:
            text = text.replace("\x00", "")
        return text, fell_back

    def _filename(self, part: Message) -> str:
        try:
            name = part.get_filename()
        except (LookupError, UnicodeError, ValueError):
            name = None
        return _header_text(name) if name else ""

    def _attach_message(self, part: Message) -> None:
        inner = _raw_payload(part)
        inner = inner[0] if isinstance(inner, list) and inner else inner
        try:
            data = inner.as_bytes(policy=email.policy.compat32) if isinstance(inner, Message) else b""
        except (LookupError, UnicodeError, ValueError, TypeError, IndexError, AttributeError):
            data = str(inner).encode("utf-8", "replace")
        except RecursionError:  # nested deeper than the generator can follow: keep what we can
            data = b""
            self.flags.add(FLAG_TRUNCATED)
        self._store(Attachment(filename=self._filename(part) or "forwarded-message.eml",
                               content_type="message/rfc822", data=data, size=len(data)))

    def _attach(self, part: Message, ctype: str, filename: str, disposition: str) -> None:
        data = self._payload(part)
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
        self.last_was_file = True
        if self.max_attachment_bytes is not None and (attachment.size or 0) > self.max_attachment_bytes:
            # Keep the fact of it (name, size) without the bytes; the raw message still has them.
            self.flags.add(FLAG_TRUNCATED)
            attachment = Attachment(filename=attachment.filename, content_type=attachment.content_type, data=None,
                                    size=attachment.size, content_id=attachment.content_id, inline=attachment.inline)
        self.attachments.append(attachment)


def _raw_payload(part: Message) -> object:
    """`get_payload()` that cannot raise: compat32 decodes an 8-bit payload with the part's charset
    parameter, and a charset with a NUL in it (ValueError) or in RFC 2231 form (TypeError) fails."""
    try:
        return part.get_payload()
    except (ValueError, TypeError, LookupError):
        return part._payload  # the undecoded payload, as the parser stored it


def _find_header(block: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}:\s*(.+)$", block, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else ""


# Outgoing --------------------------------------------------------------------------------------


_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?")
_SAFE_MSGID = re.compile(r"[!-;=?-~]{1,500}")  # printable ASCII without < and >


def _inert_header_text(value: str | None) -> str:
    """Text for a header we write that no step of the generator can turn into a line break.

    The stdlib decodes RFC 2047 encoded-words in the values we set and, before CPython 3.11.10
    (no `verify_generated_headers`), writes out what they decode to, newlines included
    (CVE-2024-6923): a subject `=?UTF-8?Q?Hi=0ABcc:_x@evil?=` became a Bcc header. We decode
    such words ourselves and flatten whitespace; anything still shaped like an encoded-word has
    its `=?` broken up.
    """
    text = " ".join(_CONTROL_CHARS.sub(" ", value or "").split())
    for _ in range(3):
        if not _ENCODED_WORD.search(text):
            return text
        try:
            decoded = str(email.policy.default.header_factory("subject", text))
        except (ValueError, TypeError, IndexError, email.errors.HeaderParseError):
            break
        text = " ".join(_CONTROL_CHARS.sub(" ", decoded).split())
    return text.replace("=?", "= ?")


def _address(name: str | None, address: str) -> Address:
    try:
        return Address(display_name=_inert_header_text(name), addr_spec=address)
    except (ValueError, IndexError, email.errors.MessageError) as exc:
        raise ValueError(f"cannot send email to {address!r}: not a plain address") from exc


def _check_headers(msg: EmailMessage) -> None:
    """Refuse a message whose generated header block would hold a line we did not write.

    The last wall against header injection (what `verify_generated_headers` does on a patched
    CPython): every folded header must continue only on lines that start with whitespace.
    """
    for name, value in msg.items():
        folded = msg.policy.fold(name, value)
        lines = folded.split(msg.policy.linesep)
        if lines[-1] == "":
            lines.pop()
        if any("\r" in line or "\n" in line for line in lines) or any(
            not line[:1].isspace() for line in lines[1:]
        ):
            raise ValueError(f"refusing to send: the {name} header would inject a line")


def reply_subject(subject: str | None) -> str:
    subject = _inert_header_text(subject) or "(no subject)"
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
    """The email for an agent's reply, threaded to what it answers, marked against loops.

    Raises ValueError when the recipient is not a plain address (replies to invalid senders are
    disabled) or a header would break the message's structure.
    """
    msg = EmailMessage(policy=email.policy.SMTP)
    # Address objects + the SMTP policy quote or encode any name; a newline cannot start a header.
    msg["From"] = _address(from_name, from_address)
    msg["To"] = _address(reply.to.name, reply.to.handle)
    if reply.cc:
        msg["Cc"] = tuple(_address(None, address) for address in reply.cc)
    # reply.bcc is never written into the message: the sender puts those only into the envelope.
    # A forward, or a message that starts a conversation, answers nothing: its subject is the agent's own.
    subject = (_inert_header_text(reply.subject) or "(no subject)") \
        if reply.forwarded or reply.starts_conversation else reply_subject(reply.subject)
    if token and f"[#{token}]" not in subject:
        subject = f"{subject} [#{token}]"
    msg["Subject"] = subject
    msg["Message-ID"] = reply.message_id or make_msgid(domain=domain)
    msg["Date"] = email.utils.format_datetime(clock.now())
    parent = reply.reply_to_message_id if reply.reply_to_message_id and _SAFE_MSGID.fullmatch(
        reply.reply_to_message_id) else None
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
    refs = [r for r in reply.references if r and _SAFE_MSGID.fullmatch(r)]
    if parent and parent not in refs:
        refs.append(parent)
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs[-MAX_REFERENCES:])
    # RFC 3834: our automatic messages (surveys) say so, so that auto-responders do not answer them.
    # An acknowledgement answers the customer's message: "auto-replied" (RFC 3834 section 5).
    msg["Auto-Submitted"] = "auto-replied" if reply.auto_replied else "auto-generated" if reply.automatic else "no"
    msg[triage.LOOP_HEADER] = instance_id
    msg.set_content(reply.text)
    if reply.html:
        msg.add_alternative(reply.html, subtype="html")
    for att in reply.attachments:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(att.data or b"", maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=_inert_header_text(att.filename) or "attachment")
    _check_headers(msg)
    return msg


def forward_text(comment: str, messages: list[dict]) -> str:
    """The plain text of a forward: the agent's comment, then each message under a header block."""
    blocks = [comment.strip()] if comment.strip() else []
    for message in messages:
        sender = message.get("author_name") or message.get("author_handle") or ""
        if message.get("author_handle") and message.get("author_name"):
            sender = f"{message['author_name']} <{message['author_handle']}>"
        blocks.append("\n".join([
            "---------- Forwarded message ----------",
            f"From: {sender}",
            f"Date: {message.get('sent_at') or message.get('received_at') or ''}",
            f"Subject: {message.get('subject') or ''}",
            "",
            (message.get("text") or "").strip(),
        ]))
    return "\n\n".join(blocks)
