"""X (Twitter): mentions of our account and direct messages, polled from the X API v2.

What it does
------------
Each poll reads two streams of the account named by `user_id`:

- **Mentions** (`GET /2/users/{user_id}/mentions`) become *public* messages. A mention's
  `conversation_id` is the thread key, so later replies in the same thread join the same
  conversation; the author's display name and @username come from `expansions=author_id`.
  The post a mention replies to (else the post it quotes) comes with it
  (`expansions=referenced_tweets.id,referenced_tweets.id.author_id`) and is shown above it: its
  text and link (`https://x.com/<username>/status/<id>`, or `https://x.com/i/web/status/<id>`
  when its author is not expanded). A referenced post that is deleted or protected is missing
  from `includes` (X lists it in `errors`): the mention arrives without that context.
- **Direct messages** (`GET /2/dm_events?event_types=MessageCreate`) become *private* messages,
  threaded by `dm_conversation_id`. The endpoint returns the messages we sent too: those (the
  `sender_id` is `user_id`) are skipped.

Photos attached to either become attachments (downloaded through the SSRF-guarded fetch); other
media (videos, GIFs) are listed as attachments that were not downloaded.

An agent's reply to a mention is a public reply (`POST /2/tweets` with
`reply.in_reply_to_tweet_id` = the customer's post); a reply in a DM conversation is a direct
message (`POST /2/dm_conversations/{dm_conversation_id}/messages`, or
`/2/dm_conversations/with/{user id}/messages` when the conversation id is unknown).

A reply may carry images (JPEG, PNG, WebP; up to 5 MB each; four in a post, one in a DM). Each
is uploaded first with the one-shot `POST /2/media/upload` (multipart `media`, `media_category`
`tweet_image` or `dm_image`), then the post names them in `media.media_ids` and the DM in
`attachments: [{"media_id"}]`. Files X would not take are refused before anything is uploaded,
saying what to do. GIFs and videos (X's chunked upload) are not sent. A retried send uploads
again; the post itself is sent as before (X has no idempotency key; a resent identical post is
refused by X as duplicate content).

Setup
-----
1. In the X developer portal create a project and an app with **OAuth 2.0** user authentication
   (type "Web App" = confidential client, or "Native App" = public client).
2. Authorise the app for the support account with the scopes
   `tweet.read tweet.write users.read dm.read dm.write media.write offline.access` (PKCE flow; any
   OAuth 2.0 tool will do; `media.write` lets replies carry images). `offline.access` gives a
   refresh token; without it the access token dies after two hours and the channel stops until
   someone pastes a new one.
3. Put the access token, the refresh token, the app's client id (and, for a confidential client,
   its client secret) in the channel's settings, and the support account's numeric user id in
   `user_id`.

Tokens
------
X user tokens live two hours. When the API answers 401, the connector asks
`POST /2/oauth2/token` (`grant_type=refresh_token`) once for a new pair and repeats the call. X
hands out a new refresh token with every refresh and the old one stops working, so the new pair
must outlive the process: it is kept in memory for the process and written to
`<data_dir>/tokens/x-<channel>.json` (file mode 0600, replaced atomically, under a file lock so
the worker and the web process never refresh with the same spent token). The configured tokens
are only used while that file is absent, or after an operator puts a *different* refresh token
into the configuration (re-authorising the app), which then wins over the file. The log says
when a token was refreshed and where the new one is kept; no token ever appears in a log line.

Cursor
------
A small JSON object: `{"mentions": <since_id>, "dms": <newest DM event id>}` plus, while a walk
is unfinished, `mentions_next`/`dms_next` (the page token to go on with) and `mentions_top`/
`dms_top` (the newest id already seen). Mentions are asked `since_id` the stored id and followed
through `meta.next_token`; DMs have no since_id, so pages are read newest first until an event
id at or below the stored one. Only when a stream's walk is complete does its stored id move up,
so a crash part-way repeats the walk and the store drops what it already has. A poll reads at
most `pages_per_fetch` pages per stream and returns them oldest first; a longer backlog is
continued by the next fetch (`more`). The first poll takes the newest `first_poll_items` items
of each stream and nothing older. X only serves the 800 newest mentions and 30 days of DMs.

Limits and errors
-----------------
A post may be 280 characters as X counts them (every link 23, emoji and CJK characters 2; the
twitter-text v3 rule, implemented in connectors/twitter_text.py): a longer reply is refused
before anything is sent, saying by how much it is too long. DMs may be 10,000 characters. A 429
waits until `x-rate-limit-reset`; 5xx and timeouts are retried. X's two error shapes (problem
details `{"title", "detail", ...}` and `{"errors": [{"message"}]}`) both reach the agent as the
API's own words, e.g. "Forbidden: You are not allowed to create a Tweet with duplicate content."

Writing first (#12)
-------------------
An agent may start a conversation with a customer's X account (identity kind `x`, the numeric
user id): always a **direct message**, `POST /2/dm_conversations/with/{user id}/messages` with
`text`, which X adds to the one-to-one conversation with that user or creates. A public post is
never a conversation we start (X lets self-serve apps reply only to posts that mention us).
X delivers it only when the customer accepts direct messages from the support account (they
allow messages from everyone, follow us, or wrote to us before); otherwise X answers 403 and
the agent is told the customer must allow messages from us or write first. The conversation's
thread key is X's `dm_conversation_id` of that one-to-one conversation, `<smaller user id>-<larger
user id>` of the customer and the support account, the key every DM of it carries, so the
customer's answer joins it. That key needs the support account's id, which only a configured
connector knows: `thread_key_for` answers on a connector, not on the class (the inbox must ask a
configured connector for the answer to join; asked of the class it gets None).

Not supported: replying to posts that did not mention us (X forbids it for self-serve apps),
quote posts as a stream of their own, sending GIFs or videos, group DMs started by us.

Settings: see `settings` below; docs/channels/x.md has an example.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors import twitter_text
from connectors._http import Http
from connectors._meta import reply_context
from connectors._probe import Mismatch, http_probe
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
from inbox.models import Attachment, Author, FetchResult, InboundItem, OutboundReply, Reject

MAX_POST_WEIGHT = twitter_text.MAX_WEIGHTED_LENGTH
MAX_DM_LENGTH = 10_000
#: The one-shot media upload takes images up to 5 MB (GIF and video need the chunked upload, not used here).
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_MEDIA_BYTES = 5 * 1024 * 1024
#: Up to 4 photos in a post; a direct message carries one file.
MAX_POST_MEDIA = 4
MAX_DM_MEDIA = 1
TWEET_FIELDS = "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,attachments,entities,lang"
DM_FIELDS = "id,event_type,text,sender_id,dm_conversation_id,created_at,attachments,participant_ids"
MEDIA_FIELDS = "media_key,type,url,preview_image_url,width,height"
#: The post a mention answers (or quotes) and its author come with the mention, for the agent's context.
MENTION_EXPANSIONS = "author_id,attachments.media_keys,referenced_tweets.id,referenced_tweets.id.author_id"

#: Tokens refreshed in this process, per channel: {key: {"access_token", "refresh_token", ...}}.
_TOKENS: dict[str, dict[str, Any]] = {}
_TOKENS_LOCK = threading.Lock()


def x_error_message(body: Any) -> str | None:
    """The agent-facing text of an X error body, in either of X's two shapes."""
    if not isinstance(body, dict):
        return None
    title, detail = body.get("title"), body.get("detail")
    if isinstance(title, str) or isinstance(detail, str):
        if isinstance(title, str) and isinstance(detail, str) and detail != title:
            return f"{title}: {detail}"
        return detail if isinstance(detail, str) else title
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        texts = []
        for error in errors:
            if isinstance(error, dict):
                text = error.get("message") or error.get("detail") or error.get("title")
                if text:
                    texts.append(str(text))
        return "; ".join(texts) or None
    # The OAuth token endpoint answers in RFC 6749's shape.
    if isinstance(body.get("error_description"), str):
        return body["error_description"]
    return None


