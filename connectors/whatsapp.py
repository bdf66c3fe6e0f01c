"""WhatsApp Business (Cloud API): customers' messages pushed to a webhook, answered from the inbox.

What it does
------------
WhatsApp has no history to poll: Meta posts every customer message, and every status of the
messages we sent, to `<base_url>/webhooks/<channel>`. The endpoint checks the
`X-Hub-Signature-256` header (HMAC-SHA256 of the raw body with the app secret) before anything
is parsed, stores what arrived and answers 200 only after the commit, so a delivery Meta did not
see acknowledged is retried and stored once (the message id `wamid.…` is the dedupe key).

- Every conversation is private and one-to-one. The customer is identified by their phone number
  (`wa_id`, digits with the country code), kept as E.164 (`+16505551234`, identity kind `phone`),
  so the same person writing by SMS or email with that number is the same customer. Their
  WhatsApp profile name becomes the display name. The thread key is the `wa_id`.
- A customer who adopted a WhatsApp username may come without a phone number: the message has no
  `from`, only `from_user_id` (and the contact a `user_id` and `profile.username`). That
  business-scoped user id (BSUID, e.g. `US.13491208655302741918`, the same for this customer
  across our business, new if they change their number) is then the identity, kind `whatsapp`,
  kept exactly as Meta writes it, and the thread key; the name is the profile name, else the
  username. Whenever a phone number is given it stays the identity, and the BSUID and username
  are kept in the item's headers. Replies to such a customer carry `recipient: <BSUID>` instead
  of `to`, as Meta's Messages API documents for user ids (`to` would win if both were sent).
- Text, captions, button and list replies come in as text. Images, documents, audio, voice notes,
  videos and stickers are fetched (`GET /{media-id}`, then the media URL with the access token)
  and stored as attachments; a file that cannot be fetched is listed without content (while
  Meta's media server is busy the delivery is answered 503, so Meta retries it). Locations,
  contacts, reactions, orders and message types WhatsApp itself does not support arrive as a
  readable line such as `[location 52.37, 4.89]`, never dropped.
- A customer who answers a particular message (swipe to reply) carries its id in `references`.
- A customer who edits a message (Meta's `edit` webhook: `edit.original_message_id` and the whole
  new message) or deletes it for everyone (`revoke` with `revoke.original_message_id`) changes the
  message we hold: a `MessageChange` (edited with the new text or caption, or deleted) for the
  original's wamid in `FetchResult.changes`, never a new message, so it never reopens a
  conversation. Meta sends these only for numbers also used in the WhatsApp Business app
  ("coexistence"), and has at times delivered edits as `unsupported` messages instead; those arrive
  as the readable `[unsupported message ...]` line.
- Message statuses (`sent`, `delivered`, `read`, `failed` with Meta's reason) move our reply's
  delivery status forward; a late "delivered" after "read" changes nothing.
- A part of a delivery that cannot be understood goes to the quarantine, the rest is stored.

Replies
-------
`POST /{phone-number-id}/messages` with `type: text` (at most 4096 characters) and
`context.message_id` = the customer's message, so the reply shows as a quoted answer. WhatsApp
allows free text only within **24 hours of the customer's last message** (the customer service
window, `limits.reply_window_hours`). After that Meta refuses it (error 131047) and the agent is
told that only an approved template message can be sent. A reply that carries an
`OutboundReply.template` goes out as that template (`type: template`, its parameters filling the
body's {{1}}, {{2}}, ...), threaded to nothing: that is also how an agent **starts** a conversation
(`limits.starts_conversations = "template"`, to a customer's phone number or user id).
`message_templates()` lists the account's approved templates (`GET /{waba-id}/message_templates`,
every page, only `status: APPROVED`, only those whose variables are all in the body), cached five
minutes; it needs `business_account_id`.

A reply may carry **one file** (`limits.max_attachments = 1`): it is uploaded with
`POST /{phone-number-id}/media` (multipart `file`, `type`, `messaging_product=whatsapp`) and sent
with one `/messages` call of type `image`, `video`, `audio` or `document` naming the media id,
the reply's text as the `caption` (at most 1024 characters; documents also carry their
`filename`; audio takes no caption). One reply is one `/messages` call, so a retry can never
send a part twice; uploading again on a retry is harmless. Before anything is sent the file is
checked against Meta's supported media types and caps (JPEG/PNG images 5 MB, MP4/3GPP video
16 MB, AAC/AMR/MP3/M4A/OGG audio 16 MB, PDF/Word/Excel/PowerPoint/text documents 100 MB) and
refused with what to do (a smaller file, a shorter text, the text as a reply of its own).

Rate limits (130429 throughput, 131056 too many messages to one customer, 80007 and 4 account
or app limits), Meta's temporary failures and 5xx are retried later; everything else (an expired
token, an unknown number, a paused account) is permanent and the agent sees Meta's explanation.

Setup
-----
1. In Meta for Developers create an app of type *Business* and add the **WhatsApp** product; note
   the **phone number id** (not the phone number) and the WhatsApp Business Account id.
2. In Business Settings create a *system user*, give it the app and the WhatsApp account with
   `whatsapp_business_messaging` (and `whatsapp_business_management`), and generate a token that
   never expires: that is `access_token`.
3. App settings → Basic → **App secret**: that is `app_secret`.
4. WhatsApp → Configuration → Webhook: callback URL `<base_url>/webhooks/<channel>`, verify token
   = any random string you also put in `verify_token`; then subscribe to the `messages` field.
Details: docs/channels/whatsapp.md.

Settings: see `settings` below.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from connectors._http import Http, retry_after_seconds
from connectors._meta import challenge_answer, verify_signature
from connectors._probe import http_probe
from connectors.base import (
    N_,
    PHONE_IDENTITY,
    Connector,
    ConnectorError,
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
from inbox.models import (
    CHANGE_DELETED,
    CHANGE_EDITED,
    Attachment,
    Author,
    DeliveryUpdate,
    FetchResult,
    InboundItem,
    MessageChange,
    OutboundReply,
    Reject,
    TemplateInfo,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_TEXT = 4096
MAX_NAME = 200
#: Meta's payloads stay well under this; the endpoint's default 1 MB could refuse a real one.
WEBHOOK_MAX_BYTES = 3 * 1024 * 1024
#: Free-form messages are allowed this long after the customer's last message.
REPLY_WINDOW_HOURS = 24
#: "Re-engagement message": the 24-hour customer service window is closed.
WINDOW_CLOSED = 131047
#: Throttling and temporary failures: try again later. Seconds to wait when Meta gives no delay.
RETRY_CODES = {
    4: 60.0,  # application request limit reached
    17: 60.0, 32: 60.0, 613: 60.0,  # Graph user/page/custom rate limits
    80007: 60.0,  # WhatsApp Business Account rate limit
    130429: 10.0,  # Cloud API throughput reached
    131048: 300.0,  # spam rate limit: too many previous messages were blocked or flagged
    131056: 6.0,  # pair rate limit: too many messages to the same customer in a short time
    1: 30.0, 2: 30.0,  # unknown / temporarily unavailable
    131000: 30.0,  # something went wrong
    131016: 30.0,  # service unavailable
    133004: 30.0,  # server temporarily unavailable
}
#: What the agent should do about common permanent refusals, after Meta's own words.
ADVICE = {
    WINDOW_CLOSED: "More than 24 hours have passed since the customer last wrote: WhatsApp only allows an "
                   "approved template message now. Send a template, or wait until the customer writes again.",
    190: "The access token was refused (expired or revoked): create a new system-user token and put it in "
         "the channel's access_token setting.",
    131026: "WhatsApp could not deliver to this number (no WhatsApp account, an old app version, or the "
            "customer has not accepted the new terms).",
    131030: "This number is not on the test number's allowed list (development mode).",
    131031: "The WhatsApp Business account is locked; see WhatsApp Manager.",
    131042: "The WhatsApp Business account has a payment problem; see WhatsApp Manager.",
    131051: "WhatsApp does not support this message type.",
    131053: "WhatsApp could not take the file (too large, or not of a type it accepts): send a smaller JPEG, PNG, "
            "MP4 or PDF file.",
    132001: "No approved template with this name and language exists.",
    368: "The WhatsApp account is temporarily blocked for policy violations.",
}
#: A reply's file: the message type for each MIME type WhatsApp accepts, and that type's largest file
#: (Cloud API "supported media types"; stickers, image/webp, are not offered).
_SEND_MEDIA: dict[str, tuple[tuple[str, ...], int]] = {
    "image": (("image/jpeg", "image/png"), 5 * 1024 * 1024),
    "video": (("video/mp4", "video/3gpp", "video/3gp"), 16 * 1024 * 1024),
    "audio": (("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"), 16 * 1024 * 1024),
    "document": (("application/pdf", "text/plain", "application/msword",
                  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                  "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                  "application/vnd.ms-powerpoint",
                  "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
                 100 * 1024 * 1024),
}
SEND_TYPES = tuple(t for types, _ in _SEND_MEDIA.values() for t in types)
_SEND_TYPES_TEXT = ("JPEG or PNG images (5 MB), MP4 or 3GPP video (16 MB), AAC, AMR, MP3, M4A or OGG (Opus) audio "
                    "(16 MB) and PDF, Word, Excel, PowerPoint or plain-text documents (100 MB)")
#: A media message's caption (the reply's text when it carries a file).
MAX_CAPTION = 1024
#: Media message types and how their files are named when WhatsApp gives no filename.
_MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
#: Message types that change a message we hold instead of adding one (Meta's edit and revoke webhooks).
_CHANGE_TYPES = ("edit", "revoke")
_STATUSES = ("sent", "delivered", "read", "failed")
#: Hosts the access token may be sent to when a media URL is fetched (besides the Graph API's).
_MEDIA_TOKEN_HOSTS = ("fbsbx.com", "facebook.com", "fbcdn.net", "whatsapp.net", "whatsapp.com")


def whatsapp_error(body: Any) -> dict[str, Any] | None:
    """The `error` object of a Graph API error body, or None."""
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def error_text(error: Mapping[str, Any]) -> str:
    """One line for the agent: Meta's message, its details and the code, plus advice when we have some."""
    code = error.get("code")
    message = str(error.get("error_user_msg") or error.get("message") or error.get("title") or "error")
    data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
    details = data.get("details") or error.get("details")
    text = message
    if isinstance(details, str) and details and details not in message:
        text += f": {details}"
    if isinstance(code, int) and f"#{code}" not in text and f"({code})" not in text:
        text += f" (code {code})"
    advice = ADVICE.get(code) if isinstance(code, int) else None
    return f"{text}. {advice}" if advice else text


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _usage_delay(headers: Mapping[str, str]) -> float | None:
    """Seconds until access returns, from `X-Business-Use-Case-Usage` (minutes per business id)."""
    raw = _header(headers, "X-Business-Use-Case-Usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [entry.get("estimated_time_to_regain_access") for entries in
               (usage.values() if isinstance(usage, dict) else []) if isinstance(entries, list)
               for entry in entries if isinstance(entry, dict)]
    minutes = [m for m in minutes if isinstance(m, int | float) and m > 0]
    return max(minutes) * 60.0 if minutes else None


