"""Email parsing against reliability.md 4.1: charsets, senders, broken MIME, dates, subjects, sizes.

Every case goes through the real pipeline (parse_email -> Ingestor.ingest -> SQLite) and checks
what an agent would see: the stored text and subject, the flags shown as badges, the raw original
kept for download, or a quarantine row when there is no sender at all. Case ids name the
catalogue entry they prove.
"""

from __future__ import annotations

import base64
import itertools
import json
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from inbox.mail import build_reply, parse_email, parse_email_headers
from inbox.models import Author, OutboundReply
from tests.inbound import attachment_rows, ingest_raw, message_row
from tests.mailfactory import raw_mail

FIXTURES = Path(__file__).parent / "fixtures" / "mail"
#: The flags a golden file states exactly (the others depend on the test's clock or the store).
GOLDEN_FLAGS = {"charset_fallback", "malformed", "bounce", "invalid_sender", "oversized", "truncated"}
_ids = itertools.count(1)


def mime(head: str, body: str | bytes, *, sender: str = "Jane Doe <jane@example.net>") -> bytes:
    """A raw mail from header lines (LF-separated, sent with CRLF) and a body."""
    lines = [f"From: {sender}", "To: support@mainland.test", "Subject: Test",
             "Date: Thu, 05 Mar 2026 10:15:02 +0000", f"Message-ID: <m-{next(_ids)}@example.net>",
             "MIME-Version: 1.0", *head.strip("\n").split("\n")]
    data = body if isinstance(body, bytes) else body.replace("\n", "\r\n").encode("utf-8")
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + data


# IN-13 (and IN-11): golden files, our own fixtures --------------------------------------------


@pytest.mark.parametrize(
    "name",
    [pytest.param(p.name.removesuffix(".eml"), id=f"IN-13-{p.name.removesuffix('.eml')}")
     for p in sorted(FIXTURES.glob("*.eml"))],
)
def test_golden_fixture_decodes_to_the_right_text(ingestor, store, name):
    """Each `.expected.json` names the sender, name, subject, the whole `text` or an `excerpt` of it,
    the `references` it must carry, and the flags of GOLDEN_FLAGS it has; or `quarantined` and the
    start of the reason when no party can be found. `max_bytes` parses it under that size cap."""
    raw = (FIXTURES / f"{name}.eml").read_bytes()
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text("utf-8"))
    stored = ingest_raw(ingestor, raw, max_bytes=expected.get("max_bytes"))
    if "quarantined" in expected:
        assert stored.message is None and stored.report.quarantined == 1
        assert store.quarantined()[0]["reason"].startswith(expected["quarantined"])
        return
    message = stored.message
    assert message["author_handle"] == expected["sender"]
    assert message["author_name"] == expected["name"]
    assert message["subject"] == expected["subject"]
    if "text" in expected:
        assert message["text"].strip() == expected["text"]
    else:
        assert expected["excerpt"] in message["text"]
    assert set(expected.get("references", ())) <= set(message["refs"].split())
    assert GOLDEN_FLAGS & message["flags"] == set(expected["flags"])
    kept = store.raw_message(message["id"])
    assert kept == raw if "max_bytes" not in expected else raw.startswith(kept)


# IN-11, IN-12: charsets that lie or are unknown ------------------------------------------------


