"""Routing (issue 7): every rule, on a real SQLite store, with conversations arriving through ingest.

A new conversation goes to the customer's own agent if free, else to the free agent with the
needed language and most spare capacity, else it waits; agents leaving pass their waiting
conversations on; the backlog is pulled as capacity frees; round-robin and manual modes per team.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from inbox import routing
from inbox.attachments import AttachmentStore
from inbox.ingest import Ingestor
from inbox.models import Author, FetchResult, InboundItem
from inbox.routing import AgentState, Need, decide, detect_language, detect_topics
from inbox.store.base import iso

NOW = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)
ENGLISH = "Hello, my order has not arrived yet. Could you please tell me where it is? Thanks"
DUTCH = "Hallo, mijn bestelling is nog niet aangekomen. Kunt u mij zeggen waar die is? Groeten"
_ids = itertools.count(1)


@pytest.fixture
def team_ingestor(store, tmp_path):
    """An ingestor whose 'mail' channel belongs to team Support and 'pool' to no team."""
    return Ingestor(store, AttachmentStore(tmp_path / "att"), instance_id="test-instance",
                    team_for_channel=lambda channel: "Support" if channel == "mail" else None, now=lambda: NOW)


@pytest.fixture
def support(store):
    return store.create_team("Support")


def make_agent(store, name, team_id=None, *, status="available", capacity=3, languages=(), topics=()):
    agent_id = store.create_agent(email=f"{name.lower()}@example.org", name=name, role="agent", password_hash=None)
    store.set_agent_routing(agent_id, capacity=capacity, languages=languages, topics=topics, trainee=False)
    if team_id is not None:
        store.add_team_member(team_id, agent_id)
    store.set_agent_status(agent_id, status, iso(NOW))
    return agent_id


def arrive(ingestor, customer="jane@example.org", text=ENGLISH, *, channel="mail", subject="Where is my order?"):
    """A customer's first message: a new conversation (routed by ingest); returns its id."""
    item = InboundItem(channel=channel, external_id=f"m{next(_ids)}", author=Author(customer, customer.split("@")[0]),
                       text=text, subject=subject, sent_at=NOW)
    report = ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)
    assert report.new_conversations, "the message started a conversation"
    return report.new_conversations[0]


def write_again(ingestor, conversation_id, customer="jane@example.org", text="Any news?"):
    """The customer writes again in an existing conversation (by its token in the subject)."""
    token = ingestor.store.conversation(conversation_id)["token"]
    item = InboundItem(channel="mail", external_id=f"m{next(_ids)}", author=Author(customer), text=text,
                       subject=f"Re: [#{token}] order", sent_at=NOW)
    report = ingestor.ingest("mail", FetchResult(items=[item], cursor=None), save_cursor=False)
    assert not report.new_conversations


def answer(store, conversation_id, agent_id):
    """An agent's reply, as the outbox stores it (the customer then no longer waits)."""
    with store.write():
        store.queue_outbound(outbox_id=f"o{next(_ids)}", conversation_id=conversation_id, channel="mail",
                             agent_id=agent_id, text="On its way.", html=None, subject="Re", message_id=None, refs="",
                             author_name="", now=iso(NOW))


def assignee(store, conversation_id):
    return store.conversation(conversation_id)["assignee_id"]


def last_decision(store, conversation_id):
    row = store.routing_decisions(None, conversation_id=conversation_id, limit=1)[0]
    return row["reason"], json.loads(row["detail"])


def resolve(store, conversation_id):
    store.set_conversation_status(conversation_id, "resolved", None, iso(NOW))


# The customer's own agent ----------------------------------------------------------------------

def test_a_returning_customer_comes_back_to_the_agent_who_answered_them(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support)
    bob = make_agent(store, "Bob", support)
    first = arrive(team_ingestor)
    assert assignee(store, first) == ann  # equal spare capacity: the first agent
    store.assign_conversation(first, assignee_id=bob, team_id=support, now=iso(NOW))
    answer(store, first, bob)
    resolve(store, first)

    again = arrive(team_ingestor, subject="Another question")
    assert assignee(store, again) == bob, "back to the agent who answered last, although Ann has more room"
    assert last_decision(store, again)[0] == "last_agent"


def test_the_customers_owner_comes_before_whoever_answered_last(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support)
    bob = make_agent(store, "Bob", support)
    first = arrive(team_ingestor)
    answer(store, first, ann)
    resolve(store, first)
    store.update_customer(store.conversation(first)["customer_id"], {"owner_agent_id": bob}, iso(NOW))

    again = arrive(team_ingestor, subject="Invoice")
    assert assignee(store, again) == bob
    assert last_decision(store, again)[0] == "owner"


