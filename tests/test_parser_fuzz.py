"""Property-based fuzzing of the email entry point (reliability.md 2.5, SEC-15).

For any bytes, and for generated mails with random headers, encodings, boundaries and nesting,
`parse_email` returns an item or raises `ItemError` (the quarantine path), nothing else; and
ingesting the result (item or quarantine reject) into the real SQLite store never raises, stores
only inert HTML and writes files only under the attachment root. Bounded: 200 examples each, a
two-second deadline per example, no example database written into the repository.
"""

from __future__ import annotations

import base64
import quopri
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.base import ItemError
from inbox.mail import UNREADABLE_PART, parse_email, parse_email_headers
from inbox.models import FetchResult, Reject
from tests.inbound import assert_inert_html, message_row

FUZZ = settings(
    max_examples=200,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_pipeline(ingestor, store, raw: bytes) -> None:
    """The property: parse or ItemError; ingest never raises; what is stored is inert and contained."""
    try:
        item = parse_email(raw, channel="fuzz", max_attachment_bytes=1_000_000)
    except ItemError as exc:
        result = FetchResult(items=[], cursor=None, rejects=[Reject(raw=raw, reason=str(exc))])
        report = ingestor.ingest("fuzz", result, save_cursor=False)
        assert report.quarantined == 1
        return
    assert item.author.handle
    assert UNREADABLE_PART not in item.defects  # the safety net caught an exception: a parser bug
    report = ingestor.ingest("fuzz", FetchResult(items=[item], cursor=None), save_cursor=False)
    # The store is shared by all examples: a later example may reuse an earlier one's Message-ID,
    # sender, date and subject with another body, which is held as "same Message-ID, different content".
    assert report.stored + report.duplicates + report.quarantined == 1
    if report.quarantined:
        assert any(r["reason"].startswith("same Message-ID, different content") for r in store.quarantined())
    for message_id in report.message_ids:
        message = message_row(store, message_id)
        assert_inert_html(message["html"])
        assert "\x00" not in message["text"]
    root = Path(ingestor.attachments.root).resolve()
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root)


@pytest.mark.timeout(300)
@FUZZ
@given(raw=st.binary(max_size=64 * 1024))
def test_any_bytes_parse_or_quarantine(ingestor, store, raw):
    check_pipeline(ingestor, store, raw)


@pytest.mark.timeout(300)
@FUZZ
@given(body=st.binary(max_size=8 * 1024), sender=st.binary(max_size=200))
def test_any_bytes_after_plausible_headers(ingestor, store, body, sender):
    raw = b"From: " + sender + b"\r\nSubject: fuzz\r\nMessage-ID: <f@x>\r\n" + body
    check_pipeline(ingestor, store, raw)


# Structured-ish mail ------------------------------------------------------------------------------------

_SPECIALS = '<>()[]@,;:\\".=?_-/ \t'
header_text = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8", exclude_categories=("Cs",)), st.sampled_from(_SPECIALS)),
    max_size=120,
)
charsets = st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "iso-2022-jp", "gb18030", "shift_jis", "euc-kr",
                            "utf-7", "utf-16", "x-unknown", "", '"utf-8', "koi8-r", "us-ascii", "utf\x008",
                            "gb23\u00fb2", "utf-8''en"])


@st.composite
def encoded_words(draw) -> str:
    text = draw(header_text)
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", "UTF-8", "iso-2022-jp", "utf-7",
                                    "gb23\u00fb2", "utf-8*en"]))
    try:
        data = text.encode(charset)
    except (LookupError, UnicodeError, ValueError):
        data = text.encode("utf-8")
    if draw(st.booleans()):
        encoded = base64.b64encode(data).decode()
        if draw(st.booleans()):  # broken padding or a stray character
            encoded = encoded.rstrip("=") + draw(st.sampled_from(["", "!", "=", "*"]))
        return f"=?{charset}?B?{encoded}?="
    return f"=?{charset}?Q?{quopri.encodestring(data, header=True).decode()}?="


