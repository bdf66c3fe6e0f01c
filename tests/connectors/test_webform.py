"""The web form connector: the shared contract (push-only) plus the form's own protections.

Requests are built the way a browser sends them (multipart/form-data with the hidden token
fields) and signed independently of the connector, with the installation's derived key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from connectors.base import ItemError, PermanentError, WebhookRequest
from connectors.testing import ChannelDriver, ConnectorContract
from connectors.webform import FormError, FormRefused, WebformConnector, clean_email
from inbox.models import Author, OutboundReply

CHANNEL = ConnectorContract.channel_name


def sign(context, channel: str, submission_id: str, issued_at: int) -> str:
    key = context.signing_key(f"webform:{channel}")
    return hmac.new(key, f"{submission_id}:{issued_at}".encode(), hashlib.sha256).hexdigest()


def form_fields(context, channel: str = CHANNEL, *, issued_at: int | None = None, **overrides: Any) -> dict:
    submission_id = str(uuid.uuid4())
    issued_at = int(time.time()) if issued_at is None else issued_at
    fields = {
        "submission_id": submission_id,
        "issued_at": str(issued_at),
        "token": sign(context, channel, submission_id, issued_at),
        "website": "",
        "name": "Ada Lovelace",
        "email": "Ada@Example.COM",
        "subject": "",
        "message": "My order #1234 never arrived.\nCan you check?",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def multipart(fields: dict, files: list[tuple[str, str, bytes]] = (), **headers: str) -> WebhookRequest:
    data = MultiDict(fields)
    for filename, content_type, content in files:
        data.add("attachments", FileStorage(io.BytesIO(content), filename=filename, content_type=content_type))
    boundary, body = encode_multipart(data)
    return WebhookRequest(
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "User-Agent": "pytest", **headers},
        remote_addr="192.0.2.7",
    )


class WebformChannel(ChannelDriver):
    """Drives the form as browsers would: each request is a page render plus a submit."""

    def __init__(self, context) -> None:
        self.context = context
        self.sent: list[WebhookRequest] = []

    def settings(self) -> dict[str, Any]:
        return {"reply_channel": "mail", "allowed_origins": ["https://www.example.com"]}

    def webhook_requests(self, count: int) -> list[WebhookRequest]:
        if count == 0:
            return list(self.sent)  # the browser retries exactly what it sent before
        made = [
            multipart(form_fields(self.context, email=f"customer{i}@example.com", message=f"Question number {i}"))
            for i in range(count)
        ]
        self.sent += made
        return made

    def tamper(self, request: WebhookRequest) -> WebhookRequest:
        boundary = request.headers["Content-Type"].split("boundary=")[1]
        text = request.body.decode()
        [old_id] = [line for line in text.split("\r\n") if _is_uuid(line)]
        body = text.replace(old_id, str(uuid.uuid4())).encode()
        return WebhookRequest(body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                              remote_addr=request.remote_addr)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


class TestWebformContract(ConnectorContract):
    connector_class = WebformConnector

    @pytest.fixture
    def channel(self, contract_context):
        return WebformChannel(contract_context)


@pytest.fixture
def context(tmp_path):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="webform-test", mail_domain="mainland.test", base_url="https://inbox.example.net",
        max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
        signing_secret=b"\x01" * 32,
    )


@pytest.fixture
def form(context):
    return WebformConnector(CHANNEL, {"reply_channel": "mail", "max_attachments": 2,
                                      "max_attachment_bytes": 1000}, context=context)


def accept(form: WebformConnector, request: WebhookRequest):
    form.verify_webhook(request)
    [item] = form.parse_webhook(request).items
    return item


def test_submission_becomes_one_private_item_from_the_email_identity(form, context):
    fields = form_fields(context)
    item = accept(form, multipart(fields, Origin="https://www.example.com"))
    assert item.external_id == fields["submission_id"]
    assert item.author == Author(handle="ada@example.com", name="Ada Lovelace", identity_kind="email", proven=False)
    assert item.subject == "My order #1234 never arrived."  # no subject field: the first line
    assert item.text == "My order #1234 never arrived.\nCan you check?"
    assert item.public is False
    assert item.headers["Origin"] == "https://www.example.com"
    assert item.headers["User-Agent"] == "pytest"
    assert item.headers["Remote-Addr"] == "192.0.2.7"


def test_subject_field_wins_over_first_line(form, context):
    item = accept(form, multipart(form_fields(context, subject="Where is my parcel?")))
    assert item.subject == "Where is my parcel?"


def test_token_from_the_connector_itself_is_accepted(form):
    fields = {**form.new_form_token(), "website": "", "email": "a@b.example", "message": "hello"}
    assert accept(form, multipart(fields)).external_id == fields["submission_id"]


@pytest.mark.parametrize("website", ["http://spam.example", None], ids=["filled", "missing"])
def test_honeypot_filled_or_missing_is_refused(form, context, website):
    request = multipart(form_fields(context, website=website))
    with pytest.raises(FormRefused) as refused:
        form.verify_webhook(request)
    assert refused.value.reason == "honeypot"
    assert isinstance(refused.value, PermanentError)


def test_token_older_than_24_hours_is_refused(form, context):
    old = int(time.time()) - 24 * 3600 - 60
    with pytest.raises(FormRefused) as refused:
        form.verify_webhook(multipart(form_fields(context, issued_at=old)))
    assert refused.value.reason == "expired"


def test_token_from_23_hours_ago_is_accepted(form, context):
    item = accept(form, multipart(form_fields(context, issued_at=int(time.time()) - 23 * 3600)))
    assert item.author.handle == "ada@example.com"


def test_token_from_the_future_is_refused(form, context):
    with pytest.raises(FormRefused):
        form.verify_webhook(multipart(form_fields(context, issued_at=int(time.time()) + 3600)))


def test_token_of_another_form_channel_is_refused(form, context):
    fields = form_fields(context, channel="other-form")
    with pytest.raises(FormRefused) as refused:
        form.verify_webhook(multipart(fields))
    assert refused.value.reason == "invalid_token"


def test_missing_token_is_refused(form, context):
    with pytest.raises(FormRefused):
        form.verify_webhook(multipart(form_fields(context, token=None)))


@pytest.mark.parametrize("address", [
    "victim@x.example\r\nBcc: a@b.example",
    "victim@x.example\nBcc: a@b.example",
    "a@b.example, c@d.example",
    "a@b.example;c@d.example",
    "Ada <a@b.example>",
    "not-an-address",
    "a@localhost",
    "a@@b.example",
    "",
])
def test_bad_email_is_a_form_error_on_the_email_field(form, context, address):
    with pytest.raises(FormError) as error:
        accept(form, multipart(form_fields(context, email=address)))
    assert "email" in error.value.errors
    assert isinstance(error.value, ItemError)


def test_quoted_local_part_is_normalised():
    assert clean_email('"a"@B.example') == "a@b.example"
    assert clean_email("  Ada.Lovelace+shop@Example.COM ") == "ada.lovelace+shop@example.com"


def test_all_field_errors_come_at_once(form, context):
    with pytest.raises(FormError) as error:
        accept(form, multipart(form_fields(context, email="nope", message="  ")))
    assert set(error.value.errors) == {"email", "message"}
    assert error.value.codes == {"email": "invalid_email", "message": "required"}


def test_message_over_max_text_chars_is_a_413_error(context):
    form = WebformConnector(CHANNEL, {"reply_channel": "mail", "max_text_chars": 100}, context=context)
    with pytest.raises(FormError) as error:
        accept(form, multipart(form_fields(context, message="x" * 101)))
    assert error.value.status == 413
    assert "message" in error.value.errors


def test_ten_megabyte_field_is_refused_before_it_is_read_into_memory(form, context):
    with pytest.raises(FormError) as error:
        accept(form, multipart(form_fields(context, message="x" * 10 * 1024 * 1024)))
    assert error.value.status == 413


def test_attachment_is_kept_with_its_name_type_and_bytes(form, context):
    pdf = b"%PDF-1.4 receipt"
    item = accept(form, multipart(form_fields(context), files=[("../receipt 1.pdf", "application/pdf", pdf)]))
    [attachment] = item.attachments
    assert attachment.filename == "../receipt 1.pdf"  # kept raw: the pipeline makes it safe
    assert attachment.content_type == "application/pdf"
    assert attachment.data == pdf
    assert attachment.size == len(pdf)


def test_empty_file_input_adds_no_attachment(form, context):
    item = accept(form, multipart(form_fields(context), files=[("", "application/octet-stream", b"")]))
    assert item.attachments == ()


def test_too_many_attachments_is_an_error(form, context):
    files = [(f"f{i}.txt", "text/plain", b"hi") for i in range(3)]
    with pytest.raises(FormError) as error:
        accept(form, multipart(form_fields(context), files=files))
    assert error.value.codes["attachments"] == "too_many"


def test_too_large_attachment_is_an_error(form, context):
    with pytest.raises(FormError) as error:
        accept(form, multipart(form_fields(context), files=[("big.bin", "application/octet-stream", b"x" * 1001)]))
    assert error.value.codes["attachments"] == "file_too_large"
    assert error.value.status == 413


def test_urlencoded_body_is_accepted(form, context):
    fields = form_fields(context, message="{{7*7}} & <b>bold</b>")
    request = WebhookRequest(body=urlencode(fields).encode(),
                             headers={"content-type": "application/x-www-form-urlencoded"})
    item = accept(form, request)
    assert item.text == "{{7*7}} & <b>bold</b>"


def test_json_body_with_a_base64_attachment_is_accepted(form, context):
    fields = form_fields(context)
    fields["attachments"] = [{"filename": "a.txt", "content_type": "text/plain",
                              "data": base64.b64encode(b"hello").decode()}]
    request = WebhookRequest(body=json.dumps(fields).encode(), headers={"Content-Type": "application/json"})
    item = accept(form, request)
    assert item.attachments[0].data == b"hello"


def test_nul_bytes_and_invalid_utf8_do_not_crash(form, context):
    fields = form_fields(context, message="before\x00after")
    request = multipart(fields)
    body = request.body.replace(b"before", b"before\xff\xfe")
    item = accept(form, WebhookRequest(body=body, headers=request.headers))
    assert "\x00" not in item.text
    assert item.text.startswith("before") and item.text.endswith("after")


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"email": ["a"]}', b"\xff\xfe{}"])
def test_malformed_json_is_a_form_error(form, body):
    with pytest.raises(FormError):
        form.verify_webhook(WebhookRequest(body=body, headers={"Content-Type": "application/json"}))


def test_unknown_content_type_is_a_form_error(form):
    with pytest.raises(FormError) as error:
        form.verify_webhook(WebhookRequest(body=b"hi", headers={"Content-Type": "text/plain"}))
    assert error.value.status == 415


def test_send_points_at_the_reply_channel(form):
    reply = OutboundReply(idempotency_key="k", channel=CHANNEL, conversation_id=1, text="hi",
                          to=Author(handle="a@b.example"))
    with pytest.raises(PermanentError, match="reply_channel"):
        form.send(reply)


def test_stored_raw_can_be_parsed_again(form, context):
    item = accept(form, multipart(form_fields(context, subject="Parcel")))
    again = form.parse_raw(item.raw)
    assert (again.external_id, again.author.handle, again.subject, again.text) == (
        item.external_id, item.author.handle, item.subject, item.text)


@pytest.mark.parametrize("origins, problem", [
    (["https://www.example.com/contact"], "allowed_origins"),
    (["ftp://example.com"], "allowed_origins"),
    ("https://a.example https://b.example", None),
])
def test_allowed_origins_are_checked_at_start_up(origins, problem):
    if problem:
        with pytest.raises(PermanentError, match=problem):
            WebformConnector.check_config({"reply_channel": "mail", "allowed_origins": origins})
    else:
        config = WebformConnector.check_config({"reply_channel": "mail", "allowed_origins": origins})
        assert config["allowed_origins"] == ("https://a.example", "https://b.example")


def test_reply_channel_is_required():
    with pytest.raises(PermanentError, match="reply_channel"):
        WebformConnector.check_config({})
