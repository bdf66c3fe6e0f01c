"""One conversation: the page, what agents do in it, its downloads, and the agent's notifications.

The page shows the thread (inbound, replies with their delivery state, internal notes), the
customer and their other conversations on every channel, and the reply composer with the channel's
limits (characters, formatting, reply window) and the loop guard (IN-70). Actions: reply (through
the outbox; held when something new arrived since the writer last looked), note with @mentions,
status and snooze, assignment, priority, labels, merge (and undo) and split, retry of a failed
reply. Live updates and presence are in inbox/web/live.py; the status rules in inbox/lifecycle.py.

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

import datetime as dt
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import format_datetime, format_decimal
from markupsafe import Markup

from connectors.base import Limits
from inbox import access, clock, rules, sendability
from inbox import answers as answer_library
from inbox.attachments import safe_filename
from inbox.channel_format import to_html
from inbox.conversations import unused_token
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.i18n import ngettext
from inbox.lifecycle import (
    PRIORITIES,
    SETTABLE,
    SNOOZE_PRESETS,
    Transition,
    TransitionRefused,
    parse_snooze,
    transition,
)
from inbox.models import Attachment
from inbox.outbox import (
    FLAG_PRIVATE_REPLY,
    CopiesRefused,
    FilesRefused,
    ReplyRefused,
    UndoRefused,
    check_files,
    file_size_cap,
    forward_channel,
    parse_copies,
    queue_forward,
    queue_reply,
    reply_target,
    sending_limits,
    suggested_copies,
    undo_reply,
    undo_seconds,
)
from inbox.review import is_held as is_held_for_review
from inbox.routing import moved_note
from inbox.sanitize import sanitize_html
from inbox.sendability import GUARD_MESSAGES, loop_guard
from inbox.signatures import MAX_SIGNATURE_CHARS, VARIABLES, render, signature_for, signed_text
from inbox.store import NotFound as StoreNotFound
from inbox.store import StoreError
from inbox.store.base import iso, parse_iso
from inbox.store.work import MergeRefused
from inbox.web import get_store, live, mainland
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
    "routing_move": (_l("moved by routing"), _l("Routing passed this conversation on to someone who is available.")),
    "rule_fired": (_l("automation rule"), _l("An automation rule fired on this conversation (Admin, Rules).")),
    "rule_reply": (_l("sent by a rule"), _l("An automation rule sent this answer from the library.")),
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
    "oversized": (_l("oversized"), _l("Larger than the size limit: the headers and text were kept, the attachments after them were not stored.")),
    "bad_date": (_l("bad date"), _l("The date was missing or implausible; the receive time is used.")),
    "unverified_sender": (_l("unverified sender"),
                          _l("The sender's domain did not confirm this mail (DMARC failed); it may be forged.")),
    "claimed_address": (_l("address not verified"),
                        _l("The address was typed into a form, where anyone can type any address: it joined the "
                           "customer who has it, but this message may not be from them.")),
    "forward": (_l("forwarded"), _l("An agent sent this on to someone outside the conversation.")),
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


@bp.get("/conversations/<int:conversation_id>")
@login_required
def show(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    # The agent's drafts kept on the server (any device); a returned reply being resubmitted wins.
    saved = get_store().drafts.of(current_agent()["id"], conversation_id)
    return render_template("conversations/show.html", **_page_context(
        conversation, draft=_resubmit_draft(conversation_id) or saved.get("reply", ""),
        note_draft=saved.get("note", "")))


def _resubmit_draft(conversation_id: int) -> str:
    """With `?resubmit=<item>`: the text of the writer's own returned reply, back in their composer
    (what "Edit and resubmit" does without the page's script)."""
    item_id = request.args.get("resubmit", type=int)
    if not item_id:
        return ""
    from inbox.web.review import returned_text

    return returned_text(conversation_id, item_id, current_agent()) or ""


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


def stored_file(att: dict[str, Any]) -> Path:
    """The file of a stored attachment in our attachment store; 404 when it was never stored or is gone."""
    if not att["stored"] or not att["sha256"]:
        abort(404)
    try:
        path = mainland().attachment_store().path_for(att["sha256"])
    except ValueError:
        abort(404)
    if not path.is_file():
        abort(404)
    return path


@bp.get("/attachments/<int:attachment_id>")
@login_required
def attachment(attachment_id: int):
    att = access.require_attachment(get_store(), current_agent(), attachment_id)
    path = stored_file(att)
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


# Working the conversation ----------------------------------------------------------------------
#
# Every action is a POST behind sign-in and CSRF (inbox/web/security.py), and checks the
# conversation through inbox.access first, so another team's id in the path or in the form body
# is a 404 (IN-65). Form posts answer with a redirect (or, for a refused reply, the page again
# with the draft kept); the page's script posts with `Accept: application/json` and gets JSON.

#: Longest reply or note accepted at all (a channel's own limit is usually far lower).
MAX_TEXT_CHARS = 100_000

DELIVERY_LABELS = {
    "queued": _l("Queued"),
    "retrying": _l("Retrying"),
    "sent": _l("Sent"),
    "delivered": _l("Delivered"),
    "read": _l("Read"),
    "failed": _l("Failed"),
    "bounced": _l("Bounced"),
    # The channel may have the reply but never confirmed it (inbox/outbox.py): an agent decides.
    "possibly_sent": _l("Possibly sent"),
}

#: Messages a conversation page opens with; earlier ones load as the agent scrolls up.
THREAD_WINDOW = 40

PRIORITY_LABELS = {0: _l("No priority"), 1: _l("Low"), 2: _l("Medium"), 3: _l("High"), 4: _l("Urgent")}

SNOOZE_LABELS = {
    "1h": _l("1 hour"), "4h": _l("4 hours"), "1d": _l("Tomorrow (24 hours)"), "3d": _l("3 days"), "1w": _l("1 week"),
}

#: The statuses a reply can set as it is sent; a plain "Send" sets the team's default (m010).
SEND_STATUSES = ("open", "pending", "resolved")
SEND_LABELS = {"open": _l("Send, keep open"), "pending": _l("Send + pending"), "resolved": _l("Send + resolve")}

#: Statuses that take a conversation out of the agent's hands: setting one opens the next
#: conversation of their queue view. Setting "open" keeps them here: they reopened it to work on it.
MOVE_ON_STATUSES = frozenset({"pending", "snoozed", "resolved", "spam"})

#: The longest queue-view query string carried along (the queue's own values are short).
MAX_VIEW_CHARS = 2000

TRANSITION_MESSAGES = {
    "merged": _l("This conversation was merged into another one; work in that one."),
    "unknown": _l("This status change is not possible."),
    "invalid": _l("Choose one of the statuses offered."),
    "snooze_missing": _l("Choose when the conversation should wake up."),
    "snooze_past": _l("The wake-up time must be in the future."),
    "snooze_far": _l("The wake-up time must be within a year."),
}

MERGE_MESSAGES = {
    "same": _l("A conversation cannot be merged into itself."),
    "customers": _l("Only conversations of the same customer can be merged."),
    "merged": _l("One of the two conversations was merged already."),
    "undone": _l("This merge was undone already."),
    "only_message": _l("This is the conversation's only message; there is nothing to split it from."),
}


_MENTION = re.compile(r"(?<![\w@.+-])@(\w[\w.+-]*(?:@[\w-]+(?:\.[\w-]+)+)?)")


class Mentions:
    """Who an @mention names among `agents`, looked up by key: built once for a page or a note, so
    the composer's handles for a hundred agents are not a hundred walks over all of them."""

    def __init__(self, agents: list[dict[str, Any]]) -> None:
        self._by_email: dict[str, list[dict[str, Any]]] = {}
        self._by_local_part: dict[str, list[dict[str, Any]]] = {}
        self._by_name: dict[str, list[dict[str, Any]]] = {}
        for agent in agents:
            email = (agent["email"] or "").lower()
            self._by_email.setdefault(email, []).append(agent)
            self._by_local_part.setdefault(email.split("@")[0], []).append(agent)
            for key in _name_keys(agent["name"]):
                self._by_name.setdefault(key, []).append(agent)

    def _candidates(self, key: str) -> list[dict[str, Any]]:
        # An exact address first, then the part before the @, then a first or full name.
        return self._by_email.get(key) or self._by_local_part.get(key) or self._by_name.get(key) or []

    def find(self, text: str) -> tuple[list[dict[str, Any]], list[str]]:
        """The agents `text` mentions (`@email`, `@localpart`, `@Firstname` or `@FullName`), and the
        mentions that fit several agents (nobody is notified for those: the writer should be precise)."""
        found: dict[int, dict[str, Any]] = {}
        ambiguous: list[str] = []
        for match in _MENTION.finditer(text or ""):
            token = match.group(1).rstrip(".-+")
            candidates = self._candidates(token.lower())
            if len(candidates) == 1:
                found[candidates[0]["id"]] = candidates[0]
            elif len(candidates) > 1 and token not in ambiguous:
                ambiguous.append(token)
        return list(found.values()), ambiguous

    def handle(self, agent: dict[str, Any]) -> str:
        """What the @mention autocomplete inserts for `agent`: the email's local part when `find`
        takes it for this agent alone, else the whole address."""
        email = agent["email"] or ""
        for handle in (email.split("@")[0], email):
            found, ambiguous = self.find(f"@{handle}")
            if not ambiguous and [a["id"] for a in found] == [agent["id"]]:
                return handle
        return email


def find_mentions(text: str, agents: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The agents a note mentions, and the mentions that fit several agents (`Mentions.find`)."""
    return Mentions(agents).find(text)


def _name_keys(name: str | None) -> set[str]:
    words = (name or "").lower().split()
    return {words[0], "".join(words), ".".join(words)} if words else set()


@dataclass
class ComposerInfo:
    """What the reply composer shows: the channel's limits, the reply window, a loop warning."""

    available: bool
    unavailable: str | None = None
    channel: str | None = None
    max_length: int | None = None
    formatting: str = "plain"
    window_hours: float | None = None
    window_closes: dt.datetime | None = None
    window_closed: bool = False
    guard: str | None = None
    recipient: str | None = None
    private_reply_possible: bool = False
    #: The connector's name for the channel ("WhatsApp") and its kind; whether the reply is public.
    channel_name: str | None = None
    channel_kind: str | None = None
    #: What the channel calls a private reply (`Connector.private_medium`): "message" or "email".
    private_medium: str = "message"
    public: bool = False
    #: Colleagues with a draft here; this agent's replies still in the undo window; @mention choices.
    drafting: list[str] = field(default_factory=list)
    undo: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, str]] = field(default_factory=list)
    #: The channel's declared facts (connectors/base.py Limits) and what they mean for files:
    #: whether this reply may carry any (else `files_reason` says why), how many, how large, which types.
    limits: Limits | None = None
    files_allowed: bool = False
    files_reason: str | None = None
    max_files: int | None = None
    max_file_bytes: int | None = None
    file_types: tuple[str, ...] = ()
    #: Files only in a private answer to this public conversation: the control waits for "Answer privately".
    files_if_private: bool = False
    #: The channel sends copies (Limits.copies): the composer offers Cc (pre-filled) and Bcc.
    copies: bool = False
    cc_suggested: list[str] = field(default_factory=list)
    #: The signature added on send (inbox/signatures.py), shown as a preview line; None: none.
    signature: str | None = None

    @property
    def audience(self) -> str:
        """Who reads the reply, said above the Send button."""
        if self.public:
            return _("This reply is public on %(channel)s: anyone can read it.", channel=self.channel_name)
        return self.private_audience

    @property
    def private_audience(self) -> str:
        if self.private_medium == "email":
            return _("Private email to the customer")
        return _("Private message on %(channel)s", channel=self.channel_name)

    @property
    def guard_message(self) -> str | None:
        return str(GUARD_MESSAGES[self.guard]) if self.guard else None

    @property
    def window_closes_iso(self) -> str | None:
        return iso(self.window_closes) if self.window_closes else None


