"""End to end on WhatsApp: Meta posts signed webhooks to a live Mainland, an agent answers.

A real Mainland (config, SQLite file, web server, outbox) runs against the Cloud API imitation,
which posts its deliveries to `/webhooks/whatsapp` over real HTTP. Sheena writes text and a
photo; the agent answers through `queue_reply` + `send_due` (the reply composer's path) and the
imitation receives a text quoting her message (`context.message_id`); Meta's status webhooks
then mark the reply delivered and read. Also: the 24-hour window, pair-rate throttling, an
endpoint that was down (FI-26) and an app secret rotated on one side only (FI-27).
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time

import pytest

from inbox.config import from_mapping
from inbox.outbox import queue_reply, send_due
from inbox.runtime import Mainland
from sandbox.whatsapp import WhatsAppImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

PHOTO = b"\xff\xd8\xff\xe0" + b"scratched-screen" * 100
SHEENA = "16505551234"


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation


@pytest.fixture
def live(tmp_path, whatsapp):
    """Mainland with a WhatsApp channel, served over real HTTP so that the imitation can post to it."""
    from werkzeug.serving import make_server

    from inbox import create_app

    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "e2e-secret",
        "instance_id": "e2e",
        "base_url": "http://127.0.0.1:5000",
        "fetch_allow_hosts": [whatsapp.host],
        "channels": {"whatsapp": {
            "kind": "whatsapp", "phone_number_id": whatsapp.phone_number_id, "access_token": whatsapp.access_token,
            "app_secret": whatsapp.app_secret, "verify_token": whatsapp.verify_token, "api_url": whatsapp.url,
        }},
    }, base=tmp_path)
    mainland = Mainland(config, include_entry_points=False)
    app = create_app(mainland.config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    store = mainland.open_store(migrate=True)
    yield mainland, store, f"http://127.0.0.1:{server.server_port}/webhooks/whatsapp"
    store.close()
    server.shutdown()


def the_conversation(store) -> dict:
    [conversation] = store.recent_conversations()
    return conversation


def ours(store, conversation_id: int, start: str) -> dict:
    return next(m for m in store.conversation_messages(conversation_id) if (m["text"] or "").startswith(start))


def test_customer_writes_agent_answers_and_meta_reports_delivery(live, whatsapp):
    mainland, store, url = live
    status, body, challenge = whatsapp.subscribe(url)
    assert (status, body) == (200, challenge)  # the app's webhook setup succeeds

    whatsapp.customer_text(SHEENA, "My new phone has a scratched screen", name="Sheena Nelson")
    photo = whatsapp.customer_image(SHEENA, PHOTO, caption="here, top left")
    assert whatsapp.deliver(url) == [200, 200] and whatsapp.pending == []

    conversation = the_conversation(store)
    assert not conversation["public"]
    first, second = store.conversation_messages(conversation["id"])
    assert (first["author_handle"], first["author_name"]) == ("+16505551234", "Sheena Nelson")
    [attachment] = second["attachments"]
    assert attachment["stored"] and attachment["size"] == len(PHOTO) and second["text"] == "here, top left"

    queue_reply(mainland, store, conversation["id"], "So sorry! A replacement ships today.")
    assert send_due(mainland, store).sent == 1
    [sent] = whatsapp.sent
    assert sent["to"] == SHEENA and sent["text"] == "So sorry! A replacement ships today."
    assert sent["in_reply_to"] == photo["id"]  # quoted: the customer's latest message
    assert ours(store, conversation["id"], "So sorry")["delivery_status"] == "sent"

    whatsapp.status(sent["wamid"], "sent")
    whatsapp.status(sent["wamid"], "delivered")
    assert whatsapp.deliver(url) == [200, 200]
    assert ours(store, conversation["id"], "So sorry")["delivery_status"] == "delivered"
    whatsapp.status(sent["wamid"], "read")
    whatsapp.deliver(url)
    assert ours(store, conversation["id"], "So sorry")["delivery_status"] == "read"

    # Sheena answers our reply by quoting it: the message joins her open conversation.
    answer = whatsapp.customer_text(SHEENA, "Thank you!", context=sent["wamid"])
    assert whatsapp.deliver(url) == [200]
    assert store.recent_conversations()[0]["id"] == conversation["id"]
    latest = store.conversation_messages(conversation["id"])[-1]
    assert latest["external_id"] == answer["id"]
    assert len(store.conversation_messages(conversation["id"])) == 4


def test_after_24_hours_the_agent_is_told_to_use_a_template(live, whatsapp):
    mainland, store, url = live
    whatsapp.customer_text(SHEENA, "anyone there?", at=time.time() - 26 * 3600)
    whatsapp.deliver(url)
    conversation = the_conversation(store)
    outbox_id = queue_reply(mainland, store, conversation["id"], "Sorry for the wait!")
    assert send_due(mainland, store).failed == 1
    row = store.outbox_row(outbox_id)
    assert row["state"] == "failed" and "template" in row["last_error"] and "131047" in row["last_error"]
    assert whatsapp.access_token not in row["last_error"] and not whatsapp.sent
    # The template path works outside the window.
    connector = mainland.connector("whatsapp")
    connector.send_template("+" + SHEENA, "order_update", "en_US", ["1234"])
    connector.close()
    assert whatsapp.sent[0]["template"] == "order_update"


def test_pair_rate_limit_retries_later(live, whatsapp):
    mainland, store, url = live
    whatsapp.customer_text(SHEENA, "quick question")
    whatsapp.deliver(url)
    outbox_id = queue_reply(mainland, store, the_conversation(store)["id"], "Quick answer.")
    whatsapp.throttle(131056)
    assert send_due(mainland, store).retrying == 1
    assert store.outbox_row(outbox_id)["state"] == "retry_wait"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    assert send_due(mainland, store, now=later).sent == 1
    assert [s["text"] for s in whatsapp.sent] == ["Quick answer."]


def test_endpoint_down_then_up_loses_and_doubles_nothing(live, whatsapp):
    mainland, store, url = live
    with socket.socket() as probe:  # a port where nothing listens: Mainland is down
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}/webhooks/whatsapp"
    for n in range(3):
        whatsapp.customer_text(f"3161234567{n}", f"message {n}")
    assert whatsapp.deliver(down) == [0, 0, 0] and len(whatsapp.pending) == 3  # kept for Meta's retry
    assert whatsapp.deliver(url) == [200, 200, 200]
    for body in list(whatsapp.delivered):  # retries of deliveries whose 200 was lost
        assert whatsapp.redeliver(body, url) == 200
    assert store.counts()["messages"] == 3

    # Statuses out of order after the outage: "read" first, then the late "delivered" (IN-48).
    conversation = store.recent_conversations()[0]
    queue_reply(mainland, store, conversation["id"], "Got it.")
    send_due(mainland, store)
    [sent] = whatsapp.sent
    whatsapp.status(sent["wamid"], "read")
    whatsapp.status(sent["wamid"], "delivered")
    assert whatsapp.deliver(url) == [200, 200]
    assert ours(store, conversation["id"], "Got it.")["delivery_status"] == "read"


def test_app_secret_rotated_at_meta_only_is_refused_and_shown(live, whatsapp):
    mainland, store, url = live
    whatsapp.customer_text(SHEENA, "hello")
    assert whatsapp.deliver(url, secret="rotated-at-meta") == [403]
    assert store.counts()["messages"] == 0 and len(whatsapp.pending) == 1
    [refusal] = store.inbound_webhooks.refusals("whatsapp")
    assert "X-Hub-Signature-256" in refusal.reason
    assert "webhook refused" in store.channel_health()["whatsapp"]["last_error"]
    # Put right: Meta's retry of the waiting delivery gets through.
    assert whatsapp.deliver(url) == [200]
    assert store.counts()["messages"] == 1


def test_an_edit_and_a_revoke_change_the_stored_message_and_reopen_nothing(live, whatsapp):
    mainland, store, url = live
    whatsapp.subscribe(url)
    first = whatsapp.customer_text(SHEENA, "My order 1234 is late", name="Sheena Nelson")
    second = whatsapp.customer_text(SHEENA, "wrong chat sorry", name="Sheena Nelson")
    assert whatsapp.deliver(url) == [200, 200]
    conversation = the_conversation(store)
    store.set_conversation_status(conversation["id"], "resolved", None, "2026-01-01T00:00:00+00:00")

    whatsapp.customer_edit(first, "My order 1243 is late")
    whatsapp.customer_revoke(second)
    assert whatsapp.deliver(url) == [200, 200]
    messages = store.thread_messages(conversation["id"])
    assert len(messages) == 2, "neither change is a new message"
    edited, revoked = messages
    assert edited["text"] == "My order 1243 is late" and [e.previous_text for e in edited["edits"]] == [
        "My order 1234 is late"]
    assert revoked["deleted_at"] and revoked["text"] == "wrong chat sorry"
    assert store.conversation(conversation["id"])["status"] == "resolved", "a change reopens nothing"
