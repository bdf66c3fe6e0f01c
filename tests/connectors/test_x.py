"""The X connector against the loopback imitation of the X API v2 (sandbox/x.py).

The contract kit proves the promises every connector keeps (mentions and DMs mixed, pages of
two). The tests below prove what is particular to X: both streams page back to their stored
position, DMs we sent ourselves are skipped, the 280-character weighted rule, both error
shapes, an expired token refreshed once (and the new pair kept on disk), 429 waiting until
`x-rate-limit-reset`, photos as attachments and public versus private replies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
from typing import Any

import pytest

from connectors import x as x_module
from connectors.base import PermanentError, RetryableError
from connectors.testing import ChannelDriver, ConnectorContract, fetch_all
from connectors.x import XConnector, weighted_length, x_error_message
from inbox.models import Attachment, Author, OutboundReply
from sandbox.multipart import parse_form
from sandbox.x import XImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

SECRETS = {"access_token": "x-access-token-0", "refresh_token": "x-refresh-token-0"}


@pytest.fixture(autouse=True)
def _forget_refreshed_tokens():
    """Each test starts as a fresh process would: no token refreshed in memory."""
    x_module._TOKENS.clear()
    yield
    x_module._TOKENS.clear()


@pytest.fixture
def x_api():
    with XImitation(page_size=2) as imitation:
        yield imitation


class XChannel(ChannelDriver):
    rate_limit_delay = 30

    def __init__(self, imitation: XImitation) -> None:
        self.x = imitation
        self.written = 0

    def settings(self) -> dict[str, Any]:
        return {"user_id": self.x.user_id, "api_url": self.x.url, "client_id": self.x.client_id,
                "page_size": 5, **SECRETS}

    def customer_writes(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            self.written += 1
            customer = f"customer{self.written}"
            # Mentions and DMs alternate, so every contract promise covers both streams.
            if self.written % 2:
                ids.append(self.x.customer_mention(customer, f"@AcmeSupport help please #{self.written}"))
            else:
                ids.append(self.x.customer_dm(customer, f"Private question #{self.written}"))
        return ids

    def customer_writes_malformed(self) -> None:
        self.x.malformed_mention()

    def replies_received(self) -> list[dict[str, Any]]:
        return [{"text": s["text"], "in_reply_to": s["in_reply_to"]} for s in self.x.sent]

    def inject_fault(self, fault: str) -> bool:
        if fault == "rate_limited":
            self.x.rate_limited(self.rate_limit_delay)
        elif fault == "server_error":
            self.x.server_error(503)
        else:
            return False
        return True


class TestXContract(ConnectorContract):
    connector_class = XConnector

    @pytest.fixture
    def channel(self, x_api):
        return XChannel(x_api)

    @pytest.fixture
    def contract_context(self, tmp_path, x_api):
        from inbox.runtime import ConnectorContext

        return ConnectorContext(
            instance_id="contract-test", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
            max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
            fetch_allow_hosts=(x_api.host,),
        )


@pytest.fixture
def context(tmp_path, x_api):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="t", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
        max_message_bytes=1 << 20, max_attachment_bytes=1 << 20, data_dir=tmp_path, fetch_allow_hosts=(x_api.host,))


def make(x_api, context, **overrides) -> XConnector:
    settings = {"user_id": x_api.user_id, "api_url": x_api.url, "client_id": x_api.client_id, "page_size": 5,
                **SECRETS, **overrides}
    return XConnector("x-support", settings, context=context)


def reply(text: str, *, public: bool, to: str = "", thread_key: str | None = None,
          reply_to: str | None = None, files: tuple[Attachment, ...] = ()) -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="x-support", conversation_id=1, text=text,
                         to=Author(handle=to, identity_kind="x"), thread_key=thread_key,
                         reply_to_external_id=reply_to, public=public, attachments=files)


def image(name: str, data: bytes = b"\x89PNG\r\n\x1a\n" + b"px" * 500, content_type: str = "image/png") -> Attachment:
    return Attachment(filename=name, content_type=content_type, data=data, size=len(data))


# Streams and paging -------------------------------------------------------------------------------

def test_mentions_page_back_to_since_id_and_store_the_newest(x_api, context):
    conn = make(x_api, context)
    first = x_api.customer_mention("jane")
    result = fetch_all(conn)
    assert [i.external_id for i in result.items] == [first]
    since = json.loads(result.cursor)["mentions"]
    assert since == first
    new = [x_api.customer_mention(f"c{n}", f"@AcmeSupport question {n}") for n in range(5)]
    x_api.requests.clear()
    result = conn.fetch(result.cursor)
    assert [i.external_id for i in result.items] == new, "all pages, oldest first"
    pages = x_api.requests_to(r"/mentions$")
    assert len(pages) == 3, "five new mentions in pages of two: three pages"
    assert all(p.arg("since_id") == since for p in pages)
    assert [p.arg("pagination_token") is None for p in pages] == [True, False, False]
    state = json.loads(result.cursor)
    assert state["mentions"] == new[-1] and "mentions_next" not in state
    assert not result.more


def test_mentions_pages_beyond_one_fetch_continue_with_more(x_api, context):
    conn = make(x_api, context, pages_per_fetch=2)
    x_api.customer_mention("jane")
    cursor = fetch_all(conn).cursor
    new = [x_api.customer_mention(f"c{n}") for n in range(7)]
    first = conn.fetch(cursor)
    assert first.more, "a walk cut short by pages_per_fetch says there is more"
    state = json.loads(first.cursor)
    assert state["mentions_next"] and state["mentions"] != new[-1], "since_id moves only after the last page"
    second = conn.fetch(first.cursor)
    assert not second.more
    assert json.loads(second.cursor)["mentions"] == new[-1]
    assert sorted(i.external_id for i in first.items + second.items) == sorted(new)


def test_dms_page_back_to_the_stored_event_and_skip_our_own(x_api, context):
    conn = make(x_api, context, mentions=False)
    x_api.customer_dm("jane", "first")
    cursor = fetch_all(conn).cursor
    ids = [x_api.customer_dm("jane", "second"), x_api.customer_dm("bob", "third")]
    x_api.our_dm("jane", "an answer typed in the X app")
    ids.append(x_api.customer_dm("jane", "fourth"))
    x_api.requests.clear()
    result = conn.fetch(cursor)
    assert [i.text for i in result.items] == ["second", "third", "fourth"]
    assert [i.external_id for i in result.items] == ids
    assert all(not i.public for i in result.items)
    calls = x_api.requests_to(r"/2/dm_events$")
    assert len(calls) == 3, "pages of two, newest first, until the stored event id"
    assert all(c.arg("event_types") == "MessageCreate" and c.arg("since_id") is None for c in calls)
    assert json.loads(result.cursor)["dms"] == max(x_api.dm_events, key=lambda e: int(e["id"]))["id"]
    assert conn.fetch(result.cursor).items == [], "a second poll finds nothing new"


def test_dm_item_fields(x_api, context):
    event = x_api.customer_dm("janedoe", "Hi, any update?", name="Jane Doe")
    [item] = fetch_all(make(x_api, context)).items
    assert item.external_id == event
    assert (item.author.handle, item.author.name, item.author.identity_kind) == (
        x_api.user("janedoe"), "Jane Doe", "x")
    assert item.thread_key == f"{x_api.user('janedoe')}-{x_api.user_id}"
    assert item.public is False and item.sent_at.tzinfo is not None


def test_mention_item_fields_thread_and_photo(x_api, context):
    root = x_api.customer_mention("janedoe", "@AcmeSupport my order #1234 arrived broken", name="Jane Doe",
                                  photo=True)
    follow_up = x_api.customer_mention("janedoe", "@AcmeSupport still waiting", in_reply_to=root)
    first, second = fetch_all(make(x_api, context)).items
    assert first.public and first.thread_key == root
    assert first.author == Author(handle=x_api.user("janedoe"), name="Jane Doe", identity_kind="x")
    assert first.headers["url"] == f"https://x.com/janedoe/status/{root}"
    [photo] = first.attachments
    assert photo.content_type == "image/jpeg" and photo.data and photo.data.startswith(b"\xff\xd8")
    assert second.external_id == follow_up and second.thread_key == root, "a reply joins the thread"
    assert second.references == (root,)


# The post a mention answers ("which coat?") -------------------------------------------------------

def test_a_reply_to_our_post_carries_that_post_and_its_link(x_api, context):
    coat = x_api.our_post("Our wool coat is back, now in camel & navy")
    question = x_api.customer_mention("janedoe", "@AcmeSupport which sizes?", in_reply_to=coat)
    conn = make(x_api, context)
    [item] = fetch_all(conn).items
    assert item.external_id == question
    assert item.context_text == "Our wool coat is back, now in camel & navy", "entities turned back into characters"
    assert item.context_url == f"https://x.com/AcmeSupport/status/{coat}"
    [call] = x_api.requests_to(r"/mentions$")
    assert set(call.arg("expansions").split(",")) >= {"referenced_tweets.id", "referenced_tweets.id.author_id"}
    # Reprocessing the stored original (quarantine) gives the same context without asking X again.
    again = conn.parse_raw(item.raw)
    assert (again.context_text, again.context_url) == (item.context_text, item.context_url)


def test_a_quote_carries_the_quoted_post_and_a_reply_wins_over_a_quote(x_api, context):
    shoes = x_api.customer_mention("bob", "@AcmeSupport these shoes squeak")
    quote = x_api.customer_mention("carol", "@AcmeSupport mine too!", quoting=shoes)
    launch = x_api.our_post("New boots in store today")
    both = x_api.customer_mention("dave", "@AcmeSupport the boots or the shoes?", in_reply_to=launch, quoting=shoes)
    items = {i.external_id: i for i in fetch_all(make(x_api, context)).items}
    assert items[quote].context_text == "@AcmeSupport these shoes squeak"
    assert items[quote].context_url == f"https://x.com/bob/status/{shoes}"
    assert items[both].context_text == "New boots in store today"
    assert items[shoes].context_text is None and items[shoes].context_url is None, "answers nothing"


def test_a_deleted_or_protected_parent_leaves_the_context_empty(x_api, context):
    gone = x_api.our_post("A post we deleted later")
    hidden = x_api.customer_mention("priv", "@AcmeSupport a protected question")
    first = x_api.customer_mention("jane", "@AcmeSupport about that post", in_reply_to=gone)
    second = x_api.customer_mention("bob", "@AcmeSupport me too", in_reply_to=hidden)
    x_api.delete_post(gone)
    x_api.protect("priv")
    result = fetch_all(make(x_api, context))
    items = {i.external_id: i for i in result.items}
    assert (items[first].context_text, items[first].context_url) == (None, None)
    assert (items[second].context_text, items[second].context_url) == (None, None)
    assert not result.rejects, "a missing parent never sends the mention to quarantine"
    assert items[first].references == (gone,)


def test_a_long_parent_is_cut_and_an_unknown_author_links_by_id(x_api, context):
    essay = x_api.customer_mention("bob", "@AcmeSupport " + "so much to say " * 60)
    reply_to_essay = x_api.customer_mention("jane", "@AcmeSupport agreed", in_reply_to=essay)
    del x_api.users[x_api.user("bob")]  # the author is not expanded (a suspended account, say)
    items = {i.external_id: i for i in fetch_all(make(x_api, context, first_poll_items=5)).items}
    item = items[reply_to_essay]
    assert len(item.context_text) <= 500 and item.context_text.startswith("@AcmeSupport so much to say")
    assert item.context_url == f"https://x.com/i/web/status/{essay}"


def test_dms_carry_no_context(x_api, context):
    x_api.customer_dm("jane", "a private question")
    [item] = fetch_all(make(x_api, context)).items
    assert (item.context_text, item.context_url) == (None, None)


def test_post_text_entities_and_long_names(x_api, context):
    x_api.customer_mention("jane", "@AcmeSupport I <3 you & your &amp; shop", name="J" * 5000)
    [item] = fetch_all(make(x_api, context)).items
    assert item.text == "@AcmeSupport I <3 you & your &amp; shop"
    assert len(item.author.name) == 200


def test_photo_refused_by_the_guarded_fetch_keeps_the_message(x_api, tmp_path):
    conn = XConnector("x-support", {"user_id": x_api.user_id, "api_url": x_api.url, **SECRETS}, context=None)
    x_api.customer_mention("jane", photo=True)
    [item] = fetch_all(conn).items
    [photo] = item.attachments
    assert photo.data is None and photo.url.startswith(x_api.url), "the loopback URL is refused; noted"


def test_duplicate_item_in_a_page_is_returned_once(x_api, context):
    conn = make(x_api, context)
    cursor = fetch_all(conn).cursor
    tweet = x_api.customer_mention("jane")
    x_api.duplicate(tweet)
    result = conn.fetch(cursor)
    assert [i.external_id for i in result.items] == [tweet]


def test_a_malformed_dm_is_rejected_and_the_rest_arrive(x_api, context):
    conn = make(x_api, context)
    good = x_api.customer_dm("jane", "ok")
    x_api.malformed_dm()
    result = fetch_all(conn)
    assert [i.external_id for i in result.items] == [good]
    [reject] = result.rejects
    assert "sender_id" in reject.reason
    assert json.loads(reject.raw)["kind"] == "dm"


def test_first_poll_takes_only_the_newest(x_api, context):
    old = [x_api.customer_mention(f"c{n}") for n in range(6)]
    result = fetch_all(make(x_api, context, first_poll_items=2, dms=False))
    assert [i.external_id for i in result.items] == old[-2:]
    assert json.loads(result.cursor)["mentions"] == old[-1]


def test_unreadable_cursor_starts_from_the_newest(x_api, context, caplog):
    x_api.customer_mention("jane")
    result = make(x_api, context).fetch("not json")
    assert len(result.items) == 1
    assert "not understood" in caplog.text


# Replies ------------------------------------------------------------------------------------------

def test_public_reply_to_a_mention(x_api, context):
    mention = x_api.customer_mention("jane")
    posted = make(x_api, context).send(reply("Sorry! We sent you a DM.", public=True, reply_to=mention))
    [sent] = x_api.sent
    assert sent == {"kind": "post", "id": posted, "text": "Sorry! We sent you a DM.", "in_reply_to": mention,
                    "public": True, "conversation_id": mention}
    [call] = x_api.requests_to(r"^/2/tweets$")
    assert call.json() == {"text": "Sorry! We sent you a DM.", "reply": {"in_reply_to_tweet_id": mention}}


def test_dm_reply_goes_to_the_conversation(x_api, context):
    event = x_api.customer_dm("jane", "where is my parcel?")
    conversation = f"{x_api.user('jane')}-{x_api.user_id}"
    sent_id = make(x_api, context).send(reply("It ships today.", public=False, thread_key=conversation,
                                              to=x_api.user("jane")))
    [sent] = x_api.sent
    assert (sent["kind"], sent["dm_conversation_id"], sent["in_reply_to"], sent["id"]) == (
        "dm", conversation, event, sent_id)
    assert x_api.requests_to(rf"^/2/dm_conversations/{conversation}/messages$")


def test_dm_reply_without_conversation_uses_the_participant(x_api, context):
    x_api.customer_dm("jane", "hello")
    make(x_api, context).send(reply("Hello!", public=False, to=x_api.user("jane")))
    assert x_api.requests_to(rf"^/2/dm_conversations/with/{x_api.user('jane')}/messages$")
    assert x_api.sent[0]["text"] == "Hello!"


# Replies with images ------------------------------------------------------------------------------

def test_a_post_carries_up_to_four_uploaded_images(x_api, context):
    mention = x_api.customer_mention("jane")
    files = tuple(image(f"photo{n}.png", b"\x89PNG" + bytes([n]) * 800) for n in range(4))
    posted = make(x_api, context).send(reply("Here are the labels.", public=True, reply_to=mention, files=files))
    [sent] = x_api.sent
    assert sent["id"] == posted and sent["in_reply_to"] == mention
    assert [(m["filename"], m["media_type"], m["data"]) for m in sent["media"]] == [
        (f.filename, "image/png", f.data) for f in files], "each file's bytes reached X"
    uploads = x_api.requests_to(r"^/2/media/upload$")
    assert [parse_form(u.headers["Content-Type"], u.body)["media_category"][0].text for u in uploads] == \
        ["tweet_image"] * 4
    [post] = x_api.requests_to(r"^/2/tweets$")
    assert post.json()["media"] == {"media_ids": [m["id"] for m in sent["media"]]}
    assert post.json()["text"] == "Here are the labels."
    assert XConnector.limits.accepts_files(public=True) and XConnector.limits.accepts_type("image/jpeg")


def test_a_dm_carries_one_image_and_may_have_no_text(x_api, context):
    x_api.customer_dm("jane", "where is my parcel?")
    conversation = f"{x_api.user('jane')}-{x_api.user_id}"
    make(x_api, context).send(reply("", public=False, thread_key=conversation, files=(image("label.png"),)))
    [sent] = x_api.sent
    assert sent["kind"] == "dm" and sent["text"] == "" and sent["media"][0]["data"] == image("label.png").data
    [call] = x_api.requests_to(rf"^/2/dm_conversations/{conversation}/messages$")
    assert call.json() == {"attachments": [{"media_id": sent["media"][0]["id"]}]}
    [upload] = x_api.requests_to(r"^/2/media/upload$")
    assert parse_form(upload.headers["Content-Type"], upload.body)["media_category"][0].text == "dm_image"


def test_files_x_would_not_take_are_refused_before_uploading(x_api, context):
    mention = x_api.customer_mention("jane")
    conn = make(x_api, context)
    conversation = f"{x_api.user('jane')}-{x_api.user_id}"
    with pytest.raises(PermanentError, match="at most 4 images in a post.*remove 1"):
        conn.send(reply("five", public=True, reply_to=mention, files=tuple(image(f"{n}.png") for n in range(5))))
    with pytest.raises(PermanentError, match="at most 1 image in a direct message.*remove 1"):
        conn.send(reply("two", public=False, thread_key=conversation, files=(image("a.png"), image("b.png"))))
    with pytest.raises(PermanentError, match=r"does not take clip.gif \(image/gif\).*only JPEG, PNG and WebP"):
        conn.send(reply("gif", public=True, reply_to=mention, files=(image("clip.gif", b"GIF89a", "image/gif"),)))
    with pytest.raises(PermanentError, match="5.0 MB.*up to 5 MB"):
        conn.send(reply("big", public=True, reply_to=mention, files=(image("big.png", b"x" * (5 * 1048576 + 1)),)))
    assert not x_api.requests_to(r"^/2/media/upload$") and not x_api.sent


def test_upload_errors_reach_the_agent_and_the_post_is_not_made(x_api, context):
    mention = x_api.customer_mention("jane")
    conn = make(x_api, context)
    # X refuses what it cannot read, in its own words (a type the connector would normally stop first).
    with pytest.raises(PermanentError, match="X refused notes.txt: .*not supported.*Remove it or send another image"):
        conn._upload(image("notes.txt", b"hello", "text/plain"), "tweet_image")
    x_api.fail_next(403, {"title": "Forbidden", "detail": "Forbidden", "type": "about:blank", "status": 403},
                    path_prefix="/2/media/upload")
    with pytest.raises(PermanentError, match="media.write scope"):
        conn.send(reply("hi", public=True, reply_to=mention, files=(image("a.png"),)))
    x_api.rate_limited(300, path_prefix="/2/media/upload")
    with pytest.raises(RetryableError) as raised:
        conn.send(reply("hi", public=True, reply_to=mention, files=(image("a.png"),)))
    assert raised.value.retry_after == pytest.approx(300, abs=2)
    assert not x_api.sent, "no post without its images"
    # The retry uploads again and posts once.
    conn.send(reply("hi", public=True, reply_to=mention, files=(image("a.png"),)))
    assert len(x_api.sent) == 1 and len(x_api.sent[0]["media"]) == 1


def test_an_upload_after_the_token_expired_refreshes_it(x_api, context):
    mention = x_api.customer_mention("jane")
    x_api.expire_token()
    make(x_api, context).send(reply("label", public=True, reply_to=mention, files=(image("a.png"),)))
    assert len(x_api.token_requests) == 1 and x_api.sent[0]["media"][0]["data"] == image("a.png").data


@pytest.mark.parametrize(("text", "weight"), [
    ("a" * 280, 280),
    ("a" * 257 + " https://example.com/a/very/long/path/that/goes/on/and/on?query=1", 281),
    ("a" * 256 + " https://example.com/a/very/long/path/that/goes/on/and/on?query=1", 280),
    ("日本語" * 46 + "ab", 278),
    ("日本語" * 47, 282),
])
def test_weighted_length_rule(text, weight):
    assert weighted_length(text) == weight


def test_too_long_post_is_refused_before_calling_x(x_api, context):
    mention = x_api.customer_mention("jane")
    conn = make(x_api, context)
    with pytest.raises(PermanentError) as refused:
        conn.send(reply("日本語" * 47, public=True, reply_to=mention))
    assert "282" in str(refused.value) and "280" in str(refused.value) and "by 2" in str(refused.value)
    # A link counts 23 however long it is, so this one fits.
    conn.send(reply("x" * 250 + " https://example.com/" + "p" * 200, public=True, reply_to=mention))
    assert len(x_api.sent) == 1 and len(x_api.requests_to(r"^/2/tweets$")) == 1
    assert XConnector.limits.max_text_length == 280


def test_duplicate_content_problem_reaches_the_agent(x_api, context):
    mention = x_api.customer_mention("jane")
    conn = make(x_api, context)
    conn.send(reply("Thanks!", public=True, reply_to=mention))
    with pytest.raises(PermanentError) as refused:
        conn.send(reply("Thanks!", public=True, reply_to=mention))
    assert "Forbidden: You are not allowed to create a Tweet with duplicate content." in str(refused.value)


def test_reply_to_a_post_that_did_not_mention_us_is_refused(x_api, context):
    stranger = x_api.customer_mention("jane")
    x_api.tweet(stranger)["text"] = "just talking about shoes"
    with pytest.raises(PermanentError) as refused:
        make(x_api, context).send(reply("Hello", public=True, reply_to=stranger))
    assert "not been mentioned" in str(refused.value)


def test_legacy_errors_shape_reaches_the_agent(x_api, context):
    mention = x_api.customer_mention("jane")
    x_api.legacy_error(403, "You are not permitted to perform this action.", code=261)
    with pytest.raises(PermanentError) as refused:
        make(x_api, context).send(reply("Hi", public=True, reply_to=mention))
    assert "You are not permitted to perform this action." in str(refused.value)


def test_both_error_shapes_parse():
    assert x_error_message({"title": "Too Many Requests", "type": "about:blank", "status": 429,
                            "detail": "Too Many Requests"}) == "Too Many Requests"
    assert x_error_message({"errors": [{"code": 88, "message": "Rate limit exceeded"}]}) == "Rate limit exceeded"
    assert x_error_message({"error": "invalid_request", "error_description": "Value passed for the token was "
                            "invalid."}) == "Value passed for the token was invalid."
    assert x_error_message("nope") is None


# Rate limits and faults ---------------------------------------------------------------------------

def test_429_waits_until_the_reset_header(x_api, context):
    x_api.rate_limited(120, path_prefix="/2/dm_events")
    with pytest.raises(RetryableError) as raised:
        make(x_api, context).fetch(None)
    assert raised.value.retry_after == pytest.approx(120, abs=1.5)
    assert "Too Many Requests" in str(raised.value)


def test_legacy_429_body_also_waits(x_api, context):
    x_api.fail_next(429, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]},
                    {"x-rate-limit-reset": str(int(__import__("time").time()) + 60)})
    with pytest.raises(RetryableError) as raised:
        make(x_api, context).fetch(None)
    assert raised.value.retry_after == pytest.approx(60, abs=1.5)
    assert "Rate limit exceeded" in str(raised.value)


def test_timeout_is_retryable_and_send_errors_are_told_apart(x_api, context):
    conn = make(x_api, context, timeout=0.5)
    x_api.delay_next(1.5)
    with pytest.raises(RetryableError):
        conn.fetch(None)
    mention = x_api.customer_mention("jane")
    x_api.server_error(502, path_prefix="/2/tweets")
    with pytest.raises(RetryableError):
        conn.send(reply("Hi", public=True, reply_to=mention))


# Tokens -------------------------------------------------------------------------------------------

def test_expired_token_is_refreshed_once_and_kept(x_api, context, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    x_api.customer_mention("jane")
    x_api.expire_token()
    conn = make(x_api, context)
    result = fetch_all(conn)
    assert len(result.items) == 1, "after refreshing, the poll went on"
    [grant] = x_api.token_requests
    assert grant == {"grant_type": "refresh_token", "refresh_token": "x-refresh-token-0",
                     "client_id": x_api.client_id}
    token_file = tmp_path / "tokens" / "x-x-support.json"
    kept = json.loads(token_file.read_text())
    assert kept["access_token"] == "x-access-token-1" and kept["refresh_token"] == "x-refresh-token-1"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert "refreshed" in caplog.text and "x-access-token-1" not in caplog.text
    assert "x-refresh-token" not in caplog.text

    # A new connector (the next poll), and a new process (memory forgotten), use the new pair
    # although the configured refresh token is now spent.
    x_module._TOKENS.clear()
    x_api.requests.clear()
    fetch_all(make(x_api, context))
    assert all(r.headers["Authorization"] == "Bearer x-access-token-1" for r in x_api.requests)
    assert len(x_api.token_requests) == 1


def test_new_tokens_in_the_config_win_over_the_token_file(x_api, context):
    x_api.expire_token()
    fetch_all(make(x_api, context))
    x_module._TOKENS.clear()
    # The admin re-authorised the app and pasted a new pair into the config.
    x_api.access_tokens["pasted-access"] = x_api.access_tokens["x-access-token-1"]
    x_api.refresh_tokens.add("pasted-refresh")
    x_api.requests.clear()
    fetch_all(make(x_api, context, access_token="pasted-access", refresh_token="pasted-refresh"))
    assert all(r.headers["Authorization"] == "Bearer pasted-access" for r in x_api.requests)


def test_refresh_with_a_confidential_client_sends_basic_auth(tmp_path, context):
    with XImitation(client_secret="s3cret-client") as api:
        api.expire_token()
        ctx = dataclasses.replace(context, fetch_allow_hosts=(api.host,))
        conn = make(api, ctx, client_secret="s3cret-client")
        fetch_all(conn)
        assert len(api.token_requests) == 1 and api.access_token == "x-access-token-1"


def test_spent_refresh_token_stops_with_a_clear_message(x_api, context):
    x_api.expire_token()
    x_api.refresh_tokens.clear()
    with pytest.raises(PermanentError) as stopped:
        make(x_api, context).fetch(None)
    assert "authorise the app again" in str(stopped.value)
    assert "Value passed for the token was invalid." in str(stopped.value)
    assert "x-refresh-token-0" not in str(stopped.value)


def test_without_refresh_token_a_401_is_permanent(x_api, context):
    x_api.expire_token()
    with pytest.raises(PermanentError) as stopped:
        make(x_api, context, refresh_token=None).fetch(None)
    assert "401" in str(stopped.value) and "Unauthorized" in str(stopped.value)
    assert x_api.token_requests == []


def test_refresh_during_send_then_success(x_api, context):
    mention = x_api.customer_mention("jane")
    x_api.expire_token()
    make(x_api, context).send(reply("We are on it", public=True, reply_to=mention))
    assert x_api.sent[0]["in_reply_to"] == mention and len(x_api.token_requests) == 1


def test_user_id_must_be_numeric(x_api, context):
    with pytest.raises(PermanentError):
        make(x_api, context, user_id="@AcmeSupport")
