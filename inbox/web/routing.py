"""Routing pages: an agent's own status, and for leads the "why it went where" log, team modes and
agents' skills and capacity.

- `/routing/status` (everyone): available, away or offline. Choosing a status runs a routing pass
  at once: going away passes waiting customers on, becoming available pulls from the queue.
- `/routing` (leads, managers, admins): agents of the teams the reader sees with their status and
  load, each team's mode, and the latest routing decisions with their reasons.
- `/routing/agents/<id>` (leads for members of their teams; managers and admins for everyone):
  capacity, languages, topics and the trainee flag (a trainee's replies wait for review).

Every request of a signed-in agent counts as activity; live-update polling and presence beats do
not, so an open tab alone does not keep someone available. Signing in and every action (any POST:
a reply, a note, an assignment, a status change) are recorded at once and make the agent
available unless they chose away or offline themselves; page views are recorded at most once a
minute per agent and process. Both happen before the page is drawn (sign-in right after it), so
the status in the top bar is current on the next page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, abort, flash, g, redirect, render_template, request, url_for

from inbox import access, clock, routing
from inbox.i18n import LANGUAGES
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.store.base import iso
from inbox.store.routing import MODES, STATUSES
from inbox.web import get_store
from inbox.web.auth import current_agent, login_required, role_required

log = logging.getLogger(__name__)

bp = Blueprint("routing", __name__)

LEAD_ROLES = ("lead", "manager", "admin")
MAX_CAPACITY = 100
MAX_SKILLS = 20
#: Seconds between two activity writes for one agent in one process.
TOUCH_EVERY = 60.0
#: Requests that do not count as activity (live updates, presence beats, polling).
_PASSIVE_ENDPOINTS = frozenset({"conversations.messages_after"})

STATUS_LABELS = {"available": _l("Available"), "away": _l("Away"), "offline": _l("Offline")}
MODE_LABELS = {"auto": _l("Automatic (own agent, skills, capacity)"), "round_robin": _l("Round robin"),
               "manual": _l("Manual only")}
REASON_LABELS = {
    "owner": _l("the customer's own agent"),
    "last_agent": _l("answered this customer last"),
    "skills": _l("speaks the language and had the most room"),
    "round_robin": _l("next in turn (round robin)"),
    "manual": _l("the team assigns by hand"),
    "queued": _l("waiting in the queue"),
    "returned_to_queue": _l("back to the queue"),
}
WHY_LABELS = {
    "nobody_free": _l("nobody available with room"),
    "no_speaker_free": _l("nobody available who speaks the language"),
}
STATE_LABELS = {
    "at_capacity": _l("at capacity"), "away": _l("away"), "offline": _l("offline"), "disabled": _l("disabled"),
    "not_in_team": _l("not in this team"), "over_capacity": _l("over capacity"), "available": _l("available"),
}

lead_required = role_required(*LEAD_ROLES)

#: When each agent's page views were last written, per database (the clock's seconds).
_touched: dict[tuple[str, int], float] = {}


def _now() -> dt.datetime:
    return clock.now()


def status_label(status: str | None) -> str:
    return str(STATUS_LABELS.get(status or "", status or ""))


def explain(decision: dict[str, Any]) -> str:
    """A routing decision's reason in words: why it went where it went."""
    detail = json.loads(decision.get("detail") or "{}")
    parts = [str(REASON_LABELS.get(decision["reason"], decision["reason"]))]
    if detail.get("why"):
        parts.append(str(WHY_LABELS.get(detail["why"], detail["why"])))
    if detail.get("language"):
        parts.append(_("language: %(code)s", code=detail["language"]))
    if detail.get("language_relaxed"):
        parts.append(_("nobody in the team lists that language"))
    if detail.get("topics"):
        parts.append(_("topics: %(topics)s", topics=", ".join(detail["topics"])))
    if detail.get("own_agent_state"):
        parts.append(_("their own agent was %(state)s",
                       state=STATE_LABELS.get(detail["own_agent_state"], detail["own_agent_state"])))
    if detail.get("from_state"):
        parts.append(_("the previous agent was %(state)s",
                       state=STATE_LABELS.get(detail["from_state"], detail["from_state"])))
    if detail.get("spare") is not None:
        parts.append(_("room for %(n)d more", n=detail["spare"]))
    return "; ".join(parts)


