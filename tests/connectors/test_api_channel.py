"""The generic API channel (`connectors/api.py`) against its outside system on loopback (`sandbox/api_receiver.py`).

Inbound through the real `POST /webhooks/<channel>` endpoint (Flask test client, real SQLite file):
exactly once per idempotency key, also for two posts at the same moment; 401 for a missing or wrong
signature and for one more than 5 minutes off our clock; 400 naming the field. Outbound through the
real outbox (`queue_reply` + `send_due`): delivered signed, retried after a 500 or a 429 (its
Retry-After honoured), failed with the receiver's reason after a 4xx, "possibly sent" after a
timeout or a reset connection and never resent, and one reply at the receiver however often it was
tried. Plus the connection test. The shared contract kit runs in tests/connectors/test_api.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading

import pytest

from connectors.base import WebhookRequest
from connectors.testing import free_loopback_port
from inbox import clock
from inbox.config import from_mapping
from inbox.outbox import queue_reply, send_due
from inbox.runtime import Mainland
from inbox.store import Store
from sandbox.api_receiver import ApiReceiver
from tests.test_web_admin import admin, admin_client  # noqa: F401
from tests.test_web_admin import post as admin_post
from tests.test_web_auth import web_store  # noqa: F401

pytestmark = pytest.mark.server  # starts the loopback receiver

SECRET = "shop-shared-secret-0123456789"


@pytest.fixture
def receiver():
    with ApiReceiver(SECRET, now=lambda: clock.now().timestamp()) as imitation:
        yield imitation


# Inbound, through the webhook endpoint ------------------------------------------------------------

@pytest.fixture
def app_config(app_config, receiver):
    app_config["channels"] = {"shop": {"kind": "api", "callback_url": receiver.callback_url, "secret": SECRET,
                                       "system_name": "Acme Shop"}}
    app_config["fetch_allow_hosts"] = [receiver.host]
    return app_config


@pytest.fixture
def db(app, app_config):
    store = Store(app_config["database"])
    yield store
    store.close()


def post(client, receiver, body: dict | bytes, *, at: float | None = None, secret: str | None = None,
         headers: dict | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = receiver.signed(data, at=at, secret=secret) if headers is None else headers
    return client.post("/webhooks/shop", data=data, headers=signed)


def messages(db) -> list[dict]:
    return [m for c in db.recent_conversations() for m in db.conversation_messages(c["id"])]


def test_a_signed_message_is_stored_as_the_customer_of_that_system(frozen_clock, client, db, receiver):
    answer = post(client, receiver, receiver.message("cust-42", "Where is my order #1234?", name="Jane Doe",
                                                     sent_at="2026-11-23T08:59:30Z"))
    assert answer.status_code == 200 and answer.get_json()["stored"] == 1
    [message] = messages(db)
    assert message["text"] == "Where is my order #1234?"
    assert message["author_name"] == "Jane Doe" and message["author_handle"] == "shop:cust-42"
    [conversation] = db.recent_conversations()
    assert conversation["channel"] == "shop"


def test_one_outside_user_is_one_customer_in_one_conversation(frozen_clock, client, db, receiver):
    for text in ("First question", "Second question"):
        assert post(client, receiver, receiver.message("cust-42", text)).status_code == 200
    assert post(client, receiver, receiver.message("cust-7", "Someone else", name="Bob")).status_code == 200
    conversations = db.recent_conversations()
    assert len(conversations) == 2
    by_author = {c["id"]: {m["author_handle"] for m in db.conversation_messages(c["id"])} for c in conversations}
    assert sorted(map(sorted, by_author.values())) == [["shop:cust-42"], ["shop:cust-7"]]
    assert sorted(len(db.conversation_messages(c["id"])) for c in conversations) == [1, 2]


def test_the_same_idempotency_key_twice_is_stored_once(frozen_clock, client, db, receiver):
    body = receiver.message("cust-42", "Where is my order?", message_id="msg-0001")
    first = post(client, receiver, body)
    frozen_clock.advance(seconds=30)
    again = post(client, receiver, body)
    # A resend under the same key with other content is still the same message: the key decides.
    changed = post(client, receiver, {**body, "text": "Where is my order??"})
    assert first.status_code == 200 and first.get_json()["stored"] == 1
    assert again.status_code == 200 and again.get_json().get("duplicate") is True
    assert changed.status_code == 200 and changed.get_json().get("duplicate") is True
    assert [m["text"] for m in messages(db)] == ["Where is my order?"]


def test_two_posts_of_one_key_at_the_same_moment_store_one_message(frozen_clock, app, db, receiver):
    data = json.dumps(receiver.message("cust-42", "Hello?", message_id="msg-race")).encode()
    headers = receiver.signed(data)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def deliver():
        client = app.test_client()
        start.wait()
        statuses.append(client.post("/webhooks/shop", data=data, headers=headers).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    assert len(messages(db)) == 1


@pytest.mark.parametrize("case", ["missing", "wrong secret", "tampered", "garbled header"])
def test_a_request_without_a_good_signature_is_refused_401(frozen_clock, client, db, receiver, case):
    data = json.dumps(receiver.message()).encode()
    headers = {"missing": {"Content-Type": "application/json"},
               "wrong secret": receiver.signed(data, secret="another-secret-0123456789"),
               "tampered": receiver.signed(data.replace(b"order", b"ORDER")),
               "garbled header": {"Mainland-Signature": "v1=abc"}}[case]
    answer = post(client, receiver, data, headers=headers)
    assert answer.status_code == 401
    assert answer.get_json()["reason"]
    assert messages(db) == []
    assert db.channel_health()["shop"]["last_error"].startswith("webhook refused")


def test_a_signature_more_than_five_minutes_off_is_refused(frozen_clock, client, db, receiver):
    now = clock.now().timestamp()
    stale = post(client, receiver, receiver.message(text="old"), at=now - 301)
    future = post(client, receiver, receiver.message(text="future"), at=now + 301)
    fresh = post(client, receiver, receiver.message(text="just in time"), at=now - 299)
    assert (stale.status_code, future.status_code, fresh.status_code) == (401, 401, 200)
    assert "300 s" in stale.get_json()["reason"]
    assert [m["text"] for m in messages(db)] == ["just in time"]


def test_a_captured_request_replayed_later_is_refused(frozen_clock, client, db, receiver):
    data = json.dumps(receiver.message(text="pay me")).encode()
    headers = receiver.signed(data)
    assert post(client, receiver, data, headers=headers).status_code == 200
    frozen_clock.advance(minutes=6)
    # The event ids are forgotten after days, the signature after minutes: the replay is refused first.
    assert post(client, receiver, data, headers=headers).status_code == 401
    assert len(messages(db)) == 1


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    (json.dumps({"customer": {"id": "c1"}, "text": "hi"}).encode(), "id"),
    (json.dumps({"id": "m1", "text": "hi"}).encode(), "customer"),
    (json.dumps({"id": "m1", "customer": {"name": "Jane"}, "text": "hi"}).encode(), "customer.id"),
    (json.dumps({"id": "m1", "customer": {"id": "c1"}}).encode(), "text"),
    (json.dumps({"id": "m1", "customer": {"id": "c1"}, "text": 42}).encode(), "text"),
    (json.dumps({"id": "m1", "customer": {"id": "c1"}, "text": "hi", "sent_at": "yesterday"}).encode(), "sent_at"),
    (json.dumps({"id": "m1", "customer": {"id": "c1"}, "text": "hi",
                 "attachments": [{"filename": "a.txt", "data": "%%%"}]}).encode(), "attachments[0].data"),
])
def test_a_malformed_body_is_answered_400_naming_the_field(frozen_clock, client, db, receiver, body, field):
    answer = post(client, receiver, body)
    assert answer.status_code == 400
    assert answer.get_json()["field"] == field
    assert messages(db) == [] and db.counts()["quarantined"] == 0


def test_a_corrected_resend_under_the_refused_key_is_taken(frozen_clock, client, db, receiver):
    broken = {"id": "msg-9", "customer": {"id": "c1"}}
    assert post(client, receiver, broken).status_code == 400
    answer = post(client, receiver, {**broken, "text": "now with text"})
    assert answer.status_code == 200 and answer.get_json()["stored"] == 1


def test_files_sent_in_base64_are_stored_with_the_message(frozen_clock, client, db, receiver):
    photo = b"\x89PNG\r\n\x1a\n" + b"broken-vase" * 50
    body = receiver.message(text="See the photo", attachments=[
        {"filename": "vase.png", "content_type": "image/png", "data": base64.b64encode(photo).decode()}])
    assert post(client, receiver, body).status_code == 200
    [message] = messages(db)
    [stored] = message["attachments"]
    assert stored["filename"] == "vase.png" and stored["size"] == len(photo)


def test_a_message_posted_in_is_answered_at_the_callback(frozen_clock, app, client, db, receiver):
    post(client, receiver, receiver.message("cust-42", "Is the shop open on Sunday?", message_id="msg-77"))
    [conversation] = db.recent_conversations()
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, conversation["id"], "Yes, from 10:00 to 16:00.")
    assert send_due(mainland, db).sent == 1
    [reply] = receiver.replies
    assert (reply["customer"], reply["in_reply_to"], reply["text"]) == (
        {"id": "cust-42"}, "msg-77", "Yes, from 10:00 to 16:00.")


# Outbound, through the outbox ---------------------------------------------------------------------

def make_mainland(tmp_path, receiver: ApiReceiver, *, allow: tuple[str, ...] | None = None, **channel) -> Mainland:
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "api-secret",
        "instance_id": "api-test",
        "base_url": "http://127.0.0.1:5000",
        "fetch_allow_hosts": list(allow if allow is not None else [receiver.host]),
        "channels": {"shop": {"kind": "api", "callback_url": receiver.callback_url, "secret": SECRET,
                              "system_name": "Acme Shop", "timeout": 1, **channel}},
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


@pytest.fixture
def mainland(tmp_path, receiver):
    return make_mainland(tmp_path, receiver)


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def customer_writes(mainland, store, receiver, text="Where is my order #1234?") -> int:
    """The outside system posts a message (through the connector, as the endpoint does); the conversation id."""
    connector = mainland.connector("shop")
    body = json.dumps(receiver.message("cust-42", text, message_id="msg-in-1")).encode()
    request = WebhookRequest(body=body, headers=receiver.signed(body))
    connector.verify_webhook(request)
    with store.write():
        mainland.ingestor(store).ingest("shop", connector.parse_webhook(request), save_cursor=False)
    [conversation] = store.recent_conversations()
    return conversation["id"]


def test_a_reply_reaches_the_callback_signed_with_the_customer_and_the_message_it_answers(
        frozen_clock, mainland, store, receiver):
    conversation = customer_writes(mainland, store, receiver)
    outbox_id = queue_reply(mainland, store, conversation, "A replacement ships today.")
    report = send_due(mainland, store)
    assert report.sent == 1
    assert receiver.refused == []  # the receiver checked our signature and took it
    [reply] = receiver.replies
    assert reply["type"] == "reply" and reply["id"] == outbox_id
    assert reply["customer"] == {"id": "cust-42"} and reply["conversation"] == conversation
    assert reply["text"] == "A replacement ships today." and reply["in_reply_to"] == "msg-in-1"
    assert reply["sent_at"] == "2026-11-23T09:00:00Z"
    [request] = receiver.requests_to("/callback")
    assert request.headers["Mainland-Reply-Id"] == outbox_id
    row = store.outbox_row(outbox_id)
    assert row["state"] == "sent" and row["provider_id"] == "rcv_1"


def test_a_500_is_retried_and_the_receiver_keeps_one_reply(frozen_clock, mainland, store, receiver):
    conversation = customer_writes(mainland, store, receiver)
    receiver.fail_next(500, {"error": "database down"})
    outbox_id = queue_reply(mainland, store, conversation, "On its way.")
    assert send_due(mainland, store).retrying == 1
    row = store.outbox_row(outbox_id)
    assert row["state"] == "retry_wait" and "database down" in row["last_error"]
    frozen_clock.advance(hours=1)
    assert send_due(mainland, store).sent == 1
    deliveries = receiver.requests_to("/callback")
    assert len(deliveries) == 2
    assert {json.loads(d.body)["id"] for d in deliveries} == {outbox_id}, "a retry carries the same reply id"
    assert len(receiver.replies) == 1


def test_a_429_waits_as_long_as_retry_after_asks(frozen_clock, mainland, store, receiver):
    conversation = customer_writes(mainland, store, receiver)
    receiver.fail_next(429, {"error": "slow down"}, {"Retry-After": "120"})
    outbox_id = queue_reply(mainland, store, conversation, "On its way.")
    assert send_due(mainland, store).retrying == 1
    due = dt.datetime.fromisoformat(store.outbox_row(outbox_id)["next_at"].replace("Z", "+00:00"))
    assert due - clock.now() == dt.timedelta(seconds=120)
    frozen_clock.advance(seconds=119)
    assert send_due(mainland, store).sent == 0, "sent again before Retry-After ran out"
    frozen_clock.advance(seconds=1)
    assert send_due(mainland, store).sent == 1


def test_a_redirect_is_not_followed_and_fails_the_reply(frozen_clock, mainland, store, receiver):
    conversation = customer_writes(mainland, store, receiver)
    receiver.fail_next(301, "", {"Location": "https://elsewhere.example/callback"})
    outbox_id = queue_reply(mainland, store, conversation, "On its way.")
    assert send_due(mainland, store).failed == 1
    assert "set the callback URL to its new address" in store.outbox_row(outbox_id)["last_error"]
    assert len(receiver.requests_to("/callback")) == 1


def test_a_refusal_fails_the_reply_with_the_receivers_reason(frozen_clock, mainland, store, receiver):
    conversation = customer_writes(mainland, store, receiver)
    receiver.fail_next(422, {"error": "customer cust-42 closed their account"})
    outbox_id = queue_reply(mainland, store, conversation, "On its way.")
    assert send_due(mainland, store).failed == 1
    row = store.outbox_row(outbox_id)
    assert row["state"] == "failed" and not row["uncertain"]
    assert "customer cust-42 closed their account" in row["last_error"] and "Acme Shop" in row["last_error"]
    frozen_clock.advance(hours=1)
    send_due(mainland, store)
    assert len(receiver.requests_to("/callback")) == 1, "a refused reply was sent again"


@pytest.mark.parametrize("fault", ["timeout", "reset"])
def test_no_answer_after_sending_is_possibly_sent_and_never_resent(frozen_clock, mainland, store, receiver, fault):
    conversation = customer_writes(mainland, store, receiver)
    receiver.hang_next() if fault == "timeout" else receiver.drop_next()
    outbox_id = queue_reply(mainland, store, conversation, "On its way.")
    try:
        report = send_due(mainland, store)
    finally:
        receiver.release()
    assert report.uncertain == 1
    row = store.outbox_row(outbox_id)
    assert row["uncertain"] == 1 and "may have arrived" in row["last_error"]
    frozen_clock.advance(hours=2)
    assert send_due(mainland, store).sent == 0
    assert len(receiver.requests_to("/callback")) == 1


def test_a_receiver_that_cannot_be_reached_is_retried_not_possibly_sent(frozen_clock, tmp_path, receiver):
    closed = f"http://127.0.0.1:{free_loopback_port()}/callback"
    mainland = make_mainland(tmp_path, receiver, callback_url=closed, allow=("127.0.0.1",))
    store = mainland.open_store(migrate=True)
    try:
        conversation = customer_writes(mainland, store, receiver)
        outbox_id = queue_reply(mainland, store, conversation, "On its way.")
        assert send_due(mainland, store).retrying == 1
        row = store.outbox_row(outbox_id)
        assert row["uncertain"] == 0 and "cannot connect" in row["last_error"]
    finally:
        store.close()


@pytest.mark.parametrize(("url", "reason"), [
    (None, "must start with https://"),
    ("https://127.0.0.1/callback", "non-public address"),
])
def test_a_callback_on_a_private_address_is_refused_without_connecting(frozen_clock, tmp_path, receiver, url,
                                                                        reason):
    mainland = make_mainland(tmp_path, receiver, allow=(), callback_url=url or receiver.callback_url)
    store = mainland.open_store(migrate=True)
    try:
        conversation = customer_writes(mainland, store, receiver)
        outbox_id = queue_reply(mainland, store, conversation, "On its way.")
        assert send_due(mainland, store).failed == 1
        assert reason in store.outbox_row(outbox_id)["last_error"]
        assert receiver.requests_to("/callback") == []
    finally:
        store.close()


def test_a_reply_to_a_customer_of_another_system_is_refused(frozen_clock, mainland, receiver):
    from inbox.models import Author, OutboundReply

    connector = mainland.connector("shop")
    reply = OutboundReply(idempotency_key="r1", channel="shop", conversation_id=1, text="hi",
                          to=Author(handle="app:cust-42", identity_kind="api"), starts_conversation=True)
    with pytest.raises(Exception, match="not known to Acme Shop"):
        connector.send(reply)
    assert receiver.requests_to("/callback") == []


# The connection test ------------------------------------------------------------------------------

def test_probe_sends_a_signed_ping_the_receiver_accepts(frozen_clock, mainland, receiver):
    result = mainland.connector("shop").probe()
    assert result.ok and result.status == 200 and "Acme Shop accepted a signed ping" in result.summary
    [ping] = receiver.pings
    assert ping["type"] == "ping"
    assert receiver.replies == [], "a ping is never a reply"


def test_probe_says_the_secrets_differ_when_the_receiver_refuses_the_signature(frozen_clock, tmp_path, receiver):
    mainland = make_mainland(tmp_path, receiver, secret="a-different-secret-0123456789")
    result = mainland.connector("shop").probe()
    assert not result.ok and result.status == 401
    assert "same shared secret" in result.summary
    assert "a-different-secret-0123456789" not in result.summary + result.detail


def test_an_admin_adds_the_channel_in_the_browser_and_its_test_pings_the_receiver(
        app, admin_client, web_store, receiver):  # noqa: F811
    added = admin_post(admin_client, "/admin/channels/new", {
        "kind": "api", "name": "app-chat", "setting-callback_url": receiver.callback_url,
        "setting-secret": SECRET, "setting-system_name": "Acme App", "setting-timeout": "5"},
        token_from="/admin/channels/new?kind=api")
    assert added.status_code == 302, added.get_data(as_text=True)[:500]
    raw = web_store.conn.execute("SELECT settings FROM channel_settings WHERE name = 'app-chat'").fetchone()[0]
    assert SECRET not in raw, "the shared secret is stored sealed"
    page = admin_client.get("/admin/channels/app-chat").get_data(as_text=True)
    assert "/webhooks/app-chat" in page and SECRET not in page
    tested = admin_post(admin_client, "/admin/channels/app-chat/test", token_from="/admin/channels/app-chat")
    result = tested.get_data(as_text=True)
    assert "Connection works" in result and "Acme App accepted a signed ping (200)" in result
    assert len(receiver.pings) == 1 and receiver.replies == []
