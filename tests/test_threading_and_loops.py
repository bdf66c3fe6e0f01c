"""Threading, identity, automatic mail and loops (reliability.md 4.1 IN-14..IN-16, 4.2 IN-30..IN-36).

Each case goes through parse_email -> Ingestor -> SQLite and checks what an agent notices: which
conversation a message lands in, whether a resolved conversation was reopened, whether any
automatic mail of ours may answer it (`triage.may_auto_reply`), and the badges it carries.
"""

from __future__ import annotations

import itertools

import pytest

from inbox import triage
from inbox.mail import parse_email
from tests.inbound import add_outbound, ingest_raw, message_row
from tests.mailfactory import raw_mail

_ids = itertools.count(1)


def resolved_conversation(ingestor, store, **mail):
    """A customer's conversation, resolved by an agent; returns (conversation id, first message id)."""
    first = ingest_raw(ingestor, raw_mail(**mail))
    conversation_id = first.message["conversation_id"]
    store.execute("UPDATE conversations SET status = 'resolved' WHERE id = ?", (conversation_id,))
    return conversation_id, first.message


# IN-30, IN-31: automatic mail is threaded but suppressed ------------------------------------------------

AUTOMATIC = [
    pytest.param({"extra_headers": "Auto-Submitted: auto-replied"}, id="IN-30-auto-replied"),
    pytest.param({"extra_headers": "Auto-Submitted: auto-generated"}, id="IN-30-auto-generated"),
    pytest.param({"extra_headers": "Auto-Submitted: auto-notified; owner-email=x@example.net"},
                 id="IN-30-other-value"),
    pytest.param({"extra_headers": "Auto-Submitted: AUTO-REPLIED"}, id="IN-30-upper-case"),
    pytest.param({"extra_headers": "Precedence: bulk"}, id="IN-31-precedence-bulk"),
    pytest.param({"extra_headers": "Precedence: list"}, id="IN-31-precedence-list"),
    pytest.param({"extra_headers": "Precedence: junk"}, id="IN-31-precedence-junk"),
    pytest.param({"extra_headers": "X-Precedence: auto_reply"}, id="IN-31-x-precedence"),
    pytest.param({"extra_headers": "List-Id: <news.example.net>"}, id="IN-31-list-id"),
    pytest.param({"extra_headers": "List-Unsubscribe: <mailto:leave@example.net>"}, id="IN-31-list-unsubscribe"),
    pytest.param({"extra_headers": "X-Autoreply: yes"}, id="IN-31-x-autoreply"),
    pytest.param({"extra_headers": "X-Autorespond: vacation"}, id="IN-31-x-autorespond"),
    pytest.param({"extra_headers": "X-Auto-Response-Suppress: All"}, id="IN-31-x-auto-response-suppress"),
    pytest.param({"extra_headers": "X-Loop: yes"}, id="IN-31-x-loop"),
    pytest.param({"extra_headers": "Return-Path: <>"}, id="IN-31-null-return-path"),
    pytest.param({"sender": "MAILER-DAEMON@mx.example.net"}, id="IN-31-mailer-daemon"),
    pytest.param({"sender": "Mail System <postmaster@example.net>"}, id="IN-31-postmaster"),
    pytest.param({"sender": "Shop <noreply@example.net>"}, id="IN-31-noreply"),
    pytest.param({"sender": "Shop <no-reply@example.net>"}, id="IN-31-no-reply"),
    pytest.param({"sender": "Shop <do-not-reply@example.net>"}, id="IN-31-do-not-reply"),
    pytest.param({"sender": "Shop <noreply+orders@example.net>"}, id="IN-31-noreply-with-tag"),
    pytest.param({"sender": "Shop <shop.no_reply@example.net>"}, id="IN-31-prefixed-no-reply"),
    pytest.param({"sender": "Bounces <bounces+123@example.net>"}, id="IN-31-bounces"),
    pytest.param({"extra_headers": "X-Auto-Response-Suppress: DR, OOF, AutoReply"},
                 id="IN-31-x-auto-response-suppress-list"),
]


@pytest.mark.parametrize("mail", AUTOMATIC)
def test_automatic_mail_is_threaded_but_reopens_nothing_and_gets_no_auto_reply(ingestor, store, mail):
    sender = mail.get("sender", "Jane Doe <jane@example.net>")
    conversation_id, first = resolved_conversation(ingestor, store, sender=sender, message_id="<orig@example.net>")
    raw = raw_mail(in_reply_to="<orig@example.net>", subject="Re: Order 1234", **mail)
    item = parse_email(raw, channel="mail")
    assert not triage.may_auto_reply(item)
    stored = ingest_raw(ingestor, raw)
    assert stored.message["conversation_id"] == conversation_id  # added to the thread ...
    assert store.conversation(conversation_id)["status"] == "resolved"  # ... without reopening it
    assert not triage.may_auto_reply_flags(stored.flags)


