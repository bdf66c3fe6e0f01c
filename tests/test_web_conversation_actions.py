"""Working a conversation through the web: replies, notes and mentions, status, assignment, labels,
priority, merge and split, retries, live events and presence — and every refusal.

Agents: Ann and Bob in team A, Carol in team B, Root the admin. Replies go out through a real SMTP
sink (tests/servers.py) by `send_due`, as the worker would. IN-65: ids of another team's objects in
paths and form bodies answer 404 and change nothing. IN-70: replies to loop-prone addresses are
refused unless an admin overrides. The stale-reply hold: a reply written before a colleague's note
or a new customer message is not queued until its writer has seen them.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
import requests

from connectors.base import Connector, Limits
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import send_due
from inbox.sendability import loop_guard
from inbox.store.base import iso
from inbox.web.conversations import find_mentions
from tests.mailfactory import raw_mail
from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent

JSON = {"Accept": "application/json"}


class LimitedChat(Connector):
    """A chat channel with WhatsApp-like limits: 20 characters, a 24-hour reply window."""

    kind = "limitedchat"
    display_name = "Limited chat"
    limits = Limits(max_text_length=20, formatting="plain", reply_window_hours=24, supports_attachments=False)
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        LimitedChat.sent.append(reply)
        return f"chat-{len(LimitedChat.sent)}"


@pytest.fixture
def app_config(app_config, smtp_server, monkeypatch):
    import connectors

    original = connectors.discover

    def discover(**kwargs):
        found = original(**kwargs)
        found[LimitedChat.kind] = LimitedChat
        return found

    monkeypatch.setattr(connectors, "discover", discover)
    LimitedChat.sent = []
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
        "chat": {"kind": "limitedchat"},
    }
    return app_config


class World:
    """The app's store, the people, and helpers to make conversations."""

    def __init__(self, app):
        self.app = app
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self.team_a = self.store.create_team("A")
        self.team_b = self.store.create_team("B")
        self.ann = make_agent(self.store)
        self.bob = make_agent(self.store, email="bob@example.org", name="Bob Builder")
        self.carol = make_agent(self.store, email="carol@example.org", name="Carol Other")
        self.root = make_agent(self.store, email="root@example.org", name="Root Admin", role="admin")
        self.store.add_team_member(self.team_a, self.ann["id"])
        self.store.add_team_member(self.team_a, self.bob["id"])
        self.store.add_team_member(self.team_b, self.carol["id"])
        self.ingestor = self.mainland.ingestor(self.store)
        self._cursor = 0

    def conversation(self, team="A", channel="mail", **mail) -> int:
        self._cursor += 1
        item = parse_email(raw_mail(**mail), channel=channel)
        report = self.ingestor.ingest(channel, FetchResult(items=[item], cursor=f"c{self._cursor}"))
        [conversation_id] = report.new_conversations or [self.store.messages_by_message_id([item.message_id])[0][
            "conversation_id"]]
        team_id = {"A": self.team_a, "B": self.team_b, None: None}[team]
        self.store.set_conversation_team(conversation_id, team_id)
        return conversation_id

    def client(self, who="ann"):
        client = self.app.test_client()
        email = {"ann": "ann@example.org", "bob": "bob@example.org", "carol": "carol@example.org",
                 "root": "root@example.org"}[who]
        assert login(client, email=email).status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client

    def messages(self, conversation_id):
        return self.store.thread_messages(conversation_id)

    def outbox_count(self) -> int:
        return self.store.execute("SELECT count(*) FROM outbox").fetchone()[0]


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def post(client, path, data=None, *, json=True, token=True):
    data = dict(data or {})
    if token:
        data.setdefault("csrf_token", client.token)
    return client.post(path, data=data, headers=JSON if json else {})


# The page -------------------------------------------------------------------------------------

def test_page_shows_inbound_reply_and_note_apart_with_delivery_state(world):
    cid = world.conversation()
    ann = world.client()
    assert post(ann, f"/conversations/{cid}/notes", {"text": "Checked the warehouse"}).status_code == 200
    assert post(ann, f"/conversations/{cid}/reply", {"text": "A new one is on its way",
                                                     "seen_up_to": 99}).status_code == 200
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    inbound = page.index('class="message direction-in"')
    note = page.index('class="message direction-note"')
    reply = page.index('class="message direction-out"')
    assert inbound < note < reply, "messages in order"
    assert "Internal note" in page and "Checked the warehouse" in page
    assert 'data-delivery-status="queued"' in page and ">Queued<" in page
    assert "Via mail" in page and "Formatted mail" in page