@pytest.mark.parametrize(
    "ctype, body, expected_text, fallback",
    [
        pytest.param("text/plain; charset=utf-8", "“Hi” café".encode("cp1252"), "“Hi” café", True,
                     id="IN-11-cp1252-declared-utf8"),
        pytest.param("text/plain; charset=us-ascii", "Grüße".encode("latin-1"), "Grüße", True,
                     id="IN-11-latin1-declared-ascii"),
        pytest.param('text/plain; charset="x-unknown"', b"plain words", "plain words", True,
                     id="IN-12-x-unknown"),
        pytest.param("text/plain; charset=windows-1258", b"Vi\xea\xf2t Nam", "Vi\u00ea\u0323t Nam", False,
                     id="IN-12-windows-1258"),
        pytest.param("text/plain; charset=utf-7", b"+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
                     "<script>alert(1)</script>", False, id="IN-12-utf-7-text-kept-as-text"),
        pytest.param("text/plain; charset=utf-16", "hello".encode("utf-16"), "hello", False,
                     id="IN-12-utf-16"),
        pytest.param("text/plain; charset=\"utf-8\\\"; x\"", b"ok", "ok", True, id="IN-12-garbled-charset-param"),
    ],
)
def test_charset_lies_degrade_without_exception(ingestor, store, ctype, body, expected_text, fallback):
    raw = mime(f"Content-Type: {ctype}\nContent-Transfer-Encoding: 8bit", body)
    stored = ingest_raw(ingestor, raw)
    assert stored.message["text"].strip() == expected_text
    assert ("charset_fallback" in stored.flags) is fallback
    assert store.raw_message(stored.message["id"]) == raw


# IN-14: no Message-ID ---------------------------------------------------------------------------


def test_IN_14_no_message_id_gets_a_synthetic_id_and_dedupes_on_refetch(ingestor, store):
    raw = raw_mail(message_id=None)
    first = ingest_raw(ingestor, raw)
    assert "no_message_id" in first.flags
    assert first.message["external_id"].startswith("raw:")
    again = ingest_raw(ingestor, raw)
    assert (again.report.stored, again.report.duplicates) == (0, 1)
    assert store.counts()["messages"] == 1


# IN-17: no sender -> quarantine ----------------------------------------------------------------


@pytest.mark.parametrize(
    "from_header",
    [
        pytest.param(None, id="IN-17-no-from-header"),
        pytest.param("<>", id="IN-17-null-address"),
        pytest.param("undisclosed-recipients:;", id="IN-17-empty-group"),
        pytest.param("", id="IN-17-empty-from"),
        pytest.param('"Just A Name"', id="IN-17-name-without-address"),
    ],
)
def test_no_sender_is_quarantined_with_its_reason(ingestor, store, from_header):
    raw = b"To: support@mainland.test\r\nSubject: who am I\r\nMessage-ID: <anon@example.net>\r\n"
    if from_header is not None:
        raw = f"From: {from_header}\r\n".encode() + raw
    raw += b"\r\nNobody sent this.\r\n"
    stored = ingest_raw(ingestor, raw, source_ref="uid 9")
    assert stored.report.quarantined == 1 and stored.report.stored == 0
    [held] = store.quarantined()
    assert held["reason"].startswith("no sender")
    assert store.quarantine_item(held["id"])["raw"] == raw
    assert store.counts()["messages"] == 0


# IN-18, IN-19: odd and deceptive sender addresses ------------------------------------------------


@pytest.mark.parametrize(
    "from_header, handle, valid",
    [
        pytest.param("Power Quadrant <power quadrant system@example.com>", None, False, id="IN-18-spaces-in-local-part"),
        pytest.param("x <lottery>spain@example.com>", None, False, id="IN-18-angle-in-the-middle"),
        # Plain SMTP cannot deliver to a non-ASCII local part: kept, replies disabled.
        pytest.param("René <René@example.com>", "rené@example.com", False, id="IN-18-8bit-local-part"),
        pytest.param("Bücher <user@bücher.example>", "user@bücher.example", True, id="IN-18-idn-domain"),
        pytest.param("Upper <Jane.Doe@EXAMPLE.NET>", "jane.doe@example.net", True, id="IN-18-case-normalised"),
        pytest.param("alice@example.org)<support@mainland.test>", None, False, id="IN-19-paren-then-angle"),
        pytest.param('"support@mainland.test" @evil.example', None, False, id="IN-19-quoted-local-part"),
        pytest.param("support@mainland.test@evil.example", None, False, id="IN-19-two-at-signs"),
        pytest.param("Bob <support@mainland.test>, Eve <eve@evil.example>", None, None, id="IN-19-two-senders"),
    ],
)
def test_odd_sender_addresses_never_crash_or_pass_as_ours(ingestor, store, from_header, handle, valid):
    raw = mime("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit", "hello",
               sender=from_header)
    stored = ingest_raw(ingestor, raw)
    if stored.message is None:  # quarantined as "no sender" is an acceptable outcome, a crash is not
        assert store.quarantined()[0]["reason"].startswith("no sender")
        return
    message = stored.message
    if handle is not None:
        assert message["author_handle"] == handle
    if valid is False:
        assert "invalid_sender" in message["flags"]
        identity = store.execute("SELECT valid FROM identities WHERE value = ?", (message["author_handle"],))
        assert identity.fetchone()[0] == 0  # replies disabled
    elif valid is True:
        assert "invalid_sender" not in message["flags"]
    if from_header.startswith(("alice@", '"support', "support@mainland.test@")):
        # IN-19: a deceptive address is never taken for our own mailbox.
        assert message["author_handle"] != "support@mainland.test"
        assert "loop" not in message["flags"]


