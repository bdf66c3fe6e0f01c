"""Live updates without reloading: a Server-Sent Events stream, and presence heartbeats.

`GET /events` (optionally `?conversation=<id>` for an open conversation page) is an
`text/event-stream` that a page reads with `EventSource` (static/live.js wraps it as
`Live.on(name, handler)`). Each stream polls the database about once a second, and keeps that cheap:
one indexed `max(seq)` over `conversation_changes` (a watermark kept by triggers, see migration
m005), and only when it moved, the changed conversations the agent may see. A change written by this
process (a visitor's chat message, a colleague's reply, the worker's ingest) wakes its streams at once
(`_LocalChanges`), so it is told within milliseconds rather than on the next look. Events:

- `hello` {seq, conversation_id}: the stream is open.
- `conversation.new` / `conversation.changed` {id, channel, status, priority, assignee_id, team_id,
  subject, customer_name, last_message_at, merged_into}: a conversation the agent can see appeared
  or changed (a message, a status, an assignment...). Another team's conversations never show.
- `counts` {by_status: {status: n}, total}: the agent's visible conversations per status, after a change.
- `message.new` {conversation_id, message_id, direction, agent_id}: for the watched conversation.
- `message.status` {conversation_id, message_id, delivery_status, delivery_error, possible_duplicate}:
  a reply in the watched conversation moved (queued -> sent -> delivered, or failed).
- `message.removed` {conversation_id, message_id}: a reply in the watched conversation is gone from
  it (its writer undid the send, or it moved to another conversation).
- `presence` {conversation_id, agents: [{id, name, state}]}: who else views or types in it.
- `customer.typing` {conversation_id, typing, name}: the customer types in the watched conversation
  (the website chat's typing reports; shown for `CUSTOMER_TYPING_SECONDS` after the last report).
- `drafts` {conversation_id, agents: [name], text}: the colleagues with a draft in the watched
  conversation (never its text), told on the first look and whenever it changes; `text` is the
  sentence the page shows ("Ann has a draft here."), in the agent's language, empty when nobody.
- `notifications` {unread, latest?}: the agent's unread notification count changed, or a notification
  arrived; `latest` {id, kind, text, url} is the newest one when it is new since the last look and of
  a kind the agent wants in the browser (static/live.js shows it as a browser notification).
- `heartbeat` {t}: every 15 s, so proxies keep the connection and dead clients are noticed.

Events carry `id: <seq>` (with a watched conversation `<seq>:<last message id>`), followed by
`/<newest notification id>`; a reconnecting `EventSource` sends it back as `Last-Event-ID` and the
stream resumes from there, so nothing is missed across reconnects, and a notification that arrived
in between still becomes a browser notification (also when polling, see below).

Threads: each open stream holds a server thread. At most `web.live_streams` streams run at once;
past that, and always for `?once=1`, the answer holds what changed since the client's id and ends
at once with a `retry:` hint, which turns EventSource into polling every few seconds instead of
starving the pages of threads (every 5 s; longer when so many tabs poll that together they would
ask more than 10 times a second: `_PollPace`). Under `mainland serve` the streams have threads of their own
(`reserve_stream_threads`: `web.live_streams`, default 32, on top of the `web.threads` for pages),
so open streams never take a thread a page needs; under another server (gunicorn) the limit is
`web.threads` - 4 (at least 1) of its threads. Streams also end after `web.live_max_seconds` (300)
so that clients reconnect and re-check their session, and stop early when the agent signs out or
is disabled. A stream holds no database connection while it waits: each look borrows one from the
app's pool (inbox/web/request_store.py) and gives it back before it writes to the client, so open
tabs never run a PostgreSQL server out of connections.

`POST /conversations/<id>/presence` {state: viewing|typing|gone} records the agent's heartbeat.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from flask_babel import get_locale

from inbox import access, clock, notifications
from inbox.store import Store
from inbox.store.base import iso
from inbox.store.pg_notify import ChangeListener
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required
from inbox.web.request_store import pool_of

log = logging.getLogger(__name__)

bp = Blueprint("live", __name__)

#: Seconds between looks at the database.
POLL_SECONDS = 1.0
#: A stream woken by this process's writes looks at most this often (a burst is told in a few looks).
LOOK_GAP_SECONDS = 0.05
HEARTBEAT_SECONDS = 15.0
#: How long one stream lasts before the client is asked to reconnect.
MAX_STREAM_SECONDS = 300.0
#: Streams that get a thread of their own under `mainland serve` unless `web.live_streams` says otherwise:
#: one open tab per agent of a 30-agent shift streams; more tabs poll every POLL_RETRY_MS.
SERVED_STREAMS = 32
#: Presence older than this is stale (a closed tab that said nothing).
PRESENCE_SECONDS = 30
#: How often a stream re-checks that its agent is still signed in, active and in the same teams.
SESSION_CHECK_SECONDS = 5.0
#: What a client waits before reconnecting when it got a short (polling) answer.
POLL_RETRY_MS = 5000
#: Short answers a second that all the polling tabs of a process ask for together, at most: past that
#: each waits longer (up to MAX_POLL_RETRY_MS), so that many idle tabs never crowd out the pages.
POLLS_PER_SECOND = 10
MAX_POLL_RETRY_MS = 30000
STREAM_RETRY_MS = 2000
#: A `Last-Event-ID` further behind than this is treated as a fresh start (a tab left for days).
MAX_CATCH_UP = 2000
PRESENCE_STATES = ("viewing", "typing")
#: A customer's typing report is shown this long (their widget reports every few seconds while typing).
CUSTOMER_TYPING_SECONDS = 7


class _Slots:
    """How many streams may hold a thread at once (per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0

    def acquire(self, limit: int) -> bool:
        with self._lock:
            if self.active >= limit:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active -= 1


_slots = _Slots()


class _PollPace:
    """The `retry:` for a short answer: POLL_RETRY_MS, longer when so many tabs poll that together
    they would ask more than POLLS_PER_SECOND times a second (per process).

    The tabs polling now are estimated from the answers of the last WINDOW seconds: a tab told to
    wait T seconds answers W/T times in the window, so the waits handed out add up to W per tab.
    """

    WINDOW = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: deque[tuple[float, int]] = deque()
        self._waits_ms = 0

    def next_retry_ms(self, now: float) -> int:
        with self._lock:
            while self._answers and self._answers[0][0] <= now - self.WINDOW:
                self._waits_ms -= self._answers.popleft()[1]
            tabs = self._waits_ms / 1000 / self.WINDOW
            retry = min(MAX_POLL_RETRY_MS, max(POLL_RETRY_MS, round(tabs / POLLS_PER_SECOND * 1000)))
            self._answers.append((now, retry))
            self._waits_ms += retry
            return retry


_pace = _PollPace()


class _PerChange:
    """Answers kept per (database, teams, change numbers): a change wakes or reaches many streams at
    once, and those that see the same teams ask the database once (status counts; what changed)."""

    def __init__(self, size: int = 128) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._size = size

    def get(self, store: Store, team_ids: set[int] | None, numbers: tuple, compute: Callable[[], Any]) -> Any:
        # Keyed by the database too: one process may serve several (tests; an installation moved).
        key = (str(store.path), None if team_ids is None else tuple(sorted(team_ids)), *numbers)
        with self._lock:
            if key in self._items:
                return self._items[key]
        answer = compute()
        with self._lock:
            self._items[key] = answer
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return answer


_per_change = _PerChange()


class _Removals:
    """Replies taken back within the undo window, kept for the clients that come back later.

    A stream sees a reply vanish from the conversation it watches; a polling client starts afresh
    on each answer and cannot, so the undo route publishes it here (with the change's sequence
    number) and an answer tells the removals after the client's id. Per process, like the stream
    slots: a client polling another process still sees the reply go on its next page load.
    """

    def __init__(self, size: int = 500) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[str, int, int, int]] = deque(maxlen=size)

    def publish(self, database: str, seq: int, conversation_id: int, message_id: int) -> None:
        with self._lock:
            self._items.append((database, seq, conversation_id, message_id))

    def between(self, database: str, after: int, upto: int, conversation_id: int) -> set[int]:
        """Removals in `database`'s conversation between two change numbers (ids repeat across databases)."""
        with self._lock:
            return {m for d, s, c, m in self._items
                    if d == database and after < s <= upto and c == conversation_id}


