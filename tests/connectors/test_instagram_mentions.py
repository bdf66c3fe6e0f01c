"""Instagram @mentions of the account become public conversations (against sandbox/meta.py).

The `mentions` webhook names only ids; the connector reads the comment or the caption through the
Graph API as documented (`mentioned_comment` / `mentioned_media`), and the mention becomes a public
item from the mentioning user in a `mention:<media id>` conversation, with the post it is on as
context. Replies go through `POST /{ig-user-id}/mentions`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import PermanentError, WebhookRequest
from connectors.instagram import InstagramConnector
from inbox.models import Attachment, Author, OutboundReply
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts the loopback imitation of Meta's Graph API

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "instagram"


@pytest.fixture
def meta():
    with MetaImitation() as imitation:
        yield imitation


def make(meta: MetaImitation, **overrides: Any) -> InstagramConnector:
    return InstagramConnector("ig", {"account_id": meta.ig_id, "page_id": meta.page_id,
                                     "access_token": meta.access_token, "app_secret": meta.app_secret,
                                     "api_url": meta.url, "lookup_names": False, **overrides}, context=None)


def parse(conn: InstagramConnector, meta: MetaImitation, payload: dict[str, Any] | bytes):
    body, headers = meta.signed(payload)
    request = WebhookRequest(body=body, headers=headers)
    conn.verify_webhook(request)
    return conn.parse_webhook(request)


def take(conn: InstagramConnector, meta: MetaImitation):
    items, rejects = [], []
    for payload in meta.webhook_payloads():
        result = parse(conn, meta, payload)
        items += result.items
        rejects += result.rejects
    return items, rejects


def reply(thread_key: str, text: str, *, reply_to: str | None, public: bool = True,
          attachments: tuple[Attachment, ...] = ()) -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="ig", conversation_id=1, text=text,
                         to=Author(handle="", identity_kind="instagram"), thread_key=thread_key,
                         reply_to_external_id=reply_to, public=public, attachments=attachments)


def graph_fields(meta: MetaImitation) -> list[str]:
    """The `fields` of each Graph call made on the account node (where mentions are read)."""
    return [r.arg("fields") or "" for r in meta.requests if r.path.endswith(f"/{meta.ig_id}")]


def test_a_mention_in_a_comment_is_a_public_item_with_the_post_as_context(meta):
    comment = meta.customer_mentions("Ann", "@acmeshop is this coat warm enough?", caption="My winter haul")
    [item], rejects = take(make(meta), meta)
    assert rejects == []
    media = meta.comments[comment]["post"]
    assert (item.external_id, item.text, item.public) == (comment, "@acmeshop is this coat warm enough?", True)
    assert item.thread_key == f"mention:{media}"
    assert (item.author.handle, item.author.name, item.author.identity_kind) == ("ann", "ann", "instagram")
    assert item.context_text == "My winter haul" and item.context_url == meta.media[media]["permalink"]
    assert item.headers["username"] == "@ann" and item.sent_at is not None
    [fields] = graph_fields(meta)
    assert fields.startswith(f"mentioned_comment.comment_id({comment}){{") and "text" in fields
    assert "media{" in fields and "caption" in fields and "permalink" in fields


def test_a_mention_in_a_caption_is_the_post_itself(meta):
    media = meta.customer_mentions("Ben", "Loving my new boots from @acmeshop", in_comment=False)
    [item], _ = take(make(meta), meta)
    assert (item.external_id, item.text, item.thread_key) == (media, "Loving my new boots from @acmeshop",
                                                              f"mention:{media}")
    assert item.context_text is None, "the caption is the text; the post's link is the context"
    assert item.context_url == meta.media[media]["permalink"]
    [fields] = graph_fields(meta)
    assert fields.startswith(f"mentioned_media.media_id({media}){{")


def test_a_mention_in_a_comment_on_our_own_post_arrives_once_as_that_posts_comment(meta):
    ours = meta.ig_media("Spring collection")
    comment = meta.customer_mentions("Ann", "@acmeshop do you have it in red?", media=ours)
    items, rejects = take(make(meta), meta)
    assert rejects == [] and [(i.external_id, i.thread_key) for i in items] == [(comment, f"media:{ours}")]


def test_a_mention_delivered_twice_is_stored_once(meta, store, ingestor):
    meta.customer_mentions("Ann")
    [payload] = meta.webhook_payloads()
    conn = make(meta)
    for _ in range(2):
        ingestor.ingest("ig", parse(conn, meta, payload), save_cursor=False)
    assert store.counts()["messages"] == 1


def test_replies_to_a_comment_mention_go_under_that_comment(meta):
    comment = meta.customer_mentions("Ann")
    [item], _ = take(make(meta), meta)
    new_id = make(meta).send(reply(item.thread_key, "It is! Lined with wool.", reply_to=item.external_id))
    [sent] = meta.sent
    media = meta.comments[comment]["post"]
    assert sent == {"kind": "mention_reply", "platform": "instagram", "id": new_id,
                    "text": "It is! Lined with wool.", "media_id": media, "in_reply_to": comment, "public": True}
    assert meta.comments[new_id]["parent"] == comment


def test_replies_to_a_caption_mention_go_on_the_post(meta):
    media = meta.customer_mentions("Ben", "Thanks @acmeshop", in_comment=False)
    [item], _ = take(make(meta), meta)
    make(meta).send(reply(item.thread_key, "Enjoy them!", reply_to=item.external_id))
    [sent] = meta.sent
    assert (sent["media_id"], sent["in_reply_to"]) == (media, media)
    [request] = [r for r in meta.requests if r.path.endswith("/mentions")]
    assert b"comment_id" not in request.body


def test_a_mention_is_answered_only_publicly_and_without_files(meta):
    meta.customer_mentions("Ann")
    [item], _ = take(make(meta), meta)
    conn = make(meta)
    with pytest.raises(PermanentError, match="no private reply to a mention"):
        conn.send(reply(item.thread_key, "psst", reply_to=item.external_id, public=False))
    photo = Attachment(filename="a.png", content_type="image/png", data=b"\x89PNG\r\n\x1a\n", size=8)
    with pytest.raises(PermanentError, match="only as a public link"):
        conn.send(reply(item.thread_key, "", reply_to=item.external_id, attachments=(photo,)))
    assert meta.sent == []


def test_mentions_from_the_documented_webhooks_are_read_and_an_unknown_one_is_quarantined(meta):
    conn = make(meta)
    for name, edge in (("mention_in_comment.json", "mentioned_comment.comment_id(17894227972186120)"),
                       ("mention_in_caption.json", "mentioned_media.media_id(17887498072083521)")):
        result = parse(conn, meta, json.loads((FIXTURES / name).read_text()))
        assert result.items == []
        [reject] = result.rejects
        assert "does not exist" in reject.reason, "Meta's own words reach quarantine"
        assert graph_fields(meta)[-1].startswith(edge)


def test_mentions_are_not_taken_when_comments_are_off(meta):
    meta.customer_mentions("Ann")
    items, rejects = take(make(meta, comments=False), meta)
    assert items == [] and rejects == [] and graph_fields(meta) == []


def test_a_stored_mention_can_be_reprocessed_without_another_call(meta):
    meta.customer_mentions("Ann")
    conn = make(meta)
    [item], _ = take(conn, meta)
    calls = len(meta.requests)
    again = conn.parse_raw(item.raw)
    assert (again.external_id, again.thread_key, again.context_text) == (
        item.external_id, item.thread_key, item.context_text)
    assert len(meta.requests) == calls
