"""The Instagram connector against the loopback imitation of Meta's Graph API (sandbox/meta.py).

The contract kit proves the polling promises (DMs and comments on media mixed, pages of two).
The tests below prove what is particular to Instagram: `object: "instagram"` webhooks (DMs,
comments with their parent, read receipts naming the message seen), both ways to connect
(Facebook Login through the Page, Instagram Login on the account itself), the 1000-character
DM limit, the reply windows, public replies under comments and the one private reply.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from connectors.base import PermanentError, WebhookRequest
from connectors.instagram import InstagramConnector
from connectors.testing import ChannelDriver, ConnectorContract, fetch_all
from inbox.models import Author, OutboundReply
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

NOW = dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def meta():
    with MetaImitation(page_size=2) as imitation:
        yield imitation


def settings_for(meta: MetaImitation, **overrides: Any) -> dict[str, Any]:
    return {"account_id": meta.ig_id, "page_id": meta.page_id, "access_token": meta.access_token,
            "app_secret": meta.app_secret, "verify_token": "ig-verify", "api_url": meta.url, **overrides}


class InstagramChannel(ChannelDriver):
    rate_limit_delay = 60

    def __init__(self, imitation: MetaImitation) -> None:
        self.meta = imitation
        self.written = 0

    def settings(self) -> dict[str, Any]:
        return settings_for(self.meta)

    def customer_writes(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            self.written += 1
            name = f"Customer {self.written}"
            if self.written % 2:
                ids.append(self.meta.customer_dm(name, f"Private question #{self.written}", platform="instagram"))
            else:
                ids.append(self.meta.customer_comment(name, f"Public question #{self.written}", platform="instagram"))
        return ids

    def customer_writes_malformed(self) -> None:
        self.meta.malformed_comment(platform="instagram")

    def replies_received(self) -> list[dict[str, Any]]:
        return [{"text": s["text"], "in_reply_to": s["in_reply_to"]} for s in self.meta.sent]

    def inject_fault(self, fault: str) -> bool:
        if fault == "rate_limited":
            self.meta.rate_limited(4, minutes=1)
        elif fault == "server_error":
            self.meta.server_error(503)
        else:
            return False
        return True


class TestInstagramContract(ConnectorContract):
    connector_class = InstagramConnector

    @pytest.fixture
    def channel(self, meta):
        return InstagramChannel(meta)


@pytest.fixture
def context(tmp_path, meta):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="t", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
        max_message_bytes=1 << 20, max_attachment_bytes=1 << 20, data_dir=tmp_path, fetch_allow_hosts=(meta.host,))


def make(meta, context, **overrides) -> InstagramConnector:
    return InstagramConnector("ig-shop", settings_for(meta, **overrides), context=context)


def reply(text: str, *, thread_key: str, public: bool = False, reply_to: str | None = None) -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="ig-shop", conversation_id=1, text=text,
                         to=Author(handle="", identity_kind="instagram"), thread_key=thread_key,
                         reply_to_external_id=reply_to, public=public)


def take_webhooks(conn: InstagramConnector, meta: MetaImitation):
    items, rejects, updates = [], [], []
    for payload in meta.webhook_payloads():
        body, headers = meta.signed(payload)
        request = WebhookRequest(body=body, headers=headers)
        conn.verify_webhook(request)
        result = conn.parse_webhook(request)
        items += result.items
        rejects += result.rejects
        updates += result.updates
    return items, rejects, updates


def test_dm_and_comment_webhooks(meta, context):
    conn = make(meta, context)
    mid = meta.customer_dm("Ann Example", "Do you have this in blue?", platform="instagram", photo=True)
    media = meta.ig_media()
    top = meta.customer_comment("Ann Example", "Price?", platform="instagram", post=media)
    answer = meta.customer_comment("Bea", "Same question", platform="instagram", parent=top)
    dm, first, second = take_webhooks(conn, meta)[0]
    assert (dm.external_id, dm.public, dm.thread_key) == (mid, False, meta.user("Ann Example", "instagram"))
    assert dm.author.identity_kind == "instagram" and dm.author.name == "Ann Example"
    assert dm.attachments[0].data.startswith(b"\xff\xd8")
    assert (first.external_id, first.public, first.thread_key, first.references) == (top, True, f"media:{media}", ())
    assert first.headers["username"] == "@annexample"
    assert (second.external_id, second.references) == (answer, (top,))


def test_page_webhooks_are_not_instagrams(meta, context):
    meta.customer_dm("Jane Doe", "on Messenger")
    [payload] = meta.webhook_payloads()
    body, headers = meta.signed(payload)
    result = make(meta, context).parse_webhook(WebhookRequest(body=body, headers=headers))
    assert result.items == [] and "not 'instagram'" in result.rejects[0].reason


def test_tampered_webhook_is_refused(meta, context):
    meta.customer_comment("Ann", "hello", platform="instagram")
    [payload] = meta.webhook_payloads()
    body, headers = meta.signed(payload)
    with pytest.raises(PermanentError):
        make(meta, context).verify_webhook(WebhookRequest(body=body.replace(b"hello", b"hellO"), headers=headers))


def test_polling_reads_dms_and_comments_with_replies(meta, context):
    conn = make(meta, context)
    mid = meta.customer_dm("Ann", "dm", platform="instagram")
    top = meta.customer_comment("Ann", "top", platform="instagram")
    conn.send(reply("our answer", thread_key="media:x", public=True, reply_to=top))
    follow = meta.customer_comment("Bea", "follow", platform="instagram", parent=top)
    result = fetch_all(conn)
    assert [(i.external_id, i.references) for i in result.items] == [(mid, ()), (top, ()), (follow, (top,))]
    calls = meta.requests_to(r"/conversations$")
    assert calls[0].path == f"/v25.0/{meta.page_id}/conversations" and calls[0].arg("platform") == "instagram"
    media_calls = [c for c in meta.requests_to(r"/comments$") if c.method == "GET"]
    assert media_calls and all("replies{" in c.arg("fields") for c in media_calls)


def test_instagram_login_uses_the_account_itself(meta, context):
    conn = make(meta, context, login="instagram", page_id=None)
    meta.customer_dm("Ann", "dm", platform="instagram")
    [item] = fetch_all(conn, max_pages=5).items
    conn.send(reply("hello", thread_key=item.thread_key))
    assert meta.requests_to(r"/conversations$")[0].path == f"/v25.0/{meta.ig_id}/conversations"
    assert meta.requests_to(r"/messages$")[0].path == f"/v25.0/{meta.ig_id}/messages"
    assert make(meta, context, login="instagram", api_url=None).api_url == "https://graph.instagram.com"
    assert make(meta, context, api_url=None).api_url == "https://graph.facebook.com"


def test_configuration_is_checked(meta, context):
    with pytest.raises(PermanentError, match="page_id"):
        make(meta, context, page_id=None)
    with pytest.raises(PermanentError, match="login"):
        make(meta, context, login="twitter")
    with pytest.raises(PermanentError, match="account_id"):
        make(meta, context, account_id="@acmeshop")


def test_dm_limit_is_1000_characters(meta, context):
    meta.customer_dm("Ann", "hi", platform="instagram")
    conn = make(meta, context)
    with pytest.raises(PermanentError, match="allow 1000"):
        conn.send(reply("x" * 1001, thread_key=meta.user("Ann", "instagram")))
    conn.send(reply("x" * 1000, thread_key=meta.user("Ann", "instagram")))
    assert len(meta.sent) == 1


def test_reply_windows(meta, context, monkeypatch):
    meta.clock = lambda: NOW
    monkeypatch.setattr(InstagramConnector, "clock", staticmethod(lambda: NOW))
    conn = make(meta, context)
    meta.customer_dm("Ann", "recent", platform="instagram", at=NOW - dt.timedelta(hours=3))
    meta.customer_dm("Bea", "two days", platform="instagram", at=NOW - dt.timedelta(days=2))
    meta.customer_dm("Cid", "too old", platform="instagram", at=NOW - dt.timedelta(days=10))
    conn.send(reply("a", thread_key=meta.user("Ann", "instagram")))
    conn.send(reply("b", thread_key=meta.user("Bea", "instagram")))
    with pytest.raises(PermanentError, match="window has closed"):
        conn.send(reply("c", thread_key=meta.user("Cid", "instagram")))
    assert [(s["text"], s["messaging_type"], s["tag"]) for s in meta.sent] == [
        ("a", "RESPONSE", None), ("b", "MESSAGE_TAG", "HUMAN_AGENT")]


def test_comment_reply_and_the_one_private_reply(meta, context):
    conn = make(meta, context)
    top = meta.customer_comment("Ann", "Where is my order?", platform="instagram")
    nested = meta.customer_comment("Bea", "Mine too", platform="instagram", parent=top)
    public_id = conn.send(reply("We'll DM you", thread_key="media:x", public=True, reply_to=nested))
    private_id = conn.send(reply("Your order ships today", thread_key="media:x", reply_to=top))
    with pytest.raises(PermanentError, match="one private reply"):
        conn.send(reply("again", thread_key="media:x", reply_to=top))
    public, private = meta.sent
    assert (public["kind"], public["in_reply_to"], public["public"], public["id"]) == (
        "comment_reply", nested, True, public_id)
    assert meta.comments[public_id]["parent"] == top, "Instagram threads a reply to a reply under the top comment"
    assert (private["kind"], private["recipient"], private["public"], private["id"]) == (
        "private_reply", meta.user("Ann", "instagram"), False, private_id)


def test_read_receipt_names_the_message_seen(meta, context):
    conn = make(meta, context)
    meta.customer_dm("Ann", "hi", platform="instagram")
    meta.webhook_payloads()
    sent = conn.send(reply("hello!", thread_key=meta.user("Ann", "instagram")))
    meta.customer_reads("Ann", platform="instagram")
    items, rejects, updates = take_webhooks(conn, meta)
    assert items == [] and rejects == [], "the echo of our message is not a customer's"
    assert [(u.provider_id, u.status) for u in updates] == [(sent, "read")]


def test_malformed_webhook_comment_is_rejected_alone(meta, context):
    good = meta.customer_comment("Ann", "fine", platform="instagram")
    meta.malformed_comment(platform="instagram")
    items, rejects, _ = take_webhooks(make(meta, context), meta)
    assert [i.external_id for i in items] == [good]
    [reject] = rejects
    assert "from" in reject.reason and json.loads(reject.raw)["kind"] == "webhook"


def test_polled_comments_carry_the_media_they_are_on(meta, context):
    conn = make(meta, context, messages=False)
    media = meta.ig_media("The wool coat in camel")
    top = meta.customer_comment("Ann", "this coat in XL?", platform="instagram", post=media)
    answer = meta.customer_comment("Bea", "same question", platform="instagram", parent=top)
    items = {i.external_id: i for i in fetch_all(conn).items}
    for comment in (top, answer):
        assert items[comment].context_text == "The wool coat in camel"
        assert items[comment].context_url == meta.media[media]["permalink"]
    assert "caption" in meta.requests_to(r"/media$")[0].arg("fields").split(",")


def test_a_comment_by_webhook_has_no_caption_to_show(meta, context):
    conn = make(meta, context)
    meta.customer_comment("Ann", "this coat in XL?", platform="instagram", post=meta.ig_media("The wool coat"))
    [item] = take_webhooks(conn, meta)[0]
    assert (item.context_text, item.context_url) == (None, None)
