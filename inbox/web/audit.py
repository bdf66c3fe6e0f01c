"""/admin/audit: the audit log for admins, newest first, filtered, keyset-paged, and exported as CSV.

The log is written all over the code base with `store.audit(...)`; this page only reads it. Filters
are exact (actor, action, object type and id) plus a date range in UTC days, both ends included.
Paging follows ids (`?before=<id>`), never an offset, so every page of a million-row log is as quick
as the first. The CSV export streams every filtered row in chunks, its cells neutralised against
spreadsheet formula injection with the reports' `csv_safe`, and is itself written to the log.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Blueprint, Response, abort, g, render_template, request, stream_with_context, url_for

from inbox.i18n import lazy_gettext as _l
from inbox.reports import csv_safe
from inbox.runtime import Mainland
from inbox.store import now_iso
from inbox.store.audit import AUDIT_PAGE, AuditEntry, AuditFilter
from inbox.web import get_store, mainland
from inbox.web.auth import role_required

bp = Blueprint("audit", __name__)

admin_only = role_required("admin")

MAX_FILTER_CHARS = 200

#: Readable names of the actions the code base writes. An action missing here is shown by its raw name.
ACTION_LABELS: dict[str, Any] = {
    "login": _l("Signed in"),
    "logout": _l("Signed out"),
    "password_changed": _l("Password changed"),
    "invitation_accepted": _l("Invitation accepted"),
    "agent_invited": _l("Agent invited"),
    "agent_reinvited": _l("Agent invited again"),
    "agent_renamed": _l("Agent renamed"),
    "agent_role_changed": _l("Agent's role changed"),
    "agent_teams_changed": _l("Agent's teams changed"),
    "agent_disabled": _l("Agent disabled"),
    "agent_enabled": _l("Agent enabled"),
    "agent_sessions_ended": _l("Agent's sessions ended"),
    "agent_second_factor_reset": _l("Agent's second factor turned off by an admin"),
    "team_created": _l("Team created"),
    "team_renamed": _l("Team renamed"),
    "team_deleted": _l("Team deleted"),
    "team_member_added": _l("Team member added"),
    "team_member_removed": _l("Team member removed"),
    "settings_changed": _l("Settings changed"),
    "routing_mode": _l("Routing mode changed"),
    "routing_settings": _l("Routing settings changed"),
    "status": _l("Status changed"),
    "assign": _l("Assigned"),
    "priority": _l("Priority changed"),
    "merge": _l("Conversations merged"),
    "merge_undone": _l("Conversation merge undone"),
    "split": _l("Conversation split"),
    "reply_retry": _l("Reply sent again"),
    "reply_undone": _l("Reply undone"),
    "reply_loop_guard_override": _l("Reply sent despite the loop guard"),
    "reply_held_for_review": _l("Reply held for review"),
    "reply_approved": _l("Reply approved"),
    "reply_returned": _l("Reply returned"),
    "customer_viewed": _l("Customer record viewed"),
    "customer_exported": _l("Customer data exported"),
    "customer_erased": _l("Customer data erased"),
    "customer_updated": _l("Customer updated"),
    "customer_attribute_set": _l("Customer attribute set"),
    "customer_note_added": _l("Customer note added"),
    "customer_merged": _l("Customers merged"),
    "customer_unmerged": _l("Customer merge undone"),
    "customers_imported": _l("Customers imported"),
    "suggestion_rejected": _l("Merge suggestion rejected"),
    "customer_api_create": _l("Customer created through the API"),
    "customer_api_update": _l("Customer updated through the API"),
    "audit_exported": _l("Audit log exported"),
    "answers_exported": _l("Answer library exported"),
    "answers_imported": _l("Answers imported"),
    "quarantine_viewed": _l("Quarantined item viewed"),
    "quarantine_downloaded": _l("Quarantined item downloaded"),
    "quarantine_reprocessed": _l("Quarantined item reprocessed"),
    "quarantine_deleted": _l("Quarantined item deleted"),
}

#: Object types a filter may name (anything else in the URL is taken as typed).
OBJECT_TYPES: dict[str, Any] = {
    "conversation": _l("Conversation"),
    "customer": _l("Customer"),
    "agent": _l("Agent"),
    "team": _l("Team"),
    "quarantine": _l("Quarantined item"),
}

CSV_COLUMNS = ("id", "at_utc", "actor", "actor_name", "action", "action_label", "object_type", "object_id",
               "details")


def action_label(action: str) -> str:
    return str(ACTION_LABELS.get(action, action))


def _text_arg(name: str) -> str | None:
    value = request.args.get(name, "").strip()[:MAX_FILTER_CHARS]
    return value or None


def _day_arg(name: str) -> dt.date | None:
    value = _text_arg(name)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        abort(400)


def _criteria() -> AuditFilter:
    """The filters in the query string; a malformed date is a 400, not an empty page."""
    return AuditFilter(actor=_text_arg("actor"), action=_text_arg("action"), object_type=_text_arg("object_type"),
                       object_id=_text_arg("object_id"), day_from=_day_arg("from"), day_to=_day_arg("to"))


def _filter_args(criteria: AuditFilter) -> dict[str, str]:
    """The query string that reproduces `criteria` (for the next-page and export links)."""
    args = {"actor": criteria.actor, "action": criteria.action, "object_type": criteria.object_type,
            "object_id": criteria.object_id,
            "from": criteria.day_from.isoformat() if criteria.day_from else None,
            "to": criteria.day_to.isoformat() if criteria.day_to else None}
    return {k: v for k, v in args.items() if v}


def _actor_names() -> dict[str, str]:
    """Actor value ("agent:7") -> the agent's name or address."""
    return {f"agent:{a['id']}": a["name"] or a["email"] for a in get_store().agents()}


