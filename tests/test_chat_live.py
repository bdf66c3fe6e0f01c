"""The website chat while both are there (#18): typing both ways, read markers, and the widget's long poll.

The visitor talks to the chat's endpoints with the Flask test client; the agent reads their live
stream as a polling client does (`/events?once=1`, tests/test_live_workspace_events.py). Typing goes
stale by the frozen clock, never by waiting. A long poll is held in a thread of its own; the test
waits for it to be held (`waits_of(app).wait_until`) and for its answer (`join`), never for a fixed time.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter

import pytest

from inbox import clock, create_app
from inbox.outbox import queue_reply, send_due
from inbox.store.base import iso
from inbox.web import chat as chat_web
from inbox.web.live import LiveState
from tests import test_chat
from tests.test_chat import ALLOWED, EVIL, _answered, headers, history, post, visitor
from tests.test_live_workspace_events import Poller, named
from tests.test_web_auth import csrf_token, login, make_agent

app_config, db = test_chat.app_config, test_chat.db  # the same chat channel "site", and its database

HELD = 10  # seconds a test waits at most for a held request to be held or answered


def typing(client, token: str, on: bool = True, origin: str = ALLOWED):
    return client.post("/chat/site/typing", json={"typing": on}, headers=headers(token, origin))


@pytest.fixture
def agent_client(app, db):
    make_agent(db)
    agent = app.test_client()
    assert login(agent).status_code == 302
    agent.token = csrf_token(agent, "/notifications")
    return agent


def presence(agent_client, cid: int, state: str):
    return agent_client.post(f"/conversations/{cid}/presence", json={"state": state},
                             headers={"X-CSRFToken": agent_client.token})


def started(client, db, token: str, text: str = "Hello?") -> int:
    """The visitor's first message; the conversation's id."""
    post(client, token, text)
    [conversation] = db.recent_conversations()
    return conversation["id"]


# The visitor types: the agent sees it --------------------------------------------------------------

def test_the_visitors_typing_reaches_the_agents_page_and_goes_stale_by_itself(client, db, agent_client,
                                                                              frozen_clock):
    token = visitor()
    cid = started(client, db, token)
    stream = Poller(agent_client, cid)
    assert named(stream.poll(), "customer.typing") == [{"conversation_id": cid, "typing": False, "name": ""}]
    assert typing(client, token).get_json() == {"ok": True, "shown": True}
    [told] = named(stream.poll(), "customer.typing")
    assert told["typing"] is True and told["name"].startswith("Website visitor")
    frozen_clock.advance(dt.timedelta(seconds=5))
    assert named(stream.poll(), "customer.typing")[0]["typing"] is True  # still within the window
    frozen_clock.advance(dt.timedelta(seconds=3))  # 8 s after the report: stale
    assert named(stream.poll(), "customer.typing")[0]["typing"] is False


def test_the_visitor_stopping_clears_it_at_once(client, db, agent_client, frozen_clock):
    token = visitor()
    cid = started(client, db, token)
    stream = Poller(agent_client, cid)
    typing(client, token)
    assert named(stream.poll(), "customer.typing")[0]["typing"] is True
    typing(client, token, on=False)
    assert named(stream.poll(), "customer.typing")[0]["typing"] is False


def test_a_stream_tells_the_visitors_typing_only_when_it_changes(app, client, db, frozen_clock):
    token = visitor()
    cid = started(client, db, token)
    state = LiveState(db, dict(make_agent(db)), None, db.change_watermark(), cid)

    def told() -> list[str]:
        return [e for e in state.poll(now=frozen_clock.now()) if "customer.typing" in e]

    assert len(told()) == 1  # the first look
    assert told() == []
    typing(client, token)
    assert '"typing":true' in told()[0]
    typing(client, token)  # the widget's next report while the visitor goes on typing
    assert told() == []
    frozen_clock.advance(dt.timedelta(seconds=8))
    assert '"typing":false' in told()[0]


def test_another_visitors_typing_never_shows_in_this_conversation(client, db, agent_client, frozen_clock):
    token = visitor()
    cid = started(client, db, token)
    stranger = visitor()
    assert typing(client, stranger).get_json() == {"ok": True, "shown": False}  # no conversation of theirs
    assert named(Poller(agent_client, cid).poll(), "customer.typing")[0]["typing"] is False


def test_typing_needs_the_visitor_an_allowed_site_and_a_yes_or_no(client, db):
    token = visitor()
    started(client, db, token)
    anonymous = client.post("/chat/site/typing", json={"typing": True}, headers={"Origin": ALLOWED})
    assert anonymous.status_code == 401
    assert typing(client, token, origin=EVIL).status_code == 403
    assert client.post("/chat/site/typing", json={"typing": "yes"}, headers=headers(token)).status_code == 400
    preflight = client.options("/chat/site/typing", headers={"Origin": ALLOWED})
    assert preflight.status_code == 204
    assert "X-Mainland-Visitor" in preflight.headers["Access-Control-Allow-Headers"]


def test_the_long_polls_version_header_is_allowed_across_sites(client):
    preflight = client.options("/chat/site/messages?wait=25", headers={"Origin": ALLOWED})
    assert "X-Mainland-Since" in preflight.headers["Access-Control-Allow-Headers"]


def test_typing_reports_are_limited_per_visitor_apart_from_messages(app_config):
    client = create_app(app_config).test_client()
    token = visitor()
    post(client, token, "Hello?")
    answers = [typing(client, token).status_code for _ in range(41)]
    assert answers[:40] == [200] * 40 and answers[40] == 429
    assert typing(client, visitor()).status_code == 200
    assert post(client, token, "Still there?").status_code == 200  # typing did not use up the messages


# The agent types: the visitor sees it -------------------------------------------------------------

def test_the_visitor_sees_the_typing_agents_first_name(client, db, frozen_clock):
    token = visitor()
    cid = started(client, db, token)
    ann = make_agent(db)
    db.touch_presence(cid, ann["id"], "typing", iso(frozen_clock.now()))
    answer = client.get("/chat/site/messages", headers=headers(token)).get_json()
    assert answer["typing"] is True and answer["typing_name"] == "Ann"
    frozen_clock.advance(dt.timedelta(seconds=9))  # the composer stopped beating
    answer = client.get("/chat/site/messages", headers=headers(token)).get_json()
    assert answer["typing"] is False and answer["typing_name"] == ""


def test_an_agent_without_a_name_types_as_support(client, db, frozen_clock):
    token = visitor()
    cid = started(client, db, token)
    nameless = make_agent(db, "bo@example.org", name="")
    db.touch_presence(cid, nameless["id"], "typing", iso(frozen_clock.now()))
    answer = client.get("/chat/site/messages", headers=headers(token)).get_json()
    assert answer["typing"] is True and answer["typing_name"] == ""  # the widget says "Support is typing…"


def test_the_widget_has_its_typing_and_read_words_in_both_languages(client):
    english = client.get("/chat/site/config?lang=en").get_json()["words"]
    dutch = client.get("/chat/site/config?lang=nl").get_json()["words"]
    assert english["typing_name"] == "{name} is typing…" and dutch["typing_name"] == "{name} typt…"
    assert (english["received"], english["read"]) == ("Delivered", "Read")
    assert (dutch["received"], dutch["read"]) == ("Afgeleverd", "Gelezen")


# Read, both ways ----------------------------------------------------------------------------------

def visitor_states(client, token: str) -> list[str]:
    return [m["status"] for m in history(client, token) if m["from"] == "visitor"]


def test_the_visitor_sees_their_message_read_once_an_agent_has_the_conversation_open(client, db,
                                                                                     agent_client):
    token = visitor()
    cid = started(client, db, token)
    assert visitor_states(client, token) == ["received"]
    assert presence(agent_client, cid, "viewing").status_code == 200
    assert visitor_states(client, token) == ["read"]
    post(client, token, "Are you there?")  # after the agent's last look
    assert visitor_states(client, token) == ["read", "received"]
    presence(agent_client, cid, "typing")
    assert visitor_states(client, token) == ["read", "read"]
    presence(agent_client, cid, "gone")
    assert visitor_states(client, token) == ["read", "read"]  # leaving takes nothing back


def test_another_visitors_conversation_open_reads_nothing_of_this_one(client, db):
    token, other = visitor(), visitor()
    started(client, db, token)
    post(client, other, "Me too")
    theirs = next(c["id"] for c in db.recent_conversations() if c["subject"] == "Me too")
    db.touch_presence(theirs, make_agent(db)["id"], "viewing", iso(clock.now()))
    assert visitor_states(client, token) == ["received"]
    assert visitor_states(client, other) == ["read"]


def test_the_agent_sees_the_reply_read_live_when_the_widget_shows_it(app, client, db, agent_client):
    token, reply_id = _answered(app, client, db)
    cid = db.recent_conversations()[0]["id"]
    stream = Poller(agent_client, cid)
    stream.poll()
    client.post("/chat/site/receipts", json={"read": [reply_id]}, headers=headers(token))
    assert {"message_id": reply_id, "delivery_status": "read"}.items() <= \
        named(stream.poll(), "message.status")[0].items()


# The long poll -------------------------------------------------------------------------------------

class HeldPoll(threading.Thread):
    """One long poll of the widget, in a thread (a held request holds it)."""

    def __init__(self, app, token: str, since: str, wait: float = 25) -> None:
        super().__init__(daemon=True)
        self.client, self.token, self.since, self.wait = app.test_client(), token, since, wait
        self.answer: dict | None = None

    def run(self) -> None:
        # As the widget asks: the version in a header, so the URL (and its CORS preflight) stays the same.
        response = self.client.get(f"/chat/site/messages?wait={self.wait}",
                                   headers={**headers(self.token), "X-Mainland-Since": self.since})
        self.answer = response.get_json()

    def answered(self) -> dict:
        self.join(HELD)
        assert not self.is_alive(), "the long poll was not answered"
        return self.answer


def version_of(client, token: str) -> str:
    return client.get("/chat/site/messages", headers=headers(token)).get_json()["version"]


@pytest.fixture
def only_woken(app):
    """Held polls look at the database on their own only after an hour: what answers them is a wake-up."""
    app.config.update(CHAT_CHECK_SECONDS=3600)


def test_a_long_poll_answers_as_soon_as_a_message_arrives(app, client, db, only_woken):
    token = visitor()
    started(client, db, token)
    held = HeldPoll(app, token, version_of(client, token))
    held.start()
    assert chat_web.waits_of(app).wait_until(1, HELD)
    client_id = str(uuid.uuid4())
    post(client, token, "Sent from my phone", client_id)  # another tab or device of the visitor
    answer = held.answered()
    assert [m["text"] for m in answer["messages"]] == ["Hello?", "Sent from my phone"]
    assert answer["messages"][-1]["client_id"] == client_id and "busy" not in answer
    assert chat_web.waits_of(app).active == 0


def test_a_visitors_post_wakes_their_own_widgets_poll_and_no_other(app, client, db, only_woken, monkeypatch):
    # With hundreds of widgets open, waking every held poll on each post cost one look at the database per
    # open widget (bench/chat_load.py): only the poster's own widgets look again.
    token, other = visitor(), visitor()
    started(client, db, token)
    post(client, other, "Anyone?")
    looks: Counter[str] = Counter()
    both_looked = threading.Event()
    snapshot = chat_web._snapshot

    def counted(store, channel: str, who: str) -> dict:
        looks[who] += 1
        answer = snapshot(store, channel, who)
        if len(looks) == 2:
            both_looked.set()
        return answer

    held = HeldPoll(app, token, version_of(client, token))
    others = HeldPoll(app, other, version_of(client, other))
    monkeypatch.setattr(chat_web, "_snapshot", counted)
    held.start()
    others.start()
    assert chat_web.waits_of(app).wait_until(2, HELD)
    # Held is not yet looked: a post before a poll's first look would be in that look already.
    assert both_looked.wait(HELD)
    post(client, token, "Still there?")
    assert held.answered()["messages"][-1]["text"] == "Still there?"
    post(client, other, "Hello?")
    assert others.answered()["messages"][-1]["text"] == "Hello?"
    # Each poll looked once when it came in and once when its own visitor wrote: never for the other's post.
    assert sorted(looks.values()) == [2, 2]


def test_a_long_poll_with_nothing_new_ends_empty_handed_after_its_wait(app, client, db, only_woken):
    token = visitor()
    started(client, db, token)
    version = version_of(client, token)
    answer = client.get(f"/chat/site/messages?since={version}&wait=0.2", headers=headers(token)).get_json()
    assert answer["ok"] is True and answer["version"] == version
    assert [m["text"] for m in answer["messages"]] == ["Hello?"]


def test_a_sent_reply_and_an_agents_typing_are_found_by_the_held_poll(app, client, db):
    app.config.update(CHAT_CHECK_SECONDS=0.05)  # news from the worker's process is looked for, not told
    token = visitor()
    cid = started(client, db, token)
    held = HeldPoll(app, token, version_of(client, token))
    held.start()
    assert chat_web.waits_of(app).wait_until(1, HELD)
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, cid, "Yes, we are.")
    assert send_due(mainland, db).sent == 1
    answer = held.answered()
    assert answer["messages"][-1]["text"] == "Yes, we are." and answer["messages"][-1]["from"] == "team"

    typing_held = HeldPoll(app, token, answer["version"])
    typing_held.start()
    assert chat_web.waits_of(app).wait_until(1, HELD)
    db.touch_presence(cid, make_agent(db)["id"], "typing", iso(clock.now()))
    assert typing_held.answered()["typing_name"] == "Ann"


def test_a_reply_sent_in_this_process_wakes_the_visitors_waiting_widget_at_once(app, client, db, only_woken):
    # `mainland serve` runs the worker in the web process: its send tells the held poll, which would
    # otherwise look again only after `web.chat_check_seconds` (an hour here).
    token, other = visitor(), visitor()
    cid = started(client, db, token)
    post(client, other, "Anyone?")
    held = HeldPoll(app, token, version_of(client, token))
    others = HeldPoll(app, other, version_of(client, other))
    held.start()
    others.start()
    assert chat_web.waits_of(app).wait_until(2, HELD)
    mainland = app.extensions["mainland"]
    queue_reply(mainland, db, cid, "Yes, we are.")
    assert send_due(mainland, db).sent == 1
    answer = held.answered()
    assert answer["messages"][-1]["text"] == "Yes, we are." and answer["messages"][-1]["from"] == "team"
    assert chat_web.waits_of(app).active == 1  # the other visitor's widget still waits: nothing for it
    post(client, other, "Hello?")
    assert others.answered()["messages"][-1]["text"] == "Hello?"


def test_past_the_cap_a_long_poll_is_answered_at_once_and_told_to_back_off(app, client, db, only_woken):
    app.config.update(CHAT_WAITS=1)
    token, other = visitor(), visitor()
    started(client, db, token)
    post(client, other, "Anyone?")
    held = HeldPoll(app, token, version_of(client, token))
    held.start()
    assert chat_web.waits_of(app).wait_until(1, HELD)
    refused = client.get(f"/chat/site/messages?since={version_of(client, other)}&wait=25",
                         headers=headers(other)).get_json()
    assert refused["ok"] is True and refused["busy"] is True and refused["retry_ms"] > 0
    assert [m["text"] for m in refused["messages"]] == ["Anyone?"]
    post(client, token, "Let it go")
    assert held.answered()["messages"][-1]["text"] == "Let it go"
    assert chat_web.waits_of(app).active == 0


def test_polls_held_by_another_app_take_no_wait_from_this_one(app, app_config, client, db, only_woken):
    # A test's server shut down while a widget still waited: the next app's widgets are not "busy".
    app.config.update(CHAT_WAITS=1)
    token = visitor()
    started(client, db, token)
    held = HeldPoll(app, token, version_of(client, token))
    held.start()
    assert chat_web.waits_of(app).wait_until(1, HELD)
    other_app = create_app(app_config)
    other_app.config.update(CHAT_WAITS=1)
    answer = other_app.test_client().get("/chat/site/messages?since=old&wait=25", headers=headers(token)).get_json()
    assert answer["ok"] is True and "busy" not in answer  # answered at once: "old" is not its version
    post(client, token, "Let it go")
    held.answered()


def test_a_reconnect_with_an_old_version_loses_and_doubles_nothing(app, client, db, only_woken):
    token = visitor()
    started(client, db, token)
    old = version_of(client, token)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    post(client, token, "One", first)
    post(client, token, "Two", second)
    post(client, token, "Two", second)  # resent after a dropped answer
    answer = client.get(f"/chat/site/messages?since={old}&wait=25", headers=headers(token)).get_json()
    assert [(m["text"], m["client_id"]) for m in answer["messages"][1:]] == [("One", first), ("Two", second)]
    assert answer["version"] != old


def test_the_version_follows_the_read_marks_of_the_visitors_messages(app, client, db):
    token = visitor()
    cid = started(client, db, token)
    before = version_of(client, token)
    db.touch_presence(cid, make_agent(db)["id"], "viewing", iso(clock.now()))
    assert version_of(client, token) != before


# A waiting widget is told when its view may have changed; the process looks for news once for all ------

@pytest.fixture
def looking(app):
    """The process looks for its widgets' news every 10 ms: what the polls find, the watcher told them."""
    app.config.update(CHAT_CHECK_SECONDS=0.01)