def test_customer_history_on_every_channel_newest_first_without_other_teams(world):
    first = world.conversation(subject="Invoice question", sender="Jane Doe <jane@example.net>")
    hidden = world.conversation(team="B", subject="Secret B matter", sender="Jane Doe <jane@example.net>")
    chat = world.conversation(channel="chat", subject="Chat about delivery", sender="Jane Doe <jane@example.net>")
    current = world.conversation(subject="Order 1234 arrived broken", sender="Jane Doe <jane@example.net>")
    world.store.set_conversation_status(first, "resolved", None, iso(dt.datetime.now(dt.UTC)))
    page = world.client().get(f"/conversations/{current}").get_data(as_text=True)
    history = page.split('id="history"')[1].split("</section>")[0]
    assert history.index("Chat about delivery") < history.index("Invoice question"), "newest first"
    assert "Resolved" in history and ">chat<" in history and ">mail<" in history
    assert "Secret B matter" not in page and f"/conversations/{hidden}" not in page
    assert f"/conversations/{chat}" in history


def test_unread_notifications_badge_and_keyboard_help_are_on_the_page(world):
    cid = world.conversation()
    page = world.client().get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'id="shortcuts-help"' in page and "Keyboard shortcuts" in page
    assert 'src="/static/live.js?v=' in page and 'src="/static/conversation.js?v=' in page
    assert f'data-live-conversation="{cid}"' in page


# Replies ----------------------------------------------------------------------------------------

def test_reply_goes_through_the_outbox_and_is_sent_only_when_smtp_accepted(world, smtp_server):
    cid = world.conversation()
    ann = world.client()
    response = post(ann, f"/conversations/{cid}/reply", {"text": "We will send a new one.", "seen_up_to": 1})
    assert response.status_code == 200 and response.get_json()["ok"]
    assert "We will send a new one." in response.get_json()["html"]
    reply = world.messages(cid)[-1]
    assert (reply["direction"], reply["delivery_status"], reply["outbox_state"]) == ("out", "queued", "pending")
    assert smtp_server.messages == []
    assert send_due(world.mainland, world.store).sent == 1
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["jane@example.net"] and b"We will send a new one." in mail.content
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'data-delivery-status="sent"' in page


def test_failed_reply_shows_the_reason_and_can_be_retried(world, smtp_server):
    cid = world.conversation()
    ann = world.client()
    post(ann, f"/conversations/{cid}/reply", {"text": "Hello", "seen_up_to": 1})
    smtp_server.fail_next(550, "5.1.1 User unknown")
    assert send_due(world.mainland, world.store).failed == 1
    reply = world.messages(cid)[-1]
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Failed" in page and "User unknown" in page
    assert f'action="/messages/{reply["id"]}/retry"' in page
    response = post(ann, f"/messages/{reply['id']}/retry", json=False)
    assert response.status_code == 303
    assert world.messages(cid)[-1]["delivery_status"] == "queued"
    assert send_due(world.mainland, world.store).sent == 1
    assert world.messages(cid)[-1]["delivery_status"] == "sent"
    again = post(ann, f"/messages/{reply['id']}/retry")
    assert again.status_code == 400 and "Only a failed reply" in again.get_json()["error"]
    inbound = world.messages(cid)[0]
    assert post(ann, f"/messages/{inbound['id']}/retry").status_code == 404


def test_a_possibly_sent_reply_asks_the_agent_and_can_be_marked_sent(world):
    cid = world.conversation()
    ann = world.client()
    post(ann, f"/conversations/{cid}/reply", {"text": "Hello", "seen_up_to": 1})
    reply = world.messages(cid)[-1]
    with world.store.write():  # what the outbox does when the channel never confirmed the send
        world.store.mark_outbox_uncertain(reply["outbox_id"], "POST /send: no answer within 30 s")
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Possibly sent" in page and "no answer within 30 s" in page
    assert f'action="/messages/{reply["id"]}/confirm-sent"' in page and "send again" in page
    response = post(ann, f"/messages/{reply['id']}/confirm-sent", json=False)
    assert response.status_code == 303
    assert world.messages(cid)[-1]["delivery_status"] == "sent"
    assert send_due(world.mainland, world.store).sent == 0, "marked sent: never sent"
    again = post(ann, f"/messages/{reply['id']}/confirm-sent")
    assert again.status_code == 400 and "Only a possibly sent reply" in again.get_json()["error"]


def test_empty_reply_is_refused(world):
    cid = world.conversation()
    response = post(world.client(), f"/conversations/{cid}/reply", {"text": "   ", "seen_up_to": 1})
    assert response.status_code == 400 and world.outbox_count() == 0


def test_channel_text_limit_is_shown_and_enforced_keeping_the_draft(world):
    cid = world.conversation(channel="chat", subject="Chat")
    ann = world.client()
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'data-max-length="20"' in page and "20 characters left" in page and "Plain text only" in page
    assert "Reply window closes" in page
    too_long = "x" * 21
    response = post(ann, f"/conversations/{cid}/reply", {"text": too_long, "seen_up_to": 99})
    assert response.status_code == 400
    assert "at most 20 characters" in response.get_json()["error"]
    # Without the page's script: the page comes back with the draft still in the box.
    form = post(ann, f"/conversations/{cid}/reply", {"text": too_long, "seen_up_to": 99}, json=False)
    assert form.status_code == 400
    assert f">{too_long}</textarea>" in form.get_data(as_text=True)
    assert world.outbox_count() == 0
    ok = post(ann, f"/conversations/{cid}/reply", {"text": "x" * 20, "seen_up_to": 99})
    assert ok.status_code == 200 and world.outbox_count() == 1


