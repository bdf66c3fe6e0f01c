"""The website chat by email (#18): answers follow a visitor who left, and a link opens the chat elsewhere.

- **An address.** In the widget a visitor may leave an email address ("get our answer by email too").
  It is kept for their chat (`chat_email_addresses`) and, when no customer holds it yet, becomes
  their customer's email identity. An address that another customer holds is never attached: it
  only becomes merge evidence for an agent (as `inbox.customers` does for any claimed address), and
  nothing is mailed to it until an agent merges the two.
- **Follow-up.** The worker's job (`run`) looks for agents' replies in a chat that the widget has
  not reported read `followup_minutes` after they were sent. Each goes once (`chat_emails.reply_id`
  is unique, claimed in the same transaction as the outbox row) through the chat's `email_channel`,
  durably through the outbox like every reply, as an internal note of the conversation that tells
  the agent it went. The mail's Message-ID names the conversation, so the visitor's answer by mail
  threads into the same conversation (`inbox.conversations.find_conversation`) and shows in the
  widget as the visitor's message.
- **Sign-in link.** On another device the visitor asks for a link by address. Only an address that
  a customer with a chat on this channel holds gets a mail; the widget's answer is the same either
  way. The link (to the page the visitor was on, the token in the fragment so that no server log
  sees it) carries a nonce and its HMAC; it works once, for `SIGNIN_MINUTES`, and binds the device
  that opens it (`chat_device_links`) to the earlier conversation.

The mails' texts are in the gettext catalogue like every other text, translated in the visitor's
widget language (the agents' notes in the installation's default language) with the catalogue loaded
by hand: the worker has no request whose language Flask-Babel could pick. See docs/chat.md.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel.support import Translations

from inbox import clock, sendability
from inbox.identity import normalize_email
from inbox.mail import conversation_message_id
from inbox.models import Author, OutboundReply
from inbox.store.base import iso, parse_iso

log = logging.getLogger("mainland.chat_followup")

#: Replies older than this are never mailed: enabling the follow-up must not send last month's answers.
MAX_FOLLOWUP_AGE = dt.timedelta(days=3)
#: How long a sign-in link works.
SIGNIN_MINUTES = 30
#: Where the widget finds a sign-in token: the fragment of the page's address, never sent to a server.
SIGNIN_FRAGMENT = "mainland-chat-signin="
#: Earlier messages quoted under a follow-up, and the characters kept of each.
QUOTED_MESSAGES = 5
QUOTE_CHARS = 300
MAX_ADDRESS_CHARS = 254

TRANSLATIONS = Path(__file__).resolve().parent / "translations"


@functools.lru_cache(maxsize=8)
def _catalogue(language: str) -> Translations:
    return Translations.load(str(TRANSLATIONS), [language])


def _translator(language: str | None) -> Callable[..., str]:
    """gettext in `language` (English for a language the catalogue lacks), with Flask-Babel's
    `%(name)s` values: `gettext("Continue in the chat: %(link)s", link=...)`."""
    code = (language or "en")[:2].lower()
    catalogue = _catalogue(code if code.isalpha() else "en")  # a stored value, never a path

    def gettext(text: str, **values: Any) -> str:
        translated = catalogue.gettext(text)
        return translated % values if values else translated

    return gettext


# The chat's settings --------------------------------------------------------------------------------

def chat_settings(mainland: Any, channel: str) -> dict[str, Any] | None:
    """The checked settings of chat channel `channel`, or None when it is not an enabled chat."""
    from connectors.chat import ChatConnector

    config = mainland.config.channels.get(channel)
    if config is None or config.kind != ChatConnector.kind or not config.enabled:
        return None
    return ChatConnector.check_config(config.settings)


def _visitor_identity_kind() -> str:
    """The identity kind a chat visitor is known by (declared by the chat connector)."""
    from connectors.chat import ChatConnector

    return ChatConnector.identities[0].kind


def email_channel(mainland: Any, channel: str) -> str | None:
    """The email channel that carries `channel`'s mail, or None (not set, or not an email channel:
    a channel that writes to email addresses and may start conversations)."""
    settings = chat_settings(mainland, channel)
    name = str((settings or {}).get("email_channel") or "").strip()
    if not name:
        return None
    config = mainland.config.channels.get(name)
    if config is None or not config.enabled:
        log.warning("chat %s: email_channel %r is not an enabled channel; no mail goes out", channel, name)
        return None
    limits = mainland.connector_class(name).limits
    kinds = {rule.kind for rule in mainland.connector_class(name).identities}
    if "email" not in kinds or not limits.starts_conversations:
        log.warning("chat %s: email_channel %r is not an email channel; no mail goes out", channel, name)
        return None
    return name


def allowed_page(mainland: Any, channel: str, page: str, own: set[str]) -> str | None:
    """`page` (the address the widget runs on) without its fragment, when it is on a site allowed to
    embed the chat (or Mainland itself, `own`); None otherwise: a link never leads elsewhere."""
    from connectors.webform import origin_of

    settings = chat_settings(mainland, channel) or {}
    page = (page or "").strip()[:2000]
    parts = urlsplit(page)
    origin = origin_of(page)
    if parts.scheme not in ("https", "http") or not origin:
        return None
    if origin not in own and origin not in settings.get("allowed_origins", ()):
        return None
    return page.split("#", 1)[0]


# Leaving an address -------------------------------------------------------------------------------------

def leave_address(store: Any, channel: str, visitor: str, address: str, *, language: str, page: str | None,
                  now: dt.datetime) -> bool:
    """Keep `address` for the visitor's chat and, under the identity rules, for their customer.
    False when it is not an email address. Call outside a write; it takes its own."""
    from inbox.customers import note_record_evidence

    value = normalize_email(address[:MAX_ADDRESS_CHARS]) if address else None
    if not value:
        return False
    now_text = iso(now)
    with store.write():
        store.chat_save_email_address(channel, visitor, value, language[:2], page, now_text)
        customer_id = store.customer_for_identity(_visitor_identity_kind(), visitor)
        if customer_id is None:
            return True  # no message yet: the address waits for the customer the first message makes
        owner = store.customer_for_identity("email", value)
        if owner is None:
            store.attach_identity(customer_id, "email", value, address.strip()[:MAX_ADDRESS_CHARS], True, now_text)
        elif owner != customer_id:
            # Anyone can type any address: evidence for an agent, never a silent merge.
            note_record_evidence(store, customer_id, claims=[("email", value)], now=now_text)
    return True


# The follow-up job ----------------------------------------------------------------------------------------

@dataclass
class FollowupRun:
    queued: int = 0
    skipped: int = 0


def run(mainland: Any, store: Any, now: dt.datetime | None = None) -> FollowupRun:
    """Queue a mail for every reply that waited unread longer than its chat's `followup_minutes`."""
    now = now or clock.now()
    result = FollowupRun()
    for channel in sorted(mainland.config.channels):
        via = email_channel(mainland, channel)
        if via is None:
            continue
        minutes = int(chat_settings(mainland, channel)["followup_minutes"])
        rows = store.chat_unread_replies(channel, iso(now - dt.timedelta(minutes=minutes)),
                                         iso(now - MAX_FOLLOWUP_AGE))
        for row in rows:
            if _follow(mainland, store, row, via=via, minutes=minutes, now=now):
                result.queued += 1
            else:
                result.skipped += 1
    return result


