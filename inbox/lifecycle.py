"""A conversation's life: which status changes an agent may make, snoozing, and waking up.

The rules are pure functions over plain values so that the web, the worker and tests share one
definition:

- `new` is where every conversation starts; nobody sets it by hand. Replying moves a new
  conversation to `open` (the outbox does that when it queues the reply).
- An agent moves a conversation between `open`, `pending` (waiting for the customer),
  `snoozed` (out of sight until a time), `resolved` and `spam`.
- A new message from the customer reopens `resolved`, `pending` and `snoozed` conversations
  (inbox/ingest.py); automatic mail (auto-replies, bounces) does not. `spam` stays spam.
- A snoozed conversation wakes up (back to `open`) when its time comes: `wake_snoozed` is run
  by the worker every minute. Leaving `snoozed` in any way clears `snoozed_until` (a trigger
  in the schema does that, so no writer can forget it).
- A conversation merged into another one is closed for changes: work happens in the target.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from inbox import clock
from inbox.store import Store
from inbox.store.base import iso, parse_iso

STATUSES = ("new", "open", "pending", "snoozed", "resolved", "spam")
#: The statuses an agent can choose.
SETTABLE = ("open", "pending", "snoozed", "resolved", "spam")
#: What a customer's new message reopens.
REOPENED_BY_INBOUND = ("resolved", "pending", "snoozed")

#: The shortest and longest snooze accepted.
MIN_SNOOZE = dt.timedelta(minutes=1)
MAX_SNOOZE = dt.timedelta(days=366)

#: The snooze choices offered in the page, as (key, duration).
SNOOZE_PRESETS: tuple[tuple[str, dt.timedelta], ...] = (
    ("1h", dt.timedelta(hours=1)),
    ("4h", dt.timedelta(hours=4)),
    ("1d", dt.timedelta(days=1)),
    ("3d", dt.timedelta(days=3)),
    ("1w", dt.timedelta(weeks=1)),
)

#: Priorities: stored as numbers so that the queue sorts on them.
PRIORITIES = (0, 1, 2, 3, 4)  # none, low, medium, high, urgent


class TransitionRefused(ValueError):
    """The change is not allowed; the message says why (in English; the web translates by `code`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Transition:
    """The fields a status change writes."""

    status: str
    snoozed_until: str | None


def transition(current: str, target: str, *, now: dt.datetime, snooze_until: dt.datetime | None = None,
               merged: bool = False) -> Transition:
    """The change from `current` to `target`, or TransitionRefused."""
    if merged:
        raise TransitionRefused("merged", "this conversation was merged into another one")
    if current not in STATUSES:
        raise TransitionRefused("unknown", f"unknown current status {current!r}")
    if target not in SETTABLE:
        raise TransitionRefused("invalid", f"{target!r} cannot be chosen")
    if target == "snoozed":
        if snooze_until is None:
            raise TransitionRefused("snooze_missing", "snoozing needs a time to wake up")
        if snooze_until.tzinfo is None:
            snooze_until = snooze_until.replace(tzinfo=dt.UTC)
        if snooze_until < now + MIN_SNOOZE:
            raise TransitionRefused("snooze_past", "the wake-up time must be in the future")
        if snooze_until > now + MAX_SNOOZE:
            raise TransitionRefused("snooze_far", "the wake-up time is more than a year away")
        return Transition("snoozed", iso(snooze_until))
    return Transition(target, None)


def after_inbound(current: str, *, automatic: bool) -> str:
    """The status after a customer's message arrives (what inbox/ingest.py does in SQL)."""
    if automatic:
        return current
    return "open" if current in REOPENED_BY_INBOUND else current


def should_wake(status: str, snoozed_until: str | None, now: dt.datetime) -> bool:
    """Whether a snoozed conversation's time has come."""
    if status != "snoozed" or not snoozed_until:
        return False
    moment = parse_iso(snoozed_until)
    return moment is not None and moment <= now


_RELATIVE = re.compile(r"^\+?(\d{1,4})\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_snooze(value: str, now: dt.datetime) -> dt.datetime | None:
    """A wake-up time from a form: a preset key ("4h"), a relative "+90m", or an ISO date-time.

    A date-time without a zone is taken as UTC (the page's script sends the browser's own zone).
    None when the value cannot be read.
    """
    value = (value or "").strip()
    if not value or len(value) > 40:
        return None
    for key, delta in SNOOZE_PRESETS:
        if value == key:
            return now + delta
    match = _RELATIVE.match(value)
    if match:
        return now + dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def wake_snoozed(store: Store, now: dt.datetime | None = None) -> list[int]:
    """Reopen every snoozed conversation whose time has come; returns their ids."""
    moment = now or clock.now()
    with store.write():
        return store.wake_snoozed(iso(moment))
