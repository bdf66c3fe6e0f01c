"""A simulated working day through Mainland's routing and through plain round-robin, with Erlang C as reference.

    python bench/routing.py                 # one day, seed 7
    python bench/routing.py --days 5        # five different days, figures over all of them
    python bench/routing.py --desired 15m --adequate 1h --seed 3

The day: conversations arrive per channel by hour (Poisson, a profile per channel, 08:00-20:00),
in English or Dutch, about a topic, a quarter of them from a customer who wrote earlier that day.
Agents work shifts, speak one or two languages, know some topics and carry a capacity of open
conversations. An agent works one reply at a time from their own list, oldest first; a first
reply takes a lognormal time (mean 6 min), longer in a language the agent does not list (x1.8),
shorter on a topic they know (x0.85). After the reply the customer answers within some
exponential time (mean 40 min) in half of the conversations, which needs one more reply (mean
4 min) from whoever holds it; then the conversation is resolved and frees its capacity.

Two ways of handing conversations out, on the very same day (same arrivals, same random work
times per conversation):

- **Mainland**: `inbox.routing.decide` itself (the production decision function) with the agents'
  state at that moment: the customer's previous agent if free and under capacity, else the free
  agent who speaks the language with the most room, else the queue, pulled oldest first whenever
  capacity frees or a shift starts; at a shift's end the agent's waiting conversations flow on
  (`decide` with that agent excluded), as `inbox.routing.rebalance` does.
- **Round-robin**: the next agent on shift in turn, whatever their load, language or topic; at a
  shift's end the agent's waiting conversations are dealt out in turn as well (so the comparison
  is about load, language and the customer's own agent, not about who handles shift changes).

Reported for each: the share of conversations whose first reply went out within the desired
and within the adequate target, the average wait until an agent started on it, and the average
time to the first reply. The reference is Erlang C (M/M/N) per hour for the same arrival rate,
the same mean work per conversation and the number of agents on shift: the probability that a
contact waits at most (target - mean first-reply time), weighted by arrivals per hour.

The last line is one JSON object: mainland_desired_share, mainland_adequate_share,
round_robin_desired_share, round_robin_adequate_share, erlang_c_desired_share,
erlang_c_adequate_share, mean waits and response times, conversations, days, seed.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inbox.routing import AgentState, Need, decide, pick_round_robin  # noqa: E402
from inbox.service_levels import parse_duration  # noqa: E402

DAY_START = 8 * 60
#: Conversations per hour from 08:00 to 19:00 (12 hourly slots), per channel.
ARRIVALS = {
    "email":    [4, 6, 7, 7, 6, 5, 5, 5, 4, 3, 2, 2],
    "whatsapp": [2, 3, 4, 5, 6, 6, 5, 5, 6, 6, 5, 4],
    "x":        [1, 1, 2, 2, 3, 3, 2, 2, 2, 2, 2, 1],
    "facebook": [1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1],
    "webform":  [1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0],
}
LANGUAGES = (("en", 0.65), ("nl", 0.35))
TOPICS = (("shipping", 0.45), ("refund", 0.3), ("account", 0.25))
RETURNING_SHARE = 0.25
FIRST_MEAN, FOLLOW_MEAN, SIGMA = 6.0, 4.0, 0.5
FOLLOW_UP_SHARE, TURNAROUND_MEAN = 0.5, 40.0
WRONG_LANGUAGE, KNOWN_TOPIC = 1.8, 0.85


@dataclass(frozen=True)
class AgentSpec:
    id: int
    name: str
    start: int  # minutes since midnight
    end: int
    capacity: int
    languages: frozenset[str]
    topics: frozenset[str]


AGENTS = [
    AgentSpec(1, "Anna", 8 * 60, 16 * 60, 8, frozenset({"en", "nl"}), frozenset({"shipping"})),
    AgentSpec(2, "Ben", 8 * 60, 16 * 60, 8, frozenset({"en"}), frozenset({"refund"})),
    AgentSpec(3, "Chris", 9 * 60, 17 * 60, 10, frozenset({"en"}), frozenset({"account"})),
    AgentSpec(4, "Daan", 9 * 60, 13 * 60, 6, frozenset({"nl"}), frozenset({"shipping", "refund"})),
    AgentSpec(5, "Eva", 12 * 60, 20 * 60, 8, frozenset({"en", "nl"}), frozenset({"refund"})),
    AgentSpec(6, "Femke", 12 * 60, 20 * 60, 8, frozenset({"nl", "en"}), frozenset({"account"})),
    AgentSpec(7, "Gus", 14 * 60, 20 * 60, 6, frozenset({"en"}), frozenset({"shipping"})),
]


@dataclass
class Conversation:
    id: int
    customer: int
    channel: str
    arrived: float
    language: str
    topic: str
    first_work: float  # minutes, before the agent's language/topic factor
    follow_work: float
    follow_up_after: float | None  # minutes after the first reply; None: resolved after `resolve_after`
    resolve_after: float
    agent: int | None = None
    picked: float | None = None
    replied: float | None = None


def _choice(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    roll, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if roll < total:
            return value
    return weighted[-1][0]


def make_day(rng: random.Random, scale: float = 1.0) -> list[Conversation]:
    """One day of arrivals (Poisson per channel and hour), with each conversation's work drawn once."""
    found: list[Conversation] = []
    customers = itertools.count(1)
    ids = itertools.count(1)
    for channel, profile in ARRIVALS.items():
        for slot, rate in enumerate(profile):
            t = DAY_START + slot * 60.0
            end = t + 60.0
            while rate > 0:
                t += rng.expovariate(rate * scale / 60.0)
                if t >= end:
                    break
                found.append(Conversation(
                    id=0, customer=0, channel=channel, arrived=t, language=_choice(rng, LANGUAGES),
                    topic=_choice(rng, TOPICS),
                    first_work=rng.lognormvariate(math.log(FIRST_MEAN) - SIGMA ** 2 / 2, SIGMA),
                    follow_work=rng.lognormvariate(math.log(FOLLOW_MEAN) - SIGMA ** 2 / 2, SIGMA),
                    follow_up_after=rng.expovariate(1 / TURNAROUND_MEAN) if rng.random() < FOLLOW_UP_SHARE else None,
                    resolve_after=rng.expovariate(1 / TURNAROUND_MEAN)))
    found.sort(key=lambda c: c.arrived)
    seen: list[tuple[int, str]] = []
    for conversation in found:
        conversation.id = next(ids)
        if seen and rng.random() < RETURNING_SHARE:
            conversation.customer, conversation.language = rng.choice(seen)
        else:
            conversation.customer = next(customers)
            seen.append((conversation.customer, conversation.language))
    return found


