"""Proactive care (#14): customers worth a call or a message because things go well.

"What you give attention grows": the check-ins page (/customers/check-ins) suggests customers to
talk to when nothing is wrong, by two rules (the `check_ins` config section):

- **rated**: a conversation resolved in the last `resolved_within_days` (14) that the customer rated
  `good_rating` (4) or more out of 5 in the satisfaction survey (inbox/csat.py);
- **quiet**: a long-standing customer who wrote to us in at least `regular_contact_conversations`
  (3) conversations in the year up to their last message, and then nothing for `quiet_after_days` (60).

Nobody with a conversation still open is suggested (they are talking to us already), nor a customer
the rule that every first message follows would refuse (erased, marked as spam). Each suggestion
says why in words, names the customer's own agent (as routing finds them: the customer's owner,
else whoever of us answered them last; inbox/routing.py) and the channel to use: the last channel
the customer wrote on whose connector may start a conversation (`limits.starts_conversations`,
decided by inbox/sendability.py as the New conversation page does), else any channel that may write
to one of their addresses first. At most `max_suggestions`.

**Start** opens the New conversation page (inbox/web/outreach.py) pre-filled from an answer of the
library tagged `answer_tag` ("check-in"), in the customer's language, with its variables filled in;
the conversation is assigned to the customer's agent. **Skip** and **snooze** (until a date) are
remembered per customer and basis (m027): a skipped suggestion comes back only when something new
happens (another good rating, another quiet spell). The **outcome** of a started check-in (did the
customer reply, and how did they rate it) is read from its conversation.

Who sees what follows inbox/access.py: an agent sees the suggestions for their own customers,
a lead those of their teams' customers, managers and admins every one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from babel.dates import format_date

from inbox import access, answers, clock, outreach
from inbox.i18n import gettext, ngettext
from inbox.routing import language_from_locale
from inbox.sendability import StartTarget
from inbox.store.answers import Answer
from inbox.store.base import iso, parse_iso
from inbox.store.checkins import StartedCheckIn

RULES = ("rated", "quiet")
#: The scale inbox/csat.py asks on: 1 (bad) to 5 (very good).
RATING_SCALE = 5
KEYS = frozenset({"good_rating", "resolved_within_days", "quiet_after_days", "regular_contact_conversations",
                  "max_suggestions", "answer_tag"})
#: How far ahead a suggestion may be snoozed.
MAX_SNOOZE = dt.timedelta(days=366)
#: Candidates read per rule before the agent's own are picked out (a bound on the page's work).
CANDIDATES = 500


@dataclass(frozen=True)
class CheckInSettings:
    good_rating: int = 4
    resolved_within_days: int = 14
    quiet_after_days: int = 60
    regular_contact_conversations: int = 3
    max_suggestions: int = 20
    answer_tag: str = "check-in"


_LIMITS = {"good_rating": (1, RATING_SCALE), "resolved_within_days": (1, 365), "quiet_after_days": (1, 3650),
           "regular_contact_conversations": (1, 1000), "max_suggestions": (1, 500)}


def check_config(data: Any) -> list[str]:
    """Problems in the `check_ins:` section (unknown keys are reported by inbox/config.py)."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        return ["check_ins: must be a mapping (" + ", ".join(sorted(KEYS)) + ")"]
    problems = []
    for key, (low, high) in _LIMITS.items():
        value = data.get(key)
        if key in data and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            problems.append(f"check_ins.{key}: must be a whole number from {low} to {high} (got {value!r})")
    tag = data.get("answer_tag")
    if "answer_tag" in data and (not isinstance(tag, str) or not answers.normalise_tags(tag)):
        problems.append(f"check_ins.answer_tag: must be one tag of the answer library, e.g. check-in (got {tag!r})")
    return problems


def settings_for(config: Any) -> CheckInSettings:
    data = (getattr(config, "extra", None) or {}).get("check_ins") or {}
    values = {k: data[k] for k in _LIMITS if k in data}
    if data.get("answer_tag"):
        values["answer_tag"] = answers.normalise_tags(str(data["answer_tag"]))[0]
    return CheckInSettings(**values)


# Suggestions -----------------------------------------------------------------------------------------

