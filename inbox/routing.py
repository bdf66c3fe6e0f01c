"""Who answers a conversation: the customer's own agent, else the best-placed free agent, else the queue.

The rules (issue 7), decided by pure functions over plain values (`decide`, `pick_round_robin`,
`detect_language`) so that the tests and `bench/routing.py` run exactly the code production runs:

1. **Own agent.** The customer's owner (set on the customer record), else whoever of us answered
   this customer last, gets the conversation if they are a member of its team, available and
   under capacity.
2. **Skills and spare capacity.** Else the available team member who speaks the conversation's
   language and has the most spare capacity gets it. Topics (answer-library tags found in the
   question) narrow the choice when someone free has them. A language nobody in the team lists
   is not required (someone must answer it); an agent who lists no languages answers any.
3. **Queue.** Else the conversation waits, unassigned, in its team's queue. `rebalance` (the
   worker runs it every 15 s, and the status page after a change) hands the backlog out as
   capacity frees up, most urgent first (the queue's service-level urgency, then priority, then
   the longest wait), and only unassigned conversations.

When an agent goes away or offline, or carries more than their capacity, `rebalance` passes their
waiting conversations (the customer waits for an answer) on to the next suitable agent, or back
to the queue. The customer's owner is never changed, so their next conversation comes back.

A manual assignment is never undone by routing: routing moves only the conversations it assigned
itself (`assigned_by`), except when their agent leaves (goes away or offline, or is disabled)
while holding them: then flow-on passes on every waiting conversation that was theirs before they
left, writes so in the conversation's timeline and notifies the agent. What a person assigns to an
agent who is already away or offline stays with them.

Per team (and for the unrouted pool) the mode can be `round_robin` (next available member under
capacity in turn, skills ignored) or `manual` (routing never assigns or moves anything). Every
decision is logged with its reason for the leads' "why it went where" page.

Status follows inactivity: `AWAY_AFTER` without activity makes an available agent away,
`OFFLINE_AFTER` makes them offline; signing in and their next action in the web inbox make them
available again, as does the first sign-in (new agents start offline, a status nobody chose). A
status the agent chose themselves (away or offline) stays until they change it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inbox import clock
from inbox.store import Store
from inbox.store.base import iso

log = logging.getLogger("mainland.routing")

AWAY_AFTER = dt.timedelta(minutes=10)
OFFLINE_AFTER = dt.timedelta(hours=1)
#: Conversations handed out per rebalance run (the rest wait for the next run, 15 s later).
BACKLOG_BATCH = 200

# Language --------------------------------------------------------------------------------------

#: Frequent function words: enough to tell English from Dutch in a customer's message. Words the
#: two languages share ("in", "is", "was", "had", "over") are left out. The answer library drops
#: these words when matching, so they carry no meaning of their own.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("""
        the and you your my our this that with for not but have has are were what when where which who
        would could should can will there their they them it's i'm don't please thanks thank hello hi
        from about been any just still because how why does did do of to a an on at yet again get got
        some me i we us""".split()),
    "nl": frozenset("""
        de het een en ik je jij u uw mijn mij me ons onze dit dat deze die met voor niet maar heb hebt
        heeft zijn waren wat wanneer waar welke wie zou zouden kan kunt kunnen wil zal er hun ze graag
        bedankt dank hallo hoi goedendag van aan op bij nog niets geen al ook wel om te naar waarom hoe
        dus omdat alstublieft alsjeblieft groet groeten vriendelijke we wij""".split()),
}
#: Words that say which language a message is in without being function words.
CUE_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("order received sent back delivery parcel refund".split()),
    "nl": frozenset("bestelling ontvangen verzonden pakket levering terugbetaling".split()),
}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)


def language_from_locale(locale: str | None) -> str | None:
    """'nl' for 'nl-BE', 'nl_NL' or 'NL'; None for nothing usable."""
    if not locale:
        return None
    code = re.split(r"[-_]", str(locale).strip())[0].lower()
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


def detect_language(text: str, *, locale: str | None = None, minimum: int = 2) -> str | None:
    """The customer's language: their locale if known, else English or Dutch by stopword count.

    None when the text is too short or too mixed to say (fewer than `minimum` hits, or a tie).
    """
    from_locale = language_from_locale(locale)
    if from_locale:
        return from_locale
    words = [w.lower() for w in _WORD.findall(text or "")[:400]]
    hits = {lang: sum(1 for w in words if w in stop or w in CUE_WORDS[lang]) for lang, stop in STOPWORDS.items()}
    best = max(hits, key=lambda lang: hits[lang])
    ranked = sorted(hits.values(), reverse=True)
    if hits[best] < minimum or (len(ranked) > 1 and ranked[0] == ranked[1]):
        return None
    return best


def detect_topics(text: str, vocabulary: Iterable[str]) -> frozenset[str]:
    """The tags of the answer library (`vocabulary`) that occur as words in `text`."""
    vocab = {v.lower() for v in vocabulary}
    if not vocab:
        return frozenset()
    folded = unicodedata.normalize("NFKD", (text or "").lower())
    words = set(_WORD.findall("".join(ch for ch in folded if not unicodedata.combining(ch))))
    # "refunds" mentions the topic "refund"
    words |= {w[:-1] for w in words if w.endswith("s")}
    return frozenset(vocab & words)


# Decisions -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentState:
    """One agent as routing sees them."""

    id: int
    name: str = ""
    status: str = "offline"
    capacity: int = 5
    load: int = 0
    languages: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    active: bool = True

    @property
    def available(self) -> bool:
        return self.active and self.status == "available"

    @property
    def spare(self) -> int:
        return self.capacity - self.load

    def speaks(self, language: str | None) -> bool:
        return language is None or not self.languages or language in self.languages


@dataclass(frozen=True)
class Need:
    """What a conversation needs: its team, language, topics and the customer's own agents."""

    team_id: int | None = None
    language: str | None = None
    topics: frozenset[str] = frozenset()
    owner_id: int | None = None
    last_agent_id: int | None = None


