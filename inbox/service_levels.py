"""Service levels with two targets: what the customer desires, and what they still find adequate.

Three metrics are measured on every conversation, each against a *desired* and an *adequate*
target (`first_response: {desired: 1h, adequate: 4h}`):

- **first response**: from the customer's first message to our first reply;
- **next response**: each time the customer writes again after a reply of ours, until we answer;
- **resolution**: from the first message until the conversation is resolved (a reopened
  conversation carries on from where its clock stood).

Time counts only inside the business hours of the conversation's team (`inbox.business_hours`),
and never while the conversation is *pending* (waiting for the customer) or *snoozed*: those
pauses, and the time a conversation spends resolved before it is reopened, are not held against
us. One policy applies to every channel; a deliberate override per channel or per priority is
possible and is named as such (`Policy.name`), so that reports show it.

Everything here is a pure function of (policy, business hours, the conversation's events, now):
`measure()` gives every clock of one conversation, `due_columns()` the values stored on the
conversation row (which the queue sorts on), and `urgency()` the badge the queue shows.
Conversations started by a machine (auto-replies, bulk mail) and spam carry no service level.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from inbox import clock
from inbox.business_hours import BusinessHours, BusinessHoursError
from inbox.business_hours import from_config as hours_from_config
from inbox.store.base import iso, parse_iso

METRICS = ("first_response", "next_response", "resolution")
#: Statuses in which the clock runs; pending and snoozed pause it; resolved and spam stop it.
RUNNING = frozenset({"new", "open"})
PAUSED = frozenset({"pending", "snoozed"})

Level = Literal["desired", "adequate", "missed"]
Urgency = Literal["within_desired", "past_desired", "past_adequate"]

DEFAULT_TARGETS = {
    "first_response": ("1h", "4h"),
    "next_response": ("2h", "8h"),
    "resolution": ("24h", "72h"),
}
DEFAULT_WARN_BEFORE = dt.timedelta(minutes=15)


class PolicyError(ValueError):
    """A service-level setting that cannot be used; the message names the key."""


# Policies ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    desired: dt.timedelta
    adequate: dt.timedelta

    def level(self, elapsed: dt.timedelta) -> Level:
        if elapsed <= self.desired:
            return "desired"
        if elapsed <= self.adequate:
            return "adequate"
        return "missed"


@dataclass(frozen=True)
class Policy:
    """Targets per metric (None: that metric is not measured). `name` says where it comes from."""

    first_response: Target | None
    next_response: Target | None
    resolution: Target | None
    name: str = "default"

    @property
    def is_override(self) -> bool:
        return self.name != "default"

    def target(self, metric: str) -> Target | None:
        return getattr(self, metric)


@dataclass(frozen=True)
class Override:
    """A deliberate exception to the default policy for one channel and/or one priority."""

    policy: Policy
    channel: str | None = None
    priority: int | None = None

    def applies(self, channel: str, priority: int | None) -> bool:
        return ((self.channel is None or self.channel == channel)
                and (self.priority is None or self.priority == (priority or 0)))


@dataclass(frozen=True)
class ServiceLevels:
    """The configured policies, business hours per team and notification settings."""

    default: Policy
    overrides: tuple[Override, ...] = ()
    hours: BusinessHours = field(default_factory=BusinessHours.always)
    team_hours: Mapping[str, BusinessHours] = field(default_factory=dict)
    warn_before: dt.timedelta = DEFAULT_WARN_BEFORE
    notify: bool = True
    csat: Mapping[str, Any] = field(default_factory=dict)

    def policy_for(self, channel: str, priority: int | None = 0) -> Policy:
        """The first override that applies (most specific first), else the default."""
        ranked = sorted(self.overrides, key=lambda o: (o.channel is None) + (o.priority is None))
        for override in ranked:
            if override.applies(channel, priority):
                return override.policy
        return self.default

    def hours_for(self, team_name: str | None) -> BusinessHours:
        return self.team_hours.get(team_name or "", self.hours)


def parse_duration(value: Any, where: str) -> dt.timedelta:
    """`90` (seconds), `"30m"`, `"4h"`, `"2d"` (2 × 24 h of business time) -> timedelta."""
    if isinstance(value, bool):
        raise PolicyError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
        except (ValueError, IndexError) as exc:
            raise PolicyError(f"{where}: {value!r} is not a duration (use e.g. 30m, 4h, 2d)") from exc
    if seconds <= 0:
        raise PolicyError(f"{where}: must be more than zero")
    return dt.timedelta(seconds=seconds)


def _target(data: Any, where: str) -> Target | None:
    if data is None or data is False:
        return None
    if not isinstance(data, Mapping) or set(data) != {"desired", "adequate"}:
        raise PolicyError(f"{where}: give both targets, e.g. {{desired: 1h, adequate: 4h}}")
    desired = parse_duration(data["desired"], f"{where}.desired")
    adequate = parse_duration(data["adequate"], f"{where}.adequate")
    if adequate < desired:
        raise PolicyError(f"{where}: adequate ({data['adequate']}) is shorter than desired ({data['desired']})")
    return Target(desired, adequate)


def _policy(data: Mapping[str, Any], where: str, name: str, base: Policy | None) -> Policy:
    targets = {}
    for metric in METRICS:
        if metric in data:
            targets[metric] = _target(data[metric], f"{where}.{metric}")
        elif base is not None:
            targets[metric] = base.target(metric)
        else:
            desired, adequate = DEFAULT_TARGETS[metric]
            targets[metric] = Target(parse_duration(desired, ""), parse_duration(adequate, ""))
    return Policy(name=name, **targets)


_KNOWN = {"policy", "overrides", "business_hours", "teams", "warn_before", "notify", "csat"}


def from_config(data: Mapping[str, Any] | None) -> ServiceLevels:
    """The `service_levels:` config section as a `ServiceLevels`; raises PolicyError naming the key."""
    data = data or {}
    if not isinstance(data, Mapping):
        raise PolicyError("service_levels: must be a mapping")
    unknown = set(data) - _KNOWN
    if unknown:
        raise PolicyError(f"service_levels: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                          f"(known: {', '.join(sorted(_KNOWN))})")
    policy_data = data.get("policy") or {}
    if not isinstance(policy_data, Mapping) or set(policy_data) - set(METRICS):
        raise PolicyError(f"service_levels.policy: a mapping of {', '.join(METRICS)}")
    default = _policy(policy_data, "service_levels.policy", "default", None)
    overrides = []
    for index, item in enumerate(data.get("overrides") or ()):
        where = f"service_levels.overrides[{index}]"
        if not isinstance(item, Mapping) or ("channel" not in item and "priority" not in item):
            raise PolicyError(f"{where}: name a channel and/or a priority it applies to")
        if set(item) - {"channel", "priority", *METRICS}:
            raise PolicyError(f"{where}: only channel, priority and {', '.join(METRICS)}")
        channel = str(item["channel"]) if item.get("channel") is not None else None
        priority = item.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise PolicyError(f"{where}.priority: a whole number")
        parts = [f"channel {channel}" if channel else "", f"priority {priority}" if priority is not None else ""]
        name = "override: " + ", ".join(p for p in parts if p)
        overrides.append(Override(_policy(item, where, name, default), channel, priority))
    try:
        hours = hours_from_config(data.get("business_hours"))
        team_hours = {}
        for team, team_data in (data.get("teams") or {}).items():
            if not isinstance(team_data, Mapping) or set(team_data) - {"business_hours"}:
                raise PolicyError(f"service_levels.teams.{team}: only business_hours")
            try:
                team_hours[str(team)] = hours_from_config(team_data.get("business_hours"))
            except BusinessHoursError as exc:
                raise PolicyError(f"service_levels.teams.{team}.business_hours: {exc}") from None
    except BusinessHoursError as exc:
        raise PolicyError(f"service_levels.business_hours: {exc}") from None
    warn = data.get("warn_before")
    csat = data.get("csat") or {}
    if not isinstance(csat, Mapping):
        raise PolicyError("service_levels.csat: must be a mapping")
    return ServiceLevels(
        default=default, overrides=tuple(overrides), hours=hours, team_hours=team_hours,
        warn_before=parse_duration(warn, "service_levels.warn_before") if warn is not None else DEFAULT_WARN_BEFORE,
        notify=bool(data.get("notify", True)), csat=dict(csat),
    )


def check_config(data: Mapping[str, Any] | None) -> list[str]:
    """Problems in a `service_levels:` section, as config.py reports them (empty: fine)."""
    try:
        from_config(data)
    except PolicyError as exc:
        return [str(exc)]
    return []


@functools.lru_cache(maxsize=8)
def _cached(key: str) -> ServiceLevels:
    import json

    return from_config(json.loads(key))


def for_config(config: Any) -> ServiceLevels:
    """The `ServiceLevels` of a `Config` (cached: parsing holidays and zones once is enough)."""
    import json

    section = (getattr(config, "extra", None) or {}).get("service_levels") or {}
    return _cached(json.dumps(section, sort_keys=True, default=str))


# Events and clocks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """Something that moves a clock: `kind` is "in" (the customer wrote), "out" (we replied) or
    "status" (the conversation moved to `status`)."""

    at: dt.datetime
    kind: Literal["in", "out", "status"]
    status: str | None = None


@dataclass
class Clock:
    """One measurement of one metric (a conversation has one per next-response cycle)."""

    metric: str
    target: Target
    started_at: dt.datetime
    stopped_at: dt.datetime | None = None
    elapsed: dt.timedelta = dt.timedelta(0)
    due_desired: dt.datetime | None = None
    due_adequate: dt.datetime | None = None
    paused: bool = False

    @property
    def level(self) -> Level | None:
        """How it went: final when stopped, or "missed" once adequate has passed; None while open."""
        if self.stopped_at is not None:
            return self.target.level(self.elapsed)
        if self.elapsed > self.target.adequate:
            return "missed"
        return None


@dataclass
class Measurement:
    """Every clock of one conversation, as of `now`."""

    policy: Policy
    first_response: Clock | None = None
    next_responses: list[Clock] = field(default_factory=list)
    resolution: Clock | None = None
    paused_since: dt.datetime | None = None
    paused: dt.timedelta = dt.timedelta(0)
    resolved_at: dt.datetime | None = None

    @property
    def open_clocks(self) -> list[Clock]:
        clocks = [self.first_response, *self.next_responses[-1:], self.resolution]
        return [c for c in clocks if c is not None and c.stopped_at is None]

    @property
    def next_response_breaches(self) -> int:
        return sum(1 for c in self.next_responses if c.level == "missed")

    @property
    def breaches(self) -> int:
        """Metrics (each next-response cycle counted) that passed adequate."""
        singles = [c for c in (self.first_response, self.resolution) if c is not None and c.level == "missed"]
        return len(singles) + self.next_response_breaches


class _Timeline:
    """Status segments of a conversation: which stretches of time the clock runs in."""

    def __init__(self, created_at: dt.datetime, first_status: str, changes: Sequence[Event],
                 hours: BusinessHours, now: dt.datetime) -> None:
        self.hours = hours
        self.now = now
        self.segments: list[tuple[dt.datetime, dt.datetime | None, str]] = []
        start, status = created_at, first_status
        for change in changes:
            at = max(change.at, created_at)
            if change.status == status:
                continue
            if at > start:
                self.segments.append((start, at, status))
            start, status = at, change.status or status
        self.segments.append((start, None, status))

    @property
    def current(self) -> str:
        return self.segments[-1][2]

    def counted(self, begin: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Business time between `begin` and `end` during which the clock ran."""
        total = dt.timedelta(0)
        for seg_start, seg_end, status in self.segments:
            if status not in RUNNING:
                continue
            a = max(seg_start, begin)
            b = min(seg_end or end, end)
            if b > a:
                total += self.hours.between(a, b)
        return total

    def paused(self, end: dt.datetime) -> dt.timedelta:
        total = dt.timedelta(0)
        for seg_start, seg_end, status in self.segments:
            if status in PAUSED:
                b = min(seg_end or end, end)
                if b > seg_start:
                    total += self.hours.between(seg_start, b)
        return total

    def due(self, begin: dt.datetime, amount: dt.timedelta) -> dt.datetime | None:
        """When `amount` of running business time since `begin` is used up, assuming the current
        status lasts; None while the clock stands still (paused or resolved) with time left."""
        used = dt.timedelta(0)
        for seg_start, seg_end, status in self.segments:
            if status not in RUNNING or (seg_end is not None and seg_end <= begin):
                continue
            a = max(seg_start, begin)
            moment = self.hours.add(a, amount - used)
            if seg_end is None or moment <= seg_end:
                return moment
            used += self.hours.between(a, seg_end)
        return None