def _digits(number: str | None) -> str:
    return "".join(ch for ch in str(number or "") if ch.isdigit())


class WhatsAppConnector(Connector):
    kind = "whatsapp"
    #: Authors are their phone number, or the business-scoped user id when WhatsApp hides the number.
    identities = (PHONE_IDENTITY, IdentityRule("whatsapp"))
    display_name = N_("WhatsApp")
    icon_text = "W"
    icon_color = "#157a3a"
    push_only = True
    settings = (
        Setting("phone_number_id", required=True,
                help=N_("The phone number id from WhatsApp → API Setup (not the phone number itself).")),
        Setting("access_token", required=True, secret=True,
                help=N_("A system-user access token with whatsapp_business_messaging (generate one that never "
                        "expires).")),
        Setting("app_secret", required=True, secret=True,
                help=N_("The app secret (App settings → Basic); webhooks signed with anything else are refused.")),
        Setting("verify_token", required=True, secret=True, copy_to_provider=True,
                help=N_("Any random string; enter the same in the app's webhook configuration (hub.verify_token).")),
        Setting("app_secret_previous", default=None, secret=True,
                help=N_("While rotating the app secret: the old one, still accepted. Remove it when done.")),
        Setting("business_account_id", default=None,
                help=N_("The WhatsApp Business Account id; when set, deliveries for other accounts are ignored and "
                        "agents can send its approved templates (to start a conversation, or after 24 hours).")),
        Setting("api_url", default="https://graph.facebook.com", help=N_("Base URL of the Graph API.")),
        Setting("api_version", default="v25.0", help=N_("Graph API version, e.g. v25.0.")),
        Setting("download_media", default=True, help=N_("Download images, documents, audio and video as attachments.")),
        Setting("timeout", default=30, help=N_("Seconds a Graph API call may take.")),
    )
    # WhatsApp has no public conversations; a private reply carries one file, its text as the caption.
    limits = Limits(max_text_length=MAX_TEXT, formatting="plain", reply_window_hours=REPLY_WINDOW_HOURS,
                    supports_attachments=True, attachments_public=False, attachments_private=True,
                    attachment_types=SEND_TYPES, max_attachment_bytes=_SEND_MEDIA["document"][1],
                    max_attachments=1, starts_conversations="template")
    #: A customer's phone number (E.164) or, for one who hides it behind a username, their user id.
    writes_to = ("phone", "whatsapp")
    webhook_max_bytes = WEBHOOK_MAX_BYTES

    def __init__(self, name: str, config: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.phone_number_id = str(self.config["phone_number_id"]).strip()
        version = str(self.config["api_version"]).strip().strip("/")
        if not version.startswith("v"):
            version = f"v{version}"
        self.api_url = str(self.config["api_url"]).rstrip("/")
        self.http = Http(f"{self.api_url}/{version}", timeout=float(self.config["timeout"]), redact=self.redact,
                         headers={"Authorization": f"Bearer {self.config['access_token']}"})

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        if not str(merged["phone_number_id"]).strip().isdigit():
            raise PermanentError("phone_number_id: the numeric id from WhatsApp → API Setup, not the phone number")
        return merged

    def fetch(self, cursor: str | None) -> FetchResult:
        """Nothing to poll: WhatsApp only pushes (see `parse_webhook`)."""
        return FetchResult(items=[], cursor=cursor)

    # Webhooks ---------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        secrets = [str(s) for s in (self.config["app_secret"], self.config.get("app_secret_previous")) if s]
        verify_signature(request.body, _header(request.headers, SIGNATURE_HEADER), secrets)

    def webhook_challenge(self, args: Mapping[str, str]) -> str | None:
        return challenge_answer(args, self.config["verify_token"])

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return FetchResult(items=[], cursor=None,
                               rejects=[Reject(raw=request.body, reason="webhook body is not JSON")])
        if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
            kind = payload.get("object") if isinstance(payload, dict) else type(payload).__name__
            return FetchResult(items=[], cursor=None, rejects=[Reject(
                raw=request.body, reason=f"not a WhatsApp Business Account delivery (object {str(kind)[:40]!r})")])
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        updates: list[DeliveryUpdate] = []
        changes: list[MessageChange] = []
        entries = payload.get("entry")
        if not isinstance(entries, list):
            rejects.append(Reject(raw=request.body, reason="delivery without an entry list"))
            entries = []
        for entry in entries:
            try:
                found, bad, statuses, edits = self._entry(entry)
            except RetryableError:
                raise
            except Exception as exc:  # one broken entry must not cost the rest of the delivery
                rejects.append(Reject(raw=_dump(entry), reason=self.redact(f"unreadable entry: {exc}"),
                                      exception=type(exc).__name__))
                continue
            items += found
            rejects += bad
            updates += statuses
            changes += edits
        return FetchResult(items=items, cursor=None, rejects=rejects, updates=updates, changes=changes)

    def _entry(self, entry: Any) -> tuple[list[InboundItem], list[Reject], list[DeliveryUpdate], list[MessageChange]]:
        account = str(pick(entry, "id"))
        changes = pick(entry, "changes", type=list)
        wanted = self.config.get("business_account_id")
        if wanted and account != str(wanted):
            self.log.warning("channel %s: a delivery for WhatsApp account %s ignored (configured: %s)",
                             self.name, account[:30], wanted)
            return [], [], [], []
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        updates: list[DeliveryUpdate] = []
        edits: list[MessageChange] = []
        for change in changes:
            if not isinstance(change, dict):
                raise ItemError("a change is not an object")
            if change.get("field") != "messages":
                continue  # template status, account updates...: nothing for the inbox
            value = pick(change, "value", type=dict)
            number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
            if number_id and number_id != self.phone_number_id:
                self.log.warning("channel %s: a delivery for phone number id %s ignored (configured: %s)",
                                 self.name, number_id[:30], self.phone_number_id)
                continue
            for error in value.get("errors") or []:
                if isinstance(error, dict):
                    self.log.warning("channel %s: WhatsApp reports %s", self.name, self.redact(error_text(error)))
            contacts = [c for c in value.get("contacts") or [] if isinstance(c, dict)]
            for message in value.get("messages") or []:
                single = _single(entry, value, message)
                try:
                    if isinstance(message, dict) and message.get("type") in _CHANGE_TYPES:
                        edits.append(self._message_change(message))
                    else:
                        items.append(self._message_item(message, contacts, single))
                except RetryableError:
                    raise  # Meta's media server is busy: the endpoint answers 503 and Meta retries
                except Exception as exc:  # one broken message must not cost the rest
                    rejects.append(Reject(raw=_dump(single), reason=self.redact(str(exc)) or type(exc).__name__,
                                          source_ref=message.get("id") if isinstance(message, dict) else None,
                                          exception=type(exc).__name__))
            for status in value.get("statuses") or []:
                try:
                    update = self._status_update(status)
                except ItemError as exc:
                    rejects.append(Reject(raw=_dump(_single(entry, value, status, key="statuses")),
                                          reason=f"unreadable status: {exc}", exception="ItemError"))
                    continue
                if update:
                    updates.append(update)
        return items, rejects, updates, edits

    # Items ------------------------------------------------------------------------------------

    def _message_item(self, message: Any, contacts: list[dict[str, Any]], raw: dict[str, Any]) -> InboundItem:
        if not isinstance(message, dict):
            raise ItemError("a message is not an object")
        wamid = pick(message, "id", type=str)
        if not wamid.strip():
            raise ItemError("message id is empty")
        kind = pick(message, "type", type=str)
        sent_at = _epoch(pick(message, "timestamp"))
        sender, author, extra = _sender(message, contacts)
        text, attachments, headers = self._content(message, kind)
        headers.update(extra)
        context = message.get("context") if isinstance(message.get("context"), dict) else {}
        references = [context["id"]] if isinstance(context.get("id"), str) and context["id"] else []
        if kind == "reaction" and isinstance((message.get("reaction") or {}).get("message_id"), str):
            references = [message["reaction"]["message_id"]]
        if context.get("forwarded") or context.get("frequently_forwarded"):
            headers["forwarded"] = "frequently" if context.get("frequently_forwarded") else "yes"
        return InboundItem(
            channel=self.name, external_id=wamid, author=author, text=text, sent_at=sent_at,
            thread_key=sender, references=tuple(references), public=False, attachments=tuple(attachments),
            headers={"type": kind, **headers}, raw=_dump(raw), source_ref=wamid,
        )

    def _message_change(self, message: dict[str, Any]) -> MessageChange:
        """An `edit` or `revoke` of a message stored earlier: a change to it, never a new message.

        Both name the changed message by `original_message_id` (its wamid, which is the stored
        item's external_id). An edit carries the whole new message: its text, or a media caption.
        """
        kind = message["type"]
        original = pick(message, kind, "original_message_id", type=str).strip()
        if not original:
            raise ItemError(f"{kind}.original_message_id is empty")
        at = _epoch(message["timestamp"]) if message.get("timestamp") is not None else None
        if kind == "revoke":
            return MessageChange(external_id=original, kind=CHANGE_DELETED, at=at)
        new = pick(message, kind, "message", type=dict)
        new_kind = new.get("type")
        content = new.get(new_kind) if isinstance(new_kind, str) and isinstance(new.get(new_kind), dict) else {}
        if new_kind == "text":
            text = content.get("body")
        elif new_kind in _MEDIA_TYPES:
            text = content.get("caption") or ""  # a caption taken away leaves the file without text
        else:
            text = None
        if not isinstance(text, str):
            raise ItemError(f"edit of {original[:80]} carries no text or caption (type {str(new_kind)[:30]})")
        return MessageChange(external_id=original, kind=CHANGE_EDITED, text=text, at=at)

    def _content(self, message: dict[str, Any], kind: str) -> tuple[str, list[Attachment], dict[str, str]]:
        """The message's text, its files and a few useful facts, by message type."""
        body = message.get(kind) if isinstance(message.get(kind), dict) else {}
        if kind == "text":
            return str(pick(message, "text", "body", type=str)), [], {}
        if kind in _MEDIA_TYPES:
            media_id = pick(message, kind, "id", type=str)
            caption = body.get("caption") if isinstance(body.get("caption"), str) else ""
            return caption, [self._media(kind, media_id, body, str(message.get("id")))], {}
        if kind == "interactive":
            reply = body.get(body.get("type")) if isinstance(body.get(body.get("type")), dict) else {}
            title = reply.get("title") or reply.get("body") or reply.get("name") or ""
            if reply.get("description"):
                title = f"{title} ({reply['description']})"
            headers = {"reply_id": str(reply["id"])[:200]} if reply.get("id") else {}
            if not title and reply.get("response_json"):
                title = f"[form response] {str(reply['response_json'])[:2000]}"
            return str(title) or "[interactive reply]", [], headers
        if kind == "button":
            headers = {"payload": str(body["payload"])[:200]} if body.get("payload") else {}
            return str(body.get("text") or body.get("payload") or "[button]"), [], headers
        if kind == "location":
            where = f"[location {body.get('latitude')}, {body.get('longitude')}]"
            extra = " ".join(str(body[k]) for k in ("name", "address", "url") if body.get(k))
            return f"{where} {extra}".strip(), [], {}
        if kind == "contacts":
            lines = []
            for contact in message.get("contacts") or []:
                if not isinstance(contact, dict):
                    continue
                name = (contact.get("name") or {}).get("formatted_name") if isinstance(contact.get("name"), dict) \
                    else None
                phones = [p.get("phone") for p in contact.get("phones") or [] if isinstance(p, dict) and p.get("phone")]
                lines.append(" ".join(["[contact", str(name or "?"), *map(str, phones)]) + "]")
            return "\n".join(lines) or "[contact]", [], {}
        if kind == "reaction":
            emoji = body.get("emoji")
            return (f"[reaction {emoji}]" if emoji else "[reaction removed]"), [], {}
        if kind == "order":
            products = body.get("product_items") if isinstance(body.get("product_items"), list) else []
            note = f" {body['text']}" if isinstance(body.get("text"), str) and body["text"] else ""
            return f"[order of {len(products)} item(s)]{note}", [], {}
        if kind == "system":
            return f"[system] {body.get('body') or body.get('type') or ''}".strip(), [], {}
        # Types WhatsApp itself calls unsupported, and any type newer than this connector.
        errors = message.get("errors") if isinstance(message.get("errors"), list) else []
        reason = next((str(e.get("title") or e.get("message")) for e in errors if isinstance(e, dict)), "")
        return f"[{kind} message: not shown here{'; ' + reason if reason else ''}]", [], {}

    def _media(self, kind: str, media_id: str, body: dict[str, Any], wamid: str) -> Attachment:
        """A media message's file: its URL from `GET /{media-id}`, then the bytes with the token."""
        content_type = str(body.get("mime_type") or "application/octet-stream").split(";")[0].strip()
        filename = body.get("filename") if isinstance(body.get("filename"), str) and body["filename"] else None
        if not filename:
            suffix = mimetypes.guess_extension(content_type) or ""
            stem = "voice" if kind == "audio" and body.get("voice") else kind
            filename = f"{stem}-{media_id[-12:]}{suffix}"
        placeholder = Attachment(filename=filename, content_type=content_type)
        if not self.config["download_media"]:
            return placeholder
        try:
            info = self._call("GET", f"/{media_id}")
        except PermanentError as exc:  # an expired media id, a refused token: keep the message
            self.log.warning("channel %s: media of %s not fetched: %s", self.name, wamid[:80], exc)
            return placeholder
        url = info.get("url") if isinstance(info, dict) else None
        if not isinstance(url, str) or not url:
            self.log.warning("channel %s: media %s came without a URL", self.name, media_id[:40])
            return placeholder
        if not self._may_carry_token(url):
            # The token opens the whole WhatsApp account: it only goes to Meta's hosts.
            self.log.warning("channel %s: media URL host %s is not Meta's; not fetched", self.name,
                             urlsplit(url).hostname)
            return placeholder
        try:
            fetched = self.download(url, filename=filename, content_type=str(info.get("mime_type") or content_type),
                                    headers={"Authorization": f"Bearer {self.config['access_token']}"})
        except ItemError as exc:
            self.log.warning("channel %s: media of %s not fetched: %s", self.name, wamid[:80], exc)
            return placeholder
        return fetched

    def _may_carry_token(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.netloc.lower() == urlsplit(self.api_url).netloc.lower():
            return True
        return parts.scheme == "https" and any(host == h or host.endswith("." + h) for h in _MEDIA_TOKEN_HOSTS)

    def _status_update(self, status: Any) -> DeliveryUpdate | None:
        if not isinstance(status, dict):
            raise ItemError("a status is not an object")
        wamid = pick(status, "id", type=str)
        state = pick(status, "status", type=str)
        if state not in _STATUSES:
            return None  # "deleted", "warning" and the like say nothing about delivery
        at = None
        if status.get("timestamp") is not None:
            try:
                at = _epoch(status["timestamp"])
            except ItemError:
                at = None
        error = None
        if state == "failed":
            errors = [e for e in status.get("errors") or [] if isinstance(e, dict)]
            error = self.redact(error_text(errors[0]))[:500] if errors else "WhatsApp reports the message failed"
        return DeliveryUpdate(provider_id=wamid, status=state, error=error, at=at)

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        """A quarantined message again (kept as a one-message delivery)."""
        result = self.parse_webhook(WebhookRequest(body=raw, headers={}))
        if result.rejects:
            raise ItemError(result.rejects[0].reason)
        if len(result.items) != 1:
            raise ItemError("the stored delivery holds no customer message")
        return result.items[0]

    # Sending ----------------------------------------------------------------------------------

    def send(self, reply: OutboundReply) -> str:
        """One `/messages` call per reply: text, or one file with the text as its caption.

        A file is uploaded first (`POST /{phone-number-id}/media`); a retry uploads it again, which
        is harmless, while the message itself is only ever sent by this one call.
        """
        text = reply.text.strip()
        whom = self._recipient_fields(reply)
        if reply.template is not None:
            # An approved template (the only message allowed outside the 24-hour window): threaded
            # to nothing, the text is only our record of the filled body.
            payload = {"messaging_product": "whatsapp", "recipient_type": "individual", **whom,
                       **_template_content(reply.template.name, reply.template.language, reply.template.parameters)}
            return self._sent_id(self._call("POST", f"/{self.phone_number_id}/messages", json=payload))
        if reply.attachments:
            content = self._media_content(reply.attachments, text)
        else:
            content = self._text_content(text)
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **whom,
                                   **content}
        if reply.reply_to_external_id:
            payload["context"] = {"message_id": reply.reply_to_external_id}
        return self._sent_id(self._call("POST", f"/{self.phone_number_id}/messages", json=payload))

    @staticmethod
    def _text_content(text: str) -> dict[str, Any]:
        if not text:
            raise PermanentError("the reply is empty")
        if len(text) > MAX_TEXT:
            raise PermanentError(f"the reply has {len(text)} characters; WhatsApp allows {MAX_TEXT}. "
                                 f"Shorten it by {len(text) - MAX_TEXT}.")
        return {"type": "text", "text": {"body": text, "preview_url": False}}

    def _media_content(self, attachments: tuple[Attachment, ...], text: str) -> dict[str, Any]:
        """The `type` and media object of a reply with one file; the file is checked, then uploaded."""
        if len(attachments) > 1:
            raise PermanentError(f"the reply has {len(attachments)} files; a WhatsApp message carries one. "
                                 "Send each file as a reply of its own.")
        attachment = attachments[0]
        content_type = _bare_type(attachment.content_type)
        kind = _send_kind(content_type)
        if kind is None:
            raise PermanentError(f"WhatsApp cannot send {attachment.filename} ({content_type or 'unknown type'}): "
                                 f"it takes {_SEND_TYPES_TEXT}. Convert the file, or send it another way.")
        data = attachment.data
        if data is None:
            raise PermanentError(f"{attachment.filename} has no content to send; attach the file again.")
        cap = _SEND_MEDIA[kind][1]
        if len(data) > cap:
            raise PermanentError(f"{attachment.filename} is {_megabytes(len(data))}; WhatsApp takes "
                                 f"{kind} files up to {_megabytes(cap)}. Send a smaller file.")
        if text and kind == "audio":
            raise PermanentError("a WhatsApp audio message carries no text: remove the text and send it as a "
                                 "reply of its own, or send the file alone.")
        if len(text) > MAX_CAPTION:
            raise PermanentError(f"with a file the text is the file's caption, which WhatsApp limits to "
                                 f"{MAX_CAPTION} characters; this one has {len(text)}. Shorten it by "
                                 f"{len(text) - MAX_CAPTION}, or send the text as a reply of its own.")
        media: dict[str, Any] = {"id": self._upload(attachment, content_type, data)}
        if text:
            media["caption"] = text
        if kind == "document":
            media["filename"] = attachment.filename
        return {"type": kind, kind: media}

    def _upload(self, attachment: Attachment, content_type: str, data: bytes) -> str:
        """`POST /{phone-number-id}/media` (multipart `file`, `type`, `messaging_product`) -> the media id."""
        answer = self._call("POST", f"/{self.phone_number_id}/media",
                            files={"file": (attachment.filename, data, content_type)},
                            data={"type": content_type, "messaging_product": "whatsapp"})
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise RetryableError("WhatsApp took the file but answered without its media id")
        return media_id

    def send_template(self, to: str, template_name: str, language: str,
                      parameters: list[str] | tuple[str, ...] = ()) -> str:
        """Send an approved template (allowed outside the 24-hour window); returns its wamid.

        `parameters` fill the body's {{1}}, {{2}}, ... in order.
        """
        number = str(to or "").strip()
        if not number:
            raise PermanentError("no WhatsApp number or user id to send the template to")
        whom = {"to": _digits(number)} if _digits(number) == number.lstrip("+") else {"recipient": number}
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", **whom,
                   **_template_content(template_name, language, parameters)}
        return self._sent_id(self._call("POST", f"/{self.phone_number_id}/messages", json=payload))

    @classmethod
    def thread_key_for(cls, handle: str) -> str | None:
        """A customer's items carry their number's digits (`wa_id`) or their user id as the thread key."""
        value = str(handle or "").strip()
        return _digits(value) if value and _digits(value) == value.lstrip("+") else (value or None)

    def message_templates(self) -> list[TemplateInfo]:
        """The account's approved templates whose variables are all in the body, cached a few minutes.

        `GET /{waba-id}/message_templates?fields=name,language,status,category,components`, every page
        (`paging.cursors.after` while `paging.next` is given). Needs `business_account_id`.
        """
        account = str(self.config.get("business_account_id") or "").strip()
        if not account:
            return []
        key = (self.api_url, account)
        cached = _TEMPLATE_CACHE.get(key)
        if cached and time.monotonic() - cached[0] < TEMPLATE_CACHE_SECONDS:
            return list(cached[1])
        failed = _TEMPLATE_FAILURES.get(key)
        if failed and time.monotonic() - failed[0] < TEMPLATE_FAILURE_SECONDS:
            raise RetryableError(failed[1])
        try:
            found = self._read_templates(account)
        except ConnectorError as exc:
            _TEMPLATE_FAILURES[key] = (time.monotonic(), str(exc))
            raise
        _TEMPLATE_FAILURES.pop(key, None)
        _TEMPLATE_CACHE[key] = (time.monotonic(), tuple(found))
        return found

    def _read_templates(self, account: str) -> list[TemplateInfo]:
        found: list[TemplateInfo] = []
        params: dict[str, Any] = {"fields": "name,language,status,category,components", "limit": 100}
        for _page in range(TEMPLATE_MAX_PAGES):
            answer = self._call("GET", f"/{account}/message_templates", params=params)
            found += [t for t in (_template_info(raw) for raw in answer.get("data") or []) if t]
            after = ((answer.get("paging") or {}).get("cursors") or {}).get("after")
            if not (answer.get("paging") or {}).get("next") or not after:
                break
            params = {**params, "after": after}
        found.sort(key=lambda t: (t.name, t.language))
        return found

    @staticmethod
    def _recipient_fields(reply: OutboundReply) -> dict[str, str]:
        """Whom a reply goes to: `to` with the phone number, else `recipient` with the user id.

        Meta's Messages API takes a business-scoped user id (a customer who hides their number
        behind a username) in `recipient`; when both are given `to` wins, so only one is sent.
        """
        for candidate in (reply.thread_key, reply.to.handle if reply.to else None):
            if candidate and _digits(candidate) == candidate.lstrip("+"):
                return {"to": _digits(candidate)}
        for candidate in (reply.thread_key, reply.to.handle if reply.to else None):
            if candidate and candidate.strip():
                return {"recipient": candidate.strip()}
        raise PermanentError("the conversation has no WhatsApp number or user id to answer")

    @staticmethod
    def _sent_id(answer: Any) -> str:
        try:
            wamid = answer["messages"][0]["id"]
        except (KeyError, IndexError, TypeError):
            raise RetryableError("WhatsApp accepted the message but answered without its id") from None
        return str(wamid)

    # The Graph API ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One Graph API call; Meta's error codes decide between retrying and giving up."""
        response = self.http.request(method, path, expect=tuple(range(100, 600)), **kwargs)
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300 and body is not None:
            return body
        error = whatsapp_error(body)
        where = f"WhatsApp {method} {path.split('?')[0]}"
        delay = retry_after_seconds(response.headers) or _usage_delay(response.headers)
        if error is None:
            text = self.redact(f"{where} answered {status}" + (f": {response.text[:200]}" if response.text else ""))
            if status == 429 or status >= 500 or 200 <= status < 300:
                raise RetryableError(text, retry_after=delay)
            raise PermanentError(text)
        code = error.get("code")
        text = self.redact(f"WhatsApp: {error_text(error)}")[:600]
        if code in RETRY_CODES or error.get("is_transient") is True or status == 429 or status >= 500:
            raise RetryableError(text, retry_after=delay or RETRY_CODES.get(code, 30.0))
        raise PermanentError(text)

    def probe(self) -> ProbeResult:
        """`GET /{phone-number-id}?fields=display_phone_number,verified_name`: the number the token may send
        from. Meta answers a bad token with code 190; an id the token cannot see with code 100."""
        def signed_in(body: Any) -> Phrase:
            return Phrase(N_("WhatsApp number {number} ({name}) answers"),
                          {"number": str(body["display_phone_number"]), "name": str(body["verified_name"])})

        return http_probe(
            self, self.http, f"/{self.phone_number_id}", what="WhatsApp", signed_in=signed_in,
            params={"fields": "display_phone_number,verified_name"},
            is_refusal=lambda status, body: status == 401 or (whatsapp_error(body) or {}).get("code") == 190,
            error_text=lambda body: error_text(whatsapp_error(body) or {}),
            refused=N_("Meta refused the access token ({status}): create a new token for a system user with the "
                       "whatsapp_business_messaging permission (Business Settings, System users) and paste it here"))

    def close(self) -> None:
        self.http.close()


