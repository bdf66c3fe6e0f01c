"""Admin pages: agents (invite, role, teams, disable), teams and memberships, and invitation links.

Only admins reach `/admin/...`. Every form reads an explicit allow-list of fields and nothing else
(SEC-07): a posted `role`, `is_admin`, `team_id` or `active` on a form that does not name it has
no effect. Every change is written to the audit log with the acting admin. The last active admin
can be neither demoted nor disabled, so nobody locks the installation out of its own admin pages.

Invitations: inviting creates the agent without a password plus a single-use link
`/invite/<token>`, valid for `INVITATION_VALID`. The token comes from `secrets.token_urlsafe(32)`
and only its SHA-256 is stored; the link is shown once, to the admin who made it (there is no
mail yet). The invitee sets a password there, which uses the link up and signs them in. Unknown,
used, expired, revoked, empty and case-changed tokens are all the same 404 (SEC-11).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from inbox import clock
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.sanitize import one_line
from inbox.store import now_iso
from inbox.store.agents import ROLES, AgentExists
from inbox.store.base import iso
from inbox.store.teams import MAX_TEAM_NAME, LastAdmin, TeamExists, TeamNotEmpty
from inbox.web import get_store
from inbox.web.auth import hash_password, new_password_from_form, role_required, start_session
from inbox.web.conversations import SEND_LABELS, SEND_STATUSES
from inbox.web.security import limiter

bp = Blueprint("admin", __name__)

#: How long an invitation link works.
INVITATION_VALID = dt.timedelta(hours=72)
#: Requests to invitation links allowed per minute per client IP (tokens cannot be guessed anyway).
INVITE_LIMIT = "30 per minute"
MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = 320

ROLE_LABELS = {
    "agent": _l("Agent"),
    "lead": _l("Lead"),
    "manager": _l("Manager"),
    "admin": _l("Administrator"),
}

admin_only = role_required("admin")


# Helpers --------------------------------------------------------------------------------------

def token_hash(token: str) -> str:
    """What is stored for an invitation token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _audit(action: str, object_type: str, object_id: int | None, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(now_iso(), f"agent:{g.agent['id']}", action, object_type, object_id,
                    ip=request.remote_addr, **details)


def _check_email(value: str) -> str | None:
    email = value.strip().lower()
    local, at, domain = email.rpartition("@")
    if (not at or not local or "." not in domain.strip(".") or len(email) > MAX_EMAIL_CHARS
            or any(ch.isspace() or not ch.isprintable() or ch in "<>,;\"" for ch in email)):
        return None
    return email


def _agent_or_404(agent_id: int) -> dict[str, Any]:
    agent = get_store().agent(agent_id)
    if agent is None:
        abort(404)
    agent.pop("password_hash", None)
    return agent


def _team_or_404(team_id: int) -> dict[str, Any]:
    team = get_store().team(team_id)
    if team is None:
        abort(404)
    return team


def _posted_team_ids() -> set[int]:
    """The `team` checkboxes of a form, as ids of teams that exist."""
    known = {t["id"] for t in get_store().teams()}
    chosen = set()
    for value in request.form.getlist("team"):
        if value.isdigit() and int(value) in known:
            chosen.add(int(value))
    return chosen


def _new_invitation(agent_id: int) -> tuple[str, str]:
    """Store a new invitation for the agent; returns (link, expires_at). The link is never stored."""
    token = secrets.token_urlsafe(32)
    expires_at = iso(clock.now() + INVITATION_VALID)
    get_store().create_invitation(agent_id, token_hash(token), expires_at=expires_at, created_by=g.agent["id"])
    base = current_app.extensions["mainland"].config.base_url
    return f"{base}{url_for('admin.accept_invitation', token=token)}", expires_at


def _channels_by_team() -> dict[str, list[str]]:
    """Lower-cased team name -> channels whose `team` setting names it."""
    mainland = current_app.extensions["mainland"]
    found: dict[str, list[str]] = {}
    for name in sorted(mainland.config.channels):
        team = mainland.team_for_channel(name)
        if team:
            found.setdefault(team.lower(), []).append(name)
    return found


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))


# Agents ---------------------------------------------------------------------------------------

@bp.get("/admin")
@admin_only
def index():
    return redirect(url_for("admin.agents"))


@bp.get("/admin/agents")
@admin_only
def agents():
    return _agents_page()


