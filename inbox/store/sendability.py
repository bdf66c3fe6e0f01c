"""Where a reply may go: `store.sendability`, rows as `AnswerableMessage`, `OriginThread` and
`MessageSinceMark`.

The messages a reply can answer, the thread each came from (merges move messages between
conversations of different channels), and when an address was last sent an automatic
acknowledgement (inbox/sendability.py, inbox/acknowledgements.py, inbox/outbox.py).

A concern in the shape #17 asks for: an object the store holds (`store.sendability`) with typed rows
at its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inbox.store import Store

_ANSWERABLE = ("SELECT id, conversation_id, channel, external_id, message_id, refs, author_name, author_handle, "
               "subject, customer_id, flags, received_at, headers FROM messages ")


@dataclass(frozen=True, slots=True)
class AnswerableMessage:
    """An inbound message a reply can answer: where it came from and what a reply needs to thread.

    `message_id` and `refs` are the email Message-ID and References (a reply's In-Reply-To and
    References), `flags` space-separated, `headers` the message's kept headers as a JSON object.
    """

    id: int
    conversation_id: int
    channel: str
    external_id: str
    message_id: str | None
    refs: str
    author_name: str
    author_handle: str
    subject: str
    customer_id: int | None
    flags: str
    received_at: str
    headers: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> AnswerableMessage | None:
        return None if row is None else cls(*row)


@dataclass(frozen=True, slots=True)
class OriginThread:
    """The conversation a merged message arrived in: its channel, thread and audience (`public`, 0 or 1)."""

    id: int
    channel: str
    thread_key: str | None
    public: int


@dataclass(frozen=True, slots=True)
class MessageSinceMark:
    """A message stored after the acknowledgement watermark; `first`: the first (not a note) of its
    conversation, so the conversation started with it."""

    id: int
    conversation_id: int
    channel: str
    direction: str
    first: bool


class Sendability:
    """`store.sendability`: where a reply may go, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def answerable_message(self, conversation_id: int, message_id: int) -> AnswerableMessage | None:
        """An inbound message of this conversation (the one the agent chose to answer), or None."""
        return AnswerableMessage.from_row(self._store.conn.execute(
            _ANSWERABLE + "WHERE id = ? AND conversation_id = ? AND direction = 'in'",
            (message_id, conversation_id)).fetchone())

    def answerable_messages(self, conversation_id: int) -> list[AnswerableMessage]:
        """The customer's latest message on each channel of the conversation, newest first: where a
        reply can go (after a merge, a conversation holds messages of several channels)."""
        rows = self._store.conn.execute(
            _ANSWERABLE + "WHERE id IN (SELECT max(id) FROM messages WHERE conversation_id = ? AND direction = 'in' "  # noqa: S608 - a constant
            "GROUP BY channel) ORDER BY id DESC", (conversation_id,)).fetchall()
        return [AnswerableMessage.from_row(row) for row in rows]

    def latest_inbound(self, conversation_id: int) -> AnswerableMessage | None:
        """The customer's last message in the conversation, on any channel: what a reply answers when
        no message was chosen (a queued reply from before m017, a composer without a target)."""
        return AnswerableMessage.from_row(self._store.conn.execute(
            _ANSWERABLE + "WHERE conversation_id = ? AND direction = 'in' ORDER BY id DESC LIMIT 1",
            (conversation_id,)).fetchone())

    def latest_inbound_at(self, conversation_id: int, channel: str) -> str | None:
        """When the customer last wrote on `channel` in this conversation (the channel's reply window)."""
        row = self._store.conn.execute(
            "SELECT max(received_at) FROM messages WHERE conversation_id = ? AND channel = ? AND direction = 'in'",
            (conversation_id, channel)).fetchone()
        return row[0] if row else None

    def origin_thread(self, message_id: int) -> OriginThread | None:
        """The conversation a message arrived in when a (not undone) merge moved it since: its
        `channel`, `thread_key` and `public`. None for a message still where it arrived."""
        row = self._store.conn.execute(
            "SELECT c.id, c.channel, c.thread_key, c.public FROM conversation_merges g "
            "JOIN conversations c ON c.id = g.source_id WHERE g.undone_at IS NULL "
            "AND EXISTS (SELECT 1 FROM json_each(g.message_ids) j WHERE j.value = ?) ORDER BY g.id LIMIT 1",
            (message_id,)).fetchone()
        return None if row is None else OriginThread(*row)

    def from_quarantine(self, message_id: int) -> bool:
        """Whether the message was held in quarantine and released by an operator (old and suspect)."""
        return self._store.conn.execute(
            "SELECT 1 FROM quarantine WHERE message_id = ?", (message_id,)).fetchone() is not None

    def customer_exists(self, customer_id: int | None) -> bool:
        """Whether the customer is still there (an erased one is deleted): someone to write to."""
        if customer_id is None:
            return False
        return self._store.conn.execute(
            "SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone() is not None

    # Acknowledgements -----------------------------------------------------------------------------

    def acknowledged_at(self, channel: str, handle: str) -> str | None:
        """When this sender was last sent an acknowledgement on this channel, or None."""
        row = self._store.conn.execute("SELECT last_at FROM acknowledgements WHERE channel = ? AND handle = ?",
                                       (channel, handle.strip().lower())).fetchone()
        return row[0] if row else None

    def record_acknowledgement(self, channel: str, handle: str, conversation_id: int, now: str) -> None:
        """Remember that this sender was acknowledged now, in the caller's transaction (the receipt's)."""
        self._store.conn.execute(
            "INSERT INTO acknowledgements (channel, handle, conversation_id, last_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, handle) DO UPDATE SET conversation_id = excluded.conversation_id, "
            "last_at = excluded.last_at", (channel, handle.strip().lower(), conversation_id, now))

    def conversations_started_since_mark(self, limit: int = 200) -> tuple[int, list[MessageSinceMark]]:
        """Messages stored after the acknowledgement watermark, each saying whether it started its
        conversation; and the watermark. The first call sets the mark to the newest message, so turning
        acknowledgements on never answers old mail. Call inside a write transaction with
        `notifications.move_mark("acknowledgements", ...)`."""
        mark, started = self._store.notifications.mark_or_start("acknowledgements", "messages")
        if started:
            return mark, []
        rows = self._store.conn.execute(
            "SELECT m.id, m.conversation_id, m.channel, m.direction, "
            "NOT EXISTS (SELECT 1 FROM messages e WHERE e.conversation_id = m.conversation_id AND e.id < m.id "
            "AND e.direction != 'note') AS first "
            "FROM messages m WHERE m.id > ? ORDER BY m.id LIMIT ?", (mark, limit)).fetchall()
        # SQLite answers NOT EXISTS with 0/1, PostgreSQL with a boolean: the row says bool on both.
        return mark, [MessageSinceMark(id_, conversation_id, channel, direction, bool(first))
                      for id_, conversation_id, channel, direction, first in rows]

    def set_outbox_target(self, outbox_id: str, *, reply_to: int, thread_key: str | None, public: bool) -> None:
        """Where a queued reply goes: the message it answers, that message's thread and audience."""
        self._store.conn.execute("UPDATE outbox SET reply_to = ?, thread_key = ?, public = ? WHERE id = ?",
                                 (reply_to, thread_key, int(public), outbox_id))

    def keep_unanswered(self, conversation_id: int, *, status: str, first_response_at: str | None) -> None:
        """Put back what queueing an automatic receipt changed: it is no answer (status, first response)."""
        self._store.conn.execute("UPDATE conversations SET status = ?, first_response_at = ? WHERE id = ?",
                                 (status, first_response_at, conversation_id))
