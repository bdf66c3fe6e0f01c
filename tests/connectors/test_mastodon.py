"""The Mastodon connector against the loopback Mastodon imitation (sandbox/mastodon.py).

The contract kit proves the shared promises; the tests below prove what is particular to
Mastodon: the `min_id` cursor paging forward through `Link` headers with ids that must not be
compared as numbers or plain text, direct versus public visibility kept on the reply, the
customer's @mention in a direct reply, `Idempotency-Key` making a resend post once, status HTML
turned into text and sanitized, media, the 500-character count (links as 23), the ISO 8601
`X-RateLimit-Reset` and Mastodon's `{"error": ...}` bodies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from typing import Any
from urllib.parse import parse_qs

import pytest

from connectors.base import ItemError, PermanentError, RetryableError
from connectors.mastodon import MastodonConnector, id_key, status_length
from connectors.testing import ChannelDriver, ConnectorContract, fetch_all
from inbox.models import Attachment, FetchResult, OutboundReply
from sandbox.mastodon import MastodonImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

IMAGE = b"\x89PNG\r\n\x1a\n" + b"pixels" * 200
_people = itertools.count(1)


@pytest.fixture
def mastodon():
    with MastodonImitation() as imitation:
        yield imitation


@pytest.fixture
def context(tmp_path, mastodon):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="mastodon-test", mail_domain="mainland.test", base_url="https://inbox.example.net",
        max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
        fetch_allow_hosts=(mastodon.host,),
    )


def settings_for(imitation: MastodonImitation, **extra: Any) -> dict[str, Any]:
    return {"base_url": imitation.url, "access_token": imitation.token, "account_domain": imitation.domain, **extra}


class MastodonChannel(ChannelDriver):
    """Customers mention the support account, alternately in public and directly."""

    rate_limit_delay = 30

    def __init__(self, imitation: MastodonImitation) -> None:
        self.imitation = imitation

    def settings(self) -> dict[str, Any]:
        return settings_for(self.imitation)

    def customer_writes(self, count: int) -> list[str]:
        made = []
        for _ in range(count):
            number = next(_people)
            account = self.imitation.account(f"customer{number}")
            post = self.imitation.direct if number % 2 else self.imitation.mention
            made.append(post(account, f"Question number {number}")["id"])
        return made

    def customer_writes_malformed(self) -> None:
        self.imitation.malformed_notification()

    def replies_received(self) -> list[dict[str, Any]]:
        return [{"text": s["text"], "in_reply_to": s["in_reply_to_id"]} for s in self.imitation.sent]

    def inject_fault(self, fault: str) -> bool:
        if fault == "rate_limited":
            self.imitation.rate_limited(30)
        elif fault == "server_error":
            self.imitation.server_error()
        else:
            return False
        return True


class TestMastodonContract(ConnectorContract):
    connector_class = MastodonConnector

    @pytest.fixture
    def channel(self, mastodon):
        return MastodonChannel(mastodon)

    @pytest.fixture
    def contract_context(self, context):
        return context


# Channel-specific behaviour ----------------------------------------------------------------------


@pytest.fixture
def make(mastodon, context):
    made = []

    def build(**extra: Any) -> MastodonConnector:
        connector = MastodonConnector("social", settings_for(mastodon, **extra), context=context)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def reply_to(item, text: str = "Sorry about that, a replacement ships today.", *, key: str = "outbox-8812",
             **extra: Any) -> OutboundReply:
    return OutboundReply(idempotency_key=key, channel="social", conversation_id=1, text=text, to=item.author,
                         thread_key=item.thread_key, reply_to_external_id=item.external_id, public=item.public,
                         **extra)


def test_direct_message_is_private_and_a_mention_public(mastodon, make):
    jane = mastodon.account("jane", display_name="Jane Doe")
    dm = mastodon.direct(jane, "my order #1234 arrived broken")
    local = mastodon.account("piet", domain="acme.social", display_name="Piet")
    public = mastodon.mention(local, "is the shop open on Sunday?")
    first, second = fetch_all(make()).items
    assert (first.external_id, first.public, first.thread_key) == (dm["id"], False, "direct:jane@example.social")
    assert first.text == "@support my order #1234 arrived broken"
    assert 'class="u-url mention"' in first.html
    assert (first.author.handle, first.author.name, first.author.identity_kind) == (
        "jane@example.social", "Jane Doe", "mastodon")
    assert first.headers["url"] == dm["url"] and first.headers["visibility"] == "direct"
    assert first.sent_at == dt.datetime.fromisoformat(dm["created_at"].replace("Z", "+00:00"))
    # A local account's address gets this server's domain, so it is unique across servers.
    assert (second.public, second.author.handle, second.thread_key) == (
        True, "piet@acme.social", "public:piet@acme.social")
    assert second.external_id == public["id"]


def test_min_id_paging_goes_forward_through_link_headers(mastodon, make):
    # Notification ids cross from 8 to 9 digits here: "100000000" < "99999999" as text.
    for n in range(7):
        mastodon.mention(mastodon.account(f"p{n}"), f"message {n}")
    connector = make(page_size=3)
    result = fetch_all(connector)
    assert [i.text.split()[-1] for i in result.items] == [str(n) for n in range(7)]
    asked = mastodon.requests_to("/api/v1/notifications")
    assert [r.arg("min_id") for r in asked] == ["0", "99999997", "100000000"]
    assert all(r.query["types[]"] == ["mention"] and r.arg("limit") == "3" for r in asked)
    assert result.cursor == max((n["id"] for n in mastodon.notifications), key=id_key) == "100000001"
    # Nothing new: the cursor stays.
    assert connector.fetch(result.cursor) == FetchResult(items=[], cursor="100000001", rejects=[], more=False)


def test_other_notification_types_are_not_read(mastodon, make):
    jane = mastodon.account("jane")
    status = mastodon.mention(jane, "hello")
    mastodon.favourite("bob", status)
    result = fetch_all(make())
    assert [i.external_id for i in result.items] == [status["id"]]


def test_same_status_twice_is_one_item_and_the_server_repeating_a_page_stops_the_poll(mastodon, make, ingestor, store):
    mastodon.mention("jane", "hello")
    mastodon.duplicate_notification()
    connector = make()
    result = connector.fetch(None)
    assert len(result.items) == 2 and len({i.external_id for i in result.items}) == 1
    assert ingestor.ingest("social", result).stored == 1
    # A server that hands back an old page (the cursor would not move) ends this poll (IN-57).
    old = mastodon.notifications[:1]
    mastodon.fail_next(200, old, path_prefix="/api/v1/notifications")
    again = connector.fetch(result.cursor)
    assert again.cursor == result.cursor and not again.more


def test_reply_keeps_the_visibility_of_the_status_answered(mastodon, make):
    jane = mastodon.account("jane")
    mastodon.direct(jane, "private question")
    mastodon.mention(jane, "public question")
    mastodon.mention(jane, "quiet question", visibility="unlisted")
    mastodon.mention(jane, "followers question", visibility="private")
    connector = make()
    items = fetch_all(connector).items
    for number, item in enumerate(items):
        connector.send(reply_to(item, "We are on it.", key=f"outbox-{number}"))
    sent = mastodon.replies()
    assert [s["visibility"] for s in sent] == ["direct", "public", "unlisted", "private"]
    assert [s["in_reply_to_id"] for s in sent] == [i.external_id for i in items]
    direct = sent[0]
    # A direct status reaches only the accounts it mentions: the customer must be one of them.
    assert direct["text"] == "@jane@example.social We are on it." and direct["reached"] == ["jane@example.social"]
    assert [s["idempotency_key"] for s in sent] == ["outbox-0", "outbox-1", "outbox-2", "outbox-3"]


def test_mention_written_by_the_agent_is_not_doubled(mastodon, make):
    mastodon.direct("jane", "hi")
    connector = make()
    [item] = connector.fetch(None).items
    connector.send(reply_to(item, "Hi @Jane@example.social, thanks!"))
    assert mastodon.replies()[0]["text"] == "Hi @Jane@example.social, thanks!"


def test_resend_after_a_crash_with_the_same_key_posts_one_status(mastodon, make):
    mastodon.direct("jane", "where is my parcel?")
    connector = make()
    [item] = connector.fetch(None).items
    reply = reply_to(item, key="3f1c0d2e9a")
    first = connector.send(reply)
    # The process died before "sent" was committed: the outbox sends the same row again.
    second = make().send(reply)
    assert first == second
    ours = [s for s in mastodon.statuses.values() if s["account"]["acct"] == "support"]
    assert len(ours) == 1 and len(mastodon.replies()) == 1
    assert [r.headers.get("Idempotency-Key") for r in mastodon.requests_to("/api/v1/statuses")] == ["3f1c0d2e9a"] * 2


def test_length_is_counted_as_mastodon_counts_it(mastodon, make):
    link = "https://shop.example.com/orders/1234/tracking?code=" + "x" * 80
    assert status_length(f"@jane@example.social see {link}") == len("@jane see ") + 23
    mastodon.direct("jane", "hi")
    connector = make()
    [item] = connector.fetch(None).items
    fits = "a" * (500 - len("@jane  ") - 23) + " " + link  # over 500 as plain text, 500 as Mastodon counts
    connector.send(reply_to(item, fits, key="k1"))
    with pytest.raises(PermanentError, match="allows 500"):
        connector.send(reply_to(item, "b" * 500, key="k2"))
    assert len(mastodon.replies()) == 1
    # A server allowing less than configured answers 422: the agent sees Mastodon's reason.
    generous = make(max_characters=5000)
    with pytest.raises(PermanentError, match="Text character limit of 500 exceeded"):
        generous.send(reply_to(item, "c" * 600, key="k3"))


def test_rate_limit_waits_until_the_iso_reset(mastodon, make):
    mastodon.mention("jane", "hello")
    connector = make()
    mastodon.rate_limited(120)
    with pytest.raises(RetryableError) as raised:
        connector.fetch(None)
    assert raised.value.retry_after == pytest.approx(120, abs=2)
    [item] = connector.fetch(None).items
    mastodon.rate_limited(45)
    with pytest.raises(RetryableError) as on_send:
        connector.send(reply_to(item))
    assert on_send.value.retry_after == pytest.approx(45, abs=2)


def test_last_request_of_the_window_stops_paging(mastodon, make):
    for n in range(4):
        mastodon.mention(f"p{n}", "hi")
    mastodon._window_used = 299  # the next answer says X-RateLimit-Remaining: 0
    first = make(page_size=2).fetch(None)
    assert len(first.items) == 2 and not first.more


def test_errors_are_told_apart_with_mastodons_reason(mastodon, make):
    jane = mastodon.account("jane")
    mastodon.direct(jane, "hi")
    connector = make()
    [item] = connector.fetch(None).items
    gone = dataclasses.replace(reply_to(item), reply_to_external_id="1")
    with pytest.raises(PermanentError, match="Record not found"):
        connector.send(gone)
    mastodon.server_error()
    with pytest.raises(RetryableError):
        connector.send(reply_to(item))
    token = mastodon.token
    mastodon.revoke_token()
    with pytest.raises(PermanentError, match="access token is invalid") as raised:
        connector.fetch(None)
    assert token not in str(raised.value)


def test_media_are_downloaded_and_refused_hosts_leave_a_placeholder(mastodon, make, context):
    mastodon.direct("jane", "the box was crushed", media=[("box.png", IMAGE, "image/png")])
    [item] = make().fetch(None).items
    [image] = item.attachments
    assert (image.filename, image.content_type, image.data) == ("box.png", "image/png", IMAGE)
    strict = MastodonConnector("social", settings_for(mastodon), context=dataclasses.replace(context, fetch_allow_hosts=()))
    [again] = strict.fetch(None).items
    assert again.attachments[0].data is None and again.attachments[0].filename == "box.png"


def test_hostile_status_html_is_sanitized_and_text_is_plain(mastodon, make, ingestor, store):
    content = ('<p>hi <script>alert(1)</script><a href="javascript:alert(2)">click</a> '
               '<img src=x onerror="alert(3)"> &amp; bye</p>')
    mastodon.mention("mallory", "", content=content, spoiler_text="order trouble")
    [item] = make().fetch(None).items
    assert item.text == "hi click & bye" and item.subject == "order trouble"
    ingestor.ingest("social", FetchResult(items=[item], cursor=None))
    [conversation] = store.recent_conversations()
    [message] = store.conversation_messages(conversation["id"])
    assert "script" not in message["html"] and "javascript:" not in message["html"] and "onerror" not in message["html"]


def test_malformed_notification_is_rejected_and_raw_items_round_trip(mastodon, make):
    mastodon.mention("jane", "fine")
    mastodon.malformed_notification()
    mastodon.mention("bob", "also fine")
    result = fetch_all(make())
    assert [i.text.split()[-1] for i in result.items] == ["fine", "fine"]
    [reject] = result.rejects
    assert "account" in reject.reason and reject.source_ref.startswith("notification:")
    again = make().parse_raw(result.items[0].raw)
    assert again.external_id == result.items[0].external_id


# The status a reply answers ("which coat?") --------------------------------------------------------

def test_a_reply_carries_the_status_it_answers_asked_once_per_parent(mastodon, make):
    coat = mastodon.our_status("Our wool coat is back, in camel & navy: https://shop.example/coat")
    mastodon.mention("jane", "which sizes?", in_reply_to=coat)
    mastodon.mention("bob", "and the price?", in_reply_to=coat)
    mastodon.mention("carol", "a question of my own")
    items = fetch_all(make()).items
    first, second, own = items
    assert first.context_text == "Our wool coat is back, in camel & navy: https://shop.example/coat"
    assert first.context_url == coat["url"]
    assert (second.context_text, second.context_url) == (first.context_text, first.context_url)
    assert (own.context_text, own.context_url) == (None, None), "answers nothing: nothing asked"
    assert len(mastodon.requests_to(rf"^/api/v1/statuses/{coat['id']}$")) == 1, "one call per parent per poll"
    assert len(mastodon.requests_to(r"^/api/v1/statuses/")) == 1


def test_a_deleted_or_hidden_parent_leaves_the_context_empty(mastodon, make, caplog):
    gone = mastodon.our_status("A status we deleted")
    gone_too = mastodon.our_status("Another one")
    hidden = mastodon.our_status("Only for followers", visibility="private")
    mastodon.mention("jane", "about that", in_reply_to=gone)
    mastodon.mention("bob", "about this", in_reply_to=gone_too)
    mastodon.direct("carol", "and this one?", in_reply_to=hidden)
    mastodon.delete_status(gone)
    mastodon.fail_next(410, {"error": "Record not found"}, path_prefix=f"/api/v1/statuses/{gone_too['id']}")
    mastodon.fail_next(403, {"error": "This action is outside the authorized scopes"},
                       path_prefix=f"/api/v1/statuses/{hidden['id']}")
    result = fetch_all(make())
    assert [(i.context_text, i.context_url) for i in result.items] == [(None, None)] * 3
    assert not result.rejects and [i.text.split()[-1] for i in result.items] == ["that", "this", "one?"]
    assert "read:statuses" in caplog.text


def test_a_rate_limited_parent_stops_the_poll_and_keeps_the_cursor(mastodon, make):
    coat = mastodon.our_status("Our coat")
    mastodon.mention("jane", "which sizes?", in_reply_to=coat)
    connector = make()
    mastodon.fail_next(429, {"error": "Too many requests"}, {"X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": "2099-01-01T00:00:00.000Z"}, path_prefix="/api/v1/statuses/")
    with pytest.raises(RetryableError):
        connector.fetch(None)
    [item] = connector.fetch(None).items
    assert item.context_text == "Our coat"


def test_a_direct_message_answering_nothing_has_no_context(mastodon, make):
    mastodon.direct("jane", "a private question")
    [item] = make().fetch(None).items
    assert (item.context_text, item.context_url) == (None, None)
    assert not mastodon.requests_to(r"^/api/v1/statuses/")


def test_mentions_of_deleted_statuses_are_counted_and_skipped_not_quarantined(mastodon, make, caplog):
    caplog.set_level("INFO")
    first = mastodon.mention("jane", "deleted one")
    mastodon.mention("bob", "kept")
    second = mastodon.direct("carol", "deleted two")
    mastodon.delete_status(first)
    mastodon.delete_status(second)
    connector = make()
    result = fetch_all(connector)
    assert [i.text.split()[-1] for i in result.items] == ["kept"]
    assert result.rejects == [], "nothing goes to the quarantine"
    assert result.cursor == max((n["id"] for n in mastodon.notifications), key=id_key), "the cursor moves past them"
    assert "2 mention(s) skipped because their status was deleted" in caplog.text
    deleted = [n for n in mastodon.notifications if n["status"] is None][0]
    with pytest.raises(ItemError, match="deleted"):
        connector.parse_raw(json.dumps(deleted).encode())


# Replies with files --------------------------------------------------------------------------------

def file(name: str, data: bytes, content_type: str = "image/png") -> Attachment:
    return Attachment(filename=name, content_type=content_type, data=data, size=len(data))


@pytest.fixture
def answered(mastodon, make):
    """A connector that does not wait between looks at an upload, and a direct message to answer."""
    mastodon.direct("jane", "the box was crushed")
    connector = make()
    connector.media_waits = (0, 0, 0)
    [item] = connector.fetch(None).items
    return connector, item


def test_files_are_uploaded_and_the_status_carries_them(mastodon, answered):
    connector, item = answered
    photo, clip = IMAGE, b"\x00\x00\x00\x18ftypmp42" + b"v" * 3000
    status_id = connector.send(reply_to(item, "Here is the label and a short video.",
                                        attachments=(file("label.png", photo), file("how-to.mp4", clip, "video/mp4"))))
    [sent] = mastodon.replies()
    assert sent["id"] == status_id and sent["visibility"] == "direct"
    assert [(m["filename"], m["content_type"], m["data"]) for m in sent["media"]] == [
        ("label.png", "image/png", photo), ("how-to.mp4", "video/mp4", clip)], "the bytes reached the server"
    [post] = mastodon.requests_to(r"^/api/v1/statuses$")
    form = parse_qs(post.body.decode())
    assert form["media_ids[]"] == [m["id"] for m in sent["media"]], "the status names the uploads, in order"
    assert [m["id"] for m in mastodon.statuses[status_id]["media_attachments"]] == form["media_ids[]"]
    # The video was still processing (202): the connector looked again (206) until it had a url (200).
    looks = mastodon.requests_to(r"^/api/v1/media/")
    assert [r.path for r in looks] == [f"/api/v1/media/{sent['media'][1]['id']}"] * 2
    assert MastodonConnector.limits.accepts_files(public=False) and MastodonConnector.limits.max_attachments == 4


def test_a_file_only_reply_still_mentions_the_customer(mastodon, answered):
    connector, item = answered
    connector.send(reply_to(item, "", attachments=(file("label.png", IMAGE),)))
    [sent] = mastodon.replies()
    assert sent["text"] == "@jane@example.social" and len(sent["media"]) == 1


def test_a_file_still_processing_after_the_waits_is_retried_and_posted_once(mastodon, answered):
    connector, item = answered
    mastodon.processing_polls = 5
    reply = reply_to(item, "the label", key="outbox-77", attachments=(file("label.png", IMAGE),))
    with pytest.raises(RetryableError, match="still processing label.png") as raised:
        connector.send(reply)
    assert raised.value.retry_after and not mastodon.replies()
    mastodon.processing_polls = 0
    first = connector.send(reply)
    # A crash before "sent" was stored: the retry uploads again, the status is posted once.
    assert connector.send(reply) == first
    assert len(mastodon.replies()) == 1 and len(mastodon.requests_to(r"^/api/v2/media$")) == 3


def test_refused_files_tell_the_agent_what_to_do(mastodon, answered):
    connector, item = answered
    with pytest.raises(PermanentError, match="at most 4 files.*remove 1"):
        connector.send(reply_to(item, "five", attachments=tuple(file(f"{n}.png", IMAGE) for n in range(5))))
    with pytest.raises(PermanentError, match=r"does not take invoice.pdf \(application/pdf\).*remove the file"):
        connector.send(reply_to(item, "pdf", attachments=(file("invoice.pdf", b"%PDF-1.7", "application/pdf"),)))
    with pytest.raises(PermanentError, match="up to 10 MB"):
        connector.send(reply_to(item, "big", attachments=(file("huge.png", b"x" * (10 * 1048576 + 1)),)))
    assert not mastodon.requests_to(r"^/api/v2/media$"), "refused before anything was uploaded"
    # The server refuses what it cannot read, in its own words (an .heic the connector does not declare).
    with pytest.raises(PermanentError, match="File content type is invalid.*another format"):
        connector._upload(file("photo.heic", b"heic", "image/x-unknown"))
    mastodon.fail_next(403, {"error": "This action is outside the authorized scopes"}, path_prefix="/api/v2/media")
    with pytest.raises(PermanentError, match="write:media scope"):
        connector.send(reply_to(item, "scope", attachments=(file("label.png", IMAGE),)))
    assert not mastodon.replies()


def test_the_media_rate_limit_waits_until_its_reset(mastodon, answered):
    connector, item = answered
    mastodon.media_rate_limited(600)
    with pytest.raises(RetryableError) as raised:
        connector.send(reply_to(item, "label", attachments=(file("label.png", IMAGE),)))
    assert raised.value.retry_after == pytest.approx(600, abs=2)
    assert not mastodon.replies()
    upload = mastodon.requests_to(r"^/api/v2/media$")[0]
    assert upload.headers["Authorization"] == f"Bearer {mastodon.token}"


def test_settings_are_checked_at_start():
    with pytest.raises(PermanentError, match="access_token"):
        MastodonConnector.check_config({"base_url": "https://acme.social"})
    with pytest.raises(PermanentError, match="base_url"):
        MastodonConnector.check_config({"base_url": "acme.social", "access_token": "t"})
