"""Automation rules (issue 15): when something happens to a conversation, and it fits the conditions, act.

A rule is a trigger, a list of conditions (all must hold) and a list of actions, kept in the
`rules` table (m035) in the order an admin set at /admin/rules. For each trigger event the enabled
rules of that trigger are tried in order; a rule whose conditions hold *fires*: its actions are
applied in one transaction with a `rule_firings` row, a note in the conversation's timeline and an
audit entry (actor `rule:<id>`). A rule marked "stop here" ends the list for that event when it fires.

Triggers and where they come from:

- `message_received`, `conversation_created`: after an ingest batch commits (inbox/ingest.py
  `after_ingest`), never inside it; spam and merged conversations are left alone;
- `status_changed`: a status set on the conversation page (inbox/web/conversations.py `apply_status`)
  or by a rule's own action (bulk status changes from the queue do not trigger rules);
- `sla_desired`, `sla_adequate`: a running clock's desired or adequate due time is within the
  service levels' `warn_before` (the worker's minute job, `run_timed`);
- `waiting`: the customer has waited longer than the rule's minutes (also `run_timed`).

Loops: a rule fires at most once per conversation and trigger event (the UNIQUE key of
`rule_firings`: the message id, the status change, the due time, the waiting period). A rule's own
status change is a new event, evaluated in the same *chain* one level deeper; a chain goes at most
`MAX_DEPTH` levels deep, and in one chain each rule fires at most once per conversation, so two
rules that undo each other stop after one round.

Speed and safety: conditions are compiled once per change of the rules (`rules_version`); a
"matches" pattern is checked when saved (at most `MAX_PATTERN` characters, no back-references,
no nested quantifiers like `(a+)+`) and run with the `regex` module's timeout on at most
`MATCH_INPUT` characters. A rule that raises is logged and its failure recorded on the rule; the
other rules and the ingest go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import regex

from inbox import clock, lifecycle, routing, sendability, service_levels
from inbox.models import FLAG_AUTO_SUBMITTED
from inbox.store import Store
from inbox.store.base import StoreError, iso

log = logging.getLogger("mainland.rules")

TRIGGERS = ("message_received", "conversation_created", "status_changed", "sla_desired", "sla_adequate", "waiting")
CONDITIONS = ("channel", "visibility", "text_contains", "text_matches", "language", "customer_attribute", "team",
              "priority", "business_hours", "status")
ACTIONS = ("assign_team", "assign_agent", "add_label", "remove_label", "set_priority", "set_status", "reply",
           "note", "notify", "webhook")
#: Statuses a rule may set (snoozing needs a wake-up time, spam a person's judgement).
RULE_STATUSES = ("open", "pending", "resolved")
NOTIFY_WHO = ("assignee", "leads")
#: How deep a chain of rules triggering rules goes (the event itself is depth 0).
MAX_DEPTH = 3
MAX_PATTERN = 200
MAX_TEXT = 2000
MAX_NAME = 120
MAX_ROWS = 20
#: Characters of a message a pattern or "contains" looks at.
MATCH_INPUT = 10_000
#: Seconds a pattern may run on one message before it counts as not matching.
REGEX_TIMEOUT = 0.05
MAX_WAITING_MINUTES = 60 * 24 * 60
#: The dry run looks back this far.
DRY_RUN_DAYS = 7
DRY_RUN_LIMIT = 500
FLAG_RULE_REPLY = "rule_reply"
#: Priorities as the stored (English) timeline note names them.
PRIORITY_NAMES = ("No priority", "Low", "Medium", "High", "Urgent")

#: Nested quantifiers (`(a+)+`, `(\w*)*`, `(a|aa){2,}`): the simple shape of catastrophic backtracking.
_NESTED_QUANTIFIER = regex.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")
_BACKREFERENCE = regex.compile(r"\\[1-9]|\(\?P=|\\g<|\\k<")


class RuleFailed(Exception):
    """An action that cannot be applied (a deleted team, an unknown answer)."""


# Checking what an admin saves -----------------------------------------------------------------------

def pattern_problem(pattern: str) -> str | None:
    """Why a "matches" pattern is refused: `too_long`, `empty`, `backreference`, `nested`, `invalid`; or None."""
    if not pattern:
        return "empty"
    if len(pattern) > MAX_PATTERN:
        return "too_long"
    if _BACKREFERENCE.search(pattern):
        return "backreference"
    if _NESTED_QUANTIFIER.search(pattern):
        return "nested"
    try:
        regex.compile(pattern, regex.IGNORECASE | regex.V0)
    except (regex.error, ValueError, OverflowError):
        return "invalid"
    return None


def check_rule(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems of a rule as (where, code): `name`, `trigger`, `minutes`, `condition:<i>`, `action:<i>`."""
    problems: list[tuple[str, str]] = []
    if not (data.get("name") or "").strip() or len(data.get("name") or "") > MAX_NAME:
        problems.append(("name", "name"))
    if data.get("trigger") not in TRIGGERS:
        problems.append(("trigger", "trigger"))
    if data.get("trigger") == "waiting":
        minutes = data.get("trigger_minutes")
        if not isinstance(minutes, int) or not 1 <= minutes <= MAX_WAITING_MINUTES:
            problems.append(("minutes", "minutes"))
    if not data.get("actions"):
        problems.append(("actions", "no_actions"))
    for index, condition in enumerate(data.get("conditions") or []):
        code = _condition_problem(condition)
        if code:
            problems.append((f"condition:{index}", code))
    for index, action in enumerate(data.get("actions") or []):
        code = _action_problem(action)
        if code:
            problems.append((f"action:{index}", code))
    return problems


