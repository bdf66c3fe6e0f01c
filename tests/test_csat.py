"""Satisfaction surveys: asked once after resolving, on the conversation's own channel.

Email surveys travel through the real outbox and SMTP (aiosmtpd) and are answered on the survey
page with a confirm step; chat surveys are answered by a message that the ingest pipeline records
instead of reopening the conversation.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import itertools
import re

import pytest

from inbox import csat
from inbox.csat import Rating, parse_rating
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import queue_reply, send_due
from inbox.store.base import iso
from tests.test_web_auth import make_agent

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
#: Unique external ids for the items the tests make.
_SEQUENCE = itertools.count(1)
M = dt.timedelta(minutes=1)


@pytest.mark.parametrize("text, rating", [
    ("5", Rating(5, None)),
    (" 4 ", Rating(4, None)),
    ("4/5", Rating(4, None)),
    ("3 stars", Rating(3, None)),
    ("goed", Rating(4, None)),
    ("Goed!", Rating(4, None)),
    ("heel goed", Rating(5, None)),
    ("Very good, thanks Ann!", Rating(5, "thanks Ann!")),
    ("1 - it took far too long", Rating(1, "it took far too long")),
    ("slecht", Rating(1, None)),
    ("bad", Rating(1, None)),
    ("not good", Rating(2, None)),
    ("ok", Rating(3, None)),
    ("👍", Rating(4, None)),
])
def test_ratings_are_read_in_numbers_and_words(text, rating):
    assert parse_rating(text) == rating


@pytest.mark.parametrize("text", [
    "1 more question: where is my order?", "10", "0", "6", "Hello, I need help", "good morning",
    "goedemiddag, ik heb nog een vraag", "5 minutes later it broke again", "",
])
def test_other_messages_are_not_ratings(text):
    assert parse_rating(text) is None


# Email: link with a confirm step ---------------------------------------------------------------------

@pytest.fixture
def mail_app(app_config, smtp_server):
    app_config["base_url"] = "http://mainland.test"
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none"},
        "chat": {"kind": "telegram", "token": "123:abc"},
    }
    app_config["service_levels"] = {"csat": {"delay": "10m", "expires": "7d"}}
    from inbox import create_app

    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


def _ingest(mainland, store, channel, when, *, handle, text="Where is my parcel?", thread=None, flags=(),
            subject="Parcel"):
    n = next(_SEQUENCE)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel=channel, external_id=f"csat-{n}", author=Author(handle, "Cleo Customer"),
                       text=text, thread_key=thread, subject=subject, flags=frozenset(flags),
                       message_id=f"m{n}@example.org" if channel == "mail" else None)
    return ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)


def _answered_and_resolved(mainland, store, channel, *, handle, agent, thread=None, flags=(), public=False):
    report = _ingest(mainland, store, channel, T0, handle=handle, thread=thread, flags=flags)
    [cid] = report.new_conversations
    if public:
        with store.write():
            store.execute("UPDATE conversations SET public = 1 WHERE id = ?", (cid,))
    queue_reply(mainland, store, cid, "It is on its way.", agent=agent, now=T0 + 20 * M)
    with store.write():
        store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                      (iso(T0 + 30 * M), cid))
    return cid


def test_an_email_survey_is_a_link_that_only_a_confirmed_click_answers(mail_app, smtp_server, frozen_clock):
    mainland = mail_app.extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store, "ann@example.org", name="Ann Agent")
    cid = _answered_and_resolved(mainland, store, "mail", handle="cleo@example.org", agent=agent)
    send_due(mainland, store, now=T0 + 21 * M)  # the agent's reply
    assert csat.send_due_surveys(mainland, store, now=T0 + 35 * M).asked == 0  # not before the delay
    run = csat.send_due_surveys(mainland, store, now=T0 + 45 * M)
    assert run.asked == 1
    assert csat.send_due_surveys(mainland, store, now=T0 + 50 * M).asked == 0  # at most one survey
    send_due(mainland, store, now=T0 + 46 * M)
    survey_mail = email.message_from_bytes(smtp_server.wait_for(2)[1].content, policy=email.policy.default)
    assert survey_mail["To"].addresses[0].addr_spec == "cleo@example.org"
    assert survey_mail["Auto-Submitted"] == "auto-generated"  # RFC 3834: auto-responders stay quiet
    body = survey_mail.get_body(("plain",)).get_content()
    [link] = re.findall(r"http://mainland\.test(/survey/\S+)", body)
    token = link.rsplit("/", 1)[1]
    # Only the hash is stored: the database alone yields no working link.
    assert store.execute("SELECT count(*) FROM csat_surveys WHERE token_hash = ?", (token,)).fetchone()[0] == 0
    assert store.survey_for_conversation(cid)["state"] == "asked"

    # The customer opens the link a day later, by the test's calendar (not the machine's).
    frozen_clock.set(T0 + dt.timedelta(days=1))
    client = mail_app.test_client()
    for _ in range(3):  # a link scanner opening the link, three times over
        page = client.get(link)
        assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('name="score"') == 5
    assert store.survey_for_conversation(cid)["state"] == "asked"  # opening counts nothing
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post(link, data={"score": "4"}).status_code == 400  # no CSRF token: refused
    answered = client.post(link, data={"score": "4", "comment": "Quick and kind", "csrf_token": csrf})
    assert answered.status_code == 200
    survey = store.survey_for_conversation(cid)
    assert (survey["state"], survey["score"], survey["comment"]) == ("answered", 4, "Quick and kind")
    assert (survey["agent_id"], survey["channel"]) == (agent["id"], "mail")
    assert survey["first_response_seconds"] == 20 * 60
    # Single use: a second vote changes nothing.
    assert client.post(link, data={"score": "1", "csrf_token": csrf}).status_code == 410
    assert store.survey_for_conversation(cid)["score"] == 4
    assert "no longer" in client.get(link).get_data(as_text=True)
    store.close()


def test_an_unknown_or_expired_link_records_nothing(mail_app):
    mainland = mail_app.extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store, "ann@example.org")
    cid = _answered_and_resolved(mainland, store, "mail", handle="late@example.org", agent=agent)
    csat.send_due_surveys(mainland, store, now=T0 + 45 * M)
    token = re.search(r"/survey/(\S+)", store.conversation_messages(cid)[-1]["text"]).group(1)
    assert csat.open_survey(store, token, now=T0 + 8 * dt.timedelta(days=1)) is None
    assert not csat.answer_by_token(store, "not-a-token", 5, None)
    with store.write():
        store.expire_surveys(iso(T0 + 8 * dt.timedelta(days=1)))
    assert not csat.answer_by_token(store, token, 5, None)
    assert store.survey_for_conversation(cid)["state"] == "expired"
    client = mail_app.test_client()
    assert "no longer" in client.get("/survey/not-a-token").get_data(as_text=True)
    store.close()


# Chat: a numbered question answered in the thread ----------------------------------------------------

def test_a_chat_answer_is_recorded_instead_of_reopening(mail_app):
    mainland = mail_app.extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store, "ann@example.org")
    cid = _answered_and_resolved(mainland, store, "chat", handle="4242", thread="chat-4242", agent=agent)
    assert csat.send_due_surveys(mainland, store, now=T0 + 45 * M).asked == 1
    question = store.conversation_messages(cid)[-1]
    assert "1 (bad) to 5 (very good)" in question["text"] and "survey" in question["flags"].split()

    report = _ingest(mainland, store, "chat", T0 + 50 * M, handle="4242", thread="chat-4242",
                     text="Heel goed, dank je!")
    assert report.new_conversations == []  # not a new conversation
    conversation = store.conversation(cid)
    assert conversation["status"] == "resolved"  # and not reopened
    survey = store.survey_for_conversation(cid)
    assert (survey["score"], survey["comment"]) == (5, "dank je!")
    answer = store.conversation_messages(cid)[-1]
    assert answer["text"] == "Heel goed, dank je!" and "survey_answer" in answer["flags"].split()

    # After the answer, a new question in the thread is an ordinary new conversation.
    report = _ingest(mainland, store, "chat", T0 + 60 * M, handle="4242", thread="chat-4242", text="4")
    assert len(report.new_conversations) == 1
    store.close()


def test_a_chat_message_that_is_not_a_rating_is_an_ordinary_message(mail_app):
    mainland = mail_app.extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store, "ann@example.org")
    cid = _answered_and_resolved(mainland, store, "chat", handle="77", thread="chat-77", agent=agent)
    csat.send_due_surveys(mainland, store, now=T0 + 45 * M)
    report = _ingest(mainland, store, "chat", T0 + 50 * M, handle="77", thread="chat-77",
                     text="1 more question: can I change the address?")
    assert len(report.new_conversations) == 1
    assert store.survey_for_conversation(cid)["state"] == "asked"
    store.close()


# Never to machines, public posts or erased customers ------------------------------------------------------

def test_no_survey_for_auto_replies_public_posts_erased_or_unanswered_customers(mail_app):
    mainland = mail_app.extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store, "ann@example.org")
    _answered_and_resolved(mainland, store, "mail", handle="ooo@example.org", agent=agent, flags={"auto_submitted"})
    _answered_and_resolved(mainland, store, "chat", handle="99", thread="public-1", agent=agent, public=True)
    erased = _answered_and_resolved(mainland, store, "mail", handle="gone@example.org", agent=agent)
    customer_id = store.conversation(erased)["customer_id"]
    with store.write():
        store.execute("DELETE FROM identities WHERE customer_id = ?", (customer_id,))
    [unanswered] = _ingest(mainland, store, "mail", T0, handle="quiet@example.org").new_conversations
    with store.write():
        store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                      (iso(T0 + M), unanswered))
    [spam] = _ingest(mainland, store, "mail", T0, handle="spam@example.org").new_conversations
    with store.write():
        store.execute("UPDATE conversations SET status = 'spam', updated_at = ? WHERE id = ?", (iso(T0 + M), spam))
    run = csat.send_due_surveys(mainland, store, now=T0 + 45 * M)
    assert run.asked == 0
    assert store.surveys() == []
    outgoing = store.execute("SELECT count(*) FROM messages WHERE ' ' || flags || ' ' LIKE '% survey %'").fetchone()
    assert outgoing[0] == 0
    store.close()


def test_surveys_can_be_switched_off_per_channel(app_config):
    from inbox import create_app

    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    app_config["service_levels"] = {"csat": {"channels": {"chat": "off"}}}
    mainland = create_app(app_config).extensions["mainland"]
    store = mainland.open_store()
    agent = make_agent(store, "ann@example.org")
    _answered_and_resolved(mainland, store, "chat", handle="5", thread="c-5", agent=agent)
    assert csat.send_due_surveys(mainland, store, now=T0 + 45 * M).asked == 0
    store.close()
