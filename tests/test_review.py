"""Review before sending: a trainee's reply is held, then approved (sent through the outbox), edited or returned.

The outbox, the store and the service-level clocks are the real ones; the channel records what
it was asked to send.
"""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.base import Connector
from inbox import review
from inbox.config import from_mapping
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import queue_reply, send_due
from inbox.runtime import Mainland

T0 = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)


class ReviewChannel(Connector):
    kind = "review-recording"
    display_name = "Recording"
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        ReviewChannel.sent.append(reply)
        return f"p{len(ReviewChannel.sent)}"


@pytest.fixture
def mainland(tmp_path):
    ReviewChannel.sent = []
    config = from_mapping({
        "database": str(tmp_path / "m.db"), "mail_domain": "mainland.test",
        "channels": {"mail": {"kind": "review-recording"}},
        "service_levels": {"policy": {"first_response": {"desired": "30m", "adequate": "2h"}}},
    }, base=tmp_path)
    return Mainland(config, extra_connectors=[ReviewChannel])


@pytest.fixture
def setup(mainland):
    store = mainland.open_store(migrate=True)
    trainee_id = store.create_agent(email="tim@example.org", name="Tim Trainee", role="agent", password_hash=None)
    store.set_agent_routing(trainee_id, capacity=5, languages=(), topics=(), trainee=True)
    lead_id = store.create_agent(email="lea@example.org", name="Lea Lead", role="lead", password_hash=None)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: T0
    item = InboundItem(channel="mail", external_id="q1", author=Author("jane@example.org", "Jane"),
                       text="Where is my order?", subject="Order", sent_at=T0)
    [conversation_id] = ingestor.ingest("mail", FetchResult(items=[item], cursor=None)).new_conversations
    yield store, {"id": trainee_id, "name": "Tim Trainee"}, {"id": lead_id, "name": "Lea Lead"}, conversation_id
    store.close()


def outgoing(store, conversation_id):
    return [m for m in store.conversation_messages(conversation_id) if m["direction"] == "out"]


def test_a_trainees_reply_is_held_and_not_sent(mainland, setup):
    store, trainee, _lead, cid = setup
    queued = queue_reply(mainland, store, cid, "It ships today.", agent=trainee, now=T0 + 5 * M)
    assert review.is_held(queued)
    assert outgoing(store, cid) == [], "not a message in the thread yet"
    assert send_due(mainland, store, now=T0 + 6 * M).sent == 0 and ReviewChannel.sent == []
    [item] = store.review.items(None)
    assert (item.text, item.agent_id, item.state) == ("It ships today.", trainee["id"], "pending_review")
    assert store.conversation(cid)["first_response_at"] is None


def test_an_agent_who_is_no_trainee_sends_directly(mainland, setup):
    store, _trainee, lead, cid = setup
    queued = queue_reply(mainland, store, cid, "On its way.", agent=lead, now=T0 + M)
    assert not review.is_held(queued)
    assert send_due(mainland, store, now=T0 + 2 * M).sent == 1
    assert store.review.items(None) == []


def test_approval_sends_the_reply_as_the_trainees_and_time_in_review_counts_against_the_target(mainland, setup):
    store, trainee, lead, cid = setup
    queue_reply(mainland, store, cid, "It ships today.", agent=trainee, now=T0 + 10 * M)
    item_id = store.review.items(None)[0].id

    outcome = review.approve(mainland, store, item_id, reviewer=lead, now=T0 + 50 * M)
    assert outcome.state == "approved" and outcome.review_seconds == 40 * 60
    [reply] = outgoing(store, cid)
    assert reply["text"] == "It ships today." and reply["author_name"] == "Tim Trainee"
    assert send_due(mainland, store, now=T0 + 51 * M).sent == 1
    assert ReviewChannel.sent[0].text == "It ships today." and ReviewChannel.sent[0].from_name == "Tim Trainee"

    conversation = store.conversation(cid)
    # The customer got the answer 50 minutes after writing: past desired (30m), the 40 in review included.
    assert conversation["first_response_seconds"] == pytest.approx(50 * 60)
    assert conversation["first_response_level"] == "adequate"
    item = store.review.item(item_id)
    assert (item.state, item.reviewer_id, item.review_seconds) == ("approved", lead["id"], 2400)
    assert item.outbox_id == outcome.outbox_id


def test_a_lead_can_edit_before_approving(mainland, setup):
    store, trainee, lead, cid = setup
    queue_reply(mainland, store, cid, "it ships today", agent=trainee, now=T0 + M)
    item_id = store.review.items(None)[0].id
    review.approve(mainland, store, item_id, reviewer=lead, text="Hi Jane, it ships today.", now=T0 + 2 * M)
    assert outgoing(store, cid)[0]["text"] == "Hi Jane, it ships today."
    item = store.review.item(item_id)
    assert item.edited is True and item.final_text == "Hi Jane, it ships today." and item.text == "it ships today"


def test_an_edited_formatted_reply_is_sent_formatted_as_the_lead_wrote_it(mainland, setup):
    store, trainee, lead, cid = setup
    queue_reply(mainland, store, cid, "it ships **today**", agent=trainee, html="<p>it ships <strong>today</strong></p>",
                now=T0 + M)
    item_id = store.review.items(None)[0].id
    review.approve(mainland, store, item_id, reviewer=lead, text="Hi Jane, it ships **Friday**.", now=T0 + 2 * M)
    [reply] = outgoing(store, cid)
    assert reply["html"] == "<p>Hi Jane, it ships <strong>Friday</strong>.</p>", "not the trainee's old HTML, nor none"


def test_a_returned_reply_is_not_sent_and_the_feedback_stays_with_the_trainee(mainland, setup):
    store, trainee, lead, cid = setup
    queue_reply(mainland, store, cid, "dunno", agent=trainee, now=T0 + M)
    item_id = store.review.items(None)[0].id
    with pytest.raises(review.ReviewError):
        review.return_reply(store, item_id, reviewer=lead, comment="   ", now=T0 + 3 * M)
    outcome = review.return_reply(store, item_id, reviewer=lead, comment="Look the order up first.", now=T0 + 3 * M)
    assert outcome.state == "returned" and outcome.review_seconds == 120
    assert outgoing(store, cid) == [] and send_due(mainland, store, now=T0 + 4 * M).sent == 0
    [kept] = store.review.of_agent(trainee["id"])
    assert (kept.state, kept.comment, kept.reviewer_name) == ("returned", "Look the order up first.",
                                                                       "Lea Lead")
    assert store.notifications.unread_count(trainee["id"], None) == 1, "the trainee's bell says so"
    stats = store.review.stats([trainee["id"]])[trainee["id"]]
    assert (stats.reviewed, stats.returned, stats.approved) == (1, 1, 0)

    # The trainee writes a better reply: held again.
    assert review.is_held(queue_reply(mainland, store, cid, "Order 12 ships today.", agent=trainee, now=T0 + 5 * M))
    assert len(store.review.items(None)) == 1


def test_an_item_is_decided_once(mainland, setup):
    store, trainee, lead, cid = setup
    queue_reply(mainland, store, cid, "It ships today.", agent=trainee, now=T0 + M)
    item_id = store.review.items(None)[0].id
    review.approve(mainland, store, item_id, reviewer=lead, now=T0 + 2 * M)
    with pytest.raises(review.ReviewError):
        review.approve(mainland, store, item_id, reviewer=lead, now=T0 + 3 * M)
    with pytest.raises(review.ReviewError):
        review.return_reply(store, item_id, reviewer=lead, comment="no", now=T0 + 3 * M)
    assert len(outgoing(store, cid)) == 1, "sent once"
