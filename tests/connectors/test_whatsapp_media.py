"""WhatsApp replies that carry a file, against the imitation's `/media` and `/messages` endpoints.

A reply with a file is one upload (`POST /{phone-number-id}/media`, multipart `file`, `type`,
`messaging_product`) and then exactly one `/messages` call naming the media id, with the reply's
text as the caption. The file is checked first against WhatsApp's documented types and per-type
caps, the caption against its 1024 characters; anything WhatsApp would refuse is refused before a
byte is sent, with a message that tells the agent what to do.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from connectors.base import PermanentError, RetryableError, WebhookRequest
from connectors.whatsapp import WhatsAppConnector
from inbox.models import Attachment, OutboundReply
from sandbox.whatsapp import WhatsAppImitation, graph_error

pytestmark = pytest.mark.server  # starts a loopback imitation of the Cloud API

PNG = b"\x89PNG\r\n\x1a\n" + b"label-photo" * 200
PDF = b"%PDF-1.7\n" + b"invoice 1234 " * 300
OGG = b"OggS" + b"\x00voice" * 100
MB = 1024 * 1024


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation


@pytest.fixture
def connector(whatsapp):
    made = WhatsAppConnector("wa", {
        "phone_number_id": whatsapp.phone_number_id, "access_token": whatsapp.access_token,
        "app_secret": whatsapp.app_secret, "verify_token": whatsapp.verify_token, "api_url": whatsapp.url})
    yield made
    made.close()


@pytest.fixture
def item(whatsapp, connector):
    whatsapp.customer_text("16505551234", "Can you send me the label?")
    [request] = whatsapp.take_requests()
    [found] = connector.parse_webhook(WebhookRequest(body=request.body, headers={})).items
    return found


def file(filename: str, content_type: str, data: bytes) -> Attachment:
    return Attachment(filename=filename, content_type=content_type, data=data, size=len(data))


def reply(item, text: str = "", *attachments: Attachment, **extra: Any) -> OutboundReply:
    return OutboundReply(idempotency_key="out-7", channel="wa", conversation_id=1, text=text, to=item.author,
                         thread_key=item.thread_key, reply_to_external_id=item.external_id,
                         attachments=attachments, **extra)


def nothing_sent(whatsapp: WhatsAppImitation) -> bool:
    return not whatsapp.requests_to(r"/media$") and not whatsapp.requests_to(r"/messages$")


def test_an_image_is_uploaded_and_sent_once_with_the_text_as_its_caption(whatsapp, connector, item):
    wamid = connector.send(reply(item, "Here is your return label.", file("label.png", "image/png", PNG)))
    [upload] = whatsapp.uploads.values()
    assert (upload["filename"], upload["mime_type"], upload["data"]) == ("label.png", "image/png", PNG)
    [sent] = whatsapp.sent
    assert sent["wamid"] == wamid and sent["type"] == "image" and sent["media"]["data"] == PNG
    assert sent["payload"]["image"] == {"id": upload["id"], "caption": "Here is your return label."}
    assert sent["payload"]["context"] == {"message_id": item.external_id}
    assert len(whatsapp.requests_to(r"/messages$")) == 1


def test_a_document_keeps_its_filename_and_may_go_without_text(whatsapp, connector, item):
    connector.send(reply(item, "", file("invoice-1234.pdf", "application/pdf", PDF)))
    [sent] = whatsapp.sent
    assert sent["type"] == "document" and sent["media"]["data"] == PDF
    assert sent["payload"]["document"]["filename"] == "invoice-1234.pdf"
    assert "caption" not in sent["payload"]["document"]


def test_audio_goes_without_a_caption_and_refuses_text(whatsapp, connector, item):
    voice = file("answer.ogg", "audio/ogg; codecs=opus", OGG)
    with pytest.raises(PermanentError, match="audio message carries no text"):
        connector.send(reply(item, "Listen to this", voice))
    assert nothing_sent(whatsapp)
    connector.send(reply(item, "", voice))
    [sent] = whatsapp.sent
    assert sent["type"] == "audio" and sent["payload"]["audio"] == {"id": sent["media"]["id"]}


def test_a_type_whatsapp_does_not_take_is_refused_before_sending(whatsapp, connector, item):
    with pytest.raises(PermanentError) as refused:
        connector.send(reply(item, "the archive", file("photos.zip", "application/zip", b"PK\x03\x04")))
    message = str(refused.value)
    assert "photos.zip" in message and "application/zip" in message and "JPEG or PNG" in message
    assert nothing_sent(whatsapp)
    assert not connector.limits.accepts_type("application/zip") and not connector.limits.accepts_type("image/gif")
    assert connector.limits.accepts_type("image/png") and connector.limits.accepts_type("application/pdf")


@pytest.mark.parametrize(("name", "ctype", "cap"), [("big.jpg", "image/jpeg", 5), ("clip.mp4", "video/mp4", 16),
                                                     ("song.mp3", "audio/mpeg", 16)])
def test_files_over_their_types_cap_are_refused_before_sending(whatsapp, connector, item, name, ctype, cap):
    with pytest.raises(PermanentError) as refused:
        connector.send(reply(item, "", file(name, ctype, b"\x00" * (cap * MB + 1))))
    assert name in str(refused.value) and f"up to {cap}.0 MB" in str(refused.value)
    assert nothing_sent(whatsapp)
    connector.send(reply(item, "", file(name, ctype, b"\x00" * (cap * MB))))  # exactly the cap goes
    assert whatsapp.sent[-1]["media"]["filename"] == name


def test_a_caption_over_1024_characters_is_refused_with_what_to_do(whatsapp, connector, item):
    label = file("label.png", "image/png", PNG)
    with pytest.raises(PermanentError) as refused:
        connector.send(reply(item, "x" * 1025, label))
    assert "1024" in str(refused.value) and "Shorten it by 1" in str(refused.value)
    assert "reply of its own" in str(refused.value)
    assert nothing_sent(whatsapp)
    connector.send(reply(item, "x" * 1024, label))
    assert len(whatsapp.sent[-1]["caption"]) == 1024


def test_one_file_per_reply_is_declared_and_enforced(whatsapp, connector, item):
    assert connector.limits.max_attachments == 1
    assert connector.limits.accepts_files(public=False) and not connector.limits.accepts_files(public=True)
    with pytest.raises(PermanentError, match="carries one"):
        connector.send(reply(item, "both", file("a.png", "image/png", PNG), file("b.pdf", "application/pdf", PDF)))
    assert nothing_sent(whatsapp)


def test_throttled_upload_is_retried_and_the_message_goes_out_once(whatsapp, connector, item):
    label = file("label.png", "image/png", PNG)
    whatsapp.throttle(130429)  # the upload is the first call
    with pytest.raises(RetryableError) as raised:
        connector.send(reply(item, "label", label))
    assert raised.value.retry_after == pytest.approx(10) and not whatsapp.sent
    connector.send(reply(item, "label", label))
    assert len(whatsapp.sent) == 1


def test_a_failed_message_after_the_upload_uploads_again_and_never_doubles(whatsapp, connector, item):
    label = file("label.png", "image/png", PNG)
    status, body, headers = graph_error(429, 131056, "(Business Account, Consumer Account) pair rate limit hit")
    whatsapp.fail_next(status, body, headers, path_prefix=f"/v25.0/{whatsapp.phone_number_id}/messages")
    with pytest.raises(RetryableError):
        connector.send(reply(item, "label", label))
    connector.send(reply(item, "label", label))
    assert len(whatsapp.uploads) == 2  # uploading again is harmless
    assert len(whatsapp.sent) == 1 and whatsapp.sent[0]["media"]["data"] == PNG


def test_metas_upload_refusal_is_permanent_with_advice(whatsapp, connector, item):
    status, body, headers = graph_error(400, 131053, "Media upload error", details="Media file size is too big.")
    whatsapp.fail_next(status, body, headers, path_prefix=f"/v25.0/{whatsapp.phone_number_id}/media")
    with pytest.raises(PermanentError) as refused:
        connector.send(reply(item, "", file("label.png", "image/png", PNG)))
    assert "Media upload error" in str(refused.value) and "smaller" in str(refused.value)
    assert not whatsapp.sent


def test_the_imitation_refuses_what_meta_refuses(whatsapp, connector, item):
    # The connector's own checks are skipped here to prove the imitation answers as documented.
    import requests

    url = f"{whatsapp.url}/v25.0/{whatsapp.phone_number_id}/media"
    auth = {"Authorization": f"Bearer {whatsapp.access_token}"}
    gif = requests.post(url, headers=auth, files={"file": ("a.gif", b"GIF89a", "image/gif")},
                        data={"type": "image/gif", "messaging_product": "whatsapp"}, timeout=10)
    assert gif.status_code == 400 and gif.json()["error"]["code"] == 100
    assert "Received file of type 'image/gif'" in gif.json()["error"]["message"]
    big = requests.post(url, headers=auth, files={"file": ("a.png", b"\x00" * (5 * MB + 1), "image/png")},
                        data={"type": "image/png", "messaging_product": "whatsapp"}, timeout=10)
    assert big.status_code == 400 and big.json()["error"]["code"] == 131053


def test_media_outside_the_24_hour_window_needs_a_template(whatsapp, connector):
    whatsapp.customer_text("16505559999", "hello?", at=time.time() - 25 * 3600)
    [request] = whatsapp.take_requests()
    [old] = connector.parse_webhook(WebhookRequest(body=request.body, headers={})).items
    with pytest.raises(PermanentError, match="template"):
        connector.send(reply(old, "", file("label.png", "image/png", PNG)))
    assert not whatsapp.sent
