"""Presence and assignment: signing in and acting make an agent available, and routing never undoes
what a person assigned, except flow-on from an agent who left, which says so in the timeline and
tells the agent.

Through the web client where the user acts (sign in, "Assign to me", a note, choosing a status),
with the routing run the worker calls (`inbox.routing.rebalance`) on the frozen clock, so "45 s
later" and "ten minutes without activity" happen without waiting.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest

from inbox import routing
from inbox.models import Author, FetchResult, InboundItem
from inbox.store.base import iso
from tests.test_web_auth import csrf_token, login, make_agent

_ids = itertools.count(1)


class World:
    """The app, its store, Ann and Bob (agents in no team: they answer the unrouted pool) and Lea,
    a lead, and helpers to let customers write in and to act as an agent."""

    def __init__(self, app, clock):
        self.app = app
        self.clock = clock
        mainland = app.extensions["mainland"]
        self.store = mainland.open_store()
        self.ingestor = mainland.ingestor(self.store)
        self.ann = make_agent(self.store)["id"]
        self.bob = make_agent(self.store, email="bob@example.org", name="Bob Builder")["id"]
        self.lea = make_agent(self.store, email="lea@example.org", name="Lea Lead", role="lead")["id"]
        self.emails = {self.ann: "ann@example.org", self.bob: "bob@example.org", self.lea: "lea@example.org"}

    def arrive(self, customer: str = "jane@example.org", text: str = "Where is my order? It has not arrived.") -> int:
        """A customer's first message: a new conversation (routed by ingest, as in production)."""
        item = InboundItem(channel="mail", external_id=f"m{next(_ids)}", author=Author(customer, "Jane"),
                           text=text, subject="Where is my order?", sent_at=self.clock.now())
        report = self.ingestor.ingest("mail", FetchResult(items=[item], cursor=None), save_cursor=False)
        return report.new_conversations[0]

    def sign_in(self, agent_id: int):
        client = self.app.test_client()
        assert login(client, email=self.emails[agent_id]).status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client

    def post(self, client, path: str, data: dict | None = None):
        response = client.post(path, data={**(data or {}), "csrf_token": client.token})
        assert response.status_code in (200, 302, 303), (path, response.status_code)
        return response

    def assignee(self, conversation_id: int) -> int | None:
        return self.store.conversation(conversation_id)["assignee_id"]

    def status(self, agent_id: int) -> str:
        return self.store.agent_routing(agent_id)["routing_status"]

    def choose(self, agent_id: int, status: str) -> None:
        """The agent chose a status on My status (without routing's pass, which the test runs itself)."""
        self.store.set_agent_status(agent_id, status, iso(self.clock.now()))

    def assign_by_hand(self, conversation_id: int, agent_id: int) -> None:
        self.store.assign_conversation(conversation_id, assignee_id=agent_id, team_id=None,
                                       now=iso(self.clock.now()))


@pytest.fixture
def world(app, frozen_clock):
    w = World(app, frozen_clock)
    yield w
    w.store.close()


def header_status(page: str) -> str:
    """The status the top bar's indicator shows."""
    match = re.search(r'class="status-dot (\w+)"', page)
    assert match, "the top bar shows a status"
    return match.group(1)


# The reported bug, exactly ------------------------------------------------------------------------

def test_assign_to_me_after_signing_in_is_not_undone_by_the_routing_run_45_seconds_later(world):
    conversation = world.arrive()
    assert world.assignee(conversation) is None, "nobody is available yet: it waits in the queue"
    world.choose(world.bob, "available")

    assert world.status(world.ann) == "offline", "Ann starts offline, as every new agent does"
    ann = world.sign_in(world.ann)
    world.post(ann, f"/conversations/{conversation}/assign", {"assignee": "me"})
    assert world.assignee(conversation) == world.ann

    world.clock.advance(dt.timedelta(seconds=45))
    routing.rebalance(world.store)  # what the worker's routing job runs, every 15 s

    assert world.assignee(conversation) == world.ann, "routing must not undo Ann's own assignment"
    assert world.status(world.ann) == "available"
    assert header_status(ann.get("/").get_data(as_text=True)) == "available"


