"""The Bluesky connector against the loopback imitation of a PDS (sandbox/bluesky.py).

The contract kit proves the promises every connector keeps (mentions and chat messages mixed,
pages of two). The tests below prove what is particular to Bluesky: the notifications watermark
(a second poll stores nothing), the reply's root and parent for a reply to a reply, the grapheme
limit, ExpiredToken -> refreshSession (and a new login when that fails too), one login shared by
polls, XRPC error bodies, RateLimit-* headers, images and chat messages.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from connectors import bluesky as bluesky_module
from connectors.base import PermanentError, RetryableError
from connectors.bluesky import BlueskyConnector, grapheme_count, link_facets, xrpc_error_message
from connectors.testing import ChannelDriver, ConnectorContract, fetch_all
from inbox.models import CHANGE_DELETED, Attachment, Author, FetchResult, MessageChange, OutboundReply
from sandbox.bluesky import BlueskyImitation
from sandbox.x import PHOTO

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs


@pytest.fixture(autouse=True)
def _forget_sessions():
    """Each test starts as a fresh process would: not logged in."""
    bluesky_module._SESSIONS.clear()
    yield
    bluesky_module._SESSIONS.clear()


@pytest.fixture
def pds():
    with BlueskyImitation(page_size=2) as imitation:
        yield imitation


class BlueskyChannel(ChannelDriver):
    rate_limit_delay = 30

    def __init__(self, imitation: BlueskyImitation) -> None:
        self.pds = imitation
        self.written = 0

    def settings(self) -> dict[str, Any]:
        return {"identifier": self.pds.handle, "app_password": self.pds.app_password,
                "service_url": self.pds.url, "dms": True,
                "media_url": self.pds.url + "/img/feed_fullsize/plain/{did}/{cid}@jpeg"}

    def customer_writes(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            self.written += 1
            handle = f"customer{self.written}.bsky.social"
            # Mentions and chat messages alternate, so the contract covers both.
            if self.written % 2:
                ids.append(self.pds.customer_mention(handle, f"help please #{self.written}"))
            else:
                ids.append(self.pds.customer_dm(handle, f"Private question #{self.written}"))
        return ids

    def customer_writes_malformed(self) -> None:
        self.pds.malformed_notification()

    def replies_received(self) -> list[dict[str, Any]]:
        return [{"text": s["text"], "in_reply_to": s["in_reply_to"]} for s in self.pds.sent]

    def inject_fault(self, fault: str) -> bool:
        if fault == "rate_limited":
            self.pds.rate_limited(self.rate_limit_delay, path_prefix="/xrpc/app.bsky")
        elif fault == "server_error":
            self.pds.server_error(502, path_prefix="/xrpc/app.bsky")
        else:
            return False
        return True


class TestBlueskyContract(ConnectorContract):
    connector_class = BlueskyConnector

    @pytest.fixture
    def channel(self, pds):
        return BlueskyChannel(pds)

    @pytest.fixture
    def contract_context(self, tmp_path, pds):
        from inbox.runtime import ConnectorContext

        return ConnectorContext(
            instance_id="contract-test", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
            max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
            fetch_allow_hosts=(pds.host,),
        )


@pytest.fixture
def context(tmp_path, pds):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="t", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
        max_message_bytes=1 << 20, max_attachment_bytes=1 << 20, data_dir=tmp_path, fetch_allow_hosts=(pds.host,))


def make(pds, context, **overrides) -> BlueskyConnector:
    settings = {**BlueskyChannel(pds).settings(), "dms": False, **overrides}
    return BlueskyConnector("bsky", settings, context=context)


def post_reply(text: str, parent: str) -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="bsky", conversation_id=1, text=text,
                         to=Author(handle="did:plc:x", identity_kind="bluesky"), reply_to_external_id=parent,
                         public=True)


# Notifications --------------------------------------------------------------------------------

def test_mention_item_fields_and_image(pds, context):
    uri = pds.customer_mention("jane.bsky.social", "@acme.bsky.social my order #1234 arrived broken",
                               name="Jane Doe", image=True)
    [item] = fetch_all(make(pds, context)).items
    assert item.external_id == uri and item.thread_key == uri and item.public
    assert item.author == Author(handle=pds.account("jane.bsky.social"), name="Jane Doe", identity_kind="bluesky")
    assert item.headers["url"] == f"https://bsky.app/profile/jane.bsky.social/post/{uri.rsplit('/', 1)[-1]}"
    assert item.sent_at.isoformat().startswith("2026-03-05T10:")
    [image] = item.attachments
    assert image.content_type == "image/jpeg" and image.data.startswith(b"\xff\xd8")


def test_watermark_pages_back_and_a_second_poll_stores_nothing(pds, context):
    conn = make(pds, context)
    pds.customer_mention("a.bsky.social")
    cursor = fetch_all(conn).cursor
    new = [pds.customer_mention(f"c{n}.bsky.social") for n in range(5)]
    result = fetch_all(conn, cursor)
    assert [i.external_id for i in result.items] == new, "every page, oldest first"
    state = json.loads(result.cursor)
    assert state["seen"] == pds.posts[new[-1]]["indexedAt"]
    pds.requests.clear()
    again = fetch_all(conn, result.cursor)
    assert again.items == [] and again.rejects == []
    listing = pds.requests_to(r"listNotifications$")
    assert all(r.arg("seenAt") is None for r in listing)
    assert all(r.query.get("reasons") == ["mention", "reply"] for r in listing)


def test_walk_stops_at_the_watermark(pds, context):
    conn = make(pds, context, margin_seconds=0)
    for n in range(6):
        pds.customer_mention(f"old{n}.bsky.social")
    cursor = fetch_all(conn).cursor
    newest = pds.customer_mention("new.bsky.social")
    pds.requests.clear()
    result = conn.fetch(cursor)
    assert [i.external_id for i in result.items] == [newest]
    # Pages of two: [new, old5] and [old4, ...], where old4 is older than the watermark: the
    # walk stops there and the two pages further back are not read again.
    assert len(pds.requests_to(r"listNotifications$")) == 2


def test_long_walk_continues_with_more(pds, context):
    conn = make(pds, context, pages_per_fetch=2)
    pds.customer_mention("first.bsky.social")
    cursor = fetch_all(conn).cursor
    new = [pds.customer_mention(f"n{n}.bsky.social") for n in range(7)]
    first = conn.fetch(cursor)
    assert first.more and json.loads(first.cursor)["next"]
    rest = fetch_all(conn, first.cursor)
    assert sorted(i.external_id for i in first.items + rest.items) == sorted(new)
    assert "next" not in json.loads(rest.cursor)


def test_first_poll_takes_only_the_newest(pds, context):
    uris = [pds.customer_mention(f"c{n}.bsky.social") for n in range(6)]
    result = fetch_all(make(pds, context, first_poll_items=2))
    assert [i.external_id for i in result.items] == uris[-2:]


def test_reply_to_our_post_threads_under_the_root(pds, context):
    ours = pds.our_post("We are back online!")
    reply_uri = pds.customer_reply("jane.bsky.social", ours, "Still broken for me")
    pds.customer_mention("other.bsky.social", "hello")
    items = fetch_all(make(pds, context)).items
    [item] = [i for i in items if i.external_id == reply_uri]
    assert item.thread_key == ours and item.references == (ours,)
    assert item.headers["reason"] == "reply"


def test_likes_and_follows_are_not_messages(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    pds.notifications.append({**pds.notifications[-1], "reason": "like", "uri": uri + "like",
                              "indexedAt": "2026-03-05T11:00:00.000Z"})
    result = fetch_all(make(pds, context))
    assert [i.external_id for i in result.items] == [uri]


def test_duplicate_notification_is_returned_once(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    pds.duplicate(uri)
    assert [i.external_id for i in fetch_all(make(pds, context)).items] == [uri]


def test_malformed_notification_is_rejected_with_the_reason(pds, context):
    good = pds.customer_mention("jane.bsky.social")
    pds.malformed_notification()
    result = fetch_all(make(pds, context))
    assert [i.external_id for i in result.items] == [good]
    [reject] = result.rejects
    assert "author.did" in reject.reason


# Replies --------------------------------------------------------------------------------------

def test_reply_to_a_top_level_post_uses_it_as_root_and_parent(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    ours = make(pds, context).send(post_reply("Sorry! Please DM us.", uri))
    [sent] = pds.sent
    parent = {"uri": uri, "cid": pds.posts[uri]["cid"]}
    assert sent["record"]["reply"] == {"root": parent, "parent": parent}
    assert sent["uri"] == ours and sent["record"]["text"] == "Sorry! Please DM us."
    assert sent["record"]["createdAt"].endswith("Z")


def test_reply_to_a_reply_keeps_the_thread_root(pds, context):
    root = pds.customer_mention("jane.bsky.social", "my order is late")
    ours = pds.our_post("Which order?", parent=root)
    their_answer = pds.customer_reply("jane.bsky.social", ours, "#1234")
    make(pds, context).send(post_reply("Found it, ships today.", their_answer))
    [sent] = pds.sent
    assert sent["record"]["reply"]["root"] == {"uri": root, "cid": pds.posts[root]["cid"]}
    assert sent["record"]["reply"]["parent"] == {"uri": their_answer, "cid": pds.posts[their_answer]["cid"]}


def test_grapheme_limit_refused_before_sending(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    conn = make(pds, context)
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one grapheme, five code points
    assert grapheme_count(family * 300) == 300
    assert grapheme_count("e\u0301" * 3) == 3
    with pytest.raises(PermanentError) as refused:
        conn.send(post_reply("a" * 301, uri))
    assert "301" in str(refused.value) and "300" in str(refused.value)
    with pytest.raises(PermanentError) as too_big:
        conn.send(post_reply(family * 300, uri))  # 300 graphemes but 5,400 bytes
    assert "3000" in str(too_big.value)
    assert not pds.requests_to(r"createRecord$")
    conn.send(post_reply("é" * 300, uri))
    assert len(pds.sent) == 1
    assert BlueskyConnector.limits.max_text_length == 300


def test_links_in_replies_get_facets(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    make(pds, context).send(post_reply("Track it: https://example.com/t/1 — thanks", uri))
    [facet] = pds.sent[0]["record"]["facets"]
    text = pds.sent[0]["record"]["text"].encode()
    assert text[facet["index"]["byteStart"]:facet["index"]["byteEnd"]] == b"https://example.com/t/1"
    assert link_facets("no links") == []


def test_reply_to_a_deleted_post_is_permanent(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    del pds.posts[uri]
    with pytest.raises(PermanentError) as refused:
        make(pds, context).send(post_reply("Hello", uri))
    assert "no longer exists" in str(refused.value)


def test_xrpc_error_reaches_the_agent(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    pds.fail_next(400, {"error": "InvalidRequest", "message": "Record/text must be a string"},
                  path_prefix="/xrpc/com.atproto.repo.createRecord")
    with pytest.raises(PermanentError) as refused:
        make(pds, context).send(post_reply("Hello", uri))
    assert "InvalidRequest: Record/text must be a string" in str(refused.value)
    assert xrpc_error_message({"error": "ExpiredToken", "message": "Token has expired"}) == \
        "ExpiredToken: Token has expired"


# Chat -----------------------------------------------------------------------------------------

def test_chat_messages_arrive_and_our_own_are_skipped(pds, context):
    conn = make(pds, context, dms=True)
    first = pds.customer_dm("jane.bsky.social", "where is my parcel?", name="Jane Doe")
    result = fetch_all(conn)
    [item] = result.items
    assert item.external_id == f"chat:{first}" and not item.public
    assert item.author.name == "Jane Doe" and item.thread_key == pds.chat_log[0]["convoId"]
    conn.send(OutboundReply(idempotency_key="d1", channel="bsky", conversation_id=1, text="It ships today.",
                            to=item.author, thread_key=item.thread_key, public=False))
    [sent] = pds.sent
    assert (sent["kind"], sent["convoId"], sent["in_reply_to"]) == ("dm", item.thread_key, item.external_id)
    assert all(r.headers.get("atproto-proxy") == "did:web:api.bsky.chat#bsky_chat"
               for r in pds.requests_to(r"chat\.bsky"))
    assert fetch_all(conn, result.cursor).items == [], "our own message is not taken in"


def test_chat_length_limit(pds, context):
    with pytest.raises(PermanentError):
        make(pds, context, dms=True).send(OutboundReply(
            idempotency_key="d1", channel="bsky", conversation_id=1, text="x" * 1001,
            to=Author(handle="did:plc:x"), thread_key="convo1", public=False))


# Chat log events other than new messages -------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bluesky"


def fetch_with_changes(connector: BlueskyConnector, cursor: str | None = None) -> FetchResult:
    """Like `fetch_all`, and keeping every page's `changes` too (fetch_all keeps items and rejects)."""
    items, rejects, changes = [], [], []
    for _ in range(50):
        result = connector.fetch(cursor)
        items, rejects, changes = items + result.items, rejects + result.rejects, changes + result.changes
        cursor = result.cursor
        if not result.more:
            break
    return FetchResult(items=items, cursor=cursor, rejects=rejects, changes=changes)


