"""End to end: a customer writes on Instagram and comments on the Facebook Page; an agent merges the
Instagram chat into the Facebook comment thread and replies. The Graph API imitation must receive
the reply as an Instagram DM to the Instagram user (it once went to Facebook with the Instagram id,
and Meta answered 404); picking the comment answers under the comment on Facebook instead."""

from __future__ import annotations

import pytest

from inbox import clock, sendability
from inbox.outbox import queue_reply, send_due
from inbox.store.base import iso
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

FB, IG = "fb-page", "ig-shop"


@pytest.fixture
def meta():
    with MetaImitation() as imitation:
        yield imitation


@pytest.fixture
def app_config(app_config, meta, monkeypatch):
    monkeypatch.setenv("META_TOKEN", meta.access_token)
    monkeypatch.setenv("META_SECRET", meta.app_secret)
    app_config["fetch_allow_hosts"] = [meta.host]
    common = {"page_id": meta.page_id, "api_url": meta.url, "access_token": {"$env": "META_TOKEN"},
              "app_secret": {"$env": "META_SECRET"}, "verify_token": "verify"}
    app_config["channels"] = {FB: {"kind": "facebook", **common},
                              IG: {"kind": "instagram", "account_id": meta.ig_id, **common}}
    return app_config


@pytest.fixture
def store(app):
    store = app.extensions["mainland"].open_store(migrate=True)
    yield store
    store.close()


def deliver(client, meta: MetaImitation) -> None:
    for payload in meta.webhook_payloads():
        body, headers = meta.signed(payload)
        channel = IG if payload["object"] == "instagram" else FB
        response = client.post(f"/webhooks/{channel}", data=body, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)


def merged(client, app, store, meta):
    post = meta.page_post("Spring sale!")
    comment = meta.customer_comment("Bea Example", "Where is my order?", post=post)
    deliver(client, meta)
    dm = meta.customer_dm("Bea Example", "Order 1234, see my comment", platform="instagram")
    deliver(client, meta)
    by_text = {c["first_text"]: c for c in store.recent_conversations()}
    thread, chat = by_text["Where is my order?"], by_text["Order 1234, see my comment"]
    now = iso(clock.now())
    if thread["customer_id"] != chat["customer_id"]:
        store.merge_customers(thread["customer_id"], chat["customer_id"], agent_id=None, now=now, force=True)
    store.merge_conversations(chat["id"], thread["id"], agent_id=None, now=now)
    return thread["id"], comment, dm


def test_a_reply_after_merging_goes_to_instagram_as_a_dm(client, app, store, meta):
    mainland = app.extensions["mainland"]
    cid, _comment, dm = merged(client, app, store, meta)
    queue_reply(mainland, store, cid, "Found it: it ships today.")
    report = send_due(mainland, store)
    assert (report.sent, report.failed) == (1, 0), report
    [sent] = meta.sent
    assert (sent["kind"], sent["platform"], sent["recipient"], sent["public"]) == (
        "message", "instagram", meta.user("Bea Example", "instagram"), False)
    assert sent["in_reply_to"] == dm


def test_picking_the_comment_answers_under_it_on_facebook(client, app, store, meta):
    mainland = app.extensions["mainland"]
    cid, comment, _dm = merged(client, app, store, meta)
    conversation = store.conversation(cid)
    on_facebook = next(t for t in sendability.reachable(mainland, store, conversation) if t.channel == FB)
    decision = sendability.decide(mainland, store, conversation, kind=sendability.AGENT_REPLY,
                                  answering=on_facebook.message_id, text="Answered in your DM")
    assert decision.allowed, decision.reason
    queue_reply(mainland, store, cid, "Answered in your DM", target=decision.target)
    assert send_due(mainland, store).sent == 1
    [sent] = meta.sent
    assert (sent["kind"], sent["platform"], sent["in_reply_to"], sent["public"]) == (
        "comment_reply", "facebook", comment, True)
