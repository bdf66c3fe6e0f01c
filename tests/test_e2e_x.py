"""End to end on X: a customer mentions us and sends a DM; the poller stores both; agents answer
through the outbox; the X imitation receives a public reply to the mention and a DM in the DM
conversation."""

from __future__ import annotations

import pytest

from connectors import x as x_module
from inbox.config import from_mapping
from inbox.outbox import queue_reply, send_due
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from sandbox.x import XImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs


@pytest.fixture
def x_api():
    x_module._TOKENS.clear()
    with XImitation(page_size=2) as imitation:
        yield imitation
    x_module._TOKENS.clear()


@pytest.fixture
def mainland(tmp_path, x_api, monkeypatch):
    monkeypatch.setenv("X_ACCESS_TOKEN", x_api.access_token)
    monkeypatch.setenv("X_REFRESH_TOKEN", x_api.refresh_token)
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "fetch_allow_hosts": [x_api.host],
        "channels": {"x-support": {
            "kind": "x", "user_id": x_api.user_id, "api_url": x_api.url, "client_id": x_api.client_id,
            "access_token": {"$env": "X_ACCESS_TOKEN"}, "refresh_token": {"$env": "X_REFRESH_TOKEN"},
            "page_size": 5,
        }},
    }, base=tmp_path)
    return Mainland(config)


def test_mention_and_dm_are_answered_publicly_and_privately(mainland, x_api):
    store = mainland.open_store(migrate=True)
    mention = x_api.customer_mention("janedoe", "@AcmeSupport my order #1234 arrived broken", name="Jane Doe",
                                     photo=True)
    dm = x_api.customer_dm("janedoe", "Here is my address: 1 Main St", name="Jane Doe")
    x_api.customer_dm("bob", "Unrelated question", name="Bob")

    outcome = poll_channel(mainland, store, "x-support")
    assert outcome.ok, outcome.error
    assert outcome.report.stored == 3

    conversations = {c["first_text"]: c for c in store.recent_conversations()}
    public = conversations["@AcmeSupport my order #1234 arrived broken"]
    private = conversations["Here is my address: 1 Main St"]
    assert public["public"] and not private["public"]
    assert public["customer_name"] == "Jane Doe"
    [message] = store.conversation_messages(public["id"])
    assert message["external_id"] == mention

    # A second poll finds nothing new, and the token expiring in between changes nothing.
    x_api.expire_token()
    again = poll_channel(mainland, store, "x-support", ignore_pause=True)
    assert again.ok and again.report.stored == 0

    queue_reply(mainland, store, public["id"], "Sorry about that! We've sent you a DM.")
    queue_reply(mainland, store, private["id"], "Thanks, a replacement ships today.")
    report = send_due(mainland, store)
    assert report.sent == 2, report

    by_kind = {s["kind"]: s for s in x_api.sent}
    assert by_kind["post"]["in_reply_to"] == mention
    assert by_kind["post"]["text"] == "Sorry about that! We've sent you a DM."
    assert by_kind["dm"]["in_reply_to"] == dm
    assert by_kind["dm"]["dm_conversation_id"] == f"{x_api.user('janedoe')}-{x_api.user_id}"
    assert by_kind["dm"]["text"] == "Thanks, a replacement ships today."

    # Our own DM comes back from /2/dm_events and is not stored as a customer message.
    third = poll_channel(mainland, store, "x-support", ignore_pause=True)
    assert third.ok and third.report.stored == 0
    store.close()


def test_too_long_public_reply_fails_with_the_reason(mainland, x_api):
    store = mainland.open_store(migrate=True)
    x_api.customer_mention("janedoe")
    assert poll_channel(mainland, store, "x-support").ok
    [conversation] = store.recent_conversations()
    queue_reply(mainland, store, conversation["id"], "Sorry! " * 50)
    report = send_due(mainland, store)
    assert report.failed == 1 and x_api.sent == []
    out = store.conversation_messages(conversation["id"])[-1]
    assert out["delivery_status"] == "failed"
    assert "X allows 280" in out["delivery_error"]
    store.close()
