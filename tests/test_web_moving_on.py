"""Moving on after a reply, and a trainee's held reply, on the conversation page.

- Send and set the status in one action: "Send" sets the team's default (pending unless the team
  says otherwise), "Send + pending" / "Send + resolve" / "Send, keep open" choose; the status goes
  through the same lifecycle code and audit as the status buttons; a held reply changes nothing.
- After a status change that takes the conversation out of the agent's hands, the next
  conversation of the queue view they came from opens, or the view itself when there is none.
- A trainee's held reply stays in the thread as "Waiting for review"; a returned one shows the
  lead's feedback and goes back into the trainee's composer; an approved one is a sent reply.
  The review page shows the whole conversation.
- Our own sent replies show their formatting; message actions sit in a per-message menu.

No server is needed: replies are only queued here (the email channel's SMTP is never reached).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.test_web_conversation_actions import World, post

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {
        # An email channel (formatted replies); port 9 (discard): nothing is sent in these tests.
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": "127.0.0.1",
                 "smtp_port": 9, "smtp_security": "none", "timeout": 1},
    }
    return app_config


@pytest.fixture
def world(app, frozen_clock):
    w = World(app)
    w.clock = frozen_clock
    yield w
    w.store.close()


def three_conversations(world) -> list[int]:
    """Three open conversations of team A, the newest activity last (the queue lists it first)."""
    ids = []
    for n in range(3):
        world.clock.advance(MINUTE)
        cid = world.conversation(subject=f"Question {n}", sender=f"Customer {n} <c{n}@example.net>")
        world.store.set_conversation_status(cid, "open", None, world.store.conversation(cid)["last_message_at"])
        ids.append(cid)
    return ids


def statuses(world, ids):
    return [world.store.conversation(cid)["status"] for cid in ids]


def status_audits(world, cid):
    return [r[0] for r in world.store.execute(
        "SELECT action FROM audit_log WHERE object_id = ? AND action = 'status'", (str(cid),))]


# Send and set the status in one action --------------------------------------------------------------

def test_the_composer_offers_send_with_the_teams_default_and_the_other_statuses(world):
    cid = world.conversation()
    page = world.client().get(f"/conversations/{cid}").get_data(as_text=True)
    send = re.search(r'<button type="submit" class="primary" id="send-reply"[^>]*>', page).group(0)
    assert 'name="then_status" value="pending"' in send, "pending is the default"
    assert "Send + resolve" in page and "Send, keep open" in page
    assert 'id="send-reply-pending"' not in page, "the default is not offered twice"

    world.store.set_team_default_send_status(world.team_a, "resolved")
    page = world.client().get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'id="send-reply" name="then_status" value="resolved"' in page
    assert "Send + pending" in page and "Send + resolve" not in page


def test_send_plus_resolve_sets_the_status_like_the_status_button_and_opens_the_next_conversation(world):
    first, second, third = three_conversations(world)
    ann = world.client()
    response = post(ann, f"/conversations/{third}/reply",
                    {"text": "Done, thanks!", "seen_up_to": 99, "then_status": "resolved", "view": "status=open"},
                    json=False)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/conversations/{second}?view=status%3Dopen", "the next one of the view"
    assert statuses(world, [first, second, third]) == ["open", "open", "resolved"]
    assert status_audits(world, third) == ["status"], "audited as the status buttons are"
    assert world.messages(third)[-1]["text"] == "Done, thanks!"
    page = ann.get(response.headers["Location"]).get_data(as_text=True)
    assert "Reply queued" in page and "Status: Resolved." in page, "the next page says what happened"
    assert 'name="view" value="status=open"' in page, "the view goes along"


def test_plain_send_sets_the_teams_default_and_json_says_where_to_go(world):
    first, second = three_conversations(world)[:2]
    ann = world.client()
    seen = world.store.newest_message_id(second)
    response = post(ann, f"/conversations/{second}/reply", {"text": "We are on it.", "seen_up_to": seen})
    body = response.get_json()
    assert response.status_code == 200 and body["ok"] and body["status"] == "pending"
    assert body["next_url"] == f"/conversations/{first}", "the default queue when no view was given"
    assert "We are on it." in body["html"]
    assert statuses(world, [second]) == ["pending"]


def test_send_keep_open_and_an_open_default_stay_on_the_conversation(world):
    cid = world.conversation()
    ann = world.client()
    kept = post(ann, f"/conversations/{cid}/reply", {"text": "One moment.", "seen_up_to": 99, "then_status": "open"})
    assert kept.get_json()["ok"] and "next_url" not in kept.get_json()
    assert statuses(world, [cid]) == ["open"]
    world.store.set_team_default_send_status(world.team_a, "open")
    form = post(ann, f"/conversations/{cid}/reply", {"text": "Still on it.", "seen_up_to": 99}, json=False)
    assert form.status_code == 303 and form.headers["Location"].startswith(f"/conversations/{cid}")


def test_an_unknown_status_with_a_reply_is_refused_and_nothing_is_queued(world):
    cid = world.conversation()
    response = post(world.client(), f"/conversations/{cid}/reply",
                    {"text": "Hello", "seen_up_to": 99, "then_status": "spam"})
    assert response.status_code == 400 and world.outbox_count() == 0


# Moving on after a status change --------------------------------------------------------------------

def test_a_status_button_opens_the_next_conversation_of_the_view_then_the_view_itself(world):
    first, second, third = three_conversations(world)
    ann = world.client()
    resolved = post(ann, f"/conversations/{third}/status", {"status": "resolved", "view": "sort=activity"},
                    json=False)
    assert resolved.headers["Location"] == f"/conversations/{second}", "the default view needs no parameter"
    snoozed = post(ann, f"/conversations/{first}/status", {"status": "snoozed", "snooze": "1d",
                                                            "view": "status=open"}, json=False)
    assert snoozed.headers["Location"] == "/?status=open", "nothing after it: back to the view"
    reopened = post(ann, f"/conversations/{third}/status", {"status": "open", "view": "status=open"}, json=False)
    assert reopened.headers["Location"] == f"/conversations/{third}", "reopening keeps the agent here"


def test_the_page_keeps_the_view_it_was_opened_from(world):
    cid = world.conversation()
    ann = world.client()
    from_queue = ann.get(f"/conversations/{cid}", headers={"Referer": "http://localhost/?status=pending&sort=waiting"})
    page = from_queue.get_data(as_text=True)
    assert 'name="view" value="status=pending&amp;sort=waiting"' in page
    assert 'href="/?status=pending&amp;sort=waiting" id="nav-queue"' in page
    hostile = ann.get(f"/conversations/{cid}?view=status%3Dnope%26x%3D%3Cscript%3E").get_data(as_text=True)
    assert 'name="view" value=""' in hostile, "a view outside the queue's allow-lists is dropped"


# A trainee's held reply --------------------------------------------------------------------------------

@pytest.fixture
def trainee(world):
    world.store.set_agent_routing(world.ann["id"], capacity=5, languages=(), topics=(), trainee=True)
    return world.ann


def test_a_trainees_held_reply_stays_in_the_thread_and_changes_no_status(world, trainee):
    cid = world.conversation()
    ann = world.client()
    response = post(ann, f"/conversations/{cid}/reply",
                    {"text": "It ships today.", "seen_up_to": 99, "then_status": "resolved"})
    body = response.get_json()
    assert body["ok"] and body["held_for_review"] and "waits for a lead's review" in body["message"]
    assert "next_url" not in body, "the trainee stays: nothing was sent"
    assert "Waiting for review" in body["review_html"] and "It ships today." in body["review_html"]
    assert statuses(world, [cid]) == ["new"] and status_audits(world, cid) == []
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    held = page.split('id="held-replies"')[1].split('id="new-messages"')[0]
    assert "It ships today." in held and "Waiting for review" in held
    form = post(ann, f"/conversations/{cid}/reply", {"text": "Again", "seen_up_to": 99}, json=False)
    assert form.status_code == 303
    assert "waits for a lead" in ann.get(form.headers["Location"]).get_data(as_text=True), "a flash says so"


def test_a_returned_reply_shows_the_feedback_and_goes_back_into_the_composer(world, trainee):
    cid = world.conversation()
    ann, root = world.client(), world.client("root")
    post(ann, f"/conversations/{cid}/reply", {"text": "its coming", "seen_up_to": 99})
    [item] = world.store.review.items(None)
    post(root, f"/review/{item.id}/return", {"comment": "Greet Jane and give a date."}, json=False)
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    held = page.split('id="held-replies"')[1].split('id="new-messages"')[0]
    assert "Greet Jane and give a date." in held and "its coming" in held and "Edit and resubmit" in held
    again = ann.get(f"/conversations/{cid}?resubmit={item.id}").get_data(as_text=True)
    assert re.search(r'<textarea name="text" id="reply-text"[^>]*>its coming</textarea>', again)
    other = world.client("bob").get(f"/conversations/{cid}?resubmit={item.id}").get_data(as_text=True)
    assert "Edit and resubmit" not in other and not re.search(r'id="reply-text"[^>]*>its coming<', other)
    post(ann, f"/conversations/{cid}/reply", {"text": "Hi Jane, it arrives Friday.", "seen_up_to": 99})
    held = ann.get(f"/conversations/{cid}").get_data(as_text=True).split('id="held-replies"')[1]
    assert "Greet Jane" not in held.split('id="new-messages"')[0], "the resubmitted reply replaces it"


def test_an_approved_reply_is_a_sent_reply_and_the_review_page_shows_the_whole_thread(world, trainee):
    cid = world.conversation(body="Where is my order?")
    ann, bob, root = world.client(), world.client("bob"), world.client("root")
    post(bob, f"/conversations/{cid}/notes", {"text": "Warehouse says Friday.", "seen_up_to": 99})
    post(ann, f"/conversations/{cid}/reply", {"text": "It arrives **Friday**.", "seen_up_to": 99})
    [item] = world.store.review.items(None)
    review_page = root.get(f"/review/{item.id}").get_data(as_text=True)
    assert "Where is my order?" in review_page and "Warehouse says Friday." in review_page
    assert review_page.index("Where is my order?") < review_page.index("Warehouse says Friday.")
    post(root, f"/review/{item.id}/approve", {}, json=False)
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Waiting for review" not in page
    reply = page.split('class="message direction-out"')[1]
    assert "<strong>Friday</strong>" in reply and 'data-delivery-status="queued"' in reply


# Formatting and the message menu --------------------------------------------------------------------------

def test_our_sent_email_shows_its_formatting_sanitised(world):
    cid = world.conversation()
    ann = world.client()
    post(ann, f"/conversations/{cid}/reply", {"text": "**Sorry!** See [the page](https://example.org/help).\n"
                                                     "<img src=x onerror=alert(1)>", "seen_up_to": 99,
                                             "then_status": "open"})
    assert "<strong>Sorry!</strong>" in world.messages(cid)[-1]["html"], "sent as HTML and plain text"
    page = ann.get(f"/conversations/{cid}").get_data(as_text=True)
    reply = page.split('class="message direction-out"')[1]
    assert '<div class="text rendered"><p><strong>Sorry!</strong> See <a href="https://example.org/help"' in reply
    assert "**Sorry!**" not in reply and "<img" not in reply and "&lt;img src=x" in reply


def test_message_actions_are_in_a_menu_per_message(world):
    cid = world.conversation()
    page = world.client().get(f"/conversations/{cid}").get_data(as_text=True)
    inbound = page.split('class="message direction-in"')[1].split("</section>")[0]
    menu = inbound.split('<details class="message-menu">')[1].split("</details>")[0]
    assert 'aria-label="Message actions"' in menu and "Download original" in menu and "Split off" in menu
    assert inbound.count("Split off") == 1, "not shown outside the menu"