_removals = _Removals()


class _LocalChanges:
    """Wakes this process's live streams as soon as one of its writes changes a conversation.

    Without it a stream finds a change on its next look, up to `POLL_SECONDS` later: a website visitor's
    message reached an agent's page at p95 about 730 ms under load (bench/chat_load.py). After each write
    transaction of this process (`Store.commit_hooks`) the newest change number is read, once, and only
    when it moved are the waiting streams woken; a write that changed no conversation (a presence
    heartbeat, a typing report) wakes none. On SQLite another process's writes are found on the next
    look; on PostgreSQL the database tells of them as they commit, on any machine
    (inbox/store/pg_notify.py: one listening session a process and database while streams are open).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        #: database path -> the newest change number committed (in this process; on PostgreSQL in any).
        self._latest: dict[str, int] = {}
        #: Streams waiting now: with none, a commit costs nothing.
        self.listeners = 0
        #: database -> its ChangeListener and the streams that follow it (PostgreSQL only).
        self._followed: dict[str, tuple[ChangeListener, int]] = {}

    @contextlib.contextmanager
    def following(self, database: str, listen_url: str | None) -> Iterator[None]:
        """While a stream is open: hear of the changes other processes commit to `database`, when it
        can tell them (`listen_url`: a PostgreSQL database's; None for SQLite). One listening session
        serves the process's streams of a database, and ends with the last of them."""
        if listen_url is None:
            yield
            return
        key = database
        with self._changed:
            listener, streams = self._followed.get(key) or (None, 0)
            if listener is None:
                listener = ChangeListener(listen_url, lambda seq: self._advance(key, seq)).start()
            self._followed[key] = (listener, streams + 1)
        try:
            yield
        finally:
            with self._changed:
                listener, streams = self._followed[key]
                if streams == 1:
                    del self._followed[key]
                    listener.stop(wait=False)
                else:
                    self._followed[key] = (listener, streams - 1)

    def _advance(self, key: str, mark: int) -> None:
        with self._changed:
            if mark > self._latest.get(key, 0):
                self._latest[key] = mark
                self._changed.notify_all()

    def latest(self, database: str) -> int:
        """The newest change number a write of this process committed to `database` (0: none yet)."""
        return self._latest.get(database, 0)

    def after_commit(self, store: Store) -> None:
        if not self.listeners:
            return
        self._advance(str(store.path), store.change_watermark())

    @contextlib.contextmanager
    def listening(self) -> Iterator[Callable[[str, int, float], None]]:
        """For one stream: `wait(database, seq, timeout)` returns once a change after `seq` was committed
        here, or after `timeout` seconds."""
        with self._changed:
            self.listeners += 1

        def wait(database: str, seq: int, timeout: float) -> None:
            with self._changed:
                self._changed.wait_for(lambda: self._latest.get(database, 0) > seq, timeout=timeout)

        try:
            yield wait
        finally:
            with self._changed:
                self.listeners -= 1


_local_changes = _LocalChanges()
Store.commit_hooks.append(_local_changes.after_commit)


def publish_message_removed(store: Store, conversation_id: int, message_id: int) -> None:
    """Tell the conversation's viewers that a message left it; call inside the write that removed it."""
    _removals.publish(str(store.path), store.change_watermark(), conversation_id, message_id)


def _setting(name: str, default: Any) -> Any:
    """`web.<name>` of the Mainland config; the Flask config's `<NAME>` wins (tests set that)."""
    key = name.upper()
    if key in current_app.config:
        return current_app.config[key]
    web = mainland().config.extra.get("web") or {}
    return web.get(name, default) if isinstance(web, dict) else default


def reserve_stream_threads(app: Flask) -> int:
    """How many streams may run at once in `app`, for a server that gives each its own thread.

    `mainland serve` adds this many threads to the page threads and calls this before serving:
    the limit is then `web.live_streams` (default SERVED_STREAMS) whatever `--threads` says, and a
    page always finds one of its threads free of streams. A limit set on the app (tests) wins.
    """
    if "LIVE_STREAMS" not in app.config:
        web = app.extensions["mainland"].config.extra.get("web") or {}
        app.config["LIVE_STREAMS"] = int(web.get("live_streams", SERVED_STREAMS) if isinstance(web, dict)
                                         else SERVED_STREAMS)
    return max(0, int(app.config["LIVE_STREAMS"]))


def _stream_limit() -> int:
    web = mainland().config.extra.get("web") or {}
    threads = int(web.get("threads", 8)) if isinstance(web, dict) else 8
    return int(_setting("live_streams", max(1, threads - 4)))


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One Server-Sent Event. JSON data never contains a newline, so one `data:` line suffices."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _conversation_event(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "channel", "status", "priority", "assignee_id", "team_id", "subject",
                                "customer_name", "last_message_at", "merged_into")}


