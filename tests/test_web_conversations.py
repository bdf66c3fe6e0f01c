"""The inbox pages: list and conversation behind sign-in, hostile mail shown only escaped or sandboxed.

Covers SEC-01/02/03/19 and IN-07/IN-09: inbound text is escaped everywhere it shows (list, page,
<title>), inbound HTML only reaches the browser through the sandboxed body route, and downloads
can never run as a page or script of this site.
"""

from __future__ import annotations

from email.message import EmailMessage
from html.parser import HTMLParser

import pytest

from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.mailfactory import raw_mail
from tests.test_web_auth import login, make_agent, web_store  # noqa: F401  (web_store is a fixture)

SCRIPT_SUBJECT = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(1)>"
SVG_FILENAME = '"><svg onload=alert(1)>.pdf'


class _Collector(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        if self.lasttag == "script" and data.strip():
            self.script_text.append(data)


def assert_nothing_executable(html: str) -> list[tuple[str, dict]]:
    """The oracle of SEC-01: no script, no event handler, no javascript: URL, frames only sandboxed."""
    parser = _Collector()
    parser.feed(html)
    # The page's own scripts are files from /static/ (the CSP allows 'self' only); no inline code.
    assert not parser.script_text, f"inline script in the page: {parser.script_text[:1]}"
    for tag, attrs in parser.tags:
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), f"script not from /static/: {attrs}"
            continue
        assert tag not in ("object", "embed", "svg", "math", "base"), f"<{tag}> in the page"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}=...> in the page"
            assert not (value or "").strip().lower().startswith("javascript:"), f"javascript: URL in <{tag}>"
        if tag == "img":
            assert attrs.get("src", "").startswith(("/static/", "data:")), f"foreign image {attrs}"
        if tag == "iframe":
            assert attrs.get("sandbox") == "", "every frame is fully sandboxed"
            assert attrs.get("src", "").startswith("/messages/"), attrs
    return parser.tags


@pytest.fixture
def agent_client(client, web_store):  # noqa: F811
    make_agent(web_store)
    assert login(client).status_code == 302
    return client


@pytest.fixture
def ingest(app, web_store):  # noqa: F811
    ingestor = app.extensions["mainland"].ingestor(web_store)
    cursor = iter(range(1, 10_000))

    def ingest(*raws: bytes):
        items = [parse_email(raw, channel="mail") for raw in raws]
        return ingestor.ingest("mail", FetchResult(items=items, cursor=f"c{next(cursor)}"))

    return ingest


def hostile_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = f'"{IMG_NAME}" <mallory@evil.example>'
    msg["To"] = "support@mainland.test"
    msg["Subject"] = SCRIPT_SUBJECT
    msg["Message-ID"] = "<hostile-1@evil.example>"
    msg["Date"] = "Thu, 05 Mar 2026 10:15:02 +0000"
    msg.set_content("plain <b>text</b> version")
    msg.add_alternative('<p>Hello <img src=x onerror="alert(1)"> <a href="javascript:alert(2)">click</a>'
                        '<img src="https://tracker.example/p.gif"></p><script>alert(3)</script>', subtype="html")
    msg.add_attachment(b"%PDF-1.4 a real enough pdf", maintype="application", subtype="pdf", filename=SVG_FILENAME)
    # IN-09: a "PNG" that is really a GIF/HTML polyglot.
    msg.add_attachment(b"GIF89a<html><script>alert(1)</script></html>", maintype="image", subtype="png",
                       filename="photo.png")
    # SEC-19: a script file must never be served as a script.
    msg.add_attachment(b"alert(document.cookie)", maintype="application", subtype="javascript", filename="x.js")
    msg.add_attachment(b"<html><script>alert(1)</script></html>", maintype="text", subtype="html",
                       filename="invoice.html")
    msg.add_attachment(b"gewoon tekst\n", maintype="text", subtype="plain", filename="notes.txt")
    return msg.as_bytes()


def only_conversation(web_store):  # noqa: F811
    [conversation] = web_store.recent_conversations()
    return conversation


def attachments_by_name(web_store, conversation_id):  # noqa: F811
    [message] = web_store.conversation_messages(conversation_id)
    return message, {a["filename"]: a for a in message["attachments"]}


# Behind sign-in ------------------------------------------------------------------------------