# Presence -----------------------------------------------------------------------------------------

def test_signing_in_makes_a_new_agent_available_and_the_top_bar_says_so(world):
    assert world.status(world.ann) == "offline"
    ann = world.sign_in(world.ann)
    assert world.status(world.ann) == "available"
    assert header_status(ann.get("/").get_data(as_text=True)) == "available"


def test_the_next_action_brings_back_an_agent_whom_inactivity_made_away_at_once(world):
    conversation = world.arrive()
    world.choose(world.ann, "available")
    ann = world.sign_in(world.ann)
    ann.get("/")
    world.clock.advance(routing.AWAY_AFTER + dt.timedelta(minutes=1))
    routing.rebalance(world.store)
    assert world.status(world.ann) == "away"
    assert header_status(ann.get("/routing/status").get_data(as_text=True)) == "available", \
        "viewing a page after ten idle minutes is activity"

    world.clock.advance(routing.AWAY_AFTER + dt.timedelta(minutes=1))
    routing.rebalance(world.store)
    assert world.status(world.ann) == "away"
    # A page seen within the last minute is not written again, but an action always is.
    world.clock.advance(dt.timedelta(seconds=1))
    world.post(ann, f"/conversations/{conversation}/notes", {"text": "Looking into it."})
    assert world.status(world.ann) == "available"
    assert header_status(ann.get("/").get_data(as_text=True)) == "available"


def test_a_status_the_agent_chose_stays_through_sign_in_actions_and_inactivity(world):
    conversation = world.arrive()
    world.choose(world.ann, "away")
    ann = world.sign_in(world.ann)
    world.post(ann, f"/conversations/{conversation}/notes", {"text": "Only a note, I am away."})
    assert world.status(world.ann) == "away"

    world.clock.advance(routing.OFFLINE_AFTER + dt.timedelta(minutes=1))
    routing.rebalance(world.store)
    world.post(ann, f"/conversations/{conversation}/notes", {"text": "Back, but still away."})
    assert world.status(world.ann) == "away", "inactivity does not turn Ann's choice into the system's"
    assert header_status(ann.get("/").get_data(as_text=True)) == "away"

    world.choose(world.bob, "offline")
    bob = world.sign_in(world.bob)
    world.post(bob, f"/conversations/{conversation}/notes", {"text": "Offline on purpose."})
    assert world.status(world.bob) == "offline"


# Routing never undoes a person's assignment -----------------------------------------------------------

def test_an_agent_becoming_available_does_not_take_what_a_person_assigned_to_a_colleague(world):
    world.choose(world.bob, "offline")
    handed = world.arrive("kim@example.org")
    world.assign_by_hand(handed, world.bob)  # Lea gives it to Bob, who is offline, for tomorrow

    world.clock.advance(dt.timedelta(minutes=5))
    routing.set_status(world.store, world.ann, "available")  # Ann chooses Available

    assert world.assignee(handed) == world.bob


def test_overflow_moves_only_what_routing_assigned_never_a_persons_assignment(world):
    world.choose(world.ann, "available")
    world.store.set_agent_routing(world.ann, capacity=1, languages=(), topics=(), trainee=False)
    routed = world.arrive("a@example.org")
    assert world.assignee(routed) == world.ann
    world.clock.advance(dt.timedelta(minutes=1))
    handed = world.arrive("b@example.org")  # waits: Ann is full
    world.assign_by_hand(handed, world.ann)  # Lea gives it to Ann anyway: Ann now has 2 for a capacity of 1
    world.choose(world.bob, "available")

    world.clock.advance(dt.timedelta(seconds=45))
    report = routing.rebalance(world.store)

    assert world.assignee(handed) == world.ann, "the hand assignment stays"
    assert world.assignee(routed) == world.bob and report.moved == 1, "routing passes on its own one"