header_value = st.one_of(header_text, encoded_words(),
                         st.lists(st.one_of(header_text, encoded_words()), max_size=4).map(" ".join))
addresses = st.one_of(
    st.emails().map(str),
    st.tuples(header_value, st.emails()).map(lambda p: f'"{p[0]}" <{p[1]}>'),
    st.tuples(header_value, st.emails()).map(lambda p: f"{p[0]} <{p[1]}>"),
    header_value,
)
header_names = st.sampled_from([
    "Subject", "To", "Cc", "Reply-To", "Date", "Message-ID", "In-Reply-To", "References", "Auto-Submitted",
    "Precedence", "List-Id", "Return-Path", "X-Mainland-Loop", "Content-Disposition", "Authentication-Results",
    "Sender", "X-Custom",
])
ctes = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus", ""])
leaf_types = st.sampled_from(["text/plain", "text/html", "application/octet-stream", "image/png", "message/rfc822",
                              "message/delivery-status", "text/rfc822-headers", "text/calendar", "", "bogus"])
boundaries = st.text(alphabet="abcXYZ019'()+_,-./:=? ", min_size=0, max_size=80)
html_snippets = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '<a href="javascript:alert(1)">x</a>',
    "<svg><animate onbegin=alert(1)>", "<p style=\"background:url(http://x)\">x</p>", "<b>bold</b>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", '<img src="cid:a@b">', "<div>" * 50,
])


def encode_body(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return quopri.encodestring(data)
    return data


@st.composite
def leaf(draw) -> bytes:
    ctype = draw(leaf_types)
    charset = draw(charsets)
    cte = draw(ctes)
    if ctype == "text/html":
        text = "".join(draw(st.lists(st.one_of(html_snippets, header_text), max_size=6)))
    else:
        text = draw(st.text(max_size=300))
    try:
        data = text.encode(charset or "utf-8")
    except (LookupError, UnicodeError, ValueError):
        data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data += draw(st.binary(max_size=64))
    head = f"Content-Type: {ctype}; charset={charset}" if ctype else "X-No-Type: 1"
    extra = draw(st.lists(st.tuples(st.sampled_from(["Content-Disposition", "Content-ID", "Content-Type"]),
                                    header_value), max_size=2))
    lines = [head, f"Content-Transfer-Encoding: {cte}"] + [f"{k}: {v}" for k, v in extra]
    return "\r\n".join(lines).encode("utf-8", "surrogatepass") + b"\r\n\r\n" + encode_body(data, cte)


def multipart(children):
    @st.composite
    def build(draw) -> bytes:
        boundary = draw(boundaries)
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report; report-type=delivery-status",
                                        "digest", "signed"]))
        parts = draw(st.lists(children, max_size=5))
        close = draw(st.booleans())
        sep = draw(st.sampled_from([b"\r\n", b"\n"]))
        b = boundary.encode()
        body = b"".join(b"--" + b + sep + p + sep for p in parts) + (b"--" + b + b"--" + sep if close else b"")
        quoted = draw(st.booleans())
        param = f'boundary="{boundary}"' if quoted else f"boundary={boundary}"
        return f"Content-Type: multipart/{subtype}; {param}".encode() + sep + sep + body
    return build()


mime_tree = st.recursive(leaf(), multipart, max_leaves=12)


@st.composite
def generated_mail(draw) -> bytes:
    headers = []
    if draw(st.integers(0, 9)):
        headers.append(f"From: {draw(addresses)}")
    headers += [f"{name}: {value}" for name, value in draw(st.lists(st.tuples(header_names, header_value),
                                                                    max_size=8))]
    head = "\r\n".join(headers).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        head += b"\r\nMIME-Version: 1.0"
    sep = draw(st.sampled_from([b"\r\n", b"\n"]))
    return head.replace(b"\r\n", sep) + sep + draw(mime_tree)


