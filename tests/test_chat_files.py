"""Files in the website chat (#18), both ways, through the Flask test client and a real SQLite file.

A visitor's file is the raw body of `POST /chat/<channel>/files` with its client id and name in
headers; the agent sees it on the conversation like a mail's attachment. An agent's reply with a file
shows in the widget, which fetches it with the visitor token from `GET /chat/<channel>/files/<id>`.
"""

from __future__ import annotations

import io
import uuid
from urllib.parse import quote

import pytest

from inbox import create_app
from inbox.models import Attachment
from inbox.outbox import queue_reply, send_due
from inbox.store import Store
from tests.test_chat import ALLOWED, EVIL, headers, history, post, visitor
from tests.test_web_auth import login, make_agent


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {"site": {"kind": "chat", "title": "Example Ltd", "allowed_origins": [ALLOWED]}}
    return app_config


@pytest.fixture
def db(app, app_config):
    store = Store(app_config["database"])
    yield store
    store.close()


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
DOCX = b"PK\x03\x04" + bytes(40)


def upload(client, token: str, data: bytes, name: str = "photo.png", content_type: str = "image/png",
           client_id: str | None = None, origin: str = ALLOWED, **extra):
    sent = {**headers(token, origin), "X-Mainland-Client-Id": client_id or str(uuid.uuid4()),
            "X-Mainland-File-Name": quote(name)}
    return client.post("/chat/site/files", data=data, content_type=content_type, headers=sent, **extra)


def fetch(client, token: str, attachment_id: int, origin: str = ALLOWED):
    return client.get(f"/chat/site/files/{attachment_id}", headers=headers(token, origin))


def stored_attachments(db) -> list[dict]:
    return [a for c in db.recent_conversations() for m in db.conversation_messages(c["id"]) for a in m["attachments"]]


def test_a_visitors_picture_reaches_the_agent_and_comes_back_to_the_widget(client, db):
    token = visitor()
    post(client, token, "My parcel arrived broken")
    response = upload(client, token, PNG, name="broken box.png")
    assert response.status_code == 200
    shown = response.get_json()["message"]
    assert shown["from"] == "visitor" and shown["text"] == ""
    [file] = shown["files"]
    assert (file["name"], file["type"], file["size"], file["image"]) == ("broken box.png", "image/png", len(PNG), True)
    # The agent: one conversation, the file on the visitor's second message, with the triage verdict.
    [conversation] = db.recent_conversations()
    first, second = db.conversation_messages(conversation["id"])
    [attachment] = second["attachments"]
    assert attachment["filename"] == "broken box.png" and attachment["type_mismatch"] == 0
    assert db.execute("SELECT spam_verdict FROM messages WHERE id = ?", (second["id"],)).fetchone()[0] is not None
    # The widget's history lists it, and the visitor fetches it as a picture that is never sniffed.
    assert [m["files"] for m in history(client, token)] == [[], [file]]
    served = fetch(client, token, file["id"])
    assert served.status_code == 200 and served.data == PNG
    assert served.mimetype == "image/png" and served.headers["Content-Disposition"].startswith("inline")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert served.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_the_agent_sees_the_file_in_the_conversation_with_a_preview(app, client, db):
    token = visitor()
    upload(client, token, PNG, name="receipt.png")
    [conversation] = db.recent_conversations()
    make_agent(db)
    agent = app.test_client()
    login(agent)
    page = agent.get(f"/conversations/{conversation['id']}").get_data(as_text=True)
    [attachment] = stored_attachments(db)
    assert "receipt.png" in page
    assert f"/attachments/{attachment['id']}/inline" in page
    assert agent.get(f"/attachments/{attachment['id']}").data == PNG


def test_the_same_client_id_twice_stores_one_message_and_one_file(client, db):
    token, client_id = visitor(), str(uuid.uuid4())
    first = upload(client, token, PDF, name="invoice.pdf", content_type="application/pdf", client_id=client_id)
    again = upload(client, token, PDF, name="invoice.pdf", content_type="application/pdf", client_id=client_id)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["message"]["id"] == first.get_json()["message"]["id"]
    assert len(history(client, token)) == 1
    assert len(stored_attachments(db)) == 1


def test_an_upload_that_breaks_off_stores_nothing_and_its_retry_stores_it_once(client, db):
    token, client_id = visitor(), str(uuid.uuid4())
    # The network drops mid-upload: the body ends before the announced Content-Length.
    broken = client.post("/chat/site/files", input_stream=io.BytesIO(PDF[:20]),
                         environ_overrides={"CONTENT_LENGTH": str(len(PDF))},
                         headers={**headers(token), "Content-Type": "application/pdf",
                                  "X-Mainland-Client-Id": client_id, "X-Mainland-File-Name": "invoice.pdf"})
    assert broken.status_code == 400 and broken.get_json()["error"] == "file_incomplete"
    assert db.recent_conversations() == []
    retried = upload(client, token, PDF, name="invoice.pdf", content_type="application/pdf", client_id=client_id)
    assert retried.status_code == 200
    again = upload(client, token, PDF, name="invoice.pdf", content_type="application/pdf", client_id=client_id)
    assert again.get_json()["duplicate"] is True
    [attachment] = stored_attachments(db)
    assert attachment["size"] == len(PDF)


