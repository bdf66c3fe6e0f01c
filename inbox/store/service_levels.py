"""Store verbs for service levels and satisfaction surveys: the inputs of the clocks, the due times
stored on conversations, the notifications announced to leads, and the CSAT survey rows.

The status log and the "stale" mark (`sla_computed_at IS NULL`) are kept by triggers (migration
m007), so these verbs only read them; `save_service_levels` writes what inbox/service_levels.py
computed. Survey tokens are stored as their SHA-256 only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from inbox.store.base import as_dict, as_dicts

#: Columns `save_service_levels` may write (inbox.service_levels.due_columns()).
SLA_COLUMNS = (
    "sla_policy", "first_response_due_desired", "first_response_due_adequate", "next_response_due_desired",
    "next_response_due_adequate", "resolution_due_desired", "resolution_due_adequate", "sla_due_desired",
    "sla_due_adequate", "sla_paused_since", "sla_paused_seconds", "first_response_seconds", "first_response_level",
    "resolution_seconds", "resolution_level", "next_response_breaches", "resolved_at",
)

#: SQL ordering conversations most urgent first at the moment given as the named parameter :now.
URGENCY_ORDER = (
    "CASE WHEN c.status NOT IN ('new', 'open') OR c.sla_due_desired IS NULL THEN 3 "
    "WHEN c.sla_due_adequate <= :now THEN 0 WHEN c.sla_due_desired <= :now THEN 1 ELSE 2 END, "
    "ifnull(c.sla_due_desired, '~'), c.id"
)

_SURVEY_COLUMNS = (
    "s.id, s.conversation_id, s.channel, s.customer_id, s.agent_id, s.team_id, s.kind, s.state, s.message_id, "
    "s.first_response_seconds, s.asked_at, s.expires_at, s.score, s.comment, s.answered_at"
)


class ServiceLevelQueries:
    conn: Any
    write: Any

    # Clock inputs --------------------------------------------------------------------------------

    def stale_service_levels(self, limit: int = 500) -> list[int]:
        """Conversations whose due times must be recomputed (a message, status or team changed)."""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM conversations WHERE sla_computed_at IS NULL ORDER BY id LIMIT ?", (limit,))]

    def running_service_levels(self, now: str) -> list[int]:
        """Open conversations with an adequate due time that passed since they were last computed:
        their stored result ("missed") moved on with time alone."""
        passed = " OR ".join(
            f"(c.{m}_due_adequate <= :now AND c.sla_computed_at < c.{m}_due_adequate)"
            for m in ("first_response", "next_response", "resolution"))
        # `sla_due_adequate` is the earliest of the three due times, so it has passed whenever one has. In
        # the form of the queue_urgency index (NULL as '~', after every date) it keeps this query, run after
        # every ingest batch, from reading every open conversation: a big import slowed down with each (#16).
        return [r[0] for r in self.conn.execute(
            "SELECT c.id FROM conversations c WHERE c.status IN ('new', 'open') "  # noqa: S608
            f"AND ifnull(c.sla_due_adequate, '~') <= :now AND ({passed}) ORDER BY c.id", {"now": now})]

    def outdated_service_levels(self, computed_until: str, after_id: int = 0, limit: int = 500) -> list[int]:
        """Conversations still open (new, open, pending, snoozed) whose due times were computed at or
        before `computed_until` (a policy change), by id above `after_id`: one bounded batch at a time."""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM conversations WHERE status IN ('new', 'open', 'pending', 'snoozed') "
            "AND sla_computed_at IS NOT NULL AND sla_computed_at <= ? AND id > ? ORDER BY id LIMIT ?",
            (computed_until, after_id, limit))]

    def service_level_inputs(self, conversation_id: int) -> dict[str, Any] | None:
        """What the clocks of one conversation are computed from: the row, its messages and status log."""
        cur = self.conn.execute(
            "SELECT c.id, c.channel, c.priority, c.status, c.automatic, c.created_at, c.team_id, "
            "t.name AS team_name FROM conversations c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?",
            (conversation_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            return None
        row["messages"] = as_dicts(self.conn.execute(
            "SELECT direction, received_at, flags FROM messages WHERE conversation_id = ? "
            "AND direction IN ('in', 'out') ORDER BY received_at, id", (conversation_id,)))
        row["status_log"] = as_dicts(self.conn.execute(
            "SELECT at, old_status, new_status FROM conversation_status_log WHERE conversation_id = ? "
            "ORDER BY at, id", (conversation_id,)))
        return row

    def save_service_levels(self, conversation_id: int, columns: Mapping[str, Any], now: str) -> None:
        """Store computed due times and results; marks the conversation as up to date."""
        names = [c for c in SLA_COLUMNS if c in columns]
        assignments = ", ".join(f"{c} = ?" for c in names)
        self.conn.execute(
            f"UPDATE conversations SET {assignments}, sla_computed_at = ? WHERE id = ?",  # noqa: S608
            [columns[c] for c in names] + [now, conversation_id])

    # Lead notifications --------------------------------------------------------------------------

    def sla_due_for_notice(self, until: str, since: str) -> list[dict[str, Any]]:
        """Running clocks whose adequate due time lies between `since` and `until`, per metric."""
        rows = []
        for metric in ("first_response", "next_response", "resolution"):
            rows += as_dicts(self.conn.execute(
                f"SELECT c.id AS conversation_id, c.team_id, c.subject, '{metric}' AS metric, "  # noqa: S608
                f"c.{metric}_due_adequate AS due_at FROM conversations c WHERE c.status IN ('new', 'open') "
                f"AND c.{metric}_due_adequate IS NOT NULL AND c.{metric}_due_adequate <= ? "
                f"AND c.{metric}_due_adequate > ?", (until, since)))
        return rows

    def record_sla_notice(self, conversation_id: int, metric: str, kind: str, due_at: str, now: str) -> bool:
        """Remember that this warning or breach was announced; False if it already was."""
        cur = self.conn.execute(
            "INSERT INTO sla_notifications (conversation_id, metric, kind, due_at, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (conversation_id, metric, kind, due_at, now))
        return bool(cur.rowcount)

    def set_sla_notice_count(self, conversation_id: int, metric: str, kind: str, due_at: str, count: int) -> None:
        self.conn.execute(
            "UPDATE sla_notifications SET notified = ? WHERE conversation_id = ? AND metric = ? AND kind = ? "
            "AND due_at = ?", (count, conversation_id, metric, kind, due_at))

    def sla_notices(self, conversation_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT metric, kind, due_at, notified, created_at FROM sla_notifications WHERE conversation_id = ? "
            "ORDER BY id", (conversation_id,)))

    def leads_for_team(self, team_id: int | None) -> list[int]:
        """Active leads of the team; when it has none (or there is no team), every active lead."""
        if team_id is not None:
            ids = [r[0] for r in self.conn.execute(
                "SELECT a.id FROM agents a JOIN team_members tm ON tm.agent_id = a.id "
                "WHERE tm.team_id = ? AND a.role = 'lead' AND a.active = 1 ORDER BY a.id", (team_id,))]
            if ids:
                return ids
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM agents WHERE role = 'lead' AND active = 1 ORDER BY id")]

    def managers(self) -> list[dict[str, Any]]:
        """Active managers: who receives the weekly digest."""
        return as_dicts(self.conn.execute(
            "SELECT id, email, name, locale FROM agents WHERE role = 'manager' AND active = 1 ORDER BY id"))

    # Satisfaction surveys ------------------------------------------------------------------------

    def survey_candidates(self, resolved_before: str, resolved_after: str, limit: int = 100) -> list[dict[str, Any]]:
        """Resolved conversations without a survey that we answered, resolved in the window, with what
        decides whether a survey may go: the flags of the customer's last message and the reply agent."""
        return as_dicts(self.conn.execute(
            "SELECT c.id, c.channel, c.customer_id, c.assignee_id, c.team_id, c.public, c.automatic, c.flags, "
            "c.resolved_at, c.first_response_seconds, cu.locale AS customer_locale, cu.display_name, "
            "(SELECT m.flags FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in' "
            " ORDER BY m.id DESC LIMIT 1) AS last_inbound_flags, "
            "(SELECT m.author_handle FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in' "
            " ORDER BY m.id DESC LIMIT 1) AS customer_handle, "
            "(SELECT m.agent_id FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'out' "
            " AND m.agent_id IS NOT NULL ORDER BY m.id DESC LIMIT 1) AS last_reply_agent_id "
            "FROM conversations c JOIN customers cu ON cu.id = c.customer_id "
            "WHERE c.status = 'resolved' AND c.resolved_at IS NOT NULL AND c.resolved_at <= ? AND c.resolved_at > ? "
            "AND c.first_response_seconds IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM csat_surveys s WHERE s.conversation_id = c.id) "
            "ORDER BY c.resolved_at LIMIT ?", (resolved_before, resolved_after, limit)))

    def create_survey(self, *, conversation_id: int, channel: str, customer_id: int, agent_id: int | None,
                      team_id: int | None, kind: str, token_hash: str | None, message_id: int | None,
                      first_response_seconds: float | None, asked_at: str, expires_at: str) -> int | None:
        """A survey row; None when the conversation already has one (at most one per conversation)."""
        cur = self.conn.execute(
            "INSERT INTO csat_surveys (conversation_id, channel, customer_id, agent_id, team_id, kind, token_hash, "
            "message_id, first_response_seconds, asked_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (conversation_id) DO NOTHING",
            (conversation_id, channel, customer_id, agent_id, team_id, kind, token_hash, message_id,
             first_response_seconds, asked_at, expires_at))
        return cur.lastrowid if cur.rowcount else None

    def survey_by_token_hash(self, token_hash: str) -> dict[str, Any] | None:
        cur = self.conn.execute(f"SELECT {_SURVEY_COLUMNS}, c.subject FROM csat_surveys s "  # noqa: S608
                                "JOIN conversations c ON c.id = s.conversation_id WHERE s.token_hash = ?",
                                (token_hash,))
        return as_dict(cur, cur.fetchone())

    def survey_for_conversation(self, conversation_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute(f"SELECT {_SURVEY_COLUMNS} FROM csat_surveys s WHERE s.conversation_id = ?",  # noqa: S608
                                (conversation_id,))
        return as_dict(cur, cur.fetchone())

    def open_chat_survey(self, channel: str, customer_id: int, conversation_ids: Iterable[int | None],
                         thread_key: str | None, now: str) -> dict[str, Any] | None:
        """An unanswered, unexpired chat survey this customer may be answering: in one of
        `conversation_ids`, or in their latest conversation on this chat thread."""
        ids = [i for i in conversation_ids if i is not None]
        clauses, params = [], []
        if ids:
            clauses.append(f"s.conversation_id IN ({','.join('?' * len(ids))})")
            params += ids
        if thread_key:
            clauses.append("s.conversation_id = (SELECT max(id) FROM conversations WHERE channel = ? "
                           "AND thread_key = ? AND customer_id = ?)")
            params += [channel, thread_key, customer_id]
        if not clauses:
            return None
        cur = self.conn.execute(
            f"SELECT {_SURVEY_COLUMNS} FROM csat_surveys s WHERE s.kind = 'chat' AND s.state = 'asked' "  # noqa: S608
            f"AND s.channel = ? AND s.customer_id = ? AND s.expires_at > ? AND ({' OR '.join(clauses)}) "
            "ORDER BY s.id DESC LIMIT 1", (channel, customer_id, now, *params))
        return as_dict(cur, cur.fetchone())

    def answer_survey(self, survey_id: int, score: int, comment: str | None, now: str,
                      answer_message_id: int | None = None) -> bool:
        """Record the answer; False when the survey was already answered or has expired (single use)."""
        cur = self.conn.execute(
            "UPDATE csat_surveys SET state = 'answered', score = ?, comment = ?, answered_at = ?, "
            "answer_message_id = ?, token_hash = NULL WHERE id = ? AND state = 'asked' AND expires_at > ?",
            (score, comment, now, answer_message_id, survey_id, now))
        return bool(cur.rowcount)

    def expire_surveys(self, now: str) -> int:
        cur = self.conn.execute(
            "UPDATE csat_surveys SET state = 'expired', token_hash = NULL WHERE state = 'asked' AND expires_at <= ?",
            (now,))
        return cur.rowcount

    def surveys(self, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
        """Surveys asked in [since, until), for reports and tests."""
        return as_dicts(self.conn.execute(
            f"SELECT {_SURVEY_COLUMNS} FROM csat_surveys s WHERE s.asked_at >= ? AND s.asked_at < ? "  # noqa: S608
            "ORDER BY s.id", (since or "", until or "~")))

    def set_message_flags(self, message_id: int, flags: str) -> None:
        self.conn.execute("UPDATE messages SET flags = ? WHERE id = ?", (flags, message_id))

    def customer_erased(self, customer_id: int) -> bool:
        """Whether the customer's personal data was erased (no survey may go to them)."""
        row = self.conn.execute(
            "SELECT count(*) FROM identities WHERE customer_id = ? AND valid = 1", (customer_id,)).fetchone()
        # Erasure removes a customer's identities: nobody left to ask.
        return not row[0]