def test_a_deleted_chat_message_becomes_a_deletion_of_the_stored_item(pds, context):
    conn = make(pds, context, dms=True)
    first = pds.customer_dm("jane.bsky.social", "my address is Main St 1")
    [item] = fetch_with_changes(conn).items
    cursor = fetch_with_changes(conn).cursor
    pds.customer_deletes_dm(first)
    result = fetch_with_changes(conn, cursor)
    assert result.items == [] and result.rejects == []
    assert result.changes == [MessageChange(external_id=item.external_id, kind=CHANGE_DELETED)]


def test_a_message_created_and_deleted_before_we_read_the_log(pds, context):
    conn = make(pds, context, dms=True)
    message = pds.customer_dm("jane.bsky.social", "oops, wrong chat")
    convo, view = pds._chat_message(message)
    # The service shows a message deleted since as a deletedMessageView in its create event, too.
    pds.chat_log[0]["message"] = {"$type": "chat.bsky.convo.defs#deletedMessageView", "id": message,
                                  "rev": view["rev"], "sender": view["sender"], "sentAt": view["sentAt"]}
    pds.customer_deletes_dm(message)
    result = fetch_with_changes(conn)
    assert result.items == [] and result.rejects == [], "no empty message, nothing quarantined"
    assert [c.external_id for c in result.changes] == [f"chat:{message}"]


