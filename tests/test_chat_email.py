"""The website chat by email (#18): an unread answer follows the visitor by mail, their answer by mail
continues the chat, and a link sent by mail opens the chat on another device.

The app has a chat channel "site" whose mail goes out through the email channel "mail", to a real
SMTP sink on loopback; the worker's job (`inbox.chat_followup.run`) and the outbox are driven by
the test on the frozen clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import secrets
import uuid

import pytest

from inbox import chat_followup
from inbox.mail import parse_email
from inbox.outbox import queue_reply, send_due
from inbox.store import Store
from tests.mailfactory import raw_mail
from tests.test_web_auth import make_agent

SITE = "https://www.example.com"
PAGE = SITE + "/shop/order?id=7"


@pytest.fixture
def app_config(app_config, smtp_server):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
        "site": {"kind": "chat", "title": "Example Ltd", "allowed_origins": [SITE], "email_channel": "mail",
                 "followup_minutes": 5},
    }
    return app_config


@pytest.fixture
def db(app, app_config):
    store = Store(app_config["database"])
    yield store
    store.close()


@pytest.fixture
def mainland(app):
    return app.extensions["mainland"]


@pytest.fixture
def agent(db):
    return make_agent(db, name="Ann Agent")


def visitor() -> str:
    return secrets.token_urlsafe(32)


def headers(token: str) -> dict[str, str]:
    return {"X-Mainland-Visitor": token, "Origin": SITE}


def say(client, token: str, text: str) -> None:
    response = client.post("/chat/site/messages", json={"client_id": str(uuid.uuid4()), "text": text},
                           headers=headers(token))
    assert response.status_code == 200, response.get_json()


def leave_address(client, token: str, address: str, lang: str = "en"):
    return client.post("/chat/site/email", json={"email": address, "lang": lang, "page": PAGE}, headers=headers(token))


def history(client, token: str) -> list[dict]:
    response = client.get("/chat/site/messages", headers=headers(token))
    assert response.status_code == 200
    return response.get_json()["messages"]


def answered_chat(client, db, mainland, agent, token: str, *, address: str | None = "pat@example.net"):
    """A visitor asked (and perhaps left an address); the agent's answer is sent to the chat."""
    say(client, token, "Where is my parcel?")
    if address:
        assert leave_address(client, token, address).status_code == 200
    [conversation] = [c for c in db.recent_conversations() if c["channel"] == "site"]
    queue_reply(mainland, db, conversation["id"], "It arrives tomorrow before noon.", agent=agent)
    assert send_due(mainland, db).sent == 1
    return conversation


def mails(smtp_server) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(m.content, policy=email.policy.default) for m in smtp_server.messages]


def follow_up(mainland, db) -> int:
    """One run of the worker's job and of the outbox: the mails sent."""
    chat_followup.run(mainland, db)
    return send_due(mainland, db).sent


# Leaving an address -------------------------------------------------------------------------------------------

def test_the_address_becomes_the_visitors_email_identity(client, db, mainland, agent, frozen_clock):
    token = visitor()
    conversation = answered_chat(client, db, mainland, agent, token, address="Pat@Example.net")
    identities = {(i["kind"], i["value"]) for i in db.identities_of(conversation["customer_id"])}
    assert ("email", "pat@example.net") in identities


def test_another_customers_address_is_not_attached_and_gets_no_mail(client, db, mainland, agent, frozen_clock,
                                                                    smtp_server):
    item = parse_email(raw_mail(sender="Kim <kim@example.net>", subject="Invoice"), channel="mail")
    mainland.ingestor(db).ingest_one("mail", item)
    token = visitor()
    conversation = answered_chat(client, db, mainland, agent, token, address="kim@example.net")
    assert ("email", "kim@example.net") not in {
        (i["kind"], i["value"]) for i in db.identities_of(conversation["customer_id"])}
    frozen_clock.advance(minutes=6)
    assert follow_up(mainland, db) == 0
    assert smtp_server.messages == []


def test_a_malformed_address_is_refused_in_words(client, frozen_clock):
    token = visitor()
    say(client, token, "Hi")
    response = leave_address(client, token, "not an address")
    assert response.status_code == 400 and response.get_json()["message"]


# The follow-up -----------------------------------------------------------------------------------------------

