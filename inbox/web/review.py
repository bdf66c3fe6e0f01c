"""The leads' review queue: trainees' replies waiting to be approved, edited or returned.

- `/review` (leads, managers, admins): replies waiting, oldest first, of conversations the reader
  may see; recent decisions; per agent the time replies spent in review.
- `/review/<id>`: one reply with the whole conversation it answers; approve as is, edit and
  approve, or return with a comment. Items of conversations the reader may not see are 404.
- `/review/agents/<id>`: an agent's reviewed replies and the feedback on them — for the agent
  themselves, leads of their teams, managers and admins.

The conversation page shows a trainee's held reply in the thread as "Waiting for review"
(`held_thread_items`, used by templates/review/_held.html), so nobody answers the customer twice
meanwhile; a returned one shows the lead's feedback, and its writer can edit and resubmit it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for

from inbox import access, clock, review
from inbox.i18n import gettext as _
from inbox.store import NotFound as StoreNotFound
from inbox.store.review import ReviewItem
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required, role_required

bp = Blueprint("review", __name__)

LEAD_ROLES = ("lead", "manager", "admin")
MAX_TEXT_CHARS = 100_000

lead_required = role_required(*LEAD_ROLES)


def _now() -> dt.datetime:
    return clock.now()


def _visible_item(item_id: int) -> ReviewItem:
    store = get_store()
    try:
        item = store.review.item(item_id)
    except StoreNotFound:
        abort(404)
    access.require_conversation(store, current_agent(), item.conversation_id)
    return item


def duration(seconds: float | None) -> str:
    """Seconds as "2 h 5 min" / "4 min" / "30 s"."""
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return _("%(n)d s", n=seconds)
    minutes = seconds // 60
    if minutes < 60:
        return _("%(n)d min", n=minutes)
    return _("%(h)d h %(m)d min", h=minutes // 60, m=minutes % 60)


@bp.get("/review")
@lead_required
def index():
    store = get_store()
    team_ids = access.visible_team_ids(store, current_agent())
    pending = store.review.items(team_ids)
    now = _now()
    waiting = {item.id: (now - dt.datetime.fromisoformat(item.created_at.replace("Z", "+00:00"))).total_seconds()
               for item in pending}
    decided = store.review.items(team_ids, state="approved", limit=20) + store.review.items(
        team_ids, state="returned", limit=20)
    decided.sort(key=lambda r: r.decided_at or "", reverse=True)
    agents = {a["id"]: a for a in store.routing_agents_in(team_ids)}
    stats = [(s, agents.get(agent_id)) for agent_id, s in store.review.stats(agents).items()]
    return render_template("review/index.html", pending=pending, waiting=waiting, decided=decided[:20], stats=stats)


@bp.get("/review/<int:item_id>")
@lead_required
def show(item_id: int):
    item = _visible_item(item_id)
    store = get_store()
    # The whole thread, not only the question: a lead judges the reply by what was said before.
    thread = store.thread_messages(item.conversation_id)
    decision = review.sendable(mainland(), store, item, now=_now()) if item.state == "pending_review" else None
    return render_template("review/show.html", item=item, thread=thread, decision=decision)


@bp.post("/review/<int:item_id>/approve")
@lead_required
def approve(item_id: int):
    item = _visible_item(item_id)
    text = request.form.get("text")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        abort(400)
    try:
        outcome = review.approve(mainland(), get_store(), item_id, reviewer=current_agent(), text=text, now=_now(),
                                 outside_window=bool(request.form.get("outside_window")))
    except review.ReviewError as exc:
        flash(_("Not approved: %(reason)s", reason=_reason(exc)), "error")
        return redirect(url_for("review.show", item_id=item_id))
    flash(_("Approved: the reply to \"%(subject)s\" is on its way (%(time)s in review).",
            subject=item.subject or "", time=duration(outcome.review_seconds)), "success")
    return redirect(url_for("review.index"))


@bp.post("/review/<int:item_id>/return")
@lead_required
def return_reply(item_id: int):
    _visible_item(item_id)
    comment = request.form.get("comment") or ""
    try:
        review.return_reply(get_store(), item_id, reviewer=current_agent(), comment=comment, now=_now())
    except review.ReviewError as exc:
        flash(_("Not returned: %(reason)s", reason=_reason(exc)), "error")
        return redirect(url_for("review.show", item_id=item_id))
    flash(_("Returned with your comment."), "success")
    return redirect(url_for("review.index"))


def _reason(exc: review.ReviewError) -> str:
    if isinstance(exc, review.NotSendable):
        return exc.decision.reason
    text = str(exc)
    return {
        "this reply was already reviewed": _("someone already reviewed this reply."),
        "the reply is empty": _("the reply is empty."),
        "say what to change": _("say what to change."),
        "a reply cannot be reviewed by its writer": _("another lead has to review your own reply."),
    }.get(text, _("the reply cannot be sent in this conversation."))


@bp.get("/review/agents/<int:agent_id>")
@login_required
def agent(agent_id: int):
    store = get_store()
    me = current_agent()
    other = store.agent_routing(agent_id)
    if other is None:
        abort(404)
    if me["id"] != agent_id and not (
            me["role"] in access.SEE_ALL_ROLES
            or (me["role"] == "lead" and store.agent_team_ids(me["id"]) & store.agent_team_ids(agent_id))):
        abort(404)
    team_ids = access.visible_team_ids(store, me)
    # Even one's own replies: a conversation moved to a team the reader is not in is no longer theirs to read.
    scope = access.conversation_scope(store, me)
    items = [i for i in store.review.of_agent(agent_id) if scope.allows(i.team_id)]
    stats = store.review.stats([agent_id]).get(agent_id)
    return render_template("review/agent.html", other=other, items=items, stats=stats, own=me["id"] == agent_id,
                           team_ids=team_ids)


def held_replies(conversation_id: int) -> list[ReviewItem]:
    """Replies in this conversation waiting for review."""
    return get_store().review.of_conversation(conversation_id)


def held_thread_items(conversation_id: int) -> list[ReviewItem]:
    """Each writer's latest held reply in this conversation while it is undecided or returned (the
    thread shows it; an approved one is a sent message by then, a resubmitted one replaces it)."""
    latest: dict[int, ReviewItem] = {}
    for item in get_store().review.of_conversation(conversation_id, pending_only=False):
        latest[item.agent_id] = item  # in id order: the last one wins
    return sorted((i for i in latest.values() if i.state in ("pending_review", "returned")),
                  key=lambda i: i.id)


def held_thread_html(conversation: dict[str, Any]) -> str:
    """The held replies of the thread as HTML (the page's script swaps it in after a trainee sends)."""
    return render_template("review/_held.html", conversation=conversation)


def returned_text(conversation_id: int, item_id: int, agent: dict[str, Any] | None) -> str | None:
    """The text of `agent`'s own returned reply `item_id` in this conversation, to edit and resubmit."""
    if agent is None:
        return None
    for item in held_thread_items(conversation_id):
        if item.id == item_id and item.agent_id == agent["id"] and item.state == "returned":
            return item.text
    return None


def pending_review_count() -> int:
    agent = current_agent()
    if agent is None or agent["role"] not in LEAD_ROLES:
        return 0
    store = get_store()
    return store.review.count_pending(access.visible_team_ids(store, agent))


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(held_replies=held_replies, held_thread_items=held_thread_items,
                                 pending_review_count=pending_review_count)
    app.jinja_env.filters["duration"] = duration
