"""May we write to this customer now, and how: one rule for every message Mainland sends.

Every sender of a customer message asks `decide` first: an agent's reply (the conversation page),
a lead approving a trainee's reply (inbox/review.py), a satisfaction survey (inbox/csat.py) and an
automatic acknowledgement (inbox/acknowledgements.py). The answer is a `Decision`: allowed or not,
the reason in words that tell the agent what to do, and how the message goes out (`Target`: the
message it answers, its channel and thread, public or private, the reply window's end, the text
limit).

Where: a reply answers one inbound message, by default the customer's latest; an agent may pick
the latest message on another channel of the conversation (after a merge of an Instagram chat into
a Facebook comment thread, both are reachable). The reply goes out on that message's channel and
thread, never on the conversation's own: the thread is the one the message arrived in
(`store.sendability.origin_thread`), so a merged conversation's replies reach the right place.

Refusals, in order (the first one found is the reason):

- `merged`: the conversation was merged into another one;
- `nothing_to_answer`: no inbound message (or the chosen one is not the customer's);
- `channel_gone` / `sender_gone`: the channel, or the one that carries its replies, is not configured;
- `erased`: the customer's data was erased;
- `blocked`: the conversation is marked as spam;
- `invalid_sender`: the sender's address could not be parsed strictly (replies are off for it);
- `automatic` (surveys, acknowledgements only): the message answered, or the conversation, was
  automatic mail (auto-reply, bounce, list, loop): machines never get machine answers;
- `public` (surveys, acknowledgements only): an automatic message would be posted publicly;
- loop guard (IN-70: our own address, MAILER-DAEMON, no-reply, an address whose mail bounced or
  marked invalid): an admin may override it for an agent's reply, nobody for anything else;
- `window_closed`: the channel's reply window has closed; an agent (or reviewer) may send anyway
  (`outside_window`), an automatic message never is;
- `too_long`: longer than the channel takes.

A message that starts a conversation (`START`, #12) answers nothing, so it has its own check,
`decide_start`: to one of the customer's identities (or a new email address) on a channel whose
connector declares `limits.starts_conversations` and writes to that identity's kind. Refused, in
order: `erased` (the customer, or whoever held this address, was erased), `blocked` (the
customer's latest conversation is spam), `channel_gone`, `cannot_start` (the channel only answers,
or does not write to this kind of address), the loop guard (our own addresses, no-reply and
MAILER-DAEMON addresses, addresses whose mail bounced or marked invalid; nobody may override it
here), `template_required` (the channel starts conversations only with an approved template), and
`too_long`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inbox import clock
from inbox.i18n import gettext
from inbox.i18n import lazy_gettext as _l
from inbox.models import AUTOMATIC_FLAGS, FLAG_INVALID_SENDER
from inbox.store.base import parse_iso
from inbox.store.sendability import AnswerableMessage

#: What a message is: who sends it decides which refusals may be overridden and which apply at all.
AGENT_REPLY = "agent_reply"
REVIEW_APPROVAL = "review_approval"
SURVEY = "survey"
ACKNOWLEDGEMENT = "acknowledgement"
#: A library answer sent by an automation rule (inbox/rules.py): automatic, like an acknowledgement.
RULE_REPLY = "rule_reply"
KINDS = frozenset({AGENT_REPLY, REVIEW_APPROVAL, SURVEY, ACKNOWLEDGEMENT, RULE_REPLY})
#: A message that starts a new conversation (answers nothing): see `decide_start`.
START = "start"
#: Written by Mainland itself, not by a person: never to machines, never public, never late.
AUTOMATIC_KINDS = frozenset({SURVEY, ACKNOWLEDGEMENT, RULE_REPLY})

#: Local parts that never read replies: answering them starts mail loops (IN-70).
NO_REPLY_LOCAL_PARTS = frozenset({
    "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply", "mailer-daemon",
})

GUARD_MESSAGES = {
    "own_address": _l("The customer's address is one of Mainland's own addresses: a reply would loop back "
                      "into this inbox."),
    "mailer_daemon": _l("The message came from a mail server (MAILER-DAEMON): nobody reads replies to it, and "
                        "answering can start a mail loop."),
    "noreply": _l("The sender is a no-reply address: nobody reads replies to it, and answering can start a "
                  "mail loop."),
    "delivery_failed": _l("Earlier mail to this address could not be delivered."),
    "invalid": _l("The customer's address is marked invalid."),
}

REASONS = {
    "merged": _l("This conversation was merged into another one; work in that one."),
    "nothing_to_answer": _l("There is no message from the customer to answer."),
    "channel_gone": _l("This conversation's channel is no longer configured, so replies cannot be sent."),
    "sender_gone": _l("The channel that sends replies for this conversation is not configured."),
    "erased": _l("The customer's data was erased: there is nobody to write to."),
    "blocked": _l("This conversation is marked as spam. If the customer is real, open it again first."),
    "invalid_sender": _l("The sender's address could not be read reliably, so replies to this message are "
                         "off. Answer on another channel the customer uses."),
    "automatic": _l("The customer's message was sent automatically (an auto-reply, a bounce or a mailing "
                    "list): nobody would read an automatic answer."),
    "public": _l("The conversation is public: an automatic message would be posted for everyone to read."),
    "window_closed": _l("The channel's reply window closed at %(when)s: the channel will probably refuse the "
                        "reply. Tick the box to send it anyway."),
    "window_closed_automatic": _l("The channel's reply window closed at %(when)s: the channel would refuse "
                                  "an automatic message."),
    "too_long": _l("This channel takes at most %(max)d characters; the reply has %(n)d."),
    "guard": _l("Not sent: %(reason)s"),
    "cannot_start": _l("%(channel)s cannot start a conversation to this address: the customer has to write "
                       "first."),
    "template_required": _l("%(channel)s starts conversations only with an approved template: pick one."),
}


@dataclass(frozen=True)
class Target:
    """Where and how a message goes: the inbound message it answers and that message's channel."""

    message: AnswerableMessage
    #: The configured channel the message came in on, and the one that sends the reply
    #: (a web form's replies go out by email: its `reply_channel`).
    channel: str
    via: str
    thread_key: str | None
    public: bool
    channel_name: str
    channel_kind: str | None
    max_length: int | None
    formatting: str
    private_reply_possible: bool
    window_closes: dt.datetime | None
    #: How the channel counts a text against `max_length` (its connector's `measure_text`).
    measure: Callable[[str], int] = len

    @property
    def recipient(self) -> str | None:
        """Whom the message goes to: the answered message's Reply-To when it named one, else its author."""
        from inbox.outbox import reply_target  # not at the top: inbox.outbox imports this module

        return reply_target(self.message).handle or None

    @property
    def message_id(self) -> int:
        return self.message.id


