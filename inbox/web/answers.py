"""The answer library pages, and the two JSON endpoints the reply composer's answer picker uses.

Everyone signed in reads and uses the library; leads, managers and admins write it. Every edit
is a new version and the page of an answer shows each version with what changed.

- `GET /conversations/<id>/suggested-answers`: the best answers for the customer's latest
  message, in their language (inbox/answers.py), plus a search over the library (`?q=`).
- `POST /answers/<id>/render` with `{"conversation_id": n}`: the answer with its variables filled
  in and adapted to that conversation's channel (inbox/channel_format.py), with warnings worded
  for the agent. Rendering is inserting: the pick is remembered for later suggestions.

Both check the conversation with `inbox.access.require_conversation`, so an id of a conversation
the agent may not see answers 404 like an unknown one.

Import and export (#13, inbox/answer_transfer.py), for those who write the library:
`POST /answers/export` downloads it as YAML or CSV; `POST /answers/import` shows what a file would
change, and `POST /answers/import/confirm` imports it. Nothing changes on GET or HEAD.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from inbox import access, clock
from inbox import answer_transfer as transfer
from inbox import answers as library
from inbox.channel_format import FormatWarning
from inbox.i18n import LANGUAGES
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.store import NotFound as StoreNotFound
from inbox.store.answers import Answer, AnswerVersion
from inbox.store.base import iso
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required, role_required
from inbox.web.conversations import content_disposition

bp = Blueprint("answers", __name__)

#: Who may write the library.
LEAD_ROLES = ("lead", "manager", "admin")
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 10_000
MAX_QUERY_CHARS = 500
#: Where the session keeps the token of the upload waiting for confirmation.
IMPORT_SESSION_KEY = "answer_import"

PERSONAL_DATA_LABELS = {
    "email": _l("an email address"),
    "phone": _l("a phone number"),
    "iban": _l("a bank account number"),
    "postcode": _l("a postcode"),
    "customer_record": _l("details from the customer's record"),
}

IMPORT_FIELD_LABELS = {
    "title": _l("title"),
    "tags": _l("tags"),
    "active": _l("in use"),
    "body": _l("text"),
}

lead_required = role_required(*LEAD_ROLES)


def is_lead(agent: dict[str, Any] | None) -> bool:
    return bool(agent) and agent["role"] in LEAD_ROLES


def _now() -> dt.datetime:
    return clock.now()


def _answer_or_404(answer_id: int) -> Answer:
    try:
        return get_store().answers.get(answer_id)
    except StoreNotFound:
        abort(404)


def language_choices() -> dict[str, str]:
    """Languages an answer can be written in: the UI's, plus any already in the library."""
    choices = dict(LANGUAGES)
    for code in get_store().answers.languages():
        choices.setdefault(code, code)
    return choices


def warning_text(warning: FormatWarning) -> str:
    """One warning of `channel_format.adapt`, worded for the agent."""
    params = warning.params
    if warning.code == "formatting_removed":
        return _("This channel shows no formatting: the answer was turned into plain text.")
    if warning.code == "too_long":
        return _("Too long for this channel: %(length)d characters where at most %(max)d fit. A shorter version "
                 "(%(short)d characters) is suggested.", length=params["length"], max=params["max"],
                 short=params["short_length"])
    if warning.code == "personal_data_public":
        kinds = ", ".join(str(PERSONAL_DATA_LABELS.get(k, k)) for k in params["kinds"])
        return _("This reply is public and contains %(kinds)s. Move the conversation to a private message "
                 "before sending it.", kinds=kinds)
    if warning.code == "missing_variables":
        names = ", ".join("{{" + n + "}}" for n in params["names"])
        return _("No value for %(names)s: it stays in the text for you to fill in.", names=names)
    return warning.code


# The library ---------------------------------------------------------------------------------------

@bp.get("/answers")
@login_required
def index():
    store = get_store()
    agent = current_agent()
    query = (request.args.get("q") or "")[:MAX_QUERY_CHARS]
    language = request.args.get("language") or ""
    archived = request.args.get("archived") == "1" and is_lead(agent)
    rows = store.answers.all(active=False if archived else True, language=language or None)
    found = library.search(query, rows)
    return render_template("answers/index.html", answers=found, query=query, language=language, archived=archived,
                           languages=language_choices(), can_edit=is_lead(agent))


