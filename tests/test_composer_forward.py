"""Forward a message or the whole conversation, with its files, to any address: through the outbox
(by email, the channel that declares `Limits.copies`), recorded in the thread as who forwarded what
to whom. The SMTP sink's received bytes are checked.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import send_due
from tests.test_web_auth import csrf_token, login, make_agent

PDF = b"%PDF-1.4\n" + b"r" * 300


@pytest.fixture
def app_config(app_config, smtp_server):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
    }
    return app_config


def mail_with_receipt(message_id: str, body: str, in_reply_to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane Doe <jane@example.net>"
    msg["To"] = "support@mainland.test"
    msg["Subject"] = "Refund for order 1234"
    msg["Message-ID"] = message_id
    msg["Date"] = "Thu, 05 Mar 2026 10:15:02 +0000"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(body)
    if not in_reply_to:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="receipt.pdf")
    return msg.as_bytes()


@pytest.fixture
def world(app):
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    ingestor = mainland.ingestor(store)
    first = parse_email(mail_with_receipt("<r1@example.net>", "Here is my receipt."), channel="mail")
    [cid] = ingestor.ingest("mail", FetchResult(items=[first], cursor="c1")).new_conversations
    second = parse_email(mail_with_receipt("<r2@example.net>", "Any news?", "<r1@example.net>"), channel="mail")
    ingestor.ingest("mail", FetchResult(items=[second], cursor="c2"))
    client = app.test_client()
    assert login(client, email="ann@example.org").status_code == 302
    client.token = csrf_token(client, "/notifications")
    yield mainland, store, client, cid
    store.close()


def forward(client, cid, **form):
    return client.post(f"/conversations/{cid}/forward", data={"csrf_token": client.token, **form},
                       headers={"Accept": "application/json"})


def test_forwarding_one_message_sends_it_with_its_file_and_records_it(world, smtp_server):
    mainland, store, client, cid = world
    first = store.thread_messages(cid)[0]
    answer = forward(client, cid, to="finance@example.com", message_id=first["id"], comment="Please refund this.")
    assert answer.status_code == 200, answer.get_json()
    assert send_due(mainland, store).sent == 1
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["finance@example.com"]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert message["Subject"].startswith("Fwd: Refund for order 1234") and "In-Reply-To" not in message
    body = message.get_body(("plain",)).get_content()
    assert body.startswith("Please refund this.") and "Here is my receipt." in body and "Any news?" not in body
    assert "From: Jane Doe <jane@example.net>" in body
    [part] = list(message.iter_attachments())
    assert (part.get_filename(), part.get_content()) == ("receipt.pdf", PDF)
    # The thread says who forwarded what to whom, and that it went out; the customer's clocks did not move.
    page = client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Forwarded a message to finance@example.com." in page and f'href="#message-{first["id"]}"' in page
    [note] = [m for m in store.thread_messages(cid) if m["direction"] == "note"]
    assert (note["author_name"], note["delivery_status"]) == ("Ann Agent", "sent")
    assert store.conversation(cid)["first_response_at"] is None


def test_forwarding_the_whole_conversation_carries_every_message(world, smtp_server):
    mainland, store, client, cid = world
    assert forward(client, cid, to="boss@example.com, team@example.org").status_code == 200
    send_due(mainland, store)
    [mail] = smtp_server.messages
    assert sorted(mail.rcpt_tos) == ["boss@example.com", "team@example.org"]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    body = message.get_body(("plain",)).get_content()
    assert body.index("Here is my receipt.") < body.index("Any news?")
    assert [p.get_filename() for p in message.iter_attachments()] == ["receipt.pdf"]
    assert "Forwarded the whole conversation to boss@example.com, team@example.org." in client.get(
        f"/conversations/{cid}").get_data(as_text=True)


@pytest.mark.parametrize(("to", "says"), [
    ("", "Write the address to forward to."),
    ("not-an-address", "is not an email address"),
    ("support@mainland.test", "one of Mainland's own addresses"),
])
def test_a_forward_to_a_wrong_address_is_refused(world, smtp_server, to, says):
    mainland, store, client, cid = world
    answer = forward(client, cid, to=to)
    assert answer.status_code == 400 and says in answer.get_json()["error"]
    assert send_due(mainland, store).sent == 0


def test_a_message_of_another_conversation_cannot_be_forwarded_from_here(world, smtp_server):
    mainland, store, client, cid = world
    assert forward(client, cid, to="x@example.com", message_id=10**6).status_code == 404


@pytest.fixture
def chat_world(app_config, monkeypatch):
    """The config with a chat channel that cannot write to other addresses (no `Limits.copies`)."""
    import connectors
    from connectors.base import Connector, Limits

    class Chat(Connector):
        kind = "fwdchat"
        display_name = "FwdChat"
        limits = Limits(max_text_length=1000)

        def fetch(self, cursor):
            return FetchResult(items=[], cursor=cursor)

        def send(self, reply):
            raise AssertionError("a forward never goes out through the chat")

    original = connectors.discover
    monkeypatch.setattr(connectors, "discover", lambda **kw: {**original(**kw), Chat.kind: Chat})
    return app_config


@pytest.mark.parametrize("with_mail", [True, False])
def test_a_chat_conversation_forwards_by_the_mail_channel_or_offers_no_forward(chat_world, smtp_server, with_mail):
    from inbox import create_app

    chat_world["channels"] = {**(chat_world["channels"] if with_mail else {}), "chat": {"kind": "fwdchat"}}
    app = create_app(chat_world)
    app.config.update(TESTING=True)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    item = parse_email(mail_with_receipt("<chat1@example.net>", "Hi from the chat."), channel="chat")
    [cid] = mainland.ingestor(store).ingest("chat", FetchResult(items=[item], cursor="c1")).new_conversations
    client = app.test_client()
    assert login(client, email="ann@example.org").status_code == 302
    client.token = csrf_token(client, "/notifications")
    page = client.get(f"/conversations/{cid}").get_data(as_text=True)
    answer = forward(client, cid, to="finance@example.com")
    if with_mail:
        assert 'id="forward-tool"' in page and answer.status_code == 200
        assert send_due(mainland, store).sent == 1
        assert smtp_server.messages[0].rcpt_tos == ["finance@example.com"]
    else:
        assert 'id="forward-tool"' not in page
        assert answer.status_code == 400 and "configure an email channel" in answer.get_json()["error"]
    store.close()
