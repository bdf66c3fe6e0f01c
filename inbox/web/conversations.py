"""The inbox pages: the conversation list, one conversation, and its downloads.

Everything here is behind sign-in, and every object is checked through `inbox.access` (an agent
sees their teams' conversations and the unrouted ones; see that module). Unknown and hidden
objects are both 404, so ids reveal nothing; the list is filtered by team in SQL.

Inbound content is hostile. Text is escaped by Jinja's autoescape. Inbound HTML is never put into
the page: it is served alone at /messages/<id>/body with a CSP `sandbox` (no scripts, an opaque
origin, nothing loaded from elsewhere) and shown in an `<iframe sandbox="">`. Attachments are
always downloads (`Content-Disposition: attachment`), with a content type from a short allow-list,
`nosniff` and CSP `sandbox`, so a file can never run as a page or a script of this site.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, abort, render_template, request, send_file
from flask_babel import format_datetime, format_decimal

from inbox import access
from inbox.attachments import safe_filename
from inbox.i18n import lazy_gettext as _l
from inbox.sanitize import sanitize_html
from inbox.store.base import parse_iso
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required

bp = Blueprint("conversations", __name__)

PAGE_SIZE = 50

#: Attachment types sent as themselves; everything else is application/octet-stream.
SAFE_DOWNLOAD_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "application/pdf", "text/plain"})

#: The only policy the inbound-HTML document gets: no scripts, no origin, nothing fetched.
BODY_CSP = "sandbox; default-src 'none'; img-src cid: data:; style-src 'unsafe-inline'"

_BODY_PAGE = (
    "<!doctype html><html><head><meta charset=\"utf-8\"><style>"
    "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2933;margin:0;padding:12px;"
    "overflow-wrap:anywhere}img{max-width:100%;height:auto}table{max-width:100%}"
    "blockquote{border-left:3px solid #cbd2d9;margin:0 0 0 4px;padding-left:10px;color:#52606d}"
    "</style></head><body>{body}</body></html>"
)

STATUS_LABELS = {
    "new": _l("New"),
    "open": _l("Open"),
    "pending": _l("Pending"),
    "snoozed": _l("Snoozed"),
    "resolved": _l("Resolved"),
    "spam": _l("Spam"),
}

#: Flag -> (badge label, longer explanation).
FLAG_LABELS = {
    "auto_submitted": (_l("auto-reply"), _l("Sent automatically (an out-of-office or other auto-reply).")),
    "bulk": (_l("bulk"), _l("Bulk or mailing-list mail.")),
    "bounce": (_l("bounce"), _l("A delivery failure report.")),
    "loop": (_l("loop"), _l("Came from Mainland itself or one of its addresses; not answered to avoid a mail loop.")),
    "possible_misthread": (_l("possible misthread"),
                           _l("Referred to another customer's conversation, so it was kept apart.")),
    "charset_fallback": (_l("charset guessed"),
                         _l("The text did not match its declared character set; some characters may be wrong.")),
    "no_message_id": (_l("no Message-ID"), _l("The mail had no Message-ID header.")),
    "invalid_sender": (_l("invalid sender"), _l("The sender address could not be read; replies are disabled.")),
    "malformed": (_l("malformed"), _l("The mail was damaged; the text shown is a best effort.")),
    "truncated": (_l("truncated"), _l("Cut at the size limit; the original can be downloaded.")),
    "oversized": (_l("oversized"), _l("Larger than the size limit: only the headers were kept.")),
    "bad_date": (_l("bad date"), _l("The date was missing or implausible; the receive time is used.")),
    "html_replaced": (_l("HTML hidden"),
                      _l("The formatted version was too large or hostile to show; the original can be downloaded.")),
}

DIRECTION_LABELS = {
    "in": _l("From the customer"),
    "out": _l("Reply"),
    "note": _l("Internal note"),
}


def can_see_conversation(agent: dict[str, Any] | None, conversation: dict[str, Any]) -> bool:
    """Whether `agent` may see `conversation` and everything in it (decided by inbox.access)."""
    return access.can_see_conversation(get_store(), agent, conversation)


def _visible_conversation(conversation_id: int) -> dict[str, Any]:
    return access.require_conversation(get_store(), current_agent(), conversation_id)


def _visible_message(message_id: int) -> dict[str, Any]:
    return access.require_message(get_store(), current_agent(), message_id)


def _channel_kinds() -> dict[str, str]:
    return {name: ch.kind for name, ch in mainland().config.channels.items()}


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:160]
    return ""


@bp.get("/")
@login_required
def index():
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 2**63:
        before = None
    if before is not None:
        # The page position is an object id too: another team's id would reveal where it sorts.
        _visible_conversation(before)
    rows = get_store().recent_conversations(limit=PAGE_SIZE + 1, before_id=before,
                                            team_ids=access.visible_team_ids(get_store(), current_agent()))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    for row in rows:
        row["preview"] = row["subject"] or _first_line(row.get("first_text"))
    return render_template(
        "conversations/list.html",
        conversations=rows,
        next_before=rows[-1]["id"] if more and rows else None,
        paged=before is not None,
        kinds=_channel_kinds(),
    )


@bp.get("/conversations/<int:conversation_id>")
@login_required
def show(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    store = get_store()
    messages = store.conversation_messages(conversation_id)
    with_raw = store.raw_message_ids(conversation_id)
    for message in messages:
        message["has_raw"] = message["id"] in with_raw
        for att in message.get("attachments", []):
            att["display_name"] = safe_filename(att["filename"], content_type=att["content_type"])
    return render_template(
        "conversations/show.html",
        conversation=conversation,
        messages=messages,
        identities=store.customer_identities(conversation["customer_id"]),
        kinds=_channel_kinds(),
    )


@bp.get("/messages/<int:message_id>/body")
@login_required
def message_body(message_id: int):
    message = _visible_message(message_id)
    if not message["html"]:
        abort(404)
    # Sanitised when stored; again here so a stricter policy also covers older messages.
    body, replaced = sanitize_html(message["html"])
    page = _BODY_PAGE.replace("{body}", "" if replaced else body)
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = BODY_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name as RFC 5987/6266 `filename*`."""
    fallback = re.sub(r"[^A-Za-z0-9._()\- ]", "_", filename).strip() or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _download_headers(response: Response, filename: str) -> Response:
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Cache-Control"] = "private"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def download_type(content_type: str, type_mismatch: bool) -> str:
    """The type an attachment is sent as: allow-listed and truthful, else application/octet-stream."""
    base = (content_type or "").split(";")[0].strip().lower()
    if type_mismatch or base not in SAFE_DOWNLOAD_TYPES:
        return "application/octet-stream"
    return base


