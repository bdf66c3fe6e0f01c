"""Every channel imitation in one process, for the live demo: start them, get the channel settings, deliver.

`mainland demo` with `demo: {live_channels: true}` starts a `DemoStack`:

- each imitation (sandbox/telegram.py, mastodon.py, x.py, bluesky.py, meta.py for Facebook and
  Instagram, whatsapp.py) runs on 127.0.0.1 on a port the system picks (port 0), in its own
  thread, so nothing is hard-coded and two demos can run side by side;
- an SMTP sink (aiosmtpd) takes the replies of the email channel, which has no mail server in the
  demo: replies to the sample mail and to web-form submissions end up there;
- `channels()` gives the settings of one Mainland channel per imitation, pointing at it, with
  short poll intervals; `allow_hosts()` the hosts media downloads may reach (the SSRF guard
  refuses loopback addresses otherwise); `mail_settings()` the SMTP settings for the email channel;
- once Mainland listens, `connect(base_url)` starts the courier: every second it posts what the
  push channels queued (Facebook, Instagram and WhatsApp events, signed with the app secret as Meta
  signs them) to Mainland's own `/webhooks/<channel>`, keeping what was not answered 2xx for the
  next round, as Meta retries; and it watches what each imitation received from us, printing one
  line per reply ("→ X received a reply to @tom: ...") so a newcomer sees the round trip. A
  WhatsApp reply is followed by its "delivered" and "read" statuses, as a phone would send them.

Telegram runs in polling mode (getUpdates), like most bots.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import requests

from sandbox.base import Imitation
from sandbox.bluesky import BlueskyImitation
from sandbox.mastodon import MastodonImitation
from sandbox.meta import MetaImitation
from sandbox.telegram import TelegramImitation
from sandbox.whatsapp import WhatsAppImitation
from sandbox.x import XImitation

log = logging.getLogger("mainland.demo")

#: Channel name -> how the console calls it.
CHANNEL_NAMES = {"telegram": "Telegram", "mastodon": "Mastodon", "x": "X", "bluesky": "Bluesky",
                 "facebook": "Facebook", "instagram": "Instagram", "whatsapp": "WhatsApp"}
#: The Meta webhook subscription's verify token (a demo value, not a secret).
VERIFY_TOKEN = "mainland-demo-verify-token"
MAX_SHOWN = 90


def _short(text: Any) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message it is given (aiosmtpd)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()
        self._controller = None
        self.host = "127.0.0.1"
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        # aiosmtpd's readiness check connects to the port it was given, so port 0 cannot be used:
        # ask the system for a free port first.
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class DemoStack:
    """The imitations of every social channel plus an SMTP sink, and the courier between them and Mainland."""

    def __init__(self, *, poll_every: float = 5.0, say: Callable[[str], None] = print,
                 courier_every: float = 1.0) -> None:
        self.poll_every = poll_every
        self.say = say
        self.courier_every = courier_every
        self.telegram = TelegramImitation()
        self.mastodon = MastodonImitation()
        self.x = XImitation()
        self.bluesky = BlueskyImitation()
        self.meta = MetaImitation()
        self.whatsapp = WhatsAppImitation()
        self.smtp = SmtpSink()
        self.base_url: str | None = None
        #: Replies seen so far, as (channel, recipient, text): what the console printed.
        self.replies: list[tuple[str, str, str]] = []
        self._seen: dict[str, int] = {}
        self._meta_retry: list[dict[str, Any]] = []
        self._statuses_due: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = requests.Session()

    # Life cycle ---------------------------------------------------------------------------------

    @property
    def imitations(self) -> dict[str, Imitation]:
        return {"telegram": self.telegram, "mastodon": self.mastodon, "x": self.x, "bluesky": self.bluesky,
                "meta": self.meta, "whatsapp": self.whatsapp}

    def start(self) -> DemoStack:
        for imitation in self.imitations.values():
            imitation.start()
        self.smtp.start()
        return self

    def connect(self, base_url: str) -> None:
        """Mainland listens at `base_url`: start posting webhooks to it and watching for replies."""
        self.base_url = base_url.rstrip("/") + "/"
        self._thread = threading.Thread(target=self._courier, name="demo-courier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for imitation in self.imitations.values():
            try:
                imitation.stop()
            except Exception:  # one imitation failing to stop must not keep the others running
                log.exception("could not stop the %s imitation", imitation.name)
        self.smtp.stop()
        self._http.close()

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # What Mainland's configuration needs ----------------------------------------------------------

    def channels(self) -> dict[str, dict[str, Any]]:
        """One channel per imitation, as `channels:` entries of Mainland's configuration."""
        every = self.poll_every
        meta = self.meta
        meta_common = {"api_url": meta.url, "access_token": meta.access_token, "app_secret": meta.app_secret,
                       "verify_token": VERIFY_TOKEN, "page_id": meta.page_id,
                       # Webhooks bring everything; the poll is the safety net, as in production.
                       "poll_every": max(30.0, every)}
        return {
            "telegram": {"kind": "telegram", "token": self.telegram.token, "api_url": self.telegram.url,
                         "bot_username": self.telegram.bot["username"], "poll_every": every},
            "mastodon": {"kind": "mastodon", "base_url": self.mastodon.url, "access_token": self.mastodon.token,
                         "account_domain": self.mastodon.domain, "poll_every": every},
            "x": {"kind": "x", "user_id": self.x.user_id, "api_url": self.x.url, "client_id": self.x.client_id,
                  "access_token": self.x.access_token, "refresh_token": self.x.refresh_token,
                  "poll_every": max(every, 10.0)},
            "bluesky": {"kind": "bluesky", "identifier": self.bluesky.handle, "app_password": self.bluesky.app_password,
                        "service_url": self.bluesky.url, "dms": True,
                        "media_url": self.bluesky.url + "/img/feed_fullsize/plain/{did}/{cid}@jpeg",
                        "poll_every": every},
            "facebook": {"kind": "facebook", **meta_common},
            "instagram": {"kind": "instagram", "account_id": meta.ig_id, **meta_common},
            "whatsapp": {"kind": "whatsapp", "phone_number_id": self.whatsapp.phone_number_id,
                         "access_token": self.whatsapp.access_token, "app_secret": self.whatsapp.app_secret,
                         "verify_token": self.whatsapp.verify_token, "api_url": self.whatsapp.url},
        }

    def allow_hosts(self) -> list[str]:
        """`fetch_allow_hosts` entries: the imitations serve photos from 127.0.0.1."""
        return [imitation.host for imitation in self.imitations.values()]

    def mail_settings(self) -> dict[str, Any]:
        """Settings that send an email channel's replies to the SMTP sink."""
        return {"smtp_host": self.smtp.host, "smtp_port": self.smtp.port, "smtp_security": "none",
                "smtp_username": None}

    # The courier ------------------------------------------------------------------------------------

    def _courier(self) -> None:
        while not self._stop.wait(self.courier_every):
            try:
                self.deliver_webhooks()
            except Exception:  # the demo goes on; the next round tries again
                log.exception("demo: delivering webhooks failed")
            try:
                self.report_replies()
            except Exception:
                log.exception("demo: reading the imitations' replies failed")

    def webhook_url(self, channel: str) -> str:
        assert self.base_url, "connect() first"
        return f"{self.base_url}webhooks/{channel}"

    def deliver_webhooks(self) -> None:
        """Post what Facebook, Instagram and WhatsApp queued to Mainland; keep the refused for a retry."""
        payloads = self._meta_retry + self.meta.webhook_payloads()
        self._meta_retry = []
        for payload in payloads:
            channel = "facebook" if payload.get("object") == "page" else "instagram"
            try:
                answer = self.meta.deliver_webhook(self.webhook_url(channel), payload)
                ok = 200 <= answer.status_code < 300
            except requests.RequestException:
                ok = False
            if not ok:
                self._meta_retry.append(payload)
        for wamid, status in self._statuses_due:
            self.whatsapp.status(wamid, status)
        self._statuses_due = []
        if self.whatsapp.pending:
            self.whatsapp.deliver(self.webhook_url("whatsapp"))

    def report_replies(self) -> None:
        """Print one line for every reply an imitation (or the SMTP sink) received since last time."""
        sources: dict[str, tuple[Any, list]] = {
            "telegram": (self.telegram, self.telegram.sent), "mastodon": (self.mastodon, self.mastodon.sent),
            "x": (self.x, self.x.sent), "bluesky": (self.bluesky, self.bluesky.sent),
            "meta": (self.meta, self.meta.sent), "whatsapp": (self.whatsapp, self.whatsapp.sent),
            "email": (self.smtp, self.smtp.messages),
        }
        for key, (owner, entries) in sources.items():
            with owner.lock:
                new = list(entries[self._seen.get(key, 0):])
                self._seen[key] = len(entries)
            for entry in new:
                channel, recipient, text = self._describe(key, entry)
                self.replies.append((channel, recipient, text))
                self.say(f"→ {CHANNEL_NAMES.get(channel, channel.title())} received a reply to {recipient}: "
                         f"{_short(text)}")
                if key == "whatsapp" and entry.get("wamid"):
                    # The customer's phone reports the message delivered, then read (next round).
                    self._statuses_due += [(entry["wamid"], "delivered"), (entry["wamid"], "read")]

    def _describe(self, key: str, entry: Any) -> tuple[str, str, str]:
        """(channel, who it reached, text) of one entry of an imitation's `sent` list."""
        if key == "email":
            _sender, recipients, content = entry
            message = email.message_from_bytes(content, policy=email.policy.default)
            body = message.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            return "email", ", ".join(recipients), f"{message.get('Subject', '')} | {text}"
        if key == "telegram":
            chat = (entry.get("message") or {}).get("chat") or self.telegram.chats.get(entry["chat_id"]) or {}
            answered = (entry.get("message") or {}).get("reply_to_message") or {}
            person = answered.get("from") or chat
            who = (f"@{person['username']}" if person.get("username") else
                   person.get("first_name") or chat.get("title") or str(entry["chat_id"]))
            where = f" in {chat['title']}" if chat.get("title") else ""
            return "telegram", who + where, entry.get("text", "")
        if key == "mastodon":
            reached = entry.get("reached") or []
            return "mastodon", ", ".join(f"@{a}" for a in reached) or "followers", entry.get("text", "")
        if key == "x":
            who = ""
            if entry.get("kind") == "dm":
                others = [p for p in str(entry.get("dm_conversation_id", "")).split("-") if p != self.x.user_id]
                who = "@" + self.x.users.get(others[0], {}).get("username", "?") if others else ""
            elif entry.get("in_reply_to"):
                try:
                    author = self.x.tweet(entry["in_reply_to"]).get("author_id")
                    who = "@" + self.x.users.get(author, {}).get("username", "?")
                except KeyError:
                    who = ""
            label = "(DM) " if entry.get("kind") == "dm" else ""
            return "x", who or "followers", label + entry.get("text", "")
        if key == "bluesky":
            who = ""
            if entry.get("kind") == "dm":
                senders = [e["message"]["sender"]["did"] for e in self.bluesky.chat_log
                           if e.get("convoId") == entry.get("convoId")
                           and e["message"]["sender"]["did"] != self.bluesky.did]
                who = self.bluesky.profiles.get(senders[0], {}).get("handle", "") if senders else ""
            elif entry.get("in_reply_to") in self.bluesky.posts:
                did = self.bluesky.posts[entry["in_reply_to"]]["author"]
                who = self.bluesky.profiles.get(did, {}).get("handle", "")
            label = "(DM) " if entry.get("kind") == "dm" else ""
            return "bluesky", f"@{who}" if who else "followers", label + entry.get("text", "")
        if key == "meta":
            platform = entry.get("platform")
            channel = "facebook" if platform in ("messenger", "facebook") else "instagram"
            user_id = entry.get("recipient")
            if entry.get("kind") == "comment_reply":
                comment = self.meta.comments.get(entry.get("in_reply_to"), {})
                user_id = comment.get("from")
            name = self.meta.users.get(str(user_id), {}).get("name", str(user_id or ""))
            label = {"comment_reply": "(comment) ", "private_reply": "(private reply) "}.get(entry.get("kind"), "")
            return channel, name, label + entry.get("text", "")
        if key == "whatsapp":
            to = entry.get("to", "")
            name = self.whatsapp.names.get(to)
            who = f"{name} (+{to})" if name else f"+{to}"
            text = entry.get("text") or f"template {entry.get('template')}"
            return "whatsapp", who, text
        return key, "?", str(entry)
