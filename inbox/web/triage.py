"""The people's side of the triage flow (#14, inbox/triage_flow.py).

- `/review/triage` (leads, managers, admins): suspicious items, and audit samples of the machine's
  own verdicts, oldest first, of conversations the reader may see. One key decides: `c` customer
  (the conversation enters the queue, its clock counted from its arrival), `s` spam; `j`/`k` move.
  Agents do not decide here: each decision teaches the one model every channel shares and can let a
  whole sender's mail into everyone's queue, which is a lead's call. An agent still marks a
  conversation of theirs spam or not spam on its page, which teaches the model as well.
- `/conversations/<id>/block` and `/unblock` (leads+): block the sender's address, their mail domain
  or their network handle; later items from it are spam on every channel.
- `/admin/blocks` (admins): every block, and removing one.

Every decision, block and unblock is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Flask, abort, flash, jsonify, redirect, render_template, request, url_for

from inbox import access, clock, routing, service_levels, triage_flow
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.store.base import iso
from inbox.store.queue import _team_filter
from inbox.store.triage import SpamBlock
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, role_required

bp = Blueprint("triage", __name__)

LEAD_ROLES = ("lead", "manager", "admin")
lead_required = role_required(*LEAD_ROLES)
admin_required = role_required("admin")

REASONS = {
    triage_flow.REASON_BLOCKED: _l("blocked sender"),
    triage_flow.REASON_UPSTREAM: _l("the mail server's spam filter"),
    triage_flow.REASON_MODEL: _l("the spam model"),
    triage_flow.REASON_KNOWN_CUSTOMER: _l("known customer: never spam by words alone"),
    triage_flow.REASON_NO_MODEL: _l("no spam model installed"),
    triage_flow.REASON_PERSON: _l("a person decided"),
}
VERDICTS = {
    triage_flow.CLEAN: _l("clean"),
    triage_flow.SUSPICIOUS: _l("suspicious"),
    triage_flow.SPAM: _l("spam"),
}
BLOCK_KINDS = {
    "address": _l("address"),
    "domain": _l("domain"),
    "handle": _l("handle"),
}


def init_app(app: Flask) -> None:
    app.jinja_env.globals["triage_block_offers"] = lambda conversation: blockable(get_store(), conversation)
    app.jinja_env.globals["pending_triage_count"] = _waiting_count


def _waiting_count() -> int:
    """Items waiting in /review/triage that the signed-in lead may decide (the menu's badge)."""
    store = get_store()
    return store.triage.waiting_count(*_team_filter(access.visible_team_ids(store, current_agent())))


def _now() -> dt.datetime:
    return clock.now()


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


# The review list ------------------------------------------------------------------------------------

@bp.get("/review/triage")
@lead_required
def index():
    store = get_store()
    team_sql, team_params = _team_filter(access.visible_team_ids(store, current_agent()))
    items = store.triage.waiting(team_sql, team_params)
    return render_template("review/triage.html", items=items, reasons=REASONS, verdicts=VERDICTS)


@bp.post("/review/triage/<int:review_id>/decide")
@lead_required
def decide(review_id: int):
    store = get_store()
    review = store.triage.review(review_id)
    if review is None:
        abort(404)
    access.require_conversation(store, current_agent(), review.conversation_id)
    verdict = request.form.get("verdict", "")
    if verdict not in (triage_flow.CUSTOMER, triage_flow.SPAM):
        abort(400)
    now = _now()
    try:
        triage_flow.decide(store, triage_flow.model_for(mainland()), review_id, verdict, agent=current_agent(),
                           now=now)
    except triage_flow.TriageError:
        message = _("Someone has already decided on this one.")
        if _wants_json():
            return jsonify(ok=False, error=message), 409
        flash(message, "error")
        return redirect(url_for("triage.index"))
    if verdict == triage_flow.CUSTOMER:
        _into_queue(store, review.conversation_id, now)
        message = _("Not spam: the conversation is in the queue.")
    else:
        message = _("Spam: kept out of the queue.")
    if _wants_json():
        return jsonify(ok=True, message=message)
    flash(message, "success")
    return redirect(url_for("triage.index"))


def _into_queue(store: Any, conversation_id: int, now: dt.datetime) -> None:
    """Due times from the first message on, and routing, for a conversation that enters the queue."""
    service_levels.refresh(store, service_levels.for_config(mainland().config), [conversation_id], now)
    routing.route_new(store, [conversation_id], now)


def taught_status_change(store: Any, conversation: dict[str, Any], new_status: str, agent: dict[str, Any],
                         now: dt.datetime) -> None:
    """A person moved a conversation into or out of spam on its page: teach the model (inbox/web/conversations)."""
    was_spam = conversation["status"] == triage_flow.SPAM
    if was_spam == (new_status == triage_flow.SPAM):
        return
    triage_flow.mark_conversation(store, triage_flow.model_for(mainland()), conversation["id"],
                                  is_spam=new_status == triage_flow.SPAM, agent=agent, now=now)
    if was_spam:
        service_levels.refresh(store, service_levels.for_config(mainland().config), [conversation["id"]], now)


# Blocks -----------------------------------------------------------------------------------------------

def blockable(store: Any, conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """What the conversation page offers to block: each identity of the customer, and the domain of each
    email address, with the blocks already in place."""
    offers: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for identity in store.customer_identities(conversation["customer_id"]):
        kind = "address" if identity["kind"] == "email" else "handle"
        candidates = [(kind, identity["kind"], identity["value"])]
        if identity["kind"] == "email" and "@" in identity["value"]:
            candidates.append(("domain", "email", identity["value"].rsplit("@", 1)[1]))
        for key in candidates:
            if key in seen:
                continue
            seen.add(key)
            offers.append({"kind": key[0], "identity_kind": key[1], "value": key[2]})
    blocks = {(b.kind, b.identity_kind if b.kind != "domain" else "email", b.value): b
              for offer in offers for b in store.triage.blocks_matching(offer["identity_kind"], offer["value"])}
    for offer in offers:
        offer["block"] = blocks.get((offer["kind"], offer["identity_kind"], offer["value"]))
    return offers


def _offer(store: Any, conversation: dict[str, Any]) -> dict[str, Any]:
    wanted = (request.form.get("kind", ""), request.form.get("identity_kind", ""), request.form.get("value", ""))
    for offer in blockable(store, conversation):
        if (offer["kind"], offer["identity_kind"], offer["value"]) == wanted:
            return offer
    abort(400)


@bp.post("/conversations/<int:conversation_id>/block")
@lead_required
def block(conversation_id: int):
    store = get_store()
    conversation = access.require_conversation(store, current_agent(), conversation_id)
    offer = _offer(store, conversation)
    now = iso(_now())
    agent = current_agent()
    with store.write():
        block_id = store.triage.add_block(offer["kind"], offer["identity_kind"], offer["value"],
                                          agent_id=agent["id"], now=now)
        if block_id is not None:
            store.audit(now, f"agent:{agent['id']}", "sender_blocked", "block", block_id,
                        kind=offer["kind"], identity_kind=offer["identity_kind"], value=offer["value"],
                        conversation=conversation_id)
    flash(_("Blocked: later messages from %(value)s go straight to spam, on every channel.", value=offer["value"]),
          "success")
    return redirect(url_for("conversations.show", conversation_id=conversation_id))


@bp.post("/conversations/<int:conversation_id>/unblock")
@lead_required
def unblock(conversation_id: int):
    store = get_store()
    conversation = access.require_conversation(store, current_agent(), conversation_id)
    offer = _offer(store, conversation)
    if offer["block"] is None:
        abort(400)
    _remove_block(store, offer["block"], conversation=conversation_id)
    flash(_("Unblocked: %(value)s.", value=offer["value"]), "success")
    return redirect(url_for("conversations.show", conversation_id=conversation_id))


def _remove_block(store: Any, block: SpamBlock, **details: Any) -> None:
    now = iso(_now())
    agent = current_agent()
    with store.write():
        if store.triage.remove_block(block.id):
            store.audit(now, f"agent:{agent['id']}", "sender_unblocked", "block", block.id, kind=block.kind,
                        identity_kind=block.identity_kind, value=block.value, **details)


@bp.get("/admin/blocks")
@admin_required
def blocks():
    return render_template("admin/blocks.html", blocks=get_store().triage.blocks(), kinds=BLOCK_KINDS)


@bp.post("/admin/blocks/<int:block_id>/remove")
@admin_required
def remove_block(block_id: int):
    store = get_store()
    found = store.triage.block(block_id)
    if found is None:
        abort(404)
    _remove_block(store, found)
    flash(_("Unblocked: %(value)s.", value=found.value), "success")
    return redirect(url_for("triage.blocks"))