def test_our_own_deleted_message_is_no_change(pds, context):
    conn = make(pds, context, dms=True)
    pds.customer_dm("jane.bsky.social", "hi")
    [item] = fetch_with_changes(conn).items
    conn.send(OutboundReply(idempotency_key="d1", channel="bsky", conversation_id=1, text="Hello!",
                            to=item.author, thread_key=item.thread_key, public=False))
    cursor = fetch_with_changes(conn).cursor
    pds.customer_deletes_dm(pds.sent[0]["id"])
    result = fetch_with_changes(conn, cursor)
    assert (result.items, result.changes, result.rejects) == ([], [], [])


@pytest.mark.parametrize("event", ["reaction", "reaction removed", "read", "logBeginConvo", "logAcceptConvo",
                                   "logLeaveConvo", "logMuteConvo", "logUnmuteConvo", "unknown"])
def test_other_chat_events_are_counted_and_skipped(pds, context, caplog, event):
    caplog.set_level(logging.DEBUG, logger="mainland.connectors.bluesky")
    conn = make(pds, context, dms=True)
    message = pds.customer_dm("jane.bsky.social", "hi")
    cursor = fetch_with_changes(conn).cursor
    if event.startswith("reaction"):
        pds.reaction(message, by="jane.bsky.social", removed=event.endswith("removed"))
        name = "logRemoveReaction" if event.endswith("removed") else "logAddReaction"
    elif event == "read":
        pds.read_up_to(message)
        name = "logReadMessage"
    elif event == "unknown":
        pds.chat_event_of_unknown_type("jane.bsky.social")
        name = "logAddMember"
    else:
        pds.convo_event("jane.bsky.social", event)
        name = event
    result = fetch_with_changes(conn, cursor)
    assert (result.items, result.changes, result.rejects) == ([], [], [])
    assert f"{name} 1" in caplog.text
    assert json.loads(result.cursor)["chat"] == pds.chat_log[-1]["rev"], "the log moves past the event"


