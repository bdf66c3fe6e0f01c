"""Notifications with per-agent settings: the settings page, "customer replied", in-app and browser
respecting the settings, and batched email through the notification mails' outbox to an SMTP sink."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import itertools
import re

import pytest

from inbox import notifications
from inbox.models import Author, FetchResult, InboundItem
from inbox.store.base import iso
from inbox.web.live import LiveState
from tests.conftest import FROZEN_START
from tests.test_web_auth import csrf_token, login, make_agent

T0 = FROZEN_START
M = dt.timedelta(minutes=1)
_SEQUENCE = itertools.count(1)


def _ingest(mainland, store, when, *, handle="cleo@example.org", text="Where is my parcel?", thread="t1",
            flags=(), subject="Parcel"):
    n = next(_SEQUENCE)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel="chat", external_id=f"note-{n}", author=Author(handle, "Cleo Customer"),
                       text=text, thread_key=thread, subject=subject, flags=frozenset(flags))
    return ingestor.ingest("chat", FetchResult(items=[item], cursor=None), save_cursor=False)


def _conversation(mainland, store, agent, *, thread="t1", subject="Parcel"):
    [cid] = _ingest(mainland, store, T0, thread=thread, subject=subject).new_conversations
    store.assign_conversation(cid, assignee_id=agent["id"], team_id=None, now=iso(T0))
    return cid


def _kinds(store, agent):
    return [n.kind for n in store.notifications.of(agent["id"], None)]


@pytest.fixture
def chat_app(app_config):
    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    from inbox import create_app

    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def mainland(chat_app):
    return chat_app.extensions["mainland"]


@pytest.fixture
def db(mainland):
    store = mainland.open_store()
    yield store
    store.close()


# The settings page ----------------------------------------------------------------------------------

def test_the_settings_page_shows_the_defaults_and_saves_the_agents_choices(chat_app, db):
    ann = make_agent(db, "ann@example.org")
    client = chat_app.test_client()
    login(client)
    page = client.get("/settings").get_data(as_text=True)
    checked = set(re.findall(r'name="([a-z_]+\.[a-z_]+)"[^>]* checked', page))
    assert checked == {"assigned.in_app", "mention.in_app", "customer_replied.in_app", "sla.in_app",
                       "assigned.browser", "mention.browser", "customer_replied.browser",
                       "mention.email", "sla.email"}
    token = csrf_token(client, "/settings")
    form = {"action": "notifications", "csrf_token": token, "mention.in_app": "on", "customer_replied.email": "on"}
    assert client.post("/settings", data=form).status_code == 302
    settings = db.notifications.settings(ann["id"])
    assert settings["customer_replied"]["email"] is True
    assert settings["mention"] == {"in_app": True, "browser": False, "email": False}
    assert settings["assigned"]["in_app"] is False
    page = client.get("/settings").get_data(as_text=True)
    assert set(re.findall(r'name="([a-z_]+\.[a-z_]+)"[^>]* checked', page)) == {"mention.in_app",
                                                                               "customer_replied.email"}


def test_saving_notification_settings_needs_the_csrf_token(chat_app, db):
    ann = make_agent(db, "ann@example.org")
    client = chat_app.test_client()
    login(client)
    chat_app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/settings", data={"action": "notifications", "mention.in_app": "on"})
    assert response.status_code == 400
    assert db.notifications.settings(ann["id"])["mention"]["email"] is True  # unchanged


# In-app -----------------------------------------------------------------------------------------------

def test_an_event_switched_off_in_app_is_neither_listed_nor_counted(mainland, db, frozen_clock):
    ann = make_agent(db, "ann@example.org")
    bob = make_agent(db, "bob@example.org", name="Bob")
    cid = _conversation(mainland, db, ann)
    db.notifications.set_settings(ann["id"], {"mention": {"in_app": False}}, iso(T0))
    db.notifications.add([ann["id"], bob["id"]], kind="mention", conversation_id=cid, message_id=None,
                         actor_id=None, now=iso(T0))
    db.notifications.add([ann["id"]], kind="assigned", conversation_id=cid, message_id=None, actor_id=bob["id"],
                         now=iso(T0))
    assert _kinds(db, ann) == ["assigned"]
    assert db.notifications.unread_count(ann["id"], None) == 1
    assert _kinds(db, bob) == ["mention"]  # Bob kept the default
    # Still recorded for email: mentions are mailed by default.
    assert [r.kind for r in db.notifications.pending_email(ann["id"])] == ["mention"]


# Customer replied ---------------------------------------------------------------------------------------

def test_the_assignee_is_told_when_the_customer_replies(chat_app, mainland, db, frozen_clock):
    ann = make_agent(db, "ann@example.org")
    cid = _conversation(mainland, db, ann)
    [unassigned] = _ingest(mainland, db, T0, handle="dan@example.org", thread="t2").new_conversations
    assert notifications.detect(db, T0) == 0  # first messages: the conversation is new, not a reply
    _ingest(mainland, db, T0 + M, text="Any news?")
    _ingest(mainland, db, T0 + M, handle="dan@example.org", thread="t2", text="Hello?")
    assert notifications.detect(db, T0 + M) == 1
    [note] = db.notifications.of(ann["id"], None)
    assert (note.kind, note.conversation_id, note.excerpt) == ("customer_replied", cid, "Any news?")
    assert notifications.detect(db, T0 + 2 * M) == 0  # each message once
    assert unassigned != cid
    client = chat_app.test_client()
    login(client)
    page = client.get("/notifications").get_data(as_text=True)
    assert "The customer" in page and "replied in a conversation assigned to you" in page


def test_auto_replies_do_not_count_as_the_customer_replying(mainland, db, frozen_clock):
    ann = make_agent(db, "ann@example.org")
    _conversation(mainland, db, ann)
    notifications.detect(db, T0)
    _ingest(mainland, db, T0 + M, text="I am out of the office", flags={"auto_submitted"})
    assert notifications.detect(db, T0 + M) == 0
    assert _kinds(db, ann) == []


def test_customer_replied_switched_off_in_app_stays_off_the_bell(mainland, db, frozen_clock):
    ann = make_agent(db, "ann@example.org")
    _conversation(mainland, db, ann)
    db.notifications.set_settings(ann["id"], {"customer_replied": {"in_app": False}}, iso(T0))
    _ingest(mainland, db, T0 + M, text="Any news?")
    notifications.detect(db, T0 + M)
    assert db.notifications.unread_count(ann["id"], None) == 0


def test_a_service_level_notice_reaches_the_assignee_too(mainland, db, frozen_clock):
    ann = make_agent(db, "ann@example.org")
    lead = make_agent(db, "lea@example.org", name="Lea Lead", role="lead")
    cid = _conversation(mainland, db, ann)
    notifications.detect(db, T0)
    with db.write():
        db.record_sla_notice(cid, "first_response", "warning", iso(T0 + 10 * M), iso(T0))
        db.notifications.add([lead["id"]], kind="sla_warning", conversation_id=cid, message_id=None, actor_id=None,
                             now=iso(T0))
    assert notifications.detect(db, T0 + M) == 1
    assert _kinds(db, ann) == ["sla_warning"]
    assert _kinds(db, lead) == ["sla_warning"]  # not twice for the lead


# Browser ----------------------------------------------------------------------------------------------

def test_the_live_stream_carries_the_newest_notification_for_the_browser(mainland, db, frozen_clock):
    ann = make_agent(db, "ann@example.org", locale="nl")
    bob = make_agent(db, "bob@example.org", name="Bob Builder")
    cid = _conversation(mainland, db, ann, subject="Kapotte fiets")
    state = LiveState(db, dict(ann), None, db.change_watermark(), None)
    assert state.poll(now=T0) == []
    db.notifications.add([ann["id"]], kind="mention", conversation_id=cid, message_id=None, actor_id=bob["id"],
                         now=iso(T0))
    [event] = [e for e in state.poll(now=T0) if "event: notifications" in e]
    assert '"unread":1' in event
    assert f'"url":"/conversations/{cid}"' in event
    assert "Bob Builder" in event and "Kapotte fiets" in event
    # Service-level notices are off for the browser by default: counted, not popped up.
    db.notifications.add([ann["id"]], kind="sla_warning", conversation_id=cid, message_id=None, actor_id=None,
                         now=iso(T0))
    [event] = [e for e in state.poll(now=T0) if "event: notifications" in e]
    assert '"unread":2' in event and "latest" not in event


# Email --------------------------------------------------------------------------------------------------

@pytest.fixture
def mail_app(app_config, smtp_server):
    app_config["base_url"] = "http://mainland.test"
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none"},
        "chat": {"kind": "telegram", "token": "123:abc"},
    }
    from inbox import create_app

    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


def _mails(smtp_server, count):
    got = smtp_server.wait_for(count)
    assert len(got) == count
    return [email.message_from_bytes(m.content, policy=email.policy.default) for m in got]


def test_notification_mails_are_batched_per_agent(mail_app, smtp_server, frozen_clock):
    mainland = mail_app.extensions["mainland"]
    store = mainland.open_store()
    ann = make_agent(store, "ann@example.org")
    bob = make_agent(store, "bob@example.org", name="Bob Builder")
    cid = _conversation(mainland, store, ann, subject="Broken bike")

    def mention(at):
        frozen_clock.set(at)
        store.notifications.add([ann["id"]], kind="mention", conversation_id=cid, message_id=None,
                                actor_id=bob["id"], now=iso(at))

    def run(at):
        frozen_clock.set(at)
        return notifications.run(mainland, store)

    # Two events within the window: one mail with both.
    mention(T0)
    store.notifications.add([ann["id"]], kind="sla_warning", conversation_id=cid, message_id=None, actor_id=None,
                            now=iso(T0 + M))
    assert run(T0 + 2 * M).sent == 0  # the window is still open
    assert run(T0 + 5 * M).sent == 1
    [first] = _mails(smtp_server, 1)
    assert first["To"].addresses[0].addr_spec == "ann@example.org"
    assert first["Subject"] == "2 new notifications in Mainland"
    assert first["Auto-Submitted"] == "auto-generated"
    body = first.get_body(("plain",)).get_content()
    assert "Bob Builder mentioned you: Broken bike" in body
    assert "Soon past the adequate time: Broken bike" in body
    assert f"http://mainland.test/conversations/{cid}" in body
    assert run(T0 + 6 * M).sent == 0  # nothing twice

    # A third after the window: a second mail, with only that one.
    mention(T0 + 7 * M)
    assert run(T0 + 8 * M).sent == 0
    assert run(T0 + 12 * M).sent == 1
    second = _mails(smtp_server, 2)[1]
    assert second["Subject"] == "1 new notification in Mainland"
    assert second["Message-ID"] != first["Message-ID"]

    # One read in the app before the batch went out is left out.
    mention(T0 + 20 * M)
    read = store.notifications.of(ann["id"], None)[0].id
    store.notifications.add([ann["id"]], kind="sla_breach", conversation_id=cid, message_id=None, actor_id=None,
                            now=iso(T0 + 21 * M))
    store.notifications.mark_read(ann["id"], iso(T0 + 22 * M), notification_id=read)
    assert run(T0 + 26 * M).sent == 1
    third = _mails(smtp_server, 3)[2]
    assert third["Subject"] == "1 new notification in Mainland"
    assert "Past the adequate time: Broken bike" in third.get_body(("plain",)).get_content()
    assert "mentioned you" not in third.get_body(("plain",)).get_content()

    # A kind switched off for email is not mailed; with nothing left, no mail at all.
    store.notifications.set_settings(ann["id"], {"mention": {"email": False}}, iso(T0 + 30 * M))
    mention(T0 + 31 * M)
    store.notifications.add([ann["id"]], kind="assigned", conversation_id=cid, message_id=None, actor_id=bob["id"],
                            now=iso(T0 + 31 * M))  # assigned: not mailed by default
    assert run(T0 + 40 * M).sent == 0
    assert len(smtp_server.messages) == 3
    assert [m.state for m in store.notifications.emails(ann["id"])] == ["sent"] * 3
    store.close()


def test_a_refused_notification_mail_is_tried_again_once(mail_app, smtp_server, frozen_clock):
    mainland = mail_app.extensions["mainland"]
    store = mainland.open_store()
    ann = make_agent(store, "ann@example.org")
    cid = _conversation(mainland, store, ann)
    store.notifications.add([ann["id"]], kind="mention", conversation_id=cid, message_id=None, actor_id=None,
                            now=iso(T0))
    smtp_server.fail_next(451, "4.7.1 try later")
    frozen_clock.set(T0 + 5 * M)
    assert notifications.run(mainland, store).sent == 0
    [row] = store.notifications.emails(ann["id"])
    assert row.state == "retry_wait" and "451" in row.last_error
    frozen_clock.set(T0 + 6 * M)
    assert notifications.run(mainland, store).sent == 1
    frozen_clock.set(T0 + 20 * M)
    assert notifications.run(mainland, store).sent == 0
    assert len(_mails(smtp_server, 1)) == 1
    store.close()


def test_the_worker_job_runs_only_under_the_scheduler_lease(mainland, db, frozen_clock):
    from inbox.worker import Worker

    ann = make_agent(db, "ann@example.org")
    _conversation(mainland, db, ann)
    notifications.detect(db, T0)
    _ingest(mainland, db, T0 + M, text="Any news?")
    worker = Worker(mainland)
    try:
        worker._leader_task("notifications")  # not the leader: does nothing
        assert _kinds(db, ann) == []
        worker._renew_lease(db)
        assert worker.is_leader
        worker._leader_task("notifications")
        assert _kinds(db, ann) == ["customer_replied"]
    finally:
        with db.write():
            db.release_lease("scheduler", worker.holder)
        for store in worker._stores:
            store.close()


def test_the_email_interval_is_a_setting(mainland, db, frozen_clock):
    assert notifications.check_config({"email_every": "10m"}) == []
    assert notifications.check_config({"email_every": "soon"}) and notifications.check_config({"every": "5m"})
    mainland.config.extra["notifications"] = {"email_every": "10m"}
    ann = make_agent(db, "ann@example.org")
    cid = _conversation(mainland, db, ann)
    db.notifications.add([ann["id"]], kind="mention", conversation_id=cid, message_id=None, actor_id=None,
                         now=iso(T0))
    assert notifications.queue_due_emails(mainland, db, T0 + 5 * M) == 0
    assert notifications.queue_due_emails(mainland, db, T0 + 10 * M) == 1
    [mail] = db.notifications.emails(ann["id"])
    assert mail.item_count == 1 and mail.state == "pending"
