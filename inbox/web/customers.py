"""Customer pages: search, one customer across every channel, the merge-suggestion queue, import.

Access (issue 3's rule carried over to customers): an agent sees a customer when they can see at
least one of the customer's conversations; admins and managers see every customer. A hidden and
an unknown customer are both 404, and search results, counts and the suggestion queue are
filtered in SQL (`inbox.store.customers.visible_clause`), so nothing about another team's
customers shows (IN-65). On a customer's page only the conversations the agent may see are listed.

Export and erasure (GDPR) and the CSV import are for admins only. Every change is a POST with the
CSRF token and is audit-logged.
"""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from inbox import access, checkins, clock, customers, identity, privacy
from inbox.customer_import import CustomerImportError, decode, import_csv, parse_mapping
from inbox.customer_import import fields as import_fields
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.store import NotFound, now_iso
from inbox.store.customers import MergeConflict, UnmergeRefused
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required, role_required
from inbox.web.conversations import content_disposition

bp = Blueprint("customers", __name__)

#: Timeline entries a customer page shows at first, and at most.
TIMELINE_PAGE = 50
MAX_TIMELINE = 2000

PAGE_SIZE = 50
MAX_NOTE_CHARS = 10_000
MAX_QUERY_CHARS = 200
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_ATTRIBUTE_KEY = 64
MAX_FIELD_CHARS = 500

REASON_LABELS = {
    "same_phone": _l("Same phone number as a customer record"),
    "same_email": _l("Same email address as a customer record"),
    "email_in_text": _l("Email address written in a message"),
    "phone_in_text": _l("Phone number written in a message"),
    "close_name_same_day": _l("Close name on the same day on two channels"),
    "rare_name": _l("The same uncommon name"),
    "similar_name": _l("Similar names"),
    "different_name": _l("Different names"),
    "conflict": _l("Both have a different identifier of this kind"),
    "same_record": _l("One CRM row names both"),
}

ACTION_LABELS = {
    "create": _l("Create"),
    "update": _l("Update"),
    "unchanged": _l("Unchanged"),
    "conflict": _l("Conflict"),
    "invalid": _l("Invalid"),
}

admin_only = role_required("admin")


# Helpers ----------------------------------------------------------------------------------------

def _team_ids() -> set[int] | None:
    return access.visible_team_ids(get_store(), current_agent())


def _agent_id() -> int:
    return current_agent()["id"]


def _actor() -> str:
    return f"agent:{_agent_id()}"


def _region() -> str | None:
    return mainland().config.extra.get("default_phone_region")


def visible_customer(customer_id: int) -> dict[str, Any]:
    """The customer if the agent may see them, else 404 (unknown and hidden look the same)."""
    store = get_store()
    try:
        record = store.customer_record(customer_id)
    except NotFound:
        abort(404)
    if not store.customer_visible(customer_id, _team_ids()):
        abort(404)
    return record


def _live_visible(customer_id: int) -> dict[str, Any]:
    record = visible_customer(customer_id)
    if record["merged_into"] is not None:
        abort(409)
    return record


def reason_label(code: str) -> str:
    return str(REASON_LABELS.get(code, code))


def _search_terms(q: str) -> dict[str, Any]:
    """What a search box entry can mean: an identity in any normal form, a name, a prefix."""
    q = q.strip()[:MAX_QUERY_CHARS]
    values = {q, q.lower()}
    email = identity.normalize_email(q)
    if email:
        values.add(email)
    phone = identity.normalize_phone(q, _region())
    if phone:
        values.add(phone)
    values.add(q.lstrip("@").lower())
    key = identity.name_key(q)
    return {"values": values, "text": q.lower() if len(q) >= 3 else "", "name": key if len(key) >= 2 else ""}


# Pages ------------------------------------------------------------------------------------------

@bp.get("/customers")
@login_required
def index():
    store = get_store()
    q = request.args.get("q", "")[:MAX_QUERY_CHARS]
    team_ids = _team_ids()
    terms = _search_terms(q) if q.strip() else {}
    rows = store.search_customers(team_ids=team_ids, limit=PAGE_SIZE + 1, **terms)
    more = len(rows) > PAGE_SIZE
    return render_template("customers/list.html", customers=rows[:PAGE_SIZE], more=more, q=q,
                           suggestion_count=store.count_open_suggestions(team_ids,
                                                                         min_score=identity.SUGGEST_THRESHOLD))


