"""End to end on Bluesky: a customer mentions us, another replies in a thread, a third writes a
chat message; the poller stores them; agents answer through the outbox; the imitation receives
replies threaded to the right post (root and parent) and a chat message in the right conversation."""

from __future__ import annotations

import pytest

from connectors import bluesky as bluesky_module
from inbox.config import from_mapping
from inbox.outbox import queue_reply, send_due
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from sandbox.bluesky import BlueskyImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs


@pytest.fixture
def pds():
    bluesky_module._SESSIONS.clear()
    with BlueskyImitation(page_size=2) as imitation:
        yield imitation
    bluesky_module._SESSIONS.clear()


@pytest.fixture
def mainland(tmp_path, pds, monkeypatch):
    monkeypatch.setenv("BSKY_APP_PASSWORD", pds.app_password)
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "fetch_allow_hosts": [pds.host],
        "channels": {"bsky": {
            "kind": "bluesky", "identifier": pds.handle, "app_password": {"$env": "BSKY_APP_PASSWORD"},
            "service_url": pds.url, "dms": True,
            "media_url": pds.url + "/img/feed_fullsize/plain/{did}/{cid}@jpeg",
        }},
    }, base=tmp_path)
    return Mainland(config)


def test_mentions_replies_and_chat_are_answered_in_place(mainland, pds):
    store = mainland.open_store(migrate=True)
    mention = pds.customer_mention("jane.bsky.social", "my order #1234 arrived broken", name="Jane Doe", image=True)
    announcement = pds.our_post("Our shop is open again!")
    question = pds.customer_reply("bob.bsky.social", announcement, "Do you ship to Belgium?", name="Bob")
    chat = pds.customer_dm("carol.bsky.social", "Can I change my address?", name="Carol")

    outcome = poll_channel(mainland, store, "bsky")
    assert outcome.ok, outcome.error
    assert outcome.report.stored == 3

    conversations = {c["customer_name"]: c for c in store.recent_conversations()}
    assert conversations["Jane Doe"]["public"] and conversations["Bob"]["public"]
    assert not conversations["Carol"]["public"]
    [jane_message] = store.conversation_messages(conversations["Jane Doe"]["id"])
    assert jane_message["external_id"] == mention

    # Bob answers in his thread before we do: it joins his conversation, and we answer that.
    follow_up = pds.customer_reply("bob.bsky.social", question, "@acme.bsky.social and to Luxembourg?")
    second = poll_channel(mainland, store, "bsky", ignore_pause=True)
    assert second.ok and second.report.stored == 1
    assert len(store.conversation_messages(conversations["Bob"]["id"])) == 2

    queue_reply(mainland, store, conversations["Jane Doe"]["id"], "Sorry! A replacement ships today.")
    queue_reply(mainland, store, conversations["Bob"]["id"], "Yes, both.")
    queue_reply(mainland, store, conversations["Carol"]["id"], "Yes, send us the new one here.")
    report = send_due(mainland, store)
    assert report.sent == 3, report

    posts = {s["text"]: s for s in pds.sent if s["kind"] == "post"}
    jane = posts["Sorry! A replacement ships today."]["record"]["reply"]
    assert jane["parent"]["uri"] == jane["root"]["uri"] == mention
    bob = posts["Yes, both."]["record"]["reply"]
    assert bob["parent"] == {"uri": follow_up, "cid": pds.posts[follow_up]["cid"]}
    assert bob["root"] == {"uri": announcement, "cid": pds.posts[announcement]["cid"]}
    [dm] = [s for s in pds.sent if s["kind"] == "dm"]
    assert dm["in_reply_to"] == f"chat:{chat}" and dm["text"] == "Yes, send us the new one here."

    # Nothing we sent comes back as a customer message, and one login served everything.
    third = poll_channel(mainland, store, "bsky", ignore_pause=True)
    assert third.ok and third.report.stored == 0
    assert pds.logins == 1
    store.close()
