"""The public contact form, through the Flask test client and a real SQLite file.

The app has one web form channel, "contact", that www.example.com may embed. Replies go out
through the email channel "mail" (SMTP = the aiosmtpd sink of tests/servers.py).
"""

from __future__ import annotations

import email
import email.policy
import io
import re

import pytest

from inbox.models import Author, OutboundReply
from inbox.store import Store

ALLOWED = "https://www.example.com"
EVIL = "https://evil.example"


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        "contact": {
            "kind": "webform",
            "title": "Contact Example Ltd",
            "intro": "We answer within one working day.",
            "allowed_origins": [ALLOWED],
            "reply_channel": "mail",
        },
        "closed": {"kind": "webform", "enabled": False, "reply_channel": "mail"},
    }
    return app_config


@pytest.fixture
def db(app, app_config):
    store = Store(app_config["database"])
    yield store
    store.close()


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def fresh_form(client, channel: str = "contact") -> dict[str, str]:
    response = client.get(f"/forms/{channel}")
    assert response.status_code == 200
    return hidden_fields(response.get_data(as_text=True))


def filled(client, **fields: str) -> dict[str, str]:
    data = {**fresh_form(client), "website": "", "name": "Ada Lovelace", "email": "Ada@Example.com",
            "subject": "Parcel missing", "message": "My order #1234 never arrived."}
    data.update(fields)
    return data


def conversations(db) -> list[dict]:
    return db.recent_conversations()


# The page -----------------------------------------------------------------------------------------

def test_form_page_carries_the_token_fields_and_may_be_framed_by_the_allowed_site(client):
    response = client.get("/forms/contact")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert set(hidden_fields(html)) == {"submission_id", "issued_at", "token"}
    assert 'name="website"' in html  # the honeypot
    assert "Contact Example Ltd" in html and "We answer within one working day." in html
    policy = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {ALLOWED}" in policy
    assert "X-Frame-Options" not in response.headers  # it would forbid the embedding that CSP allows
    assert response.headers["Cache-Control"] == "no-store"


def test_every_page_render_has_a_new_submission_id(client):
    assert fresh_form(client)["submission_id"] != fresh_form(client)["submission_id"]


@pytest.mark.parametrize("path", ["/forms/nope", "/forms/closed", "/api/forms/nope", "/forms/nope/embed.js"])
def test_unknown_or_disabled_channel_is_404(client, path):
    assert client.get(path).status_code == 404


def test_form_page_speaks_dutch_when_the_browser_asks(client):
    html = client.get("/forms/contact", headers={"Accept-Language": "nl-NL,nl;q=0.9"}).get_data(as_text=True)
    assert '<html lang="nl">' in html
    assert "Uw e-mailadres" in html and "Bericht versturen" in html
    assert "Your email address" not in html


def test_embed_script_points_at_the_form(client):
    response = client.get("/forms/contact/embed.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert '"http://localhost/forms/contact"' in response.get_data(as_text=True)


# Submitting -------------------------------------------------------------------------------------------

def test_submission_creates_a_conversation_for_the_customers_email(client, db):
    response = client.post("/forms/contact", data=filled(client))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "My order #1234 never arrived." in html  # the visitor's copy on the thank-you page
    [conversation] = conversations(db)
    assert conversation["channel"] == "contact"
    assert conversation["subject"] == "Parcel missing"
    [message] = db.conversation_messages(conversation["id"])
    assert message["author_handle"] == "ada@example.com"
    assert message["text"] == "My order #1234 never arrived."
    [identity] = db.customer_identities(conversation["customer_id"])
    assert (identity["kind"], identity["value"]) == ("email", "ada@example.com")


def test_a_form_message_in_a_known_customers_name_is_marked_unverified(client, db, app):
    """Anyone can type anyone's address: the message joins the customer who has it, marked as such."""
    from inbox.mail import parse_email

    mail = (b"From: Ada Lovelace <ada@example.com>\r\nTo: support@mainland.test\r\nSubject: Invoice\r\n"
            b"Message-ID: <ada-1@example.com>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\nHello\r\n")
    app.extensions["mainland"].ingestor(db).ingest_one("mail", parse_email(mail, channel="mail"))
    ada = db.customer_for_identity("email", "ada@example.com")
    assert client.post("/forms/contact", data=filled(client, email="ADA@example.com",
                                                     message="Please send my invoice to evil@example.net"
                                                     )).status_code == 200
    [form] = [c for c in conversations(db) if c["channel"] == "contact"]
    assert form["customer_id"] == ada, "it still joins the customer who has the address"
    [message] = db.conversation_messages(form["id"])
    assert "claimed_address" in message["flags"].split()
    # A first-time address is nobody else's: nothing to warn about.
    client.post("/forms/contact", data=filled(client, email="new.person@example.org", subject="Hi"))
    [fresh] = [c for c in conversations(db) if c["subject"] == "Hi"]
    assert db.conversation_messages(fresh["id"])[0]["flags"] == ""


def test_the_channel_list_shows_a_used_form_as_used(client, db, frozen_clock):
    """The admin's list of channels counts a form's messages; when it was last used comes from them too."""
    from tests.test_web_auth import login, make_agent

    assert client.post("/forms/contact", data=filled(client)).status_code == 200
    frozen_clock.advance(minutes=5)
    make_agent(db, "admin@example.org", role="admin")
    login(client, "admin@example.org")
    page = client.get("/admin/connectors").get_data(as_text=True)
    row = re.search(r'<tr id="channel-contact".*?</tr>', page, re.S)[0]
    assert "1 message" in row
    assert "never" not in row and "not used yet" not in row
    assert "working" in row and "<time datetime=" in row


def test_attachment_arrives_with_the_message(client, db):
    data = filled(client, attachments=(io.BytesIO(b"%PDF-1.4 receipt"), "receipt.pdf", "application/pdf"))
    assert client.post("/forms/contact", data=data, content_type="multipart/form-data").status_code == 200
    [conversation] = conversations(db)
    [message] = db.conversation_messages(conversation["id"])
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "receipt.pdf", "application/pdf", 16)


