"""End to end on a Facebook Page: a customer writes a Messenger message and comments on a post;
Meta's signed webhooks reach `/webhooks/<channel>` (the Flask test client, and once over real
HTTP) and the fallback poll finds nothing new; agents answer through the outbox; the Graph API
imitation receives a private Messenger reply and a public reply under the comment; delivery and
read receipts move our reply forward. Also: replays, tampered bodies, the handshake, and the
reply windows through the outbox."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from werkzeug.serving import make_server

from connectors.facebook import FacebookConnector
from inbox.outbox import queue_reply, send_due
from inbox.poller import poll_channel
from inbox.store import Store
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

CHANNEL = "fb-page"
VERIFY_TOKEN = "meta-verify-token-e2e"


@pytest.fixture
def meta():
    with MetaImitation() as imitation:
        yield imitation


@pytest.fixture
def app_config(app_config, meta, monkeypatch):
    monkeypatch.setenv("FB_PAGE_TOKEN", meta.access_token)
    monkeypatch.setenv("FB_APP_SECRET", meta.app_secret)
    monkeypatch.setenv("FB_VERIFY_TOKEN", VERIFY_TOKEN)
    app_config["fetch_allow_hosts"] = [meta.host]
    app_config["channels"] = {CHANNEL: {
        "kind": "facebook", "page_id": meta.page_id, "api_url": meta.url,
        "access_token": {"$env": "FB_PAGE_TOKEN"}, "app_secret": {"$env": "FB_APP_SECRET"},
        "verify_token": {"$env": "FB_VERIFY_TOKEN"},
    }}
    return app_config


@pytest.fixture
def mainland(app):
    return app.extensions["mainland"]


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def deliver(client, meta: MetaImitation, **kwargs) -> list[dict]:
    """Every queued Meta event, posted to the webhook endpoint as Meta would; the JSON answers."""
    answers = []
    for payload in meta.webhook_payloads():
        body, headers = meta.signed(payload, **kwargs)
        response = client.post(f"/webhooks/{CHANNEL}", data=body, headers=headers)
        answers.append((response.status_code, response.get_json()))
    return answers


def test_dm_and_comment_are_answered_privately_and_publicly(client, mainland, store, meta):
    mid = meta.customer_dm("Jane Doe", "Is my order #1234 shipped?", photo=True)
    post = meta.page_post("Spring sale!")
    comment = meta.customer_comment("Bob Builder", "Do you ship to Belgium?", post=post)

    answers = deliver(client, meta)
    assert [a[0] for a in answers] == [200, 200] and all(a[1]["stored"] == 1 for a in answers)
    # The fallback poll sees the same two items and stores nothing twice.
    outcome = poll_channel(mainland, store, CHANNEL)
    assert outcome.ok, outcome.error
    assert outcome.report.stored == 0 and store.counts()["messages"] == 2

    conversations = {c["first_text"]: c for c in store.recent_conversations()}
    private = conversations["Is my order #1234 shipped?"]
    public = conversations["Do you ship to Belgium?"]
    assert not private["public"] and public["public"]
    assert private["customer_name"] == "Jane Doe" and public["customer_name"] == "Bob Builder"
    [inbound] = store.conversation_messages(private["id"])
    assert inbound["external_id"] == mid

    queue_reply(mainland, store, private["id"], "Yes, it shipped yesterday.")
    queue_reply(mainland, store, public["id"], "We do! Check your Messenger.")
    report = send_due(mainland, store)
    assert report.sent == 2, report

    by_kind = {s["kind"]: s for s in meta.sent}
    dm = by_kind["message"]
    assert (dm["recipient"], dm["in_reply_to"], dm["public"], dm["messaging_type"]) == (
        meta.user("Jane Doe"), mid, False, "RESPONSE")
    assert dm["text"] == "Yes, it shipped yesterday."
    under = by_kind["comment_reply"]
    assert (under["in_reply_to"], under["public"], under["text"]) == (comment, True, "We do! Check your Messenger.")
    assert meta.comments[under["id"]]["parent"] == comment

    # Our echo and our own comment come back by webhook and by poll: never stored as the customer's.
    assert all(a[1]["stored"] == 0 for a in deliver(client, meta))
    assert poll_channel(mainland, store, CHANNEL, ignore_pause=True).report.stored == 0

    # Receipts move our Messenger reply forward: delivered, then read.
    out = store.conversation_messages(private["id"])[-1]
    assert out["delivery_status"] == "sent"
    meta.customer_receives("Jane Doe")
    deliver(client, meta)
    assert store.conversation_messages(private["id"])[-1]["delivery_status"] == "delivered"
    meta.customer_reads("Jane Doe")
    deliver(client, meta)
    assert store.conversation_messages(private["id"])[-1]["delivery_status"] == "read"


def test_replayed_and_tampered_webhooks(client, store, meta):
    meta.customer_dm("Jane Doe", "Hello?")
    [payload] = meta.webhook_payloads()
    body, headers = meta.signed(payload)
    first = client.post(f"/webhooks/{CHANNEL}", data=body, headers=headers)
    assert first.status_code == 200 and first.get_json()["stored"] == 1
    again = client.post(f"/webhooks/{CHANNEL}", data=body, headers=headers)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    tampered = body.replace(b"Hello?", b"Hello!")
    assert client.post(f"/webhooks/{CHANNEL}", data=tampered, headers=headers).status_code == 403
    wrong = meta.signed(payload, wrong_signature=True)
    assert client.post(f"/webhooks/{CHANNEL}", data=wrong[0], headers=wrong[1]).status_code == 403
    unsigned = client.post(f"/webhooks/{CHANNEL}", data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 403
    assert store.counts()["messages"] == 1
    [refusals] = store.inbound_webhooks.refusals(CHANNEL)
    assert refusals.count == 3, "one row per address and minute counts the refusals"


def test_a_flood_of_unsigned_deliveries_is_capped_and_costs_one_row(client, store, meta):
    meta.customer_dm("Jane Doe", "Hello?")
    [payload] = meta.webhook_payloads()
    body, headers = meta.signed(payload)
    flood = [client.post(f"/webhooks/{CHANNEL}", data=body, headers={"Content-Type": "application/json"},
                         environ_base={"REMOTE_ADDR": "203.0.113.66"}).status_code for _ in range(40)]
    assert flood == [403] * 30 + [429] * 10
    [row] = store.inbound_webhooks.refusals(CHANNEL)
    assert row.count == 30 and row.remote_addr == "203.0.113.66"
    # Meta's own deliveries from its address are not held up by someone else's flood.
    assert client.post(f"/webhooks/{CHANNEL}", data=body, headers=headers).status_code == 200
    assert store.counts()["messages"] == 1


def test_subscription_handshake(client):
    args = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    ok = client.get(f"/webhooks/{CHANNEL}", query_string=args)
    assert ok.status_code == 200 and ok.mimetype == "text/plain" and ok.get_data(as_text=True) == "1158201444"
    assert client.get(f"/webhooks/{CHANNEL}", query_string={**args, "hub.verify_token": "x"}).status_code == 403


def test_missed_webhooks_are_picked_up_by_the_poll(mainland, store, meta):
    mid = meta.customer_dm("Jane Doe", "Anyone there?")
    comment = meta.customer_comment("Bob", "Hello?")
    meta.webhook_payloads()  # lost: our server was down for longer than Meta retried
    outcome = poll_channel(mainland, store, CHANNEL)
    assert outcome.ok and outcome.report.stored == 2
    stored = {m["external_id"] for c in store.recent_conversations() for m in store.conversation_messages(c["id"])}
    assert stored == {mid, comment}


def test_reply_windows_through_the_outbox(client, mainland, store, meta, monkeypatch):
    now = dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC)
    meta.clock = lambda: now
    monkeypatch.setattr(FacebookConnector, "clock", staticmethod(lambda: now))
    meta.customer_dm("Three Days", "Still waiting", at=now - dt.timedelta(days=3))
    meta.customer_dm("Eight Days", "Hello?", at=now - dt.timedelta(days=8))
    deliver(client, meta)
    conversations = {c["first_text"]: c for c in store.recent_conversations()}
    queue_reply(mainland, store, conversations["Still waiting"]["id"], "Sorry for the wait!", now=now)
    queue_reply(mainland, store, conversations["Hello?"]["id"], "Sorry, very late.", now=now)
    report = send_due(mainland, store, now=now)
    assert (report.sent, report.failed) == (1, 1)
    [sent] = meta.sent
    assert (sent["messaging_type"], sent["tag"], sent["text"]) == ("MESSAGE_TAG", "HUMAN_AGENT", "Sorry for the wait!")
    [failed] = [m for m in store.conversation_messages(conversations["Hello?"]["id"]) if m["direction"] == "out"]
    assert failed["delivery_status"] == "failed" and "window has closed" in failed["delivery_error"]


def test_webhooks_over_real_http(app, app_config, meta):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks/{CHANNEL}"
    try:
        handshake = meta.verify_subscription(url, VERIFY_TOKEN)
        assert handshake.status_code == 200 and handshake.text == "1158201444"
        meta.customer_dm("Jane Doe", "Over the wire")
        [payload] = meta.webhook_payloads()
        assert meta.deliver_webhook(url, payload).json()["stored"] == 1
        assert meta.replay().json()["duplicate"] is True
        assert meta.deliver_webhook(url, payload, wrong_signature=True).status_code == 403
    finally:
        server.shutdown()
        thread.join(5)
    store = Store(app_config["database"])
    try:
        assert store.counts()["messages"] == 1
    finally:
        store.close()


def test_agent_answers_a_public_comment_privately_from_the_composer(client, mainland, store, meta):
    from tests.test_web_auth import csrf_token, login, make_agent

    post = meta.page_post("Spring sale!")
    comment = meta.customer_comment("Bob Builder", "What is the price with my member number 55-1234?", post=post)
    deliver(client, meta)
    [conversation] = store.recent_conversations()
    assert conversation["public"]

    make_agent(store)
    login(client)
    page = client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    assert 'name="private"' in page, "a public comment on Facebook offers a private answer"
    seen = max(m["id"] for m in store.conversation_messages(conversation["id"]))
    answer = client.post(f"/conversations/{conversation['id']}/reply", data={
        "text": "I sent you the member price in Messenger.", "private": "1", "seen_up_to": seen,
        "csrf_token": csrf_token(client, f"/conversations/{conversation['id']}")})
    assert answer.status_code in (200, 302, 303)
    assert send_due(mainland, store).sent == 1

    [sent] = meta.sent
    assert sent["kind"] == "private_reply", "the answer went privately, not under the public comment"
    assert sent["recipient"] == meta.comments[comment]["from"]
    assert not any(s["kind"] == "comment_reply" for s in meta.sent)


def test_messenger_conversations_offer_no_private_answer(client, store, meta):
    from tests.test_web_auth import login, make_agent

    meta.customer_dm("Jane Doe", "Hello")
    deliver(client, meta)
    [conversation] = store.recent_conversations()
    make_agent(store)
    login(client)
    assert 'name="private"' not in client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
