"""Proactive care (#14): the check-ins page suggests customers worth a call or a message because
things go well, says why, names their agent and the channel; Start opens the New conversation page
pre-filled from the answer library, assigned to the customer's agent; skip and snooze are kept; the
outcome (reply, rating) shows on the list, the customer's page and in the weekly digest.

Every moment here is on the frozen clock (tests/conftest.py FROZEN_START, Monday 23 Nov 2026)."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest

from inbox import checkins, digest
from inbox.reports import Period
from inbox.store.base import iso
from tests.conftest import FROZEN_START
from tests.test_access import imap_channel
from tests.test_web_auth import csrf_token, login, make_agent

NOW = FROZEN_START
_ids = itertools.count(1)


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        "mail": imap_channel(None, "support@mainland.test"),
        "care": imap_channel(None, "care@mainland.test"),
        # A web form answers by email and cannot write first (no `limits.starts_conversations`).
        "form": {"kind": "webform", "reply_channel": "mail"},
    }
    return app_config


class World:
    def __init__(self, app):
        self.app = app
        self.mainland = app.extensions["mainland"]
        self.store = store = self.mainland.open_store()
        self.team = store.create_team("Care")
        self.other_team = store.create_team("Elsewhere")
        self.ann = self.agent("ann@example.org", "Ann Agent", "agent", self.team)
        self.bo = self.agent("bo@example.org", "Bo Agent", "agent", self.team)
        self.lea = self.agent("lea@example.org", "Lea Lead", "lead", self.team)
        self.oz = self.agent("oz@example.org", "Oz Outside", "agent", self.other_team)
        self.ada = self.agent("ada@example.org", "Ada Admin", "admin", None)

    def agent(self, email, name, role, team):
        agent = make_agent(self.store, email, name=name, role=role)
        self.store.set_agent_teams(agent["id"], [team] if team else [])
        return agent

    def customer(self, name, *, email=None, owner=None, locale=None) -> int:
        email = email or f"{name.split()[0].lower()}@example.net"
        now = iso(days_ago(800))
        with self.store.write():
            cid = self.store.create_customer_record(name, now, locale=locale,
                                                    owner_agent_id=owner["id"] if owner else None)
            self.store.add_identity(cid, "email", email, email, True, now)
        return cid

    def conversation(self, cid, *, wrote: dt.datetime, channel="mail", subject="A question", status="resolved",
                     answered_by=None, team=None) -> int:
        """A conversation the customer started at `wrote`, answered by `answered_by`, then resolved."""
        at = iso(wrote)
        n = next(_ids)
        with self.store.write():
            conversation_id = self.store.execute(
                "INSERT INTO conversations (token, customer_id, channel, subject, status, team_id, created_at, "
                "updated_at, last_message_at, last_inbound_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f"tok{n}", cid, channel, subject, status, team or self.team, at, at, at, at,
                 at if status == "resolved" else None)).lastrowid
            self.store.execute(
                "INSERT INTO messages (conversation_id, channel, external_id, direction, customer_id, text, "
                "received_at) VALUES (?, ?, ?, 'in', ?, 'Hello', ?)", (conversation_id, channel, f"in{n}", cid, at))
            if answered_by is not None:
                self.store.execute(
                    "INSERT INTO messages (conversation_id, channel, external_id, direction, agent_id, text, "
                    "received_at) VALUES (?, ?, ?, 'out', ?, 'Sorted', ?)",
                    (conversation_id, channel, f"out{n}", answered_by["id"], at))
        return conversation_id

    def rating(self, conversation_id, score, at: dt.datetime) -> int:
        conversation = self.store.conversation(conversation_id)
        with self.store.write():
            return self.store.execute(
                "INSERT INTO csat_surveys (conversation_id, channel, customer_id, team_id, kind, state, asked_at, "
                "expires_at, score, answered_at) VALUES (?, ?, ?, ?, 'link', 'answered', ?, ?, ?, ?)",
                (conversation_id, conversation["channel"], conversation["customer_id"], conversation["team_id"],
                 iso(at), iso(at + dt.timedelta(days=7)), score, iso(at))).lastrowid

    def reply_from_customer(self, conversation_id, at: dt.datetime, flags: str = "") -> None:
        conversation = self.store.conversation(conversation_id)
        with self.store.write():
            self.store.execute(
                "INSERT INTO messages (conversation_id, channel, external_id, direction, customer_id, text, "
                "received_at, flags) VALUES (?, ?, ?, 'in', ?, 'Thanks for asking!', ?, ?)",
                (conversation_id, conversation["channel"], f"reply{next(_ids)}", conversation["customer_id"],
                 iso(at), flags))

    def happy(self, name="Rita Rated", owner=None, score=5, resolved_days_ago=3, subject="Where is my parcel?"):
        """A customer whose conversation, answered by `owner` (Ann), was resolved and rated."""
        owner = owner or self.ann
        cid = self.customer(name)
        conversation = self.conversation(cid, wrote=days_ago(resolved_days_ago), subject=subject, answered_by=owner)
        survey = self.rating(conversation, score, days_ago(resolved_days_ago))
        return cid, survey

    def shown(self, agent, **kw) -> dict[int, checkins.Suggestion]:
        return {s.customer_id: s for s in checkins.visible_suggestions(self.mainland, self.store, agent, now=NOW,
                                                                        **kw)}

    def client(self, agent):
        client = self.app.test_client()
        assert login(client, agent["email"]).status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client


@pytest.fixture
def world(app, frozen_clock):
    w = World(app)
    yield w
    w.store.close()


def text_of(response) -> str:
    return response.get_data(as_text=True)


# The rules ---------------------------------------------------------------------------------------

def test_a_recent_good_rating_is_suggested_with_the_reason_in_words(world):
    rita, survey = world.happy("Rita Rated", score=5, resolved_days_ago=3)
    shown = world.shown(world.ada)
    assert shown[rita].rule == "rated" and shown[rita].basis == f"rated:{survey}"
    assert shown[rita].reason == "Rated us 5/5 on 20 Nov after “Where is my parcel?”"


def test_a_poor_rating_an_old_one_and_a_customer_still_in_touch_are_not_suggested(world):
    rita, _survey = world.happy("Rita Rated", score=4)
    lou, _ = world.happy("Lou Lukewarm", score=3)
    old, _ = world.happy("Olga Older", score=5, resolved_days_ago=20)
    busy, _ = world.happy("Bea Busy", score=5)
    world.conversation(busy, wrote=days_ago(1), status="open", subject="One more thing")
    assert set(world.shown(world.ada)) == {rita}


def test_the_rules_follow_the_configuration(app_config, frozen_clock):
    from inbox import create_app

    app_config["check_ins"] = {"good_rating": 3, "resolved_within_days": 30}
    w = World(create_app(app_config))
    try:
        lou, _ = w.happy("Lou Lukewarm", score=3, resolved_days_ago=20)
        grim, _ = w.happy("Greta Grim", score=2)
        assert set(w.shown(w.ada)) == {lou}
    finally:
        w.store.close()


def test_a_regular_who_went_quiet_is_suggested_and_newcomers_and_the_busy_are_not(world):
    quinn = world.customer("Quinn Quiet")
    for days in (300, 150, 70):
        world.conversation(quinn, wrote=days_ago(days), answered_by=world.ann)
    recent = world.customer("Rory Recent")  # regular, but wrote a month ago
    for days in (200, 100, 30):
        world.conversation(recent, wrote=days_ago(days), answered_by=world.ann)
    sparse = world.customer("Sam Sparse")  # quiet, but only twice
    for days in (150, 70):
        world.conversation(sparse, wrote=days_ago(days), answered_by=world.ann)
    spread = world.customer("Sid Spread")  # three times, but one of them two years before the last
    for days in (800, 150, 70):
        world.conversation(spread, wrote=days_ago(days), answered_by=world.ann)
    shown = world.shown(world.ada)
    assert set(shown) == {quinn}
    assert shown[quinn].rule == "quiet"
    assert shown[quinn].reason == "3 conversations in the year up to 14 Sep, then nothing for 70 days"


def test_the_owner_is_the_customers_agent_else_whoever_answered_last(world):
    owned = world.customer("Olive Owned", owner=world.bo)
    world.rating(world.conversation(owned, wrote=days_ago(2), answered_by=world.ann), 5, days_ago(2))
    answered, _ = world.happy("Rita Rated", owner=world.ann)
    shown = world.shown(world.ada)
    assert shown[owned].owner["id"] == world.bo["id"], "the owner on the record wins, as in routing"
    assert shown[answered].owner["id"] == world.ann["id"]


def test_agents_see_their_own_customers_leads_their_teams_admins_all(world):
    anns, _ = world.happy("Rita Rated", owner=world.ann)
    bos, _ = world.happy("Bill Bo", owner=world.bo)
    outside = world.customer("Otto Other")
    world.rating(world.conversation(outside, wrote=days_ago(2), answered_by=world.oz, team=world.other_team), 5,
                 days_ago(2))
    assert set(world.shown(world.ann)) == {anns}
    assert set(world.shown(world.bo)) == {bos}
    assert set(world.shown(world.lea)) == {anns, bos}
    assert set(world.shown(world.oz)) == {outside}
    assert set(world.shown(world.ada)) == {anns, bos, outside}


def test_the_channel_is_the_last_one_used_that_can_start_a_conversation(world):
    rita, _ = world.happy("Rita Rated")  # on "mail", three days ago
    world.conversation(rita, wrote=days_ago(2), channel="care", subject="Another question")
    # Her latest message came through the web form, which cannot write first: "care" is the last she
    # used that can.
    world.conversation(rita, wrote=days_ago(1), channel="form", subject="Thanks again")
    suggestion = world.shown(world.ada)[rita]
    assert suggestion.target.channel == "care"
    assert suggestion.target.handle == "rita@example.net"
    only_form = world.customer("Fay Form")
    world.rating(world.conversation(only_form, wrote=days_ago(2), channel="form", answered_by=world.ann), 5,
                 days_ago(2))
    fallback = world.shown(world.ada)[only_form].target
    assert fallback.channel in ("care", "mail"), "the form's address, written to by an email channel"
    assert fallback.handle == "fay@example.net"


def test_no_channel_that_can_write_first_leaves_the_suggestion_without_start(world):
    phone = world.customer("Pia Phone")
    with world.store.write():
        world.store.execute("DELETE FROM identities WHERE customer_id = ?", (phone,))
        world.store.add_identity(phone, "phone", "+31612345678", "+31612345678", True, iso(NOW))
    world.rating(world.conversation(phone, wrote=days_ago(2), answered_by=world.ann), 5, days_ago(2))
    assert world.shown(world.ada)[phone].target is None
    page = text_of(world.client(world.ada).get("/customers/check-ins"))
    assert "No channel can write to them first: call them." in page
    assert f"/customers/{phone}/conversations/new" not in page


def test_the_configuration_is_checked():
    assert checkins.check_config({"good_rating": 4, "max_suggestions": 10, "answer_tag": "check-in"}) == []
    problems = checkins.check_config({"good_rating": 6, "quiet_after_days": "soon", "answer_tag": ""})
    assert [p.split(":")[0] for p in problems] == ["check_ins.good_rating", "check_ins.quiet_after_days",
                                                    "check_ins.answer_tag"]


# Start, skip, snooze -----------------------------------------------------------------------------

def add_check_in_answers(world):
    with world.store.write():
        world.store.answers.create(title="How are things?", body="Hi {{customer_first_name}}, {{agent_name}} here: "
                                   "just checking that all is well since we last spoke.", language="en",
                                   tags=["check-in"], owner_id=None, now=iso(NOW))
        world.store.answers.create(title="Alles goed?", body="Hoi {{customer_first_name}}, alles goed?", language="nl",
                                   tags=["check-in"], owner_id=None, now=iso(NOW))
        world.store.answers.create(title="Refund", body="Your refund is on its way.", language="en", tags=["refund"],
                                   owner_id=None, now=iso(NOW))


def test_start_opens_the_new_conversation_prefilled_and_assigned_to_the_customers_agent(world):
    add_check_in_answers(world)
    rita, survey = world.happy("Rita Rated", owner=world.ann)
    lead = world.client(world.lea)
    listing = text_of(lead.get("/customers/check-ins"))
    start = f"/customers/{rita}/conversations/new?check_in=rated:{survey}"
    assert start in listing
    page = text_of(lead.get(start))
    assert "Hi Rita, Ann Agent here: just checking that all is well since we last spoke." in page
    assert 'value="How are things?"' in page
    assert "assigned to Ann Agent" in page
    identity = world.store.identities_of(rita)[0]["id"]
    assert re.search(rf'value="{identity}\|mail"[^>]*checked', page), "the suggested address is chosen"
    response = lead.post(f"/customers/{rita}/conversations/new", data={
        "csrf_token": lead.token, "check_in": f"rated:{survey}", "to": f"{identity}|mail",
        "subject": "How are things?", "text": "Hi Rita, just checking that all is well."})
    assert response.status_code == 303
    conversation_id = int(re.search(r"/conversations/(\d+)", response.headers["Location"]).group(1))
    conversation = world.store.conversation(conversation_id)
    assert conversation["assignee_id"] == world.ann["id"], "owned by the customer's agent, not the lead"
    assert conversation["team_id"] == world.team
    [queued] = world.store.execute("SELECT text, agent_id FROM messages WHERE conversation_id = ?",
                                   (conversation_id,)).fetchall()
    assert queued == ("Hi Rita, just checking that all is well.", world.lea["id"]), "written and signed by the lead"
    assert rita not in world.shown(world.lea), "a started check-in is not suggested again"
    assert f"/conversations/{conversation_id}" in text_of(lead.get("/customers/check-ins"))


def test_the_template_is_in_the_customers_language(world):
    add_check_in_answers(world)
    cid = world.customer("Daan de Vries", locale="nl-NL")
    world.rating(world.conversation(cid, wrote=days_ago(2), answered_by=world.ann), 5, days_ago(2))
    suggestion = world.shown(world.ann)[cid]
    with world.app.test_request_context():
        form = checkins.prefill(world.mainland, world.store, suggestion, world.ann)
    assert (form["subject"], form["text"]) == ("Alles goed?", "Hoi Daan, alles goed?")


def test_skip_is_remembered_until_something_new_happens(world):
    rita, survey = world.happy("Rita Rated", owner=world.ann)
    ann = world.client(world.ann)
    response = ann.post(f"/customers/check-ins/{rita}/skip", data={"csrf_token": ann.token,
                                                                    "basis": f"rated:{survey}"})
    assert response.status_code == 303
    assert rita not in world.shown(world.ann)
    assert f'data-check-in="{rita}"' not in text_of(ann.get("/customers/check-ins"))
    # Another good rating later: a new reason to call.
    world.rating(world.conversation(rita, wrote=days_ago(1), answered_by=world.ann), 5, days_ago(1))
    assert world.shown(world.ann)[rita].basis != f"rated:{survey}"


def test_snooze_hides_the_customer_until_the_day_chosen(world, frozen_clock):
    rita, survey = world.happy("Rita Rated", owner=world.ann, resolved_days_ago=1)
    ann = world.client(world.ann)
    refused = ann.post(f"/customers/check-ins/{rita}/snooze", data={
        "csrf_token": ann.token, "basis": f"rated:{survey}", "until": "2026-11-20"}, follow_redirects=True)
    assert "Pick a day after today and within a year." in text_of(refused)
    assert rita in world.shown(world.ann)
    ann.post(f"/customers/check-ins/{rita}/snooze", data={
        "csrf_token": ann.token, "basis": f"rated:{survey}", "until": "2026-11-27"})
    assert rita not in world.shown(world.ann)
    assert rita not in world.shown(world.ann), "still hidden the next time the list is made"
    back = dt.datetime(2026, 11, 27, 0, 1, tzinfo=dt.UTC)
    frozen_clock.set(back)
    assert rita in {s.customer_id for s in checkins.visible_suggestions(world.mainland, world.store, world.ann)}


def test_skip_and_snooze_of_a_suggestion_not_shown_to_the_agent_are_404(world):
    rita, survey = world.happy("Rita Rated", owner=world.ann)
    for agent in (world.oz, world.bo):
        client = world.client(agent)
        for action in ("skip", "snooze"):
            response = client.post(f"/customers/check-ins/{rita}/{action}",
                                   data={"csrf_token": client.token, "basis": f"rated:{survey}"})
            assert response.status_code == 404, (agent["email"], action)
    assert rita in world.shown(world.ann), "nothing was remembered"


# Outcome and digest --------------------------------------------------------------------------------

def start_check_in(world, cid, agent, at):
    suggestion = world.shown(agent)[cid]
    from inbox import outreach

    conversation_id, _outbox = outreach.start_conversation(
        world.mainland, world.store, cid, channel="mail", handle=suggestion.target.handle, identity_kind="email",
        text="Just checking in.", subject="Hello", agent=agent, owner=suggestion.owner, now=at)
    checkins.record_started(world.store, suggestion, conversation_id=conversation_id, channel="mail", agent=agent,
                            now=at)
    return conversation_id


def test_the_outcome_shows_the_reply_and_the_rating(world):
    rita, _ = world.happy("Rita Rated", owner=world.ann)
    conversation_id = start_check_in(world, rita, world.ann, NOW)
    ann = world.client(world.ann)
    assert "No reply yet" in text_of(ann.get("/customers/check-ins"))
    world.reply_from_customer(conversation_id, NOW + dt.timedelta(hours=1), flags="auto_submitted")
    assert "No reply yet" in text_of(ann.get("/customers/check-ins")), "an out-of-office is no reply"
    world.reply_from_customer(conversation_id, NOW + dt.timedelta(days=1))
    assert "Replied 24 Nov" in text_of(ann.get("/customers/check-ins"))
    world.rating(conversation_id, 5, NOW + dt.timedelta(days=2))
    customer_page = text_of(ann.get(f"/customers/{rita}"))
    section = customer_page[customer_page.index('id="check-ins"'):]
    assert "Replied 24 Nov, rated us 5/5" in section
    assert "Replied 24 Nov, rated us 5/5" in text_of(ann.get("/customers/check-ins"))


def test_the_digest_reports_check_ins_and_how_customers_answered(world):
    rita, _ = world.happy("Rita Rated", owner=world.ann)
    quiet, _ = world.happy("Quentin Quiet", owner=world.ann, score=4)
    monday = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    replied = start_check_in(world, rita, world.ann, monday)
    start_check_in(world, quiet, world.ann, monday + dt.timedelta(hours=1))
    world.reply_from_customer(replied, monday + dt.timedelta(days=1))
    world.rating(replied, 5, monday + dt.timedelta(days=2))
    week = Period.parse("2026-W48")
    assert checkins.week_figures(world.store, week.start, week.end) == {
        "started": 2, "replied": 1, "rated": 1, "average": 5.0}
    built = digest.build_digest(world.mainland, world.store, week, now=dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC))
    assert "Check-ins: 2 started, 1 customer replied; rated 5 / 5 (1 answer)." in built.text
    assert "Check-ins: 2 started, 1 customer replied; rated 5 / 5 (1 answer)." in built.html
    before = digest.build_digest(world.mainland, world.store, week.previous(),
                                 now=dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC))
    assert "Check-ins: none started this week." in before.text