# IN-20, IN-21, IN-25: malformed MIME -------------------------------------------------------------

_NESTED_20 = "Content-Type: text/plain\n\ninnermost words\n"
for _level in range(20):
    _NESTED_20 = f"Content-Type: message/rfc822\n\nFrom: a@example.org\nSubject: level {_level}\n{_NESTED_20}"

MALFORMED = [
    pytest.param("Content-Type: multipart/mixed",
                 "--x\nContent-Type: text/plain\n\nno boundary words\n--x--\n", "no boundary words", True,
                 id="IN-20-multipart-without-boundary"),
    pytest.param('Content-Type: multipart/mixed; boundary="b1"',
                 "preamble\n--b1\nContent-Type: text/plain\n\nunclosed words\n", "unclosed words", True,
                 id="IN-20-boundary-never-closed"),
    pytest.param('Content-Type: multipart/mixed; boundary="b1"',
                 "--b1\nContent-Type: text/plain\n\nouter words\n--b1\n" + _NESTED_20 + "--b1--\n", "outer words", False,
                 id="IN-20-rfc822-nested-20-deep"),
    pytest.param('Content-Type: multipart/mixed; boundary="b1"',
                 "--b1\nContent-Type: text/plain\n\nsee file\n--b1\nContent-Type: application/octet-stream; "
                 'name="a.txt"\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a.txt\n#86)C\n`\nend\n--b1--\n',
                 "see file", False, id="IN-20-x-uuencode"),
    pytest.param('Content-Type: multipart/mixed; boundary="b1"',
                 "--b1\nContent-Type: text/plain\n\nbroken attachment\n--b1\nContent-Type: application/pdf; "
                 'name="a.pdf"\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a.pdf\n!!!garbage\n--b1--\n',
                 "broken attachment", True, id="IN-20-x-uuencode-broken"),
    pytest.param("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
                 "SGVsbG8g*d29y!bGQ\n=", "Hello world", True, id="IN-20-base64-bad-chars-and-padding"),
    pytest.param("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
                 "SGVsbG8gd29ybGQ", "Hello world", True, id="IN-20-base64-missing-padding"),
    pytest.param("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable",
                 "soft break at the end=", "soft break at the end", False, id="IN-20-qp-soft-break-at-eof"),
    pytest.param('Content-Type: multipart/mixed; boundary="b1"',
                 "--b1\n\nno content type here\n--b1--\n", "no content type here", False,
                 id="IN-20-part-without-content-type"),
    pytest.param("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: x-unknown-cte",
                 "odd encoding words", "odd encoding words", True, id="IN-20-unknown-transfer-encoding"),
    pytest.param('Content-Type: multipart/alternative; boundary="a"',
                 "--a\nContent-Type: text/html\n\n<p>only <b>html</b></p>\n--a--\n", "only html", False,
                 id="IN-20-alternative-with-html-only"),
    pytest.param("Content-Type: message/rfc822", "not a message at all", None, False,
                 id="IN-20-top-level-rfc822-garbage"),
    pytest.param('Content-Type: multipart/mixed; boundary="' + "b" * 300 + '"',
                 "--" + "b" * 300 + "\nContent-Type: text/plain\n\nlong boundary words\n--" + "b" * 300 + "--\n",
                 None, True, id="IN-20-boundary-over-70-chars"),
    pytest.param("Content-Type: text/plain; charset=utf-8", "", "", False, id="IN-20-empty-body"),
]