@dataclass
class AgentRun:
    spec: AgentSpec
    on_shift: bool = False
    busy: bool = False
    queue: deque = field(default_factory=deque)  # (conversation, "first" | "follow")
    open: set = field(default_factory=set)

    def state(self) -> AgentState:
        return AgentState(self.spec.id, self.spec.name, "available" if self.on_shift else "offline",
                          self.spec.capacity, len(self.open), self.spec.languages, self.spec.topics)


class Simulation:
    """A discrete-event run of one day under one policy ("mainland" or "round_robin")."""

    def __init__(self, conversations: list[Conversation], policy: str) -> None:
        self.policy = policy
        self.conversations = [Conversation(**{**c.__dict__}) for c in conversations]
        self.agents = {spec.id: AgentRun(spec) for spec in AGENTS}
        self.events: list[tuple[float, int, str, tuple]] = []
        self.order = itertools.count()
        self.backlog: list[Conversation] = []
        self.last_agent: dict[int, int] = {}
        self.last_routed: int | None = None
        self.now = 0.0

    def at(self, moment: float, kind: str, *args) -> None:
        heapq.heappush(self.events, (moment, next(self.order), kind, args))

    def run(self) -> list[Conversation]:
        for spec in AGENTS:
            self.at(spec.start, "shift_start", spec.id)
            self.at(spec.end, "shift_end", spec.id)
        for conversation in self.conversations:
            self.at(conversation.arrived, "arrive", conversation)
        while self.events:
            self.now, _, kind, args = heapq.heappop(self.events)
            getattr(self, f"_{kind}")(*args)
        return self.conversations

    # Handing out -------------------------------------------------------------------------------

    def _place(self, conversation: Conversation, *, exclude: tuple[int, ...] = ()) -> bool:
        """Give the conversation to an agent under the policy; False: it waits in the queue."""
        states = [a.state() for a in self.agents.values()]
        if self.policy == "mainland":
            need = Need(language=conversation.language, topics=frozenset({conversation.topic}),
                        last_agent_id=self.last_agent.get(conversation.customer))
            agent_id = decide(need, states, exclude=exclude).agent_id
        else:
            free = [AgentState(s.id, s.name, s.status, 10**6, 0) for s in states if s.id not in exclude]
            chosen = pick_round_robin([s for s in free if s.available], self.last_routed)
            agent_id = chosen.id if chosen else None
            if agent_id is not None:
                self.last_routed = agent_id
        if agent_id is None:
            return False
        self._assign(conversation, agent_id, "first" if conversation.replied is None else "follow")
        return True

    def _assign(self, conversation: Conversation, agent_id: int, work: str) -> None:
        agent = self.agents[agent_id]
        conversation.agent = agent_id
        agent.open.add(conversation.id)
        agent.queue.append((conversation, work))
        self._work(agent)

    def _pull_backlog(self) -> None:
        still = []
        for conversation in self.backlog:
            if not self._place(conversation):
                still.append(conversation)
        self.backlog = still

    def _flow_on(self, agent: AgentRun) -> None:
        waiting = list(agent.queue)
        agent.queue.clear()
        for conversation, _work in waiting:
            agent.open.discard(conversation.id)
            conversation.agent = None
            if not self._place(conversation, exclude=(agent.spec.id,)):
                self.backlog.append(conversation)
        self.backlog.sort(key=lambda c: c.arrived)

    # Work ---------------------------------------------------------------------------------------

    def _work(self, agent: AgentRun) -> None:
        if agent.busy or not agent.on_shift or not agent.queue:
            return
        conversation, work = agent.queue.popleft()
        factor = 1.0
        if agent.spec.languages and conversation.language not in agent.spec.languages:
            factor *= WRONG_LANGUAGE
        if conversation.topic in agent.spec.topics:
            factor *= KNOWN_TOPIC
        minutes = (conversation.first_work if work == "first" else conversation.follow_work) * factor
        if work == "first" and conversation.picked is None:
            conversation.picked = self.now
        agent.busy = True
        self.at(self.now + minutes, "done", agent.spec.id, conversation, work)

    def _done(self, agent_id: int, conversation: Conversation, work: str) -> None:
        agent = self.agents[agent_id]
        agent.busy = False
        if work == "first":
            conversation.replied = self.now
            self.last_agent[conversation.customer] = agent_id
            if conversation.follow_up_after is not None:
                self.at(self.now + conversation.follow_up_after, "customer_writes", conversation)
            else:
                self.at(self.now + conversation.resolve_after, "resolve", conversation)
        else:
            self._resolve(conversation)
        self._work(agent)

    def _customer_writes(self, conversation: Conversation) -> None:
        agent = self.agents.get(conversation.agent) if conversation.agent else None
        if agent is not None and agent.on_shift:
            agent.queue.append((conversation, "follow"))
            self._work(agent)
            return
        if agent is not None:
            agent.open.discard(conversation.id)
        conversation.agent = None
        if not self._place(conversation):
            self.backlog.append(conversation)

    def _resolve(self, conversation: Conversation) -> None:
        if conversation.agent is not None:
            self.agents[conversation.agent].open.discard(conversation.id)
        conversation.agent = None
        self._pull_backlog()

    # Events ---------------------------------------------------------------------------------------

    def _arrive(self, conversation: Conversation) -> None:
        if not self._place(conversation):
            self.backlog.append(conversation)

    def _shift_start(self, agent_id: int) -> None:
        self.agents[agent_id].on_shift = True
        self._pull_backlog()

    def _shift_end(self, agent_id: int) -> None:
        agent = self.agents[agent_id]
        agent.on_shift = False
        self._flow_on(agent)


