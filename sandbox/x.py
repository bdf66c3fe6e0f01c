"""A loopback imitation of the X API v2: mentions, DM events, posting replies and DMs, OAuth 2.0 refresh.

It follows shared/channels.md section 2 to the field name: `GET /2/users/{id}/mentions`
(`since_id` strict, `max_results` 5-100, `pagination_token`, newest first, `meta.newest_id`/
`oldest_id`/`result_count`/`next_token`, the 800-newest cap, `includes.users`/`includes.media`
only when expanded, `includes.tweets` for `referenced_tweets.id` with their authors for
`referenced_tweets.id.author_id`, a deleted or protected referenced post listed in the top-level
`errors` of a 200 instead, only the asked-for `tweet.fields`), `GET /2/dm_events` (newest first, both
directions, no since_id, `meta` without `next_token` on the last page, `{"meta":
{"result_count": 0}}` when empty), `POST /2/tweets` (201 `{"data": {"id", "text"}}`; 403 for
duplicate text and for replies to posts that did not mention us), `POST
/2/dm_conversations/{id}/messages` and `/with/{participant_id}/messages` (201 `{"data":
{"dm_conversation_id", "dm_event_id"}}`, optional `attachments: [{"media_id"}]`, one; the
one-to-one `with/` form creates the conversation `<smaller id>-<larger id>` when there is none, and
answers 403 when the user does not accept DMs from us and never wrote to us: X documents the 403,
not its body, so the detail is the imitation's own),
the one-shot `POST /2/media/upload` (multipart `media` + `media_category` `tweet_image`/`dm_image`,
images up to 5 MB, 200 `{"data": {"id", "media_key", "size", "expires_after_secs", "image"}}`; its
400 texts for a wrong type or size are the imitation's own, X does not document them), posts with
`media.media_ids` (1-4 ids of `tweet_image` uploads, else 400 "Your media IDs are invalid.") and
`POST /2/oauth2/token` (refresh tokens rotate), and `GET /2/users/me` (200 `{"data": {"id", "name",
"username"}}` for the token's user, the connection test's call; 401 problem details for a bad token;
75 requests per 15 minutes).
Every answer carries `x-rate-limit-limit/-remaining/-reset` (epoch seconds); errors are
`application/problem+json`.

Tests drive it with `customer_mention` (optionally `in_reply_to` or `quoting` a post), `our_post`,
`delete_post`, `protect`, `customer_dm`, `refuse_dms`, `malformed_mention`, `duplicate`, `expire_token`,
`rate_limited`, and read `sent` for what we posted.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import time
from typing import Any

from connectors.twitter_text import MAX_WEIGHTED_LENGTH, weighted_length
from sandbox.base import Imitation, Request, route
from sandbox.multipart import parse_form

#: A 1x1 JPEG served as every photo.
PHOTO = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////"
    "////////////////////2wBDAf//////////////////////////////////////////////////////////////////////////"
    "////////////wAARCAABAAEDASIAAhEBAxEB/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAAAAAAAAAAAAAAAAAAAAD/xAAU"
    "AQEAAAAAAAAAAAAAAAAAAAAA/8QAFBEBAAAAAAAAAAAAAAAAAAAAAP/aAAwDAQACEQMRAD8AP//Z")

LIMITS = {"mentions": 450, "dm_events": 15, "tweets": 100, "dm_send": 15, "users_me": 75,
          "media": 500}  # media: the imitation's own number; X does not state one for the upload
#: The one-shot `POST /2/media/upload`: its media types, categories and the image limit (5 MB).
ONE_SHOT_TYPES = ("image/jpeg", "image/bmp", "image/png", "image/webp", "image/pjpeg", "image/tiff",
                  "text/srt", "text/vtt")
ONE_SHOT_CATEGORIES = ("tweet_image", "dm_image", "subtitles")
IMAGE_LIMIT = 5 * 1024 * 1024
MEDIA_PER_POST = 4
MEDIA_PER_DM = 1
DEFAULT_FIELDS = {"tweet": ("id", "text", "edit_history_tweet_ids"), "dm": ("id", "event_type", "text")}


def problem(status: int, title: str, detail: str, kind: str = "about:blank",
            headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """An RFC 7807 problem answer, as X sends its errors."""
    body = {"title": title, "detail": detail, "type": kind, "status": status}
    return status, json.dumps(body).encode(), {"Content-Type": "application/problem+json", **(headers or {})}


def _escape(text: object) -> object:
    if not isinstance(text, str):
        return text
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class XImitation(Imitation):
    """The X API v2 on 127.0.0.1. `page_size` caps every page (to make tests page)."""

    name = "x"

    def __init__(self, *, user_id: str = "2244994945", username: str = "AcmeSupport", page_size: int | None = None,
                 access_token: str = "x-access-token-0", refresh_token: str = "x-refresh-token-0",
                 client_id: str = "mainland-client", client_secret: str | None = None) -> None:
        super().__init__()
        self.user_id = user_id
        self.username = username
        self.page_size = page_size
        self.client_id = client_id
        self.client_secret = client_secret
        self.users: dict[str, dict[str, str]] = {user_id: {"id": user_id, "name": "Acme Support",
                                                          "username": username}}
        self.tweets: list[dict[str, Any]] = []  # every post, oldest first (duplicates possible)
        self.dm_events: list[dict[str, Any]] = []  # every DM event, oldest first, both directions
        self.media: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()  # ids of deleted posts
        self.protected: set[str] = set()  # ids of users whose posts are protected
        self.dms_refused: set[str] = set()  # ids of users who accept no DMs from us until they write
        self.sent: list[dict[str, Any]] = []  # what we (the connector) created
        self.uploads: dict[str, dict[str, Any]] = {}  # media_id -> {"data", "media_type", "media_category", ...}
        self.access_tokens: dict[str, float] = {access_token: time.time() + 7200}
        self.refresh_tokens: set[str] = {refresh_token}
        self.token_requests: list[dict[str, str]] = []
        self._ids = itertools.count(1901234567890123456, 1000)
        self._clock = itertools.count()
        self._tokens: dict[str, tuple[str, int]] = {}
        self._remaining = dict(LIMITS)

    @property
    def access_token(self) -> str:
        return max(self.access_tokens, key=self.access_tokens.get)

    @property
    def refresh_token(self) -> str:
        return sorted(self.refresh_tokens)[-1]

    # State the tests drive ---------------------------------------------------------------------

    def _now(self) -> str:
        moment = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=next(self._clock))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def user(self, username: str, name: str | None = None) -> str:
        for user in self.users.values():
            if user["username"] == username:
                return user["id"]
        user_id = str(1234567890 + len(self.users))
        self.users[user_id] = {"id": user_id, "name": name or username.title(), "username": username}
        return user_id

    def _photo(self) -> str:
        key = f"3_{next(self._ids)}"
        self.media[key] = {"media_key": key, "type": "photo", "url": f"{self.url}/media/{key}.jpg",
                           "width": 1, "height": 1}
        return key

    def our_post(self, text: str) -> str:
        """A post of the support account itself (an announcement customers answer); returns its id."""
        with self.lock:
            tweet_id = str(next(self._ids))
            self.tweets.append({"id": tweet_id, "text": text, "author_id": self.user_id, "created_at": self._now(),
                                "conversation_id": tweet_id, "edit_history_tweet_ids": [tweet_id], "lang": "en"})
            return tweet_id

    def delete_post(self, tweet_id: str) -> None:
        """The post is deleted: it is no longer served, nor expanded (X lists it in `errors`)."""
        with self.lock:
            self.deleted.add(tweet_id)

    def protect(self, username: str) -> None:
        """The user protects their posts: expansions of them are refused (listed in `errors`)."""
        with self.lock:
            self.protected.add(self.user(username))

    def customer_mention(self, username: str, text: str | None = None, *, name: str | None = None,
                         in_reply_to: str | None = None, quoting: str | None = None, photo: bool = False) -> str:
        """A customer's post mentioning us (or answering `in_reply_to`, or quoting `quoting`); returns its id."""
        with self.lock:
            author = self.user(username, name)
            tweet_id = str(next(self._ids))
            text = text or f"@{self.username} my order arrived broken ({tweet_id[-4:]})"
            if f"@{self.username.lower()}" not in text.lower():
                text = f"@{self.username} {text}"
            tweet = {"id": tweet_id, "text": text, "author_id": author, "created_at": self._now(),
                     "conversation_id": tweet_id, "edit_history_tweet_ids": [tweet_id], "lang": "en",
                     "entities": {"mentions": [{"start": 0, "end": len(self.username) + 1,
                                                "username": self.username, "id": self.user_id}]}}
            if in_reply_to:
                parent = self.tweet(in_reply_to)
                tweet["conversation_id"] = parent["conversation_id"]
                tweet["in_reply_to_user_id"] = parent["author_id"]
                tweet["referenced_tweets"] = [{"type": "replied_to", "id": in_reply_to}]
            if quoting:
                tweet.setdefault("referenced_tweets", []).append({"type": "quoted", "id": quoting})
            if photo:
                tweet["attachments"] = {"media_keys": [self._photo()]}
            self.tweets.append(tweet)
            return tweet_id

    def customer_dm(self, username: str, text: str = "Hi, any update on my order?", *, name: str | None = None,
                    photo: bool = False) -> str:
        """A customer's direct message to us; returns the DM event id."""
        with self.lock:
            sender = self.user(username, name)
            return self._dm(sender, self._conversation_with(sender), text, photo=photo)

    def our_dm(self, username: str, text: str) -> str:
        """A DM we sent from another client (it comes back in /2/dm_events)."""
        with self.lock:
            other = self.user(username)
            return self._dm(self.user_id, self._conversation_with(other), text)

    def refuse_dms(self, username: str) -> str:
        """The user accepts direct messages only from people they follow: not from us, until they write."""
        with self.lock:
            user_id = self.user(username)
            self.dms_refused.add(user_id)
            return user_id

    def _conversation_with(self, other: str) -> str:
        low, high = sorted((other, self.user_id), key=int)
        return f"{low}-{high}"

    def _dm(self, sender: str, conversation: str, text: str, *, photo: bool = False) -> str:
        event_id = str(next(self._ids))
        event = {"id": event_id, "event_type": "MessageCreate", "text": text, "sender_id": sender,
                 "dm_conversation_id": conversation, "created_at": self._now(),
                 "participant_ids": conversation.split("-")}
        if photo:
            event["attachments"] = {"media_keys": [self._photo()]}
        self.dm_events.append(event)
        return event_id

    def malformed_mention(self) -> str:
        """A mention whose fields are broken (no author, a number as text)."""
        with self.lock:
            tweet_id = str(next(self._ids))
            self.tweets.append({"id": tweet_id, "text": 12345, "created_at": "yesterday",
                                "edit_history_tweet_ids": [tweet_id], "mentions_us": True})
            return tweet_id

    def malformed_dm(self) -> str:
        with self.lock:
            event_id = str(next(self._ids))
            self.dm_events.append({"id": event_id, "event_type": "MessageCreate", "text": "hi",
                                   "created_at": self._now()})
            return event_id

    def duplicate(self, item_id: str) -> None:
        """List the post or DM `item_id` twice from now on (the same object, as an API glitch would)."""
        with self.lock:
            for collection in (self.tweets, self.dm_events):
                for entry in list(collection):
                    if entry["id"] == item_id:
                        collection.append(entry)
                        return

    def tweet(self, tweet_id: str) -> dict[str, Any]:
        for tweet in self.tweets:
            if tweet["id"] == tweet_id:
                return tweet
        raise KeyError(tweet_id)

    def expire_token(self) -> None:
        """Every access token handed out so far stops working (401), as after two hours."""
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0

    def rate_limited(self, seconds: int = 30, *, path_prefix: str | None = None) -> None:
        """The next matching request gets X's 429, its window resetting in `seconds`."""
        status, body, headers = problem(429, "Too Many Requests", "Too Many Requests",
                                        "https://api.x.com/2/problems/rate-limit-exceeded")
        headers.update({"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0",
                        "x-rate-limit-reset": str(int(time.time()) + seconds)})
        self.fail_next(status, body, headers, path_prefix=path_prefix)

    def server_error(self, status: int = 503, *, path_prefix: str | None = None) -> None:
        _, body, headers = problem(status, "Service Unavailable", "Service Unavailable")
        self.fail_next(status, body, headers, path_prefix=path_prefix)

    def legacy_error(self, status: int, message: str, code: int = 88, *, path_prefix: str | None = None) -> None:
        """The next request gets the older `{"errors": [{"code", "message"}]}` body."""
        self.fail_next(status, {"errors": [{"code": code, "message": message}]}, path_prefix=path_prefix)

    # Helpers ------------------------------------------------------------------------------------

    def _rate_headers(self, bucket: str) -> dict[str, str]:
        self._remaining[bucket] = max(0, self._remaining[bucket] - 1)
        headers = {"x-rate-limit-limit": str(LIMITS[bucket]), "x-rate-limit-remaining": str(self._remaining[bucket]),
                   "x-rate-limit-reset": str(int(time.time()) + 900)}
        if bucket == "tweets":
            headers.update({"x-app-limit-24hour-limit": "10000", "x-app-limit-24hour-remaining": "9990"})
        return headers

    def _unauthorized(self, request: Request) -> tuple[int, bytes, dict[str, str]] | None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is None or self.access_tokens.get(token, 0) < time.time():
            return problem(401, "Unauthorized", "Unauthorized")
        return None

    def _token_for(self, kind: str, last_id: str) -> str:
        token = base64.b32encode(f"{kind}:{last_id}".encode()).decode().rstrip("=").lower()
        self._tokens[token] = (kind, int(last_id))
        return token

    def _fields(self, entry: dict[str, Any], kind: str, asked: str | None) -> dict[str, Any]:
        wanted = set(DEFAULT_FIELDS[kind]) | set((asked or "").split(","))
        return {k: v for k, v in entry.items() if k in wanted}

    def _includes(self, entries: list[dict[str, Any]], expansions: str | None, user_key: str) -> dict[str, Any]:
        expanded = set((expansions or "").split(","))
        includes: dict[str, Any] = {}
        if user_key in expanded:
            ids = []
            for entry in entries:
                if entry.get(user_key) and entry[user_key] not in ids:
                    ids.append(entry[user_key])
            includes["users"] = [self.users[i] for i in ids if i in self.users]
        if "attachments.media_keys" in expanded:
            keys = [k for e in entries for k in (e.get("attachments") or {}).get("media_keys", [])]
            includes["media"] = [self.media[k] for k in keys if k in self.media]
        return {k: v for k, v in includes.items() if v}

    def _referenced(self, entries: list[dict[str, Any]], request: Request, includes: dict[str, Any]
                    ) -> list[dict[str, Any]]:
        """Expand `referenced_tweets.id` (and `.author_id`) into `includes`; return the partial errors.

        A deleted post is "Not Found Error", a protected one "Authorization Error": both are left
        out of `includes.tweets` and listed in the answer's top-level `errors`.
        """
        expanded = set((request.arg("expansions") or "").split(","))
        if "referenced_tweets.id" not in expanded:
            return []
        found: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        wanted = []
        for entry in entries:
            for ref in entry.get("referenced_tweets") or []:
                if ref["id"] not in wanted:
                    wanted.append(ref["id"])
        for ref_id in wanted:
            post = next((t for t in self.tweets if t["id"] == ref_id), None)
            if post is None or ref_id in self.deleted:
                errors.append({"value": ref_id, "detail": f"Could not find tweet with referenced_tweets.id: [{ref_id}].",
                               "title": "Not Found Error", "resource_type": "tweet", "parameter": "referenced_tweets.id",
                               "resource_id": ref_id, "type": "https://api.x.com/2/problems/resource-not-found"})
            elif post.get("author_id") in self.protected:
                errors.append({"value": ref_id, "detail": "Sorry, you are not authorized to see the Tweet with "
                               f"referenced_tweets.id: [{ref_id}].", "title": "Authorization Error",
                               "resource_type": "tweet", "parameter": "referenced_tweets.id", "resource_id": ref_id,
                               "type": "https://api.x.com/2/problems/not-authorized-for-resource"})
            else:
                found.append(self._fields({**post, "text": _escape(post["text"])}, "tweet", request.arg("tweet.fields")))
        if found:
            includes["tweets"] = found
        if found and "referenced_tweets.id.author_id" in expanded:
            users = includes.setdefault("users", [])
            for post in found:
                author = self.users.get(post.get("author_id"))
                if author and author not in users:
                    users.append(author)
        return errors

    def _page(self, entries: list[dict[str, Any]], request: Request, kind: str, *, low: int, high: int
              ) -> tuple[list[dict[str, Any]], str | None] | tuple[int, bytes, dict[str, str]]:
        """Newest-first page of `entries` (oldest-first list) for the request's paging params."""
        try:
            size = int(request.arg("max_results", "10" if kind == "tweet" else "100"))
        except ValueError:
            size = -1
        if not low <= size <= high:
            return problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                           "https://api.x.com/2/problems/invalid-request")
        if self.page_size:
            size = min(size, self.page_size)
        newest_first = list(reversed(entries))
        token = request.arg("pagination_token")
        if token:
            known = self._tokens.get(token)
            if not known or known[0] != kind:
                return problem(400, "Invalid Request", "The `pagination_token` query parameter value is not valid.",
                               "https://api.x.com/2/problems/invalid-request")
            newest_first = [e for e in newest_first if int(e["id"]) < known[1]]
        page = newest_first[:size]
        following = newest_first[size:]
        return page, (self._token_for(kind, page[-1]["id"]) if page and following else None)

    # Routes -------------------------------------------------------------------------------------

    @route("GET", r"/2/users/me")
    def users_me(self, request: Request):
        """The token's own user: `id`, `name`, `username` always; other `user.fields` are not kept here."""
        with self.lock:
            refused = self._unauthorized(request)
            if refused:
                return refused
            return 200, {"data": dict(self.users[self.user_id])}, self._rate_headers("users_me")

    @route("GET", r"/2/users/(?P<user_id>\d+)/mentions")
    def mentions(self, request: Request, user_id: str):
        with self.lock:
            refused = self._unauthorized(request)
            if refused:
                return refused
            headers = self._rate_headers("mentions")
            if user_id != self.user_id:
                return problem(403, "Forbidden", "You can only read the mentions of the authorised user.",
                               headers=headers)
            ours = [t for t in self.tweets if t.get("author_id") != self.user_id and t["id"] not in self.deleted and (
                t.get("mentions_us") or f"@{self.username.lower()}" in str(t.get("text")).lower()
                or t.get("in_reply_to_user_id") == self.user_id)]
            ours = ours[-800:]  # only the 800 newest mentions are served
            since = request.arg("since_id")
            if since is not None:
                if not since.isdigit():
                    return problem(400, "Invalid Request", "The `since_id` query parameter value is not valid.",
                                   "https://api.x.com/2/problems/invalid-request", headers)
                ours = [t for t in ours if int(t["id"]) > int(since)]
            paged = self._page(ours, request, "tweet", low=5, high=100)
            if isinstance(paged[0], int):
                status, body, extra = paged
                return status, body, {**extra, **headers}
            page, next_token = paged
            if not page:
                return 200, {"meta": {"result_count": 0}}, headers
            # X serves post text with &, < and > as HTML entities.
            body = {"data": [self._fields({**t, "text": _escape(t["text"])}, "tweet", request.arg("tweet.fields"))
                             for t in page]}
            includes = self._includes(page, request.arg("expansions"), "author_id")
            errors = self._referenced(page, request, includes)
            if includes:
                body["includes"] = includes
            if errors:
                body["errors"] = errors  # a 200 can carry data and partial errors
            meta = {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"], "result_count": len(page)}
            if next_token:
                meta["next_token"] = next_token
            body["meta"] = meta
            return 200, body, headers

    @route("GET", r"/2/dm_events")
    def dm_events(self, request: Request):
        with self.lock:
            refused = self._unauthorized(request)
            if refused:
                return refused
            headers = self._rate_headers("dm_events")
            kinds = set((request.arg("event_types") or "MessageCreate,ParticipantsJoin,ParticipantsLeave").split(","))
            events = [e for e in self.dm_events if e.get("event_type") in kinds]
            paged = self._page(events, request, "dm", low=1, high=100)
            if isinstance(paged[0], int):
                status, body, extra = paged
                return status, body, {**extra, **headers}
            page, next_token = paged
            meta: dict[str, Any] = {"result_count": len(page)}
            if next_token:
                meta["next_token"] = next_token
            if not page:
                return 200, {"meta": meta}, headers
            body: dict[str, Any] = {"data": [self._fields(e, "dm", request.arg("dm_event.fields")) for e in page]}
            includes = self._includes(page, request.arg("expansions"), "sender_id")
            if includes:
                body["includes"] = includes
            body["meta"] = meta
            return 200, body, headers

    @route("POST", r"/2/tweets")
    def create_tweet(self, request: Request):
        with self.lock:
            refused = self._unauthorized(request)
            if refused:
                return refused
            headers = self._rate_headers("tweets")
            try:
                payload = request.json()
            except ValueError:
                payload = None
            text = payload.get("text", "") if isinstance(payload, dict) else None
            media = payload.get("media") if isinstance(payload, dict) else None
            media_ids = media.get("media_ids") if isinstance(media, dict) else None
            if not isinstance(text, str) or not (text or media_ids):
                return problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                               "https://api.x.com/2/problems/invalid-request", headers)
            if media is not None:
                refused = self._check_media(media_ids, "tweet_image", MEDIA_PER_POST, headers)
                if refused:
                    return refused
            if weighted_length(text) > MAX_WEIGHTED_LENGTH:
                return problem(400, "Invalid Request", "Your Tweet text is too long.",
                               "https://api.x.com/2/problems/invalid-request", headers)
            if text and any(t["text"] == text for t in self.tweets if t.get("author_id") == self.user_id):
                return problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.",
                               headers=headers)
            reply_to = ((payload.get("reply") or {}).get("in_reply_to_tweet_id")
                        if isinstance(payload.get("reply"), dict) else None)
            tweet_id = str(next(self._ids))
            tweet = {"id": tweet_id, "text": text, "author_id": self.user_id, "created_at": self._now(),
                     "conversation_id": tweet_id, "edit_history_tweet_ids": [tweet_id]}
            if reply_to:
                try:
                    parent = self.tweet(reply_to)
                except KeyError:
                    return problem(400, "Invalid Request", "The Tweet you are replying to does not exist.",
                                   "https://api.x.com/2/problems/invalid-request", headers)
                summoned = parent.get("author_id") == self.user_id or \
                    f"@{self.username.lower()}" in str(parent.get("text")).lower()
                if not summoned:
                    return problem(403, "Forbidden",
                                   "Reply to this conversation is not allowed because you have not been "
                                   "mentioned or otherwise engaged by the author of the post you are replying to.",
                                   headers=headers)
                tweet.update(conversation_id=parent["conversation_id"], in_reply_to_user_id=parent["author_id"],
                             referenced_tweets=[{"type": "replied_to", "id": reply_to}])
            if media_ids:
                tweet["attachments"] = {"media_keys": [self.uploads[m]["media_key"] for m in media_ids]}
            self.tweets.append(tweet)
            sent = {"kind": "post", "id": tweet_id, "text": text, "in_reply_to": reply_to,
                    "public": True, "conversation_id": tweet["conversation_id"]}
            if media_ids:
                sent["media"] = [dict(self.uploads[m], id=m) for m in media_ids]
            self.sent.append(sent)
            return 201, {"data": {"id": tweet_id, "text": text}}, headers

    def _send_dm(self, request: Request, conversation: str):
        refused = self._unauthorized(request)
        if refused:
            return refused
        headers = self._rate_headers("dm_send")
        try:
            payload = request.json()
        except ValueError:
            payload = None
        text = payload.get("text", "") if isinstance(payload, dict) else None
        attachments = payload.get("attachments") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not (text or attachments):
            return problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                           "https://api.x.com/2/problems/invalid-request", headers)
        media_ids = None
        if attachments is not None:
            media_ids = [a.get("media_id") for a in attachments if isinstance(a, dict)] \
                if isinstance(attachments, list) else None
            refused = self._check_media(media_ids, "dm_image", MEDIA_PER_DM, headers)
            if refused:
                return refused
        earlier = [e for e in self.dm_events if e.get("dm_conversation_id") == conversation
                   and e.get("sender_id") != self.user_id]
        event_id = self._dm(self.user_id, conversation, text)
        sent = {"kind": "dm", "id": event_id, "text": text, "public": False, "dm_conversation_id": conversation,
                "in_reply_to": earlier[-1]["id"] if earlier else None}
        if media_ids:
            sent["media"] = [dict(self.uploads[m], id=m) for m in media_ids]
        self.sent.append(sent)
        return 201, {"data": {"dm_conversation_id": conversation, "dm_event_id": event_id}}, headers

    def _check_media(self, media_ids: Any, category: str, most: int, headers: dict[str, str]):
        """The problem answer for media ids a post or DM may not carry, else None."""
        if not isinstance(media_ids, list) or not media_ids or len(media_ids) > most or not all(
                isinstance(m, str) and self.uploads.get(m, {}).get("media_category") == category for m in media_ids):
            return problem(400, "Invalid Request", "Your media IDs are invalid.",
                           "https://api.x.com/2/problems/invalid-request", headers)
        return None

    @route("POST", r"/2/media/upload")
    def upload_media(self, request: Request):
        """The one-shot upload: multipart `media` (the file) and `media_category`, optional `media_type`."""
        with self.lock:
            refused = self._unauthorized(request)
            if refused:
                return refused
            headers = self._rate_headers("media")
            form = parse_form(request.headers.get("Content-Type", ""), request.body)
            media = (form.get("media") or [None])[0]
            category = (form.get("media_category") or [None])[0]
            declared = (form.get("media_type") or [None])[0]
            media_type = declared.text if declared else (media.content_type if media else None)
            if media is None or not media.data or category is None or category.text not in ONE_SHOT_CATEGORIES:
                return problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                               "https://api.x.com/2/problems/invalid-request", headers)
            if media_type not in ONE_SHOT_TYPES:
                return problem(400, "Invalid Request", f"The media type {media_type} is not supported here; "
                               "upload video and GIF with the chunked upload.",
                               "https://api.x.com/2/problems/invalid-request", headers)
            if len(media.data) > IMAGE_LIMIT:
                return problem(400, "Invalid Request", f"File size exceeds {IMAGE_LIMIT} bytes.",
                               "https://api.x.com/2/problems/invalid-request", headers)
            media_id = str(next(self._ids))
            key = f"3_{media_id}"
            self.uploads[media_id] = {"media_key": key, "data": media.data, "media_type": media_type,
                                      "media_category": category.text, "filename": media.filename}
            self.media[key] = {"media_key": key, "type": "photo", "url": f"{self.url}/media/{key}.jpg"}
            return 200, {"data": {"id": media_id, "media_key": key, "size": len(media.data),
                                  "expires_after_secs": 86400,
                                  "image": {"image_type": media_type, "w": 1, "h": 1}}}, headers

    @route("POST", r"/2/dm_conversations/(?P<conversation>[0-9-]+)/messages")
    def send_in_conversation(self, request: Request, conversation: str):
        with self.lock:
            known = any(e.get("dm_conversation_id") == conversation for e in self.dm_events)
            if not known and not self._unauthorized(request):
                return problem(404, "Not Found Error", "Could not find the DM conversation.",
                               "https://api.x.com/2/problems/resource-not-found")
            return self._send_dm(request, conversation)

    @route("POST", r"/2/dm_conversations/with/(?P<participant>\d+)/messages")
    def send_with(self, request: Request, participant: str):
        with self.lock:
            conversation = self._conversation_with(participant)
            wrote = any(e.get("dm_conversation_id") == conversation and e.get("sender_id") == participant
                        for e in self.dm_events)
            if participant in self.dms_refused and not wrote and not self._unauthorized(request):
                return problem(403, "Forbidden", "You are not permitted to send Direct Messages to this user.",
                               headers=self._rate_headers("dm_send"))
            return self._send_dm(request, conversation)

    @route("POST", r"/2/oauth2/token")
    def token(self, request: Request):
        with self.lock:
            form = request.form()
            self.token_requests.append(form)
            if self.client_secret is not None:
                expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
                if request.headers.get("Authorization") != expected:
                    return 401, {"error": "unauthorized_client",
                                 "error_description": "Missing valid authorization header"}
            if form.get("grant_type") != "refresh_token" or form.get("client_id") != self.client_id \
                    or form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_request",
                             "error_description": "Value passed for the token was invalid."}
            # Refresh tokens are single-use: the old one dies with this answer.
            self.refresh_tokens.discard(form["refresh_token"])
            serial = len(self.token_requests)
            access, refresh = f"x-access-token-{serial}", f"x-refresh-token-{serial}"
            self.access_tokens[access] = time.time() + 7200
            self.refresh_tokens.add(refresh)
            return 200, {"token_type": "bearer", "expires_in": 7200, "access_token": access,
                         "scope": "tweet.read tweet.write users.read dm.read dm.write offline.access",
                         "refresh_token": refresh}

    @route("GET", r"/media/(?P<key>[0-9_]+)\.jpg")
    def media_file(self, request: Request, key: str):
        if key not in self.media:
            return 404, b"not found", {"Content-Type": "text/plain"}
        return 200, PHOTO, {"Content-Type": "image/jpeg"}