def test_a_waiting_poll_with_nothing_new_looks_only_when_it_comes_and_goes(app, client, db, looking, monkeypatch):
    # 500 open widgets each looked once a second (and built their whole history each time): the process's
    # watcher looks for all of them, and a poll with nothing new looks at its start and at its end only.
    token = visitor()
    started(client, db, token)
    built, stamped = [], []
    snapshot, stamp = chat_web._snapshot, db.chat_view_stamp
    monkeypatch.setattr(chat_web, "_snapshot", lambda *a: built.append(1) or snapshot(*a))
    monkeypatch.setattr(type(db), "chat_view_stamp",
                        lambda self, *a: stamped.append(1) or stamp.__func__(self, *a))
    held = HeldPoll(app, token, version_of(client, token), wait=1)
    built.clear()
    held.start()
    assert held.answered()["messages"][-1]["text"] == "Hello?"
    assert len(stamped) == 2 and len(built) == 1


def waiting_visitor(app, client, db) -> tuple[int, HeldPoll]:
    """A visitor's conversation and their widget's long poll, held."""
    token = visitor()
    cid = started(client, db, token)
    held = HeldPoll(app, token, version_of(client, token))
    held.start()
    assert chat_web.waits_of(app).wait_until(1, HELD)
    return cid, held


