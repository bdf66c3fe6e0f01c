"""The pages for writing first (#12): New conversation from a customer's page and to a new email
address, and "Send a template" in a conversation whose reply window closed. Through the outbox to
the WhatsApp imitation and the SMTP sink, as the worker sends them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re

import pytest

from inbox.outbox import send_due
from inbox.store.base import iso
from sandbox.whatsapp import WhatsAppImitation
from tests.test_web_auth import csrf_token, login, make_agent

pytestmark = pytest.mark.server

SHEENA = "+16505551234"


@pytest.fixture
def whatsapp():
    with WhatsAppImitation() as imitation:
        yield imitation




@pytest.fixture
def app_config(app_config, whatsapp, smtp_server):
    app_config["channels"] = {
        "whatsapp": {"kind": "whatsapp", "phone_number_id": whatsapp.phone_number_id,
                     "access_token": whatsapp.access_token, "app_secret": whatsapp.app_secret,
                     "verify_token": whatsapp.verify_token, "api_url": whatsapp.url,
                     "business_account_id": whatsapp.business_account_id},
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
        "telegram": {"kind": "telegram", "token": "123456:imitation-token", "api_url": "http://127.0.0.1:9"},
    }
    return app_config


class World:
    def __init__(self, app):
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self.ann = make_agent(self.store, role="admin")  # sees customers who have no conversation yet
        self.app = app

    def customer(self, name="Sheena Nelson", **identities) -> int:
        now = iso(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        with self.store.write():
            cid = self.store.create_customer_record(name, now)
            for kind, value in identities.items():
                self.store.add_identity(cid, kind, value, value, True, now)
        return cid

    def identity_id(self, customer_id, kind) -> int:
        return next(i["id"] for i in self.store.identities_of(customer_id) if i["kind"] == kind)

    def client(self):
        client = self.app.test_client()
        assert login(client).status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client

    def send(self):
        return send_due(self.mainland, self.store)


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def text_of(response) -> str:
    return response.get_data(as_text=True)


def test_the_customer_page_offers_a_new_conversation_and_says_which_addresses_cannot(world):
    cid = world.customer(phone=SHEENA, email="sheena@example.net", mastodon="@sheena@social.example")
    client = world.client()
    assert f"/customers/{cid}/conversations/new" in text_of(client.get(f"/customers/{cid}"))
    page = text_of(client.get(f"/customers/{cid}/conversations/new"))
    assert f'value="{world.identity_id(cid, "phone")}|whatsapp"' in page
    assert f'value="{world.identity_id(cid, "email")}|mail"' in page
    assert "approved template only" in page
    cannot = page[page.index('id="cannot-start"'):]
    assert "@sheena@social.example" in cannot and "write first" in cannot
    # The picker lists the approved templates with their language, not the rejected one.
    assert "appointment_reminder (en_US, utility)" in page and "order_update (nl, utility)" in page
    assert "spring_sale" not in page


def test_the_addresses_are_shown_as_written_to_and_nothing_to_fill_when_none_can_be(world):
    cid = world.customer(email="sheena@example.net")
    with world.store.write():
        world.store.execute("UPDATE identities SET display = 'Sheena Nelson' WHERE customer_id = ?", (cid,))
    page = text_of(world.client().get(f"/customers/{cid}/conversations/new"))
    assert "sheena@example.net" in page, "the address the message goes to, not the customer's name again"
    nobody = world.customer(name="Only Mastodon", mastodon="@only@social.example")
    page = text_of(world.client().get(f"/customers/{nobody}/conversations/new"))
    assert 'id="nobody-to-write"' in page and 'id="cannot-start"' in page
    assert 'id="start-text"' not in page and 'id="start-send"' not in page, "no form to fill in vain"


def test_start_a_whatsapp_conversation_by_template(world, whatsapp):
    cid = world.customer(phone=SHEENA)
    client = world.client()
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "csrf_token": client.token, "to": f"{world.identity_id(cid, 'phone')}|whatsapp",
        "template:whatsapp": "appointment_reminder|en_US", "param:whatsapp": ["Sheena", "4 May"]})
    assert response.status_code == 303
    conversation_id = int(re.search(r"/conversations/(\d+)", response.headers["Location"]).group(1))
    conversation = world.store.conversation(conversation_id)
    assert conversation["status"] == "pending" and conversation["assignee_id"] == world.ann["id"]
    assert world.send().sent == 1
    [sent] = whatsapp.sent
    assert (sent["to"], sent["template"], sent["language"], sent["parameters"]) == (
        "16505551234", "appointment_reminder", "en_US", ["Sheena", "4 May"])
    page = text_of(client.get(f"/conversations/{conversation_id}"))
    assert "Hi Sheena, a reminder of your appointment on 4 May." in page
    [entry] = world.store.audit_entries(object_type="conversation", object_id=conversation_id)
    assert entry["action"] == "conversation_started"


def test_a_template_with_an_empty_variable_is_refused_and_nothing_is_made(world, whatsapp):
    cid = world.customer(phone=SHEENA)
    client = world.client()
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "csrf_token": client.token, "to": f"{world.identity_id(cid, 'phone')}|whatsapp",
        "template:whatsapp": "appointment_reminder|en_US", "param:whatsapp": ["Sheena", ""]})
    assert response.status_code == 400 and "Fill in every variable" in text_of(response)
    assert not world.store.customer_conversations(cid, None) and not whatsapp.sent


def test_start_an_email_conversation_a_fresh_mail(world, smtp_server):
    cid = world.customer(email="sheena@example.net")
    client = world.client()
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "csrf_token": client.token, "to": f"{world.identity_id(cid, 'email')}|mail", "subject": "Your repair",
        "text": "Your phone is repaired and ready."})
    assert response.status_code == 303
    assert world.send().sent == 1
    [received] = smtp_server.wait_for(1)
    mail = email.message_from_bytes(received.content, policy=email.policy.default)
    assert received.rcpt_tos == ["sheena@example.net"] and mail["In-Reply-To"] is None
    assert mail["Subject"].startswith("Your repair")
    assert "repaired and ready" in mail.get_body(("plain",)).get_content()


def test_an_identity_that_cannot_be_started_is_refused(world):
    cid = world.customer(mastodon="@sheena@social.example")
    client = world.client()
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "csrf_token": client.token, "to": f"{world.identity_id(cid, 'mastodon')}|telegram", "text": "Hi"})
    assert response.status_code == 400 and "Choose one of the customer" in text_of(response)
    assert not world.store.customer_conversations(cid, None)


def test_without_the_csrf_token_nothing_is_sent(world):
    cid = world.customer(email="sheena@example.net")
    client = world.client()
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "to": f"{world.identity_id(cid, 'email')}|mail", "subject": "Hi", "text": "Hello"})
    assert response.status_code == 400
    assert not world.store.customer_conversations(cid, None)


def test_to_a_new_email_address(world, smtp_server):
    client = world.client()
    assert "/conversations/new" in text_of(client.get("/notifications"))  # the top bar's menu
    bad = client.post("/conversations/new", data={"csrf_token": client.token, "address": "not an address",
                                                  "subject": "Hi", "text": "Hello", "channel": "mail"})
    assert bad.status_code == 400 and "not an email address" in text_of(bad)
    ours = client.post("/conversations/new", data={"csrf_token": client.token, "address": "support@mainland.test",
                                                   "subject": "Hi", "text": "Hello", "channel": "mail"})
    assert ours.status_code == 400 and "own addresses" in text_of(ours)
    assert world.store.identity_owner("email", "support@mainland.test") is None  # no customer made for it
    response = client.post("/conversations/new", data={
        "csrf_token": client.token, "address": "New.Person@Example.net", "name": "New Person", "subject": "Welcome",
        "text": "Hello and welcome.", "channel": "mail"})
    assert response.status_code == 303
    customer_id = world.store.identity_owner("email", "new.person@example.net")
    assert world.store.customer_record(customer_id)["display_name"] == "New Person"
    assert world.send().sent == 1
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["new.person@example.net"]
    # The same address again finds that customer.
    client.post("/conversations/new", data={"csrf_token": client.token, "address": "new.person@example.net",
                                            "subject": "Again", "text": "Hello again.", "channel": "mail"})
    assert len(world.store.customer_conversations(customer_id, None)) == 2


def closed_window_conversation(world, whatsapp, frozen_clock) -> int:
    whatsapp.customer_text("16505551234", "Where is my order?", name="Sheena Nelson")
    connector = world.mainland.connector("whatsapp")
    ingestor = world.mainland.ingestor(world.store)
    for request in whatsapp.take_requests():
        ingestor.ingest("whatsapp", connector.parse_webhook(request))
    [row] = world.store.recent_conversations()
    return row["id"]


def test_the_composer_offers_templates_only_when_the_window_is_closed(world, whatsapp, frozen_clock):
    conversation_id = closed_window_conversation(world, whatsapp, frozen_clock)
    client = world.client()
    assert 'id="template-form"' not in text_of(client.get(f"/conversations/{conversation_id}"))
    frozen_clock.advance(dt.timedelta(hours=25))
    client = world.client()  # a day later: signed in again
    page = text_of(client.get(f"/conversations/{conversation_id}"))
    assert 'id="window-closed"' in page and 'id="template-form"' in page and "Send a template" in page
    response = client.post(f"/conversations/{conversation_id}/template", data={
        "csrf_token": client.token, "channel": "whatsapp", "template:whatsapp": "order_update|nl",
        "param:whatsapp": ["A-77"]})
    assert response.status_code == 303
    assert world.send().sent == 1
    [sent] = whatsapp.sent
    assert (sent["template"], sent["language"], sent["parameters"], sent["to"]) == (
        "order_update", "nl", ["A-77"], "16505551234")
    assert "Je bestelling A-77 is verzonden." in text_of(client.get(f"/conversations/{conversation_id}"))


def test_no_template_while_the_window_is_open(world, whatsapp, frozen_clock):
    conversation_id = closed_window_conversation(world, whatsapp, frozen_clock)
    client = world.client()
    response = client.post(f"/conversations/{conversation_id}/template", data={
        "csrf_token": client.token, "channel": "whatsapp", "template:whatsapp": "order_update|nl",
        "param:whatsapp": ["A-77"]})
    assert response.status_code == 303
    assert "Templates cannot be sent" in text_of(client.get(response.headers["Location"]))
    assert world.send().sent == 0 and not whatsapp.sent


def test_a_new_address_of_another_teams_customer_is_refused(world):
    from inbox import outreach

    store = world.store
    team_a, team_b = store.create_team("Team A"), store.create_team("Team B")
    alice = make_agent(store, email="alice@example.org", name="Alice")
    bert = make_agent(store, email="bert@example.org", name="Bert")
    store.add_team_member(team_a, alice["id"])
    store.add_team_member(team_b, bert["id"])
    bettina = world.customer(name="Bettina", email="bettina@example.net")
    outreach.start_conversation(world.mainland, store, bettina, channel="mail", handle="bettina@example.net",
                                identity_kind="email", subject="Hi", text="Hello", agent=bert)
    client = world.app.test_client()
    assert login(client, email="alice@example.org").status_code == 302
    token = csrf_token(client, "/notifications")
    response = client.post("/conversations/new", data={"csrf_token": token, "address": "bettina@example.net",
                                                       "subject": "Hi", "text": "Hello", "channel": "mail"})
    assert response.status_code == 400 and "another team" in text_of(response)
    assert len(store.customer_conversations(bettina, None)) == 1
    assert client.get(f"/customers/{bettina}/conversations/new").status_code == 404