def test_every_kind_of_chat_log_event_from_the_lexicon(pds, context, caplog):
    caplog.set_level(logging.DEBUG, logger="mainland.connectors.bluesky")
    pds.chat_log = json.loads((FIXTURES / "chat_log.json").read_text())["logs"]
    result = fetch_with_changes(make(pds, context, dms=True))
    [item] = result.items
    assert (item.external_id, item.text, item.thread_key) == ("chat:msg-1", "Where is my parcel?", "convo-jane")
    assert result.changes == [MessageChange(external_id="chat:msg-1", kind=CHANGE_DELETED)]
    assert result.rejects == []
    skipped = " ".join(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    for name in ("logBeginConvo", "logAcceptConvo", "logReadMessage", "logAddReaction", "logRemoveReaction",
                 "logMuteConvo", "logUnmuteConvo", "logLeaveConvo", "logReadConvo", "logSomethingNew",
                 "logCreateMessage (ours)", "unknown"):
        assert name in skipped, name


# Sessions, rate limits, faults ----------------------------------------------------------------

def test_one_login_serves_every_poll(pds, context):
    pds.customer_mention("jane.bsky.social")
    for _ in range(3):
        conn = make(pds, context)
        fetch_all(conn)
        conn.close()
    assert pds.logins == 1


def test_expired_token_is_refreshed_then_the_call_succeeds(pds, context, caplog):
    caplog.set_level(logging.INFO)
    conn = make(pds, context)
    fetch_all(conn)
    pds.expire_token()
    uri = pds.customer_mention("jane.bsky.social")
    conn.send(post_reply("On it!", uri))
    assert (pds.logins, pds.refreshes) == (1, 1)
    assert pds.sent[0]["in_reply_to"] == uri
    assert "refreshed" in caplog.text and "eyJ" not in caplog.text


def test_refused_refresh_logs_in_again(pds, context):
    conn = make(pds, context)
    fetch_all(conn)
    pds.expire_token()
    pds.refresh_tokens.clear()
    pds.customer_mention("jane.bsky.social")
    assert len(fetch_all(conn).items) == 1
    assert pds.logins == 2


def test_wrong_app_password_is_permanent_and_redacted(pds, context):
    with pytest.raises(PermanentError) as refused:
        make(pds, context, app_password="wrong-pass-word-1234").fetch(None)
    assert "Invalid identifier or password" in str(refused.value)
    assert "wrong-pass-word-1234" not in str(refused.value)


def test_429_waits_for_the_reset(pds, context):
    pds.rate_limited(45, path_prefix="/xrpc/app.bsky.notification")
    with pytest.raises(RetryableError) as raised:
        make(pds, context).fetch(None)
    assert raised.value.retry_after == pytest.approx(45, abs=1)
    assert "RateLimitExceeded" in str(raised.value)


def test_429_with_only_the_ratelimit_reset_header(pds, context):
    import time

    pds.fail_next(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                  {"RateLimit-Reset": str(int(time.time()) + 90), "RateLimit-Remaining": "0"},
                  path_prefix="/xrpc/app.bsky.notification")
    with pytest.raises(RetryableError) as raised:
        make(pds, context).fetch(None)
    assert raised.value.retry_after == pytest.approx(90, abs=1.5)


def test_timeout_and_dropped_connection_are_retryable(pds, context):
    conn = make(pds, context, timeout=0.5)
    fetch_all(conn)
    pds.delay_next(1.5, path_prefix="/xrpc/app.bsky")
    with pytest.raises(RetryableError):
        conn.fetch(None)
    pds.drop_next(path_prefix="/xrpc/app.bsky")
    with pytest.raises(RetryableError):
        conn.fetch(None)


# The post being answered (context) --------------------------------------------------------------

def test_a_reply_carries_the_post_it_answers(pds, context):
    ours = pds.our_post("We are back online!")
    reply = pds.customer_reply("jane.bsky.social", ours, "Still broken for me")
    conn = make(pds, context)
    [item] = fetch_all(conn).items
    assert item.external_id == reply
    assert item.context_text == "We are back online!"
    assert item.context_url == f"https://bsky.app/profile/acme.bsky.social/post/{ours.rsplit('/', 1)[-1]}"
    # Reprocessing the stored original gives the same post without asking Bluesky again.
    pds.requests.clear()
    again = conn.parse_raw(item.raw)
    assert (again.context_text, again.context_url) == (item.context_text, item.context_url)
    assert not pds.requests


def test_a_mention_in_a_reply_carries_the_post_it_answers(pds, context):
    theirs = pds.customer_mention("bob.bsky.social", "Anyone else waiting on a parcel from acme?")
    answer = pds.customer_reply("jane.bsky.social", theirs, "@acme.bsky.social me too, order #77")
    items = {i.external_id: i for i in fetch_all(make(pds, context)).items}
    assert items[answer].context_text == "@acme.bsky.social Anyone else waiting on a parcel from acme?"
    assert items[answer].context_url.endswith(f"/profile/bob.bsky.social/post/{theirs.rsplit('/', 1)[-1]}")
    assert items[theirs].context_text is None and items[theirs].context_url is None, "a top-level post answers none"


def test_a_quote_carries_the_quoted_post(pds, context):
    ours = pds.our_post("Spring sale starts Monday")
    plain = pds.customer_quote("jane.bsky.social", ours, "Does it include shoes?")
    with_image = pds.customer_quote("bob.bsky.social", ours, "This one?", image=True)
    items = {i.external_id: i for i in fetch_all(make(pds, context, reasons="mention,reply,quote")).items}
    for uri in (plain, with_image):
        assert items[uri].headers["reason"] == "quote"
        assert items[uri].context_text == "Spring sale starts Monday"
        assert items[uri].context_url.endswith(ours.rsplit("/", 1)[-1])
    assert len(items[with_image].attachments) == 1, "the quote's own image is still taken"


def test_parents_are_fetched_25_at_a_time_in_few_calls(pds, context):
    ours = [pds.our_post(f"Announcement {n}") for n in range(30)]
    replies = [pds.customer_reply(f"c{n}.bsky.social", post, f"question {n}") for n, post in enumerate(ours)]
    conn = make(pds, context, pages_per_fetch=20, first_poll_items=100)  # one fetch reads all 30
    result = fetch_all(conn)
    assert {i.external_id: i.context_text for i in result.items} == {
        reply: f"Announcement {n}" for n, reply in enumerate(replies)}
    calls = pds.requests_to(r"getPosts$")
    assert sorted(len(c.query["uris"]) for c in calls) == [5, 25]


def test_a_deleted_or_blocked_parent_leaves_the_context_empty(pds, context):
    ours = pds.our_post("Old announcement")
    reply = pds.customer_reply("jane.bsky.social", ours, "Is this still valid?")
    del pds.posts[ours]  # deleted since, or hidden from us by a block: getPosts leaves it out
    [item] = fetch_all(make(pds, context)).items
    assert item.external_id == reply and item.text == "Is this still valid?"
    assert (item.context_text, item.context_url) == (None, None)


def test_a_failed_parent_lookup_never_fails_the_items(pds, context, caplog):
    ours = pds.our_post("Announcement")
    reply = pds.customer_reply("jane.bsky.social", ours, "Question")
    pds.server_error(502, path_prefix="/xrpc/app.bsky.feed.getPosts")
    result = fetch_all(make(pds, context))
    assert [i.external_id for i in result.items] == [reply] and result.rejects == []
    assert result.items[0].context_text is None
    assert "not shown" in caplog.text


def test_a_long_parent_is_shortened_and_a_handle_less_author_is_linked_by_did(pds, context):
    ours = pds.our_post("x" * 900)
    pds.profiles[pds.did]["handle"] = "handle.invalid"  # what the AppView shows for a broken handle
    pds.customer_reply("jane.bsky.social", ours, "?")
    [item] = fetch_all(make(pds, context)).items
    assert len(item.context_text) <= 500 and item.context_text.endswith("…")
    assert item.context_url == f"https://bsky.app/profile/{pds.did}/post/{ours.rsplit('/', 1)[-1]}"


# Timestamps (golden fixtures) -------------------------------------------------------------------

TIMESTAMPS = json.loads((FIXTURES / "timestamps.json").read_text())


@pytest.mark.parametrize("case", TIMESTAMPS["parse"], ids=lambda c: c["value"].strip())
def test_record_and_chat_times_in_every_form_bluesky_gives_them(pds, context, case):
    conn = make(pds, context, dms=True)
    uri = pds.customer_mention("jane.bsky.social", "when does it ship?")
    pds.posts[uri]["record"]["createdAt"] = case["value"]
    pds.notifications[-1]["indexedAt"] = case["value"]
    message = pds.customer_dm("bob.bsky.social", "and mine?")
    pds.chat_log[-1]["message"]["sentAt"] = case["value"]
    result = fetch_all(conn)
    assert result.rejects == []
    assert {i.external_id: i.sent_at.isoformat() for i in result.items} == {
        uri: case["expected"], f"chat:{message}": case["expected"]}
    assert fetch_all(conn, result.cursor).items == [], "the watermark holds in every form"


@pytest.mark.parametrize("value", TIMESTAMPS["refused"])
def test_a_post_without_a_readable_time_goes_to_quarantine(pds, context, value):
    good = pds.customer_mention("bob.bsky.social", "fine")
    bad = pds.customer_mention("jane.bsky.social", "when?")
    pds.posts[bad]["record"]["createdAt"] = value
    result = fetch_all(make(pds, context))
    assert [i.external_id for i in result.items] == [good]
    [reject] = result.rejects
    assert "date" in reject.reason


# Replies with images ------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def image(name: str = "receipt.jpg", data: bytes = PHOTO, content_type: str = "image/jpeg") -> Attachment:
    return Attachment(filename=name, content_type=content_type, data=data, size=len(data))


def post_with_files(parent: str, *files: Attachment, text: str = "Here is the label.") -> OutboundReply:
    return dataclasses.replace(post_reply(text, parent), attachments=files)


def test_images_are_uploaded_and_named_by_the_post(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    make(pds, context).send(post_with_files(uri, image(), image("label.png", PNG, "image/png")))
    uploads = pds.requests_to(r"uploadBlob$")
    assert [u.body for u in uploads] == [PHOTO, PNG], "the bytes themselves, as the request body"
    assert [u.headers["Content-Type"] for u in uploads] == ["image/jpeg", "image/png"]
    [sent] = pds.sent
    embed = sent["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    cids = [i["image"]["ref"]["$link"] for i in embed["images"]]
    assert [pds.blobs[c]["data"] for c in cids] == [PHOTO, PNG]
    assert [i["alt"] for i in embed["images"]] == ["", ""]
    assert sent["record"]["reply"]["parent"]["uri"] == uri and sent["text"] == "Here is the label."


def test_an_image_alone_is_a_reply(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    make(pds, context).send(post_with_files(uri, image(), text=""))
    assert pds.sent[0]["record"]["text"] == "" and len(pds.sent[0]["record"]["embed"]["images"]) == 1


def test_the_channel_declares_images_in_public_replies_only():
    limits = BlueskyConnector.limits
    assert limits.accepts_files(public=True) and not limits.accepts_files(public=False)
    assert limits.accepts_type("image/webp") and not limits.accepts_type("application/pdf")
    assert (limits.max_attachments, limits.max_attachment_bytes) == (4, 1_000_000)


def test_a_direct_message_with_files_is_refused_before_anything_is_sent(pds, context):
    conn = make(pds, context, dms=True)
    pds.customer_dm("jane.bsky.social", "hi")
    [item] = fetch_all(conn).items
    with pytest.raises(PermanentError) as refused:
        conn.send(OutboundReply(idempotency_key="d1", channel="bsky", conversation_id=1, text="See attached",
                                to=item.author, thread_key=item.thread_key, public=False, attachments=(image(),)))
    assert "direct message cannot carry files" in str(refused.value) and "Remove the files" in str(refused.value)
    assert pds.sent == [] and not pds.requests_to(r"uploadBlob$")


@pytest.mark.parametrize(("files", "says"), [
    ((image(),) * 5, "at most 4 images; this reply has 5. Remove 1"),
    ((image("manual.pdf", b"%PDF-1.7", "application/pdf"),), "manual.pdf is application/pdf"),
    ((image("big.jpg", PHOTO + b"\x00" * 1_000_000),), "Make it smaller"),
])
def test_files_a_post_cannot_carry_are_refused_before_anything_is_sent(pds, context, files, says):
    uri = pds.customer_mention("jane.bsky.social")
    with pytest.raises(PermanentError) as refused:
        make(pds, context).send(post_with_files(uri, *files))
    assert says in str(refused.value)
    assert pds.sent == [] and not pds.requests_to(r"uploadBlob$")


def test_an_upload_over_the_pds_limit_is_permanent_and_says_what_to_do(context):
    with BlueskyImitation(blob_upload_limit=1000) as pds:
        uri = pds.customer_mention("jane.bsky.social")
        with pytest.raises(PermanentError) as refused:
            make(pds, context).send(post_with_files(uri, image("photo.jpg", PHOTO + b"\x00" * 2000)))
        assert "photo.jpg" in str(refused.value) and "PayloadTooLarge" in str(refused.value)
        assert "make the image smaller" in str(refused.value)
        assert pds.sent == []


def test_an_image_the_appview_finds_too_large_is_permanent(context):
    with BlueskyImitation(image_max_bytes=100) as pds:
        uri = pds.customer_mention("jane.bsky.social")
        with pytest.raises(PermanentError) as refused:
            make(pds, context).send(post_with_files(uri, image()))
        assert "BlobTooLarge" in str(refused.value) and "make the image smaller" in str(refused.value)
        assert pds.sent == []


def test_a_file_that_is_not_really_an_image_is_permanent(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    disguised = image("scan.jpg", b"%PDF-1.7 not a photo")  # declared image/jpeg; the PDS reads the bytes
    with pytest.raises(PermanentError) as refused:
        make(pds, context).send(post_with_files(uri, disguised))
    assert "InvalidMimeType" in str(refused.value) and "JPEG, PNG, WebP or GIF" in str(refused.value)
    assert pds.sent == []


def test_a_rate_limited_upload_is_retried_later_and_then_posts_once(pds, context):
    uri = pds.customer_mention("jane.bsky.social")
    conn = make(pds, context)
    pds.rate_limited(40, path_prefix="/xrpc/com.atproto.repo.uploadBlob")
    reply = post_with_files(uri, image())
    with pytest.raises(RetryableError) as raised:
        conn.send(reply)
    assert raised.value.retry_after == pytest.approx(40, abs=1)
    assert "receipt.jpg" in str(raised.value) and "sent again later" in str(raised.value)
    assert pds.sent == []
    conn.send(reply)
    [sent] = pds.sent
    assert len(sent["record"]["embed"]["images"]) == 1
