"""The Facebook Page connector against the loopback imitation of Meta's Graph API (sandbox/meta.py).

The contract kit proves the polling promises (Messenger messages and Page comments mixed, pages
of two). The tests below prove what is particular to Meta: webhooks verified over the raw bytes
(tampered, unsigned, wrongly signed bodies refused; the `hub.challenge` handshake), a replayed
webhook and a webhook-plus-poll overlap stored once, echoes and other Pages skipped, the 24-hour
and 7-day reply windows with a frozen clock, public comment replies and the one private reply,
delivery and read receipts, Graph's error codes and usage headers.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from connectors import _meta
from connectors._meta import signature, usage_of, verify_signature
from connectors.base import PermanentError, RetryableError, WebhookRequest
from connectors.facebook import FacebookConnector
from connectors.testing import ChannelDriver, ConnectorContract, fetch_all
from inbox.models import Author, OutboundReply
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

NOW = dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC)
VERIFY_TOKEN = "meta-verify-token-0"


@pytest.fixture
def meta():
    with MetaImitation(page_size=2) as imitation:
        yield imitation


@pytest.fixture
def frozen(meta, monkeypatch):
    """The imitation and the connector agree that it is NOW."""
    meta.clock = lambda: NOW
    monkeypatch.setattr(FacebookConnector, "clock", staticmethod(lambda: NOW))
    return NOW


def settings_for(meta: MetaImitation, **overrides: Any) -> dict[str, Any]:
    return {"page_id": meta.page_id, "access_token": meta.access_token, "app_secret": meta.app_secret,
            "verify_token": VERIFY_TOKEN, "api_url": meta.url, **overrides}


class FacebookChannel(ChannelDriver):
    # The imitation's throttle says "access regained in 1 minute".
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
            # Messenger messages and comments alternate, so every promise covers both streams.
            if self.written % 2:
                ids.append(self.meta.customer_dm(f"Customer {self.written}", f"Private question #{self.written}"))
            else:
                ids.append(self.meta.customer_comment(f"Customer {self.written}", f"Public question #{self.written}"))
        return ids

    def customer_writes_malformed(self) -> None:
        self.meta.malformed_message()

    def replies_received(self) -> list[dict[str, Any]]:
        return [{"text": s["text"], "in_reply_to": s["in_reply_to"]} for s in self.meta.sent]

    def inject_fault(self, fault: str) -> bool:
        if fault == "rate_limited":
            self.meta.rate_limited(80001, minutes=1)
        elif fault == "server_error":
            self.meta.server_error(500)
        else:
            return False
        return True


class TestFacebookContract(ConnectorContract):
    connector_class = FacebookConnector

    @pytest.fixture
    def channel(self, meta):
        return FacebookChannel(meta)

    @pytest.fixture
    def contract_context(self, tmp_path, meta):
        from inbox.runtime import ConnectorContext

        return ConnectorContext(
            instance_id="contract-test", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
            max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
            fetch_allow_hosts=(meta.host,),
        )


@pytest.fixture
def context(tmp_path, meta):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="t", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
        max_message_bytes=1 << 20, max_attachment_bytes=1 << 20, data_dir=tmp_path, fetch_allow_hosts=(meta.host,))


def make(meta, context, **overrides) -> FacebookConnector:
    return FacebookConnector("fb-page", settings_for(meta, **overrides), context=context)


def reply(text: str, *, thread_key: str, public: bool = False, reply_to: str | None = None) -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="fb-page", conversation_id=1, text=text,
                         to=Author(handle="", identity_kind="facebook"), thread_key=thread_key,
                         reply_to_external_id=reply_to, public=public)


def hook(meta: MetaImitation, payload: dict | bytes, **kwargs: Any) -> WebhookRequest:
    body, headers = meta.signed(payload, **kwargs)
    return WebhookRequest(body=body, headers=headers)


def take_webhooks(conn: FacebookConnector, meta: MetaImitation):
    items, rejects, updates = [], [], []
    for payload in meta.webhook_payloads():
        request = hook(meta, payload)
        conn.verify_webhook(request)
        result = conn.parse_webhook(request)
        items += result.items
        rejects += result.rejects
        updates += result.updates
    return items, rejects, updates


# Webhooks: signatures and the handshake -------------------------------------------------------------

def test_signed_webhook_is_accepted_and_read(meta, context):
    conn = make(meta, context)
    mid = meta.customer_dm("Jane Doe", "Is my order shipped? caf\u00e9 \U0001f600", photo=True)
    [payload] = meta.webhook_payloads()
    request = hook(meta, payload)
    assert b"\\u00e9" in request.body, "Meta escapes non-ASCII; the signature is over those exact bytes"
    conn.verify_webhook(request)
    [item] = conn.parse_webhook(request).items
    assert item.external_id == mid and item.text == "Is my order shipped? caf\u00e9 \U0001f600"
    assert (item.author.handle, item.author.name, item.author.identity_kind) == (
        meta.user("Jane Doe"), "Jane Doe", "facebook")
    assert item.thread_key == meta.user("Jane Doe") and item.public is False
    assert item.sent_at.tzinfo is not None
    [photo] = item.attachments
    assert photo.content_type == "image/jpeg" and photo.data.startswith(b"\xff\xd8")


@pytest.mark.parametrize("change", ["tampered", "trailing newline", "no header", "sha1 only", "uppercase",
                                    "wrong secret", "short", "no prefix"])
def test_bad_signatures_are_refused(meta, context, change):
    conn = make(meta, context)
    meta.customer_dm("Jane Doe")
    [payload] = meta.webhook_payloads()
    body, headers = meta.signed(payload)
    good = headers["X-Hub-Signature-256"]
    if change == "tampered":
        body = body.replace(b"Is my order", b"Is my refund")
    elif change == "trailing newline":
        body += b"\n"
    elif change == "no header":
        headers.pop("X-Hub-Signature-256")
    elif change == "sha1 only":
        headers = {"X-Hub-Signature": headers["X-Hub-Signature"]}
    elif change == "uppercase":
        headers["X-Hub-Signature-256"] = "sha256=" + good[7:].upper()
    elif change == "wrong secret":
        headers["X-Hub-Signature-256"] = signature("another-secret", body)
    elif change == "short":
        headers["X-Hub-Signature-256"] = good[:-2]
    elif change == "no prefix":
        headers["X-Hub-Signature-256"] = good[7:]
    with pytest.raises(PermanentError):
        conn.verify_webhook(WebhookRequest(body=body, headers=headers))


def test_webhooks_without_an_app_secret_are_all_refused(meta, context):
    conn = make(meta, context, app_secret=None)
    meta.customer_dm("Jane Doe")
    [payload] = meta.webhook_payloads()
    with pytest.raises(PermanentError, match="app_secret"):
        conn.verify_webhook(hook(meta, payload))


def test_previous_app_secret_is_accepted_only_when_configured(meta, context):
    meta.customer_dm("Jane Doe")
    [payload] = meta.webhook_payloads()
    old = hook(meta, payload, app_secret="the-old-secret")
    with pytest.raises(PermanentError):
        make(meta, context).verify_webhook(old)
    make(meta, context, previous_app_secret="the-old-secret").verify_webhook(old)
    with pytest.raises(PermanentError):
        verify_signature(old.body, old.headers["X-Hub-Signature-256"], [])


def test_subscription_handshake(meta, context):
    conn = make(meta, context)
    args = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert conn.webhook_challenge(args) == "1158201444"
    assert conn.webhook_challenge({**args, "hub.verify_token": "guess"}) is None
    assert conn.webhook_challenge({**args, "hub.mode": "unsubscribe"}) is None
    assert make(meta, context, verify_token=None).webhook_challenge(args) is None


# Webhooks: what is taken and what is skipped -------------------------------------------------------

def test_comment_webhook_is_public_and_threaded_by_post(meta, context):
    conn = make(meta, context)
    post = meta.page_post()
    top = meta.customer_comment("Bob", "Do you ship to Belgium?", post=post)
    answer = meta.customer_comment("Carol", "Same question", parent=top)
    first, second = take_webhooks(conn, meta)[0]
    assert (first.external_id, first.public, first.thread_key) == (top, True, f"post:{post}")
    assert first.references == (), "a top-level comment answers the post, not a comment"
    assert first.author.name == "Bob" and first.sent_at.tzinfo is not None
    assert (second.external_id, second.references, second.thread_key) == (answer, (top,), f"post:{post}")


def test_echoes_own_comments_and_other_pages_are_skipped(meta, context):
    conn = make(meta, context)
    meta.customer_dm("Jane Doe", "hello")
    comment = meta.customer_comment("Bob", "question")
    assert len(take_webhooks(conn, meta)[0]) == 2
    conn.send(reply("We are on it", thread_key=meta.user("Jane Doe")))
    conn.send(reply("Yes we do", thread_key="post:x", public=True, reply_to=comment))
    items, rejects, _ = take_webhooks(conn, meta)
    assert items == [] and rejects == [], "our echo and our own comment are not customers' messages"
    other = {"object": "page", "entry": [{"id": "999999999", "time": 1, "messaging": [{
        "sender": {"id": "1"}, "recipient": {"id": "999999999"}, "timestamp": 1741169701880,
        "message": {"mid": "m_other", "text": "for another Page"}}]}]}
    assert make(meta, context).parse_webhook(hook(meta, other)).items == []


def test_one_bad_event_is_quarantined_and_the_rest_of_the_delivery_arrives(meta, context):
    conn = make(meta, context)
    good = meta.customer_dm("Jane Doe", "fine")
    meta.malformed_message()
    [first, second] = meta.webhook_payloads()
    first["entry"] += second["entry"]  # Meta batches entries
    result = conn.parse_webhook(hook(meta, first))
    assert [i.external_id for i in result.items] == [good]
    [reject] = result.rejects
    assert "sender" in reject.reason
    assert conn.parse_webhook(hook(meta, b"{not json")).rejects
    wrong_object = conn.parse_webhook(hook(meta, {"object": "instagram", "entry": []}))
    assert "not 'page'" in wrong_object.rejects[0].reason


def test_replayed_webhook_and_the_poll_store_the_message_once(meta, context, store, ingestor):
    conn = make(meta, context)
    meta.customer_dm("Jane Doe", "once please")
    [payload] = meta.webhook_payloads()
    request = hook(meta, payload)
    for _ in range(2):  # Meta retries a delivery it did not see answered
        conn.verify_webhook(request)
        ingestor.ingest("fb-page", conn.parse_webhook(request), save_cursor=False)
    ingestor.ingest("fb-page", fetch_all(conn))  # the fallback poll sees it too
    assert store.counts()["messages"] == 1


def test_media_urls_off_metas_hosts_are_not_fetched(meta, tmp_path):
    conn = FacebookConnector("fb-page", settings_for(meta), context=None)
    meta.customer_dm("Jane Doe", "look", photo=True)
    [payload] = meta.webhook_payloads()
    [item] = conn.parse_webhook(hook(meta, payload)).items
    [photo] = item.attachments
    assert photo.data is None and photo.url.startswith(meta.url), "noted, never fetched"
    assert not meta.requests_to(r"^/media/")


# Polling --------------------------------------------------------------------------------------------

def test_conversations_page_back_to_the_watermark(meta, context):
    conn = make(meta, context, comments=False)
    old = meta.customer_dm("Old Customer", "old", at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    cursor = fetch_all(conn).cursor
    fresh = [meta.customer_dm(f"Customer {n}", f"new {n}") for n in range(5)]
    meta.requests.clear()
    result = conn.fetch(cursor)
    # The conversation at the watermark's very second is read again (the store drops it): a
    # message in the same second as the last one read is never skipped.
    assert [i.external_id for i in result.items] == [old] + fresh
    calls = meta.requests_to(r"/conversations$")
    assert len(calls) == 3, "pages of two: the walk stops at the conversation older than the watermark"
    assert all(c.path.startswith("/v25.0/") and c.arg("platform") == "messenger" for c in calls)
    assert [c.arg("after") is None for c in calls] == [True, False, False]
    assert all("access_token" not in c.query for c in calls), "the token goes in a header, never a URL"
    assert calls[0].headers["Authorization"] == f"Bearer {meta.access_token}"
    assert not result.more


def test_a_long_walk_goes_on_in_the_next_fetch(meta, context):
    conn = make(meta, context, pages_per_fetch=1, comments=False)
    ids = [meta.customer_dm(f"Customer {n}", f"q {n}") for n in range(5)]
    first = conn.fetch(None)
    assert first.more and json.loads(first.cursor)["conversations_next"]
    rest = fetch_all(conn, first.cursor)
    assert sorted(i.external_id for i in first.items + rest.items) == sorted(ids)
    assert "conversations_next" not in json.loads(rest.cursor)


def test_our_messages_in_a_conversation_are_not_taken(meta, context):
    conn = make(meta, context, comments=False)
    meta.customer_dm("Jane Doe", "first")
    conn.send(reply("answer", thread_key=meta.user("Jane Doe")))
    later = meta.customer_dm("Jane Doe", "second")
    items = fetch_all(conn).items
    assert [i.text for i in items] == ["first", "second"] and items[-1].external_id == later


def test_comments_are_polled_with_their_parents_and_without_ours(meta, context):
    conn = make(meta, context, messages=False)
    post = meta.page_post()
    top = meta.customer_comment("Bob", "question", post=post)
    conn.send(reply("answer", thread_key=f"post:{post}", public=True, reply_to=top))
    follow = meta.customer_comment("Bob", "thanks!", parent=top)
    result = fetch_all(conn)
    assert [(i.external_id, i.references) for i in result.items] == [(top, ()), (follow, (top,))]
    assert result.items[0].headers["url"].startswith("https://www.facebook.com/")
    calls = [c for c in meta.requests_to(r"_\d+/comments$") if c.method == "GET"]
    assert calls and all(c.arg("filter") == "stream" and c.arg("order") == "reverse_chronological"
                         and c.arg("since") for c in calls)


def test_a_malformed_comment_is_rejected_and_the_rest_arrive(meta, context):
    conn = make(meta, context, messages=False)
    good = meta.customer_comment("Bob", "fine")
    meta.malformed_comment()
    result = fetch_all(conn)
    assert [i.external_id for i in result.items] == [good]
    [reject] = result.rejects
    assert "from" in reject.reason and json.loads(reject.raw)["kind"] == "comment"


def test_quarantined_items_can_be_reprocessed(meta, context):
    conn = make(meta, context)
    meta.customer_dm("Jane Doe", "dm")
    meta.customer_comment("Bob", "comment")
    for item in fetch_all(conn).items:
        again = conn.parse_raw(item.raw)
        assert (again.external_id, again.thread_key, again.public) == (item.external_id, item.thread_key,
                                                                        item.public)


def test_duplicate_conversation_in_a_page_is_returned_once(meta, context):
    conn = make(meta, context, comments=False)
    mid = meta.customer_dm("Jane Doe", "hi")
    meta.duplicate_conversation(meta.user("Jane Doe"))
    assert [i.external_id for i in fetch_all(conn).items] == [mid]


def test_poll_off_means_webhooks_only(meta, context):
    meta.customer_dm("Jane Doe")
    result = make(meta, context, poll=False).fetch(None)
    assert result.items == [] and meta.requests == []


# Sending: windows and visibility --------------------------------------------------------------------

@pytest.mark.parametrize("age, expected", [
    (dt.timedelta(hours=2), ("RESPONSE", None)),
    (dt.timedelta(hours=23, minutes=59), ("RESPONSE", None)),
    (dt.timedelta(hours=30), ("MESSAGE_TAG", "HUMAN_AGENT")),
    (dt.timedelta(days=6, hours=23), ("MESSAGE_TAG", "HUMAN_AGENT")),
])
def test_reply_window_picks_the_messaging_type(meta, context, frozen, age, expected):
    meta.customer_dm("Jane Doe", "hello", at=frozen - age)
    conn = make(meta, context)
    conn.send(reply("We are on it", thread_key=meta.user("Jane Doe")))
    [sent] = meta.sent
    assert (sent["messaging_type"], sent["tag"]) == expected
    assert sent["recipient"] == meta.user("Jane Doe") and sent["public"] is False


def test_reply_after_seven_days_is_refused_with_the_reason(meta, context, frozen):
    meta.customer_dm("Jane Doe", "hello", at=frozen - dt.timedelta(days=8))
    with pytest.raises(PermanentError, match="window has closed"):
        make(meta, context).send(reply("Sorry for the wait", thread_key=meta.user("Jane Doe")))
    assert meta.sent == [] and not meta.requests_to(r"/messages$")


def test_human_agent_off_means_24_hours_only(meta, context, frozen):
    meta.customer_dm("Jane Doe", "hello", at=frozen - dt.timedelta(hours=30))
    with pytest.raises(PermanentError, match="human_agent"):
        make(meta, context, human_agent=False).send(reply("hi", thread_key=meta.user("Jane Doe")))
    assert meta.sent == []


def test_the_window_counts_from_the_customers_newest_message(meta, context, frozen):
    meta.customer_dm("Jane Doe", "long ago", at=frozen - dt.timedelta(days=9))
    meta.customer_dm("Jane Doe", "again", at=frozen - dt.timedelta(hours=1))
    make(meta, context).send(reply("Welcome back", thread_key=meta.user("Jane Doe")))
    assert meta.sent[0]["messaging_type"] == "RESPONSE"


def test_metas_outside_window_error_reaches_the_agent(meta, context, frozen):
    meta.customer_dm("Jane Doe", "hello", at=frozen - dt.timedelta(hours=20))
    meta.clock = lambda: frozen + dt.timedelta(hours=5)  # Meta's clock is ahead of ours
    with pytest.raises(PermanentError) as refused:
        make(meta, context).send(reply("hi", thread_key=meta.user("Jane Doe")))
    assert "outside of allowed window" in str(refused.value) and "2018278" in str(refused.value)
    assert "24 hours" in str(refused.value)


def test_message_over_2000_characters_is_refused_before_sending(meta, context):
    meta.customer_dm("Jane Doe")
    conn = make(meta, context)
    with pytest.raises(PermanentError, match="allow 2000"):
        conn.send(reply("x" * 2001, thread_key=meta.user("Jane Doe")))
    assert not meta.requests
    conn.send(reply("x" * 2000, thread_key=meta.user("Jane Doe")))
    assert len(meta.sent) == 1


def test_comment_reply_is_public_under_the_comment(meta, context):
    comment = meta.customer_comment("Bob", "Do you ship to Belgium?")
    new_id = make(meta, context).send(reply("Yes, we do!", thread_key="post:x", public=True, reply_to=comment))
    [sent] = meta.sent
    assert sent == {"kind": "comment_reply", "platform": "facebook", "id": new_id, "text": "Yes, we do!",
                    "in_reply_to": comment, "public": True}
    assert meta.comments[new_id]["parent"] == comment


def test_private_reply_to_a_comment_goes_once(meta, context, frozen):
    comment = meta.customer_comment("Bob", "My order number is 1234", at=frozen - dt.timedelta(days=2))
    conn = make(meta, context)
    conn.send(reply("Let's continue in private", thread_key="post:x", public=False, reply_to=comment))
    [sent] = meta.sent
    assert (sent["kind"], sent["in_reply_to"], sent["recipient"], sent["public"]) == (
        "private_reply", comment, meta.user("Bob"), False)
    with pytest.raises(PermanentError, match="one private reply per comment"):
        conn.send(reply("And again", thread_key="post:x", public=False, reply_to=comment))
    old = meta.customer_comment("Carol", "old question", at=frozen - dt.timedelta(days=8))
    with pytest.raises(PermanentError, match="within 7 days"):
        conn.send(reply("Too late", thread_key="post:x", public=False, reply_to=old))
    assert len(meta.sent) == 1


# Receipts -------------------------------------------------------------------------------------------

def test_delivery_and_read_receipts_name_our_messages(meta, context):
    conn = make(meta, context)
    meta.customer_dm("Jane Doe", "hello")
    meta.webhook_payloads()
    first = conn.send(reply("one", thread_key=meta.user("Jane Doe")))
    second = conn.send(reply("two", thread_key=meta.user("Jane Doe")))
    meta.customer_receives("Jane Doe")
    meta.customer_reads("Jane Doe")
    items, rejects, updates = take_webhooks(conn, meta)
    assert items == [] and rejects == []
    assert [(u.provider_id, u.status) for u in updates] == [
        (first, "delivered"), (second, "delivered"), (first, "read"), (second, "read")]
    assert all(u.at and u.at.tzinfo for u in updates)


# Errors, limits, usage ------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
def test_throttling_codes_are_retryable_with_metas_delay(meta, context, code):
    meta.customer_dm("Jane Doe")
    meta.rate_limited(code, minutes=3)
    with pytest.raises(RetryableError) as raised:
        make(meta, context).fetch(None)
    assert raised.value.retry_after == 180
    assert f"code {code}" in str(raised.value)


def test_http_429_without_hints_waits_a_minute(meta, context):
    meta.fail_next(429, {"error": {"message": "Too many", "type": "OAuthException", "code": 9999}})
    with pytest.raises(RetryableError) as raised:
        make(meta, context).fetch(None)
    assert raised.value.retry_after == 60


def test_expired_token_stops_with_instructions_and_no_secret(meta, context):
    meta.customer_dm("Jane Doe")
    conn = make(meta, context)
    meta.expire_token()
    with pytest.raises(PermanentError) as raised:
        conn.fetch(None)
    text = str(raised.value)
    assert "code 190/463" in text and "channels.fb-page.access_token" in text
    assert all(secret not in text for secret in conn.secrets)
    with pytest.raises(PermanentError, match="190"):
        conn.send(reply("hi", thread_key=meta.user("Jane Doe")))


def test_server_errors_are_retryable(meta, context):
    meta.server_error(500)
    with pytest.raises(RetryableError, match="unexpected error"):
        make(meta, context).fetch(None)


def test_other_graph_errors_reach_the_agent_in_metas_words(meta, context):
    with pytest.raises(PermanentError, match=r"No matching user found \(code 100/2018001\)"):
        make(meta, context).send(reply("hi", thread_key="6723400099999999"))


def test_usage_near_the_limit_holds_calls_back(meta, context):
    meta.customer_comment("Bob", "question")
    meta.usage, meta.regain_minutes = 95, 5
    conn = make(meta, context, messages=False)
    with pytest.raises(RetryableError, match="near its limit"):
        conn.fetch(None)  # the feed came back at 95%: the next call (a post's comments) is not made
    calls = len(meta.requests)
    assert calls == 1
    with pytest.raises(RetryableError, match="near its limit") as raised:
        make(meta, context).fetch(None)
    assert 290 < raised.value.retry_after <= 300
    assert len(meta.requests) == calls, "no call was made while held back"


def test_usage_headers_are_read():
    headers = {"X-App-Usage": json.dumps({"call_count": 16, "total_cputime": 15, "total_time": 12}),
               "X-Business-Use-Case-Usage": json.dumps({"112": [{"type": "pages", "call_count": 1,
                                                                 "total_cputime": 97, "total_time": 1,
                                                                 "estimated_time_to_regain_access": 2}]})}
    assert usage_of(headers) == (97.0, 120.0)
    assert usage_of({"X-App-Usage": "not json"}) == (0.0, 0.0)


def test_appsecret_proof_and_api_version(meta, context):
    meta.require_proof = True
    meta.customer_dm("Jane Doe")
    with pytest.raises(PermanentError, match="appsecret_proof"):
        make(meta, context, comments=False).fetch(None)
    result = make(meta, context, appsecret_proof=True, api_version="v19.0", comments=False).fetch(None)
    assert len(result.items) == 1
    assert meta.requests[-1].path.startswith("/v19.0/")


def test_configuration_errors_are_reported_together(meta, context):
    with pytest.raises(PermanentError) as raised:
        make(meta, context, page_size=500, api_version="25", appsecret_proof=True, app_secret=None)
    assert all(word in str(raised.value) for word in ("page_size", "api_version", "appsecret_proof"))
    with pytest.raises(PermanentError, match="numeric"):
        make(meta, context, page_id="acme")


def test_display_names_are_capped(meta, context):
    meta.customer_dm("J" * 5000, "hi")
    [item] = fetch_all(make(meta, context)).items
    assert len(item.author.name) == 200



def test_a_name_is_asked_once_per_person_and_its_failure_keeps_the_message(meta, context):
    meta.customer_dm("Jane Doe", "one")
    meta.customer_dm("Jane Doe", "two")
    items, _, _ = take_webhooks(make(meta, context), meta)
    assert [i.author.name for i in items] == ["Jane Doe", "Jane Doe"]
    assert len(meta.requests_to(rf"/{meta.user('Jane Doe')}$")) == 1
    meta.customer_dm("Bob", "three")
    meta.server_error(500, path_prefix=f"/v25.0/{meta.user('Bob')}")
    [item] = take_webhooks(make(meta, context), meta)[0]
    assert (item.text, item.author.name) == ("three", "")


# The post a comment is on ("this coat in XL?" - which coat?) ------------------------------------------

def test_polled_comments_carry_the_post_they_are_on(meta, context):
    conn = make(meta, context, messages=False)
    coat = meta.page_post("Our wool coat, now in five colours")
    scarf = meta.page_post("Scarves! " + "knitted " * 100)
    on_coat = meta.customer_comment("Bob", "this coat in XL?", post=coat)
    on_scarf = meta.customer_comment("Carol", "and in red?", post=scarf)
    items = {i.external_id: i for i in fetch_all(conn).items}
    assert items[on_coat].context_text == "Our wool coat, now in five colours"
    assert items[on_coat].context_url == meta.posts[coat]["permalink_url"]
    assert items[on_scarf].context_text.startswith("Scarves! knitted") and len(items[on_scarf].context_text) <= 500
    assert items[on_scarf].context_url == meta.posts[scarf]["permalink_url"]
    assert "message" in meta.requests_to(r"/feed$")[0].arg("fields").split(",")
    # Reprocessing the stored original gives the same post.
    assert conn.parse_raw(items[on_coat].raw).context_text == "Our wool coat, now in five colours"


def test_a_comment_by_webhook_links_its_post_without_another_call(meta, context):
    conn = make(meta, context)
    post = meta.page_post("Our wool coat")
    meta.customer_comment("Bob", "this coat in XL?", post=post)
    [item] = take_webhooks(conn, meta)[0]
    assert (item.context_text, item.context_url) == (None, meta.posts[post]["permalink_url"])
    assert not meta.requests_to(r"/feed$")


def test_a_post_link_that_is_not_http_is_dropped():
    assert _meta.reply_context("  a coat  ", "javascript:alert(1)") == ("a coat", None)
    assert _meta.reply_context(None, "https://www.facebook.com/1/posts/2") == (None, "https://www.facebook.com/1/posts/2")