def composer_info(conversation: dict[str, Any], now: dt.datetime | None = None) -> ComposerInfo:
    """The composer of a conversation for the signed-in agent: the channel's limits and audience,
    colleagues' drafts, the agent's replies still in the undo window, the @mention choices."""
    now = now or clock.now()
    info = _channel_composer(conversation, now)
    store = get_store()
    agent = current_agent()
    if agent is None:
        return info
    info.drafting = [a.name or a.email for a in store.drafts.colleagues(conversation["id"], agent["id"])]
    if info.available:
        info.signature = signature_for(store, conversation, agent)
    for row in store.undoable_replies(conversation["id"], agent["id"]):
        due = parse_iso(row["next_at"]) or now
        info.undo.append({"id": row["id"], "message_id": row["message_row"],
                          "seconds_left": max(0, math.ceil((due - now).total_seconds()))})
    agents = store.mentionable_agents()
    # Mentioning oneself notifies nobody: the writer is not offered.
    mentions = Mentions(agents)
    info.mentions = [{"handle": mentions.handle(a), "name": a["name"] or "", "email": a["email"] or ""}
                     for a in agents if a["id"] != agent["id"]]
    return info


def _channel_composer(conversation: dict[str, Any], now: dt.datetime) -> ComposerInfo:
    store = get_store()
    land = mainland()
    channel = land.config.channels.get(conversation["channel"])
    if channel is None:
        return ComposerInfo(False, str(_l("This conversation's channel is no longer configured, so replies cannot "
                                          "be sent.")))
    via = channel.settings.get("reply_channel") or conversation["channel"]
    try:
        connector_class = land.connector_class(via)
        limits = connector_class.limits
    except KeyError:
        return ComposerInfo(False, str(_l("The channel that sends replies for this conversation is not "
                                          "configured.")))
    # Where the reply goes without a choice (inbox/sendability.py): after a merge, the channel of the
    # customer's latest message, which is not necessarily the conversation's own.
    sending = sendability.default_target(land, store, conversation)
    answered = sending.message if sending else store.sendability.latest_inbound(conversation["id"])
    if answered is None:
        return ComposerInfo(False, str(_l("There is no message from the customer to answer.")), channel=via)
    if sending is not None:
        via = sending.via
        connector_class = land.connector_class(via)
        limits = connector_class.limits
    target = reply_target(answered)
    public = sending.public if sending else bool(conversation["public"])
    info = ComposerInfo(True, channel=via, max_length=limits.max_text_length, formatting=limits.formatting,
                        window_hours=limits.reply_window_hours, recipient=target.handle or None,
                        private_reply_possible=public and limits.private_replies,
                        channel_name=connector_class.display_name, channel_kind=getattr(connector_class, "kind", None),
                        private_medium=getattr(connector_class, "private_medium", "message"), public=public)
    if limits.reply_window_hours:
        window_closes = sending.window_closes if sending else None
        if window_closes is None:
            last_in = parse_iso(conversation.get("last_inbound_at"))
            window_closes = last_in + dt.timedelta(hours=limits.reply_window_hours) if last_in else None
        if window_closes is not None:
            info.window_closes = window_closes
            info.window_closed = now >= info.window_closes
    # The address the reply goes to (the customer's Reply-To, if any) is what the loop guard checks.
    info.guard = loop_guard(target.handle, store.customer_identities(conversation["customer_id"]),
                            land.config.own_addresses())
    _file_facts(info, limits, land.config.max_attachment_bytes)
    info.copies = limits.copies
    if limits.copies:
        info.cc_suggested = suggested_copies(answered, own=land.config.own_addresses(),
                                             mail_domain=land.config.mail_domain)
    return info


