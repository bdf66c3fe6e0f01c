"""Tests of the test infrastructure itself (tests/servers.py, tests/corpus.py).

If one of these fails, fix the fixture before believing any other failure.
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import time
from email.message import EmailMessage

import pytest

from tests.servers import (
    NetworkBlocked,
    SmtpSink,
    add_imap_user,
    imap_append,
    imap_append_many,
    imap_connect,
    imap_status,
    set_uidvalidity,
)

pytestmark = pytest.mark.server  # real Dovecot and SMTP servers

RAW = b"From: alice@example.com\r\nTo: care@example.org\r\nSubject: hello\r\nMessage-ID: <1@example.com>\r\n\r\nbody\r\n"


def _message(subject: str = "hi") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", subject
    msg.set_content("hello")
    return msg


def test_append_then_uid_fetch_peek_returns_it_unseen(imap_account):
    uid = imap_append(imap_account, RAW)

    conn = imap_connect(imap_account)
    try:
        conn.select("INBOX")
        typ, data = conn.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
        assert typ == "OK"
        meta, body = data[0]
        assert body == RAW
        assert b"\\Seen" not in meta
        # Asked again: PEEK must not have set \Seen behind our back.
        typ, data = conn.uid("FETCH", str(uid), "(FLAGS)")
        assert b"\\Seen" not in data[0]
    finally:
        conn.logout()
    assert imap_status(imap_account)["UNSEEN"] == 1


def test_append_many_uses_consecutive_uids_and_other_mailboxes(imap_account):
    uids = imap_append_many(imap_account, [RAW.replace(b"hello", b"m%d" % i) for i in range(5)])
    assert uids == [1, 2, 3, 4, 5]
    assert imap_append(imap_account, RAW, mailbox="Support Archive", flags=[r"\Seen"]) == 1
    assert imap_status(imap_account)["MESSAGES"] == 5
    archive = imap_status(imap_account, "Support Archive")
    assert (archive["MESSAGES"], archive["UNSEEN"]) == (1, 0)


def test_set_uidvalidity_changes_it_and_keeps_messages(imap_account):
    imap_append_many(imap_account, [RAW, RAW])
    before = imap_status(imap_account)
    set_uidvalidity(imap_account, before["UIDVALIDITY"] + 1000)
    after = imap_status(imap_account)
    assert after["UIDVALIDITY"] == before["UIDVALIDITY"] + 1000
    assert (after["MESSAGES"], after["UIDNEXT"]) == (2, 3)


def test_set_uidvalidity_works_before_first_login(imap_account):
    set_uidvalidity(imap_account, 424242)
    assert imap_status(imap_account)["UIDVALIDITY"] == 424242


def test_each_account_is_fresh_and_usable_at_once(dovecot_server, imap_account):
    imap_append(imap_account, RAW)
    # Several users created and used within one second: Dovecot must see each at once.
    others = [add_imap_user(dovecot_server) for _ in range(3)]
    for other in others:
        assert imap_status(other)["MESSAGES"] == 0
    assert imap_status(imap_account)["MESSAGES"] == 1
    assert len({a["user"] for a in [imap_account, *others]}) == 4


def test_wrong_password_fails_without_penalty_delay(imap_account):
    start = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap_connect({**imap_account, "password": "wrong"})
    imap_status(imap_account)  # a correct login right after a failure
    assert time.monotonic() - start < 1.5


def test_smtp_server_records_message(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        assert smtp.send_message(_message("recorded")) == {}
    [(mail_from, rcpt_tos, content)] = smtp_server.messages
    assert (mail_from, rcpt_tos) == ("a@example.com", ["b@example.com"])
    assert b"Subject: recorded" in content


@pytest.mark.parametrize(("code", "text"), [(451, "4.7.1 greylisted"), (552, "5.3.4 too big"), (550, "5.1.1 no such user")])
def test_fail_next_refuses_with_the_given_code(smtp_server, code, text):
    smtp_server.fail_next(code, text)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPResponseException) as info:
            smtp.send_message(_message("refused"))
        assert info.value.smtp_code == code
        assert text.encode() in info.value.smtp_error
        smtp.send_message(_message("accepted"))  # only the next message is refused
    assert [m.content.count(b"Subject: accepted") for m in smtp_server.messages] == [1]
    assert [r.code for r in smtp_server.rejections] == [code]


def test_fail_next_at_rcpt(smtp_server):
    smtp_server.fail_next(550, "5.1.1 unknown", stage="RCPT")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send_message(_message())
    assert smtp_server.messages == []


def test_smtp_sink_with_auth_requires_login():
    with SmtpSink(auth=("care", "s3cret")) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused):
                smtp.send_message(_message("no login"))
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.login("care", "s3cret")
            smtp.send_message(_message("logged in"))
        assert [b"Subject: logged in" in m.content for m in sink.messages] == [True]


def test_no_network_blocks_outside_but_allows_loopback(no_network, smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.noop()
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: blocked before any packet
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("example.com", 443)
    assert len(no_network.attempts) == 2
    no_network.attempts.clear()  # deliberate attempts: don't fail this test at teardown


def test_spam_assassin_corpus(spam_assassin_corpus):
    assert len(spam_assassin_corpus) == 6046
    assert all(p.suffix == ".txt" for p in spam_assassin_corpus)
    assert spam_assassin_corpus[0].read_bytes().startswith(b"From ")