def test_an_unread_answer_follows_the_visitor_by_email_after_the_set_minutes(client, db, mainland, agent,
                                                                               frozen_clock, smtp_server):
    token = visitor()
    conversation = answered_chat(client, db, mainland, agent, token)
    frozen_clock.advance(minutes=4)
    assert follow_up(mainland, db) == 0
    frozen_clock.advance(minutes=2)
    assert follow_up(mainland, db) == 1
    [mail] = mails(smtp_server)
    assert mail["To"].addresses[0].addr_spec == "pat@example.net"
    assert mail["Subject"].startswith("Re: Where is my parcel?")
    assert f"mainland.{conversation['token']}." in mail["Message-ID"]
    body = mail.get_body(("plain",)).get_content()
    assert body.startswith("It arrives tomorrow before noon.")
    assert f"Continue in the chat: {PAGE}" in body
    assert "> You: Where is my parcel?" in body
    # The agent sees on the conversation that the answer also went by email.
    [note] = [m for m in db.conversation_messages(conversation["id"]) if m["direction"] == "note"]
    assert "pat@example.net" in note["text"] and note["delivery_status"] == "sent"


# The Dutch mails need their texts in the Dutch catalog (/tmp/nl2/review.po, merged by the lead).
def test_the_mail_speaks_the_language_the_widget_spoke(client, db, mainland, agent, frozen_clock, smtp_server):
    token = visitor()
    say(client, token, "Waar is mijn pakket?")
    leave_address(client, token, "pat@example.net", lang="nl")
    [conversation] = db.recent_conversations()
    queue_reply(mainland, db, conversation["id"], "Het komt morgen.", agent=agent)
    send_due(mainland, db)
    frozen_clock.advance(minutes=6)
    assert follow_up(mainland, db) == 1
    body = mails(smtp_server)[0].get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.rstrip().split("\n\n")[1:] == [f"Verder in de chat: {PAGE}", "Of beantwoord gewoon deze e-mail.",
                                                "Eerder in dit gesprek:\n> U: Waar is mijn pakket?"]


def test_the_sign_in_mail_in_dutch_and_the_agents_note_in_the_teams_language(client, db, mainland, agent,
                                                                              frozen_clock, smtp_server,
                                                                              monkeypatch):
    monkeypatch.setattr(mainland, "config", dataclasses.replace(mainland.config, default_language="nl"))
    conversation = answered_chat(client, db, mainland, agent, visitor())
    assert ask_link(client, "pat@example.net", lang="nl").get_json() == {"ok": True}
    assert send_due(mainland, db).sent == 1
    [mail] = mails(smtp_server)
    assert mail["Subject"].startswith("Uw chat met Example Ltd")
    body = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.startswith("Open deze link in de browser waarin u uw chat met Example Ltd wilt zien:\n\n")
    assert body.rstrip().endswith("De link werkt één keer, binnen 30 minuten. Heeft u er niet om gevraagd? "
                                  "Dan kunt u deze e-mail negeren.")
    [note] = [m for m in db.conversation_messages(conversation["id"]) if m["direction"] == "note"]
    assert note["text"] == "Een link om deze chat op een ander apparaat te openen ging per e-mail naar pat@example.net."
    assert note["author_name"] == "Inloglink per e-mail"


def test_an_answer_read_in_the_widget_is_not_mailed(client, db, mainland, agent, frozen_clock, smtp_server):
    token = visitor()
    answered_chat(client, db, mainland, agent, token)
    reply = [m for m in history(client, token) if m["from"] == "team"][0]
    moved = client.post("/chat/site/receipts", json={"read": [reply["id"]]}, headers=headers(token)).get_json()
    assert moved["moved"] == 1
    frozen_clock.advance(minutes=30)
    assert follow_up(mainland, db) == 0
    assert smtp_server.messages == []


def test_without_an_address_nothing_is_mailed(client, db, mainland, agent, frozen_clock, smtp_server):
    answered_chat(client, db, mainland, agent, visitor(), address=None)
    frozen_clock.advance(minutes=30)
    assert follow_up(mainland, db) == 0
    assert smtp_server.messages == []


def test_the_follow_up_goes_exactly_once_across_worker_runs(client, db, mainland, agent, frozen_clock, smtp_server):
    answered_chat(client, db, mainland, agent, visitor())
    frozen_clock.advance(minutes=6)
    first = chat_followup.run(mainland, db)
    frozen_clock.advance(minutes=1)
    second = chat_followup.run(mainland, db)
    assert (first.queued, second.queued) == (1, 0)
    assert send_due(mainland, db).sent == 1
    frozen_clock.advance(minutes=10)
    assert follow_up(mainland, db) == 0
    assert len(smtp_server.messages) == 1


