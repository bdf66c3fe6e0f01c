"""Email copies and the reply address: Cc pre-filled from the customer's last mail (minus our own
addresses), Bcc only in the SMTP envelope, the customer's Reply-To honoured.

Replies go through the composer and the outbox to the SMTP sink (tests/servers.py); the received
bytes and envelope are checked. Cc/Bcc are offered where the channel declares `Limits.copies`.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from connectors.base import Connector, Limits
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import send_due
from tests.mailfactory import raw_mail
from tests.test_web_auth import csrf_token, login, make_agent

JSON = {"Accept": "application/json"}
HEADERS = ("Cc: Dave <dave@example.org>, Other Desk <desk@mainland.test>\r\n"
           "Reply-To: Jane at work <jane.work@example.net>")


class Chat(Connector):
    """A chat channel: no copies."""

    kind = "copychat"
    display_name = "CopyChat"
    limits = Limits(max_text_length=1000, formatting="plain")

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        return "x"


@pytest.fixture
def app_config(app_config, smtp_server, monkeypatch):
    import connectors

    original = connectors.discover

    def discover(**kwargs):
        found = original(**kwargs)
        found[Chat.kind] = Chat
        return found

    monkeypatch.setattr(connectors, "discover", discover)
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
        "chat": {"kind": Chat.kind},
    }
    return app_config


@pytest.fixture
def world(app):
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store)
    client = app.test_client()
    assert login(client, email="ann@example.org").status_code == 302
    client.token = csrf_token(client, "/notifications")

    class World:
        pass

    w = World()
    w.mainland, w.store, w.client, w.n = mainland, store, client, 0

    def conversation(channel="mail", **mail):
        w.n += 1
        mail.setdefault("to", "Support <support@mainland.test>, Carol <carol@example.com>")
        mail.setdefault("extra_headers", HEADERS)
        item = parse_email(raw_mail(message_id=f"<c{w.n}@example.net>", **mail), channel=channel)
        [cid] = mainland.ingestor(store).ingest(channel, FetchResult(items=[item], cursor=f"c{w.n}")).new_conversations
        return cid

    def reply(cid, text="Thanks, all.", **form):
        data = {"text": text, "seen_up_to": 10**6, "then_status": "open", "csrf_token": client.token, **form}
        return client.post(f"/conversations/{cid}/reply", data=data, headers=JSON)

    w.conversation, w.reply = conversation, reply
    yield w
    store.close()


def test_cc_is_prefilled_from_the_customers_mail_without_our_own_addresses(world):
    cid = world.conversation()
    page = world.client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'value="carol@example.com, dave@example.org"' in page
    assert '<label for="reply-bcc">' in page
    assert "Reply to jane.work@example.net" in page, "the composer names the Reply-To address"


def test_cc_in_the_header_bcc_only_in_the_envelope_and_reply_to_is_the_target(world, smtp_server):
    cid = world.conversation()
    answer = world.reply(cid, cc="carol@example.com, dave@example.org", bcc="boss@example.com")
    assert answer.status_code == 200, answer.get_json()
    assert send_due(world.mainland, world.store).sent == 1
    [mail] = smtp_server.messages
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert [a.addr_spec for a in message["To"].addresses] == ["jane.work@example.net"]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["carol@example.com", "dave@example.org"]
    assert b"boss@example.com" not in mail.content and "Bcc" not in message
    assert sorted(mail.rcpt_tos) == sorted(["jane.work@example.net", "carol@example.com", "dave@example.org",
                                            "boss@example.com"])
    page = world.client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Cc: carol@example.com, dave@example.org" in page and "Bcc: boss@example.com" in page


def test_without_reply_to_the_author_is_the_target(world, smtp_server):
    cid = world.conversation(extra_headers="")
    world.reply(cid)
    send_due(world.mainland, world.store)
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["jane@example.net"]


@pytest.mark.parametrize(("field", "value", "says"), [
    ("cc", "carol@example.com, not an address", "not is not an email address"),
    ("bcc", "desk@mainland.test", "desk@mainland.test is one of Mainland's own addresses"),
    ("cc", "x@example.com\r\nBcc: evil@example.com", "Bcc: is not an email address"),
    ("cc", ", ".join(f"p{i}@example.com" for i in range(21)), "At most 20 addresses in copy"),
])
def test_copies_a_reply_cannot_go_to_are_refused_with_what_to_do(world, smtp_server, field, value, says):
    cid = world.conversation()
    answer = world.reply(cid, **{field: value})
    assert answer.status_code == 400 and says in answer.get_json()["error"]
    assert send_due(world.mainland, world.store).sent == 0 and smtp_server.messages == []


def test_a_channel_without_copies_offers_none_and_refuses_them(world):
    cid = world.conversation(channel="chat")
    page = world.client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'name="cc"' not in page and 'name="bcc"' not in page
    answer = world.reply(cid, cc="carol@example.com")
    assert answer.status_code == 400 and "cannot send copies" in answer.get_json()["error"]


def test_formatted_mail_is_multipart_alternative_plain_first_and_sanitised(world, smtp_server):
    cid = world.conversation()
    text = "Hello **Jane**,\n\nsee [the tracking page](https://track.example.com/1) <script>alert(1)</script>"
    assert world.reply(cid, text).status_code == 200
    send_due(world.mainland, world.store)
    message = email.message_from_bytes(smtp_server.messages[0].content, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_payload()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert "Hello **Jane**" in plain.get_content()
    body = html.get_content()
    assert "<strong>Jane</strong>" in body and 'href="https://track.example.com/1"' in body
    assert "<script>" not in body