def _agents_page(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None, status: int = 200):
    store = get_store()
    return render_template(
        "admin/agents.html",
        agents=store.agents(),
        teams=store.teams(),
        agent_teams=store.agents_teams(),
        last_logins=store.last_logins(),
        pending=store.pending_invitations(),
        roles=ROLES,
        errors=errors or {},
        form=form or {"role": "agent", "teams": set()},
    ), status


@bp.post("/admin/agents")
@admin_only
def invite():
    # Allow-list: email, name, role, team. Nothing else from the form is read.
    email = _check_email(request.form.get("email", ""))
    name = one_line(request.form.get("name", ""), MAX_NAME_CHARS)
    role = request.form.get("role", "agent")
    team_ids = _posted_team_ids()
    form = {"email": request.form.get("email", "")[:MAX_EMAIL_CHARS], "name": name, "role": role, "teams": team_ids}
    errors = {}
    if email is None:
        errors["email"] = _("Enter an email address like name@example.com.")
    if not name:
        errors["name"] = _("Enter the name colleagues will see.")
    if role not in ROLES:
        errors["role"] = _("Choose a role.")
    if errors:
        return _agents_page(errors, form, 400)
    store = get_store()
    try:
        agent_id = store.create_agent(email=email, name=name, role=role, password_hash=None)
    except AgentExists:
        return _agents_page({"email": _("An agent with this email address already exists.")}, form, 400)
    store.set_agent_teams(agent_id, team_ids)
    link, expires_at = _new_invitation(agent_id)
    _audit("agent_invited", "agent", agent_id, email=email, role=role, teams=sorted(team_ids))
    return render_template("admin/invited.html", person=_agent_or_404(agent_id), link=link, expires_at=expires_at)


@bp.get("/admin/agents/<int:agent_id>")
@admin_only
def agent(agent_id: int):
    store = get_store()
    return render_template(
        "admin/agent.html",
        person=_agent_or_404(agent_id),
        teams=store.teams(),
        member_of=store.agent_team_ids(agent_id),
        has_password=bool(store.agent(agent_id)["password_hash"]),
        has_second_factor=bool(store.second_factor(agent_id)["secret"]),
        pending=store.pending_invitations().get(agent_id),
        last_login=store.last_logins().get(agent_id),
        roles=ROLES,
    )


@bp.post("/admin/agents/<int:agent_id>/name")
@admin_only
def rename_agent(agent_id: int):
    before = _agent_or_404(agent_id)
    name = one_line(request.form.get("name", ""), MAX_NAME_CHARS)
    if not name:
        flash(_("Enter the name colleagues will see."), "error")
        return redirect(url_for("admin.agent", agent_id=agent_id))
    get_store().set_agent_name(agent_id, name)
    _audit("agent_renamed", "agent", agent_id, before=before["name"], after=name)
    flash(_("The name is saved."), "success")
    return redirect(url_for("admin.agent", agent_id=agent_id))


@bp.post("/admin/agents/<int:agent_id>/role")
@admin_only
def change_role(agent_id: int):
    before = _agent_or_404(agent_id)
    role = request.form.get("role", "")
    if role not in ROLES:
        abort(400)
    try:
        get_store().set_agent_role(agent_id, role)
    except LastAdmin:
        flash(_("Mainland needs at least one active admin: make someone else admin first."), "error")
        return redirect(url_for("admin.agent", agent_id=agent_id))
    if role != before["role"]:
        # No need to end sessions: the role is read from the database on every request.
        _audit("agent_role_changed", "agent", agent_id, before=before["role"], after=role)
    flash(_("The role is saved."), "success")
    return redirect(url_for("admin.agent", agent_id=agent_id))


@bp.post("/admin/agents/<int:agent_id>/teams")
@admin_only
def set_teams(agent_id: int):
    _agent_or_404(agent_id)
    store = get_store()
    before = sorted(store.agent_team_ids(agent_id))
    team_ids = _posted_team_ids()
    store.set_agent_teams(agent_id, team_ids)
    _audit("agent_teams_changed", "agent", agent_id, before=before, after=sorted(team_ids))
    flash(_("The teams are saved."), "success")
    return redirect(url_for("admin.agent", agent_id=agent_id))


@bp.post("/admin/agents/<int:agent_id>/disable")
@admin_only
def disable(agent_id: int):
    _agent_or_404(agent_id)
    try:
        get_store().disable_agent(agent_id)
    except LastAdmin:
        flash(_("Mainland needs at least one active admin: make someone else admin first."), "error")
        return redirect(url_for("admin.agent", agent_id=agent_id))
    _audit("agent_disabled", "agent", agent_id)
    flash(_("The agent is disabled and signed out everywhere."), "success")
    if agent_id == g.agent["id"]:
        return redirect(url_for("auth.login"))
    return redirect(url_for("admin.agent", agent_id=agent_id))