def weighted_length(text: str) -> int:
    """The length of a post as X counts it (twitter-text v3: links 23, emoji and CJK 2)."""
    return twitter_text.weighted_length(text)


def _parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ItemError("created_at is missing")
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        raise ItemError(f"created_at {value[:40]!r} is not a date") from None


def _numeric(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) <= 19 else None


def one_to_one_conversation_id(user_id: str, other_id: str) -> str | None:
    """X's `dm_conversation_id` of the one-to-one DM conversation of two accounts: the smaller user
    id, a hyphen, the larger (compared as numbers), as every DM event of it carries."""
    ids = [str(v or "").strip() for v in (user_id, other_id)]
    if any(_numeric(v) is None for v in ids) or ids[0] == ids[1]:
        return None
    low, high = sorted(ids, key=int)
    return f"{low}-{high}"


class _account_method:  # noqa: N801 - used as a decorator, like classmethod
    """A method asked either of the class (the account unknown) or of a configured connector."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.__doc__ = function.__doc__

    def __get__(self, instance: Any, owner: type) -> Any:
        return functools.partial(self.function, owner if instance is None else instance)


class XConnector(Connector):
    kind = "x"
    identities = (IdentityRule("x", case_insensitive=True, strip_at=True, aliases=("twitter",)),)
    #: X counts a post's length by weight (URLs 23, most CJK and emoji 2): twitter-text's rule.
    measure_text = staticmethod(weighted_length)
    display_name = N_("X (Twitter)")
    icon_text = "X"
    icon_color = "#000000"
    settings = (
        Setting("user_id", required=True, help=N_("Numeric user id of the support account (not the @name).")),
        Setting("access_token", required=True, secret=True,
                help=N_("OAuth 2.0 user access token of the support account (scopes tweet.read tweet.write "
                        "users.read dm.read dm.write media.write offline.access).")),
        Setting("refresh_token", default=None, secret=True,
                help=N_("OAuth 2.0 refresh token (scope offline.access); without it the channel stops when "
                        "the access token expires.")),
        Setting("client_id", default=None, help=N_("The app's OAuth 2.0 client id; needed to refresh tokens.")),
        Setting("client_secret", default=None, secret=True,
                help=N_("The app's OAuth 2.0 client secret, for confidential clients only (sent as HTTP Basic).")),
        Setting("api_url", default="https://api.x.com", help=N_("Base URL of the X API.")),
        Setting("mentions", default=True, help=N_("Read mentions of the account (public).")),
        Setting("dms", default=True, help=N_("Read direct messages to the account (private).")),
        Setting("page_size", default=100, help=N_("max_results per page (mentions 5-100, DMs 1-100).")),
        Setting("pages_per_fetch", default=8, help=N_("Pages of each stream read per fetch at most.")),
        Setting("first_poll_items", default=100,
                help=N_("Items of each stream taken on the very first poll; older ones are not imported.")),
        Setting("download_media", default=True, help=N_("Download photos as attachments.")),
        Setting("timeout", default=30, help=N_("Seconds an API call may take.")),
    )
    limits = Limits(max_text_length=MAX_POST_WEIGHT, formatting="plain", attachment_types=MEDIA_TYPES,
                    max_attachment_bytes=MAX_MEDIA_BYTES, max_attachments=MAX_POST_MEDIA,
                    starts_conversations="any")
    #: A new conversation goes to a customer's X user id, as a direct message.
    writes_to = ("x",)
    # GET /2/dm_events allows 15 calls per 15 minutes per user.
    default_poll_every = 120.0

    def __init__(self, name: str, config: Any, **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.user_id = str(self.config["user_id"]).strip()
        if not self.user_id.isdigit():
            raise PermanentError(f"user_id must be the account's numeric id, not {self.user_id[:30]!r}")
        self.http = Http(self.config["api_url"], timeout=float(self.config["timeout"]), redact=self.redact,
                         error_message=x_error_message)
        self._token_key = f"{name}:{_fingerprint(self.config.get('refresh_token') or self.config['access_token'])}"
        data_dir = getattr(self.context, "data_dir", None)
        self._token_file = Path(data_dir) / "tokens" / f"x-{name}.json" if data_dir else None
        self._tokens = self._load_tokens()

    # Secrets ------------------------------------------------------------------------------------

    @property
    def secrets(self) -> list[str]:
        found = super().secrets
        tokens = getattr(self, "_tokens", None) or {}
        found += [str(v) for k, v in tokens.items() if k in ("access_token", "refresh_token") and v]
        return found

    # Tokens -------------------------------------------------------------------------------------

    def _configured_tokens(self) -> dict[str, Any]:
        return {"access_token": self.config["access_token"], "refresh_token": self.config.get("refresh_token"),
                "configured": _fingerprint(self.config.get("refresh_token") or self.config["access_token"])}

    def _read_token_file(self) -> dict[str, Any] | None:
        if not self._token_file or not self._token_file.exists():
            return None
        try:
            data = json.loads(self._token_file.read_text())
        except (OSError, ValueError):
            self.log.warning("token file %s is unreadable; using the configured tokens", self._token_file)
            return None
        # A different configured token means someone re-authorised the app: the config wins.
        if not isinstance(data, dict) or data.get("configured") != _fingerprint(
                self.config.get("refresh_token") or self.config["access_token"]):
            return None
        return data if data.get("access_token") else None

    def _load_tokens(self) -> dict[str, Any]:
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._token_key)
        return dict(cached or self._read_token_file() or self._configured_tokens())

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if not self._token_file:
            yield
            return
        self._token_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._token_file.with_suffix(".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _refresh(self, spent_access_token: str) -> bool:
        """Get a new access token after a 401; False when there is no way to refresh."""
        if not self._tokens.get("refresh_token") or not self.config.get("client_id"):
            return False
        with _TOKENS_LOCK, self._file_lock():
            # Another connector instance (or process) may have refreshed already.
            newer = _TOKENS.get(self._token_key) or self._read_token_file()
            if newer and newer.get("access_token") != spent_access_token:
                self._tokens = dict(newer)
                return True
            form = {"grant_type": "refresh_token", "refresh_token": self._tokens["refresh_token"],
                    "client_id": self.config["client_id"]}
            auth = (self.config["client_id"], self.config["client_secret"]) if self.config.get("client_secret") \
                else None
            response = self.http.request("POST", "/2/oauth2/token", data=form, auth=auth, expect=(200, 400, 401))
            if response.status_code != 200:
                detail = self.http._detail(response) or f"status {response.status_code}"
                raise PermanentError(self.redact(
                    f"X refused to refresh the access token ({detail}); authorise the app again and put the "
                    f"new tokens in channels.{self.name}"))
            answer = response.json()
            if not isinstance(answer, dict) or not answer.get("access_token"):
                raise PermanentError("X's token endpoint answered without an access_token")
            tokens = {
                "access_token": answer["access_token"],
                "refresh_token": answer.get("refresh_token") or self._tokens["refresh_token"],
                "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(answer.get("expires_in") or 7200)))
                .isoformat(),
                "configured": self._tokens.get("configured") or self._configured_tokens()["configured"],
            }
            _TOKENS[self._token_key] = tokens
            self._tokens = dict(tokens)
            self._write_token_file(tokens)
        self.log.info("X access token of channel %s refreshed (valid until %s); the new tokens are kept %s",
                      self.name, tokens["expires_at"][:19],
                      f"in {self._token_file}" if self._token_file else "in memory only")
        return True

    def _write_token_file(self, tokens: dict[str, Any]) -> None:
        if not self._token_file:
            return
        temporary = self._token_file.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(tokens, handle)
        os.replace(temporary, self._token_file)

    # HTTP ---------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call with the user token; on 401 refresh once and try again."""
        for attempt in (1, 2):
            token = self._tokens["access_token"]
            response = self.http.request(method, path, headers={"Authorization": f"Bearer {token}"},
                                         expect=(200, 201, 401), **kwargs)
            if response.status_code != 401:
                return self.http._json(response)
            if attempt == 1 and self._refresh(token):
                continue
            self.http.raise_for(response, method, path)
        return None  # pragma: no cover - the loop returns or raises

    # Fetch --------------------------------------------------------------------------------------

    def fetch(self, cursor: str | None) -> FetchResult:
        state = self._parse_cursor(cursor)
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        more = False
        if self.config["mentions"]:
            found, bad, unfinished = self._walk_mentions(state)
            items += found
            rejects += bad
            more = more or unfinished
        if self.config["dms"]:
            found, bad, unfinished = self._walk_dms(state)
            items += found
            rejects += bad
            more = more or unfinished
        unique: dict[str, InboundItem] = {}
        for item in items:
            unique.setdefault(item.external_id, item)
        ordered = sorted(unique.values(), key=lambda i: (i.sent_at, _numeric(i.external_id) or 0))
        return FetchResult(ordered, json.dumps(state, sort_keys=True), rejects, more=more)

    def _parse_cursor(self, cursor: str | None) -> dict[str, Any]:
        if not cursor:
            return {}
        if cursor.isdigit():  # a bare since_id
            return {"mentions": cursor}
        try:
            state = json.loads(cursor)
        except ValueError:
            state = None
        if not isinstance(state, dict):
            self.log.warning("channel %s: cursor %r not understood; starting from the newest items",
                             self.name, cursor[:60])
            return {}
        return {k: v for k, v in state.items() if isinstance(v, str) and v}

    def _pages(self, state: dict[str, Any], stream: str) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Pages of `stream` from where the cursor left off: (page, token used for it)."""
        token = state.get(f"{stream}_next")
        for _ in range(max(1, int(self.config["pages_per_fetch"]))):
            params = self._params(stream, state)
            if token:
                params["pagination_token"] = token
            path = f"/2/users/{self.user_id}/mentions" if stream == "mentions" else "/2/dm_events"
            page = self._call("GET", path, params=params)
            if not isinstance(page, dict):
                raise ItemError(f"{path} answered with something that is not an object")
            yield page, token
            meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
            token = meta.get("next_token")
            if not token:
                return

    def _params(self, stream: str, state: dict[str, Any]) -> dict[str, Any]:
        size = int(self.config["page_size"])
        if stream == "mentions":
            params = {"max_results": min(100, max(5, size)), "tweet.fields": TWEET_FIELDS,
                      "expansions": MENTION_EXPANSIONS, "user.fields": "username,name",
                      "media.fields": MEDIA_FIELDS}
            if state.get("mentions"):
                params["since_id"] = state["mentions"]
            return params
        return {"event_types": "MessageCreate", "max_results": min(100, max(1, size)),
                "dm_event.fields": DM_FIELDS, "expansions": "sender_id,attachments.media_keys",
                "user.fields": "username,name", "media.fields": MEDIA_FIELDS}

    def _walk_mentions(self, state: dict[str, Any]) -> tuple[list[InboundItem], list[Reject], bool]:
        first_run = not state.get("mentions") and not state.get("mentions_next")
        top = _numeric(state.get("mentions_top"))
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        finished = False
        for page, used in self._pages(state, "mentions"):
            data = page.get("data") if isinstance(page.get("data"), list) else []
            includes = page.get("includes") if isinstance(page.get("includes"), dict) else {}
            for raw in data:
                number = _numeric(raw.get("id")) if isinstance(raw, dict) else None
                if number is not None:
                    top = max(top or 0, number)
            theirs = [r for r in data if not (isinstance(r, dict) and r.get("author_id") == self.user_id)]
            found, bad = self.each(theirs, lambda raw, inc=includes: self._tweet_item(raw, inc),
                                   raw_of=lambda raw, inc=includes: _raw_bytes("mention", raw, inc))
            items += found
            rejects += bad
            next_token = self._next_token(page, used)
            if not next_token or (first_run and len(items) + len(rejects) >= int(self.config["first_poll_items"])):
                finished = True
                break
            state["mentions_next"] = next_token
        else:
            finished = False  # pages_per_fetch reached: the next fetch goes on from mentions_next
        return items, rejects, self._close_walk(state, "mentions", top, finished)

    def _walk_dms(self, state: dict[str, Any]) -> tuple[list[InboundItem], list[Reject], bool]:
        watermark = _numeric(state.get("dms"))
        top = _numeric(state.get("dms_top"))
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        finished = False
        for page, used in self._pages(state, "dms"):
            data = page.get("data") if isinstance(page.get("data"), list) else []
            includes = page.get("includes") if isinstance(page.get("includes"), dict) else {}
            fresh = []
            reached = False
            for raw in data:
                number = _numeric(raw.get("id")) if isinstance(raw, dict) else None
                if number is not None and watermark is not None and number <= watermark:
                    reached = True  # newest first: everything from here on is stored already
                    break
                if number is not None:
                    top = max(top or 0, number)
                if isinstance(raw, dict) and raw.get("sender_id") == self.user_id:
                    continue  # our own message, sent by an agent
                if isinstance(raw, dict) and raw.get("event_type", "MessageCreate") != "MessageCreate":
                    continue
                fresh.append(raw)
            found, bad = self.each(fresh, lambda raw, inc=includes: self._dm_item(raw, inc),
                                   raw_of=lambda raw, inc=includes: _raw_bytes("dm", raw, inc))
            items += found
            rejects += bad
            next_token = self._next_token(page, used)
            enough = watermark is None and len(items) + len(rejects) >= int(self.config["first_poll_items"])
            if reached or not next_token or enough:
                finished = True
                break
            state["dms_next"] = next_token
        else:
            finished = False
        return items, rejects, self._close_walk(state, "dms", top, finished)

    def _next_token(self, page: dict[str, Any], used: str | None) -> str | None:
        meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
        token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
        if token and token == used:
            # The API handed back the token we came with (IN-57): stop instead of looping forever.
            self.log.warning("channel %s: the same next_token came back; this walk stops here", self.name)
            return None
        return token

    @staticmethod
    def _close_walk(state: dict[str, Any], stream: str, top: int | None, finished: bool) -> bool:
        """Record where a walk ended; True when it must go on in the next fetch."""
        if finished:
            state.pop(f"{stream}_next", None)
            state.pop(f"{stream}_top", None)
            if top is not None and top > (_numeric(state.get(stream)) or 0):
                state[stream] = str(top)
            return False
        if top is not None:
            state[f"{stream}_top"] = str(top)
        return True

    # Items --------------------------------------------------------------------------------------

    def _tweet_item(self, raw: Any, includes: dict[str, Any]) -> InboundItem:
        tweet_id = pick(raw, "id", type=str)
        if _numeric(tweet_id) is None:
            raise ItemError(f"post id {tweet_id[:30]!r} is not an X id")
        # X serves a post's text with &, < and > as HTML entities; the agent should see the characters.
        text = _unescape(pick(raw, "text", type=str))
        author_id = pick(raw, "author_id", type=str)
        user = _user(includes, author_id)
        replied_to = [r.get("id") for r in raw.get("referenced_tweets") or []
                      if isinstance(r, dict) and r.get("type") == "replied_to" and isinstance(r.get("id"), str)]
        username = user.get("username") or author_id
        headers = {"url": f"https://x.com/{username}/status/{tweet_id}", "username": f"@{username}"}
        if isinstance(raw.get("lang"), str):
            headers["lang"] = raw["lang"]
        context_text, context_url = _answered_post(raw, includes)
        return InboundItem(
            channel=self.name, external_id=tweet_id,
            author=Author(handle=author_id, name=_display(user.get("name") or username), identity_kind="x"),
            text=text, sent_at=_parse_time(raw.get("created_at")),
            thread_key=str(raw.get("conversation_id") or tweet_id), references=tuple(replied_to), public=True,
            attachments=self._media(raw, includes), headers=headers, raw=_raw_bytes("mention", raw, includes),
            context_text=context_text, context_url=context_url,
        )

    def _dm_item(self, raw: Any, includes: dict[str, Any]) -> InboundItem:
        event_id = pick(raw, "id", type=str)
        if _numeric(event_id) is None:
            raise ItemError(f"DM event id {event_id[:30]!r} is not an X id")
        sender_id = pick(raw, "sender_id", type=str)
        conversation = pick(raw, "dm_conversation_id", type=str)
        text = raw.get("text") if isinstance(raw.get("text"), str) else ""
        user = _user(includes, sender_id)
        username = user.get("username") or sender_id
        return InboundItem(
            channel=self.name, external_id=event_id,
            author=Author(handle=sender_id, name=_display(user.get("name") or username), identity_kind="x"),
            text=text, sent_at=_parse_time(raw.get("created_at")), thread_key=conversation, public=False,
            attachments=self._media(raw, includes), headers={"username": f"@{username}"},
            raw=_raw_bytes("dm", raw, includes),
        )

    def _media(self, raw: dict[str, Any], includes: dict[str, Any]) -> tuple[Attachment, ...]:
        keys = (raw.get("attachments") or {}).get("media_keys") if isinstance(raw.get("attachments"), dict) else None
        if not isinstance(keys, list):
            return ()
        media = {m.get("media_key"): m for m in includes.get("media") or [] if isinstance(m, dict)}
        found = []
        for key in keys:
            entry = media.get(key) or {}
            kind = entry.get("type") or "media"
            url = entry.get("url") or entry.get("preview_image_url")
            name = f"{kind}-{str(key).replace('/', '_')[:40]}.jpg" if kind == "photo" else f"{kind}-{key}"
            if kind == "photo" and url and self.config["download_media"]:
                try:
                    found.append(self.download(url, filename=name))
                    continue
                except ItemError as exc:
                    # The message matters more than its picture: keep it, note the file as missing.
                    self.log.warning("channel %s: %s", self.name, exc)
            found.append(Attachment(filename=name, content_type="image/jpeg" if kind == "photo"
                                    else "application/octet-stream", url=url, size=0))
        return tuple(found)

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        try:
            data = json.loads(raw)
            kind, item, includes = data["kind"], data["item"], data.get("includes") or {}
        except (ValueError, KeyError, TypeError):
            raise ItemError("not a stored X item") from None
        return self._tweet_item(item, includes) if kind == "mention" else self._dm_item(item, includes)

    # Send ---------------------------------------------------------------------------------------

    @_account_method
    def thread_key_for(self, handle: str) -> str | None:
        """The `dm_conversation_id` of the one-to-one conversation with the X user `handle` (None when
        asked of the class: the key needs the support account's id, which only a connector has)."""
        account = getattr(self, "user_id", None)
        return one_to_one_conversation_id(account, handle) if isinstance(account, str) else None

    def send(self, reply: OutboundReply) -> str:
        text = reply.text.strip()
        if not text and not reply.attachments:
            raise PermanentError("the reply is empty")
        if reply.starts_conversation:
            return self._start_dm(reply, text)
        if reply.public:
            return self._send_post(reply, text)
        return self._send_dm(reply, text)

    def _send_post(self, reply: OutboundReply, text: str) -> str:
        weight = weighted_length(text)
        if weight > MAX_POST_WEIGHT:
            raise PermanentError(
                f"The reply is {weight} characters as X counts them (every link counts 23, emoji and CJK "
                f"characters count 2); X allows {MAX_POST_WEIGHT}. Shorten it by {weight - MAX_POST_WEIGHT}.")
        if not reply.reply_to_external_id:
            raise PermanentError("a public reply on X needs the post it answers")
        self._check_files(reply.attachments, most=MAX_POST_MEDIA, where="a post")
        payload: dict[str, Any] = {"reply": {"in_reply_to_tweet_id": reply.reply_to_external_id}}
        if text:
            payload["text"] = text
        if reply.attachments:
            payload["media"] = {"media_ids": [self._upload(a, "tweet_image") for a in reply.attachments]}
        answer = self._call("POST", "/2/tweets", json=payload)
        return str(pick(answer, "data", "id"))

    def _start_dm(self, reply: OutboundReply, text: str) -> str:
        """A conversation we start: a direct message to the customer's user id, answering nothing."""
        user = (reply.to.handle or "").strip()
        if not user.isdigit():
            raise PermanentError(f"X writes first only to an account's numeric user id, not {user[:30]!r}")
        if user == self.user_id:
            raise PermanentError("that X account is the support account itself")
        try:
            return self._send_dm(reply, text, path=f"/2/dm_conversations/with/{user}/messages")
        except PermanentError as exc:
            if " answered 403" not in str(exc):
                raise
            whom = reply.to.name or f"X user {user}"
            raise PermanentError(self.redact(
                f"X did not deliver the message: {whom} does not accept direct messages from this account "
                f"({exc}). The customer must allow messages from us (or follow us), or write to us first; "
                "then answer in their conversation.")) from None

    def _send_dm(self, reply: OutboundReply, text: str, *, path: str | None = None) -> str:
        if len(text) > MAX_DM_LENGTH:
            raise PermanentError(f"The message is {len(text)} characters; X direct messages allow {MAX_DM_LENGTH}.")
        path = path or self._dm_path(reply)
        self._check_files(reply.attachments, most=MAX_DM_MEDIA, where="a direct message")
        payload: dict[str, Any] = {"text": text} if text else {}
        if reply.attachments:
            payload["attachments"] = [{"media_id": self._upload(a, "dm_image")} for a in reply.attachments]
        answer = self._call("POST", path, json=payload)
        return str(pick(answer, "data", "dm_event_id"))

    @staticmethod
    def _dm_path(reply: OutboundReply) -> str:
        """Where a DM reply goes: its conversation, else the one-to-one conversation with its author."""
        conversation = reply.thread_key
        if conversation and all(part.isdigit() for part in conversation.split("-")):
            return f"/2/dm_conversations/{conversation}/messages"
        if reply.to.handle and reply.to.handle.isdigit():
            return f"/2/dm_conversations/with/{reply.to.handle}/messages"
        raise PermanentError("no DM conversation or X user id to send this message to")

    def _check_files(self, files: tuple[Attachment, ...], *, most: int, where: str) -> None:
        """Refuse, before anything is uploaded, files X would not take in `where` (`Limits.refuse_files`)."""
        refused = self.limits.refuse_files(files, public=True, most=most)
        if refused is None:
            return
        name = refused.filename
        if refused.code == "count":
            images = "images" if most > 1 else "image"
            raise PermanentError(
                f"X takes at most {most} {images} in {where} and this reply has {len(files)}: "
                f"remove {len(files) - most} or send them in another reply.")
        if refused.code == "type":
            raise PermanentError(
                f"X does not take {name} ({refused.content_type}) from Mainland: only JPEG, PNG and "
                "WebP images. Remove it, or share a link instead.")
        if refused.code == "size":
            raise PermanentError(
                f"{name} is {(refused.size or 0) / 1048576:.1f} MB; X takes images up to 5 MB. "
                "Send a smaller image.")
        raise PermanentError(f"the file {name} has no content to upload; attach it again")

    def _upload(self, attachment: Attachment, category: str) -> str:
        """The one-shot `POST /2/media/upload` (images); returns the media id for the post or DM."""
        media_type = (attachment.content_type or "").split(";")[0].strip().lower()
        try:
            answer = self._call("POST", "/2/media/upload",
                                data={"media_category": category, "media_type": media_type},
                                files={"media": (attachment.filename, attachment.data, media_type)})
        except PermanentError as exc:
            hint = (" Authorise the app again with the media.write scope." if " 403" in str(exc)
                    else " Remove it or send another image.")
            raise PermanentError(self.redact(f"X refused {attachment.filename}: {exc}.{hint}")) from None
        data = answer.get("data") if isinstance(answer, dict) else None
        media_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise RetryableError(f"X took {attachment.filename} but answered without its media id")
        return media_id

    def probe(self) -> ProbeResult:
        """`GET /2/users/me` with the current access token (never refreshed here): who the token is for,
        and whether that is the account in `user_id`."""
        def signed_in(body: Any) -> Phrase:
            me = body["data"]
            found = {"username": str(me["username"]), "id": str(me["id"])}
            if str(me["id"]) != self.user_id:
                raise Mismatch(Phrase(N_("The token belongs to @{username} (id {id}), not to user_id {user_id}: put "
                                         "{id} in user_id, or authorise the app with the support account"),
                                      {**found, "user_id": self.user_id}))
            return Phrase(N_("Signed in as @{username} (id {id})"), found)

        return http_probe(
            self, self.http, "/2/users/me", what="X", signed_in=signed_in, error_text=x_error_message,
            headers={"Authorization": f"Bearer {self._tokens['access_token']}"},
            params={"user.fields": "username,name"},
            refused=N_("X refused the access token ({status}): authorise the app for the support account again "
                       "and paste the new access and refresh tokens here"))

    def close(self) -> None:
        self.http.close()


def _user(includes: dict[str, Any], user_id: str) -> dict[str, Any]:
    for user in includes.get("users") or []:
        if isinstance(user, dict) and user.get("id") == user_id:
            return user
    return {}


def _referenced(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The post's `referenced_tweets` entries that carry a type and an id."""
    refs = raw.get("referenced_tweets") if isinstance(raw.get("referenced_tweets"), list) else []
    return [r for r in refs
            if isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("type"), str)]


def _included_post(includes: dict[str, Any], post_id: str) -> dict[str, Any] | None:
    for post in includes.get("tweets") or []:
        if isinstance(post, dict) and post.get("id") == post_id:
            return post
    return None


def _answered_post(raw: dict[str, Any], includes: dict[str, Any]) -> tuple[str | None, str | None]:
    """`(context_text, context_url)`: the post a mention replies to, else the post it quotes.

    A referenced post missing from `includes.tweets` (deleted, or its author protects their posts;
    X lists it in the page's `errors`) leaves both empty: the mention itself still arrives.
    """
    refs = _referenced(raw)
    chosen = next((r for kind in ("replied_to", "quoted") for r in refs if r["type"] == kind), None)
    if chosen is None or _numeric(chosen["id"]) is None:
        return None, None
    post = _included_post(includes, chosen["id"])
    if post is None:
        return None, None
    text = _unescape(post["text"]) if isinstance(post.get("text"), str) else None
    author = _user(includes, post["author_id"]) if isinstance(post.get("author_id"), str) else {}
    username = author.get("username") if isinstance(author.get("username"), str) else ""
    if username and all(c.isalnum() or c == "_" for c in username):
        url = f"https://x.com/{username}/status/{chosen['id']}"
    else:
        url = f"https://x.com/i/web/status/{chosen['id']}"
    return reply_context(text, url)


def _raw_bytes(kind: str, raw: Any, includes: dict[str, Any]) -> bytes:
    """The item with the expansions it needs, so that quarantine can reprocess it alone."""
    wanted = {"users": [], "media": [], "tweets": []}
    if isinstance(raw, dict):
        referenced = {r["id"] for r in _referenced(raw)}
        wanted["tweets"] = [t for t in includes.get("tweets") or []
                            if isinstance(t, dict) and t.get("id") in referenced]
        ids = {raw.get("author_id"), raw.get("sender_id")} | {t.get("author_id") for t in wanted["tweets"]}
        keys = set((raw.get("attachments") or {}).get("media_keys") or []) \
            if isinstance(raw.get("attachments"), dict) else set()
        wanted["users"] = [u for u in includes.get("users") or [] if isinstance(u, dict) and u.get("id") in ids]
        wanted["media"] = [m for m in includes.get("media") or []
                           if isinstance(m, dict) and m.get("media_key") in keys]
    return json.dumps({"kind": kind, "item": raw, "includes": wanted}, ensure_ascii=False,
                      default=str).encode("utf-8")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _display(name: Any) -> str:
    """A display name as a customer's name: text, at most 200 characters (IN-51)."""
    return str(name)[:200]


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(str(value or "").encode()).hexdigest()[:16]
