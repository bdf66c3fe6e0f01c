"""Automatic acknowledgements: one receipt per new conversation and sender, naming the desired first
response time, never to machines, and no answer (the first-response clock keeps running).

The worker's job (`acknowledgements.run`) runs against the real store, ingest and outbox; a chat
channel records what it was asked to send, and email goes through a real SMTP sink.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import itertools

import pytest

from connectors.base import Connector, Limits
from inbox import acknowledgements
from inbox.config import ConfigError, from_mapping
from inbox.mail import parse_email
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import send_due
from inbox.runtime import Mainland
from inbox.store.base import iso
from tests.mailfactory import raw_mail

T0 = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)  # a Wednesday
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
_IDS = itertools.count(1)


class AckChat(Connector):
    kind = "ack-chat"
    display_name = "Chat"
    limits = Limits(max_text_length=1000, supports_attachments=False)
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        AckChat.sent.append(reply)
        return f"chat-{len(AckChat.sent)}"


def make_mainland(tmp_path, *, acknowledgement=True, service_levels=None, extra_channels=None):
    AckChat.sent = []
    channels = {"chat": {"kind": AckChat.kind, "acknowledgement": acknowledgement},
                "quiet": {"kind": AckChat.kind}}
    channels.update(extra_channels or {})
    config = from_mapping({
        "database": str(tmp_path / "m.db"), "mail_domain": "mainland.test", "channels": channels,
        "service_levels": service_levels or {"policy": {"first_response": {"desired": "30m", "adequate": "2h"}}},
    }, base=tmp_path)
    return Mainland(config, extra_connectors=[AckChat])


@pytest.fixture
def mainland(tmp_path):
    return make_mainland(tmp_path, acknowledgement={"enabled": True, "every": "24h"})


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    # The first run only sets the watermark: what was stored before acknowledgements began is left alone.
    acknowledgements.run(mainland, store, now=T0)
    yield store
    store.close()


def ingest(mainland, store, channel="chat", *, when=T0, handle="cleo-42", flags=(), thread=None):
    n = next(_IDS)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(channel=channel, external_id=f"in-{n}", author=Author(handle, "Cleo Customer"),
                       text="Where is my parcel?", thread_key=thread or f"{handle}-{n}", sent_at=when,
                       flags=frozenset(flags))
    report = ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)
    return report.new_conversations[0] if report.new_conversations else None


def receipts():
    return [r for r in AckChat.sent if "We have received it" in r.text or "We hebben het ontvangen" in r.text]


def test_a_new_conversation_gets_one_receipt_naming_the_desired_first_response_time(mainland, store):
    cid = ingest(mainland, store)
    assert acknowledgements.run(mainland, store, now=T0 + M).sent == 1
    assert acknowledgements.run(mainland, store, now=T0 + 2 * M).sent == 0, "each message is looked at once"
    send_due(mainland, store, now=T0 + 2 * M)
    [receipt] = receipts()
    assert "will answer within 30 minutes" in receipt.text
    assert receipt.automatic and receipt.to.handle == "cleo-42"
    conversation = store.conversation(cid)
    assert conversation["status"] == "new" and conversation["first_response_at"] is None, "a receipt is no answer"
    assert conversation["first_response_due_desired"] == iso(T0 + 30 * M), "the first-response clock keeps running"
    [out] = [m for m in store.thread_messages(cid) if m["direction"] == "out"]
    assert {"acknowledgement", "auto_submitted"} <= set(out["flags"].split()), "recorded as an automatic reply"


def test_a_customer_reply_in_the_same_conversation_gets_no_receipt(mainland, store):
    cid = ingest(mainland, store, thread="t-1")
    acknowledgements.run(mainland, store, now=T0 + M)
    assert ingest(mainland, store, thread="t-1", when=T0 + 30 * H) is None
    assert len(store.thread_messages(cid)) == 3
    assert acknowledgements.run(mainland, store, now=T0 + 30 * H).sent == 0


@pytest.mark.parametrize("flag", ["auto_submitted", "bulk", "bounce", "loop", "invalid_sender"])
def test_no_receipt_to_automatic_mail_or_an_unreadable_sender(mainland, store, flag):
    ingest(mainland, store, flags=[flag])
    run = acknowledgements.run(mainland, store, now=T0 + M)
    assert (run.sent, run.skipped) == (0, 1)
    send_due(mainland, store, now=T0 + 2 * M)
    assert receipts() == []


def test_no_receipt_to_a_conversation_marked_as_spam(mainland, store):
    cid = ingest(mainland, store)
    with store.write():
        store.execute("UPDATE conversations SET status = 'spam' WHERE id = ?", (cid,))
    assert acknowledgements.run(mainland, store, now=T0 + M).sent == 0


def test_no_receipt_for_an_item_released_from_quarantine(mainland, store):
    cid = ingest(mainland, store)
    [message] = store.thread_messages(cid)
    with store.write():
        held = store.quarantine_put("chat", b"raw", "could not parse", source_ref=None, exception=None, now=iso(T0))
        store.quarantine_release(held, message["id"])
    assert acknowledgements.run(mainland, store, now=T0 + M).sent == 0


def test_the_same_sender_is_acknowledged_once_per_period_then_again(mainland, store):
    ingest(mainland, store, when=T0)
    assert acknowledgements.run(mainland, store, now=T0 + M).sent == 1
    ingest(mainland, store, when=T0 + 23 * H)  # a new conversation within 24 hours
    assert acknowledgements.run(mainland, store, now=T0 + 23 * H + M).sent == 0
    ingest(mainland, store, handle="someone-else", when=T0 + 23 * H)
    assert acknowledgements.run(mainland, store, now=T0 + 23 * H + 2 * M).sent == 1, "another sender is"
    ingest(mainland, store, when=T0 + 25 * H)
    assert acknowledgements.run(mainland, store, now=T0 + 25 * H + M).sent == 1, "after the period again"
    send_due(mainland, store, now=T0 + 26 * H)
    assert [r.to.handle for r in receipts()] == ["cleo-42", "someone-else", "cleo-42"]


def test_off_by_default(mainland, store):
    ingest(mainland, store, channel="quiet")
    assert acknowledgements.run(mainland, store, now=T0 + M).sent == 0


def test_in_the_customers_language_and_in_business_hours(tmp_path):
    mainland = make_mainland(tmp_path, service_levels={
        "policy": {"first_response": {"desired": "4h", "adequate": "8h"}},
        "business_hours": {"timezone": "Europe/Amsterdam", "hours": {"weekdays": "09:00-17:00"}},
    })
    store = mainland.open_store(migrate=True)
    acknowledgements.run(mainland, store, now=T0)
    cid = ingest(mainland, store)
    with store.write():
        store.execute("UPDATE customers SET locale = 'nl' WHERE id = ?", (store.conversation(cid)["customer_id"],))
    acknowledgements.run(mainland, store, now=T0 + M)
    send_due(mainland, store, now=T0 + 2 * M)
    [receipt] = receipts()
    assert "antwoorden binnen 4 werkuren" in receipt.text
    store.close()


@pytest.mark.parametrize("target, business, locale, words", [
    (dt.timedelta(minutes=1), False, "en", "1 minute"),
    (dt.timedelta(hours=1), False, "nl", "1 uur"),
    (dt.timedelta(minutes=90), False, "en", "2 hours"),
    (dt.timedelta(days=2), False, "en", "2 days"),
    (dt.timedelta(days=2), True, "en", "48 business hours"),
    (dt.timedelta(hours=1), True, "en", "1 business hour"),
])
def test_the_expected_time_in_words(target, business, locale, words):
    assert acknowledgements.expected_time(target, locale, business=business) == words


@pytest.mark.parametrize("setting, problem", [
    ({"every": "often"}, "channels.chat.acknowledgement.every: 'often' is not a duration"),
    ({"every": 0}, "channels.chat.acknowledgement.every: must be more than zero"),
    ({"when": "always"}, "channels.chat.acknowledgement: unknown key(s) when"),
    ("yes", "channels.chat.acknowledgement: must be true, false or a mapping"),
])
def test_settings_are_checked_at_start(tmp_path, setting, problem):
    with pytest.raises(ConfigError) as error:
        make_mainland(tmp_path, acknowledgement=setting)
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


def test_an_email_receipt_is_threaded_and_marked_automatic(tmp_path, smtp_server):
    mainland = make_mainland(tmp_path, extra_channels={"mail": {
        "kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
        "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10, "acknowledgement": True}})
    store = mainland.open_store(migrate=True)
    acknowledgements.run(mainland, store, now=T0)
    item = parse_email(raw_mail(message_id="<q1@example.net>"), channel="mail")
    mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor="c1"))
    assert acknowledgements.run(mainland, store, now=T0 + M).sent == 1
    assert send_due(mainland, store, now=T0 + 2 * M).sent == 1
    receipt = email.message_from_bytes(smtp_server.wait_for(1)[0].content, policy=email.policy.default)
    assert receipt["To"].addresses[0].addr_spec == "jane@example.net"
    assert receipt["In-Reply-To"] == "<q1@example.net>" and "<q1@example.net>" in receipt["References"]
    assert receipt["Auto-Submitted"] == "auto-replied", "RFC 3834: an automatic answer; auto-responders skip it"
    assert "will answer within 30 minutes" in receipt.get_body(("plain",)).get_content()
    store.close()


def test_no_receipt_to_our_own_address(tmp_path, smtp_server):
    mainland = make_mainland(tmp_path, extra_channels={"mail": {
        "kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
        "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port, "smtp_security": "none", "acknowledgement": True,
        "from_address": "help@mainland.test"}})
    store = mainland.open_store(migrate=True)
    acknowledgements.run(mainland, store, now=T0)
    item = parse_email(raw_mail(sender="Help <help@mainland.test>", message_id="<q2@example.net>"), channel="mail")
    mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor="c1"))
    assert acknowledgements.run(mainland, store, now=T0 + M).sent == 0
    assert send_due(mainland, store, now=T0 + 2 * M).sent == 0
    store.close()


def test_the_worker_acknowledges_new_conversations_after_ingest(tmp_path, monkeypatch, frozen_clock):
    from inbox import worker as worker_module

    monkeypatch.setattr(worker_module, "ACKNOWLEDGEMENTS_EVERY", 0.2)
    mainland = make_mainland(tmp_path)
    store = mainland.open_store(migrate=True)
    worker = worker_module.Worker(mainland)
    worker.start()
    try:
        # Its first run sets the watermark; the message stored after it is acknowledged by a later run.
        assert worker.wait_until(lambda: worker.runs["acknowledgements"] >= 1, 30)
        cid = ingest(mainland, store, when=frozen_clock.now())
        assert worker.wait_until(lambda: any(
            "acknowledgement" in m["flags"].split() for m in store.thread_messages(cid)), 30), worker.status()
    finally:
        worker.stop()
        store.close()