# Helpers --------------------------------------------------------------------------------------


#: Approved templates per (api url, account): (when read, templates). Agents open many composers; the
#: list changes only when someone gets a template approved in WhatsApp Manager.
_TEMPLATE_CACHE: dict[tuple[str, str], tuple[float, tuple[TemplateInfo, ...]]] = {}
#: A failed look-up, remembered as briefly: the composer asks while rendering a page, and a Graph API
#: that is down must not hold every conversation page for the connector's timeout.
_TEMPLATE_FAILURES: dict[tuple[str, str], tuple[float, str]] = {}
TEMPLATE_FAILURE_SECONDS = 60.0


def forget_templates() -> None:
    """Drop the remembered template lists and failures (a new account, or a test's fresh start)."""
    _TEMPLATE_CACHE.clear()
    _TEMPLATE_FAILURES.clear()
TEMPLATE_CACHE_SECONDS = 300
TEMPLATE_MAX_PAGES = 20
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def _template_content(name: str, language: str, parameters: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The `type: template` part of a `/messages` payload; `parameters` fill the body's {{1}}, {{2}}, ..."""
    if not name or not language:
        raise PermanentError("the template has no name or language")
    template: dict[str, Any] = {"name": name, "language": {"code": language, "policy": "deterministic"}}
    if parameters:
        template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": str(p)}
                                                                  for p in parameters]}]
    return {"type": "template", "template": template}