def _clock(metric: str, target: Target, start: dt.datetime, stop: dt.datetime | None,
           timeline: _Timeline, now: dt.datetime) -> Clock:
    clock = Clock(metric, target, start, stop)
    clock.elapsed = timeline.counted(start, stop or now)
    if stop is None:
        clock.due_desired = timeline.due(start, target.desired)
        clock.due_adequate = timeline.due(start, target.adequate)
        clock.paused = timeline.current not in RUNNING
    return clock


def measure(policy: Policy, hours: BusinessHours, events: Iterable[Event], now: dt.datetime, *,
            created_at: dt.datetime, first_status: str = "new") -> Measurement:
    """Every clock of one conversation as of `now`.

    `events` are the conversation's inbound and outbound messages (our replies, not notes) and its
    status changes, in any order; `first_status` is the status it had when it was created (for
    conversations older than the status log: the status it has now).
    """
    ordered = sorted((e for e in events if e.at <= now), key=lambda e: (e.at, e.kind != "status"))
    changes = [e for e in ordered if e.kind == "status"]
    timeline = _Timeline(created_at, first_status, changes, hours, now)
    result = Measurement(policy=policy)

    replies = [e.at for e in ordered if e.kind == "out"]
    first_reply = replies[0] if replies else None
    if policy.first_response is not None:
        result.first_response = _clock("first_response", policy.first_response, created_at, first_reply,
                                       timeline, now)

    if policy.next_response is not None and first_reply is not None:
        waiting_since: dt.datetime | None = None
        for event in ordered:
            if event.at < first_reply:
                continue
            if event.kind == "in" and waiting_since is None:
                waiting_since = event.at
            elif event.kind == "out" and waiting_since is not None:
                result.next_responses.append(_clock("next_response", policy.next_response, waiting_since,
                                                    event.at, timeline, now))
                waiting_since = None
        if waiting_since is not None:
            result.next_responses.append(_clock("next_response", policy.next_response, waiting_since, None,
                                                timeline, now))

    resolved_at = timeline.segments[-1][0] if timeline.current == "resolved" else None
    result.resolved_at = resolved_at
    if policy.resolution is not None and timeline.current != "spam":
        result.resolution = _clock("resolution", policy.resolution, created_at, resolved_at, timeline, now)
    # A clock of a conversation marked spam, or resolved unanswered, is not running: no due time.
    if timeline.current in {"spam", "resolved"}:
        for clock in result.open_clocks:
            clock.due_desired = clock.due_adequate = None
    result.paused = timeline.paused(now)
    if timeline.current in PAUSED:
        result.paused_since = timeline.segments[-1][0]
    return result


