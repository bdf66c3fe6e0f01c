"""Mastodon: mentions and direct messages of one account, read from its notifications and answered in thread.

Setup
-----
On your Mastodon server, signed in as the support account: Preferences → Development → New
application. Name it "Mainland", tick the scopes `read:notifications`, `read:statuses`,
`write:statuses` and `write:media` (nothing else is needed), save, open the application and copy
"Your access token". Put it in `access_token` as {"$env": "MASTODON_TOKEN"} and the server's address in `base_url`. See
docs/channels/mastodon.md.

What comes in
-------------
`GET /api/v1/notifications?types[]=mention`: every status that mentions the account. A status
with visibility `direct` ("visible only to mentioned users") is a direct message: a private
conversation. Public, unlisted and followers-only mentions are public items. The status HTML
(already sanitized by Mastodon, sanitized again by Mainland) is kept and turned into plain text;
a content warning (`spoiler_text`) becomes the subject; media attachments are downloaded through
the SSRF-guarded fetch (a file that cannot be fetched is listed without content).

A status that answers another (`in_reply_to_id`) shows the status it answers above it: its
text (its HTML turned into plain text, at most 500 characters) and its `url`, read with
`GET /api/v1/statuses/:id` once per parent per poll. A parent that is gone (404, 410) or that the
token may not read (403: the token lacks `read:statuses`; logged) leaves that context empty; a
429 or 5xx stops the poll like any other call.

An item's id is the status id, so the same status reached twice is stored once. A mention whose
`status` is null (the status was deleted) is skipped and counted in the log, not quarantined. The customer is
their account address (`user@server`; local accounts get this server's domain). The conversation
key is `<visibility>:<address>`: a customer's direct messages and their public (or unlisted, or
followers-only) mentions go to separate conversations, so a reply never changes who can read it.

Cursor
------
The cursor is the newest notification id stored. Each poll asks `min_id=<cursor>`, which reads
forward from the cursor in pages of `page_size` (Mastodon sends each page newest first; Mainland
stores it oldest first), taking the next cursor from the `Link: rel="prev"` header. Ids are
compared as Mastodon orders them (length, then text), never as numbers. The first poll reads
every mention the server still has, oldest first.

Replies
-------
`POST /api/v1/statuses` with `in_reply_to_id` = the status answered and the same visibility as
that status (the conversation's): a direct message is answered directly, and the reply starts with the customer's
`@address` (added when the agent did not write it) because a direct status only reaches the
accounts it mentions. `Idempotency-Key` is the outbox id, so a reply resent after a crash is
posted once (Mastodon keeps keys for an hour). The length is counted as Mastodon counts it (a
link is 23 characters, a mention counts its user name only) against `max_characters` (500 unless
your server allows more). 429 waits until `X-RateLimit-Reset`; 5xx and timeouts are retried;
401 (a revoked token), 404 (the status was deleted) and 422 (refused, e.g. too long) are
permanent and the agent sees Mastodon's `error`.

Writing first
-------------
An agent may start a conversation with a customer's Mastodon address (`user@server`,
`limits.starts_conversations = "any"`): a private mention, `POST /api/v1/statuses` with
`visibility=direct`, no `in_reply_to_id` (it answers nothing) and the text starting with
`@user@server`. The mention is what delivers it: a direct status reaches only the accounts it
mentions, so the connector reads the `mentions` of the status Mastodon returns, and when the
customer is not among them (the address does not exist, their server cannot be reached, or the
support account blocked them) the agent is told that nobody received it; the status stays visible
to the support account only, and a resend (same `Idempotency-Key`) posts nothing new. The
customer's answer is a direct status replying to ours; it carries the thread key
`direct:<address>` (`thread_key_for`), so it joins the conversation we started. Mastodon offers no
way to know the customer's notification settings: one who filters private mentions from accounts
they do not follow finds the message under their filtered notifications.

A reply may carry up to 4 files (images, MP4/WebM video, MP3/OGG/WAV audio; at most 10 MB each,
Mastodon's documented image limit). Each is uploaded with `POST /api/v2/media` (multipart `file`):
200 with its `url` is ready; 202 means the server is still processing it, and the connector looks
again with `GET /api/v1/media/:id` (206 while processing) a few times over about 15 seconds, after
which the send is retried later. The status names them in `media_ids[]`. A retried send uploads
again, but the status keeps its `Idempotency-Key` and is posted once. A 403 on upload means the
token lacks `write:media`; a 422 ("File content type is invalid", "File file size must be less
than ...") reaches the agent with what to do. Uploads have their own rate limit (30 per 30
minutes): a 429 waits until its `X-RateLimit-Reset`.

Settings
--------
base_url (required), access_token (secret, required), account_domain (the host of base_url),
max_characters (500), page_size (40, at most 80), timeout (30).
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors._http import Http
from connectors._meta import reply_context
from connectors._probe import http_probe
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
from inbox.sanitize import html_to_text

DEFAULT_MAX_CHARACTERS = 500
#: Files per status (`configuration.statuses.max_media_attachments`, 4 on Mastodon).
MAX_MEDIA = 4
#: Mastodon's documented defaults (`configuration.media_attachments` of `GET /api/v2/instance`): images up
#: to 10 MB (`image_size_limit`), video and audio up to 40 MB. One number is declared: the smaller.
MAX_MEDIA_BYTES = 10 * 1024 * 1024
#: A subset of `supported_mime_types` that agents send: pictures, short videos, voice messages.
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm",
               "video/quicktime", "audio/mpeg", "audio/mp3", "audio/ogg", "audio/wav")
#: Mastodon counts every link as this many characters (configuration.statuses.characters_reserved_per_url).
URL_CHARACTERS = 23
VISIBILITIES = ("public", "unlisted", "private", "direct")
_URL = re.compile(r"https?://[^\s<>\"']+")
_MENTION = re.compile(r"(?<![\w/])@(\w+(?:[.-]+\w+)*)@[\w.-]+\w", re.ASCII)
_ADDRESS = re.compile(r"\w+(?:[.-]+\w+)*@[\w-]+(?:\.[\w-]+)+")
_STATUS_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MEDIA_TYPES = {"image": "image/jpeg", "gifv": "video/mp4", "video": "video/mp4", "audio": "audio/mpeg"}


def id_key(status_id: str) -> tuple[int, str]:
    """Mastodon's order of ids: shorter first, then by text (ids are opaque strings, never numbers)."""
    return len(status_id), status_id


