"""Threading: which conversation an inbound item belongs to.

In order: a delivery-status report joins the conversation of our reply it reports on; a reply
joins the conversation of the message it names (In-Reply-To, References) or whose token it carries
(our Message-IDs and a `[#TOKEN]` subject tag); a chat message joins its open thread on that
channel. A reply that points into **another customer's** conversation is never added to it: it
starts a conversation of its own, flagged, so that nobody answers one customer with another's data.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from inbox.mail import tokens_in
from inbox.models import FLAG_BOUNCE, FLAG_MISTHREAD, InboundItem
from inbox.store import Store

_TOKEN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_token() -> str:
    """A conversation token: 8 characters, no look-alikes, unguessable enough to not be an id."""
    # 32 letters: each random byte's low five bits pick one, uniformly, at a tenth of secrets.choice's cost.
    return "".join(_TOKEN_ALPHABET[byte & 31] for byte in secrets.token_bytes(8))


def unused_token(store: Store) -> str:
    """A new conversation's token that no conversation has yet. Call it inside the write
    transaction that creates the conversation, so that no other writer takes the token meanwhile.

    Eight letters are 40 bits: an inbox of 150,000 conversations draws one already in use about
    once in a hundred imports of that size, and that message was quarantined (a UNIQUE failure).
    """
    while True:
        token = new_token()
        if store.conversation_by_token(token) is None:
            return token


@dataclass
class ThreadDecision:
    conversation_id: int | None
    flags: set[str] = field(default_factory=set)
    bounced_message_ids: list[str] = field(default_factory=list)


def find_conversation(store: Store, item: InboundItem, customer_id: int) -> ThreadDecision:
    """Where `item` goes; `conversation_id` None means a new conversation."""
    flags: set[str] = set()
    if item.references:
        known = store.messages_by_message_id(item.references)
        if FLAG_BOUNCE in item.flags:
            ours = [m for m in known if m["direction"] == "out"]
            if ours:
                return ThreadDecision(ours[0]["conversation_id"], bounced_message_ids=[m["message_id"] for m in ours])
        by_id = {m["message_id"]: m for m in known}
        # In-Reply-To comes first in item.references: the nearest parent wins.
        for ref in item.references:
            row = by_id.get(ref)
            if row is not None and row["customer_id"] == customer_id:
                return ThreadDecision(row["conversation_id"])
        if known:
            flags.add(FLAG_MISTHREAD)
    for token in tokens_in(item.references, item.subject):
        conversation = store.conversation_by_token(token)
        if conversation is None:
            continue
        if conversation["customer_id"] == customer_id:
            return ThreadDecision(conversation["id"], flags=flags - {FLAG_MISTHREAD})
        flags.add(FLAG_MISTHREAD)
    if item.thread_key:
        found = store.open_conversation_for_thread(item.channel, item.thread_key, customer_id)
        if found is not None:
            return ThreadDecision(found, flags=flags)
        if not item.public:
            started = store.adopt_started_conversation(item.channel, item.thread_key, customer_id)
            if started is not None:
                return ThreadDecision(started, flags=flags)
    return ThreadDecision(None, flags=flags)