@dataclass
class Suggestion:
    """One customer worth a check-in, why, who should make it and on which channel."""

    customer_id: int
    customer_name: str
    rule: str
    #: What the suggestion rests on ('rated:<survey id>', 'quiet:<conversation id>'): skip and snooze
    #: are remembered against it.
    basis: str
    reason: str
    #: When it happened (the rating, or the customer's last message), for ordering.
    at: str
    #: The conversation it rests on (the rated one, or the customer's latest): routing's inputs.
    conversation_id: int
    owner: dict[str, Any] | None = None
    target: StartTarget | None = None
    identity_id: int | None = None

    @property
    def to(self) -> str:
        """The New conversation page's value for the address to write to."""
        return f"{self.identity_id}|{self.target.channel}" if self.target is not None else ""


def _day(moment: str | None) -> str:
    parsed = parse_iso(moment)
    if parsed is None:
        return ""
    return format_date(parsed.date(), "d MMM", locale=_locale())


def _locale() -> str:
    try:
        from flask_babel import get_locale

        return str(get_locale() or "en")
    except (RuntimeError, AttributeError):  # outside a request: the digest and the command line
        return "en"


def rated_reason(score: int, answered_at: str, subject: str) -> str:
    """'Rated us 5/5 on 2 Dec after “Where is my parcel?”'."""
    if subject.strip():
        return gettext("Rated us %(score)d/%(scale)d on %(day)s after “%(subject)s”", score=score,
                       scale=RATING_SCALE, day=_day(answered_at), subject=" ".join(subject.split())[:80])
    return gettext("Rated us %(score)d/%(scale)d on %(day)s", score=score, scale=RATING_SCALE, day=_day(answered_at))


def quiet_reason(conversations: int, last_at: str, now: dt.datetime) -> str:
    """'4 conversations in the year up to 3 Sep, then nothing for 81 days'."""
    last = parse_iso(last_at) or now
    return ngettext("%(num)d conversation in the year up to %(day)s, then nothing for %(days)d days",
                    "%(num)d conversations in the year up to %(day)s, then nothing for %(days)d days",
                    conversations, day=_day(last_at), days=max(0, (now - last).days))


def visible_suggestions(mainland: Any, store: Any, agent: Mapping[str, Any], *, now: dt.datetime | None = None,
                        customer_id: int | None = None) -> list[Suggestion]:
    """The check-ins `agent` is shown now (or, `customer_id`, only that customer's), best first."""
    now = now or clock.now()
    conf = settings_for(mainland.config)
    team_ids = access.visible_team_ids(store, agent, config=mainland.config)
    candidates = _candidates(store, conf, team_ids, now)
    if customer_id is not None:
        candidates = [c for c in candidates if c.customer_id == customer_id]
    hidden = _hidden(store, [c.customer_id for c in candidates], now)
    own_only = agent["role"] == "agent"
    found: list[Suggestion] = []
    for candidate in candidates:
        if (candidate.customer_id, candidate.basis) in hidden or (candidate.customer_id, "*") in hidden:
            continue
        candidate.owner = owner_of(store, candidate.conversation_id)
        if own_only and (candidate.owner is None or candidate.owner["id"] != agent["id"]):
            continue
        found.append(candidate)
        if len(found) >= conf.max_suggestions:
            break
    for suggestion in found:
        suggestion.identity_id, suggestion.target = channel_for(mainland, store, suggestion.customer_id)
    return found


def suggestion_for(mainland: Any, store: Any, agent: Mapping[str, Any], customer_id: int, basis: str,
                   now: dt.datetime | None = None) -> Suggestion | None:
    """The suggestion `basis` for `customer_id` if `agent` is shown it now, else None."""
    return next((s for s in visible_suggestions(mainland, store, agent, now=now, customer_id=customer_id)
                 if s.basis == basis), None)


