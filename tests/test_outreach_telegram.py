"""Writing first on Telegram (#12): an agent starts a conversation with a customer's Telegram identity.

Against the Bot API imitation: the message is a plain `sendMessage` to the customer's private chat
(chat id = user id, answering nothing), and the customer's answer joins the conversation we started.
Telegram lets a bot write only to users who have started it: a customer the bot saw only in a group
gets 403 "bot can't initiate conversation with a user", one it never saw "chat not found", and the
agent is told the customer has to message the bot first.
"""

from __future__ import annotations

import re

import pytest

from connectors.base import PermanentError
from connectors.telegram import TelegramConnector
from inbox import outreach
from inbox.config import from_mapping
from inbox.identity import normalize_identity
from inbox.models import Author, OutboundReply
from inbox.outbox import send_due
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store.base import iso
from sandbox.telegram import TelegramImitation
from tests.test_web_auth import csrf_token, login, make_agent

pytestmark = pytest.mark.server  # the Bot API imitation on loopback

BOT = "acme_support_bot"


@pytest.fixture
def telegram():
    with TelegramImitation(bot_username=BOT) as imitation:
        yield imitation


def telegram_channel(imitation: TelegramImitation) -> dict:
    return {"kind": "telegram", "token": imitation.token, "api_url": imitation.url, "bot_username": BOT}


@pytest.fixture
def mainland(tmp_path, telegram):
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"), "data_dir": str(tmp_path / "data"), "mail_domain": "mainland.test",
        "instance_id": "outreach-telegram", "fetch_allow_hosts": [telegram.host],
        "channels": {"telegram": telegram_channel(telegram)},
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


def poll(mainland, store) -> None:
    outcome = poll_channel(mainland, store, "telegram")
    assert outcome.ok, outcome


def customer_of(store, user: dict) -> int:
    """The customer Mainland made for the Telegram user (their identity is the user id)."""
    customer_id = store.identity_owner("telegram", normalize_identity("telegram", str(user["id"])))
    assert customer_id is not None, f"no customer for Telegram user {user['id']}"
    return customer_id


def start(mainland, store, agent, user: dict, text: str) -> tuple[int, str]:
    """Start a conversation to the user's Telegram identity: (conversation id, outbox id)."""
    return outreach.start_conversation(
        mainland, store, customer_of(store, user), channel="telegram", handle=str(user["id"]),
        identity_kind="telegram", text=text, agent=agent)


def test_a_conversation_started_on_telegram_reaches_the_private_chat_and_the_answer_joins_it(
        mainland, store, agent, telegram, frozen_clock):
    jane = telegram.user("Jane", username="janedoe", last_name="Doe")
    telegram.start_bot(jane)
    telegram.private_message(jane, "Where is my order?")
    poll(mainland, store)
    [earlier] = store.customer_conversations(customer_of(store, jane), None)
    with store.write():  # that question was answered and closed long ago
        store.conn.execute("UPDATE conversations SET status = 'resolved' WHERE id = ?", (earlier["id"],))

    conversation_id, _outbox = start(mainland, store, agent, jane, "Hello Jane, your replacement ships today.")
    assert send_due(mainland, store).sent == 1

    [sent] = telegram.replies()
    assert sent["chat_id"] == jane["id"] and sent["text"] == "Hello Jane, your replacement ships today."
    # A fresh message: it answers nothing and names no forum topic.
    assert sent["reply_to"] is None
    assert "reply_parameters" not in sent["params"] and "message_thread_id" not in sent["params"]
    [ours] = store.conversation_messages(conversation_id)
    assert ours["delivery_status"] == "sent"

    # Jane answers (replying to our message): it joins the conversation we started, which opens again.
    telegram.private_message(jane, "Great, thank you!", reply_to=sent["message"])
    poll(mainland, store)
    assert [m["text"] for m in store.conversation_messages(conversation_id)][-1] == "Great, thank you!"
    assert store.conversation(conversation_id)["status"] == "open"
    assert "Great, thank you!" not in [m["text"] for m in store.conversation_messages(earlier["id"])]


