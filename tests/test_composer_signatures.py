"""Signatures: the agent's own (their settings page) and the channel's or team's (admins), with
variables, added on send (never typed into the box), previewed in the composer.

Replies go by email to the SMTP sink; the received plain text and HTML are checked.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import send_due
from inbox.signatures import render
from tests.mailfactory import raw_mail
from tests.test_web_auth import csrf_token, login, make_agent

JSON = {"Accept": "application/json"}


@pytest.fixture
def app_config(app_config, smtp_server):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
    }
    return app_config


class World:
    def __init__(self, app):
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self.app = app
        self.team = self.store.create_team("Care")
        self.ann = make_agent(self.store, name="Ann Marie Agent")
        self.root = make_agent(self.store, email="root@example.org", name="Root Admin", role="admin")
        self.store.add_team_member(self.team, self.ann["id"])
        self.store.add_team_member(self.team, self.root["id"])

    def client(self, email_address="ann@example.org"):
        client = self.app.test_client()
        assert login(client, email=email_address).status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client

    def conversation(self):
        item = parse_email(raw_mail(message_id="<s1@example.net>"), channel="mail")
        [cid] = self.mainland.ingestor(self.store).ingest(
            "mail", FetchResult(items=[item], cursor="c1")).new_conversations
        self.store.execute("UPDATE conversations SET team_id = ? WHERE id = ?", (self.team, cid))
        return cid

    def reply(self, client, cid, text):
        return client.post(f"/conversations/{cid}/reply", headers=JSON, data={
            "text": text, "seen_up_to": 10**6, "then_status": "open", "csrf_token": client.token})


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def received(smtp_server) -> email.message.EmailMessage:
    return email.message_from_bytes(smtp_server.messages[-1].content, policy=email.policy.default)


def test_unknown_variables_stay_visible_and_nothing_crashes():
    values = {"agent_name": "Ann Agent"}
    assert render("{agent_name} · {agnet_name} · {} · {{x}}", values) == "Ann Agent · {agnet_name} · {} · {{x}}"


def test_the_agents_and_the_teams_signature_are_added_on_send(world, smtp_server):
    ann, root = world.client(), world.client("root@example.org")
    saved = ann.post("/settings/signature", data={
        "signature": "Kind regards,\n{agent_first_name} ({agent_name})\n{unknown}", "csrf_token": ann.token})
    assert saved.status_code == 303
    shared = root.post("/settings/signatures", data={
        f"team:{world.team}": "{team_name} team, via {channel_name}", "channel:mail": "", "csrf_token": root.token})
    assert shared.status_code == 303
    cid = world.conversation()
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Signed on send:" in page and "Kind regards, · Ann (Ann Marie Agent)" in page
    assert '<textarea name="text" id="reply-text"' in page and ">Kind regards" not in page.split('id="reply-text"')[1][:300]
    assert world.reply(ann, cid, "Your **parcel** left today.").status_code == 200
    send_due(world.mainland, world.store)
    message = received(smtp_server)
    plain = message.get_body(("plain",)).get_content()
    assert plain.replace("\r\n", "\n").rstrip().endswith(
        "Your **parcel** left today.\n\nKind regards,\nAnn (Ann Marie Agent)\n{unknown}\n\nCare team, via mail")
    html = message.get_body(("html",)).get_content()
    assert "<strong>parcel</strong>" in html and 'class="signature"' in html and "Ann (Ann Marie Agent)" in html
    # The thread shows what went out; the stored text is what the agent wrote.
    [reply] = [m for m in world.store.thread_messages(cid) if m["direction"] == "out"]
    assert reply["text"] == "Your **parcel** left today." and "Care team, via mail" in reply["signature"]


def test_a_channel_signature_wins_over_the_teams(world, smtp_server):
    root = world.client("root@example.org")
    root.post("/settings/signatures", data={f"team:{world.team}": "Team sig", "channel:mail": "Mail desk",
                                            "csrf_token": root.token})
    cid = world.conversation()
    world.reply(world.client(), cid, "Hello")
    send_due(world.mainland, world.store)
    plain = received(smtp_server).get_body(("plain",)).get_content()
    assert "Mail desk" in plain and "Team sig" not in plain


def test_without_a_signature_the_reply_goes_as_written(world, smtp_server):
    cid = world.conversation()
    ann = world.client()
    assert "No signature." in ann.get(f"/conversations/{cid}").get_data(as_text=True)
    world.reply(ann, cid, "Hello")
    send_due(world.mainland, world.store)
    assert received(smtp_server).get_body(("plain",)).get_content().strip() == "Hello"


def test_only_admins_edit_shared_signatures(world):
    ann = world.client()
    assert ann.get("/settings/signatures").status_code == 403
    refused = ann.post("/settings/signatures", data={"channel:mail": "Hacked", "csrf_token": ann.token})
    assert refused.status_code == 403 and world.store.signatures.get("channel", "mail") is None
    assert world.client("root@example.org").get("/settings/signatures").status_code == 200


def test_a_too_long_signature_is_refused(world):
    ann = world.client()
    answer = ann.post("/settings/signature", data={"signature": "x" * 2001, "csrf_token": ann.token})
    assert answer.status_code == 400 and "at most 2000 characters" in answer.get_data(as_text=True)
    assert world.store.signatures.get("agent", world.ann["id"]) is None