class LiveState:
    """What one client has been told; `poll()` returns the events for what changed since.

    The event id is `<seq>` or, with a watched conversation, `<seq>:<last message id>`, so that a
    client resuming with `Last-Event-ID` gets exactly the messages it has not been told about.
    """

    def __init__(self, store: Store, agent: dict[str, Any], team_ids: set[int] | None, seq: int,
                 conversation_id: int | None, last_message_id: int | None = None, locale: str | None = None,
                 last_notification_id: int | None = None) -> None:
        self.store = store
        #: The agent's language, for the text of browser notifications.
        self.locale = locale or agent.get("locale")
        self.agent = agent
        self.team_ids = team_ids
        self.seq = seq
        self.conversation_id = conversation_id
        resumed = last_message_id is not None
        newest = store.newest_message_id(conversation_id) if conversation_id else 0
        self.last_message_id = min(last_message_id, newest) if resumed else newest
        # Resuming: delivery states at the client's moment are unknown, so every reply's state is
        # told again after the next change (harmless: the page just redraws them).
        self.delivery = self._delivery() if conversation_id and not resumed else {}
        self.presence: list[dict[str, Any]] | None = None
        #: Whether the customer types, and their name (None: not looked yet).
        self.customer_typing: tuple[bool, str] | None = None
        #: The colleagues with a draft here at the last look (None: not looked yet).
        self.drafting: list[str] | None = None
        self.unread: int | None = None
        #: The newest notification the client knows of: a newer one becomes a browser notification.
        #: Resuming, the client's; else the newest now (what happened before the page is not news).
        newest_notification = store.notifications.newest_id(agent["id"])
        self.newest_notification = (newest_notification if last_notification_id is None
                                    else min(last_notification_id, newest_notification))

    @property
    def event_id(self) -> str:
        told = f"{self.seq}:{self.last_message_id}" if self.conversation_id else str(self.seq)
        return f"{told}/{self.newest_notification}"

    def _delivery(self) -> dict[int, tuple]:
        return {r["id"]: (r["delivery_status"], r["delivery_error"], bool(r["possible_duplicate"]))
                for r in self.store.message_delivery(self.conversation_id)}

    def poll(self, *, now: dt.datetime, with_presence: bool = True, with_notifications: bool = True,
             watermark: int | None = None) -> list[str]:
        """The events since the last poll. `watermark`: the newest change number, when the caller knows it
        (a stream woken by this process's write); else it is read."""
        events: list[str] = []
        if watermark is None:
            watermark = self.store.change_watermark()
        if watermark > self.seq:
            events.extend(self._changes(watermark))
        if self.conversation_id and with_presence:
            events.extend(self._presence(now))
            events.extend(self._customer_typing(now))
            events.extend(self._drafts())
        if with_notifications:
            events.extend(self._notifications())
        return events

    def _notifications(self) -> list[str]:
        unread = self.store.notifications.unread_count(self.agent["id"], self.team_ids)
        newest = self.store.notifications.newest_id(self.agent["id"])
        latest = None
        if newest > self.newest_notification:
            latest = notifications.browser_payload(self.store, self.agent, self.team_ids, self.locale,
                                                   self.newest_notification)
        self.newest_notification = newest
        events = []
        if unread != self.unread or latest:
            if self.unread is not None or unread or latest:
                # With the id: a client that reconnects (or polls) is not told this notification twice.
                events.append(sse("notifications", {"unread": unread, **({"latest": latest} if latest else {})},
                                  self.event_id))
            self.unread = unread
        return events

    def _drafts(self) -> list[str]:
        colleagues = self.store.drafts.colleagues(self.conversation_id, self.agent["id"])
        names = [r.name or r.email for r in colleagues]
        if names == self.drafting:
            return []
        # Told on the first look too, even when nobody drafts: a polling client starts afresh each time
        # and must learn that a draft it shows has gone.
        self.drafting = names
        text = ""
        if names:
            text = notifications.translations(self.locale).ngettext(
                "%(names)s has a draft here.", "%(names)s have drafts here.", len(names)) % {"names": ", ".join(names)}
        return [sse("drafts", {"conversation_id": self.conversation_id, "agents": names, "text": text})]

    def _changes(self, watermark: int) -> list[str]:
        before = self.seq
        # Cached per watermark: the rows may hold changes made after it (told again on the next look).
        rows = _per_change.get(self.store, self.team_ids, ("changes", before, watermark),
                               lambda: self.store.changes_since(before, self.team_ids, limit=200))
        # Hidden conversations' changes advance the watermark too, without telling anything about them.
        self.seq = rows[-1]["seq"] if len(rows) == 200 else watermark
        told: list[tuple[str, dict[str, Any]]] = []
        for row in rows:
            told.append(("conversation.new" if row["created_seq"] > before else "conversation.changed",
                         _conversation_event(row)))
        if rows:
            counts = _per_change.get(self.store, self.team_ids, ("counts", self.seq),
                                     lambda: self.store.status_counts(self.team_ids))
            told.append(("counts", {"by_status": counts, "total": sum(counts.values())}))
        if any(row["id"] == self.conversation_id for row in rows):
            delivery = self._delivery()
            removed = (self.delivery.keys() - delivery.keys()) | _removals.between(str(self.store.path), before, self.seq,
                                                                                 self.conversation_id)
            for message_id in sorted(removed):
                told.append(("message.removed", {"conversation_id": self.conversation_id, "message_id": message_id}))
            if self.last_message_id in removed:
                # SQLite gives the next message the id of a deleted newest one (no AUTOINCREMENT): a reply
                # sent right after an undo may carry the undone reply's id and must still be told.
                self.last_message_id -= 1
            for message in self.store.message_ids_after(self.conversation_id, self.last_message_id):
                told.append(("message.new", {"conversation_id": self.conversation_id, "message_id": message["id"],
                                             "direction": message["direction"], "agent_id": message["agent_id"]}))
                self.last_message_id = message["id"]
            for message_id, state in delivery.items():
                if self.delivery.get(message_id) != state:
                    told.append(("message.status", {
                        "conversation_id": self.conversation_id, "message_id": message_id,
                        "delivery_status": state[0], "delivery_error": state[1], "possible_duplicate": state[2],
                    }))
            self.delivery = delivery
        # Every event of one look carries the id after it: a client that reconnects resumes after all of them.
        return [sse(name, data, self.event_id) for name, data in told]

    def _presence(self, now: dt.datetime) -> list[str]:
        since = iso(now - dt.timedelta(seconds=PRESENCE_SECONDS))
        others = [{"id": r["agent_id"], "name": r["name"] or r["email"], "state": r["state"]}
                  for r in self.store.presence(self.conversation_id, since) if r["agent_id"] != self.agent["id"]]
        if others == self.presence:
            return []
        first = self.presence is None
        self.presence = others
        if first and not others:
            return []
        return [sse("presence", {"conversation_id": self.conversation_id, "agents": others})]

    def _customer_typing(self, now: dt.datetime) -> list[str]:
        name = self.store.customer_typing(self.conversation_id,
                                          iso(now - dt.timedelta(seconds=CUSTOMER_TYPING_SECONDS)))
        state = (name is not None, name or "")
        if state == self.customer_typing:
            return []
        # Told on the first look too: a polling client starts afresh each time and must learn that
        # the customer stopped.
        self.customer_typing = state
        return [sse("customer.typing", {"conversation_id": self.conversation_id, "typing": state[0],
                                        "name": state[1]})]


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