@dataclass
class Decision:
    """Whether a message may go out now; if not, why (`code`, `reason`); and how (`target`)."""

    allowed: bool
    code: str | None = None
    target: Target | None = None
    #: The loop guard's finding (a key of GUARD_MESSAGES), also when an admin overrode it.
    guard: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: For a message that starts a conversation (`decide_start`): where it goes.
    start: StartTarget | None = None

    @property
    def reason(self) -> str:
        """The refusal in words that tell the agent what to do ("" when allowed)."""
        if self.code is None:
            return ""
        if self.code == "guard":
            return gettext(str(REASONS["guard"]), reason=str(GUARD_MESSAGES[self.guard or "invalid"]))
        return gettext(str(REASONS[self.code]), **self.params)

    @property
    def window_closed(self) -> bool:
        return self.code == "window_closed"


def loop_guard(handle: str | None, identities: list[dict[str, Any]], own_addresses: set[str]) -> str | None:
    """Why a reply to `handle` must not go out (a key of GUARD_MESSAGES), or None (IN-70)."""
    value = (handle or "").strip().lower()
    if not value:
        return None
    if "@" in value:
        if value in own_addresses:
            return "own_address"
        local = value.rsplit("@", 1)[0].split("+", 1)[0]
        if local == "mailer-daemon":
            return "mailer_daemon"
        if local in NO_REPLY_LOCAL_PARTS:
            return "noreply"
    for ident in identities:
        if (ident.get("value") or "").strip().lower() == value:
            if ident.get("delivery_failed"):
                return "delivery_failed"
            if not ident.get("valid", 1):
                return "invalid"
    return None