def test_every_inbox_page_needs_sign_in(client, web_store, ingest):  # noqa: F811
    ingest(hostile_mail())
    conversation = only_conversation(web_store)
    message, attachments = attachments_by_name(web_store, conversation["id"])
    urls = ["/", f"/conversations/{conversation['id']}", f"/messages/{message['id']}/body",
            f"/messages/{message['id']}/raw", f"/attachments/{attachments['notes.txt']['id']}"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login"), url
        body = response.get_data()
        assert b"mallory" not in body and b"alert" not in body and b"gewoon" not in body, url


@pytest.mark.parametrize("url", ["/conversations/999", "/messages/999/body", "/messages/999/raw",
                                 "/attachments/999"])
def test_unknown_ids_are_404(agent_client, url):
    response = agent_client.get(url)
    assert response.status_code == 404
    assert "This page does not exist" in response.get_data(as_text=True)


# The list ------------------------------------------------------------------------------------

def test_list_shows_customer_address_subject_status_and_flags(agent_client, ingest):
    ingest(raw_mail(sender="Jane Doe <jane@example.net>", subject="Order 1234 arrived broken"))
    ingest(raw_mail(sender="Out Of Office <ooo@example.com>", subject="Away until Monday",
                    extra_headers="Auto-Submitted: auto-replied"))
    page = agent_client.get("/").get_data(as_text=True)
    assert "Jane Doe" in page and "jane@example.net" in page
    assert "Order 1234 arrived broken" in page
    assert "New" in page
    assert "auto-reply" in page
    assert page.index("Away until Monday") < page.index("Order 1234")  # newest activity first


def test_list_shows_the_first_line_when_there_is_no_subject(agent_client, ingest):
    ingest(raw_mail(subject="", body="\n\nMy parcel never came.\nSecond line"))
    page = agent_client.get("/").get_data(as_text=True)
    assert "My parcel never came." in page and "Second line" not in page


def test_list_marks_a_possible_misthread(agent_client, ingest):
    ingest(raw_mail(sender="alice@example.org", message_id="<a1@example.org>"))
    ingest(raw_mail(sender="mallory@evil.example", in_reply_to="<a1@example.org>"))
    assert "possible misthread" in agent_client.get("/").get_data(as_text=True)


def test_list_pages_by_activity_without_gaps_or_repeats(agent_client, ingest, web_store):  # noqa: F811
    ingest(*[raw_mail(sender=f"customer{n}@example.net", subject=f"Question number {n:03d}") for n in range(55)])
    # An old conversation with a new message moves to the top.
    [oldest] = [c for c in web_store.recent_conversations(limit=100) if c["subject"] == "Question number 000"]
    first_mid = web_store.conversation_messages(oldest["id"])[0]["message_id"]
    ingest(raw_mail(sender="customer0@example.net", subject="Re: Question number 000", in_reply_to=f"<{first_mid}>"))

    first = agent_client.get("/").get_data(as_text=True)
    assert "Re: Question number" not in first, "the reply joined its conversation"
    assert first.count("Question number") == 50
    assert first.index("Question number 000") < first.index("Question number 054")
    older = [line for line in first.splitlines() if "after=" in line]
    assert older, "a link to the older conversations"
    href = older[0].split('href="')[1].split('"')[0].replace("&amp;", "&")
    second = agent_client.get(href).get_data(as_text=True)
    assert second.count("Question number") == 5
    seen = {f"{n:03d}" for n in range(55) if f"Question number {n:03d}" in first + second}
    assert len(seen) == 55
    assert not any(f"Question number {n:03d}<" in first and f"Question number {n:03d}<" in second for n in range(55))
    assert "after=" not in second


@pytest.mark.parametrize("before", ["abc", "-1", "' OR 1=1--", "99999999999999999999999"])
def test_list_survives_odd_page_markers(agent_client, ingest, before):
    ingest(raw_mail())
    assert agent_client.get("/", query_string={"before": before}).status_code == 200


# Hostile content -----------------------------------------------------------------------------

def test_list_shows_hostile_subject_and_name_only_escaped(agent_client, ingest):
    ingest(hostile_mail())
    page = agent_client.get("/").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert SCRIPT_SUBJECT not in page and IMG_NAME not in page
    assert_nothing_executable(page)


def test_encoded_word_subject_is_decoded_then_escaped(agent_client, ingest):
    ingest(raw_mail(subject="=?UTF-8?B?PHNjcmlwdD5hbGVydCgyKTwvc2NyaXB0Pg==?=",
                    sender="=?UTF-8?Q?=3Cimg_src=3Dx_onerror=3Dalert(2)=3E?= <q@example.net>"))
    page = agent_client.get("/").get_data(as_text=True)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<script>alert(2)" not in page and "<img src=x onerror=alert(2)>" not in page
    assert_nothing_executable(page)


def test_conversation_page_escapes_everything_and_frames_the_html(agent_client, ingest, web_store):  # noqa: F811
    ingest(hostile_mail())
    conversation = only_conversation(web_store)
    page = agent_client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    title = page.split("<title>")[1].split("</title>")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in title
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "mallory@evil.example" in page  # the real address beside the display name
    assert "plain &lt;b&gt;text&lt;/b&gt; version" in page
    assert "&#34;&gt;&lt;svg onload=alert(1)&gt;.pdf" in page
    assert "tracker.example" not in page and "javascript:alert(2)" not in page
    tags = assert_nothing_executable(page)
    frames = [attrs for tag, attrs in tags if tag == "iframe"]
    assert len(frames) == 1 and frames[0]["src"].endswith("/body")


def test_html_body_is_served_alone_under_a_sandbox_policy(agent_client, ingest, web_store):  # noqa: F811
    ingest(hostile_mail())
    message, _ = attachments_by_name(web_store, only_conversation(web_store)["id"])
    response = agent_client.get(f"/messages/{message['id']}/body")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == (
        "sandbox; default-src 'none'; img-src cid: data:; style-src 'unsafe-inline'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "private" in response.headers["Cache-Control"]
    body = response.get_data(as_text=True)
    assert "Hello" in body
    assert "onerror" not in body and "<script" not in body and "tracker.example" not in body
    assert "javascript:" not in body


def test_text_only_message_has_no_body_route(agent_client, ingest, web_store):  # noqa: F811
    ingest(raw_mail(body="<b>not bold</b>"))
    conversation = only_conversation(web_store)
    [message] = web_store.conversation_messages(conversation["id"])
    page = agent_client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "<iframe" not in page
    assert agent_client.get(f"/messages/{message['id']}/body").status_code == 404


def test_customer_identities_are_beside_the_conversation(agent_client, ingest, web_store):  # noqa: F811
    ingest(raw_mail(sender="Jane Doe <Jane@Example.NET>"))
    conversation = only_conversation(web_store)
    page = agent_client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    aside = page.split('<aside class="customer-card">')[1]
    assert "Jane Doe" in aside and "jane@example.net" in aside


# Downloads -----------------------------------------------------------------------------------

def test_attachment_download_headers(agent_client, ingest, web_store):  # noqa: F811
    ingest(hostile_mail())
    _, attachments = attachments_by_name(web_store, only_conversation(web_store)["id"])
    response = agent_client.get(f"/attachments/{attachments[SVG_FILENAME]['id']}")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''%22%3E%3Csvg%20onload%3Dalert%281%29%3E.pdf" in disposition
    assert "<svg" not in disposition and '"">' not in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.mimetype == "application/pdf"
    assert response.get_data() == b"%PDF-1.4 a real enough pdf"


@pytest.mark.parametrize("filename, served_as", [
    ("photo.png", "application/octet-stream"),  # IN-09 polyglot: bytes are not a PNG
    ("x.js", "application/octet-stream"),  # SEC-19
    ("invoice.html", "application/octet-stream"),
    ("notes.txt", "text/plain"),
])
def test_attachment_types_come_from_an_allow_list(agent_client, ingest, web_store, filename, served_as):  # noqa: F811
    ingest(hostile_mail())
    _, attachments = attachments_by_name(web_store, only_conversation(web_store)["id"])
    response = agent_client.get(f"/attachments/{attachments[filename]['id']}")
    assert response.status_code == 200
    assert response.mimetype == served_as
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{filename}" in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"


def test_non_ascii_filename_is_kept_exactly(agent_client, ingest, web_store):  # noqa: F811
    msg = EmailMessage()
    msg["From"] = "jan@example.nl"
    msg["To"] = "support@mainland.test"
    msg["Subject"] = "Factuur"
    msg.set_content("Zie bijlage.")
    msg.add_attachment(b"%PDF-1.4 x", maintype="application", subtype="pdf", filename="factuur één.pdf")
    ingest(msg.as_bytes())
    _, attachments = attachments_by_name(web_store, only_conversation(web_store)["id"])
    response = agent_client.get(f"/attachments/{attachments['factuur één.pdf']['id']}")
    disposition = response.headers["Content-Disposition"]
    assert "filename*=UTF-8''factuur%20%C3%A9%C3%A9n.pdf" in disposition
    assert disposition.encode("latin-1")  # the header itself is plain ASCII


def test_raw_original_downloads_as_rfc822(agent_client, ingest, web_store):  # noqa: F811
    raw = hostile_mail()
    ingest(raw)
    message, _ = attachments_by_name(web_store, only_conversation(web_store)["id"])
    response = agent_client.get(f"/messages/{message['id']}/raw")
    assert response.status_code == 200
    assert response.mimetype == "message/rfc822"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.get_data() == raw


# Customers' images inline --------------------------------------------------------------------

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
    "c0f01f0005000201f1d8b5ec0000000049454e44ae426082")


def test_a_customers_photo_shows_in_the_thread_from_our_own_store(agent_client, ingest, web_store):  # noqa: F811
    msg = EmailMessage()
    msg["From"] = "kim@example.net"
    msg["To"] = "support@mainland.test"
    msg["Subject"] = "Cracked lid"
    msg.set_content("See the photo.")
    msg.add_attachment(PNG_1x1, maintype="image", subtype="png", filename="lid.png")
    ingest(msg.as_bytes())
    conversation = only_conversation(web_store)
    _, attachments = attachments_by_name(web_store, conversation["id"])
    photo = attachments["lid.png"]
    page = agent_client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    assert f'<img src="/attachments/{photo["id"]}/inline" alt="lid.png"' in page
    response = agent_client.get(f"/attachments/{photo['id']}/inline")
    assert response.status_code == 200 and response.get_data() == PNG_1x1
    assert response.mimetype == "image/png"
    assert "attachment" not in response.headers.get("Content-Disposition", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_a_disguised_or_scriptable_file_is_never_shown_inline(agent_client, ingest, web_store):  # noqa: F811
    ingest(hostile_mail())
    conversation = only_conversation(web_store)
    _, attachments = attachments_by_name(web_store, conversation["id"])
    page = agent_client.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    assert "/inline" not in page  # the GIF/HTML polyglot posing as PNG, scripts, HTML: downloads only
    for attachment in attachments.values():
        assert agent_client.get(f"/attachments/{attachment['id']}/inline").status_code == 404


def test_a_short_social_post_reads_inline_and_a_laid_out_mail_keeps_its_frame(app, agent_client, web_store):  # noqa: F811
    from inbox.models import Author, FetchResult, InboundItem

    ingestor = app.extensions["mainland"].ingestor(web_store)
    post = InboundItem(channel="mastodon", external_id="toot-1", thread_key="toot-1", public=True,
                       text="@support Is the winter sale on in Leeds?",
                       html='<p><span class="h-card"><a href="https://m.example/@support">@support</a></span> '
                            "Is the winter sale on in Leeds?</p>",
                       author=Author(handle="tom@m.example", name="Tom", identity_kind="mastodon"))
    table = InboundItem(channel="mastodon", external_id="toot-2", thread_key="toot-2", text="Order | 2",
                        html="<table><tr><td>Order</td><td>2</td></tr></table>",
                        author=Author(handle="ann@m.example", name="Ann", identity_kind="mastodon"))
    ids = ingestor.ingest("mastodon", FetchResult(items=[post, table], cursor="1")).message_ids
    short, laid_out = (web_store.message(i)["conversation_id"] for i in ids)
    page = agent_client.get(f"/conversations/{short}").get_data(as_text=True)
    assert "<iframe" not in page and "Is the winter sale on in Leeds?" in page
    assert "<iframe" in agent_client.get(f"/conversations/{laid_out}").get_data(as_text=True)


def test_a_long_thread_opens_with_its_latest_part_and_the_rest_comes_on_request(app, agent_client, web_store):  # noqa: F811
    from inbox.models import Author, FetchResult, InboundItem

    items = [InboundItem(channel="chat", external_id=f"m{i}", thread_key="t1", text=f"Line number {i:03d}",
                         author=Author(handle="4711", name="Piet", identity_kind="chat")) for i in range(500)]
    [first, *_] = app.extensions["mainland"].ingestor(web_store).ingest(
        "chat", FetchResult(items=items, cursor="1")).message_ids
    cid = web_store.message(first)["conversation_id"]
    page = agent_client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Line number 499" in page and "Line number 460" in page and "Line number 459" not in page
    assert "Show 460 earlier messages" in page
    assert len(page.encode()) < 150_000
    earlier = agent_client.get(f"/conversations/{cid}/messages?before=460").get_json()
    assert earlier["earlier"] == 420 and earlier["count"] == 40
    assert "Line number 420" in earlier["html"] and "Line number 459" in earlier["html"]
    assert "Line number 460" not in earlier["html"] and "Line number 419" not in earlier["html"]
    whole = agent_client.get(f"/conversations/{cid}?all=1").get_data(as_text=True)
    assert "Line number 000" in whole and "earlier message" not in whole