def status_length(text: str) -> int:
    """The length Mastodon counts: each link as 23 characters, `@user@server` as `@user`."""
    counted = _URL.sub("x" * URL_CHARACTERS, text)
    counted = _MENTION.sub(lambda m: "@" + m.group(1), counted)
    return len(counted)


class MastodonConnector(Connector):
    kind = "mastodon"
    identities = (IdentityRule("mastodon", case_insensitive=True, strip_at=True),)
    display_name = N_("Mastodon")
    icon_text = "M"
    icon_color = "#563acc"
    settings = (
        Setting("base_url", required=True, help=N_("Your Mastodon server, e.g. https://mastodon.social.")),
        Setting("access_token", required=True, secret=True,
                help=N_("Access token of the support account's application (read:notifications, read:statuses, "
                        "write:statuses, write:media).")),
        Setting("account_domain", default="",
                help=N_("The server part of local account addresses (@support@<this>); default: the host of base_url.")),
        Setting("max_characters", default=DEFAULT_MAX_CHARACTERS,
                help=N_("Longest status the server accepts (configuration.statuses.max_characters of /api/v2/instance).")),
        Setting("page_size", default=40, help=N_("Notifications per request, at most 80.")),
        Setting("timeout", default=30, help=N_("Seconds to wait for the server.")),
    )
    limits = Limits(max_text_length=DEFAULT_MAX_CHARACTERS, formatting="plain", attachment_types=MEDIA_TYPES,
                    max_attachment_bytes=MAX_MEDIA_BYTES, max_attachments=MAX_MEDIA, starts_conversations="any")
    #: A conversation we start goes to a customer's Mastodon address (`user@server`) as a private mention.
    writes_to = ("mastodon",)
    #: Every status carries `Idempotency-Key: <outbox id>`: a resend posts nothing new.
    idempotent_sends = True
    default_poll_every = 60.0
    #: Seconds between looks at an upload the server is still processing (202); then the send is retried.
    media_waits: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self, name: str, config: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.base_url = str(self.config["base_url"]).rstrip("/")
        self.domain = str(self.config.get("account_domain") or urlsplit(self.base_url).hostname or "").lower()
        self.page_size = min(max(int(self.config["page_size"]), 1), 80)
        self.max_characters = int(self.config["max_characters"])
        self.http = Http(self.base_url, timeout=float(self.config["timeout"]), redact=self.redact,
                         headers={"Authorization": f"Bearer {self.config['access_token']}"},
                         error_message=lambda body: body.get("error") if isinstance(body, dict) else None)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems = []
        if urlsplit(str(merged["base_url"])).scheme not in ("http", "https"):
            problems.append("base_url: must start with https:// (the address of your Mastodon server)")
        for key in ("max_characters", "page_size"):
            try:
                if int(merged[key]) < 1:
                    problems.append(f"{key}: must be a positive number")
            except (TypeError, ValueError):
                problems.append(f"{key}: not a number")
        if problems:
            raise PermanentError("; ".join(problems))
        return merged

    # Polling ----------------------------------------------------------------------------------

    def fetch(self, cursor: str | None) -> FetchResult:
        params = [("types[]", "mention"), ("limit", str(self.page_size)), ("min_id", cursor or "0")]
        response = self.http.request("GET", "/api/v1/notifications", params=params)
        try:
            page = response.json()
        except ValueError:
            raise RetryableError("Mastodon answered the notifications request with something that is not JSON") from None
        if not isinstance(page, list):
            raise RetryableError("Mastodon answered the notifications request without a list")
        ids = [n["id"] for n in page if isinstance(n, dict) and isinstance(n.get("id"), str)]
        # A min_id page comes newest first; we store oldest first.
        ordered = sorted(page, key=lambda n: id_key(n["id"]) if isinstance(n, dict) and isinstance(n.get("id"), str)
                         else (0, ""))
        items, rejects = self._convert(ordered)
        self._add_answered_statuses(items)
        newest = _prev_min_id(response) or (max(ids, key=id_key) if ids else None)
        if newest is None or (cursor and id_key(newest) <= id_key(cursor)):
            # Nothing newer, or a server handing back the same page (IN-57): stay, and stop this poll.
            return FetchResult(items=items, cursor=cursor, rejects=rejects, more=False)
        more = len(page) >= self.page_size and response.headers.get("X-RateLimit-Remaining") != "0"
        return FetchResult(items=items, cursor=newest, rejects=rejects, more=more)

    def _convert(self, notifications: list[Any]) -> tuple[list[InboundItem], list[Reject]]:
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        deleted = 0
        for notification in notifications:
            if _status_deleted(notification):
                deleted += 1  # nothing left to answer or to keep: not a malformed item
                continue
            try:
                item = self._to_item(notification)
            except (RetryableError, PermanentError):
                raise
            except Exception as exc:  # one malformed notification must not stop the poll
                ref = notification.get("id") if isinstance(notification, dict) else None
                rejects.append(Reject(raw=_raw(notification), reason=self.redact(str(exc)) or type(exc).__name__,
                                      source_ref=f"notification:{ref}" if ref else None,
                                      exception=type(exc).__name__))
                continue
            if item is not None:
                items.append(item)
        if deleted:
            self.log.info("%s: %d mention(s) skipped because their status was deleted", self.name, deleted)
        return items, rejects

    def _add_answered_statuses(self, items: list[InboundItem]) -> None:
        """Give each reply the text and link of the status it answers ("which coat?").

        Each parent is asked once per poll. A parent that is gone (404, 410) or hidden from this
        token (403: the token lacks `read:statuses`) leaves the context empty; 429 and 5xx stop the
        poll like any other call, so the cursor stays and the page is read again after the wait.
        """
        answered: dict[str, tuple[str | None, str | None]] = {}
        for item in items:
            parent_id = item.references[-1] if item.references else None
            if not parent_id:
                continue
            if parent_id not in answered:
                answered[parent_id] = self._answered_status(parent_id)
            item.context_text, item.context_url = answered[parent_id]

    def _answered_status(self, status_id: str) -> tuple[str | None, str | None]:
        if not _STATUS_ID.fullmatch(status_id):
            return None, None
        response = self.http.request("GET", f"/api/v1/statuses/{status_id}", expect=(200, 403, 404, 410))
        if response.status_code == 403:
            self.log.warning("%s: the token may not read statuses (scope read:statuses), so replies arrive "
                             "without the status they answer", self.name)
        if response.status_code != 200:
            return None, None
        try:
            parent = response.json()
        except ValueError:
            return None, None
        if not isinstance(parent, dict):
            return None, None
        content = parent.get("content") if isinstance(parent.get("content"), str) else ""
        return reply_context(html_to_text(content), parent.get("url") or parent.get("uri"))

    # Sending ----------------------------------------------------------------------------------

    @classmethod
    def thread_key_for(cls, handle: str) -> str | None:
        """The key of the customer's direct statuses (`direct:user@server`): their answer to the private
        mention that started a conversation joins it. None for a handle that names no server."""
        acct = _address(handle)
        return f"direct:{acct}" if acct else None

    def send(self, reply: OutboundReply) -> str:
        if reply.starts_conversation:
            return self._start(reply)
        visibility, acct = _thread_parts(reply.thread_key)
        visibility = visibility or ("public" if reply.public else "direct")
        acct = acct or reply.to.handle
        return self._post_status(reply, visibility=visibility, acct=acct, in_reply_to=reply.reply_to_external_id)["id"]

    def _start(self, reply: OutboundReply) -> str:
        """A private mention answering nothing; refused when it reached nobody (see the module docstring)."""
        acct = _address(reply.to.handle)
        if acct is None:
            raise PermanentError(f"{reply.to.handle!r} is not a Mastodon address: write it as user@server "
                                 "(for example jane@mastodon.social)")
        status = self._post_status(reply, visibility="direct", acct=acct, in_reply_to=None)
        if acct not in self._mentioned(status):
            # Posted, but a direct status reaches only the accounts it mentions: nobody received it.
            raise PermanentError(f"Mastodon could not find @{acct}, so nobody received the message (it is visible "
                                 "only to the support account). Check the address with the customer.")
        return status["id"]

    def _mentioned(self, status: dict[str, Any]) -> set[str]:
        """The addresses a posted status mentions (`mentions[].acct`): those it reaches when direct."""
        mentions = status.get("mentions") if isinstance(status.get("mentions"), list) else []
        accts = [m.get("acct") for m in mentions if isinstance(m, dict)]
        return {self._qualified(a) for a in accts if isinstance(a, str) and a.strip()}

    def _post_status(self, reply: OutboundReply, *, visibility: str, acct: str | None,
                     in_reply_to: str | None) -> dict[str, Any]:
        """`POST /api/v1/statuses` mentioning `acct`, once per outbox row (Idempotency-Key); the Status."""
        text = reply.text.strip()
        if not text and not reply.attachments:
            raise PermanentError("the reply is empty")
        if acct and not re.search(rf"(?<![\w@])@{re.escape(acct)}(?![\w@.-])", text, re.IGNORECASE):
            # A direct status reaches only the accounts it mentions; a public reply notifies them.
            text = f"@{acct} {text}".strip()
        length = status_length(text)
        if length > self.max_characters:
            raise PermanentError(f"the reply counts {length} characters with the @mention; this Mastodon server "
                                 f"allows {self.max_characters}")
        self._check_files(reply.attachments)
        # Uploads are repeated when a send is retried; the status itself is posted once (Idempotency-Key).
        media_ids = [self._upload(attachment) for attachment in reply.attachments]
        form = [("status", text), ("visibility", visibility)]
        if in_reply_to:
            form.append(("in_reply_to_id", in_reply_to))
        form += [("media_ids[]", media_id) for media_id in media_ids]
        response = self.http.request("POST", "/api/v1/statuses", data=form,
                                     headers={"Idempotency-Key": reply.idempotency_key})
        status = _json_object(response)
        if not isinstance(status.get("id"), str | int) or status["id"] == "":
            raise RetryableError("Mastodon accepted the status but answered without its id")
        return {**status, "id": str(status["id"])}

    def _check_files(self, files: tuple[Attachment, ...]) -> None:
        """Refuse, before anything is uploaded, files this server would not take (`Limits.refuse_files`)."""
        refused = self.limits.refuse_files(files, public=True)
        if refused is None:
            return
        name = refused.filename
        if refused.code == "count":
            raise PermanentError(
                f"Mastodon takes at most {MAX_MEDIA} files per status and this reply has {len(files)}: "
                f"remove {len(files) - MAX_MEDIA} or send them in another reply.")
        if refused.code == "type":
            raise PermanentError(
                f"Mastodon does not take {name} ({refused.content_type}): send images (JPEG, PNG, "
                "GIF, WebP), MP4/WebM video or MP3/OGG/WAV audio, or remove the file.")
        if refused.code == "size":
            raise PermanentError(
                f"{name} is {(refused.size or 0) / 1048576:.1f} MB; Mastodon takes files up to "
                f"{MAX_MEDIA_BYTES // 1048576} MB. Send a smaller file.")
        raise PermanentError(f"the file {name} has no content to upload; attach it again")

    def _upload(self, attachment: Attachment) -> str:
        """`POST /api/v2/media`; wait (bounded) while the server processes the file. Returns its id."""
        name = attachment.filename
        response = self.http.request("POST", "/api/v2/media", expect=(200, 202, 403, 422),
                                     files={"file": (name, attachment.data, _media_type(attachment))})
        if response.status_code == 403:
            raise PermanentError(
                f"Mastodon refused to take {name}: the access token lacks the write:media scope. Add it to "
                f"the application (Preferences → Development) and put the new token in "
                f"channels.{self.name}.access_token.")
        if response.status_code == 422:
            raise PermanentError(f"Mastodon refused {name}: {self.http._detail(response) or 'invalid file'}. "
                                 "Remove it or send it in another format or a smaller size.")
        media = _json_object(response)
        media_id = media.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise RetryableError(f"Mastodon took {name} but answered without its id")
        if response.status_code == 200 and media.get("url"):
            return media_id
        for wait in self.media_waits:
            time.sleep(wait)
            checked = self.http.request("GET", f"/api/v1/media/{media_id}", expect=(200, 206, 404, 422))
            if checked.status_code == 200 and _json_object(checked).get("url"):
                return media_id
            if checked.status_code == 422:
                detail = self.http._detail(checked) or "invalid file"
                raise PermanentError(f"Mastodon could not process {name}: {detail}. Send it in another format.")
            if checked.status_code == 404:
                raise RetryableError(f"Mastodon lost the upload of {name}; it is uploaded again next time")
        raise RetryableError(f"Mastodon is still processing {name}; the reply is tried again in a minute",
                             retry_after=60)

    # Parsing ----------------------------------------------------------------------------------

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        try:
            notification = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ItemError("not a Mastodon notification (not JSON)") from None
        if _status_deleted(notification):
            raise ItemError("the status of this mention was deleted")
        item = self._to_item(notification)
        if item is None:
            raise ItemError("the notification is not a mention")
        return item

    def _to_item(self, notification: Any) -> InboundItem | None:
        if not isinstance(notification, dict):
            raise ItemError("notification is not an object")
        notification_id = pick(notification, "id", type=str)
        if notification.get("type") != "mention":
            return None
        status = pick(notification, "status", type=dict)
        status_id = pick(status, "id", type=str)
        account = pick(status, "account", type=dict)
        acct = self._qualified(pick(account, "acct", type=str))
        visibility = pick(status, "visibility", type=str)
        if visibility not in VISIBILITIES:
            raise ItemError(f"unknown visibility {visibility!r}")
        sent_at = _parse_time(pick(status, "created_at", type=str))
        content = status.get("content") if isinstance(status.get("content"), str) else ""
        spoiler = status.get("spoiler_text") if isinstance(status.get("spoiler_text"), str) else ""
        media = status.get("media_attachments") if isinstance(status.get("media_attachments"), list) else []
        headers = {"visibility": visibility, "notification_id": notification_id}
        for key, value in (("url", status.get("url") or status.get("uri")), ("account_url", account.get("url")),
                           ("account_id", account.get("id")), ("language", status.get("language"))):
            if isinstance(value, str) and value:
                headers[key] = value
        in_reply_to = status.get("in_reply_to_id")
        return InboundItem(
            channel=self.name,
            external_id=status_id,
            author=Author(handle=acct, name=str(account.get("display_name") or account.get("username") or acct),
                          identity_kind="mastodon"),
            text=html_to_text(content),
            html=content or None,
            subject=spoiler or None,
            sent_at=sent_at,
            thread_key=f"{visibility}:{acct}",
            references=(in_reply_to,) if isinstance(in_reply_to, str) and in_reply_to else (),
            public=visibility != "direct",
            attachments=tuple(self._media(m, index) for index, m in enumerate(media, start=1)),
            headers=headers,
            raw=_raw(notification),
            source_ref=f"notification:{notification_id}",
        )

    def _qualified(self, acct: str) -> str:
        """`user@server` for every account: local accounts' `acct` has no server part."""
        acct = acct.strip().lstrip("@").lower()
        if not acct:
            raise ItemError("the status has no account address")
        return acct if "@" in acct else f"{acct}@{self.domain}"

    def _media(self, media: Any, index: int) -> Attachment:
        if not isinstance(media, dict):
            raise ItemError("media attachment is not an object")
        url = media.get("url") or media.get("remote_url")
        if not isinstance(url, str) or not url:
            return Attachment(filename=f"media-{index}", content_type="application/octet-stream")
        filename = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or f"media-{index}"
        content_type = mimetypes.guess_type(filename)[0] or _MEDIA_TYPES.get(str(media.get("type")),
                                                                            "application/octet-stream")
        try:
            return self.download(url, filename=filename, content_type=content_type)
        except ItemError as exc:
            self.log.warning("%s: media %s not downloaded: %s", self.name, filename, exc)
            return Attachment(filename=filename, content_type=content_type)

    def probe(self) -> ProbeResult:
        """`GET /api/v1/accounts/verify_credentials`: the account the token signs in as. The server's
        address is typed by an admin, so it passes the SSRF check first (connectors/_probe.py)."""
        def signed_in(body: Any) -> Phrase:
            acct = str(body["acct"])  # the bare username for an account of this server
            handle = acct if "@" in acct or not self.domain else f"{acct}@{self.domain}"
            return Phrase(N_("Signed in as @{username} (id {id})"), {"username": handle, "id": str(body["id"])})

        return http_probe(
            self, self.http, "/api/v1/accounts/verify_credentials", what="Mastodon", signed_in=signed_in,
            refused=N_("Your Mastodon server refused the access token ({status}): in Preferences, Development, "
                       "open the application (or create one with read and write:statuses) and paste its access "
                       "token here"))

    def close(self) -> None:
        self.http.close()


