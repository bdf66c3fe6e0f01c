"""A loopback imitation of the Telegram Bot API, for tests, benchmarks and the demo.

It follows the Bot API as shared/channels.md §5 records it: `POST|GET /bot<token>/<method>` with
parameters in the query string, a JSON body or a form; answers `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": N, "description": "..."[, "parameters": {...}]}`. Implemented
methods: getMe, getUpdates (offset/limit/timeout/allowed_updates; updates below the offset are
forgotten; 409 while a webhook is set), getFile and the download path `/file/bot<token>/<path>`,
sendMessage (reply_parameters, 4096 characters, "chat not found", "message to be replied not
found", "bot was blocked by the user"; to a user: only once they wrote to the bot privately, else
403 "bot can't initiate conversation with a user" for a user the bot saw in a group, and "chat not
found" for one it never saw), sendPhoto / sendDocument / sendVideo / sendAudio as
multipart uploads (the file in the field named after the method: `photo`, `document`, ...;
`caption` up to 1024 characters; photos up to 10 MB and only pictures, other files up to 50 MB,
past which Telegram's front answers 413 "Request Entity Too Large"), sendMediaGroup (`media` as
JSON, 2-10 items with `attach://<field>`, photos and videos mixed, documents or audio only among
their own kind), setWebhook, deleteWebhook and getWebhookInfo. `sent[...]["files"]` keeps the
uploaded bytes.

Customers write with `private_message` (`start_bot`: the Start button's `/start`), `group_message`
(mentioning the bot or not), `edit`, with
photos or documents attached; `sent` lists what the bot sent. Faults: `flood(seconds)` (429 with
`parameters.retry_after`), `server_error()`, `malformed_update()`, `duplicate_update()`,
`revoke_token()` (401 from then on), `block_bot(user)`; plus the base class's delays and drops.
Webhook mode: after `setWebhook`, `post_webhook()` delivers pending updates to the registered URL
with the `X-Telegram-Bot-Api-Secret-Token` header, keeping those not answered 2xx for a retry.

Run it alone with `python -m sandbox.telegram` (prints its URL and token).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import requests

from sandbox.base import Imitation, Request, route

DEFAULT_TOKEN = "7000000001:AAE-imitationTokenForTestsOnly_0123"
MAX_TEXT = 4096
MAX_CAPTION = 1024
DOWNLOAD_LIMIT = 20 * 1024 * 1024
#: What bots may upload (multipart): photos up to 10 MB, other files up to 50 MB.
PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024
UPLOAD_LIMIT = 50 * 1024 * 1024
#: The field that carries the file for each send method, and the kind of media it makes.
MEDIA_METHODS = {"sendphoto": "photo", "senddocument": "document", "sendvideo": "video", "sendaudio": "audio"}
#: The imitation never holds a long poll longer than this, so tests stay fast.
MAX_LONG_POLL = 0.5
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_UPDATE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post", "callback_query")


def _error(code: int, description: str, **parameters: Any) -> tuple[int, dict]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return code, body


class TelegramImitation(Imitation):
    """One bot's view of Telegram: its chats, its update queue, its files and what it sent."""

    name = "telegram"

    def __init__(self, token: str = DEFAULT_TOKEN, bot_username: str = "acme_support_bot", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot = {"id": self.bot_id, "is_bot": True, "first_name": "Acme Support", "username": bot_username}
        self.updates: list[dict] = []
        self.sent: list[dict] = []
        self.webhook: dict[str, Any] | None = None
        self.webhook_last_error: tuple[int, str] | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self.chats: dict[int, dict] = {}
        self.messages: dict[tuple[int, int], dict] = {}
        self.blocked: set[int] = set()
        #: Users the bot has seen (in any chat): Telegram refuses a bot's first message to one of them
        #: with 403 rather than "chat not found".
        self.seen_users: set[int] = set()
        self.allowed_updates: list[str] | None = None
        self._update_ids = itertools.count(795120331)
        self._message_ids: dict[int, itertools.count] = {}
        self._user_ids = itertools.count(111222333)
        self._group_ids = itertools.count(1)
        self._users: dict[str, dict] = {}
        self._groups: dict[str, dict] = {}
        self._clock = int(time.time()) - 3600
        self.arrived = threading.Condition(self.lock)

    # Customers ----------------------------------------------------------------------------------

    def user(self, first_name: str, *, username: str | None = None, last_name: str | None = None,
             language_code: str = "en") -> dict:
        """The Telegram user called `first_name` (made on first use; the same dict afterwards)."""
        key = username or first_name
        with self.lock:
            if key not in self._users:
                user = {"id": next(self._user_ids), "is_bot": False, "first_name": first_name}
                if last_name:
                    user["last_name"] = last_name
                if username:
                    user["username"] = username
                user["language_code"] = language_code
                self._users[key] = user
            return self._users[key]

    def group(self, title: str, *, username: str | None = None) -> dict:
        """A supergroup the bot is a member of."""
        with self.lock:
            if title not in self._groups:
                chat = {"id": -1001000000000 - next(self._group_ids), "title": title, "type": "supergroup"}
                if username:
                    chat["username"] = username
                self._groups[title] = chat
                self.chats[chat["id"]] = chat
            return self._groups[title]

    def private_message(self, user: dict | str, text: str | None = None, *, photo: bytes | None = None,
                        document: tuple[str, bytes, str] | None = None, reply_to: dict | None = None,
                        entities: list[dict] | None = None) -> dict:
        """`user` writes to the bot in their private chat; returns the Message."""
        user = self.user(user) if isinstance(user, str) else user
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        return self._customer_message(user, chat, text, photo=photo, document=document, reply_to=reply_to,
                                      entities=entities)

    def start_bot(self, user: dict | str) -> dict:
        """`user` opens the bot and presses Start: `/start` in their private chat, from then on open to the bot."""
        return self.private_message(user, "/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])

    def group_message(self, user: dict | str, text: str, *, group: str = "Acme customers", mention: bool = True,
                      prefix: str = "", photo: bytes | None = None, reply_to: dict | None = None) -> dict:
        """`user` writes in a group; with `mention` the text starts with `prefix` and @<bot username>.

        Mention entities count UTF-16 code units, as Telegram's do (an emoji in `prefix` is two).
        """
        user = self.user(user) if isinstance(user, str) else user
        chat = self.group(group)
        entities = []
        if mention:
            handle = f"@{self.bot['username']}"
            entities.append({"type": "mention", "offset": _utf16_len(prefix), "length": _utf16_len(handle)})
            text = f"{prefix}{handle} {text}"
        return self._customer_message(user, chat, text, photo=photo, reply_to=reply_to, entities=entities)

    def edit(self, message: dict, text: str) -> dict:
        """The customer edits `message`: an `edited_message` update."""
        with self.lock:
            edited = copy.deepcopy(message)
            edited["text"] = text
            edited["edit_date"] = self._tick()
            self.messages[(edited["chat"]["id"], edited["message_id"])] = edited
            self._queue({"edited_message": edited})
            return edited

    def _customer_message(self, user: dict, chat: dict, text: str | None, *, photo: bytes | None = None,
                          document: tuple[str, bytes, str] | None = None, reply_to: dict | None = None,
                          entities: list[dict] | None = None) -> dict:
        with self.lock:
            self.chats.setdefault(chat["id"], chat)
            self.seen_users.add(user["id"])
            message: dict[str, Any] = {"message_id": self._next_message_id(chat["id"]), "from": dict(user),
                                       "chat": dict(chat), "date": self._tick()}
            media = photo is not None or document is not None
            if text is not None:
                message["caption" if media else "text"] = text
                if entities:
                    message["caption_entities" if media else "entities"] = entities
            if photo is not None:
                message["photo"] = [self._file(photo[: max(1, len(photo) // 4)], "photos", ".jpg", thumb=True),
                                    self._file(photo, "photos", ".jpg")]
            if document is not None:
                filename, data, mime_type = document
                message["document"] = {**self._file(data, "documents", "." + filename.rsplit(".", 1)[-1]),
                                       "file_name": filename, "mime_type": mime_type}
            if reply_to is not None:
                message["reply_to_message"] = _without_reply(reply_to)
            self.messages[(chat["id"], message["message_id"])] = message
            self._queue({"message": message})
            return message

    # Faults -------------------------------------------------------------------------------------

    def flood(self, retry_after: int = 35) -> None:
        """The next Bot API call hits flood control: 429 with `parameters.retry_after`."""
        self.fail_next(429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                             "parameters": {"retry_after": retry_after}}, path_prefix="/bot")

    def server_error(self) -> None:
        self.fail_next(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, path_prefix="/bot")

    def malformed_update(self) -> dict:
        """An update whose message has no chat (schema drift): the connector must quarantine it."""
        with self.lock:
            return self._queue({"message": {"message_id": 1, "date": "yesterday", "text": "no chat here"}})

    def duplicate_update(self) -> None:
        """Queue the last update again with the same update_id (a repeated delivery)."""
        with self.lock:
            if self.updates:
                self.updates.append(copy.deepcopy(self.updates[-1]))
                self.arrived.notify_all()

    def revoke_token(self) -> None:
        """The token was revoked in @BotFather: every call answers 401 from now on."""
        self.token = f"{self.bot_id}:revoked"

    def block_bot(self, user: dict) -> None:
        self.blocked.add(user["id"])

    # Webhook delivery --------------------------------------------------------------------------

    def post_webhook(self, url: str | None = None, secret: str | None = None, *, update: dict | None = None,
                     timeout: float = 10.0) -> list[int]:
        """Deliver `update`, or every pending update in order, to `url` with the secret header.

        `url`/`secret` default to what setWebhook registered. Pending updates answered 2xx leave the
        queue; delivery stops at the first failure and keeps the rest for a later retry, as
        Telegram does. Returns the HTTP status of each delivery (0 when nothing answered).
        """
        with self.lock:
            registered = self.webhook or {}
            url = url or registered.get("url")
            secret = secret if secret is not None else registered.get("secret_token")
            batch = [update] if update is not None else list(self.updates)
        if not url:
            raise RuntimeError("no webhook URL: call setWebhook or pass url")
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        statuses = []
        for item in batch:
            try:
                status = requests.post(url, data=json.dumps(item).encode(), headers=headers, timeout=timeout).status_code
            except requests.RequestException as exc:
                status = 0
                reason = f"Connection failed: {type(exc).__name__}"
            else:
                reason = f"Wrong response from the webhook: {status}"
            statuses.append(status)
            with self.lock:
                if 200 <= status < 300:
                    if update is None and item in self.updates:
                        self.updates.remove(item)
                    continue
                self.webhook_last_error = (int(time.time()), reason)
            if update is None:
                break
        return statuses

    # Sent messages ------------------------------------------------------------------------------

    def replies(self) -> list[dict]:
        """What the bot sent: chat_id, text, reply_to (message id answered or None), message."""
        with self.lock:
            return list(self.sent)

    # The Bot API --------------------------------------------------------------------------------

    @route("POST", r"/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)")
    def api_post(self, request: Request, token: str, method: str):
        return self._api(request, token, method)

    @route("GET", r"/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)")
    def api_get(self, request: Request, token: str, method: str):
        return self._api(request, token, method)

    @route("GET", r"/file/bot(?P<token>[^/]+)/(?P<path>.+)")
    def download(self, request: Request, token: str, path: str):
        if token != self.token:
            return _error(401, "Unauthorized")
        with self.lock:
            found = next((f for f in self.files.values() if f["file_path"] == path), None)
        if found is None:
            return _error(404, "Not Found")
        return 200, found["data"], {"Content-Type": "application/octet-stream"}

    def _api(self, request: Request, token: str, method: str):
        if token != self.token:
            return _error(401, "Unauthorized")
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return _error(404, "Not Found")
        try:
            params = _params(request)
        except ValueError:
            return _error(400, "Bad Request: can't parse JSON object")
        return handler(params)

    def _m_getme(self, params: dict) -> tuple[int, dict]:
        return 200, {"ok": True, "result": {**self.bot, "can_join_groups": True,
                                            "can_read_all_group_messages": False, "supports_inline_queries": False}}

    def _m_getupdates(self, params: dict) -> tuple[int, dict]:
        if self.webhook:
            return _error(409, "Conflict: can't use getUpdates method while webhook is active; "
                               "use deleteWebhook to delete the webhook first")
        offset = _int(params.get("offset"))
        limit = min(max(_int(params.get("limit")) or 100, 1), 100)
        timeout = min(max(float(params.get("timeout") or 0), 0.0), MAX_LONG_POLL)
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = params["allowed_updates"] or None
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                if offset is not None and offset < 0:
                    self.updates = self.updates[offset:]
                elif offset is not None:
                    # "An update is considered confirmed as soon as getUpdates is called with an
                    # offset higher than its update_id": confirmed ones are forgotten.
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                # Kinds the bot no longer asks for are dropped (Telegram stops creating them).
                allowed = self.allowed_updates
                self.updates = [u for u in self.updates if allowed is None or _kind(u) in allowed or _kind(u) is None]
                ready = self.updates
                remaining = deadline - time.monotonic()
                if ready or remaining <= 0:
                    break
                self.arrived.wait(remaining)
            return 200, {"ok": True, "result": copy.deepcopy(ready[:limit])}

    def _m_getfile(self, params: dict) -> tuple[int, dict]:
        with self.lock:
            found = self.files.get(str(params.get("file_id") or ""))
        if found is None:
            return _error(400, "Bad Request: invalid file_id")
        if found["file_size"] > DOWNLOAD_LIMIT:
            return _error(400, "Bad Request: file is too big")
        return 200, {"ok": True, "result": {k: found[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}}

    def _m_sendmessage(self, params: dict) -> tuple[int, dict]:
        chat_id = _int(params.get("chat_id"))
        text = params.get("text")
        with self.lock:
            chat = self.chats.get(chat_id) if chat_id is not None else None
            refused = self._chat_refusal(chat_id, chat)
            if refused:
                return refused
            if not isinstance(text, str) or not text.strip():
                return _error(400, "Bad Request: message text is empty")
            if len(text) > MAX_TEXT:
                return _error(400, "Bad Request: message is too long")
            reply = params.get("reply_parameters")
            if isinstance(reply, str):
                try:
                    reply = json.loads(reply)
                except ValueError:
                    return _error(400, "Bad Request: can't parse reply parameters JSON object")
            if reply is None and params.get("reply_to_message_id") is not None:
                reply = {"message_id": _int(params["reply_to_message_id"])}  # deprecated form
            answered = None
            if isinstance(reply, dict):
                answered = self.messages.get((chat_id, _int(reply.get("message_id"))))
                if answered is None and not reply.get("allow_sending_without_reply"):
                    return _error(400, "Bad Request: message to be replied not found")
            message: dict[str, Any] = {"message_id": self._next_message_id(chat_id), "from": dict(self.bot),
                                       "chat": dict(chat), "date": self._tick(), "text": text}
            if params.get("message_thread_id") is not None:
                message["message_thread_id"] = _int(params["message_thread_id"])
            if answered is not None:
                message["reply_to_message"] = _without_reply(answered)
            self.messages[(chat_id, message["message_id"])] = message
            self.sent.append({"chat_id": chat_id, "text": text,
                              "reply_to": answered["message_id"] if answered else None,
                              "message_thread_id": message.get("message_thread_id"),
                              "params": params, "message": message})
            return 200, {"ok": True, "result": copy.deepcopy(message)}

    def _m_sendphoto(self, params: dict) -> tuple[int, dict]:
        return self._send_media("photo", params)

    def _m_senddocument(self, params: dict) -> tuple[int, dict]:
        return self._send_media("document", params)

    def _m_sendvideo(self, params: dict) -> tuple[int, dict]:
        return self._send_media("video", params)

    def _m_sendaudio(self, params: dict) -> tuple[int, dict]:
        return self._send_media("audio", params)

    def _send_media(self, kind: str, params: dict) -> tuple[int, dict]:
        """sendPhoto/sendDocument/sendVideo/sendAudio with the file uploaded under the field `kind`."""
        with self.lock:
            chat, answered, refused = self._addressed(params)
            if refused:
                return refused
            caption = params.get("caption")
            if isinstance(caption, str) and len(caption) > MAX_CAPTION:
                return _error(400, "Bad Request: message caption is too long")
            upload = (params.get("_files") or {}).get(kind)
            if upload is None:
                return _error(400, f"Bad Request: there is no {kind} in the request")
            refused = _upload_refusal(kind, upload)
            if refused:
                return refused
            message = self._bot_message(chat, params, answered, kind, upload, caption)
            self.sent.append({"chat_id": chat["id"], "text": caption or "", "method": f"send{kind.title()}",
                              "reply_to": answered["message_id"] if answered else None,
                              "files": [{"kind": kind, **upload}], "params": _public(params),
                              "message": message, "messages": [message]})
            return 200, {"ok": True, "result": copy.deepcopy(message)}

    def _m_sendmediagroup(self, params: dict) -> tuple[int, dict]:
        """An album of 2-10 photos/videos, or of only documents, or of only audio files, in one call."""
        with self.lock:
            chat, answered, refused = self._addressed(params)
            if refused:
                return refused
            media = params.get("media")
            if not isinstance(media, list) or not 2 <= len(media) <= 10:
                return _error(400, "Bad Request: wrong number of media in the album: it must hold 2-10 items")
            kinds = {m.get("type") for m in media if isinstance(m, dict)}
            if len(kinds) > 1 and not kinds <= {"photo", "video"}:
                mixed = "document" if "document" in kinds else "audio"
                return _error(400, f"Bad Request: {mixed} can't be mixed with other media types")
            uploads = []
            for item in media:
                name = str(item.get("media") or "").removeprefix("attach://")
                upload = (params.get("_files") or {}).get(name)
                if upload is None or item.get("type") not in MEDIA_METHODS.values():
                    return _error(400, "Bad Request: wrong file identifier/HTTP URL specified")
                caption = item.get("caption")
                if isinstance(caption, str) and len(caption) > MAX_CAPTION:
                    return _error(400, "Bad Request: message caption is too long")
                refused = _upload_refusal(item["type"], upload)
                if refused:
                    return refused
                uploads.append((item["type"], upload, caption))
            group_id = str(13000000000000000 + len(self.sent))
            messages = [self._bot_message(chat, params, answered, kind, upload, caption, group_id=group_id)
                        for kind, upload, caption in uploads]
            self.sent.append({"chat_id": chat["id"], "text": uploads[0][2] or "", "method": "sendMediaGroup",
                              "reply_to": answered["message_id"] if answered else None,
                              "files": [{"kind": kind, **upload} for kind, upload, _ in uploads],
                              "params": _public(params), "message": messages[0], "messages": messages})
            return 200, {"ok": True, "result": copy.deepcopy(messages)}

    def _addressed(self, params: dict) -> tuple[dict | None, dict | None, tuple[int, dict] | None]:
        """The chat a send goes to and the message it answers, or Telegram's refusal."""
        chat_id = _int(params.get("chat_id"))
        chat = self.chats.get(chat_id) if chat_id is not None else None
        refused = self._chat_refusal(chat_id, chat)
        if refused:
            return None, None, refused
        reply = params.get("reply_parameters")
        answered = None
        if isinstance(reply, dict):
            answered = self.messages.get((chat_id, _int(reply.get("message_id"))))
            if answered is None and not reply.get("allow_sending_without_reply"):
                return None, None, _error(400, "Bad Request: message to be replied not found")
        return chat, answered, None

    def _chat_refusal(self, chat_id: int | None, chat: dict | None) -> tuple[int, dict] | None:
        """Telegram's refusal of a send to `chat_id`, or None. A private chat exists only once the user
        wrote to the bot; a user seen elsewhere (in a group) cannot be written to first."""
        if chat is None and chat_id in self.seen_users:
            return _error(403, "Forbidden: bot can't initiate conversation with a user")
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        return None

    def _bot_message(self, chat: dict, params: dict, answered: dict | None, kind: str, upload: dict,
                     caption: str | None, *, group_id: str | None = None) -> dict:
        """The Message the bot sent with one uploaded file, kept so customers can reply to it."""
        message: dict[str, Any] = {"message_id": self._next_message_id(chat["id"]), "from": dict(self.bot),
                                   "chat": dict(chat), "date": self._tick()}
        folder = {"photo": "photos", "video": "videos", "audio": "music"}.get(kind, "documents")
        described = self._file(upload["data"], folder, "." + (upload["filename"] or "file").rsplit(".", 1)[-1])
        if kind == "photo":
            message["photo"] = [described]
        else:
            message[kind] = {**described, "file_name": upload["filename"], "mime_type": upload["content_type"]}
        if caption:
            message["caption"] = caption
        if group_id:
            message["media_group_id"] = group_id
        if params.get("message_thread_id") is not None:
            message["message_thread_id"] = _int(params["message_thread_id"])
        if answered is not None:
            message["reply_to_message"] = _without_reply(answered)
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    def _m_setwebhook(self, params: dict) -> tuple[int, dict]:
        url = params.get("url") or ""
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.match(str(secret)):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        with self.lock:
            if not url:
                self.webhook = None
                return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}
            if params.get("drop_pending_updates"):
                self.updates.clear()
            self.webhook = {"url": url, "secret_token": secret, "allowed_updates": params.get("allowed_updates")}
            if isinstance(params.get("allowed_updates"), list):
                self.allowed_updates = params["allowed_updates"] or None
        return 200, {"ok": True, "result": True, "description": "Webhook was set"}

    def _m_deletewebhook(self, params: dict) -> tuple[int, dict]:
        with self.lock:
            self.webhook = None
            if params.get("drop_pending_updates"):
                self.updates.clear()
        return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}

    def _m_getwebhookinfo(self, params: dict) -> tuple[int, dict]:
        with self.lock:
            info: dict[str, Any] = {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                                    "pending_update_count": len(self.updates)}
            if self.webhook and self.webhook_last_error:
                info["last_error_date"], info["last_error_message"] = self.webhook_last_error
            if self.webhook and self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return 200, {"ok": True, "result": info}

    # Internals ----------------------------------------------------------------------------------

    def _queue(self, update: dict) -> dict:
        update = {"update_id": next(self._update_ids), **update}
        if self.allowed_updates is not None and _kind(update) not in self.allowed_updates:
            return update  # the bot did not ask for this kind: Telegram does not create it
        self.updates.append(update)
        self.arrived.notify_all()
        return update

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(4187))
        return next(counter)

    def _file(self, data: bytes, folder: str, suffix: str, *, thumb: bool = False) -> dict:
        number = len(self.files) + 1
        file_id = f"AgACAgQAAxkBAAI{number:06d}" + ("-thumb" if thumb else "")
        record = {"file_id": file_id, "file_unique_id": f"AQAD{number:06d}", "file_size": len(data),
                  "file_path": f"{folder}/file_{number}{suffix}", "data": data}
        self.files[file_id] = record
        described = {"file_id": file_id, "file_unique_id": record["file_unique_id"], "file_size": len(data)}
        if folder == "photos":  # a PhotoSize also has its dimensions
            described.update(width=320 if thumb else 1280, height=240 if thumb else 960)
        return described


def _multipart(request: Request) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """A multipart/form-data body: its plain fields, and its files (name -> filename, type, data)."""
    ctype = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + request.body)
    if not message.is_multipart():
        raise ValueError("no parts")
    fields: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is None:
            fields[name] = data.decode("utf-8", "replace")
        else:
            files[name] = {"filename": part.get_filename(), "content_type": part.get_content_type(), "data": data}
    return fields, files


def _params(request: Request) -> dict[str, Any]:
    """Bot API parameters from the query string, a JSON body, a form body or a multipart upload.

    Uploaded files are under `_files` (field name -> filename, content_type, data).
    """
    params: dict[str, Any] = {k: v[0] for k, v in request.query.items() if v}
    ctype = request.headers.get("Content-Type", "")
    if request.body and ctype.lower().startswith("multipart/form-data"):
        fields, files = _multipart(request)
        params.update(fields)
        params["_files"] = files
    elif request.body and "json" in ctype:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
        params.update(body)
    elif request.body:
        params.update(request.form())
    # Form and query values of object parameters arrive as JSON text.
    for key in ("allowed_updates", "reply_parameters", "media"):
        if isinstance(params.get(key), str) and params[key][:1] in "[{":
            params[key] = json.loads(params[key])
    return params


def _upload_refusal(kind: str, upload: dict[str, Any]) -> tuple[int, dict] | None:
    """Telegram's answer to an upload it will not take: too large (413 past 50 MB), a photo over 10 MB
    or one that is not a picture."""
    size = len(upload["data"])
    if size > UPLOAD_LIMIT:
        return _error(413, "Request Entity Too Large")
    if not size:
        return _error(400, "Bad Request: file must be non-empty")
    if kind == "photo" and size > PHOTO_UPLOAD_LIMIT:
        return _error(400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
    if kind == "photo" and not str(upload["content_type"]).startswith("image/"):
        return _error(400, "Bad Request: IMAGE_PROCESS_FAILED")
    return None


def _public(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as sent, without the uploaded bytes."""
    return {k: v for k, v in params.items() if k != "_files"}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _kind(update: dict) -> str | None:
    return next((k for k in _UPDATE_KINDS if k in update), None)


def _without_reply(message: dict) -> dict:
    """A message as it appears in reply_to_message ("will not contain further reply_to_message")."""
    return {k: v for k, v in message.items() if k != "reply_to_message"}


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


if __name__ == "__main__":  # pragma: no cover - manual use
    with TelegramImitation() as imitation:
        print(f"Telegram imitation at {imitation.url}  token {imitation.token}")
        imitation.private_message(imitation.user("Jane", username="janedoe"), "My order #1234 arrived broken")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