@dataclass(frozen=True)
class Decision:
    """Where a conversation goes (`agent_id` None: it waits in the queue) and why."""

    agent_id: int | None
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)


#: Reason codes, for the log and the leads' page.
REASONS = ("owner", "last_agent", "skills", "round_robin", "manual", "queued", "returned_to_queue")


def decide(need: Need, agents: Sequence[AgentState], *, mode: str = "auto", last_routed: int | None = None,
           exclude: Iterable[int] = ()) -> Decision:
    """Where a conversation goes under `mode`, given the team's agents (members only)."""
    excluded = set(exclude)
    if mode == "manual":
        return Decision(None, "manual")
    pool = [a for a in agents if a.id not in excluded]
    free = [a for a in pool if a.available and a.spare > 0]
    if mode == "round_robin":
        chosen = pick_round_robin(free, last_routed)
        if chosen is None:
            return Decision(None, "queued", {"why": "nobody_free", "mode": "round_robin"})
        return Decision(chosen.id, "round_robin", {"after": last_routed, "spare": chosen.spare})

    by_id = {a.id: a for a in pool}
    for reason, own_id in (("owner", need.owner_id), ("last_agent", need.last_agent_id)):
        if own_id is None:
            continue
        own = by_id.get(own_id)
        if own is not None and own.available and own.spare > 0:
            return Decision(own.id, reason, {"spare": own.spare})
    skipped = _own_agent_note(need, by_id)

    language = need.language
    # A language no member lists is not required: waiting for a speaker nobody has helps no one.
    language_required = language is not None and any(language in a.languages for a in pool)
    speakers = [a for a in free if not language_required or a.speaks(language)]
    detail: dict[str, Any] = {"language": language, **skipped}
    if language is not None and not language_required and any(a.languages for a in pool):
        detail["language_relaxed"] = True
    if not speakers:
        why = "nobody_free" if not free else "no_speaker_free"
        return Decision(None, "queued", {**detail, "why": why})
    if need.topics:
        specialists = [a for a in speakers if a.topics & need.topics]
        if specialists:
            speakers = specialists
            detail["topics"] = sorted(need.topics)
        else:
            detail["topics_relaxed"] = sorted(need.topics)
    chosen = max(speakers, key=lambda a: (a.spare, -a.load, -a.id))
    detail["spare"] = chosen.spare
    return Decision(chosen.id, "skills", detail)


def _own_agent_note(need: Need, by_id: Mapping[int, AgentState]) -> dict[str, Any]:
    """Why the customer's own agent did not get it (for the log)."""
    own_id = need.owner_id or need.last_agent_id
    if own_id is None:
        return {}
    own = by_id.get(own_id)
    if own is None:
        state = "not_in_team"
    elif not own.available:
        state = own.status if own.active else "disabled"
    else:
        state = "at_capacity"
    return {"own_agent": own_id, "own_agent_state": state}


def pick_round_robin(free: Sequence[AgentState], last_routed: int | None) -> AgentState | None:
    """The first free agent after `last_routed` in id order, wrapping around."""
    if not free:
        return None
    ordered = sorted(free, key=lambda a: a.id)
    if last_routed is not None:
        for agent in ordered:
            if agent.id > last_routed:
                return agent
    return ordered[0]


# The service -----------------------------------------------------------------------------------

