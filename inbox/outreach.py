"""Writing first: a new conversation to a customer, and approved templates (#12).

Everything else Mainland sends answers a customer's message. Here an agent writes first:

- **Start a conversation** (`start_conversation`) to one of the customer's identities, or to a new
  email address (`customer_for_address` finds or makes its customer), on a configured channel whose
  connector declares it can (`limits.starts_conversations`: "any", or "template" where only an
  approved template may open a conversation, as on WhatsApp) and writes to that identity's kind
  (`Connector.writes_to`). The rule is `inbox.sendability.decide_start`. The conversation is made
  assigned to the agent and `pending` (waiting for the customer), and our message is its first
  message, queued in the outbox like any reply (with the undo window); its outbox row names the
  handle it goes to (m022), so the connector sends it threaded to nothing. The customer's answer
  joins it: by the conversation token in our Message-ID (email) or the thread key the connector
  gives their handle (`Connector.thread_key_for`).
- **A template in an existing conversation** (`queue_template_reply`): when a channel's reply
  window is closed, an approved template may still go out; it is queued as a reply whose outbox
  row carries the template, and its text (what the thread shows) is the filled body.

Trainees' replies are held for a lead's review (inbox/review.py), but a held reply is free text to
the message it answers: neither a new conversation nor a template can be held yet, so a trainee is
refused both (`StartRefused`) and asks a lead.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from connectors.base import ConnectorError
from inbox import clock, review, sendability, service_levels
from inbox.config import ConfigError
from inbox.conversations import unused_token
from inbox.i18n import gettext
from inbox.i18n import lazy_gettext as _l
from inbox.identity import normalize_email
from inbox.mail import conversation_message_id
from inbox.models import MessageTemplate, TemplateInfo
from inbox.store.base import iso

#: The longest subject and text an agent may start a conversation with.
MAX_SUBJECT = 200
MAX_TEXT = 20_000
MAX_PARAMETER = 1024

MESSAGES = {
    "review": _l("Your replies are reviewed by a lead before they go out, and a new conversation or a template "
                 "cannot be held for review yet: ask a lead to send it."),
    "no_template": _l("Pick one of the approved templates."),
    "parameters": _l("Fill in every variable of the template."),
    "parameter_too_long": _l("A template variable can be at most %(max)d characters."),
    "empty": _l("Write a message first."),
    "too_long": _l("The message is too long."),
    "subject": _l("Write a subject first."),
    "address": _l("That is not an email address."),
    "no_channel": _l("No configured channel can start a conversation by email."),
    "identity": _l("Choose one of the customer's addresses."),
}


class StartRefused(Exception):
    """The message cannot be sent; `reason` says why in the agent's words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refused(code: str, **params: Any) -> StartRefused:
    return StartRefused(gettext(str(MESSAGES[code]), **params))


@dataclass
class StartOption:
    """One of the customer's identities, and the channels that can start a conversation to it."""

    identity: dict[str, Any]
    targets: list[sendability.StartTarget] = field(default_factory=list)
    #: Why no channel can (in the agent's words), when `targets` is empty.
    reason: str | None = None


def start_options(mainland: Any, store: Any, customer_id: int) -> list[StartOption]:
    """Every identity of the customer, each with the channels that may start a conversation to it now."""
    options = []
    for ident in store.identities_of(customer_id):
        option = StartOption(identity=ident)
        reasons = []
        for channel in sorted(mainland.config.channels):
            decision = sendability.decide_start(mainland, store, customer_id, channel=channel, handle=ident["value"],
                                                identity_kind=ident["kind"], template=True)
            if decision.allowed and decision.start is not None:
                option.targets.append(decision.start)
            elif decision.code not in ("cannot_start", "channel_gone"):
                reasons.append(decision.reason)
        if not option.targets:
            option.reason = reasons[0] if reasons else gettext(
                "No configured channel can start a conversation to this address: the customer has to write first.")
        options.append(option)
    return options


def email_channels(mainland: Any) -> list[str]:
    """Configured channels that can start a conversation to an email address with free text."""
    found = []
    for channel in sorted(mainland.config.channels):
        target, _why = sendability.start_target(mainland, channel, "", "email")
        if target is not None and not target.needs_template:
            found.append(channel)
    return found


def templates_for(mainland: Any, channel: str) -> tuple[list[TemplateInfo], str | None]:
    """The channel's approved templates, and the channel's error when it could not be asked."""
    try:
        connector = mainland.connector(channel)
    except (KeyError, ConnectorError, ConfigError) as exc:
        return [], str(exc)
    try:
        return list(connector.message_templates()), None
    except ConnectorError as exc:
        return [], connector.redact(str(exc))
    finally:
        connector.close()


def resolve_template(mainland: Any, channel: str, key: str, parameters: list[str]) -> tuple[MessageTemplate, str]:
    """The template `key` ("name|language") of the channel, filled with `parameters`: the template to
    send and its body as the customer reads it. StartRefused when it is not approved or not filled."""
    templates, _error = templates_for(mainland, channel)
    chosen = next((t for t in templates if f"{t.name}|{t.language}" == key), None)
    if chosen is None:
        raise refused("no_template")
    values = [str(p).strip() for p in parameters[:chosen.variables]]
    if len(values) < chosen.variables or not all(values):
        raise refused("parameters")
    if any(len(v) > MAX_PARAMETER for v in values):
        raise refused("parameter_too_long", max=MAX_PARAMETER)
    return MessageTemplate(chosen.name, chosen.language, tuple(values)), chosen.filled(values)