def _details(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"details": text}
    return value if isinstance(value, dict) else {"details": value}


@bp.get("/admin/audit")
@admin_only
def index():
    criteria = _criteria()
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 1 << 62:
        abort(404)
    rows = get_store().audit_log.page(criteria, before=before, limit=AUDIT_PAGE + 1)
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    details = {row.id: _details(row.details) for row in rows}
    args = _filter_args(criteria)
    agents = get_store().agents()
    return render_template(
        "admin/audit.html", rows=rows, details=details, criteria=criteria, args=args, actor_names=_actor_names(),
        agents=agents,
        action_labels=ACTION_LABELS, action_choices=sorted(((k, str(v)) for k, v in ACTION_LABELS.items()),
                                                           key=lambda kv: kv[1].casefold()),
        object_types=OBJECT_TYPES, action_label=action_label,
        next_url=url_for("audit.index", before=rows[-1].id, **args) if more else None,
        first_url=url_for("audit.index", **args) if before is not None else None,
        export_url=url_for("audit.export", **args),
    )


def csv_lines(rows: Iterable[AuditEntry], actor_names: dict[str, str]) -> Iterator[str]:
    """The export, line by line: a header, then one row per entry, every cell formula-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_safe(c) for c in cells])
        return buffer.getvalue()

    yield "\ufeff" + line(CSV_COLUMNS)
    for r in rows:
        yield line((r.id, r.at, r.actor, actor_names.get(r.actor, ""), r.action,
                    action_label(r.action), r.object_type or "", r.object_id or "", r.details))


def _export_lines(app_state: Mainland, criteria: AuditFilter, names: dict[str, str]) -> Iterator[str]:
    # The request's store closes when the view returns, before the body is sent: the stream reads
    # through a store of its own, closed when the last line is out (or the client goes away).
    store = app_state.open_store(check=False)
    try:
        yield from csv_lines(store.audit_log.rows(criteria), names)
    finally:
        store.close()


@bp.get("/admin/audit/export.csv")
@admin_only
def export():
    criteria = _criteria()
    store = get_store()
    with store.write():
        store.audit(now_iso(), f"agent:{g.agent['id']}", "audit_exported", None, None, ip=request.remote_addr,
                    filters=_filter_args(criteria))
    names = _actor_names()
    stamp = now_iso()[:10]
    return Response(stream_with_context(_export_lines(mainland(), criteria, names)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="mainland-audit-{stamp}.csv"',
                             "Cache-Control": "no-store"})
