"""Review before sending: trainees' replies held until a lead approves or returns them:
`store.review`, rows as `ReviewItem` and `ReviewStats`.

A held reply is a `review_items` row, not yet a message: nothing of it reaches the outbox, the
thread or the service-level clocks until it is approved, so the time it spends in review counts
against the first- or next-response target like any other wait. Decisions are conditional on
the item still pending, so two leads cannot both approve one reply.

A concern in the shape #17 asks for: an object the store holds (`store.review`) with typed rows at
its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.store.base import NotFound
from inbox.store.teams import team_clause

if TYPE_CHECKING:
    from inbox.store import Store

_ITEM = (
    "SELECT r.id, r.conversation_id, r.agent_id, r.text, r.html, r.state, r.created_at, r.reviewer_id, "
    "r.decided_at, r.review_seconds, r.comment, r.final_text, r.edited, r.outbox_id, c.subject, c.channel, "
    "c.team_id, a.name AS agent_name, a.email AS agent_email, v.name AS reviewer_name "
    "FROM review_items r JOIN conversations c ON c.id = r.conversation_id JOIN agents a ON a.id = r.agent_id "
    "LEFT JOIN agents v ON v.id = r.reviewer_id"
)


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A held reply with its conversation's subject, channel and team, its writer and its reviewer.

    `state` is 'pending_review', 'approved' or 'returned'; the decision's fields are None while pending.
    `final_text` is the lead's edit (when `edited`), `outbox_id` where the approved reply went.
    """

    id: int
    conversation_id: int
    agent_id: int
    text: str
    html: str | None
    state: str
    created_at: str
    reviewer_id: int | None
    decided_at: str | None
    review_seconds: float | None
    comment: str | None
    final_text: str | None
    edited: bool
    outbox_id: str | None
    subject: str | None
    channel: str
    team_id: int | None
    agent_name: str | None
    agent_email: str
    reviewer_name: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ReviewItem:
        values = list(row)
        values[12] = bool(values[12])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class ReviewStats:
    """One agent's decided replies: how many reviewed, approved, approved after an edit and returned,
    and the average and longest time in review (seconds)."""

    agent_id: int
    reviewed: int
    approved: int
    edited: int
    returned: int
    avg_seconds: float | None
    max_seconds: float | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ReviewStats:
        return cls(*row)


class Review:
    """`store.review`: the held replies, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def is_trainee(self, agent_id: int | None) -> bool:
        """Whether replies by this agent are held for review."""
        if agent_id is None:
            return False
        row = self._store.conn.execute("SELECT trainee FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return bool(row and row[0])

    def hold(self, *, conversation_id: int, agent_id: int, text: str, html: str | None, now: str) -> int:
        """Hold a reply for review; returns the item's id."""
        with self._store.write():
            return self._store.conn.execute(
                "INSERT INTO review_items (conversation_id, agent_id, text, html, created_at) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, agent_id, text, html, now)).lastrowid

    def item(self, item_id: int) -> ReviewItem:
        row = self._store.conn.execute(f"{_ITEM} WHERE r.id = ?", (item_id,)).fetchone()  # noqa: S608
        if row is None:
            raise NotFound(f"no review item {item_id}")
        return ReviewItem.from_row(row)

    def items(self, team_ids: Iterable[int] | None, *, state: str = "pending_review",
              limit: int = 200) -> list[ReviewItem]:
        """Items in `state` of conversations the reader may see, oldest first for pending ones."""
        clause, params = team_clause(team_ids)
        order = "r.created_at, r.id" if state == "pending_review" else "r.decided_at DESC, r.id DESC"
        return [ReviewItem.from_row(row) for row in self._store.conn.execute(
            f"{_ITEM} WHERE r.state = ? AND {clause} ORDER BY {order} LIMIT ?",  # noqa: S608
            [state, *params, limit]).fetchall()]

    def of_agent(self, agent_id: int, *, limit: int = 200) -> list[ReviewItem]:
        """An agent's reviewed and pending replies, newest first: the feedback kept with their record."""
        return [ReviewItem.from_row(row) for row in self._store.conn.execute(
            f"{_ITEM} WHERE r.agent_id = ? ORDER BY r.id DESC LIMIT ?", (agent_id, limit)).fetchall()]  # noqa: S608

    def of_conversation(self, conversation_id: int, *, pending_only: bool = True) -> list[ReviewItem]:
        """The items of one conversation in id order (only the pending ones unless `pending_only` is False)."""
        extra = " AND r.state = 'pending_review'" if pending_only else ""
        return [ReviewItem.from_row(row) for row in self._store.conn.execute(
            f"{_ITEM} WHERE r.conversation_id = ?{extra} ORDER BY r.id", (conversation_id,)).fetchall()]  # noqa: S608

    def count_pending(self, team_ids: Iterable[int] | None) -> int:
        clause, params = team_clause(team_ids)
        return self._store.conn.execute(
            "SELECT count(*) FROM review_items r JOIN conversations c ON c.id = r.conversation_id "  # noqa: S608
            f"WHERE r.state = 'pending_review' AND {clause}", params).fetchone()[0]

    def decide(self, item_id: int, *, state: str, reviewer_id: int, now: str, review_seconds: float,
               comment: str | None = None, final_text: str | None = None, edited: bool = False,
               outbox_id: str | None = None) -> bool:
        """Approve or return a pending item; False when it was no longer pending."""
        if state not in ("approved", "returned"):
            raise ValueError(f"cannot decide a review as {state!r}")
        with self._store.write():
            cur = self._store.conn.execute(
                "UPDATE review_items SET state = ?, reviewer_id = ?, decided_at = ?, review_seconds = ?, comment = ?, "
                "final_text = ?, edited = ?, outbox_id = ? WHERE id = ? AND state = 'pending_review'",
                (state, reviewer_id, now, review_seconds, comment, final_text, int(edited), outbox_id, item_id))
            return bool(cur.rowcount)

    def stats(self, agent_ids: Iterable[int] | None = None) -> dict[int, ReviewStats]:
        """Per agent: replies reviewed, approved, edited, returned, and the average time in review (s)."""
        where, params = "", []
        if agent_ids is not None:
            ids = sorted(set(agent_ids)) or [-1]
            where = f" AND agent_id IN ({','.join('?' * len(ids))})"
            params = ids
        rows = self._store.conn.execute(
            "SELECT agent_id, count(*) AS reviewed, sum(CASE WHEN state = 'approved' THEN 1 ELSE 0 END) AS approved, "  # noqa: S608
            "sum(CASE WHEN state = 'approved' AND edited = 1 THEN 1 ELSE 0 END) AS edited, sum(CASE WHEN state = 'returned' THEN 1 ELSE 0 END) AS returned, "
            "avg(review_seconds) AS avg_seconds, max(review_seconds) AS max_seconds FROM review_items "
            f"WHERE state != 'pending_review'{where} GROUP BY agent_id", params).fetchall()
        return {row[0]: ReviewStats.from_row(row) for row in rows}