@pytest.mark.parametrize("head, body, expected_text, malformed", MALFORMED)
def test_malformed_mime_gives_best_effort_text(ingestor, store, head, body, expected_text, malformed):
    raw = mime(head, body)
    stored = ingest_raw(ingestor, raw)
    assert stored.report.stored == 1
    message = stored.message
    if expected_text is not None:
        assert expected_text in message["text"]
    # Damage the agent should know about is a badge; the original stays downloadable.
    assert ("malformed" in message["flags"]) is malformed
    assert store.raw_message(message["id"]) == raw


def test_IN_20_defects_are_flagged_and_kept(ingestor):
    stored = ingest_raw(ingestor, mime("Content-Type: multipart/mixed", "--x\n\nwords\n"))
    assert "malformed" in stored.flags
    assert "NoBoundaryInMultipartDefect" in stored.message["defects"]


def test_IN_20_nested_messages_are_kept_as_attachments(ingestor, store):
    stored = ingest_raw(ingestor, mime('Content-Type: multipart/mixed; boundary="b1"',
                                       "--b1\nContent-Type: text/plain\n\nouter\n--b1\n" + _NESTED_20 + "--b1--\n"))
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["content_type"] == "message/rfc822"
    assert attachment["filename"].endswith(".eml")
    assert b"innermost words" in ingestor.attachments.read(attachment["sha256"])


@pytest.mark.parametrize(
    "raw, expected_text",
    [
        pytest.param(b"From: a@example.org\nSubject: bare lf\nMessage-ID: <lf@x>\n\nline one\nline two\n",
                     "line one\nline two", id="IN-21-bare-lf"),
        pytest.param(b"From: a@example.org\r\nSubject: mixed\nMessage-ID: <mx@x>\r\n\nline one\r\nline two\n",
                     "line one", id="IN-21-mixed-crlf-lf"),
        pytest.param(b"From: a@example.org\r\nSubject: nul\r\nMessage-ID: <nul@x>\r\n\r\nbefore\x00after\r\n",
                     "before", id="IN-21-nul-in-body"),
        pytest.param("From: René Müller <rene@example.de>\r\nSubject: Grüße aus Köln\r\nMessage-ID: <8b@x>\r\n\r\n"
                     "Grüße\r\n".encode(), "Grüße", id="IN-21-8bit-utf8-headers"),
        pytest.param("From: René <rene@example.de>\r\nSubject: Grüße\r\nMessage-ID: <8l@x>\r\n\r\nhallo\r\n"
                     .encode("latin-1"), "hallo", id="IN-21-8bit-latin1-headers"),
        pytest.param(b"From: a@example.org\rSubject: cr only\rMessage-ID: <cr@x>\r\rold mac\r", None,
                     id="IN-21-bare-cr"),
        pytest.param(b"\xef\xbb\xbfFrom: a@example.org\r\nSubject: bom\r\n\r\nbom words\r\n", None,
                     id="IN-21-utf8-bom-before-headers"),
        pytest.param(b"From a@example.org Thu Mar  5 10:15:02 2026\nFrom: a@example.org\nSubject: mbox\n\nmbox words\n",
                     "mbox words", id="IN-21-mbox-from-line"),
    ],
)
def test_line_ending_and_byte_oddities_are_parsed(ingestor, store, raw, expected_text):
    stored = ingest_raw(ingestor, raw)
    assert stored.report.stored + stored.report.quarantined == 1
    if expected_text is not None:
        assert expected_text in stored.message["text"]
    if stored.message:
        assert "\x00" not in stored.message["text"]
        # The raw original is kept; only an mbox "From " envelope line is not part of the message.
        kept = raw.split(b"\n", 1)[1] if raw.startswith(b"From ") else raw
        assert store.raw_message(stored.message["id"]) == kept