@bp.get("/attachments/<int:attachment_id>")
@login_required
def attachment(attachment_id: int):
    att = access.require_attachment(get_store(), current_agent(), attachment_id)
    if not att["stored"] or not att["sha256"]:
        abort(404)
    try:
        path = mainland().attachment_store().path_for(att["sha256"])
    except ValueError:
        abort(404)
    if not path.is_file():
        abort(404)
    name = safe_filename(att["filename"], content_type=att["content_type"])
    response = send_file(path, mimetype=download_type(att["content_type"], bool(att["type_mismatch"])),
                         as_attachment=True, download_name=name, etag=att["sha256"])
    return _download_headers(response, name)


@bp.get("/messages/<int:message_id>/raw")
@login_required
def message_raw(message_id: int):
    _visible_message(message_id)
    data = get_store().raw_message(message_id)
    if data is None:
        abort(404)
    response = Response(data, mimetype="message/rfc822")
    return _download_headers(response, f"message-{message_id}.eml")


# Template helpers ----------------------------------------------------------------------------

def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def flag_label(flag: str) -> str:
    return str(FLAG_LABELS[flag][0]) if flag in FLAG_LABELS else flag


def flag_help(flag: str) -> str:
    return str(FLAG_LABELS[flag][1]) if flag in FLAG_LABELS else flag


def direction_label(direction: str) -> str:
    return str(DIRECTION_LABELS.get(direction, direction))


def when(iso: str | None) -> str:
    try:
        moment = parse_iso(iso) if iso else None
    except ValueError:
        return iso or ""
    return format_datetime(moment, "short") if moment else ""


def filesize(size: int | None) -> str:
    if size is None:
        return ""
    for unit, factor in (("MB", 1024 * 1024), ("kB", 1024)):
        if size >= factor:
            return f"{format_decimal(size / factor, format='#,##0.0')} {unit}"
    return f"{size} B"


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(status_label=status_label, flag_label=flag_label, flag_help=flag_help,
                                 direction_label=direction_label)
    app.jinja_env.filters.update(when=when, filesize=filesize)
