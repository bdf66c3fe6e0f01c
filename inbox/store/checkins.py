"""Proactive care (#14, inbox/checkins.py): customers worth a check-in, and what an agent did with
each suggestion (m027 `check_ins`): `store.check_ins`, rows as `RatedCandidate`, `QuietCandidate`,
`CheckInMark` and `StartedCheckIn`.

The candidates are read here with the team filter of the customer pages (`visible_clause`); which of
them an agent is shown, and why, is decided in inbox/checkins.py.

A concern in the shape #17 asks for: an object the store holds (`store.check_ins`) with typed rows
at its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.models import AUTOMATIC_FLAGS
from inbox.store.customers import visible_clause

if TYPE_CHECKING:
    from inbox.store import Store

#: A conversation the customer is still in: no check-in while one is open.
_OPEN = "('new', 'open', 'pending', 'snoozed')"
#: A message a machine wrote (an out-of-office, a bounce) is no reply of the customer's.
_BY_A_PERSON = " AND ".join(f"' ' || m.flags || ' ' NOT LIKE '% {flag} %'" for flag in sorted(AUTOMATIC_FLAGS))
#: Conversations that count as contact with the customer: theirs (they wrote), not spam or machines.
_CONTACT = "c.merged_into IS NULL AND c.status != 'spam' AND c.automatic = 0 AND c.last_inbound_at IS NOT NULL"


def _a_year_before(engine: str, timestamp: str) -> str:
    """SQL for the stored timestamp 365 days before `timestamp`, in the stored shape (milliseconds, as
    SQLite's strftime gives them, then 000Z)."""
    if engine == "sqlite":
        return f"strftime('%Y-%m-%dT%H:%M:%f', {timestamp}, '-365 days') || '000Z'"
    return f"""to_char(({timestamp})::timestamp - interval '365 days', 'YYYY-MM-DD"T"HH24:MI:SS.MS') || '000Z'"""


@dataclass(frozen=True, slots=True)
class RatedCandidate:
    """A good rating of a resolved conversation: its customer is worth a check-in (rule `rated`)."""

    survey_id: int
    score: int
    answered_at: str
    conversation_id: int
    subject: str | None
    channel: str
    resolved_at: str
    customer_id: int
    display_name: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> RatedCandidate:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class QuietCandidate:
    """A regular customer who went quiet (rule `quiet`): their latest conversation (`conversation_id`),
    when they last wrote (`last_at`), how many conversations in the year up to it, and their first."""

    customer_id: int
    display_name: str | None
    last_at: str
    conversation_id: int
    conversations: int
    first_at: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> QuietCandidate:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class CheckInMark:
    """What was done with a customer's suggestion on one basis: started, skipped or snoozed (until when)."""

    customer_id: int
    basis: str
    state: str
    snoozed_until: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> CheckInMark:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class StartedCheckIn:
    """A check-in that was started, with its outcome: when the customer replied and their rating, if any."""

    id: int
    customer_id: int
    basis: str
    rule: str
    conversation_id: int
    owner_id: int | None
    agent_id: int | None
    channel: str | None
    started_at: str
    display_name: str | None
    owner_name: str | None
    subject: str | None
    replied_at: str | None
    score: int | None
    rated_at: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> StartedCheckIn:
        return cls(*row)


class CheckIns:
    """`store.check_ins`: check-in candidates and marks, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def rated(self, *, resolved_since: str, min_score: int, team_ids: Iterable[int] | None,
              limit: int = 500) -> list[RatedCandidate]:
        """Answered surveys scoring `min_score` or more for conversations resolved since `resolved_since`,
        newest answer first, with the conversation's subject and channel."""
        clause, params = visible_clause(team_ids)
        return [RatedCandidate.from_row(row) for row in self._store.conn.execute(
            "SELECT s.id AS survey_id, s.score, s.answered_at, c.id AS conversation_id, c.subject, c.channel, "  # noqa: S608
            "c.resolved_at, cu.id AS customer_id, cu.display_name "
            "FROM csat_surveys s JOIN conversations c ON c.id = s.conversation_id "
            "JOIN customers cu ON cu.id = c.customer_id "
            "WHERE s.state = 'answered' AND s.score >= ? AND c.status = 'resolved' AND c.merged_into IS NULL "
            "AND c.resolved_at >= ? AND cu.merged_into IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.customer_id = cu.id AND o.status IN {_OPEN} "
            "AND o.merged_into IS NULL) "
            f"AND {clause} ORDER BY s.answered_at DESC, s.id DESC LIMIT ?",
            (min_score, resolved_since, *params, limit)).fetchall()]

    def quiet(self, *, quiet_before: str, min_conversations: int, team_ids: Iterable[int] | None,
              limit: int = 500) -> list[QuietCandidate]:
        """Customers whose last message to us came before `quiet_before`, after at least `min_conversations`
        conversations in the year up to it; the longest-standing first. Each with their latest
        conversation (`conversation_id`), when they last wrote (`last_at`) and how many (`conversations`)."""
        clause, params = visible_clause(team_ids)
        return [QuietCandidate.from_row(row) for row in self._store.conn.execute(
            "WITH last AS (SELECT c.customer_id, max(c.last_inbound_at) AS last_at FROM conversations c "  # noqa: S608
            f"WHERE {_CONTACT} GROUP BY c.customer_id) "
            "SELECT * FROM (SELECT cu.id AS customer_id, cu.display_name, l.last_at, "
            f"(SELECT c.id FROM conversations c WHERE c.customer_id = cu.id AND {_CONTACT} "
            " ORDER BY c.last_inbound_at DESC, c.id DESC LIMIT 1) AS conversation_id, "
            f"(SELECT count(*) FROM conversations c WHERE c.customer_id = cu.id AND {_CONTACT} "
            f" AND c.last_inbound_at >= {_a_year_before(self._store.engine, 'l.last_at')}) "
            " AS conversations, "
            "(SELECT min(c.created_at) FROM conversations c WHERE c.customer_id = cu.id AND c.merged_into IS NULL) "
            " AS first_at "
            "FROM last l JOIN customers cu ON cu.id = l.customer_id "
            "WHERE l.last_at < ? AND cu.merged_into IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.customer_id = cu.id AND o.status IN {_OPEN} "
            "AND o.merged_into IS NULL) "
            f"AND {clause}) AS quiet WHERE conversations >= ? ORDER BY first_at, customer_id LIMIT ?",
            (quiet_before, *params, min_conversations, limit)).fetchall()]

    def marks(self, customer_ids: Iterable[int]) -> list[CheckInMark]:
        """What was done with these customers' suggestions (started, skipped, snoozed), per basis."""
        ids = sorted({int(i) for i in customer_ids})
        if not ids:
            return []
        return [CheckInMark.from_row(row) for row in self._store.conn.execute(
            "SELECT customer_id, basis, state, snoozed_until FROM check_ins "  # noqa: S608
            f"WHERE customer_id IN ({','.join('?' * len(ids))})", ids).fetchall()]

    def mark(self, *, customer_id: int, basis: str, rule: str, state: str, now: str, agent_id: int | None,
             owner_id: int | None = None, snoozed_until: str | None = None, conversation_id: int | None = None,
             channel: str | None = None) -> int:
        """Remember what was done with a suggestion (one row per customer and basis; a later action
        replaces an earlier one, e.g. a snoozed check-in that is started). In the caller's transaction."""
        return self._store.conn.execute(
            "INSERT INTO check_ins (customer_id, basis, rule, state, snoozed_until, conversation_id, owner_id, "
            "agent_id, channel, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (customer_id, basis) DO UPDATE SET state = excluded.state, "
            "snoozed_until = excluded.snoozed_until, conversation_id = excluded.conversation_id, "
            "owner_id = excluded.owner_id, agent_id = excluded.agent_id, channel = excluded.channel, "
            "updated_at = excluded.updated_at RETURNING id",
            (customer_id, basis, rule, state, snoozed_until, conversation_id, owner_id, agent_id, channel, now,
             now)).fetchone()[0]

    def started(self, *, customer_id: int | None = None, team_ids: Iterable[int] | None = None,
                owner_id: int | None = None, since: str | None = None, until: str | None = None,
                limit: int = 50) -> list[StartedCheckIn]:
        """Check-ins that were started, newest first, each with its outcome: whether the customer
        replied (`replied_at`, their first message in the conversation that no machine wrote) and their rating, if surveyed."""
        where, params = ["k.state = 'started'", "k.conversation_id IS NOT NULL"], []
        if customer_id is not None:
            where.append("k.customer_id = ?")
            params.append(customer_id)
        if owner_id is not None:
            where.append("k.owner_id = ?")
            params.append(owner_id)
        if since is not None:
            where.append("k.updated_at >= ?")
            params.append(since)
        if until is not None:
            where.append("k.updated_at < ?")
            params.append(until)
        clause, team_params = visible_clause(team_ids)
        where.append(clause)
        return [StartedCheckIn.from_row(row) for row in self._store.conn.execute(
            "SELECT k.id, k.customer_id, k.basis, k.rule, k.conversation_id, k.owner_id, k.agent_id, k.channel, "  # noqa: S608
            "k.updated_at AS started_at, cu.display_name, o.name AS owner_name, c.subject, "
            "(SELECT min(m.received_at) FROM messages m WHERE m.conversation_id = k.conversation_id "
            f" AND m.direction = 'in' AND {_BY_A_PERSON}) AS replied_at, "
            "s.score, s.answered_at AS rated_at "
            "FROM check_ins k JOIN customers cu ON cu.id = k.customer_id "
            "LEFT JOIN agents o ON o.id = k.owner_id "
            "LEFT JOIN conversations c ON c.id = k.conversation_id "
            "LEFT JOIN csat_surveys s ON s.conversation_id = k.conversation_id AND s.state = 'answered' "
            f"WHERE {' AND '.join(where)} ORDER BY k.updated_at DESC, k.id DESC LIMIT ?",
            (*params, *team_params, limit)).fetchall()]

    def channels_used(self, customer_id: int) -> list[str]:
        """The channels the customer wrote to us on, the most recent first."""
        return [r[0] for r in self._store.conn.execute(
            "SELECT c.channel FROM conversations c WHERE c.customer_id = ? AND c.last_inbound_at IS NOT NULL "
            "AND c.merged_into IS NULL GROUP BY c.channel ORDER BY max(c.last_inbound_at) DESC, c.channel",
            (customer_id,))]
