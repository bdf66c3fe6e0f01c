"""Web pages of issue 7 through the Flask test client: the answer library and the composer's picker
endpoints, routing (own status, leads' "why it went where", modes, skills) and the review queue.

Every state-changing request carries its CSRF token (and is refused without it); every id of a
conversation in another team is a 404, like an unknown one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re

import pytest

from connectors.x import weighted_length
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import send_due
from inbox.store.base import iso
from inbox.web import routing as routing_web
from tests.test_browser_smoke import live_app  # noqa: F401
from tests.test_web_auth import csrf_token, login, make_agent

JSON_HEADERS = {"Accept": "application/json"}
ORDER_ANSWER = ("Hi {{customer_first_name}},\n\n**Your order {{order_number}} is on its way.** Follow it on "
                "[the tracking page](https://shop.example/track).\n\n" + "We are sorry it takes longer than usual. " * 12
                + "\n\n{{agent_name}}")
_ids = itertools.count(1)


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "timeout": 5},
        "x": {"kind": "x", "user_id": "1000", "access_token": "t"},
    }
    return app_config


class World:
    def __init__(self, app):
        self.app = app
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self.team_a = self.store.create_team("A")
        self.team_b = self.store.create_team("B")
        self.ann = make_agent(self.store, "ann@example.org", name="Ann Agent")
        self.lea = make_agent(self.store, "lea@example.org", name="Lea Lead", role="lead")
        self.carol = make_agent(self.store, "carol@example.org", name="Carol Other")
        self.ben = make_agent(self.store, "ben@example.org", name="Ben Lead", role="lead")
        self.root = make_agent(self.store, "root@example.org", name="Root Admin", role="admin")
        for agent, team in ((self.ann, self.team_a), (self.lea, self.team_a), (self.carol, self.team_b),
                            (self.ben, self.team_b)):
            self.store.add_team_member(team, agent["id"])
        self.ingestor = self.mainland.ingestor(self.store)

    def conversation(self, *, channel="mail", team="A", text="Where is my order? It has not arrived.",
                     public=False, who="jane@example.org", name="Jane Doe"):
        kind = "email" if channel == "mail" else "x"
        item = InboundItem(channel=channel, external_id=f"e{next(_ids)}", author=Author(who, name, kind), text=text,
                           subject="Order" if channel == "mail" else None, public=public,
                           thread_key=f"t{next(_ids)}" if channel == "x" else None)
        [cid] = self.ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False
                                     ).new_conversations
        self.store.set_conversation_team(cid, {"A": self.team_a, "B": self.team_b, None: None}[team])
        return cid

    def answer(self, title="Where is my order", body="Your order is on its way, {{customer_first_name}}.",
               language="en", tags=("shipping", "order")):
        return self.store.answers.create(title=title, body=body, language=language, tags=list(tags),
                                         owner_id=self.lea["id"], now=iso(dt.datetime.now(dt.UTC)))

    def client(self, who):
        client = self.app.test_client()
        assert login(client, email=f"{who}@example.org").status_code == 302
        client.token = csrf_token(client, "/answers")
        return client


@pytest.fixture
def world(app):
    world = World(app)
    yield world
    world.store.close()


def post(client, path, data=None, *, token=True, **kw):
    data = dict(data or {})
    if token:
        data["csrf_token"] = client.token
    return client.post(path, data=data, **kw)


def post_json(client, path, payload, *, token=True):
    headers = {**JSON_HEADERS, **({"X-CSRFToken": client.token} if token else {})}
    return client.post(path, data=json.dumps(payload), content_type="application/json", headers=headers)


# The library ---------------------------------------------------------------------------------------

def test_everyone_reads_the_library_and_only_leads_write_it(world):
    world.answer()
    ann = world.client("ann")
    assert "Where is my order" in ann.get("/answers").get_data(as_text=True)
    assert ann.get("/answers/new").status_code == 403
    assert post(ann, "/answers/new", {"title": "Mine", "body": "x", "language": "en"}).status_code == 403
    assert len(world.store.answers.all()) == 1

    lea = world.client("lea")
    form = {"title": "Refunds", "body": "We refund within 5 days.", "language": "en", "tags": "Refund, returns"}
    assert post(lea, "/answers/new", form, token=False).status_code == 400, "no CSRF token, no answer"
    response = post(lea, "/answers/new", form)
    assert response.status_code == 302
    created = [a for a in world.store.answers.all() if a.title == "Refunds"][0]
    assert created.tags == "refund returns" and created.owner_id == world.lea["id"]


def test_an_edit_is_shown_as_a_new_version_with_what_changed(world):
    answer_id = world.answer(body="Line one.\nOld line.")
    lea = world.client("lea")
    response = post(lea, f"/answers/{answer_id}/edit", {"title": "Where is my order", "body": "Line one.\nNew line.",
                                                        "language": "en", "tags": "shipping order"})
    assert response.status_code == 302
    page = lea.get(f"/answers/{answer_id}").get_data(as_text=True)
    assert "Version 2" in page and "Version 1" in page
    assert re.search(r'class="diff-removed">− Old line\.', page)
    assert re.search(r'class="diff-added">\+ New line\.', page)


def test_an_unknown_variable_or_missing_title_is_refused_with_the_form_kept(world):
    lea = world.client("lea")
    response = post(lea, "/answers/new", {"title": "", "body": "Hi {{nickname}}", "language": "en"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Give the answer a title." in page and "{{nickname}}" in page
    assert world.store.answers.all() == []


def test_archived_answers_leave_the_list_and_the_picker(world):
    answer_id = world.answer()
    cid = world.conversation()
    lea = world.client("lea")
    assert post(lea, f"/answers/{answer_id}/active", {"active": "0"}).status_code == 302
    assert "Where is my order" not in lea.get("/answers").get_data(as_text=True)
    assert "Where is my order" in lea.get("/answers?archived=1").get_data(as_text=True)
    assert post_json(lea, f"/answers/{answer_id}/render", {"conversation_id": cid}).status_code == 404


# The composer's picker -------------------------------------------------------------------------------

def test_suggestions_for_a_conversation_and_a_search(world):
    world.answer()
    world.answer(title="Refund for a returned item", body="We refund returned items within 5 days.",
                 tags=("refund",))
    cid = world.conversation()
    ann = world.client("ann")
    data = ann.get(f"/conversations/{cid}/suggested-answers", headers=JSON_HEADERS).get_json()
    assert data["ok"] and data["language"] == "en"
    assert data["suggestions"][0]["title"] == "Where is my order"
    found = ann.get(f"/conversations/{cid}/suggested-answers?q=refund").get_json()["results"]
    assert [r["title"] for r in found] == ["Refund for a returned item"]


def test_another_teams_conversation_is_404_for_the_picker(world):
    answer_id = world.answer()
    hidden = world.conversation(team="B")
    ann = world.client("ann")
    assert ann.get(f"/conversations/{hidden}/suggested-answers").status_code == 404
    assert ann.get("/conversations/999999/suggested-answers").status_code == 404
    assert post_json(ann, f"/answers/{answer_id}/render", {"conversation_id": hidden}).status_code == 404
    assert world.store.answers.get(answer_id).uses == 0


def test_inserting_into_a_public_x_reply_adapts_it_and_warns(world):
    answer_id = world.answer(title="Order on its way", body=ORDER_ANSWER)
    cid = world.conversation(channel="x", public=True, who="2002", name="Jane Doe",
                             text="@shop where is my order??")
    world.store.set_customer_attribute(world.store.conversation(cid)["customer_id"], "order_number", "A-99812",
                                       iso(dt.datetime.now(dt.UTC)))
    ann = world.client("ann")
    assert post_json(ann, f"/answers/{answer_id}/render", {"conversation_id": cid}, token=False).status_code == 400

    data = post_json(ann, f"/answers/{answer_id}/render", {"conversation_id": cid}).get_json()
    assert data["ok"] and data["text"].startswith("Hi Jane,")
    assert "**" not in data["text"] and "the tracking page (https://shop.example/track)" in data["text"]
    assert data["text"].rstrip().endswith("Ann Agent")
    codes = {w["code"]: w["message"] for w in data["warnings"]}
    assert set(codes) == {"formatting_removed", "too_long", "personal_data_public"}
    assert "private message" in codes["personal_data_public"]
    assert data["max_length"] == 280 and not data["fits"]
    assert weighted_length(data["short_text"]) <= 280
    assert world.store.answers.get(answer_id).uses == 1, "the pick is remembered"


def test_inserting_into_an_email_keeps_the_formatting(world):
    answer_id = world.answer(body="**Bold** news, {{customer_first_name}}: order {{order_number}}.")
    cid = world.conversation()
    data = post_json(world.client("ann"), f"/answers/{answer_id}/render", {"conversation_id": cid}).get_json()
    assert data["text"] == "**Bold** news, Jane: order {{order_number}}."
    assert [w["code"] for w in data["warnings"]] == ["missing_variables"]
    assert "{{order_number}}" in data["warnings"][0]["message"]


def test_the_conversation_page_offers_the_picker(world):
    cid = world.conversation()
    page = world.client("ann").get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'id="answer-picker"' in page and f'/conversations/{cid}/suggested-answers' in page
    assert "/static/answers.js" in page


# Routing ----------------------------------------------------------------------------------------------

def test_an_agent_sets_their_status_and_new_conversations_follow(world):
    ann = world.client("ann")
    assert post(ann, "/routing/status", {"status": "available"}, token=False).status_code == 400
    assert post(ann, "/routing/status", {"status": "available"}).status_code == 302
    assert world.store.agent_routing(world.ann["id"])["routing_status"] == "available"
    assert "Available" in ann.get("/routing/status").get_data(as_text=True)
    cid = world.conversation(team=None)
    assert world.store.conversation(cid)["assignee_id"] == world.ann["id"], "routed as it arrived"

    lea = world.client("lea")
    assert post(lea, "/routing/status", {"status": "available"}).status_code == 302
    assert post(ann, "/routing/status", {"status": "offline"}).status_code == 302
    assert world.store.conversation(cid)["assignee_id"] == world.lea["id"], "the waiting customer went on to Lea"
    page = lea.get(f"/routing?conversation={cid}").get_data(as_text=True)
    assert "speaks the language and had the most room" in page and "the previous agent was offline" in page
    assert "from Ann Agent" in page


def test_leads_see_routing_but_agents_do_not(world):
    assert world.client("ann").get("/routing").status_code == 403
    assert world.client("lea").get("/routing").status_code == 200


def test_the_routing_log_of_another_teams_conversation_is_hidden(world):
    hidden = world.conversation(team="B")
    world.store.log_routing_decision(hidden, agent_id=None, previous_agent_id=None, team_id=world.team_b,
                                     reason="queued", detail={"why": "nobody_free"}, now=iso(dt.datetime.now(dt.UTC)))
    lea = world.client("lea")
    assert lea.get(f"/routing?conversation={hidden}").status_code == 404
    assert f"/conversations/{hidden}" not in lea.get("/routing").get_data(as_text=True)
    assert world.client("ben").get(f"/routing?conversation={hidden}").status_code == 200


def test_modes_are_changed_by_the_teams_lead_and_the_pool_by_managers(world):
    lea = world.client("lea")
    assert post(lea, "/routing/mode", {"team": world.team_a, "mode": "round_robin"}).status_code == 302
    assert world.store.routing_mode(world.team_a) == "round_robin"
    assert post(lea, "/routing/mode", {"team": world.team_b, "mode": "manual"}).status_code == 403
    assert post(lea, "/routing/mode", {"team": "pool", "mode": "manual"}).status_code == 403
    assert post(lea, "/routing/mode", {"team": world.team_a, "mode": "chaos"}).status_code == 400
    assert post(world.client("root"), "/routing/mode", {"team": "pool", "mode": "manual"}).status_code == 302
    assert world.store.routing_mode(None) == "manual" and world.store.routing_mode(world.team_b) == "auto"


def test_a_lead_sets_skills_capacity_and_trainee_for_their_team_only(world):
    lea = world.client("lea")
    url = f"/routing/agents/{world.ann['id']}"
    assert lea.get(url).status_code == 200
    response = post(lea, url, {"capacity": "7", "languages": "nl, EN", "topics": "refund", "trainee": "1"})
    assert response.status_code == 302
    ann = world.store.agent_routing(world.ann["id"])
    assert (ann["capacity"], ann["languages"], ann["topics"], ann["trainee"]) == (7, "en nl", "refund", 1)
    assert post(lea, url, {"capacity": "-1", "languages": "english"}).status_code == 400
    assert lea.get(f"/routing/agents/{world.carol['id']}").status_code == 404
    assert world.client("ann").get(url).status_code == 403


def test_a_lead_who_is_a_trainee_cannot_clear_their_own_trainee_flag(world):
    world.store.set_agent_routing(world.lea["id"], capacity=5, languages=(), topics=(), trainee=True)
    lea = world.client("lea")
    url = f"/routing/agents/{world.lea['id']}"
    page = lea.get(url).get_data(as_text=True)
    assert "Only another lead or an admin can change this for you." in page
    assert post(lea, url, {"capacity": "6", "languages": "", "topics": ""}).status_code == 302
    mine = world.store.agent_routing(world.lea["id"])
    assert (mine["capacity"], mine["trainee"]) == (6, 1), "their own capacity changes; the trainee flag stays"
    assert post(world.client("root"), url, {"capacity": "6", "languages": "", "topics": ""}).status_code == 302
    assert world.store.agent_routing(world.lea["id"])["trainee"] == 0, "an admin may clear it"


def test_activity_brings_back_an_agent_whom_inactivity_made_away(world):
    world.store.set_agent_status(world.ann["id"], "away", iso(dt.datetime.now(dt.UTC)), auto=True)
    routing_web._touched.clear()
    world.client("ann").get("/answers")
    assert world.store.agent_routing(world.ann["id"])["routing_status"] == "available"


# Review ---------------------------------------------------------------------------------------------------

@pytest.fixture
def trainee(world):
    world.store.set_agent_routing(world.ann["id"], capacity=5, languages=(), topics=(), trainee=True)
    return world.ann


def test_a_trainees_reply_waits_for_review_and_the_lead_approves_an_edited_version(world, trainee):
    cid = world.conversation()
    ann = world.client("ann")
    response = post(ann, f"/conversations/{cid}/reply", {"text": "its coming", "seen_up_to": 1},
                    headers=JSON_HEADERS)
    assert response.status_code == 200 and "waits for a lead's review" in json.dumps(response.get_json())
    assert [m for m in world.store.thread_messages(cid) if m["direction"] == "out"] == []
    assert "reply waits for review" in ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert ann.get("/review").status_code == 403

    lea = world.client("lea")
    page = lea.get("/review").get_data(as_text=True)
    [item] = world.store.review.items(None)
    assert f"/review/{item.id}" in page and "its coming" in page
    assert "Where is my order?" in lea.get(f"/review/{item.id}").get_data(as_text=True)
    assert post(lea, f"/review/{item.id}/approve", {"text": "Hi Jane, it ships today."},
                token=False).status_code == 400
    assert post(lea, f"/review/{item.id}/approve", {"text": "Hi Jane, it ships today."}).status_code == 302
    [reply] = [m for m in world.store.thread_messages(cid) if m["direction"] == "out"]
    assert reply["text"] == "Hi Jane, it ships today."
    assert world.store.review.item(item.id).state == "approved"


def test_a_lead_who_is_a_trainee_cannot_approve_their_own_held_reply(world):
    world.store.set_agent_routing(world.lea["id"], capacity=5, languages=(), topics=(), trainee=True)
    cid = world.conversation()
    lea = world.client("lea")
    post(lea, f"/conversations/{cid}/reply", {"text": "All sorted!", "seen_up_to": 1}, headers=JSON_HEADERS)
    [item] = world.store.review.items(None)
    response = post(lea, f"/review/{item.id}/approve", {"text": "All sorted!"})
    assert response.status_code == 302
    assert "another lead has to review your own reply" in lea.get(response.headers["Location"]).get_data(as_text=True)
    assert world.store.review.item(item.id).state == "pending_review"
    assert [m for m in world.store.thread_messages(cid) if m["direction"] == "out"] == []
    assert post(world.client("root"), f"/review/{item.id}/approve", {"text": "All sorted!"}).status_code == 302
    assert world.store.review.item(item.id).state == "approved"


def test_a_trainees_record_leaves_out_conversations_moved_to_another_team(world, trainee):
    cid = world.conversation(text="Secret order question")
    post(world.client("ann"), f"/conversations/{cid}/reply", {"text": "held words", "seen_up_to": 1},
         headers=JSON_HEADERS)
    ann = world.client("ann")
    assert "held words" in ann.get(f"/review/agents/{world.ann['id']}").get_data(as_text=True)
    world.store.set_conversation_team(cid, world.team_b)
    assert "held words" not in ann.get(f"/review/agents/{world.ann['id']}").get_data(as_text=True)


def test_a_returned_reply_keeps_the_feedback_on_the_trainees_page(world, trainee):
    cid = world.conversation()
    post(world.client("ann"), f"/conversations/{cid}/reply", {"text": "dunno", "seen_up_to": 1}, headers=JSON_HEADERS)
    [item] = world.store.review.items(None)
    lea = world.client("lea")
    assert post(lea, f"/review/{item.id}/return", {"comment": ""}).status_code == 302
    assert world.store.review.item(item.id).state == "pending_review", "a return needs a comment"
    assert post(lea, f"/review/{item.id}/return", {"comment": "Look the order up first."}).status_code == 302
    mine = world.client("ann").get(f"/review/agents/{world.ann['id']}").get_data(as_text=True)
    assert "Look the order up first." in mine and "returned" in mine
    assert "Look the order up first." in lea.get(f"/review/agents/{world.ann['id']}").get_data(as_text=True)
    assert world.client("carol").get(f"/review/agents/{world.ann['id']}").status_code == 404
    assert send_due(world.mainland, world.store).sent == 0


def test_a_lead_of_another_team_cannot_see_or_decide_the_item(world, trainee):
    cid = world.conversation()
    post(world.client("ann"), f"/conversations/{cid}/reply", {"text": "hello", "seen_up_to": 1}, headers=JSON_HEADERS)
    [item] = world.store.review.items(None)
    ben = world.client("ben")
    assert ben.get(f"/review/{item.id}").status_code == 404
    assert post(ben, f"/review/{item.id}/approve", {}).status_code == 404
    assert f"/review/{item.id}" not in ben.get("/review").get_data(as_text=True)
    assert ben.get("/review/999999").status_code == 404
    assert world.store.review.item(item.id).state == "pending_review"


# In a real browser ---------------------------------------------------------------------------------------

@pytest.mark.browser
def test_chromium_inserts_an_answer_fitted_to_x_and_offers_the_short_version(app, world, live_app):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from tests.test_browser_smoke import CHROMIUM, _require_chromium
    from tests.test_web_auth import PASSWORD

    _require_chromium()
    world.answer(title="Order on its way", body=ORDER_ANSWER.replace("{{order_number}}", "soon"))
    cid = world.conversation(channel="x", who="3003", name="Jane Doe", text="@shop where is my order??")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{live_app}/login")
            page.fill("#email", "ann@example.org")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_app}/")
            page.goto(f"{live_app}/conversations/{cid}")
            page.click("#answer-picker summary")
            page.locator(".answer-picker-list button", has_text="Order on its way").click()
            page.wait_for_selector(".answer-picker-warnings p[data-code=too_long]")
            text = page.input_value("#reply-text")
            assert text.startswith("Hi Jane,") and "**" not in text and len(text) > 280
            page.locator(".answer-picker-warnings p[data-code=too_long] button").click()
            short = page.input_value("#reply-text")
            assert short.startswith("Hi Jane,") and weighted_length(short) <= 280
            assert errors == []
        finally:
            browser.close()
