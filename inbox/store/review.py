"""Store verbs for review before sending: trainees' replies held until a lead approves or returns them.

A held reply is a `review_items` row, not yet a message: nothing of it reaches the outbox, the
thread or the service-level clocks until it is approved, so the time it spends in review counts
against the first- or next-response target like any other wait. Decisions are conditional on
the item still pending, so two leads cannot both approve one reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inbox.store.base import NotFound, as_dict, as_dicts
from inbox.store.teams import team_clause

_ITEM = (
    "SELECT r.id, r.conversation_id, r.agent_id, r.text, r.html, r.state, r.created_at, r.reviewer_id, "
    "r.decided_at, r.review_seconds, r.comment, r.final_text, r.edited, r.outbox_id, c.subject, c.channel, "
    "c.team_id, a.name AS agent_name, a.email AS agent_email, v.name AS reviewer_name "
    "FROM review_items r JOIN conversations c ON c.id = r.conversation_id JOIN agents a ON a.id = r.agent_id "
    "LEFT JOIN agents v ON v.id = r.reviewer_id"
)


class ReviewQueries:
    conn: Any
    write: Any

    def is_trainee(self, agent_id: int | None) -> bool:
        if agent_id is None:
            return False
        row = self.conn.execute("SELECT trainee FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return bool(row and row[0])

    def hold_for_review(self, *, conversation_id: int, agent_id: int, text: str, html: str | None, now: str) -> int:
        with self.write():
            return self.conn.execute(
                "INSERT INTO review_items (conversation_id, agent_id, text, html, created_at) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, agent_id, text, html, now)).lastrowid

    def review_item(self, item_id: int) -> dict[str, Any]:
        cur = self.conn.execute(f"{_ITEM} WHERE r.id = ?", (item_id,))  # noqa: S608
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no review item {item_id}")
        return row

    def review_items(self, team_ids: Iterable[int] | None, *, state: str = "pending_review",
                     limit: int = 200) -> list[dict[str, Any]]:
        """Items in `state` of conversations the reader may see, oldest first for pending ones."""
        clause, params = team_clause(team_ids)
        order = "r.created_at, r.id" if state == "pending_review" else "r.decided_at DESC, r.id DESC"
        return as_dicts(self.conn.execute(
            f"{_ITEM} WHERE r.state = ? AND {clause} ORDER BY {order} LIMIT ?",  # noqa: S608
            [state, *params, limit]))

    def agent_review_items(self, agent_id: int, *, limit: int = 200) -> list[dict[str, Any]]:
        """An agent's reviewed and pending replies, newest first: the feedback kept with their record."""
        return as_dicts(self.conn.execute(f"{_ITEM} WHERE r.agent_id = ? ORDER BY r.id DESC LIMIT ?",  # noqa: S608
                                          (agent_id, limit)))

    def conversation_review_items(self, conversation_id: int, *, pending_only: bool = True) -> list[dict[str, Any]]:
        extra = " AND r.state = 'pending_review'" if pending_only else ""
        return as_dicts(self.conn.execute(
            f"{_ITEM} WHERE r.conversation_id = ?{extra} ORDER BY r.id", (conversation_id,)))  # noqa: S608

    def count_pending_reviews(self, team_ids: Iterable[int] | None) -> int:
        clause, params = team_clause(team_ids)
        return self.conn.execute(
            "SELECT count(*) FROM review_items r JOIN conversations c ON c.id = r.conversation_id "  # noqa: S608
            f"WHERE r.state = 'pending_review' AND {clause}", params).fetchone()[0]

    def decide_review(self, item_id: int, *, state: str, reviewer_id: int, now: str, review_seconds: float,
                      comment: str | None = None, final_text: str | None = None, edited: bool = False,
                      outbox_id: str | None = None) -> bool:
        """Approve or return a pending item; False when it was no longer pending."""
        if state not in ("approved", "returned"):
            raise ValueError(f"cannot decide a review as {state!r}")
        with self.write():
            cur = self.conn.execute(
                "UPDATE review_items SET state = ?, reviewer_id = ?, decided_at = ?, review_seconds = ?, comment = ?, "
                "final_text = ?, edited = ?, outbox_id = ? WHERE id = ? AND state = 'pending_review'",
                (state, reviewer_id, now, review_seconds, comment, final_text, int(edited), outbox_id, item_id))
            return bool(cur.rowcount)

    def review_stats(self, agent_ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        """Per agent: replies reviewed, approved, edited, returned, and the average time in review (s)."""
        where, params = "", []
        if agent_ids is not None:
            ids = sorted(set(agent_ids)) or [-1]
            where = f" AND agent_id IN ({','.join('?' * len(ids))})"
            params = ids
        rows = as_dicts(self.conn.execute(
            "SELECT agent_id, count(*) AS reviewed, sum(CASE WHEN state = 'approved' THEN 1 ELSE 0 END) AS approved, "  # noqa: S608
            "sum(CASE WHEN state = 'approved' AND edited = 1 THEN 1 ELSE 0 END) AS edited, sum(CASE WHEN state = 'returned' THEN 1 ELSE 0 END) AS returned, "
            "avg(review_seconds) AS avg_seconds, max(review_seconds) AS max_seconds FROM review_items "
            f"WHERE state != 'pending_review'{where} GROUP BY agent_id", params))
        return {r["agent_id"]: r for r in rows}