def customer_for_address(store: Any, address: str, *, name: str = "", actor: str = "system",
                         now: dt.datetime | None = None) -> int:
    """The customer who has this email address, or a new one made for it (in one write transaction)."""
    value = normalize_email(address)
    if value is None:
        raise refused("address")
    now_text = iso(now or clock.now())
    with store.write():
        found = store.identity_owner("email", value)
        if found is not None:
            return found
        customer_id = store.create_customer_record(name.strip()[:200], now_text)
        store.add_identity(customer_id, "email", value, value, True, now_text)
        store.audit(now_text, actor, "customer_created_for_outreach", "customer", customer_id)
        return customer_id


def start_conversation(mainland: Any, store: Any, customer_id: int, *, channel: str, handle: str, identity_kind: str,
                       text: str, agent: dict[str, Any], subject: str = "", template: MessageTemplate | None = None,
                       hold_seconds: float = 0, now: dt.datetime | None = None,
                       owner: dict[str, Any] | None = None) -> tuple[int, str]:
    """Open a conversation with our message as its first one; returns (conversation id, outbox id).

    `text` is the message (for a template: its filled body, what the thread shows). The conversation
    is assigned to `owner` (a check-in started for the customer's own agent, inbox/checkins.py),
    else to the writing `agent`. StartRefused when `inbox.sendability.decide_start` refuses, or for a
    trainee (see the module docstring).
    """
    now = now or clock.now()
    now_text = iso(now)
    text = (text or "").replace("\r\n", "\n")
    if review.needs_review(store, agent):
        raise refused("review")
    if not text.strip():
        raise refused("empty")
    if len(text) > MAX_TEXT:
        raise refused("too_long")
    decision = sendability.decide_start(mainland, store, customer_id, channel=channel, handle=handle,
                                        identity_kind=identity_kind, template=template is not None, text=text)
    if not decision.allowed or decision.start is None:
        raise StartRefused(decision.reason)
    target = decision.start
    subject = " ".join(subject.split())[:MAX_SUBJECT]
    outbox_id = uuid.uuid4().hex
    assignee = owner or agent
    with store.write():
        token = unused_token(store)
        conversation_id = store.outreach.create_conversation(
            token=token, customer_id=customer_id, channel=channel, thread_key=target.thread_key, subject=subject,
            agent_id=assignee["id"], team_id=_team_for(store, assignee, customer_id), now=now_text)
        # A Message-ID naming the conversation: the customer's answer threads to it (email).
        message_id = conversation_message_id(token, outbox_id, mainland.config.mail_domain).strip("<>")
        store.queue_outbound(
            outbox_id=outbox_id, conversation_id=conversation_id, channel=channel, agent_id=agent["id"], text=text,
            html=None, subject=subject, message_id=message_id, refs="", author_name=agent.get("name") or "",
            now=now_text, next_at=iso(now + dt.timedelta(seconds=hold_seconds)) if hold_seconds > 0 else None)
        store.outreach.set_outbox_start(outbox_id, to_handle=handle, to_name=_customer_name(store, customer_id),
                                        to_kind=identity_kind, template=_template_json(template))
        store.audit(now_text, f"agent:{agent['id']}", "conversation_started", "conversation", conversation_id,
                    customer=customer_id, channel=channel, kind=identity_kind,
                    template=template.name if template else None)
        service_levels.refresh(store, service_levels.for_config(mainland.config), [conversation_id], now)
    return conversation_id, outbox_id


def queue_template_reply(mainland: Any, store: Any, conversation: dict[str, Any], template: MessageTemplate,
                         body: str, *, agent: dict[str, Any], hold_seconds: float = 0,
                         now: dt.datetime | None = None) -> str:
    """Queue an approved template as the reply in `conversation` (allowed with the window closed);
    returns the outbox id. The reply's text is the filled `body`, as the thread shows it."""
    from inbox.outbox import queue_reply

    now = now or clock.now()
    if review.needs_review(store, agent):
        raise refused("review")
    # Templates are what a closed window allows: the rest of the rule (erased, spam, loop guard) applies.
    decision = sendability.decide(mainland, store, conversation, kind=sendability.AGENT_REPLY, outside_window=True,
                                  now=now)
    if not decision.allowed or decision.target is None:
        raise StartRefused(decision.reason)
    with store.write():
        outbox_id = queue_reply(mainland, store, conversation["id"], body, agent=agent, now=now, reviewed=True,
                                hold_seconds=hold_seconds, target=decision.target)
        store.outreach.set_outbox_start(outbox_id, template=_template_json(template))
        store.audit(iso(now), f"agent:{agent['id']}", "template_sent", "conversation", conversation["id"],
                    template=template.name, language=template.language)
    return outbox_id


def _template_json(template: MessageTemplate | None) -> dict[str, Any] | None:
    if template is None:
        return None
    return {"name": template.name, "language": template.language, "parameters": list(template.parameters)}


def _customer_name(store: Any, customer_id: int) -> str:
    try:
        return store.customer_record(customer_id).get("display_name") or ""
    except Exception:  # a customer without a record row (tests that build one bare)
        return ""


def _team_for(store: Any, agent: dict[str, Any], customer_id: int) -> int | None:
    """The team the new conversation belongs to: the agent's team (the one of the customer's latest
    conversation when the agent is in several), so the agent and their colleagues see it."""
    teams = store.agent_team_ids(agent["id"])
    if not teams:
        return None
    for conversation in store.customer_conversations(customer_id, teams):
        if conversation.get("team_id") in teams:
            return conversation["team_id"]
    return min(teams)
