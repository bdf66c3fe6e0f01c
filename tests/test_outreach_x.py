"""Writing first on X (#12): a new conversation is a direct message to the customer's user id
(`POST /2/dm_conversations/with/{id}/messages`), sent through the outbox to the X imitation; a
customer who accepts no DMs from us is a refusal that says what to do; the customer's answer
carries the one-to-one `dm_conversation_id` that `thread_key_for` gives."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from connectors import x as x_module
from connectors.base import PermanentError
from connectors.x import XConnector, one_to_one_conversation_id
from inbox import outreach, sendability
from inbox.config import from_mapping
from inbox.models import Author, OutboundReply
from inbox.outbox import send_due
from inbox.runtime import Mainland
from inbox.store.base import iso
from sandbox.x import XImitation

pytestmark = pytest.mark.server  # the X imitation on loopback

T0 = dt.datetime(2026, 3, 5, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _forget_refreshed_tokens():
    x_module._TOKENS.clear()
    yield
    x_module._TOKENS.clear()


@pytest.fixture
def x_api():
    with XImitation() as imitation:
        yield imitation


def x_settings(x_api: XImitation) -> dict:
    return {"kind": "x", "user_id": x_api.user_id, "access_token": x_api.access_token,
            "refresh_token": x_api.refresh_token, "client_id": x_api.client_id, "api_url": x_api.url}


@pytest.fixture
def mainland(tmp_path, x_api):
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"), "data_dir": str(tmp_path / "data"), "mail_domain": "mainland.test",
        "instance_id": "outreach-x-test", "channels": {"x-support": x_settings(x_api)},
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


def customer_on_x(store, user_id: str, name: str = "Jane Doe") -> int:
    now = iso(T0)
    with store.write():
        customer_id = store.create_customer_record(name, now)
        store.add_identity(customer_id, "x", user_id, user_id, True, now)
    return customer_id


def start_reply(handle: str, text: str = "Hello Jane, your replacement is on its way.") -> OutboundReply:
    return OutboundReply(channel="x-support", conversation_id=1, text=text, idempotency_key="o1",
                         to=Author(handle=handle, name="Jane Doe", identity_kind="x"), starts_conversation=True)


def test_the_one_to_one_conversation_id_puts_the_smaller_id_first_as_numbers():
    # X's own example pair: an 18-digit id is smaller than a 19-digit one, whatever the text order says.
    assert one_to_one_conversation_id("1072250532645998596", "750362064426721281") == \
        "750362064426721281-1072250532645998596"
    assert one_to_one_conversation_id("2244994945", "1234567890") == "1234567890-2244994945"
    assert one_to_one_conversation_id("2244994945", "@janedoe") is None
    assert one_to_one_conversation_id("2244994945", "2244994945") is None


def test_the_thread_key_is_the_dm_conversation_id_the_customers_messages_carry(x_api):
    connector = XConnector("x-support", x_settings(x_api))
    jane = x_api.user("janedoe", "Jane Doe")
    x_api.customer_dm("janedoe", "Hi!")
    [item] = [i for i in connector.fetch(None).items if i.author.handle == jane]
    assert connector.thread_key_for(jane) == item.thread_key
    # The class alone does not know the support account: it cannot name the conversation.
    assert XConnector.thread_key_for(jane) is None


def test_x_declares_it_may_write_first_to_x_accounts():
    assert XConnector.limits.starts_conversations == "any"
    assert XConnector.writes_to == ("x",)


def test_a_started_conversation_is_a_dm_to_the_user_id_answering_nothing(x_api):
    connector = XConnector("x-support", x_settings(x_api))
    jane = x_api.user("janedoe", "Jane Doe")
    # Even a reply marked public (or carrying a stale thread key) starts as a private DM to the user.
    event_id = connector.send(dataclasses.replace(start_reply(jane), public=True, thread_key="1-2"))
    [request] = x_api.requests_to(r"^/2/dm_conversations/")
    assert request.path == f"/2/dm_conversations/with/{jane}/messages"
    assert request.json() == {"text": "Hello Jane, your replacement is on its way."}
    [sent] = x_api.sent
    assert sent["id"] == event_id and sent["public"] is False and sent["in_reply_to"] is None
    assert sent["dm_conversation_id"] == connector.thread_key_for(jane)


def test_a_customer_who_accepts_no_dms_from_us_is_a_refusal_saying_what_to_do(x_api):
    connector = XConnector("x-support", x_settings(x_api))
    jane = x_api.refuse_dms("janedoe")
    with pytest.raises(PermanentError) as refused:
        connector.send(start_reply(jane))
    message = str(refused.value)
    assert "403" in message and "allow messages from us" in message and "write to us first" in message
    assert "Jane Doe" in message and x_api.access_token not in message
    assert not x_api.sent
    # Once she has written to us, the same message goes through.
    x_api.customer_dm("janedoe", "Hello?")
    connector.send(start_reply(jane))
    assert [s["text"] for s in x_api.sent] == ["Hello Jane, your replacement is on its way."]


def test_only_a_numeric_user_id_other_than_ours_is_written_to(x_api):
    connector = XConnector("x-support", x_settings(x_api))
    with pytest.raises(PermanentError, match="numeric user id"):
        connector.send(start_reply("@janedoe"))
    with pytest.raises(PermanentError, match="support account itself"):
        connector.send(start_reply(x_api.user_id))
    assert not x_api.requests_to(r"^/2/dm_conversations/")


def test_an_agent_starts_an_x_conversation_through_the_outbox(mainland, store, agent, x_api):
    jane = x_api.user("janedoe", "Jane Doe")
    cid = customer_on_x(store, jane)
    decision = sendability.decide_start(mainland, store, cid, channel="x-support", handle=jane, identity_kind="x")
    assert decision.allowed, decision.reason
    conversation_id, _outbox = outreach.start_conversation(
        mainland, store, cid, channel="x-support", handle=jane, identity_kind="x",
        text="Hello Jane, your replacement is on its way.", agent=agent, now=T0)
    assert store.conversation(conversation_id)["public"] == 0
    assert send_due(mainland, store, now=T0).sent == 1
    [request] = x_api.requests_to(r"^/2/dm_conversations/")
    assert request.path == f"/2/dm_conversations/with/{jane}/messages"
    assert request.json() == {"text": "Hello Jane, your replacement is on its way."}
    [ours] = store.conversation_messages(conversation_id)
    assert ours["delivery_status"] == "sent"


def test_a_refused_start_tells_the_agent_why(mainland, store, agent, x_api):
    jane = x_api.refuse_dms("janedoe")
    cid = customer_on_x(store, jane)
    conversation_id, outbox_id = outreach.start_conversation(
        mainland, store, cid, channel="x-support", handle=jane, identity_kind="x", text="Hello Jane!", agent=agent,
        now=T0)
    assert send_due(mainland, store, now=T0).failed == 1
    [ours] = store.conversation_messages(conversation_id)
    assert ours["delivery_status"] == "failed"
    assert "allow messages from us" in ours["delivery_error"] and "write to us first" in ours["delivery_error"]
    assert not x_api.sent


def test_the_customers_answer_joins_the_conversation_we_started(mainland, store, agent, x_api):
    jane = x_api.user("janedoe", "Jane Doe")
    cid = customer_on_x(store, jane)
    conversation_id, _outbox = outreach.start_conversation(
        mainland, store, cid, channel="x-support", handle=jane, identity_kind="x",
        text="Hello Jane, your replacement is on its way.", agent=agent, now=T0)
    assert send_due(mainland, store, now=T0).sent == 1
    x_api.customer_dm("janedoe", "Thank you, it arrived!")
    connector = mainland.connector("x-support")
    try:
        mainland.ingestor(store).ingest("x-support", connector.fetch(None))
    finally:
        connector.close()
    texts = [m["text"] for m in store.conversation_messages(conversation_id)]
    assert texts[-1] == "Thank you, it arrived!"
    assert store.conversation(conversation_id)["status"] == "open"
