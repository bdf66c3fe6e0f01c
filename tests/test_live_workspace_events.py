"""The live stream's workspace events, read as a polling client reads them (`/events?once=1`):
colleagues' drafts, a reply taken back within the undo window, and browser notifications that
arrive between two polls.
"""

from __future__ import annotations

import json
import re

from tests.engine_state import sqlite_only
from tests.test_composer import World, app_config, undo, world  # noqa: F401  (fixtures: app_config, world)


def events_of(text: str) -> list[tuple[str, dict]]:
    found = []
    for block in text.split("\n\n"):
        name = re.search(r"^event: (.+)$", block, re.M)
        data = re.search(r"^data: (.+)$", block, re.M)
        if name and data:
            found.append((name.group(1), json.loads(data.group(1))))
    return found


def last_id(text: str) -> str:
    return re.findall(r"^id: (\S+)$", text, re.M)[-1]


class Poller:
    """A polling EventSource: each answer's last event id goes back as `Last-Event-ID`."""

    def __init__(self, client, conversation_id: int | None = None, language: str = "en") -> None:
        self.client = client
        self.url = "/events?once=1" + (f"&conversation={conversation_id}" if conversation_id else "")
        self.language = language
        self.last = None

    def poll(self) -> list[tuple[str, dict]]:
        headers = {"Accept-Language": self.language}
        if self.last:
            headers["Last-Event-ID"] = self.last
        text = self.client.get(self.url, headers=headers).get_data(as_text=True)
        self.last = last_id(text)
        return events_of(text)


def named(events, name):
    return [data for event, data in events if event == name]


def save_draft(client, cid, text, kind="reply"):
    response = client.post(f"/conversations/{cid}/draft", json={"kind": kind, "text": text},
                           headers={"X-CSRFToken": client.token, "Accept": "application/json"})
    assert response.status_code == 200


def test_drafts_of_colleagues_come_and_go_for_a_polling_client(world: World):  # noqa: F811
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    bobs = Poller(bob, cid)
    assert named(bobs.poll(), "drafts") == [{"conversation_id": cid, "agents": [], "text": ""}]
    save_draft(ann, cid, "Your parcel")
    [told] = named(bobs.poll(), "drafts")
    assert told["agents"] == ["Ann Agent"] and told["text"] == "Ann Agent has a draft here."
    # Ann's own stream never tells her about her own draft.
    assert named(Poller(ann, cid).poll(), "drafts") == [{"conversation_id": cid, "agents": [], "text": ""}]
    save_draft(ann, cid, "")
    assert named(bobs.poll(), "drafts") == [{"conversation_id": cid, "agents": [], "text": ""}]


def test_the_draft_sentence_is_in_the_viewers_language(world: World):  # noqa: F811
    cid = world.conversation()
    save_draft(world.client(), cid, "Een moment")
    [told] = named(Poller(world.client("bob"), cid, language="nl").poll(), "drafts")
    assert told["text"] == "Ann Agent heeft hier een concept."


def test_a_stream_tells_drafts_only_when_they_change(world: World):  # noqa: F811
    from inbox.web.live import LiveState

    cid = world.conversation()
    ann = world.client()
    state = LiveState(world.store, dict(world.bob), None, world.store.change_watermark(), cid)
    assert [e for e in state.poll(now=_now()) if "event: drafts" in e]  # the first look
    assert [e for e in state.poll(now=_now()) if "event: drafts" in e] == []
    save_draft(ann, cid, "Your parcel")
    save_draft(ann, cid, "Your parcel is on its way")  # still one draft: nothing new to tell
    assert len([e for e in state.poll(now=_now()) if "event: drafts" in e]) == 1
    assert [e for e in state.poll(now=_now()) if "event: drafts" in e] == []


def _now():
    from inbox import clock

    return clock.now()


def test_an_undone_reply_leaves_the_colleagues_thread(world: World):  # noqa: F811
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    bobs = Poller(bob, cid)
    bobs.poll()
    sent = world.reply(ann, cid, "Wrong customer").get_json()
    events = bobs.poll()
    [new] = [d for d in named(events, "message.new") if d["direction"] == "out"]
    assert named(events, "message.removed") == []
    assert undo(ann, cid, sent["undo"]["id"]).status_code == 200
    events = bobs.poll()
    assert named(events, "message.removed") == [{"conversation_id": cid, "message_id": new["message_id"]}]
    [told] = named(events, "drafts")
    assert told["agents"] == ["Ann Agent"]  # the undone text is her draft again


