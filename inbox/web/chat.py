"""The website chat's public endpoints (#18): what the widget on a customer's site talks to.

Routes (every one but the script only for a configured, enabled channel of kind "chat"; 404 otherwise):

- `GET  /chat/widget.js`                 the widget; one `<script data-channel="NAME">` per site
- `GET  /chat/<channel>/config`          JSON: title, greeting, colour and the widget's words (`?lang=`)
- `GET  /chat/<channel>/messages`        JSON: the visitor's conversation (visitor token in a header);
                                         with `?wait=25` and `X-Mainland-Since` a long poll (see "Live")
- `POST /chat/<channel>/messages`        JSON `{"client_id", "text"}`: one message, stored exactly once
- `POST /chat/<channel>/files`           a file as the raw body (type in Content-Type, client id and
                                         percent-encoded name in headers): one message, stored exactly once
- `GET  /chat/<channel>/files/<id>`      a file of the visitor's own conversation (visitor token in a header)
- `POST /chat/<channel>/receipts`        JSON `{"delivered": [ids], "read": [ids]}`: the widget's markers
- `POST /chat/<channel>/typing`          JSON `{"typing": true|false}`: the visitor types (or stopped)
- `GET  /chat/<channel>/articles`        JSON: help-center articles for what the visitor types (`?q=`)
- `POST /chat/<channel>/email`           JSON `{"email", "lang", "page"}`: where an unread answer may follow
- `POST /chat/<channel>/signin/request`  JSON `{"email", "lang", "page"}`: mail a link to this chat (if known)
- `POST /chat/<channel>/signin`          JSON `{"token"}`: the link's token binds this browser to the chat
- `OPTIONS` on each of them              CORS preflight

The widget runs on other sites, where our session cookie is not sent: no CSRF token can work, and
none is needed, since the visitor token travels in the `X-Mainland-Visitor` header that no form can
set. Instead every request's Origin must be Mainland's own or one of the channel's
`allowed_origins`, and Flask-Limiter limits posts per IP address and per visitor. CORS answers
name only an allowed origin, never `*`. All checking of a message is the connector's
(connectors/chat.py); this module maps the outcomes to HTTP. See docs/chat.md.

Live: the open widget does not poll every few seconds; it asks `GET .../messages?wait=25` with the
`version` of its last answer in `X-Mainland-Since` (or `?since=`), and the request is held until
what the widget shows (messages, their states, an agent typing) differs from that version, or the
wait ends. Each held request holds
one of the server's threads, so at most `web.chat_waits` are held at once (per process; under
`mainland serve` 500, each with a thread of its own, `reserve_wait_threads`; under another server a
quarter of `web.threads`, at least 1); past that the answer comes at once with `busy` and a
`retry_ms`, and the widget polls with a back-off. A visitor's post or receipt wakes the waiting
requests of that visitor in this process at once (no other widget's); news from elsewhere (the
worker sending a reply, an agent's typing heartbeat) is looked for every `web.chat_check_seconds` (1 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from flask_babel import force_locale
from werkzeug.exceptions import ClientDisconnected

from connectors.base import WebhookRequest
from connectors.chat import (
    CLIENT_ID_HEADER,
    FILE_EXTENSIONS,
    FILE_NAME_HEADER,
    USER_HASH_HEADER,
    USER_HEADER,
    VISITOR_HEADER,
    ChatConnector,
    ChatRefused,
    on_reply_sent,
)
from connectors.webform import origin_of
from inbox import acknowledgements, chat_followup, clock, helpcenter, service_levels
from inbox.i18n import LANGUAGES, select_locale
from inbox.i18n import gettext as _
from inbox.ingest import IngestReport
from inbox.models import DeliveryUpdate, FetchResult
from inbox.store.base import iso
from inbox.web import get_store
from inbox.web.media import inline_kind, sandboxed_file
from inbox.web.own_endpoints import channel_connector, connector_made, own_origins
from inbox.web.security import csrf, limiter

log = logging.getLogger(__name__)

bp = Blueprint("chat", __name__)
csrf.exempt(bp)

#: How long a browser may cache a CORS preflight answer.
PREFLIGHT_MAX_AGE = 600
#: Help-center articles suggested at most for one question.
MAX_SUGGESTIONS = 3
ARTICLES_LIMIT = "60 per minute"
#: An agent's "typing" heartbeat is shown to the visitor this long (the composer beats every few seconds).
TYPING_SHOWN = dt.timedelta(seconds=8)
#: Message ids one receipt may name.
MAX_RECEIPTS = 200
#: The version of the widget's last answer, for a long poll (a header: the URL, and so the browser's
#: cached CORS preflight, stays the same from one poll to the next). `?since=` does the same.
SINCE_HEADER = "X-Mainland-Since"
#: The longest a widget's long poll is held (seconds); the widget asks for 25.
MAX_WAIT_SECONDS = 30.0
#: How often the process looks for its waiting widgets' news from elsewhere (another process's writes, an
#: agent's typing and read marks): `_Watcher`.
CHECK_SECONDS = 1.0
#: Long polls that get a thread of their own under `mainland serve` unless `web.chat_waits` says otherwise:
#: 500 open widgets on one machine (#18; bench/chat_load.py). Under another server, a quarter of its threads.
SERVED_WAITS = 500
#: What a widget waits before asking again when every long poll of this process is taken.
BUSY_RETRY_MS = 5000
#: The widget reports typing at most every 3 seconds while keys are pressed, and once when it stops.
TYPING_PER_VISITOR = "40 per minute"
TYPING_PER_IP = "6000 per hour"
WIDGET_SCRIPT = Path(__file__).resolve().parents[2] / "static" / "chat" / "widget.js"


# The channel ------------------------------------------------------------------------------------

def _allowed(origin: str | None, connector: ChatConnector) -> bool:
    return origin is not None and (origin in own_origins() or origin in connector.allowed_origins)


def _check_origin(connector: ChatConnector) -> None:
    """403 unless the request comes from us or an allowed site (or, same-origin GET, names none)."""
    header = request.headers.get("Origin")
    if header is None:
        referer = request.headers.get("Referer")
        header = referer if referer else None
    if header is None:
        return  # a same-origin GET, a server-side client: the visitor token still decides what it sees
    if not _allowed(origin_of(header) or "null", connector):
        log.info("chat %s: refused a request from origin %s", connector.name, header[:100])
        abort(403)


def _visitor(connector: ChatConnector) -> str:
    """The visitor whose conversation this request sees (a device a sign-in link bound: the earlier one)."""
    return chat_followup.bound_visitor(get_store(), connector.name, _device(connector))


def _device(connector: ChatConnector) -> str:
    """The visitor id of this browser itself (its token, or the host site's signed-in user)."""
    try:
        return connector.visitor_of(WebhookRequest(body=b"", headers=dict(request.headers.items())))
    except ChatRefused:
        abort(401)


# Rate limits: per IP for the channel, and per visitor (one address may hold many visitors: an office).

def _setting(name: str) -> int | None:
    channel = (request.view_args or {}).get("channel", "")
    config = current_app.extensions["mainland"].config.channels.get(channel)
    if config is None or config.kind != ChatConnector.kind:
        return None
    return int(ChatConnector.check_config(config.settings)[name])


def _per_ip() -> str:
    value = _setting("per_ip_per_hour")
    return f"{value} per hour" if value else "1000 per hour"


def _per_visitor() -> str:
    value = _setting("per_visitor_per_minute")
    return f"{value} per minute" if value else "1000 per minute"


def _visitor_key() -> str:
    # A digest, not the token: the limiter's storage must not hold a key to anyone's history.
    who = request.headers.get(USER_HEADER) or request.headers.get(VISITOR_HEADER, "")
    return "visitor:" + hashlib.sha256(who.encode("utf-8", "replace")).hexdigest()[:32]


def _scope(endpoint: str) -> str:
    return f"chat:{(request.view_args or {}).get('channel', '')}"


_ip_limit = limiter.shared_limit(_per_ip, scope=_scope, methods=["POST"])
_visitor_limit = limiter.shared_limit(_per_visitor, scope=lambda e: _scope(e) + ":visitor", key_func=_visitor_key,
                                      methods=["POST"])


# The widget and its words -----------------------------------------------------------------------

@bp.get("/chat/widget.js")
def widget_script():
    response = Response(WIDGET_SCRIPT.read_bytes(), mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=3600"
    # A site with a strict CSP loads it with its own nonce; the script needs nothing but fetch.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _language() -> str:
    asked = (request.args.get("lang") or "").split("-")[0].lower()
    return asked if asked in LANGUAGES else select_locale()


def _widget_words() -> dict[str, str]:
    """Every word the widget shows, in the current language (the widget has no gettext of its own)."""
    return {
        "open": _("Chat with us"),
        "close": _("Close the chat"),
        "title": _("Chat with us"),
        "greeting": _("Hello! Ask us anything. We answer here, and you can come back to this chat later."),
        "label": _("Your message"),
        "send": _("Send"),
        "sending": _("Sending…"),
        "failed": _("Not sent yet. It will be sent when you are back online."),
        "you": _("You"),
        "team": _("Support"),
        "suggested": _("These articles may answer your question:"),
        "typing": _("Support is typing…"),
        "typing_name": _("%(name)s is typing…", name="{name}"),
        "received": _("Delivered"),
        "rate": _("Your rating, from 1 (bad) to 5 (very good)"),
        "rate_score": _("Rate %(score)s of 5", score="{score}"),
        "read": _("Read"),
        "too_long": _("The message is too long."),
        "refused": _("This chat cannot be used from this website."),
        "busy": _("You have sent many messages in a short time. Please wait a moment."),
        **_file_words(),
    }


def _file_words() -> dict[str, str]:
    """The widget's words for files: the button, a file on its way, why one was refused, and one whose
    bytes did not outlive a reload (no IndexedDB in the visitor's browser)."""
    return {
        "attach": _("Attach a file"),
        "attach_hint": _("Pictures, PDF, text and office documents up to %(size)s MB.", size="{size}"),
        "uploading": _("Uploading…"),
        "file_failed": _("Not sent yet. It will be sent again when you are back online."),
        "file_lost": _("%(name)s could not be sent. Please attach it again.", name="{name}"),
        "download": _("Download %(name)s", name="{name}"),
        "file_too_large": _("This file is larger than %(size)s MB. Send a smaller file, or a link to it.",
                            size="{size}"),
        "file_type": _("This kind of file cannot be sent here. Send a picture, a PDF, a text or an office "
                       "document."),
        "file_empty": _("This file is empty. Choose another file."),
        "file_incomplete": _("The file did not arrive completely. Send it again."),
    }


def _availability(channel: str, language: str) -> dict[str, object]:
    """Whether the team is in (its business hours, from the service levels) and when the visitor may
    expect an answer (the desired first-response target): a sentence while open, a moment when away."""
    mainland = current_app.extensions["mainland"]
    levels = service_levels.for_config(mainland.config)
    hours = levels.hours_for(mainland.team_for_channel(channel))
    target = levels.policy_for(channel, 0).first_response
    now = clock.now()
    is_open = hours.is_open(now)
    answer_by = hours.add(now, target.desired) if target else None
    if is_open and target:
        within = acknowledgements.expected_time(target.desired, language, business=not hours.always_open)
        expect = _("We usually answer within %(time)s.", time=within)
    elif is_open:
        expect = _("We answer as soon as we can.")
    else:
        # "{when}" is filled in by the widget, in the visitor's own time zone.
        expect = _("We are away now. We will answer by {when}.") if answer_by else _("We are away now.")
    return {"open": is_open, "expect": expect, "answer_by": iso(answer_by) if answer_by and not is_open else None}


@bp.get("/chat/<channel>/config", provide_automatic_options=False)
def widget_config(channel: str):
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    language = _language()
    with force_locale(language):
        words = _widget_words()
        availability = _availability(connector.name, language)
        words.update(_email_words())
    return jsonify(ok=True, language=language, color=connector.config["color"],
                   email=chat_followup.email_channel(current_app.extensions["mainland"], connector.name) is not None,
                   title=connector.config["title"] or words["title"],
                   greeting=connector.config["greeting"] or words["greeting"],
                   max_text_chars=connector.max_text_chars, words=words, availability=availability,
                   files={"max_bytes": connector.max_file_bytes, "types": list(connector.limits.attachment_types),
                          "extensions": list(FILE_EXTENSIONS)},
                   articles=bool(helpcenter.settings_for(current_app.extensions["mainland"].config).enabled))


# The conversation -------------------------------------------------------------------------------

def _shown(row: dict, files: list[dict] | None = None) -> dict:
    """A message as the widget shows it: text only (it is put in the page as text, never HTML), and
    its files, which the widget fetches from `GET .../files/<id>` with the visitor token."""
    inbound = row["direction"] == "in"
    return {
        "files": [{"id": f["id"], "name": f["filename"], "type": f["content_type"], "size": f["size"],
                   "image": inline_kind(f) == "image"} for f in files or ()],
        "id": row["id"],
        "client_id": row["external_id"].partition(":")[2] if inbound else None,
        "from": "visitor" if inbound else "team",
        "name": "" if inbound else (row["author_name"] or ""),
        "text": row["text"],
        "at": row["at"],
        # The team's satisfaction question: the widget offers the scores as buttons under it.
        "survey": not inbound and service_levels.FLAG_SURVEY in (row.get("flags") or "").split(),
        # The visitor's own message: stored ("received"), then "read" once an agent had it in front of them.
        "status": ("read" if row.get("team_read") else "received") if inbound else row["delivery_status"],
        # Written or sent by email (the visitor answered our follow-up mail): the widget says so.
        "by_email": bool(row.get("channel")) and row.get("channel") != (request.view_args or {}).get("channel"),
    }


@bp.get("/chat/<channel>/messages", provide_automatic_options=False)
def history(channel: str):
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    visitor = _visitor(connector)
    since = (request.headers.get(SINCE_HEADER) or request.args.get("since") or "")[:64]
    wait = min(max(request.args.get("wait", 0.0, type=float) or 0.0, 0.0), MAX_WAIT_SECONDS)
    answer = _answer_when_news(get_store(), connector.name, visitor, since, wait)
    response = jsonify(ok=True, **answer)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/chat/<channel>/messages", provide_automatic_options=False)
@_ip_limit
@_visitor_limit
def post_message(channel: str):
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    cap = connector.max_request_bytes
    if request.content_length is not None and request.content_length > cap:
        return _json_error("too_long", 413)
    body = request.stream.read(cap + 1)
    webhook = WebhookRequest(body=body, headers=dict(request.headers.items()), remote_addr=request.remote_addr)
    try:
        connector.verify_webhook(webhook)
        [item] = connector.parse_webhook(webhook).items
    except ChatRefused as refused:
        return _json_error(refused.reason, refused.status)
    return _take_in(connector, item)


def _take_in(connector: ChatConnector, item):
    """A visitor's message or file through the ingest like any channel's, answered as the widget shows it."""
    store = get_store()
    item = _as_bound(store, connector, item)
    report = current_app.extensions["mainland"].ingestor(store).ingest_one(connector.name, item)
    return _stored_answer(store, connector, item, report)


def _stored_answer(store, connector: ChatConnector, item, report: IngestReport):
    """The stored message as the widget shows it. A resend of a stored message answers as the first
    post did (the widget then stops resending)."""
    if report.quarantined:
        log.warning("chat %s: message %s was quarantined", connector.name, item.external_id)
    [row] = [r for r in store.chat_history(connector.name, item.thread_key) if r["external_id"] == item.external_id] \
        or [None]
    news.tell(news_key(connector.name, item.thread_key))
    shown = _shown(row, store.chat_files([row["id"]]).get(row["id"])) if row else None
    return jsonify(ok=True, duplicate=bool(report.duplicates), message=shown)


@bp.post("/chat/<channel>/files", provide_automatic_options=False)
@_ip_limit
@_visitor_limit
def post_file(channel: str):
    """A visitor's file, as its own message. The size is checked before the body is read (the announced
    Content-Length, then a read capped one byte past the limit); a body that breaks off is refused, and
    the widget's retry with the same client id stores one message and one file."""
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    _device(connector)  # no reading of a body for a request without a visitor token
    cap = connector.max_file_bytes
    announced = request.content_length
    if announced is None:
        return _json_error("file_incomplete", 411)
    if announced > cap:
        return _json_error("file_too_large", 413)
    try:
        body = request.stream.read(cap + 1)
    except ClientDisconnected:
        return _json_error("file_incomplete", 400)
    webhook = WebhookRequest(body=body, headers=dict(request.headers.items()), remote_addr=request.remote_addr)
    try:
        [item] = connector.parse_upload(webhook, announced=announced).items
    except ChatRefused as refused:
        return _json_error(refused.reason, refused.status)
    return _take_in(connector, item)


@bp.get("/chat/<channel>/files/<int:attachment_id>", provide_automatic_options=False)
def visitor_file(channel: str, attachment_id: int):
    """A file of the visitor's own conversation; 404 for any other (another visitor's, a note's, a reply
    not sent yet), the same as for an id that does not exist. Pictures the thread shows inline come
    inline (the widget shows them as thumbnails), anything else as a download; never sniffed, never run."""
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    att = get_store().chat_attachment(connector.name, _visitor(connector), attachment_id)
    if att is None:
        abort(404)
    image = inline_kind(att) == "image"
    return sandboxed_file(att, inline=image, cache="private, no-store")


@bp.post("/chat/<channel>/receipts", provide_automatic_options=False)
@_ip_limit
def receipts(channel: str):
    """The widget's delivered and read markers for the team's replies: `{"delivered": [ids], "read": [ids]}`.

    They go through the pipeline as the channel's delivery reports (`DeliveryUpdate`), so a reply only
    moves forward (sent -> delivered -> read) and the agent sees it on the reply, live.
    """
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    visitor = _visitor(connector)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _json_error("unreadable", 400)
    store = get_store()
    updates = []
    for status in ("delivered", "read"):
        ids = [i for i in (data.get(status) or [])[:MAX_RECEIPTS] if isinstance(i, int) and not isinstance(i, bool)]
        updates += [DeliveryUpdate(provider_id=p, status=status)
                    for p in store.chat_reply_provider_ids(connector.name, visitor, ids)]
    report = IngestReport()
    if updates:
        report = current_app.extensions["mainland"].ingestor(store).ingest(
            connector.name, FetchResult(items=[], cursor=None, updates=updates), save_cursor=False)
    if report.delivery_updates:
        news.tell(news_key(connector.name, visitor))
    return jsonify(ok=True, moved=report.delivery_updates)


# Live while both are there: the long poll and the visitor's typing -------------------------------

class _News:
    """Wakes this process's waiting long polls of one visitor when what their widget shows may have changed.

    Per visitor (`key`): a post or a receipt wakes the polls of its own visitor only. Waking every open
    widget instead made each post cost one look at the database per open widget (hundreds a second
    with 500 widgets open, bench/chat_load.py). Each visitor's polls wait on a condition of their own,
    so 500 waiting polls never queue for one lock."""

    #: Visitors whose latest news is remembered (the oldest are forgotten; a poll that finds its visitor
    #: forgotten takes it as news and looks once more, so forgetting never loses a wake-up).
    REMEMBERED = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two tables below; held for a dictionary step only
        self._numbers = itertools.count(1)
        #: key -> the number of its latest news (unique across keys, so a forgotten key told again differs).
        self._latest: OrderedDict[str, int] = OrderedDict()
        #: key -> [its condition, how many polls listen]: only those are woken.
        self._waiting: dict[str, list] = {}

    def count(self, key: str) -> int:
        """The key's latest news (0: none remembered); pass it to the `wait` of `listening`."""
        return self._latest.get(key, 0)  # one dictionary read: no lock needed

    def waiting(self, key: str) -> bool:
        """Whether a poll of this process waits for the key's news now."""
        return key in self._waiting  # one dictionary read: no lock needed

    def tell(self, key: str) -> None:
        with self._lock:
            self._latest[key] = next(self._numbers)
            self._latest.move_to_end(key)
            if len(self._latest) > self.REMEMBERED:
                self._latest.popitem(last=False)
            waiting = self._waiting.get(key)
        if waiting:
            with waiting[0]:
                waiting[0].notify_all()

    @contextlib.contextmanager
    def listening(self, key: str) -> Iterator[Callable[[int, float], None]]:
        """For one poll: `wait(seen, timeout)` returns when the key had news after `seen` (its `count`),
        or after `timeout` seconds."""
        with self._lock:
            waiting = self._waiting.setdefault(key, [threading.Condition(), 0])
            waiting[1] += 1
        condition = waiting[0]

        def wait(seen: int, timeout: float) -> None:
            with condition:  # told after `seen` and before this: the predicate is already true
                condition.wait_for(lambda: self._latest.get(key, 0) != seen, timeout=timeout)

        try:
            yield wait
        finally:
            with self._lock:
                waiting[1] -= 1
                if not waiting[1]:
                    del self._waiting[key]


def news_key(channel: str, visitor: str) -> str:
    """Whose widgets a change concerns: one visitor of one chat channel."""
    return f"{channel}\n{visitor}"


class _Waits:
    """How many long polls hold a server thread at once (per app, and so per process)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.active = 0

    def acquire(self, limit: int) -> bool:
        with self._changed:
            if self.active >= limit:
                return False
            self.active += 1
            self._changed.notify_all()
            return True

    def release(self) -> None:
        with self._changed:
            self.active -= 1
            self._changed.notify_all()

    def wait_until(self, active: int, timeout: float) -> bool:
        """For tests: wait until `active` long polls are held."""
        with self._changed:
            return self._changed.wait_for(lambda: self.active == active, timeout=timeout)


news = _News()


class _Watcher:
    """One look at the database for the whole process, every `web.chat_check_seconds`, at what may have
    changed for its waiting widgets elsewhere (another process's writes, an agent's heartbeat: read
    marks and typing, typing that went stale), telling only the visitors concerned.

    Each waiting poll looked itself once a second: 500 open widgets made 500 looks and 500 thread
    wake-ups a second, most finding nothing (bench/chat_load.py). The watcher runs while polls wait,
    with a connection of its own, and stops when none does."""

    #: A heartbeat is looked for this far back of the watcher's previous look: its writer takes the time
    #: before it commits, and may commit after that look.
    MARGIN = dt.timedelta(seconds=5)

    def __init__(self, open_store: Callable[[], object]) -> None:
        self._open_store = open_store
        self._lock = threading.Lock()  # guards the three below
        self._listeners = 0
        self._running = False
        self._every = CHECK_SECONDS
        #: Set when the last waiting poll left: the watcher stops at once rather than after its pause.
        self._quiet = threading.Event()
        #: The watcher's thread while it runs (tests join it).
        self.thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, every: float) -> Iterator[None]:
        with self._lock:
            self._listeners += 1
            self._every = every
            self._quiet.clear()
            if not self._running:
                self._start()
        try:
            yield
        finally:
            with self._lock:
                self._listeners -= 1
                if not self._listeners:
                    self._quiet.set()

    def _start(self) -> None:
        """Under the lock, before the poll that starts the watcher looks itself: the first look is taken
        here, so that nothing written between that poll's look and the watcher's is missed."""
        store = None
        try:
            store = self._open_store()
            now = clock.now()
            seen = store.thread_news(store.change_watermark(), iso(now), iso(now - TYPING_SHOWN))
        except Exception:
            log.exception("chat: the news watcher could not look at the database; widgets find news when "
                          "told or at the end of their wait")
            if store is not None:
                store.close()
            return
        self._running = True
        self.thread = threading.Thread(target=self._run, args=(store, seen, now), name="mainland-chat-news",
                                       daemon=True)
        self.thread.start()

    def _run(self, store, seen: dict, last: dt.datetime) -> None:
        try:
            while True:
                with self._lock:
                    if not self._listeners:
                        self._running = False
                        return
                    every = self._every
                self._quiet.wait(every)
                with self._lock:
                    if not self._listeners:
                        self._running = False
                        return
                now = clock.now()
                looked = store.thread_news(seen["watermark"], iso(last - self.MARGIN), iso(now - TYPING_SHOWN))
                for channel, thread in looked["changed"] | looked["touched"] | (looked["typing"] ^ seen["typing"]):
                    key = news_key(channel, thread)
                    if news.waiting(key):
                        news.tell(key)
                seen, last = looked, now
        except Exception:
            log.exception("chat: the news watcher stopped; it starts again with the next waiting widget")
            with self._lock:
                self._running = False
        finally:
            store.close()


def watcher_of(app) -> _Watcher:
    """The app's news watcher (per app: its database)."""
    watcher = app.extensions.get("chat_watcher")
    if watcher is None:
        mainland = app.extensions["mainland"]
        watcher = app.extensions.setdefault("chat_watcher", _Watcher(lambda: mainland.open_store(check=False)))
    return watcher


def _tell_reply_sent(channel: str, visitor: str) -> None:
    news.tell(news_key(channel, visitor))


# A reply sent by a worker in this process (`mainland serve` runs one) wakes its visitor's widget at once;
# one sent by another process is found on the poll's next look (`web.chat_check_seconds`).
on_reply_sent(_tell_reply_sent)


def waits_of(app) -> _Waits:
    """The app's count of held long polls. Per app, not per module: requests of an app that is gone
    (a test's server shut down while a widget waited) must not hold the next one's."""
    return app.extensions.setdefault("chat_waits", _Waits())


def _web_setting(name: str, default: float) -> float:
    """`web.<name>` of the Mainland config; the Flask config's `<NAME>` wins (tests set that)."""
    if name.upper() in current_app.config:
        return float(current_app.config[name.upper()])
    web = current_app.extensions["mainland"].config.extra.get("web") or {}
    return float(web.get(name, default)) if isinstance(web, dict) else default


def reserve_wait_threads(app) -> int:
    """How many long polls may wait at once in `app`, for a server that gives each its own thread.

    `mainland serve` adds this many threads (and connections) to its own and calls this before serving:
    the limit is then `web.chat_waits`, by default SERVED_WAITS, whatever `web.threads` says, so every
    open widget of a busy site waits for its news instead of polling, and the waits never take a thread
    a page needs. Always reserved, also without a chat channel (one can be added in the browser, without
    a restart): an idle thread costs about 20 KB. A limit set on the app (tests) wins."""
    if "CHAT_WAITS" not in app.config:
        web = app.extensions["mainland"].config.extra.get("web") or {}
        app.config["CHAT_WAITS"] = int(web.get("chat_waits", SERVED_WAITS) if isinstance(web, dict) else SERVED_WAITS)
    return max(0, int(app.config["CHAT_WAITS"]))


def _wait_limit() -> int:
    threads = int(_web_setting("threads", 8))
    return int(_web_setting("chat_waits", max(1, threads // 4)))


def _first_name(name: str | None) -> str:
    return (name or "").split(" ")[0]


def _snapshot(store, channel: str, visitor: str) -> dict[str, object]:
    """What the widget shows, and its `version`: a digest that changes whenever any of it does."""
    typist = store.chat_team_typist(channel, visitor, iso(clock.now() - TYPING_SHOWN))
    rows = store.chat_history(channel, visitor)
    files = store.chat_files([row["id"] for row in rows])
    shown = {"messages": [_shown(row, files.get(row["id"])) for row in rows],
             "typing": typist is not None, "typing_name": _first_name(typist)}
    text = json.dumps(shown, sort_keys=True, separators=(",", ":"))
    return {**shown, "version": hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]}


def _answer_when_news(store, channel: str, visitor: str, since: str, wait: float) -> dict[str, object]:
    """The widget's view now, or (`wait` > 0 and the widget's `since` still current) once it changes
    or `wait` seconds have passed. Past the cap of held requests: at once, `busy`."""
    if not wait or not since:
        return _snapshot(store, channel, visitor)
    waits = waits_of(current_app)
    if not waits.acquire(_wait_limit()):
        return {**_snapshot(store, channel, visitor), "busy": True, "retry_ms": BUSY_RETRY_MS}
    try:
        check = _web_setting("chat_check_seconds", CHECK_SECONDS)
        deadline = time.monotonic() + wait
        key = news_key(channel, visitor)
        with news.listening(key) as wait_for_news, watcher_of(current_app).watching(check):
            stamp = None
            while True:
                seen = news.count(key)  # before looking: news during the look is not slept through
                # Told something may have changed (a post, a receipt, a sent reply, the watcher): the whole
                # view is built only when its cheap stamp moved.
                looked = store.chat_view_stamp(channel, visitor, iso(clock.now() - TYPING_SHOWN))
                if looked != stamp:
                    stamp = looked
                    answer = _snapshot(store, channel, visitor)
                    if answer["version"] != since:
                        return answer
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return answer
                wait_for_news(seen, remaining)
    finally:
        waits.release()


_typing_ip_limit = limiter.shared_limit(TYPING_PER_IP, scope=lambda e: _scope(e) + ":typing",
                                        methods=["POST"])
_typing_visitor_limit = limiter.shared_limit(TYPING_PER_VISITOR,
                                             scope=lambda e: _scope(e) + ":typing:visitor",
                                             key_func=_visitor_key, methods=["POST"])


@bp.post("/chat/<channel>/typing", provide_automatic_options=False)
@_typing_ip_limit
@_typing_visitor_limit
def typing(channel: str):
    """The visitor types (`{"typing": true}`, repeated every few seconds while they do) or stopped.

    Shown to the agents on the visitor's latest conversation through their live stream, which lets
    a report go stale by itself (`inbox/web/live.py`); before the first message there is nothing to
    show it on, and the report is taken and dropped."""
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    visitor = _visitor(connector)
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("typing"), bool):
        return _json_error("unreadable", 400)
    store = get_store()
    conversation_id = store.chat_conversation_id(connector.name, visitor)
    if conversation_id is not None:
        store.mark_customer_typing(conversation_id, iso(clock.now()) if data["typing"] else None)
    return jsonify(ok=True, shown=conversation_id is not None)


def _megabytes(size: int) -> str:
    """A size in whole megabytes (a file limit, as the widget says it): 10485760 -> "10"."""
    return f"{size / (1024 * 1024):.0f}" if size >= 1024 * 1024 else f"{size / (1024 * 1024):.1f}"


def _json_error(reason: str, status: int):
    messages = {"too_long": _("The message is too long."), "visitor": _("This chat session is not valid."),
                "empty": _("Write a message first."),
                "busy": _("You have sent many messages in a short time. Please wait a moment."),
                **_file_words()}
    message = messages.get(reason, _("The message could not be read."))
    if reason == "file_too_large":
        connector = connector_made(ChatConnector)
        message = message.replace("{size}", _megabytes(connector.max_file_bytes if connector else 0))
    response = jsonify(ok=False, error=reason, message=message)
    response.status_code = status
    return response


# Help-center suggestions --------------------------------------------------------------------------

@bp.get("/chat/<channel>/articles", provide_automatic_options=False)
@limiter.limit(ARTICLES_LIMIT)
def articles(channel: str):
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    mainland = current_app.extensions["mainland"]
    if not helpcenter.settings_for(mainland.config).enabled:
        return jsonify(ok=True, articles=[])
    language = _language()
    expression = helpcenter.match_expression((request.args.get("q") or "")[:helpcenter.MAX_QUERY_CHARS])
    found = get_store().search_public_articles(language, expression, limit=MAX_SUGGESTIONS) if expression else []
    base = mainland.config.base_url.rstrip("/")
    return jsonify(ok=True, articles=[
        {"title": a["title"], "summary": helpcenter.plain_summary(a),
         "url": base + url_for("helpcenter.page", lang=a["language"], slug=a["slug"])} for a in found])


# By email (#18, inbox/chat_followup.py) ------------------------------------------------------------

#: Sign-in links asked for from one IP address, and for one address, per hour (429 beyond, the same
#: answer for an address we know and one we do not).
SIGNIN_PER_IP = "10 per hour"
SIGNIN_PER_ADDRESS = "3 per hour"


def _email_words() -> dict[str, str]:
    """The widget's words for leaving an address and for opening the chat on another device."""
    return {
        "email_offer": _("Get our answer by email too"),
        "email_label": _("Your email address"),
        "email_save": _("Save"),
        "email_saved": _("Thank you. If you have left when we answer, our answer also goes to %(address)s.",
                         address="{address}"),
        "email_invalid": _("Enter a valid email address."),
        "signin_offer": _("Chatted with us on another device?"),
        "signin_send": _("Email me a link"),
        "signin_sent": _("If we know this address, we have sent a link to it. Open it in this browser to see "
                         "your conversation."),
        "signin_ok": _("Welcome back. This browser now shows your conversation."),
        "signin_invalid": _("This link does not work. Ask for a new one below."),
        "signin_used": _("This link was used already. Ask for a new one below."),
        "signin_expired": _("This link has expired. Ask for a new one below."),
        "by_email": _("by email"),
    }


def _email_body() -> tuple[str, str, str]:
    """The address, the widget's language and the page it runs on, from a JSON body."""
    data = request.get_json(silent=True)
    data = data if isinstance(data, dict) else {}
    address = data.get("email") if isinstance(data.get("email"), str) else ""
    language = data.get("lang") if data.get("lang") in LANGUAGES else select_locale()
    page = data.get("page") if isinstance(data.get("page"), str) else ""
    return address.strip()[:chat_followup.MAX_ADDRESS_CHARS], language, page


def _mails() -> bool:
    """Whether the request's channel is a chat that sends mail (other posts are answered 404, uncounted)."""
    channel = (request.view_args or {}).get("channel", "")
    return chat_followup.email_channel(current_app.extensions["mainland"], channel) is not None


def _address_key() -> str:
    # A digest: the limiter's storage holds no addresses.
    address = _email_body()[0].lower()
    return "address:" + hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()[:32]


def _as_bound(store, connector: ChatConnector, item):
    """The message of a device that a sign-in link bound, as a message of the earlier visitor."""
    visitor = chat_followup.bound_visitor(store, connector.name, item.thread_key)
    if visitor == item.thread_key:
        return item
    client_id = item.external_id.partition(":")[2]
    author = dataclasses.replace(item.author, handle=visitor)
    return dataclasses.replace(item, thread_key=visitor, author=author, external_id=f"{visitor}:{client_id}",
                               source_ref=f"chat:{visitor}:{client_id}")


@bp.post("/chat/<channel>/email", provide_automatic_options=False)
@_ip_limit
@_visitor_limit
def leave_email(channel: str):
    """`{"email": "...", "lang": "en", "page": "<the page's address>"}`: where our answer may follow the visitor."""
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    mainland = current_app.extensions["mainland"]
    if chat_followup.email_channel(mainland, connector.name) is None:
        abort(404)
    visitor = _visitor(connector)
    address, language, page = _email_body()
    page = chat_followup.allowed_page(mainland, connector.name, page, own_origins())
    if not chat_followup.leave_address(get_store(), connector.name, visitor, address, language=language, page=page,
                                       now=clock.now()):
        return _email_error("email_invalid", 400)
    return jsonify(ok=True)


@bp.post("/chat/<channel>/signin/request", provide_automatic_options=False)
@limiter.limit(SIGNIN_PER_IP, scope=lambda e: _scope(e) + ":signin", exempt_when=lambda: not _mails())
@limiter.limit(SIGNIN_PER_ADDRESS, scope=lambda e: _scope(e) + ":signin-address", key_func=_address_key,
               exempt_when=lambda: not _mails())
def request_signin(channel: str):
    """`{"email": "...", "lang": "en", "page": "..."}`: mail a sign-in link if the address has a chat here.
    The answer is the same whether it has or not."""
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    mainland = current_app.extensions["mainland"]
    if chat_followup.email_channel(mainland, connector.name) is None:
        abort(404)
    _device(connector)  # a widget's request: it has a visitor token
    address, language, page = _email_body()
    page = chat_followup.allowed_page(mainland, connector.name, page, own_origins())
    if not page or chat_followup.normalize_email(address) is None:
        return _email_error("email_invalid", 400)
    chat_followup.request_signin(mainland, get_store(), connector.name, address, page=page, language=language,
                                 now=clock.now())
    return jsonify(ok=True)


@bp.post("/chat/<channel>/signin", provide_automatic_options=False)
@_ip_limit
def redeem_signin(channel: str):
    """`{"token": "..."}` (from the link's fragment): this browser shows the conversation the link is for."""
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    mainland = current_app.extensions["mainland"]
    data = request.get_json(silent=True)
    token = data.get("token") if isinstance(data, dict) and isinstance(data.get("token"), str) else ""
    outcome = chat_followup.redeem_signin(mainland, get_store(), connector.name, _device(connector), token[:200],
                                          now=clock.now(), ip=request.remote_addr)
    if outcome != "ok":
        return _email_error(f"signin_{outcome}", 410 if outcome in ("used", "expired") else 400)
    return jsonify(ok=True, message=_email_words()["signin_ok"])


def _email_error(reason: str, status: int):
    response = jsonify(ok=False, error=reason, message=_email_words().get(reason, ""))
    response.status_code = status
    return response


# CORS -------------------------------------------------------------------------------------------

@bp.route("/chat/<channel>/config", methods=["OPTIONS"], provide_automatic_options=False, endpoint="preflight_config")
@bp.route("/chat/<channel>/messages", methods=["OPTIONS"], provide_automatic_options=False)
@bp.route("/chat/<channel>/receipts", methods=["OPTIONS"], provide_automatic_options=False,
          endpoint="preflight_receipts")
@bp.route("/chat/<channel>/articles", methods=["OPTIONS"], provide_automatic_options=False,
          endpoint="preflight_articles")
@bp.route("/chat/<channel>/typing", methods=["OPTIONS"], provide_automatic_options=False,
          endpoint="preflight_typing")
@bp.route("/chat/<channel>/email", methods=["OPTIONS"], provide_automatic_options=False, endpoint="preflight_email")
@bp.route("/chat/<channel>/signin/request", methods=["OPTIONS"], provide_automatic_options=False,
          endpoint="preflight_signin_request")
@bp.route("/chat/<channel>/signin", methods=["OPTIONS"], provide_automatic_options=False, endpoint="preflight_signin")
@bp.route("/chat/<channel>/files", methods=["OPTIONS"], provide_automatic_options=False, endpoint="preflight_files")
@bp.route("/chat/<channel>/files/<int:attachment_id>", methods=["OPTIONS"], provide_automatic_options=False,
          endpoint="preflight_file")
def preflight(channel: str, attachment_id: int | None = None):
    connector = channel_connector(channel, ChatConnector)
    _check_origin(connector)
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = (f"Content-Type, {VISITOR_HEADER}, {USER_HEADER}, "
                                                        f"{USER_HASH_HEADER}, {SINCE_HEADER}, {CLIENT_ID_HEADER}, "
                                                        f"{FILE_NAME_HEADER}")
    response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return response


@bp.after_request
def _headers(response: Response) -> Response:
    connector = connector_made(ChatConnector)
    if connector is None or not request.path.startswith("/chat/"):
        return response
    origin = origin_of(request.headers.get("Origin") or "")
    if origin and _allowed(origin, connector):
        response.headers["Access-Control-Allow-Origin"] = origin
    response.vary.add("Origin")
    return response


@bp.errorhandler(429)
def _too_many(error):
    response = _json_error("busy", 429)
    current = limiter.current_limit
    response.headers["Retry-After"] = str(max(1, int(current.reset_at - time.time())) if current else 60)
    return response
