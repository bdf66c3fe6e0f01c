"""Writing first on Bluesky (#12): a new conversation goes out as a direct message, through the outbox to
the PDS imitation (`chat.bsky.convo.getConvoForMembers`, then `sendMessage`), as far as the customer's
chat settings allow; the refusals tell the agent what the customer must do."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors import bluesky as bluesky_module
from connectors.base import PermanentError
from connectors.bluesky import BlueskyConnector
from inbox import outreach
from inbox.config import from_mapping
from inbox.models import Author, OutboundReply
from inbox.outbox import send_due
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store.base import iso
from sandbox.bluesky import BlueskyImitation

pytestmark = pytest.mark.server  # the Bluesky PDS imitation on loopback

T0 = dt.datetime(2026, 3, 5, 9, 0, tzinfo=dt.UTC)
JANE = "jane.bsky.social"


@pytest.fixture
def pds():
    bluesky_module._SESSIONS.clear()
    with BlueskyImitation() as imitation:
        yield imitation
    bluesky_module._SESSIONS.clear()


@pytest.fixture
def mainland(tmp_path, pds):
    account = {"kind": "bluesky", "identifier": pds.handle, "app_password": pds.app_password,
               "service_url": pds.url, "timeout": 10}
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"), "data_dir": str(tmp_path / "data"), "mail_domain": "mainland.test",
        "instance_id": "outreach-bluesky",
        "channels": {"bsky": {**account, "dms": True}, "posts": {**account, "dms": False}},
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


@pytest.fixture
def agent(store):
    agent_id = store.create_agent(email="ann@mainland.test", name="Ann", role="agent", password_hash=None)
    return {"id": agent_id, "name": "Ann"}


def customer(store, handle: str, name: str = "Jane Doe") -> int:
    """A customer known by one Bluesky identity (a DID, as items carry it, or a handle)."""
    now = iso(T0)
    with store.write():
        customer_id = store.create_customer_record(name, now)
        store.add_identity(customer_id, "bluesky", handle, handle, True, now)
    return customer_id


def start(mainland, store, agent, customer_id, handle, *, channel="bsky", text="Hi Jane, your refund is on its way."):
    conversation_id, _outbox = outreach.start_conversation(
        mainland, store, customer_id, channel=channel, handle=handle, identity_kind="bluesky", text=text, agent=agent,
        now=T0)
    return conversation_id


def test_bluesky_declares_it_writes_first_to_bluesky_identities():
    assert BlueskyConnector.limits.starts_conversations == "any"
    assert BlueskyConnector.writes_to == ("bluesky",)
    # The convo id that threads chat messages is the chat service's, not derived from the DID.
    assert BlueskyConnector.thread_key_for("did:plc:jane") is None


def test_a_conversation_starts_as_a_direct_message_and_the_answer_reaches_the_customer(mainland, store, agent, pds):
    did = pds.chat_settings(JANE, "all")
    cid = customer(store, did)
    options = {o.identity["kind"]: o for o in outreach.start_options(mainland, store, cid)}
    assert [t.channel for t in options["bluesky"].targets] == ["bsky", "posts"]
    conversation_id = start(mainland, store, agent, cid, did)
    assert store.conversation(conversation_id)["status"] == "pending"

    assert send_due(mainland, store, now=T0).sent == 1
    assert pds.convo_requests == [[did]]
    [dm] = pds.sent
    assert dm["kind"] == "dm" and dm["text"] == "Hi Jane, your refund is on its way." and dm["in_reply_to"] is None
    assert pds.convos[dm["convoId"]] == (pds.did, did)
    [ours] = store.conversation_messages(conversation_id)
    assert ours["direction"] == "out" and ours["delivery_status"] == "sent"

    # Jane answers in the same convo: our own message and the convo's start are not stored again.
    pds.customer_dm(JANE, "Thank you, received!")
    outcome = poll_channel(mainland, store, "bsky")
    assert outcome.ok, outcome.error
    assert outcome.report.stored == 1
    answers = [c for c in store.customer_conversations(cid, None)
               if any(m["text"] == "Thank you, received!" for m in store.conversation_messages(c["id"]))]
    assert len(answers) == 1  # Jane's answer is hers, on the channel we wrote on


def test_the_answer_joins_the_conversation_we_started(mainland, store, agent, pds):
    did = pds.chat_settings(JANE, "all")
    cid = customer(store, did)
    conversation_id = start(mainland, store, agent, cid, did)
    assert send_due(mainland, store, now=T0).sent == 1
    pds.customer_dm(JANE, "Thank you, received!")
    assert poll_channel(mainland, store, "bsky").ok
    texts = [m["text"] for m in store.conversation_messages(conversation_id)]
    assert texts == ["Hi Jane, your refund is on its way.", "Thank you, received!"]


def test_an_existing_convo_is_used_again(mainland, store, agent, pds):
    # Jane wrote to us before (the convo exists), and has since allowed messages from followers only.
    pds.customer_dm(JANE, "Hello?")
    did = pds.chat_settings(JANE, "following", follows_us=False)
    cid = customer(store, did)
    start(mainland, store, agent, cid, did)
    assert send_due(mainland, store, now=T0).sent == 1
    [dm] = pds.sent
    assert dm["convoId"] == pds.chat_log[0]["convoId"]


def test_a_handle_is_resolved_to_the_account_first(mainland, store, agent, pds):
    did = pds.chat_settings(JANE, "following", follows_us=True)
    cid = customer(store, "@" + JANE)
    start(mainland, store, agent, cid, "@" + JANE)
    assert send_due(mainland, store, now=T0).sent == 1
    assert pds.convo_requests == [[did]]
    assert [s["text"] for s in pds.sent] == ["Hi Jane, your refund is on its way."]


def test_an_unknown_handle_is_refused(mainland, store, agent, pds):
    cid = customer(store, "nobody.bsky.social")
    conversation_id = start(mainland, store, agent, cid, "nobody.bsky.social")
    assert send_due(mainland, store, now=T0).failed == 1
    [ours] = store.conversation_messages(conversation_id)
    assert "@nobody.bsky.social" in ours["delivery_error"] and not pds.sent and not pds.convo_requests


@pytest.mark.parametrize(("allow", "follows", "block", "says"), [
    ("following", False, False, "accepts direct messages only from accounts they follow"),
    ("none", True, False, "does not accept direct messages"),
    ("all", False, True, "has blocked this account"),
])
def test_a_customer_whose_chat_settings_refuse_us_is_explained(mainland, store, agent, pds, allow, follows, block,
                                                               says):
    did = pds.chat_settings(JANE, allow, follows_us=follows)
    if block:
        pds.block(JANE)
    cid = customer(store, did)
    conversation_id = start(mainland, store, agent, cid, did)
    report = send_due(mainland, store, now=T0)
    assert report.sent == 0 and report.failed == 1
    [ours] = store.conversation_messages(conversation_id)
    assert ours["delivery_status"] == "failed"
    assert says in ours["delivery_error"]
    assert "write to @acme.bsky.social first" in ours["delivery_error"]
    assert not pds.sent and not pds.convos


def test_without_direct_messages_the_channel_says_so_and_asks_nothing(mainland, store, agent, pds):
    did = pds.chat_settings(JANE, "all")
    cid = customer(store, did)
    conversation_id = start(mainland, store, agent, cid, did, channel="posts")
    assert send_due(mainland, store, now=T0).failed == 1
    [ours] = store.conversation_messages(conversation_id)
    assert "dms: true" in ours["delivery_error"]
    assert not pds.convo_requests and not pds.sent


def test_a_first_message_longer_than_a_chat_message_is_refused_before_anything_is_asked(mainland, pds):
    # The composer holds a new conversation to the channel's post limit (300); the connector's own
    # check is the chat limit (1,000 graphemes), before it asks the chat service anything.
    did = pds.chat_settings(JANE, "all")
    connector = mainland.connector("bsky")
    reply = OutboundReply(idempotency_key="s1", channel="bsky", conversation_id=1, text="x" * 1001,
                          to=Author(handle=did, identity_kind="bluesky"), starts_conversation=True)
    with pytest.raises(PermanentError, match="1001 characters"):
        connector.send(reply)
    assert not pds.convo_requests and not pds.sent