def test_IN_21_8bit_header_text_is_readable(ingestor):
    stored = ingest_raw(ingestor, "From: René Müller <rene@example.de>\r\nSubject: Grüße aus Köln\r\n"
                                  "Message-ID: <8b2@x>\r\n\r\nhallo\r\n".encode())
    assert stored.message["subject"] == "Grüße aus Köln"
    assert stored.message["author_name"] == "René Müller"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "shape",
    [pytest.param("wide", id="IN-25-10000-parts"), pytest.param("deep", id="IN-25-depth-200")],
)
def test_part_count_and_depth_are_capped(ingestor, store, shape):
    if shape == "wide":
        parts = "".join(f"--w\nContent-Type: text/plain\n\npart {i}\n" for i in range(10_000))
        raw = mime('Content-Type: multipart/mixed; boundary="w"', "--w\nContent-Type: text/plain\n\nfirst words\n"
                   + parts + "--w--\n")
    else:
        body = "deepest words\n"
        for level in reversed(range(200)):
            body = (f'Content-Type: multipart/mixed; boundary="d{level}"\n\n--d{level}\n{body}--d{level}--\n')
        raw = mime("Content-Type: text/plain", "").split(b"Content-Type: text/plain")[0] + body.replace(
            "\n", "\r\n").encode()
    stored = ingest_raw(ingestor, raw)
    assert stored.report.stored == 1
    assert "truncated" in stored.flags
    assert store.raw_message(stored.message["id"]) == raw
    if shape == "wide":
        assert "first words" in stored.message["text"]
        assert len(attachment_rows(store, stored.message["id"])) <= 500


# IN-22: many recipients ----------------------------------------------------------------------------


def test_IN_22_twenty_thousand_recipients_create_no_contacts(ingestor, store):
    recipients = ", ".join(f"User {i} <user{i}@example.org>" for i in range(20_000))
    stored = ingest_raw(ingestor, raw_mail(to=recipients, extra_headers=f"Cc: {recipients}"))
    assert store.counts()["customers"] == 1  # the sender; recipients are never made contacts (cap: 40)
    assert len(stored.message["headers"]["to"]) <= 2000  # display truncated


# IN-23: oversized messages become stubs, never silently dropped -----------------------------------


def test_IN_23_oversized_message_is_stored_as_a_stub(ingestor, store):
    big = base64.encodebytes(b"\0" * (3 * 1024 * 1024)).decode()
    raw = mime('Content-Type: multipart/mixed; boundary="o"',
               "--o\nContent-Type: text/plain\n\nsee attachment\n--o\nContent-Type: application/zip; name=big.zip\n"
               "Content-Transfer-Encoding: base64\n\n" + big + "--o--\n")
    stored = ingest_raw(ingestor, raw, max_bytes=1024 * 1024)
    message = stored.message
    assert "oversized" in message["flags"]
    assert message["subject"] == "Test" and message["author_handle"] == "jane@example.net"
    assert f"{len(raw):,} bytes" in message["text"]
    assert message["size"] == len(raw)


def test_IN_23_oversized_message_keeps_its_text_and_drops_only_the_big_part(ingestor, store):
    big = base64.encodebytes(b"\0" * (3 * 1024 * 1024)).decode()
    raw = mime('Content-Type: multipart/mixed; boundary="o"',
               "--o\nContent-Type: text/plain\n\nThe photos of the broken lamp are attached.\n"
               "--o\nContent-Type: image/png; name=small.png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
               "--o\nContent-Type: application/zip; name=big.zip\n"
               "Content-Transfer-Encoding: base64\n\n" + big + "--o--\n")
    stored = ingest_raw(ingestor, raw, max_bytes=1024 * 1024)
    message = stored.message
    assert message["text"].startswith("The photos of the broken lamp are attached.")
    assert "not stored" in message["text"] and f"{len(raw):,} bytes" in message["text"]
    assert {"oversized", "truncated"} <= message["flags"] and "malformed" not in message["flags"]
    files = {a["filename"]: a["stored"] for a in attachment_rows(store, message["id"])}
    assert files == {"small.png": 1, "big.zip": 0}


