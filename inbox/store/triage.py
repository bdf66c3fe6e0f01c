"""The triage flow's rows (#14): `store.triage`, with rows as `TriageReview`,
`TriageReviewWithConversation`, `WaitingTriageItem`, `FirstInboundMessage`, `SampleOutcome`,
`SpamBlock` and `ListedSpamBlock`.

It holds the facts a verdict is made of, the triage review queue (suspicious items and audit
samples), the blocks people put on senders, and the spam upkeep. A suspicious conversation is held
as status `spam` with `triage_hold = 1` (m025): the status that already keeps it out of the queue
and stops clocks, surveys and acknowledgements, marked as waiting for a person. `release` puts it
in the queue as if it had been there from its arrival.

No verb here opens a transaction of its own: each runs inside its caller's (the ingest batch, a
person's decision, the worker's upkeep), so what a decision changes is written together.

A concern in the shape #17 asks for: an object the store holds (`store.triage`) with typed rows at
its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inbox.store import Store

_REVIEW_COLUMNS = ("r.id, r.message_id, r.conversation_id, r.channel, r.kind, r.machine_verdict, r.probability, "
                   "r.model_version, r.reason, r.facts, r.created_at, r.decided_at, r.decided_by, r.human_verdict")
_BLOCK_COLUMNS = "b.id, b.kind, b.identity_kind, b.value, b.created_at, b.created_by"


@dataclass(frozen=True, slots=True)
class TriageReview:
    """An item of the triage review list as stored: a suspicious item, or an audit sample of the machine's own
    verdict (`kind` 'suspicious' or 'sample').

    `facts` is the JSON of what the model was shown (to teach it once a person decides); `decided_at`,
    `decided_by` and `human_verdict` ('customer' or 'spam') are None while it waits.
    """

    id: int
    message_id: int
    conversation_id: int
    channel: str
    kind: str
    machine_verdict: str
    probability: float | None
    model_version: int | None
    reason: str | None
    facts: str
    created_at: str
    decided_at: str | None
    decided_by: int | None
    human_verdict: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> TriageReview:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class TriageReviewWithConversation(TriageReview):
    """A review item with its conversation's status and whether it is held."""

    conversation_status: str
    triage_hold: bool

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> TriageReviewWithConversation | None:
        if row is None:
            return None
        values = list(row)
        values[15] = bool(values[15])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class WaitingTriageItem(TriageReview):
    """An undecided review item as /review/triage shows it, with its message's author, subject, text,
    arrival and spam reason, and its conversation's status, hold and token."""

    author_name: str
    author_handle: str
    subject: str
    text: str
    received_at: str
    spam_reason: str | None
    conversation_status: str
    triage_hold: bool
    token: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> WaitingTriageItem:
        values = list(row)
        values[21] = bool(values[21])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class FirstInboundMessage:
    """A conversation's first customer message, with what the model's facts are made of (`headers` is JSON)."""

    id: int
    channel: str
    text: str
    html: str | None
    subject: str
    author_handle: str
    headers: str
    customer_id: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> FirstInboundMessage | None:
        return None if row is None else cls(*row)


@dataclass(frozen=True, slots=True)
class SampleOutcome:
    """One channel's decided audit samples: the machine's verdicts against people's.

    `true_spam`: both said spam; `false_spam`: the machine said spam, a person customer; `missed_spam`: the
    machine did not say spam, a person did; `true_clean`: neither said spam; `decided`: all of them.
    """

    channel: str
    true_spam: int | None
    false_spam: int | None
    missed_spam: int | None
    true_clean: int | None
    decided: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> SampleOutcome:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class SpamBlock:
    """A blocked sender: an address or handle (`kind` 'address' or 'handle', of `identity_kind`, the
    identity's kind as inbox.identity names it) or a mail domain (`kind` 'domain', `value` in lower case)."""

    id: int
    kind: str
    identity_kind: str
    value: str
    created_at: str
    created_by: int | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> SpamBlock | None:
        return None if row is None else cls(*row)


@dataclass(frozen=True, slots=True)
class ListedSpamBlock:
    """A block as /admin/blocks lists it (fields as `SpamBlock`), with the name of the agent who made it
    (None when they were removed)."""

    id: int
    kind: str
    identity_kind: str
    value: str
    created_at: str
    created_by: int | None
    created_by_name: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ListedSpamBlock:
        return cls(*row)