def _candidates(store: Any, conf: CheckInSettings, team_ids: set[int] | None, now: dt.datetime) -> list[Suggestion]:
    """Every customer either rule names, the rated ones first (newest rating first); one each."""
    seen: set[int] = set()
    found: list[Suggestion] = []
    for rated in store.check_ins.rated(resolved_since=iso(now - dt.timedelta(days=conf.resolved_within_days)),
                                       min_score=conf.good_rating, team_ids=team_ids, limit=CANDIDATES):
        if rated.customer_id in seen:
            continue
        seen.add(rated.customer_id)
        found.append(Suggestion(rated.customer_id, rated.display_name or "", "rated", f"rated:{rated.survey_id}",
                                rated_reason(rated.score, rated.answered_at, rated.subject or ""),
                                rated.answered_at, rated.conversation_id))
    for quiet in store.check_ins.quiet(quiet_before=iso(now - dt.timedelta(days=conf.quiet_after_days)),
                                       min_conversations=conf.regular_contact_conversations, team_ids=team_ids,
                                       limit=CANDIDATES):
        if quiet.customer_id in seen:
            continue
        seen.add(quiet.customer_id)
        found.append(Suggestion(quiet.customer_id, quiet.display_name or "", "quiet",
                                f"quiet:{quiet.conversation_id}",
                                quiet_reason(quiet.conversations, quiet.last_at, now), quiet.last_at,
                                quiet.conversation_id))
    return found


def _hidden(store: Any, customer_ids: list[int], now: dt.datetime) -> set[tuple[int, str]]:
    """(customer, basis) pairs already started or skipped, and (customer, '*') for a snoozed customer."""
    hidden: set[tuple[int, str]] = set()
    now_text = iso(now)
    for mark in store.check_ins.marks(customer_ids):
        if mark.state in ("started", "skipped"):
            hidden.add((mark.customer_id, mark.basis))
        elif mark.state == "snoozed" and (mark.snoozed_until or "") > now_text:
            hidden.add((mark.customer_id, "*"))
    return hidden


def owner_of(store: Any, conversation_id: int) -> dict[str, Any] | None:
    """The customer's own agent, found as routing finds it for a returning customer (inbox/routing.py,
    `Store.routing_inputs`): the owner on the customer record, else whoever of us answered the
    customer last. None when there is none, or that agent is no longer active."""
    inputs = store.routing_inputs(conversation_id) or {}
    agent_id = inputs.get("owner_agent_id") or inputs.get("last_agent_id")
    agent = store.agent(agent_id) if agent_id else None
    if agent is None or not agent.get("active"):
        return None
    return {"id": agent["id"], "name": agent["name"] or agent["email"], "role": agent["role"]}


def channel_for(mainland: Any, store: Any, customer_id: int) -> tuple[int | None, StartTarget | None]:
    """The last channel the customer wrote on that may start a conversation to one of their
    identities now, with that identity's id; else the first channel that may write to them at all
    (a customer who only used a web form can be written to by email); (None, None) when none may."""
    options = outreach.start_options(mainland, store, customer_id)
    for channel in store.check_ins.channels_used(customer_id):
        for option in options:
            target = next((t for t in option.targets if t.channel == channel), None)
            if target is not None:
                return option.identity["id"], target
    first = next((o for o in options if o.targets), None)
    return (first.identity["id"], first.targets[0]) if first else (None, None)


# Starting, skipping, snoozing ------------------------------------------------------------------------

def template_answer(store: Any, conf: CheckInSettings, locale: str | None, default_language: str) -> Answer | None:
    """The library's check-in answer (tagged `answer_tag`) in the customer's language, else in the
    default language, else any; None when the library has none."""
    tagged = [a for a in store.answers.all(active=True) if conf.answer_tag in (a.tags or "").split()]
    for language in (language_from_locale(locale), default_language):
        match = next((a for a in tagged if language and a.language == language), None)
        if match is not None:
            return match
    return tagged[0] if tagged else None


def prefill(mainland: Any, store: Any, suggestion: Suggestion, agent: Mapping[str, Any]) -> dict[str, str]:
    """The New conversation form for `suggestion`: the address, and the check-in answer's title and
    text with its variables filled in for the customer, adapted to the channel."""
    form = {"to": suggestion.to, "subject": "", "text": "", "answer": ""}
    record = store.customer_record(suggestion.customer_id)
    answer = template_answer(store, settings_for(mainland.config), record.get("locale"),
                             mainland.config.default_language)
    if answer is None or suggestion.target is None:
        return form
    signer = (suggestion.owner or {}).get("name") or agent.get("name")
    adapted = answers.render(answer.body, {"customer_name": record.get("display_name"), "public": False,
                                           "attributes": store.customer_attributes(suggestion.customer_id)},
                             agent_name=signer, connector_cls=mainland.connector_class(suggestion.target.channel))
    form.update(subject=answer.title, text=adapted.text, answer=str(answer.id))
    return form