@bp.get("/customers/<int:customer_id>")
@login_required
def show(customer_id: int):
    store = get_store()
    live = store.live_customer_id(customer_id)
    if live is not None and live != customer_id:
        # A record merged into another leads there (if that one may be seen).
        visible_customer(live)
        return redirect(url_for("customers.show", customer_id=live))
    record = visible_customer(customer_id)
    if request.method == "GET":
        # Who looked at whose personal data: one line per agent, customer and hour (HEAD shows nothing).
        store.audit_log.record_view(clock.now(), _actor(), "customer", customer_id)
    team_ids = _team_ids()
    conversations = store.customer_conversations(customer_id, team_ids)
    # The latest part of the timeline; "Show older messages" asks for more (a customer with
    # thousands of messages must not make a page of megabytes).
    shown = min(max(request.args.get("timeline", default=TIMELINE_PAGE, type=int) or TIMELINE_PAGE,
                    TIMELINE_PAGE), MAX_TIMELINE)
    timeline = store.customer_timeline([c["id"] for c in conversations], limit=shown + 1)
    more_timeline = shown + TIMELINE_PAGE if len(timeline) > shown else None
    timeline = timeline[:shown]
    suggestions = []
    for s in store.customer_suggestions(customer_id):
        other = s["customer_b"] if s["customer_a"] == customer_id else s["customer_a"]
        if s["score"] >= identity.SUGGEST_THRESHOLD and store.customer_visible(other, team_ids):
            suggestions.append({**s, "other": store.customer_record(other),
                                "reasons_list": customers.reasons_of(s)})
    owner = None
    if record["owner_agent_id"]:
        owner = next((a for a in store.agent_choices() if a["id"] == record["owner_agent_id"]), None)
    return render_template(
        "customers/show.html", customer=record, identities=store.identities_of(customer_id),
        claims=store.claims_of(customer_id), attributes=store.customer_attributes(customer_id),
        notes=store.customer_notes(customer_id), conversations=conversations, timeline=timeline,
        suggestions=suggestions, merges=store.merges_into(customer_id), agents=store.agent_choices(), owner=owner,
        more_timeline=more_timeline,
        is_admin=access.is_admin(current_agent()),
        check_ins=store.check_ins.started(customer_id=customer_id, team_ids=team_ids, limit=20),
        check_in_outcome=checkins.outcome,
    )


@bp.post("/customers/<int:customer_id>/notes")
@login_required
def add_note(customer_id: int):
    _live_visible(customer_id)
    text = request.form.get("text", "").strip()
    if not text:
        flash(_("Write a note first."), "error")
    elif len(text) > MAX_NOTE_CHARS:
        flash(_("A note can be at most %(n)d characters.", n=MAX_NOTE_CHARS), "error")
    else:
        store = get_store()
        now = now_iso()
        with store.write():
            note_id = store.add_customer_note(customer_id, _agent_id(), text, now)
            store.audit(now, _actor(), "customer_note_added", "customer", customer_id, note=note_id)
        flash(_("Note added."), "success")
    return redirect(url_for("customers.show", customer_id=customer_id) + "#notes")


@bp.post("/customers/<int:customer_id>/edit")
@login_required
def edit(customer_id: int):
    record = _live_visible(customer_id)
    store = get_store()
    now = now_iso()
    action = request.form.get("action")
    with store.write():
        if action == "details":
            fields: dict[str, Any] = {
                "display_name": request.form.get("display_name", record["display_name"]).strip()[:MAX_FIELD_CHARS],
                "locale": request.form.get("locale", "").strip()[:20] or None,
            }
            owner = request.form.get("owner_agent_id", "")
            if owner == "":
                fields["owner_agent_id"] = None
            elif owner.isdigit() and int(owner) in {a["id"] for a in store.agent_choices()}:
                fields["owner_agent_id"] = int(owner)
            else:
                abort(400)
            if access.is_admin(current_agent()) and "crm_ref" in request.form:
                ref = request.form.get("crm_ref", "").strip()[:MAX_FIELD_CHARS] or None
                if ref and store.customer_by_crm_ref(ref) not in (None, customer_id):
                    flash(_("Another customer has this CRM reference."), "error")
                    return redirect(url_for("customers.show", customer_id=customer_id))
                fields["crm_ref"] = ref
            changed = store.update_customer(customer_id, fields, now)
            if changed:
                store.audit(now, _actor(), "customer_updated", "customer", customer_id, fields=changed)
        elif action == "attribute":
            key = request.form.get("key", "").strip()[:MAX_ATTRIBUTE_KEY]
            value = request.form.get("value", "").strip()[:MAX_FIELD_CHARS]
            if not key:
                flash(_("Give the attribute a name."), "error")
                return redirect(url_for("customers.show", customer_id=customer_id))
            if store.set_customer_attribute(customer_id, key, value or None, now):
                store.audit(now, _actor(), "customer_attribute_set", "customer", customer_id, key=key)
        else:
            abort(400)
    flash(_("Saved."), "success")
    return redirect(url_for("customers.show", customer_id=customer_id))


