"""Bluesky (AT Protocol): mentions of and replies to our account, and optionally direct messages.

What it does
------------
Each poll reads `app.bsky.notification.listNotifications` of the account and takes the
notifications whose reason is in `reasons` (default `mention` and `reply`; add `quote` to take
quote posts too). Each becomes a **public** message: its external id is the post's at-URI, its
thread key the URI of the thread's root post (`record.reply.root.uri`, or the post itself when it
starts a thread), so later posts in the same thread join the same conversation. A reply, a mention that is a reply,
and a quote carry the post they answer or quote (`context_text`/`context_url`), read with
`app.bsky.feed.getPosts` (25 per call); a post that is gone leaves the context empty. Images embedded
in a post (`app.bsky.embed.images`) become attachments, fetched from the image CDN
(`media_url`) through the SSRF-guarded fetch.

With `dms: true` the connector also reads the chat log (`chat.bsky.convo.getLog`, sent to the
PDS with the header `atproto-proxy: did:web:api.bsky.chat#bsky_chat`): messages from customers
become **private** messages threaded by conversation id; messages we sent are skipped. A customer's
`logDeleteMessage` becomes a `MessageChange` (CHANGE_DELETED) of the stored `chat:<id>` item (the
log gives no time of the deletion, so `at` is empty). Reactions, reads, convos begun, accepted,
left, muted or unmuted, and event types this code does not know are counted (a debug log line) and
skipped: none is a message and none goes to quarantine.

An agent's reply to a post is a post of our own (`com.atproto.repo.createRecord`, collection
`app.bsky.feed.post`) with `reply.parent` = the customer's post and `reply.root` = that post's own
`reply.root` (or the post itself when it started the thread); the connector reads both strong
references (uri + cid) with `app.bsky.feed.getPosts` just before posting. Files of a public reply
are uploaded with `com.atproto.repo.uploadBlob` and named by an `app.bsky.embed.images` embed (up to
4 JPEG, PNG, WebP or GIF images of at most 1,000,000 bytes each; anything else is refused before
sending). A reply in a chat is sent with `chat.bsky.convo.sendMessage`; a chat message cannot carry
files (`attachments_private=False`), so one with files is refused.

Writing first
-------------
An agent may start a conversation (`limits.starts_conversations = "any"`) to a customer's Bluesky
identity (`writes_to = ("bluesky",)`: the DID that customers' items carry, or a handle, which is
resolved with `com.atproto.identity.resolveHandle`). It goes as a direct message, so it needs
`dms: true`; without it `send` refuses with a message saying so. The connector asks the chat service
for the 1-1 convo with `chat.bsky.convo.getConvoForMembers` (`members` = the customer's DID), which
makes it when the customer's chat declaration (`chat.bsky.actor.declaration`, `allowIncoming`)
allows it: "all" always, "following" only when they follow our account, "none" never. A refusal
(`NotFollowedBySender`, `MessagesDisabled`, `BlockedActor`, `BlockedSubject`, `RecipientNotFound`,
`AccountSuspended`) reaches the agent as a PermanentError that says the customer must allow messages
(or follow us) or write first. Then the text goes with `chat.bsky.convo.sendMessage` (`convoId`,
`message.text`; 1,000 graphemes). Mainland cannot know a customer's chat settings before it tries.
`thread_key_for` is None: the convo id that threads chat messages is assigned by the chat service
and cannot be derived from the DID; the customer's answer (threaded by that convo id) joins the
conversation we started with them as the one open private conversation of theirs without a thread
key on this channel (see docs/channels/bluesky.md).

Setup
-----
In the Bluesky app: Settings -> Privacy and security -> App passwords -> Add app password. Tick
"Allow access to your direct messages" if you set `dms: true`. Put the account's handle (or
email) in `identifier` and the app password in `app_password`. Never use the account password.

Sessions
--------
The connector logs in with `com.atproto.server.createSession` once and keeps the session
(`accessJwt`, `refreshJwt`) in memory for the process, shared by every poll and send of the
channel: Bluesky allows only 30 logins per 5 minutes and 300 a day. When the PDS answers
`ExpiredToken` the session is renewed with `com.atproto.server.refreshSession` and the call
repeated once; when the refresh token is refused too, it logs in again with the app password.
A restart simply logs in again, so nothing is written to disk. Tokens never appear in logs.

Cursor
------
JSON: `{"seen": <newest indexedAt taken>, "edge": {<uri>: <indexedAt>, ...}, "chat": <log rev>}`.
Notifications page backwards (`cursor` -> older). A poll walks pages until a notification older
than `seen` minus `margin_seconds` (the AppView may index a little out of order), skipping those
in `edge` (the ones near the watermark already taken), so a second poll returns nothing new. A
walk longer than `pages_per_fetch` continues in the next fetch (`next`/`top` in the cursor, and
`more`). The first poll takes the newest `first_poll_items` notifications only. `chat` is the
`cursor` of the chat log, which reads forward.

Limits and errors
-----------------
A post may be 300 graphemes (user-perceived characters, counted with the Unicode rules of the
`regex` module's `\\X`) and 3,000 bytes; a chat message 1,000 graphemes and 10,000 bytes. Longer
replies are refused before anything is sent. Rate limits: a 429 waits for `Retry-After` or
`RateLimit-Reset` (epoch seconds). XRPC errors (`{"error", "message"}`) reach the agent as
"<error>: <message>". Links in replies are made clickable with link facets (byte offsets).

Not supported: files in chat messages, alt text, likes/reposts/follows (not conversations), OAuth sessions
(app passwords only), marking notifications as read (`updateSeen` is not the cursor).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import regex

from connectors._http import Http
from connectors._meta import reply_context
from connectors._probe import ask, judge
from connectors.base import (
    N_,
    Connector,
    IdentityRule,
    ItemError,
    Limits,
    PermanentError,
    Phrase,
    ProbeResult,
    RetryableError,
    Setting,
    pick,
)
from inbox.models import (
    CHANGE_DELETED,
    Attachment,
    Author,
    FetchResult,
    InboundItem,
    MessageChange,
    OutboundReply,
    Reject,
)

MAX_POST_GRAPHEMES = 300
MAX_POST_BYTES = 3000
MAX_DM_GRAPHEMES = 1000
MAX_DM_BYTES = 10_000
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
EDGE_LIMIT = 500
#: `app.bsky.embed.images`: at most 4 images of at most 1,000,000 bytes each (lexicon `maxSize`);
#: the lexicon accepts `image/*`, the Bluesky apps show these four.
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
#: `app.bsky.feed.getPosts` takes at most 25 `uris` per call.
POSTS_PER_CALL = 25
CHAT_DEFS = "chat.bsky.convo.defs#"
_URL = regex.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")

#: Sessions per channel for this process: {key: {"accessJwt", "refreshJwt", "did", "handle"}}.
_SESSIONS: dict[str, dict[str, Any]] = {}
_SESSIONS_LOCK = threading.Lock()


def grapheme_count(text: str) -> int:
    """User-perceived characters (extended grapheme clusters, Unicode UAX #29)."""
    return len(regex.findall(r"\X", text))


def xrpc_error_message(body: Any) -> str | None:
    """The agent-facing text of an XRPC error body `{"error": ..., "message": ...}`."""
    if not isinstance(body, dict):
        return None
    error, message = body.get("error"), body.get("message")
    if isinstance(error, str) and isinstance(message, str) and message and message != error:
        return f"{error}: {message}"
    return message if isinstance(message, str) and message else error if isinstance(error, str) else None


def link_facets(text: str) -> list[dict[str, Any]]:
    """`app.bsky.richtext.facet#link` facets for the http(s) links in `text` (byte offsets)."""
    facets = []
    for match in _URL.finditer(text):
        start = len(text[: match.start()].encode("utf-8"))
        end = start + len(match.group(0).encode("utf-8"))
        facets.append({"index": {"byteStart": start, "byteEnd": end},
                       "features": [{"$type": "app.bsky.richtext.facet#link", "uri": match.group(0)}]})
    return facets


def _parse_time(value: Any) -> dt.datetime:
    """A record's datetime as aware UTC: "Z" or an offset, any fraction length; no zone means UTC."""
    if not isinstance(value, str):
        raise ItemError("date is missing")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        # Python 3.11 reads fractions of any length (cut to microseconds) and offsets like "+01:00".
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ItemError(f"date {value[:40]!r} is not a date") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class BlueskyConnector(Connector):
    kind = "bluesky"
    identities = (IdentityRule("bluesky", case_insensitive=True, strip_at=True),)
    #: Bluesky's 300-character limit counts graphemes (an emoji with modifiers is one).
    measure_text = staticmethod(grapheme_count)
    display_name = N_("Bluesky")
    icon_text = "B"
    icon_color = "#0a66c2"
    settings = (
        Setting("identifier", required=True, help=N_("The account's handle (e.g. acme.bsky.social) or email.")),
        Setting("app_password", required=True, secret=True,
                help=N_("An app password of the account (Settings -> App passwords), never the account password.")),
        Setting("service_url", default="https://bsky.social", help=N_("The account's PDS (https://bsky.social for most).")),
        Setting("reasons", default="mention,reply",
                help=N_("Notification reasons that become messages: mention, reply, quote (comma-separated).")),
        Setting("dms", default=False,
                help=N_("Also read direct messages (the app password must allow access to direct messages).")),
        Setting("chat_proxy", default=CHAT_PROXY, help=N_("atproto-proxy header value for chat.bsky calls.")),
        Setting("media_url", default="https://cdn.bsky.app/img/feed_fullsize/plain/{did}/{cid}@jpeg",
                help=N_("URL template of embedded images ({did}, {cid}).")),
        Setting("download_media", default=True, help=N_("Download images embedded in posts as attachments.")),
        Setting("page_size", default=50, help=N_("Notifications per page (1-100).")),
        Setting("pages_per_fetch", default=10, help=N_("Pages of notifications read per fetch at most.")),
        Setting("first_poll_items", default=50,
                help=N_("Notifications taken on the very first poll; older ones are not imported.")),
        Setting("margin_seconds", default=120,
                help=N_("How far before the newest notification taken a poll looks again (out-of-order indexing).")),
        Setting("timeout", default=30, help=N_("Seconds an API call may take.")),
    )
    # Images go in public replies only: a chat message's embed may be a post record, never a file.
    limits = Limits(max_text_length=MAX_POST_GRAPHEMES, formatting="plain", supports_attachments=True,
                    attachments_public=True, attachments_private=False, attachment_types=IMAGE_TYPES,
                    max_attachment_bytes=MAX_IMAGE_BYTES, max_attachments=MAX_IMAGES,
                    starts_conversations="any")
    #: A new conversation goes as a direct message to the customer's account (its DID, or a handle).
    writes_to = ("bluesky",)

    def __init__(self, name: str, config: Any, **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.http = Http(self.config["service_url"], timeout=float(self.config["timeout"]), redact=self.redact,
                         error_message=xrpc_error_message)
        secret = hashlib.sha256(str(self.config["app_password"]).encode()).hexdigest()[:16]
        self._session_key = f"{name}|{self.config['service_url']}|{self.config['identifier']}|{secret}"
        self.reasons = [r.strip() for r in str(self.config["reasons"]).split(",") if r.strip()]

    @property
    def secrets(self) -> list[str]:
        found = super().secrets
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(getattr(self, "_session_key", ""), {})
        return found + [str(session[k]) for k in ("accessJwt", "refreshJwt") if session.get(k)]

    # Session ------------------------------------------------------------------------------------

    def _session(self) -> dict[str, Any]:
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(self._session_key)
        return session or self._login()

    def _login(self) -> dict[str, Any]:
        response = self.http.request("POST", "/xrpc/com.atproto.server.createSession",
                                     json={"identifier": self.config["identifier"],
                                           "password": self.config["app_password"]},
                                     expect=(200, 400, 401))
        if response.status_code != 200:
            detail = self.http._detail(response) or f"status {response.status_code}"
            raise PermanentError(self.redact(
                f"Bluesky refused the login of {self.config['identifier']} ({detail}); check identifier and "
                f"app_password of channel {self.name}"))
        return self._keep(response.json(), "logged in")

    def _keep(self, answer: Any, what: str) -> dict[str, Any]:
        if not isinstance(answer, dict) or not answer.get("accessJwt") or not answer.get("did"):
            raise RetryableError("Bluesky answered a session request without tokens")
        session = {k: answer.get(k) for k in ("accessJwt", "refreshJwt", "did", "handle")}
        with _SESSIONS_LOCK:
            _SESSIONS[self._session_key] = session
        self.log.info("Bluesky channel %s %s as %s", self.name, what, session.get("handle") or session["did"])
        return session

    def _renew(self, spent: dict[str, Any]) -> dict[str, Any]:
        """A fresh session after `spent` was refused: refresh it, or log in again."""
        with _SESSIONS_LOCK:
            current = _SESSIONS.get(self._session_key)
        if current and current.get("accessJwt") != spent.get("accessJwt"):
            return current  # another instance renewed it already
        if spent.get("refreshJwt"):
            response = self.http.request("POST", "/xrpc/com.atproto.server.refreshSession",
                                         headers={"Authorization": f"Bearer {spent['refreshJwt']}"},
                                         expect=(200, 400, 401))
            if response.status_code == 200:
                return self._keep(response.json(), "refreshed its session")
        with _SESSIONS_LOCK:
            _SESSIONS.pop(self._session_key, None)
        return self._login()

    def _call(self, method: str, nsid: str, *, params: Any = None, body: Any = None, chat: bool = False,
              data: bytes | None = None, content_type: str | None = None) -> Any:
        """One XRPC call with the session; an expired or refused token is renewed once.

        `body` goes as JSON; `data` as the raw request body with `content_type` (uploadBlob).
        """
        for attempt in (1, 2):
            session = self._session()
            headers = {"Authorization": f"Bearer {session['accessJwt']}"}
            if chat:
                headers["atproto-proxy"] = self.config["chat_proxy"]
            payload: dict[str, Any] = {"json": body}
            if data is not None:
                headers["Content-Type"] = content_type or "application/octet-stream"
                payload = {"data": data}
            response = self.http.request(method, f"/xrpc/{nsid}", params=params, headers=headers,
                                         expect=(200, 400, 401), **payload)
            if response.status_code == 200:
                return self.http._json(response)
            error = _error_name(response)
            if attempt == 1 and error in ("ExpiredToken", "InvalidToken", "AuthRequired", "AuthMissing"):
                self._renew(session)
                continue
            self.http.raise_for(response, method, f"/xrpc/{nsid}")
        return None  # pragma: no cover

    @classmethod
    def thread_key_for(cls, handle: str) -> str | None:
        """None: chat messages are threaded by their convo id, which the chat service assigns when the
        convo is made (`getConvoForMembers`); nothing derives it from the customer's DID or handle."""
        return None

    # Fetch --------------------------------------------------------------------------------------

    def fetch(self, cursor: str | None) -> FetchResult:
        state = self._parse_cursor(cursor)
        items, rejects, more = self._walk_notifications(state)
        changes: list[MessageChange] = []
        if self.config["dms"]:
            found, bad, changes, more_chat = self._read_chat(state)
            items += found
            rejects += bad
            more = more or more_chat
        unique: dict[str, InboundItem] = {}
        for item in items:
            unique.setdefault(item.external_id, item)
        ordered = sorted(unique.values(), key=lambda i: (i.sent_at, i.external_id))
        return FetchResult(ordered, json.dumps(state, sort_keys=True), rejects, more=more, changes=changes)

    def _parse_cursor(self, cursor: str | None) -> dict[str, Any]:
        if not cursor:
            return {}
        try:
            state = json.loads(cursor)
        except ValueError:
            state = None
        if not isinstance(state, dict):
            self.log.warning("channel %s: cursor %r not understood; starting from the newest notifications",
                             self.name, cursor[:60])
            return {}
        if not isinstance(state.get("edge"), dict):
            state.pop("edge", None)
        return state

    def _pages(self, state: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
        token = state.get("next")
        for _ in range(max(1, int(self.config["pages_per_fetch"]))):
            params: list[tuple[str, Any]] = [("limit", min(100, max(1, int(self.config["page_size"]))))]
            params += [("reasons", r) for r in self.reasons]
            if token:
                params.append(("cursor", token))
            page = self._call("GET", "app.bsky.notification.listNotifications", params=params)
            if not isinstance(page, dict):
                raise RetryableError("listNotifications answered with something that is not an object")
            yield page, token
            token = page.get("cursor") if isinstance(page.get("cursor"), str) else None
            if not token:
                return

    def _walk_notifications(self, state: dict[str, Any]) -> tuple[list[InboundItem], list[Reject], bool]:
        seen = _parse_optional(state.get("seen"))
        floor = seen - dt.timedelta(seconds=float(self.config["margin_seconds"])) if seen else None
        edge: dict[str, str] = dict(state.get("edge") or {})
        top = _parse_optional(state.get("top"))
        first_run = seen is None and not state.get("next")
        taken: list[dict[str, Any]] = []
        finished = False
        for page, used in self._pages(state):
            notifications = page.get("notifications") if isinstance(page.get("notifications"), list) else []
            reached = False
            for raw in notifications:
                indexed = _parse_optional(raw.get("indexedAt")) if isinstance(raw, dict) else None
                if indexed and floor and indexed < floor:
                    reached = True  # newest first: the rest was taken by earlier polls
                    break
                if indexed:
                    top = max(top, indexed) if top else indexed
                if isinstance(raw, dict) and (raw.get("uri") in edge or raw.get("reason") not in self.reasons):
                    continue
                taken.append(raw)
            following = page.get("cursor") if isinstance(page.get("cursor"), str) else None
            if following and following == used:
                self.log.warning("channel %s: the same notifications cursor came back; this walk stops here",
                                 self.name)
                following = None
            if reached or not following or not notifications or (
                    first_run and len(taken) >= int(self.config["first_poll_items"])):
                finished = True
                break
            state["next"] = following
        contexts = self._contexts(taken)
        items, rejects = self.each(taken, lambda raw: self._post_item(raw, contexts.get(_answered_uri(raw))),
                                   raw_of=lambda raw: json.dumps({"kind": "notification", "item": raw},
                                                                 default=str).encode())
        # Remember what was taken near the watermark, so the overlap is not returned again.
        for raw in taken:
            indexed = _parse_optional(raw.get("indexedAt")) if isinstance(raw, dict) else None
            if indexed and isinstance(raw.get("uri"), str):
                edge[raw["uri"]] = _iso(indexed)
        if not finished:
            if top:
                state["top"] = _iso(top)
            state["edge"] = _trim_edge(edge, None, 0)
            return items, rejects, True
        state.pop("next", None)
        state.pop("top", None)
        if top and (seen is None or top > seen):
            state["seen"] = _iso(top)
        new_seen = _parse_optional(state.get("seen"))
        state["edge"] = _trim_edge(edge, new_seen, float(self.config["margin_seconds"]))
        return items, rejects, False

    def _contexts(self, notifications: list[Any]) -> dict[str, dict[str, str | None]]:
        """The posts these notifications answer or quote, by at-uri: `{uri: {"text", "url"}}`.

        One `getPosts` call per 25 posts. A post that is gone (deleted, or hidden by a block) is
        not in the answer, and a failed call only costs the context: the items arrive without it.
        """
        wanted = list(dict.fromkeys(u for u in map(_answered_uri, notifications) if u))
        found: dict[str, dict[str, str | None]] = {}
        for start in range(0, len(wanted), POSTS_PER_CALL):
            chunk = wanted[start:start + POSTS_PER_CALL]
            try:
                answer = self._call("GET", "app.bsky.feed.getPosts", params=[("uris", u) for u in chunk])
            except (RetryableError, PermanentError) as exc:
                self.log.warning("channel %s: the posts that %d notification(s) answer are not shown (%s)",
                                 self.name, len(wanted) - start, exc)
                break
            posts = answer.get("posts") if isinstance(answer, dict) else None
            for post in posts if isinstance(posts, list) else []:
                if isinstance(post, dict) and post.get("uri") in chunk:
                    found[post["uri"]] = _post_context(post)
        return found

    def _read_chat(self, state: dict[str, Any]) -> tuple[list[InboundItem], list[Reject], list[MessageChange], bool]:
        """One page of the chat log: customers' new messages, and their deletions as changes.

        Every other event (reactions, reads, a convo begun, accepted, left, muted, unmuted, and any
        `$type` this code does not know) is counted and skipped: none is a message, none is an error.
        """
        params = {"cursor": state["chat"]} if state.get("chat") else None
        page = self._call("GET", "chat.bsky.convo.getLog", params=params, chat=True)
        logs = page.get("logs") if isinstance(page, dict) and isinstance(page.get("logs"), list) else []
        our_did = self._session()["did"]
        messages: list[dict[str, Any]] = []
        changes: list[MessageChange] = []
        skipped: dict[str, int] = {}
        for entry in logs:
            kind = _log_kind(entry)
            message = entry.get("message") if isinstance(entry, dict) else None
            sender = _sender_did(message)
            if kind in ("logCreateMessage", "logDeleteMessage") and sender == our_did:
                kind += " (ours)"
            elif kind == "logCreateMessage" and _is_deleted_view(message):
                kind += " (already deleted)"  # created and withdrawn before we read the log
            elif kind == "logCreateMessage":
                messages.append(entry)
                continue
            elif kind == "logDeleteMessage" and isinstance(message, dict) and isinstance(message.get("id"), str):
                changes.append(MessageChange(external_id=f"chat:{message['id']}", kind=CHANGE_DELETED))
                continue
            skipped[kind] = skipped.get(kind, 0) + 1
        if skipped:
            self.log.debug("channel %s: chat log events skipped: %s", self.name,
                           ", ".join(f"{name} {count}" for name, count in sorted(skipped.items())))
        names = self._profiles({_sender_did(e.get("message")) for e in messages})
        items, rejects = self.each(messages, lambda e: self._chat_item(e, names),
                                   raw_of=lambda e: json.dumps({"kind": "chat", "item": e, "profiles": names},
                                                               default=str).encode())
        following = page.get("cursor") if isinstance(page, dict) and isinstance(page.get("cursor"), str) else None
        more = bool(logs) and bool(following) and following != state.get("chat")
        if following:
            state["chat"] = following
        return items, rejects, changes, more

    def _profiles(self, dids: set[Any]) -> dict[str, dict[str, Any]]:
        """Handles and display names of chat senders (a DM names only the sender's DID)."""
        wanted = sorted(d for d in dids if isinstance(d, str))[:25]
        if not wanted:
            return {}
        try:
            answer = self._call("GET", "app.bsky.actor.getProfiles", params=[("actors", d) for d in wanted])
        except (RetryableError, PermanentError) as exc:
            self.log.warning("channel %s: names of chat senders unknown (%s)", self.name, exc)
            return {}
        profiles = answer.get("profiles") if isinstance(answer, dict) else None
        return {p["did"]: {"handle": p.get("handle"), "displayName": p.get("displayName")}
                for p in profiles or [] if isinstance(p, dict) and isinstance(p.get("did"), str)}

    # Items --------------------------------------------------------------------------------------

    def _post_item(self, raw: Any, context: dict[str, Any] | None = None) -> InboundItem:
        uri = pick(raw, "uri", type=str)
        if not uri.startswith("at://"):
            raise ItemError(f"uri {uri[:40]!r} is not an at-uri")
        did = pick(raw, "author", "did", type=str)
        handle = raw["author"].get("handle") or did
        record = pick(raw, "record", type=dict)
        text = pick(record, "text", type=str)
        reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
        root = (reply.get("root") or {}).get("uri") if isinstance(reply.get("root"), dict) else None
        parent = (reply.get("parent") or {}).get("uri") if isinstance(reply.get("parent"), dict) else None
        references = tuple(dict.fromkeys(r for r in (root, parent) if isinstance(r, str)))
        sent = _parse_time(record.get("createdAt") or raw.get("indexedAt"))
        rkey = uri.rsplit("/", 1)[-1]
        headers = {"url": f"https://bsky.app/profile/{handle}/post/{rkey}", "handle": f"@{handle}",
                   "reason": str(raw.get("reason"))}
        if isinstance(raw.get("cid"), str):
            headers["cid"] = raw["cid"]
        context_text, context_url = reply_context((context or {}).get("text"), (context or {}).get("url"))
        stored = {"kind": "notification", "item": raw, **({"context": context} if context else {})}
        return InboundItem(
            channel=self.name, external_id=uri,
            author=Author(handle=did, name=str(raw["author"].get("displayName") or handle)[:200],
                          identity_kind="bluesky"),
            text=text, sent_at=sent, thread_key=root if isinstance(root, str) else uri,
            references=references, public=True, attachments=self._images(did, record), headers=headers,
            raw=json.dumps(stored, default=str).encode(), context_text=context_text, context_url=context_url,
        )

    def _images(self, did: str, record: dict[str, Any]) -> tuple[Attachment, ...]:
        embed = record.get("embed") if isinstance(record.get("embed"), dict) else {}
        if embed.get("$type") == "app.bsky.embed.recordWithMedia" and isinstance(embed.get("media"), dict):
            embed = embed["media"]
        if embed.get("$type") != "app.bsky.embed.images" or not isinstance(embed.get("images"), list):
            return ()
        found = []
        for index, image in enumerate(embed["images"], start=1):
            blob = image.get("image") if isinstance(image, dict) else None
            ref = (blob or {}).get("ref") if isinstance(blob, dict) else None
            cid = ref.get("$link") if isinstance(ref, dict) else None
            if not isinstance(cid, str):
                continue
            mime = blob.get("mimeType") or "image/jpeg"
            name = f"image-{index}.{'png' if mime == 'image/png' else 'jpg'}"
            url = self.config["media_url"].format(did=did, cid=cid)
            if self.config["download_media"]:
                try:
                    found.append(self.download(url, filename=name))
                    continue
                except ItemError as exc:
                    self.log.warning("channel %s: %s", self.name, exc)
            found.append(Attachment(filename=name, content_type=mime, url=url, size=blob.get("size") or 0))
        return tuple(found)

    def _chat_item(self, entry: dict[str, Any], names: dict[str, dict[str, Any]]) -> InboundItem:
        message = pick(entry, "message", type=dict)
        message_id = pick(message, "id", type=str)
        did = pick(message, "sender", "did", type=str)
        text = pick(message, "text", type=str)
        convo = entry.get("convoId") if isinstance(entry.get("convoId"), str) else pick(message, "convoId", type=str)
        profile = names.get(did) or {}
        handle = profile.get("handle") or did
        return InboundItem(
            channel=self.name, external_id=f"chat:{message_id}",
            author=Author(handle=did, name=str(profile.get("displayName") or handle)[:200],
                          identity_kind="bluesky"),
            text=text, sent_at=_parse_time(message.get("sentAt")), thread_key=convo, public=False,
            headers={"handle": f"@{handle}"},
            raw=json.dumps({"kind": "chat", "item": entry, "profiles": names}, default=str).encode(),
        )

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        try:
            data = json.loads(raw)
            kind, item = data["kind"], data["item"]
        except (ValueError, KeyError, TypeError):
            raise ItemError("not a stored Bluesky item") from None
        if kind == "chat":
            return self._chat_item(item, data.get("profiles") or {})
        context = data.get("context") if isinstance(data.get("context"), dict) else None
        return self._post_item(item, context)

    # Send ---------------------------------------------------------------------------------------

    def send(self, reply: OutboundReply) -> str:
        text = reply.text.strip()
        if not text and not (reply.public and reply.attachments):
            raise PermanentError("the reply is empty")
        if reply.public and not reply.starts_conversation:
            return self._send_post(reply, text)
        if reply.attachments:
            raise PermanentError(
                f"A Bluesky direct message cannot carry files (only text); this reply has {len(reply.attachments)}. "
                "Remove the files and send the text, or share them as a link.")
        if reply.starts_conversation:
            return self._start_chat(reply, text)
        return self._send_chat(reply, text)

    def _send_post(self, reply: OutboundReply, text: str) -> str:
        _check_length(text, MAX_POST_GRAPHEMES, MAX_POST_BYTES, "post")
        _check_images(reply.attachments)
        if not reply.reply_to_external_id or not reply.reply_to_external_id.startswith("at://"):
            raise PermanentError("a reply on Bluesky needs the post it answers")
        answer = self._call("GET", "app.bsky.feed.getPosts", params={"uris": reply.reply_to_external_id})
        posts = answer.get("posts") if isinstance(answer, dict) else None
        if not posts:
            raise PermanentError("the post this reply answers no longer exists on Bluesky")
        parent_post = posts[0]
        parent = {"uri": pick(parent_post, "uri", type=str), "cid": pick(parent_post, "cid", type=str)}
        existing = (parent_post.get("record") or {}).get("reply") if isinstance(parent_post.get("record"), dict) \
            else None
        root_ref = existing.get("root") if isinstance(existing, dict) else None
        # The docs: no reply.root on the parent means it started the thread, so it is the root too.
        root = {"uri": root_ref["uri"], "cid": root_ref["cid"]} if isinstance(root_ref, dict) and \
            isinstance(root_ref.get("uri"), str) and isinstance(root_ref.get("cid"), str) else parent
        record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": text,
                                  "createdAt": _iso(dt.datetime.now(dt.UTC)),
                                  "reply": {"root": root, "parent": parent}}
        facets = link_facets(text)
        if facets:
            record["facets"] = facets
        if reply.attachments:
            # Uploaded only now that the parent is known to exist. A blob no record names is
            # dropped by the PDS, and the same bytes upload to the same CID on a retry.
            record["embed"] = {"$type": "app.bsky.embed.images",
                               "images": [{"image": self._upload(a), "alt": ""} for a in reply.attachments]}
        session = self._session()
        try:
            created = self._call("POST", "com.atproto.repo.createRecord",
                                 body={"repo": session["did"], "collection": "app.bsky.feed.post", "record": record})
        except PermanentError as exc:
            if reply.attachments and any(name in str(exc) for name in ("BlobTooLarge", "InvalidMimeType")):
                raise PermanentError(f"Bluesky refused the images of this reply ({exc}). {IMAGE_ADVICE}") from None
            raise
        return str(pick(created, "uri"))

    def _upload(self, attachment: Attachment) -> dict[str, Any]:
        """`com.atproto.repo.uploadBlob` of one file; returns the blob reference for the embed."""
        try:
            answer = self._call("POST", "com.atproto.repo.uploadBlob", data=attachment.data,
                                content_type=_media_type(attachment))
        except RetryableError as exc:
            raise RetryableError(f"Bluesky did not take the image {attachment.filename} yet ({exc}); the reply "
                                 "is sent again later.", retry_after=exc.retry_after) from None
        except PermanentError as exc:
            raise PermanentError(f"Bluesky refused the image {attachment.filename} ({exc}). {IMAGE_ADVICE}") from None
        blob = answer.get("blob") if isinstance(answer, dict) else None
        ref = blob.get("ref") if isinstance(blob, dict) else None
        if not isinstance(ref, dict) or not isinstance(ref.get("$link"), str):
            raise RetryableError(f"Bluesky answered the upload of {attachment.filename} without a blob reference")
        return blob

    def _send_chat(self, reply: OutboundReply, text: str) -> str:
        _check_length(text, MAX_DM_GRAPHEMES, MAX_DM_BYTES, "direct message")
        if not reply.thread_key:
            raise PermanentError("no Bluesky chat conversation to send this message to")
        sent = self._call("POST", "chat.bsky.convo.sendMessage", chat=True,
                          body={"convoId": reply.thread_key, "message": {"text": text}})
        return f"chat:{pick(sent, 'id')}"

    def _start_chat(self, reply: OutboundReply, text: str) -> str:
        """The first message of a conversation we start: the customer's 1-1 convo (made now when their
        chat settings allow it, `chat.bsky.convo.getConvoForMembers`), then `sendMessage` into it."""
        if not self.config["dms"]:  # read the same way as fetch() reads it
            raise PermanentError(
                f"Channel {self.name} does not use Bluesky direct messages (dms is off), and a conversation can "
                "only be started as a direct message: set dms: true for the channel (with an app password that "
                "allows direct messages), then send again.")
        _check_length(text, MAX_DM_GRAPHEMES, MAX_DM_BYTES, "direct message")
        who = reply.to.handle if reply.to else ""
        did = self._did_of(who)
        try:
            answer = self._call("GET", "chat.bsky.convo.getConvoForMembers", params=[("members", did)], chat=True)
        except PermanentError as exc:
            raise PermanentError(_refusal_advice(who, str(exc), self._session().get("handle"))) from None
        convo = answer.get("convo") if isinstance(answer, dict) else None
        convo_id = convo.get("id") if isinstance(convo, dict) else None
        if not isinstance(convo_id, str) or not convo_id:
            raise RetryableError("Bluesky answered getConvoForMembers without a conversation id")
        sent = self._call("POST", "chat.bsky.convo.sendMessage", chat=True,
                          body={"convoId": convo_id, "message": {"text": text}})
        return f"chat:{pick(sent, 'id')}"

    def _did_of(self, handle: str) -> str:
        """The DID of a customer's identity: a DID as it is, a handle resolved by the PDS."""
        value = (handle or "").strip().lstrip("@")
        if value.lower().startswith("did:"):
            return value
        if not value:
            raise PermanentError("no Bluesky account to write to")
        try:
            answer = self._call("GET", "com.atproto.identity.resolveHandle", params={"handle": value})
        except PermanentError as exc:
            raise PermanentError(f"Bluesky does not know the handle @{value} ({exc}): check the customer's "
                                 "Bluesky identity.") from None
        did = answer.get("did") if isinstance(answer, dict) else None
        if not isinstance(did, str) or not did.startswith("did:"):
            raise RetryableError(f"Bluesky resolved @{value} without a DID")
        return did

    def probe(self) -> ProbeResult:
        """Sign in as the worker does (`com.atproto.server.createSession`), then
        `com.atproto.server.getSession` with that session: the account the app password opens. The
        probe's session is its own: the worker's cached session is neither used nor replaced."""
        refused = N_("Bluesky refused the sign-in ({status}): check the handle, and create a new app password "
                     "(Settings, Privacy and security, App passwords) and paste it here")
        login = ask(self, self.http, "/xrpc/com.atproto.server.createSession", what="Bluesky", method="POST",
                    json={"identifier": self.config["identifier"], "password": self.config["app_password"]})
        if isinstance(login, ProbeResult):
            return login
        session: dict[str, Any] = {}

        def took_session(body: Any) -> str:
            session["accessJwt"] = str(body["accessJwt"])
            return "signed in"

        first = judge(self, login, what="Bluesky", refused=refused, signed_in=took_session,
                      is_refusal=lambda status, body: status == 401)
        if not first.ok:
            return first
        answer = ask(self, self.http, "/xrpc/com.atproto.server.getSession", what="Bluesky",
                     headers={"Authorization": f"Bearer {session['accessJwt']}"})
        if isinstance(answer, ProbeResult):
            return answer
        return judge(self, answer, what="Bluesky", refused=refused,
                     signed_in=lambda body: Phrase(N_("Signed in as @{handle} ({did})"),
                                                   {"handle": str(body["handle"]), "did": str(body["did"])}))

    def close(self) -> None:
        self.http.close()


#: getConvoForMembers errors (lexicon) meaning the customer's chat settings or a block stop us.
_CHAT_REFUSALS = {
    "NotFollowedBySender": "accepts direct messages only from accounts they follow",
    "MessagesDisabled": "does not accept direct messages",
    "BlockedActor": "is blocked by this account",
    "BlockedSubject": "has blocked this account",
    "RecipientNotFound": "has no Bluesky chat account",
    "AccountSuspended": "cannot be written to: this account's chat is suspended",
}


def _refusal_advice(who: str, detail: str, our_handle: str | None) -> str:
    """What the agent reads when Bluesky will not open a chat with the customer, and what to do."""
    us = f"@{our_handle}" if our_handle else "our account"
    meaning = next((text for name, text in _CHAT_REFUSALS.items() if name in detail), "cannot be written to first")
    return (f"The Bluesky account {who} {meaning} ({detail}). Bluesky lets a business write first only when the "
            f"customer's chat settings allow it: ask the customer (in a reply to one of their posts, or elsewhere) "
            f"to allow messages from everyone, or to follow {us}, or to write to {us} first; their message then "
            "arrives here and can be answered.")


def _check_length(text: str, graphemes: int, size: int, what: str) -> None:
    count = grapheme_count(text)
    if count > graphemes:
        raise PermanentError(f"The {what} is {count} characters; Bluesky allows {graphemes}. "
                             f"Shorten it by {count - graphemes}.")
    length = len(text.encode("utf-8"))
    if length > size:
        raise PermanentError(f"The {what} is {length} bytes long in UTF-8; Bluesky allows {size}.")


IMAGE_ADVICE = (f"A Bluesky post can carry up to {MAX_IMAGES} JPEG, PNG, WebP or GIF images of at most "
                f"{MAX_IMAGE_BYTES:,} bytes each: make the image smaller or convert it, then send again.")


def _media_type(attachment: Attachment) -> str:
    return (attachment.content_type or "").split(";")[0].strip().lower()


def _check_images(attachments: tuple[Attachment, ...]) -> None:
    """Refuse, before anything is sent, files a Bluesky post cannot carry."""
    if len(attachments) > MAX_IMAGES:
        raise PermanentError(f"A Bluesky post can carry at most {MAX_IMAGES} images; this reply has "
                             f"{len(attachments)}. Remove {len(attachments) - MAX_IMAGES}, or send them in a "
                             "second reply.")
    for attachment in attachments:
        kind = _media_type(attachment)
        if kind not in IMAGE_TYPES:
            raise PermanentError(f"{attachment.filename} is {kind or 'of an unknown type'}; a Bluesky post can "
                                 "carry JPEG, PNG, WebP or GIF images only. Convert it, or share it as a link.")
        if attachment.data is None:
            raise PermanentError(f"{attachment.filename} has no content to upload; attach it again.")
        size = len(attachment.data)
        if size > MAX_IMAGE_BYTES:
            raise PermanentError(f"{attachment.filename} is {size:,} bytes; Bluesky allows images of at most "
                                 f"{MAX_IMAGE_BYTES:,} bytes. Make it smaller, then send again.")


def _error_name(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def _log_kind(entry: Any) -> str:
    """The short name of a chat log event (`logCreateMessage`), or "unknown"."""
    kind = entry.get("$type") if isinstance(entry, dict) else None
    if isinstance(kind, str) and kind.startswith(CHAT_DEFS) and kind[len(CHAT_DEFS):]:
        return kind[len(CHAT_DEFS):]
    return "unknown"


def _sender_did(message: Any) -> str | None:
    sender = message.get("sender") if isinstance(message, dict) else None
    did = sender.get("did") if isinstance(sender, dict) else None
    return did if isinstance(did, str) else None


def _is_deleted_view(message: Any) -> bool:
    """A `deletedMessageView` (union members carry their `$type`; one without text and tag is broken)."""
    return isinstance(message, dict) and message.get("$type") == CHAT_DEFS + "deletedMessageView"


def _answered_uri(raw: Any) -> str | None:
    """The at-uri of the post a notification's post answers (`reply.parent`) or else quotes."""
    record = raw.get("record") if isinstance(raw, dict) else None
    if not isinstance(record, dict):
        return None
    reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
    parent = reply.get("parent") if isinstance(reply.get("parent"), dict) else {}
    if isinstance(parent.get("uri"), str):
        return parent["uri"]
    embed = record.get("embed") if isinstance(record.get("embed"), dict) else {}
    if embed.get("$type") == "app.bsky.embed.recordWithMedia":
        embed = embed.get("record") if isinstance(embed.get("record"), dict) else {}
    quoted = embed.get("record") if isinstance(embed.get("record"), dict) else {}
    uri = quoted.get("uri")
    # A quote may also embed a feed, a list or a starter pack: only a post is context.
    return uri if isinstance(uri, str) and "/app.bsky.feed.post/" in uri else None


def _post_context(post: dict[str, Any]) -> dict[str, str | None]:
    """The text of a `postView` and its link on bsky.app (by handle, or by DID without a valid one)."""
    record = post.get("record") if isinstance(post.get("record"), dict) else {}
    author = post.get("author") if isinstance(post.get("author"), dict) else {}
    handle = author.get("handle")
    if not isinstance(handle, str) or not handle or handle == "handle.invalid":
        handle = author.get("did") or str(post["uri"])[len("at://"):].split("/", 1)[0]
    rkey = str(post["uri"]).rsplit("/", 1)[-1]
    text = record.get("text") if isinstance(record.get("text"), str) else None
    return {"text": text, "url": f"https://bsky.app/profile/{handle}/post/{rkey}"}


def _parse_optional(value: Any) -> dt.datetime | None:
    try:
        return _parse_time(value)
    except ItemError:
        return None


def _trim_edge(edge: dict[str, str], seen: dt.datetime | None, margin: float) -> dict[str, str]:
    """The taken notifications still inside the margin window (at most EDGE_LIMIT, newest kept)."""
    kept = {}
    for uri, when in edge.items():
        moment = _parse_optional(when)
        if moment and (seen is None or moment >= seen - dt.timedelta(seconds=margin)):
            kept[uri] = when
    newest = sorted(kept.items(), key=lambda kv: kv[1], reverse=True)[:EDGE_LIMIT]
    return dict(newest)
