"""A loopback imitation of Meta's Graph API for a Facebook Page and its Instagram account, with webhooks.

It follows shared/channels.md section 3 to the field name:

- any `/vNN.N/` prefix (or none, as on graph.instagram.com); the token as `Authorization:
  Bearer` or `access_token`; an optional `appsecret_proof` check (`require_proof`);
- Conversations API `GET /{page-id}/conversations?platform=messenger|instagram` (and
  `GET /{ig-id}/conversations` for Instagram Login), with `user_id`, `limit`, `after`, field
  expansion `messages.limit(N){...}` (the 20 newest messages at most) and `participants`,
  newest `updated_time` first; Graph times like "2021-07-23T09:28:50+0000";
- cursor paging `"paging": {"cursors": {"before", "after"}, "next"}` (no `next` on the last page);
- Page feed `GET /{page-id}/feed`, comments `GET /{post-id}/comments` (`filter=stream`,
  `order=reverse_chronological`, `since`), comment replies `POST /{comment-id}/comments`;
  Instagram `GET /{ig-id}/media`, `GET /{media-id}/comments` (with `replies`), `POST
  /{ig-comment-id}/replies` (replies to a reply land under the top-level comment);
- Send API `POST /{page-id|ig-id|me}/messages` answering `{"recipient_id", "message_id"}`, with
  the windows enforced: `RESPONSE` (and `UPDATE`) only within 24 hours of the person's last
  message, `MESSAGE_TAG` + `HUMAN_AGENT` within 7 days, otherwise code 10 / subcode 2018278
  "This message is sent outside of allowed window"; the 2000-character Messenger and
  1000-character Instagram limits (code 100); private replies `recipient: {"comment_id"}` once
  per comment (code 10900 "Activity already replied to") within 7 days (code 10903), codes as
  integrations report them;
- the Send API's file upload: a multipart form with `recipient`, `messaging_type`, `message=
  {"attachment": {"type": "image|video|audio|file", "payload": {"is_reusable": ...}}}` and the
  file as `filedata` (Messenger only; the bytes land in `sent[...]["attachment"]`); text and an
  attachment in one message are refused (code 100), as are an unknown type (code 100), a file over
  25 MB (`max_upload_bytes`) and an `image` that is not a JPEG, PNG or GIF (code 100, subcode
  2018047 "Upload attachment failure");
- Instagram @mentions: the `mentions` webhook change (`{"media_id", "comment_id"}`, no
  `comment_id` for a caption), `GET /{ig-id}?fields=mentioned_comment.comment_id(<id>){...}` and
  `mentioned_media.media_id(<id>){...}` with nested field selection (`media{caption,permalink}`;
  a media's `owner` only when it is the account's own, `username` otherwise), and replies
  `POST /{ig-id}/mentions` with `media_id`, `comment_id` (for a comment) and `message`;
- user profiles `GET /{psid|igsid}?fields=name,username`; the Page itself as `GET /me` (with a Page
  token "me" is the Page) or `GET /{page-id}` (`id`, `name`), and the Instagram account as
  `GET /{ig-id}?fields=id,username` (`id`, `username`, `name`): the connection tests' calls;
- errors as `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`; every answer
  carries `X-App-Usage` and `X-Business-Use-Case-Usage` (see `usage`); `rate_limited` answers
  with a throttling code (4, 17, 32, 613, 80001) or a 429; `expire_token` makes every call fail
  with code 190.

Webhooks: every customer action (and each of our sends, as an `is_echo` echo) queues the event
Meta would post. `webhook_payloads()` takes them as bodies (`object: "page"` with `messaging` or
`changes[field=feed]`, `object: "instagram"` with `messaging` or `changes[field=comments]`);
`signed(payload)` gives the bytes and both signature headers (`X-Hub-Signature-256` and the older
`X-Hub-Signature`); `deliver_webhook(url, payload, app_secret)` POSTs it as Meta does (or with a
wrong signature), `replay()` posts the same bytes again, and `verify_subscription(url, token)` runs
the GET handshake.

Tests drive it with `customer_dm`, `customer_presses` (a `messaging_postbacks` event, with or
without `mid`), `customer_quick_reply` (`message.quick_reply.payload`), `customer_comment`, `customer_mentions`, `page_post`, `ig_media`, `customer_reads`,
`customer_receives`, `malformed_message`, `malformed_comment`, `duplicate_conversation`, and read
`sent` for what we posted.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import requests

from sandbox.base import Imitation, Request, route

V = r"(?:/v\d+\.\d+)?"

#: A 1x1 JPEG served for every photo.
PHOTO = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////"
    "////////////////////2wBDAf//////////////////////////////////////////////////////////////////////////"
    "////////////wAARCAABAAEDASIAAhEBAxEB/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAAAAAAAAAAAAAAAAAAAAD/xAAU"
    "AQEAAAAAAAAAAAAAAAAAAAAA/8QAFBEBAAAAAAAAAAAAAAAAAAAAAP/aAAwDAQACEQMRAD8AP//Z")

THROTTLE_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
}
TEXT_LIMITS = {"messenger": 2000, "instagram": 1000}
#: The Send API's attachment types for an uploaded file, and the cap on its size (25 MB).
UPLOAD_TYPES = ("image", "video", "audio", "file")
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: How JPEG, PNG and GIF files begin: an `image` upload that does not is refused.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")


def select_fields(entry: dict[str, Any], asked: str | None) -> dict[str, Any]:
    """`entry` cut to Graph's field list `asked` ("id,text,media{id,caption}"); the id always stays."""
    if not asked:
        return entry
    chosen: dict[str, Any] = {"id": entry["id"]} if "id" in entry else {}
    depth, start, names = 0, 0, []
    for index, char in enumerate(asked + ","):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            names.append(asked[start:index].strip())
            start = index + 1
    for name in filter(None, names):
        field, _, inner = name.partition("{")
        if field in entry:
            value = entry[field]
            chosen[field] = select_fields(value, inner[:-1]) if inner and isinstance(value, dict) else value
    return chosen