def test_the_backlog_fills_an_agent_up_to_capacity_most_urgent_first_from_unassigned_ones_only(world):
    old = world.arrive("old@example.org")
    world.clock.advance(dt.timedelta(hours=1))
    newer = world.arrive("newer@example.org")
    world.clock.advance(dt.timedelta(hours=1))
    late = world.arrive("late@example.org")
    now = world.clock.now()
    # Its service level's adequate time has passed (as inbox/service_levels.py records it): most urgent.
    world.store.save_service_levels(late, {"sla_due_desired": iso(now - dt.timedelta(minutes=30)),
                                           "sla_due_adequate": iso(now - dt.timedelta(minutes=5))}, iso(now))
    kept = world.arrive("kept@example.org")
    world.choose(world.bob, "offline")
    world.assign_by_hand(kept, world.bob)
    world.store.set_agent_routing(world.ann, capacity=2, languages=(), topics=(), trainee=False)

    routing.set_status(world.store, world.ann, "available")

    assert world.assignee(late) == world.ann, "the one past its adequate time first, although it is the newest"
    assert world.assignee(old) == world.ann, "then the one due soonest"
    assert world.assignee(newer) is None, "Ann is full: the rest waits in the queue"
    assert world.assignee(kept) == world.bob, "never one a person assigned to someone else"


# Flow-on when an agent leaves ------------------------------------------------------------------------------

def test_when_an_agent_goes_offline_their_waiting_conversations_move_and_the_timeline_and_agent_are_told(world):
    conversation = world.arrive()
    ann = world.sign_in(world.ann)
    world.post(ann, f"/conversations/{conversation}/assign", {"assignee": "me"})
    bob = world.sign_in(world.bob)

    world.clock.advance(dt.timedelta(minutes=2))
    world.post(ann, "/routing/status", {"status": "offline"})

    assert world.assignee(conversation) == world.bob, "flow-on may move what Ann took by hand: she left"
    page = bob.get(f"/conversations/{conversation}").get_data(as_text=True)
    assert "Moved from Ann Agent to Bob Builder: Ann Agent went offline." in page
    notifications = ann.get("/notifications").get_data(as_text=True)
    assert "passed a conversation of yours on while you were away or offline" in notifications
    assert f"/conversations/{conversation}" in notifications
    assert [n.kind for n in world.store.notifications.of(world.ann, None)] == ["routing_moved"]


def test_inactivity_moves_a_leaving_agents_conversations_but_not_what_was_assigned_to_them_after(world):
    before = world.arrive("a@example.org")
    world.choose(world.ann, "available")
    world.assign_by_hand(before, world.ann)
    world.choose(world.bob, "offline")

    world.clock.advance(routing.AWAY_AFTER + dt.timedelta(minutes=1))
    routing.rebalance(world.store)  # Ann goes away; nobody is free: back to the queue
    assert world.status(world.ann) == "away"
    assert world.assignee(before) is None
    notes = [m["text"] for m in world.store.thread_messages(before) if m["direction"] == "note"]
    assert notes == ["Moved from Ann Agent back to the queue: Ann Agent went away."]

    after = world.arrive("b@example.org")
    world.assign_by_hand(after, world.ann)  # Lea gives Ann a conversation while she is away
    world.clock.advance(routing.OFFLINE_AFTER)
    world.choose(world.bob, "available")
    routing.rebalance(world.store)  # Ann goes offline
    assert world.status(world.ann) == "offline"
    assert world.assignee(after) == world.ann, "assigned by hand while Ann was away: it stays"
    assert world.assignee(before) == world.bob, "the queue's one goes to Bob"


def test_a_manually_assigned_conversation_is_recorded_as_a_persons_and_a_routed_one_as_routings(world):
    world.choose(world.ann, "available")
    routed = world.arrive()
    assert world.store.conversation(routed)["assigned_by"] == "routing"
    world.assign_by_hand(routed, world.bob)
    assert world.store.conversation(routed)["assigned_by"] == "person"
    world.assign_by_hand(routed, None)
    assert world.store.conversation(routed)["assigned_by"] is None
