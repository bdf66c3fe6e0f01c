"""Files in replies: picked in the composer, checked against the channel's declared limits (in the
page and again on the server), stored like inbound ones, sent through the outbox, listed in the thread.

Email replies go over SMTP to the test sink (tests/servers.py) and the received bytes are parsed
again. A chat channel that cannot put text and a file in one message (`files_with_text=False`,
like Messenger) records what it was handed: each part is sent once, with its own idempotency key.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io

import pytest

from connectors.base import Connector, Limits
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.outbox import LEASE_SECONDS, send_due
from tests.mailfactory import raw_mail
from tests.test_web_auth import csrf_token, login, make_agent

JSON = {"Accept": "application/json"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"x" * 200


class SplitChat(Connector):
    """A chat where text and a file cannot share a message (Messenger's rule); images only, 3 at most."""

    kind = "splitchat"
    display_name = "SplitChat"
    #: This test channel takes an idempotency key (a part sent twice with one key arrives once), so a part
    #: whose sender died mid-send is resent, flagged, rather than set aside for an agent.
    idempotent_sends = True
    limits = Limits(max_text_length=2000, formatting="plain", attachment_types=("image/*",), max_attachments=3,
                    files_with_text=False, attachments_public=False)
    sent: list = []
    crash_after_accepting: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        SplitChat.sent.append(reply)
        if SplitChat.crash_after_accepting and SplitChat.crash_after_accepting[0] == len(SplitChat.sent):
            SplitChat.crash_after_accepting.pop(0)
            raise KeyboardInterrupt("the worker died after the channel accepted it")
        return f"chat-{len(SplitChat.sent)}"


class NoFiles(Connector):
    """A channel whose replies carry no files at all (a Bluesky DM)."""

    kind = "nofileschat"
    display_name = "NoFilesChat"
    limits = Limits(max_text_length=1000, formatting="plain", supports_attachments=False)

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        return "x"


class Comments(Connector):
    """Public comments that carry no files, answerable once privately where files may go (Meta's rule)."""

    kind = "filecomments"
    display_name = "Comments"
    limits = Limits(max_text_length=2000, formatting="plain", attachments_public=False, private_replies=True)
    sent: list = []

    def fetch(self, cursor):
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply):
        Comments.sent.append(reply)
        return f"c-{len(Comments.sent)}"


@pytest.fixture
def app_config(app_config, smtp_server, monkeypatch):
    import connectors

    original = connectors.discover

    def discover(**kwargs):
        found = original(**kwargs)
        found[SplitChat.kind] = SplitChat
        found[NoFiles.kind] = NoFiles
        found[Comments.kind] = Comments
        return found

    monkeypatch.setattr(connectors, "discover", discover)
    SplitChat.sent = []
    SplitChat.crash_after_accepting = []
    Comments.sent = []
    app_config["max_attachment_bytes"] = 4096
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none", "timeout": 10},
        "chat": {"kind": SplitChat.kind},
        "dm": {"kind": NoFiles.kind},
        "comments": {"kind": Comments.kind},
    }
    return app_config


class World:
    def __init__(self, app):
        self.app = app
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self.ann = make_agent(self.store)
        self.ingestor = self.mainland.ingestor(self.store)
        self._n = 0

    def conversation(self, channel="mail", **mail) -> int:
        self._n += 1
        mail.setdefault("message_id", f"<f{self._n}@example.net>")
        item = parse_email(raw_mail(**mail), channel=channel)
        report = self.ingestor.ingest(channel, FetchResult(items=[item], cursor=f"c{self._n}"))
        [cid] = report.new_conversations
        return cid

    def client(self):
        client = self.app.test_client()
        assert login(client, email="ann@example.org").status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client

    def reply(self, client, cid, text="Here is your invoice.", files=(), **form):
        data = {"text": text, "seen_up_to": 10**6, "then_status": "open", "csrf_token": client.token, **form,
                "files": [(io.BytesIO(body), name, ctype) for name, ctype, body in files]}
        return client.post(f"/conversations/{cid}/reply", data=data, headers=JSON,
                           content_type="multipart/form-data")

    def sent_reply(self, cid):
        return [m for m in self.store.thread_messages(cid) if m["direction"] == "out"][-1]


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def received(smtp_message) -> email.message.EmailMessage:
    return email.message_from_bytes(smtp_message.content, policy=email.policy.default)


# Email: files as MIME parts --------------------------------------------------------------------