def _follow(mainland: Any, store: Any, row: dict[str, Any], *, via: str, minutes: int, now: dt.datetime) -> bool:
    address = row["address"]
    owner = store.customer_for_identity("email", address)
    if owner is None:
        # Left before the first message (the team was away): the customer exists only now.
        with store.write():
            store.attach_identity(row["customer_id"], "email", address, address, True, iso(now))
        owner = store.customer_for_identity("email", address)
    if owner != row["customer_id"]:
        return False  # another customer's address: an agent has to merge first
    decision = sendability.decide_start(mainland, store, row["customer_id"], channel=via, handle=address,
                                        identity_kind="email")
    if not decision.allowed:
        log.info("chat reply %s not mailed: %s", row["reply_id"], decision.code)
        return False
    conversation = store.conversation(row["conversation_id"])
    outbox_id = uuid.uuid4().hex
    gettext = _translator(mainland.config.default_language)
    note = gettext("Not read in the chat within %(minutes)d minutes: this answer also went by email to "
                   "%(address)s.", minutes=minutes, address=address)
    with store.write():
        return store.chat_queue_email(
            outbox_id=outbox_id, kind="followup", conversation_id=row["conversation_id"], via=via,
            visitor=row["visitor"], address=address, language=row["language"], note=note, now=iso(now),
            note_author=gettext("Email follow-up"),
            message_id=conversation_message_id(conversation["token"], outbox_id,
                                               mainland.config.mail_domain).strip("<>"),
            reply_id=row["reply_id"], page=row["page"])


# Sign-in links ------------------------------------------------------------------------------------------