def record_started(store: Any, suggestion: Suggestion, *, conversation_id: int, channel: str,
                   agent: Mapping[str, Any], now: dt.datetime | None = None) -> None:
    now_text = iso(now or clock.now())
    with store.write():
        store.check_ins.mark(customer_id=suggestion.customer_id, basis=suggestion.basis, rule=suggestion.rule,
                             state="started", now=now_text, agent_id=agent["id"],
                             owner_id=(suggestion.owner or {}).get("id") or agent["id"],
                             conversation_id=conversation_id, channel=channel)
        store.audit(now_text, f"agent:{agent['id']}", "check_in_started", "customer", suggestion.customer_id,
                    basis=suggestion.basis, conversation=conversation_id)


def skip(store: Any, suggestion: Suggestion, agent: Mapping[str, Any], now: dt.datetime | None = None) -> None:
    now_text = iso(now or clock.now())
    with store.write():
        store.check_ins.mark(customer_id=suggestion.customer_id, basis=suggestion.basis, rule=suggestion.rule,
                             state="skipped", now=now_text, agent_id=agent["id"],
                             owner_id=(suggestion.owner or {}).get("id"))
        store.audit(now_text, f"agent:{agent['id']}", "check_in_skipped", "customer", suggestion.customer_id,
                    basis=suggestion.basis)


def snooze(store: Any, suggestion: Suggestion, until: dt.date, agent: Mapping[str, Any],
           now: dt.datetime | None = None) -> None:
    """Hide the customer's suggestions until the start of `until` (UTC)."""
    now_text = iso(now or clock.now())
    until_text = iso(dt.datetime.combine(until, dt.time(0), tzinfo=dt.UTC))
    with store.write():
        store.check_ins.mark(customer_id=suggestion.customer_id, basis=suggestion.basis, rule=suggestion.rule,
                             state="snoozed", now=now_text, agent_id=agent["id"], snoozed_until=until_text,
                             owner_id=(suggestion.owner or {}).get("id"))
        store.audit(now_text, f"agent:{agent['id']}", "check_in_snoozed", "customer", suggestion.customer_id,
                    basis=suggestion.basis, until=until.isoformat())


def snooze_date(text: str, now: dt.datetime) -> dt.date | None:
    """The snooze date an agent typed (YYYY-MM-DD), if it lies after today and within a year."""
    try:
        day = dt.date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    today = now.astimezone(dt.UTC).date()
    return day if today < day <= today + MAX_SNOOZE else None


# Outcomes ----------------------------------------------------------------------------------------------

def recent(store: Any, agent: Mapping[str, Any], *, limit: int = 20, config: Any = None) -> list[StartedCheckIn]:
    """The latest started check-ins `agent` may see (an agent: their own), each with its outcome."""
    team_ids = access.visible_team_ids(store, agent, config=config)
    owner = agent["id"] if agent["role"] == "agent" else None
    return store.check_ins.started(team_ids=team_ids, owner_id=owner, limit=limit)


def outcome(row: StartedCheckIn) -> str:
    """How the customer answered a started check-in, in words."""
    if row.score is not None:
        return gettext("Replied %(day)s, rated us %(score)d/%(scale)d", day=_day(row.replied_at),
                       score=row.score, scale=RATING_SCALE)
    if row.replied_at:
        return gettext("Replied %(day)s", day=_day(row.replied_at))
    return gettext("No reply yet")


def week_figures(store: Any, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """For the weekly digest: check-ins started in [start, end), how many customers replied, and
    their ratings (count and average)."""
    rows = store.check_ins.started(since=iso(start), until=iso(end), limit=100_000)
    scores = [r.score for r in rows if r.score is not None]
    return {"started": len(rows), "replied": sum(1 for r in rows if r.replied_at), "rated": len(scores),
            "average": (sum(scores) / len(scores)) if scores else None}
