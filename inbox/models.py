"""Plain dataclasses shared by connectors, the ingest pipeline, the store and the web app.

These are the words of the contract between a connector and the rest of Mainland: a connector
turns what its channel gives it into `InboundItem`s, and sends `OutboundReply`s. They hold no
database handles and do no I/O, so a connector can be written and tested without the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Flags an item (and the message stored from it) can carry. Agents see them as badges.
FLAG_CHARSET_FALLBACK = "charset_fallback"  # bytes did not match the declared charset; decoded best-effort
FLAG_NO_MESSAGE_ID = "no_message_id"  # email without Message-ID: identified by the hash of its bytes
FLAG_AUTO_SUBMITTED = "auto_submitted"  # RFC 3834 auto-reply or auto-generated mail
FLAG_BULK = "bulk"  # Precedence: bulk/list/junk or List-* headers
FLAG_BOUNCE = "bounce"  # delivery status notification
FLAG_LOOP = "loop"  # carries our own loop header or comes from one of our own addresses
FLAG_INVALID_SENDER = "invalid_sender"  # the sender address could not be parsed strictly; replies disabled
FLAG_MALFORMED = "malformed"  # the MIME structure had defects; best-effort text
FLAG_TRUNCATED = "truncated"  # body or parts cut at a size cap; the raw original is kept
FLAG_OVERSIZED = "oversized"  # the whole message was over the size cap: only a stub was stored
FLAG_BAD_DATE = "bad_date"  # Date header missing, unparsable or far off; ordered by receive time
FLAG_MISTHREAD = "possible_misthread"  # referred to another customer's conversation; kept apart
FLAG_ACKNOWLEDGEMENT = "acknowledgement"  # our automatic receipt of a customer's message (inbox/acknowledgements.py)
FLAG_CLAIMED_ADDRESS = "claimed_address"  # a typed, unproven address that an existing customer already has
FLAG_HTML_REPLACED = "html_replaced"  # HTML body too hostile or too large to show; raw downloadable

#: Flags that mean "a machine wrote this": no automatic mail may answer such an item.
AUTOMATIC_FLAGS = frozenset({FLAG_AUTO_SUBMITTED, FLAG_BULK, FLAG_BOUNCE, FLAG_LOOP})


@dataclass(frozen=True)
class Author:
    """Who wrote an inbound item, as the channel knows them.

    `identity_kind` + `handle` is what identity resolution matches on: ("email", address),
    ("phone", "+31612345678"), ("telegram", user id), ...
    """

    handle: str
    name: str = ""
    identity_kind: str = "email"
    valid: bool = True
    #: False when the channel lets anyone type this handle (a web form's email field): the message
    #: still joins the customer who owns the address, but is marked FLAG_CLAIMED_ADDRESS.
    proven: bool = True
    #: False when `name` is the channel's stand-in for someone who gave none ("Website visitor 3f9a1c"):
    #: shown as the customer's name, but never taken as evidence that two records are one person.
    name_given: bool = True


@dataclass(frozen=True)
class Attachment:
    """A file that came with an item (data given) or that the channel offers for download (url)."""

    filename: str
    content_type: str = "application/octet-stream"
    data: bytes | None = None
    url: str | None = None
    size: int | None = None
    content_id: str | None = None
    inline: bool = False


@dataclass
class InboundItem:
    """One message from a customer on some channel, before it is stored.

    Args:
        external_id: stable id of the item within its channel; the store keeps one row per
            `(channel, external_id)`, so a re-fetched item is dropped.
        thread_key: the channel's own conversation id (a chat id, a tweet's conversation_id),
            used to join the item to an open conversation on that channel.
        references: ids of items this one answers, nearest last (email: References + In-Reply-To).
        raw: the original bytes, kept so that an item can be exported or reprocessed.
        context_text: the text of what this item answers (the post a comment is on), when the
            channel gives it; shown above the item so the agent knows "which coat?".
        context_url: a link to that post or parent (http/https only; anything else is not linked).
    """

    channel: str
    external_id: str
    author: Author
    text: str = ""
    html: str | None = None
    subject: str | None = None
    sent_at: dt.datetime | None = None
    thread_key: str | None = None
    message_id: str | None = None
    references: tuple[str, ...] = ()
    public: bool = False
    attachments: tuple[Attachment, ...] = ()
    flags: frozenset[str] = frozenset()
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    source_ref: str | None = None
    size: int | None = None
    defects: tuple[str, ...] = ()
    context_text: str | None = None
    context_url: str | None = None

    @property
    def is_automatic(self) -> bool:
        """True when a machine wrote this (auto-reply, bounce, list mail or our own loop)."""
        return bool(self.flags & AUTOMATIC_FLAGS)


@dataclass(frozen=True)
class Reject:
    """Raw input that a connector could not turn into an item: it goes to quarantine."""

    raw: bytes
    reason: str
    source_ref: str | None = None
    exception: str | None = None


#: Delivery states of our replies, in the order a channel reports them; a report never moves a
#: reply back (a late "delivered" after "read" changes nothing). "failed" can follow any but "read".
DELIVERY_ORDER = {"queued": 0, "retrying": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True)
class DeliveryUpdate:
    """A channel's report on a reply we sent (WhatsApp statuses, Messenger delivery/read receipts).

    `provider_id` is the id `Connector.send` returned for that reply.
    """

    provider_id: str
    status: str  # "sent", "delivered", "read" or "failed"
    error: str | None = None
    at: dt.datetime | None = None


#: What a customer can do to a message we already hold.
CHANGE_EDITED = "edited"  # new text; the earlier text is kept as history
CHANGE_DELETED = "deleted"  # withdrawn ("delete for everyone"); kept for the team, marked as deleted


@dataclass(frozen=True)
class MessageChange:
    """The customer edited or withdrew a message we stored earlier (a WhatsApp edit or revoke, a
    deleted Bluesky chat message).

    `external_id` is the stored item's `InboundItem.external_id` on the same channel. A change to a
    message we never stored is counted and dropped. A change never reopens a conversation.
    """

    external_id: str
    kind: str  # CHANGE_EDITED or CHANGE_DELETED
    text: str | None = None  # the new text, for CHANGE_EDITED
    at: dt.datetime | None = None


@dataclass(frozen=True)
class FetchResult:
    """What one `Connector.fetch` (or `parse_webhook`) call returns.

    `cursor` is opaque to everything but the connector; the store saves it in the same
    transaction as `items`, `rejects`, `updates` and `changes`. `more` says that another page is
    ready now. `changes` are applied after `items`, so an edit may follow its message in one page.
    """

    items: list[InboundItem]
    cursor: str | None
    rejects: list[Reject] = field(default_factory=list)
    more: bool = False
    updates: list[DeliveryUpdate] = field(default_factory=list)
    changes: list[MessageChange] = field(default_factory=list)


@dataclass
class ParsedPage:
    """What a connector's parse function makes of a `RawPage`'s payload: items, and rejects for the
    quarantine (an item that cannot be parsed costs that item, never the page)."""

    items: list[InboundItem] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class RawPage:
    """One page as `Connector.fetch_raw` returns it: fetched, its cursor worked out, not yet parsed (#16).

    The poller parses it: `parse(payload, **options)` -> `ParsedPage`, in worker processes when
    the poll is large (`to_read`), else in its own process. So `parse` must be a module-level
    function and `payload` and `options` must pickle (bytes, strings, numbers; no connector, no
    socket). `rejects` are what the fetch itself could not read; `cursor` and `more` mean what
    they mean in `FetchResult`, and the cursor is stored with the parsed page in one transaction.
    """

    payload: Any
    parse: Callable[..., ParsedPage]
    cursor: str | None
    options: dict[str, Any] = field(default_factory=dict)
    more: bool = False
    rejects: list[Reject] = field(default_factory=list)
    #: Items this poll will still read, this page's included, as far as the connector knows
    #: (the poller starts parsing processes only for a large poll).
    to_read: int = 0

    def parse_here(self) -> ParsedPage:
        """Parse the payload in this process."""
        return self.parse(self.payload, **self.options)


@dataclass(frozen=True)
class MessageTemplate:
    """An approved template to send instead of free text (WhatsApp outside the 24-hour window).

    `parameters` fill the template body's {{1}}, {{2}}, ... in order.
    """

    name: str
    language: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateInfo:
    """A template as the channel lists it: what the agent picks and fills (`Connector.message_templates`)."""

    name: str
    language: str
    category: str = ""
    #: The body with its {{1}}.. placeholders, as approved.
    body: str = ""
    variables: int = 0

    def filled(self, parameters: tuple[str, ...] | list[str]) -> str:
        """The body as the customer reads it with `parameters` in place of {{1}}, {{2}}, ..."""
        text = self.body
        for number, value in enumerate(parameters, start=1):
            text = text.replace("{{" + str(number) + "}}", str(value))
        return text


@dataclass(frozen=True)
class OutboundReply:
    """An agent's reply on its way out through a connector.

    `reply_to_external_id` / `reply_to_message_id` name the inbound item it answers; connectors
    thread the reply to it. A message that starts a conversation answers nothing: both are None and
    `to` is the handle chosen by the agent. `idempotency_key` is stable across retries of the same reply.
    """

    idempotency_key: str
    channel: str
    conversation_id: int
    text: str
    to: Author
    html: str | None = None
    subject: str | None = None
    thread_key: str | None = None
    reply_to_external_id: str | None = None
    reply_to_message_id: str | None = None
    references: tuple[str, ...] = ()
    message_id: str | None = None
    public: bool = False
    attachments: tuple[Attachment, ...] = ()
    from_name: str | None = None
    #: Written by Mainland itself (a satisfaction survey), not by an agent: marked as automatic mail.
    automatic: bool = False
    #: An automatic answer to the customer's own message (an acknowledgement): RFC 3834's
    #: "auto-replied" rather than "auto-generated".
    auto_replied: bool = False
    #: Further recipients in copy, on channels that declare `Limits.copies` (email): `cc` are shown
    #: to everyone, `bcc` go only into the envelope, never into a header.
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    #: A forward to someone else (not a reply): a new mail with its own subject, threaded to nothing.
    forwarded: bool = False
    #: Send this approved template instead of `text` (which then holds the filled body, for the thread).
    template: MessageTemplate | None = None
    #: The first message of a conversation we started: it answers nothing (email: the agent's own
    #: subject, no "Re:"; no In-Reply-To).
    starts_conversation: bool = False
