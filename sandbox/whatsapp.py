"""A loopback imitation of the WhatsApp Cloud API (Graph API) and of Meta's signed webhook deliveries.

It follows shared/channels.md section 4 to the field name:

- `POST /v{N}/{phone-number-id}/messages` (any `/vNN.N/` version prefix): text messages with
  `context.message_id`, to a phone number (`to`) or a business-scoped user id (`recipient`,
  `US.1349...`; `to` wins when both are given), templates, and mark-as-read (`{"status": "read", "message_id"}` →
  `{"success": true}`); answers `{"messaging_product", "contacts": [{"input", "wa_id"}],
  "messages": [{"id": "wamid.…"}]}` (templates add `"message_status": "accepted"`). Free text to a
  customer whose last message is older than 24 hours (or who never wrote) is refused with error
  131047 "Re-engagement message"; text over 4096 characters with error 100; an unknown (or not
  approved) template with 132001, a template whose body parameters do not match its {{n}} count with
  132000. `sent[...]` keeps a template's name, language, parameters and the filled body (`text`).
- `GET /v{N}/{waba-id}/message_templates?fields=name,language,status,category,components&limit=&after=`
  → `{"data": [{"name", "language", "status", "category", "components": [{"type": "BODY", "text"}],
  "id"}], "paging": {"cursors": {"before", "after"}, "next"}}` (`next` only when another page
  exists); `templates` holds them (three approved en_US, one nl, one REJECTED) and `template_page_size`
  the page length.
- `POST /v{N}/{phone-number-id}/media` (multipart `file`, `type`, `messaging_product`) → `{"id"}`;
  a type WhatsApp does not take is refused with error 100 ("Param file must be a file with one of
  the following types: …"), a file over its type's cap (image 5 MB, video and audio 16 MB,
  document 100 MB) with 131053 "Media upload error". Messages of type image, video, audio and
  document name the uploaded id (`{"id", "caption", "filename"}`); a caption over 1024 characters,
  a caption on audio or an unknown media id are refused. `uploads` and `sent[...]["media"]` keep
  the bytes.
- `GET /v{N}/{phone-number-id}?fields=display_phone_number,verified_name` → the asked fields of the
  business number (`display_phone_number` written as "+1 555-078-3881", `verified_name`,
  `quality_rating`, `code_verification_status`) and always its `id`: the connection test's call.
- `GET /v{N}/{media-id}` → `{"url", "mime_type", "sha256", "file_size", "id", "messaging_product"}`;
  the media URL (`/whatsapp_business/attachments/?mid=…`, on this server) answers only with the
  same `Authorization: Bearer` token.
- Errors in Graph's envelope `{"error": {"message", "type", "code", "error_data": {"messaging_product",
  "details"}, "error_subcode", "fbtrace_id"}}`; an expired token is 401 with code 190.

Faults: `throttle(code)` (130429, 131056, 80007 with `X-Business-Use-Case-Usage`, 4),
`server_error()`, `expire_token()`, plus the base class's `delay_next`/`drop_next`.

Webhooks: `customer_text`, `customer_with_username` (a BSUID sender: no `from`, `from_user_id`, the
contact's `user_id` and `profile.username`), `customer_image`, `customer_document`, `customer_message` (any type),
`customer_edit` / `customer_revoke` (Meta's `edit` and `revoke` webhooks, naming the original by
`original_message_id`), `status` (sent/delivered/read/failed for one of our wamids) and `malformed_delivery` each queue one
delivery, signed with the app secret over the exact bytes (`X-Hub-Signature-256`). `deliver(url)`
posts the queued deliveries and keeps those not answered 2xx for a retry, as Meta does for up to a
week; `redeliver(body)` repeats one. For connector-level tests, `take_requests()` returns them as
`WebhookRequest`s and `wrongly_signed(body)` / `unsigned(body)` make forged ones. `subscribe(url)`
performs Meta's `hub.challenge` handshake.

Run it alone with `python -m sandbox.whatsapp`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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

DEFAULT_TOKEN = "EAAimitationWhatsAppToken0123456789"
DEFAULT_APP_SECRET = "imitation-app-secret-0123456789abcdef"
DEFAULT_VERIFY_TOKEN = "imitation-verify-token"
MAX_TEXT = 4096
WINDOW_SECONDS = 24 * 3600
VERSION = r"/v\d+(?:\.\d+)?"

#: Throttling answers as the Cloud API gives them: code -> (title, details).
THROTTLES = {
    130429: ("Rate limit hit", "Cloud API message throughput has been reached."),
    131056: ("(Business Account, Consumer Account) pair rate limit hit",
             "Message failed to send because there were too many messages sent from this phone number to the "
             "same phone number in a short period of time."),
    80007: ("There have been too many calls to this WhatsApp Business account.",
            "The WhatsApp Business Account has reached its rate limit."),
    4: ("Application request limit reached", "The app has reached its API call rate limit."),
}


def graph_error(status: int, code: int, message: str, *, details: str | None = None, subcode: int | None = None,
                kind: str = "OAuthException", headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    """A Graph API error answer in Meta's envelope."""
    error: dict[str, Any] = {"message": f"(#{code}) {message}" if code != 190 else message, "type": kind,
                             "code": code, "fbtrace_id": base64.b64encode(hashlib.sha256(
                                 f"{code}{time.time()}".encode()).digest()[:15]).decode()}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}, dict(headers or {})