def _resume_point(store: Store) -> tuple[int, int | None, int | None]:
    """Where the client left off (`Last-Event-ID`: seq, last message id, newest notification id), or now."""
    watermark = store.change_watermark()
    raw = request.headers.get("Last-Event-ID") or request.args.get("since") or ""
    told, _, notification_text = raw.partition("/")
    last_notification = _number(notification_text)
    seq_text, _, message_text = told.partition(":")
    seq = _number(seq_text)
    if seq is not None and watermark - MAX_CATCH_UP <= seq <= watermark:
        return seq, _number(message_text), last_notification
    return watermark, None, last_notification


@bp.get("/events")
@login_required
def events():
    store = get_store()
    agent = dict(current_agent())
    team_ids = access.visible_team_ids(store, agent)
    conversation_id = request.args.get("conversation", type=int)
    if conversation_id is not None:
        if not 0 < conversation_id < 2**63:
            abort(404)
        access.require_conversation(store, agent, conversation_id)
    seq, last_message_id, last_notification_id = _resume_point(store)
    locale = str(get_locale() or "") or None
    once = request.args.get("once") == "1"
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    app = current_app._get_current_object()
    config = app.extensions["mainland"].config
    settings = {
        "poll": float(_setting("live_poll_seconds", POLL_SECONDS)),
        "heartbeat": float(_setting("live_heartbeat_seconds", HEARTBEAT_SECONDS)),
        "max": float(_setting("live_max_seconds", MAX_STREAM_SECONDS)),
    }
    epoch = (store.agent(agent["id"]) or {}).get("session_epoch")
    if once or not _slots.acquire(_stream_limit()):
        # A short answer: what changed since the client's id, and when to ask again.
        state = LiveState(store, agent, team_ids, seq, conversation_id, last_message_id, locale=locale,
                          last_notification_id=last_notification_id)
        body = [f"retry: {_pace.next_retry_ms(time.monotonic())}\n\n", sse("hello", {"seq": seq, "conversation_id": conversation_id,
                                                              "mode": "poll"}, state.event_id)]
        body.extend(state.poll(now=clock.now()))
        return Response("".join(body), mimetype="text/event-stream", headers=headers)
    released = threading.Event()

    def release() -> None:
        # From the stream's end or the server closing the response, whichever comes first; a
        # response that was never iterated (the client left at once) still gives its slot back.
        if not released.is_set():
            released.set()
            _slots.release()

    pool = pool_of(app)
    database = str(store.path)
    listen_url = store.url if store.engine == "postgresql" else None

    def stream() -> Iterator[str]:
        # A look borrows a connection from the app's pool and gives it back before it waits or writes
        # to the client: open tabs hold no connection between looks (on PostgreSQL each connection is
        # a server process, and the server admits only so many).
        try:
            with _local_changes.following(database, listen_url), _local_changes.listening() as wait_for_change:
                with pool.lent() as own:
                    state = LiveState(own, agent, team_ids, seq, conversation_id, last_message_id, locale=locale,
                                      last_notification_id=last_notification_id)
                yield f"retry: {STREAM_RETRY_MS}\n\n"
                yield sse("hello", {"seq": seq, "conversation_id": conversation_id, "mode": "stream"}, state.event_id)
                started = last_beat = last_check = time.monotonic()
                last_full = -float("inf")  # the first look is a full one (monotonic time may start near 0)
                while True:
                    moment = time.monotonic()
                    if moment - started >= settings["max"]:
                        yield sse("bye", {"reconnect": True}, state.event_id)
                        return
                    # Woken by a change: only what changed. Presence, typing, drafts and notifications keep
                    # their pace of one look a second whatever the writes do.
                    full = moment - last_full >= settings["poll"]
                    with pool.lent() as own:
                        state.store = own
                        ending = None
                        if moment - last_check >= SESSION_CHECK_SECONDS:
                            ending = _session_ending(own, agent, epoch, team_ids, config)
                            last_check = moment
                        # A woken look knows the watermark its waking write left: no need to read it.
                        told = [] if ending is not None else state.poll(
                            now=clock.now(), with_presence=full, with_notifications=full,
                            watermark=None if full else max(state.seq, _local_changes.latest(database)))
                    if ending is not None:
                        yield sse("bye", {"reconnect": ending}, state.event_id)
                        return
                    yield from told
                    if full:
                        last_full = moment
                    if moment - last_beat >= settings["heartbeat"]:
                        yield sse("heartbeat", {"t": int(time.time())})
                        last_beat = moment
                    looked = time.monotonic()
                    wait_for_change(database, state.seq, max(0.0, last_full + settings["poll"] - looked))
                    # A burst of writes is told in looks at most LOOK_GAP_SECONDS apart, not one per write.
                    time.sleep(max(0.0, LOOK_GAP_SECONDS - (time.monotonic() - looked)))
        finally:
            release()

    response = Response(stream(), mimetype="text/event-stream", headers=headers)
    response.call_on_close(release)
    return response