class Triage:
    """`store.triage`: the triage flow's rows, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # Facts for the verdict -----------------------------------------------------------------------

    def earlier_clean_conversations(self, customer_id: int, *, besides: int | None = None,
                                    at_most: int | None = None) -> int:
        """How many conversations this customer had that are not spam (a person's history with us),
        counted up to `at_most`: a mailing list or a regular writes thousands, and counting them all
        for every new message made a long import slower with each one (#16)."""
        limit = "" if at_most is None else " LIMIT ?"
        counted = f"SELECT 1 FROM conversations WHERE customer_id = ? AND status != 'spam' AND id IS NOT ?{limit}"  # noqa: S608
        params = (customer_id, besides) if at_most is None else (customer_id, besides, at_most)
        return self._store.conn.execute(f"SELECT count(*) FROM ({counted}) AS counted", params).fetchone()[0]  # noqa: S608

    def first_inbound_facts(self, conversation_id: int) -> dict[str, Any] | None:
        """The facts the model was shown for the conversation's first judged item, when it waited in triage."""
        row = self._store.conn.execute(
            "SELECT facts FROM triage_reviews WHERE conversation_id = ? ORDER BY id LIMIT 1",
            (conversation_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def first_inbound_message(self, conversation_id: int) -> FirstInboundMessage | None:
        """The customer's first message in the conversation, with what the model's facts are made of."""
        return FirstInboundMessage.from_row(self._store.conn.execute(
            "SELECT m.id, m.channel, m.text, m.html, m.subject, m.author_handle, m.headers, c.customer_id "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.conversation_id = ? AND m.direction = 'in' ORDER BY m.id LIMIT 1", (conversation_id,)).fetchone())

    # Verdicts and the review queue -----------------------------------------------------------------

    def hold(self, conversation_id: int) -> None:
        """Keep a new conversation out of the queue until a person decides (it was created as spam)."""
        self._store.conn.execute("UPDATE conversations SET triage_hold = 1 WHERE id = ?", (conversation_id,))

    def add_review(self, *, message_id: int, conversation_id: int, channel: str, kind: str,
                   machine_verdict: str, probability: float | None, model_version: int | None,
                   reason: str, facts: dict[str, Any], now: str) -> int | None:
        """Put a message in the review list (`kind` 'suspicious' or 'sample'); its id, or None when the
        message was there already."""
        cur = self._store.conn.execute(
            "INSERT INTO triage_reviews (message_id, conversation_id, channel, kind, machine_verdict, probability, "
            "model_version, reason, facts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (message_id) DO NOTHING",
            (message_id, conversation_id, channel, kind, machine_verdict, probability, model_version, reason,
             json.dumps(facts), now))
        return cur.lastrowid if cur.rowcount else None

    def waiting(self, team_sql: str, team_params: Sequence[Any], limit: int = 200) -> list[WaitingTriageItem]:
        """Undecided review items, oldest first, with the message and its conversation (`team_sql`
        restricts `c.team_id`, from `inbox.store.queue._team_filter`)."""
        rows = self._store.conn.execute(
            f"SELECT {_REVIEW_COLUMNS}, m.author_name, m.author_handle, m.subject, m.text, m.received_at, "  # noqa: S608
            "m.spam_reason, c.status AS conversation_status, c.triage_hold, c.token "
            "FROM triage_reviews r JOIN messages m ON m.id = r.message_id "
            "JOIN conversations c ON c.id = r.conversation_id "
            f"WHERE r.decided_at IS NULL AND {team_sql} ORDER BY r.created_at, r.id LIMIT ?",
            [*team_params, limit]).fetchall()
        return [WaitingTriageItem.from_row(row) for row in rows]

    def waiting_count(self, team_sql: str, team_params: Sequence[Any], cap: int = 100) -> int:
        """How many undecided review items (at most `cap`: a badge, not a report)."""
        row = self._store.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM triage_reviews r JOIN conversations c ON c.id = r.conversation_id "  # noqa: S608
            f"WHERE r.decided_at IS NULL AND {team_sql} LIMIT ?) AS capped", [*team_params, cap]).fetchone()
        return row[0]

    def review(self, review_id: int) -> TriageReviewWithConversation | None:
        """One review item, decided or not, with its conversation's status and hold; None when there is none."""
        return TriageReviewWithConversation.from_row(self._store.conn.execute(
            f"SELECT {_REVIEW_COLUMNS}, c.status AS conversation_status, c.triage_hold FROM triage_reviews r "  # noqa: S608
            "JOIN conversations c ON c.id = r.conversation_id WHERE r.id = ?", (review_id,)).fetchone())

    def open_reviews(self, conversation_id: int) -> list[TriageReview]:
        """The conversation's review items nobody has decided on yet."""
        rows = self._store.conn.execute(
            f"SELECT {_REVIEW_COLUMNS} FROM triage_reviews r WHERE conversation_id = ? AND decided_at IS NULL",  # noqa: S608
            (conversation_id,)).fetchall()
        return [TriageReview.from_row(row) for row in rows]

    def decide_review(self, review_id: int, *, verdict: str, agent_id: int | None, now: str) -> bool:
        """Record a person's verdict; False when it was already decided."""
        cur = self._store.conn.execute(
            "UPDATE triage_reviews SET decided_at = ?, decided_by = ?, human_verdict = ? "
            "WHERE id = ? AND decided_at IS NULL", (now, agent_id, verdict, review_id))
        return bool(cur.rowcount)

    def release(self, conversation_id: int, now: str) -> bool:
        """Put a conversation the machine kept out (held or judged spam) in the queue, as new.

        When no person ever changed its status, its status history is dropped with the machine's
        verdict: the service-level clock then counts from the first message, as if it had been in
        the queue from its arrival. Returns False when it was not spam.
        """
        conn = self._store.conn
        row = conn.execute("SELECT status FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None or row[0] != "spam":
            return False
        machine_only = conn.execute(
            "SELECT count(*) FROM conversation_status_log WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()[0] == 0
        conn.execute("UPDATE conversations SET status = 'new', triage_hold = 0, updated_at = ? WHERE id = ?",
                     (now, conversation_id))
        if machine_only:
            conn.execute("DELETE FROM conversation_status_log WHERE conversation_id = ?", (conversation_id,))
            conn.execute("UPDATE conversations SET sla_computed_at = NULL WHERE id = ?", (conversation_id,))
        return True

    def forget_machine_spam(self, conversation_id: int) -> None:
        """After a person took a conversation the machine had judged spam out of spam: when that was its
        only status change, its clock counts from the first message (as `release`)."""
        conn = self._store.conn
        rows = conn.execute("SELECT old_status FROM conversation_status_log WHERE conversation_id = ?",
                            (conversation_id,)).fetchall()
        if len(rows) == 1 and rows[0][0] == "spam":
            conn.execute("DELETE FROM conversation_status_log WHERE conversation_id = ?", (conversation_id,))
            conn.execute("UPDATE conversations SET sla_computed_at = NULL WHERE id = ?", (conversation_id,))

    def end_hold(self, conversation_id: int) -> None:
        """The conversation no longer waits for a person's verdict (its status stays what it is)."""
        self._store.conn.execute("UPDATE conversations SET triage_hold = 0 WHERE id = ?", (conversation_id,))

    def set_message_verdict(self, conversation_id: int, verdict: str, reason: str) -> None:
        """A person's verdict on a conversation's inbound items (shown beside the machine's probability)."""
        self._store.conn.execute("UPDATE messages SET spam_verdict = ?, spam_reason = ? "
                                 "WHERE conversation_id = ? AND direction = 'in'", (verdict, reason, conversation_id))

    def sample_outcomes(self) -> list[SampleOutcome]:
        """Per channel, the machine's verdicts on decided samples against the person's (for precision/recall)."""
        rows = self._store.conn.execute(
            "SELECT channel, "
            "sum(CASE WHEN machine_verdict = 'spam' AND human_verdict = 'spam' THEN 1 ELSE 0 END) AS true_spam, "
            "sum(CASE WHEN machine_verdict = 'spam' AND human_verdict = 'customer' THEN 1 ELSE 0 END) AS false_spam, "
            "sum(CASE WHEN machine_verdict != 'spam' AND human_verdict = 'spam' THEN 1 ELSE 0 END) AS missed_spam, "
            "sum(CASE WHEN machine_verdict != 'spam' AND human_verdict = 'customer' THEN 1 ELSE 0 END) AS true_clean, "
            "count(*) AS decided "
            "FROM triage_reviews WHERE kind = 'sample' AND decided_at IS NOT NULL GROUP BY channel ORDER BY channel"
        ).fetchall()
        return [SampleOutcome.from_row(row) for row in rows]

    # Blocks ----------------------------------------------------------------------------------------

    def add_block(self, kind: str, identity_kind: str, value: str, *, agent_id: int | None, now: str) -> int | None:
        """Block a sender (a domain is kept in lower case); the block's id, or None when it was blocked already."""
        cur = self._store.conn.execute(
            "INSERT INTO spam_blocks (kind, identity_kind, value, created_at, created_by) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, identity_kind, value) DO NOTHING",
            (kind, identity_kind, value.lower() if kind == "domain" else value, now, agent_id))
        return cur.lastrowid if cur.rowcount else None

    def blocks(self) -> list[ListedSpamBlock]:
        """Every block, by kind and value, with its maker's name."""
        rows = self._store.conn.execute(f"SELECT {_BLOCK_COLUMNS}, a.name AS created_by_name FROM spam_blocks b "  # noqa: S608
                                        "LEFT JOIN agents a ON a.id = b.created_by ORDER BY b.kind, b.value").fetchall()
        return [ListedSpamBlock.from_row(row) for row in rows]

    def block(self, block_id: int) -> SpamBlock | None:
        """One block; None when there is none."""
        return SpamBlock.from_row(self._store.conn.execute(
            f"SELECT {_BLOCK_COLUMNS} FROM spam_blocks b WHERE id = ?", (block_id,)).fetchone())  # noqa: S608

    def blocks_matching(self, identity_kind: str, value: str) -> list[SpamBlock]:
        """Every block that covers this identity (its normal form, inbox.identity): the address or
        handle itself and, for an email address, its domain."""
        domain = value.rsplit("@", 1)[1].lower() if identity_kind == "email" and "@" in value else None
        rows = self._store.conn.execute(
            f"SELECT {_BLOCK_COLUMNS} FROM spam_blocks b "  # noqa: S608
            "WHERE (kind IN ('address', 'handle') AND identity_kind = ? AND value = ?) "
            "OR (kind = 'domain' AND value = ?) ORDER BY id", (identity_kind, value, domain)).fetchall()
        return [SpamBlock.from_row(row) for row in rows]

    def remove_block(self, block_id: int) -> bool:
        """Lift a block; False when there was none."""
        return bool(self._store.conn.execute("DELETE FROM spam_blocks WHERE id = ?", (block_id,)).rowcount)

    # Upkeep ----------------------------------------------------------------------------------------

    def old_spam_conversations(self, cutoff: str, limit: int = 500) -> list[int]:
        """Spam conversations nobody is deciding on, quiet since before `cutoff` and spam since then."""
        rows = self._store.conn.execute(
            "SELECT c.id FROM conversations c WHERE c.status = 'spam' AND c.triage_hold = 0 "
            "AND c.last_message_at < ? AND ifnull((SELECT max(l.at) FROM conversation_status_log l "
            "WHERE l.conversation_id = c.id AND l.new_status = 'spam'), c.created_at) < ? ORDER BY c.id LIMIT ?",
            (cutoff, cutoff, limit)).fetchall()
        return [r[0] for r in rows]

    def delete_conversations(self, conversation_ids: Iterable[int]) -> list[str]:
        """Delete conversations with their messages; returns attachment hashes that lost a reference."""
        store = self._store
        conv_ids = list(conversation_ids)
        # The erasure's helpers (CustomerQueries): they follow every foreign key down from a row.
        msg_ids = [r[0] for r in store._select_in("SELECT id FROM messages WHERE conversation_id IN ({marks})",
                                                  conv_ids)]
        hashes = sorted({r[0] for r in store._select_in(
            "SELECT sha256 FROM attachments WHERE sha256 IS NOT NULL AND message_id IN ({marks})", msg_ids)})
        store._delete_tree("messages", "id", msg_ids)
        store._delete_tree("conversations", "id", conv_ids)
        return hashes