def test_a_notification_between_two_polls_becomes_a_browser_notification_once(world: World):  # noqa: F811
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    anns = Poller(ann)
    assert named(anns.poll(), "notifications") == []
    bob.post(f"/conversations/{cid}/notes", data={"text": "@ann have a look", "csrf_token": bob.token,
                                                  "seen_up_to": 10**6}, headers={"Accept": "application/json"})
    [told] = named(anns.poll(), "notifications")
    assert told["unread"] == 1
    assert told["latest"]["kind"] == "mention" and told["latest"]["url"].startswith(f"/conversations/{cid}#message-")
    assert "Bob Builder mentioned you" in told["latest"]["text"]
    # The next poll resumes after it: the count again (a fresh answer), never the same pop-up twice.
    assert [n.get("latest") for n in named(anns.poll(), "notifications")] == [None]


def test_a_fresh_client_is_not_shown_old_notifications(world: World):  # noqa: F811
    cid = world.conversation()
    bob = world.client("bob")
    bob.post(f"/conversations/{cid}/notes", data={"text": "@ann old news", "csrf_token": bob.token,
                                                  "seen_up_to": 10**6}, headers={"Accept": "application/json"})
    [told] = named(Poller(world.client()).poll(), "notifications")
    assert told == {"unread": 1}


def test_a_reply_that_reuses_an_undone_replys_id_is_still_told(world: World):  # noqa: F811
    """SQLite hands the next message the id of a deleted newest one: an undo followed at once by a new
    reply (before the colleague's next look) must still show the new reply."""
    sqlite_only("a deleted row's id given again (PostgreSQL's sequences never do)")
    cid = world.conversation()
    ann, bob = world.client(), world.client("bob")
    bobs = Poller(bob, cid)
    bobs.poll()
    sent = world.reply(ann, cid, "Wrong customer").get_json()
    [first] = [d for d in named(bobs.poll(), "message.new") if d["direction"] == "out"]
    assert undo(ann, cid, sent["undo"]["id"]).status_code == 200
    world.reply(ann, cid, "Right answer")
    again = [m for m in world.store.thread_messages(cid) if m["text"] == "Right answer"][0]
    assert again["id"] == first["message_id"], "the premise: the id was reused"
    events = bobs.poll()
    assert named(events, "message.removed") == [{"conversation_id": cid, "message_id": first["message_id"]}]
    assert [d["message_id"] for d in named(events, "message.new")] == [again["id"]]


def test_a_removal_in_another_database_is_never_told(world: World):  # noqa: F811
    """Removals are kept per process: one in another installation's database (same conversation and
    message ids) must not make a reply vanish here."""
    from inbox.web import live

    cid = world.conversation()
    bobs = Poller(world.client("bob"), cid)
    bobs.poll()
    world.reply(world.client(), cid, "Kept")
    [new] = [d for d in named(bobs.poll(), "message.new") if d["direction"] == "out"]
    live._removals.publish("/elsewhere/other.db", world.store.change_watermark() + 1, cid, new["message_id"])
    world.store.add_note(cid, agent_id=world.bob["id"], author_name="Bob", text="bump", external_id="note:bump",
                         now="2026-11-23T10:00:00+00:00")
    assert named(bobs.poll(), "message.removed") == []


def test_streams_woken_by_one_change_ask_the_database_for_it_once(world: World, monkeypatch):  # noqa: F811
    # A write in this process wakes every open stream at once (30 agents' tabs): those that see the same
    # teams share one look at what changed instead of each asking the database.
    from inbox.web.live import LiveState

    world.conversation()
    seq = world.store.change_watermark()
    streams = [LiveState(world.store, dict(agent), None, seq, None) for agent in (world.ann, world.bob)]
    cid = world.conversation()
    asked = []
    changes_since = world.store.changes_since
    monkeypatch.setattr(world.store, "changes_since", lambda *a, **kw: asked.append(a) or changes_since(*a, **kw))
    watermark = world.store.change_watermark()
    told = [stream.poll(now=_now(), with_presence=False, with_notifications=False, watermark=watermark)
            for stream in streams]
    assert all(any(f'"id":{cid}' in event for event in events) for events in told)
    assert len(asked) == 1
