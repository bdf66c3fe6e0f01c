"""Parsing a batch of raw mail for the one writer, and the HTML work that can be done beside it.

`parse_batch` runs in a parsing worker process of `mainland import` (inbox/parse_pool.py) or in
the importer's own process; `presanitize` also serves the poller's raw pages. Both only read. This
module imports just the mail parser and the sanitizer: a worker process starts by importing it,
and the writer waits for the first parsed batch meanwhile (importing inbox.importer cost half a
second per worker).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass

from inbox import mail
from inbox.errors import ItemError
from inbox.models import InboundItem, Reject
from inbox.sanitize import html_to_text, sanitize_html

#: Fields that mark a file of a folder as mail (a header-only message with To and Subject is mail too).
_ANY_MAIL_FIELD = re.compile(rb"^(from|sender|reply-to|received|message-id|date|return-path|delivered-to|subject|to)"
                             rb"[ \t]*:", re.I | re.M)
#: Bytes of a folder's file looked at to tell mail from other files.
MAIL_SNIFF_BYTES = 8192

#: An item's HTML as the writer stores it: (sanitized HTML, whether it was replaced by a notice,
#: its plain text when an item with this HTML has no text of its own, else None).
Sanitized = tuple[str, bool, str | None]


def is_mail(raw: bytes) -> bool:
    """Whether a file found in a folder holds a mail: readable text whose head has a mail header field.

    A folder of saved mail also holds other files (README.txt, index.html, a PDF someone saved next
    to the mail, Thumbs.db): those are not mail and must not fill the quarantine as mail without sender.
    Junk or an mbox `From ` line before the headers is allowed, as the parser allows it.
    """
    head = raw[:MAIL_SNIFF_BYTES]
    if b"\x00" in head:
        return False
    block = re.split(rb"\n\r?\n(?=[^\r\n])", head.lstrip(b"\r\n"), maxsplit=1)[0]
    return bool(_ANY_MAIL_FIELD.search(block))


def exception_text(exc: BaseException) -> str:
    """An exception and the last three places it passed, for the quarantine's "what happened" line."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames)
    return f"{type(exc).__name__}: {exc} ({where})"


def parse_message(raw: bytes, *, channel: str, source_ref: str, max_bytes: int | None,
                  max_attachment_bytes: int | None) -> InboundItem | Reject:
    """One raw message as an item, or as a `Reject` for the quarantine when the parser refuses it."""
    try:
        return mail.parse_email(raw, channel=channel, source_ref=source_ref, max_bytes=max_bytes,
                                max_attachment_bytes=max_attachment_bytes)
    except ItemError as exc:
        return Reject(raw=raw, reason=str(exc), source_ref=source_ref, exception=type(exc).__name__)
    except Exception as exc:  # a parser bug must cost one message, not the import
        return Reject(raw=raw, reason=f"could not be parsed: {type(exc).__name__}: {exc}",
                      source_ref=source_ref, exception=exception_text(exc))


@dataclass
class ParsedBatch:
    """A batch parsed: per file an item, a `Reject`, or None for a folder's file that is no mail;
    and the HTML of its items worked out ahead (`presanitize`)."""

    parsed: list[InboundItem | Reject | None]
    sanitized: dict[str, Sanitized]


def parse_batch(raws: list[tuple[str, bytes]], *, channel: str, kind: str, max_bytes: int | None,
                max_attachment_bytes: int | None) -> ParsedBatch:
    """Each (source_ref, raw) parsed, for the writer to store."""
    parsed: list[InboundItem | Reject | None] = []
    for ref, raw in raws:
        if kind == "folder" and not is_mail(raw):
            parsed.append(None)
        else:
            parsed.append(parse_message(raw, channel=channel, source_ref=ref, max_bytes=max_bytes,
                                        max_attachment_bytes=max_attachment_bytes))
    return ParsedBatch(parsed, presanitize(p for p in parsed if isinstance(p, InboundItem)))


def presanitize(items: Iterable[InboundItem]) -> dict[str, Sanitized]:
    """Each item's HTML, keyed by that HTML: `sanitize_html` of it, and for an item without text of its
    own the text the writer would derive from it (`Ingestor.ingest(sanitized=...)`): CPU work taken
    off the one writer."""
    ahead: dict[str, Sanitized] = {}
    for item in items:
        if not item.html:
            continue
        html, replaced, derived = ahead.get(item.html) or (*sanitize_html(item.html), None)
        if derived is None and not replaced and not (item.text or "").strip():
            derived = html_to_text(html) if html else ""
        ahead[item.html] = (html, replaced, derived)
    return ahead
