"""The command palette (Ctrl/Cmd+K): every common move on a conversation, found by typing.

`GET /conversations/<id>/commands` lists what the agent may do to that conversation right now, as
data: a label to fuzzy-match, a group, and what choosing it does (POST fields to an existing action
route, or insert an answer into the composer). static/palette.js draws the dialog; the actions
themselves are the same routes the buttons use, with the same checks, so the palette adds no power.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, url_for

from inbox import access
from inbox.answers import conversation_language
from inbox.i18n import gettext as _
from inbox.web import get_store
from inbox.web.auth import current_agent, login_required
from inbox.web.conversations import PRIORITY_LABELS, SNOOZE_LABELS, status_label

bp = Blueprint("palette", __name__)

#: Statuses offered in the palette, in the order agents use them.
PALETTE_STATUSES = ("open", "pending", "resolved", "spam")


def _post(group: str, label: str, url: str, **fields: Any) -> dict[str, Any]:
    return {"group": group, "label": label, "do": "post", "url": url,
            "fields": {k: str(v) for k, v in fields.items()}}


@bp.get("/conversations/<int:conversation_id>/commands")
@login_required
def commands(conversation_id: int):
    store = get_store()
    agent = current_agent()
    conversation = access.require_conversation(store, agent, conversation_id)
    status_url = url_for("conversations.change_status", conversation_id=conversation_id)
    assign_url = url_for("conversations.assign", conversation_id=conversation_id)
    found: list[dict[str, Any]] = []

    g_status, g_snooze, g_assign = _("Status"), _("Snooze"), _("Assign")
    for status in PALETTE_STATUSES:
        if status != conversation["status"]:
            found.append(_post(g_status, _("Set status: %(status)s", status=status_label(status)), status_url,
                               status=status))
    for key, label in SNOOZE_LABELS.items():
        found.append(_post(g_snooze, _("Snooze for %(when)s", when=str(label)), status_url,
                           status="snoozed", snooze=key))

    if conversation["assignee_id"] != agent["id"]:
        found.append(_post(g_assign, _("Assign to me"), assign_url, assignee="me"))
    if conversation["assignee_id"] is not None:
        found.append(_post(g_assign, _("Unassign"), assign_url, assignee=""))
    for other in store.agents():
        if other["active"] and other["id"] not in (agent["id"], conversation["assignee_id"]) \
                and access.can_see_conversation(store, other, conversation):
            found.append(_post(g_assign, _("Assign to %(name)s", name=other["name"] or other["email"]), assign_url,
                               assignee=other["id"]))
    for team in store.teams():
        if team["id"] != conversation["team_id"]:
            found.append(_post(_("Team"), _("Move to team %(team)s", team=team["name"]), assign_url,
                               team=team["id"]))

    labels_url = url_for("conversations.change_labels", conversation_id=conversation_id)
    for label in store.labels():
        found.append(_post(_("Label"), _("Add label %(label)s", label=label["name"]), labels_url, add=label["name"]))
    priority_url = url_for("conversations.set_priority", conversation_id=conversation_id)
    for value, label in PRIORITY_LABELS.items():
        if value != conversation["priority"]:
            found.append(_post(_("Priority"), _("Priority: %(priority)s", priority=str(label)), priority_url,
                               priority=value))

    context = store.answers.context(conversation_id)
    language = conversation_language(context) if context else None
    answers = store.answers.all(language=language) if language else store.answers.all()
    for answer in answers[:200]:
        found.append({"group": _("Insert answer"), "label": answer.title, "do": "answer",
                      "url": url_for("answers.render", answer_id=answer.id),
                      "fields": {"conversation_id": str(conversation_id)}})
    return jsonify(ok=True, commands=found)
