"""Automatic acknowledgements: a short receipt when a customer starts a conversation.

Optional per channel and off by default (`channels.<name>.acknowledgement: {enabled: true, every: 24h}`,
docs/sending.md). When a new conversation starts from a customer's message on such a channel, the
worker's `acknowledgements` job (never the ingest transaction itself) queues a receipt through the
outbox like any reply, answering that message. It names the expected first-response time: the
service level's *desired* first-response target for the channel, in business hours when business
hours apply (inbox/service_levels.py), in the customer's language (English or Dutch).

The receipt is an automatic message (flags `auto_submitted` and `acknowledgement`: email marks it
`Auto-Submitted`, threaded to the customer's mail by In-Reply-To/References). It is recorded in
the thread, but is no answer: the conversation stays new and the first-response clock keeps
running. It goes only where `inbox.sendability` allows an automatic message: never to automatic mail
(auto-replies, bounces, lists, our own addresses), never in public, never to spam, to an erased
customer or an unreadable sender, never for an item released from quarantine; and at most once per sender and channel within `every`
(default 24 hours; the moment is stored per sender, `store.sendability.record_acknowledgement`).

The job reads new messages after a watermark (`notification_marks.acknowledgements`), set to the
newest message the first time it runs: turning acknowledgements on never answers old mail.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inbox import clock, sendability, service_levels
from inbox.models import FLAG_ACKNOWLEDGEMENT, FLAG_AUTO_SUBMITTED
from inbox.store.base import iso, parse_iso

log = logging.getLogger("mainland.acknowledgements")

DEFAULT_EVERY = dt.timedelta(hours=24)
LANGUAGES = ("en", "nl")

TEXTS = {
    "en": {
        "target": ("Thank you for your message. We have received it and will answer within {time}.\n\n"
                   "This message was sent automatically; there is no need to reply to it."),
        "no_target": ("Thank you for your message. We have received it and will answer as soon as we can.\n\n"
                      "This message was sent automatically; there is no need to reply to it."),
        "minutes": ("1 minute", "{n} minutes"),
        "hours": ("1 hour", "{n} hours"),
        "business_hours": ("1 business hour", "{n} business hours"),
        "days": ("1 day", "{n} days"),
    },
    "nl": {
        "target": ("Bedankt voor uw bericht. We hebben het ontvangen en antwoorden binnen {time}.\n\n"
                   "Dit bericht is automatisch verstuurd; u hoeft er niet op te antwoorden."),
        "no_target": ("Bedankt voor uw bericht. We hebben het ontvangen en antwoorden zo snel mogelijk.\n\n"
                      "Dit bericht is automatisch verstuurd; u hoeft er niet op te antwoorden."),
        "minutes": ("1 minuut", "{n} minuten"),
        "hours": ("1 uur", "{n} uur"),
        "business_hours": ("1 werkuur", "{n} werkuren"),
        "days": ("1 dag", "{n} dagen"),
    },
}


@dataclass(frozen=True)
class Settings:
    """A channel's acknowledgement settings."""

    enabled: bool = False
    every: dt.timedelta = DEFAULT_EVERY


def settings_for(channel_settings: Mapping[str, Any] | None) -> Settings:
    """The `acknowledgement` settings of one channel (off when absent). `true` turns it on with defaults."""
    raw = (channel_settings or {}).get("acknowledgement")
    if raw is None or raw is False:
        return Settings()
    if raw is True:
        return Settings(enabled=True)
    every = raw.get("every")
    return Settings(enabled=bool(raw.get("enabled", True)),
                    every=service_levels.parse_duration(every, "acknowledgement.every") if every is not None
                    else DEFAULT_EVERY)


def check_config(channels: Mapping[str, Any]) -> list[str]:
    """Problems in the channels' `acknowledgement` settings, each with its key path."""
    problems = []
    for name, channel in channels.items():
        raw = channel.settings.get("acknowledgement")
        where = f"channels.{name}.acknowledgement"
        if raw is None or isinstance(raw, bool):
            continue
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: must be true, false or a mapping (enabled, every)")
            continue
        unknown = sorted(set(raw) - {"enabled", "every"})
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)} (known: enabled, every)")
        try:
            settings_for(channel.settings)
        except service_levels.PolicyError as exc:
            problems.append(f"channels.{name}.{exc}")
    return problems