@pytest.mark.parametrize(
    "extra",
    [pytest.param("", id="IN-30-control-plain-reply"), pytest.param("Auto-Submitted: no", id="IN-30-control-no"),
     pytest.param("Precedence: normal", id="IN-31-control-precedence-normal"),
     pytest.param("X-Autoreply: no", id="IN-31-control-x-autoreply-no"),
     pytest.param("X-Auto-Response-Suppress: DR, RN", id="IN-31-control-suppress-receipts-only"),
     pytest.param("Sender: norman@example.net", id="IN-31-control-sender-like-noreply")],
)
def test_a_person_writing_back_reopens_and_may_be_acknowledged(ingestor, store, extra):
    conversation_id, _ = resolved_conversation(ingestor, store, message_id="<orig@example.net>")
    raw = raw_mail(in_reply_to="<orig@example.net>", extra_headers=extra)
    assert triage.may_auto_reply(parse_email(raw, channel="mail"))
    stored = ingest_raw(ingestor, raw)
    assert stored.message["conversation_id"] == conversation_id
    assert store.conversation(conversation_id)["status"] == "open"


def test_IN_30_new_auto_reply_starts_an_automatic_conversation(ingestor, store):
    stored = ingest_raw(ingestor, raw_mail(extra_headers="Auto-Submitted: auto-replied"))
    conversation = store.conversation(stored.message["conversation_id"])
    assert conversation["automatic"] == 1
    assert "auto_submitted" in conversation["flags"]


# IN-32: bounces of our replies ------------------------------------------------------------------------------


def dsn(original_id: str, *, action: str = "failed", status: str = "5.1.1", sender: str | None = None,
        headers_only: bool = False) -> bytes:
    original = (f"From: Support <support@mainland.test>\r\nTo: jane@example.net\r\nSubject: Re: Order 1234\r\n"
                f"Message-ID: <{original_id}>\r\n")
    returned = ("Content-Type: text/rfc822-headers\r\n\r\n" + original if headers_only
                else "Content-Type: message/rfc822\r\n\r\n" + original + "\r\nOur answer\r\n")
    head = f"From: {sender}\r\n" if sender else ""
    return (head + "To: support@mainland.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Date: Thu, 05 Mar 2026 10:21:00 +0000\r\nMessage-ID: <dsn-{next(_ids)}@mx.example.net>\r\n"
            "Return-Path: <>\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
            "--dsn\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.net.\r\n"
            "I'm sorry to have to inform you that your message could not be delivered.\r\n"
            "--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: rfc822; jane@example.net\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; 550 {status} <jane@example.net>: Recipient address rejected: User unknown\r\n"
            f"\r\n--dsn\r\n{returned}--dsn--\r\n").encode()


@pytest.mark.parametrize(
    "sender, headers_only",
    [
        pytest.param("Mail Delivery System <MAILER-DAEMON@mx.example.net>", False, id="IN-32-bounce-with-message"),
        pytest.param("MAILER-DAEMON@mx.example.net", True, id="IN-32-bounce-with-headers-only"),
        pytest.param(None, False, id="IN-32-bounce-without-from"),
    ],
)
def test_IN_32_bounce_joins_our_reply_and_marks_it_bounced(ingestor, store, sender, headers_only):
    conversation_id, _ = resolved_conversation(ingestor, store, message_id="<orig@example.net>")
    reply_id = add_outbound(store, conversation_id, "reply-1@mainland.test")
    raw = dsn("reply-1@mainland.test", sender=sender, headers_only=headers_only)
    item = parse_email(raw, channel="mail")
    assert not triage.may_auto_reply(item)
    stored = ingest_raw(ingestor, raw)
    assert stored.message["conversation_id"] == conversation_id
    assert "bounce" in stored.flags
    reply = message_row(store, reply_id)
    assert reply["delivery_status"] == "bounced"
    assert "5.1.1" in reply["delivery_error"] and "jane@example.net" in reply["delivery_error"]
    assert store.conversation(conversation_id)["status"] == "resolved"
    assert "Recipient address rejected" in stored.message["text"]
    customer = store.conversation(conversation_id)["customer_id"]
    [identity] = store.customer_identities(customer)
    assert identity["delivery_failed"] == 1, "the address that bounced is flagged for the next reply"