# Erlang C ---------------------------------------------------------------------------------------------

def erlang_c(agents: int, load: float) -> float:
    """Probability that a contact has to wait (M/M/N with offered load `load` Erlangs)."""
    if agents <= 0 or load >= agents:
        return 1.0
    term, total = 1.0, 1.0
    for k in range(1, agents):
        term *= load / k
        total += term
    top = term * load / agents * agents / (agents - load)
    return top / (total + top)


def erlang_c_service_level(agents: int, load: float, aht: float, target: float) -> float:
    """P(wait <= target) for M/M/N; 0 when the load is more than the agents can carry."""
    if agents <= 0 or load >= agents:
        return 0.0
    if target < 0:
        return 0.0
    return 1.0 - erlang_c(agents, load) * math.exp(-(agents - load) * target / aht)


def erlang_reference(days: list[list[Conversation]], target: float) -> float:
    """Erlang C service level per hour (arrivals, agents on shift, mean work), weighted by arrivals."""
    first = FIRST_MEAN
    work_items = 1 + FOLLOW_UP_SHARE
    aht = (FIRST_MEAN + FOLLOW_UP_SHARE * FOLLOW_MEAN) / work_items
    weighted = total = 0
    for day in days:
        for slot in range(len(next(iter(ARRIVALS.values())))):
            start = DAY_START + slot * 60
            arrivals = sum(1 for c in day if start <= c.arrived < start + 60)
            if not arrivals:
                continue
            staff = sum(1 for a in AGENTS if a.start <= start + 30 < a.end)
            load = arrivals * work_items * aht / 60.0
            weighted += arrivals * erlang_c_service_level(staff, load, aht, target - first)
            total += arrivals
    return weighted / total if total else 0.0