class _Untouchable(io.BytesIO):
    """A request body that must not be read."""

    read_calls = 0

    def read(self, *args) -> bytes:
        type(self).read_calls += 1
        raise AssertionError("the body of a too large upload was read")

    readline = readinto = read1 = read


def test_a_file_over_the_limit_is_refused_by_its_announced_size_before_it_is_read(client, db):
    token = visitor()
    response = client.post("/chat/site/files", input_stream=_Untouchable(),
                           environ_overrides={"CONTENT_LENGTH": str(10 * 1024 * 1024 + 1)},
                           headers={**headers(token), "Content-Type": "application/pdf",
                                    "X-Mainland-Client-Id": str(uuid.uuid4()), "X-Mainland-File-Name": "big.pdf"})
    assert response.status_code == 413
    assert response.get_json()["error"] == "file_too_large"
    assert "10 MB" in response.get_json()["message"]
    assert _Untouchable.read_calls == 0
    assert db.recent_conversations() == []


def test_the_installations_lower_file_cap_wins(app_config):
    app_config["max_attachment_bytes"] = 1024 * 1024
    client = create_app(app_config).test_client()
    assert client.get("/chat/site/config", headers=headers(visitor())).get_json()["files"]["max_bytes"] == 1024 * 1024
    refused = upload(client, visitor(), b"%PDF-" + bytes(1024 * 1024), name="a.pdf", content_type="application/pdf")
    assert refused.status_code == 413 and "1 MB" in refused.get_json()["message"]