def test_double_post_of_one_submission_is_one_conversation(client, db):
    """IN-59: a double click or a browser retry sends the same submission_id twice."""
    data = filled(client)
    first = client.post("/forms/contact", data=data)
    second = client.post("/forms/contact", data=data)
    assert first.status_code == second.status_code == 200
    assert "My order #1234 never arrived." in second.get_data(as_text=True)
    assert len(conversations(db)) == 1
    assert db.counts()["messages"] == 1


def test_two_submissions_of_one_customer_are_two_conversations(client, db):
    client.post("/forms/contact", data=filled(client))
    client.post("/forms/contact", data=filled(client, subject="Another question"))
    assert len(conversations(db)) == 2


def test_field_errors_show_the_form_again_with_what_was_typed(client, db):
    data = filled(client, email="victim@x.example\r\nBcc: a@b.example", message="Please keep this text")
    response = client.post("/forms/contact", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'aria-invalid="true"' in html
    assert "Please keep this text" in html
    # The same submission_id: the corrected form is still the same submission.
    assert hidden_fields(html)["submission_id"] == data["submission_id"]
    assert conversations(db) == []


def test_list_of_addresses_is_refused(client, db):
    response = client.post("/forms/contact", data=filled(client, email="a@b.example, c@d.example"))
    assert response.status_code == 400
    assert conversations(db) == []


def test_filled_honeypot_looks_like_success_but_stores_nothing(client, db):
    response = client.post("/forms/contact", data=filled(client, website="http://cheap-pills.example"))
    assert response.status_code == 200
    assert "Thank you" in response.get_data(as_text=True)
    assert conversations(db) == []


def test_missing_honeypot_stores_nothing(client, db):
    data = filled(client)
    del data["website"]
    client.post("/forms/contact", data=data)
    assert conversations(db) == []


def test_forged_token_is_refused_with_a_fresh_form(client, db):
    data = filled(client, token="0" * 64)
    response = client.post("/forms/contact", data=data)
    assert response.status_code == 400
    assert hidden_fields(response.get_data(as_text=True))["submission_id"] != data["submission_id"]
    assert conversations(db) == []


def test_expired_token_keeps_the_message_and_offers_a_fresh_token(client, db, monkeypatch):
    data = filled(client, message="Written yesterday")
    from connectors.webform import WebformConnector

    later = int(data["issued_at"]) + 25 * 3600
    monkeypatch.setattr(WebformConnector, "clock", staticmethod(lambda: later))
    response = client.post("/forms/contact", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Written yesterday" in html
    assert hidden_fields(html)["issued_at"] == str(later)
    assert client.post("/forms/contact", data={**data, **hidden_fields(html)}).status_code == 200
    assert len(conversations(db)) == 1


# Hostile input (IN-61) -------------------------------------------------------------------------------

def test_template_syntax_is_stored_literally_and_shown_escaped(client, db):
    text = "{{7*7}} {% for x in range(10**9) %}x{% endfor %} <script>alert(1)</script>"
    response = client.post("/forms/contact", data=filled(client, subject="{{7*7}}", message=text))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "{{7*7}}" in html and "49" not in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    [conversation] = conversations(db)
    assert conversation["subject"] == "{{7*7}}"
    assert db.conversation_messages(conversation["id"])[0]["text"] == text


def test_ten_megabytes_of_text_is_413_and_nothing_is_stored(client, db):
    response = client.post("/forms/contact", data=filled(client, message="x" * 10 * 1024 * 1024))
    assert response.status_code == 413
    assert conversations(db) == []


def test_body_above_the_channels_cap_is_413_before_it_is_read(client, db):
    response = client.post("/forms/contact", data=b"x" * (20 * 1024 * 1024),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert conversations(db) == []


def test_nul_bytes_and_invalid_utf8_do_not_crash(client, db):
    data = filled(client, message="before\x00after")
    response = client.post("/forms/contact", data=data)
    assert response.status_code == 200
    fields = filled(client, message="second")
    del fields["name"]
    raw = "&".join(f"{k}={v}" for k, v in fields.items()).encode() + b"&name=%FF%FE\xff"
    response = client.post("/forms/contact", data=raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    texts = {}
    for conversation in conversations(db):
        [message] = db.conversation_messages(conversation["id"])
        texts[message["text"]] = message["author_name"]
    assert set(texts) == {"beforeafter", "second"}  # NUL removed, the rest kept
    assert texts["second"] == "%FF%FE\ufffd"  # percent-escapes stay literal, raw bad bytes become U+FFFD


# Origins, CORS and rate limits ----------------------------------------------------------------------

@pytest.mark.parametrize("header", ["Origin", "Referer"])
def test_post_from_a_foreign_site_is_403_and_stores_nothing(client, db, header):
    value = EVIL if header == "Origin" else f"{EVIL}/contact.html"
    response = client.post("/forms/contact", data=filled(client), headers={header: value})
    assert response.status_code == 403
    assert conversations(db) == []


def test_null_origin_is_refused(client, db):
    assert client.post("/api/forms/contact", data=filled(client), headers={"Origin": "null"}).status_code == 403


def test_post_from_the_allowed_site_gets_cors_for_that_site_only(client, db):
    response = client.post("/api/forms/contact", data=filled(client), headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in response.headers["Vary"]
    assert len(conversations(db)) == 1


def test_cors_never_echoes_a_foreign_origin(client):
    response = client.get("/api/forms/contact", headers={"Origin": EVIL})
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def test_preflight_from_the_allowed_site(client):
    response = client.options("/api/forms/contact", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"


def test_preflight_from_a_foreign_site_is_refused(client):
    response = client.options("/api/forms/contact", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def test_21st_submission_from_one_ip_in_an_hour_is_429(client, db):
    """IN-60: per_ip_per_hour defaults to 20; another address is not affected."""
    for _ in range(20):
        assert client.post("/forms/contact", data=filled(client)).status_code == 200
    response = client.post("/forms/contact", data=filled(client))
    assert response.status_code == 429
    assert "too many messages" in response.get_data(as_text=True)
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    api = client.post("/api/forms/contact", json=filled(client))
    assert api.status_code == 429 and api.get_json()["ok"] is False
    other = client.post("/forms/contact", data=filled(client), environ_base={"REMOTE_ADDR": "192.0.2.99"})
    assert other.status_code == 200
    assert len(conversations(db)) == 21


def test_per_ip_limit_follows_the_channel_setting(app_config):
    from inbox import create_app

    app_config["channels"]["contact"]["per_ip_per_hour"] = 2
    client = create_app(app_config).test_client()
    statuses = [client.post("/forms/contact", data=filled(client)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_form_that_takes_one_file_says_file_not_files(app_config):
    from inbox import create_app

    app_config["channels"]["contact"]["max_attachments"] = 1
    client = create_app(app_config).test_client()
    page = client.get("/forms/contact").get_data(as_text=True)
    assert "Up to 1 file of at most" in page and "1 files" not in page
    two = [(io.BytesIO(b"one"), "a.txt", "text/plain"), (io.BytesIO(b"two"), "b.txt", "text/plain")]
    refused = client.post("/forms/contact", data=filled(client, attachments=two), content_type="multipart/form-data")
    html = refused.get_data(as_text=True)
    assert "Attach at most 1 file." in html and "1 files" not in html


# The JSON API ------------------------------------------------------------------------------------------

def test_json_api_token_then_submit(client, db):
    token = client.get("/api/forms/contact", headers={"Origin": ALLOWED}).get_json()
    assert token["honeypot"] == "website"
    body = {k: token[k] for k in ("submission_id", "issued_at", "token")}
    body.update(website="", email="grace@example.com", name="Grace", message="Hello from JSON")
    response = client.post("/api/forms/contact", json=body, headers={"Origin": ALLOWED})
    answer = response.get_json()
    assert response.status_code == 200 and answer["ok"] is True
    [conversation] = conversations(db)
    assert answer["conversation"] == conversation["token"]
    again = client.post("/api/forms/contact", json=body, headers={"Origin": ALLOWED}).get_json()
    assert again == answer  # the replay names the same conversation
    assert len(conversations(db)) == 1


def test_json_api_errors_name_the_fields(client, db):
    response = client.post("/api/forms/contact", json=filled(client, email="not an address", message=""))
    answer = response.get_json()
    assert response.status_code == 400
    assert answer["ok"] is False
    assert set(answer["errors"]) == {"email", "message"}
    assert conversations(db) == []


def test_json_api_refuses_the_honeypot(client, db):
    response = client.post("/api/forms/contact", json=filled(client, website="x"))
    assert response.status_code == 400 and response.get_json()["ok"] is False
    assert conversations(db) == []


def test_json_api_oversized_message_is_413(client, db):
    response = client.post("/api/forms/contact", json=filled(client, message="x" * 20_001))
    assert response.status_code == 413
    assert "message" in response.get_json()["errors"]


def test_json_api_garbage_body_is_400(client):
    response = client.post("/api/forms/contact", data=b"\xff\x00{", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["ok"] is False


# Replies go out by email ------------------------------------------------------------------------------

def test_agent_reply_reaches_the_submitter_by_smtp(app_config, smtp_server):
    from inbox import create_app

    app_config["channels"]["mail"] = {
        "kind": "imap", "host": "127.0.0.1", "port": 1, "security": "none", "username": "support@example.com",
        "password": "secret", "address": "support@example.com", "from_name": "Example Support",
        "smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10,
    }
    app = create_app(app_config)
    client = app.test_client()
    assert client.post("/forms/contact", data=filled(client)).status_code == 200

    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    try:
        [conversation] = store.recent_conversations()
        [message] = store.conversation_messages(conversation["id"])
    finally:
        store.close()
    reply = OutboundReply(
        idempotency_key="reply-1", channel="contact", conversation_id=conversation["id"],
        text="Your parcel is on its way.", to=Author(handle=message["author_handle"], name=message["author_name"]),
        subject=message["subject"], reply_to_external_id=message["external_id"],
        message_id=f"<mainland.{conversation['token']}.r1@mainland.test>",
    )
    mainland.sending_connector("contact").send(reply)

    [sent] = smtp_server.wait_for(1)
    assert sent.rcpt_tos == ["ada@example.com"]
    mail = email.message_from_bytes(sent.content, policy=email.policy.default)
    assert mail["To"].addresses[0].addr_spec == "ada@example.com"
    assert mail["Subject"].startswith("Re: Parcel missing")
    assert "Your parcel is on its way." in mail.get_body(("plain",)).get_content()


# In a real browser ------------------------------------------------------------------------------------

@pytest.fixture
def two_sites(app_config, tmp_path):
    """Mainland on 127.0.0.1 and two shop sites on other origins that embed its form (one allowed)."""
    import functools
    import http.server
    import threading

    from werkzeug.serving import make_server

    from inbox import create_app
    from tests.servers import free_port

    shop_port, other_port, port = free_port(), free_port(), free_port()
    app_config["base_url"] = f"http://127.0.0.1:{port}"
    app_config["channels"]["contact"]["allowed_origins"] = [f"http://localhost:{shop_port}"]
    server = make_server("127.0.0.1", port, create_app(app_config), threaded=True)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        f'<!doctype html><h1>Shop</h1><script src="http://127.0.0.1:{port}/forms/contact/embed.js"></script>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    servers = [server] + [http.server.ThreadingHTTPServer(("127.0.0.1", p), handler) for p in (shop_port, other_port)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield {"shop": f"http://localhost:{shop_port}/index.html", "other": f"http://localhost:{other_port}/index.html"}
    for s in servers:
        s.shutdown()


@pytest.mark.browser
def test_allowed_site_embeds_the_form_and_a_visitor_sends_it(two_sites, db):
    import shutil

    from tests.servers import unavailable

    playwright_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        unavailable("Chromium is not installed (scripts/test.sh installs it)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page()
            page.goto(two_sites["shop"])
            form = page.frame_locator("iframe")
            form.locator("#wf-email").fill("ada@example.com")
            form.locator("#wf-message").fill("Hello from the shop")
            form.locator("button[type=submit]").click()
            playwright_api.expect(form.locator(".success")).to_be_visible()
            # The form page told the shop how tall it is (static/forms/frame.js -> embed.js).
            assert page.eval_on_selector("iframe", "e => e.style.height") != "640px"

            other = browser.new_page()
            refused = []
            other.on("console", lambda message: refused.append(message.text))
            other.goto(two_sites["other"])
            for _ in range(50):  # the browser reports the refused framing a moment after load
                if any("frame-ancestors" in text for text in refused):
                    break
                other.wait_for_timeout(100)
            assert any("frame-ancestors" in text for text in refused)
            assert not any("wf-email" in frame.content() for frame in other.frames[1:])
        finally:
            browser.close()
    [conversation] = conversations(db)
    assert conversation["subject"] == "Hello from the shop"
