"""Review before sending: a trainee's reply waits for a lead, who approves, edits or returns it.

`inbox.outbox.queue_reply` calls `hold_reply` instead of queueing when the replying agent is
marked as a trainee. The held reply is not a message yet, so nothing is sent, the thread shows it
only as "waiting for review" (never as a sent reply) and the response clocks keep running: time in review counts against the
service level like any other wait, and is recorded per item (`review_seconds`) for the reports.

- `approve` queues the reply (possibly edited by the lead) through the outbox as the trainee's
  reply, at the moment of approval, under the same rule as any reply (inbox/sendability.py: the
  loop guard, the reply window, the channel's length...), checked again at that moment;
- `return_reply` sends it back with a comment; the trainee sees it on their review page and
  writes a better one.

Every decision stays with the trainee's record (`store.review.of_agent`): the feedback is
how they learn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inbox import clock, sendability
from inbox.channel_format import to_html
from inbox.store import Store
from inbox.store.base import iso, parse_iso
from inbox.store.review import ReviewItem

#: Prefix of the id `queue_reply` returns for a reply held for review (instead of an outbox id).
HELD_PREFIX = "review:"
MAX_COMMENT_CHARS = 4000


class ReviewError(Exception):
    """The review item cannot be decided (already decided, empty text, nothing to answer)."""


class NotSendable(ReviewError):
    """The approved reply may not go out now (inbox/sendability.py): `decision.reason` says why."""

    def __init__(self, decision: sendability.Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


@dataclass
class Outcome:
    item_id: int
    state: str
    outbox_id: str | None
    review_seconds: float


def needs_review(store: Store, agent: dict[str, Any] | None) -> bool:
    """Whether replies by `agent` are held for review (trainees)."""
    return bool(agent and agent.get("id") is not None and store.review.is_trainee(agent["id"]))


def hold_reply(store: Store, conversation_id: int, text: str, *, agent: dict[str, Any], html: str | None = None,
               now: dt.datetime | None = None, files: list[dict[str, Any]] | None = None,
               cc: Sequence[str] = (), bcc: Sequence[str] = ()) -> str:
    """Hold a trainee's reply for review; returns "review:<item id>". Its `files` (already in the
    attachment store) are kept with it and go out when it is approved."""
    now = now or clock.now()
    with store.write():
        item_id = store.review.hold(conversation_id=conversation_id, agent_id=agent["id"], text=text, html=html,
                                  now=iso(now))
        store.hold_review_files(item_id, files or [])
        store.hold_review_copies(item_id, cc, bcc)
        store.audit(iso(now), f"agent:{agent['id']}", "reply_held_for_review", "conversation", conversation_id,
                    item=item_id)
    return f"{HELD_PREFIX}{item_id}"


def is_held(queued_id: str | None) -> bool:
    """Whether an id returned by `queue_reply` names a held reply rather than an outbox row."""
    return bool(queued_id) and str(queued_id).startswith(HELD_PREFIX)


def _seconds(item: ReviewItem, now: dt.datetime) -> float:
    held_at = parse_iso(item.created_at) or now
    return max((now - held_at).total_seconds(), 0.0)


def _html_for(item: ReviewItem, final: str, edited: bool) -> str | None:
    """The HTML part of the approved reply: the held one, or (edited) made again from the lead's text
    the way the composer made it, so an edited mail keeps its formatting."""
    if not item.html:
        return None
    return to_html(final) if edited else item.html


def sendable(mainland: Any, store: Store, item: ReviewItem, *, text: str | None = None,
             outside_window: bool = False, now: dt.datetime | None = None) -> sendability.Decision:
    """Whether the held reply (or the reviewer's edit of it) may go out now, and where: the same
    rule as an agent's reply, at the moment of approval (the window may have closed meanwhile)."""
    conversation = store.conversation(item.conversation_id)
    return sendability.decide(mainland, store, conversation, kind=sendability.REVIEW_APPROVAL,
                              text=text if text is not None else item.text, outside_window=outside_window,
                              now=now)


def _not_own(item: ReviewItem, reviewer: dict[str, Any]) -> None:
    # A lead who is a trainee has their replies held like anyone's: someone else decides on them.
    if item.agent_id == reviewer["id"]:
        raise ReviewError("a reply cannot be reviewed by its writer")


def approve(mainland: Any, store: Store, item_id: int, *, reviewer: dict[str, Any], text: str | None = None,
            now: dt.datetime | None = None, outside_window: bool = False) -> Outcome:
    """Send the held reply (as edited by the reviewer, if `text` differs) through the outbox, if
    `inbox.sendability` allows it (NotSendable otherwise; `outside_window`: the reviewer accepts a
    closed reply window)."""
    from inbox.outbox import ReplyRefused, load_files, queue_reply

    now = now or clock.now()
    item = store.review.item(item_id)
    if item.state != "pending_review":
        raise ReviewError("this reply was already reviewed")
    _not_own(item, reviewer)
    final = (text if text is not None else item.text).replace("\r\n", "\n")
    files = load_files(mainland.attachment_store(), store.review_files(item_id))
    if not final.strip() and not files:
        raise ReviewError("the reply is empty")
    edited = final != item.text
    author = store.agent(item.agent_id) or {"id": item.agent_id, "name": ""}
    seconds = _seconds(item, now)
    copies = store.review_copies(item_id)
    with store.write():
        decision = sendable(mainland, store, item, text=final, outside_window=outside_window, now=now)
        if not decision.allowed:
            raise NotSendable(decision)
        try:
            outbox_id = queue_reply(mainland, store, item.conversation_id, final,
                                    agent={"id": author["id"], "name": author["name"]},
                                    html=_html_for(item, final, edited), now=now, reviewed=True,
                                    target=decision.target, files=files, cc=copies[0], bcc=copies[1])
        except ReplyRefused as exc:
            raise ReviewError(str(exc)) from exc
        if not store.review.decide(item_id, state="approved", reviewer_id=reviewer["id"], now=iso(now),
                                   review_seconds=seconds, final_text=final if edited else None, edited=edited,
                                   outbox_id=outbox_id):
            raise ReviewError("this reply was already reviewed")
        store.audit(iso(now), f"agent:{reviewer['id']}", "reply_approved", "conversation", item.conversation_id,
                    item=item_id, edited=edited, review_seconds=round(seconds, 1))
    return Outcome(item_id, "approved", outbox_id, seconds)


def return_reply(store: Store, item_id: int, *, reviewer: dict[str, Any], comment: str,
                 now: dt.datetime | None = None) -> Outcome:
    """Send the reply back to its author with a comment; nothing reaches the customer."""
    now = now or clock.now()
    comment = (comment or "").replace("\r\n", "\n").strip()
    if not comment:
        raise ReviewError("say what to change")
    item = store.review.item(item_id)
    seconds = _seconds(item, now)
    with store.write():
        if not store.review.decide(item_id, state="returned", reviewer_id=reviewer["id"], now=iso(now),
                                   review_seconds=seconds, comment=comment[:MAX_COMMENT_CHARS]):
            raise ReviewError("this reply was already reviewed")
        store.audit(iso(now), f"agent:{reviewer['id']}", "reply_returned", "conversation", item.conversation_id,
                    item=item_id, review_seconds=round(seconds, 1))
        # The trainee's bell says so; the comment itself is on their review page.
        store.notifications.add([item.agent_id], kind="review_returned", conversation_id=item.conversation_id,
                                message_id=None, actor_id=reviewer["id"], now=iso(now))
    return Outcome(item_id, "returned", None, seconds)