def _session_ending(store: Store, agent: dict[str, Any], epoch: Any, team_ids: set[int] | None,
                    config: Any) -> bool | None:
    """None while the stream's agent may go on; else whether the client should reconnect: False when
    signed out or disabled, True when their teams or role changed (the stream's view of what they may
    see is stale, and the client reconnects to be checked afresh)."""
    row = store.agent(agent["id"])
    if row is None or not row["active"] or row["session_epoch"] != epoch:
        return False
    if access.visible_team_ids(store, row, config=config) != team_ids:
        return True
    return None


@bp.post("/conversations/<int:conversation_id>/presence")
@login_required
def presence(conversation_id: int):
    """A heartbeat from an open conversation page: {state: viewing|typing|gone}."""
    store = get_store()
    agent = current_agent()
    access.require_conversation(store, agent, conversation_id)
    payload = request.get_json(silent=True) if request.is_json else None
    state = (payload or {}).get("state") if payload else request.form.get("state")
    now = clock.now()
    if state == "gone":
        store.leave_presence(conversation_id, agent["id"])
    elif state in PRESENCE_STATES:
        store.touch_presence(conversation_id, agent["id"], state, iso(now),
                             forget_before=iso(now - dt.timedelta(minutes=10)))
    else:
        abort(400)
    since = iso(now - dt.timedelta(seconds=PRESENCE_SECONDS))
    others = [{"id": r["agent_id"], "name": r["name"] or r["email"], "state": r["state"]}
              for r in store.presence(conversation_id, since) if r["agent_id"] != agent["id"]]
    return jsonify(ok=True, agents=others)