# The text --------------------------------------------------------------------------------------------

def expected_time(target: dt.timedelta, locale: str, *, business: bool) -> str:
    """A first-response target in words ("2 hours", "4 business hours", "30 minuten")."""
    texts = TEXTS[locale]
    minutes = max(1, round(target.total_seconds() / 60))
    if minutes < 60:
        unit, n = "minutes", minutes
    elif business:
        unit, n = "business_hours", -(-minutes // 60)
    elif minutes >= 48 * 60 and minutes % (24 * 60) == 0:
        unit, n = "days", minutes // (24 * 60)
    else:
        unit, n = "hours", -(-minutes // 60)
    one, many = texts[unit]
    return one if n == 1 else many.format(n=n)


def text(levels: service_levels.ServiceLevels, channel: str, priority: int | None, team_name: str | None,
         locale: str) -> str:
    """The receipt in `locale`, naming the desired first-response target of the channel's policy."""
    locale = locale if locale in LANGUAGES else "en"
    target = levels.policy_for(channel, priority).first_response
    if target is None:
        return TEXTS[locale]["no_target"]
    business = not levels.hours_for(team_name).always_open
    return TEXTS[locale]["target"].format(time=expected_time(target.desired, locale, business=business))


# The worker's job ------------------------------------------------------------------------------------

@dataclass
class AcknowledgementRun:
    sent: int = 0
    skipped: int = 0


def run(mainland: Any, store: Any, now: dt.datetime | None = None) -> AcknowledgementRun:
    """Acknowledge every conversation started since the watermark on a channel that wants it."""
    now = now or clock.now()
    result = AcknowledgementRun()
    with store.write():
        _mark, rows = store.sendability.conversations_started_since_mark()
        for row in rows:
            if row.direction != "in" or not row.first:
                continue
            channel = mainland.config.channels.get(row.channel)
            conf = settings_for(channel.settings if channel else None)
            if not conf.enabled:
                continue
            if acknowledge(mainland, store, row.conversation_id, row.id, conf, now):
                result.sent += 1
            else:
                result.skipped += 1
        if rows:
            store.notifications.move_mark("acknowledgements", rows[-1].id)
    return result


def acknowledge(mainland: Any, store: Any, conversation_id: int, message_id: int, conf: Settings,
                now: dt.datetime) -> bool:
    """Queue the receipt for message `message_id` if the sending rule and the per-sender period allow it."""
    from inbox.outbox import ReplyRefused, queue_reply

    if store.sendability.from_quarantine(message_id):
        log.debug("no acknowledgement in conversation %s: the message was released from quarantine", conversation_id)
        return False
    conversation = store.conversation(conversation_id)
    levels = service_levels.for_config(mainland.config)
    team = store.team(conversation["team_id"]) if conversation.get("team_id") else None
    customer = store.customer(conversation["customer_id"]) or {}
    locale = (customer.get("locale") or mainland.config.default_language or "en")[:2]
    body = text(levels, conversation["channel"], conversation.get("priority"), (team or {}).get("name"), locale)
    decision = sendability.decide(mainland, store, conversation, kind=sendability.ACKNOWLEDGEMENT, text=body,
                                  answering=message_id, now=now)
    if not decision.allowed:
        log.debug("no acknowledgement in conversation %s: %s", conversation_id, decision.reason)
        return False
    target = decision.target
    handle = target.recipient or ""
    last = parse_iso(store.sendability.acknowledged_at(target.channel, handle))
    if last is not None and now - last < conf.every:
        log.debug("no acknowledgement in conversation %s: %s was acknowledged at %s", conversation_id, handle,
                  iso(last))
        return False
    try:
        queue_reply(mainland, store, conversation_id, body, now=now, target=target,
                    flags=(FLAG_AUTO_SUBMITTED, FLAG_ACKNOWLEDGEMENT))
    except ReplyRefused as exc:
        log.info("no acknowledgement in conversation %s: %s", conversation_id, exc)
        return False
    # A receipt is no answer: the conversation stays as it was, its first-response clock running.
    store.sendability.keep_unanswered(conversation_id, status=conversation["status"],
                                      first_response_at=conversation.get("first_response_at"))
    service_levels.refresh(store, levels, [conversation_id], now)
    store.sendability.record_acknowledgement(target.channel, handle, conversation_id, iso(now))
    return True
