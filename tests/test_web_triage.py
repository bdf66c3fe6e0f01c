"""The people's side of the triage flow (#14): /review/triage, blocking senders, /admin/blocks, spam and
not-spam on the conversation page teaching the model, and the spam check on the reports page."""

from __future__ import annotations

import json
import sys

import pytest

from inbox import triage_flow
from inbox.mail import parse_email
from inbox.models import FetchResult
from tests import spam_double
from tests.mailfactory import raw_mail
from tests.test_web_auth import csrf_token, login, make_agent

JSON = {"Accept": "application/json"}


@pytest.fixture(autouse=True)
def spam_model(monkeypatch):
    monkeypatch.setitem(sys.modules, "inbox.spam_model", spam_double)
    monkeypatch.setattr(triage_flow, "_models", {})


class World:
    def __init__(self, app):
        self.mainland = app.extensions["mainland"]
        self.app = app
        self.store = self.mainland.open_store()
        self.team = self.store.create_team("A")
        self.agent = make_agent(self.store, email="ann@example.org", name="Ann Agent")
        self.lead = make_agent(self.store, email="lena@example.org", name="Lena Lead", role="lead")
        self.manager = make_agent(self.store, email="max@example.org", name="Max Manager", role="manager")
        self.admin = make_agent(self.store, email="root@example.org", name="Root Admin", role="admin")
        for person in (self.agent, self.lead):
            self.store.add_team_member(self.team, person["id"])
        self._n = 0

    def mail(self, sender="Promo <deals@promo.example>", body="A special offer for you", subject="Hi") -> int:
        self._n += 1
        item = parse_email(raw_mail(sender=sender, body=body, subject=subject, message_id=f"<m{self._n}@x>"),
                           channel="mail")
        report = self.mainland.ingestor(self.store).ingest("mail", FetchResult(items=[item], cursor=None),
                                                           save_cursor=False)
        [message_id] = report.message_ids
        conversation_id = self.store.message(message_id)["conversation_id"]
        self.store.set_conversation_team(conversation_id, self.team)
        return conversation_id

    def client(self, person):
        client = self.app.test_client()
        assert login(client, email=person["email"]).status_code == 302
        client.token = csrf_token(client, "/notifications")
        return client

    def model(self):
        return triage_flow.model_for(self.mainland)


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def post(client, path, data=None, *, as_json=False):
    return client.post(path, data={"csrf_token": client.token, **(data or {})}, headers=JSON if as_json else {})


def test_the_triage_list_shows_what_a_lead_needs_to_decide(world):
    world.mail()
    page = world.client(world.lead).get("/review/triage")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for shown in ("A special offer for you", "deals@promo.example", "70%", "the spam model", "mail"):
        assert shown in html
    assert world.client(world.agent).get("/review/triage").status_code == 403
    assert 'Triage <span class="badge badge-count">1</span>' in html, "the menu counts what waits"


def test_customer_puts_it_in_the_queue_and_is_audited(world):
    cid = world.mail()
    [review] = world.store.triage.waiting("1 = 1", [])
    lena = world.client(world.lead)
    response = post(lena, f"/review/triage/{review.id}/decide", {"verdict": "customer"}, as_json=True)
    assert response.status_code == 200 and response.get_json()["ok"] is True
    conversation = world.store.conversation(cid)
    assert (conversation["status"], conversation["triage_hold"]) == ("new", 0)
    assert "A special offer" in lena.get("/").get_data(as_text=True), "in the queue now"
    assert world.model().lessons[-1][1] is False
    [details] = world.store.execute("SELECT details FROM audit_log WHERE action = 'triage_decided'").fetchone()
    assert json.loads(details)["after"] == "customer"
    again = post(lena, f"/review/triage/{review.id}/decide", {"verdict": "spam"}, as_json=True)
    assert again.status_code == 409, "decided once"


def test_a_lead_of_another_team_cannot_decide(world):
    cid = world.mail()
    other = world.store.create_team("B")
    world.store.set_conversation_team(cid, other)
    [review] = world.store.triage.waiting("1 = 1", [])
    lena = world.client(world.lead)
    assert "A special offer" not in lena.get("/review/triage").get_data(as_text=True)
    assert post(lena, f"/review/triage/{review.id}/decide", {"verdict": "spam"}).status_code == 404
    assert world.store.conversation(cid)["triage_hold"] == 1


