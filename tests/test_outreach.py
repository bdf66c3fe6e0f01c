"""Writing first (#12): a new conversation through the outbox to the WhatsApp imitation and the SMTP
sink, templates in an existing conversation, and the refusals of `sendability.decide_start`."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest

from inbox import outreach, sendability
from inbox.config import from_mapping
from inbox.models import MessageTemplate
from inbox.outbox import send_due
from inbox.runtime import Mainland
from inbox.store.base import iso
from sandbox.whatsapp import WhatsAppImitation

pytestmark = pytest.mark.server  # the WhatsApp imitation and an SMTP sink on loopback

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SHEENA = "+16505551234"


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation




@pytest.fixture
def mainland(tmp_path, whatsapp, smtp_server):
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"), "data_dir": str(tmp_path / "data"), "mail_domain": "mainland.test",
        "instance_id": "outreach-test",
        "channels": {
            "whatsapp": {"kind": "whatsapp", "phone_number_id": whatsapp.phone_number_id,
                         "access_token": whatsapp.access_token, "app_secret": whatsapp.app_secret,
                         "verify_token": whatsapp.verify_token, "api_url": whatsapp.url,
                         "business_account_id": whatsapp.business_account_id},
            "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                     "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                     "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
            "telegram": {"kind": "telegram", "token": "123456:imitation-token", "api_url": "http://127.0.0.1:9"},
        },
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


@pytest.fixture
def agent(store):
    agent_id = store.create_agent(email="ann@mainland.test", name="Ann", role="agent", password_hash=None)
    return {"id": agent_id, "name": "Ann"}


def customer(store, name: str = "Sheena Nelson", **identities: str) -> int:
    now = iso(T0)
    with store.write():
        customer_id = store.create_customer_record(name, now)
        for kind, value in identities.items():
            store.add_identity(customer_id, kind, value, value, True, now)
    return customer_id


def test_a_whatsapp_conversation_starts_with_a_template_and_the_answer_joins_it(mainland, store, agent, whatsapp):
    cid = customer(store, phone=SHEENA)
    template, body = outreach.resolve_template(mainland, "whatsapp", "appointment_reminder|en_US", ["Sheena", "4 May"])
    conversation_id, _outbox = outreach.start_conversation(
        mainland, store, cid, channel="whatsapp", handle=SHEENA, identity_kind="phone", text=body, agent=agent,
        template=template, now=T0)
    conversation = store.conversation(conversation_id)
    assert conversation["status"] == "pending" and conversation["assignee_id"] == agent["id"]
    assert send_due(mainland, store, now=T0).sent == 1
    [sent] = whatsapp.sent
    assert sent["to"] == "16505551234" and "context" not in sent["payload"]
    assert sent["template"] == "appointment_reminder" and sent["language"] == "en_US"
    assert sent["parameters"] == ["Sheena", "4 May"]
    [ours] = store.conversation_messages(conversation_id)
    assert ours["text"] == "Hi Sheena, a reminder of your appointment on 4 May." and ours["delivery_status"] == "sent"
    # Sheena answers: her message joins the conversation we started, which opens again.
    whatsapp.customer_text("16505551234", "See you then!", name="Sheena Nelson")
    connector = mainland.connector("whatsapp")
    for request in whatsapp.take_requests():
        mainland.ingestor(store).ingest("whatsapp", connector.parse_webhook(request))
    texts = [m["text"] for m in store.conversation_messages(conversation_id)]
    assert texts[-1] == "See you then!"
    assert store.conversation(conversation_id)["status"] == "open"


def test_whatsapp_without_a_template_is_refused(mainland, store, agent, whatsapp):
    cid = customer(store, phone=SHEENA)
    with pytest.raises(outreach.StartRefused, match="template"):
        outreach.start_conversation(mainland, store, cid, channel="whatsapp", handle=SHEENA, identity_kind="phone",
                                    text="Hello!", agent=agent, now=T0)
    assert not whatsapp.sent and not store.customer_conversations(cid, None)


def test_an_unfilled_or_unknown_template_is_refused_before_anything_is_queued(mainland):
    with pytest.raises(outreach.StartRefused, match="variable"):
        outreach.resolve_template(mainland, "whatsapp", "appointment_reminder|en_US", ["Sheena", " "])
    with pytest.raises(outreach.StartRefused, match="approved"):
        outreach.resolve_template(mainland, "whatsapp", "spring_sale|en_US", ["Monday"])


def test_an_email_conversation_is_a_fresh_mail_and_the_answer_threads_to_it(mainland, store, agent, smtp_server):
    cid = outreach.customer_for_address(store, "Jane.Doe@Example.net", name="Jane Doe", now=T0)
    assert outreach.customer_for_address(store, "jane.doe@example.net", now=T0) == cid  # found, not made twice
    conversation_id, _outbox = outreach.start_conversation(
        mainland, store, cid, channel="mail", handle="jane.doe@example.net", identity_kind="email",
        subject="Your warranty", text="Hello Jane,\n\nyour warranty runs out next month.", agent=agent, now=T0)
    assert send_due(mainland, store, now=T0).sent == 1
    [received] = smtp_server.wait_for(1)
    mail = email.message_from_bytes(received.content, policy=email.policy.default)
    assert received.rcpt_tos == ["jane.doe@example.net"]
    assert mail["Subject"].startswith("Your warranty") and not mail["Subject"].startswith("Re:")
    assert mail["In-Reply-To"] is None and mail["References"] is None
    assert "warranty runs out" in mail.get_body(("plain",)).get_content()
    # Jane's answer (In-Reply-To our Message-ID) joins the conversation.
    from inbox.mail import parse_email

    answer = (f"From: Jane Doe <jane.doe@example.net>\r\nTo: support@mainland.test\r\nSubject: Re: Your warranty\r\n"
              f"Message-ID: <a1@example.net>\r\nIn-Reply-To: {mail['Message-ID']}\r\n"
              f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nThanks, I will renew.\r\n").encode()
    from inbox.models import FetchResult

    mainland.ingestor(store).ingest("mail", FetchResult(items=[parse_email(answer, channel="mail")], cursor="1"))
    assert [m["text"].strip() for m in store.conversation_messages(conversation_id)][-1] == "Thanks, I will renew."


def test_refusals(mainland, store, agent):
    jane = customer(store, email="jane@example.net", phone=SHEENA, telegram="777")

    def reason(**kwargs):
        decision = sendability.decide_start(mainland, store, kwargs.pop("customer", jane), **kwargs)
        assert not decision.allowed
        return decision.code, decision.guard

    assert reason(channel="mail", handle="support@mainland.test", identity_kind="email") == ("guard", "own_address")
    assert reason(channel="mail", handle="no-reply@example.net", identity_kind="email") == ("guard", "noreply")
    assert reason(channel="telegram", handle="@jane@social.example", identity_kind="mastodon")[0] == "cannot_start"
    assert reason(channel="mail", handle=SHEENA, identity_kind="phone")[0] == "cannot_start"
    assert reason(channel="gone", handle="jane@example.net", identity_kind="email")[0] == "channel_gone"
    assert reason(channel="mail", handle="jane@example.net", identity_kind="email", customer=jane + 99)[0] == "erased"


def test_no_conversation_to_an_erased_customers_address(mainland, store, agent):
    jane = customer(store, email="jane@example.net")
    store.erase_customer(jane, actor="agent:1", now=iso(T0))
    again = outreach.customer_for_address(store, "jane@example.net", now=T0 + dt.timedelta(days=1))
    with pytest.raises(outreach.StartRefused, match="erased"):
        outreach.start_conversation(mainland, store, again, channel="mail", handle="jane@example.net",
                                    identity_kind="email", subject="Hi", text="Hello", agent=agent, now=T0)


def test_no_conversation_to_a_customer_marked_as_spam(mainland, store, agent):
    jane = customer(store, email="jane@example.net")
    conversation_id, _ = outreach.start_conversation(mainland, store, jane, channel="mail", handle="jane@example.net",
                                                     identity_kind="email", subject="Hi", text="Hello", agent=agent,
                                                     now=T0)
    with store.write():
        store.conn.execute("UPDATE conversations SET status = 'spam' WHERE id = ?", (conversation_id,))
    with pytest.raises(outreach.StartRefused, match="spam"):
        outreach.start_conversation(mainland, store, jane, channel="mail", handle="jane@example.net",
                                    identity_kind="email", subject="Hi", text="Hello", agent=agent, now=T0)


def test_a_trainee_is_told_to_ask_a_lead(mainland, store, agent):
    jane = customer(store, email="jane@example.net")
    with store.write():
        store.conn.execute("UPDATE agents SET trainee = 1 WHERE id = ?", (agent["id"],))
    with pytest.raises(outreach.StartRefused, match="lead"):
        outreach.start_conversation(mainland, store, jane, channel="mail", handle="jane@example.net",
                                    identity_kind="email", subject="Hi", text="Hello", agent=agent, now=T0)


def test_the_options_say_which_identities_can_be_written_to_and_why_not(mainland, store):
    jane = customer(store, email="jane@example.net", phone=SHEENA, telegram="777", mastodon="@jane@social.example")
    options = {o.identity["kind"]: o for o in outreach.start_options(mainland, store, jane)}
    assert [t.channel for t in options["email"].targets] == ["mail"]
    assert [(t.channel, t.needs_template) for t in options["phone"].targets] == [("whatsapp", True)]
    assert [(t.channel, t.needs_template) for t in options["telegram"].targets] == [("telegram", False)]
    assert not options["mastodon"].targets and "write first" in options["mastodon"].reason


def test_the_first_message_waits_for_the_undo_window(mainland, store, agent, smtp_server):
    jane = customer(store, email="jane@example.net")
    outreach.start_conversation(mainland, store, jane, channel="mail", handle="jane@example.net",
                                identity_kind="email", subject="Hi", text="Hello", agent=agent, hold_seconds=10, now=T0)
    assert send_due(mainland, store, now=T0 + dt.timedelta(seconds=5)).sent == 0
    assert send_due(mainland, store, now=T0 + dt.timedelta(seconds=11)).sent == 1


def test_a_template_in_a_conversation_whose_window_closed(mainland, store, agent, whatsapp, frozen_clock):
    # Sheena wrote two days ago: free text is refused, a template goes out.
    whatsapp.customer_text("16505551234", "Is my order on its way?", name="Sheena Nelson")
    now = frozen_clock.now() + dt.timedelta(days=2)
    connector = mainland.connector("whatsapp")
    for request in whatsapp.take_requests():
        mainland.ingestor(store).ingest("whatsapp", connector.parse_webhook(request))
    [conversation] = store.recent_conversations()
    conversation = store.conversation(conversation["id"])
    closed = sendability.decide(mainland, store, conversation, kind=sendability.AGENT_REPLY, text="Hi", now=now)
    assert closed.code == "window_closed"
    template, body = outreach.resolve_template(mainland, "whatsapp", "order_update|en_US", ["A-1234"])
    assert template == MessageTemplate("order_update", "en_US", ("A-1234",))
    outreach.queue_template_reply(mainland, store, conversation, template, body, agent=agent, now=now)
    assert send_due(mainland, store, now=now).sent == 1
    [sent] = whatsapp.sent
    assert sent["template"] == "order_update" and sent["parameters"] == ["A-1234"] and sent["to"] == "16505551234"
    assert store.conversation_messages(conversation["id"])[-1]["text"] == (
        "Your order A-1234 has shipped. Questions? Just reply here.")