# What the conversation row stores, and what the queue shows ------------------------------------------

DUE_COLUMNS = tuple(f"{metric}_due_{level}" for metric in METRICS for level in ("desired", "adequate"))


def due_columns(measurement: Measurement | None) -> dict[str, Any]:
    """The service-level columns of a conversation row, from its measurement (None: no service level)."""
    row: dict[str, Any] = {name: None for name in DUE_COLUMNS}
    row.update(sla_due_desired=None, sla_due_adequate=None, sla_policy=None, sla_paused_since=None,
               sla_paused_seconds=0.0, first_response_seconds=None, first_response_level=None,
               resolution_seconds=None, resolution_level=None, next_response_breaches=0, resolved_at=None)
    if measurement is None:
        return row
    m = measurement
    row["sla_policy"] = m.policy.name
    current = {"first_response": m.first_response,
               "next_response": m.next_responses[-1] if m.next_responses else None,
               "resolution": m.resolution}
    for metric, running in current.items():
        if running is not None and running.stopped_at is None:
            row[f"{metric}_due_desired"] = iso(running.due_desired) if running.due_desired else None
            row[f"{metric}_due_adequate"] = iso(running.due_adequate) if running.due_adequate else None
    desired = [row[f"{metric}_due_desired"] for metric in METRICS if row[f"{metric}_due_desired"]]
    adequate = [row[f"{metric}_due_adequate"] for metric in METRICS if row[f"{metric}_due_adequate"]]
    row["sla_due_desired"] = min(desired) if desired else None
    row["sla_due_adequate"] = min(adequate) if adequate else None
    if m.first_response is not None:
        if m.first_response.stopped_at is not None:
            row["first_response_seconds"] = m.first_response.elapsed.total_seconds()
        row["first_response_level"] = m.first_response.level
    if m.resolution is not None:
        if m.resolution.stopped_at is not None:
            row["resolution_seconds"] = m.resolution.elapsed.total_seconds()
        row["resolution_level"] = m.resolution.level
    row["next_response_breaches"] = m.next_response_breaches
    row["sla_paused_since"] = iso(m.paused_since) if m.paused_since else None
    row["sla_paused_seconds"] = m.paused.total_seconds()
    row["resolved_at"] = iso(m.resolved_at) if m.resolved_at else None
    return row


