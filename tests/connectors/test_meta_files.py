"""Replies with files on the Facebook Page and Instagram channels, against the imitation (sandbox/meta.py).

Messenger uploads each file with one Send API call (multipart `filedata`), one file per message
and never with text; comment replies and Instagram take no files, and say so in their limits
before an agent tries, and in `send()` if one still does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors import _meta
from connectors.base import PermanentError, RetryableError
from connectors.facebook import FacebookConnector
from connectors.instagram import InstagramConnector
from inbox.models import Attachment, Author, OutboundReply
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts the loopback imitation of Meta's Graph API

NOW = dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--not-a-boundary\r\n\x00end"
PDF = b"%PDF-1.7\r\n" + bytes(range(256)) * 4


@pytest.fixture
def meta(monkeypatch):
    with MetaImitation() as imitation:
        imitation.clock = lambda: NOW
        monkeypatch.setattr(FacebookConnector, "clock", staticmethod(lambda: NOW))
        monkeypatch.setattr(InstagramConnector, "clock", staticmethod(lambda: NOW))
        yield imitation


def facebook(meta: MetaImitation) -> FacebookConnector:
    return FacebookConnector("fb-page", {"page_id": meta.page_id, "access_token": meta.access_token,
                                         "app_secret": meta.app_secret, "api_url": meta.url}, context=None)


def instagram(meta: MetaImitation) -> InstagramConnector:
    return InstagramConnector("ig", {"account_id": meta.ig_id, "page_id": meta.page_id,
                                     "access_token": meta.access_token, "app_secret": meta.app_secret,
                                     "api_url": meta.url}, context=None)


def file(name: str, content_type: str, data: bytes) -> Attachment:
    return Attachment(filename=name, content_type=content_type, data=data, size=len(data))


def reply(thread_key: str, *files: Attachment, text: str = "", public: bool = False,
          reply_to: str | None = None) -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="fb-page", conversation_id=1, text=text,
                         to=Author(handle="", identity_kind="facebook"), thread_key=thread_key,
                         reply_to_external_id=reply_to, public=public, attachments=files)


def uploads(meta: MetaImitation) -> list[Any]:
    return [r for r in meta.requests if r.path.endswith("/messages") and r.method == "POST"]


# What the channels declare ---------------------------------------------------------------------------

def test_messenger_declares_one_file_per_message_without_text_and_none_on_comments():
    limits = FacebookConnector.limits
    assert limits.accepts_files(public=False) and not limits.accepts_files(public=True)
    assert (limits.max_attachments, limits.files_with_text) == (1, False)
    assert limits.max_attachment_bytes == 25 * 1024 * 1024
    assert limits.accepts_type("application/pdf") and limits.accepts_type("video/mp4")


def test_instagram_declares_no_files_anywhere():
    limits = InstagramConnector.limits
    assert not limits.accepts_files(public=False) and not limits.accepts_files(public=True)


# Messenger uploads ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content_type, data, kind", [
    ("receipt.png", "image/png", PNG, "image"),
    ("invoice.pdf", "application/pdf", PDF, "file"),
    ("clip.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42" + PDF, "video"),
    ("note.m4a", "audio/mp4", b"\x00\x00\x00\x1cftypM4A " + PDF, "audio"),
])
def test_a_file_goes_as_one_send_api_call_and_its_bytes_arrive(meta, name, content_type, data, kind):
    meta.customer_dm("Jane Doe", "Can you send the invoice?", at=NOW - dt.timedelta(hours=1))
    psid = meta.user("Jane Doe")
    message_id = facebook(meta).send(reply(psid, file(name, content_type, data)))
    assert len(uploads(meta)) == 1, "one call that uploads and sends"
    [sent] = meta.sent
    assert sent["id"] == message_id and sent["recipient"] == psid and sent["text"] is None
    assert sent["messaging_type"] == "RESPONSE"
    assert sent["attachment"] == {"type": kind, "filename": name, "content_type": content_type, "data": data,
                                  "is_reusable": False}


def test_a_file_after_24_hours_goes_with_the_human_agent_tag(meta):
    meta.customer_dm("Jane Doe", "hello", at=NOW - dt.timedelta(days=2))
    facebook(meta).send(reply(meta.user("Jane Doe"), file("a.pdf", "application/pdf", PDF)))
    assert (meta.sent[0]["messaging_type"], meta.sent[0]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


def test_text_and_a_file_together_are_refused_before_anything_is_sent(meta):
    meta.customer_dm("Jane Doe")
    with pytest.raises(PermanentError, match="either text or a file, not both: send the text and the file as "
                                             "separate replies"):
        facebook(meta).send(reply(meta.user("Jane Doe"), file("a.pdf", "application/pdf", PDF), text="Here it is"))
    assert uploads(meta) == [] and meta.sent == []


def test_two_files_in_one_reply_are_refused(meta):
    meta.customer_dm("Jane Doe")
    two = (file("a.pdf", "application/pdf", PDF), file("b.pdf", "application/pdf", PDF))
    with pytest.raises(PermanentError, match="one file; this reply has 2. Send each file as a reply of its own"):
        facebook(meta).send(reply(meta.user("Jane Doe"), *two))
    assert meta.sent == []


def test_a_file_over_25_mb_is_refused_before_uploading(meta):
    meta.customer_dm("Jane Doe")
    big = file("video.mp4", "video/mp4", b"\x00" * (25 * 1024 * 1024 + 1))
    with pytest.raises(PermanentError, match=r"is 25.0 MB; Facebook Messenger takes files up to 25 MB\. Send a "
                                             r"smaller file or a link"):
        facebook(meta).send(reply(meta.user("Jane Doe"), big))
    assert uploads(meta) == []


def test_metas_refusal_of_a_too_large_file_says_what_to_do(meta):
    meta.customer_dm("Jane Doe")
    meta.max_upload_bytes = 100  # Meta's own check, whatever our estimate of the size was
    with pytest.raises(PermanentError) as refused:
        facebook(meta).send(reply(meta.user("Jane Doe"), file("a.pdf", "application/pdf", PDF)))
    message = str(refused.value)
    assert "larger than the allowed 25MB" in message and "2018047" in message
    assert "send a smaller file" in message and "link" in message
    assert meta.sent == []


def test_an_image_that_is_not_one_is_refused_with_advice(meta):
    meta.customer_dm("Jane Doe")
    with pytest.raises(PermanentError) as refused:
        facebook(meta).send(reply(meta.user("Jane Doe"), file("photo.png", "image/png", b"this is not a PNG")))
    assert "Upload attachment failure" in str(refused.value)
    assert "save it again in a common format" in str(refused.value)


def test_a_rate_limited_upload_is_retried_later(meta):
    meta.customer_dm("Jane Doe")
    psid = meta.user("Jane Doe")
    conn = facebook(meta)
    meta.rate_limited(613, minutes=2, path_prefix=f"/v25.0/{meta.page_id}/messages")
    with pytest.raises(RetryableError) as wait:
        conn.send(reply(psid, file("a.pdf", "application/pdf", PDF)))
    assert wait.value.retry_after == 120 and meta.sent == []
    _meta.forget_process_state()  # the pause is over
    conn.send(reply(psid, file("a.pdf", "application/pdf", PDF)))
    assert meta.sent[0]["attachment"]["data"] == PDF


def test_a_file_outside_the_window_is_refused_with_the_reason(meta):
    meta.customer_dm("Jane Doe", "hello", at=NOW - dt.timedelta(days=8))
    with pytest.raises(PermanentError, match="window has closed"):
        facebook(meta).send(reply(meta.user("Jane Doe"), file("a.pdf", "application/pdf", PDF)))
    assert uploads(meta) == []


def test_the_echo_of_a_sent_file_is_not_taken_as_the_customers(meta):
    meta.customer_dm("Jane Doe")
    conn = facebook(meta)
    meta.webhook_payloads()
    conn.send(reply(meta.user("Jane Doe"), file("a.pdf", "application/pdf", PDF)))
    [echo] = meta.webhook_payloads()
    body, headers = meta.signed(echo)
    from connectors.base import WebhookRequest

    assert conn.parse_webhook(WebhookRequest(body=body, headers=headers)).items == []


# Where files cannot go -------------------------------------------------------------------------------

@pytest.mark.parametrize("public", [True, False])
def test_a_comment_reply_with_a_file_is_refused_with_the_reason(meta, public):
    comment = meta.customer_comment("Bob", "Do you have it in blue?")
    with pytest.raises(PermanentError, match="only as a public link"):
        facebook(meta).send(reply("post:x", file("blue.png", "image/png", PNG), text="Here",
                                  public=public, reply_to=comment))
    assert meta.sent == [] and meta.requests == []


def test_instagram_refuses_files_in_messages_and_comment_replies(meta):
    meta.customer_dm("Ann", "hi", platform="instagram")
    conn = instagram(meta)
    with pytest.raises(PermanentError, match="Instagram messages can carry a file only as a public link"):
        conn.send(reply(meta.user("Ann", "instagram"), file("a.png", "image/png", PNG)))
    comment = meta.customer_comment("Ann", "price?", platform="instagram")
    with pytest.raises(PermanentError, match="only as a public link"):
        conn.send(reply("media:x", file("a.png", "image/png", PNG), public=True, reply_to=comment))
    assert meta.sent == [] and meta.requests == []
