"""End to end on Telegram: customers write to the bot, Mainland stores it, an agent answers.

A real Mainland (config, SQLite file, poller, outbox) runs against the Bot API imitation. Jane
writes privately with a photo and Ann mentions the bot in a group; the agent answers both through
`queue_reply` + `send_due`, the path of the reply composer, and the imitation receives each
answer in the right chat, threaded with `reply_parameters` to the message answered. The same
runs in webhook mode, with the imitation posting to a live Mainland web server: a rotated secret
is refused and shown (FI-27), and an endpoint that was down loses and doubles nothing (FI-26).
"""

from __future__ import annotations

import datetime as dt
import socket
import threading

import pytest

from inbox.config import from_mapping
from inbox.outbox import queue_reply, send_due
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from sandbox.telegram import TelegramImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

PHOTO = b"\xff\xd8\xff\xe0" + b"broken-vase" * 100


@pytest.fixture
def telegram():
    with TelegramImitation() as imitation:
        yield imitation


def make_mainland(tmp_path, imitation: TelegramImitation, **channel) -> Mainland:
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "e2e-secret",
        "instance_id": "e2e",
        "base_url": "http://127.0.0.1:5000",
        "fetch_allow_hosts": [imitation.host],
        "channels": {"telegram": {"kind": "telegram", "token": imitation.token, "api_url": imitation.url,
                                  **channel}},
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


@pytest.fixture
def mainland(tmp_path, telegram):
    return make_mainland(tmp_path, telegram)


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def conversation_of(store, external_id: str) -> dict:
    for conversation in store.recent_conversations():
        if any(m["external_id"] == external_id for m in store.conversation_messages(conversation["id"])):
            return conversation
    raise AssertionError(f"no conversation holds {external_id}")


def test_private_message_and_group_mention_are_answered_in_place(mainland, store, telegram):
    jane = telegram.user("Jane", username="janedoe", last_name="Doe")
    ann = telegram.user("Ann", username="ann_k")
    dm = telegram.private_message(jane, "My order #1234 arrived broken", photo=PHOTO)
    telegram.group_message(ann, "anyone else waiting on a refund?", mention=False)
    mention = telegram.group_message(ann, "is the shop open on Sunday?")

    outcome = poll_channel(mainland, store, "telegram")
    assert outcome.ok and outcome.report.stored == 2 and store.counts()["quarantined"] == 0

    private = conversation_of(store, f"{jane['id']}:{dm['message_id']}")
    group = conversation_of(store, f"{mention['chat']['id']}:{mention['message_id']}")
    assert not private["public"] and group["public"]
    [stored_dm] = store.conversation_messages(private["id"])
    [photo] = stored_dm["attachments"]
    assert photo["stored"] and photo["size"] == len(PHOTO) and photo["content_type"] == "image/jpeg"

    queue_reply(mainland, store, private["id"], "So sorry Jane, a replacement ships today.")
    queue_reply(mainland, store, group["id"], "Yes Ann, 10:00 to 16:00.")
    report = send_due(mainland, store)
    assert report.sent == 2 and report.failed == 0

    by_chat = {s["chat_id"]: s for s in telegram.sent}
    assert by_chat[jane["id"]]["reply_to"] == dm["message_id"]
    assert by_chat[jane["id"]]["text"] == "So sorry Jane, a replacement ships today."
    assert by_chat[mention["chat"]["id"]]["reply_to"] == mention["message_id"]
    assert jane["id"] not in (s["chat_id"] for s in telegram.sent if s["text"].startswith("Yes Ann"))

    # Jane answers in her chat: the message joins her open conversation.
    telegram.private_message(jane, "Thanks!")
    poll_channel(mainland, store, "telegram")
    assert len(store.conversation_messages(private["id"])) == 3  # hers, ours, hers


def test_flood_control_pauses_the_channel_for_retry_after(mainland, store, telegram):
    telegram.private_message(telegram.user("Flo"), "hello?")
    telegram.flood(35)
    before = dt.datetime.now(dt.UTC)
    outcome = poll_channel(mainland, store, "telegram")
    assert outcome.error and "Too Many Requests" in outcome.error and outcome.retry_after == 35
    paused = dt.datetime.fromisoformat(store.channel_health()["telegram"]["paused_until"].replace("Z", "+00:00"))
    assert dt.timedelta(seconds=34) <= paused - before <= dt.timedelta(seconds=40)
    assert poll_channel(mainland, store, "telegram").skipped  # no call while paused
    assert store.cursor("telegram") is None and len(telegram.updates) == 1
    assert poll_channel(mainland, store, "telegram", ignore_pause=True).report.stored == 1


