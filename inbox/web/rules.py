"""Admin pages for automation rules (issue 15): the ordered list, the rule form, the dry run, last firings.

The engine is inbox/rules.py; this module reads the form (an explicit allow-list of fields: up to
`MAX_ROWS` condition and action rows, each a type plus a text value or a choice), checks it with
`rules.check_rule` (a refused pattern is named on its row), and writes every change with an audit
entry. Admins only, like the rest of /admin: a rule can reassign every conversation and answer
customers on its own, so it stays with whoever runs the installation (managers see what rules did
in each conversation's timeline and in the audit log).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from inbox import clock, lifecycle, rules
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.store import now_iso
from inbox.store.base import iso
from inbox.web import get_store, mainland
from inbox.web.auth import role_required
from inbox.web.conversations import PRIORITY_LABELS, status_label

bp = Blueprint("rules_admin", __name__)

admin_only = role_required("admin")

#: Empty rows offered under the filled ones in the form.
BLANK_ROWS = 2

TRIGGER_LABELS = {
    "message_received": _l("A customer's message is received"),
    "conversation_created": _l("A conversation is created"),
    "status_changed": _l("The status is changed"),
    "sla_desired": _l("A service level is about to pass the desired time"),
    "sla_adequate": _l("A service level is about to pass the adequate time"),
    "waiting": _l("The customer has waited longer than"),
}
CONDITION_LABELS = {
    "channel": _l("Channel is (names, comma-separated)"),
    "visibility": _l("Public or private"),
    "text_contains": _l("Message contains"),
    "text_matches": _l("Message matches the pattern"),
    "language": _l("Language is (en, nl, …)"),
    "customer_attribute": _l("Customer attribute equals"),
    "team": _l("Team is"),
    "priority": _l("Priority"),
    "business_hours": _l("Business hours"),
    "status": _l("Status is"),
}
ACTION_LABELS = {
    "assign_team": _l("Hand to team"),
    "assign_agent": _l("Assign to agent"),
    "add_label": _l("Add label"),
    "remove_label": _l("Remove label"),
    "set_priority": _l("Set priority"),
    "set_status": _l("Set status"),
    "reply": _l("Reply with a library answer"),
    "note": _l("Add an internal note"),
    "notify": _l("Notify"),
    "webhook": _l("Send to a webhook"),
}
#: Condition and action types whose value is picked from the choice list, not typed.
CHOICE_CONDITIONS = frozenset({"visibility", "team", "priority", "business_hours", "status"})
CHOICE_ACTIONS = frozenset({"assign_team", "assign_agent", "set_priority", "set_status", "reply", "notify",
                            "webhook"})
PROBLEM_MESSAGES = {
    "name": _l("Give the rule a name (at most 120 characters)."),
    "trigger": _l("Choose when the rule runs."),
    "minutes": _l("Write the waiting time in whole minutes (1 to 86400)."),
    "no_actions": _l("Add at least one action."),
    "unknown": _l("Choose a type for this row."),
    "empty": _l("Fill in a value for this row."),
    "choice": _l("Pick a fitting value from the choice list for this row."),
    "too_long": _l("This value is too long."),
    "backreference": _l("Back-references (\\1, (?P=name)) are not allowed in a pattern."),
    "nested": _l("A repeated group that itself repeats, like (a+)+, can take forever: write the pattern "
                 "without it."),
    "invalid": _l("This is not a valid pattern."),
}


def _refusal_text(code: str) -> str:
    from inbox.sendability import REASONS

    return str(REASONS[code]) if code in REASONS and "%(" not in str(REASONS[code]) else code


def done_text(item: dict[str, Any]) -> str:
    """One action's outcome in the reader's language."""
    if item.get("type") == "set_status":
        item = {**item, "after": status_label(item["after"])}
    elif item.get("type") == "set_priority":
        item = {**item, "after": str(PRIORITY_LABELS.get(item["after"], item["after"]))}
    elif item.get("type") == "reply" and item.get("refused"):
        item = {**item, "refused": _refusal_text(item["refused"])}
    return rules.describe_done(item, _)


# Reading the form ---------------------------------------------------------------------------------------

def _choice(raw: str) -> Any:
    """A choice list value (`team:3`, `status:open`, `who:leads`) as the value a rule stores."""
    kind, _sep, value = raw.partition(":")
    if kind in ("team", "agent", "answer", "priority", "webhook"):
        if value == "none" and kind == "team":
            return None
        return int(value) if value.isdigit() and len(value) < 12 else ""
    if kind == "who" and value.isdigit() and len(value) < 12:
        return int(value)
    return value


def _rows(prefix: str) -> list[dict[str, str]]:
    rows = []
    for index in range(rules.MAX_ROWS):
        kind = (request.form.get(f"{prefix}_type_{index}") or "").strip()
        if not kind:
            continue
        rows.append({"type": kind, "value": (request.form.get(f"{prefix}_value_{index}") or "").strip(),
                     "choice": (request.form.get(f"{prefix}_choice_{index}") or "").strip(),
                     "key": (request.form.get(f"{prefix}_key_{index}") or "").strip(),
                     "op": (request.form.get(f"{prefix}_op_{index}") or "").strip()})
    return rows


def rule_from_form() -> dict[str, Any]:
    """The rule the form describes (not yet checked)."""
    minutes = (request.form.get("trigger_minutes") or "").strip()
    data: dict[str, Any] = {
        "name": " ".join((request.form.get("name") or "").split()),
        "trigger": request.form.get("trigger") or "",
        "trigger_minutes": int(minutes) if minutes.isdigit() and len(minutes) < 8 else None,
        "enabled": request.form.get("enabled") == "1",
        "stop": request.form.get("stop") == "1",
        "conditions": [],
        "actions": [],
    }
    if data["trigger"] != "waiting":
        data["trigger_minutes"] = None
    for row in _rows("condition"):
        condition: dict[str, Any] = {"type": row["type"]}
        condition["value"] = _choice(row["choice"]) if row["type"] in CHOICE_CONDITIONS else row["value"]
        if row["type"] == "customer_attribute":
            condition["key"] = row["key"]
        if row["type"] == "priority":
            condition["op"] = row["op"] or "at_least"
        data["conditions"].append(condition)
    for row in _rows("action"):
        value = _choice(row["choice"]) if row["type"] in CHOICE_ACTIONS else row["value"]
        data["actions"].append({"type": row["type"], "value": value})
    return data


def _errors(data: dict[str, Any]) -> dict[str, str]:
    problems = rules.check_rule(data)
    # The engine checks a rule's shape; whether the chosen webhook subscription still exists is the store's.
    store = get_store()
    for index, action in enumerate(data.get("actions") or []):
        if action.get("type") == "webhook" and isinstance(action.get("value"), int) \
                and store.webhook_subscription(action["value"]) is None and (f"action:{index}", "choice") not in problems:
            problems.append((f"action:{index}", "choice"))
    return {where: str(PROBLEM_MESSAGES.get(code, code)) for where, code in problems}


# Showing a rule in the form ------------------------------------------------------------------------------

def _choice_of(kind: str, value: Any) -> str:
    prefixes = {"team": "team", "assign_team": "team", "assign_agent": "agent", "reply": "answer",
                "priority": "priority", "set_priority": "priority", "status": "status", "set_status": "status",
                "notify": "who", "visibility": "visibility", "business_hours": "hours", "webhook": "webhook"}
    prefix = prefixes.get(kind)
    if prefix is None:
        return ""
    if kind == "team" and value is None:
        return "team:none"
    return f"{prefix}:{value}"


def _form_rows(items: list[dict[str, Any]], choice_kinds: frozenset[str]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        choice = item["type"] in choice_kinds
        rows.append({"type": item["type"], "value": "" if choice else (item.get("value") or ""),
                     "choice": _choice_of(item["type"], item.get("value")) if choice else "",
                     "key": item.get("key") or "", "op": item.get("op") or "at_least"})
    blank = {"type": "", "value": "", "choice": "", "key": "", "op": "at_least"}
    return (rows + [dict(blank) for _i in range(BLANK_ROWS)])[:rules.MAX_ROWS]


def _choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """The choice list's groups: (group label, [(value, label)])."""
    store = get_store()
    teams = store.teams()
    return [
        (_("Teams"), [("team:none", _("No team"))] + [(f"team:{t['id']}", t["name"]) for t in teams]),
        (_("Agents"), [(f"agent:{a['id']}", a["name"] or a["email"]) for a in store.mentionable_agents()]),
        (_("Answers"), [(f"answer:{a.id}", a.title) for a in store.answers.all(active=True)]),
        (_("Priorities"), [(f"priority:{p}", str(PRIORITY_LABELS[p])) for p in lifecycle.PRIORITIES]),
        (_("Statuses"), [(f"status:{s}", status_label(s)) for s in lifecycle.STATUSES]),
        (_("Notify"), [("who:assignee", _("the assigned agent")), ("who:leads", _("the team's leads"))]),
        (_("Webhooks"), [(f"webhook:{w['id']}", w["url"]) for w in store.webhook_subscriptions()]),
        (_("Public or private"), [("visibility:public", _("public")), ("visibility:private", _("private"))]),
        (_("Business hours"), [("hours:inside", _("inside business hours")),
                               ("hours:outside", _("outside business hours"))]),
    ]