def test_overflow_when_the_customers_agent_is_at_capacity(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support, capacity=1)
    bob = make_agent(store, "Bob", support, capacity=3)
    first = arrive(team_ingestor)
    assert assignee(store, first) == bob  # Bob has the most spare capacity
    store.assign_conversation(first, assignee_id=ann, team_id=support, now=iso(NOW))
    answer(store, first, ann)  # Ann answered; the conversation stays open, so Ann is at her capacity of 1

    again = arrive(team_ingestor, subject="Second order")
    assert assignee(store, again) == bob
    reason, detail = last_decision(store, again)
    assert reason == "skills" and detail["own_agent"] == ann and detail["own_agent_state"] == "at_capacity"


def test_an_agent_who_is_away_is_skipped_and_the_conversation_goes_to_someone_free(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support)
    bob = make_agent(store, "Bob", support)
    first = arrive(team_ingestor)
    answer(store, first, ann)
    resolve(store, first)
    store.set_agent_status(ann, "away", iso(NOW))

    again = arrive(team_ingestor, subject="Hello again")
    assert assignee(store, again) == bob
    assert last_decision(store, again)[1]["own_agent_state"] == "away"


# Agents leaving and the backlog ------------------------------------------------------------------

def test_waiting_conversations_flow_on_when_an_agent_goes_offline_and_come_back_next_time(
        store, support, team_ingestor):
    ann = make_agent(store, "Ann", support)
    bob = make_agent(store, "Bob", support, status="offline")
    waiting = arrive(team_ingestor)
    answered_one = arrive(team_ingestor, "kim@example.org", subject="Thanks")
    assert assignee(store, waiting) == ann and assignee(store, answered_one) == ann
    answer(store, answered_one, ann)  # Kim was answered and does not wait

    routing.set_status(store, bob, "available", NOW)
    routing.set_status(store, ann, "offline", NOW)

    assert assignee(store, waiting) == bob, "the waiting customer is passed on"
    assert assignee(store, answered_one) == ann, "a conversation nobody waits in stays"
    reason, detail = last_decision(store, waiting)
    assert reason == "skills" and detail["from_state"] == "offline"
    rows = store.routing_decisions(None, conversation_id=waiting)
    assert rows[0]["previous_agent_id"] == ann

    # Ann is back; Kim writes about something new: Kim's conversation comes back to Ann.
    routing.set_status(store, ann, "available", NOW)
    resolve(store, answered_one)
    again = arrive(team_ingestor, "kim@example.org", subject="New question")
    assert assignee(store, again) == ann
    assert last_decision(store, again)[0] == "last_agent"


def test_with_nobody_free_a_conversation_waits_and_is_pulled_when_capacity_frees(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support, capacity=1)
    first = arrive(team_ingestor)
    second = arrive(team_ingestor, "kim@example.org")
    assert assignee(store, first) == ann
    assert assignee(store, second) is None, "Ann is full: Kim waits in the team's queue"
    assert last_decision(store, second) == ("queued", {"language": "en", "why": "nobody_free"})

    routing.rebalance(store, NOW)
    assert assignee(store, second) is None, "still no room"

    resolve(store, first)
    report = routing.rebalance(store, NOW)
    assert report.assigned == 1 and assignee(store, second) == ann


def test_the_backlog_goes_out_oldest_first(store, support, team_ingestor):
    old = arrive(team_ingestor, "a@example.org")
    newer = arrive(team_ingestor, "b@example.org")
    ann = make_agent(store, "Ann", support, capacity=1)  # joins after both arrived
    routing.rebalance(store, NOW)
    assert assignee(store, old) == ann and assignee(store, newer) is None


def test_an_agent_over_capacity_passes_the_excess_on(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support, capacity=3)
    conversations = [arrive(team_ingestor, f"c{i}@example.org") for i in range(3)]
    assert all(assignee(store, c) == ann for c in conversations)
    bob = make_agent(store, "Bob", support, capacity=3)
    store.set_agent_routing(ann, capacity=1, languages=(), topics=(), trainee=False)

    report = routing.rebalance(store, NOW)
    assert report.moved == 2
    assert [assignee(store, c) for c in conversations].count(ann) == 1
    assert [assignee(store, c) for c in conversations].count(bob) == 2