def _agent_states(rows: Iterable[Mapping[str, Any]]) -> list[AgentState]:
    return [AgentState(
        id=r["id"], name=r.get("name") or "", status=r["routing_status"], capacity=r["capacity"], load=r["load"],
        languages=frozenset((r.get("languages") or "").split()), topics=frozenset((r.get("topics") or "").split()),
        active=bool(r.get("active", 1)),
    ) for r in rows]


def need_for(store: Store, inputs: Mapping[str, Any]) -> Need:
    """The `Need` of a conversation from `Store.routing_inputs()`."""
    return Need(
        team_id=inputs["team_id"],
        language=detect_language(inputs.get("question") or "", locale=inputs.get("locale")),
        topics=detect_topics(inputs.get("question") or "", store.answers.tag_vocabulary()),
        owner_id=inputs.get("owner_agent_id"),
        last_agent_id=inputs.get("last_agent_id"),
    )


def _routable(inputs: Mapping[str, Any] | None) -> bool:
    return bool(inputs) and not inputs["automatic"] and inputs["status"] in ("new", "open") \
        and not inputs.get("merged_into")


def assign_new_conversation(store: Store, conversation_id: int, now: dt.datetime | None = None, *,
                            exclude: Iterable[int] = (), log_queued: bool = True) -> Decision | None:
    """Route one unassigned conversation; returns the decision (None when it is not routable or
    was assigned meanwhile). A queued decision is logged once (`log_queued`), not on every retry."""
    now = now or clock.now()
    inputs = store.routing_inputs(conversation_id)
    if not _routable(inputs) or inputs["assignee_id"] is not None:
        return None
    decision = _decide_for(store, inputs, exclude=exclude)
    if decision.agent_id is None:
        if log_queued and store.last_routing_reason(conversation_id) is None:
            with store.write():
                store.log_routing_decision(conversation_id, agent_id=None, previous_agent_id=None,
                                           team_id=inputs["team_id"], reason=decision.reason,
                                           detail=dict(decision.detail), now=iso(now))
        return decision
    if not store.route_assign(conversation_id, agent_id=decision.agent_id, expected=None, reason=decision.reason,
                              detail=dict(decision.detail), team_id=inputs["team_id"], now=iso(now),
                              round_robin=decision.reason == "round_robin"):
        return None
    return decision


def _decide_for(store: Store, inputs: Mapping[str, Any], *, exclude: Iterable[int] = ()) -> Decision:
    team_id = inputs["team_id"]
    mode = store.routing_mode(team_id)
    agents = _agent_states(store.routing_agents(team_id))
    return decide(need_for(store, inputs), agents, mode=mode, last_routed=store.last_routed_agent(team_id),
                  exclude=exclude)


def route_new(store: Store, conversation_ids: Iterable[int], now: dt.datetime | None = None) -> int:
    """Route conversations an ingest batch created; returns how many were assigned. Never raises:
    a routing problem must not cost the messages (they wait in the queue for `rebalance`)."""
    assigned = 0
    ids = list(conversation_ids)
    try:
        if not ids or not store.anyone_available():
            # Nobody to route to: they wait, unassigned, and the backlog run hands them out later.
            # One read per batch, so a bulk import does not pay for routing it cannot do.
            return 0
    except Exception:
        log.exception("routing is unavailable; new conversations wait in the queue")
        return 0
    for conversation_id in ids:
        try:
            decision = assign_new_conversation(store, conversation_id, now)
        except Exception:
            log.exception("routing conversation %s failed; it waits in the queue", conversation_id)
            continue
        if decision is not None and decision.agent_id is not None:
            assigned += 1
    return assigned


@dataclass
class RebalanceReport:
    went_away: list[int] = field(default_factory=list)
    went_offline: list[int] = field(default_factory=list)
    moved: int = 0
    returned_to_queue: int = 0
    assigned: int = 0


def apply_inactivity(store: Store, now: dt.datetime, report: RebalanceReport | None = None) -> RebalanceReport:
    """Available agents idle for AWAY_AFTER become away; away ones idle for OFFLINE_AFTER offline.
    An agent who chose away stays away: lowering it would turn their choice into the system's, and
    their next action would then make them available against it."""
    report = report or RebalanceReport()
    for agent_id in store.idle_agents("away", iso(now - OFFLINE_AFTER), set_by_system_only=True):
        if store.set_agent_status(agent_id, "offline", iso(now), auto=True):
            report.went_offline.append(agent_id)
    for agent_id in store.idle_agents("available", iso(now - AWAY_AFTER)):
        if store.set_agent_status(agent_id, "away", iso(now), auto=True):
            report.went_away.append(agent_id)
    return report


