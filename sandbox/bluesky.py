"""A loopback imitation of a Bluesky PDS (with the AppView and chat service behind it).

It follows shared/channels.md section 7 to the field name: `com.atproto.server.createSession` /
`refreshSession` (JWT-like opaque tokens that expire: 400 `{"error": "ExpiredToken", "message":
"Token has expired"}`; a wrong password 401 `AuthenticationRequired` "Invalid identifier or password"),
`com.atproto.server.getSession` (`handle`, `did`, `active` of the session's account), `app.bsky.notification.listNotifications` (newest first, `cursor` pages
backwards, `reasons` filter, `limit` 1-100, `seenAt` rejected with 400 `InvalidRequest`),
`com.atproto.repo.createRecord` (checks that `reply.root`/`reply.parent` name existing (uri,
cid) pairs, the 300-grapheme limit, and an `app.bsky.embed.images` embed: at most 4 images, each an
uploaded blob of at most 1,000,000 bytes whose type is `image/*` - BlobNotFound, BlobTooLarge,
InvalidMimeType), `com.atproto.repo.uploadBlob` (the raw body; 413 PayloadTooLarge over the PDS
upload limit; the type sniffed from the bytes like the PDS does; kept in `blobs`),
`app.bsky.feed.getPosts` (at most 25 `uris`), `app.bsky.actor.getProfiles`, and the chat service
behind `atproto-proxy: did:web:api.bsky.chat#bsky_chat` (`chat.bsky.convo.getLog`,
`chat.bsky.convo.sendMessage`, and `chat.bsky.convo.getConvoForMembers`, which returns the 1-1 convo
and makes it only when the recipient's `chat.bsky.actor.declaration` `allowIncoming` allows it: "all",
"following" when they follow us (the default), "none" never - `NotFollowedBySender`,
`MessagesDisabled`, `RecipientNotFound`, `BlockedActor`/`BlockedSubject`), and
`com.atproto.identity.resolveHandle` (400 `InvalidRequest` "Unable to resolve handle"). Every answer carries `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` (epoch seconds) and `RateLimit-Policy`; a 429 adds
`Retry-After`. Embedded images are served under `/img/feed_fullsize/plain/{did}/{cid}@jpeg`.

Tests drive it with `customer_mention`, `customer_reply`, `customer_quote`, `our_post`, `customer_dm`,
`customer_deletes_dm`, `reaction`, `read_up_to`, `convo_event`, `chat_event_of_unknown_type`,
`chat_settings`, `block`,
`malformed_notification`, `duplicate`, `expire_token`, `rate_limited`, and read `sent`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import secrets
import time
from typing import Any

import regex

from sandbox.base import Imitation, Request, route
from sandbox.x import PHOTO

CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"


def sniff(data: bytes) -> str | None:
    """The media type of a file from its first bytes, as the PDS finds it (file-type)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def xrpc_error(status: int, error: str, message: str, headers: dict[str, str] | None = None):
    return status, {"error": error, "message": message}, dict(headers or {})