# The agent's own status ----------------------------------------------------------------------------

@bp.route("/routing/status", methods=["GET", "POST"])
@login_required
def status():
    store = get_store()
    agent = current_agent()
    if request.method == "POST":
        chosen = request.form.get("status")
        if chosen not in STATUSES:
            abort(400)
        report = routing.set_status(store, agent["id"], chosen, _now())
        message = _("You are now %(status)s.", status=status_label(chosen))
        if report.moved or report.returned_to_queue:
            message += " " + _("Conversations waiting for you were passed on: %(n)d.",
                               n=report.moved + report.returned_to_queue)
        flash(message, "success")
        return redirect(url_for("routing.status"))
    me = store.agent_routing(agent["id"])
    return render_template("routing/status.html", me=me, statuses=STATUSES, languages=LANGUAGES)


# Leads: the overview -------------------------------------------------------------------------------

def _may_manage_team(agent: dict[str, Any], team_id: int | None) -> bool:
    if agent["role"] in access.SEE_ALL_ROLES:
        return True
    return team_id is not None and agent["role"] == "lead" and team_id in get_store().agent_team_ids(agent["id"])


def _may_manage_agent(agent: dict[str, Any], other_id: int) -> bool:
    if agent["role"] in access.SEE_ALL_ROLES:
        return True
    store = get_store()
    return agent["role"] == "lead" and bool(store.agent_team_ids(agent["id"]) & store.agent_team_ids(other_id))


@bp.get("/routing")
@lead_required
def overview():
    store = get_store()
    agent = current_agent()
    team_ids = access.visible_team_ids(store, agent)
    conversation_id = request.args.get("conversation", type=int)
    if conversation_id is not None:
        if not 0 < conversation_id < 2**63:
            abort(404)
        access.require_conversation(store, agent, conversation_id)
    decisions = store.routing_decisions(team_ids, conversation_id=conversation_id, limit=200)
    for decision in decisions:
        decision["why"] = explain(decision)
    teams = [t for t in store.routing_modes() if team_ids is None or t["id"] in team_ids]
    for team in teams:
        team["may_change"] = _may_manage_team(agent, team["id"])
    return render_template(
        "routing/overview.html", agents=store.routing_agents_in(team_ids), teams=teams, decisions=decisions,
        conversation_id=conversation_id, pool_mode=store.routing_mode(None),
        may_change_pool=agent["role"] in access.SEE_ALL_ROLES, modes=MODES, mode_labels=MODE_LABELS,
        may_manage=lambda other: _may_manage_agent(agent, other["id"]))


@bp.post("/routing/mode")
@lead_required
def set_mode():
    store = get_store()
    agent = current_agent()
    mode = request.form.get("mode")
    target = request.form.get("team", "")
    if mode not in MODES:
        abort(400)
    if target == "pool":
        team_id = None
    elif target.isdigit() and len(target) < 19 and store.team(int(target)) is not None:
        team_id = int(target)
    else:
        abort(404)
    if not _may_manage_team(agent, team_id):
        abort(403)
    store.set_routing_mode(team_id, mode)
    with store.write():
        store.audit(iso(_now()), f"agent:{agent['id']}", "routing_mode", "team", team_id if team_id else "pool",
                    mode=mode)
    if mode != "manual":
        routing.rebalance(store, _now(), inactivity=False)
    flash(_("Routing mode saved."), "success")
    return redirect(url_for("routing.overview"))


def _skills(raw: str) -> list[str]:
    words = [re.sub(r"[^\w-]", "", w.lower()) for w in raw.replace(",", " ").split()]
    return [w[:40] for w in dict.fromkeys(words) if w][:MAX_SKILLS]


def _own_trainee_flag_locked(agent: dict[str, Any], other_id: int) -> bool:
    """Only an admin may change their own trainee flag; a lead's is changed by another lead or an admin."""
    return agent["id"] == other_id and agent["role"] != "admin"