def test_a_reply_with_files_reaches_the_customer_as_mime_parts_and_is_listed_in_the_thread(world, smtp_server):
    cid = world.conversation()
    ann = world.client()
    answer = world.reply(ann, cid, files=[("invoice.pdf", "application/pdf", PDF), ("photo.png", "image/png", PNG)])
    assert answer.status_code == 200, answer.get_json()
    assert send_due(world.mainland, world.store).sent == 1
    [mail] = smtp_server.messages
    parts = {p.get_filename(): p for p in received(mail).iter_attachments()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["photo.png"].get_content_type() == "image/png" and parts["photo.png"].get_content() == PNG
    assert "Here is your invoice." in received(mail).get_body(("plain",)).get_content()
    # Our sent message lists its files: downloadable, the image shown inline like an inbound one.
    reply = world.sent_reply(cid)
    files = {a["filename"]: a for a in reply["attachments"]}
    assert set(files) == {"invoice.pdf", "photo.png"}
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert f'/attachments/{files["invoice.pdf"]["id"]}"' in page
    assert f'/attachments/{files["photo.png"]["id"]}/inline' in page
    assert ann.get(f'/attachments/{files["invoice.pdf"]["id"]}').data == PDF


def test_a_reply_of_files_alone_is_sent(world, smtp_server):
    cid = world.conversation()
    answer = world.reply(world.client(), cid, text="", files=[("photo.png", "image/png", PNG)])
    assert answer.status_code == 200
    assert send_due(world.mainland, world.store).sent == 1
    [part] = list(received(smtp_server.messages[0]).iter_attachments())
    assert part.get_filename() == "photo.png"


# The rules, checked on the server too ---------------------------------------------------------

def test_a_file_over_the_installations_cap_is_refused_with_what_to_do(world, smtp_server):
    cid = world.conversation()
    answer = world.reply(world.client(), cid, files=[("big.pdf", "application/pdf", b"%PDF" + b"x" * 5000)])
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert "big.pdf is too large" in error and "4.0 kB" in error and "share a link" in error
    assert [m for m in world.store.thread_messages(cid) if m["direction"] == "out"] == []


def test_a_channel_without_files_refuses_them_and_the_composer_says_why(world):
    cid = world.conversation(channel="dm")
    ann = world.client()
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Replies on NoFilesChat cannot carry files." in page
    assert 'name="files"' not in page, "the control is disabled where the channel carries no files"
    answer = world.reply(ann, cid, files=[("photo.png", "image/png", PNG)])
    assert answer.status_code == 400
    assert "cannot carry files" in answer.get_json()["error"] and "Remove the files" in answer.get_json()["error"]


def test_type_and_count_follow_the_channels_declared_limits(world):
    cid = world.conversation(channel="chat")
    ann = world.client()
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'accept="image/*"' in page and "3 files per reply" in page
    wrong = world.reply(ann, cid, files=[("invoice.pdf", "application/pdf", PDF)])
    assert wrong.status_code == 400 and "invoice.pdf cannot be sent here" in wrong.get_json()["error"]
    many = world.reply(ann, cid, files=[(f"p{i}.png", "image/png", PNG) for i in range(4)])
    assert many.status_code == 400 and "at most 3 files per reply" in many.get_json()["error"]


def test_email_composer_offers_files_with_the_caps_in_words(world):
    cid = world.conversation()
    page = world.client().get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    assert 'type="file" name="files"' in page and "Up to 4.0 kB per file" in page


# Text and files as separate messages (files_with_text=False) ----------------------------------

def test_text_and_each_file_go_as_separate_messages_each_sent_once(world):
    cid = world.conversation(channel="chat")
    answer = world.reply(world.client(), cid, "Two photos:",
                         files=[("a.png", "image/png", PNG), ("b.png", "image/png", PNG + b"b")])
    assert answer.status_code == 200
    assert send_due(world.mainland, world.store).sent == 3
    text, first, second = SplitChat.sent
    assert (text.text, text.attachments) == ("Two photos:", ())
    assert (first.text, [a.filename for a in first.attachments]) == ("", ["a.png"])
    assert [a.data for a in second.attachments] == [PNG + b"b"]
    assert len({r.idempotency_key for r in SplitChat.sent}) == 3
    assert world.sent_reply(cid)["delivery_status"] == "sent"
    outgoing = [m for m in world.store.thread_messages(cid) if m["direction"] == "out"]
    assert len(outgoing) == 1 and len(outgoing[0]["attachments"]) == 2, "one message in the thread, with its files"
    assert send_due(world.mainland, world.store).sent == 0, "no part is ever sent twice"


def test_a_crash_mid_way_resends_only_the_unconfirmed_part_flagged(world, frozen_clock):
    cid = world.conversation(channel="chat")
    world.reply(world.client(), cid, "Photo:", files=[("a.png", "image/png", PNG)])
    SplitChat.crash_after_accepting = [2]  # the file went out, then the worker died before recording it
    with pytest.raises(KeyboardInterrupt):
        send_due(world.mainland, world.store)
    assert world.sent_reply(cid)["delivery_status"] == "queued", "not all parts are confirmed"
    frozen_clock.advance(dt.timedelta(seconds=LEASE_SECONDS + 1))
    assert send_due(world.mainland, world.store).sent == 1
    keys = [r.idempotency_key for r in SplitChat.sent]
    assert len(keys) == 3 and keys[1] == keys[2], "only the file part went again, with the same key"
    flagged = world.store.execute("SELECT part, possible_duplicate FROM outbox ORDER BY part_index").fetchall()
    assert [tuple(r) for r in flagged] == [("text", 0), ("file", 1)]
    assert world.sent_reply(cid)["delivery_status"] == "sent"


# Undo and review -------------------------------------------------------------------------------

@pytest.fixture
def undo_window(app_config):
    app_config["web"] = {"undo_send_seconds": 10}
    return app_config


def test_undo_drops_the_files_cleanly_and_says_so(undo_window, world, frozen_clock):
    cid = world.conversation()
    ann = world.client()
    unique = PDF + b"only-here"
    outbox_id = world.reply(ann, cid, files=[("invoice.pdf", "application/pdf", unique)]).get_json()["undo"]["id"]
    [att] = world.sent_reply(cid)["attachments"]
    path = world.mainland.attachment_store().path_for(att["sha256"])
    assert path.read_bytes() == unique
    answer = ann.post(f"/conversations/{cid}/undo-send", data={"outbox_id": outbox_id, "csrf_token": ann.token},
                      headers=JSON).get_json()
    assert answer["ok"] and answer["files_dropped"] == 1
    assert "was not kept: attach it again" in answer["message"]
    assert world.store.execute("SELECT count(*) FROM attachments WHERE sha256 = ?", (att["sha256"],)).fetchone()[0] == 0
    assert not path.exists(), "a file nothing refers to any more is removed from the store"


def test_a_trainees_held_reply_keeps_its_files_until_approved(world, smtp_server):
    from inbox import review

    world.store.set_agent_routing(world.ann["id"], capacity=5, languages=(), topics=(), trainee=True)
    lead = make_agent(world.store, email="lea@example.org", name="Lea Lead", role="admin")
    cid = world.conversation()
    answer = world.reply(world.client(), cid, files=[("invoice.pdf", "application/pdf", PDF)])
    assert answer.get_json()["held_for_review"]
    assert send_due(world.mainland, world.store).sent == 0
    [item] = world.store.review.items(None)
    review.approve(world.mainland, world.store, item.id, reviewer=lead)
    assert send_due(world.mainland, world.store).sent == 1
    [part] = list(received(smtp_server.messages[0]).iter_attachments())
    assert (part.get_filename(), part.get_content()) == ("invoice.pdf", PDF)


def test_undo_takes_back_every_part_of_a_reply_in_parts(undo_window, world, frozen_clock):
    cid = world.conversation(channel="chat")
    ann = world.client()
    body = world.reply(ann, cid, "Photo:", files=[("a.png", "image/png", PNG)]).get_json()
    assert [r["id"] for r in world.store.undoable_replies(cid, world.ann["id"])] == [body["undo"]["id"]], \
        "one reply to undo, however many parts it goes out in"
    assert world.store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2
    answer = ann.post(f"/conversations/{cid}/undo-send", data={"outbox_id": body["undo"]["id"],
                                                               "csrf_token": ann.token}, headers=JSON)
    assert answer.get_json()["ok"]
    assert world.store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    frozen_clock.advance(dt.timedelta(seconds=30))
    assert send_due(world.mainland, world.store).sent == 0 and SplitChat.sent == []



def test_erasing_the_customer_takes_a_reply_in_parts_and_its_files_along(world):
    cid = world.conversation(channel="chat")
    world.reply(world.client(), cid, "Photo:", files=[("a.png", "image/png", PNG)])
    customer_id = world.store.conversation(cid)["customer_id"]
    erased = world.store.erase_customer(customer_id, actor="test", now="2026-03-06T10:00:00+00:00")
    assert erased["hashes"], "the reply's file is among those that lost a reference"
    for table in ("outbox", "attachments", "messages"):
        assert world.store.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0  # noqa: S608


def test_a_public_comment_takes_files_only_in_the_private_answer(world):
    cid = world.conversation(channel="comments")
    world.store.execute("UPDATE conversations SET public = 1 WHERE id = ?", (cid,))
    ann = world.client()
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'data-needs-private="1"' in page and "Public replies on Comments cannot carry files" in page
    public = world.reply(ann, cid, files=[("photo.png", "image/png", PNG)])
    assert public.status_code == 400 and "a private message can" in public.get_json()["error"]
    private = world.reply(ann, cid, files=[("photo.png", "image/png", PNG)], private="1")
    assert private.status_code == 200
    send_due(world.mainland, world.store)
    [reply] = Comments.sent
    assert reply.public is False and [a.filename for a in reply.attachments] == ["photo.png"]


def test_the_kinds_of_file_a_channel_takes_read_as_words():
    from inbox.web.conversations import file_kinds

    whatsapp_like = ("image/jpeg", "image/png", "video/mp4", "audio/ogg", "application/pdf", "text/plain",
                     "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                     "application/vnd.ms-excel", "application/zip")
    assert file_kinds(whatsapp_like) == "images, video, audio, PDF, text files, Office documents, application/zip"
    assert file_kinds(()) == ""