def multipart_parts(body: bytes, content_type: str) -> dict[str, dict[str, Any]]:
    """The parts of a multipart/form-data body by name: {"filename", "content_type", "data"}."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}
    parts: dict[str, dict[str, Any]] = {}
    for chunk in body.split(b"--" + match.group(1).encode())[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            parts[name.group(1)] = {"filename": filename.group(1) if filename else None,
                                    "content_type": headers.get("content-type"),
                                    "data": data.removesuffix(b"\r\n")}
    return parts


def graph_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def epoch_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def sign(body: bytes, app_secret: str) -> dict[str, str]:
    """The two signature headers Meta puts on a webhook POST."""
    key = app_secret.encode()
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
            "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()}


class MetaImitation(Imitation):
    """The Graph API of one Page (and its Instagram account) on 127.0.0.1."""

    name = "meta"

    def __init__(self, *, page_id: str = "112130216863063", page_name: str = "Acme Shop",
                 ig_id: str = "17841400123456789", ig_username: str = "acmeshop",
                 access_token: str = "meta-page-token-0", app_secret: str = "meta-app-secret-0",
                 app_id: str = "555000111222333", page_size: int | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__()
        self.page_id = page_id
        self.page_name = page_name
        self.ig_id = ig_id
        self.ig_username = ig_username
        self.app_secret = app_secret
        self.app_id = app_id
        self.page_size = page_size
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.tokens: set[str] = {access_token}
        self._current_token = access_token
        self.require_proof = False
        #: Percent of the limits used, as the usage headers report it; regain time in minutes.
        self.usage = 3
        self.regain_minutes = 0
        self.users: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, dict[str, Any]] = {}  # id -> {id, platform, user, messages}
        self.posts: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, dict[str, Any]]] = []  # (object, kind, event or change)
        self.delivered: list[tuple[str, bytes, dict[str, str]]] = []
        self.private_replied: set[str] = set()
        #: Ids of comments and media that @mention the Instagram account (what the mentions webhook names).
        self.mentions: set[str] = set()
        #: The Send API's cap on an uploaded file; tests may lower it to see the refusal.
        self.max_upload_bytes = MAX_UPLOAD_BYTES
        self._numbers = itertools.count(1)

    @property
    def access_token(self) -> str:
        """The newest token handed out (it may have expired)."""
        return self._current_token

    # State the tests drive --------------------------------------------------------------------------

    def _next(self) -> int:
        return next(self._numbers)

    def user(self, name: str, platform: str = "messenger") -> str:
        """The id (PSID or IGSID) of customer `name` on `platform`, created on first use."""
        with self.lock:
            for user in self.users.values():
                if user["name"] == name and user["platform"] == platform:
                    return user["id"]
            number = self._next()
            user_id = str((6723400011100000 if platform == "messenger" else 17841450000000000) + number)
            username = re.sub(r"[^a-z0-9_.]", "", name.lower()) or f"user{number}"
            self.users[user_id] = {"id": user_id, "name": name, "username": username, "platform": platform}
            return user_id

    def _party(self, user_id: str, platform: str) -> dict[str, str]:
        if user_id in (self.page_id, self.ig_id):
            return {"id": self.ig_id, "username": self.ig_username} if platform == "instagram" \
                else {"id": self.page_id, "name": self.page_name}
        user = self.users[user_id]
        return {"id": user_id, "username": user["username"]} if platform == "instagram" \
            else {"id": user_id, "name": user["name"]}

    def _conversation(self, user_id: str, platform: str) -> dict[str, Any]:
        for conversation in self.conversations.values():
            if conversation["user"] == user_id and conversation["platform"] == platform:
                return conversation
        conversation_id = f"t_{10000000000 + self._next()}" if platform == "messenger" \
            else f"aWdfZAG06{self._next():012d}"
        conversation = {"id": conversation_id, "platform": platform, "user": user_id, "messages": []}
        self.conversations[conversation_id] = conversation
        return conversation

    def _mid(self, platform: str) -> str:
        token = base64.urlsafe_b64encode(f"mid.{self._next()}:{self.page_id}".encode()).decode().rstrip("=")
        return f"m_{token}" if platform == "messenger" else f"aWdf{token}"

    def customer_dm(self, name: str, text: str = "Is my order shipped?", *, platform: str = "messenger",
                    at: dt.datetime | None = None, photo: bool = False, reply_to: str | None = None) -> str:
        """A customer's message to the Page (or the Instagram account); returns its mid."""
        with self.lock:
            user_id = self.user(name, platform)
            conversation = self._conversation(user_id, platform)
            at = at or self.clock()
            mid = self._mid(platform)
            message = {"id": mid, "created": at, "from": user_id, "text": text, "reply_to": reply_to,
                       "photo": f"{self.url}/media/{mid[-10:]}.jpg" if photo else None}
            conversation["messages"].append(message)
            event_message: dict[str, Any] = {"mid": mid, "text": text}
            if photo:
                event_message["attachments"] = [{"type": "image", "payload": {"url": message["photo"]}}]
            if reply_to:
                event_message["reply_to"] = {"mid": reply_to, "is_self_reply": False}
            own = self.page_id if platform == "messenger" else self.ig_id
            self._queue(platform, "message", {"sender": {"id": user_id}, "recipient": {"id": own},
                                              "timestamp": epoch_ms(at), "message": event_message})
            return mid

    def customer_presses(self, name: str, title: str = "Get Started", payload: str = "GET_STARTED", *,
                         platform: str = "messenger", with_mid: bool = True, at: dt.datetime | None = None
                         ) -> str | None:
        """The customer presses a postback button (or "Get started", a persistent-menu item).

        Queues a `messaging_postbacks` event (`postback.title`, `payload` and, unless `with_mid` is
        False, `mid`); the press shows in the conversation as a message with the button's title,
        and opens the messaging window like any message. Returns the mid (None without one).
        """
        with self.lock:
            user_id = self.user(name, platform)
            conversation = self._conversation(user_id, platform)
            at = at or self.clock()
            mid = self._mid(platform) if with_mid else None
            conversation["messages"].append({"id": mid or self._mid(platform), "created": at, "from": user_id,
                                             "text": title, "reply_to": None, "photo": None,
                                             "hidden_from_graph": not with_mid})
            postback: dict[str, Any] = {"title": title, "payload": payload}
            if mid:
                postback["mid"] = mid
            own = self.page_id if platform == "messenger" else self.ig_id
            self._queue(platform, "postback", {"sender": {"id": user_id}, "recipient": {"id": own},
                                               "timestamp": epoch_ms(at), "postback": postback})
            return mid

    def customer_quick_reply(self, name: str, text: str, payload: str, *, platform: str = "messenger",
                             at: dt.datetime | None = None) -> str:
        """The customer taps a quick reply: a message whose text is its title, with `quick_reply.payload`."""
        with self.lock:
            user_id = self.user(name, platform)
            conversation = self._conversation(user_id, platform)
            at = at or self.clock()
            mid = self._mid(platform)
            conversation["messages"].append({"id": mid, "created": at, "from": user_id, "text": text,
                                             "reply_to": None, "photo": None})
            own = self.page_id if platform == "messenger" else self.ig_id
            self._queue(platform, "message", {"sender": {"id": user_id}, "recipient": {"id": own},
                                              "timestamp": epoch_ms(at), "message": {
                                                  "mid": mid, "text": text, "quick_reply": {"payload": payload}}})
            return mid

    def malformed_message(self, platform: str = "messenger") -> str:
        """A message whose sender is missing (in the Conversations API and in its webhook)."""
        with self.lock:
            user_id = self.user("Broken Sender", platform)
            conversation = self._conversation(user_id, platform)
            mid = self._mid(platform)
            at = self.clock()
            conversation["messages"].append({"id": mid, "created": at, "from": None, "text": "garbled"})
            self._queue(platform, "message", {"recipient": {"id": self.page_id}, "timestamp": epoch_ms(at),
                                              "message": {"mid": mid, "text": "garbled"}})
            return mid

    def duplicate_conversation(self, user_id: str, platform: str = "messenger") -> None:
        """List the conversation with `user_id` twice from now on (an API glitch)."""
        with self.lock:
            conversation = self._conversation(user_id, platform)
            self.conversations[conversation["id"] + "-again"] = conversation

    def page_post(self, text: str = "Our spring collection is here!", *, at: dt.datetime | None = None) -> str:
        with self.lock:
            number = 900000000000000 + self._next()
            post_id = f"{self.page_id}_{number}"
            at = at or self.clock()
            self.posts[post_id] = {"id": post_id, "number": number, "message": text, "created": at, "updated": at,
                                   "permalink_url": f"https://www.facebook.com/{self.page_id}/posts/{number}"}
            return post_id

    def ig_media(self, caption: str = "New in store", *, at: dt.datetime | None = None) -> str:
        with self.lock:
            media_id = str(17900000000000000 + self._next())
            at = at or self.clock()
            self.media[media_id] = {"id": media_id, "caption": caption, "created": at,
                                    "permalink": f"https://www.instagram.com/p/C{media_id[-8:]}/",
                                    "media_product_type": "FEED"}
            return media_id

    def customer_comment(self, name: str, text: str = "Do you ship to Belgium?", *, platform: str = "facebook",
                         post: str | None = None, parent: str | None = None, at: dt.datetime | None = None) -> str:
        """A customer's comment on a post (or an Instagram media); returns the comment id."""
        with self.lock:
            user_id = self.user(name, "messenger" if platform == "facebook" else "instagram")
            return self._comment(user_id, text, platform=platform, post=post, parent=parent, at=at)

    def _comment(self, user_id: str, text: str | None, *, platform: str, post: str | None, parent: str | None,
                 at: dt.datetime | None = None, malformed: bool = False) -> str:
        at = at or self.clock()
        if parent:
            # Threads are two levels deep: an answer to a reply belongs to the top-level comment.
            top = self.comments[parent]
            parent = top["parent"] or parent
            post = top["post"]
        if platform == "facebook":
            post = post or (max(self.posts, key=lambda p: self.posts[p]["created"]) if self.posts
                            else self.page_post())
            comment_id = f"{self.posts[post]['number']}_{100000 + self._next()}"
            self.posts[post]["updated"] = at
        else:
            post = post or (max(self.media, key=lambda m: self.media[m]["created"]) if self.media
                            else self.ig_media())
            comment_id = str(17850000000000000 + self._next())
        comment = {"id": comment_id, "platform": platform, "post": post, "parent": parent, "from": user_id,
                   "text": text, "created": at, "malformed": malformed}
        self.comments[comment_id] = comment
        if platform == "facebook":
            value = {"item": "comment", "verb": "add", "comment_id": comment_id, "post_id": post,
                     "parent_id": parent or post, "message": text, "created_time": int(at.timestamp()),
                     "post": {"id": post, "status_type": "added_photos",
                              "permalink_url": self.posts[post]["permalink_url"]}}
            if not malformed:
                value["from"] = self._party(user_id, "messenger")
            self._queue("facebook", "feed", {"field": "feed", "value": value})
        else:
            value = {"id": comment_id, "text": text, "media": {"id": post, "media_product_type": "FEED"}}
            if parent:
                value["parent_id"] = parent
            if not malformed:
                value["from"] = self._party(user_id, "instagram")
            self._queue("instagram", "comments", {"field": "comments", "value": value})
        return comment_id

    def customer_mentions(self, name: str, text: str | None = None, *, in_comment: bool = True,
                          media: str | None = None, caption: str = "Unboxing my new coat",
                          at: dt.datetime | None = None) -> str:
        """Instagram user `name` @mentions the account: in a comment, or in the caption of their post.

        By default the mention is on a post of `name`'s own (not the account's), with `caption`;
        `media` puts a comment mention on that media instead (the account's own, say, where Meta
        sends a `comments` webhook too). Queues the `mentions` change Meta sends, `{"media_id",
        "comment_id"}` (no `comment_id` for a caption), and returns the comment id (or media id).
        """
        with self.lock:
            user_id = self.user(name, "instagram")
            at = at or self.clock()
            text = text or f"@{self.ig_username} look what I got!"
            if media is None or not in_comment:
                media = str(17900000000000000 + self._next())
                username = self.users[user_id]["username"]
                self.media[media] = {"id": media, "caption": text if not in_comment else caption, "created": at,
                                     "permalink": f"https://www.instagram.com/p/M{media[-8:]}/",
                                     "media_product_type": "FEED", "owner": user_id, "username": username}
            if not in_comment:
                self.mentions.add(media)
                self._queue("instagram", "mentions", {"field": "mentions", "value": {"media_id": media}})
                return media
            if self.media[media].get("owner") is None:
                comment_id = self._comment(user_id, text, platform="instagram", post=media, parent=None, at=at)
            else:  # a comment on someone else's post: Meta sends no `comments` webhook for it
                comment_id = str(17850000000000000 + self._next())
                self.comments[comment_id] = {"id": comment_id, "platform": "instagram", "post": media,
                                             "parent": None, "from": user_id, "text": text, "created": at,
                                             "malformed": False}
            self.mentions.add(comment_id)
            self._queue("instagram", "mentions", {"field": "mentions",
                                                  "value": {"media_id": media, "comment_id": comment_id}})
            return comment_id

    def malformed_comment(self, platform: str = "facebook") -> str:
        """A comment whose author is missing."""
        with self.lock:
            user_id = self.user("Ghost", "messenger" if platform == "facebook" else "instagram")
            return self._comment(user_id, "???", platform=platform, post=None, parent=None, malformed=True)

    def customer_reads(self, name: str, platform: str = "messenger") -> None:
        """The customer opens the conversation: Messenger sends a read watermark, Instagram the mid seen."""
        with self.lock:
            user_id = self.user(name, platform)
            at = self.clock()
            ours = [m for m in self._conversation(user_id, platform)["messages"] if m["from"] != user_id]
            if platform == "messenger":
                read: dict[str, Any] = {"watermark": epoch_ms(at)}
            else:
                if not ours:
                    return
                read = {"mid": ours[-1]["id"]}
            own = self.page_id if platform == "messenger" else self.ig_id
            self._queue(platform, "read", {"sender": {"id": user_id}, "recipient": {"id": own},
                                           "timestamp": epoch_ms(at), "read": read})

    def customer_receives(self, name: str, platform: str = "messenger") -> None:
        """Our messages reached the customer's device: a `message_deliveries` event."""
        with self.lock:
            user_id = self.user(name, platform)
            at = self.clock()
            mids = [m["id"] for m in self._conversation(user_id, platform)["messages"] if m["from"] != user_id]
            own = self.page_id if platform == "messenger" else self.ig_id
            self._queue(platform, "delivery", {"sender": {"id": user_id}, "recipient": {"id": own},
                                               "timestamp": epoch_ms(at),
                                               "delivery": {"mids": mids, "watermark": epoch_ms(at)}})

    def expire_token(self) -> None:
        """Every token stops working (code 190), as when a user token expires or a password changes."""
        with self.lock:
            self.tokens = set()

    def new_token(self, token: str = "meta-page-token-1") -> str:
        with self.lock:
            self.tokens.add(token)
            self._current_token = token
            return token

    def rate_limited(self, code: int = 80001, *, minutes: int = 1, status: int = 400,
                     path_prefix: str | None = None) -> None:
        """The next matching request is throttled: Graph's error `code`, and the usage headers at 100%."""
        headers = self._usage_headers(usage=100, regain=minutes)
        self.fail_next(status, self._error(THROTTLE_MESSAGES.get(code, "(#4) Application request limit reached"),
                                           code, kind="OAuthException"), headers, path_prefix=path_prefix)

    def server_error(self, status: int = 500, *, path_prefix: str | None = None) -> None:
        body = self._error("An unexpected error has occurred. Please retry your request later.", 2,
                           kind="OAuthException")
        body["error"]["is_transient"] = True
        self.fail_next(status, body, self._usage_headers(), path_prefix=path_prefix)

    # Webhooks -------------------------------------------------------------------------------------

    def _queue(self, platform: str, kind: str, event: dict[str, Any]) -> None:
        self.events.append(("page" if platform in ("messenger", "facebook") else "instagram", kind, event))

    def webhook_payloads(self, *, batch: bool = False) -> list[dict[str, Any]]:
        """The queued events as Meta's webhook bodies (one per event, or all of one object in one body)."""
        with self.lock:
            events, self.events = self.events, []
        payloads: list[dict[str, Any]] = []
        for obj, kind, event in events:
            entry: dict[str, Any] = {"id": self.page_id if obj == "page" else self.ig_id,
                                     "time": epoch_ms(self.clock())}
            if kind in ("feed", "comments", "mentions"):
                entry["time"] = int(self.clock().timestamp())
                entry["changes"] = [event]
            else:
                entry["messaging"] = [event]
            if batch and payloads and payloads[-1]["object"] == obj:
                payloads[-1]["entry"].append(entry)
            else:
                payloads.append({"object": obj, "entry": [entry]})
        return payloads

    def signed(self, payload: dict[str, Any] | bytes, app_secret: str | None = None, *,
               wrong_signature: bool = False) -> tuple[bytes, dict[str, str]]:
        """The body Meta would post for `payload` (JSON with \\u escapes, as Meta sends) and its headers."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        secret = "not-the-app-secret" if wrong_signature else (app_secret or self.app_secret)
        return body, {"Content-Type": "application/json", **sign(body, secret)}

    def deliver_webhook(self, url: str, payload: dict[str, Any] | bytes, app_secret: str | None = None, *,
                        wrong_signature: bool = False, timeout: float = 10.0) -> requests.Response:
        """POST `payload` to `url` signed as Meta does (or with a wrong signature)."""
        body, headers = self.signed(payload, app_secret, wrong_signature=wrong_signature)
        self.delivered.append((url, body, headers))
        return requests.post(url, data=body, headers=headers, timeout=timeout)

    def deliver_pending(self, url: str, app_secret: str | None = None) -> list[requests.Response]:
        return [self.deliver_webhook(url, payload, app_secret) for payload in self.webhook_payloads()]

    def replay(self, index: int = -1, *, timeout: float = 10.0) -> requests.Response:
        """Post an earlier delivery again, byte for byte (Meta retries for days)."""
        url, body, headers = self.delivered[index]
        return requests.post(url, data=body, headers=headers, timeout=timeout)

    def verify_subscription(self, url: str, verify_token: str, challenge: str = "1158201444") -> requests.Response:
        """Meta's GET handshake when a webhook is subscribed."""
        return requests.get(url, params={"hub.mode": "subscribe", "hub.verify_token": verify_token,
                                         "hub.challenge": challenge}, timeout=10)

    # Answers --------------------------------------------------------------------------------------

    def _error(self, message: str, code: int, *, subcode: int | None = None,
               kind: str = "OAuthException") -> dict[str, Any]:
        error: dict[str, Any] = {"message": message, "type": kind, "code": code,
                                 "fbtrace_id": base64.b64encode(f"trace{self._next()}".encode()).decode()[:23]}
        if subcode is not None:
            error["error_subcode"] = subcode
        return {"error": error}

    def _usage_headers(self, usage: int | None = None, regain: int | None = None) -> dict[str, str]:
        usage = self.usage if usage is None else usage
        regain = self.regain_minutes if regain is None else regain
        return {
            "X-App-Usage": json.dumps({"call_count": usage, "total_cputime": 1, "total_time": 1}),
            "X-Business-Use-Case-Usage": json.dumps({self.page_id: [{
                "type": "pages", "call_count": usage, "total_cputime": 1, "total_time": 1,
                "estimated_time_to_regain_access": regain}]}),
        }

    def _answer(self, status: int, body: Any) -> tuple[int, Any, dict[str, str]]:
        return status, body, self._usage_headers()

    def _fail(self, status: int, message: str, code: int, subcode: int | None = None,
              kind: str = "OAuthException") -> tuple[int, Any, dict[str, str]]:
        return self._answer(status, self._error(message, code, subcode=subcode, kind=kind))

    def _refused(self, request: Request) -> tuple[int, Any, dict[str, str]] | None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else request.arg("access_token")
        if not token:
            return self._fail(400, "An active access token must be used to query information about the current "
                                   "user.", 2500)
        if token not in self.tokens:
            return self._fail(400, "Error validating access token: Session has expired on Thursday, 05-Mar-26 "
                                   "10:00:00 PST. The current time is Thursday, 05-Mar-26 11:00:00 PST.", 190, 463)
        if self.require_proof:
            proof = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if request.arg("appsecret_proof") != proof:
                return self._fail(400, "Invalid appsecret_proof provided in the API argument", 100,
                                  kind="GraphMethodException")
        return None

    def _page(self, entries: list[Any], request: Request, default: int = 25
              ) -> tuple[list[Any], dict[str, Any]]:
        """One page of `entries` (already in answer order) and its Graph `paging` object."""
        try:
            size = max(1, min(100, int(request.arg("limit") or default)))
        except ValueError:
            size = default
        if self.page_size:
            size = min(size, self.page_size)
        start = 0
        after = request.arg("after")
        if after:
            try:
                start = int(base64.b64decode(after.encode() + b"==").decode().split(":")[1])
            except (ValueError, IndexError, UnicodeDecodeError):
                start = 0
        page = entries[start:start + size]
        paging: dict[str, Any] = {}
        if page:
            def cursor(index: int) -> str:
                return base64.b64encode(f"pos:{index}".encode()).decode().rstrip("=")

            paging["cursors"] = {"before": cursor(start), "after": cursor(start + len(page))}
            if start + size < len(entries):
                query = {k: v[0] for k, v in request.query.items() if k not in ("after", "access_token")}
                query["after"] = paging["cursors"]["after"]
                paging["next"] = f"{self.url}{request.path}?" + "&".join(f"{k}={v}" for k, v in query.items())
        return page, paging

    @staticmethod
    def _fields(request: Request) -> str:
        return request.arg("fields") or ""

    @classmethod
    def _only(cls, entry: dict[str, Any], request: Request) -> dict[str, Any]:
        """Like Graph: a node lists only the (flat) `fields` asked for, and always its id."""
        asked = {f.strip() for f in cls._fields(request).split(",") if f.strip()}
        if not asked:
            return entry
        return {k: v for k, v in entry.items() if k == "id" or k in asked}

    def _message_json(self, message: dict[str, Any], conversation: dict[str, Any]) -> dict[str, Any]:
        platform = conversation["platform"]
        body: dict[str, Any] = {"id": message["id"], "created_time": graph_time(message["created"])}
        if message["from"] is not None:
            other = conversation["user"] if message["from"] != conversation["user"] else self.page_id
            body["from"] = self._party(message["from"], platform)
            body["to"] = {"data": [self._party(other, platform)]}
        body["message"] = message.get("text") or ""
        if message.get("photo"):
            body["attachments"] = {"data": [{"id": f"att_{message['id'][-8:]}", "mime_type": "image/jpeg",
                                             "name": "image.jpg", "image_data": {
                                                 "url": message["photo"], "preview_url": message["photo"],
                                                 "width": 1, "height": 1}}]}
        return body

    # Routes ---------------------------------------------------------------------------------------

    @route("GET", V + r"/(?P<node>\d+)/conversations")
    def list_conversations(self, request: Request, node: str):
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            platform = request.arg("platform") or ("instagram" if node == self.ig_id else "messenger")
            if node not in (self.page_id, self.ig_id) or platform not in TEXT_LIMITS:
                return self._fail(400, "(#100) Invalid platform or node for conversations", 100)
            user_id = request.arg("user_id")
            listed = [c for c in self.conversations.values() if c["platform"] == platform and c["messages"]
                      and (not user_id or c["user"] == user_id)]
            listed.sort(key=lambda c: max(m["created"] for m in c["messages"]), reverse=True)
            page, paging = self._page(listed, request)
            fields = self._fields(request)
            limit_match = re.search(r"messages\.limit\((\d+)\)", fields)
            limit = min(20, int(limit_match.group(1))) if limit_match else 20
            data = []
            for conversation in page:
                newest = max(m["created"] for m in conversation["messages"])
                entry: dict[str, Any] = {"id": conversation["id"].removesuffix("-again"),
                                         "updated_time": graph_time(newest)}
                if "participants" in fields:
                    entry["participants"] = {"data": [self._party(conversation["user"], platform),
                                                      self._party(self.page_id, platform)]}
                if "messages" in fields:
                    # Newest first, and only the 20 newest carry details.
                    # A press Meta posted without a mid is not a message the Conversations API lists.
                    newest_first = sorted((m for m in conversation["messages"] if not m.get("hidden_from_graph")),
                                          key=lambda m: m["created"], reverse=True)
                    entry["messages"] = {"data": [self._message_json(m, conversation)
                                                  for m in newest_first[:limit]]}
                data.append(entry)
            return self._answer(200, {"data": data, "paging": paging} if paging else {"data": data})

    @route("POST", V + r"/(?P<node>\d+|me)/messages")
    def send_message(self, request: Request, node: str):
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            body = self._body(request)
            recipient = body.get("recipient") if isinstance(body.get("recipient"), dict) else {}
            message = body.get("message") if isinstance(body.get("message"), dict) else {}
            text = message.get("text")
            if node not in ("me", self.page_id, self.ig_id):
                return self._fail(400, "(#100) The Page or account cannot send as this node", 100)
            upload = None
            if "attachment" in message:
                if text is not None:
                    return self._fail(400, "(#100) Only one of text or attachment may be set in message", 100)
                upload = self._upload(message["attachment"], body.get("filedata"))
                if not isinstance(upload, dict):
                    return upload  # an error answer
            elif not isinstance(text, str) or not text:
                return self._fail(400, "(#100) The parameter message[text] is required", 100)
            if recipient.get("comment_id"):
                if upload is not None:
                    return self._fail(400, "(#100) A private reply can only be text", 100)
                return self._private_reply(str(recipient["comment_id"]), text)
            user_id = str(recipient.get("id") or "")
            user = self.users.get(user_id)
            if user is None:
                return self._fail(400, "(#100) No matching user found", 100, 2018001)
            platform = user["platform"]
            if upload is not None and platform == "instagram":
                return self._fail(400, "(#100) Uploading a file in the message is not supported for Instagram; "
                                       "use payload.url", 100)
            if upload is None and len(text) > TEXT_LIMITS[platform]:
                return self._fail(400, f"(#100) Length of param message[text] must be less than or equal to "
                                       f"{TEXT_LIMITS[platform]}", 100)
            conversation = self._conversation(user_id, platform)
            theirs = [m for m in conversation["messages"] if m["from"] == user_id]
            kind = body.get("messaging_type")
            if kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
                return self._fail(400, "(#100) param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}",
                                  100)
            if kind == "MESSAGE_TAG" and body.get("tag") != "HUMAN_AGENT":
                return self._fail(400, "(#100) Param tag must be one of {HUMAN_AGENT, ...}", 100)
            age = self.clock() - max(m["created"] for m in theirs) if theirs else None
            allowed = dt.timedelta(days=7) if kind == "MESSAGE_TAG" else dt.timedelta(hours=24)
            if age is None or age > allowed:
                return self._fail(400, "(#10) This message is sent outside of allowed window.", 10, 2018278)
            mid = self._mid(platform)
            at = self.clock()
            conversation["messages"].append({"id": mid, "created": at, "from": self.page_id, "text": text or ""})
            sent = {"kind": "message", "platform": platform, "id": mid, "recipient": user_id,
                    "text": text, "messaging_type": kind, "tag": body.get("tag"),
                    "in_reply_to": theirs[-1]["id"] if theirs else None, "public": False}
            echo: dict[str, Any] = {"mid": mid, "is_echo": True, "app_id": int(self.app_id)}
            if upload is not None:
                sent["attachment"] = upload
                echo["attachments"] = [{"type": upload["type"], "payload": {"url": f"{self.url}/media/{mid[-10:]}"}}]
            else:
                echo["text"] = text
            self.sent.append(sent)
            own = self.page_id if platform == "messenger" else self.ig_id
            self._queue(platform, "message", {
                "sender": {"id": own}, "recipient": {"id": user_id}, "timestamp": epoch_ms(at), "message": echo})
            return self._answer(200, {"recipient_id": user_id, "message_id": mid})

    def _upload(self, attachment: Any, filedata: Any) -> dict[str, Any] | tuple[int, Any, dict[str, str]]:
        """A file sent with the message (multipart `filedata`), checked as the Send API checks it.

        Returns what was uploaded, or the error answer: an unknown `type` (code 100), no file, a
        file over `max_upload_bytes` (25 MB, Meta's "Saving assets" cap) or an `image` that is not
        one (code 100, subcode 2018047 "Upload attachment failure").
        """
        attachment = attachment if isinstance(attachment, dict) else {}
        kind = attachment.get("type")
        payload = attachment.get("payload") if isinstance(attachment.get("payload"), dict) else {}
        if kind not in UPLOAD_TYPES:
            return self._fail(400, "(#100) param message[attachment][type] must be one of {IMAGE, AUDIO, VIDEO, "
                                   "FILE, TEMPLATE}", 100)
        if not isinstance(filedata, dict):
            if payload.get("url"):
                return self._fail(400, "(#100) Sending by payload.url is not imitated; upload filedata", 100)
            return self._fail(400, "(#100) Upload attachment failure: no filedata and no payload.url", 100, 2018047)
        data = filedata["data"]
        if len(data) > self.max_upload_bytes:
            return self._fail(400, "(#100) Upload attachment failure: the attachment is larger than the allowed "
                                   "25MB", 100, 2018047)
        if kind == "image" and not data.startswith(IMAGE_MAGIC):
            return self._fail(400, "(#100) Upload attachment failure.", 100, 2018047)
        return {"type": kind, "filename": filedata["filename"], "content_type": filedata["content_type"],
                "data": data, "is_reusable": payload.get("is_reusable")}

    def _private_reply(self, comment_id: str, text: str):
        comment = self.comments.get(comment_id)
        if comment is None:
            return self._fail(400, f"(#100) Unsupported post request. Object with ID '{comment_id}' does not "
                                   f"exist", 100, 33, kind="GraphMethodException")
        if comment_id in self.private_replied:
            return self._fail(400, "(#10900) Activity already replied to", 10900)
        if self.clock() - comment["created"] > dt.timedelta(days=7):
            return self._fail(400, "(#10903) This activity can't be replied to", 10903)
        platform = "messenger" if comment["platform"] == "facebook" else "instagram"
        if len(text) > TEXT_LIMITS[platform]:
            return self._fail(400, f"(#100) Length of param message[text] must be less than or equal to "
                                   f"{TEXT_LIMITS[platform]}", 100)
        self.private_replied.add(comment_id)
        conversation = self._conversation(comment["from"], platform)
        mid = self._mid(platform)
        conversation["messages"].append({"id": mid, "created": self.clock(), "from": self.page_id, "text": text})
        self.sent.append({"kind": "private_reply", "platform": platform, "id": mid, "recipient": comment["from"],
                          "text": text, "in_reply_to": comment_id, "public": False})
        return self._answer(200, {"recipient_id": comment["from"], "message_id": mid})

    def _body(self, request: Request) -> dict[str, Any]:
        """Graph takes parameters as JSON, as a form (JSON-encoded values) or in the query string.

        A multipart form (the Send API's upload) gives its fields as strings and its file as
        `filedata`: {"filename", "content_type", "data"}.
        """
        values: dict[str, Any] = {k: v[0] for k, v in request.query.items()}
        content_type = request.headers.get("Content-Type", "")
        if request.body and content_type.startswith("multipart/form-data"):
            for name, part in multipart_parts(request.body, content_type).items():
                values[name] = part if part["filename"] is not None else part["data"].decode("utf-8", "replace")
        elif request.body and "json" in content_type:
            try:
                parsed = json.loads(request.body)
            except ValueError:
                parsed = {}
            values.update(parsed if isinstance(parsed, dict) else {})
        elif request.body:
            values.update({k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()})
        for key in ("recipient", "message"):
            if isinstance(values.get(key), str):
                try:
                    values[key] = json.loads(values[key])
                except ValueError:
                    pass
        return values

    @route("GET", V + r"/(?P<node>\d+)/feed")
    def feed(self, request: Request, node: str):
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            if node != self.page_id:
                return self._fail(400, "(#100) Unknown Page", 100)
            posts = sorted(self.posts.values(), key=lambda p: p["created"], reverse=True)
            page, paging = self._page(posts, request)
            data = [self._only({"id": p["id"], "created_time": graph_time(p["created"]),
                                "updated_time": graph_time(p["updated"]), "message": p["message"],
                                "permalink_url": p["permalink_url"]}, request) for p in page]
            return self._answer(200, {"data": data, "paging": paging})

    @route("GET", V + r"/(?P<post>\d+_\d+)/comments")
    def post_comments(self, request: Request, post: str):
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            if post not in self.posts:
                return self._fail(400, f"(#100) Object with ID '{post}' does not exist", 100, 33)
            stream = request.arg("filter") == "stream"
            found = [c for c in self.comments.values() if c["post"] == post and (stream or not c["parent"])]
            since = request.arg("since")
            if since and since.isdigit():
                found = [c for c in found if c["created"].timestamp() >= int(since)]
            found.sort(key=lambda c: c["created"], reverse=request.arg("order") == "reverse_chronological")
            page, paging = self._page(found, request)
            data = []
            for comment in page:
                entry: dict[str, Any] = {"id": comment["id"], "created_time": graph_time(comment["created"]),
                                         "message": comment["text"],
                                         "permalink_url": f"{self.posts[post]['permalink_url']}?comment_id="
                                                          f"{comment['id'].split('_')[-1]}"}
                if not comment["malformed"]:
                    entry["from"] = self._party(comment["from"], "messenger")
                if comment["parent"]:
                    entry["parent"] = {"id": comment["parent"]}
                data.append(entry)
            return self._answer(200, {"data": data, "paging": paging})

    @route("POST", V + r"/(?P<comment_id>\d+_\d+)/comments")
    def reply_to_comment(self, request: Request, comment_id: str):
        return self._reply_under(request, comment_id, "facebook", self.page_id, "(#100) Missing message or attachment")

    def _reply_under(self, request: Request, comment_id: str, platform: str, author: str, no_text: str):
        """A public reply under a comment, as Facebook's /comments and Instagram's /replies answer it."""
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            text = self._body(request).get("message")
            comment = self.comments.get(comment_id)
            if comment is None or comment["platform"] != platform:
                return self._fail(400, f"(#100) Unsupported post request. Object with ID '{comment_id}' does not "
                                       f"exist", 100, 33, kind="GraphMethodException")
            if not isinstance(text, str) or not text.strip():
                return self._fail(400, no_text, 100)
            new_id = self._comment(author, text, platform=platform, post=None, parent=comment_id)
            self.sent.append({"kind": "comment_reply", "platform": platform, "id": new_id, "text": text,
                              "in_reply_to": comment_id, "public": True})
            return self._answer(200, {"id": new_id})

    @route("GET", V + r"/(?P<node>\d+)/media")
    def list_media(self, request: Request, node: str):
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            if node != self.ig_id:
                return self._fail(400, "(#100) Unknown Instagram account", 100)
            media = sorted((m for m in self.media.values() if m.get("owner") is None), key=lambda m: m["created"],
                           reverse=True)
            page, paging = self._page(media, request)
            data = [self._only({"id": m["id"], "timestamp": graph_time(m["created"]), "permalink": m["permalink"],
                                "caption": m["caption"], "media_product_type": m["media_product_type"],
                                "comments_count": sum(1 for c in self.comments.values() if c["post"] == m["id"])},
                               request) for m in page]
            return self._answer(200, {"data": data, "paging": paging})

    def _ig_comment_json(self, comment: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": comment["id"], "text": comment["text"],
                                 "timestamp": graph_time(comment["created"])}
        if not comment["malformed"]:
            party = self._party(comment["from"], "instagram")
            entry["from"] = party
            entry["username"] = party["username"]
        if comment["parent"]:
            entry["parent_id"] = comment["parent"]
        return entry

    @route("GET", V + r"/(?P<media_id>\d+)/comments")
    def media_comments(self, request: Request, media_id: str):
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            if media_id not in self.media:
                return self._fail(400, f"(#100) Object with ID '{media_id}' does not exist", 100, 33)
            top = sorted((c for c in self.comments.values() if c["post"] == media_id and not c["parent"]),
                         key=lambda c: c["created"], reverse=True)
            page, paging = self._page(top, request)
            data = []
            for comment in page:
                entry = self._ig_comment_json(comment)
                if "replies" in self._fields(request):
                    replies = sorted((c for c in self.comments.values() if c["parent"] == comment["id"]),
                                     key=lambda c: c["created"])
                    if replies:
                        entry["replies"] = {"data": [self._ig_comment_json(r) for r in replies]}
                data.append(entry)
            return self._answer(200, {"data": data, "paging": paging})

    @route("POST", V + r"/(?P<comment_id>\d+)/replies")
    def reply_to_ig_comment(self, request: Request, comment_id: str):
        return self._reply_under(request, comment_id, "instagram", self.ig_id,
                                 "(#100) The parameter message is required")

    @route("GET", V + r"/me")
    def me(self, request: Request):
        """With a Page access token, "me" is the Page."""
        return self.profile(request, self.page_id)

    @route("GET", V + r"/(?P<node>\d+)")
    def profile(self, request: Request, node: str):
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            fields = self._fields(request)
            if node == self.ig_id and fields.startswith(("mentioned_comment.", "mentioned_media.")):
                return self._mentioned(fields)
            if node == self.page_id:
                return self._answer(200, self._only({"id": node, "name": self.page_name}, request))
            if node == self.ig_id:
                return self._answer(200, self._only({"id": node, "username": self.ig_username,
                                                     "name": self.page_name}, request))
            user = self.users.get(node)
            if user is None:
                return self._fail(400, f"Unsupported get request. Object with ID '{node}' does not exist, cannot "
                                       f"be loaded due to missing permissions, or does not support this operation.",
                                  100, 33, kind="GraphMethodException")
            answer = {"id": node, "name": user["name"]}
            if user["platform"] == "instagram":
                answer["username"] = user["username"]
            return self._answer(200, answer)

    def _mentioned(self, fields: str):
        """`?fields=mentioned_comment.comment_id(<id>){...}` or `mentioned_media.media_id(<id>){...}`."""
        match = re.fullmatch(r"(mentioned_comment)\.comment_id\((\w+)\)(?:\{(.*)\})?|"
                             r"(mentioned_media)\.media_id\((\w+)\)(?:\{(.*)\})?", fields)
        if not match:
            return self._fail(400, "(#100) Syntax error in fields", 100)
        edge, object_id, asked = (match.group(1), match.group(2), match.group(3)) if match.group(1) else \
            (match.group(4), match.group(5), match.group(6))
        if object_id not in self.mentions:
            return self._fail(400, f"(#100) Unsupported get request. Object with ID '{object_id}' does not "
                                   f"exist, or does not mention this user", 100, 33, kind="GraphMethodException")
        if edge == "mentioned_comment":
            comment = self.comments[object_id]
            full: dict[str, Any] = {"id": object_id, "text": comment["text"], "timestamp": graph_time(comment["created"]),
                                    "like_count": 0, "username": self.users[comment["from"]]["username"],
                                    "media": self._mentioned_media_json(comment["post"])}
        else:
            full = self._mentioned_media_json(object_id)
        return self._answer(200, {edge: select_fields(full, asked), "id": self.ig_id})

    def _mentioned_media_json(self, media_id: str) -> dict[str, Any]:
        media = self.media[media_id]
        entry: dict[str, Any] = {"id": media_id, "caption": media["caption"], "permalink": media["permalink"],
                                 "timestamp": graph_time(media["created"]), "media_type": "IMAGE",
                                 "like_count": 0, "comments_count": sum(
                                     1 for c in self.comments.values() if c["post"] == media_id)}
        if media.get("owner") is None:
            # `owner` only for the app user's own media; everyone else's shows a `username`.
            entry.update({"owner": {"id": self.ig_id}, "username": self.ig_username})
        else:
            entry["username"] = media["username"]
        return entry

    @route("POST", V + r"/(?P<node>\d+)/mentions")
    def reply_to_mention(self, request: Request, node: str):
        """A comment answering a mention: under the mentioning comment, or on the captioned media."""
        with self.lock:
            refused = self._refused(request)
            if refused:
                return refused
            body = self._body(request)
            media_id, comment_id, text = body.get("media_id"), body.get("comment_id"), body.get("message")
            if node != self.ig_id:
                return self._fail(400, "(#100) Unknown Instagram account", 100)
            if not media_id or media_id not in self.media:
                return self._fail(400, "(#100) The parameter media_id is required", 100)
            if (comment_id or media_id) not in self.mentions:
                return self._fail(400, f"(#100) Object with ID '{comment_id or media_id}' does not mention this "
                                       f"user", 100, 33, kind="GraphMethodException")
            if not isinstance(text, str) or not text.strip():
                return self._fail(400, "(#100) The parameter message is required", 100)
            new_id = str(17850000000000000 + self._next())
            self.comments[new_id] = {"id": new_id, "platform": "instagram", "post": media_id,
                                     "parent": comment_id, "from": self.ig_id, "text": text,
                                     "created": self.clock(), "malformed": False}
            self.sent.append({"kind": "mention_reply", "platform": "instagram", "id": new_id, "text": text,
                              "media_id": media_id, "in_reply_to": comment_id or media_id, "public": True})
            return self._answer(200, {"id": new_id})

    @route("GET", r"/media/(?P<name>[\w.-]+)")
    def media_file(self, request: Request, name: str):
        return 200, PHOTO, {"Content-Type": "image/jpeg"}