def test_a_reply_sent_before_the_follow_up_was_switched_on_long_ago_is_not_mailed(client, db, mainland, agent,
                                                                                  frozen_clock, smtp_server):
    answered_chat(client, db, mainland, agent, visitor())
    frozen_clock.advance(chat_followup.MAX_FOLLOWUP_AGE + dt.timedelta(minutes=1))
    assert follow_up(mainland, db) == 0


# The visitor answers by mail ------------------------------------------------------------------------------------

def test_the_visitors_email_reply_continues_the_chat_conversation(client, db, mainland, agent, frozen_clock,
                                                                  smtp_server):
    token = visitor()
    conversation = answered_chat(client, db, mainland, agent, token)
    frozen_clock.advance(minutes=6)
    follow_up(mainland, db)
    [mail] = mails(smtp_server)
    reply = parse_email(raw_mail(sender="Pat <pat@example.net>", subject=f"Re: {mail['Subject']}",
                                 in_reply_to=mail["Message-ID"], references=mail["Message-ID"],
                                 body="Thanks! Can it go to my neighbour?"), channel="mail")
    report = mainland.ingestor(db).ingest_one("mail", reply)
    assert report.stored == 1 and report.new_conversations == []
    [stored] = [m for m in db.conversation_messages(conversation["id"]) if m["channel"] == "mail"
                and m["direction"] == "in"]
    assert stored["text"].startswith("Thanks! Can it go to my neighbour?")
    shown = history(client, token)
    assert [m["from"] for m in shown] == ["visitor", "team", "visitor"]
    assert shown[-1]["by_email"] is True and shown[0]["by_email"] is False
    assert shown[-1]["text"].startswith("Thanks! Can it go to my neighbour?")


# A new device, by a link sent by email ------------------------------------------------------------------------------

def ask_link(client, address: str, token: str | None = None, ip: str = "203.0.113.7", lang: str = "en"):
    return client.post("/chat/site/signin/request", json={"email": address, "lang": lang, "page": PAGE},
                       headers=headers(token or visitor()), environ_base={"REMOTE_ADDR": ip})


def link_in(mail) -> str:
    body = mail.get_body(("plain",)).get_content()
    [line] = [line for line in body.splitlines() if chat_followup.SIGNIN_FRAGMENT in line]
    return line.strip()


def redeem(client, token: str, link: str):
    fragment = link.split("#", 1)[1]
    return client.post("/chat/site/signin", json={"token": fragment.removeprefix(chat_followup.SIGNIN_FRAGMENT)},
                       headers=headers(token))


def test_a_link_by_email_shows_the_whole_conversation_on_a_new_device(client, db, mainland, agent, frozen_clock,
                                                                      smtp_server):
    first = visitor()
    answered_chat(client, db, mainland, agent, first)
    device = visitor()
    assert history(client, device) == []
    assert ask_link(client, "PAT@example.net", device).get_json() == {"ok": True}
    assert send_due(mainland, db).sent == 1
    [mail] = mails(smtp_server)
    assert mail["To"].addresses[0].addr_spec == "pat@example.net"
    link = link_in(mail)
    assert link.startswith(PAGE + "#" + chat_followup.SIGNIN_FRAGMENT)
    response = redeem(client, device, link)
    assert response.status_code == 200 and response.get_json()["ok"] is True
    assert [m["text"] for m in history(client, device)] == ["Where is my parcel?", "It arrives tomorrow before noon."]
    # What the new device writes joins the same conversation.
    say(client, device, "Thanks, got it")
    assert [m["text"] for m in history(client, first)][-1] == "Thanks, got it"
    assert len([c for c in db.recent_conversations() if c["channel"] == "site"]) == 1
    [entry] = [a for a in db.execute("SELECT action, details FROM audit_log").fetchall()
               if a[0] == "chat_device_signin"]
    assert "pat@example.net" in entry[1]


def test_a_link_works_once(client, db, mainland, agent, frozen_clock, smtp_server):
    answered_chat(client, db, mainland, agent, visitor())
    ask_link(client, "pat@example.net")
    send_due(mainland, db)
    link = link_in(mails(smtp_server)[0])
    assert redeem(client, visitor(), link).status_code == 200
    thief = visitor()
    again = redeem(client, thief, link)
    assert again.status_code == 410 and again.get_json()["error"] == "signin_used"
    assert again.get_json()["message"]
    assert history(client, thief) == []


def test_a_link_expires(client, db, mainland, agent, frozen_clock, smtp_server):
    answered_chat(client, db, mainland, agent, visitor())
    ask_link(client, "pat@example.net")
    send_due(mainland, db)
    link = link_in(mails(smtp_server)[0])
    frozen_clock.advance(minutes=chat_followup.SIGNIN_MINUTES + 1)
    device = visitor()
    response = redeem(client, device, link)
    assert response.status_code == 410 and response.get_json()["error"] == "signin_expired"
    assert history(client, device) == []