def _condition_problem(condition: Mapping[str, Any]) -> str | None:
    kind, value = condition.get("type"), condition.get("value")
    if kind not in CONDITIONS:
        return "unknown"
    if kind == "text_matches":
        return pattern_problem(str(value or ""))
    if kind in ("text_contains", "channel", "language") and not str(value or "").strip():
        return "empty"
    if kind == "customer_attribute" and not str(condition.get("key") or "").strip():
        return "empty"
    if kind == "visibility" and value not in ("public", "private"):
        return "choice"
    if kind == "business_hours" and value not in ("inside", "outside"):
        return "choice"
    if kind == "status" and value not in lifecycle.STATUSES:
        return "choice"
    if kind == "priority" and (value not in lifecycle.PRIORITIES or condition.get("op") not in ("is", "at_least")):
        return "choice"
    if kind == "team" and value is not None and not isinstance(value, int):
        return "choice"
    return None


def _action_problem(action: Mapping[str, Any]) -> str | None:
    kind, value = action.get("type"), action.get("value")
    if kind not in ACTIONS:
        return "unknown"
    if kind in ("add_label", "remove_label", "note") and not str(value or "").strip():
        return "empty"
    if kind in ("add_label", "remove_label") and len(str(value)) > 40:
        return "too_long"
    if kind == "note" and len(str(value)) > MAX_TEXT:
        return "too_long"
    if kind == "set_priority" and value not in lifecycle.PRIORITIES:
        return "choice"
    if kind == "set_status" and value not in RULE_STATUSES:
        return "choice"
    if kind in ("assign_team", "assign_agent", "reply", "webhook") and not isinstance(value, int):
        return "choice"
    if kind == "notify" and value not in NOTIFY_WHO and not isinstance(value, int):
        return "choice"
    return None


# Compiling -------------------------------------------------------------------------------------------

Check = Callable[[Mapping[str, Any], "Context"], bool]


@dataclass(frozen=True)
class Compiled:
    """A rule with its conditions turned into checks (done once per change of the rules)."""

    rule: Mapping[str, Any]
    checks: tuple[Check, ...]

    @property
    def trigger(self) -> str:
        return self.rule["trigger"]

    def matches(self, facts: Mapping[str, Any], ctx: Context) -> bool:
        return all(check(facts, ctx) for check in self.checks)


def _text(facts: Mapping[str, Any]) -> str:
    return f"{facts.get('message_subject') or facts.get('subject') or ''}\n{facts.get('message_text') or ''}"[
        :MATCH_INPUT]