def _signature(mainland: Any, channel: str, nonce: str) -> str:
    key = mainland.context.signing_key(f"chat-signin:{channel}")
    return hmac.new(key, nonce.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def request_signin(mainland: Any, store: Any, channel: str, address: str, *, page: str, language: str,
                   now: dt.datetime) -> bool:
    """Mail a sign-in link to `address` when a customer with a chat on `channel` holds it; True when
    one was queued. The caller answers the same either way, so nobody learns who is a customer."""
    via = email_channel(mainland, channel)
    value = normalize_email(address[:MAX_ADDRESS_CHARS]) if address else None
    if via is None or not value:
        return False
    customer_id = store.customer_for_identity("email", value)
    visitor = store.chat_visitor_of_customer(channel, customer_id) if customer_id is not None else None
    conversation_id = store.chat_conversation_of(channel, visitor) if visitor else None
    if conversation_id is None:
        return False
    decision = sendability.decide_start(mainland, store, customer_id, channel=via, handle=value, identity_kind="email")
    if not decision.allowed:
        log.info("chat sign-in link for customer %s not sent: %s", customer_id, decision.code)
        return False
    conversation = store.conversation(conversation_id)
    outbox_id = uuid.uuid4().hex
    gettext = _translator(mainland.config.default_language)
    note = gettext("A link to open this chat on another device went by email to %(address)s.", address=value)
    with store.write():
        return store.chat_queue_email(
            outbox_id=outbox_id, kind="signin", conversation_id=conversation_id, via=via, visitor=visitor,
            address=value, language=language[:2], note=note, now=iso(now), page=page,
            note_author=gettext("Sign-in link by email"),
            message_id=conversation_message_id(conversation["token"], outbox_id,
                                               mainland.config.mail_domain).strip("<>"),
            nonce=secrets.token_urlsafe(24), expires_at=iso(now + dt.timedelta(minutes=SIGNIN_MINUTES)))


def signin_link(mainland: Any, record: dict[str, Any]) -> str:
    token = f"{record['nonce']}.{_signature(mainland, record['channel'], record['nonce'])}"
    return f"{record['page']}#{SIGNIN_FRAGMENT}{token}"


def redeem_signin(mainland: Any, store: Any, channel: str, device: str, token: str, *, now: dt.datetime,
                  ip: str | None = None) -> str:
    """Bind the device (its visitor id) to the conversation the link is for. Returns "ok", or why not:
    "invalid" (not a link of ours for this chat), "used" or "expired"."""
    nonce, _, signature = (token or "").strip().partition(".")
    if not nonce or len(nonce) > 64 or not hmac.compare_digest(_signature(mainland, channel, nonce), signature):
        return "invalid"
    link = store.chat_signin_link(nonce)
    if link is None or link["channel"] != channel:
        return "invalid"
    with store.write():
        if not store.chat_use_signin_link(nonce, iso(now)):
            expired = (parse_iso(link["expires_at"]) or now) <= now
            return "used" if link["used_at"] or not expired else "expired"
        if device != link["visitor"]:
            store.chat_bind_device(channel, device, link["visitor"], iso(now))
        store.audit(iso(now), "visitor", "chat_device_signin", "channel", channel, ip=ip,
                    address=link["address"], link=link["outbox_id"])
    return "ok"


def bound_visitor(store: Any, channel: str, visitor: str) -> str:
    """The visitor whose conversation this device shows: the one a sign-in link bound it to, else itself."""
    return store.chat_bound_visitor(channel, visitor) or visitor


# Building the mails (the outbox's sender asks here first) -------------------------------------------------

def outbound_for(mainland: Any, store: Any, row: dict[str, Any]) -> OutboundReply | None:
    """The mail of a claimed outbox row that is a chat mail; None for every other row."""
    record = store.chat_email_of_outbox(row["id"])
    if record is None:
        return None
    gettext = _translator(record["language"])
    conversation = store.conversation(record["conversation_id"])
    title = str((chat_settings(mainland, record["channel"]) or {}).get("title") or conversation["subject"] or "")
    if record["kind"] == "signin":
        subject = gettext("Your chat with %(title)s", title=title or record["channel"])
        text = gettext("Open this link in the browser where you want to see your chat with %(title)s:\n\n"
                       "%(link)s\n\nThe link works once, within %(minutes)d minutes. If you did not ask for it, "
                       "ignore this email.", title=title or record["channel"], link=signin_link(mainland, record),
                       minutes=SIGNIN_MINUTES)
    else:
        subject = conversation["subject"] or title
        text = _followup_text(store, record, gettext)
    return OutboundReply(
        idempotency_key=row["id"], channel=row["channel"], conversation_id=record["conversation_id"], text=text,
        to=Author(handle=record["address"], identity_kind="email"), subject=subject,
        message_id=f"<{row['our_message_id']}>" if row.get("our_message_id") else None,
        starts_conversation=record["kind"] == "signin", automatic=record["kind"] == "signin",
    )


def _followup_text(store: Any, record: dict[str, Any], gettext: Callable[..., str]) -> str:
    reply = store.message(record["reply_id"]) if record["reply_id"] else {}
    parts = [str(reply.get("text") or "").strip()]
    if record.get("page"):
        parts.append(gettext("Continue in the chat: %(link)s", link=record["page"]))
    parts.append(gettext("Or simply reply to this email."))
    earlier = [m for m in store.chat_visitor_messages(record["conversation_id"], QUOTED_MESSAGES + 1)
               if m["id"] != record["reply_id"]][-QUOTED_MESSAGES:]
    if earlier:
        lines = [gettext("Earlier in this conversation:")]
        for message in earlier:
            # "You" and "Support": the widget's words for the two sides of the chat.
            team = message["author_name"] or gettext("Support")
            who = gettext("You") if message["direction"] == "in" else team
            said = " ".join(str(message["text"] or "").split())
            said = said if len(said) <= QUOTE_CHARS else said[:QUOTE_CHARS - 1] + "…"
            lines.append(f"> {who}: {said}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
