"""`store.sendability` and `store.webforms` (#17): where a reply may go, as typed rows, on both engines.

After a merge, a conversation holds the customer's messages of two channels: a reply can answer the
latest on each, and goes out in the thread each arrived in. A typo in a field name fails where it is
written instead of reading as nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from inbox.models import Author, InboundItem
from inbox.store.base import iso
from inbox.store.sendability import AnswerableMessage, MessageSinceMark, OriginThread

T0 = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)


def ingest(ingestor, channel: str, external_id: str, *, thread: str, public: bool = False) -> int:
    item = InboundItem(channel=channel, external_id=external_id, author=Author("cleo-42", "Cleo Customer"),
                       text="Where is my parcel?", thread_key=thread, public=public, sent_at=T0)
    return ingestor.ingest_one(channel, item).message_ids[0]


def test_a_merged_conversation_answers_on_each_channel_in_the_thread_each_came_from(store, ingestor):
    comment = ingest(ingestor, "comments", "c-1", thread="post:1", public=True)
    chat = ingest(ingestor, "chat", "m-1", thread="cleo-42")
    comment_cid, chat_cid = (store.message(m)["conversation_id"] for m in (comment, chat))
    a, b = (store.conversation(c)["customer_id"] for c in (comment_cid, chat_cid))
    if a != b:
        store.merge_customers(a, b, agent_id=None, now=iso(T0))
    store.merge_conversations(chat_cid, comment_cid, agent_id=None, now=iso(T0))

    latest = store.sendability.answerable_messages(comment_cid)
    assert all(isinstance(m, AnswerableMessage) for m in latest)
    assert [(m.id, m.channel, m.author_handle) for m in latest] == [(chat, "chat", "cleo-42"),
                                                                   (comment, "comments", "cleo-42")]
    assert store.sendability.answerable_message(comment_cid, chat) == latest[0]
    assert store.sendability.answerable_message(chat_cid, chat) is None, "moved out of the chat's conversation"
    origin = store.sendability.origin_thread(chat)
    assert isinstance(origin, OriginThread)
    assert (origin.id, origin.channel, origin.thread_key, bool(origin.public)) == (chat_cid, "chat", "cleo-42", False)
    assert store.sendability.origin_thread(comment) is None, "still where it arrived"
    with pytest.raises(AttributeError):
        latest[0].thread  # noqa: B018 - the typo itself is the test
    with pytest.raises(dataclasses.FrozenInstanceError):
        latest[0].channel = "mail"  # a row is what was read
    assert not hasattr(store, "answerable_messages"), "the mixin's verbs are gone, not kept beside the concern"


def test_messages_since_the_acknowledgement_mark_say_whether_they_started_a_conversation(store, ingestor):
    with store.write():
        assert store.sendability.conversations_started_since_mark() == (0, [])  # the first call sets the mark
    first = ingest(ingestor, "chat", "m-1", thread="cleo-42")
    second = ingest(ingestor, "chat", "m-2", thread="cleo-42")
    with store.write():
        _mark, rows = store.sendability.conversations_started_since_mark()
    cid = store.message(first)["conversation_id"]
    # `first` is a bool on both engines (SQLite answers NOT EXISTS with 0/1).
    assert rows == [MessageSinceMark(first, cid, "chat", "in", True), MessageSinceMark(second, cid, "chat", "in", False)]
    assert store.webforms.conversation_token_for_item("chat", "m-2") == store.conversation(cid)["token"]
    assert store.webforms.conversation_token_for_item("chat", "m-3") is None