def _status_deleted(notification: Any) -> bool:
    """A mention whose `status` is null: the customer deleted the status before we read it."""
    return isinstance(notification, dict) and notification.get("type") == "mention" \
        and "status" in notification and notification["status"] is None


def _media_type(attachment: Attachment) -> str:
    return (attachment.content_type or "application/octet-stream").split(";")[0].strip().lower()


def _json_object(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _prev_min_id(response: Any) -> str | None:
    """The `min_id` of the Link header's rel="prev" URL: the cursor for the next page forward."""
    link = (getattr(response, "links", None) or {}).get("prev")
    if not link or not link.get("url"):
        return None
    values = parse_qs(urlsplit(link["url"]).query).get("min_id")
    return values[0] if values else None


def _address(handle: str | None) -> str | None:
    """`user@server` from a handle as stored or typed (`@Jane@Example.social`); None without a server."""
    acct = str(handle or "").strip().lstrip("@").lower()
    return acct if _ADDRESS.fullmatch(acct) else None


def _thread_parts(thread_key: str | None) -> tuple[str | None, str | None]:
    if not thread_key or ":" not in thread_key:
        return None, None
    visibility, acct = thread_key.split(":", 1)
    return (visibility if visibility in VISIBILITIES else None), acct or None


def _parse_time(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ItemError(f"unreadable created_at {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _raw(notification: Any) -> bytes:
    return json.dumps(notification, ensure_ascii=False, default=str).encode("utf-8")
