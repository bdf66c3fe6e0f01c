"""The composer: undo send, drafts on the server, @mention handles, and who reads the reply.

Replies go out through a fake chat connector that records what it was handed (no server), sent by
`send_due` as the worker's outbox job would. The clock is frozen: the undo window (default 10 s,
`web.undo_send_seconds`) passes only when a test moves the clock.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from connectors.base import Connector, Limits
from inbox.config import ConfigError, from_mapping
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import UndoRefused, send_due, undo_reply, undo_seconds
from inbox.web.conversations import Mentions, find_mentions
from tests.mailfactory import raw_mail
from tests.test_web_auth import csrf_token, login, make_agent

JSON = {"Accept": "application/json"}


class Chat(Connector):
    """A chat channel that records every reply handed to it."""

    kind = "composerchat"
    display_name = "ChatApp"
    limits = Limits(max_text_length=1000, formatting="plain", supports_attachments=False, private_replies=True)
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        Chat.sent.append(reply)
        return f"chat-{len(Chat.sent)}"


@pytest.fixture
def app_config(app_config, monkeypatch):
    import connectors

    original = connectors.discover

    def discover(**kwargs):
        found = original(**kwargs)
        found[Chat.kind] = Chat
        return found

    monkeypatch.setattr(connectors, "discover", discover)
    Chat.sent = []
    app_config["channels"] = {"chat": {"kind": Chat.kind}}
    app_config["web"] = {"undo_send_seconds": 10}  # the default, stated: other suites may turn undo off
    return app_config


class World:
    def __init__(self, app):
        self.app = app
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self.ann = make_agent(self.store)
        self.bob = make_agent(self.store, email="bob@example.org", name="Bob Builder")
        self.ingestor = self.mainland.ingestor(self.store)
        self._n = 0

    def conversation(self, *, public: bool = False) -> int:
        self._n += 1
        item = parse_email(raw_mail(subject=f"Question {self._n}", message_id=f"<q{self._n}@example.net>"),
                           channel="chat")
        report = self.ingestor.ingest("chat", FetchResult(items=[item], cursor=f"c{self._n}"))
        [cid] = report.new_conversations
        if public:
            self.store.execute("UPDATE conversations SET public = 1 WHERE id = ?", (cid,))
        return cid

    def client(self, who: str = "ann"):
        client = self.app.test_client()
        assert login(client, email=f"{who}@example.org").status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client

    def reply(self, client, cid, text="Your parcel left today.", **form):
        data = {"text": text, "seen_up_to": 10**6, "then_status": "open", "csrf_token": client.token, **form}
        return client.post(f"/conversations/{cid}/reply", data=data, headers=JSON)

    def replies(self, cid):
        return [m for m in self.store.thread_messages(cid) if m["direction"] == "out"]


@pytest.fixture
def world(app, frozen_clock):
    w = World(app)
    yield w
    w.store.close()


def undo(client, cid, outbox_id):
    return client.post(f"/conversations/{cid}/undo-send", data={"outbox_id": outbox_id, "csrf_token": client.token},
                       headers=JSON)


def page(client, cid) -> str:
    return client.get(f"/conversations/{cid}").get_data(as_text=True)


# Undo send ---------------------------------------------------------------------------------------

def test_undo_within_the_window_never_sends_and_gives_the_text_back(world, frozen_clock):
    cid = world.conversation()
    ann = world.client()
    answer = world.reply(ann, cid, "Ouch, wrong customer")
    body = answer.get_json()
    assert body["ok"] and body["undo"]["seconds"] == 10
    assert "Sending in 10 s" in body["undo"]["html"]
    frozen_clock.advance(dt.timedelta(seconds=5))
    assert send_due(world.mainland, world.store).sent == 0, "not released during the window"
    assert "Sending in 5 s" in page(ann, cid)

    taken = undo(ann, cid, body["undo"]["id"])
    assert taken.status_code == 200 and taken.get_json()["text"] == "Ouch, wrong customer"
    frozen_clock.advance(dt.timedelta(minutes=5))
    assert send_due(world.mainland, world.store).sent == 0
    assert Chat.sent == [] and world.replies(cid) == []
    assert world.store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    shown = page(ann, cid)
    assert "Ouch, wrong customer</textarea>" in shown, "the text is back in the composer (a server draft)"
    assert 'id="undo-send" hidden' in shown


def test_send_and_resolve_moves_on_at_once_and_every_page_offers_the_undo(world, frozen_clock):
    second = world.conversation()  # older: next in the queue after the newer one
    first = world.conversation()
    ann = world.client()
    body = world.reply(ann, first, "Sent to the wrong person", then_status="resolved").get_json()
    assert body["next_url"].endswith(f"/conversations/{second}")  # no waiting out the window
    toast = ann.get(body["next_url"]).get_data(as_text=True)
    assert 'class="undo-toast"' in toast and "sending in 10 s" in toast
    frozen_clock.advance(dt.timedelta(seconds=4))
    assert "sending in 6 s" in ann.get("/").get_data(as_text=True)  # on the queue too
    form = re.search(r'action="(/conversations/\d+/undo-send)".*?name="outbox_id" value="([^"]+)"', toast, re.S)
    back = ann.post(form.group(1), data={"outbox_id": form.group(2), "csrf_token": ann.token})
    assert back.status_code == 303 and back.headers["Location"].startswith(f"/conversations/{first}")
    frozen_clock.advance(dt.timedelta(minutes=1))
    assert send_due(world.mainland, world.store).sent == 0 and Chat.sent == []
    shown = page(ann, first)
    assert "Sent to the wrong person</textarea>" in shown
    assert world.store.conversation(first)["status"] != "resolved"  # the status the send set is undone
    assert 'class="undo-toast"' not in ann.get("/").get_data(as_text=True)


def test_after_the_window_the_reply_is_sent_once(world, frozen_clock):
    cid = world.conversation()
    ann = world.client()
    world.reply(ann, cid, "On its way")
    frozen_clock.advance(dt.timedelta(seconds=9))
    assert send_due(world.mainland, world.store).sent == 0
    frozen_clock.advance(dt.timedelta(seconds=1))
    assert send_due(world.mainland, world.store).sent == 1
    assert send_due(world.mainland, world.store).sent == 0
    assert [r.text for r in Chat.sent] == ["On its way"]
    assert world.replies(cid)[0]["delivery_status"] == "sent"


def test_undo_after_release_is_refused_with_a_clear_message(world, frozen_clock):
    cid = world.conversation()
    ann = world.client()
    outbox_id = world.reply(ann, cid, "Gone already").get_json()["undo"]["id"]
    frozen_clock.advance(dt.timedelta(seconds=11))
    assert send_due(world.mainland, world.store).sent == 1
    refused = undo(ann, cid, outbox_id)
    assert refused.status_code == 409
    assert "Too late to undo" in refused.get_json()["error"]
    assert len(world.replies(cid)) == 1 and len(Chat.sent) == 1


def test_a_claimed_reply_cannot_be_taken_back_mid_send(world, frozen_clock, monkeypatch):
    """The race: a sender claimed the row (its connector is busy sending) when the undo arrives."""
    cid = world.conversation()
    ann = world.client()
    outbox_id = world.reply(ann, cid, "Racing").get_json()["undo"]["id"]
    frozen_clock.advance(dt.timedelta(seconds=10))
    attempts = []

    def undo_while_sending(reply):
        other = world.mainland.open_store()  # the undo comes from another request, on its own connection
        try:
            with pytest.raises(UndoRefused):
                undo_reply(world.mainland, other, cid, outbox_id, agent=world.ann)
        finally:
            other.close()
        attempts.append(reply.text)
        return "chat-1"

    monkeypatch.setattr(Chat, "send", lambda self, reply: undo_while_sending(reply))
    assert send_due(world.mainland, world.store).sent == 1
    assert attempts == ["Racing"] and world.replies(cid)[0]["delivery_status"] == "sent"


def test_only_the_writer_can_undo_and_the_status_the_send_set_comes_back(world, frozen_clock):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    assert world.store.conversation(cid)["status"] in ("new", "open")
    body = world.reply(ann, cid, "Done here", then_status="resolved").get_json()
    assert body["next_url"] and body["undo"], "moving on still offers the undo"
    assert world.store.conversation(cid)["status"] == "resolved"
    assert undo(bob, cid, body["undo"]["id"]).status_code == 409
    assert undo(ann, cid, body["undo"]["id"]).get_json()["status"] == "open"
    assert world.store.conversation(cid)["status"] == "open"
    assert world.store.conversation(cid)["first_response_at"] is None


def test_zero_seconds_sends_at_once_without_undo(app_config, frozen_clock):
    from inbox import create_app

    app_config["web"] = {"undo_send_seconds": 0}
    app = create_app(app_config)
    app.config.update(TESTING=True)
    w = World(app)
    cid = w.conversation()
    body = w.reply(w.client(), cid, "Straight out").get_json()
    assert "undo" not in body
    assert send_due(w.mainland, w.store).sent == 1
    w.store.close()


def test_a_trainees_held_reply_is_not_affected(world, frozen_clock):
    cid = world.conversation()
    world.store.set_agent_routing(world.ann["id"], capacity=5, languages=(), topics=(), trainee=True)
    body = world.reply(world.client(), cid, "Please check me").get_json()
    assert body["held_for_review"] and "undo" not in body
    assert world.store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_undo_send_seconds_is_checked_in_the_config(tmp_path):
    with pytest.raises(ConfigError, match="web.undo_send_seconds"):
        from_mapping({"database": str(tmp_path / "x.db"), "web": {"undo_send_seconds": -1}}, base=tmp_path)
    config = from_mapping({"database": str(tmp_path / "x.db"), "web": {"undo_send_seconds": 30}}, base=tmp_path)
    assert undo_seconds(config) == 30
    assert undo_seconds(from_mapping({"database": str(tmp_path / "x.db")}, base=tmp_path)) == 10, "the default"


# Drafts ------------------------------------------------------------------------------------------

def save(client, cid, text, kind="reply"):
    return client.post(f"/conversations/{cid}/draft", json={"kind": kind, "text": text},
                       headers={**JSON, "X-CSRFToken": client.token})


def test_a_draft_follows_the_agent_to_another_device(world):
    cid = world.conversation()
    laptop, phone = world.client(), world.client()
    assert save(laptop, cid, "Dear Jane, about your order").get_json() == {"ok": True, "saved": True}
    assert save(laptop, cid, "Checking with @bob", kind="note").status_code == 200
    shown = page(phone, cid)
    assert "Dear Jane, about your order</textarea>" in shown
    assert "Checking with @bob</textarea>" in shown
    assert "has a draft" not in shown, "one's own draft is not announced"


def test_colleagues_see_who_has_a_draft_until_it_is_gone(world):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    save(ann, cid, "Half a thought")
    shown = page(bob, cid)
    assert "Ann Agent has a draft here." in shown and "Half a thought" not in shown
    save(ann, cid, "")
    assert "has a draft" not in page(bob, cid)


def test_sending_the_reply_deletes_the_draft(world):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    save(ann, cid, "Your parcel left today.")
    assert world.reply(ann, cid).get_json()["ok"]
    assert "has a draft" not in page(bob, cid)
    assert re.search(r'id="reply-text"[^>]*>\s*</textarea>', page(ann, cid))


def test_draft_of_a_hidden_conversation_is_refused(world):
    cid = world.conversation()
    team = world.store.create_team("Elsewhere")
    world.store.set_conversation_team(cid, team)
    assert save(world.client(), cid, "x").status_code == 404
    assert world.store.drafts.of(world.ann["id"], cid) == {}


# @mentions and the audience ----------------------------------------------------------------------

def test_the_inserted_handle_is_the_one_the_server_recognises(world):
    make_agent(world.store, email="ann@other.example", name="Annie Other")
    agents = world.store.mentionable_agents()
    mentions = Mentions(agents)
    handles = {a["email"]: mentions.handle(a) for a in agents}
    assert handles["bob@example.org"] == "bob"
    assert handles["ann@example.org"] == "ann@example.org", "two agents are 'ann': the whole address"
    for agent in agents:
        found, ambiguous = find_mentions(f"Look @{handles[agent['email']]} please", agents)
        assert [a["id"] for a in found] == [agent["id"]] and not ambiguous


def test_the_composer_says_whether_the_reply_is_public(world):
    private, public = world.conversation(), world.conversation(public=True)
    ann = world.client()
    assert "Private message on ChatApp" in page(ann, private)
    shown = page(ann, public)
    assert "This reply is public on ChatApp: anyone can read it." in shown
    assert 'data-private="Private message on ChatApp"' in shown, "answering privately switches the line"


def test_undo_works_without_the_page_script(world):
    cid = world.conversation()
    ann = world.client()
    sent = ann.post(f"/conversations/{cid}/reply", data={"text": "Plain form", "seen_up_to": 10**6,
                                                         "then_status": "open", "csrf_token": ann.token})
    assert sent.status_code == 303
    shown = page(ann, cid)
    [outbox_id] = re.findall(r'name="outbox_id" value="([0-9a-f]+)"', shown)
    assert "Sending in 10 s" in shown
    taken = ann.post(f"/conversations/{cid}/undo-send", data={"outbox_id": outbox_id, "csrf_token": ann.token})
    assert taken.status_code == 303
    shown = page(ann, cid)
    assert "Sending undone" in shown and "Plain form</textarea>" in shown and world.replies(cid) == []


def test_a_reply_with_an_unfilled_answer_variable_is_refused(world):
    cid = world.conversation()
    ann = world.client()
    refused = world.reply(ann, cid, "Your order {{order_number}} left today.")
    assert refused.status_code == 400 and "{{order_number}}" in refused.get_json()["error"]
    assert world.replies(cid) == []
    assert world.reply(ann, cid, "Your order 10482 left today.").get_json()["ok"]