def _form_page(rule: dict[str, Any] | None, data: dict[str, Any], errors: dict[str, str] | None = None,
               status: int = 200):
    firings = get_store().rule_firings(rule["id"]) if rule else []
    for firing in firings:
        firing["words"] = [done_text(item) for item in firing["done"]]
    return render_template(
        "admin/rule.html", rule=rule, data=data, errors=errors or {},
        conditions=_form_rows(data.get("conditions") or [], CHOICE_CONDITIONS),
        actions=_form_rows(data.get("actions") or [], CHOICE_ACTIONS),
        trigger_labels=TRIGGER_LABELS, condition_labels=CONDITION_LABELS, action_labels=ACTION_LABELS,
        choices=_choices(), firings=firings, max_pattern=rules.MAX_PATTERN), status


def _rule_or_404(rule_id: int) -> dict[str, Any]:
    rule = get_store().rule(rule_id)
    if rule is None:
        abort(404)
    return rule


def _audit(action: str, rule_id: int | None, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(now_iso(), f"agent:{g.agent['id']}", action, "rule", rule_id, ip=request.remote_addr, **details)


# Pages --------------------------------------------------------------------------------------------------

@bp.get("/admin/rules")
@admin_only
def index():
    store = get_store()
    listed = store.rules()
    last = {r["id"]: (store.rule_firings(r["id"], limit=1) or [None])[0] for r in listed}
    return render_template("admin/rules.html", rules=listed, last=last, trigger_labels=TRIGGER_LABELS)


@bp.get("/admin/rules/new")
@admin_only
def new():
    return _form_page(None, {"trigger": "message_received", "enabled": True})[0]


@bp.post("/admin/rules")
@admin_only
def create():
    data = rule_from_form()
    errors = _errors(data)
    if errors:
        return _form_page(None, data, errors, 400)
    rule_id = get_store().create_rule(data, now_iso())
    _audit("rule_created", rule_id, name=data["name"], trigger=data["trigger"], conditions=data["conditions"],
           actions=data["actions"], enabled=data["enabled"], stop=data["stop"])
    flash(_("Rule saved."), "success")
    return redirect(url_for("rules_admin.edit", rule_id=rule_id), code=302)


@bp.get("/admin/rules/<int:rule_id>")
@admin_only
def edit(rule_id: int):
    rule = _rule_or_404(rule_id)
    return _form_page(rule, rule)[0]


@bp.post("/admin/rules/<int:rule_id>/edit")
@admin_only
def update(rule_id: int):
    rule = _rule_or_404(rule_id)
    data = rule_from_form()
    errors = _errors(data)
    if errors:
        return _form_page(rule, data, errors, 400)
    get_store().update_rule(rule_id, data, now_iso())
    _audit("rule_changed", rule_id, before={k: rule[k] for k in ("name", "trigger", "conditions", "actions",
                                                                   "enabled", "stop")},
           after={k: data[k] for k in ("name", "trigger", "conditions", "actions", "enabled", "stop")})
    flash(_("Rule saved."), "success")
    return redirect(url_for("rules_admin.edit", rule_id=rule_id), code=302)


@bp.post("/admin/rules/<int:rule_id>/delete")
@admin_only
def delete(rule_id: int):
    rule = _rule_or_404(rule_id)
    get_store().delete_rule(rule_id)
    _audit("rule_deleted", rule_id, name=rule["name"])
    flash(_("Rule deleted."), "success")
    return redirect(url_for("rules_admin.index"), code=302)


@bp.post("/admin/rules/<int:rule_id>/enabled")
@admin_only
def set_enabled(rule_id: int):
    _rule_or_404(rule_id)
    enabled = request.form.get("enabled") == "1"
    if get_store().set_rule_enabled(rule_id, enabled, now_iso()):
        _audit("rule_enabled" if enabled else "rule_disabled", rule_id)
    return redirect(url_for("rules_admin.index"), code=302)


@bp.post("/admin/rules/<int:rule_id>/move")
@admin_only
def move(rule_id: int):
    _rule_or_404(rule_id)
    step = {"up": -1, "down": 1}.get(request.form.get("direction") or "")
    if step is not None and get_store().move_rule(rule_id, step, now_iso()):
        _audit("rule_moved", rule_id, direction=request.form.get("direction"))
    return redirect(url_for("rules_admin.index") + f"#rule-{rule_id}", code=302)


@bp.get("/admin/rules/<int:rule_id>/dry-run")
@admin_only
def dry_run(rule_id: int):
    rule = _rule_or_404(rule_id)
    now = clock.now()
    hits = rules.dry_run(rules.context_for(mainland(), get_store(), now), rule)
    return render_template("admin/rule_dry_run.html", rule=rule, hits=hits, days=rules.DRY_RUN_DAYS,
                           since=iso(now), done_text=done_text, trigger_labels=TRIGGER_LABELS,
                           limit=rules.DRY_RUN_LIMIT)