@pytest.mark.timeout(300)
@FUZZ
@given(raw=generated_mail())
# Found by fuzzing, each once an exception out of parse_email or ingest:
# a surrogate-escaped address (SQLite refused the string and the whole batch failed) ...
@example(raw=b"From: =?x-unknown?Q?=C2=80@?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
# ... a lone surrogate from UTF-7, broken base64 in one encoded-word, a non-ASCII charset name ...
@example(raw=b"From: a@b.example\r\nSubject: =?utf-7?q?+2D0-?=\r\nContent-Type: text/plain; charset=utf-7\r\n\r\n+2D0-")
@example(raw=b"From: a@b.example\r\nSubject: =?utf-8?B?QUJD?= =?utf-8?B?QUJ?=\r\n\r\nx")
@example(raw="From: a@b.example\r\nSubject: =?gb23\u00fb2?B?QUJD?=\r\n\r\nx".encode())
# ... and a NUL inside a charset name, also with an 8-bit body, and an RFC 2231 charset.
@example(raw=b"From: a@b.example\r\nContent-Type: text/plain; charset=\"utf\x008\"\r\n\r\nx")
@example(raw=b"From: 0@A.AO\r\nContent-Type: text/plain; charset=utf\x008\r\nContent-Transfer-Encoding: 7bit"
             b"\r\n\r\n\xc2\x80")
@example(raw=b"From: 0@A.AO\r\nContent-Type: message/delivery-status; charset*=utf-8''x\r\n\r\n\xc2\x80")
def test_generated_mail_parses_or_quarantines(ingestor, store, raw):
    check_pipeline(ingestor, store, raw)


# Mutations of our own fixtures ------------------------------------------------------------------------

FIXTURES = [p.read_bytes() for p in sorted((Path(__file__).parent / "fixtures" / "mail").glob("*.eml"))]
_TOKENS = [b"\r\n", b"\n", b"--", b"=?utf-8?q?", b"?=", b"<", b">", b'"', b"(", b"\x00", b"\xff", b"=\n", b";",
           b"Content-Type: multipart/mixed; boundary=x\n\n--x\n", b"Content-Transfer-Encoding: base64\n",
           b"charset=utf-7", b"+2D0-", b"*0*=", b"'", b"From: ", b"\n\n"]
mutation = st.tuples(st.floats(0, 1), st.sampled_from(["flip", "insert", "delete", "cut", "repeat"]),
                     st.sampled_from(_TOKENS), st.integers(1, 300))


def mutate(data: bytes, mutations: list) -> bytes:
    out = bytearray(data)
    for where, op, token, n in mutations:
        pos = int(where * len(out))
        if op == "flip" and pos < len(out):
            out[pos] ^= n & 0xFF
        elif op == "insert":
            out[pos:pos] = token
        elif op == "delete":
            del out[pos : pos + n]
        elif op == "cut":
            del out[pos:]
        else:
            out[pos:pos] = bytes(out[pos : pos + 40]) * min(n, 50)
    return bytes(out)


@pytest.mark.timeout(300)
@FUZZ
@given(fixture=st.sampled_from(FIXTURES), mutations=st.lists(mutation, min_size=1, max_size=8))
def test_mutated_fixtures_parse_or_quarantine(ingestor, store, fixture, mutations):
    check_pipeline(ingestor, store, mutate(fixture, mutations))


@pytest.mark.timeout(300)
@FUZZ
@given(raw=st.one_of(generated_mail(), st.binary(max_size=16 * 1024)), size=st.integers(0, 2**40))
def test_oversized_stubs_parse_or_quarantine(ingestor, store, raw, size):
    # The IN-23 paths: a stub from headers alone (IMAP RFC822.SIZE), and a message over max_bytes.
    for parse in (lambda: parse_email_headers(raw, size, channel="fuzz"),
                  lambda: parse_email(raw, channel="fuzz", max_bytes=len(raw) // 2)):
        try:
            item = parse()
        except ItemError:
            continue
        assert "oversized" in item.flags
        ingestor.ingest("fuzz", FetchResult(items=[item], cursor=None), save_cursor=False)