def test_inactivity_makes_an_agent_away_then_offline_and_activity_brings_them_back(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support)
    bob = make_agent(store, "Bob", support)
    store.touch_agent(bob, iso(NOW + routing.AWAY_AFTER))
    waiting = arrive(team_ingestor)
    assert assignee(store, waiting) == ann

    later = NOW + routing.AWAY_AFTER + dt.timedelta(minutes=1)
    report = routing.rebalance(store, later)
    assert report.went_away == [ann]
    assert store.agent_routing(ann)["routing_status"] == "away"
    assert assignee(store, waiting) == bob, "Ann's waiting customer goes to Bob, who is active"

    report = routing.rebalance(store, NOW + routing.OFFLINE_AFTER + dt.timedelta(minutes=1))
    assert ann in report.went_offline

    assert store.touch_agent(ann, iso(later)) is True
    assert store.agent_routing(ann)["routing_status"] == "available"


def test_a_status_the_agent_chose_is_not_undone_by_activity(store, support):
    ann = make_agent(store, "Ann", support, status="away")
    assert store.touch_agent(ann, iso(NOW)) is False
    assert store.agent_routing(ann)["routing_status"] == "away"


def test_an_assignment_made_by_hand_meanwhile_is_not_overwritten(store, support, team_ingestor):
    ann = make_agent(store, "Ann", support, status="offline")
    conversation = arrive(team_ingestor)
    bob = make_agent(store, "Bob", support, status="offline")
    store.assign_conversation(conversation, assignee_id=bob, team_id=support, now=iso(NOW))
    assert not store.route_assign(conversation, agent_id=ann, expected=None, reason="skills", detail={},
                                  team_id=support, now=iso(NOW))
    assert assignee(store, conversation) == bob


# Modes ---------------------------------------------------------------------------------------------

def test_round_robin_hands_out_in_turn_whatever_the_load(store, support, team_ingestor):
    store.set_routing_mode(support, "round_robin")
    ann = make_agent(store, "Ann", support, capacity=10)
    bob = make_agent(store, "Bob", support, capacity=10)
    cleo = make_agent(store, "Cleo", support, capacity=10)
    conversations = [arrive(team_ingestor, f"c{i}@example.org") for i in range(5)]
    assert [assignee(store, c) for c in conversations] == [ann, bob, cleo, ann, bob]
    routing.set_status(store, cleo, "away", NOW)
    assert assignee(store, conversations[2]) == ann, "Cleo's waiting customer goes to the next in turn"
    assert assignee(store, arrive(team_ingestor, "x@example.org")) == bob, "then Bob; Cleo is skipped while away"
    assert assignee(store, arrive(team_ingestor, "y@example.org")) == ann
    assert last_decision(store, conversations[0])[0] == "round_robin"


def test_round_robin_still_respects_capacity(store, support, team_ingestor):
    store.set_routing_mode(support, "round_robin")
    ann = make_agent(store, "Ann", support, capacity=1)
    bob = make_agent(store, "Bob", support, capacity=5)
    got = [assignee(store, arrive(team_ingestor, f"c{i}@example.org")) for i in range(3)]
    assert got == [ann, bob, bob]


def test_manual_mode_assigns_nothing_and_moves_nothing(store, support, team_ingestor):
    store.set_routing_mode(support, "manual")
    ann = make_agent(store, "Ann", support)
    conversation = arrive(team_ingestor)
    assert assignee(store, conversation) is None
    routing.rebalance(store, NOW)
    assert assignee(store, conversation) is None, "the backlog of a manual team is left to people"

    store.assign_conversation(conversation, assignee_id=ann, team_id=support, now=iso(NOW))
    make_agent(store, "Bob", support)
    routing.set_status(store, ann, "offline", NOW)
    assert assignee(store, conversation) == ann, "manual teams keep their assignments"
    assert [d["reason"] for d in store.routing_decisions(None, conversation_id=conversation)] == ["manual"]


def test_the_unrouted_pool_is_routed_to_any_agent_and_can_be_manual(store, support, team_ingestor):
    ann = make_agent(store, "Ann")  # in no team at all
    pooled = arrive(team_ingestor, channel="pool")
    assert store.conversation(pooled)["team_id"] is None
    assert assignee(store, pooled) == ann

    store.set_routing_mode(None, "manual")
    assert assignee(store, arrive(team_ingestor, "kim@example.org", channel="pool")) is None


def test_team_conversations_only_go_to_team_members(store, support, team_ingestor):
    make_agent(store, "Outsider", capacity=10)  # available, but not in Support
    member = make_agent(store, "Member", support, capacity=1)
    assert assignee(store, arrive(team_ingestor)) == member
    assert assignee(store, arrive(team_ingestor, "kim@example.org")) is None


# Skills --------------------------------------------------------------------------------------------