@bp.get("/answers/<int:answer_id>")
@login_required
def show(answer_id: int):
    answer = _answer_or_404(answer_id)
    versions = get_store().answers.versions(answer_id)
    # What each version changed, by version number (the first version changed nothing: it is not here).
    changes = {newer.version: _changes(older, newer) for newer, older in zip(versions, versions[1:], strict=False)}
    return render_template("answers/show.html", answer=answer, versions=versions, changes=changes,
                           variables=library.variables_in(answer.body), can_edit=is_lead(current_agent()),
                           languages=language_choices())


def _changes(older: AnswerVersion, newer: AnswerVersion) -> dict[str, Any]:
    """What an edit changed: the fields, and the body's lines removed and added."""
    fields = [f for f in ("title", "language", "tags") if getattr(older, f) != getattr(newer, f)]
    lines = []
    for line in difflib.unified_diff(older.body.splitlines(), newer.body.splitlines(), lineterm="", n=1):
        if line.startswith(("---", "+++", "@@")):
            continue
        lines.append({"kind": {"+": "added", "-": "removed"}.get(line[:1], "same"), "text": line[1:]})
    return {"fields": fields, "lines": lines}


def _form_values() -> tuple[dict[str, Any], dict[str, str]]:
    return check_answer(request.form)


def check_answer(fields: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """An answer's title, text, language and tags as they are saved, and what is wrong with them (by
    field). The editor and the import (inbox/answer_transfer.py) both check answers with this."""
    values = {
        "title": " ".join(str(fields.get("title") or "").split())[:MAX_TITLE_CHARS + 1],
        "body": str(fields.get("body") or "").replace("\r\n", "\n").strip(),
        "language": str(fields.get("language") or "").strip().lower(),
        "tags": library.normalise_tags(fields.get("tags") or ""),
    }
    errors = {}
    if not values["title"]:
        errors["title"] = _("Give the answer a title.")
    elif len(values["title"]) > MAX_TITLE_CHARS:
        errors["title"] = _("Use at most %(n)d characters.", n=MAX_TITLE_CHARS)
    if not values["body"]:
        errors["body"] = _("Write the answer.")
    elif len(values["body"]) > MAX_BODY_CHARS:
        errors["body"] = _("Use at most %(n)d characters.", n=MAX_BODY_CHARS)
    if not re.fullmatch(r"[a-z]{2,3}", values["language"]):
        errors["language"] = _("Choose a language.")
    unknown = [v for v in library.variables_in(values["body"])
               if v not in library.KNOWN_VARIABLES and not v.startswith("attribute:")]
    if unknown:
        errors["body"] = _("Unknown variable %(name)s. Use %(known)s or {{attribute:key}}.",
                           name="{{" + unknown[0] + "}}",
                           known=", ".join("{{" + v + "}}" for v in library.KNOWN_VARIABLES))
    return values, errors


@bp.route("/answers/new", methods=["GET", "POST"])
@lead_required
def create():
    values: dict[str, Any] = {"title": "", "body": "", "language": current_agent().get("locale") or "en", "tags": []}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values, errors = _form_values()
        if not errors:
            store = get_store()
            answer_id = store.answers.create(title=values["title"], body=values["body"], language=values["language"],
                                             tags=values["tags"], owner_id=current_agent()["id"], now=iso(_now()))
            flash(_("Answer saved."), "success")
            return redirect(url_for("answers.show", answer_id=answer_id))
    return render_template("answers/form.html", answer=None, values=values, errors=errors,
                           languages=language_choices(), known=library.KNOWN_VARIABLES), 400 if errors else 200


@bp.route("/answers/<int:answer_id>/edit", methods=["GET", "POST"])
@lead_required
def edit(answer_id: int):
    answer = _answer_or_404(answer_id)
    values: dict[str, Any] = {**dataclasses.asdict(answer), "tags": (answer.tags or "").split()}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values, errors = _form_values()
        if not errors:
            version = get_store().answers.update(answer_id, title=values["title"], body=values["body"],
                                                 language=values["language"], tags=values["tags"],
                                                 editor_id=current_agent()["id"], now=iso(_now()))
            if version == answer.version:
                flash(_("Nothing changed."), "success")
            else:
                flash(_("Saved as version %(n)d.", n=version), "success")
            return redirect(url_for("answers.show", answer_id=answer_id))
    return render_template("answers/form.html", answer=answer, values=values, errors=errors,
                           languages=language_choices(), known=library.KNOWN_VARIABLES), 400 if errors else 200


@bp.post("/answers/<int:answer_id>/active")
@lead_required
def set_active(answer_id: int):
    _answer_or_404(answer_id)
    active = request.form.get("active") == "1"
    get_store().answers.set_active(answer_id, active, iso(_now()))
    flash(_("The answer is back in use.") if active else _("The answer is archived: it is no longer suggested."),
          "success")
    return redirect(url_for("answers.show", answer_id=answer_id))


# Import and export (#13) ---------------------------------------------------------------------------

def _audit(action: str, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(iso(_now()), f"agent:{current_agent()['id']}", action, "answer_library", None,
                    ip=request.remote_addr, **details)


def _pending() -> transfer.PendingImports:
    return transfer.PendingImports(mainland().config.data_dir / "answer-imports")


@bp.post("/answers/export")
@lead_required
def export():
    """The whole library (or only the answers in use) as YAML or CSV, named by today's date."""
    kind = "csv" if request.form.get("format") == "csv" else "yaml"
    active_only = request.form.get("active") == "1"
    now = _now()
    rows = get_store().answers.all(active=True if active_only else None)
    if kind == "csv":
        body, mimetype = transfer.export_csv(rows), "text/csv; charset=utf-8"
    else:
        body, mimetype = transfer.export_yaml(rows, now), "application/yaml; charset=utf-8"
    _audit("answers_exported", format=kind, answers=len(rows), active_only=active_only)
    name = transfer.export_filename(kind, now, active_only=active_only)
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = content_disposition(name)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/answers/import", methods=["GET", "POST"])
@lead_required
def import_file():
    """Upload a file and see what importing it would do; nothing changes before the confirmation."""
    if request.method != "POST":  # GET and HEAD: the upload form, whatever the request carries
        return render_template("answers/import.html", error=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("answers/import.html", error=_("Choose a file to import.")), 400
    try:
        entries = transfer.read_upload(upload.filename, upload.read(transfer.MAX_FILE_BYTES + 1))
    except transfer.TransferError as exc:
        return render_template("answers/import.html", error=str(exc)), 400
    plan = transfer.plan_import(entries, get_store().answers.all(active=None), check_answer)
    previous = session.pop(IMPORT_SESSION_KEY, None)
    if previous:
        _pending().discard(previous)
    token = _pending().save(agent_id=current_agent()["id"], filename=upload.filename[:200], entries=entries,
                            promised=transfer.fingerprint(plan), now=_now())
    session[IMPORT_SESSION_KEY] = token
    return _preview(plan, token, upload.filename[:200])


def _preview(plan: list[transfer.PlannedEntry], token: str, filename: str, notice: str | None = None):
    return render_template("answers/preview.html", plan=plan, counts=transfer.counts(plan), token=token,
                           filename=filename, notice=notice, languages=language_choices(),
                           field_labels=IMPORT_FIELD_LABELS)


@bp.post("/answers/import/confirm")
@lead_required
def import_confirm():
    """Import what the preview showed: the upload waits on the server under the session's token and is
    checked again against the library as it is now; if that changes what the preview promised, the new
    preview is shown instead."""
    token = request.form.get("token") or ""
    expected = session.get(IMPORT_SESSION_KEY) or ""
    agent = current_agent()
    pending = _pending().load(expected, agent_id=agent["id"], now=_now()) if expected else None
    if pending is None or not hmac.compare_digest(token.encode(), expected.encode()):
        error = (_("This preview was replaced by a newer one. Import from the newest preview, or upload the file "
                   "again.") if pending is not None else
                 _("This preview has expired or was already imported. Upload the file again."))
        return render_template("answers/import.html", error=error), 400
    store = get_store()
    with store.write():
        plan = transfer.plan_import(pending["entries"], store.answers.all(active=None), check_answer)
        if transfer.fingerprint(plan) != pending["promised"]:
            changed_plan = plan
        else:
            changed_plan = None
            result = store.answers.apply_import(
                creates=[p.values for p in plan if p.status == "new"],
                updates=[(p.answer_id, p.values) for p in plan if p.status == "changed"],
                agent_id=agent["id"], now=iso(_now()))
            tally = transfer.counts(plan)
            store.audit(iso(_now()), f"agent:{agent['id']}", "answers_imported", "answer_library", None,
                        ip=request.remote_addr, filename=pending["filename"], created=result.created,
                        updated=result.updated, unchanged=tally["unchanged"], invalid=tally["invalid"])
    if changed_plan is not None:
        _pending().discard(expected)
        token = _pending().save(agent_id=agent["id"], filename=pending["filename"], entries=pending["entries"],
                                promised=transfer.fingerprint(changed_plan), now=_now())
        session[IMPORT_SESSION_KEY] = token
        return _preview(changed_plan, token, pending["filename"],
                        notice=_("The library changed since the preview (someone edited it). Check the entries "
                                 "again before importing.")), 409
    _pending().discard(expected)
    session.pop(IMPORT_SESSION_KEY, None)
    flash(_("Imported: %(created)d new and %(updated)d changed answers.", created=result.created,
            updated=result.updated), "success")
    return redirect(url_for("answers.index"))


# The composer's picker -----------------------------------------------------------------------------

@bp.get("/conversations/<int:conversation_id>/suggested-answers")
@login_required
def suggested(conversation_id: int):
    store = get_store()
    access.require_conversation(store, current_agent(), conversation_id)
    query = (request.args.get("q") or "")[:MAX_QUERY_CHARS].strip()
    found = library.suggest(store, conversation_id)
    result: dict[str, Any] = {
        "ok": True, "language": found["language"], "all_languages": found["all_languages"],
        "suggestions": [s.as_json() for s in found["suggestions"]],
    }
    if query:
        rows = store.answers.all(language=found["language"]) if not found["all_languages"] else store.answers.all()
        result["results"] = [_brief(a) for a in library.search(query, rows, limit=20)]
    return jsonify(result)


def _brief(answer: Answer) -> dict[str, Any]:
    return {"id": answer.id, "title": answer.title, "body": answer.body, "language": answer.language,
            "tags": (answer.tags or "").split(), "version": answer.version}


@bp.post("/answers/<int:answer_id>/render")
@login_required
def render(answer_id: int):
    store = get_store()
    agent = current_agent()
    data = request.get_json(silent=True) if request.is_json else request.form
    try:
        conversation_id = int((data or {}).get("conversation_id"))
    except (TypeError, ValueError):
        return jsonify(ok=False, error=_("Say which conversation the answer is for.")), 400
    if not 0 < conversation_id < 2**63:
        return jsonify(ok=False, error=_("Say which conversation the answer is for.")), 400
    conversation = access.require_conversation(store, agent, conversation_id)
    answer = _answer_or_404(answer_id)
    if not answer.active:
        abort(404)
    connector_cls = _reply_connector(conversation)
    if connector_cls is None:
        return jsonify(ok=False, error=_("This conversation's channel is not configured, so replies cannot be "
                                         "sent.")), 409
    context = store.answers.context(conversation_id)
    adapted = library.render(answer.body, dataclasses.asdict(context), agent_name=agent.get("name") or None,
                             connector_cls=connector_cls)
    store.answers.record_use(answer_id, answer.version, conversation_id, agent["id"],
                             library.conversation_language(context), iso(_now()))
    return jsonify(ok=True, answer_id=answer_id, version=answer.version, text=adapted.text,
                   short_text=adapted.short_text, length=adapted.length, max_length=adapted.max_length,
                   fits=adapted.fits, formatting=adapted.formatting,
                   warnings=[{"code": w.code, "message": warning_text(w)} for w in adapted.warnings])


def _reply_connector(conversation: dict[str, Any]) -> Any:
    """The connector class that sends this conversation's replies (a web form's goes by email)."""
    land = mainland()
    channel = land.config.channels.get(conversation["channel"])
    if channel is None:
        return None
    via = channel.settings.get("reply_channel") or conversation["channel"]
    try:
        return land.connector_class(via)
    except KeyError:
        return None