def test_IN_32_delay_notice_is_not_a_bounce(ingestor, store):
    conversation_id, _ = resolved_conversation(ingestor, store, message_id="<orig@example.net>")
    reply_id = add_outbound(store, conversation_id, "reply-2@mainland.test")
    stored = ingest_raw(ingestor, dsn("reply-2@mainland.test", action="delayed", status="4.4.1",
                                      sender="MAILER-DAEMON@mx.example.net"))
    assert "bounce" not in stored.flags
    assert message_row(store, reply_id)["delivery_status"] == "sent"
    assert store.conversation(conversation_id)["status"] == "resolved"
    assert not triage.may_auto_reply_flags(stored.flags)


def test_IN_32_bounce_of_a_message_we_never_sent_marks_nothing(ingestor, store):
    conversation_id, _ = resolved_conversation(ingestor, store, message_id="<orig@example.net>")
    reply_id = add_outbound(store, conversation_id, "reply-3@mainland.test")
    stored = ingest_raw(ingestor, dsn("forged-9@mainland.test", sender="MAILER-DAEMON@mx.example.net"))
    assert stored.message["conversation_id"] != conversation_id
    assert message_row(store, reply_id)["delivery_status"] == "sent"


# IN-33: our own mail coming back --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mail",
    [
        pytest.param({"extra_headers": "X-Mainland-Loop: test-instance"}, id="IN-33-own-loop-header"),
        pytest.param({"sender": "Support <support@mainland.test>"}, id="IN-33-own-address"),
        pytest.param({"sender": "SUPPORT@Mainland.TEST"}, id="IN-33-own-address-other-case"),
    ],
)
def test_IN_33_own_mail_is_a_loop_never_answered_never_reopening(ingestor, store, mail):
    conversation_id, _ = resolved_conversation(ingestor, store, message_id="<orig@example.net>")
    if "sender" in mail:
        # Our own address is not the customer: kept apart, as an automatic conversation.
        stored = ingest_raw(ingestor, raw_mail(**mail))
        assert store.conversation(stored.message["conversation_id"])["automatic"] == 1
    else:
        stored = ingest_raw(ingestor, raw_mail(in_reply_to="<orig@example.net>", **mail))
        assert stored.message["conversation_id"] == conversation_id
    assert "loop" in stored.flags
    assert not triage.may_auto_reply_flags(stored.flags)
    assert store.conversation(conversation_id)["status"] == "resolved"


def test_IN_33_another_instances_loop_header_is_not_ours(ingestor):
    stored = ingest_raw(ingestor, raw_mail(extra_headers="X-Mainland-Loop: some-other-instance"))
    assert "loop" not in stored.flags


# IN-34: another customer's token or Message-ID ---------------------------------------------------------------


@pytest.mark.parametrize("how", [
    pytest.param("token", id="IN-34-subject-token"),
    pytest.param("in-reply-to", id="IN-34-in-reply-to"),
    pytest.param("references", id="IN-34-references"),
    pytest.param("our-message-id", id="IN-34-our-outgoing-message-id"),
])
def test_IN_34_customer_b_never_lands_in_customer_a_thread(ingestor, store, how):
    a = ingest_raw(ingestor, raw_mail(sender="Alice <alice@example.org>", message_id="<a1@example.org>"))
    conversation = store.conversation(a.message["conversation_id"])
    add_outbound(store, conversation["id"], f"mainland.{conversation['token']}.r1@mainland.test")
    b_mail = {
        "token": {"subject": f"Re: Order [#{conversation['token']}]"},
        "in-reply-to": {"in_reply_to": "<a1@example.org>"},
        "references": {"references": "<x@example.org> <a1@example.org>"},
        "our-message-id": {"in_reply_to": f"<mainland.{conversation['token']}.r1@mainland.test>"},
    }[how]
    b = ingest_raw(ingestor, raw_mail(sender="Bob <bob@example.com>", **b_mail))
    assert b.message["conversation_id"] != conversation["id"]
    assert "possible_misthread" in b.flags
    assert [m["author_handle"] for m in store.conversation_messages(conversation["id"]) if m["direction"] == "in"] \
        == ["alice@example.org"]
    # Alice herself, with the same references, still threads.
    again = ingest_raw(ingestor, raw_mail(sender="alice@example.org", **b_mail))
    assert again.message["conversation_id"] == conversation["id"]


# IN-15, IN-16: one Message-ID, two messages; one message, two deliveries ------------------------------------


