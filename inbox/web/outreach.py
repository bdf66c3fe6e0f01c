"""Pages for writing first (#12): a new conversation, and WhatsApp-style templates in the composer.

- `GET|POST /customers/<id>/conversations/new`: choose one of the customer's identities that a
  configured channel can start a conversation to (the others are listed with the reason), a subject
  (mail) and the text, or for a channel that starts conversations only by template the template
  picker (`templates/conversations/_template_picker.html`).
  With `?check_in=<basis>` it starts a check-in (inbox/checkins.py): pre-filled from the answer
  library's check-in answer, assigned to the customer's own agent, and remembered as started.
- `GET|POST /conversations/new`: the same to a new email address; the customer who has it is found,
  or one is made.
- `POST /conversations/<id>/template`: the composer's "Send a template" when the reply window is
  closed on a channel with templates.

Access follows the customer pages: a customer (or conversation) the agent may not see is 404. A new
address that belongs to a customer the agent may not see is refused, so that writing to it cannot
open another team's customer record. Every send is a POST with the CSRF token, queued through the
outbox with the undo window, and audit-logged (`inbox.outreach`). The rules are
`inbox.sendability.decide_start` and `decide`.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for

from inbox import access, checkins, clock, outreach
from inbox.i18n import gettext as _
from inbox.identity import normalize_email
from inbox.models import TemplateInfo
from inbox.outbox import undo_seconds
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, login_required
from inbox.web.customers import visible_customer

bp = Blueprint("outreach", __name__)

MAX_PARAMETERS = 20


def _visible_customer(customer_id: int) -> dict[str, Any]:
    """The customer page's rule (hidden and unknown look the same), and no writing to a merged record."""
    record = visible_customer(customer_id)
    if record.get("merged_into") is not None:
        abort(404)
    return record


def _visible_conversation(conversation_id: int) -> dict[str, Any]:
    return access.require_conversation(get_store(), current_agent(), conversation_id)


def _picker(channel: str) -> dict[str, Any]:
    """What the template picker shows for `channel`: its templates (or why none could be read)."""
    templates, error = outreach.templates_for(mainland(), channel)
    return {"channel": channel, "templates": templates, "error": error,
            "variables": min(max((t.variables for t in templates), default=0), MAX_PARAMETERS),
            "data": [_template_data(t) for t in templates]}


def _template_data(template: TemplateInfo) -> dict[str, Any]:
    return {"key": f"{template.name}|{template.language}", "body": template.body, "variables": template.variables}


def _template_from_form(channel: str) -> tuple[Any, str]:
    key = request.form.get(f"template:{channel}") or ""
    parameters = request.form.getlist(f"param:{channel}")[:MAX_PARAMETERS]
    return outreach.resolve_template(mainland(), channel, key, parameters)


def _hold() -> float:
    return undo_seconds(mainland().config)


def _queued_message(hold: float) -> str:
    if hold:
        return _("Message queued: it is sent in %(n)s s unless you undo it.", n=math.ceil(hold))
    return _("Message queued: it is sent as soon as the channel accepts it.")


def _trainee() -> bool:
    from inbox import review

    return review.needs_review(get_store(), current_agent())


@bp.route("/customers/<int:customer_id>/conversations/new", methods=["GET", "POST"])
@login_required
def new_for_customer(customer_id: int):
    customer = _visible_customer(customer_id)
    check_in, check_in_gone = _check_in(customer_id)
    options = outreach.start_options(mainland(), get_store(), customer_id)
    form = _form_values()
    if check_in is not None and request.method == "GET":
        form.update(checkins.prefill(mainland(), get_store(), check_in, current_agent()))
    if not form["to"]:
        first = next((o for o in options if o.targets), None)
        form["to"] = f"{first.identity['id']}|{first.targets[0].channel}" if first else ""
    error = None
    if request.method == "POST":
        identity_id, _sep, channel = form["to"].partition("|")
        option = next((o for o in options if str(o.identity["id"]) == identity_id), None)
        target = next((t for t in option.targets if t.channel == channel), None) if option else None
        if target is None:
            error = _("Choose one of the customer's addresses.")
        else:
            started, error = _start(customer_id, target, owner=check_in.owner if check_in else None)
            if started is not None:
                if check_in is not None:
                    checkins.record_started(get_store(), check_in, conversation_id=started, channel=target.channel,
                                            agent=current_agent(), now=clock.now())
                return redirect(url_for("conversations.show", conversation_id=started), code=303)
    pickers = {t.channel: _picker(t.channel) for o in options for t in o.targets if t.needs_template}
    return render_template("conversations/new.html", customer=customer, options=options, pickers=pickers, form=form,
                           error=error, trainee=_trainee(), email_channels=[], check_in=check_in,
                           check_in_gone=check_in_gone), (400 if error else 200)