@bp.post("/admin/agents/<int:agent_id>/enable")
@admin_only
def enable(agent_id: int):
    _agent_or_404(agent_id)
    get_store().enable_agent(agent_id)
    _audit("agent_enabled", "agent", agent_id)
    flash(_("The agent can sign in again."), "success")
    return redirect(url_for("admin.agent", agent_id=agent_id))


@bp.post("/admin/agents/<int:agent_id>/sessions")
@admin_only
def end_sessions(agent_id: int):
    _agent_or_404(agent_id)
    # Also their remembered devices: the next sign-in on any of them asks for the code again.
    get_store().end_agent_sessions(agent_id, forget_devices=True)
    _audit("agent_sessions_ended", "agent", agent_id)
    flash(_("The agent is signed out everywhere."), "success")
    if agent_id == g.agent["id"]:
        return redirect(url_for("auth.login"))
    return redirect(url_for("admin.agent", agent_id=agent_id))


@bp.post("/admin/agents/<int:agent_id>/second-factor")
@admin_only
def reset_second_factor(agent_id: int):
    """For an agent who lost both their authenticator and their recovery codes: the second factor is
    turned off and every session ends; they sign in with the password and set it up again."""
    _agent_or_404(agent_id)
    store = get_store()
    store.disable_totp(agent_id)
    store.end_agent_sessions(agent_id)
    _audit("agent_second_factor_reset", "agent", agent_id)
    flash(_("The second factor is off: the agent signs in with the password and sets it up again."), "success")
    if agent_id == g.agent["id"]:
        return redirect(url_for("auth.login"))
    return redirect(url_for("admin.agent", agent_id=agent_id))


@bp.post("/admin/agents/<int:agent_id>/invitation")
@admin_only
def reinvite(agent_id: int):
    agent = _agent_or_404(agent_id)
    if get_store().agent(agent_id)["password_hash"] or not agent["active"]:
        flash(_("Only an active agent who has not set a password yet can get a new invitation link."), "error")
        return redirect(url_for("admin.agent", agent_id=agent_id))
    link, expires_at = _new_invitation(agent_id)
    _audit("agent_reinvited", "agent", agent_id)
    return render_template("admin/invited.html", person=agent, link=link, expires_at=expires_at)


# Teams ----------------------------------------------------------------------------------------

def _team_name() -> str | None:
    name = one_line(request.form.get("name", ""), MAX_TEAM_NAME + 1)
    if not name or len(name) > MAX_TEAM_NAME:
        return None
    return name


@bp.get("/admin/teams")
@admin_only
def teams():
    return _teams_page()


def _teams_page(errors: dict[str, str] | None = None, name: str = "", status: int = 200):
    store = get_store()
    team_list = store.teams()
    known = {t["name"].lower() for t in team_list}
    mainland = current_app.extensions["mainland"]
    unknown: dict[str, list[str]] = {}
    for channel in sorted(mainland.config.channels):
        team_name = mainland.team_for_channel(channel)
        if team_name and team_name.lower() not in known:
            unknown.setdefault(team_name, []).append(channel)
    return render_template(
        "admin/teams.html",
        teams=team_list,
        channels=_channels_by_team(),
        unknown_team_channels=unknown,
        errors=errors or {},
        name=name,
    ), status


@bp.post("/admin/teams")
@admin_only
def create_team():
    name = _team_name()
    if name is None:
        return _teams_page({"name": _("Enter a name of at most %(n)d characters.", n=MAX_TEAM_NAME)},
                           request.form.get("name", "")[:MAX_TEAM_NAME], 400)
    try:
        team_id = get_store().create_team(name)
    except TeamExists:
        return _teams_page({"name": _("A team with this name already exists.")}, name, 400)
    _audit("team_created", "team", team_id, name=name)
    flash(_("The team is created."), "success")
    return redirect(url_for("admin.team", team_id=team_id))


@bp.get("/admin/teams/<int:team_id>")
@admin_only
def team(team_id: int):
    store = get_store()
    team = _team_or_404(team_id)
    members = store.team_members(team_id)
    member_ids = {m["id"] for m in members}
    return render_template(
        "admin/team.html",
        team=team,
        members=members,
        candidates=[a for a in store.agents() if a["id"] not in member_ids],
        channels=_channels_by_team().get(team["name"].lower(), []),
        default_send_status=store.team_default_send_status(team_id),
        send_statuses=SEND_STATUSES,
        send_labels=SEND_LABELS,
    )


