"""Telegram replies that carry files, against the imitation's multipart send methods.

One file is one `sendPhoto` / `sendVideo` / `sendAudio` / `sendDocument` call (multipart, the
reply's text as `caption`, threaded with `reply_parameters`); several files are one
`sendMediaGroup` call (caption on the first item), so a retry never repeats a part Telegram
already accepted. Sizes (photos 10 MB, other files 50 MB), the 1024-character caption and the
album's 10 items are checked first, and Telegram's refusals say what to do.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.base import PermanentError, RetryableError
from connectors.telegram import TelegramConnector
from inbox.models import Attachment, OutboundReply
from sandbox.telegram import TelegramImitation

pytestmark = pytest.mark.server  # starts a loopback imitation of the Bot API

JPEG = b"\xff\xd8\xff\xe0" + b"label-photo" * 200
PDF = b"%PDF-1.7\n" + b"invoice 1234 " * 300
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"frames" * 100
MP3 = b"ID3" + b"\x00tune" * 100
MB = 1024 * 1024


@pytest.fixture
def telegram():
    with TelegramImitation() as imitation:
        yield imitation


@pytest.fixture
def connector(telegram):
    made = TelegramConnector("tg", {"token": telegram.token, "api_url": telegram.url})
    yield made
    made.close()


@pytest.fixture
def question(telegram, connector):
    jane = telegram.user("Jane")
    message = telegram.private_message(jane, "Can you send me the label?")
    [item] = connector.fetch(None).items
    return item, message


def file(filename: str, content_type: str, data: bytes) -> Attachment:
    return Attachment(filename=filename, content_type=content_type, data=data, size=len(data))


def reply(item, text: str = "", *attachments: Attachment, **extra: Any) -> OutboundReply:
    return OutboundReply(idempotency_key="out-3", channel="tg", conversation_id=1, text=text, to=item.author,
                         thread_key=item.thread_key, reply_to_external_id=item.external_id,
                         attachments=attachments, **extra)


def send_calls(telegram: TelegramImitation) -> list:
    return telegram.requests_to(r"/send[A-Za-z]+$")


@pytest.mark.parametrize(("attachment", "method", "kind"), [
    (file("label.jpg", "image/jpeg", JPEG), "sendPhoto", "photo"),
    (file("invoice-1234.pdf", "application/pdf", PDF), "sendDocument", "document"),
    (file("how-to.mp4", "video/mp4", MP4), "sendVideo", "video"),
    (file("jingle.mp3", "audio/mpeg", MP3), "sendAudio", "audio"),
])
def test_one_file_is_one_upload_with_the_text_as_caption_threaded(telegram, connector, question, attachment,
                                                                  method, kind):
    item, message = question
    sent_id = connector.send(reply(item, "Here it is.", attachment))
    [call] = send_calls(telegram)
    assert call.path.endswith(f"/{method}") and call.headers["Content-Type"].startswith("multipart/form-data")
    [sent] = telegram.sent
    [uploaded] = sent["files"]
    assert (uploaded["kind"], uploaded["filename"], uploaded["data"]) == (kind, attachment.filename, attachment.data)
    assert sent["text"] == "Here it is." and sent["reply_to"] == message["message_id"]
    assert sent["params"]["reply_parameters"] == {"message_id": message["message_id"],
                                                  "allow_sending_without_reply": True}
    assert sent_id == f"{message['chat']['id']}:{sent['message']['message_id']}"
    assert kind in sent["message"]  # the message Telegram answers with names the media


def test_a_file_may_go_without_text(telegram, connector, question):
    item, _ = question
    connector.send(reply(item, "", file("label.jpg", "image/jpeg", JPEG)))
    [sent] = telegram.sent
    assert "caption" not in sent["params"] and sent["files"][0]["data"] == JPEG


def test_several_files_are_one_album_with_the_caption_on_the_first(telegram, connector, question):
    item, message = question
    photos = [file(f"side-{n}.jpg", "image/jpeg", JPEG + bytes([n])) for n in range(3)]
    video = file("unboxing.mp4", "video/mp4", MP4)
    sent_id = connector.send(reply(item, "Photos of your parcel", *photos, video))
    [call] = send_calls(telegram)
    assert call.path.endswith("/sendMediaGroup")
    [sent] = telegram.sent
    assert [(f["kind"], f["filename"]) for f in sent["files"]] == [
        ("photo", "side-0.jpg"), ("photo", "side-1.jpg"), ("photo", "side-2.jpg"), ("video", "unboxing.mp4")]
    assert [f["data"] for f in sent["files"]] == [p.data for p in photos] + [MP4]
    media = sent["params"]["media"]
    assert media[0]["caption"] == "Photos of your parcel" and all("caption" not in m for m in media[1:])
    assert sent["reply_to"] == message["message_id"]
    assert sent_id == f"{message['chat']['id']}:{sent['messages'][0]['message_id']}"
    assert len({m["media_group_id"] for m in sent["messages"]}) == 1


def test_an_album_mixing_documents_and_photos_goes_as_documents(telegram, connector, question):
    item, _ = question
    connector.send(reply(item, "label and invoice", file("label.jpg", "image/jpeg", JPEG),
                         file("invoice.pdf", "application/pdf", PDF)))
    [sent] = telegram.sent
    assert [f["kind"] for f in sent["files"]] == ["document", "document"]
    assert [f["data"] for f in sent["files"]] == [JPEG, PDF]


def test_a_picture_over_10_mb_goes_whole_as_a_document(telegram, connector, question):
    item, _ = question
    big = file("scan.png", "image/png", b"\x89PNG" + b"\x00" * (10 * MB))
    connector.send(reply(item, "", big))
    [sent] = telegram.sent
    assert sent["method"] == "sendDocument" and sent["files"][0]["data"] == big.data


def test_limits_are_declared(connector):
    limits = connector.limits
    assert limits.accepts_files(public=True) and limits.accepts_files(public=False)
    assert limits.accepts_type("application/zip")  # any file goes, as a document if need be
    assert limits.max_attachments == 10 and limits.max_attachment_bytes == 50 * MB


def test_refusals_before_sending_say_what_to_do(telegram, connector, question):
    item, _ = question
    label = file("label.jpg", "image/jpeg", JPEG)
    with pytest.raises(PermanentError) as long_caption:
        connector.send(reply(item, "x" * 1025, label))
    assert "1024" in str(long_caption.value) and "reply of its own" in str(long_caption.value)
    with pytest.raises(PermanentError) as too_big:
        connector.send(reply(item, "", file("backup.zip", "application/zip", b"\x00" * (50 * MB + 1))))
    assert "backup.zip" in str(too_big.value) and "50 MB" in str(too_big.value)
    with pytest.raises(PermanentError, match="at most 10"):
        connector.send(reply(item, "", *[label] * 11))
    assert send_calls(telegram) == []
    connector.send(reply(item, "x" * 1024, label))
    assert len(telegram.sent[-1]["text"]) == 1024


def test_flood_control_on_an_album_is_retried_once_whole(telegram, connector, question):
    item, _ = question
    files = (file("a.jpg", "image/jpeg", JPEG), file("b.jpg", "image/jpeg", JPEG + b"b"))
    telegram.flood(7)
    with pytest.raises(RetryableError) as raised:
        connector.send(reply(item, "two photos", *files))
    assert raised.value.retry_after == 7 and telegram.sent == []
    connector.send(reply(item, "two photos", *files))
    [sent] = telegram.sent
    assert len(sent["messages"]) == 2


def test_telegrams_own_refusals_are_permanent_with_its_reason(telegram, connector, question):
    item, _ = question
    telegram.fail_next(413, {"ok": False, "error_code": 413, "description": "Request Entity Too Large"},
                       path_prefix="/bot")
    with pytest.raises(PermanentError) as too_large:
        connector.send(reply(item, "", file("label.jpg", "image/jpeg", JPEG)))
    assert "Request Entity Too Large" in str(too_large.value) and "smaller file" in str(too_large.value)
    telegram.block_bot(telegram.user("Jane"))
    with pytest.raises(PermanentError, match="blocked by the user"):
        connector.send(reply(item, "", file("label.jpg", "image/jpeg", JPEG)))
    assert telegram.sent == []


def test_the_imitation_refuses_what_telegram_refuses(telegram, question):
    # Straight to the imitation, past the connector's own checks.
    import requests

    item, _ = question
    base = f"{telegram.url}/bot{telegram.token}"
    chat = {"chat_id": item.thread_key}
    not_a_picture = requests.post(f"{base}/sendPhoto", data=chat, files={"photo": ("a.pdf", PDF, "application/pdf")},
                                  timeout=10)
    assert not_a_picture.json() == {"ok": False, "error_code": 400, "description": "Bad Request: IMAGE_PROCESS_FAILED"}
    too_big = requests.post(f"{base}/sendDocument", data=chat,
                            files={"document": ("big.bin", b"\x00" * (50 * MB + 1), "application/octet-stream")},
                            timeout=30)
    assert too_big.status_code == 413 and too_big.json()["description"] == "Request Entity Too Large"
    one = requests.post(f"{base}/sendMediaGroup", timeout=10, files={"f": ("a.jpg", JPEG, "image/jpeg")},
                        data={**chat, "media": json.dumps([{"type": "photo", "media": "attach://f"}])})
    assert one.status_code == 400 and "2-10" in one.json()["description"]
    mixed = requests.post(f"{base}/sendMediaGroup", timeout=10,
                          files={"f": ("a.jpg", JPEG, "image/jpeg"), "g": ("b.pdf", PDF, "application/pdf")},
                          data={**chat, "media": json.dumps([{"type": "photo", "media": "attach://f"},
                                                             {"type": "document", "media": "attach://g"}])})
    assert mixed.json()["description"] == "Bad Request: document can't be mixed with other media types"
    assert telegram.sent == []


def test_a_file_follows_a_group_upgraded_to_a_supergroup(telegram, connector):
    ann = telegram.user("Ann")
    telegram.group_message(ann, "the manual please", group="Old group")
    [item] = connector.fetch(None).items  # the mention of the bot in the group
    new_group = telegram.group("New supergroup")
    telegram.fail_next(400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: group chat was upgraded to a supergroup chat",
                             "parameters": {"migrate_to_chat_id": new_group["id"]}}, path_prefix="/bot")
    connector.send(reply(item, "Here is the manual", file("manual.pdf", "application/pdf", PDF)))
    [sent] = telegram.sent
    assert sent["chat_id"] == new_group["id"] and sent["files"][0]["data"] == PDF