#: Why a flow-on happened when the agent left: these moves are written in the timeline and notified.
LEFT_STATES = ("away", "offline", "disabled")


def _untranslated(message: str, **params: Any) -> str:
    return message % params if params else message


def moved_note(previous: str, successor: str | None, why: str,
               _: Callable[..., str] = _untranslated) -> str:
    """The timeline's words for a flow-on away from an agent who left, e.g. "Moved from Ann to Bob:
    Ann went offline." `_` translates (the web passes gettext; stored notes keep the English)."""
    reasons = {
        "away": _("%(name)s went away", name=previous),
        "offline": _("%(name)s went offline", name=previous),
        "disabled": _("%(name)s was disabled", name=previous),
    }
    reason = reasons.get(why, why)
    if successor is None:
        return _("Moved from %(previous)s back to the queue: %(reason)s.", previous=previous, reason=reason)
    return _("Moved from %(previous)s to %(next)s: %(reason)s.", previous=previous, next=successor, reason=reason)


def flow_on(store: Store, conversation_id: int, from_agent: int, now: dt.datetime, why: str) -> bool | None:
    """Pass one waiting conversation from `from_agent` to the next suitable agent, or back to the
    queue. True: moved to someone; False: back in the queue; None: nothing changed.

    When the agent left (`why` in LEFT_STATES) the move is written in the conversation's timeline
    and the agent is notified, in the same transaction as the move."""
    inputs = store.routing_inputs(conversation_id)
    if not _routable(inputs) or inputs["assignee_id"] != from_agent:
        return None
    decision = _decide_for(store, inputs, exclude=[from_agent])
    detail = {**decision.detail, "from_state": why}
    if decision.agent_id is not None:
        reason = decision.reason
    else:
        reason = "returned_to_queue"
    with store.write():
        if not store.route_assign(conversation_id, agent_id=decision.agent_id, expected=from_agent, reason=reason,
                                  detail=detail, team_id=inputs["team_id"], now=iso(now),
                                  round_robin=decision.reason == "round_robin"):
            return None
        if why in LEFT_STATES:
            store.announce_flow_on(conversation_id, from_agent=from_agent, now=iso(now), text=moved_note(
                _agent_name(store, from_agent), _agent_name(store, decision.agent_id), why))
    return decision.agent_id is not None


def _agent_name(store: Store, agent_id: int | None) -> str | None:
    if agent_id is None:
        return None
    agent = store.agent(agent_id)
    return (agent["name"] or agent["email"]) if agent else str(agent_id)


def rebalance(store: Store, now: dt.datetime | None = None, *, inactivity: bool = True) -> RebalanceReport:
    """The worker's routing run: inactivity, flowing on from agents who left or are overloaded,
    then the backlog, most urgent first, as far as capacity allows.

    Never undoes a person's assignment, except for an agent who left while holding it: from an
    agent who is away, offline or disabled, the waiting conversations routing assigned and those a
    person assigned before the agent left flow on; from an agent over capacity, only routing's."""
    now = now or clock.now()
    report = RebalanceReport()
    if inactivity:
        apply_inactivity(store, now, report)
    for agent_id in store.agents_holding_waiting():
        agent = store.agent_routing(agent_id)
        if agent is None:
            continue
        if agent["active"]:
            why, left_at = agent["routing_status"], agent["unavailable_since"]
        else:
            # A disabled agent answers nothing again: everything of theirs a customer waits in.
            why, left_at = "disabled", "~"
        for conversation_id in store.waiting_assigned(agent_id, person_assigned_before=left_at):
            _count(report, flow_on(store, conversation_id, agent_id, now, why))
    for agent_id in store.agents_over_capacity():
        agent = store.agent_routing(agent_id)
        excess = agent["load"] - agent["capacity"]
        for conversation_id in store.waiting_assigned(agent_id)[:max(excess, 0)]:
            _count(report, flow_on(store, conversation_id, agent_id, now, "over_capacity"))
    for conversation_id in store.routing_backlog(now=iso(now), limit=BACKLOG_BATCH):
        decision = assign_new_conversation(store, conversation_id, now)
        if decision is not None and decision.agent_id is not None:
            report.assigned += 1
    return report


def _count(report: RebalanceReport, outcome: bool | None) -> None:
    if outcome is True:
        report.moved += 1
    elif outcome is False:
        report.returned_to_queue += 1


def set_status(store: Store, agent_id: int, status: str, now: dt.datetime | None = None) -> RebalanceReport:
    """An agent chooses a status; their waiting conversations flow on, or the backlog comes to them."""
    now = now or clock.now()
    store.set_agent_status(agent_id, status, iso(now))
    return rebalance(store, now, inactivity=False)