# Report -------------------------------------------------------------------------------------------------

def figures(conversations: list[Conversation], desired: float, adequate: float) -> dict[str, float]:
    n = len(conversations)
    response = [(c.replied if c.replied is not None else math.inf) - c.arrived for c in conversations]
    waits = [(c.picked if c.picked is not None else math.inf) - c.arrived for c in conversations]
    finite = [w for w in waits if math.isfinite(w)]
    answered = [r for r in response if math.isfinite(r)]
    return {
        "desired_share": sum(r <= desired for r in response) / n,
        "adequate_share": sum(r <= adequate for r in response) / n,
        "mean_wait_min": sum(finite) / len(finite) if finite else math.inf,
        "mean_response_min": sum(answered) / len(answered) if answered else math.inf,
        "unanswered": n - len(answered),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every arrival rate")
    parser.add_argument("--desired", default="15m", help="first-response target customers desire (default 15m)")
    parser.add_argument("--adequate", default="1h", help="first-response target still adequate (default 1h)")
    args = parser.parse_args(argv)
    desired = parse_duration(args.desired, "--desired").total_seconds() / 60
    adequate = parse_duration(args.adequate, "--adequate").total_seconds() / 60

    rng = random.Random(args.seed)
    days = [make_day(rng, args.scale) for _ in range(args.days)]
    results: dict[str, list[Conversation]] = {"mainland": [], "round_robin": []}
    for day in days:
        for policy in results:
            done = Simulation(day, policy).run()
            results[policy] += done
    per_hour = sum(len(d) for d in days) / (args.days * 12)
    staffed = sum((a.end - a.start) / 60 for a in AGENTS) / 12
    print(f"{sum(len(d) for d in days)} conversations over {args.days} day(s) (seed {args.seed}), "
          f"{per_hour:.1f} per hour from 08:00 to 20:00; {len(AGENTS)} agents, {staffed:.1f} on shift on average")
    print(f"targets for the first reply: desired {desired:g} min, adequate {adequate:g} min")
    print()
    print(f"{'':14}{'within desired':>16}{'within adequate':>17}{'mean wait':>12}{'mean 1st reply':>16}")
    summary: dict[str, float] = {}
    for policy, label in (("mainland", "Mainland"), ("round_robin", "Round-robin")):
        f = figures(results[policy], desired, adequate)
        print(f"{label:14}{f['desired_share']:>15.1%}{f['adequate_share']:>17.1%}"
              f"{f['mean_wait_min']:>9.1f} min{f['mean_response_min']:>12.1f} min")
        summary[f"{policy}_desired_share"] = round(f["desired_share"], 4)
        summary[f"{policy}_adequate_share"] = round(f["adequate_share"], 4)
        summary[f"{policy}_mean_wait_min"] = round(f["mean_wait_min"], 2)
        summary[f"{policy}_mean_response_min"] = round(f["mean_response_min"], 2)
    erlang_desired = erlang_reference(days, desired)
    erlang_adequate = erlang_reference(days, adequate)
    print(f"{'Erlang C':14}{erlang_desired:>15.1%}{erlang_adequate:>17.1%}"
          "   (M/M/N per hour: same arrivals, mean work and agents on shift)")
    summary.update(erlang_c_desired_share=round(erlang_desired, 4), erlang_c_adequate_share=round(erlang_adequate, 4),
                   conversations=sum(len(d) for d in days), days=args.days, seed=args.seed,
                   desired_min=desired, adequate_min=adequate)
    print(json.dumps(summary, sort_keys=True))
    return summary


if __name__ == "__main__":
    main()