def test_the_watcher_tells_a_waiting_poll_of_a_message_written_by_another_process(app, client, db, looking):
    # Written through another connection and told to nobody, as another process's worker would.
    cid, held = waiting_visitor(app, client, db)
    queue_reply(app.extensions["mainland"], db, cid, "Found it.")
    db.execute("UPDATE messages SET delivery_status = 'sent', sent_at = received_at WHERE direction = 'out'")
    assert held.answered()["messages"][-1]["text"] == "Found it."


def test_the_watcher_finds_the_team_reading(app, client, db, looking):
    # An agent opening the conversation tells no widget: the process's watcher finds the read mark.
    cid, held = waiting_visitor(app, client, db)
    db.touch_presence(cid, make_agent(db)["id"], "viewing", iso(clock.now()))
    assert [m["status"] for m in held.answered()["messages"]] == ["read"]


def test_the_watcher_finds_the_agents_typing_go_stale(app, client, db, looking, frozen_clock):
    token = visitor()
    cid = started(client, db, token)
    db.touch_presence(cid, make_agent(db)["id"], "typing", iso(clock.now()))
    answer = client.get("/chat/site/messages", headers=headers(token)).get_json()
    assert answer["typing"] is True
    held = HeldPoll(app, token, answer["version"])
    held.start()
    assert chat_web.waits_of(app).wait_until(1, HELD)
    frozen_clock.advance(chat_web.TYPING_SHOWN + dt.timedelta(seconds=1))
    assert held.answered()["typing"] is False


def test_the_watcher_stops_when_the_last_widget_stops_waiting(app, client, db, only_woken):
    # It looks once an hour here: it must not sleep that hour out once nobody waits.
    cid, held = waiting_visitor(app, client, db)
    queue_reply(app.extensions["mainland"], db, cid, "Here.")
    assert send_due(app.extensions["mainland"], db).sent == 1
    held.answered()
    watcher = chat_web.watcher_of(app).thread  # started by the poll, which has ended now
    assert watcher is not None
    watcher.join(HELD)
    assert not watcher.is_alive()
