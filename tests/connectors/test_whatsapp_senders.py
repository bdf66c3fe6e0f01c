"""WhatsApp customers named by a business-scoped user id (BSUID) instead of a phone number.

A customer who adopts a WhatsApp username can hide their number: Meta then names them by
`from_user_id` / the contact's `user_id` (`US.13491208655302741918`). Such a customer must still
arrive (identity kind `whatsapp`, the BSUID as thread key) and be answerable: replies carry
`recipient: <BSUID>` instead of `to`. The fixtures in tests/fixtures/whatsapp/ follow Meta's
documented payloads; the rest runs against the imitation, which refuses a BSUID in `to`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import PermanentError, WebhookRequest
from connectors.whatsapp import WhatsAppConnector
from inbox.models import Author, OutboundReply
from sandbox.whatsapp import WhatsAppImitation

pytestmark = pytest.mark.server  # starts a loopback imitation of the Cloud API

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
BSUID = "US.13491208655302741918"


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


def only_item(connector: WhatsAppConnector, body: bytes):
    result = connector.parse_webhook(WebhookRequest(body=body, headers={}))
    assert result.rejects == []
    [item] = result.items
    return item


def reply_to(item, text: str = "It comes in green too.") -> OutboundReply:
    return OutboundReply(idempotency_key="r1", channel="wa", conversation_id=1, text=text, to=item.author,
                         thread_key=item.thread_key, reply_to_external_id=item.external_id)


def test_documented_sender_without_from_is_named_by_from_user_id(connector):
    item = only_item(connector, (FIXTURES / "username-sender.json").read_bytes())
    assert item.author == Author(handle=BSUID, name="Sheena Nelson", identity_kind="whatsapp")
    assert item.thread_key == BSUID and item.public is False
    assert item.text == "Does it come in another color?"
    assert item.headers["user_id"] == BSUID and item.headers["username"] == "@sheena.nelson"


def test_sender_named_only_by_the_contact_takes_its_user_id_and_username(connector):
    item = only_item(connector, (FIXTURES / "username-contact-only.json").read_bytes())
    assert item.author == Author(handle=BSUID, name="@sheena.nelson", identity_kind="whatsapp")
    assert item.thread_key == BSUID


def test_a_phone_number_stays_the_identity_when_meta_gives_both(whatsapp, connector):
    whatsapp.customer_with_username(BSUID, "hello", username="@sheena", name="Sheena", phone="16505551234")
    [request] = whatsapp.take_requests()
    item = only_item(connector, request.body)
    assert item.author == Author(handle="+16505551234", name="Sheena", identity_kind="phone")
    assert item.thread_key == "16505551234" and item.headers["user_id"] == BSUID


def test_a_message_naming_no_sender_at_all_is_quarantined(whatsapp, connector):
    good = whatsapp.customer_text("16505551234", "fine", queue=False)
    anonymous = {"id": "wamid.nobody", "timestamp": good["timestamp"], "type": "text", "text": {"body": "?"}}
    whatsapp.queue(whatsapp.envelope({"contacts": [{"profile": {"name": "S"}, "wa_id": "16505551234"},
                                                   {"profile": {"name": "T"}, "user_id": "NL.99"}],
                                      "messages": [good, anonymous]}))
    [request] = whatsapp.take_requests()
    result = connector.parse_webhook(request)
    assert [i.external_id for i in result.items] == [good["id"]]
    [reject] = result.rejects
    assert "names no sender" in reject.reason and reject.source_ref == "wamid.nobody"


def test_reply_to_a_bsuid_customer_goes_to_recipient_not_to(whatsapp, connector):
    whatsapp.customer_with_username(BSUID, "Does it come in green?", username="@sheena.nelson")
    [request] = whatsapp.take_requests()
    item = only_item(connector, request.body)
    wamid = connector.send(reply_to(item))
    [sent] = whatsapp.sent
    assert sent["wamid"] == wamid and sent["to"] == BSUID and sent["text"] == "It comes in green too."
    assert "to" not in sent["payload"] and sent["payload"]["recipient"] == BSUID
    assert sent["payload"]["context"] == {"message_id": item.external_id}


def test_template_to_a_bsuid_goes_to_recipient(whatsapp, connector):
    connector.send_template(BSUID, "order_update", "en_US", ["1234"])
    [sent] = whatsapp.sent
    assert sent["payload"]["recipient"] == BSUID and "to" not in sent["payload"]
    connector.send_template("+16505551234", "order_update", "en_US", ["1234"])
    assert whatsapp.sent[-1]["payload"]["to"] == "16505551234" and "recipient" not in whatsapp.sent[-1]["payload"]


def test_a_bsuid_customer_outside_the_window_gets_metas_advice(whatsapp, connector):
    whatsapp.customer_with_username(BSUID, "hello?", username="@sheena", at=0)
    [request] = whatsapp.take_requests()
    item = only_item(connector, request.body)
    with pytest.raises(PermanentError, match="template"):
        connector.send(reply_to(item))
