"""The website chat connector: the shared contract (push-only) plus the visitor's protections.

Requests are built as the widget sends them: JSON with a client id, the visitor token in the
`X-Mainland-Visitor` header.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import pytest

from connectors.base import PermanentError, WebhookRequest
from connectors.chat import ChatConnector, ChatRefused
from connectors.testing import ChannelDriver, ConnectorContract
from inbox.models import Author, OutboundReply

CHANNEL = ConnectorContract.channel_name


def message(token: str, text: str = "Where is my parcel?", client_id: str | None = None, **extra: Any) -> WebhookRequest:
    body = {"client_id": client_id or str(uuid.uuid4()), "text": text, **extra}
    return WebhookRequest(body=json.dumps(body).encode(), remote_addr="192.0.2.7",
                          headers={"Content-Type": "application/json", "X-Mainland-Visitor": token,
                                   "Origin": "https://www.example.com", "User-Agent": "pytest"})


class ChatChannel(ChannelDriver):
    """Drives the widget: each request is one visitor's message."""

    def __init__(self) -> None:
        self.sent: list[WebhookRequest] = []

    def settings(self) -> dict[str, Any]:
        return {"allowed_origins": ["https://www.example.com"], "identity_secret": "contract-identity-secret"}

    def webhook_requests(self, count: int) -> list[WebhookRequest]:
        if count == 0:
            return list(self.sent)  # the widget resends exactly what it sent before
        made = [message(secrets.token_urlsafe(32), f"Question number {i}") for i in range(count)]
        self.sent += made
        return made

    def tamper(self, request: WebhookRequest) -> WebhookRequest:
        # No signature to break: what makes a post genuine is a well-formed visitor token.
        headers = {**request.headers, "X-Mainland-Visitor": "forged"}
        return WebhookRequest(body=request.body, headers=headers, remote_addr=request.remote_addr)


class TestChatContract(ConnectorContract):
    connector_class = ChatConnector

    @pytest.fixture
    def channel(self):
        return ChatChannel()

    def test_reply_is_threaded_to_the_message_it_answers(self, connector, ingestor, channel, store):
        """A chat reply is delivered by being stored in the visitor's conversation (tests/test_chat.py
        follows it to the widget); `send` acknowledges it with the same id on every retry."""
        self.take_in(connector, ingestor, channel, 1)
        [conversation] = store.recent_conversations()
        [stored] = store.conversation_messages(conversation["id"])
        reply = OutboundReply(idempotency_key="contract-reply-1", channel=CHANNEL, conversation_id=conversation["id"],
                              text="Thanks, we are on it.", to=Author(handle=stored["author_handle"]),
                              thread_key=store.conversation(conversation["id"])["thread_key"],
                              reply_to_external_id=stored["external_id"])
        first = connector.send(reply)
        assert first and connector.send(reply) == first


@pytest.fixture
def contract_context(tmp_path):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="chat-test", mail_domain="mainland.test", base_url="https://inbox.example.net",
        max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
        signing_secret=b"\x01" * 32,
    )


@pytest.fixture
def chat(contract_context):
    return ChatConnector(CHANNEL, {}, context=contract_context)


def accept(chat: ChatConnector, request: WebhookRequest):
    chat.verify_webhook(request)
    [item] = chat.parse_webhook(request).items
    return item


def test_one_visitor_is_one_identity_and_one_thread(chat):
    token = secrets.token_urlsafe(32)
    first, second = accept(chat, message(token, "Hi")), accept(chat, message(token, "Still there?"))
    assert first.author.handle == second.author.handle == first.thread_key == second.thread_key
    assert first.author.identity_kind == "chat"
    assert first.author.name == f"Website visitor {first.author.handle[:6]}"
    assert token not in first.author.handle and token not in first.raw.decode()  # only its HMAC is kept


def test_two_visitors_never_share_an_id_even_with_the_same_client_id(chat):
    client_id = str(uuid.uuid4())
    one = accept(chat, message(secrets.token_urlsafe(32), client_id=client_id))
    two = accept(chat, message(secrets.token_urlsafe(32), client_id=client_id))
    assert one.author.handle != two.author.handle
    assert one.external_id != two.external_id


def test_the_same_client_id_is_the_same_item(chat):
    token, client_id = secrets.token_urlsafe(32), str(uuid.uuid4())
    assert accept(chat, message(token, client_id=client_id)).external_id == \
        accept(chat, message(token, client_id=client_id)).external_id