def _compile_condition(condition: Mapping[str, Any]) -> Check:
    kind, value = condition["type"], condition.get("value")
    if kind == "channel":
        channels = {c.strip() for c in str(value).split(",") if c.strip()}
        return lambda f, _c: f["channel"] in channels
    if kind == "visibility":
        public = value == "public"
        return lambda f, _c: bool(f["public"]) == public
    if kind == "text_contains":
        needle = str(value).casefold()
        return lambda f, _c: needle in _text(f).casefold()
    if kind == "text_matches":
        pattern = regex.compile(str(value), regex.IGNORECASE | regex.V0)

        def matches(f: Mapping[str, Any], _c: Context) -> bool:
            try:
                return pattern.search(_text(f), timeout=REGEX_TIMEOUT) is not None
            except TimeoutError:
                log.warning("pattern %r timed out on conversation %s: counted as no match", value, f["id"])
                return False
        return matches
    if kind == "language":
        wanted = str(value).strip().lower()
        return lambda f, _c: routing.detect_language(_text(f), locale=f.get("customer_locale")) == wanted
    if kind == "customer_attribute":
        key = str(condition.get("key")).strip()
        expected = str(value or "").strip().casefold()
        return lambda f, _c: str((f.get("attributes") or {}).get(key, "")).strip().casefold() == expected
    if kind == "team":
        return lambda f, _c: f["team_id"] == value
    if kind == "priority":
        if condition.get("op") == "at_least":
            return lambda f, _c: (f["priority"] or 0) >= value
        return lambda f, _c: (f["priority"] or 0) == value
    if kind == "business_hours":
        inside = value == "inside"
        return lambda f, c: c.levels.hours_for(f.get("team_name")).is_open(c.now) == inside
    if kind == "status":
        return lambda f, _c: f["status"] == value
    raise ValueError(f"unknown condition {kind!r}")


def compile_rule(rule: Mapping[str, Any]) -> Compiled:
    return Compiled(rule, tuple(_compile_condition(c) for c in rule.get("conditions") or []))


_cache: dict[str, tuple[int, list[Compiled]]] = {}
_cache_lock = threading.Lock()


def compiled_rules(store: Store) -> list[Compiled]:
    """The enabled rules in order, compiled; recompiled only when the rules changed."""
    version = store.rules_version()
    key = str(store.path)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
    compiled = []
    for rule in store.rules(enabled_only=True):
        try:
            compiled.append(compile_rule(rule))
        except Exception as exc:  # a rule stored before a check tightened: skipped, and said so on the rule
            log.warning("rule %s cannot be compiled: %s", rule["id"], exc)
    with _cache_lock:
        _cache[key] = (version, compiled)
    return compiled


# Running ---------------------------------------------------------------------------------------------

@dataclass
class Context:
    """What firing needs: the store, the time, the service levels (business hours) and, for replies,
    the running Mainland (None: replies are refused, the rest works)."""

    store: Store
    now: dt.datetime
    levels: service_levels.ServiceLevels = field(default_factory=lambda: service_levels.from_config(None))
    mainland: Any = None


@dataclass(frozen=True)
class Event:
    trigger: str
    conversation_id: int
    key: str
    message_id: int | None = None
    minutes: int | None = None
    depth: int = 0


@dataclass
class Chain:
    """One event and what its rules set off: which rule fired for which conversation."""

    fired: set[tuple[int, int]] = field(default_factory=set)
    firings: list[int] = field(default_factory=list)


def context_for(mainland: Any, store: Store, now: dt.datetime | None = None) -> Context:
    levels = service_levels.for_config(mainland.config) if mainland is not None else service_levels.from_config(None)
    return Context(store=store, now=now or clock.now(), levels=levels, mainland=mainland)


def run(ctx: Context, event: Event, chain: Chain | None = None) -> Chain:
    """Try the rules of `event.trigger` on its conversation, in order; never raises."""
    chain = chain if chain is not None else Chain()
    if event.depth > MAX_DEPTH:
        log.info("rules: chain on conversation %s stopped at depth %s", event.conversation_id, event.depth)
        return chain
    try:
        rules = [c for c in compiled_rules(ctx.store) if c.trigger == event.trigger]
    except Exception:
        log.exception("rules could not be read; none ran for conversation %s", event.conversation_id)
        return chain
    follow: list[Event] = []
    for compiled in rules:
        rule = compiled.rule
        if event.trigger == "waiting" and rule.get("trigger_minutes") != event.minutes:
            continue
        if (rule["id"], event.conversation_id) in chain.fired:
            continue  # loop protection: once per rule and conversation in one chain
        facts = ctx.store.rule_facts(event.conversation_id, event.message_id)
        if facts is None or facts["status"] == "spam" or facts.get("merged_into"):
            return chain
        try:
            if not compiled.matches(facts, ctx):
                continue
            fired = _fire(ctx, rule, event, facts, chain, follow)
        except Exception as exc:
            log.exception("rule %s failed on conversation %s", rule["id"], event.conversation_id)
            _record_failure(ctx, rule, event, exc)
            continue
        if fired and rule["stop"]:
            break
    for sub in follow:
        run(ctx, sub, chain)
    return chain