def test_IN_23_header_only_stub_from_imap_size(ingestor, store):
    header = b"From: Jane <jane@example.net>\r\nSubject: Huge video\r\nMessage-ID: <huge@example.net>\r\n"
    item = parse_email_headers(header, 50 * 1024 * 1024, channel="mail", source_ref="uid 5")
    report = ingestor.ingest_one("mail", item)
    message = message_row(store, report.message_ids[0])
    assert "oversized" in message["flags"]
    assert message["size"] == 50 * 1024 * 1024
    assert message["subject"] == "Huge video"


# IN-37: dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "date",
    [
        pytest.param("Mon, 05 Mar 2099 10:00:00 +0000", id="IN-37-year-2099"),
        pytest.param("Thu, 01 Jan 1970 00:00:00 +0000", id="IN-37-year-1970"),
        pytest.param("the day after tomorrow", id="IN-37-unparsable"),
        pytest.param("Thu, 05 Mar 2026 99:99:99 +9999", id="IN-37-out-of-range-fields"),
        pytest.param("Thu, 31 Feb 2026 10:00:00 +0000", id="IN-37-impossible-day"),
        pytest.param(None, id="IN-37-missing"),
    ],
)
def test_bad_dates_are_flagged_and_ordered_by_arrival(ingestor, store, date):
    first = ingest_raw(ingestor, raw_mail(message_id="<first@example.net>"))
    raw = raw_mail(message_id="<second@example.net>", in_reply_to="<first@example.net>", date=date or "")
    if date is None:
        raw = raw.replace(b"Date: \r\n", b"")
    second = ingest_raw(ingestor, raw)
    assert "bad_date" in second.flags
    assert "bad_date" not in first.flags
    if date is not None:
        assert second.message["headers"]["date"] == date  # the header is kept as it came
    messages = store.conversation_messages(first.message["conversation_id"])
    assert [m["id"] for m in messages] == [first.message["id"], second.message["id"]]


# IN-38: empty subject -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject_line",
    [pytest.param("Subject: ", id="IN-38-empty-subject"), pytest.param(None, id="IN-38-missing-subject"),
     pytest.param("Subject:    \t ", id="IN-38-blank-subject")],
)
def test_empty_subject_falls_back_to_first_line_and_no_subject_reply(ingestor, store, subject_line):
    raw = raw_mail(subject="SUBJECT-PLACEHOLDER", body="\r\n\r\n  My parcel never came.\r\nSecond line.")
    raw = raw.replace(b"Subject: SUBJECT-PLACEHOLDER\r\n", (subject_line + "\r\n").encode() if subject_line else b"")
    stored = ingest_raw(ingestor, raw)
    conversation = store.conversation(stored.message["conversation_id"])
    assert conversation["subject"] == "My parcel never came."
    reply = OutboundReply(idempotency_key="k", channel="mail", conversation_id=conversation["id"], text="On its way",
                          to=Author(stored.message["author_handle"]), subject=stored.item.subject)
    msg = build_reply(reply, from_address="support@mainland.test", from_name="Support", instance_id="i",
                      domain="mainland.test")
    assert msg["Subject"] == "Re: (no subject)"