def _moment(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return parse_iso(str(value))


def urgency(conversation_row: Mapping[str, Any], now: dt.datetime) -> Urgency | None:
    """The queue's badge: "within_desired", "past_desired", "past_adequate", or None (no running clock:
    pending, snoozed, resolved, spam, or no service level)."""
    if conversation_row.get("status") not in RUNNING:
        return None
    desired = _moment(conversation_row.get("sla_due_desired")) or _earliest(conversation_row, "desired")
    adequate = _moment(conversation_row.get("sla_due_adequate")) or _earliest(conversation_row, "adequate")
    if adequate is not None and now >= adequate:
        return "past_adequate"
    if desired is not None and now >= desired:
        return "past_desired"
    if desired is not None or adequate is not None:
        return "within_desired"
    return None


def _earliest(row: Mapping[str, Any], level: str) -> dt.datetime | None:
    found = [_moment(row.get(f"{metric}_due_{level}")) for metric in METRICS]
    found = [f for f in found if f is not None]
    return min(found) if found else None


_RANK = {"past_adequate": 0, "past_desired": 1, "within_desired": 2, None: 3}


def urgency_sort_key(conversation_row: Mapping[str, Any], now: dt.datetime) -> tuple:
    """Sort key for "most urgent first": past adequate, past desired, within desired, the rest;
    inside each group the earliest due time first."""
    level = urgency(conversation_row, now)
    due = _moment(conversation_row.get("sla_due_desired")) or _earliest(conversation_row, "desired")
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return (_RANK[level], due or far, conversation_row.get("id") or 0)


# Applying it to the store --------------------------------------------------------------------------
# Not pure: these read a conversation's events from the store, measure, and write the results back.

#: Message flags that keep a message off the clocks: machine-written mail, and survey traffic.
FLAG_SURVEY = "survey"
FLAG_SURVEY_ANSWER = "survey_answer"
_OFF_CLOCK_IN = frozenset({"auto_submitted", "bulk", "bounce", "loop", FLAG_SURVEY_ANSWER})
#: Our automatic messages that are no answer: a survey, an acknowledgement (inbox/acknowledgements.py).
_OFF_CLOCK_OUT = frozenset({FLAG_SURVEY, "acknowledgement"})
#: A check catches up on announcements at most this far back (a worker that was down for a day does
#: not flood the leads with yesterday's breaches).
NOTIFY_CATCH_UP = dt.timedelta(hours=6)


def inputs_to_events(inputs: Mapping[str, Any]) -> tuple[dt.datetime, str, list[Event]]:
    """(created_at, first status, events) from `Store.service_level_inputs()`."""
    events: list[Event] = []
    for message in inputs["messages"]:
        flags = set((message["flags"] or "").split())
        at = parse_iso(message["received_at"])
        if message["direction"] == "in" and not flags & _OFF_CLOCK_IN:
            events.append(Event(at, "in"))
        elif message["direction"] == "out" and not flags & _OFF_CLOCK_OUT:
            events.append(Event(at, "out"))
    log = inputs["status_log"]
    for change in log:
        events.append(Event(parse_iso(change["at"]), "status", change["new_status"]))
    first_status = (log[0]["old_status"] if log else inputs["status"]) or "new"
    return parse_iso(inputs["created_at"]), first_status, events


def measure_conversation(levels: ServiceLevels, inputs: Mapping[str, Any], now: dt.datetime) -> Measurement | None:
    """The measurement of one stored conversation; None when it carries no service level."""
    if inputs["automatic"]:
        return None
    created_at, first_status, events = inputs_to_events(inputs)
    policy = levels.policy_for(inputs["channel"], inputs["priority"])
    return measure(policy, levels.hours_for(inputs.get("team_name")), events, now,
                   created_at=created_at, first_status=first_status)


def refresh(store: Any, levels: ServiceLevels, conversation_ids: Iterable[int], now: dt.datetime) -> int:
    """Recompute and store the due times of these conversations (in the caller's transaction, if any)."""
    count = 0
    with store.write():
        for conversation_id in conversation_ids:
            inputs = store.service_level_inputs(conversation_id)
            if inputs is None:
                continue
            store.save_service_levels(conversation_id, due_columns(measure_conversation(levels, inputs, now)),
                                      iso(now))
            count += 1
    return count


def refresh_stale(store: Any, levels: ServiceLevels, now: dt.datetime, *, batch: int = 500) -> int:
    """Recompute every conversation marked stale (by the triggers) and those whose level moved on."""
    total = 0
    while True:
        ids = store.stale_service_levels(batch)
        if not ids:
            break
        total += refresh(store, levels, ids, now)
        if len(ids) < batch:
            break
    # Results such as "missed" change with time alone; refresh the running clocks past a due time.
    total += refresh(store, levels, store.running_service_levels(iso(now)), now)
    return total


#: Other processes take in a policy saved in the browser within seconds (the worker every 5 s, a web
#: process on its next request): due times computed this soon after the change may still follow the
#: old policy, so they are computed again as well.
POLICY_GRACE = dt.timedelta(minutes=1)


def stored_policy_changed_at(store: Any, bootstrap: Any) -> dt.datetime | None:
    """When an admin last saved the service levels in the browser; None if never, or if the config
    file sets them (then the stored section is not in force)."""
    if "service_levels" in (getattr(bootstrap, "extra", None) or {}):
        return None
    info = store.stored_settings.section_info("service_levels")
    return parse_iso(info.updated_at) if info else None


def refresh_after_policy_change(store: Any, levels: ServiceLevels, changed_at: dt.datetime | None,
                                now: dt.datetime, *, batch: int = 500, max_batches: int | None = None) -> int:
    """Recompute the due times of conversations still open that were computed before the policy
    changed at `changed_at` (or within POLICY_GRACE after it).

    Batches of `batch` conversations, each its own short write transaction, walked by id, so the
    writers of new messages never wait long; `max_batches` bounds one call (the save in the browser
    does one batch, the worker's minute job the rest). A conversation recomputed here is stamped
    `now` and is not taken again in the same call.
    """
    if changed_at is None:
        return 0
    until = iso(min(changed_at + POLICY_GRACE, now))
    total = batches = after_id = 0
    while max_batches is None or batches < max_batches:
        ids = store.outdated_service_levels(until, after_id, batch)
        if not ids:
            break
        total += refresh(store, levels, ids, now)
        after_id, batches = ids[-1], batches + 1
        if len(ids) < batch:
            break
    return total


def notify_leads(store: Any, levels: ServiceLevels, now: dt.datetime) -> int:
    """Tell the team's leads about clocks about to pass adequate, and about those that just did.

    Each (conversation, metric, due time) is announced once as a warning (`warn_before` ahead) and
    once as a breach. Notifications go to the `notifications` table every agent's bell reads.
    """
    if not levels.notify:
        return 0
    sent = 0
    with store.write():
        rows = store.sla_due_for_notice(iso(now + levels.warn_before), iso(now - NOTIFY_CATCH_UP))
        for row in rows:
            due = parse_iso(row["due_at"])
            kind = "breach" if due <= now else "warning"
            if not store.record_sla_notice(row["conversation_id"], row["metric"], kind, row["due_at"], iso(now)):
                continue
            leads = store.leads_for_team(row["team_id"])
            if leads:
                store.notifications.add(leads, kind=f"sla_{kind}", conversation_id=row["conversation_id"],
                                        message_id=None, actor_id=None, now=iso(now))
            store.set_sla_notice_count(row["conversation_id"], row["metric"], kind, row["due_at"], len(leads))
            sent += len(leads)
    return sent


def run_checks(store: Any, levels: ServiceLevels, now: dt.datetime | None = None,
               policy_changed_at: dt.datetime | None = None) -> tuple[int, int]:
    """The worker's minute job: refresh due times (those marked stale, and those computed before the
    policy last changed), then notify leads. Returns (refreshed, notified)."""
    now = now or clock.now()
    refreshed = refresh_stale(store, levels, now) + refresh_after_policy_change(store, levels, policy_changed_at, now)
    return refreshed, notify_leads(store, levels, now)