def test_the_visitor_id_depends_on_the_channel(contract_context):
    token = secrets.token_urlsafe(32)
    one = ChatConnector("one", {}, context=contract_context)
    two = ChatConnector("two", {}, context=contract_context)
    assert one.visitor_id(token) != two.visitor_id(token)


def test_control_characters_are_dropped_and_text_stays_text(chat):
    item = accept(chat, message(secrets.token_urlsafe(32), "<b>Hello</b>\x00\x07 there\r\nbye", name="Ada\nL"))
    assert item.text == "<b>Hello</b> there\nbye"
    assert item.html is None
    assert item.author.name == "Ada L"


@pytest.mark.parametrize(("body", "reason"), [
    ({"client_id": "nope", "text": "hi"}, "client_id"),
    ({"client_id": str(uuid.uuid4()), "text": "  "}, "empty"),
    ({"client_id": str(uuid.uuid4()), "text": 5}, "unreadable"),
    ({"client_id": str(uuid.uuid4()), "text": "x" * 4001}, "too_long"),
])
def test_what_is_not_a_message_is_refused_with_its_reason(chat, body, reason):
    request = WebhookRequest(body=json.dumps(body).encode(), headers={"X-Mainland-Visitor": secrets.token_urlsafe(32)})
    with pytest.raises(ChatRefused) as refused:
        accept(chat, request)
    assert refused.value.reason == reason


def test_a_stored_message_can_be_read_again(chat):
    item = accept(chat, message(secrets.token_urlsafe(32), "Hello again"))
    again = chat.parse_raw(item.raw, item.source_ref)
    assert (again.external_id, again.text, again.thread_key) == (item.external_id, item.text, item.thread_key)


@pytest.mark.parametrize("settings", [{"color": "red"}, {"allowed_origins": ["https://x.example/page"]},
                                      {"per_visitor_per_minute": 0}])
def test_bad_settings_are_reported(settings):
    with pytest.raises(PermanentError):
        ChatConnector(CHANNEL, settings)


def test_a_signed_in_user_is_one_visitor_on_every_device(contract_context):
    import hashlib
    import hmac

    chat = ChatConnector(CHANNEL, {"identity_secret": "s3cret"}, context=contract_context)
    proof = hmac.new(b"s3cret", b"user-42", hashlib.sha256).hexdigest()
    laptop = message(secrets.token_urlsafe(32))
    phone = message(secrets.token_urlsafe(32))
    for request in (laptop, phone):
        request.headers.update({"X-Mainland-User": "user-42", "X-Mainland-User-Hash": proof})
    assert accept(chat, laptop).thread_key == accept(chat, phone).thread_key
    phone.headers["X-Mainland-User-Hash"] = proof[:-1] + ("0" if proof[-1] != "0" else "1")
    with pytest.raises(ChatRefused):
        accept(chat, phone)


def upload(token: str, data: bytes, name: str, content_type: str, client_id: str | None = None) -> WebhookRequest:
    return WebhookRequest(body=data, remote_addr="192.0.2.7", headers={
        "Content-Type": content_type, "X-Mainland-Visitor": token, "X-Mainland-Client-Id": client_id or str(uuid.uuid4()),
        "X-Mainland-File-Name": name, "Origin": "https://www.example.com"})


def test_a_visitors_file_is_one_item_with_the_file_and_can_be_read_again_without_its_bytes(chat):
    token = secrets.token_urlsafe(32)
    pdf = b"%PDF-1.4\n%%EOF\n"
    [item] = chat.parse_upload(upload(token, pdf, "in%C3%A9voice%2F..%2Fa.pdf", "application/pdf")).items
    [file] = item.attachments
    assert (file.filename, file.content_type, file.data) == ("a.pdf", "application/pdf", pdf)
    assert item.text == "" and item.subject == "a.pdf" and item.thread_key == item.author.handle
    assert token not in item.raw.decode() and b"%PDF" not in item.raw  # the bytes live in the attachment store
    again = chat.parse_raw(item.raw, item.source_ref)
    assert again.external_id == item.external_id
    assert [(a.filename, a.size, a.data) for a in again.attachments] == [("a.pdf", len(pdf), None)]


def test_the_chat_declares_its_files(chat):
    assert chat.limits.accepts_files(public=False)
    assert chat.limits.accepts_type("application/pdf") and not chat.limits.accepts_type("text/html")
    assert chat.max_file_bytes == 10 * 1024 * 1024
