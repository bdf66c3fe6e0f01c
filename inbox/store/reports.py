"""Store verbs for the reports and the weekly digest: the rows behind every figure of a period.

The figures themselves are computed in inbox/reports.py from these rows, so that a figure and the
CSV export of the conversations behind it come from the same rows and cannot disagree. Periods
are half-open, [start, end), in stored UTC text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inbox.store.base import as_dicts

#: The backlog: conversations still to be finished, people's only.
_BACKLOG = "c.status IN ('new', 'open', 'pending', 'snoozed') AND c.automatic = 0"
#: Its partial index (m043), named because the planner prefers walking a status index and reading each
#: row: the index alone holds every column its counts and its median age need.
_BACKLOG_INDEX = "INDEXED BY conversations_backlog"

#: Statuses in which a customer may be waiting for our answer.
_WAITING_STATUSES = ("new", "open")

_CONVERSATION_COLUMNS = (
    "c.id, c.channel, c.subject, c.status, c.priority, c.created_at, c.first_response_at, c.resolved_at, "
    "c.sla_policy, c.first_response_seconds, c.first_response_level, c.first_response_due_adequate, "
    "c.resolution_seconds, c.resolution_level, c.resolution_due_adequate, c.next_response_breaches, "
    "c.next_response_due_adequate, c.sla_due_desired, c.sla_due_adequate, c.team_id, t.name AS team_name, "
    "cu.display_name AS customer_name, "
    "coalesce(c.assignee_id, (SELECT r.agent_id FROM messages r WHERE r.conversation_id = c.id "
    " AND r.direction = 'out' AND r.agent_id IS NOT NULL ORDER BY r.id LIMIT 1)) AS agent_id, "
    "s.score AS csat_score, s.comment AS csat_comment, s.answered_at AS csat_answered_at, "
    # Who sent the first response: the first reply that stops the first-response clock (survey mail does not).
    "(SELECT f.agent_id FROM messages f WHERE f.conversation_id = c.id AND f.direction = 'out' "
    " AND ' ' || f.flags || ' ' NOT LIKE '% survey %' ORDER BY f.received_at, f.id LIMIT 1) AS first_responder_id"
)

_JOINS = (
    "FROM conversations c JOIN customers cu ON cu.id = c.customer_id LEFT JOIN teams t ON t.id = c.team_id "
    "LEFT JOIN csat_surveys s ON s.conversation_id = c.id AND s.state = 'answered'"
)


class ReportQueries:
    conn: Any

    def report_conversations(self, start: str, end: str) -> list[dict[str, Any]]:
        """Conversations that began in the period, people's only (no spam, no machine-started ones)."""
        return as_dicts(self.conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} {_JOINS} "  # noqa: S608
            "WHERE c.created_at >= ? AND c.created_at < ? AND c.status != 'spam' AND c.automatic = 0 "
            "ORDER BY c.created_at, c.id", (start, end)))

    def report_surveys(self, start: str, end: str) -> list[dict[str, Any]]:
        """Survey answers given in the period, with their conversation's columns."""
        return as_dicts(self.conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS}, s.agent_id AS survey_agent_id, s.team_id AS survey_team_id, "  # noqa: S608
            "s.first_response_seconds AS survey_first_response_seconds "
            f"{_JOINS} WHERE s.answered_at >= ? AND s.answered_at < ? ORDER BY s.answered_at, c.id",
            (start, end)))

    def report_surveys_asked(self, start: str, end: str) -> dict[str, int]:
        """Surveys asked in the period, per channel (the denominator of the response rate)."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT channel, count(*) FROM csat_surveys WHERE asked_at >= ? AND asked_at < ? GROUP BY channel",
            (start, end))}

    def report_backlog(self) -> list[dict[str, Any]]:
        """Every conversation still to be finished, with every column of the CSV export and since
        when its customer has been waiting (as stored, kept by the m004 triggers)."""
        return as_dicts(self.conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS}, c.waiting_since {_JOINS} "  # noqa: S608
            f"WHERE {_BACKLOG} ORDER BY c.created_at"))

    def report_backlog_counts(self, age_since: Sequence[tuple[str, str]], older: str) -> list[dict[str, Any]]:
        """The backlog counted by status, channel, age and whether the customer waits for us, in the
        database: its figures need no row of it (a busy inbox has tens of thousands open).

        `age_since` is (key, stored time) from the youngest bucket on: a conversation begun after
        the time falls in that bucket, one begun before every one of them in `older`."""
        ages = " ".join("WHEN c.created_at > ? THEN ?" for _ in age_since)
        return as_dicts(self.conn.execute(
            f"SELECT c.status, c.channel, CASE {ages} ELSE ? END AS age, "  # noqa: S608
            "c.status IN ('new', 'open') AND c.waiting_since IS NOT NULL AS waiting, count(*) AS conversations "
            f"FROM conversations c {_BACKLOG_INDEX} WHERE {_BACKLOG} GROUP BY 1, 2, 3, 4",
            [value for key, since in age_since for value in (since, key)] + [older]))

    def report_backlog_middle(self, count: int) -> list[str]:
        """When the middle conversation(s) of the backlog by age began: one of an odd `count`, two of
        an even one (their median age is the mean of both)."""
        if count <= 0:
            return []
        return [r[0] for r in self.conn.execute(
            f"SELECT c.created_at FROM conversations c {_BACKLOG_INDEX} WHERE {_BACKLOG} "  # noqa: S608
            "ORDER BY c.created_at LIMIT ? OFFSET ?", (2 - count % 2, (count - 1) // 2))]

    def report_longest_waiting(self, limit: int) -> list[dict[str, Any]]:
        """The customers of the backlog who have waited longest for our answer, longest first."""
        # Per status, the queue's waiting-time index (queue_waiting: NULL as '~') in order: the first
        # few of each instead of sorting every open conversation.
        oldest = " UNION ALL ".join(
            "SELECT id FROM (SELECT c.id FROM conversations c WHERE c.status = ? "
            "AND ifnull(c.waiting_since, '~') < '~' AND c.automatic = 0 "
            "ORDER BY ifnull(c.waiting_since, '~'), c.created_at, c.id LIMIT ?) AS oldest" for _ in _WAITING_STATUSES)
        return as_dicts(self.conn.execute(
            "SELECT c.id, c.channel, c.subject, c.created_at, c.waiting_since, "  # noqa: S608
            "cu.display_name AS customer_name FROM conversations c JOIN customers cu ON cu.id = c.customer_id "
            f"WHERE c.id IN ({oldest}) ORDER BY c.waiting_since, c.created_at, c.id LIMIT ?",
            [value for status in _WAITING_STATUSES for value in (status, limit)] + [limit]))

    def report_replies(self, start: str, end: str) -> dict[int, int]:
        """Replies sent by each agent in the period (surveys and other automatic messages excluded)."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT agent_id, count(*) FROM messages WHERE direction = 'out' AND agent_id IS NOT NULL "
            "AND received_at >= ? AND received_at < ? AND ' ' || flags || ' ' NOT LIKE '% auto_submitted %' "
            "GROUP BY agent_id", (start, end))}

    def report_data_version(self) -> tuple:
        """Changes whenever what a report counts changes: a message, a conversation's status, team,
        assignee or subject (conversation_changes, kept by triggers), a survey asked or answered,
        an agent or team added. Counts go with the maxima so that a deletion changes it too."""
        return tuple(self.conn.execute(
            "SELECT (SELECT count(*) || ':' || ifnull(max(seq), 0) FROM conversation_changes), "
            "(SELECT count(*) FROM csat_surveys), "
            "(SELECT max(answered_at) FROM csat_surveys WHERE answered_at IS NOT NULL), "
            "(SELECT count(*) || ':' || ifnull(max(id), 0) FROM agents), "
            "(SELECT count(*) || ':' || ifnull(max(id), 0) FROM teams)").fetchone())

    def report_people(self) -> tuple[dict[int, str], dict[int, str]]:
        """Names of agents and teams by id."""
        agents = {r[0]: r[1] or r[2] for r in self.conn.execute("SELECT id, name, email FROM agents")}
        teams = {r[0]: r[1] for r in self.conn.execute("SELECT id, name FROM teams")}
        return agents, teams

    # The digest archive --------------------------------------------------------------------------

    def save_digest(self, *, week: str, period_start: str, period_end: str, subject: str, html: str, text: str,
                    figures: str, images: dict[str, bytes], now: str) -> None:
        """Archive a digest (a week generated again replaces the earlier version)."""
        self.conn.execute("DELETE FROM digest_images WHERE week = ?", (week,))
        self.conn.execute(
            "INSERT INTO digests (week, period_start, period_end, subject, html, text, figures, generated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (week) DO UPDATE SET period_start = excluded.period_start, "
            "period_end = excluded.period_end, subject = excluded.subject, html = excluded.html, "
            "text = excluded.text, figures = excluded.figures, generated_at = excluded.generated_at",
            (week, period_start, period_end, subject, html, text, figures, now))
        for name, png in images.items():
            self.conn.execute("INSERT INTO digest_images (week, name, png) VALUES (?, ?, ?)", (week, name, png))

    def mark_digest_sent(self, week: str, recipients: list[str], now: str | None, error: str | None) -> None:
        self.conn.execute("UPDATE digests SET sent_at = ?, recipients = ?, send_error = ? WHERE week = ?",
                          (now, " ".join(recipients), error, week))

    def digest(self, week: str) -> dict[str, Any] | None:
        rows = as_dicts(self.conn.execute("SELECT * FROM digests WHERE week = ?", (week,)))
        return rows[0] if rows else None

    def digests(self) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT week, period_start, period_end, subject, generated_at, sent_at, recipients, send_error "
            "FROM digests ORDER BY week DESC"))

    def digest_image(self, week: str, name: str) -> bytes | None:
        row = self.conn.execute("SELECT png FROM digest_images WHERE week = ? AND name = ?", (week, name)).fetchone()
        return row[0] if row else None

    def digest_image_names(self, week: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM digest_images WHERE week = ? ORDER BY name",
                                                (week,))]
