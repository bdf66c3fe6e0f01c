"""Who a mail is from when its From is not enough, and headers that the stdlib parser would cut short.

The golden files 026-035 in tests/fixtures/mail/ (run by test_mail_parsing.py) hold one mail per
case; here the delivery reports among them must also reach the reply of ours they report on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inbound import add_outbound, ingest_raw, message_row
from tests.mailfactory import raw_mail

FIXTURES = Path(__file__).parent / "fixtures" / "mail"


@pytest.mark.parametrize(
    "name, our_message_id",
    [
        pytest.param("030-dsn-empty-from-global", "mainland.ABCD1234.g1@mainland.test", id="rfc6533-global-dsn"),
        pytest.param("031-dsn-null-from-no-returned-content", "mainland.ABCD1234.r2@mainland.test",
                     id="dsn-naming-the-original-only-in-its-headers"),
    ],
)
def test_bounce_with_empty_from_joins_the_reply_it_reports_on(ingestor, store, name, our_message_id):
    first = ingest_raw(ingestor, raw_mail(sender="Jane Doe <jane@example.net>"))
    conversation_id = first.message["conversation_id"]
    reply_id = add_outbound(store, conversation_id, our_message_id)
    stored = ingest_raw(ingestor, (FIXTURES / f"{name}.eml").read_bytes())
    assert stored.report.quarantined == 0
    assert stored.message["conversation_id"] == conversation_id
    assert "bounce" in stored.flags
    assert message_row(store, reply_id)["delivery_status"] == "bounced"


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"Subject: Hi\r\nnot a header line\r\nFrom: Jane <jane@example.net>\r\n", id="broken-line-before-from"),
        pytest.param(b"\r\n\r\nFrom: Jane <jane@example.net>\r\nSubject: Hi\r\n", id="blank-lines-before-headers"),
        pytest.param(b">From jane@example.net Thu Mar  5 10:15:02 2026\r\nFrom: Jane <jane@example.net>\r\nSubject: Hi\r\n",
                     id="quoted-mbox-line"),
    ],
)
def test_header_junk_does_not_cost_the_sender(ingestor, head):
    raw = head + b"Message-ID: <junk-%d@example.net>\r\n\r\nThe body.\r\n" % len(head)
    stored = ingest_raw(ingestor, raw)
    assert stored.message["author_handle"] == "jane@example.net"
    assert stored.message["subject"] == "Hi"
    assert stored.message["text"].strip() == "The body."


def test_a_body_without_blank_line_is_not_mistaken_for_junk(ingestor):
    """Only lines *before* the last field are skipped: body text right after the headers stays text."""
    raw = b"From: Jane <jane@example.net>\r\nSubject: Hi\r\nMessage-ID: <nobreak@example.net>\r\nno blank line here\r\n"
    stored = ingest_raw(ingestor, raw)
    assert stored.message["author_handle"] == "jane@example.net"
    assert "no blank line here" in stored.message["text"]