def test_IN_15_same_message_id_from_someone_else_is_kept_apart(ingestor, store):
    first = ingest_raw(ingestor, raw_mail(sender="alice@example.org", message_id="<dup@example.org>", body="Mine"))
    forged = ingest_raw(ingestor, raw_mail(sender="mallory@evil.example", message_id="<dup@example.org>",
                                           body="Forged"))
    assert forged.report.stored == 1
    assert forged.message["conversation_id"] != first.message["conversation_id"]
    assert message_row(store, first.message["id"])["text"].strip() == "Mine"
    # A reply to that Message-ID from Alice goes to Alice's conversation.
    reply = ingest_raw(ingestor, raw_mail(sender="alice@example.org", in_reply_to="<dup@example.org>"))
    assert reply.message["conversation_id"] == first.message["conversation_id"]


def test_IN_15_same_message_id_same_sender_but_different_content_is_kept(ingestor, store):
    ingest_raw(ingestor, raw_mail(message_id="<dup2@example.net>", subject="First"))
    second = ingest_raw(ingestor, raw_mail(message_id="<dup2@example.net>", subject="Second",
                                           date="Fri, 06 Mar 2026 09:00:00 +0000"))
    assert second.report.stored == 1
    assert store.counts()["messages"] == 2


def test_IN_16_redownloaded_message_is_stored_once(ingestor, store):
    raw = raw_mail(message_id="<twice@example.net>")
    ingest_raw(ingestor, raw, source_ref="uidvalidity 1 uid 7")
    again = ingest_raw(ingestor, raw, source_ref="uidvalidity 2 uid 1")  # after a UIDVALIDITY change
    assert (again.report.stored, again.report.duplicates) == (0, 1)
    assert store.counts()["messages"] == 1


def test_IN_16_same_message_to_two_mailboxes_is_one_per_mailbox(ingestor, store):
    # Policy: each mailbox (channel) keeps its copy; within a mailbox a copy is never stored twice.
    raw = raw_mail(message_id="<both@example.net>", to="support@mainland.test, sales@mainland.test")
    support = ingest_raw(ingestor, raw, channel="support")
    sales = ingest_raw(ingestor, raw, channel="sales")
    assert support.report.stored == sales.report.stored == 1
    assert ingest_raw(ingestor, raw, channel="sales").report.duplicates == 1
    assert store.counts()["messages"] == 2


# IN-35, IN-36: nothing inbound is privileged ------------------------------------------------------------------


def test_IN_35_mail_from_an_agent_address_is_a_customer_message(ingestor, store):
    store.execute("INSERT INTO agents (email, name, role, created_at) VALUES "
                  "('agent@ourcompany.example', 'Agent', 'admin', '2026-01-01T00:00:00Z')")
    raw = raw_mail(sender="Agent <agent@ourcompany.example>",
                   extra_headers="Authentication-Results: mx.mainland.test; spf=fail smtp.mailfrom=evil.example;"
                                 " dmarc=fail header.from=ourcompany.example")
    stored = ingest_raw(ingestor, raw)
    message = stored.message
    assert message["direction"] == "in"
    assert message["agent_id"] is None and message["customer_id"] is not None
    assert store.customer_identities(message["customer_id"])[0]["value"] == "agent@ourcompany.example"
    assert "unverified_sender" in message["flags"]


def test_IN_35_dmarc_pass_is_not_flagged(ingestor):
    stored = ingest_raw(ingestor, raw_mail(extra_headers="Authentication-Results: mx.mainland.test; dmarc=pass"))
    assert "unverified_sender" not in stored.flags


def test_IN_36_internal_looking_headers_change_no_routing(ingestor, store):
    store.execute("INSERT INTO teams (name) VALUES ('billing')")
    store.execute("INSERT INTO agents (email, name, role, created_at) VALUES "
                  "('admin@mainland.test', 'admin', 'admin', '2026-01-01T00:00:00Z')")
    raw = raw_mail(extra_headers="X-Inbox-Team: billing\r\nX-Inbox-Assign: admin\r\nX-Inbox-Priority: urgent\r\n"
                                 "X-Mainland-Team: billing\r\nX-Mainland-Assignee: admin@mainland.test\r\n"
                                 "X-Mainland-Status: resolved")
    stored = ingest_raw(ingestor, raw)
    conversation = store.conversation(stored.message["conversation_id"])
    assert conversation["team_id"] is None
    assert conversation["assignee_id"] is None
    assert conversation["priority"] == 0
    assert conversation["status"] == "new"
    assert not any(name.startswith(("x-inbox", "x-mainland-team", "x-mainland-assign"))
                   for name in stored.message["headers"])
