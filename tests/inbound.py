"""Helpers for the hostile-input tests: raw mail through the real pipeline, and an HTML oracle.

`ingest_raw` does what the email connector does with one fetched message: `parse_email`, and an
`ItemError` becomes a quarantine `Reject`; then `Ingestor.ingest` on the real SQLite store.
`assert_inert_html` parses stored HTML with the standard library's `html.parser` (no sanitiser of
ours involved) and fails on anything a browser could execute or fetch (reliability.md 2.5).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from connectors.base import ItemError
from inbox.ingest import Ingestor, IngestReport
from inbox.mail import parse_email
from inbox.models import FetchResult, InboundItem, Reject
from inbox.store import Store


@dataclass
class Ingested:
    report: IngestReport
    item: InboundItem | None
    message: dict[str, Any] | None  # the stored messages row, flags as a set, headers as a dict

    @property
    def flags(self) -> set[str]:
        return self.message["flags"] if self.message else set()


def ingest_raw(ingestor: Ingestor, raw: bytes, *, channel: str = "mail", source_ref: str | None = None,
               **parse_options: Any) -> Ingested:
    """Parse and ingest one raw email as the email connector would; returns what was stored."""
    try:
        item = parse_email(raw, channel=channel, source_ref=source_ref, **parse_options)
    except ItemError as exc:
        result = FetchResult(items=[], cursor=None, rejects=[Reject(raw=raw, reason=str(exc), source_ref=source_ref)])
        return Ingested(ingestor.ingest(channel, result, save_cursor=False), None, None)
    report = ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)
    message = message_row(ingestor.store, report.message_ids[0]) if report.message_ids else None
    return Ingested(report, item, message)


def message_row(store: Store, message_id: int) -> dict[str, Any]:
    cur = store.execute("SELECT * FROM messages WHERE id = ?", (message_id,))
    names = [d[0] for d in cur.description]
    row = dict(zip(names, cur.fetchone(), strict=True))
    row["flags"] = set(row["flags"].split())
    row["headers"] = json.loads(row["headers"])
    return row


def attachment_rows(store: Store, message_id: int) -> list[dict[str, Any]]:
    cur = store.execute("SELECT * FROM attachments WHERE message_id = ? ORDER BY id", (message_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def add_outbound(store: Store, conversation_id: int, message_id: str, *, channel: str = "mail",
                 text: str = "Our answer") -> int:
    """An agent's reply as stored after sending, so that a bounce or a reply can refer to it."""
    with store.write():
        return store.insert_message({
            "conversation_id": conversation_id, "channel": channel, "external_id": f"out:{message_id}",
            "direction": "out", "author_name": "Support", "author_handle": "support@mainland.test",
            "subject": "Re: x", "text": text, "message_id": message_id, "received_at": "2026-03-05T10:20:00Z",
            "sent_at": "2026-03-05T10:20:00Z", "delivery_status": "sent",
        })


# The oracle ------------------------------------------------------------------------------------

_FORBIDDEN_TAGS = {
    "script", "style", "link", "base", "meta", "form", "button", "input", "object", "embed", "iframe", "frame",
    "frameset", "applet", "svg", "math", "template", "noscript", "portal", "video", "audio", "source", "track",
    "animate", "set", "feimage", "foreignobject", "use", "image", "isindex", "textarea", "select",
}
_URL_ATTRIBUTES = {
    "href", "src", "action", "formaction", "xlink:href", "background", "poster", "srcset", "data", "codebase",
    "cite", "dynsrc", "lowsrc", "longdesc", "ping", "manifest", "icon", "profile", "usemap", "archive", "to", "from",
    "values",
}
#: Attributes that make a browser fetch something as soon as the element is shown.
_FETCH_ATTRIBUTES = {"src", "srcset", "background", "poster", "dynsrc", "lowsrc", "data", "codebase", "ping"}
_BAD_SCHEME = re.compile(r"^(javascript|vbscript|livescript|data|file|about|blob|filesystem|jar|mhtml|ms-its):",
                         re.IGNORECASE)
# Browsers drop ASCII tab and newline anywhere in a URL and C0 controls and spaces at its ends.
_URL_NOISE = re.compile(r"[\t\n\r]")


def _url(value: str) -> str:
    return _URL_NOISE.sub("", value).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12"
                                           "\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")


class _Oracle(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            name = name.lower()
            value = value or ""
            url = _url(value)
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=>")
            elif name in {"style", "srcdoc", "formaction", "http-equiv", "srcset", "background", "poster"}:
                self.problems.append(f"<{tag} {name}=>")
            elif name in _URL_ATTRIBUTES and _BAD_SCHEME.match(url):
                self.problems.append(f"<{tag} {name}={value[:40]!r}>")
            elif name in _FETCH_ATTRIBUTES and url and not url.lower().startswith("cid:"):
                self.problems.append(f"<{tag} {name}={value[:40]!r}> fetches a remote resource")

    handle_startendtag = handle_starttag


def html_problems(html: str | None) -> list[str]:
    """Every executable or fetching construct the oracle finds in `html` (empty when inert)."""
    if not html:
        return []
    oracle = _Oracle()
    oracle.feed(html)
    oracle.close()
    return oracle.problems


def assert_inert_html(html: str | None) -> None:
    problems = html_problems(html)
    assert not problems, f"executable or fetching HTML survived: {problems}"
