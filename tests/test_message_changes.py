"""A customer edits or withdraws a message we hold (WhatsApp edit/revoke, a deleted Bluesky chat message).

Connectors report it as a `MessageChange` in `FetchResult.changes`; the ingest batch applies it in its
own transaction. The message keeps its place; an edit keeps the earlier text as history; neither is a
new message nor reopens the conversation; a change to a message we never stored is counted and dropped.
"""

from __future__ import annotations

import datetime as dt

import pytest
from markupsafe import escape

from inbox.models import CHANGE_DELETED, CHANGE_EDITED, Author, FetchResult, InboundItem, MessageChange
from inbox.store.queue import fts_query
from tests.test_reply_context import agent_client  # noqa: F401  (a fixture)
from tests.test_web_auth import web_store  # noqa: F401  (a fixture)
from tests.test_web_conversations import assert_nothing_executable

CHANNEL = "fb-page"


@pytest.fixture
def ingestor(app, web_store, frozen_clock):  # noqa: F811
    return app.extensions["mainland"].ingestor(web_store)


def _item(external_id: str, text: str, when: dt.datetime) -> InboundItem:
    return InboundItem(channel=CHANNEL, external_id=external_id, text=text, thread_key="chat:bob",
                       author=Author(handle="bob-1", name="Bob", identity_kind="facebook"), sent_at=when)


def _message(store, external_id: str) -> dict:
    [message] = [m for c in store.recent_conversations() for m in store.thread_messages(c["id"])
                 if m["external_id"] == external_id]
    return message


def test_an_edit_replaces_the_text_keeps_the_old_one_and_is_shown(agent_client, ingestor, web_store, frozen_clock):  # noqa: F811
    now = frozen_clock.now()
    ingestor.ingest(CHANNEL, FetchResult(items=[_item("m1", "Is the coat in XL?", now)], cursor="1"))
    before = _message(web_store, "m1")
    report = ingestor.ingest(CHANNEL, FetchResult(items=[], cursor="2", changes=[
        MessageChange("m1", CHANGE_EDITED, text="Is the coat in <b>XXL</b>?", at=now + dt.timedelta(minutes=2))]))
    assert (report.changes, report.changes_dropped, report.stored) == (1, 0, 0)
    after = _message(web_store, "m1")
    assert after["id"] == before["id"] and after["text"] == "Is the coat in <b>XXL</b>?"
    assert [e.previous_text for e in after["edits"]] == ["Is the coat in XL?"]
    assert web_store.thread_length(after["conversation_id"]) == 1, "an edit is not a new message"
    page = agent_client.get(f"/conversations/{after['conversation_id']}").get_data(as_text=True)
    assert "Edited by the customer" in page and "Is the coat in XL?" in page
    assert str(escape("Is the coat in <b>XXL</b>?")) in page
    assert_nothing_executable(page)
    found = web_store.search(fts_query("XXL"), team_ids=None, agent_id=None)
    assert [g.conversation["id"] for g in found.groups] == [after["conversation_id"]], "search finds the new words"


def test_a_withdrawal_marks_the_message_and_does_not_reopen(agent_client, ingestor, web_store, frozen_clock):  # noqa: F811
    now = frozen_clock.now()
    ingestor.ingest(CHANNEL, FetchResult(items=[_item("m2", "Wrong chat, sorry", now)], cursor="1"))
    message = _message(web_store, "m2")
    web_store.set_conversation_status(message["conversation_id"], "resolved", None, now.isoformat())
    report = ingestor.ingest(CHANNEL, FetchResult(items=[], cursor="2", changes=[
        MessageChange("m2", CHANGE_DELETED, at=now + dt.timedelta(minutes=1))]))
    assert report.changes == 1
    assert web_store.conversation(message["conversation_id"])["status"] == "resolved", "not reopened"
    assert _message(web_store, "m2")["deleted_at"]
    page = agent_client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)
    assert "The customer deleted this message" in page
    again = ingestor.ingest(CHANNEL, FetchResult(items=[], cursor="3", changes=[MessageChange("m2", CHANGE_DELETED)]))
    assert (again.changes, again.changes_dropped) == (0, 1), "a repeated withdrawal changes nothing"


def test_an_edit_in_the_same_page_as_its_message_applies_and_unknown_ones_are_dropped(ingestor, web_store,  # noqa: F811
                                                                                       frozen_clock):
    now = frozen_clock.now()
    report = ingestor.ingest(CHANNEL, FetchResult(items=[_item("m3", "frist", now)], cursor="1", changes=[
        MessageChange("m3", CHANGE_EDITED, text="first\x07"),
        MessageChange("never-seen", CHANGE_EDITED, text="x"),
        MessageChange("never-seen-2", CHANGE_DELETED)]))
    assert (report.stored, report.changes, report.changes_dropped) == (1, 1, 2)
    assert _message(web_store, "m3")["text"] == "first", "control characters are not stored"


def test_a_pressed_button_is_shown_above_the_message(agent_client, ingestor, web_store, frozen_clock):  # noqa: F811
    """A Messenger postback or quick reply reads as the button's title; what was pressed is said once."""
    item = _item("pb-1", "Get started", frozen_clock.now())
    item.headers["pressed"] = "Get started (GET_STARTED_<b>)"
    ingestor.ingest(CHANNEL, FetchResult(items=[item, _item("m9", "plain words", frozen_clock.now())], cursor="1"))
    message = _message(web_store, "pb-1")
    page = agent_client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)
    assert page.count("Pressed:") == 1, "only the pressed button says so"
    assert str(escape("Pressed: Get started (GET_STARTED_<b>)")) in page


def test_a_network_id_is_not_shown_next_to_the_senders_name(agent_client, ingestor, web_store,  # noqa: F811
                                                             frozen_clock):
    """A page-scoped number or a DID means nothing to an agent: the name stands alone (the id is in its title)."""
    item = InboundItem(channel=CHANNEL, external_id="psid-1", text="Hallo", thread_key="chat:psid",
                       author=Author(handle="6723400011100001", name="Noor El Amrani", identity_kind="facebook"),
                       sent_at=frozen_clock.now())
    ingestor.ingest(CHANNEL, FetchResult(items=[item], cursor="1"))
    message = _message(web_store, "psid-1")
    page = agent_client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)
    head = page[page.index(f'id="message-{message["id"]}"'):page.index('class="message-head"') + 600]
    assert "&lt;6723400011100001&gt;" not in page
    assert 'title="6723400011100001"' in head and "Noor El Amrani" in head

