"""The command palette's list: every common move on a conversation, only what this agent may do,
each pointing at the route whose button does the same (so choosing it changes the conversation)."""

from __future__ import annotations

from inbox.models import Author, FetchResult, InboundItem
from tests.test_web_auth import csrf_token, login, make_agent, web_store  # noqa: F401


def _conversation(app, store) -> int:
    ingestor = app.extensions["mainland"].ingestor(store)
    item = InboundItem(channel="chat", external_id="c-1", text="Where is my order?", thread_key="t1",
                       author=Author(handle="4711", name="Piet", identity_kind="chat"))
    [message_id] = ingestor.ingest("chat", FetchResult(items=[item], cursor="1")).message_ids
    return store.message(message_id)["conversation_id"]


def test_the_palette_offers_every_common_move_and_each_one_works(app, client, web_store):  # noqa: F811
    ann = make_agent(web_store)
    bob = make_agent(web_store, "bob@example.org", name="Bob Builder")
    web_store.ensure_label("VIP")
    cid = _conversation(app, web_store)
    login(client)
    commands = client.get(f"/conversations/{cid}/commands").get_json()["commands"]
    labels = {c["label"] for c in commands}
    assert {"Set status: Resolved", "Set status: Pending", "Assign to me", "Assign to Bob Builder",
            "Add label VIP", "Priority: Urgent"} <= labels
    assert any(label.startswith("Snooze for") for label in labels)

    def choose(label: str) -> dict:
        [command] = [c for c in commands if c["label"] == label]
        assert command["do"] == "post"
        response = client.post(command["url"], data={**command["fields"], "csrf_token": csrf_token(client, f"/conversations/{cid}")},
                               headers={"Accept": "application/json"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    choose("Assign to Bob Builder")
    assert web_store.conversation(cid)["assignee_id"] == bob["id"]
    choose("Add label VIP")
    assert [lab["name"] for lab in web_store.labels_of([cid]).get(cid, [])] == ["VIP"]
    choose("Priority: Urgent")
    assert web_store.conversation(cid)["priority"] == 4
    choose("Set status: Resolved")
    assert web_store.conversation(cid)["status"] == "resolved"
    # What the palette did stays done: Bob keeps the conversation he was given, Ann is not offered
    # "Assign to me" twice once it is hers.
    assert web_store.conversation(cid)["assignee_id"] == bob["id"]
    commands = client.get(f"/conversations/{cid}/commands").get_json()["commands"]
    assert sum(c["label"] == "Assign to me" for c in commands) == 1 and ann["id"] != bob["id"]


def test_no_palette_for_a_conversation_the_agent_cannot_see(app, client, web_store):  # noqa: F811
    make_agent(web_store)
    login(client)
    assert client.get("/conversations/999/commands").status_code == 404
