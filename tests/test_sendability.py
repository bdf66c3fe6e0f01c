"""One rule for every message to a customer (inbox/sendability.py), through each of its callers.

Review approval and satisfaction surveys used to skip the reply page's checks (loop guard, reply
window, the channel's length, spam, an unreadable sender); here each refusal is asked of them.
A merged conversation's reply goes out on the channel and thread of the message it answers.
The outbox, store and ingest are the real ones; the channels record what they were asked to send.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from connectors.base import Connector, Limits
from inbox import csat, review, sendability
from inbox.config import from_mapping
from inbox.models import FLAG_INVALID_SENDER, Author, FetchResult, InboundItem
from inbox.outbox import queue_reply, send_due
from inbox.runtime import Mainland
from inbox.store.base import iso

T0 = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
_IDS = itertools.count(1)


class Chat(Connector):
    """Private chat with WhatsApp-like rules: 50 characters, a 24-hour reply window."""

    kind = "sendability-chat"
    display_name = "Chat"
    limits = Limits(max_text_length=50, reply_window_hours=24, supports_attachments=False)
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        Chat.sent.append(reply)
        return f"chat-{len(Chat.sent)}"


class Comments(Connector):
    """Public comments under posts; a comment can also be answered privately."""

    kind = "sendability-comments"
    display_name = "Comments"
    limits = Limits(max_text_length=500, private_replies=True, supports_attachments=False)
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        Comments.sent.append(reply)
        return f"comment-{len(Comments.sent)}"


@pytest.fixture
def mainland(tmp_path):
    Chat.sent, Comments.sent = [], []
    config = from_mapping({
        "database": str(tmp_path / "m.db"), "mail_domain": "mainland.test", "base_url": "http://mainland.test",
        "channels": {"chat": {"kind": Chat.kind}, "comments": {"kind": Comments.kind}},
        "service_levels": {"policy": {"first_response": {"desired": "30m", "adequate": "2h"}},
                           "csat": {"delay": "10m", "channels": {"chat": "chat"}}},
    }, base=tmp_path)
    return Mainland(config, extra_connectors=[Chat, Comments])


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


@pytest.fixture
def people(store):
    trainee = store.create_agent(email="tim@example.org", name="Tim Trainee", role="agent", password_hash=None)
    store.set_agent_routing(trainee, capacity=5, languages=(), topics=(), trainee=True)
    lead = store.create_agent(email="lea@example.org", name="Lea Lead", role="lead", password_hash=None)
    agent = store.create_agent(email="ann@example.org", name="Ann Agent", role="agent", password_hash=None)
    return {"trainee": {"id": trainee, "name": "Tim Trainee"}, "lead": {"id": lead, "name": "Lea Lead"},
            "agent": {"id": agent, "name": "Ann Agent"}}


def ingest(mainland, store, channel="chat", *, when=T0, handle="cleo-42", thread=None, public=False, flags=(),
           text="Where is my parcel?"):
    n = next(_IDS)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel=channel, external_id=f"in-{n}", author=Author(handle, "Cleo Customer"), text=text,
                       thread_key=thread or handle, public=public, sent_at=when, flags=frozenset(flags))
    report = ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)
    return report.new_conversations[0] if report.new_conversations else None


# Review approval ------------------------------------------------------------------------------

def held(mainland, store, people, cid, text="It ships today.", when=T0 + 5 * M):
    queue_reply(mainland, store, cid, text, agent=people["trainee"], now=when)
    [item] = store.review.items(None)
    return item.id


def spam(store, cid):
    with store.write():
        store.execute("UPDATE conversations SET status = 'spam' WHERE id = ?", (cid,))


def bounced(store, cid):
    with store.write():
        store.execute("UPDATE identities SET delivery_failed = 1")


@pytest.mark.parametrize("make_refused, words", [
    (lambda store, cid: spam(store, cid), "marked as spam"),
    (lambda store, cid: bounced(store, cid), "could not be delivered"),
])
def test_approval_is_refused_where_an_agents_reply_would_be(mainland, store, people, make_refused, words):
    cid = ingest(mainland, store)
    item_id = held(mainland, store, people, cid)
    make_refused(store, cid)
    with pytest.raises(review.NotSendable) as refused:
        review.approve(mainland, store, item_id, reviewer=people["lead"], now=T0 + 10 * M)
    assert words in refused.value.decision.reason
    assert store.review.item(item_id).state == "pending_review", "still waiting: the lead can return it"
    assert send_due(mainland, store, now=T0 + 11 * M).sent == 0 and Chat.sent == []


def test_approval_of_an_edit_longer_than_the_channel_takes_is_refused(mainland, store, people):
    cid = ingest(mainland, store)
    item_id = held(mainland, store, people, cid)
    with pytest.raises(review.NotSendable) as refused:
        review.approve(mainland, store, item_id, reviewer=people["lead"], text="x" * 51, now=T0 + 10 * M)
    assert "at most 50 characters; the reply has 51" in refused.value.decision.reason
    review.approve(mainland, store, item_id, reviewer=people["lead"], text="x" * 50, now=T0 + 10 * M)
    assert send_due(mainland, store, now=T0 + 11 * M).sent == 1 and Chat.sent[0].text == "x" * 50


def test_approval_after_the_reply_window_closed_needs_the_reviewers_consent(mainland, store, people):
    cid = ingest(mainland, store)
    item_id = held(mainland, store, people, cid)
    late = T0 + 25 * H
    with pytest.raises(review.NotSendable) as refused:
        review.approve(mainland, store, item_id, reviewer=people["lead"], now=late)
    assert refused.value.decision.window_closed
    assert "reply window closed" in refused.value.decision.reason
    review.approve(mainland, store, item_id, reviewer=people["lead"], now=late, outside_window=True)
    assert send_due(mainland, store, now=late + M).sent == 1


def test_approval_to_a_sender_whose_address_could_not_be_read_is_refused(mainland, store, people):
    cid = ingest(mainland, store, flags=[FLAG_INVALID_SENDER])
    # The trainee's reply is held before any check (a lead decides); the approval is checked.
    item_id = held(mainland, store, people, cid)
    with pytest.raises(review.NotSendable) as refused:
        review.approve(mainland, store, item_id, reviewer=people["lead"], now=T0 + 10 * M)
    assert "could not be read reliably" in refused.value.decision.reason


# Surveys ----------------------------------------------------------------------------------------

def resolved(mainland, store, agent, **item):
    cid = ingest(mainland, store, **item)
    queue_reply(mainland, store, cid, "It is on its way.", agent=agent, now=T0 + 20 * M)
    send_due(mainland, store, now=T0 + 20 * M)
    with store.write():
        store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                      (iso(T0 + 30 * M), cid))
    return cid


def surveys_sent():
    return [r for r in Chat.sent if "How did we do?" in r.text]


def test_a_survey_is_asked_when_nothing_stands_in_the_way(mainland, store, people):
    resolved(mainland, store, people["agent"])
    assert csat.send_due_surveys(mainland, store, now=T0 + 45 * M).asked == 1
    send_due(mainland, store, now=T0 + 46 * M)
    assert len(surveys_sent()) == 1 and surveys_sent()[0].automatic


def test_no_survey_to_an_address_whose_mail_bounced(mainland, store, people):
    cid = resolved(mainland, store, people["agent"])
    bounced(store, cid)
    run = csat.send_due_surveys(mainland, store, now=T0 + 45 * M)
    assert (run.asked, run.skipped) == (0, 1)
    send_due(mainland, store, now=T0 + 46 * M)
    assert surveys_sent() == []


def test_no_survey_after_the_channels_reply_window_closed(mainland, store, people):
    cid = resolved(mainland, store, people["agent"])
    # Resolved 23 h after the customer wrote: the survey would come after the 24-hour window.
    with store.write():
        store.execute("UPDATE conversations SET status = 'open' WHERE id = ?", (cid,))
        store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                      (iso(T0 + 23 * H + 50 * M), cid))
    run = csat.send_due_surveys(mainland, store, now=T0 + 24 * H + 5 * M)
    assert run.asked == 0
    send_due(mainland, store, now=T0 + 24 * H + 6 * M)
    assert surveys_sent() == []


# The rule itself --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(sendability.AUTOMATIC_KINDS))
def test_automatic_messages_never_answer_automatic_mail_nor_public_posts(mainland, store, kind):
    auto = ingest(mainland, store, handle="robot", flags=["auto_submitted"])
    decision = sendability.decide(mainland, store, store.conversation(auto), kind=kind, now=T0 + M)
    assert (decision.allowed, decision.code) == (False, "automatic")
    public = ingest(mainland, store, "comments", handle="fan", thread="post:1", public=True)
    decision = sendability.decide(mainland, store, store.conversation(public), kind=kind, now=T0 + M)
    assert (decision.allowed, decision.code) == (False, "public")
    # A person may answer both.
    for cid in (auto, public):
        assert sendability.decide(mainland, store, store.conversation(cid), kind=sendability.AGENT_REPLY,
                                  now=T0 + M).allowed


def test_only_an_agents_reply_may_override_the_loop_guard(mainland, store):
    cid = ingest(mainland, store)
    bounced(store, cid)
    conversation = store.conversation(cid)
    for kind in sorted(sendability.KINDS):
        decision = sendability.decide(mainland, store, conversation, kind=kind, override_guard=True, now=T0 + M)
        assert decision.allowed == (kind == sendability.AGENT_REPLY), kind
        assert decision.guard == "delivery_failed"


def test_an_automatic_message_never_goes_out_after_the_window_even_if_asked_to(mainland, store):
    cid = ingest(mainland, store)
    conversation = store.conversation(cid)
    for kind in sorted(sendability.KINDS):
        decision = sendability.decide(mainland, store, conversation, kind=kind, outside_window=True,
                                      now=T0 + 25 * H)
        assert decision.allowed == (kind not in sendability.AUTOMATIC_KINDS), kind


# A merge of two channels' conversations ------------------------------------------------------------

def merged_comment_and_chat(mainland, store, agent):
    """A public comment under post 1, then the same customer's private chat merged into it."""
    comment_cid = ingest(mainland, store, "comments", handle="cleo-42", thread="post:1", public=True,
                         text="My parcel never came!")
    chat_cid = ingest(mainland, store, "chat", handle="cleo-42", thread="cleo-42", when=T0 + 5 * M,
                      text="Order 1234, see my comment")
    a, b = (store.conversation(c)["customer_id"] for c in (comment_cid, chat_cid))
    if a != b:
        store.merge_customers(a, b, agent_id=agent["id"], now=iso(T0 + 6 * M))
    store.merge_conversations(chat_cid, comment_cid, agent_id=agent["id"], now=iso(T0 + 7 * M))
    return comment_cid