def test_a_forged_link_is_refused(client, db, mainland, agent, frozen_clock, smtp_server):
    answered_chat(client, db, mainland, agent, visitor())
    ask_link(client, "pat@example.net")
    send_due(mainland, db)
    link = link_in(mails(smtp_server)[0])
    nonce = link.split(chat_followup.SIGNIN_FRAGMENT, 1)[1].split(".")[0]
    device = visitor()
    for token in (nonce + "." + "0" * 32, nonce, "", "x.y"):
        response = client.post("/chat/site/signin", json={"token": token}, headers=headers(device))
        assert response.status_code == 400 and response.get_json()["error"] == "signin_invalid"
    assert history(client, device) == []


def test_asking_for_an_unknown_address_answers_the_same_and_mails_nothing(client, db, mainland, agent, frozen_clock,
                                                                         smtp_server):
    answered_chat(client, db, mainland, agent, visitor())
    known = ask_link(client, "pat@example.net", ip="203.0.113.8")
    unknown = ask_link(client, "nobody@example.net", ip="203.0.113.9")
    assert (known.status_code, known.get_json()) == (unknown.status_code, unknown.get_json())
    assert send_due(mainland, db).sent == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [["pat@example.net"]]


def test_links_are_limited_per_address_and_per_ip(client, frozen_clock):
    statuses = [ask_link(client, "pat@example.net", ip=f"203.0.113.{n}").status_code for n in range(1, 5)]
    assert statuses == [200, 200, 200, 429]
    statuses = [ask_link(client, f"p{n}@example.net", ip="198.51.100.1").status_code for n in range(11)]
    assert statuses == [200] * 10 + [429]


def test_a_link_only_leads_to_an_allowed_site(client, frozen_clock):
    response = client.post("/chat/site/signin/request",
                           json={"email": "pat@example.net", "page": "https://evil.example/phish"},
                           headers=headers(visitor()))
    assert response.status_code == 400


# Settings --------------------------------------------------------------------------------------------------------

def test_the_widget_offers_email_only_with_an_email_channel(app_config, client):
    assert client.get("/chat/site/config", headers={"Origin": SITE}).get_json()["email"] is True


def test_a_chat_without_email_channel_offers_no_email(app_config, tmp_path):
    from inbox import create_app

    app_config["channels"]["site"].pop("email_channel")
    app = create_app(app_config)
    other = app.test_client()
    assert other.get("/chat/site/config", headers={"Origin": SITE}).get_json()["email"] is False
    assert other.post("/chat/site/email", json={"email": "pat@example.net"},
                      headers=headers(visitor())).status_code == 404


def test_email_channel_must_name_an_email_channel(app_config):
    from inbox import create_app

    app_config["channels"]["site"]["email_channel"] = "site"
    app = create_app(app_config)
    assert chat_followup.email_channel(app.extensions["mainland"], "site") is None


def test_the_worker_sends_the_follow_up_by_itself(client, db, mainland, agent, frozen_clock, smtp_server):
    from inbox.worker import Worker

    answered_chat(client, db, mainland, agent, visitor())
    frozen_clock.advance(minutes=6)
    worker = Worker(mainland, outbox_every=0.2)
    worker.start()
    try:
        [mail] = smtp_server.wait_for(1, timeout=20)
        assert mail.rcpt_tos == ["pat@example.net"]
        assert worker.runs["chat_followup"] >= 1
    finally:
        worker.stop()
    assert len(smtp_server.messages) == 1


def test_an_address_left_before_the_first_message_is_used(client, db, mainland, agent, frozen_clock, smtp_server):
    token = visitor()
    assert leave_address(client, token, "pat@example.net").status_code == 200  # the team is away: asked first
    answered_chat(client, db, mainland, agent, token, address=None)
    frozen_clock.advance(minutes=6)
    assert follow_up(mainland, db) == 1
    assert smtp_server.messages[0].rcpt_tos == ["pat@example.net"]


def test_the_conversation_page_shows_the_agent_that_the_answer_went_by_email(app, client, db, mainland, agent,
                                                                              frozen_clock, smtp_server):
    from tests.test_web_auth import login

    conversation = answered_chat(client, db, mainland, agent, visitor())
    frozen_clock.advance(minutes=6)
    follow_up(mainland, db)
    agent_client = app.test_client()
    login(agent_client)
    page = agent_client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    assert "Email follow-up" in page
    assert "this answer also went by email to pat@example.net" in page