def decide(mainland: Any, store: Any, conversation: dict[str, Any], *, kind: str, text: str | None = None,
           answering: int | None = None, outside_window: bool = False, override_guard: bool = False,
           now: dt.datetime | None = None) -> Decision:
    """May a message of `kind` go out in `conversation` now, answering inbound message `answering`
    (default: the customer's latest), and how. `outside_window`: the writer accepts a closed reply
    window (people only); `override_guard`: an admin overrides the loop guard (agent replies only)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of message: {kind}")
    now = now or clock.now()
    if conversation.get("merged_into"):
        return Decision(False, "merged")
    message = _answered(store, conversation["id"], answering)
    if message is None:
        return Decision(False, "nothing_to_answer")
    target, refused = _target(mainland, store, conversation, message)
    if target is None:
        return Decision(False, refused)
    refusal = _refusal(store, conversation, target, kind)
    if refusal:
        return Decision(False, refusal, target)
    guard = loop_guard(target.recipient, store.customer_identities(conversation["customer_id"]),
                       mainland.config.own_addresses())
    if guard and not (override_guard and kind == AGENT_REPLY):
        return Decision(False, "guard", target, guard)
    if target.window_closes is not None and now >= target.window_closes:
        if kind in AUTOMATIC_KINDS:
            return Decision(False, "window_closed_automatic", target, guard, {"when": _when(target.window_closes)})
        if not outside_window:
            return Decision(False, "window_closed", target, guard, {"when": _when(target.window_closes)})
    if text is not None and target.max_length and target.measure(text) > target.max_length:
        return Decision(False, "too_long", target, guard, {"max": target.max_length, "n": target.measure(text)})
    return Decision(True, None, target, guard)


def reachable(mainland: Any, store: Any, conversation: dict[str, Any]) -> list[Target]:
    """Every channel of the conversation a reply can go out on (its latest message there), newest first."""
    found = []
    for message in store.sendability.answerable_messages(conversation["id"]):
        target, _refused = _target(mainland, store, conversation, message)
        if target is not None:
            found.append(target)
    return found


def _answered(store: Any, conversation_id: int, answering: int | None) -> AnswerableMessage | None:
    if answering is not None:
        return store.sendability.answerable_message(conversation_id, answering)
    latest = store.sendability.answerable_messages(conversation_id)
    return latest[0] if latest else None


def _target(mainland: Any, store: Any, conversation: dict[str, Any],
            message: AnswerableMessage) -> tuple[Target | None, str | None]:
    channel = message.channel
    config = mainland.config.channels.get(channel)
    if config is None:
        return None, "channel_gone"
    via = config.settings.get("reply_channel") or channel
    try:
        connector_class = mainland.connector_class(via)
    except KeyError:
        return None, "sender_gone"
    limits = connector_class.limits
    # The thread the message arrived in: a merge moved it, its thread stayed where it was.
    origin = store.sendability.origin_thread(message.id)
    thread_key = origin.thread_key if origin else conversation["thread_key"]
    public = bool(origin.public if origin else conversation["public"])
    window_closes = None
    if limits.reply_window_hours:
        last_in = parse_iso(_last_inbound_at(store, conversation, channel))
        if last_in is not None:
            window_closes = last_in + dt.timedelta(hours=limits.reply_window_hours)
    return Target(
        message=message, channel=channel, via=via, thread_key=thread_key, public=public,
        channel_name=connector_class.display_name, channel_kind=getattr(connector_class, "kind", None),
        max_length=limits.max_text_length, formatting=limits.formatting,
        private_reply_possible=public and limits.private_replies, window_closes=window_closes,
        measure=connector_class.measure_text,
    ), None


def _last_inbound_at(store: Any, conversation: dict[str, Any], channel: str) -> str | None:
    """When the customer last wrote on `channel`: the conversation's own record when that is the
    channel they wrote on last, else their last message on that channel."""
    latest = store.sendability.answerable_messages(conversation["id"])
    if latest and latest[0].channel == channel and conversation.get("last_inbound_at"):
        return conversation["last_inbound_at"]
    return store.sendability.latest_inbound_at(conversation["id"], channel)


def _refusal(store: Any, conversation: dict[str, Any], target: Target, kind: str) -> str | None:
    if not store.sendability.customer_exists(conversation.get("customer_id")):
        return "erased"
    # Erasure leaves no valid identity behind; a person may still answer a customer whose one
    # address is merely marked invalid (the loop guard says so, an admin may override it).
    if kind in AUTOMATIC_KINDS and store.customer_erased(conversation["customer_id"]):
        return "erased"
    if conversation.get("status") == "spam":
        return "blocked"
    flags = set((target.message.flags or "").split())
    if FLAG_INVALID_SENDER in flags:
        return "invalid_sender"
    if kind in AUTOMATIC_KINDS:
        conversation_flags = set((conversation.get("flags") or "").split())
        if flags & AUTOMATIC_FLAGS or conversation.get("automatic") or conversation_flags & AUTOMATIC_FLAGS:
            return "automatic"
        if target.public:
            return "public"
    return None


def _when(moment: dt.datetime) -> str:
    """The moment as the agent reads it (their locale's short format), or ISO outside a request."""
    try:
        from flask_babel import format_datetime

        return format_datetime(moment, "short")
    except (RuntimeError, KeyError, AttributeError):
        return moment.isoformat(timespec="minutes")


@dataclass(frozen=True)
class StartTarget:
    """Where a new conversation's first message goes: a configured channel and the handle on it."""

    channel: str
    handle: str
    identity_kind: str
    channel_name: str
    #: "any" or "template" (the connector's `limits.starts_conversations`).
    starts: str
    max_length: int | None
    formatting: str
    thread_key: str | None
    #: How the channel counts a text against `max_length` (its connector's `measure_text`).
    measure: Callable[[str], int] = len

    @property
    def needs_template(self) -> bool:
        return self.starts == "template"


def start_target(mainland: Any, channel: str, handle: str, identity_kind: str) -> tuple[StartTarget | None, str | None]:
    """The channel and handle a new conversation would go to, or why none (`channel_gone`, `cannot_start`)."""
    config = mainland.config.channels.get(channel)
    if config is None or not getattr(config, "enabled", True):
        return None, "channel_gone"
    try:
        connector_class = mainland.connector_class(channel)
    except KeyError:
        return None, "channel_gone"
    starts = connector_class.limits.starts_conversations
    if starts not in ("any", "template") or identity_kind not in getattr(connector_class, "writes_to", ()):
        return None, "cannot_start"
    return StartTarget(channel=channel, handle=handle, identity_kind=identity_kind,
                       channel_name=connector_class.display_name, starts=starts,
                       max_length=connector_class.limits.max_text_length, formatting=connector_class.limits.formatting,
                       thread_key=_thread_key(mainland, channel, handle),
                       measure=connector_class.measure_text), None


def _thread_key(mainland: Any, channel: str, handle: str) -> str | None:
    """The thread key the customer's answer will carry. Asked of the configured connector, not its
    class: some keys name our own account too (X's one-to-one DM id holds both user ids)."""
    connector = mainland.connector(channel)
    try:
        return connector.thread_key_for(handle)
    finally:
        connector.close()


def decide_start(mainland: Any, store: Any, customer_id: int | None, *, channel: str, handle: str,
                 identity_kind: str, template: bool = False, text: str | None = None) -> Decision:
    """May an agent start a conversation with `customer_id` (None: a customer yet to be made for a new
    address) on `channel` to `handle` (an identity of kind `identity_kind`)? `template`: the message is
    an approved template. The decision's `start` holds where it goes."""
    if customer_id is not None and not store.sendability.customer_exists(customer_id):
        return Decision(False, "erased")
    if store.outreach.identity_erased(identity_kind, handle):
        return Decision(False, "erased")
    if customer_id is not None and store.outreach.customer_blocked(customer_id):
        return Decision(False, "blocked")
    target, refused = start_target(mainland, channel, handle, identity_kind)
    if target is None:
        name = _display_name(mainland, channel)
        return Decision(False, refused, params={"channel": name})
    decision = Decision(True, start=target)
    identities = store.customer_identities(customer_id) if customer_id is not None else []
    guard = loop_guard(handle, identities, mainland.config.own_addresses())
    if guard:
        return Decision(False, "guard", guard=guard, start=target)
    if target.needs_template and not template:
        return Decision(False, "template_required", params={"channel": target.channel_name}, start=target)
    if text is not None and not template and target.max_length and target.measure(text) > target.max_length:
        return Decision(False, "too_long", params={"max": target.max_length, "n": target.measure(text)},
                        start=target)
    return decision


def _display_name(mainland: Any, channel: str) -> str:
    try:
        return mainland.connector_class(channel).display_name
    except KeyError:
        return channel


def default_target(mainland: Any, store: Any, conversation: dict[str, Any]) -> Target | None:
    """Where a reply goes without a choice: the customer's latest message, on its channel and thread
    (None when there is no message, or its channel is not configured)."""
    latest = store.sendability.answerable_messages(conversation["id"])
    return _target(mainland, store, conversation, latest[0])[0] if latest else None
