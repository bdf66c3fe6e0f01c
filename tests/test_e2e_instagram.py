"""End to end on Instagram: a customer sends a DM and comments on a post; Meta's signed webhooks
(`object: "instagram"`) reach `/webhooks/<channel>` and the fallback poll stores nothing twice;
agents answer through the outbox; the imitation receives a private DM reply and a public reply
under the comment; the customer seeing our DM marks it read."""

from __future__ import annotations

import pytest

from inbox.outbox import queue_reply, send_due
from inbox.poller import poll_channel
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

CHANNEL = "ig-shop"


@pytest.fixture
def meta():
    with MetaImitation() as imitation:
        yield imitation


@pytest.fixture
def app_config(app_config, meta, monkeypatch):
    monkeypatch.setenv("IG_PAGE_TOKEN", meta.access_token)
    monkeypatch.setenv("IG_APP_SECRET", meta.app_secret)
    app_config["fetch_allow_hosts"] = [meta.host]
    app_config["channels"] = {CHANNEL: {
        "kind": "instagram", "account_id": meta.ig_id, "page_id": meta.page_id, "api_url": meta.url,
        "access_token": {"$env": "IG_PAGE_TOKEN"}, "app_secret": {"$env": "IG_APP_SECRET"},
        "verify_token": "ig-verify-token",
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


def deliver(client, meta: MetaImitation) -> list[dict]:
    answers = []
    for payload in meta.webhook_payloads():
        body, headers = meta.signed(payload)
        response = client.post(f"/webhooks/{CHANNEL}", data=body, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        answers.append(response.get_json())
    return answers


def test_dm_and_comment_are_answered_privately_and_publicly(client, mainland, store, meta):
    mid = meta.customer_dm("Ann Example", "Do you have the bag in blue?", platform="instagram", photo=True)
    media = meta.ig_media("The bag")
    comment = meta.customer_comment("Bea Example", "Price please?", platform="instagram", post=media)

    assert [a["stored"] for a in deliver(client, meta)] == [1, 1]
    outcome = poll_channel(mainland, store, CHANNEL)
    assert outcome.ok, outcome.error
    assert outcome.report.stored == 0 and store.counts()["messages"] == 2

    conversations = {c["first_text"]: c for c in store.recent_conversations()}
    private = conversations["Do you have the bag in blue?"]
    public = conversations["Price please?"]
    assert not private["public"] and public["public"]
    [inbound] = store.conversation_messages(private["id"])
    assert inbound["external_id"] == mid and inbound["attachments"], "the photo came along"

    queue_reply(mainland, store, private["id"], "Yes, in blue too!")
    queue_reply(mainland, store, public["id"], "It's 49 euros. We sent you a DM.")
    report = send_due(mainland, store)
    assert report.sent == 2, report

    by_kind = {s["kind"]: s for s in meta.sent}
    dm = by_kind["message"]
    assert (dm["platform"], dm["recipient"], dm["in_reply_to"], dm["public"], dm["messaging_type"]) == (
        "instagram", meta.user("Ann Example", "instagram"), mid, False, "RESPONSE")
    under = by_kind["comment_reply"]
    assert (under["platform"], under["in_reply_to"], under["public"], under["text"]) == (
        "instagram", comment, True, "It's 49 euros. We sent you a DM.")

    # The echo of our DM and our own reply comment are never taken as the customer's.
    assert all(a["stored"] == 0 for a in deliver(client, meta))
    assert poll_channel(mainland, store, CHANNEL, ignore_pause=True).report.stored == 0

    meta.customer_reads("Ann Example", platform="instagram")
    deliver(client, meta)
    [out] = [m for m in store.conversation_messages(private["id"]) if m["direction"] == "out"]
    assert out["delivery_status"] == "read"


def test_tampered_instagram_webhook_is_refused(client, store, meta):
    meta.customer_comment("Bea", "Price please?", platform="instagram")
    [payload] = meta.webhook_payloads()
    body, headers = meta.signed(payload)
    assert client.post(f"/webhooks/{CHANNEL}", data=body.replace(b"Price", b"Prize"), headers=headers).status_code == 403
    assert client.post(f"/webhooks/{CHANNEL}", data=body, headers=headers).get_json()["stored"] == 1
    assert client.post(f"/webhooks/{CHANNEL}", data=body, headers=headers).get_json()["duplicate"] is True
    assert store.counts()["messages"] == 1