def _template_info(raw: Any) -> TemplateInfo | None:
    """An approved template the composer can fill (variables in its body only), else None."""
    if not isinstance(raw, dict) or raw.get("status") != "APPROVED":
        return None
    name, language = _text(raw.get("name")), _text(raw.get("language"))
    components = [c for c in raw.get("components") or [] if isinstance(c, dict)]
    body = next((_text(c.get("text")) for c in components if str(c.get("type", "")).upper() == "BODY"), "")
    others = " ".join(json.dumps(c) for c in components if str(c.get("type", "")).upper() != "BODY")
    if not name or not language or _PLACEHOLDER.search(others):
        return None  # a header or button variable would need a value the composer does not ask for
    numbers = {int(n) for n in _PLACEHOLDER.findall(body)}
    return TemplateInfo(name=name, language=language, category=_text(raw.get("category")), body=body,
                        variables=max(numbers, default=0))


def _bare_type(content_type: str | None) -> str:
    """`audio/ogg; codecs=opus` -> `audio/ogg`."""
    return (content_type or "").split(";")[0].strip().lower()


def _send_kind(content_type: str) -> str | None:
    """The WhatsApp message type a file of `content_type` goes out as, or None when WhatsApp refuses it."""
    return next((kind for kind, (types, _) in _SEND_MEDIA.items() if content_type in types), None)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _epoch(value: Any) -> dt.datetime:
    """WhatsApp's timestamps: epoch seconds, as a string."""
    try:
        seconds = int(str(value).strip())
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise ItemError(f"timestamp {str(value)[:30]!r} is not epoch seconds") from None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _sender_ids(message: dict[str, Any]) -> tuple[str, str]:
    """The sender's phone number (digits) and business-scoped user id, as far as the message says.

    `from` is the phone number; with usernames Meta may withhold it and name the sender by
    `from_user_id` (the BSUID, e.g. `US.13491208655302741918`) only. Some payloads put the BSUID in
    `from` itself: anything in `from` that is not all digits is taken as one.
    """
    given = _text(message.get("from"))
    phone = given if given.isdigit() else ""
    user_id = _text(message.get("from_user_id")) or _text(message.get("user_id")) or ("" if phone else given)
    return phone, user_id