MAX_CAPTION = 1024
#: What `POST /{phone-number-id}/media` accepts for a message, per message type: MIME types and the
#: largest file (Cloud API "supported media types").
UPLOAD_TYPES: dict[str, tuple[tuple[str, ...], int]] = {
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


def multipart(request: Request) -> dict[str, tuple[str | None, str | None, bytes]]:
    """A multipart/form-data body: field name -> (filename, content type, bytes); filename None for plain fields."""
    ctype = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ValueError("not multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + request.body)
    if not message.is_multipart():
        raise ValueError("no parts")
    fields: dict[str, tuple[str | None, str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        fields[str(name)] = (filename, part.get_content_type() if filename else None,
                             part.get_payload(decode=True) or b"")
    return fields


def _field(fields: dict[str, tuple[str | None, str | None, bytes]], name: str) -> str | None:
    value = fields.get(name)
    return value[2].decode("utf-8", "replace") if value else None


#: A business-scoped user id: ISO country code, a dot, up to 128 letters and digits (parent ids add "ENT.").
BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")


def _addressee(body: dict[str, Any]) -> tuple[str, tuple[int, dict, dict] | None]:
    """Whom a message goes to: `to` (a phone number, which wins) or `recipient` (a business-scoped user id)."""
    to = str(body.get("to") or "")
    if to:
        if not to.isdigit():
            return "", graph_error(400, 100, "Invalid parameter", details="The parameter to must be a phone number.")
        return to, None
    recipient = str(body.get("recipient") or "")
    if recipient:
        if not BSUID.match(recipient):
            return "", graph_error(400, 100, "Invalid parameter",
                                   details="The parameter recipient must be a business-scoped user ID.")
        return recipient, None
    return "", graph_error(400, 100, "Invalid parameter", details="The parameter to is required.")


def template(name: str, language: str, body: str, *, category: str = "UTILITY",
             status: str = "APPROVED") -> dict[str, Any]:
    """A message template as the Business Management API lists it (`components[].type` upper case)."""
    digest = hashlib.sha256(f"{name}/{language}".encode()).hexdigest()
    return {"name": name, "language": language, "status": status, "category": category,
            "components": [{"type": "BODY", "text": body}], "id": str(int(digest[:14], 16))}


class WhatsAppImitation(Imitation):
    """The WhatsApp Cloud API of one business phone number, on 127.0.0.1."""

    name = "whatsapp"

    def __init__(self, *, phone_number_id: str = "106540352242922", display_phone_number: str = "15550783881",
                 business_account_id: str = "102290129340398", access_token: str = DEFAULT_TOKEN,
                 app_secret: str = DEFAULT_APP_SECRET, verify_token: str = DEFAULT_VERIFY_TOKEN,
                 verified_name: str = "Acme Shop") -> None:
        super().__init__()
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.verified_name = verified_name
        self.business_account_id = business_account_id
        self.access_token = access_token
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.valid_tokens: set[str] = {access_token}
        self.names: dict[str, str] = {}  # wa_id -> profile name
        self.last_inbound: dict[str, float] = {}  # wa_id -> epoch seconds of their last message
        self.media: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}  # what we (the connector) uploaded to send
        #: The account's message templates as `GET /{waba-id}/message_templates` lists them (Meta's fields).
        self.templates: list[dict[str, Any]] = [
            template("hello_world", "en_US", "Hello {{1}}, thank you for contacting us.", category="UTILITY"),
            template("order_update", "en_US", "Your order {{1}} has shipped. Questions? Just reply here.",
                     category="UTILITY"),
            template("order_update", "nl", "Je bestelling {{1}} is verzonden. Vragen? Antwoord gewoon hier.",
                     category="UTILITY"),
            template("appointment_reminder", "en_US", "Hi {{1}}, a reminder of your appointment on {{2}}.",
                     category="UTILITY"),
            template("spring_sale", "en_US", "Our spring sale starts {{1}}!", category="MARKETING",
                     status="REJECTED"),
        ]
        self.template_page_size = 25
        self.pending: list[bytes] = []  # signed deliveries not yet answered 2xx
        self.delivered: list[bytes] = []  # deliveries a webhook answered 2xx
        self.sent: list[dict[str, Any]] = []  # what we (the connector) sent
        self.read_marks: list[str] = []
        self._ids = itertools.count(1)

    # Ids and deliveries -----------------------------------------------------------------------

    def wamid(self, wa_id: str) -> str:
        raw = f"\x15\x02\x00\x12\x18\x14{wa_id}:{next(self._ids):020X}".encode()
        return "wamid." + base64.b64encode(b"HBgL" + raw).decode()

    def envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        """A whole webhook payload around one change `value` (messaging_product and metadata added)."""
        return {"object": "whatsapp_business_account", "entry": [{
            "id": self.business_account_id,
            "changes": [{"value": {"messaging_product": "whatsapp",
                                   "metadata": {"display_phone_number": self.display_phone_number,
                                                "phone_number_id": self.phone_number_id},
                                   **value},
                         "field": "messages"}]}]}

    def queue(self, payload: dict[str, Any] | bytes) -> bytes:
        """Queue one delivery (its exact bytes are what gets signed and sent); returns the bytes."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        with self.lock:
            self.pending.append(body)
        return body

    def sign(self, body: bytes, secret: str | None = None) -> str:
        key = (secret or self.app_secret).encode()
        return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()

    def headers_for(self, body: bytes, secret: str | None = None) -> dict[str, str]:
        # Meta sends the legacy SHA-1 header beside the SHA-256 one.
        key = (secret or self.app_secret).encode()
        return {"Content-Type": "application/json", "User-Agent": "facebookexternalua",
                "X-Hub-Signature-256": self.sign(body, secret),
                "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()}

    # Customers write --------------------------------------------------------------------------

    def customer_message(self, wa_id: str, kind: str, fields: dict[str, Any] | None = None, *,
                         name: str | None = None, context: str | None = None, at: float | None = None,
                         queue: bool = True) -> dict[str, Any]:
        """A customer's message of type `kind` (its `fields` under that key); returns the message.

        `context` is the wamid the customer replies to; `at` backdates it (epoch seconds).
        """
        with self.lock:
            when = time.time() if at is None else at
            if name:
                self.names[wa_id] = name
            self.last_inbound[wa_id] = max(self.last_inbound.get(wa_id, 0.0), when)
            message: dict[str, Any] = {"from": wa_id, "id": self.wamid(wa_id), "timestamp": str(int(when)),
                                       "type": kind}
            if fields is not None:
                message[kind] = fields
            if context:
                message["context"] = {"from": self.display_phone_number, "id": context}
            contact = {"profile": {"name": self.names.get(wa_id, f"Customer {wa_id[-4:]}")}, "wa_id": wa_id}
        if queue:
            self.queue(self.envelope({"contacts": [contact], "messages": [message]}))
        return message

    def customer_with_username(self, user_id: str, text: str, *, username: str, name: str | None = None,
                               phone: str | None = None, at: float | None = None) -> dict[str, Any]:
        """A text from a customer who adopted a username: named by the business-scoped `user_id`.

        Without `phone` Meta withholds the number: the message has no `from`, only `from_user_id`, and
        the contact has `user_id` and `profile.username` but no `wa_id`. Returns the message.
        """
        with self.lock:
            when = time.time() if at is None else at
            self.last_inbound[user_id] = max(self.last_inbound.get(user_id, 0.0), when)
            if phone:
                self.last_inbound[phone] = max(self.last_inbound.get(phone, 0.0), when)
            message: dict[str, Any] = {"from_user_id": user_id, "id": self.wamid(user_id),
                                       "timestamp": str(int(when)), "type": "text", "text": {"body": text}}
            profile = {"name": name or username, "username": username}
            contact: dict[str, Any] = {"profile": profile, "user_id": user_id}
            if phone:
                message = {"from": phone, **message}
                contact["wa_id"] = phone
        self.queue(self.envelope({"contacts": [contact], "messages": [message]}))
        return message

    def customer_text(self, wa_id: str, text: str = "Does it come in another color?", **kwargs: Any) -> dict:
        return self.customer_message(wa_id, "text", {"body": text}, **kwargs)

    def add_media(self, data: bytes, mime_type: str) -> str:
        with self.lock:
            media_id = str(1000000000000000 + next(self._ids))
            self.media[media_id] = {"data": data, "mime_type": mime_type,
                                    "sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data)}
        return media_id

    def customer_image(self, wa_id: str, data: bytes, *, caption: str | None = None,
                       mime_type: str = "image/jpeg", **kwargs: Any) -> dict:
        media_id = self.add_media(data, mime_type)
        fields = {"mime_type": mime_type, "sha256": self.media[media_id]["sha256"], "id": media_id}
        if caption:
            fields["caption"] = caption
        return self.customer_message(wa_id, "image", fields, **kwargs)

    def customer_document(self, wa_id: str, data: bytes, filename: str, *,
                          mime_type: str = "application/pdf", caption: str | None = None, **kwargs: Any) -> dict:
        media_id = self.add_media(data, mime_type)
        fields = {"filename": filename, "mime_type": mime_type, "sha256": self.media[media_id]["sha256"],
                  "id": media_id}
        if caption:
            fields["caption"] = caption
        return self.customer_message(wa_id, "document", fields, **kwargs)

    def customer_edit(self, original: dict[str, Any], text: str, *, at: float | None = None) -> dict:
        """The customer edits `original` (one of their messages): Meta's `edit` webhook.

        The edit names the original by `original_message_id` and carries the whole new message: a text
        message's new body, or a media message with its new caption (Meta allows edits for 15 minutes).
        """
        kind = original["type"]
        if kind == "text":
            new: dict[str, Any] = {"type": "text", "text": {"body": text}}
        else:
            new = {"type": kind, kind: {**original[kind], "caption": text}}
        if isinstance(original.get("context"), dict):
            new["context"] = {"id": original["context"]["id"]}
        return self._change(original, "edit", {"original_message_id": original["id"], "message": new}, at)

    def customer_revoke(self, original: dict[str, Any], *, at: float | None = None) -> dict:
        """The customer deletes `original` for everyone: Meta's `revoke` webhook (allowed for two days)."""
        return self._change(original, "revoke", {"original_message_id": original["id"]}, at)

    def _change(self, original: dict[str, Any], kind: str, fields: dict[str, Any], at: float | None) -> dict:
        # An edit or revoke is not a new message from the customer: the 24-hour window stays as it was.
        wa_id = original["from"]
        with self.lock:
            message = {"from": wa_id, "id": self.wamid(wa_id), "timestamp": str(int(time.time() if at is None else at)),
                       "type": kind, kind: fields}
            contact = {"profile": {"name": self.names.get(wa_id, f"Customer {wa_id[-4:]}")}, "wa_id": wa_id}
        self.queue(self.envelope({"contacts": [contact], "messages": [message]}))
        return message

    def malformed_delivery(self, wa_id: str = "31612345678") -> tuple[dict, bytes]:
        """One delivery with a good message, a message without id and an entry without changes.

        Returns the good message and the delivery's bytes.
        """
        good = self.customer_message(wa_id, "text", {"body": "This one is fine"}, queue=False)
        broken = {"from": wa_id, "timestamp": good["timestamp"], "type": "text", "text": {"body": "no id"}}
        payload = self.envelope({"contacts": [{"profile": {"name": self.names.get(wa_id, "Customer")},
                                               "wa_id": wa_id}], "messages": [good, broken]})
        payload["entry"].append({"id": self.business_account_id, "time": "not changes"})
        return good, self.queue(payload)

    # Statuses of our messages -----------------------------------------------------------------

    def status(self, wamid: str, status: str, *, error_code: int | None = None, title: str | None = None,
               details: str | None = None, at: float | None = None) -> bytes:
        """Queue Meta's status delivery for one of the messages we sent."""
        with self.lock:
            recipient = next((s["to"] for s in self.sent if s["wamid"] == wamid), "16505551234")
        when = int(time.time() if at is None else at)
        entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(when), "recipient_id": recipient}
        if status in ("sent", "delivered"):
            entry["conversation"] = {"id": hashlib.md5(recipient.encode()).hexdigest(),  # noqa: S324 - an id
                                     "expiration_timestamp": str(when + WINDOW_SECONDS),
                                     "origin": {"type": "service"}}
            entry["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
        if status == "failed":
            code = error_code or 131026
            entry["errors"] = [{"code": code, "title": title or "Message undeliverable",
                                "message": title or "Message undeliverable",
                                "error_data": {"details": details or "Message Undeliverable."},
                                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]
        return self.queue(self.envelope({"statuses": [entry]}))

    # Delivering webhooks ----------------------------------------------------------------------

    def take_requests(self) -> list[Any]:
        """The queued deliveries as signed `WebhookRequest`s (connector-level tests); the queue empties."""
        from connectors.base import WebhookRequest

        with self.lock:
            bodies, self.pending = list(self.pending), []
            self.delivered += bodies
        return [WebhookRequest(body=b, headers=self.headers_for(b), remote_addr="173.252.105.1") for b in bodies]

    def wrongly_signed(self, body: bytes) -> Any:
        from connectors.base import WebhookRequest

        return WebhookRequest(body=body, headers=self.headers_for(body, secret="not-the-app-secret"))

    def unsigned(self, body: bytes) -> Any:
        from connectors.base import WebhookRequest

        return WebhookRequest(body=body, headers={"Content-Type": "application/json"})

    def deliver(self, url: str, *, secret: str | None = None, timeout: float = 10.0) -> list[int]:
        """POST every queued delivery to `url`, signed with `secret` (default: the app secret).

        Deliveries answered 2xx leave the queue; the others stay for a later retry. Returns the HTTP
        status of each (0 when nothing answered).
        """
        with self.lock:
            batch = list(self.pending)
        statuses = []
        for body in batch:
            status = self.redeliver(body, url, secret=secret, timeout=timeout)
            statuses.append(status)
            if 200 <= status < 300:
                with self.lock:
                    if body in self.pending:
                        self.pending.remove(body)
                    self.delivered.append(body)
        return statuses

    def redeliver(self, body: bytes, url: str, *, secret: str | None = None, timeout: float = 10.0) -> int:
        """POST one delivery's exact bytes again (Meta's retry); returns the HTTP status."""
        try:
            return requests.post(url, data=body, headers=self.headers_for(body, secret), timeout=timeout).status_code
        except requests.RequestException:
            return 0

    def subscribe(self, url: str, verify_token: str | None = None) -> tuple[int, str, str]:
        """Meta's verification GET; returns (status, body, the challenge that was sent)."""
        challenge = str(1158201444 + next(self._ids))
        params = {"hub.mode": "subscribe", "hub.challenge": challenge,
                  "hub.verify_token": self.verify_token if verify_token is None else verify_token}
        response = requests.get(url, params=params, timeout=10)
        return response.status_code, response.text, challenge

    # Faults -----------------------------------------------------------------------------------

    def throttle(self, code: int = 130429, *, regain_minutes: int = 2) -> None:
        title, details = THROTTLES[code]
        headers = {}
        if code == 80007:
            headers["X-Business-Use-Case-Usage"] = json.dumps({self.business_account_id: [{
                "type": "whatsapp", "call_count": 100, "total_cputime": 1, "total_time": 1,
                "estimated_time_to_regain_access": regain_minutes}]})
        if code == 4:
            headers["X-App-Usage"] = json.dumps({"call_count": 100, "total_cputime": 20, "total_time": 20})
        status, body, headers = graph_error(400, code, title, details=details, headers=headers)
        self.fail_next(status, body, headers)

    def server_error(self) -> None:
        status, body, headers = graph_error(500, 131000, "Something went wrong",
                                            details="Message failed to send due to an unknown error.")
        self.fail_next(status, body, headers)

    def expire_token(self) -> None:
        with self.lock:
            self.valid_tokens.clear()

    # The Graph API ----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> tuple[int, dict, dict] | None:
        given = request.headers.get("Authorization") or ""
        if not given.startswith("Bearer "):
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if given[7:] not in self.valid_tokens:
            return graph_error(401, 190, "Error validating access token: Session has expired on Thursday, "
                                         "05-Mar-26 10:00:00 PST.", subcode=463)
        return None

    @route("POST", VERSION + r"/(?P<number_id>[^/]+)/messages")
    def messages(self, request: Request, number_id: str):
        refused = self._authorised(request)
        if refused:
            return refused
        if number_id != self.phone_number_id:
            return graph_error(400, 100, f"Unsupported post request. Object with ID '{number_id}' does not exist, "
                                         "cannot be loaded due to missing permissions, or does not support this "
                                         "operation.", kind="GraphMethodException", subcode=33)
        try:
            body = request.json()
        except ValueError:
            return graph_error(400, 100, "Invalid parameter", details="The request body is not JSON.")
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return graph_error(400, 100, "Invalid parameter",
                               details="The parameter messaging_product is required.")
        if body.get("status") == "read":
            with self.lock:
                self.read_marks.append(str(body.get("message_id")))
            return 200, {"success": True}
        to, refused = _addressee(body)
        if refused:
            return refused
        kind = body.get("type", "text")
        record: dict[str, Any] = {"to": to, "type": kind, "payload": body,
                                  "in_reply_to": (body.get("context") or {}).get("message_id")}
        answer: dict[str, Any] = {}
        if kind == "text":
            text = (body.get("text") or {}).get("body")
            if not isinstance(text, str) or not text:
                return graph_error(400, 131008, "Required parameter is missing",
                                   details="The parameter text['body'] is required.")
            if len(text) > MAX_TEXT:
                return graph_error(400, 100, "Invalid parameter",
                                   details=f"Param text['body'] must be at most {MAX_TEXT} characters long.")
            closed = self._window_closed(to)
            if closed:
                return closed
            record["text"] = text
        elif kind in UPLOAD_TYPES:
            refused = self._media_message(kind, body.get(kind), record)
            if refused:
                return refused
            closed = self._window_closed(to)
            if closed:
                return closed
        elif kind == "template":
            refused = self._template_message(body.get("template") or {}, record)
            if refused:
                return refused
            answer["message_status"] = "accepted"
        else:
            return graph_error(400, 131051, "Unsupported message type",
                               details=f"The imitation sends only text, media and template, not {kind}.")
        with self.lock:
            record["wamid"] = self.wamid(to)
            self.sent.append(record)
        contact = {"input": to, "wa_id": to} if to.isdigit() else {"input": to, "user_id": to}
        return 200, {"messaging_product": "whatsapp", "contacts": [contact],
                     "messages": [{"id": record["wamid"], **answer}]}

    def _template_message(self, template: dict[str, Any], record: dict[str, Any]) -> tuple[int, dict, dict] | None:
        """Check a template message against the approved template and note it (and its filled body) in `record`."""
        language = (template.get("language") or {}).get("code")
        with self.lock:
            known = next((t for t in self.templates if t["name"] == template.get("name")
                          and t["language"] == language and t["status"] == "APPROVED"), None)
        if known is None:
            return graph_error(404, 132001, "Template name does not exist in the translation",
                               details=f"template name ({template.get('name')}) does not exist in {language}")
        parameters = [p.get("text") for c in template.get("components") or [] if c.get("type") == "body"
                      for p in c.get("parameters") or []]
        body = next(c["text"] for c in known["components"] if c["type"] == "BODY")
        expected = len(set(re.findall(r"\{\{(\d+)\}\}", body)))
        if len(parameters) != expected:
            return graph_error(400, 132000, "Number of parameters does not match the expected number of params",
                               details=f"body: number of localizable_params ({len(parameters)}) does not match "
                                       f"the expected number of params ({expected})")
        for number, value in enumerate(parameters, start=1):
            body = body.replace(f"{{{{{number}}}}}", str(value))
        record.update(template=template.get("name"), language=language, parameters=parameters, text=body)
        return None

    @route("GET", VERSION + r"/(?P<account_id>\d+)/message_templates")
    def message_templates(self, request: Request, account_id: str):
        """`GET /{waba-id}/message_templates?fields=...&limit=&after=`: `{"data", "paging"}`, cursor-paged."""
        refused = self._authorised(request)
        if refused:
            return refused
        if account_id != self.business_account_id:
            return graph_error(400, 100, f"Unsupported get request. Object with ID '{account_id}' does not exist, "
                                         "cannot be loaded due to missing permissions, or does not support this "
                                         "operation.", kind="GraphMethodException", subcode=33)
        fields = [f for f in (request.arg("fields") or "name,language,status,category,id").split(",") if f]
        limit = min(int(request.arg("limit") or self.template_page_size), self.template_page_size)
        start = int(base64.b64decode(request.arg("after")).decode()) if request.arg("after") else 0
        with self.lock:
            chosen = self.templates[start:start + limit]
            more = start + limit < len(self.templates)
        data = [{k: v for k, v in t.items() if k in fields or k == "id"} for t in chosen]
        paging: dict[str, Any] = {"cursors": {"before": base64.b64encode(str(start).encode()).decode(),
                                              "after": base64.b64encode(str(start + len(chosen)).encode()).decode()}}
        if more:
            paging["next"] = (f"{self.url}/v25.0/{account_id}/message_templates?limit={limit}"
                              f"&after={paging['cursors']['after']}")
        return 200, {"data": data, "paging": paging}

    def _window_closed(self, to: str) -> tuple[int, dict, dict] | None:
        with self.lock:
            last = self.last_inbound.get(to)
        if last is None or time.time() - last > WINDOW_SECONDS:
            return graph_error(400, 131047, "Re-engagement message", subcode=2494010, details=(
                "Message failed to send because more than 24 hours have passed since the customer last "
                "replied to this number."))
        return None

    def _media_message(self, kind: str, media: Any, record: dict[str, Any]) -> tuple[int, dict, dict] | None:
        """Check a media message's object (`{"id", "caption", "filename"}`) and note it in `record`."""
        if not isinstance(media, dict) or not media.get("id"):
            return graph_error(400, 131008, "Required parameter is missing",
                               details=f"The parameter {kind}['id'] is required.")
        with self.lock:
            stored = self.uploads.get(str(media["id"]))
        if stored is None:
            return graph_error(400, 131009, "Parameter value is not valid",
                               details=f"Media id {media['id']} was not uploaded for this phone number.")
        caption = media.get("caption")
        if caption is not None and kind == "audio":
            return graph_error(400, 100, "Invalid parameter", details="Param audio['caption'] is not supported.")
        if isinstance(caption, str) and len(caption) > MAX_CAPTION:
            return graph_error(400, 100, "Invalid parameter",
                               details=f"Param {kind}['caption'] must be at most {MAX_CAPTION} characters long.")
        if stored["family"] != kind:
            return graph_error(400, 131053, "Media upload error",
                               details=f"The uploaded media is {stored['mime_type']}, not a {kind}.")
        record.update(media=stored, caption=caption, filename=media.get("filename"), text=caption or "")
        return None

    @route("POST", VERSION + r"/(?P<number_id>[^/]+)/media")
    def upload(self, request: Request, number_id: str):
        """`POST /{phone-number-id}/media`: multipart `file`, `type` and `messaging_product` -> `{"id"}`."""
        refused = self._authorised(request)
        if refused:
            return refused
        if number_id != self.phone_number_id:
            return graph_error(400, 100, f"Unsupported post request. Object with ID '{number_id}' does not exist.",
                               kind="GraphMethodException", subcode=33)
        try:
            fields = multipart(request)
        except ValueError:
            return graph_error(400, 100, "Invalid parameter", details="The request is not multipart/form-data.")
        if _field(fields, "messaging_product") != "whatsapp":
            return graph_error(400, 100, "Invalid parameter", details="The parameter messaging_product is required.")
        if "file" not in fields or fields["file"][0] is None:
            return graph_error(400, 100, "Invalid parameter", details="The parameter file is required.")
        filename, sent_type, data = fields["file"]
        mime_type = (_field(fields, "type") or sent_type or "").split(";")[0].strip().lower()
        family = next((f for f, (types, _) in UPLOAD_TYPES.items() if mime_type in types), None)
        if family is None:
            return graph_error(400, 100, "Param file must be a file with one of the following types: "
                               + ", ".join(t for types, _ in UPLOAD_TYPES.values() for t in types)
                               + f". Received file of type '{mime_type}'.")
        cap = UPLOAD_TYPES[family][1]
        if len(data) > cap:
            return graph_error(400, 131053, "Media upload error", details=(
                f"Media file size is too big. Max file size for {family} is {cap // (1024 * 1024)} MB; "
                f"this one is {len(data)} bytes."))
        with self.lock:
            media_id = str(2000000000000000 + next(self._ids))
            self.uploads[media_id] = {"id": media_id, "filename": filename, "mime_type": mime_type, "data": data,
                                      "family": family}
        return 200, {"id": media_id}

    @route("GET", VERSION + r"/(?P<media_id>\d+)")
    def media_url(self, request: Request, media_id: str):
        refused = self._authorised(request)
        if refused:
            return refused
        if media_id == self.phone_number_id:
            return 200, self._phone_number(request)
        with self.lock:
            media = self.media.get(media_id)
        if media is None:
            return graph_error(400, 100, f"Unsupported get request. Object with ID '{media_id}' does not exist, "
                                         "cannot be loaded due to missing permissions, or does not support this "
                                         "operation.", kind="GraphMethodException", subcode=33)
        return 200, {"url": f"{self.url}/whatsapp_business/attachments/?mid={media_id}&ext=1749416383&hash=ARk",
                     "mime_type": media["mime_type"], "sha256": media["sha256"], "file_size": media["file_size"],
                     "id": media_id, "messaging_product": "whatsapp"}

    def _phone_number(self, request: Request) -> dict[str, Any]:
        """The business number's node: the `fields` asked (Graph's default is `id` alone), and `id`."""
        digits = self.display_phone_number
        written = f"+1 {digits[1:4]}-{digits[4:7]}-{digits[7:]}" if len(digits) == 11 and digits[0] == "1" \
            else f"+{digits}"
        node = {"id": self.phone_number_id, "display_phone_number": written, "verified_name": self.verified_name,
                "quality_rating": "GREEN", "code_verification_status": "VERIFIED"}
        asked = {f.strip() for f in (request.arg("fields") or "").split(",") if f.strip()}
        return {k: v for k, v in node.items() if k == "id" or k in asked}

    @route("GET", r"/whatsapp_business/attachments/")
    def media_download(self, request: Request):
        if (request.headers.get("Authorization") or "")[7:] not in self.valid_tokens:
            return 401, b"", {"Content-Type": "text/plain"}
        with self.lock:
            media = self.media.get(request.arg("mid") or "")
        if media is None:
            return 404, b"", {"Content-Type": "text/plain"}
        return 200, media["data"], {"Content-Type": media["mime_type"]}


if __name__ == "__main__":  # pragma: no cover - manual use
    with WhatsAppImitation() as imitation:
        print(f"WhatsApp Cloud API imitation at {imitation.url}/v25.0  phone_number_id {imitation.phone_number_id}")
        print(f"access_token {imitation.access_token}  app_secret {imitation.app_secret}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