@bp.post("/customers/<int:customer_id>/merge")
@login_required
def merge_with(customer_id: int):
    """Merge another customer (by id) into this page's customer, as an agent decides."""
    _live_visible(customer_id)
    other = request.form.get("other", "").strip().lstrip("#")
    if not other.isdigit() or int(other) == customer_id:
        flash(_("Give the number of another customer."), "error")
        return redirect(url_for("customers.show", customer_id=customer_id))
    _live_visible(int(other))
    store = get_store()
    try:
        merge_id = customers.merge(store, customer_id, int(other), agent_id=_agent_id(), now=now_iso(),
                                   force=request.form.get("force") == "1")
    except MergeConflict as exc:
        flash(_("Not merged: both customers have a different %(kinds)s. Tick “merge anyway” if you are sure.",
                kinds=", ".join(exc.conflicts)), "error")
        return redirect(url_for("customers.show", customer_id=customer_id))
    survivor = store.customer_merge(merge_id)["survivor_id"]
    flash(_("Customers merged. You can undo this below."), "success")
    return redirect(url_for("customers.show", customer_id=survivor) + "#merges")


@bp.post("/customers/merges/<int:merge_id>/undo")
@login_required
def undo_merge(merge_id: int):
    store = get_store()
    try:
        merge = store.customer_merge(merge_id)
    except NotFound:
        abort(404)
    visible_customer(merge["survivor_id"])
    try:
        store.unmerge_customers(merge_id, agent_id=_agent_id(), now=now_iso())
    except UnmergeRefused as exc:
        flash(_("This merge cannot be undone: %(reason)s", reason=str(exc)), "error")
        return redirect(url_for("customers.show", customer_id=merge["survivor_id"]))
    flash(_("Merge undone: both customers are back as they were."), "success")
    return redirect(url_for("customers.show", customer_id=merge["survivor_id"]))


# Suggestions ------------------------------------------------------------------------------------

@bp.get("/customers/suggestions")
@login_required
def suggestions():
    store = get_store()
    team_ids = _team_ids()
    page = max(1, min(request.args.get("page", 1, type=int) or 1, 10_000))
    rows = store.open_suggestions(team_ids, min_score=identity.SUGGEST_THRESHOLD, limit=PAGE_SIZE + 1,
                                  offset=(page - 1) * PAGE_SIZE)
    more = len(rows) > PAGE_SIZE
    items = []
    for row in rows[:PAGE_SIZE]:
        sides = []
        for cid in (row["customer_a"], row["customer_b"]):
            sides.append({"record": store.customer_record(cid), "identities": store.identities_of(cid),
                          "claims": store.claims_of(cid),
                          "conversations": len(store.customer_conversations(cid, team_ids))})
        items.append({**row, "sides": sides, "reasons_list": customers.reasons_of(row),
                      "conflicts": store.merge_conflicts(row["customer_a"], row["customer_b"])})
    return render_template("customers/suggestions.html", suggestions=items, page=page, more=more,
                           total=store.count_open_suggestions(team_ids, min_score=identity.SUGGEST_THRESHOLD))


def _visible_suggestion(suggestion_id: int) -> dict[str, Any]:
    store = get_store()
    try:
        row = store.suggestion(suggestion_id)
    except NotFound:
        abort(404)
    team_ids = _team_ids()
    if not (store.customer_visible(row["customer_a"], team_ids) and store.customer_visible(row["customer_b"],
                                                                                          team_ids)):
        abort(404)
    return row