def test_rejected_reply_shows_telegrams_reason(mainland, store, telegram):
    jane = telegram.user("Jane")
    telegram.private_message(jane, "hi")
    poll_channel(mainland, store, "telegram")
    [conversation] = store.recent_conversations()
    telegram.block_bot(jane)
    outbox_id = queue_reply(mainland, store, conversation["id"], "Hello?")
    assert send_due(mainland, store).failed == 1
    row = store.outbox_row(outbox_id)
    assert row["state"] == "failed" and "blocked by the user" in row["last_error"]
    assert telegram.token not in row["last_error"]


# Webhook mode: Telegram posts to a live Mainland ------------------------------------------------

WEBHOOK_SECRET = "e2e-Webhook_secret-42"


@pytest.fixture
def live(tmp_path, telegram):
    """Mainland in webhook mode, served over real HTTP so that the imitation can post to it."""
    from werkzeug.serving import make_server

    from inbox import create_app

    mainland = make_mainland(tmp_path, telegram, mode="webhook", webhook_secret=WEBHOOK_SECRET)
    app = create_app(mainland.config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    store = mainland.open_store(migrate=True)
    yield mainland, store, f"http://127.0.0.1:{server.server_port}/webhooks/telegram"
    store.close()
    server.shutdown()


def test_webhook_mode_end_to_end_with_a_rotated_secret(live, telegram):
    mainland, store, url = live
    connector = mainland.connector("telegram")
    connector.register_webhook(url)
    jane, ann = telegram.user("Jane"), telegram.user("Ann")
    dm = telegram.private_message(jane, "The lid is cracked", photo=PHOTO)
    mention = telegram.group_message(ann, "do you deliver on Saturdays?")

    assert telegram.post_webhook() == [200, 200] and telegram.updates == []
    assert store.counts()["messages"] == 2
    # Telegram redelivers an update (it missed our 200): stored once.
    assert telegram.post_webhook(update={"update_id": 795120331, "message": dm}) == [200]
    assert store.counts()["messages"] == 2
    private = conversation_of(store, f"{jane['id']}:{dm['message_id']}")
    [photo] = store.conversation_messages(private["id"])[0]["attachments"]
    assert photo["stored"] and photo["size"] == len(PHOTO)

    group = conversation_of(store, f"{mention['chat']['id']}:{mention['message_id']}")
    queue_reply(mainland, store, private["id"], "A new lid is on its way.")
    queue_reply(mainland, store, group["id"], "Yes, until 14:00.")
    assert send_due(mainland, store).sent == 2
    assert {(s["chat_id"], s["reply_to"]) for s in telegram.sent} == {
        (jane["id"], dm["message_id"]), (mention["chat"]["id"], mention["message_id"])}

    # The secret is rotated at Telegram but not here (FI-27): every delivery is refused, nothing is
    # stored, and both the refusals and Telegram's own delivery error show on the channel's health.
    telegram.webhook["secret_token"] = "rotated-elsewhere"
    telegram.private_message(jane, "Hello again?")
    assert telegram.post_webhook() == [403] and len(telegram.updates) == 1
    assert store.counts()["messages"] == 4  # two customer messages and our two replies
    assert len(store.inbound_webhooks.refusals("telegram")) == 1
    outcome = poll_channel(mainland, store, "telegram")
    assert outcome.error and "Wrong response from the webhook: 403" in outcome.error
    # Put right: Telegram's retry of the waiting update gets through.
    telegram.webhook["secret_token"] = WEBHOOK_SECRET
    assert telegram.post_webhook() == [200]
    assert len(store.conversation_messages(private["id"])) == 3


def test_webhook_endpoint_down_then_up_loses_and_doubles_nothing(live, telegram):
    mainland, store, url = live
    with socket.socket() as probe:  # a port where nothing listens: Mainland is down
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}/webhooks/telegram"
    mainland.connector("telegram").register_webhook(down)
    for n in range(3):
        telegram.private_message(telegram.user(f"C{n}"), f"message {n}")
    delivered = list(telegram.updates)
    assert telegram.post_webhook() == [0] and len(telegram.updates) == 3  # kept for a retry (FI-26)
    telegram.webhook["url"] = url
    assert telegram.post_webhook() == [200, 200, 200]
    for update in delivered:  # retries of deliveries whose answer was lost
        assert telegram.post_webhook(update=update) == [200]
    assert store.counts()["messages"] == 3