def test_block_from_the_conversation_page_then_unblock_at_admin_blocks(world):
    cid = world.mail(sender="Sam <sam@shady.example>", body="Hello, a question about my order")
    lena = world.client(world.lead)
    page = lena.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Block sender" in page and "shady.example" in page
    assert "Block sender" not in world.client(world.agent).get(f"/conversations/{cid}").get_data(as_text=True)
    response = post(lena, f"/conversations/{cid}/block", {"kind": "domain", "identity_kind": "email",
                                                          "value": "shady.example"})
    assert response.status_code == 302
    later = world.mail(sender="Other <other@shady.example>", body="Hello, a question about my order")
    assert world.store.conversation(later)["status"] == "spam", "the whole domain goes straight to spam"
    refused = post(lena, f"/conversations/{cid}/block", {"kind": "domain", "identity_kind": "email",
                                                         "value": "example.org"})
    assert refused.status_code == 400, "only the conversation's own sender can be blocked from it"
    assert world.client(world.lead).get("/admin/blocks").status_code == 403
    root = world.client(world.admin)
    listing = root.get("/admin/blocks").get_data(as_text=True)
    assert "@shady.example" in listing and "Lena Lead" in listing
    [block] = world.store.triage.blocks()
    assert post(root, f"/admin/blocks/{block.id}/remove").status_code == 302
    assert world.store.triage.blocks() == []
    actions = [r[0] for r in world.store.execute(
        "SELECT action FROM audit_log WHERE action LIKE 'sender_%' ORDER BY id")]
    assert actions == ["sender_blocked", "sender_unblocked"]
    assert world.store.conversation(world.mail(sender="Third <third@shady.example>",
                                               body="Hello, a question"))["status"] == "new"


def test_spam_and_not_spam_on_the_conversation_page_teach_the_model(world):
    cid = world.mail(sender="Nina <nina@example.net>", body="Where is my parcel?")
    ann = world.client(world.agent)
    assert post(ann, f"/conversations/{cid}/status", {"status": "spam"}, as_json=True).status_code == 200
    [(facts, is_spam)] = world.model().lessons
    assert (facts.sender, is_spam) == ("nina@example.net", True)
    assert post(ann, f"/conversations/{cid}/status", {"status": "open"}, as_json=True).status_code == 200
    assert world.model().lessons[-1][1] is False
    marks = [json.loads(r[0])["after"] for r in world.store.execute(
        "SELECT details FROM audit_log WHERE action = 'triage_marked' ORDER BY id")]
    assert marks == ["spam", "customer"]


def test_spam_in_bulk_from_the_queue_teaches_the_model_too(world):
    first = world.mail(sender="Una <una@example.net>", body="Where is my parcel?")
    second = world.mail(sender="Vic <vic@example.net>", body="Where is my parcel?")
    ann = world.client(world.agent)
    response = ann.post("/bulk", data={"csrf_token": ann.token, "ids": [str(first), str(second)], "op": "status:spam"})
    assert response.status_code == 302
    assert {world.store.conversation(c)["status"] for c in (first, second)} == {"spam"}
    assert sorted((f.sender, spam) for f, spam in world.model().lessons) == [("una@example.net", True),
                                                                             ("vic@example.net", True)]


def test_the_held_conversation_says_so_and_search_finds_spam_by_status(world):
    cid = world.mail(body="Casino bonus for you")
    held = world.mail(sender="Gil <gil@example.net>", body="A special offer? I need ten chairs")
    lena = world.client(world.lead)
    assert "Waiting in triage" in lena.get(f"/conversations/{held}").get_data(as_text=True)
    found = lena.get("/search?q=casino&status=spam").get_data(as_text=True)
    assert f"/conversations/{cid}" in found
    assert f"/conversations/{cid}" not in lena.get("/search?q=casino&status=open").get_data(as_text=True)
    assert lena.get("/search?q=casino&status=bogus").status_code == 400


def test_the_reports_page_shows_the_spam_checks_precision_and_recall(world):
    world.mainland.ingestor(world.store)  # nothing to sample yet
    assert "No audit sample has been decided yet" in world.client(world.manager).get("/reports").get_data(
        as_text=True)
    cid = world.mail(body="Casino bonus")
    with world.store.write():
        world.store.triage.add_review(message_id=world.store.thread_messages(cid)[0]["id"], conversation_id=cid,
                                      channel="mail", kind="sample", machine_verdict="spam", probability=0.97,
                                      model_version=1, reason="model", facts={"channel": "mail", "text": "x"},
                                      now="2026-03-04T09:00:00.000000Z")
    [review] = world.store.triage.waiting("1 = 1", [])
    post(world.client(world.admin), f"/review/triage/{review.id}/decide", {"verdict": "spam"})
    html = world.client(world.manager).get("/reports").get_data(as_text=True)
    assert 'id="spam-check"' in html and "100%" in html