def test_a_dutch_message_goes_to_a_dutch_speaker_and_an_english_one_to_an_english_speaker(
        store, support, team_ingestor):
    english = make_agent(store, "Eve", support, capacity=9, languages=["en"])
    dutch = make_agent(store, "Daan", support, capacity=2, languages=["nl"])
    assert assignee(store, arrive(team_ingestor, "a@example.org", DUTCH, subject="Bestelling")) == dutch
    assert assignee(store, arrive(team_ingestor, "b@example.org", ENGLISH)) == english
    reason, detail = last_decision(store, arrive(team_ingestor, "c@example.org", DUTCH, subject="Vraag"))
    assert (reason, detail["language"]) == ("skills", "nl")


def test_a_dutch_message_waits_for_the_dutch_speaker_rather_than_going_to_someone_else(
        store, support, team_ingestor):
    make_agent(store, "Eve", support, capacity=9, languages=["en"])
    dutch = make_agent(store, "Daan", support, capacity=1, languages=["nl"])
    first = arrive(team_ingestor, "a@example.org", DUTCH, subject="Bestelling")
    second = arrive(team_ingestor, "b@example.org", DUTCH, subject="Retour")
    assert assignee(store, first) == dutch
    assert assignee(store, second) is None
    assert last_decision(store, second)[1]["why"] == "no_speaker_free"


def test_the_customers_locale_beats_the_detected_language(store, support, team_ingestor):
    make_agent(store, "Eve", support, capacity=9, languages=["en"])
    german = make_agent(store, "Gerd", support, capacity=1, languages=["de"])
    first = arrive(team_ingestor, "klaus@example.org", ENGLISH)
    store.update_customer(store.conversation(first)["customer_id"], {"locale": "de-AT"}, iso(NOW))
    resolve(store, first)
    store.assign_conversation(first, assignee_id=None, team_id=support, now=iso(NOW))
    assert assignee(store, arrive(team_ingestor, "klaus@example.org", ENGLISH, subject="Again")) == german


def test_a_language_nobody_lists_is_not_required():
    agents = [AgentState(1, status="available", languages=frozenset({"en"})),
              AgentState(2, status="available", capacity=9, languages=frozenset({"nl"}))]
    decision = decide(Need(language="fr"), agents)
    assert decision.agent_id == 2 and decision.detail["language_relaxed"] is True


def test_topics_narrow_the_choice_when_a_specialist_is_free():
    agents = [AgentState(1, status="available", capacity=9),
              AgentState(2, status="available", capacity=2, topics=frozenset({"refund"}))]
    assert decide(Need(topics=frozenset({"refund"})), agents).agent_id == 2
    assert decide(Need(topics=frozenset({"warranty"})), agents).agent_id == 1
    assert detect_topics("I want my refunds now", {"refund", "shipping"}) == {"refund"}


@pytest.mark.parametrize(("text", "locale", "expected"), [
    (ENGLISH, None, "en"),
    (DUTCH, None, "nl"),
    ("Bedankt voor de snelle levering!", None, "nl"),
    ("Thanks for the quick delivery, I love it", None, "en"),
    ("ok", None, None),
    ("Tot ziens", "en-GB", "en"),
    (ENGLISH, "nl_BE", "nl"),
])
def test_language_detection(text, locale, expected):
    assert detect_language(text, locale=locale) == expected


def test_automatic_mail_is_not_routed(store, support, team_ingestor):
    make_agent(store, "Ann", support)
    item = InboundItem(channel="mail", external_id="auto1", author=Author("bot@example.org"), text="I am away",
                       subject="Out of office", flags=frozenset({"auto_submitted"}), sent_at=NOW)
    report = team_ingestor.ingest("mail", FetchResult(items=[item], cursor=None), save_cursor=False)
    assert assignee(store, report.new_conversations[0]) is None
    assert store.routing_decisions(None, conversation_id=report.new_conversations[0]) == []


# The bench -------------------------------------------------------------------------------------------

def test_erlang_c_and_the_routing_bench(capsys):
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_routing", Path(__file__).parent.parent / "bench/routing.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_routing"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    assert bench.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert bench.erlang_c(1, 0.5) == pytest.approx(0.5)
    assert bench.erlang_c_service_level(3, 3.5, 5.0, 10.0) == 0.0, "an overloaded hour serves nobody in time"
    summary = bench.main(["--seed", "1"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == summary
    for key in ("mainland_desired_share", "mainland_adequate_share", "round_robin_desired_share",
                "erlang_c_desired_share"):
        assert 0.0 <= last[key] <= 1.0
    assert last["mainland_adequate_share"] >= last["mainland_desired_share"]