def _check_in(customer_id: int) -> tuple[checkins.Suggestion | None, bool]:
    """The check-in this page starts (`check_in`: its basis), and whether one was asked for that is
    no longer suggested to this agent (started meanwhile, skipped, or not theirs)."""
    basis = (request.values.get("check_in") or "").strip()
    if not basis:
        return None, False
    found = checkins.suggestion_for(mainland(), get_store(), current_agent(), customer_id, basis, now=clock.now())
    return found, found is None


@bp.route("/conversations/new", methods=["GET", "POST"])
@login_required
def new_to_address():
    channels = outreach.email_channels(mainland())
    form = _form_values()
    form["channel"] = request.form.get("channel") or (channels[0] if channels else "")
    error = None
    if request.method == "POST":
        started, error = _start_to_address(form, channels)
        if started is not None:
            return redirect(url_for("conversations.show", conversation_id=started), code=303)
    return render_template("conversations/new.html", customer=None, options=[], pickers={}, form=form, error=error,
                           trainee=_trainee(), email_channels=channels), (400 if error else 200)


@bp.post("/conversations/<int:conversation_id>/template")
@login_required
def send_template(conversation_id: int):
    """The composer's "Send a template": an approved template as the reply, with the window closed."""
    conversation = _visible_conversation(conversation_id)
    channel = request.form.get("channel") or ""
    picker = template_picker(conversation)
    if picker is None or picker["channel"] != channel:
        flash(_("Templates cannot be sent in this conversation."), "error")
        return redirect(url_for("conversations.show", conversation_id=conversation_id) + "#composer", code=303)
    hold = _hold()
    try:
        template, body = _template_from_form(channel)
        outreach.queue_template_reply(mainland(), get_store(), conversation, template, body, agent=current_agent(),
                                      hold_seconds=hold, now=clock.now())
    except outreach.StartRefused as exc:
        flash(exc.reason, "error")
        return redirect(url_for("conversations.show", conversation_id=conversation_id) + "#template-picker",
                        code=303)
    flash(_queued_message(hold), "success")
    return redirect(url_for("conversations.show", conversation_id=conversation_id) + "#composer", code=303)


def template_picker(conversation: dict[str, Any]) -> dict[str, Any] | None:
    """The composer's template picker for `conversation`, or None: only while the reply window is
    closed, on a channel whose connector lists approved templates."""
    if not conversation or conversation.get("merged_into"):
        return None
    from inbox import sendability

    store = get_store()
    decision = sendability.decide(mainland(), store, conversation, kind=sendability.AGENT_REPLY, now=clock.now())
    if decision.code != "window_closed" or decision.target is None:
        return None
    picker = _picker(decision.target.via)
    return picker if picker["templates"] else None


def _form_values() -> dict[str, str]:
    return {key: (request.form.get(key) or "") for key in ("to", "subject", "text", "address", "name")}


def _start_to_address(form: dict[str, str], channels: list[str]) -> tuple[int | None, str | None]:
    """A new conversation to the address typed: checked before any customer is made for it."""
    from inbox import sendability

    if form["channel"] not in channels:
        return None, _("No configured channel can start a conversation by email.")
    address = normalize_email(form["address"])
    if address is None:
        return None, _("That is not an email address.")
    if not form["subject"].strip():
        return None, _("Write a subject first.")
    if not form["text"].strip():
        return None, _("Write a message first.")
    store = get_store()
    agent = current_agent()
    decision = sendability.decide_start(mainland(), store, None, channel=form["channel"], handle=address,
                                        identity_kind="email", text=form["text"])
    if not decision.allowed or decision.start is None:
        return None, decision.reason
    owner = store.identity_owner("email", address)
    if owner is not None and store.customer_conversations(owner, None) and \
            not store.customer_visible(owner, access.visible_team_ids(store, agent)):
        return None, _("This address belongs to a customer of another team: ask a colleague of that team to write.")
    customer_id = outreach.customer_for_address(store, address, name=form["name"], actor=f"agent:{agent['id']}",
                                                now=clock.now())
    return _start(customer_id, decision.start)


def _start(customer_id: int, target: Any, owner: dict[str, Any] | None = None) -> tuple[int | None, str | None]:
    """Start the conversation on `target` from the form, assigned to `owner` (else the writer);
    (its id, None) or (None, why not)."""
    hold = _hold()
    try:
        template, text = (_template_from_form(target.channel) if target.needs_template
                          else (None, request.form.get("text", "")))
        subject = request.form.get("subject", "")
        if target.identity_kind == "email" and not subject.strip():
            return None, _("Write a subject first.")
        conversation_id, _outbox = outreach.start_conversation(
            mainland(), get_store(), customer_id, channel=target.channel, handle=target.handle,
            identity_kind=target.identity_kind, text=text, subject=subject, template=template, agent=current_agent(),
            hold_seconds=hold, now=clock.now(), owner=owner)
    except outreach.StartRefused as exc:
        return None, exc.reason
    flash(_queued_message(hold), "success")
    return conversation_id, None


def init_app(app: Flask) -> None:
    app.jinja_env.globals["template_picker"] = template_picker
