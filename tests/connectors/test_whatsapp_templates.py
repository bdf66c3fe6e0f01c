"""WhatsApp templates (#12): listing the account's approved templates, and a reply that is a template.

Against the imitation's `GET /{waba-id}/message_templates` (Meta's field names, cursor paging) and
`POST /{phone-number-id}/messages` with `type: template` (error 132000 when the parameters do not
match the body's {{n}} placeholders).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from connectors import whatsapp as whatsapp_module
from connectors.base import PermanentError, RetryableError
from connectors.whatsapp import WhatsAppConnector
from inbox.models import Author, MessageTemplate, OutboundReply, TemplateInfo
from sandbox.whatsapp import WhatsAppImitation, template

pytestmark = pytest.mark.server


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation




def connector_for(imitation: WhatsAppImitation, **extra: Any) -> WhatsAppConnector:
    settings = {"phone_number_id": imitation.phone_number_id, "access_token": imitation.access_token,
                "app_secret": imitation.app_secret, "verify_token": imitation.verify_token,
                "api_url": imitation.url, "business_account_id": imitation.business_account_id, **extra}
    return WhatsAppConnector("wa", settings)


def start(handle: str, name: str, language: str, *parameters: str, text: str = "") -> OutboundReply:
    """A message that starts a conversation: answers nothing, carries a template."""
    return OutboundReply(idempotency_key="s1", channel="wa", conversation_id=7, text=text,
                         to=Author(handle=handle, identity_kind="phone"),
                         template=MessageTemplate(name, language, tuple(parameters)))


def test_lists_only_approved_templates_with_their_body_and_variables(whatsapp):
    found = connector_for(whatsapp).message_templates()
    assert ("spring_sale", "en_US") not in {(t.name, t.language) for t in found}  # REJECTED
    order_nl = next(t for t in found if (t.name, t.language) == ("order_update", "nl"))
    assert order_nl == TemplateInfo(name="order_update", language="nl", category="UTILITY",
                                    body="Je bestelling {{1}} is verzonden. Vragen? Antwoord gewoon hier.",
                                    variables=1)
    reminder = next(t for t in found if t.name == "appointment_reminder")
    assert reminder.variables == 2
    assert reminder.filled(("Sheena", "4 May")) == "Hi Sheena, a reminder of your appointment on 4 May."
    [call] = whatsapp.requests_to(r"/message_templates")
    assert call.arg("fields") == "name,language,status,category,components"


def test_every_page_is_read_and_the_list_is_cached(whatsapp):
    whatsapp.template_page_size = 2
    whatsapp.templates.append(template("late_page", "en_US", "Still there, {{1}}?"))
    connector = connector_for(whatsapp)
    names = {t.name for t in connector.message_templates()}
    assert "late_page" in names and "hello_world" in names
    pages = len(whatsapp.requests_to(r"/message_templates"))
    assert pages == 3  # six templates, two a page
    assert {t.name for t in connector_for(whatsapp).message_templates()} == names
    assert len(whatsapp.requests_to(r"/message_templates")) == pages  # from the cache


def test_a_failed_look_up_is_not_repeated_for_every_page_a_minute_long(whatsapp, monkeypatch):
    """The composer asks while rendering: a Graph API that is down is asked once a minute, not per page."""
    whatsapp.fail_next(503, {"error": {"message": "Service temporarily unavailable", "code": 2}}, times=5)
    with pytest.raises(RetryableError):
        connector_for(whatsapp).message_templates()
    asked = len(whatsapp.requests_to(r"/message_templates"))
    with pytest.raises(RetryableError):
        connector_for(whatsapp).message_templates()
    assert len(whatsapp.requests_to(r"/message_templates")) == asked, "the failure was remembered"
    later = time.monotonic() + whatsapp_module.TEMPLATE_FAILURE_SECONDS + 1
    monkeypatch.setattr(whatsapp_module.time, "monotonic", lambda: later)
    whatsapp.faults.clear()
    assert connector_for(whatsapp).message_templates(), "asked again after the pause, and answered"


def test_a_template_with_a_header_variable_is_not_offered(whatsapp):
    with_header = template("with_header", "en_US", "Body {{1}}")
    with_header["components"].insert(0, {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"})
    whatsapp.templates.append(with_header)
    assert "with_header" not in {t.name for t in connector_for(whatsapp).message_templates()}


def test_no_account_id_means_no_templates(whatsapp):
    assert connector_for(whatsapp, business_account_id=None).message_templates() == []
    assert not whatsapp.requests_to(r"/message_templates")


def test_a_reply_with_a_template_sends_it_to_the_number_threaded_to_nothing(whatsapp):
    wamid = connector_for(whatsapp).send(start("+16505551234", "appointment_reminder", "en_US", "Sheena", "4 May"))
    [sent] = whatsapp.sent
    assert sent["wamid"] == wamid
    assert sent["payload"]["to"] == "16505551234" and "context" not in sent["payload"]
    assert sent["payload"]["template"] == {
        "name": "appointment_reminder", "language": {"code": "en_US", "policy": "deterministic"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Sheena"},
                                                       {"type": "text", "text": "4 May"}]}]}
    assert sent["text"] == "Hi Sheena, a reminder of your appointment on 4 May."


def test_a_template_goes_out_although_the_customer_never_wrote(whatsapp):
    # Free text to a number that never wrote is refused (131047); a template is not.
    connector = connector_for(whatsapp)
    connector.send(start("+16505559999", "hello_world", "en_US", "Sheena"))
    assert whatsapp.sent[0]["template"] == "hello_world"


def test_a_template_to_a_user_id_goes_to_recipient(whatsapp):
    reply = start("US.13491208655302741918", "hello_world", "en_US", "Sheena")
    connector_for(whatsapp).send(reply)
    assert whatsapp.sent[0]["payload"]["recipient"] == "US.13491208655302741918"


def test_wrong_number_of_parameters_is_metas_132000(whatsapp):
    with pytest.raises(PermanentError, match="132000"):
        connector_for(whatsapp).send(start("+16505551234", "appointment_reminder", "en_US", "Sheena"))
    assert not whatsapp.sent


def test_a_rejected_template_cannot_be_sent(whatsapp):
    with pytest.raises(PermanentError, match="132001"):
        connector_for(whatsapp).send(start("+16505551234", "spring_sale", "en_US", "Monday"))


def test_whatsapp_declares_it_starts_conversations_by_template():
    assert WhatsAppConnector.limits.starts_conversations == "template"
    assert set(WhatsAppConnector.writes_to) == {"phone", "whatsapp"}


def test_the_thread_key_of_a_started_conversation_is_the_one_the_customers_answer_carries(whatsapp):
    connector = connector_for(whatsapp)
    whatsapp.customer_text("16505551234", "Thanks!")
    whatsapp.customer_with_username("US.13491208655302741918", "Thanks!", username="@sheena")
    keys = []
    for request in whatsapp.take_requests():
        keys += [item.thread_key for item in connector.parse_webhook(request).items]
    assert keys == [WhatsAppConnector.thread_key_for("+16505551234"),
                    WhatsAppConnector.thread_key_for("US.13491208655302741918")]