@bp.post("/admin/teams/<int:team_id>/send-status")
@admin_only
def set_default_send_status(team_id: int):
    """What the composer's plain "Send" does in the team's conversations: keep open, pending or resolve."""
    _team_or_404(team_id)
    store = get_store()
    status = request.form.get("default_send_status", "")
    if status not in SEND_STATUSES:
        abort(400)
    before = store.team_default_send_status(team_id)
    if status != before:
        store.set_team_default_send_status(team_id, status)
        _audit("team_default_send_status_changed", "team", team_id, before=before, after=status)
    flash(_("The team's default after sending is saved."), "success")
    return redirect(url_for("admin.team", team_id=team_id))


@bp.post("/admin/teams/<int:team_id>/rename")
@admin_only
def rename_team(team_id: int):
    before = _team_or_404(team_id)
    name = _team_name()
    if name is None:
        flash(_("Enter a name of at most %(n)d characters.", n=MAX_TEAM_NAME), "error")
        return redirect(url_for("admin.team", team_id=team_id))
    try:
        get_store().rename_team(team_id, name)
    except TeamExists:
        flash(_("A team with this name already exists."), "error")
        return redirect(url_for("admin.team", team_id=team_id))
    _audit("team_renamed", "team", team_id, before=before["name"], after=name)
    flash(_("The team is renamed. Channels that name the old name in their team setting need the new one."),
          "success")
    return redirect(url_for("admin.team", team_id=team_id))


@bp.post("/admin/teams/<int:team_id>/delete")
@admin_only
def delete_team(team_id: int):
    team = _team_or_404(team_id)
    try:
        get_store().delete_team(team_id)
    except TeamNotEmpty:
        flash(_("Only a team without members and conversations can be deleted."), "error")
        return redirect(url_for("admin.team", team_id=team_id))
    _audit("team_deleted", "team", team_id, name=team["name"])
    flash(_("The team is deleted."), "success")
    return redirect(url_for("admin.teams"))


@bp.post("/admin/teams/<int:team_id>/members")
@admin_only
def add_member(team_id: int):
    _team_or_404(team_id)
    value = request.form.get("agent_id", "")
    if not value.isdigit() or get_store().agent(int(value)) is None:
        abort(400)
    get_store().add_team_member(team_id, int(value))
    _audit("team_member_added", "team", team_id, agent_id=int(value))
    flash(_("The agent is added to the team."), "success")
    return redirect(url_for("admin.team", team_id=team_id))


@bp.post("/admin/teams/<int:team_id>/members/<int:agent_id>/remove")
@admin_only
def remove_member(team_id: int, agent_id: int):
    _team_or_404(team_id)
    _agent_or_404(agent_id)
    get_store().remove_team_member(team_id, agent_id)
    _audit("team_member_removed", "team", team_id, agent_id=agent_id)
    flash(_("The agent is removed from the team."), "success")
    return redirect(url_for("admin.team", team_id=team_id))


# Invitations (for the invitee: no sign-in) ----------------------------------------------------

@bp.route("/invite/<token>", methods=["GET", "POST"])
@limiter.limit(INVITE_LIMIT)
def accept_invitation(token: str):
    store = get_store()
    # The path is what was shown; no trimming or case folding, so only the exact token works.
    if not token or len(token) > 100:
        abort(404)
    digest = token_hash(token)
    invitation = store.live_invitation(digest)
    if invitation is None:
        abort(404)
    if request.method != "POST":
        return render_template("admin/accept.html", invitation=invitation, errors={})
    password, errors = new_password_from_form()
    if errors:
        return render_template("admin/accept.html", invitation=invitation, errors=errors), 400
    agent_id = store.accept_invitation(digest, hash_password(password))
    if agent_id is None:  # used up by a second tab between the two checks
        abort(404)
    with store.write():
        store.audit(now_iso(), f"agent:{agent_id}", "invitation_accepted", "agent", agent_id, ip=request.remote_addr)
        store.audit(now_iso(), f"agent:{agent_id}", "login", "agent", agent_id, ip=request.remote_addr)
    start_session(store.agent(agent_id))
    flash(_("Welcome to Mainland. Your password is set."), "success")
    return redirect(url_for("queue.index"))


def init_app(app) -> None:
    app.jinja_env.globals.update(role_label=role_label)