def _contact_of(contacts: list[dict[str, Any]], phone: str, user_id: str) -> dict[str, Any] | None:
    """The `contacts[]` entry of the sender; the only entry when the message names no sender."""
    for contact in contacts:
        if (phone and contact.get("wa_id") == phone) or (user_id and contact.get("user_id") == user_id):
            return contact
    if not phone and not user_id and len(contacts) == 1:
        return contacts[0]
    return None


def _sender(message: dict[str, Any], contacts: list[dict[str, Any]]) -> tuple[str, Author, dict[str, str]]:
    """The thread key, the author and a few facts about who wrote `message`.

    A phone number is the identity whenever Meta gives one (`phone`, E.164), so the customer stays
    the one who wrote before usernames. Without it the business-scoped user id is the identity
    (kind `whatsapp`, kept as Meta writes it) and the thread key; replies then go to it with
    `recipient` (see `_recipient_fields`).
    """
    phone, user_id = _sender_ids(message)
    contact = _contact_of(contacts, phone, user_id) or {}
    phone = phone or (_text(contact.get("wa_id")) if _text(contact.get("wa_id")).isdigit() else "")
    user_id = user_id or _text(contact.get("user_id"))
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    username = _text(profile.get("username"))
    name = (_text(profile.get("name")) or username)[:MAX_NAME]
    facts = {key: value[:200] for key, value in (("user_id", user_id), ("username", username)) if value}
    if phone:
        return phone, Author(handle=f"+{phone}", name=name, identity_kind="phone"), facts
    if user_id:
        return user_id, Author(handle=user_id, name=name, identity_kind="whatsapp"), facts
    raise ItemError("message names no sender (no from, from_user_id or contact user_id)")


def _single(entry: Any, value: dict[str, Any], part: Any, *, key: str = "messages") -> dict[str, Any]:
    """A delivery holding only `part` (and its sender's contact): what quarantine keeps and reprocesses."""
    every = [c for c in value.get("contacts") or [] if isinstance(c, dict)]
    phone, user_id = _sender_ids(part) if isinstance(part, dict) else ("", "")
    contact = _contact_of(every, phone, user_id) if isinstance(part, dict) else None
    contacts = [contact] if contact else []
    single_value = {k: value[k] for k in ("messaging_product", "metadata") if k in value}
    if contacts:
        single_value["contacts"] = contacts
    single_value[key] = [part]
    account = entry.get("id") if isinstance(entry, dict) else None
    return {"object": "whatsapp_business_account",
            "entry": [{"id": account, "changes": [{"field": "messages", "value": single_value}]}]}


def _dump(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
