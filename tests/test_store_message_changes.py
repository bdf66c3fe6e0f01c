"""`store.message_changes` (#17): a customer's edit rides on the ingest batch's transaction.

A batch that fails is fetched again from its cursor; had an edit been committed on its own, the
second try would find the new text already there and the thread would show the edit twice or not
at all. The earlier versions come back as `MessageEdit` rows.
"""

from __future__ import annotations

import dataclasses

import pytest

from inbox.models import CHANGE_EDITED, Author, FetchResult, InboundItem
from inbox.store.message_changes import MessageEdit

CHANNEL = "fb-page"


def _thread_message(store, external_id: str) -> dict:
    [message] = [m for c in store.recent_conversations() for m in store.thread_messages(c["id"])
                 if m["external_id"] == external_id]
    return message


def test_an_edit_in_a_failed_batch_is_undone_with_it_and_applies_once_on_the_retry(store, ingestor, frozen_clock):
    now = frozen_clock.now()
    ingestor.ingest(CHANNEL, FetchResult(items=[InboundItem(
        channel=CHANNEL, external_id="m1", text="Is the coat in XL?", thread_key="chat:bob",
        author=Author(handle="bob-1", name="Bob", identity_kind="facebook"), sent_at=now)], cursor="1"))

    with pytest.raises(RuntimeError), store.write():
        assert store.message_changes.apply(CHANNEL, "m1", CHANGE_EDITED, "XXL, please", "2026-01-02T00:00:00Z")
        raise RuntimeError("the batch fails after the change")
    assert store.message_changes.edit_history([_thread_message(store, "m1")["id"]]) == {}
    assert _thread_message(store, "m1")["text"] == "Is the coat in XL?"

    with store.write():
        assert store.message_changes.apply(CHANNEL, "m1", CHANGE_EDITED, "XXL, please", "2026-01-02T00:00:00Z")
    message = _thread_message(store, "m1")
    assert message["text"] == "XXL, please"
    assert message["edits"] == [MessageEdit(message_id=message["id"], previous_text="Is the coat in XL?",
                                            replaced_at="2026-01-02T00:00:00Z")]
    with pytest.raises(dataclasses.FrozenInstanceError):
        message["edits"][0].previous_text = "rewritten"  # history is what was stored
    with pytest.raises(AttributeError):
        message["edits"][0].text  # noqa: B018  (the field is previous_text: a typo fails, not None)
