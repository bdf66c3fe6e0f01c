"""Store verbs for proactive care (#14, inbox/checkins.py): customers worth a check-in, and what an
agent did with each suggestion (m027 `check_ins`).

The candidates are read here with the team filter of the customer pages (`visible_clause`); which of
them an agent is shown, and why, is decided in inbox/checkins.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inbox.models import AUTOMATIC_FLAGS
from inbox.store.base import as_dicts
from inbox.store.customers import visible_clause

#: A conversation the customer is still in: no check-in while one is open.
_OPEN = "('new', 'open', 'pending', 'snoozed')"
#: A message a machine wrote (an out-of-office, a bounce) is no reply of the customer's.
_BY_A_PERSON = " AND ".join(f"' ' || m.flags || ' ' NOT LIKE '% {flag} %'" for flag in sorted(AUTOMATIC_FLAGS))
#: Conversations that count as contact with the customer: theirs (they wrote), not spam or machines.
_CONTACT = "c.merged_into IS NULL AND c.status != 'spam' AND c.automatic = 0 AND c.last_inbound_at IS NOT NULL"


class CheckInQueries:
    conn: Any

    def check_in_rated(self, *, resolved_since: str, min_score: int, team_ids: Iterable[int] | None,
                       limit: int = 500) -> list[dict[str, Any]]:
        """Answered surveys scoring `min_score` or more for conversations resolved since `resolved_since`,
        newest answer first, with the conversation's subject and channel."""
        clause, params = visible_clause(team_ids)
        return as_dicts(self.conn.execute(
            "SELECT s.id AS survey_id, s.score, s.answered_at, c.id AS conversation_id, c.subject, c.channel, "  # noqa: S608
            "c.resolved_at, cu.id AS customer_id, cu.display_name "
            "FROM csat_surveys s JOIN conversations c ON c.id = s.conversation_id "
            "JOIN customers cu ON cu.id = c.customer_id "
            "WHERE s.state = 'answered' AND s.score >= ? AND c.status = 'resolved' AND c.merged_into IS NULL "
            "AND c.resolved_at >= ? AND cu.merged_into IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.customer_id = cu.id AND o.status IN {_OPEN} "
            "AND o.merged_into IS NULL) "
            f"AND {clause} ORDER BY s.answered_at DESC, s.id DESC LIMIT ?",
            (min_score, resolved_since, *params, limit)))

    def check_in_quiet(self, *, quiet_before: str, min_conversations: int, team_ids: Iterable[int] | None,
                       limit: int = 500) -> list[dict[str, Any]]:
        """Customers whose last message to us came before `quiet_before`, after at least `min_conversations`
        conversations in the year up to it; the longest-standing first. Each with their latest
        conversation (`conversation_id`), when they last wrote (`last_at`) and how many (`conversations`)."""
        clause, params = visible_clause(team_ids)
        return as_dicts(self.conn.execute(
            "WITH last AS (SELECT c.customer_id, max(c.last_inbound_at) AS last_at FROM conversations c "  # noqa: S608
            f"WHERE {_CONTACT} GROUP BY c.customer_id) "
            "SELECT * FROM (SELECT cu.id AS customer_id, cu.display_name, l.last_at, "
            f"(SELECT c.id FROM conversations c WHERE c.customer_id = cu.id AND {_CONTACT} "
            " ORDER BY c.last_inbound_at DESC, c.id DESC LIMIT 1) AS conversation_id, "
            f"(SELECT count(*) FROM conversations c WHERE c.customer_id = cu.id AND {_CONTACT} "
            " AND c.last_inbound_at >= strftime('%Y-%m-%dT%H:%M:%f', l.last_at, '-365 days') || '000Z') "
            " AS conversations, "
            "(SELECT min(c.created_at) FROM conversations c WHERE c.customer_id = cu.id AND c.merged_into IS NULL) "
            " AS first_at "
            "FROM last l JOIN customers cu ON cu.id = l.customer_id "
            "WHERE l.last_at < ? AND cu.merged_into IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM conversations o WHERE o.customer_id = cu.id AND o.status IN {_OPEN} "
            "AND o.merged_into IS NULL) "
            f"AND {clause}) WHERE conversations >= ? ORDER BY first_at, customer_id LIMIT ?",
            (quiet_before, *params, min_conversations, limit)))

    def check_in_marks(self, customer_ids: Iterable[int]) -> list[dict[str, Any]]:
        """What was done with these customers' suggestions (started, skipped, snoozed), per basis."""
        ids = sorted({int(i) for i in customer_ids})
        if not ids:
            return []
        return as_dicts(self.conn.execute(
            "SELECT customer_id, basis, state, snoozed_until FROM check_ins "  # noqa: S608
            f"WHERE customer_id IN ({','.join('?' * len(ids))})", ids))

    def mark_check_in(self, *, customer_id: int, basis: str, rule: str, state: str, now: str, agent_id: int | None,
                      owner_id: int | None = None, snoozed_until: str | None = None,
                      conversation_id: int | None = None, channel: str | None = None) -> int:
        """Remember what was done with a suggestion (one row per customer and basis; a later action
        replaces an earlier one, e.g. a snoozed check-in that is started)."""
        return self.conn.execute(
            "INSERT INTO check_ins (customer_id, basis, rule, state, snoozed_until, conversation_id, owner_id, "
            "agent_id, channel, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (customer_id, basis) DO UPDATE SET state = excluded.state, "
            "snoozed_until = excluded.snoozed_until, conversation_id = excluded.conversation_id, "
            "owner_id = excluded.owner_id, agent_id = excluded.agent_id, channel = excluded.channel, "
            "updated_at = excluded.updated_at RETURNING id",
            (customer_id, basis, rule, state, snoozed_until, conversation_id, owner_id, agent_id, channel, now,
             now)).fetchone()[0]

    def started_check_ins(self, *, customer_id: int | None = None, team_ids: Iterable[int] | None = None,
                          owner_id: int | None = None, since: str | None = None, until: str | None = None,
                          limit: int = 50) -> list[dict[str, Any]]:
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
        return as_dicts(self.conn.execute(
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
            (*params, *team_params, limit)))

    def check_in_channels_used(self, customer_id: int) -> list[str]:
        """The channels the customer wrote to us on, the most recent first."""
        return [r[0] for r in self.conn.execute(
            "SELECT c.channel FROM conversations c WHERE c.customer_id = ? AND c.last_inbound_at IS NOT NULL "
            "AND c.merged_into IS NULL GROUP BY c.channel ORDER BY max(c.last_inbound_at) DESC, c.channel",
            (customer_id,))]