def test_a_customer_who_never_started_the_bot_cannot_be_written_to_first(mainland, store, agent, telegram,
                                                                           frozen_clock):
    ann = telegram.user("Ann", username="ann_k")
    telegram.group_message(ann, "is the shop open on Sunday?")  # seen in a group, never in private
    poll(mainland, store)
    conversation_id, outbox_id = start(mainland, store, agent, ann, "Hi Ann, about your question in the group...")

    report = send_due(mainland, store)
    assert (report.sent, report.failed) == (0, 1)
    assert telegram.replies() == []
    [ours] = store.conversation_messages(conversation_id)
    assert ours["delivery_status"] == "failed"
    assert "bot can't initiate conversation with a user" in ours["delivery_error"]
    assert f"has to message @{BOT} first" in ours["delivery_error"]

    # Ann presses Start in the bot; the agent's Retry now reaches her private chat.
    telegram.start_bot(ann)
    with store.write():
        assert store.retry_outbox(outbox_id, iso(frozen_clock.now()))
    assert send_due(mainland, store).sent == 1
    [sent] = telegram.replies()
    assert sent["chat_id"] == ann["id"] and sent["reply_to"] is None


def test_a_user_the_bot_never_saw_is_refused_with_the_same_advice(mainland, telegram):
    connector = mainland.connector("telegram")
    reply = OutboundReply(idempotency_key="k1", channel="telegram", conversation_id=1, text="Hello!",
                          to=Author(handle="555000111", identity_kind="telegram"), starts_conversation=True)
    with pytest.raises(PermanentError, match=f"chat not found.*has to message @{BOT} first"):
        connector.send(reply)
    assert telegram.replies() == []


def test_no_conversation_is_started_in_a_group_that_wrote_as_itself(mainland, telegram):
    group = telegram.group("Acme customers")
    connector = mainland.connector("telegram")
    reply = OutboundReply(idempotency_key="k2", channel="telegram", conversation_id=1, text="Hello group!",
                          to=Author(handle=str(group["id"]), identity_kind="telegram"), starts_conversation=True)
    with pytest.raises(PermanentError, match="group or channel"):
        connector.send(reply)
    assert telegram.replies() == []
    assert TelegramConnector.thread_key_for(str(group["id"])) is None


def test_the_thread_key_of_a_handle_is_the_one_its_private_messages_carry(mainland, telegram):
    jane = telegram.user("Jane")
    telegram.private_message(jane, "Hello?")
    [item] = mainland.connector("telegram").fetch(None).items
    assert TelegramConnector.thread_key_for(f" {item.author.handle} ") == item.thread_key
    assert TelegramConnector.thread_key_for("janedoe") is None


# The "New conversation" page ---------------------------------------------------------------------------


@pytest.fixture
def app_config(app_config, telegram):
    app_config["channels"] = {"telegram": telegram_channel(telegram)}
    app_config["fetch_allow_hosts"] = [telegram.host]
    return app_config


def test_the_new_conversation_page_offers_a_telegram_identity_and_sends_free_text(app, telegram):
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    try:
        make_agent(store, role="admin")  # sees customers without a conversation in their team
        jane = telegram.user("Jane", username="janedoe")
        telegram.start_bot(jane)
        poll(mainland, store)
        customer_id = customer_of(store, jane)
        identity_id = next(i["id"] for i in store.identities_of(customer_id) if i["kind"] == "telegram")
        client = app.test_client()
        assert login(client).status_code == 302
        page = client.get(f"/customers/{customer_id}/conversations/new").get_data(as_text=True)
        assert f'value="{identity_id}|telegram"' in page
        assert 'id="cannot-start"' not in page

        response = client.post(f"/customers/{customer_id}/conversations/new", data={
            "csrf_token": csrf_token(client, "/notifications"), "to": f"{identity_id}|telegram",
            "text": "Hi Jane, your repair is ready."})
        assert response.status_code == 303
        conversation_id = int(re.search(r"/conversations/(\d+)", response.headers["Location"]).group(1))
        assert send_due(mainland, store).sent == 1
        [sent] = telegram.replies()
        assert (sent["chat_id"], sent["text"], sent["reply_to"]) == (jane["id"], "Hi Jane, your repair is ready.", None)
        assert store.conversation(conversation_id)["status"] == "pending"
    finally:
        store.close()