def test_a_reply_after_a_merge_goes_out_on_the_channel_of_the_message_it_answers(mainland, store, people):
    cid = merged_comment_and_chat(mainland, store, people["agent"])
    queue_reply(mainland, store, cid, "Found it, sorry!", agent=people["agent"], now=T0 + 10 * M)
    assert send_due(mainland, store, now=T0 + 11 * M).sent == 1
    assert Comments.sent == [], "not to the comment thread with the chat's id"
    [reply] = Chat.sent
    assert (reply.channel, reply.thread_key, reply.to.handle, reply.public) == ("chat", "cleo-42", "cleo-42", False)
    [out] = [m for m in store.thread_messages(cid) if m["direction"] == "out"]
    assert out["channel"] == "chat", "the thread shows where the reply went"


def test_the_agent_can_answer_on_another_channel_the_customer_is_reachable_on(mainland, store, people):
    cid = merged_comment_and_chat(mainland, store, people["agent"])
    conversation = store.conversation(cid)
    reachable = sendability.reachable(mainland, store, conversation)
    assert [t.channel for t in reachable] == ["chat", "comments"], "the latest message's channel first"
    comment = reachable[1]
    decision = sendability.decide(mainland, store, conversation, kind=sendability.AGENT_REPLY,
                                  answering=comment.message_id, text="Answered here too", now=T0 + 10 * M)
    assert decision.allowed and decision.target.public and decision.target.channel == "comments"
    queue_reply(mainland, store, cid, "Answered here too", agent=people["agent"], now=T0 + 10 * M,
                target=decision.target)
    send_due(mainland, store, now=T0 + 11 * M)
    [reply] = Comments.sent
    assert (reply.thread_key, reply.public, reply.reply_to_external_id) == (
        "post:1", True, comment.message.external_id)
    assert Chat.sent == []