def _file_facts(info: ComposerInfo, limits: Limits, installation_cap: int | None) -> None:
    """What the composer's file control offers, from the channel's declared limits; in words when nothing."""
    info.limits = limits
    info.files_allowed = limits.accepts_files(public=info.public)
    info.max_files = limits.max_attachments
    info.max_file_bytes = file_size_cap(limits, installation_cap)
    info.file_types = limits.attachment_types
    if info.files_allowed:
        return
    if limits.accepts_files(public=False):
        info.files_if_private = info.private_reply_possible
        info.files_reason = _("Public replies on %(channel)s cannot carry files; a private message can.",
                              channel=info.channel_name)
    else:
        info.files_reason = _("Replies on %(channel)s cannot carry files.", channel=info.channel_name)


def _uploaded_files() -> list[Attachment]:
    """The files attached in the composer (an empty file field sends one nameless part: skipped)."""
    files = []
    for upload in request.files.getlist("files"):
        if not upload or not upload.filename:
            continue
        data = upload.read()
        files.append(Attachment(filename=upload.filename, content_type=upload.mimetype or "application/octet-stream",
                                data=data, size=len(data)))
    return files


def formatted_html(text: str) -> str | None:
    """The HTML part of a reply on a formatted channel (the composer's light markdown: paragraphs,
    bold, italic, links), through the same sanitiser as everything shown; the plain text goes along
    as the first alternative. None when the sanitiser refused it: the reply then goes as plain text."""
    body, replaced = sanitize_html(to_html(text))
    return None if replaced or not body.strip() else body


def _copies_from_form(composer: ComposerInfo) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Cc and Bcc fields as addresses; CopiesRefused for anything a reply cannot go to."""
    cc_text, bcc_text = request.form.get("cc") or "", request.form.get("bcc") or ""
    if not composer.copies:
        if cc_text.strip() or bcc_text.strip():
            raise CopiesRefused("unsupported")
        return (), ()
    config = mainland().config
    return parse_copies(cc_text[:MAX_TEXT_CHARS], bcc_text[:MAX_TEXT_CHARS], to=composer.recipient or "",
                        own=config.own_addresses(), mail_domain=config.mail_domain)


def copies_refused_message(exc: CopiesRefused) -> str:
    """What the agent reads when Cc or Bcc holds something a reply cannot go to, and what to do."""
    if exc.reason == "invalid":
        return _("%(address)s is not an email address. Write addresses separated by commas, like "
                 "ann@example.com, bob@example.org.", address=exc.details["address"])
    if exc.reason == "own":
        return _("%(address)s is one of Mainland's own addresses: a copy would loop back into this inbox. "
                 "Remove it.", address=exc.details["address"])
    if exc.reason == "count":
        return ngettext("At most %(num)d address in copy. Remove some.",
                        "At most %(num)d addresses in copy. Remove some.", exc.details["limit"])
    return _("This channel cannot send copies. Empty the Cc and Bcc fields.")


#: Readable names for the kinds of file a channel takes: an agent reads "images, PDF", not MIME types.
_FILE_KIND_LABELS = (
    ("image/", _l("images")), ("video/", _l("video")), ("audio/", _l("audio")), ("application/pdf", _l("PDF")),
    ("text/", _l("text files")), ("application/msword", _l("Office documents")),
    ("application/vnd.ms-", _l("Office documents")), ("application/vnd.openxmlformats", _l("Office documents")),
)


def file_kinds(types: tuple[str, ...]) -> str:
    """`("image/jpeg", "image/png", "application/pdf")` -> "images, PDF" (unknown types as themselves)."""
    names: list[str] = []
    for kind in types:
        name = next((str(label) for prefix, label in _FILE_KIND_LABELS if kind.startswith(prefix)), kind)
        if name not in names:
            names.append(name)
    return ", ".join(names)


def files_refused_message(exc: FilesRefused, info: ComposerInfo) -> str:
    """What the agent reads when the reply's files break a rule, with what to do about it."""
    details = exc.details
    if exc.reason == "none":
        return " ".join([info.files_reason or _("This reply cannot carry files."),
                         _("Remove the files, or share a link to them instead.")])
    if exc.reason == "count":
        return ngettext("This channel takes at most %(num)d file per reply. Remove some, or send them in another "
                        "reply.", "This channel takes at most %(num)d files per reply. Remove some, or send them in "
                        "another reply.", details["limit"])
    if exc.reason == "type":
        return _("%(name)s cannot be sent here: this channel takes only %(types)s. Remove it, or convert it first.",
                 name=details["filename"], types=file_kinds(info.file_types))
    if exc.reason == "size":
        return _("%(name)s is too large: at most %(size)s per file. Remove it, or share a link to it instead.",
                 name=details["filename"], size=filesize(details["limit"]))
    return _("%(name)s is empty. Remove it and attach the file again.", name=details.get("filename", ""))