def test_closed_reply_window_is_shown_before_typing_and_needs_a_tick(world):
    cid = world.conversation(channel="chat", subject="Chat")
    two_days_ago = iso(dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    world.store.execute("UPDATE conversations SET last_inbound_at = ? WHERE id = ?", (two_days_ago, cid))
    ann = world.client()
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "The reply window is closed." in page
    assert page.index('id="window-closed"') < page.index('id="reply-text"'), "the warning comes before the box"
    refused = post(ann, f"/conversations/{cid}/reply", {"text": "Sorry", "seen_up_to": 99})
    assert refused.status_code == 400 and "reply window closed" in refused.get_json()["error"]
    assert world.outbox_count() == 0
    sent = post(ann, f"/conversations/{cid}/reply", {"text": "Sorry", "seen_up_to": 99, "outside_window": "1"})
    assert sent.status_code == 200 and world.outbox_count() == 1


@pytest.mark.parametrize("sender", [
    "MAILER-DAEMON@mx.example.net", "noreply@shop.example", "no-reply@shop.example", "support@mainland.test",
])
def test_loop_prone_addresses_are_refused_with_a_clear_warning(world, sender):
    cid = world.conversation(sender=f"Robot <{sender}>", subject="Automatic")
    ann = world.client()
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'id="loop-guard"' in page and "Replies are blocked here." in page
    assert "override_guard" not in page, "only admins get the override"
    response = post(ann, f"/conversations/{cid}/reply", {"text": "Hi", "seen_up_to": 99, "override_guard": "1"})
    assert response.status_code == 400 and response.get_json()["error"].startswith("Not sent:")
    assert world.outbox_count() == 0


def test_address_marked_delivery_failed_is_refused_and_an_admin_can_override(world):
    cid = world.conversation(sender="Gone <gone@example.net>")
    world.store.execute("UPDATE identities SET delivery_failed = 1 WHERE value = 'gone@example.net'")
    response = post(world.client(), f"/conversations/{cid}/reply", {"text": "Hi", "seen_up_to": 99})
    assert response.status_code == 400 and "could not be delivered" in response.get_json()["error"]
    root = world.client("root")
    assert "override_guard" in root.get(f"/conversations/{cid}").get_data(as_text=True)
    refused = post(root, f"/conversations/{cid}/reply", {"text": "Hi", "seen_up_to": 99})
    assert refused.status_code == 400
    sent = post(root, f"/conversations/{cid}/reply", {"text": "Hi", "seen_up_to": 99, "override_guard": "1"})
    assert sent.status_code == 200 and world.outbox_count() == 1
    audit = world.store.execute("SELECT actor, details FROM audit_log WHERE action = 'reply_loop_guard_override'")
    [(actor, details)] = audit.fetchall()
    assert actor == f"agent:{world.root['id']}" and "delivery_failed" in details


def test_loop_guard_rules():
    own = {"support@mainland.test"}
    assert loop_guard("Support@Mainland.test", [], own) == "own_address"
    assert loop_guard("mailer-daemon@x.example", [], own) == "mailer_daemon"
    assert loop_guard("noreply+tag@x.example", [], own) == "noreply"
    assert loop_guard("do-not-reply@x.example", [], own) == "noreply"
    assert loop_guard("jane@example.net", [{"value": "jane@example.net", "valid": 0, "delivery_failed": 0}],
                      own) == "invalid"
    assert loop_guard("jane@example.net", [{"value": "jane@example.net", "valid": 1, "delivery_failed": 0}],
                      own) is None
    assert loop_guard("@someone", [], own) is None
    assert loop_guard("", [], own) is None


# The stale-reply hold ---------------------------------------------------------------------------

def test_reply_is_held_when_a_note_arrived_after_the_writer_last_looked(world):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    seen = world.store.newest_message_id(cid)
    assert post(bob, f"/conversations/{cid}/notes", {"text": "Careful: they already got a refund"}).status_code == 200
    held = post(ann, f"/conversations/{cid}/reply", {"text": "Here is your refund", "seen_up_to": seen})
    assert held.status_code == 409
    body = held.get_json()
    assert body["held"] and "already got a refund" in body["html"]
    assert world.outbox_count() == 0, "nothing was queued"
    sent = post(ann, f"/conversations/{cid}/reply", {"text": "Here is your refund", "seen_up_to": body["last_id"]})
    assert sent.status_code == 200 and world.outbox_count() == 1


def test_reply_is_held_for_a_new_customer_message_and_the_page_keeps_the_draft(world):
    cid = world.conversation(message_id="<first@example.net>")
    ann = world.client()
    seen = world.store.newest_message_id(cid)
    world.ingestor.ingest("mail", FetchResult(items=[parse_email(raw_mail(
        message_id="<second@example.net>", in_reply_to="<first@example.net>", body="Never mind, found it!"),
        channel="mail")], cursor="later"))
    page = post(ann, f"/conversations/{cid}/reply", {"text": "Sending a new one", "seen_up_to": seen}, json=False)
    html = page.get_data(as_text=True)
    assert page.status_code == 409
    assert "Never mind, found it!" in html and ">Sending a new one</textarea>" in html
    assert "New messages arrived while you were writing" in html
    assert world.outbox_count() == 0


def test_own_notes_do_not_hold_ones_own_reply(world):
    cid = world.conversation()
    ann = world.client()
    seen = world.store.newest_message_id(cid)
    post(ann, f"/conversations/{cid}/notes", {"text": "note to self"})
    assert post(ann, f"/conversations/{cid}/reply", {"text": "Hi", "seen_up_to": seen}).status_code == 200


# Notes, mentions, notifications --------------------------------------------------------------

def test_mention_notifies_the_colleague_who_can_see_it(world):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    response = post(ann, f"/conversations/{cid}/notes", {"text": "@bob can you check? also @carol and @ann"})
    body = response.get_json()
    assert body["notified"] == [world.bob["id"]]
    assert "Carol Other cannot see this conversation" in body["message"]
    assert world.messages(cid)[-1]["direction"] == "note"
    assert world.store.notifications.unread_count(world.carol["id"], None) == 0
    assert world.store.notifications.unread_count(world.ann["id"], None) == 0
    listing = bob.get("/notifications").get_data(as_text=True)
    assert "Ann Agent" in listing and "mentioned you" in listing and "can you check?" in listing
    assert 'id="notification-count"' in listing and ">1</span>" in listing
    # Opening the conversation reads it.
    bob.get(f"/conversations/{cid}")
    assert world.store.notifications.unread_count(world.bob["id"], None) == 0


def test_mark_one_and_all_notifications_read(world):
    cid = world.conversation()
    ann = world.client()
    post(ann, f"/conversations/{cid}/notes", {"text": "@bob one"})
    post(ann, f"/conversations/{cid}/notes", {"text": "@bob two"})
    bob = world.client("bob")
    listed = bob.get("/notifications", headers=JSON).get_json()
    assert listed["unread"] == 2
    first = listed["notifications"][0]["id"]
    assert post(bob, f"/notifications/{first}/read").get_json()["ok"]
    assert world.store.notifications.unread_count(world.bob["id"], None) == 1
    # Someone else's notification id changes nothing.
    assert post(ann, f"/notifications/{listed['notifications'][1]['id']}/read").status_code == 200
    assert world.store.notifications.unread_count(world.bob["id"], None) == 1
    assert post(bob, "/notifications/read-all", json=False).status_code == 303
    assert world.store.notifications.unread_count(world.bob["id"], None) == 0


def test_mentions_by_email_local_part_name_and_ambiguity():
    agents = [{"id": 1, "email": "ann@example.org", "name": "Ann Agent"},
              {"id": 2, "email": "dan.one@example.org", "name": "Dan One"},
              {"id": 3, "email": "dan.two@example.org", "name": "Dan Two"},
              {"id": 4, "email": "eve@example.org", "name": "José Eve"}]
    found, ambiguous = find_mentions("@ann@example.org, @dan.two and @Dan, @josé. mail me@ann.example", agents)
    assert sorted(a["id"] for a in found) == [1, 3, 4]
    assert ambiguous == ["Dan"]
    assert find_mentions("write to x@ann and email@example.org", agents) == ([], [])
    found, _ = find_mentions("@DanOne please", agents)
    assert [a["id"] for a in found] == [2]


def test_empty_note_is_refused(world):
    cid = world.conversation()
    assert post(world.client(), f"/conversations/{cid}/notes", {"text": ""}).status_code == 400


# Status, assignment, priority, labels ---------------------------------------------------------

def test_status_changes_and_snooze(world):
    cid = world.conversation()
    ann = world.client()
    for status in ("pending", "open", "resolved", "spam", "open"):
        response = post(ann, f"/conversations/{cid}/status", {"status": status})
        assert response.status_code == 200 and response.get_json()["status"] == status
        assert world.store.conversation(cid)["status"] == status
    response = post(ann, f"/conversations/{cid}/status", {"status": "snoozed", "snooze": "4h"})
    conversation = world.store.conversation(cid)
    assert conversation["status"] == "snoozed" and conversation["snoozed_until"]
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Snoozed" in page and "until" in page
    for bad in ({"status": "new"}, {"status": "closed"}, {"status": "snoozed", "snooze": "yesterday"},
                {"status": "snoozed", "snooze_until": "2001-01-01T00:00:00Z"}):
        assert post(ann, f"/conversations/{cid}/status", bad).status_code == 400
    form = post(ann, f"/conversations/{cid}/status", {"status": "resolved"}, json=False)
    assert form.status_code == 303 and form.headers["Location"] == "/", "no other conversation: back to the queue"
    actions = [r[0] for r in world.store.execute("SELECT action FROM audit_log WHERE object_id = ?", (str(cid),))]
    assert actions.count("status") == 7


def test_assign_to_me_to_a_colleague_refused_for_outsiders_and_handover(world):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    assert post(ann, f"/conversations/{cid}/assign", {"assignee": "me"}).get_json()["assignee_id"] == world.ann["id"]
    assert post(ann, f"/conversations/{cid}/assign", {"assignee": str(world.bob["id"])}).status_code == 200
    assert world.store.conversation(cid)["assignee_id"] == world.bob["id"]
    listed = bob.get("/notifications", headers=JSON).get_json()["notifications"]
    assert [n["kind"] for n in listed] == ["assigned"]
    refused = post(ann, f"/conversations/{cid}/assign", {"assignee": str(world.carol["id"])})
    assert refused.status_code == 400 and "Carol Other is not in the conversation's team" in refused.get_json()["error"]
    assert post(ann, f"/conversations/{cid}/assign", {"assignee": "999999"}).status_code == 400
    assert post(ann, f"/conversations/{cid}/assign", {"team": "999999"}).status_code == 400
    # Handing over to team B with Carol: Ann no longer sees it.
    moved = post(ann, f"/conversations/{cid}/assign", {"team": str(world.team_b), "assignee": str(world.carol["id"])})
    assert moved.status_code == 200 and moved.get_json().get("gone")
    assert ann.get(f"/conversations/{cid}").status_code == 404
    assert world.client("carol").get(f"/conversations/{cid}").status_code == 200


def test_priority_and_labels(world):
    cid = world.conversation()
    ann = world.client()
    assert post(ann, f"/conversations/{cid}/priority", {"priority": "4"}).status_code == 200
    assert world.store.conversation(cid)["priority"] == 4
    for bad in ("9", "-1", "high", ""):
        assert post(ann, f"/conversations/{cid}/priority", {"priority": bad}).status_code == 400
    assert post(ann, f"/conversations/{cid}/labels", {"add": "  Refund  request "}).status_code == 200
    [label] = world.store.labels_of([cid])[cid]
    assert label["name"] == "Refund request"
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Refund request" in page and "Urgent" in page
    assert post(ann, f"/conversations/{cid}/labels", {"remove": str(label["id"])}).status_code == 200
    assert world.store.labels_of([cid]) == {}
    assert post(ann, f"/conversations/{cid}/labels", {"add": "x" * 41}).status_code == 400


# Merge and split --------------------------------------------------------------------------------

def test_merge_moves_messages_points_to_the_target_and_undoes(world):
    source = world.conversation(subject="Where is my order?", sender="Jane Doe <jane@example.net>")
    target = world.conversation(subject="Order 1234", sender="Jane Doe <jane@example.net>")
    ann = world.client()
    moved_ids = [m["id"] for m in world.messages(source)]
    page = ann.get(f"/conversations/{source}").get_data(as_text=True)
    assert 'id="merge-form"' in page and f'<option value="{target}">' in page
    response = post(ann, f"/conversations/{source}/merge", {"into": str(target)}, json=False)
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/conversations/{target}")
    assert {m["id"] for m in world.messages(target)} >= set(moved_ids)
    assert world.messages(source) == []
    merged = world.store.conversation(source)
    assert merged["merged_into"] == target and merged["status"] == "resolved"
    assert "This conversation was merged into another one." in ann.get(f"/conversations/{source}").get_data(
        as_text=True)
    assert post(ann, f"/conversations/{source}/reply", {"text": "x", "seen_up_to": 99}).status_code == 400
    [audit] = world.store.execute("SELECT details FROM audit_log WHERE action = 'merge'").fetchall()
    assert f'"into": {target}' in audit[0]
    [record] = world.store.merges_of(target)
    assert post(ann, f"/merges/{record['id']}/undo").status_code == 200
    assert [m["id"] for m in world.messages(source)] == moved_ids
    restored = world.store.conversation(source)
    assert restored["merged_into"] is None and restored["status"] == "new"
    assert post(ann, f"/merges/{record['id']}/undo").status_code == 400, "undone once only"


def test_merge_refused_for_different_customers_itself_and_merged_ones(world):
    jane = world.conversation(sender="Jane Doe <jane@example.net>")
    joe = world.conversation(sender="Joe Bloggs <joe@example.net>")
    other_jane = world.conversation(subject="Second", sender="Jane Doe <jane@example.net>")
    ann = world.client()
    refused = post(ann, f"/conversations/{jane}/merge", {"into": str(joe)})
    assert refused.status_code == 400 and "same customer" in refused.get_json()["error"]
    assert post(ann, f"/conversations/{jane}/merge", {"into": str(jane)}).status_code == 400
    assert post(ann, f"/conversations/{jane}/merge", {"into": ""}).status_code == 400
    assert post(ann, f"/conversations/{jane}/merge", {"into": str(other_jane)}).status_code == 200
    assert post(ann, f"/conversations/{other_jane}/merge", {"into": str(jane)}).status_code == 400
    assert world.store.conversation(joe)["merged_into"] is None


def test_split_moves_one_message_into_a_new_conversation_and_merges_back(world):
    cid = world.conversation(message_id="<one@example.net>", subject="Order 1234")
    world.ingestor.ingest("mail", FetchResult(items=[parse_email(raw_mail(
        message_id="<two@example.net>", in_reply_to="<one@example.net>", subject="Also: my invoice address",
        body="Different topic: please change my invoice address."), channel="mail")], cursor="x"))
    ann = world.client()
    [first, second] = world.messages(cid)
    response = post(ann, f"/conversations/{cid}/split", {"message_id": str(second["id"])})
    assert response.status_code == 200
    new_id = response.get_json()["conversation_id"]
    new = world.store.conversation(new_id)
    assert new["customer_id"] == world.store.conversation(cid)["customer_id"]
    assert new["subject"] == "Also: my invoice address" and new["team_id"] == world.team_a
    assert [m["id"] for m in world.messages(new_id)] == [second["id"]]
    assert [m["id"] for m in world.messages(cid)] == [first["id"]]
    only = post(ann, f"/conversations/{cid}/split", {"message_id": str(first["id"])})
    assert only.status_code == 400, "the only message cannot be split off"
    # Round trip: merge it back.
    assert post(ann, f"/conversations/{new_id}/merge", {"into": str(cid)}).status_code == 200
    assert [m["id"] for m in world.messages(cid)] == [first["id"], second["id"]]


def test_split_of_a_message_from_another_conversation_is_404(world):
    mine = world.conversation()
    other = world.conversation(subject="Other", sender="Joe <joe@example.net>")
    world.store.add_note(mine, agent_id=world.ann["id"], author_name="Ann", text="n", external_id="note:1",
                         now=iso(dt.datetime.now(dt.UTC)))
    [foreign] = world.messages(other)
    ann = world.client()
    for value in (str(foreign["id"]), "0", "abc", "99999999999999999999999"):
        assert post(ann, f"/conversations/{mine}/split", {"message_id": value}).status_code == 404


# IN-65: another team's ids, in paths and in bodies ----------------------------------------------

def test_another_teams_conversation_is_404_for_every_action_and_nothing_changes(world):
    theirs = world.conversation(team="B", subject="B only", sender="Jane Doe <jane@example.net>")
    mine = world.conversation(team="A", subject="A", sender="Jane Doe <jane@example.net>")
    [their_message] = world.messages(theirs)
    ann = world.client()
    before = world.store.conversation(theirs)
    attempts = [
        ("get", f"/conversations/{theirs}", None),
        ("get", f"/conversations/{theirs}/messages?after=0", None),
        ("get", f"/events?conversation={theirs}&once=1", None),
        ("post", f"/conversations/{theirs}/reply", {"text": "x", "seen_up_to": "99"}),
        ("post", f"/conversations/{theirs}/notes", {"text": "x"}),
        ("post", f"/conversations/{theirs}/status", {"status": "resolved"}),
        ("post", f"/conversations/{theirs}/assign", {"assignee": "me"}),
        ("post", f"/conversations/{theirs}/priority", {"priority": "3"}),
        ("post", f"/conversations/{theirs}/labels", {"add": "x"}),
        ("post", f"/conversations/{theirs}/merge", {"into": str(mine)}),
        ("post", f"/conversations/{theirs}/split", {"message_id": str(their_message["id"])}),
        ("post", f"/conversations/{theirs}/presence", {"state": "viewing"}),
        ("post", f"/messages/{their_message['id']}/retry", {}),
        # Own conversation in the path, theirs in the body:
        ("post", f"/conversations/{mine}/merge", {"into": str(theirs)}),
        ("post", f"/conversations/{mine}/split", {"message_id": str(their_message["id"])}),
    ]
    for method, url, data in attempts:
        response = ann.get(url, headers=JSON) if method == "get" else post(ann, url, data)
        assert response.status_code == 404, (url, data, response.status_code)
        assert b"B only" not in response.data
    assert world.store.conversation(theirs) == before
    assert [m["id"] for m in world.messages(theirs)] == [their_message["id"]]
    assert world.store.conversation(mine)["merged_into"] is None
    assert world.outbox_count() == 0
    undo_ids = [r[0] for r in world.store.execute("SELECT id FROM conversation_merges")]
    assert undo_ids == []


def test_undo_of_a_merge_in_another_team_is_404(world):
    a = world.conversation(team="B", sender="Jane Doe <jane@example.net>")
    b = world.conversation(team="B", subject="Second", sender="Jane Doe <jane@example.net>")
    carol = world.client("carol")
    assert post(carol, f"/conversations/{a}/merge", {"into": str(b)}).status_code == 200
    [record] = world.store.merges_of(b)
    assert post(world.client(), f"/merges/{record['id']}/undo").status_code == 404
    assert post(world.client(), "/merges/999999/undo").status_code == 404
    assert world.store.conversation(a)["merged_into"] == b


def test_actions_need_a_csrf_token_and_sign_in(world, client):
    cid = world.conversation()
    ann = world.client()
    for path, data in ((f"/conversations/{cid}/reply", {"text": "x", "seen_up_to": "99"}),
                       (f"/conversations/{cid}/notes", {"text": "x"}),
                       (f"/conversations/{cid}/status", {"status": "resolved"}),
                       (f"/conversations/{cid}/presence", {"state": "viewing"}),
                       ("/notifications/read-all", {})):
        assert post(ann, path, data, token=False).status_code == 400, path
        assert ann.get(path).status_code == 405 or path.endswith("read-all")
    assert world.store.conversation(cid)["status"] == "new" and world.outbox_count() == 0
    # Signed out, with a valid token from the sign-in page: sent to sign in.
    token = csrf_token(client)
    response = client.post(f"/conversations/{cid}/status", data={"status": "resolved", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.get("/events").status_code == 302
    assert world.store.conversation(cid)["status"] == "new"


def test_messages_fragment_gives_only_newer_messages(world):
    cid = world.conversation()
    ann = world.client()
    post(ann, f"/conversations/{cid}/notes", {"text": "second"})
    first = world.messages(cid)[0]["id"]
    body = ann.get(f"/conversations/{cid}/messages?after={first}").get_json()
    assert body["count"] == 1 and "second" in body["html"] and "Hello, my order" not in body["html"]
    assert ann.get(f"/conversations/{cid}/messages?after=-1").status_code == 400


# Live events and presence ---------------------------------------------------------------------

def events_of(text: str) -> list[tuple[str, dict]]:
    import json

    found = []
    for block in text.split("\n\n"):
        name = re.search(r"^event: (.+)$", block, re.M)
        data = re.search(r"^data: (.+)$", block, re.M)
        if name and data:
            found.append((name.group(1), json.loads(data.group(1))))
    return found


def last_id(text: str) -> str:
    return re.findall(r"^id: (\S+)$", text, re.M)[-1]


def test_events_tell_new_conversations_and_counts_of_own_teams_only(world):
    ann = world.client()
    hello = ann.get("/events?once=1").get_data(as_text=True)
    assert "retry: " in hello
    [(name, data)] = events_of(hello)
    assert name == "hello"
    seq = data["seq"]
    mine = world.conversation(subject="For team A")
    world.conversation(team="B", subject="For team B")
    response = ann.get("/events?once=1", headers={"Last-Event-ID": str(seq)})
    events = events_of(response.get_data(as_text=True))
    new = [d for n, d in events if n == "conversation.new"]
    assert [d["id"] for d in new] == [mine] and new[0]["subject"] == "For team A"
    assert "For team B" not in response.get_data(as_text=True)
    [counts] = [d for n, d in events if n == "counts"]
    assert counts["by_status"] == {"new": 1} and counts["total"] == 1
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-store"


def test_events_for_an_open_conversation_new_messages_delivery_presence_notifications(world, smtp_server):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    seq = last_id(ann.get(f"/events?conversation={cid}&once=1").get_data(as_text=True))
    post(bob, f"/conversations/{cid}/presence", {"state": "typing"})
    post(bob, f"/conversations/{cid}/notes", {"text": "@ann look"})
    post(ann, f"/conversations/{cid}/reply", {"text": "Done", "seen_up_to": 99})
    events = events_of(ann.get(f"/events?conversation={cid}&once=1",
                               headers={"Last-Event-ID": str(seq)}).get_data(as_text=True))
    names = [n for n, _ in events]
    assert {"conversation.changed", "message.new", "presence", "notifications"} <= set(names)
    assert [d["direction"] for n, d in events if n == "message.new"] == ["note", "out"]
    [presence] = [d for n, d in events if n == "presence"]
    assert presence["agents"] == [{"id": world.bob["id"], "name": "Bob Builder", "state": "typing"}]
    assert [d["unread"] for n, d in events if n == "notifications"] == [1]
    seq = last_id(ann.get(f"/events?conversation={cid}&once=1", headers={"Last-Event-ID": seq}).get_data(
        as_text=True))
    assert send_due(world.mainland, world.store).sent == 1
    events = events_of(ann.get(f"/events?conversation={cid}&once=1",
                               headers={"Last-Event-ID": str(seq)}).get_data(as_text=True))
    [status] = [d for n, d in events if n == "message.status"]
    assert status["delivery_status"] == "sent" and status["conversation_id"] == cid


def test_presence_heartbeats_states_and_staleness(world):
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    response = ann.post(f"/conversations/{cid}/presence", json={"state": "viewing"},
                        headers={"X-CSRFToken": ann.token, **JSON})
    assert response.get_json() == {"ok": True, "agents": []}
    others = post(bob, f"/conversations/{cid}/presence", {"state": "viewing"}).get_json()["agents"]
    assert others == [{"id": world.ann["id"], "name": "Ann Agent", "state": "viewing"}]
    assert post(bob, f"/conversations/{cid}/presence", {"state": "sleeping"}).status_code == 400
    long_ago = iso(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    world.store.execute("UPDATE presence SET seen_at = ? WHERE agent_id = ?", (long_ago, world.ann["id"]))
    assert post(bob, f"/conversations/{cid}/presence", {"state": "typing"}).get_json()["agents"] == []
    post(ann, f"/conversations/{cid}/presence", {"state": "viewing"})
    post(ann, f"/conversations/{cid}/presence", {"state": "gone"})
    assert post(bob, f"/conversations/{cid}/presence", {"state": "viewing"}).get_json()["agents"] == []


def test_stream_sends_events_as_they_happen_heartbeats_and_ends(app, world):
    cid = world.conversation()
    app.config.update(LIVE_POLL_SECONDS=0.05, LIVE_HEARTBEAT_SECONDS=0.2, LIVE_MAX_SECONDS=1.5)
    ann = world.client()
    response = ann.get(f"/events?conversation={cid}", buffered=False)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    chunks = []
    started = time.monotonic()
    wrote = False
    for chunk in response.response:
        chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if not wrote and time.monotonic() - started > 0.2:
            world.store.add_note(cid, agent_id=world.bob["id"], author_name="Bob", text="live", external_id="note:l",
                                 now=iso(dt.datetime.now(dt.UTC)))
            wrote = True
    response.close()
    events = events_of("".join(chunks))
    names = [n for n, _ in events]
    assert names[0] == "hello" and names[-1] == "bye"
    assert "heartbeat" in names and "message.new" in names
    assert time.monotonic() - started < 5


def test_an_open_stream_ends_when_its_agent_leaves_the_team(app, world, monkeypatch):
    """Access is checked again while a stream is open: removed from team A, Ann's stream says goodbye
    (and her reconnect is checked afresh), instead of telling her team A's changes until it ends."""
    from inbox.web import live

    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.0)
    cid = world.conversation()
    app.config.update(LIVE_POLL_SECONDS=0.05, LIVE_HEARTBEAT_SECONDS=10, LIVE_MAX_SECONDS=30)
    ann = world.client()
    response = ann.get(f"/events?conversation={cid}", buffered=False)
    chunks = []
    started = time.monotonic()
    for chunk in response.response:
        chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if len(chunks) == 2:
            world.store.remove_team_member(world.team_a, world.ann["id"])
        if time.monotonic() - started > 10:
            break
    response.close()
    events = events_of("".join(chunks))
    assert events[-1] == ("bye", {"reconnect": True}), events[-3:]
    assert time.monotonic() - started < 10, "ended by the check, not by the stream's age"
    assert ann.get(f"/events?conversation={cid}&once=1").status_code == 404, "the reconnect is refused"


def test_when_every_stream_slot_is_taken_the_answer_is_short_polling(app, world):
    app.config.update(LIVE_STREAMS=0)
    body = world.client().get("/events").get_data(as_text=True)
    assert f"retry: {5000}" in body and '"mode":"poll"' in body


def test_stream_works_under_waitress_threads(app, world):
    """The production server: an event reaches the open stream, and pages still answer meanwhile."""
    from waitress import create_server

    app.config.update(LIVE_POLL_SECONDS=0.1, LIVE_HEARTBEAT_SECONDS=0.3, LIVE_MAX_SECONDS=10)
    server = create_server(app, host="127.0.0.1", port=0, threads=3)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    try:
        session = requests.Session()
        page = session.get(f"{base}/login", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert session.post(f"{base}/login", data={"email": "ann@example.org", "password": PASSWORD,
                                                   "csrf_token": token}, timeout=5).ok
        with session.get(f"{base}/events", stream=True, timeout=10) as stream:
            lines = stream.iter_lines(decode_unicode=True)
            assert next(line for line in lines if line.startswith("event:")) == "event: hello"
            assert session.get(f"{base}/notifications", timeout=5).status_code == 200, "pages still answer"
            cid = world.conversation(subject="Arrives live")
            deadline = time.monotonic() + 8
            seen = []
            for line in lines:
                seen.append(line)
                if "Arrives live" in line or time.monotonic() > deadline:
                    break
            assert any("Arrives live" in line for line in seen) and any(
                line == "event: conversation.new" for line in seen), seen
            assert cid
    finally:
        server.close()
        thread.join(timeout=5)