class BlueskyImitation(Imitation):
    """A PDS on 127.0.0.1 for the account `handle`, logging in with `app_password`."""

    name = "bluesky"

    def __init__(self, *, handle: str = "acme.bsky.social", app_password: str = "abcd-efgh-ijkl-mnop",
                 page_size: int | None = None, token_seconds: float = 7200,
                 blob_upload_limit: int = 5 * 1024 * 1024, image_max_bytes: int = 1_000_000) -> None:
        super().__init__()
        self.handle = handle
        self.did = "did:plc:acme0000000000"
        self.app_password = app_password
        self.page_size = page_size
        self.token_seconds = token_seconds
        self.profiles: dict[str, dict[str, str]] = {self.did: {"did": self.did, "handle": handle,
                                                               "displayName": "Acme Support"}}
        self.posts: dict[str, dict[str, Any]] = {}  # uri -> {uri, cid, author, record, indexedAt}
        self.notifications: list[dict[str, Any]] = []  # oldest first; duplicates possible
        self.chat_log: list[dict[str, Any]] = []  # oldest first
        #: Direct convos by id: the DIDs of their two members.
        self.convos: dict[str, tuple[str, str]] = {}
        #: `allowIncoming` of each account's chat declaration ("following" when it has none, as the
        #: Bluesky app sets it), the accounts that follow us, and blocks as (blocker, blocked).
        self.allow_incoming: dict[str, str] = {}
        self.followers: set[str] = set()
        self.blocks: set[tuple[str, str]] = set()
        #: The `members` of every getConvoForMembers call, in order.
        self.convo_requests: list[list[str]] = []
        self.sent: list[dict[str, Any]] = []
        #: Uploaded blobs by CID: {"data", "mimeType", "size"} (PDS `blobUploadLimit`; the post
        #: lexicon's image `maxSize` is checked when a record names the blob).
        self.blobs: dict[str, dict[str, Any]] = {}
        self.blob_upload_limit = blob_upload_limit
        self.image_max_bytes = image_max_bytes
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        self._clock = itertools.count()
        self._serial = itertools.count(1)
        self._remaining = 3000

    # State the tests drive ---------------------------------------------------------------------

    def _now(self) -> str:
        moment = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=next(self._clock))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def account(self, handle: str, display_name: str | None = None) -> str:
        for profile in self.profiles.values():
            if profile["handle"] == handle:
                return profile["did"]
        did = "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
        self.profiles[did] = {"did": did, "handle": handle, "displayName": display_name or handle.split(".")[0].title()}
        return did

    def _new_post(self, did: str, text: str, *, parent: str | None = None, image: bool = False) -> dict[str, Any]:
        serial = next(self._serial)
        rkey = f"3lk{serial:010d}"
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        cid = "bafyrei" + hashlib.sha256(uri.encode()).hexdigest()[:52]
        record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": text, "createdAt": self._now(), "langs": ["en"]}
        if parent:
            parent_post = self.posts[parent]
            root = parent_post["record"].get("reply", {}).get("root") or {"uri": parent, "cid": parent_post["cid"]}
            record["reply"] = {"root": root, "parent": {"uri": parent, "cid": parent_post["cid"]}}
        if image:
            blob_cid = "bafkrei" + hashlib.sha256(f"img{serial}".encode()).hexdigest()[:52]
            record["embed"] = {"$type": "app.bsky.embed.images", "images": [{
                "alt": "photo of the broken item",
                "image": {"$type": "blob", "ref": {"$link": blob_cid}, "mimeType": "image/jpeg", "size": len(PHOTO)}}]}
        post = {"uri": uri, "cid": cid, "author": did, "record": record, "indexedAt": record["createdAt"]}
        self.posts[uri] = post
        return post

    def _notify(self, post: dict[str, Any], reason: str) -> None:
        self.notifications.append({
            "uri": post["uri"], "cid": post["cid"], "author": dict(self.profiles[post["author"]]),
            "reason": reason, "record": post["record"], "isRead": False, "indexedAt": post["indexedAt"], "labels": []})

    def customer_mention(self, handle: str, text: str | None = None, *, name: str | None = None,
                         image: bool = False) -> str:
        """A customer's post mentioning us; returns its at-uri."""
        with self.lock:
            did = self.account(handle, name)
            text = text or f"@{self.handle} my order arrived broken"
            if f"@{self.handle}" not in text:
                text = f"@{self.handle} {text}"
            post = self._new_post(did, text, image=image)
            self._notify(post, "mention")
            return post["uri"]

    def customer_reply(self, handle: str, parent: str, text: str, *, name: str | None = None) -> str:
        """A customer's reply to `parent`: a `reply` notification when the parent is ours, else a mention."""
        with self.lock:
            did = self.account(handle, name)
            post = self._new_post(did, text, parent=parent)
            if self.posts[parent]["author"] == self.did:
                self._notify(post, "reply")
            elif f"@{self.handle}" in text:
                self._notify(post, "mention")
            return post["uri"]

    def customer_quote(self, handle: str, quoted: str, text: str, *, name: str | None = None,
                       image: bool = False) -> str:
        """A customer's post quoting `quoted` (`app.bsky.embed.record`, or `recordWithMedia` with an
        image): a `quote` notification when the quoted post is ours, else a mention."""
        with self.lock:
            did = self.account(handle, name)
            post = self._new_post(did, text, image=image)
            ref = {"uri": quoted, "cid": self.posts[quoted]["cid"]}
            if image:
                post["record"]["embed"] = {"$type": "app.bsky.embed.recordWithMedia",
                                           "record": {"$type": "app.bsky.embed.record", "record": ref},
                                           "media": post["record"]["embed"]}
            else:
                post["record"]["embed"] = {"$type": "app.bsky.embed.record", "record": ref}
            if self.posts[quoted]["author"] == self.did:
                self._notify(post, "quote")
            elif f"@{self.handle}" in text:
                self._notify(post, "mention")
            return post["uri"]

    def our_post(self, text: str, *, parent: str | None = None) -> str:
        with self.lock:
            return self._new_post(self.did, text, parent=parent)["uri"]

    def customer_dm(self, handle: str, text: str = "Hi, any update?", *, name: str | None = None) -> str:
        """A customer's chat message to us; returns the message id."""
        with self.lock:
            did = self.account(handle, name)
            return self._chat(did, self._convo_with(did), text)

    def _convo_with(self, did: str) -> str:
        """The direct convo of us and `did` (one per pair, as the chat service keeps it)."""
        convo = "convo" + hashlib.sha256(did.encode()).hexdigest()[:12]
        self.convos.setdefault(convo, (self.did, did))
        return convo

    def chat_settings(self, handle: str, allow_incoming: str = "all", *, follows_us: bool = False) -> str:
        """The customer's chat declaration (`allowIncoming`: all, following, none) and whether they
        follow our account; returns their DID."""
        with self.lock:
            did = self.account(handle)
            self.allow_incoming[did] = allow_incoming
            (self.followers.add if follows_us else self.followers.discard)(did)
            return did

    def block(self, handle: str, *, by_customer: bool = True) -> None:
        """The customer blocks us (or we block them)."""
        with self.lock:
            did = self.account(handle)
            self.blocks.add((did, self.did) if by_customer else (self.did, did))

    def _chat(self, sender: str, convo: str, text: str) -> str:
        serial = next(self._serial)
        rev = f"222{serial:010d}"
        message_id = f"msg{serial:010d}"
        self.chat_log.append({"$type": "chat.bsky.convo.defs#logCreateMessage", "rev": rev, "convoId": convo,
                              "message": {"$type": "chat.bsky.convo.defs#messageView", "id": message_id, "rev": rev,
                                          "text": text, "sender": {"did": sender}, "sentAt": self._now()}})
        return message_id

    def _log(self, kind: str, convo: str, **fields: Any) -> dict[str, Any]:
        """Append a `chat.bsky.convo.defs#<kind>` event with the next rev."""
        entry = {"$type": f"chat.bsky.convo.defs#{kind}", "rev": f"222{next(self._serial):010d}", "convoId": convo,
                 **fields}
        self.chat_log.append(entry)
        return entry

    def _chat_message(self, message_id: str) -> tuple[str, dict[str, Any]]:
        for entry in self.chat_log:
            message = entry.get("message")
            if entry["$type"].endswith("#logCreateMessage") and message["id"] == message_id:
                return entry["convoId"], message
        raise KeyError(message_id)

    def customer_deletes_dm(self, message_id: str) -> None:
        """`logDeleteMessage` with the message as a `deletedMessageView` (no text)."""
        with self.lock:
            convo, message = self._chat_message(message_id)
            self._log("logDeleteMessage", convo, message={
                "$type": "chat.bsky.convo.defs#deletedMessageView", "id": message["id"], "rev": message["rev"],
                "sender": dict(message["sender"]), "sentAt": message["sentAt"]})

    def reaction(self, message_id: str, value: str = "\U0001f44d", *, by: str | None = None,
                 removed: bool = False) -> None:
        """`logAddReaction` (or `logRemoveReaction`) on a message: `{message, reaction: reactionView}`."""
        with self.lock:
            convo, message = self._chat_message(message_id)
            sender = self.account(by) if by else message["sender"]["did"]
            self._log("logRemoveReaction" if removed else "logAddReaction", convo, message=dict(message),
                      reaction={"value": value, "sender": {"did": sender}, "createdAt": self._now()})

    def read_up_to(self, message_id: str) -> None:
        """`logReadMessage`: the convo was read up to this message."""
        with self.lock:
            convo, message = self._chat_message(message_id)
            self._log("logReadMessage", convo, message=dict(message))

    def convo_event(self, handle: str, kind: str) -> None:
        """`logBeginConvo`, `logAcceptConvo`, `logLeaveConvo`, `logMuteConvo` or `logUnmuteConvo`."""
        with self.lock:
            self._log(kind, self._convo_with(self.account(handle)))

    def chat_event_of_unknown_type(self, handle: str) -> None:
        """An event type the chat service may add later (here a group-chat one, still unstable)."""
        with self.lock:
            self._log("logAddMember", self._convo_with(self.account(handle)),
                      message={"$type": "chat.bsky.convo.defs#systemMessageView", "id": "sys1", "rev": "1",
                               "sentAt": self._now(), "data": {}}, relatedProfiles=[])

    def malformed_notification(self) -> None:
        """A notification whose record has no text and whose author has no did."""
        with self.lock:
            serial = next(self._serial)
            self.notifications.append({"uri": f"at://did:plc:broken/app.bsky.feed.post/3lkbad{serial}",
                                       "cid": "bafyreibroken", "author": {"handle": "broken.bsky.social"},
                                       "reason": "mention", "record": {"$type": "app.bsky.feed.post"},
                                       "isRead": False, "indexedAt": self._now()})

    def duplicate(self, uri: str) -> None:
        """List the notification of `uri` again (a glitch, or a post both mentioning and replying)."""
        with self.lock:
            for entry in list(self.notifications):
                if entry["uri"] == uri:
                    self.notifications.append(dict(entry))
                    return

    def expire_token(self) -> None:
        """Every access token handed out so far expires (400 ExpiredToken)."""
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0

    def rate_limited(self, seconds: int = 30, *, path_prefix: str | None = None) -> None:
        reset = str(int(time.time()) + seconds)
        self.fail_next(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                       {"RateLimit-Limit": "3000", "RateLimit-Remaining": "0", "RateLimit-Reset": reset,
                        "RateLimit-Policy": "3000;w=300", "Retry-After": str(seconds)}, path_prefix=path_prefix)

    def server_error(self, status: int = 502, *, path_prefix: str | None = None) -> None:
        self.fail_next(status, {"error": "InternalServerError", "message": "Internal Server Error"},
                       path_prefix=path_prefix)

    # Helpers ------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        self._remaining = max(0, self._remaining - 1)
        return {"RateLimit-Limit": "3000", "RateLimit-Remaining": str(self._remaining),
                "RateLimit-Reset": str(int(time.time()) + 300), "RateLimit-Policy": "3000;w=300"}

    def _issue(self) -> dict[str, Any]:
        access, refresh = f"eyJ.access.{secrets.token_hex(8)}", f"eyJ.refresh.{secrets.token_hex(8)}"
        self.access_tokens[access] = time.time() + self.token_seconds
        self.refresh_tokens.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.handle, "did": self.did,
                "active": True}

    def _auth(self, request: Request, headers: dict[str, str]):
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return xrpc_error(401, "AuthMissing", "Authentication Required", headers)
        token = auth[7:]
        if token not in self.access_tokens:
            return xrpc_error(401, "InvalidToken", "Token could not be verified", headers)
        if self.access_tokens[token] < time.time():
            return xrpc_error(400, "ExpiredToken", "Token has expired", headers)
        return None

    def _post_view(self, post: dict[str, Any]) -> dict[str, Any]:
        return {"uri": post["uri"], "cid": post["cid"], "author": dict(self.profiles[post["author"]]),
                "record": post["record"], "indexedAt": post["indexedAt"], "replyCount": 0, "likeCount": 0,
                "labels": []}

    # Routes -------------------------------------------------------------------------------------

    @route("POST", r"/xrpc/com\.atproto\.server\.createSession")
    def create_session(self, request: Request):
        with self.lock:
            headers = self._headers()
            body = request.json()
            if body.get("identifier") not in (self.handle, self.did) or body.get("password") != self.app_password:
                return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password", headers)
            self.logins += 1
            return 200, self._issue(), headers

    @route("GET", r"/xrpc/com\.atproto\.server\.getSession")
    def get_session(self, request: Request):
        """The session's account: `handle`, `did`, `active` (no email: an app password does not show it)."""
        with self.lock:
            headers = self._headers()
            refused = self._auth(request, headers)
            if refused:
                return refused
            return 200, {"handle": self.handle, "did": self.did, "active": True}, headers

    @route("POST", r"/xrpc/com\.atproto\.server\.refreshSession")
    def refresh_session(self, request: Request):
        with self.lock:
            headers = self._headers()
            auth = request.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
            if token not in self.refresh_tokens:
                return xrpc_error(400, "ExpiredToken", "Token has expired", headers)
            self.refresh_tokens.discard(token)
            self.refreshes += 1
            return 200, self._issue(), headers

    @route("GET", r"/xrpc/app\.bsky\.notification\.listNotifications")
    def list_notifications(self, request: Request):
        with self.lock:
            headers = self._headers()
            refused = self._auth(request, headers)
            if refused:
                return refused
            if request.arg("seenAt") is not None:
                return xrpc_error(400, "InvalidRequest", "The seenAt parameter is unsupported", headers)
            try:
                limit = int(request.arg("limit", "50"))
            except ValueError:
                limit = 0
            if not 1 <= limit <= 100:
                return xrpc_error(400, "InvalidRequest", "limit must be between 1 and 100", headers)
            if self.page_size:
                limit = min(limit, self.page_size)
            reasons = request.query.get("reasons") or []
            entries = [n for n in reversed(self.notifications) if not reasons or n.get("reason") in reasons]
            entries.sort(key=lambda n: n["indexedAt"], reverse=True)
            cursor = request.arg("cursor")
            if cursor:
                entries = [n for n in entries if n["indexedAt"] < cursor]
            page = entries[:limit]
            body: dict[str, Any] = {"notifications": page}
            if page:
                # Like the AppView: a cursor whenever the page was not empty (the next page may be).
                body["cursor"] = page[-1]["indexedAt"]
            return 200, body, headers

    @route("GET", r"/xrpc/app\.bsky\.feed\.getPosts")
    def get_posts(self, request: Request):
        with self.lock:
            headers = self._headers()
            refused = self._auth(request, headers)
            if refused:
                return refused
            uris = request.query.get("uris") or []
            if len(uris) > 25:
                return xrpc_error(400, "InvalidRequest", "Error: uris must not have more than 25 elements", headers)
            # Deleted posts (and those hidden by a block) are simply not in the answer.
            return 200, {"posts": [self._post_view(self.posts[u]) for u in uris if u in self.posts]}, headers

    @route("GET", r"/xrpc/app\.bsky\.actor\.getProfiles")
    def get_profiles(self, request: Request):
        with self.lock:
            headers = self._headers()
            refused = self._auth(request, headers)
            if refused:
                return refused
            actors = request.query.get("actors") or []
            return 200, {"profiles": [self.profiles[a] for a in actors if a in self.profiles]}, headers

    @route("POST", r"/xrpc/com\.atproto\.repo\.createRecord")
    def create_record(self, request: Request):
        with self.lock:
            headers = self._headers()
            refused = self._auth(request, headers)
            if refused:
                return refused
            body = request.json()
            record = body.get("record") if isinstance(body.get("record"), dict) else {}
            if body.get("repo") != self.did or body.get("collection") != "app.bsky.feed.post":
                return xrpc_error(400, "InvalidRequest", "Input/repo must be the authenticated account", headers)
            text = record.get("text")
            if not isinstance(text, str) or not record.get("createdAt"):
                return xrpc_error(400, "InvalidRequest", "Input/record must have the properties text and createdAt",
                                  headers)
            if len(regex.findall(r"\X", text)) > 300 or len(text.encode()) > 3000:
                return xrpc_error(400, "InvalidRequest",
                                  "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 "
                                  "graphemes", headers)
            refused = self._embed_refused(record.get("embed"), headers)
            if refused:
                return refused
            reply = record.get("reply")
            if reply is not None:
                for part in ("root", "parent"):
                    ref = reply.get(part) if isinstance(reply, dict) else None
                    post = self.posts.get(ref.get("uri")) if isinstance(ref, dict) else None
                    if not post or post["cid"] != ref.get("cid"):
                        return xrpc_error(400, "InvalidRequest", f"Reply {part} does not name an existing post",
                                          headers)
            post = self._new_post(self.did, text)
            post["record"] = {**record}
            self.sent.append({"kind": "post", "uri": post["uri"], "text": text, "public": True,
                              "in_reply_to": (reply or {}).get("parent", {}).get("uri"),
                              "root": (reply or {}).get("root", {}).get("uri"), "record": record})
            return 200, {"uri": post["uri"], "cid": post["cid"],
                         "commit": {"cid": "bafyreicommit", "rev": f"3lk{len(self.sent):010d}"},
                         "validationStatus": "valid"}, headers

    @route("POST", r"/xrpc/com\.atproto\.repo\.uploadBlob")
    def upload_blob(self, request: Request):
        """The body is the file. Like the PDS: any type is taken (the type is sniffed from the bytes,
        else the Content-Type header); only the PDS upload limit applies here (413 PayloadTooLarge)."""
        with self.lock:
            headers = self._headers()
            refused = self._auth(request, headers)
            if refused:
                return refused
            data = request.body
            if len(data) > self.blob_upload_limit:
                return xrpc_error(413, "PayloadTooLarge", "request entity too large", headers)
            mime = sniff(data) or (request.headers.get("Content-Type") or "application/octet-stream").split(";")[0]
            cid = "bafkrei" + hashlib.sha256(data).hexdigest()[:52]
            self.blobs[cid] = {"data": data, "mimeType": mime, "size": len(data)}
            return 200, {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}}, headers

    def _embed_refused(self, embed: Any, headers: dict[str, str]):
        """The checks of an `app.bsky.embed.images` embed the PDS makes on createRecord."""
        if not isinstance(embed, dict) or embed.get("$type") != "app.bsky.embed.images":
            return None
        images = embed.get("images")
        if not isinstance(images, list) or len(images) > 4:
            return xrpc_error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: "
                              "Record/embed/images must not have more than 4 elements", headers)
        for image in images:
            blob = image.get("image") if isinstance(image, dict) else None
            if not isinstance(blob, dict) or not isinstance(image.get("alt"), str):
                return xrpc_error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: "
                                  "Record/embed/images/0 must have the properties \"image\" and \"alt\"", headers)
            cid = (blob.get("ref") or {}).get("$link") if isinstance(blob.get("ref"), dict) else None
            found = self.blobs.get(cid)
            if not found:
                return xrpc_error(400, "BlobNotFound", f"Could not find blob: {cid}", headers)
            if found["size"] > self.image_max_bytes:
                return xrpc_error(400, "BlobTooLarge", f"This file is too large. It is {found['size']} bytes but "
                                  f"the maximum size is {self.image_max_bytes} bytes.", headers)
            if not found["mimeType"].startswith("image/"):
                return xrpc_error(400, "InvalidMimeType", f"Wrong type of file. It is {found['mimeType']} but it "
                                  "must match image/*.", headers)
            if blob.get("mimeType") != found["mimeType"]:
                return xrpc_error(400, "InvalidMimeType", "Referenced Mimetype does not match stored blob. "
                                  f"Expected: {found['mimeType']}, Got: {blob.get('mimeType')}", headers)
        return None

    def _chat_refused(self, request: Request, headers: dict[str, str]):
        refused = self._auth(request, headers)
        if refused:
            return refused
        if request.headers.get("atproto-proxy") != CHAT_PROXY:
            return xrpc_error(400, "InvalidRequest", "Bad token method", headers)
        return None

    @route("GET", r"/xrpc/chat\.bsky\.convo\.getLog")
    def get_log(self, request: Request):
        with self.lock:
            headers = self._headers()
            refused = self._chat_refused(request, headers)
            if refused:
                return refused
            cursor = request.arg("cursor") or ""
            logs = [entry for entry in self.chat_log if entry["rev"] > cursor]
            if self.page_size:
                logs = logs[: self.page_size]
            return 200, {"logs": logs, "cursor": logs[-1]["rev"] if logs else cursor or None}, headers

    @route("POST", r"/xrpc/chat\.bsky\.convo\.sendMessage")
    def send_message(self, request: Request):
        with self.lock:
            headers = self._headers()
            refused = self._chat_refused(request, headers)
            if refused:
                return refused
            body = request.json()
            convo = body.get("convoId")
            text = (body.get("message") or {}).get("text") if isinstance(body.get("message"), dict) else None
            known = [e for e in self.chat_log if e["convoId"] == convo and isinstance(e.get("message"), dict)]
            if convo not in self.convos and not known:
                return xrpc_error(400, "InvalidConvo", "Convo not found", headers)
            if not isinstance(text, str) or not text:
                return xrpc_error(400, "InvalidRequest", "Input/message/text is required", headers)
            if len(regex.findall(r"\X", text)) > 1000 or len(text.encode()) > 10_000:
                return xrpc_error(400, "InvalidRequest", "Input/message/text must not be longer than 1000 graphemes",
                                  headers)
            theirs = [e for e in known if e["message"]["sender"]["did"] != self.did
                      and e["$type"].endswith("#logCreateMessage")]
            message_id = self._chat(self.did, convo, text)
            self.sent.append({"kind": "dm", "id": message_id, "convoId": convo, "text": text, "public": False,
                              "in_reply_to": f"chat:{theirs[-1]['message']['id']}" if theirs else None})
            return 200, self.chat_log[-1]["message"], headers

    @route("GET", r"/xrpc/chat\.bsky\.convo\.getConvoForMembers")
    def get_convo_for_members(self, request: Request):
        """Get or create the direct convo with the other member, as far as their chat settings allow."""
        with self.lock:
            headers = self._headers()
            refused = self._chat_refused(request, headers)
            if refused:
                return refused
            members = request.query.get("members") or []
            self.convo_requests.append(list(members))
            if not 1 <= len(members) <= 10 or not all(m.startswith("did:") for m in members):
                return xrpc_error(400, "InvalidRequest", "Input/members must be 1-10 DIDs", headers)
            others = sorted({m for m in members if m != self.did})
            if len(others) != 1:
                return xrpc_error(400, "InvalidRequest", "A direct convo has exactly one other member", headers)
            other = others[0]
            if other not in self.profiles:
                return xrpc_error(400, "RecipientNotFound", "recipient not found", headers)
            if (other, self.did) in self.blocks:
                return xrpc_error(400, "BlockedSubject", "recipient has blocked the sender", headers)
            if (self.did, other) in self.blocks:
                return xrpc_error(400, "BlockedActor", "sender has blocked the recipient", headers)
            convo = "convo" + hashlib.sha256(other.encode()).hexdigest()[:12]
            if convo not in self.convos:
                allow = self.allow_incoming.get(other, "following")
                if allow == "none":
                    return xrpc_error(400, "MessagesDisabled", "recipient has disabled incoming messages", headers)
                if allow == "following" and other not in self.followers:
                    return xrpc_error(400, "NotFollowedBySender",
                                      "recipient requires incoming messages to come from someone they follow", headers)
                self._convo_with(other)
                self._log("logBeginConvo", convo)
            rev = max((e["rev"] for e in self.chat_log if e["convoId"] == convo), default="2220000000000")
            view = {"id": convo, "rev": rev, "members": [
                {"did": d, "handle": self.profiles[d]["handle"], "displayName": self.profiles[d]["displayName"]}
                for d in self.convos[convo]], "muted": False, "unreadCount": 0, "status": "accepted"}
            return 200, {"convo": view}, headers

    @route("GET", r"/xrpc/com\.atproto\.identity\.resolveHandle")
    def resolve_handle(self, request: Request):
        with self.lock:
            headers = self._headers()
            handle = (request.arg("handle") or "").lower()
            for profile in self.profiles.values():
                if profile["handle"] == handle:
                    return 200, {"did": profile["did"]}, headers
            return xrpc_error(400, "InvalidRequest", "Unable to resolve handle", headers)

    @route("GET", r"/img/feed_fullsize/plain/(?P<did>[^/]+)/(?P<cid>[^/@]+)@jpeg")
    def image(self, request: Request, did: str, cid: str):
        return 200, PHOTO, {"Content-Type": "image/jpeg"}
