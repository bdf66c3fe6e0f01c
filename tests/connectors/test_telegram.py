"""The Telegram connector against the loopback Bot API imitation (sandbox/telegram.py).

The contract kit runs twice: once polling with `getUpdates`, once in webhook mode (push-only,
verified by the secret-token header). The tests below prove what is particular to Telegram: the
offset cursor, flood control's `retry_after`, a revoked token, photos and documents through
getFile, private chats versus group mentions (entity offsets in UTF-16), edits, threaded replies
with `reply_parameters`, the 4096-character rule and the webhook secret.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from typing import Any

import pytest

from connectors.base import PermanentError, RetryableError, WebhookRequest
from connectors.telegram import SECRET_HEADER, TelegramConnector
from connectors.testing import ChannelDriver, ConnectorContract, fetch_all
from inbox.models import Author, OutboundReply
from sandbox.telegram import TelegramImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

WEBHOOK_SECRET = "s3cret-Webhook_token"
PHOTO = b"\xff\xd8\xff\xe0" + b"JFIF-photo-bytes" * 64
_people = itertools.count(1)


@pytest.fixture
def telegram():
    with TelegramImitation() as imitation:
        yield imitation


def settings_for(imitation: TelegramImitation, **extra: Any) -> dict[str, Any]:
    return {"token": imitation.token, "api_url": imitation.url, **extra}


class TelegramChannel(ChannelDriver):
    """Customers write to the bot in private chats; the driver reads what the bot sent back."""

    rate_limit_delay = 35

    def __init__(self, imitation: TelegramImitation, *, webhook: bool = False) -> None:
        self.imitation = imitation
        self.webhook = webhook
        self.delivered: list[WebhookRequest] = []

    def settings(self) -> dict[str, Any]:
        if self.webhook:
            return settings_for(self.imitation, mode="webhook", webhook_secret=WEBHOOK_SECRET)
        return settings_for(self.imitation)

    def customer_writes(self, count: int) -> list[str]:
        made = []
        for _ in range(count):
            number = next(_people)
            user = self.imitation.user(f"Customer{number}", username=f"customer{number}")
            message = self.imitation.private_message(user, f"Question number {number}")
            made.append(f"{message['chat']['id']}:{message['message_id']}")
        return made

    def customer_writes_malformed(self) -> None:
        self.imitation.malformed_update()

    def replies_received(self) -> list[dict[str, Any]]:
        return [{"text": s["text"], "in_reply_to": f"{s['chat_id']}:{s['reply_to']}"} for s in self.imitation.sent]

    def inject_fault(self, fault: str) -> bool:
        if fault == "rate_limited":
            self.imitation.flood(35)
        elif fault == "server_error":
            self.imitation.server_error()
        else:
            return False
        return True

    def webhook_requests(self, count: int) -> list[WebhookRequest]:
        if count == 0:
            return list(self.delivered)  # Telegram redelivers exactly what it sent before
        self.customer_writes(count)
        with self.imitation.lock:
            updates, self.imitation.updates = list(self.imitation.updates), []
        made = [WebhookRequest(body=json.dumps(u).encode(), remote_addr="149.154.167.197",
                               headers={"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET})
                for u in updates]
        self.delivered += made
        return made

    def tamper(self, request: WebhookRequest) -> WebhookRequest:
        # Telegram signs nothing: the secret header is the proof, so a forger gets it wrong.
        return dataclasses.replace(request, headers={**request.headers, SECRET_HEADER: WEBHOOK_SECRET + "x"})


class TestTelegramPollingContract(ConnectorContract):
    connector_class = TelegramConnector

    @pytest.fixture
    def channel(self, telegram):
        return TelegramChannel(telegram)

    @pytest.fixture
    def contract_context(self, context):
        return context


class TestTelegramWebhookContract(ConnectorContract):
    connector_class = TelegramConnector
    #: The driver's settings put the bot in webhook mode: a push-only channel.
    push_only = True

    @pytest.fixture
    def channel(self, telegram):
        return TelegramChannel(telegram, webhook=True)

    @pytest.fixture
    def contract_context(self, context):
        return context


# Channel-specific behaviour ----------------------------------------------------------------------


@pytest.fixture
def context(tmp_path, telegram):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="telegram-test", mail_domain="mainland.test", base_url="https://inbox.example.net",
        max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
        fetch_allow_hosts=(telegram.host,),
    )


@pytest.fixture
def make(telegram, context):
    made = []

    def build(**extra: Any) -> TelegramConnector:
        connector = TelegramConnector("tg", settings_for(telegram, **extra), context=context)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def reply_to(item, text: str = "Thanks, we are on it.", **extra: Any) -> OutboundReply:
    return OutboundReply(idempotency_key="out-1", channel="tg", conversation_id=1, text=text,
                         to=item.author, thread_key=item.thread_key, reply_to_external_id=item.external_id,
                         public=item.public, **extra)


def test_private_message_is_a_direct_message(telegram, make):
    jane = telegram.user("Jane", username="janedoe", last_name="Doe", language_code="nl")
    message = telegram.private_message(jane, "My order #1234 arrived broken")
    [item] = fetch_all(make()).items
    assert item.external_id == f"{jane['id']}:{message['message_id']}"
    assert (item.public, item.thread_key, item.text) == (False, str(jane["id"]), "My order #1234 arrived broken")
    assert item.author == Author(handle=str(jane["id"]), name="Jane Doe", identity_kind="telegram")
    assert item.headers["username"] == "janedoe" and item.headers["language"] == "nl"
    assert item.sent_at.timestamp() == message["date"]


def test_offset_cursor_confirms_updates_only_on_the_next_call(telegram, make):
    connector = make(page_size=2)
    for n in range(3):
        telegram.private_message(telegram.user(f"P{n}"), f"hello {n}")
    first = connector.fetch(None)
    assert len(first.items) == 2 and first.more
    assert first.cursor == "795120332"  # the update_id of the second update
    # Nothing is confirmed yet: a crash before the commit re-reads the same page.
    assert len(telegram.updates) == 3
    second = connector.fetch(first.cursor)
    assert json.loads(telegram.requests_to("getUpdates")[-1].body)["offset"] == 795120333
    assert [i.text for i in second.items] == ["hello 2"] and not second.more
    assert len(telegram.updates) == 1  # the first two were confirmed by the higher offset
    idle = connector.fetch(second.cursor)
    assert idle.items == [] and idle.cursor == second.cursor and telegram.updates == []


def test_duplicate_and_boundary_updates_are_dropped(telegram, make):
    connector = make()
    telegram.private_message(telegram.user("Dup"), "only once")
    telegram.duplicate_update()
    result = connector.fetch(None)
    assert len({i.external_id for i in result.items}) == 1
    # A server answering with an update at or below the cursor (a repeated page) adds nothing.
    repeated = {"update_id": int(result.cursor), "message": {"broken": True}}
    telegram.fail_next(200, {"ok": True, "result": [repeated]}, path_prefix="/bot")
    again = connector.fetch(result.cursor)
    assert again.items == [] and again.rejects == [] and again.cursor == result.cursor


def test_allowed_updates_and_edits(telegram, make):
    message = telegram.private_message(telegram.user("Ed"), "frist")
    telegram.edit(message, "first")
    plain = make()
    result = plain.fetch(None)
    assert [i.text for i in result.items] == ["frist"]
    assert json.loads(telegram.requests_to("getUpdates")[-1].body)["allowed_updates"] == ["message"]

    with_edits = make(include_edits=True)
    assert with_edits.fetch(result.cursor).items == []
    assert json.loads(telegram.requests_to("getUpdates")[-1].body)["allowed_updates"] == ["message", "edited_message"]
    telegram.edit(message, "first, really")
    [edited] = with_edits.fetch(result.cursor).items
    assert edited.external_id.startswith(f"{message['chat']['id']}:{message['message_id']}:edit:")
    assert edited.text == "first, really" and edited.headers["edited"] == "true"


def test_group_mention_is_public_and_unaddressed_chatter_is_skipped(telegram, make):
    ann = telegram.user("Ann")
    telegram.group_message(ann, "anyone know the opening hours?", mention=False)
    mention = telegram.group_message(ann, "my parcel is late", group="Acme customers")
    emoji = telegram.group_message(ann, "still waiting", prefix="\U0001f600\U0001f600 ")
    connector = make()
    result = fetch_all(connector)
    assert [i.external_id for i in result.items] == [f"{mention['chat']['id']}:{mention['message_id']}",
                                                     f"{emoji['chat']['id']}:{emoji['message_id']}"]
    item = result.items[0]
    assert item.public and item.thread_key == str(mention["chat"]["id"])
    assert item.headers["chat_title"] == "Acme customers" and item.author.handle == str(ann["id"])
    assert result.cursor == "795120333"  # past the skipped chatter too: it is never read again
    # The bot's username was asked once with getMe, since the settings do not name it.
    assert len(telegram.requests_to("getMe")) == 1


def test_group_reply_to_the_bot_counts_and_group_policies(telegram, make):
    ann = telegram.user("Ann")
    question = telegram.group_message(ann, "hello?")
    connector = make(bot_username="acme_support_bot")
    first = fetch_all(connector)
    [item] = first.items
    assert item.external_id.endswith(f":{question['message_id']}")
    answer = connector.send(reply_to(item, "Hello Ann"))
    ours = telegram.messages[tuple(int(p) for p in answer.split(":"))]
    follow_up = telegram.group_message(ann, "thanks, and the invoice?", mention=False, reply_to=ours)
    chatter = telegram.group_message(ann, "unrelated chatter", mention=False)
    [taken] = connector.fetch(first.cursor).items
    assert taken.external_id.endswith(f":{follow_up['message_id']}")
    assert taken.references == (answer,)
    assert not telegram.requests_to("getMe"), "a configured bot_username needs no getMe"
    everything = make(group_messages="all").fetch(None).items
    assert any(i.external_id.endswith(f":{chatter['message_id']}") for i in everything)
    telegram.group_message(ann, "again", mention=True)
    telegram.private_message(ann, "privately")
    only_private = make(group_messages="none").fetch(None).items
    assert [i.text for i in only_private] == ["privately"]


def test_photo_and_document_become_attachments(telegram, make):
    bob = telegram.user("Bob")
    telegram.private_message(bob, "see the damage", photo=PHOTO)
    telegram.private_message(bob, None, document=("invoice-1234.pdf", b"%PDF-1.7 invoice", "application/pdf"))
    photo_item, doc_item = fetch_all(make()).items
    [photo] = photo_item.attachments
    assert photo.data == PHOTO and photo.content_type == "image/jpeg" and photo.filename.endswith(".jpg")
    assert photo_item.text == "see the damage"  # the caption
    [doc] = doc_item.attachments
    assert (doc.filename, doc.content_type, doc.data) == ("invoice-1234.pdf", "application/pdf", b"%PDF-1.7 invoice")
    assert doc_item.text == ""
    # Only the largest photo size is fetched.
    asked = [json.loads(r.body)["file_id"] for r in telegram.requests_to("getFile")]
    assert all(not f.endswith("-thumb") for f in asked) and len(asked) == 2


def test_media_from_a_host_not_allowed_is_kept_as_a_placeholder(telegram, context, caplog):
    # Without the test allowance the loopback file server is refused by the SSRF guard.
    strict = dataclasses.replace(context, fetch_allow_hosts=())
    connector = TelegramConnector("tg", settings_for(telegram), context=strict)
    telegram.private_message(telegram.user("Cy"), "photo", photo=PHOTO)
    [item] = connector.fetch(None).items
    [placeholder] = item.attachments
    assert placeholder.data is None and placeholder.size == len(PHOTO)
    assert telegram.token not in caplog.text


def test_flood_control_retry_after_is_honoured(telegram, make):
    connector = make()
    telegram.private_message(telegram.user("Flo"), "hello")
    telegram.flood(35)
    with pytest.raises(RetryableError) as raised:
        connector.fetch(None)
    assert raised.value.retry_after == 35 and "Too Many Requests" in str(raised.value)
    [item] = connector.fetch(None).items
    telegram.flood(7)
    with pytest.raises(RetryableError) as on_send:
        connector.send(reply_to(item))
    assert on_send.value.retry_after == 7
    assert telegram.sent == []


def test_revoked_token_is_permanent_and_not_logged(telegram, make, caplog):
    caplog.set_level(logging.DEBUG)
    connector = make()
    token = telegram.token
    telegram.revoke_token()
    with pytest.raises(PermanentError) as raised:
        connector.fetch(None)
    assert "Unauthorized" in str(raised.value) and "token" in str(raised.value)
    assert token not in str(raised.value) and token not in caplog.text


def test_reply_threads_to_the_message_in_its_chat(telegram, make):
    jane = telegram.user("Jane")
    message = telegram.private_message(jane, "where is my parcel?")
    connector = make()
    [item] = connector.fetch(None).items
    sent_id = connector.send(reply_to(item, "It ships today."))
    [sent] = telegram.sent
    assert sent["chat_id"] == jane["id"] and sent["reply_to"] == message["message_id"]
    assert sent["params"]["reply_parameters"] == {"message_id": message["message_id"],
                                                  "allow_sending_without_reply": True}
    assert "reply_to_message_id" not in sent["params"]  # deprecated in the Bot API
    assert sent_id == f"{jane['id']}:{sent['message']['message_id']}"


def test_reply_refusals_are_permanent_with_telegrams_reason(telegram, make):
    jane = telegram.user("Jane")
    telegram.private_message(jane, "hi")
    connector = make()
    [item] = connector.fetch(None).items
    with pytest.raises(PermanentError, match="4096"):
        connector.send(reply_to(item, "x" * 4097))
    telegram.block_bot(jane)
    with pytest.raises(PermanentError, match="blocked by the user"):
        connector.send(reply_to(item))
    assert telegram.sent == []


def test_reply_follows_a_group_upgraded_to_a_supergroup(telegram, make):
    ann = telegram.user("Ann")
    telegram.group_message(ann, "help", group="Old group")
    connector = make(bot_username="acme_support_bot")
    [item] = connector.fetch(None).items
    new_group = telegram.group("New supergroup")
    telegram.fail_next(400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: group chat was upgraded to a supergroup chat",
                             "parameters": {"migrate_to_chat_id": new_group["id"]}}, path_prefix="/bot")
    connector.send(reply_to(item))
    [sent] = telegram.sent
    assert sent["chat_id"] == new_group["id"]


def test_malformed_update_is_rejected_and_reprocessable_items_round_trip(telegram, make):
    telegram.private_message(telegram.user("Ok"), "fine")
    telegram.malformed_update()
    connector = make()
    result = connector.fetch(None)
    [reject] = result.rejects
    assert "chat" in reject.reason and reject.source_ref.startswith("update:")
    assert result.cursor == str(json.loads(reject.raw)["update_id"])
    [item] = result.items
    again = connector.parse_raw(item.raw)
    assert (again.external_id, again.text) == (item.external_id, "fine")
    with pytest.raises(Exception, match="chat"):
        connector.parse_raw(reject.raw)


def test_webhook_secret_is_checked_in_constant_time_semantics(telegram, make):
    connector = make(mode="webhook", webhook_secret=WEBHOOK_SECRET)
    assert connector.push_only and connector.webhook_enabled
    body = json.dumps({"update_id": 1, "message": {"message_id": 1, "date": 1741169702, "text": "hi",
                                                   "from": {"id": 5, "is_bot": False, "first_name": "W"},
                                                   "chat": {"id": 5, "type": "private"}}}).encode()
    for headers in ({}, {SECRET_HEADER: ""}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: "x" * 300},
                    {SECRET_HEADER: WEBHOOK_SECRET[:-1]}, {SECRET_HEADER: WEBHOOK_SECRET + "é"}):
        with pytest.raises(PermanentError):
            connector.verify_webhook(WebhookRequest(body=body, headers=headers))
    good = WebhookRequest(body=body, headers={SECRET_HEADER.lower(): WEBHOOK_SECRET})
    connector.verify_webhook(good)
    assert connector.webhook_event_id(good) == "update:1"
    [item] = connector.parse_webhook(good).items
    assert item.external_id == "5:1"
    # A polling channel takes no webhooks at all.
    with pytest.raises(PermanentError):
        make().verify_webhook(good)


def test_webhook_settings_are_checked_at_start(telegram):
    with pytest.raises(PermanentError, match="webhook_secret: required"):
        TelegramConnector.check_config(settings_for(telegram, mode="webhook"))
    with pytest.raises(PermanentError, match="webhook_secret: must be"):
        TelegramConnector.check_config(settings_for(telegram, mode="webhook", webhook_secret="no spaces allowed"))
    with pytest.raises(PermanentError, match="mode"):
        TelegramConnector.check_config(settings_for(telegram, mode="push"))
    with pytest.raises(PermanentError, match="token"):
        TelegramConnector.check_config({"token": "not-a-token"})


def test_webhook_mode_fetch_reports_delivery_health(telegram, make):
    connector = make(mode="webhook", webhook_secret=WEBHOOK_SECRET)
    with pytest.raises(PermanentError, match="no webhook set"):
        connector.fetch("5")
    connector.register_webhook("http://127.0.0.1:9/webhooks/tg")
    assert telegram.webhook == {"url": "http://127.0.0.1:9/webhooks/tg", "secret_token": WEBHOOK_SECRET,
                                "allowed_updates": ["message"]}
    assert connector.fetch("5").cursor == "5"  # nothing is read: updates come by webhook
    telegram.private_message(telegram.user("Wes"), "anyone there?")
    assert telegram.post_webhook() == [0]  # nothing listens on port 9
    with pytest.raises(RetryableError, match="cannot deliver to the webhook"):
        connector.fetch("5")
    # getUpdates is refused while a webhook is set, as Telegram does.
    with pytest.raises(PermanentError, match="webhook"):
        make().fetch(None)