@bp.post("/customers/suggestions/<int:suggestion_id>/confirm")
@login_required
def confirm(suggestion_id: int):
    row = _visible_suggestion(suggestion_id)
    if row["status"] != "open":
        flash(_("This suggestion was already decided."), "info")
        return redirect(url_for("customers.suggestions"))
    store = get_store()
    try:
        merge_id = customers.confirm_suggestion(store, suggestion_id, agent_id=_agent_id(), now=now_iso(),
                                                force=request.form.get("force") == "1")
    except MergeConflict as exc:
        flash(_("Not merged: both customers have a different %(kinds)s. Tick “merge anyway” if you are sure.",
                kinds=", ".join(exc.conflicts)), "error")
        return redirect(url_for("customers.suggestions"))
    survivor = store.customer_merge(merge_id)["survivor_id"]
    flash(_("Merged into customer #%(id)d. You can undo this on the customer's page.", id=survivor), "success")
    return redirect(url_for("customers.suggestions"))


@bp.post("/customers/suggestions/<int:suggestion_id>/reject")
@login_required
def reject(suggestion_id: int):
    row = _visible_suggestion(suggestion_id)
    if row["status"] == "open":
        customers.reject_suggestion(get_store(), suggestion_id, agent_id=_agent_id(), now=now_iso())
        flash(_("Kept apart. This pair will not be suggested again."), "success")
    return redirect(url_for("customers.suggestions"))


# Privacy (admins) ------------------------------------------------------------------------------

@bp.post("/customers/<int:customer_id>/export")
@admin_only
def export(customer_id: int):
    visible_customer(customer_id)
    store = get_store()
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (closed by send_file)
    privacy.write_export(store, mainland().attachment_store(), customer_id, spool, actor=_actor())
    spool.seek(0)
    name = f"customer-{customer_id}.zip"
    response = send_file(spool, mimetype="application/zip", as_attachment=True, download_name=name)
    response.headers["Content-Disposition"] = content_disposition(name)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/customers/<int:customer_id>/erase")
@admin_only
def erase(customer_id: int):
    record = visible_customer(customer_id)
    if record["merged_into"] is not None:
        abort(409)
    if request.form.get("confirm", "").strip() != str(customer_id):
        flash(_("Not erased: type the customer number to confirm."), "error")
        return redirect(url_for("customers.show", customer_id=customer_id))
    result = privacy.erase_customer(get_store(), mainland().attachment_store(), customer_id, actor=_actor())
    flash(_("Customer #%(id)d erased: %(messages)d messages and %(conversations)d conversations are gone.",
            id=customer_id, messages=result["messages"], conversations=result["conversations"]), "success")
    return redirect(url_for("customers.index"))


# Import (admins) -------------------------------------------------------------------------------

@bp.route("/admin/customers/import", methods=["GET", "POST"])
@admin_only
def import_page():
    if request.method != "POST":
        return render_template("customers/import.html", report=None, mapping_text="", dry_run=True, fields=import_fields())
    upload = request.files.get("file")
    mapping_text = request.form.get("mapping", "")[:10_000]
    dry_run = request.form.get("dry_run") == "1"
    error = None
    report = None
    if upload is None or not upload.filename:
        error = _("Choose a CSV file.")
    else:
        data = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            error = _("The file is larger than %(n)d MB.", n=MAX_UPLOAD_BYTES // (1024 * 1024))
        else:
            try:
                mapping = parse_mapping(re.split(r"[\r\n]+", mapping_text))
                report = import_csv(get_store(), decode(data), mapping, dry_run=dry_run, region=_region(),
                                    keep_rows=500)
            except CustomerImportError as exc:
                error = str(exc)
    if report is not None and not dry_run:
        store = get_store()
        now = now_iso()
        with store.write():
            store.audit(now, _actor(), "customers_imported", None, None, **report.counts)
    status = 400 if error else 200
    return render_template("customers/import.html", report=report, error=error, mapping_text=mapping_text,
                           dry_run=dry_run, fields=import_fields(), action_label=lambda a: str(ACTION_LABELS.get(a, a))), status


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(reason_label=reason_label)
    app.jinja_env.filters["json_pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2)