def _fire(ctx: Context, rule: Mapping[str, Any], event: Event, facts: Mapping[str, Any], chain: Chain,
          follow: list[Event]) -> bool:
    store = ctx.store
    now = iso(ctx.now)
    with store.write():
        firing_id = store.claim_rule_firing(dict(rule), event.conversation_id, event.key, event.depth, now)
        if firing_id is None:
            return False  # fired for this event already
        chain.fired.add((rule["id"], event.conversation_id))
        done = []
        current = dict(facts)  # each action sees what the ones before it changed
        for action in rule["actions"]:
            outcome = apply_action(ctx, rule, action, current, firing_id, event, follow)
            if outcome is not None:
                done.append(outcome)
        store.finish_rule_firing(firing_id, done)
        store.add_rule_note(event.conversation_id, firing_id, firing_text(rule["name"], done), now)
        store.audit(now, f"rule:{rule['id']}", "rule_fired", "conversation", event.conversation_id,
                    rule=rule["name"], trigger=event.trigger, event=event.key, depth=event.depth, done=done)
    chain.firings.append(firing_id)
    return True


def _record_failure(ctx: Context, rule: Mapping[str, Any], event: Event, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"[:500]
    now = iso(ctx.now)
    try:
        with ctx.store.write():
            firing_id = ctx.store.claim_rule_firing(dict(rule), event.conversation_id, event.key, event.depth, now)
            if firing_id is not None:
                ctx.store.finish_rule_firing(firing_id, [], outcome="failed", error=error)
            ctx.store.record_rule_failure(rule["id"], error, now)
    except Exception:
        log.exception("could not record the failure of rule %s", rule["id"])


# Actions ---------------------------------------------------------------------------------------------

def apply_action(ctx: Context, rule: Mapping[str, Any], action: Mapping[str, Any], facts: dict[str, Any],
                 firing_id: int, event: Event, follow: list[Event]) -> dict[str, Any] | None:
    """Apply one action; what was done (for the timeline and the audit), or None when nothing changed."""
    store, now = ctx.store, iso(ctx.now)
    kind, value = action["type"], action.get("value")
    cid = facts["id"]
    if kind == "add_label":
        label_id = store.ensure_label(str(value))
        return {"type": kind, "label": str(value)} if store.add_conversation_label(cid, label_id) else None
    if kind == "remove_label":
        return {"type": kind, "label": str(value)} if store.remove_conversation_label(cid, str(value)) else None
    if kind == "set_priority":
        if facts["priority"] == value:
            return None
        store.set_conversation_priority(cid, value, now)
        before, facts["priority"] = facts["priority"], value
        return {"type": kind, "before": before, "after": value}
    if kind == "set_status":
        return _set_status(ctx, facts, value, firing_id, event, follow)
    if kind == "assign_team":
        return _assign_team(store, facts, value, now)
    if kind == "assign_agent":
        return _assign_agent(store, facts, value, now)
    if kind == "note":
        store.add_note(cid, agent_id=None, author_name=rule["name"], text=str(value),
                       external_id=f"rule-note:{firing_id}:{uuid.uuid4().hex}", now=now)
        return {"type": kind}
    if kind == "notify":
        return _notify(store, facts, value, now)
    if kind == "reply":
        return _reply(ctx, facts, value)
    if kind == "webhook":
        return _webhook(ctx, rule, facts, value, firing_id, event)
    raise RuleFailed(f"unknown action {kind!r}")


def _webhook(ctx: Context, rule: Mapping[str, Any], facts: dict[str, Any], subscription_id: int, firing_id: int,
             event: Event) -> dict[str, Any]:
    """The firing, sent to one webhook subscription through the outbound webhooks' delivery (signed,
    retried, in that subscription's log); queued in the firing's transaction."""
    from inbox import webhooks_out

    subscription = ctx.store.webhook_subscription(subscription_id)
    if subscription is None:
        raise RuleFailed(f"there is no webhook subscription {subscription_id}")
    webhooks_out.queue_rule_firing(ctx.store, subscription_id, rule=rule, trigger=event.trigger,
                                   conversation_id=facts["id"], message_id=event.message_id, firing_id=firing_id,
                                   now=ctx.now)
    return {"type": "webhook", "url": subscription["url"]}


def _set_status(ctx: Context, facts: dict[str, Any], target: str, firing_id: int, event: Event,
                follow: list[Event]) -> dict[str, Any] | None:
    change = lifecycle.transition(facts["status"], target, now=ctx.now, merged=bool(facts.get("merged_into")))
    if change.status == facts["status"]:
        return None
    ctx.store.set_conversation_status(facts["id"], change.status, None, iso(ctx.now))
    follow.append(Event("status_changed", facts["id"], f"status:rule-firing:{firing_id}", depth=event.depth + 1))
    before, facts["status"] = facts["status"], change.status
    return {"type": "set_status", "before": before, "after": change.status}


def _assign_team(store: Store, facts: dict[str, Any], team_id: int, now: str) -> dict[str, Any] | None:
    team = store.team(team_id)
    if team is None:
        raise RuleFailed(f"there is no team {team_id}")
    if facts["team_id"] == team_id:
        return None
    assignee = facts["assignee_id"]
    if assignee is not None and team_id not in store.agent_team_ids(assignee):
        agent = store.agent(assignee)
        if agent is None or agent["role"] not in ("manager", "admin"):
            assignee = None  # they could not see it in the new team
    store.assign_conversation(facts["id"], assignee_id=assignee, team_id=team_id, now=now)
    facts["team_id"], facts["assignee_id"], facts["team_name"] = team_id, assignee, team["name"]
    return {"type": "assign_team", "team": team["name"]}


def _assign_agent(store: Store, facts: dict[str, Any], agent_id: int, now: str) -> dict[str, Any] | None:
    agent = store.agent(agent_id)
    if agent is None or not agent["active"]:
        raise RuleFailed(f"there is no active agent {agent_id}")
    if facts["team_id"] is not None and agent["role"] not in ("manager", "admin") \
            and facts["team_id"] not in store.agent_team_ids(agent_id):
        raise RuleFailed(f"agent {agent_id} is not in the conversation's team")
    if facts["assignee_id"] == agent_id:
        return None
    store.assign_conversation(facts["id"], assignee_id=agent_id, team_id=facts["team_id"], now=now)
    facts["assignee_id"] = agent_id
    store.notifications.add([agent_id], kind="assigned", conversation_id=facts["id"], message_id=None,
                            actor_id=None, now=now)
    return {"type": "assign_agent", "agent": agent["name"] or agent["email"]}


def _notify(store: Store, facts: dict[str, Any], who: Any, now: str) -> dict[str, Any] | None:
    if who == "assignee":
        agents = [facts["assignee_id"]] if facts["assignee_id"] else []
    elif who == "leads":
        agents = store.leads_for_team(facts["team_id"])
    else:
        agent = store.agent(who)
        agents = [who] if agent and agent["active"] else []
    if not agents:
        return None
    store.notifications.add(agents, kind="rule", conversation_id=facts["id"], message_id=None, actor_id=None,
                            now=now)
    return {"type": "notify", "count": len(agents)}


def _reply(ctx: Context, facts: dict[str, Any], answer_id: int) -> dict[str, Any]:
    """A library answer to the customer, through the one sending rule (as an automatic message)."""
    from inbox import answers as library
    from inbox.outbox import ReplyRefused, queue_reply

    store = ctx.store
    try:
        answer = store.answers.get(answer_id)
    except StoreError:
        raise RuleFailed(f"there is no answer {answer_id}") from None
    if not answer.active:
        raise RuleFailed(f"answer {answer_id} is archived")
    if ctx.mainland is None:
        return {"type": "reply", "refused": "channel_gone"}
    conversation = store.conversation(facts["id"])
    channel = ctx.mainland.config.channels.get(conversation["channel"])
    if channel is None:
        return {"type": "reply", "refused": "channel_gone"}
    connector_cls = ctx.mainland.connector_class(channel.settings.get("reply_channel") or conversation["channel"])
    context = store.answers.context(facts["id"])
    adapted = library.render(answer.body, asdict(context) if context else {}, agent_name=None,
                             connector_cls=connector_cls)
    decision = sendability.decide(ctx.mainland, store, conversation, kind=sendability.RULE_REPLY, text=adapted.text,
                                  now=ctx.now)
    if not decision.allowed:
        return {"type": "reply", "refused": decision.code}
    try:
        queue_reply(ctx.mainland, store, facts["id"], adapted.text, now=ctx.now, target=decision.target,
                    flags=(FLAG_AUTO_SUBMITTED, FLAG_RULE_REPLY))
    except ReplyRefused:
        return {"type": "reply", "refused": "nothing_to_answer"}
    # An automatic answer is no answer by a person: the conversation and its clocks stay as they were.
    store.sendability.keep_unanswered(facts["id"], status=conversation["status"],
                                      first_response_at=conversation.get("first_response_at"))
    return {"type": "reply", "answer": answer.title}


# Words ---------------------------------------------------------------------------------------------

def _untranslated(message: str, **params: Any) -> str:
    return message % params if params else message


def describe_done(item: Mapping[str, Any], _: Callable[..., str] = _untranslated) -> str:
    """One action's outcome in words ("added label hot"); `_` translates (the web passes gettext)."""
    kind = item.get("type")
    if kind == "add_label":
        return _("added the label %(label)s", label=item["label"])
    if kind == "remove_label":
        return _("removed the label %(label)s", label=item["label"])
    if kind == "set_priority":
        after = item["after"]
        # Stored notes name the priority in English; the web passes the reader's word for it.
        name = PRIORITY_NAMES[after] if isinstance(after, int) and 0 <= after < len(PRIORITY_NAMES) else after
        return _("set the priority to %(priority)s", priority=name)
    if kind == "set_status":
        return _("set the status to %(status)s", status=item["after"])
    if kind == "assign_team":
        return _("handed it to the team %(team)s", team=item["team"])
    if kind == "assign_agent":
        return _("assigned it to %(agent)s", agent=item["agent"])
    if kind == "note":
        return _("added a note")
    if kind == "notify":
        return _("notified %(count)s agent(s)", count=item["count"])
    if kind == "webhook":
        return _("sent it to the webhook %(url)s", url=item["url"])
    if kind == "reply":
        if item.get("refused"):
            return _("sent no reply (%(reason)s)", reason=item["refused"])
        return _("replied with the answer %(answer)s", answer=item["answer"])
    return str(kind)


def firing_text(name: str, done: Iterable[Mapping[str, Any]], _: Callable[..., str] = _untranslated,
                describe: Callable[[Mapping[str, Any]], str] | None = None) -> str:
    """The timeline's words for one firing: 'Rule "Urgent" fired: added the label hot.' `describe`
    words one action (the web's names statuses and priorities in the reader's language)."""
    parts = [describe(item) if describe else describe_done(item, _) for item in done]
    if not parts:
        return _("Rule \u201c%(name)s\u201d fired; nothing needed changing.", name=name)
    return _("Rule \u201c%(name)s\u201d fired: %(done)s.", name=name, done="; ".join(parts))


# Hooks -------------------------------------------------------------------------------------------------

def after_ingest(mainland: Any, store: Store, new_conversations: Iterable[int], message_ids: Iterable[int],
                 now: dt.datetime | None = None) -> int:
    """Run the `conversation_created` and `message_received` rules of one committed ingest batch; the
    number of firings. Never raises: a rule problem must not cost the messages."""
    try:
        ctx = context_for(mainland, store, now)
        if not compiled_rules(store):
            return 0
        fired = 0
        for conversation_id in new_conversations:
            fired += len(run(ctx, Event("conversation_created", conversation_id, "created")).firings)
        for message_id, conversation_id in store.inbound_message_conversations(list(message_ids)):
            fired += len(run(ctx, Event("message_received", conversation_id, f"received:{message_id}",
                                        message_id=message_id)).firings)
        return fired
    except Exception:
        log.exception("rules after ingest failed")
        return 0


def after_status_change(mainland: Any, store: Store, conversation_id: int, before: str, after: str,
                        now: dt.datetime | None = None) -> int:
    """Run the `status_changed` rules after a person changed the status; the number of firings."""
    try:
        ctx = context_for(mainland, store, now)
        key = f"status:{before}>{after}@{iso(ctx.now)}"
        return len(run(ctx, Event("status_changed", conversation_id, key)).firings)
    except Exception:
        log.exception("rules after a status change failed")
        return 0


#: How far back a due time or a waiting period may lie and still be caught (a worker that was down).
CATCH_UP = dt.timedelta(hours=1)


def run_timed(mainland: Any, store: Store, now: dt.datetime | None = None) -> int:
    """The worker's minute job: service levels about to pass desired or adequate, and long waits."""
    ctx = context_for(mainland, store, now)
    rules = compiled_rules(store)
    triggers = {c.trigger for c in rules}
    fired = 0
    for level in ("desired", "adequate"):
        trigger = f"sla_{level}"
        if trigger not in triggers:
            continue
        rows = store.sla_due_for_rules(level, iso(ctx.now + ctx.levels.warn_before), iso(ctx.now - CATCH_UP))
        for row in rows:
            event = Event(trigger, row["conversation_id"], f"{trigger}:{row['metric']}:{row['due_at']}")
            fired += len(run(ctx, event).firings)
    for minutes in sorted({c.rule.get("trigger_minutes") for c in rules if c.trigger == "waiting"} - {None}):
        for row in store.waiting_since_before(iso(ctx.now - dt.timedelta(minutes=minutes))):
            event = Event("waiting", row["conversation_id"], f"waiting:{minutes}:{row['waiting_since']}",
                          minutes=minutes)
            fired += len(run(ctx, event).firings)
    return fired


# The dry run -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DryRunHit:
    conversation_id: int
    subject: str
    channel: str
    created_at: str
    would: tuple[dict[str, Any], ...]


def dry_run(ctx: Context, rule: Mapping[str, Any], *, days: int = DRY_RUN_DAYS) -> list[DryRunHit]:
    """Which conversations of the last `days` the rule's conditions fit (their state now, their
    customer's latest message), and what its actions would do. Reads only: nothing is written."""
    compiled = compile_rule(rule)
    hits = []
    for conversation_id in ctx.store.conversations_since(iso(ctx.now - dt.timedelta(days=days)), DRY_RUN_LIMIT):
        facts = ctx.store.rule_facts(conversation_id)
        if facts is None or facts["status"] == "spam" or not compiled.matches(facts, ctx):
            continue
        would = tuple(w for w in (_would(ctx.store, facts, a) for a in rule.get("actions") or []) if w)
        hits.append(DryRunHit(conversation_id, facts["subject"] or "", facts["channel"], facts["created_at"], would))
    return hits


def _would(store: Store, facts: Mapping[str, Any], action: Mapping[str, Any]) -> dict[str, Any] | None:
    """What an action would do, worked out without writing (None: nothing would change)."""
    kind, value = action["type"], action.get("value")
    if kind == "add_label":
        return None if store.conversation_has_label(facts["id"], str(value)) else {"type": kind, "label": value}
    if kind == "remove_label":
        return {"type": kind, "label": value} if store.conversation_has_label(facts["id"], str(value)) else None
    if kind == "set_priority":
        return None if facts["priority"] == value else {"type": kind, "after": value}
    if kind == "set_status":
        return None if facts["status"] == value else {"type": kind, "after": value}
    if kind == "assign_team":
        team = store.team(value)
        return None if facts["team_id"] == value else {"type": kind, "team": team["name"] if team else "?"}
    if kind == "assign_agent":
        agent = store.agent(value)
        return None if facts["assignee_id"] == value else {
            "type": kind, "agent": (agent["name"] or agent["email"]) if agent else "?"}
    if kind == "reply":
        try:
            return {"type": kind, "answer": store.answers.get(value).title}
        except StoreError:
            return {"type": kind, "refused": "?"}
    if kind == "webhook":
        # Shown, never sent: the dry run writes nothing, so no delivery is queued.
        subscription = store.webhook_subscription(value)
        return {"type": kind, "url": subscription["url"] if subscription else "?"}
    if kind == "notify":
        return {"type": kind, "count": 1 if isinstance(value, int) else len(
            store.leads_for_team(facts["team_id"]) if value == "leads" else [facts["assignee_id"]] * bool(
                facts["assignee_id"]))}
    return {"type": kind}