@bp.route("/routing/agents/<int:agent_id>", methods=["GET", "POST"])
@lead_required
def agent_settings(agent_id: int):
    store = get_store()
    agent = current_agent()
    other = store.agent_routing(agent_id)
    if other is None or not _may_manage_agent(agent, agent_id):
        abort(404)
    errors: dict[str, str] = {}
    if request.method == "POST":
        capacity_text = (request.form.get("capacity") or "").strip()
        languages = _skills(request.form.get("languages") or "")
        topics = _skills(request.form.get("topics") or "")
        trainee = request.form.get("trainee") == "1"
        if _own_trainee_flag_locked(agent, agent_id):
            # A trainee's replies wait for someone else's review: they cannot lift that themselves.
            trainee = bool(other["trainee"])
        if not capacity_text.isdigit() or not 0 <= int(capacity_text) <= MAX_CAPACITY:
            errors["capacity"] = _("A whole number from 0 to %(n)d.", n=MAX_CAPACITY)
        if any(not re.fullmatch(r"[a-z]{2,3}", code) for code in languages):
            errors["languages"] = _("Language codes such as en nl de.")
        if not errors:
            store.set_agent_routing(agent_id, capacity=int(capacity_text), languages=languages, topics=topics,
                                    trainee=trainee)
            with store.write():
                store.audit(iso(_now()), f"agent:{agent['id']}", "routing_settings", "agent", agent_id,
                            capacity=int(capacity_text), languages=languages, topics=topics, trainee=trainee)
            routing.rebalance(store, _now(), inactivity=False)
            flash(_("Saved."), "success")
            return redirect(url_for("routing.agent_settings", agent_id=agent_id))
        other = {**other, "capacity": capacity_text, "languages": " ".join(languages), "topics": " ".join(topics),
                 "trainee": trainee}
    return render_template("routing/agent.html", other=other, errors=errors,
                           trainee_locked=_own_trainee_flag_locked(agent, agent_id),
                           topics_known=sorted(store.answers.tag_vocabulary())), 400 if errors else 200


# Activity ------------------------------------------------------------------------------------------

def _counts_as_activity() -> bool:
    endpoint = request.endpoint
    return not (endpoint in (None, "static") or endpoint.startswith(("live.", "introspect."))
                or endpoint in _PASSIVE_ENDPOINTS)


def _touch() -> None:
    if not _counts_as_activity():
        return
    agent = current_agent()
    if agent is not None:
        # An action is never skipped: it is what makes someone available the moment they act.
        _record_activity(agent["id"], acting=request.method not in ("GET", "HEAD", "OPTIONS"))
        g.activity_recorded = True


def _touch_after_sign_in(response: Response) -> Response:
    """Signing in is activity too (the sign-in form, accepting an invitation): that request had no
    agent yet when `_touch` ran."""
    if request.method == "POST" and g.get("agent") and not g.get("activity_recorded") and _counts_as_activity():
        _record_activity(g.agent["id"], acting=True)
    return response


def _record_activity(agent_id: int, *, acting: bool) -> None:
    try:
        store = get_store()
        key = (str(store.path), agent_id)
        now = _now()
        moment = now.timestamp()
        since = moment - _touched.get(key, moment - TOUCH_EVERY)
        if not acting and 0 <= since < TOUCH_EVERY:
            return
        _touched[key] = moment
        store.touch_agent(agent_id, iso(now))
    except Exception:  # activity is a hint; it must never cost the request
        log.exception("recording agent activity failed")


def my_routing_status() -> str | None:
    """The signed-in agent's routing status (for the navigation bar)."""
    agent = current_agent()
    if agent is None:
        return None
    row = get_store().agent_routing(agent["id"])
    return row["routing_status"] if row else None


def init_app(app: Flask) -> None:
    app.before_request(_touch)
    app.after_request(_touch_after_sign_in)
    app.jinja_env.globals.update(routing_status_label=status_label, my_routing_status=my_routing_status)
