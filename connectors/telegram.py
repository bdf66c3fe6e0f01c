"""Telegram: messages to a bot, read with `getUpdates` (or pushed to a webhook), answered with `sendMessage`.

Setup
-----
Talk to @BotFather in Telegram, send `/newbot`, pick a name and a username ending in "bot", and
put the token it gives you (`123456789:AA...`) in `token` as {"$env": "TELEGRAM_TOKEN"}. Customers
find the bot by its username. In groups the bot runs in privacy mode by default: it only sees
messages that mention it (`@acme_support_bot`), replies to its own messages and commands, which
is what a support bot wants. See docs/channels/telegram.md.

What comes in
-------------
- A private chat with the bot is a direct message (a private conversation, `public=False`).
- In a group or supergroup, a message that mentions the bot, replies to one of its messages or is
  a command for it becomes a public item (`public=True`; `group_messages: all` takes every group
  message the bot sees, `none` ignores groups). Channel posts and messages of other bots are
  ignored.
- Photos (the largest size), documents, videos, audio and voice notes become attachments,
  fetched with `getFile` and the file download URL through the SSRF-guarded fetch. Files larger
  than the 20 MB bots may download are listed by name, without content.
- `include_edits: true` also takes edited messages, each edit as a new item next to the original.

Each item's id is `<chat id>:<message id>` (Telegram's unique key of a message), so the same
message arriving twice, by a repeated `getUpdates` or a redelivered webhook, is stored once. The
conversation key is the chat id (plus the forum topic id in forum groups).

Cursor
------
The cursor is the highest `update_id` stored. Each poll asks `getUpdates` for `offset = cursor + 1`;
Telegram forgets updates below the offset only when it is asked with it, which happens after the
previous page was committed, so a crash repeats a page and never loses one. Telegram keeps
updates for 24 hours: a bot that is not polled for longer loses messages.

Replies
-------
`sendMessage` to the chat with `reply_parameters.message_id` = the message answered (and
`allow_sending_without_reply`, so a deleted original does not block the answer), at most 4096
characters of plain text. A reply with files is one multipart upload with the text as `caption`
(1024 characters): `sendPhoto` (JPEG/PNG/WebP up to 10 MB; a larger picture goes as a document),
`sendVideo` (MP4), `sendAudio` (MP3/M4A) or `sendDocument` (anything else, up to 50 MB) for one
file, one `sendMediaGroup` (2-10 items, the caption on the first; photos and videos mix, any
other mix goes as documents) for several. Every reply is exactly one Bot API call, so a retry
never sends a part twice. Flood control (429 with `parameters.retry_after`) and 5xx are retried;
401/404 (a revoked token), 403 (the customer blocked the bot) and 400 are permanent and the agent
sees Telegram's description. A group upgraded to a supergroup is followed (`migrate_to_chat_id`).

Writing first
-------------
An agent may start a conversation with a customer's Telegram identity (`starts_conversations =
"any"`, `writes_to = ("telegram",)`): a plain `sendMessage` (or upload) to `chat_id` = the user's
id, which is the id of their private chat with the bot, with no `reply_parameters`. Telegram lets a
bot write to a user only once that user has started the bot (written to it privately) and has not
blocked it; otherwise it answers 403 "bot can't initiate conversation with a user" (a user the bot
saw only in a group) or 400 "chat not found" (one it never saw), and the agent is told that the
customer has to message the bot first. The customer's answer carries the thread key `thread_key_for`
gives (the private chat's id, the user id), so it joins the conversation we started. A negative
handle is a group or channel that wrote as itself (an anonymous admin): Mainland does not start a
conversation there, as the message would be posted for the whole group while the conversation is
a private one.

Webhook mode
------------
With `mode: webhook` Telegram posts each update to `<base_url>/webhooks/<channel>` and nothing is
polled: the endpoint checks the `X-Telegram-Bot-Api-Secret-Token` header against `webhook_secret`
in constant time before anything is parsed. Register the webhook once with `register_webhook()`
(or `setWebhook` by hand, see the docs page). The worker still calls `fetch` on schedule, but in
webhook mode that only asks `getWebhookInfo` and reports delivery errors Telegram saw to the
channel health; it never reads updates. `poll_every` can therefore be long (e.g. 5m).

Settings
--------
token (secret, required), mode (`polling` or `webhook`), webhook_secret (secret; webhook mode),
group_messages (`mentions`, `all` or `none`), bot_username (read with `getMe` when empty),
include_edits (false), page_size (100), long_poll_seconds (0 = short polling), timeout (30),
api_url (https://api.telegram.org).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from connectors._http import Http, retry_after_seconds
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
    WebhookRequest,
    pick,
)
from inbox.models import Attachment, Author, FetchResult, InboundItem, OutboundReply, Reject

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_TEXT = 4096
#: Bots may download files up to this size (Bot API, getFile).
BOT_DOWNLOAD_LIMIT = 20 * 1024 * 1024
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_MODES = ("polling", "webhook")
_GROUP_MODES = ("mentions", "all", "none")
#: Every HTTP status: Telegram explains failures in its JSON body, which we read ourselves.
_ANY_STATUS = tuple(range(100, 600))
#: Media fields of a Message that carry one file: (field, filename suffix, default type).
_MEDIA = (
    ("document", "", "application/octet-stream"),
    ("video", ".mp4", "video/mp4"),
    ("animation", ".mp4", "video/mp4"),
    ("audio", ".mp3", "audio/mpeg"),
    ("voice", ".ogg", "audio/ogg"),
    ("video_note", ".mp4", "video/mp4"),
)
#: Bot API upload caps (multipart): photos 10 MB, every other file 50 MB.
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_CAPTION = 1024
#: sendMediaGroup takes 2-10 items.
MAX_ALBUM = 10
#: Seconds added to `timeout` for a call that uploads files.
UPLOAD_EXTRA_SECONDS = 60
#: Files sent as a photo (shown inline), a video or an audio track; anything else is a document.
_PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
_VIDEO_TYPES = ("video/mp4",)  # "Telegram clients support MPEG4 videos (other formats may be sent as Document)"
_AUDIO_TYPES = ("audio/mpeg", "audio/mp4", "audio/x-m4a")  # "must be in the .MP3 or .M4A format"
_SEND_METHOD = {"photo": "sendPhoto", "video": "sendVideo", "audio": "sendAudio", "document": "sendDocument"}
#: How recent a delivery error reported by getWebhookInfo must be to count as "failing now".
WEBHOOK_ERROR_RECENT_SECONDS = 600


class _TokenInUrlFilter(logging.Filter):
    """Removes bot tokens from URLs that urllib3 logs at DEBUG level.

    The Bot API puts the token in the path (`/bot<token>/getUpdates`, `/file/bot<token>/...`), and
    urllib3 logs every request line; no configured secret may reach a log.
    """

    _PATTERN = re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg = self._PATTERN.sub(r"\1***", message)
            record.args = ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_TokenInUrlFilter())


class _ChatMigrated(Exception):
    def __init__(self, chat_id: int) -> None:
        super().__init__(chat_id)
        self.chat_id = chat_id


class TelegramConnector(Connector):
    kind = "telegram"
    identities = (IdentityRule("telegram", case_insensitive=True, strip_at=True),)
    display_name = N_("Telegram")
    icon_text = "T"
    icon_color = "#1b75a8"
    settings = (
        Setting("token", required=True, secret=True, help=N_("The bot token from @BotFather (123456789:AA...).")),
        Setting("mode", default="polling",
                help=N_("polling (getUpdates on a schedule) or webhook (Telegram posts to /webhooks/<channel>).")),
        Setting("webhook_secret", secret=True,
                help=N_("Webhook mode: the secret_token registered with setWebhook, 1-256 of A-Z a-z 0-9 _ -.")),
        Setting("group_messages", default="mentions",
                help=N_("Group messages taken in: mentions (of the bot, replies to it, its commands), all, none.")),
        Setting("bot_username", default="",
                help=N_("The bot's username without @, for recognising mentions; asked with getMe when empty.")),
        Setting("include_edits", default=False, help=N_("Also take edited messages (each edit as a new item).")),
        Setting("page_size", default=100, help=N_("Updates per getUpdates call, 1-100.")),
        Setting("long_poll_seconds", default=0,
                help=N_("getUpdates long-poll timeout; 0 asks and returns at once (the worker polls often).")),
        Setting("timeout", default=30, help=N_("Seconds to wait for an answer from Telegram.")),
        Setting("api_url", default="https://api.telegram.org", help=N_("Bot API server (a local Bot API server or test imitation).")),
    )
    # Files go with any reply, public or private; Telegram takes any type (as a document if need be).
    limits = Limits(max_text_length=MAX_TEXT, formatting="plain", reply_window_hours=None,
                    supports_attachments=True, attachments_public=True, attachments_private=True,
                    attachment_types=(), max_attachment_bytes=MAX_UPLOAD_BYTES, max_attachments=MAX_ALBUM,
                    starts_conversations="any")
    #: A customer's Telegram identity is their user id, which is also their private chat's id.
    writes_to = ("telegram",)
    default_poll_every = 10.0

    @classmethod
    def takes_webhooks(cls, settings: Mapping[str, Any]) -> bool:
        """Only in webhook mode; a polling bot's updates are fetched with getUpdates."""
        return str(settings.get("mode") or "polling") == "webhook"

    def __init__(self, name: str, config: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.mode = str(self.config["mode"])
        #: In webhook mode updates only arrive by web request (the contract kit and the webhook
        #: endpoint read this on the instance; the class stays pollable so the worker runs the
        #: webhook health check in `fetch`).
        self.push_only = self.mode == "webhook"
        self.webhook_enabled = self.mode == "webhook"
        self.api_url = str(self.config["api_url"]).rstrip("/")
        self.page_size = int(self.config["page_size"])
        self.long_poll = max(0, int(self.config["long_poll_seconds"]))
        self.timeout = float(self.config["timeout"])
        self.bot_id = int(str(self.config["token"]).split(":", 1)[0])
        self._bot_username = str(self.config.get("bot_username") or "").lstrip("@").lower()
        self.http = Http(f"{self.api_url}/bot{self.config['token']}", timeout=self.timeout, redact=self.redact)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems = []
        token = str(merged["token"])
        if ":" not in token or not token.split(":", 1)[0].isdigit():
            problems.append("token: not a bot token (expected <digits>:<letters> as @BotFather gives it)")
        if merged["mode"] not in _MODES:
            problems.append(f"mode: {merged['mode']!r} is not one of {', '.join(_MODES)}")
        if merged["group_messages"] not in _GROUP_MODES:
            problems.append(f"group_messages: {merged['group_messages']!r} is not one of {', '.join(_GROUP_MODES)}")
        if merged["mode"] == "webhook":
            secret = merged.get("webhook_secret")
            if not secret:
                problems.append("webhook_secret: required in webhook mode")
            elif not _SECRET_TOKEN.match(str(secret)):
                problems.append("webhook_secret: must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        try:
            if not 1 <= int(merged["page_size"]) <= 100:
                problems.append("page_size: must be between 1 and 100")
        except (TypeError, ValueError):
            problems.append("page_size: not a number")
        if problems:
            raise PermanentError("; ".join(problems))
        return merged

    # Polling ----------------------------------------------------------------------------------

    def fetch(self, cursor: str | None) -> FetchResult:
        if self.mode == "webhook":
            self._check_webhook_health()
            return FetchResult(items=[], cursor=cursor)
        last = _parse_cursor(cursor)
        payload: dict[str, Any] = {"limit": self.page_size, "timeout": self.long_poll,
                                   "allowed_updates": self._allowed_updates()}
        if last is not None:
            payload["offset"] = last + 1
        updates = self._call("getUpdates", payload, timeout=self.timeout + self.long_poll)
        if not isinstance(updates, list):
            raise RetryableError("Telegram getUpdates answered without a list of updates")
        full_page = len(updates) >= self.page_size
        if last is not None:
            # Telegram returns ids >= offset; anything at or below the cursor is already stored.
            updates = [u for u in updates if not (isinstance(u, dict) and isinstance(u.get("update_id"), int)
                                                  and u["update_id"] <= last)]
        items, rejects = self._convert(updates)
        ids = [u["update_id"] for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
        new_last = max(ids) if ids else last
        more = full_page and new_last != last
        new_cursor = str(new_last) if new_last is not None else cursor
        return FetchResult(items=items, cursor=new_cursor, rejects=rejects, more=more)

    def _allowed_updates(self) -> list[str]:
        return ["message", "edited_message"] if _truthy(self.config["include_edits"]) else ["message"]

    # Sending ----------------------------------------------------------------------------------

    def send(self, reply: OutboundReply) -> str:
        """One Bot API call per reply: `sendMessage`, one `sendPhoto`/`sendVideo`/`sendAudio`/
        `sendDocument` for one file, or one `sendMediaGroup` for several, so a retry never
        repeats a part Telegram already accepted. A message that starts a conversation goes to the
        private chat of `reply.to` (their user id) and answers nothing."""
        text = reply.text.strip()
        chat_id, topic = (_private_chat_of(reply.to.handle), None) if reply.starts_conversation else self._chat_of(reply)
        payload: dict[str, Any] = {"chat_id": chat_id}
        if topic is not None:
            payload["message_thread_id"] = topic
        answered = _message_id_of(reply.reply_to_external_id)
        if answered is not None:
            payload["reply_parameters"] = {"message_id": answered, "allow_sending_without_reply": True}
        if reply.attachments:
            method, files = self._media_request(reply.attachments, text, payload)
        else:
            method, files = "sendMessage", None
            payload["text"] = _checked_text(text)
        try:
            message = self._call(method, payload, files=files)
        except _ChatMigrated as moved:
            # The group became a supergroup (a new chat id); the answer goes there.
            payload["chat_id"] = moved.chat_id
            message = self._call(method, payload, files=files)
        except PermanentError as exc:
            # Writing first to a user the bot never saw: Telegram knows no chat with them yet.
            if reply.starts_conversation and "chat not found" in str(exc):
                raise PermanentError(f"{exc}; {self._write_first_hint()}") from None
            raise
        if isinstance(message, list) and message:
            message = message[0]  # an album: the first message stands for the reply
        try:
            return f"{message['chat']['id']}:{message['message_id']}"
        except (KeyError, TypeError):
            raise RetryableError("Telegram accepted the message but answered without its id") from None

    def _media_request(self, attachments: tuple[Attachment, ...], text: str,
                       payload: dict[str, Any]) -> tuple[str, dict[str, tuple[str, bytes, str]]]:
        """The method and multipart files for a reply with files; fills `payload` (caption, media)."""
        if len(attachments) > MAX_ALBUM:
            raise PermanentError(f"the reply has {len(attachments)} files; Telegram sends at most {MAX_ALBUM} in "
                                 "one message. Send the rest in another reply.")
        if len(text) > MAX_CAPTION:
            raise PermanentError(f"with files the text is their caption, which Telegram limits to {MAX_CAPTION} "
                                 f"characters; this one has {len(text)}. Shorten it by {len(text) - MAX_CAPTION}, "
                                 "or send the text as a reply of its own.")
        for attachment in attachments:
            _check_upload(attachment)
        kinds = _album_kinds([_media_kind(a) for a in attachments])
        if len(attachments) == 1:
            kind, attachment = kinds[0], attachments[0]
            if text:
                payload["caption"] = text
            return _SEND_METHOD[kind], {kind: _upload_part(attachment)}
        media = []
        files = {}
        for index, (kind, attachment) in enumerate(zip(kinds, attachments, strict=True)):
            name = f"file{index}"
            entry: dict[str, Any] = {"type": kind, "media": f"attach://{name}"}
            if index == 0 and text:
                entry["caption"] = text  # an album shows the first item's caption as the message's
            media.append(entry)
            files[name] = _upload_part(attachment)
        payload["media"] = media
        return "sendMediaGroup", files

    def _chat_of(self, reply: OutboundReply) -> tuple[int | str, int | None]:
        key = reply.thread_key or ""
        chat, _, topic = key.partition("/")
        if not chat and reply.reply_to_external_id:
            chat = reply.reply_to_external_id.split(":", 1)[0]
        if not chat:
            raise PermanentError("the conversation has no Telegram chat to answer in")
        chat_id: int | str = int(chat) if _is_int(chat) else chat
        return chat_id, int(topic) if _is_int(topic) else None

    @classmethod
    def thread_key_for(cls, handle: str) -> str | None:
        """A user's private chat has the user's id as its chat id, which is the thread key its items carry."""
        value = str(handle or "").strip()
        return str(int(value)) if _is_int(value) and int(value) > 0 else None

    # Webhooks ---------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        expected = str(self.config.get("webhook_secret") or "")
        if self.mode != "webhook" or not expected:
            raise PermanentError("this Telegram channel is not in webhook mode")
        given = _header(request.headers, SECRET_HEADER)
        # Bytes compare: compare_digest refuses non-ASCII str, and a header may hold anything.
        if not given or not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
            raise PermanentError(f"wrong or missing {SECRET_HEADER}")

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        try:
            update = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return FetchResult(items=[], cursor=None,
                               rejects=[Reject(raw=request.body, reason="webhook body is not a JSON update")])
        items, rejects = self._convert([update])
        return FetchResult(items=items, cursor=None, rejects=rejects)

    def webhook_event_id(self, request: WebhookRequest) -> str | None:
        """The update id of a verified delivery: Telegram redelivers the same update after a failure."""
        try:
            update_id = json.loads(request.body).get("update_id")
        except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
            return None
        return f"update:{update_id}" if isinstance(update_id, int) else None

    def register_webhook(self, url: str | None = None, *, drop_pending_updates: bool = False) -> Any:
        """Tell Telegram to post updates to `url` (default `<base_url>/webhooks/<channel>`) with our secret."""
        if self.mode != "webhook":
            raise PermanentError("set mode: webhook (and webhook_secret) before registering a webhook")
        if url is None:
            base = self.context.base_url if self.context else ""
            url = f"{base.rstrip('/')}/webhooks/{self.name}"
        return self._call("setWebhook", {
            "url": url, "secret_token": self.config["webhook_secret"],
            "allowed_updates": self._allowed_updates(), "drop_pending_updates": drop_pending_updates,
        })

    def delete_webhook(self) -> Any:
        """Stop webhook deliveries (needed before polling again: getUpdates refuses while one is set)."""
        return self._call("deleteWebhook", {})

    def _check_webhook_health(self) -> None:
        info = self._call("getWebhookInfo", {})
        if not isinstance(info, dict) or not info.get("url"):
            raise PermanentError("mode is webhook but Telegram has no webhook set for this bot: register it "
                                 "(see docs/channels/telegram.md)")
        when = info.get("last_error_date")
        pending = info.get("pending_update_count") or 0
        if isinstance(when, int) and pending and time.time() - when < WEBHOOK_ERROR_RECENT_SECONDS:
            raise RetryableError(self.redact(
                f"Telegram cannot deliver to the webhook: {info.get('last_error_message') or 'unknown error'} "
                f"({pending} update(s) waiting)"))

    # Parsing ----------------------------------------------------------------------------------

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        try:
            update = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ItemError("not a Telegram update (not JSON)") from None
        item = self._update_to_item(update)
        if item is None:
            raise ItemError("the update holds no customer message")
        return item

    def _convert(self, updates: list[Any]) -> tuple[list[InboundItem], list[Reject]]:
        """Items of `updates`; a malformed update becomes a `Reject`, an API failure (getFile,
        getMe) is raised so that the whole page is tried again later."""
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        for update in updates:
            try:
                item = self._update_to_item(update)
            except (RetryableError, PermanentError):
                raise
            except Exception as exc:  # a malformed update must never stop the poll
                rejects.append(Reject(raw=_raw_update(update), reason=self.redact(str(exc)) or type(exc).__name__,
                                      exception=type(exc).__name__,
                                      source_ref=_update_ref(update)))
                continue
            if item is not None:
                items.append(item)
        return items, rejects

    def _update_to_item(self, update: Any) -> InboundItem | None:
        """The item for one Update, or None for updates that are not a customer's message."""
        if not isinstance(update, dict):
            raise ItemError("update is not an object")
        update_id = pick(update, "update_id", type=int)
        if "message" in update:
            message, edited = update["message"], False
        elif "edited_message" in update and _truthy(self.config["include_edits"]):
            message, edited = update["edited_message"], True
        else:
            return None  # a kind of update we did not ask for
        if not isinstance(message, dict):
            raise ItemError("update.message is not an object")
        chat = pick(message, "chat", type=dict)
        chat_id = pick(chat, "id", type=int)
        chat_type = pick(chat, "type", type=str)
        message_id = pick(message, "message_id", type=int)
        date = pick(message, "date", type=int)
        if chat_type == "channel":
            return None
        sender = message.get("from")
        if isinstance(sender, dict):
            if sender.get("is_bot"):
                return None  # other bots (and never a loop with our own)
            author = Author(handle=str(pick(sender, "id", type=int)), name=_full_name(sender), identity_kind="telegram")
        else:
            # An anonymous group admin or a linked channel writes as the chat itself.
            on_behalf = message.get("sender_chat") if isinstance(message.get("sender_chat"), dict) else chat
            author = Author(handle=str(pick(on_behalf, "id", type=int)),
                            name=str(on_behalf.get("title") or _full_name(on_behalf)), identity_kind="telegram")
        public = chat_type != "private"
        if public and not self._take_group_message(message):
            return None
        text = message.get("text") if isinstance(message.get("text"), str) else message.get("caption")
        text = text if isinstance(text, str) else ""
        attachments = self._attachments(message, message_id)
        if not text and not attachments:
            text = _describe_other(message)
            if not text:
                return None  # service messages: members joining, titles changing, pins
        external_id = f"{chat_id}:{message_id}"
        if edited:
            external_id += f":edit:{message.get('edit_date') or update_id}"
        thread_key = str(chat_id)
        if message.get("is_topic_message") and isinstance(message.get("message_thread_id"), int):
            thread_key += f"/{message['message_thread_id']}"
        references: tuple[str, ...] = ()
        replied = message.get("reply_to_message")
        if isinstance(replied, dict) and isinstance(replied.get("message_id"), int):
            references = (f"{chat_id}:{replied['message_id']}",)
        headers = {"chat_type": chat_type, "update_id": str(update_id)}
        if isinstance(sender, dict) and sender.get("username"):
            headers["username"] = str(sender["username"])
        if isinstance(sender, dict) and sender.get("language_code"):
            headers["language"] = str(sender["language_code"])
        if public and chat.get("title"):
            headers["chat_title"] = str(chat["title"])
        if public and chat.get("username"):
            headers["url"] = f"https://t.me/{chat['username']}/{message_id}"
        if edited:
            headers["edited"] = "true"
        return InboundItem(
            channel=self.name,
            external_id=external_id,
            author=author,
            text=text,
            sent_at=dt.datetime.fromtimestamp(date, dt.UTC),
            thread_key=thread_key,
            references=references,
            public=public,
            attachments=tuple(attachments),
            headers=headers,
            raw=_raw_update(update),
            source_ref=f"update:{update_id}",
        )

    def _take_group_message(self, message: dict) -> bool:
        policy = self.config["group_messages"]
        if policy == "all":
            return True
        if policy == "none":
            return False
        replied = message.get("reply_to_message")
        if isinstance(replied, dict) and isinstance(replied.get("from"), dict) and replied["from"].get("id") == self.bot_id:
            return True
        for text_key, entities_key in (("text", "entities"), ("caption", "caption_entities")):
            text = message.get(text_key)
            entities = message.get(entities_key)
            if not isinstance(text, str) or not isinstance(entities, list):
                continue
            for entity in entities:
                if not isinstance(entity, dict):
                    continue
                kind = entity.get("type")
                if kind == "text_mention" and isinstance(entity.get("user"), dict):
                    if entity["user"].get("id") == self.bot_id:
                        return True
                elif kind in ("mention", "bot_command"):
                    word = _entity_text(text, entity).lower()
                    if kind == "mention" and word == f"@{self.bot_username()}":
                        return True
                    if kind == "bot_command" and word.endswith(f"@{self.bot_username()}"):
                        return True
        return False

    def bot_username(self) -> str:
        """The bot's username (lower case, without @): the setting, else asked once with getMe."""
        if not self._bot_username:
            me = self._call("getMe", {})
            self._bot_username = str((me or {}).get("username") or "").lower()
            if not self._bot_username:
                raise RetryableError("Telegram getMe answered without the bot's username")
        return self._bot_username

    def _attachments(self, message: dict, message_id: int) -> list[Attachment]:
        wanted: list[tuple[str, str, str, int | None]] = []
        photo = message.get("photo")
        if isinstance(photo, list) and photo and isinstance(photo[-1], dict):
            largest = photo[-1]  # PhotoSize list, largest last
            wanted.append((pick(largest, "file_id", type=str), f"photo-{message_id}.jpg", "image/jpeg",
                           largest.get("file_size")))
        for field_name, suffix, default_type in _MEDIA:
            media = message.get(field_name)
            if not isinstance(media, dict):
                continue
            filename = media.get("file_name") or f"{field_name}-{message_id}{suffix}"
            wanted.append((pick(media, "file_id", type=str), str(filename),
                           str(media.get("mime_type") or default_type), media.get("file_size")))
        return [self._download_file(*spec) for spec in wanted]

    def _download_file(self, file_id: str, filename: str, content_type: str, size: int | None) -> Attachment:
        """The file's content through getFile and the SSRF-guarded fetch, or a placeholder without it."""
        placeholder = Attachment(filename=filename, content_type=content_type, size=size if isinstance(size, int) else None)
        if isinstance(size, int) and size > BOT_DOWNLOAD_LIMIT:
            return placeholder
        try:
            info = self._call("getFile", {"file_id": file_id})
        except PermanentError as exc:  # "file is too big", an expired file: keep the message
            self.log.warning("%s: file %s not downloaded: %s", self.name, filename, exc)
            return placeholder
        path = (info or {}).get("file_path") if isinstance(info, dict) else None
        if not path:
            return placeholder
        url = f"{self.api_url}/file/bot{self.config['token']}/{path}"
        try:
            return self.download(url, filename=filename, content_type=content_type)
        except ItemError as exc:
            self.log.warning("%s: file %s not downloaded: %s", self.name, filename, exc)
            return placeholder

    # The Bot API ------------------------------------------------------------------------------

    def _call(self, method: str, payload: dict[str, Any], *, timeout: float | None = None,
              files: dict[str, tuple[str, bytes, str]] | None = None) -> Any:
        if files:
            # A multipart upload: every other parameter is a form field, objects as JSON text.
            fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()}
            response = self.http.request("POST", method, data=fields, files=files, expect=_ANY_STATUS,
                                         timeout=timeout or self.timeout + UPLOAD_EXTRA_SECONDS)
        else:
            response = self.http.request("POST", method, json=payload, expect=_ANY_STATUS,
                                         timeout=timeout or self.timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if status == 200 and isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        if not isinstance(body, dict):
            text = f"Telegram {method} answered {status} without a Bot API body"
            if status == 200 or status >= 500 or status == 429:
                raise RetryableError(text, retry_after=retry_after_seconds(response.headers))
            raise PermanentError(text)
        code = body.get("error_code") if isinstance(body.get("error_code"), int) else status
        description = self.redact(str(body.get("description") or f"error {code}"))[:300]
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        retry_after = parameters.get("retry_after")
        text = f"Telegram {method}: {description}"
        if code == 429 or isinstance(retry_after, int | float):
            delay = float(retry_after) if isinstance(retry_after, int | float) else retry_after_seconds(response.headers)
            raise RetryableError(text, retry_after=delay)
        if code >= 500 or status >= 500:
            raise RetryableError(text)
        if isinstance(parameters.get("migrate_to_chat_id"), int):
            raise _ChatMigrated(parameters["migrate_to_chat_id"])
        if code == 413:
            raise PermanentError(f"{text}; Telegram bots can upload files up to 50 MB: send a smaller file")
        if code in (401, 404):
            raise PermanentError(f"{text}; the bot token was refused: check `token` (from @BotFather)")
        if code == 403 and "initiate conversation" in description:
            raise PermanentError(f"{text}; {self._write_first_hint()}")
        if code == 409:
            raise PermanentError(f"{text}; another program reads this bot's updates, or a webhook is set "
                                 "while mode is polling")
        raise PermanentError(text)

    def _write_first_hint(self) -> str:
        """What the agent can do when Telegram refuses to let the bot write first."""
        bot = f"@{self._bot_username}" if self._bot_username else "the bot"
        return (f"Telegram lets a bot write only to people who have started it: the customer has to message "
                f"{bot} first (open it in Telegram and press Start); then press Retry")

    def probe(self) -> ProbeResult:
        """`getMe`: the bot the token belongs to. Reads no update, so no offset is confirmed."""
        def signed_in(body: Any) -> Phrase:
            if body["ok"] is not True:
                raise ValueError("ok is not true")
            bot = body["result"]
            return Phrase(N_("Telegram bot @{username} answers (id {id})"),
                          {"username": str(bot["username"]), "id": str(bot["id"])})

        # Telegram answers 401 for a revoked token and 404 for one that is not a token at all.
        return http_probe(
            self, self.http, "getMe", what="Telegram", signed_in=signed_in,
            is_refusal=lambda status, body: status in (401, 404),
            refused=N_("Telegram refused the bot token ({status}): copy the token again from @BotFather (/mybots, "
                       "API Token, or /revoke for a new one) and paste it here"))

    def close(self) -> None:
        self.http.close()


# Helpers --------------------------------------------------------------------------------------


def _checked_text(text: str) -> str:
    if not text:
        raise PermanentError("the reply is empty")
    if len(text) > MAX_TEXT:
        raise PermanentError(f"the reply has {len(text)} characters; Telegram allows {MAX_TEXT}")
    return text


def _bare_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _media_kind(attachment: Attachment) -> str:
    """How one file goes out: `photo` (a JPEG/PNG/WebP up to 10 MB), `video`, `audio` or `document`."""
    content_type = _bare_type(attachment.content_type)
    if content_type in _PHOTO_TYPES and len(attachment.data or b"") <= MAX_PHOTO_BYTES:
        return "photo"  # a larger picture still goes, whole, as a document
    if content_type in _VIDEO_TYPES:
        return "video"
    if content_type in _AUDIO_TYPES:
        return "audio"
    return "document"


def _album_kinds(kinds: list[str]) -> list[str]:
    """Kinds one album may hold: photos and videos mix, audio and documents only with their own kind.

    A mixed album is sent as documents, so every file still arrives in the one call.
    """
    if len(kinds) < 2 or set(kinds) <= {"photo", "video"} or set(kinds) in ({"audio"}, {"document"}):
        return kinds
    return ["document"] * len(kinds)


def _check_upload(attachment: Attachment) -> None:
    if attachment.data is None:
        raise PermanentError(f"{attachment.filename} has no content to send; attach the file again.")
    if len(attachment.data) > MAX_UPLOAD_BYTES:
        raise PermanentError(f"{attachment.filename} is {len(attachment.data) / (1024 * 1024):.1f} MB; Telegram "
                             f"bots can send files up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Send a smaller file.")


def _upload_part(attachment: Attachment) -> tuple[str, bytes, str]:
    return (attachment.filename or "file", attachment.data or b"",
            _bare_type(attachment.content_type) or "application/octet-stream")


def _parse_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return int(cursor)
    except ValueError:
        raise PermanentError(f"unreadable Telegram cursor {cursor!r}") from None


def _private_chat_of(handle: str | None) -> int:
    """The chat a new conversation goes to: the private chat of the user `handle` (their user id)."""
    value = str(handle or "").strip()
    if not _is_int(value):
        raise PermanentError(f"{value or 'an empty handle'!r} is not a Telegram user id; a new conversation goes "
                             "to a customer's Telegram identity")
    if int(value) <= 0:
        raise PermanentError("this Telegram identity is a group or channel (someone wrote as it): a new "
                             "conversation is private, so Mainland does not post it in a group")
    return int(value)


def _message_id_of(external_id: str | None) -> int | None:
    """The message id in an item id `<chat>:<message>[:edit:<date>]`."""
    if not external_id:
        return None
    parts = external_id.split(":")
    return int(parts[1]) if len(parts) > 1 and _is_int(parts[1]) else None


def _is_int(text: str) -> bool:
    return bool(text) and text.lstrip("-").isdigit()


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _full_name(user: Mapping[str, Any]) -> str:
    name = " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k))
    return name or str(user.get("username") or "")


def _entity_text(text: str, entity: Mapping[str, Any]) -> str:
    """The text an entity covers; Telegram counts offsets in UTF-16 code units."""
    offset, length = entity.get("offset"), entity.get("length")
    if not isinstance(offset, int) or not isinstance(length, int):
        return ""
    units = text.encode("utf-16-le")
    return units[offset * 2:(offset + length) * 2].decode("utf-16-le", "replace")


def _describe_other(message: Mapping[str, Any]) -> str:
    """A line for messages without text or files that a person did send (stickers, places, contacts)."""
    sticker = message.get("sticker")
    if isinstance(sticker, dict):
        return f"[sticker {sticker.get('emoji') or ''}]".replace(" ]", "]")
    location = message.get("location")
    if isinstance(location, dict):
        return f"[location {location.get('latitude')}, {location.get('longitude')}]"
    contact = message.get("contact")
    if isinstance(contact, dict):
        return f"[contact {_full_name(contact)} {contact.get('phone_number') or ''}]".strip()
    return ""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return str(value or "")


def _update_ref(update: Any) -> str | None:
    update_id = update.get("update_id") if isinstance(update, dict) else None
    return f"update:{update_id}" if update_id is not None else None


def _raw_update(update: Any) -> bytes:
    return json.dumps(update, ensure_ascii=False, default=str).encode("utf-8")
