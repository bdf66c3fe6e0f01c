"""The reply page under the one sending rule (inbox/sendability.py): refusals it did not know before,
and the "Reply on" choice of a conversation merged from two channels."""

from __future__ import annotations

from inbox.outbox import send_due
from tests import test_web_conversation_actions as actions
from tests.test_web_conversation_actions import LimitedChat, post

# The conversation page's world: Ann in team A, a mail channel (SMTP sink) and a limited chat.
app_config = actions.app_config
world = actions.world


def test_a_reply_in_a_conversation_marked_as_spam_is_refused_with_what_to_do(world):
    cid = world.conversation()
    world.store.execute("UPDATE conversations SET status = 'spam' WHERE id = ?", (cid,))
    refused = post(world.client(), f"/conversations/{cid}/reply", {"text": "Hello", "seen_up_to": 99})
    assert refused.status_code == 400
    assert "marked as spam. If the customer is real, open it again first." in refused.get_json()["error"]
    assert world.outbox_count() == 0


def test_a_reply_to_a_sender_whose_address_could_not_be_read_is_refused(world):
    cid = world.conversation()
    world.store.execute("UPDATE messages SET flags = 'invalid_sender' WHERE conversation_id = ?", (cid,))
    refused = post(world.client(), f"/conversations/{cid}/reply", {"text": "Hello", "seen_up_to": 99})
    assert refused.status_code == 400 and "could not be read reliably" in refused.get_json()["error"]
    assert world.outbox_count() == 0


def _merged(world):
    mail = world.conversation(subject="Broken lamp", sender="Jane Doe <jane@example.net>")
    chat = world.conversation(channel="chat", subject="About my lamp", sender="Jane Doe <jane@example.net>")
    assert world.store.conversation(mail)["customer_id"] == world.store.conversation(chat)["customer_id"]
    world.store.merge_conversations(chat, mail, agent_id=world.ann["id"], now="2026-01-01T00:00:00.000000Z")
    return mail


def test_a_merged_conversation_answers_on_the_latest_messages_channel_by_default(world):
    cid = _merged(world)
    page = world.client().get(f"/conversations/{cid}").get_data(as_text=True)
    choice = page.split('id="reply-on-choice"')[1].split("</p>")[0]
    assert choice.index("Limited chat (chat)") < choice.index("(mail)"), "the latest message's channel first"
    # The composer states the channel the reply goes out on, and that channel's limits.
    assert 'data-max-length="20"' in page, "the chat's 20 characters, not mail's unlimited text"
    assert 'id="reply-cc"' not in page, "no copies: the chat does not take them"
    assert post(world.client(), f"/conversations/{cid}/reply", {"text": "On it", "seen_up_to": 99}).status_code == 200
    send_due(world.mainland, world.store)
    assert [r.text for r in LimitedChat.sent] == ["On it"]


def test_the_agent_picks_the_other_channel_and_the_reply_goes_there(world, smtp_server):
    cid = _merged(world)
    mail_message = next(m for m in world.messages(cid) if m["channel"] == "mail" and m["direction"] == "in")
    sent = post(world.client(), f"/conversations/{cid}/reply",
                {"text": "A new lamp is on its way", "seen_up_to": 99, "reply_to": mail_message["id"]})
    assert sent.status_code == 200
    assert send_due(world.mainland, world.store).sent == 1
    assert LimitedChat.sent == [], "not on the chat"
    [out] = [m for m in world.messages(cid) if m["direction"] == "out"]
    assert out["channel"] == "mail" and out["delivery_status"] == "sent"


def test_a_conversation_on_one_channel_offers_no_choice(world):
    cid = world.conversation()
    assert 'id="reply-on-choice"' not in world.client().get(f"/conversations/{cid}").get_data(as_text=True)


def test_the_review_page_says_why_an_approval_cannot_go_and_refuses_it(world):
    world.store.set_agent_routing(world.ann["id"], capacity=5, languages=(), topics=(), trainee=True)
    cid = world.conversation(channel="chat", subject="Chat")
    assert post(world.client(), f"/conversations/{cid}/reply", {"text": "Sorry!", "seen_up_to": 99}).status_code == 200
    [item] = world.store.review.items(None)
    world.store.execute("UPDATE conversations SET last_inbound_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?", (cid,))
    root = world.client("root")
    page = root.get(f"/review/{item.id}").get_data(as_text=True)
    assert 'id="review-not-sendable"' in page and "reply window closed" in page
    assert 'name="outside_window"' in page, "the reviewer may send it anyway"
    refused = post(root, f"/review/{item.id}/approve", {"text": "Sorry!"}, json=False)
    assert refused.status_code == 302
    assert "reply window closed" in root.get(f"/review/{item.id}").get_data(as_text=True)
    assert world.outbox_count() == 0
    sent = post(root, f"/review/{item.id}/approve", {"text": "Sorry!", "outside_window": "1"}, json=False)
    assert sent.status_code == 302 and world.outbox_count() == 1