@pytest.mark.parametrize(("name", "content_type", "data"), [
    ("setup.exe", "application/x-msdownload", b"MZ\x90\x00"),
    ("page.html", "text/html", b"<script>alert(1)</script>"),
    ("drawing.svg", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
    ("photo.png", "image/png", PDF),  # the bytes are no PNG
    ("polyglot.gif", "image/gif", b"GIF89a<script>alert(1)</script>"),
    ("report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"MZ\x90\x00"),
    ("notes.txt", "text/plain", b"\x7fELF\x02\x01\x01\x00\x00\x00"),
])
def test_a_file_of_a_type_not_taken_or_not_what_it_says_is_refused_with_the_reason(client, db, name, content_type,
                                                                                   data):
    response = upload(client, visitor(), data, name=name, content_type=content_type)
    assert response.status_code == 415
    body = response.get_json()
    assert body["error"] == "file_type" and "office document" in body["message"]
    assert db.recent_conversations() == []


@pytest.mark.parametrize(("name", "content_type", "data"), [
    ("invoice.pdf", "application/pdf", PDF),
    ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", DOCX),
    ("notes.txt", "text/plain", "Größe 44, café".encode("cp1252")),
    ("sheet.xlsx", "", DOCX),  # no type from the browser: the extension's
])
def test_pictures_pdf_text_and_office_files_are_taken(client, db, name, content_type, data):
    response = upload(client, visitor(), data, name=name, content_type=content_type or "application/octet-stream")
    assert response.status_code == 200, response.get_json()
    [file] = response.get_json()["message"]["files"]
    assert file["name"] == name and file["image"] is False


def test_an_empty_file_and_a_missing_client_id_are_refused(client, db):
    token = visitor()
    empty = upload(client, token, b"", name="empty.txt", content_type="text/plain",
                   environ_overrides={"CONTENT_LENGTH": "0"})
    assert empty.status_code == 400 and empty.get_json()["error"] == "file_empty"
    response = client.post("/chat/site/files", data=PDF, content_type="application/pdf",
                           headers={**headers(token), "X-Mainland-File-Name": "a.pdf"})
    assert response.status_code == 400 and response.get_json()["error"] == "client_id"
    assert db.recent_conversations() == []


def test_path_parts_and_controls_are_taken_out_of_the_name(client, db):
    response = upload(client, visitor(), PDF, name="../../etc/\u202epasswd\u202c fdp.pdf", content_type="application/pdf")
    [file] = response.get_json()["message"]["files"]
    assert file["name"] == "passwd fdp.pdf"
    [attachment] = stored_attachments(db)
    assert attachment["filename"] == "passwd fdp.pdf"


def test_a_foreign_site_can_neither_upload_nor_fetch(client, db):
    token = visitor()
    assert upload(client, token, PNG, origin=EVIL).status_code == 403
    assert db.recent_conversations() == []
    [file] = upload(client, token, PNG).get_json()["message"]["files"]
    refused = fetch(client, token, file["id"], origin=EVIL)
    assert refused.status_code == 403 and refused.data != PNG


def test_without_a_visitor_token_nothing_is_stored_or_served(client, db):
    token = visitor()
    [file] = upload(client, token, PNG).get_json()["message"]["files"]
    assert client.post("/chat/site/files", data=PNG, content_type="image/png",
                       headers={"Origin": ALLOWED, "X-Mainland-Client-Id": str(uuid.uuid4())}).status_code == 401
    assert client.get(f"/chat/site/files/{file['id']}", headers={"Origin": ALLOWED}).status_code == 401
    assert len(stored_attachments(db)) == 1


def test_another_visitor_cannot_fetch_a_file_by_its_id(app, client, db):
    owner, stranger = visitor(), visitor()
    [file] = upload(client, owner, PNG).get_json()["message"]["files"]
    post(client, stranger, "Hello")  # a visitor with a conversation of their own
    for attachment_id in (file["id"], file["id"] + 1, file["id"] - 1):
        response = fetch(client, stranger, attachment_id)
        assert response.status_code == 404 and response.data != PNG


def _conversation_with_reply_file(app, client, db, data: bytes, name: str, content_type: str,
                                  sent: bool = True) -> str:
    token = visitor()
    post(client, token, "Can I have the invoice?")
    [conversation] = db.recent_conversations()
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, conversation["id"], "Here it is.",
                files=[Attachment(filename=name, content_type=content_type, data=data, size=len(data))])
    if sent:
        assert send_due(mainland, db).sent == 1
    return token


def test_an_agents_file_shows_in_the_widget_as_a_download(app, client, db):
    token = _conversation_with_reply_file(app, client, db, PDF, "invoice 42.pdf", "application/pdf")
    [_, reply] = history(client, token)
    [file] = reply["files"]
    assert (reply["from"], reply["text"], file["name"], file["image"]) == ("team", "Here it is.", "invoice 42.pdf",
                                                                           False)
    served = fetch(client, token, file["id"])
    assert served.status_code == 200 and served.data == PDF
    assert served.headers["Content-Disposition"].startswith("attachment")
    assert served.mimetype == "application/octet-stream"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert fetch(client, visitor(), file["id"]).status_code == 404


def test_an_agents_picture_shows_as_a_thumbnail(app, client, db):
    token = _conversation_with_reply_file(app, client, db, PNG, "map.png", "image/png")
    [file] = history(client, token)[1]["files"]
    assert file["image"] is True
    assert fetch(client, token, file["id"]).headers["Content-Disposition"].startswith("inline")


def test_a_reply_file_is_not_served_before_the_reply_is_sent(app, client, db):
    token = _conversation_with_reply_file(app, client, db, PDF, "draft.pdf", "application/pdf", sent=False)
    [attachment] = [a for a in stored_attachments(db) if a["filename"] == "draft.pdf"]
    assert [m["from"] for m in history(client, token)] == ["visitor"]
    assert fetch(client, token, attachment["id"]).status_code == 404


def test_a_reply_with_only_a_file_goes_out(app, client, db):
    token = visitor()
    post(client, token, "Send me the manual")
    [conversation] = db.recent_conversations()
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, conversation["id"], "",
                files=[Attachment(filename="manual.pdf", content_type="application/pdf", data=PDF, size=len(PDF))])
    assert send_due(mainland, db).sent == 1
    assert [f["name"] for f in history(client, token)[1]["files"]] == ["manual.pdf"]


def test_the_widget_learns_the_limits_and_preflight_allows_the_file_headers(client):
    config = client.get("/chat/site/config?lang=nl", headers=headers(visitor())).get_json()
    assert config["files"]["max_bytes"] == 10 * 1024 * 1024 and "application/pdf" in config["files"]["types"]
    assert config["words"]["attach"]
    assert config["words"]["file_lost"] == "{name} kon niet worden verstuurd. Wilt u het opnieuw toevoegen?"
    preflight = client.options("/chat/site/files", headers={"Origin": ALLOWED,
                                                           "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    allowed = preflight.headers["Access-Control-Allow-Headers"]
    assert "X-Mainland-Client-Id" in allowed and "X-Mainland-File-Name" in allowed
    assert client.options("/chat/site/files/1", headers={"Origin": ALLOWED}).status_code == 204


def test_files_count_against_the_visitors_rate_limit(app_config):
    app_config["channels"]["site"]["per_visitor_per_minute"] = 2
    client = create_app(app_config).test_client()
    token = visitor()
    assert [upload(client, token, PNG).status_code for _ in range(3)] == [200, 200, 429]