def _prepared(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for message in messages:
        for att in message.get("attachments", []):
            att["display_name"] = safe_filename(att["filename"], content_type=att["content_type"])
        if message["direction"] == "note" and message.get("agent_id") is None:
            _word_routing_move(message)
            _word_rule_firing(message)
    return messages


def _word_routing_move(note: dict[str, Any]) -> None:
    """Routing's timeline note about a flow-on, in the reader's language (stored in English)."""
    move = get_store().routing_move(note)
    if move is None:
        return
    why = json.loads(move["detail"] or "{}").get("from_state", "")
    previous = move["previous_agent_name"] or _("(unknown)")
    note["text"] = moved_note(previous, move["agent_name"], why, _)


def _word_rule_firing(note: dict[str, Any]) -> None:
    """An automation rule's timeline note, in the reader's language (stored in English)."""
    from inbox.web.rules import done_text  # the rules pages import this module

    firing = get_store().rule_firing_for_note(note)
    if firing is not None:
        note["text"] = rules.firing_text(firing["rule_name"], firing["done"], _, describe=done_text)


def _page_context(conversation: dict[str, Any], **extra: Any) -> dict[str, Any]:
    store = get_store()
    agent = current_agent()
    team_ids = access.visible_team_ids(store, agent)
    total = store.thread_length(conversation["id"])
    # A long thread opens with its latest part; the earlier part comes as the agent scrolls up
    # (GET .../messages?before=<offset>), or all at once with ?all=1 (no script needed).
    start = 0 if request.args.get("all") == "1" else max(0, total - THREAD_WINDOW)
    messages = _prepared(store.thread_messages(conversation["id"], offset=start))
    newer, older = store.neighbours(conversation, team_ids)
    view = current_view()
    merged_target = None
    if conversation.get("merged_into"):
        try:
            target = store.conversation(conversation["merged_into"])
        except StoreNotFound:
            target = None
        if target is not None and access.can_see_conversation(store, agent, target):
            merged_target = target
    store.notifications.mark_read(agent["id"], _now_iso(), conversation_id=conversation["id"])
    if messages:
        # The queue's unread marker: this agent has seen the conversation up to here.
        store.mark_seen(agent["id"], conversation["id"], max(m["id"] for m in messages))
    context = {
        "conversation": conversation,
        "messages": messages,
        "earlier": start,
        "thread_length": total,
        "seen_up_to": max((m["id"] for m in messages), default=0),
        "identities": store.customer_identities(conversation["customer_id"]),
        "history": store.customer_history(conversation["customer_id"], team_ids, exclude_id=conversation["id"]),
        "merges": store.merges_of(conversation["id"]),
        "merged_target": merged_target,
        "composer": composer_info(conversation),
        "agents": store.mentionable_agents(),
        "teams": store.team_names(),
        "labels": store.labels_of([conversation["id"]]).get(conversation["id"], []),
        "all_labels": store.labels(),
        "assignee": store.agent(conversation["assignee_id"]) if conversation.get("assignee_id") else None,
        "kinds": _channel_kinds(),
        "newer_id": newer,
        "older_id": older,
        "view": view,
        "view_url": _view_queue_url(view),
        "conversation_url": lambda cid: conversation_url(cid, view),
        "default_send_status": store.team_default_send_status(conversation.get("team_id")),
        "send_statuses": SEND_STATUSES,
        "send_labels": SEND_LABELS,
        "settable": SETTABLE,
        "snooze_presets": [(key, SNOOZE_LABELS.get(key, key)) for key, _delta in SNOOZE_PRESETS],
        "priorities": [(p, PRIORITY_LABELS[p]) for p in PRIORITIES],
        "is_admin": access.is_admin(agent),
        "max_request_bytes": mainland().config.max_message_bytes,
        "can_forward": forward_channel(mainland(), conversation["channel"]) is not None
        if conversation["channel"] in mainland().config.channels else False,
        "draft": "",
        "note_draft": "",
        "error": None,
        "held": False,
    }
    context.update(extra)
    return context


def _now() -> dt.datetime:
    return clock.now()


def _now_iso() -> str:
    return iso(_now())


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _id_field(name: str) -> int | None:
    """A positive id from the form, or None (never an int SQLite cannot hold)."""
    value = (request.form.get(name) or "").strip()
    if not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    return number if number > 0 else None


def _fragment(conversation_id: int, after: int) -> dict[str, Any]:
    messages = _prepared(get_store().thread_messages(conversation_id, after_id=after))
    html = render_template("conversations/_messages.html", messages=messages,
                           conversation=get_store().conversation(conversation_id))
    return {"html": html, "last_id": max((m["id"] for m in messages), default=after),
            "count": len(messages)}


def _audit(action: str, conversation_id: int, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(_now_iso(), f"agent:{current_agent()['id']}", action, "conversation", conversation_id,
                    **details)


def _done(at_id: int, message: str, *, after: int | None = None, anchor: str = "",
          **payload: Any):
    """A successful action: JSON for the page's script, else a flash and back to the conversation."""
    if _wants_json():
        body: dict[str, Any] = {"ok": True, "message": message, **payload}
        if after is not None:
            body.update(_fragment(at_id, after))
        return jsonify(body)
    flash(message, "success")
    return redirect(url_for("conversations.show", conversation_id=at_id) + anchor, code=303)


def _refused(conversation: dict[str, Any], error: str, *, status: int = 400, **page: Any):
    """A refused action: JSON with the reason, else the page again with the reason and the drafts kept."""
    if _wants_json():
        return jsonify(ok=False, error=error), status
    return render_template("conversations/show.html", **_page_context(conversation, error=error, **page)), status


def _held(conversation: dict[str, Any], seen_up_to: int, draft: str):
    error = str(_l("New messages arrived while you were writing. Read them, then send again: your reply is kept."))
    if _wants_json():
        return jsonify(ok=False, held=True, error=error, **_fragment(conversation["id"], seen_up_to)), 409
    return render_template("conversations/show.html",
                           **_page_context(conversation, error=error, held=True, draft=draft)), 409


@bp.get("/conversations/<int:conversation_id>/messages")
@login_required
def messages_after(conversation_id: int):
    """The messages after `?after=<id>` as HTML to append (live updates, the stale-reply hold), or with
    `?before=<offset>` the window of the thread just before that position, to prepend."""
    _visible_conversation(conversation_id)
    before = request.args.get("before", type=int)
    if before is not None:
        if not 0 <= before < 2**31:
            abort(400)
        start = max(0, before - THREAD_WINDOW)
        earlier = _prepared(get_store().thread_messages(conversation_id, offset=start, limit=before - start))
        html = render_template("conversations/_messages.html", messages=earlier,
                               conversation=get_store().conversation(conversation_id))
        return jsonify(ok=True, html=html, earlier=start, count=len(earlier))
    after = request.args.get("after", default=0, type=int)
    if not 0 <= after < 2**63:
        abort(400)
    return jsonify(ok=True, **_fragment(conversation_id, after))


@bp.post("/conversations/<int:conversation_id>/reply")
@login_required
def reply(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    store = get_store()
    agent = current_agent()
    # A request over the installation's size cap never gets here (413); the composer checks the total first.
    text = (request.form.get("text") or "").replace("\r\n", "\n")
    files = _uploaded_files()
    seen_up_to = _id_field("seen_up_to") or 0
    keep = {"draft": text, "cc_value": request.form.get("cc", ""), "bcc_value": request.form.get("bcc", "")}
    if not text.strip() and not files:
        return _refused(conversation, str(_l("Write a reply first.")), **keep)
    if len(text) > MAX_TEXT_CHARS:
        return _refused(conversation, str(_l("The reply is too long.")), **keep)
    unfilled = answer_library.VARIABLE.search(text)
    if unfilled:
        # An answer's variable nobody filled in ("{{order_number}}") must never reach the customer.
        return _refused(conversation, _("Fill in %(variable)s before sending.", variable=unfilled.group(0)), **keep)
    if conversation.get("merged_into"):
        return _refused(conversation, str(TRANSITION_MESSAGES["merged"]), **keep)
    then_status = request.form.get("then_status") or store.team_default_send_status(conversation.get("team_id"))
    if then_status not in SEND_STATUSES:
        return _refused(conversation, str(TRANSITION_MESSAGES["invalid"]), **keep)
    composer = composer_info(conversation)
    # One rule for every message to a customer (inbox/sendability.py): where it goes, and whether now.
    # The signature is part of what the customer receives, so it counts against the channel's length.
    decision = sendability.decide(
        mainland(), store, conversation, kind=sendability.AGENT_REPLY, text=signed_text(text, composer.signature),
        answering=_id_field("reply_to"), outside_window=bool(request.form.get("outside_window")),
        override_guard=bool(request.form.get("override_guard")) and access.is_admin(agent), now=_now())
    if not decision.allowed:
        return _refused(conversation, decision.reason, **keep)
    target = decision.target
    overridden = decision.guard
    private = bool(request.form.get("private")) and target.private_reply_possible
    try:
        # The files are checked against the channel the reply goes out on (after a merge, the answered one's).
        check_files(sending_limits(mainland(), target.channel) or Limits(), files,
                    public=target.public and not private, installation_cap=mainland().config.max_attachment_bytes)
    except FilesRefused as exc:
        return _refused(conversation, files_refused_message(exc, composer), **keep)
    try:
        cc, bcc = _copies_from_form(composer)
    except CopiesRefused as exc:
        return _refused(conversation, copies_refused_message(exc), **keep)
    queued = None
    change = None
    # Undo send: the reply waits this long in the outbox; its writer can take it back meanwhile.
    hold = undo_seconds(mainland().config)
    try:
        # One transaction: nothing can arrive between the stale-reply check and the queueing, and
        # the reply and the status it sets are written together.
        with store.write():
            unseen = store.unseen_message_ids(conversation_id, seen_up_to, agent["id"])
            if not unseen:
                html = formatted_html(text) if target.formatting == "html" else None
                queued = queue_reply(mainland(), store, conversation_id, text, agent=agent, html=html,
                                     flags=[FLAG_PRIVATE_REPLY] if private else [], hold_seconds=hold,
                                     target=target, files=files, cc=cc, bcc=bcc)
                if overridden:
                    store.audit(_now_iso(), f"agent:{agent['id']}", "reply_loop_guard_override", "conversation",
                                conversation_id, reason=overridden)
                # A reply held for review is not sent yet: the status stays until a lead sends it.
                if not is_held_for_review(queued):
                    before = store.conversation(conversation_id)
                    change = apply_status(before, then_status, now=_now())
                    if hold and change.status != before["status"]:
                        store.set_outbox_undo_status(queued, before["status"])
                # Sent (or held for review): the draft has done its work, on every device.
                store.drafts.delete(agent["id"], conversation_id, "reply")
    except ReplyRefused:
        return _refused(conversation, str(_l("There is no message from the customer to answer.")), **keep)
    if unseen:
        return _held(conversation, seen_up_to, text)
    if is_held_for_review(queued):
        return _held_for_review(conversation, seen_up_to)
    message = _("Reply queued: it is sent as soon as the channel accepts it.")
    extra: dict[str, Any] = {}
    if hold:
        message = _("Reply queued: it is sent in %(n)s s unless you undo it.", n=math.ceil(hold))
        if _wants_json():
            undo = [{"id": queued, "seconds_left": math.ceil(hold)}]
            extra["undo"] = {"id": queued, "seconds": math.ceil(hold),
                             "html": render_template("conversations/_undo.html", conversation=conversation, undo=undo)}
    if change is not None and change.status in MOVE_ON_STATUSES:
        message = " ".join([message, _("Status: %(status)s.", status=status_label(change.status))])
        return _moved_on(conversation, message, after=seen_up_to, status=change.status, **extra)
    return _done(conversation_id, message, after=seen_up_to, anchor="#composer",
                 status=change.status if change else conversation["status"], **extra)


@bp.post("/conversations/<int:conversation_id>/forward")
@login_required
def forward(conversation_id: int):
    """Forward one message (`message_id`) or the whole conversation, with its files, to the addresses
    in `to`, through the outbox; the thread records who forwarded what to whom."""
    conversation = _visible_conversation(conversation_id)
    store = get_store()
    agent = current_agent()
    comment = (request.form.get("comment") or "").replace("\r\n", "\n")
    if len(comment) > MAX_TEXT_CHARS:
        return _refused(conversation, str(_l("The note is too long.")))
    message_row = _id_field("message_id")
    if message_row is not None:
        try:
            message = store.message(message_row)
        except StoreNotFound:
            abort(404)
        if message["conversation_id"] != conversation_id or message["direction"] not in ("in", "out"):
            abort(404)
    config = mainland().config
    try:
        to, _bcc = parse_copies((request.form.get("to") or "")[:MAX_TEXT_CHARS], "", to="",
                                own=config.own_addresses(), mail_domain=config.mail_domain)
    except CopiesRefused as exc:
        return _refused(conversation, copies_refused_message(exc))
    if not to:
        return _refused(conversation, str(_l("Write the address to forward to.")))
    try:
        queue_forward(mainland(), store, conversation_id, to, agent=agent, comment=comment, message_row=message_row,
                      now=_now())
    except ReplyRefused:
        return _refused(conversation, str(_l("No channel here can send mail to other addresses: an admin needs to "
                                             "configure an email channel first.")))
    _audit("forward", conversation_id, to=list(to), message_id=message_row)
    return _done(conversation_id, _("Forwarded to %(to)s: it goes out as soon as the channel accepts it.",
                                    to=", ".join(to)), after=_id_field("seen_up_to") or 0)


@bp.post("/conversations/<int:conversation_id>/undo-send")
@login_required
def undo_send(conversation_id: int):
    """Undo send: take the agent's reply out of the outbox before it is released to the channel.
    Its text goes back into the composer (and the agent's draft); the status the send set is undone."""
    conversation = _visible_conversation(conversation_id)
    store = get_store()
    agent = current_agent()
    outbox_id = (request.form.get("outbox_id") or "").strip()[:64]
    try:
        with store.write():
            row = undo_reply(mainland(), store, conversation_id, outbox_id, agent=agent, now=_now())
            store.drafts.save(agent["id"], conversation_id, "reply", row["text"], _now_iso())
            live.publish_message_removed(store, conversation_id, row["message_row"])
    except UndoRefused as exc:
        error = (_("Too late to undo: the reply has been handed to the channel already.")
                 if exc.reason == "released" else _("There is no reply of yours to undo here."))
        return _refused(conversation, error, status=409)
    _audit("reply_undone", conversation_id)
    session.pop("_flashes", None)  # "Reply queued", flashed for the next page, is no longer true
    status = store.conversation(conversation_id)["status"]
    if row.get("undo_status") and row["undo_status"] != status:
        try:
            status = apply_status(store.conversation(conversation_id), row["undo_status"], now=_now()).status
        except TransitionRefused:
            pass
    message = _("Sending undone: the reply is back in the composer.")
    if row.get("dropped_files"):
        # The files are not kept with the draft (drafts are text): say so, so none goes missing unnoticed.
        message = " ".join([message, ngettext("Its file was not kept: attach it again.",
                                              "Its %(num)d files were not kept: attach them again.",
                                              len(row["dropped_files"]))])
    return _done(conversation_id, message, anchor="#composer",
                 text=row["text"], message_id=row["message_row"], status=status,
                 files_dropped=len(row.get("dropped_files") or []))


@bp.post("/conversations/<int:conversation_id>/draft")
@login_required
def save_draft(conversation_id: int):
    """The composer's text, saved as the agent types (JSON `{"kind": "reply"|"note", "text": ...}`);
    an empty text deletes the draft. Colleagues see that the agent has a draft, never its text."""
    _visible_conversation(conversation_id)
    data = request.get_json(silent=True) if request.is_json else request.form
    data = data if isinstance(data, dict) or hasattr(data, "get") else {}
    kind = str(data.get("kind") or "reply")
    text = str(data.get("text") or "").replace("\r\n", "\n")
    if kind not in ("reply", "note") or len(text) > MAX_TEXT_CHARS:
        return jsonify(ok=False, error=str(_l("This draft cannot be saved."))), 400
    store = get_store()
    with store.write():
        store.drafts.save(current_agent()["id"], conversation_id, kind, text, _now_iso())
    return jsonify(ok=True, saved=bool(text.strip()))


def _held_for_review(conversation: dict[str, Any], seen_up_to: int):
    """A trainee's reply was held: say so, and show it in the thread as waiting for review."""
    from inbox.web.review import held_thread_html

    message = _("Your reply waits for a lead's review before it is sent. It is shown in the thread until then.")
    if _wants_json():
        return jsonify(ok=True, held_for_review=True, message=message, review_html=held_thread_html(conversation),
                       **_fragment(conversation["id"], seen_up_to))
    flash(message, "success")
    return redirect(conversation_url(conversation["id"], current_view()) + "#held-replies", code=303)


@bp.post("/conversations/<int:conversation_id>/notes")
@login_required
def add_note(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    store = get_store()
    agent = current_agent()
    text = (request.form.get("text") or "").replace("\r\n", "\n")
    seen_up_to = _id_field("seen_up_to") or 0
    if not text.strip():
        return _refused(conversation, str(_l("Write a note first.")), note_draft=text)
    if len(text) > MAX_TEXT_CHARS:
        return _refused(conversation, str(_l("The note is too long.")), note_draft=text)
    if conversation.get("merged_into"):
        return _refused(conversation, str(TRANSITION_MESSAGES["merged"]), note_draft=text)
    mentioned, ambiguous = find_mentions(text, store.mentionable_agents())
    notify = [a for a in mentioned if a["id"] != agent["id"] and access.can_see_conversation(store, a, conversation)]
    blind = [a for a in mentioned if a["id"] != agent["id"] and a not in notify]
    now = _now_iso()
    with store.write():
        message_id = store.add_note(conversation_id, agent_id=agent["id"], author_name=agent["name"] or agent["email"],
                                    text=text, external_id=f"note:{uuid.uuid4().hex}", now=now)
        store.notifications.add([a["id"] for a in notify], kind="mention", conversation_id=conversation_id,
                                message_id=message_id, actor_id=agent["id"], now=now)
    parts = [_("Note added.")]
    if notify:
        parts.append(ngettext("%(num)d agent notified.", "%(num)d agents notified.", len(notify)))
    for token in ambiguous:
        parts.append(_("@%(name)s fits several agents, so nobody was notified for it: use their email address.",
                       name=token))
    for other in blind:
        parts.append(_("%(name)s cannot see this conversation and was not notified.",
                       name=other["name"] or other["email"]))
    return _done(conversation_id, " ".join(parts), after=seen_up_to, anchor=f"#message-{message_id}",
                 notified=[a["id"] for a in notify])


@bp.post("/conversations/<int:conversation_id>/status")
@login_required
def change_status(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    target = request.form.get("status", "")
    now = _now()
    snooze_until = None
    if target == "snoozed":
        snooze_until = parse_snooze(request.form.get("snooze_until") or request.form.get("snooze") or "", now)
    try:
        change = apply_status(conversation, target, now=now, snooze_until=snooze_until)
    except TransitionRefused as exc:
        return _refused(conversation, str(TRANSITION_MESSAGES.get(exc.code, TRANSITION_MESSAGES["unknown"])))
    if change.status == "snoozed":
        message = _("Snoozed until %(when)s.", when=when(change.snoozed_until))
    else:
        message = _("Status: %(status)s.", status=status_label(change.status))
    payload = {"status": change.status, "snoozed_until": change.snoozed_until}
    if change.status in MOVE_ON_STATUSES:
        return _moved_on(conversation, message, **payload)
    return _done(conversation_id, message, **payload)


def apply_status(conversation: dict[str, Any], target: str, *, now: dt.datetime,
                 snooze_until: dt.datetime | None = None) -> Transition:
    """Set the status by the lifecycle rules, with its audit entry; TransitionRefused when not allowed.

    The one way the status buttons and "Send + status" change a status. Setting the status it
    already has writes nothing (no audit entry for a change that did not happen).
    """
    change = transition(conversation["status"], target, now=now, snooze_until=snooze_until,
                        merged=bool(conversation.get("merged_into")))
    if (change.status, change.snoozed_until) == (conversation["status"], conversation.get("snoozed_until")):
        return change
    get_store().set_conversation_status(conversation["id"], change.status, change.snoozed_until, iso(now))
    _audit("status", conversation["id"], before=conversation["status"], after=change.status,
           snoozed_until=change.snoozed_until)
    from inbox.web.triage import taught_status_change  # it imports this module's neighbours

    # Into or out of spam: the spam model learns from it (#14).
    taught_status_change(get_store(), conversation, change.status, current_agent(), now)
    # Automation rules on status changes (#15), after the change is written; they never refuse it.
    rules.after_status_change(mainland(), get_store(), conversation["id"], conversation["status"], change.status,
                              now)
    return change


# Moving on: the queue view the agent came from ------------------------------------------------
#
# The queue links a conversation with `?view=<its query string>` (and the page falls back to the
# queue page that linked here, from the Referer). The page keeps the view in a hidden field of
# its forms, so a status change can open the next conversation of that same view.

def _clean_view(raw: str) -> str:
    """`raw` as a valid queue query string (the queue's own allow-lists), or "" for the default queue."""
    from inbox.web.queue import InvalidFilter, parse_query  # the queue module imports this one

    try:
        query = parse_query(dict(parse_qsl(raw[:MAX_VIEW_CHARS])))
    except (InvalidFilter, ValueError):
        return ""
    return urlencode(query.as_params())


def current_view() -> str:
    """The queue view of this request: the `view` field or parameter, else the queue page it came from."""
    raw = request.values.get("view")
    if raw is None:
        referrer = urlsplit(request.referrer or "")
        if referrer.path == "/" and referrer.netloc in ("", request.host):
            raw = referrer.query
    return _clean_view(raw or "")


def conversation_url(conversation_id: int, view: str = "") -> str:
    """The conversation page, keeping the queue view along."""
    if view:
        return url_for("conversations.show", conversation_id=conversation_id, view=view)
    return url_for("conversations.show", conversation_id=conversation_id)


def _view_queue_url(view: str) -> str:
    return url_for("queue.index") + (f"?{view}" if view else "")


def _sort_value(conversation: dict[str, Any], sort: str) -> str:
    """The conversation's value of the queue's sort expression (inbox/store/queue.py SORTS)."""
    if sort == "waiting":
        return conversation.get("waiting_since") or "~"
    if sort == "urgency":
        return conversation.get("sla_due_adequate") or "~"
    return conversation["last_message_at"]


def next_in_view(conversation: dict[str, Any], view: str) -> str:
    """Where the agent goes once `conversation` is out of their hands: the conversation after it in
    their queue view (by its place before the change), else the view itself."""
    from inbox.web.queue import parse_query

    query = parse_query(dict(parse_qsl(view)))
    store = get_store()
    agent = current_agent()
    position = (_sort_value(conversation, query.sort), conversation["id"])
    rows = store.queue_page(query, team_ids=access.visible_team_ids(store, agent), agent_id=agent["id"],
                            after=position, limit=2)
    following = next((row["id"] for row in rows if row["id"] != conversation["id"]), None)
    if following is None:
        return _view_queue_url(view)
    return conversation_url(following, view)


def _moved_on(conversation: dict[str, Any], message: str, *, after: int | None = None, **payload: Any):
    """A change that took the conversation out of the agent's hands: on to the next one of the view.

    The message is flashed either way: the page's script follows `next_url`, where it is shown.
    JSON also carries the new messages after `after`, like any other answer to a reply.
    """
    next_url = next_in_view(conversation, current_view())
    flash(message, "success")
    if _wants_json():
        body: dict[str, Any] = {"ok": True, "message": message, "next_url": next_url, **payload}
        if after is not None:
            body.update(_fragment(conversation["id"], after))
        return jsonify(body)
    return redirect(next_url, code=303)


@bp.post("/conversations/<int:conversation_id>/assign")
@login_required
def assign(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    store = get_store()
    agent = current_agent()
    assignee_id = conversation["assignee_id"]
    team_id = conversation["team_id"]
    raw_assignee = request.form.get("assignee")
    if raw_assignee is not None:
        if raw_assignee == "me":
            assignee_id = agent["id"]
        elif raw_assignee == "":
            assignee_id = None
        else:
            assignee_id = _id_field("assignee")
            row = store.agent(assignee_id) if assignee_id else None
            if row is None or not row["active"]:
                return _refused(conversation, str(_l("There is no such agent.")))
    raw_team = request.form.get("team")
    if raw_team is not None:
        team_id = _id_field("team") if raw_team else None
        if raw_team and (team_id is None or store.team(team_id) is None):
            return _refused(conversation, str(_l("There is no such team.")))
    if assignee_id is not None:
        row = store.agent(assignee_id)
        if not access.can_see_conversation(store, row, {**conversation, "team_id": team_id}):
            return _refused(conversation, _("%(name)s is not in the conversation's team and could not see it.",
                                            name=row["name"] or row["email"]))
    if (assignee_id, team_id) == (conversation["assignee_id"], conversation["team_id"]):
        return _done(conversation_id, _("Nothing changed."))
    now = _now_iso()
    store.assign_conversation(conversation_id, assignee_id=assignee_id, team_id=team_id, now=now)
    if assignee_id and assignee_id != conversation["assignee_id"] and assignee_id != agent["id"]:
        store.notifications.add([assignee_id], kind="assigned", conversation_id=conversation_id, message_id=None,
                                actor_id=agent["id"], now=now)
    _audit("assign", conversation_id, assignee_before=conversation["assignee_id"], assignee=assignee_id,
           team_before=conversation["team_id"], team=team_id)
    if not access.can_see_conversation(store, agent, {**conversation, "team_id": team_id}):
        # Handed over to a team this agent is not in: the conversation page is no longer theirs.
        if _wants_json():
            return jsonify(ok=True, message=_("Handed over to another team."), gone=True)
        flash(_("Handed over to another team."), "success")
        return redirect("/", code=303)
    return _done(conversation_id, _("Assignment saved."), assignee_id=assignee_id, team_id=team_id)


@bp.post("/conversations/<int:conversation_id>/priority")
@login_required
def set_priority(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    raw = (request.form.get("priority") or "").strip()
    priority = int(raw) if raw.isdigit() and len(raw) < 3 else None
    if priority not in PRIORITIES:
        return _refused(conversation, str(_l("Choose one of the priorities offered.")))
    get_store().set_conversation_priority(conversation_id, priority, _now_iso())
    _audit("priority", conversation_id, before=conversation["priority"], after=priority)
    return _done(conversation_id, _("Priority: %(priority)s.", priority=PRIORITY_LABELS[priority]), priority=priority)


@bp.post("/conversations/<int:conversation_id>/labels")
@login_required
def change_labels(conversation_id: int):
    """Add a label by name (`add`, created when new) or remove one by id (`remove`)."""
    conversation = _visible_conversation(conversation_id)
    store = get_store()
    actor = f"agent:{current_agent()['id']}"
    name = " ".join((request.form.get("add") or "").split())
    if name:
        try:
            label_id = store.ensure_label(name)
        except StoreError:
            return _refused(conversation, str(_l("A label name has 1 to 40 characters.")))
        store.bulk_update([conversation_id], action="label_add", value=label_id, actor=actor)
        return _done(conversation_id, _("Label added: %(name)s.", name=name))
    label_id = _id_field("remove")
    if label_id is None:
        return _refused(conversation, str(_l("Name the label to add.")))
    store.bulk_update([conversation_id], action="label_remove", value=label_id, actor=actor)
    return _done(conversation_id, _("Label removed."))


@bp.post("/conversations/<int:conversation_id>/merge")
@login_required
def merge(conversation_id: int):
    """Merge this conversation into another one of the same customer (`into` in the form)."""
    conversation = _visible_conversation(conversation_id)
    into = _id_field("into")
    if into is None:
        return _refused(conversation, str(_l("Choose the conversation to merge this one into.")))
    # The target is an object id from the form body: hidden and unknown ones are both 404 (IN-65).
    target = _visible_conversation(into)
    store = get_store()
    try:
        merge_id = store.merge_conversations(conversation_id, target["id"], agent_id=current_agent()["id"],
                                             now=_now_iso())
    except MergeRefused as exc:
        return _refused(conversation, str(MERGE_MESSAGES.get(exc.code, MERGE_MESSAGES["merged"])))
    _audit("merge", conversation_id, into=target["id"], merge_id=merge_id)
    return _done(target["id"], _("Merged: the messages of #%(source)d are in this conversation now.",
                                 source=conversation_id), merge_id=merge_id, target_id=target["id"])


@bp.post("/merges/<int:merge_id>/undo")
@login_required
def undo_merge(merge_id: int):
    store = get_store()
    record = store.merge_record(merge_id)
    if record is None:
        abort(404)
    source = _visible_conversation(record["source_id"])
    _visible_conversation(record["target_id"])
    try:
        store.undo_merge(merge_id, now=_now_iso())
    except MergeRefused as exc:
        return _refused(source, str(MERGE_MESSAGES.get(exc.code, MERGE_MESSAGES["undone"])))
    _audit("merge_undone", record["source_id"], merge_id=merge_id, target=record["target_id"])
    return _done(record["source_id"], _("Merge undone: the messages are back in this conversation."))


@bp.post("/conversations/<int:conversation_id>/split")
@login_required
def split(conversation_id: int):
    """Move one message (`message_id` in the form) out into a new conversation of the same customer."""
    conversation = _visible_conversation(conversation_id)
    message_id = _id_field("message_id")
    store = get_store()
    try:
        message = store.message(message_id) if message_id else None
    except StoreNotFound:
        message = None
    if message is None or message["conversation_id"] != conversation_id:
        abort(404)
    if conversation.get("merged_into"):
        return _refused(conversation, str(TRANSITION_MESSAGES["merged"]))
    try:
        with store.write():  # the token checked and taken in one transaction
            new_id = store.split_message(conversation_id, message_id, token=unused_token(store), now=_now_iso())
    except MergeRefused as exc:
        return _refused(conversation, str(MERGE_MESSAGES.get(exc.code, MERGE_MESSAGES["only_message"])))
    _audit("split", conversation_id, message_id=message_id, new_conversation=new_id)
    return _done(new_id, _("Split off from #%(source)d into this new conversation.", source=conversation_id),
                 conversation_id=new_id)


def _act_on_reply(message_id: int, act: Any, *, refusal: Any, action: str, done: str):
    """Do `act(store, outbox_id, now)` on our reply's outbox row; refused with `refusal` when it did nothing."""
    message = _visible_message(message_id)
    store = get_store()
    outbox_id = store.outbox_id_for_message(message_id)
    if outbox_id is None:
        abort(404)
    with store.write():
        changed = act(store, outbox_id, _now_iso())
    conversation = store.conversation(message["conversation_id"])
    if not changed:
        return _refused(conversation, str(refusal))
    _audit(action, conversation["id"], message_id=message_id)
    return _done(conversation["id"], done, anchor=f"#message-{message_id}")


@bp.post("/messages/<int:message_id>/retry")
@login_required
def retry_reply(message_id: int):
    """Send a failed (or possibly sent) reply again, after the cause was fixed or the agent checked."""
    return _act_on_reply(message_id, lambda store, oid, now: store.retry_outbox(oid, now),
                         refusal=_l("Only a failed reply can be sent again."), action="reply_retry",
                         done=_("The reply is queued again."))


@bp.post("/messages/<int:message_id>/confirm-sent")
@login_required
def confirm_sent(message_id: int):
    """A possibly sent reply did reach the customer (the agent checked at the channel): mark it sent."""
    return _act_on_reply(message_id, lambda store, oid, now: store.confirm_outbox_sent(oid, now),
                         refusal=_l("Only a possibly sent reply can be marked as sent."),
                         action="reply_confirmed_sent", done=_("Marked as sent; it will not be sent again."))


# Signatures ------------------------------------------------------------------------------------
#
# An agent edits their own signature; an admin edits the channels' and teams' (inbox/signatures.py).

SAMPLE_VALUES = {"agent_name": "Ann Agent", "agent_first_name": "Ann", "team_name": "Support",
                 "channel_name": "mail"}


def _signature_field(name: str) -> str | None:
    """A posted signature template, or None when it is too long."""
    text = (request.form.get(name) or "").replace("\r\n", "\n")
    return text if len(text) <= MAX_SIGNATURE_CHARS else None


@bp.route("/settings/signature", methods=["GET", "POST"])
@login_required
def my_signature():
    """The signed-in agent's own signature."""
    store = get_store()
    agent = current_agent()
    error = None
    if request.method == "POST":
        text = _signature_field("signature")
        if text is None:
            error = _("A signature has at most %(n)d characters.", n=MAX_SIGNATURE_CHARS)
        else:
            store.signatures.set("agent", agent["id"], text, _now_iso())
            flash(_("Signature saved.") if text.strip() else _("Signature removed."), "success")
            return redirect(url_for("conversations.my_signature"), code=303)
    current = store.signatures.get("agent", agent["id"]) or ""
    values = {**SAMPLE_VALUES, "agent_name": agent["name"] or "",
              "agent_first_name": (agent["name"] or "").split()[0] if agent["name"] else ""}
    return render_template("signatures/mine.html", signature=current, preview=render(current, values),
                           variables=VARIABLES, error=error, is_admin=access.is_admin(agent)), 400 if error else 200


@bp.route("/settings/signatures", methods=["GET", "POST"])
@login_required
def shared_signatures():
    """Admins: the signature every reply of a channel (or else of a team) ends with."""
    agent = current_agent()
    if not access.is_admin(agent):
        abort(403)
    store = get_store()
    channels = sorted(mainland().config.channels)
    teams = store.team_names()
    error = None
    if request.method == "POST":
        fields = [("channel", name, f"channel:{name}") for name in channels]
        fields += [("team", str(team["id"]), f"team:{team['id']}") for team in teams]
        texts = {key: _signature_field(key) for _scope, _owner, key in fields}
        if any(text is None for text in texts.values()):
            error = _("A signature has at most %(n)d characters.", n=MAX_SIGNATURE_CHARS)
        else:
            for scope, owner, key in fields:
                if texts[key] != (store.signatures.get(scope, owner) or ""):
                    store.signatures.set(scope, owner, texts[key] or "", _now_iso())
            _audit_settings("signatures_changed")
            flash(_("Signatures saved."), "success")
            return redirect(url_for("conversations.shared_signatures"), code=303)
    return render_template("signatures/shared.html", channels=channels, teams=teams,
                           channel_signatures=store.signatures.all("channel"),
                           team_signatures=store.signatures.all("team"),
                           variables=VARIABLES, error=error), 400 if error else 200


def _audit_settings(action: str) -> None:
    store = get_store()
    with store.write():
        store.audit(_now_iso(), f"agent:{current_agent()['id']}", action, "settings", None)


# Notifications ---------------------------------------------------------------------------------

NOTIFICATION_KINDS = {
    "mention": _l("mentioned you"),
    "assigned": _l("assigned a conversation to you"),
    # Routing passed a waiting conversation of theirs on (inbox/routing.py flow_on); no actor.
    "routing_moved": _l("passed a conversation of yours on while you were away or offline"),
    "review_returned": _l("returned your reply with a comment"),
    # Service-level notices to leads (inbox/service_levels.py notify_leads); they have no actor.
    "sla_warning": _l("(service level) soon past the adequate time"),
    "sla_breach": _l("(service level) past the adequate time"),
    # An automation rule asked for this agent's attention (inbox/rules.py); no actor.
    "rule": _l("(automation rule) asks you to look at a conversation"),
}


@bp.get("/notifications")
@login_required
def notifications():
    store = get_store()
    agent = current_agent()
    rows = store.notifications.of(agent["id"], access.visible_team_ids(store, agent),
                                  unread_only=request.args.get("unread") == "1")
    if _wants_json():
        return jsonify(ok=True, unread=sum(1 for r in rows if not r.read_at),
                       notifications=[{"id": r.id, "kind": r.kind, "conversation_id": r.conversation_id,
                                       "message_id": r.message_id, "created_at": r.created_at,
                                       "read": bool(r.read_at), "actor": r.actor_name or r.actor_email,
                                       "subject": r.subject} for r in rows])
    return render_template("conversations/notifications.html", notifications=rows, kinds=_channel_kinds(),
                           kind_labels=NOTIFICATION_KINDS)


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def notification_read(notification_id: int):
    get_store().notifications.mark_read(current_agent()["id"], _now_iso(), notification_id=notification_id)
    if _wants_json():
        return jsonify(ok=True)
    return redirect(url_for("conversations.notifications"), code=303)


@bp.post("/notifications/read-all")
@login_required
def notifications_read_all():
    get_store().notifications.mark_read(current_agent()["id"], _now_iso())
    if _wants_json():
        return jsonify(ok=True)
    flash(_("All notifications are marked read."), "success")
    return redirect(url_for("conversations.notifications"), code=303)


def unread_notifications() -> int:
    """The signed-in agent's unread notifications (the badge in the top bar)."""
    agent = current_agent()
    if agent is None:
        return 0
    store = get_store()
    return store.notifications.unread_count(agent["id"], access.visible_team_ids(store, agent))


def delivery_label(status: str | None) -> str:
    return str(DELIVERY_LABELS.get(status or "", status or ""))


def priority_label(priority: int | None) -> str:
    return str(PRIORITY_LABELS.get(priority or 0, priority))


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


def our_html(html: str | None) -> Markup:
    """Our own reply's HTML (made from the agent's light markdown when it was sent), sanitised, to
    show inline in the thread; empty when there is none or the sanitiser refused it."""
    body, replaced = sanitize_html(html or "") if html else ("", True)
    return Markup("") if replaced else Markup(body)  # noqa: S704 - nh3-sanitised above


def filesize(size: int | None) -> str:
    if size is None:
        return ""
    for unit, factor in (("MB", 1024 * 1024), ("kB", 1024)):
        if size >= factor:
            return f"{format_decimal(size / factor, format='#,##0.0')} {unit}"
    return f"{size} B"


def reply_targets(conversation: dict[str, Any]) -> list[sendability.Target]:
    """The channels a reply in this conversation can go out on (the composer's "Reply on" choice)."""
    return sendability.reachable(mainland(), get_store(), conversation)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(status_label=status_label, flag_label=flag_label, flag_help=flag_help,
                                 direction_label=direction_label, delivery_label=delivery_label,
                                 priority_label=priority_label, unread_notifications=unread_notifications,
                                 delivery_labels=lambda: {k: str(v) for k, v in DELIVERY_LABELS.items()},
                                 status_labels=lambda: {k: str(v) for k, v in STATUS_LABELS.items()})
    app.jinja_env.filters.update(when=when, filesize=filesize, our_html=our_html, file_kinds=file_kinds,
                                 format_variable=lambda name: "{" + name + "}")
    app.jinja_env.globals["reply_targets"] = reply_targets
