"""The WhatsApp Cloud API connector against its loopback imitation (sandbox/whatsapp.py).

The contract kit runs on the push-only path (signed deliveries through `verify_webhook` +
`parse_webhook`). The tests below prove what is particular to WhatsApp: the X-Hub-Signature-256
check over the raw bytes (and the app-secret rotation), the hub.challenge handshake, message
types (media through `GET /{media-id}` and the bearer-only media URL, button replies, types we do
not show), statuses moving our reply's delivery status forward only (IN-48, FI-26), quoted
replies with `context.message_id`, the 24-hour window (error 131047), templates, throttling
codes, an expired token, and the same through the generic `/webhooks/<channel>` endpoint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import logging
import time
from typing import Any

import pytest

from connectors.base import PermanentError, RetryableError, WebhookRequest
from connectors.testing import ChannelDriver, ConnectorContract
from connectors.whatsapp import WhatsAppConnector
from inbox.models import Author, OutboundReply
from sandbox.whatsapp import WhatsAppImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

PHOTO = b"\xff\xd8\xff\xe0" + b"JFIF-cracked-lid" * 64
PDF = b"%PDF-1.4\n" + b"invoice " * 100
_numbers = itertools.count(16505550100)


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation


def settings_for(imitation: WhatsAppImitation, **extra: Any) -> dict[str, Any]:
    return {"phone_number_id": imitation.phone_number_id, "access_token": imitation.access_token,
            "app_secret": imitation.app_secret, "verify_token": imitation.verify_token,
            "api_url": imitation.url, **extra}


class WhatsAppChannel(ChannelDriver):
    """Customers write on WhatsApp; Meta delivers signed webhooks; the driver reads what we sent."""

    def __init__(self, imitation: WhatsAppImitation) -> None:
        self.imitation = imitation
        self.delivered: list[WebhookRequest] = []

    def settings(self) -> dict[str, Any]:
        return settings_for(self.imitation)

    def customer_writes(self, count: int) -> list[str]:
        return [self.imitation.customer_text(str(next(_numbers)), f"Question {n}", name=f"Customer {n}")["id"]
                for n in range(count)]

    def customer_writes_malformed(self) -> None:
        self.imitation.malformed_delivery()

    def replies_received(self) -> list[dict[str, Any]]:
        return [{"text": s.get("text", ""), "in_reply_to": s["in_reply_to"]} for s in self.imitation.sent]

    def webhook_requests(self, count: int) -> list[WebhookRequest]:
        if count == 0:
            return list(self.delivered)  # Meta retries exactly what it sent before
        self.customer_writes(count)
        made = self.imitation.take_requests()
        self.delivered += made
        return made

    def tamper(self, request: WebhookRequest) -> WebhookRequest:
        return dataclasses.replace(request, body=request.body.replace(b"Question", b"Qvestion"))


class TestWhatsAppContract(ConnectorContract):
    connector_class = WhatsAppConnector

    @pytest.fixture
    def channel(self, whatsapp):
        return WhatsAppChannel(whatsapp)

    @pytest.fixture
    def contract_context(self, context):
        return context


# Connector-level behaviour -----------------------------------------------------------------------


@pytest.fixture
def context(tmp_path, whatsapp):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="whatsapp-test", mail_domain="mainland.test", base_url="https://inbox.example.net",
        max_message_bytes=25 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024, data_dir=tmp_path,
        fetch_allow_hosts=(whatsapp.host,),
    )


@pytest.fixture
def make(whatsapp, context):
    made = []

    def build(**extra: Any) -> WhatsAppConnector:
        connector = WhatsAppConnector("wa", settings_for(whatsapp, **extra), context=context)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make):
    return make()


def parse_all(connector: WhatsAppConnector, requests: list[WebhookRequest]):
    items, rejects, updates = [], [], []
    for request in requests:
        connector.verify_webhook(request)
        result = connector.parse_webhook(request)
        items += result.items
        rejects += result.rejects
        updates += result.updates
    return items, rejects, updates


def reply_to(item, text: str = "Yes, in blue and green.") -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="wa", conversation_id=1, text=text,
                         to=item.author, thread_key=item.thread_key, reply_to_external_id=item.external_id)


def test_customer_text_is_a_private_message_from_a_phone_number(whatsapp, connector):
    sent = whatsapp.customer_text("16505551234", "Does it come in another color?", name="Sheena Nelson")
    [item], rejects, updates = parse_all(connector, whatsapp.take_requests())
    assert not rejects and not updates
    assert item.external_id == sent["id"] and item.external_id.startswith("wamid.")
    assert item.author == Author(handle="+16505551234", name="Sheena Nelson", identity_kind="phone")
    assert item.thread_key == "16505551234" and item.public is False
    assert item.text == "Does it come in another color?"
    assert item.sent_at == dt.datetime.fromtimestamp(int(sent["timestamp"]), dt.UTC)
    assert item.references == ()


def test_the_documented_example_payload_is_read(connector):
    # channels.md §4 "Example inbound webhook", byte for byte what Meta's reference shows.
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                  "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                  "messages": [{"from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                "timestamp": "1749416383", "type": "text",
                                "text": {"body": "Does it come in another color?"}}]},
        "field": "messages"}]}]}).encode()
    [item] = connector.parse_webhook(WebhookRequest(body=body, headers={})).items
    assert item.author.name == "Sheena Nelson" and item.sent_at.year == 2025


def test_signature_missing_wrong_or_reformatted_is_refused(whatsapp, connector):
    whatsapp.customer_text("16505551234", "caf\u00e9 \U0001f600 with \\u00e9 escapes")
    [good] = whatsapp.take_requests()
    connector.verify_webhook(good)  # emoji and escapes, signed over the exact bytes (IN-46)
    body = good.body
    expected = good.headers["X-Hub-Signature-256"]
    forged = [
        whatsapp.unsigned(body),
        whatsapp.wrongly_signed(body),
        WebhookRequest(body=body, headers={"X-Hub-Signature": good.headers["X-Hub-Signature"]}),  # SHA-1 only
        WebhookRequest(body=body, headers={"X-Hub-Signature-256": expected.upper().replace("SHA256=", "sha256=")}),
        WebhookRequest(body=body, headers={"X-Hub-Signature-256": expected[7:]}),  # no prefix
        WebhookRequest(body=body, headers={"X-Hub-Signature-256": expected[:-2]}),  # wrong length
        WebhookRequest(body=body + b"\n", headers=good.headers),  # re-serialised body (WH-01)
        WebhookRequest(body=body, headers={"X-Hub-Signature-256": "sha256=" + "é" * 64}),
    ]
    for request in forged:
        with pytest.raises(PermanentError, match="X-Hub-Signature-256"):
            connector.verify_webhook(request)
    # Header names are case-insensitive, as HTTP has them.
    connector.verify_webhook(WebhookRequest(body=body, headers={"x-hub-signature-256": expected}))


def test_old_app_secret_is_accepted_only_while_rotation_is_configured(whatsapp, make):
    whatsapp.customer_text("16505551234")
    [request] = whatsapp.take_requests()
    signed_with_old = WebhookRequest(body=request.body, headers=whatsapp.headers_for(request.body, "old-secret"))
    with pytest.raises(PermanentError):
        make().verify_webhook(signed_with_old)  # FI-27: a secret out of step is never silently accepted
    make(app_secret_previous="old-secret").verify_webhook(signed_with_old)


def test_verification_challenge(connector, whatsapp):
    args = {"hub.mode": "subscribe", "hub.verify_token": whatsapp.verify_token, "hub.challenge": "1158201444"}
    assert connector.webhook_challenge(args) == "1158201444"
    for wrong in ({**args, "hub.verify_token": "guess"}, {**args, "hub.mode": "unsubscribe"},
                  {**args, "hub.verify_token": ""}, {k: v for k, v in args.items() if k != "hub.verify_token"},
                  {**args, "hub.verify_token": "é"}):
        assert connector.webhook_challenge(wrong) is None


def test_image_becomes_an_attachment_with_its_bytes(whatsapp, connector):
    whatsapp.customer_image("16505551234", PHOTO, caption="The lid is cracked")
    whatsapp.customer_document("16505551234", PDF, "invoice-1234.pdf")
    [photo, document], _, _ = parse_all(connector, whatsapp.take_requests())
    assert photo.text == "The lid is cracked"
    [attachment] = photo.attachments
    assert attachment.data == PHOTO and attachment.content_type == "image/jpeg"
    assert attachment.filename.endswith(".jpg")
    [pdf] = document.attachments
    assert (pdf.filename, pdf.content_type, pdf.data) == ("invoice-1234.pdf", "application/pdf", PDF)
    # The media URL was fetched with the bearer token; without it the imitation refuses.
    downloads = whatsapp.requests_to(r"^/whatsapp_business/attachments/")
    assert len(downloads) == 2 and all(r.headers["Authorization"].startswith("Bearer ") for r in downloads)


def test_media_that_cannot_be_fetched_keeps_the_message(whatsapp, connector, caplog):
    whatsapp.customer_image("16505551234", PHOTO, caption="see photo")
    whatsapp.expire_token()
    [item], rejects, _ = parse_all(connector, whatsapp.take_requests())
    assert not rejects and item.text == "see photo"
    [placeholder] = item.attachments
    assert placeholder.data is None and placeholder.content_type == "image/jpeg"
    assert whatsapp.access_token not in caplog.text


def test_media_url_off_metas_hosts_never_gets_the_token(whatsapp, connector, monkeypatch):
    whatsapp.customer_image("16505551234", PHOTO)
    original = whatsapp.media_url

    def elsewhere(request, media_id):
        status, body = original(request, media_id)
        return status, {**body, "url": "https://attacker.example/steal?mid=1"}

    monkeypatch.setattr(whatsapp, "_routes", [(m, r, elsewhere if h == original else h)
                                              for m, r, h in whatsapp._routes])
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    [placeholder] = item.attachments
    assert placeholder.data is None
    assert not whatsapp.requests_to(r"^/whatsapp_business/attachments/")


def test_button_list_and_unsupported_types_are_kept_readable(whatsapp, connector):
    wa = "447700900123"
    whatsapp.customer_message(wa, "interactive", {"type": "button_reply",
                                                  "button_reply": {"id": "track-1", "title": "Track my order"}})
    whatsapp.customer_message(wa, "interactive", {"type": "list_reply", "list_reply": {
        "id": "size-m", "title": "Medium", "description": "38-40"}})
    whatsapp.customer_message(wa, "button", {"payload": "STOP", "text": "Stop promotions"})
    whatsapp.customer_message(wa, "location", {"latitude": 52.37, "longitude": 4.89, "name": "Dam Square"})
    whatsapp.customer_message(wa, "reaction", {"message_id": "wamid.ours", "emoji": "\U0001f44d"})
    unsupported = whatsapp.customer_message(wa, "unsupported", None)
    unsupported_body = whatsapp.pending[-1]
    whatsapp.pending[-1] = unsupported_body.replace(
        b'"type": "unsupported"', b'"type": "unsupported", "errors": [{"code": 131051, "title": '
                                  b'"Message type unknown"}]')
    whatsapp.customer_message(wa, "poll", {"question": "?"})  # a type newer than the connector
    items, rejects, _ = parse_all(connector, whatsapp.take_requests())
    assert not rejects
    texts = [i.text for i in items]
    assert texts[:5] == ["Track my order", "Medium (38-40)", "Stop promotions", "[location 52.37, 4.89] Dam Square",
                         "[reaction \U0001f44d]"]
    assert items[0].headers["reply_id"] == "track-1" and items[2].headers["payload"] == "STOP"
    assert items[4].references == ("wamid.ours",)
    assert texts[5] == "[unsupported message: not shown here; Message type unknown]"
    assert items[5].external_id == unsupported["id"]
    assert texts[6] == "[poll message: not shown here]"


def test_reply_context_is_kept_as_a_reference(whatsapp, connector):
    whatsapp.customer_text("16505551234", "this one?", context="wamid.ourEarlierMessage")
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    assert item.references == ("wamid.ourEarlierMessage",)


def test_malformed_entry_is_quarantined_and_the_rest_arrives(whatsapp, connector):
    good, _ = whatsapp.malformed_delivery()
    [item], rejects, _ = parse_all(connector, whatsapp.take_requests())
    assert item.external_id == good["id"]
    assert len(rejects) == 2
    assert any("missing field id" in r.reason for r in rejects)
    assert any("unreadable entry" in r.reason for r in rejects)
    # The quarantined message is kept as a delivery of its own, and reprocessing it says why again.
    held = next(r for r in rejects if "missing field id" in r.reason)
    assert json.loads(held.raw)["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] == "no id"
    with pytest.raises(Exception, match="missing field id"):
        connector.parse_raw(held.raw)
    # A good item round-trips through parse_raw.
    assert connector.parse_raw(item.raw).external_id == good["id"]


def test_bodies_that_are_not_whatsapp_deliveries_are_quarantined(connector):
    for body in (b"{not json", b'{"object": "page", "entry": []}', b"[1, 2]", b'{"object": '
                 b'"whatsapp_business_account", "entry": 5}'):
        result = connector.parse_webhook(WebhookRequest(body=body, headers={}))
        assert not result.items and len(result.rejects) == 1


def test_deliveries_for_another_number_or_account_are_ignored(whatsapp, make):
    with WhatsAppImitation(phone_number_id="999000111", app_secret=whatsapp.app_secret) as other:
        other.customer_text("16505551234")
        [request] = other.take_requests()
    assert parse_all(make(), [request]) == ([], [], [])
    whatsapp.customer_text("16505551234")
    [request] = whatsapp.take_requests()
    assert parse_all(make(business_account_id="555"), [request]) == ([], [], [])
    assert len(parse_all(make(business_account_id=whatsapp.business_account_id), [request])[0]) == 1


def test_statuses_become_delivery_updates(whatsapp, connector):
    for state in ("sent", "delivered", "read", "deleted"):
        whatsapp.status("wamid.ours1", state)
    whatsapp.status("wamid.ours2", "failed", error_code=131026, title="Message undeliverable",
                    details="The customer's phone has no WhatsApp account.")
    items, rejects, updates = parse_all(connector, whatsapp.take_requests())
    assert not items and not rejects
    assert [(u.provider_id, u.status) for u in updates] == [
        ("wamid.ours1", "sent"), ("wamid.ours1", "delivered"), ("wamid.ours1", "read"), ("wamid.ours2", "failed")]
    assert updates[0].at.tzinfo is not None
    failed = updates[-1].error
    assert "Message undeliverable" in failed and "no WhatsApp account" in failed and "131026" in failed


def test_reply_quotes_the_customers_message(whatsapp, connector):
    whatsapp.customer_text("16505551234", "Does it come in another color?")
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    wamid = connector.send(reply_to(item))
    [sent] = whatsapp.sent
    assert sent["wamid"] == wamid and sent["to"] == "16505551234"
    assert sent["payload"] == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
                               "type": "text", "text": {"body": "Yes, in blue and green.", "preview_url": False},
                               "context": {"message_id": item.external_id}}


def test_window_closed_needs_a_template(whatsapp, connector):
    whatsapp.customer_text("16505551234", "hello?", at=time.time() - 25 * 3600)
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    with pytest.raises(PermanentError) as refused:
        connector.send(reply_to(item))
    message = str(refused.value)
    assert "template" in message and "24 hours" in message and "131047" in message
    assert not whatsapp.sent
    assert connector.limits.reply_window_hours == 24
    # The template path is open outside the window.
    wamid = connector.send_template("+16505551234", "order_update", "en_US", ["1234"])
    [sent] = whatsapp.sent
    assert sent["wamid"] == wamid and sent["template"] == "order_update" and sent["parameters"] == ["1234"]
    with pytest.raises(PermanentError, match="template"):
        connector.send_template("16505551234", "no_such_template", "en_US")


def test_text_over_4096_characters_is_refused_before_sending(whatsapp, connector):
    whatsapp.customer_text("16505551234")
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    with pytest.raises(PermanentError, match="4096"):
        connector.send(reply_to(item, "x" * 4097))
    assert not whatsapp.requests_to(r"/messages$")
    connector.send(reply_to(item, "x" * 4096))
    with pytest.raises(PermanentError, match="empty"):
        connector.send(reply_to(item, "   "))


@pytest.mark.parametrize(("code", "delay"), [(130429, 10), (131056, 6), (80007, 180), (4, 60)])
def test_throttling_is_retryable_with_a_delay(whatsapp, connector, code, delay):
    whatsapp.customer_text("16505551234")
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    whatsapp.throttle(code, regain_minutes=3)
    with pytest.raises(RetryableError) as raised:
        connector.send(reply_to(item))
    assert raised.value.retry_after == pytest.approx(delay)
    assert str(code) in str(raised.value)
    assert connector.send(reply_to(item))  # the next try goes through


def test_server_errors_and_timeouts_are_retryable(whatsapp, make):
    connector = make(timeout=0.5)
    whatsapp.customer_text("16505551234")
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    whatsapp.server_error()
    with pytest.raises(RetryableError, match="Something went wrong"):
        connector.send(reply_to(item))
    whatsapp.delay_next(1.5)
    with pytest.raises(RetryableError):
        connector.send(reply_to(item))


def test_expired_token_is_permanent_with_advice_and_never_logged(whatsapp, connector, caplog):
    caplog.set_level(logging.DEBUG)
    whatsapp.customer_text("16505551234")
    [item], _, _ = parse_all(connector, whatsapp.take_requests())
    whatsapp.expire_token()
    with pytest.raises(PermanentError) as refused:
        connector.send(reply_to(item))
    assert "Session has expired" in str(refused.value) and "access_token" in str(refused.value)
    for secret in connector.secrets:
        assert secret not in str(refused.value) and secret not in caplog.text


def test_settings_are_checked(whatsapp):
    with pytest.raises(PermanentError, match="app_secret"):
        WhatsAppConnector.check_config({k: v for k, v in settings_for(whatsapp).items() if k != "app_secret"})
    with pytest.raises(PermanentError, match="phone_number_id"):
        WhatsAppConnector.check_config(settings_for(whatsapp, phone_number_id="+1 555 078 3881"))
    connector = WhatsAppConnector("wa", settings_for(whatsapp, api_version="25.0"))
    assert connector.http.base_url.endswith("/v25.0")
    assert WhatsAppConnector.push_only and WhatsAppConnector.limits.max_text_length == 4096
    connector.close()


# Through the generic webhook endpoint (inbox/web/webhooks.py) ----------------------------------


@pytest.fixture
def app_config(app_config, whatsapp):
    app_config["fetch_allow_hosts"] = [whatsapp.host]
    app_config["channels"] = {"wa": {"kind": "whatsapp", **settings_for(whatsapp)}}
    return app_config


@pytest.fixture
def db(app, app_config):
    from inbox.store import Store

    store = Store(app_config["database"])
    yield store
    store.close()


def post(client, request: WebhookRequest):
    return client.post("/webhooks/wa", data=request.body, headers=dict(request.headers))


def only_conversation(db) -> tuple[dict, list[dict]]:
    [conversation] = db.recent_conversations()
    return conversation, db.conversation_messages(conversation["id"])


def test_endpoint_refuses_unsigned_and_forged_deliveries_and_stores_nothing(client, db, whatsapp):
    whatsapp.customer_text("16505551234", "let me in")
    [good] = whatsapp.take_requests()
    for forged in (whatsapp.unsigned(good.body), whatsapp.wrongly_signed(good.body),
                   dataclasses.replace(good, body=good.body.replace(b"let me in", b"let me out"))):
        assert post(client, forged).status_code == 403
    assert db.counts()["messages"] == 0 and db.counts()["quarantined"] == 0
    refusals = db.inbound_webhooks.refusals("wa")
    assert sum(r.count for r in refusals) == 3 and all("X-Hub-Signature-256" in r.reason for r in refusals)
    assert all(whatsapp.app_secret not in r.reason for r in refusals)
    assert post(client, good).status_code == 200 and db.counts()["messages"] == 1


def test_endpoint_stores_a_replayed_delivery_once(client, db, whatsapp):
    sent = whatsapp.customer_image("16505551234", PHOTO, caption="cracked", name="Sheena Nelson")
    [request] = whatsapp.take_requests()
    first = post(client, request)
    assert first.status_code == 200 and first.get_json()["stored"] == 1
    again = post(client, request)  # Meta did not see our 200 and retries the same bytes
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    # The same message in a differently built delivery (another batch) is still one message.
    later = whatsapp.customer_text("16505551234", "hello?", queue=False)
    batched = whatsapp.envelope({"contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                                 "messages": [sent, later]})
    whatsapp.queue(batched)
    [rebuilt] = whatsapp.take_requests()
    answer = post(client, rebuilt).get_json()
    assert (answer["stored"], answer["duplicates"]) == (1, 1)
    conversation, [message, _] = only_conversation(db)
    assert not conversation["public"] and db.conversation(conversation["id"])["thread_key"] == "16505551234"
    assert (message["author_handle"], message["author_name"]) == ("+16505551234", "Sheena Nelson")
    [photo] = message["attachments"]
    assert photo["stored"] and photo["size"] == len(PHOTO) and photo["content_type"] == "image/jpeg"


def test_endpoint_quarantines_a_malformed_entry_and_keeps_the_rest(client, db, whatsapp):
    whatsapp.malformed_delivery()
    [request] = whatsapp.take_requests()
    answer = post(client, request).get_json()
    assert (answer["stored"], answer["quarantined"]) == (1, 2)
    assert all(h["reason"] for h in db.quarantined())


def test_endpoint_answers_the_verification_challenge(client, whatsapp):
    args = {"hub.mode": "subscribe", "hub.verify_token": whatsapp.verify_token, "hub.challenge": "<b>1158201444</b>"}
    answer = client.get("/webhooks/wa", query_string=args)
    assert answer.status_code == 200 and answer.text == "<b>1158201444</b>"
    assert answer.mimetype == "text/plain"  # an echoed challenge is never HTML (WH-02)
    assert client.get("/webhooks/wa", query_string={**args, "hub.verify_token": "guess"}).status_code == 403


def test_statuses_move_our_reply_forward_never_back(app, client, db, whatsapp):
    from inbox.outbox import queue_reply, send_due

    whatsapp.customer_text("16505551234", "Where is my parcel?")
    post(client, whatsapp.take_requests()[0])
    conversation, _ = only_conversation(db)
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, conversation["id"], "It left our warehouse today.")
    assert send_due(mainland, db).sent == 1
    [ours] = whatsapp.sent

    def our_status() -> tuple[str, str | None]:
        reply = next(m for m in db.conversation_messages(conversation["id"]) if m["text"].startswith("It left"))
        return reply["delivery_status"], reply["delivery_error"]

    assert our_status() == ("sent", None)
    for state, expected in (("delivered", "delivered"), ("sent", "delivered"), ("read", "read"),
                            ("delivered", "read"), ("failed", "read")):
        whatsapp.status(ours["wamid"], state)
        assert post(client, whatsapp.take_requests()[0]).status_code == 200
        assert our_status()[0] == expected, f"after a late {state!r}"


def test_failed_status_shows_metas_reason(app, client, db, whatsapp):
    from inbox.outbox import queue_reply, send_due

    whatsapp.customer_text("16505551234", "hello")
    post(client, whatsapp.take_requests()[0])
    conversation, _ = only_conversation(db)
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, conversation["id"], "Hi! How can we help?")
    send_due(mainland, db)
    [ours] = whatsapp.sent
    whatsapp.status(ours["wamid"], "sent")
    whatsapp.status(ours["wamid"], "failed", error_code=131047, title="Re-engagement message",
                    details="Message failed to send because more than 24 hours have passed since the customer "
                            "last replied to this number.")
    for request in whatsapp.take_requests():
        assert post(client, request).status_code == 200
    reply = next(m for m in db.conversation_messages(conversation["id"]) if m["text"].startswith("Hi!"))
    assert reply["delivery_status"] == "failed"
    assert "Re-engagement message" in reply["delivery_error"] and "template" in reply["delivery_error"]


def test_a_media_redirect_to_another_host_does_not_carry_the_token(whatsapp, tmp_path, monkeypatch):
    from inbox.runtime import ConnectorContext

    with WhatsAppImitation(access_token="other-host-token") as elsewhere:
        target = elsewhere.add_media(PHOTO, "image/jpeg")

        def redirect(request):
            return 302, b"", {"Location": f"{elsewhere.url}/whatsapp_business/attachments/?mid={target}"}

        original = whatsapp.media_download
        monkeypatch.setattr(whatsapp, "_routes", [(m, r, redirect if h == original else h)
                                                  for m, r, h in whatsapp._routes])
        context = ConnectorContext(
            instance_id="t", mail_domain="mainland.test", base_url="https://inbox.example.net",
            max_message_bytes=1 << 20, max_attachment_bytes=1 << 20, data_dir=tmp_path,
            fetch_allow_hosts=(whatsapp.host, elsewhere.host))
        connector = WhatsAppConnector("wa", settings_for(whatsapp), context=context)
        whatsapp.customer_image("16505551234", PHOTO)
        [item], _, _ = parse_all(connector, whatsapp.take_requests())
        connector.close()
        [followed] = elsewhere.requests_to(r"^/whatsapp_business/attachments/")
        assert "Authorization" not in followed.headers
        assert item.attachments[0].data is None  # the other host wants its own token: nothing fetched


def test_endpoint_asks_for_a_retry_when_meta_media_is_busy(client, db, whatsapp):
    whatsapp.customer_image("16505551234", PHOTO, caption="photo of the damage")
    [request] = whatsapp.take_requests()
    whatsapp.server_error()  # GET /{media-id} answers 500
    busy = post(client, request)
    assert busy.status_code == 503 and busy.headers["Retry-After"]
    assert db.counts()["messages"] == 0  # nothing half-stored: Meta retries the whole delivery
    assert post(client, request).status_code == 200
    _, [message] = only_conversation(db)
    assert message["attachments"][0]["stored"] and message["text"] == "photo of the damage"
