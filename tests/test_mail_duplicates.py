"""A known Message-ID (same sender, date and subject) with another text is held, not dropped as a duplicate."""

from __future__ import annotations

from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.inbound import ingest_raw
from tests.mailfactory import raw_mail

SAME = {"sender": "Jane Doe <jane@example.net>", "message_id": "<reused@example.net>", "subject": "Order 88"}


def test_same_message_id_different_content_is_held_in_quarantine(ingestor, store):
    first = ingest_raw(ingestor, raw_mail(**SAME, body="Please cancel order 88."))
    second_raw = raw_mail(**SAME, body="Please send order 88 to my new address instead.")
    second = ingest_raw(ingestor, second_raw, source_ref="uid 12")
    assert (second.report.stored, second.report.duplicates, second.report.quarantined) == (0, 0, 1)
    [held] = store.quarantined()
    assert held["reason"].startswith("same Message-ID, different content")
    assert "reused@example.net" in held["reason"]
    assert store.quarantine_item(held["id"])["raw"] == second_raw
    assert store.counts()["messages"] == 1
    assert first.message["text"].strip() == "Please cancel order 88."


def test_a_redelivery_with_other_transport_headers_is_still_a_duplicate(ingestor, store):
    ingest_raw(ingestor, raw_mail(**SAME, body="Please cancel order 88."))
    again = raw_mail(**SAME, body="Please cancel order 88.", extra_headers="Received: from mx2.example.net")
    stored = ingest_raw(ingestor, again.replace(b"\r\n", b"\n"))  # and LF line ends, as an mbox copy has
    assert (stored.report.duplicates, stored.report.quarantined) == (1, 0)
    assert store.quarantined() == []


def test_two_different_contents_in_one_batch_keep_the_first_and_hold_the_second(ingestor, store):
    items = [parse_email(raw_mail(**SAME, body=body), channel="mail") for body in ("First text.", "Second text.")]
    report = ingestor.ingest("mail", FetchResult(items=items, cursor=None), save_cursor=False)
    assert (report.stored, report.quarantined, report.duplicates) == (1, 1, 0)
    assert store.quarantined()[0]["reason"].startswith("same Message-ID, different content")
