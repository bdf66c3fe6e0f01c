"""Messages that start a conversation (#12): `store.outreach`, the new conversation, whom its first
message goes to, a template to send instead of free text, and whether the customer may be written to.

The first message itself is an ordinary queued reply (`OutboxQueries.queue_outbound`); these verbs
add what a message that answers nothing needs: the conversation it opens, and on its outbox row the
handle it goes to (`to_handle`, m022) and the template (`template`, JSON).

A concern in the shape #17 asks for: an object the store holds (`store.outreach`) with typed rows at
its boundary (`CustomerIdentity`), instead of a mixin of `Store` returning dicts. Its writes run in
the caller's write transaction (the conversation and its first message are one), as they did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.store.customers import identity_hash

if TYPE_CHECKING:
    from inbox.store import Store


@dataclass(frozen=True, slots=True)
class CustomerIdentity:
    """One of a customer's identities (an address, a phone number, ...) a first message may go to."""

    id: int
    kind: str
    value: str
    display: str
    valid: bool
    delivery_failed: bool

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> CustomerIdentity | None:
        if row is None:
            return None
        identity_id, kind, value, display, valid, delivery_failed = row
        return cls(identity_id, kind, value, display, bool(valid), bool(delivery_failed))


class Outreach:
    """`store.outreach`: conversations Mainland opens, on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create_conversation(self, *, token: str, customer_id: int, channel: str, thread_key: str | None,
                            subject: str, agent_id: int, team_id: int | None, now: str) -> int:
        """A conversation we open: assigned to the agent who writes, waiting for the customer (`pending`).
        In the caller's write transaction; its first message is queued right after."""
        return self._store.conn.execute(
            "INSERT INTO conversations (token, customer_id, channel, thread_key, subject, status, assignee_id, "
            "assigned_by, assigned_at, team_id, public, created_at, updated_at, last_message_at) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?, 'person', ?, ?, 0, ?, ?, ?)",
            (token, customer_id, channel, thread_key, subject, agent_id, now, team_id, now, now, now)).lastrowid

    def set_outbox_start(self, outbox_id: str, *, to_handle: str | None = None, to_name: str | None = None,
                         to_kind: str | None = None, template: dict[str, Any] | None = None) -> None:
        """Mark a queued row as starting a conversation (to this handle) and/or as a template message."""
        self._store.conn.execute(
            "UPDATE outbox SET to_handle = coalesce(?, to_handle), to_name = coalesce(?, to_name), "
            "to_kind = coalesce(?, to_kind), template = coalesce(?, template) WHERE id = ?",
            (to_handle, to_name, to_kind, json.dumps(template) if template else None, outbox_id))

    def identity_erased(self, kind: str, value: str) -> bool:
        """Whether a customer holding (kind, value) asked to be forgotten (erased)."""
        return self._store.conn.execute("SELECT 1 FROM erased_identities WHERE kind = ? AND value_hash = ?",
                                        (kind, identity_hash(kind, value))).fetchone() is not None

    def customer_blocked(self, customer_id: int) -> bool:
        """Whether the customer's latest conversation is marked as spam: we do not write to them first."""
        row = self._store.conn.execute(
            "SELECT status FROM conversations WHERE customer_id = ? AND merged_into IS NULL "
            "ORDER BY id DESC LIMIT 1", (customer_id,)).fetchone()
        return bool(row and row[0] == "spam")

    def identity(self, customer_id: int, identity_id: int) -> CustomerIdentity | None:
        """One of the customer's identities by its id (None when it is another customer's)."""
        return CustomerIdentity.from_row(self._store.conn.execute(
            "SELECT id, kind, value, display, valid, delivery_failed FROM identities "
            "WHERE id = ? AND customer_id = ?", (identity_id, customer_id)).fetchone())