# IN-39: 20 MB text body ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_IN_39_huge_text_body_is_truncated_and_the_raw_kept(ingestor, store):
    line = "The quick brown fox jumps over the lazy dog again and again.\r\n"
    raw = raw_mail(body="Start of a very long message\r\n" + line * (20 * 1024 * 1024 // len(line)))
    assert len(raw) > 20 * 1024 * 1024
    stored = ingest_raw(ingestor, raw)
    message = stored.message
    assert "truncated" in message["flags"]
    assert message["text"].startswith("Start of a very long message")
    assert len(message["text"]) <= 200_000  # what is shown and indexed for search is capped
    assert store.raw_message(message["id"]) == raw


# IN-68, IN-69: our own outgoing bytes, parsed back --------------------------------------------------


@pytest.mark.parametrize(
    "subject, name, handle",
    [
        pytest.param("=?UTF-8?Q?Hi=0ABcc:_attacker@evil.example?=", "Jane", "jane@example.net",
                     id="IN-68-newline-in-encoded-subject"),
        pytest.param("Hi\r\nBcc: attacker@evil.example", "Jane", "jane@example.net", id="IN-68-raw-crlf-in-subject"),
        pytest.param("Hi\nCc: attacker@evil.example\n\nbody", "Jane", "jane@example.net", id="IN-68-lf-in-subject"),
        pytest.param("Order", "Evil\r\nBcc: x@y.example", "jane@example.net", id="IN-69-crlf-in-display-name"),
        pytest.param("Order", 'a"b', "c@d.example", id="IN-69-quote-in-display-name"),
        pytest.param("Order", "Eve =?UTF-8?Q?=0ABcc:_x@y.example?=", "jane@example.net",
                     id="IN-69-encoded-word-in-display-name"),
    ],
)
def test_reply_headers_cannot_be_injected(subject, name, handle):
    inbound = parse_email(mime("Content-Type: text/plain", "hi").replace(b"Subject: Test", b"Subject: " + subject.encode()),
                          channel="mail")
    reply = OutboundReply(idempotency_key="k", channel="mail", conversation_id=1, text="Hello",
                          to=Author(handle, name=name), subject=inbound.subject)
    msg = build_reply(reply, from_address="support@mainland.test", from_name="Support\r\nBcc: z@z.example",
                      instance_id="i", domain="mainland.test")
    data = msg.as_bytes()
    back = message_from_bytes(data, policy=default_policy)
    for header in ("Subject", "From", "To", "Message-ID"):
        assert len(back.get_all(header) or []) == 1, header
    assert back.get_all("Bcc") is None and back.get_all("Cc") is None
    assert [a.addr_spec for a in back["To"].addresses] == [handle]
    assert [a.addr_spec for a in back["From"].addresses] == ["support@mainland.test"]
    assert not back.is_multipart()
    assert back.get_content().strip() == "Hello"


@pytest.mark.parametrize(
    "handle",
    [
        pytest.param("x@y.example,bcc@evil.example", id="IN-69-comma-in-address"),
        pytest.param("x@y.example\r\nBcc: z@z.example", id="IN-69-crlf-in-address"),
        pytest.param("power quadrant system@example.com", id="IN-69-spaces-in-address"),
        pytest.param("=?UTF-8?Q?x=0ABcc:_z@z.example?=@y.example", id="IN-69-encoded-word-as-address"),
    ],
)
def test_reply_to_an_unusable_address_is_refused_not_mangled(handle):
    reply = OutboundReply(idempotency_key="k", channel="mail", conversation_id=1, text="Hello",
                          to=Author(handle, name="X"), subject="Order")
    try:
        msg = build_reply(reply, from_address="support@mainland.test", from_name="Support", instance_id="i",
                          domain="mainland.test")
    except ValueError:
        return
    back = message_from_bytes(msg.as_bytes(), policy=default_policy)
    assert len(back["To"].addresses) == 1
    assert back.get_all("Bcc") is None and back.get_all("Cc") is None


def test_IN_68_last_wall_refuses_an_injected_line(monkeypatch):
    # Even if a hostile subject got past the cleaning, the generated header block is checked.
    import inbox.mail

    monkeypatch.setattr(inbox.mail, "_inert_header_text", lambda value: value or "")
    reply = OutboundReply(idempotency_key="k", channel="mail", conversation_id=1, text="Hello",
                          to=Author("jane@example.net"), subject="=?UTF-8?Q?Hi=0ABcc:_attacker@evil.example?=")
    with pytest.raises(ValueError, match="inject"):
        build_reply(reply, from_address="support@mainland.test", from_name="Support", instance_id="i",
                    domain="mainland.test")
