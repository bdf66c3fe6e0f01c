"""/admin/rules (issue 15): the form saves what it shows, refuses a bad pattern on its row and stores
nothing, orders and toggles rules, the dry run writes nothing, and firings show on the conversation page
(in the reader's language) and in the rule's last firings; a status set on the page triggers rules."""

from __future__ import annotations

import itertools
import json

import pytest

from inbox.models import Author, FetchResult, InboundItem
from tests.engine_state import writes_seen
from tests.test_web_auth import csrf_token, login, make_agent

_IDS = itertools.count(1)


@pytest.fixture
def app_config(app_config):
    app_config["channels"] = {"chat": {"kind": "telegram", "token": "123:abc"}}
    return app_config


@pytest.fixture
def mainland(app):
    return app.extensions["mainland"]


@pytest.fixture
def store(mainland):
    store = mainland.open_store()
    yield store
    store.close()


@pytest.fixture
def admin(app, store):
    make_agent(store, "ada@example.org", name="Ada Admin", role="admin")
    client = app.test_client()
    assert login(client, "ada@example.org").status_code == 302
    return client


def ingest(mainland, store, text="Where is my parcel?"):
    n = next(_IDS)
    item = InboundItem(channel="chat", external_id=f"in-{n}", author=Author(f"cleo-{n}", "Cleo Customer"), text=text,
                       thread_key=f"t-{n}")
    report = mainland.ingestor(store).ingest("chat", FetchResult(items=[item], cursor=None), save_cursor=False)
    return report.new_conversations[0]


def rule_form(client, **fields):
    form = {"csrf_token": csrf_token(client, "/admin/rules/new"), "name": "Refunds", "trigger": "message_received",
            "enabled": "1", "condition_type_0": "text_contains", "condition_value_0": "refund",
            "action_type_0": "add_label", "action_value_0": "refund", "action_type_1": "set_priority",
            "action_choice_1": "priority:3"}
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def test_a_rule_is_created_from_the_form_and_fires_on_a_new_message(admin, mainland, store):
    response = admin.post("/admin/rules", data=rule_form(admin))
    assert response.status_code == 302
    [rule] = store.rules()
    assert rule["conditions"] == [{"type": "text_contains", "value": "refund"}]
    assert rule["actions"] == [{"type": "add_label", "value": "refund"}, {"type": "set_priority", "value": 3}]
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="refund"' in page and 'value="priority:3" selected' in page, "the form shows what was saved"
    cid = ingest(mainland, store, "I want a refund")
    assert store.conversation(cid)["priority"] == 3
    shown = admin.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "Rule \u201cRefunds\u201d fired: added the label refund; set the priority to High." in shown
    assert "I want a refund" in shown
    assert "refund" in admin.get(f"/admin/rules/{rule['id']}").get_data(as_text=True)
    [entry] = [e for e in store.audit_entries(object_type="rule") if e["action"] == "rule_created"]
    assert json.loads(entry["details"])["name"] == "Refunds"


def test_the_timeline_note_is_in_the_readers_language(app, mainland, store):
    make_agent(store, "nora@example.org", name="Nora", role="admin", locale="nl")
    store.create_rule({"name": "Heet", "trigger": "message_received", "conditions": [],
                       "actions": [{"type": "add_label", "value": "heet"}]}, "2026-01-01T00:00:00Z")
    cid = ingest(mainland, store)
    [note] = [m for m in store.thread_messages(cid) if m["direction"] == "note"]
    assert note["text"].startswith("Rule \u201cHeet\u201d fired"), "stored in English for search"
    # The page words the note from its firing (through gettext), not from the stored English.
    with store.write():
        store.conn.execute("UPDATE messages SET text = 'stored words' WHERE id = ?", (note["id"],))
    client = app.test_client()
    assert login(client, "nora@example.org").status_code == 302
    page = client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "stored words" not in page and "heet" in page


@pytest.mark.parametrize("pattern", ["(a+)+$", "[broken", r"(x)\1"])
def test_a_bad_pattern_is_refused_on_save_and_nothing_is_stored(admin, store, pattern):
    response = admin.post("/admin/rules", data=rule_form(admin, condition_type_0="text_matches",
                                                         condition_value_0=pattern))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'class="field-error"' in page and "The rule was not saved" in page
    assert store.rules() == []


def test_a_rule_without_actions_or_name_is_refused(admin, store):
    response = admin.post("/admin/rules", data=rule_form(admin, name="", action_type_0=None, action_type_1=None))
    assert response.status_code == 400
    assert store.rules() == []


def test_order_enabled_and_delete_from_the_list(admin, store):
    for name in ("First", "Second"):
        admin.post("/admin/rules", data=rule_form(admin, name=name))
    first, second = store.rules()
    token = csrf_token(admin, "/admin/rules")
    assert admin.post(f"/admin/rules/{second['id']}/move", data={"csrf_token": token, "direction": "up"}
                      ).status_code == 302
    assert [r["name"] for r in store.rules()] == ["Second", "First"]
    admin.post(f"/admin/rules/{first['id']}/enabled", data={"csrf_token": token, "enabled": "0"})
    assert [r["enabled"] for r in store.rules()] == [True, False]
    listing = admin.get("/admin/rules").get_data(as_text=True)
    assert listing.index("Second") < listing.index("First")
    admin.post(f"/admin/rules/{first['id']}/delete", data={"csrf_token": token})
    assert [r["name"] for r in store.rules()] == ["Second"]


def test_the_dry_run_shows_matches_and_changes_nothing(admin, mainland, store):
    hit = ingest(mainland, store, "refund please")
    ingest(mainland, store, "hello")
    admin.post("/admin/rules", data=rule_form(admin, enabled=None))
    [rule] = store.rules()
    before = writes_seen(store)
    labels_before = store.labels_of([hit])
    page = admin.get(f"/admin/rules/{rule['id']}/dry-run").get_data(as_text=True)
    assert "1 conversation would match." in page and f"/conversations/{hit}" in page
    assert "added the label refund" in page
    assert store.labels_of([hit]) == labels_before
    assert writes_seen(store) == before


def test_a_status_set_on_the_conversation_page_triggers_status_rules(admin, mainland, store):
    admin.post("/admin/rules", data=rule_form(admin, name="Parked", trigger="status_changed",
                                              condition_type_0="status", condition_choice_0="status:pending",
                                              condition_value_0="", action_type_1=None, action_value_0="parked"))
    cid = ingest(mainland, store)
    token = csrf_token(admin, f"/conversations/{cid}")
    admin.post(f"/conversations/{cid}/status", data={"csrf_token": token, "status": "pending"})
    assert [label["name"] for label in store.labels_of([cid])[cid]] == ["parked"]


def test_agents_cannot_reach_the_rules(app, store):
    make_agent(store, "ann@example.org")
    client = app.test_client()
    login(client)
    assert client.get("/admin/rules").status_code == 403


# The webhook action ---------------------------------------------------------------------------------------

def _subscription(mainland, store, url="https://203.0.114.20/hooks/rules") -> int:
    with store.write():
        return store.create_webhook_subscription(url=url, events=["satisfaction.received"],
                                                 secret=json.dumps(mainland.secret_box().seal("whsec_x")),
                                                 created_by=None, now="2026-01-01T00:00:00Z")


def test_a_webhook_action_is_chosen_saved_shown_and_dry_run_without_sending(admin, mainland, store):
    subscription = _subscription(mainland, store)
    form_page = admin.get("/admin/rules/new").get_data(as_text=True)
    assert f'value="webhook:{subscription}"' in form_page and "https://203.0.114.20/hooks/rules" in form_page
    response = admin.post("/admin/rules", data=rule_form(admin, action_type_1="webhook",
                                                         action_choice_1=f"webhook:{subscription}"))
    assert response.status_code == 302
    [rule] = store.rules()
    assert rule["actions"][1] == {"type": "webhook", "value": subscription}
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert f'value="webhook:{subscription}" selected' in page, "the form shows what was saved"

    ingest(mainland, store, "refund please")
    queued = store.execute("SELECT count(*) FROM webhook_deliveries").fetchone()[0]
    dry = admin.get(f"/admin/rules/{rule['id']}/dry-run").get_data(as_text=True)
    assert "sent it to the webhook https://203.0.114.20/hooks/rules" in dry
    assert store.execute("SELECT count(*) FROM webhook_deliveries").fetchone()[0] == queued, "the dry run sends nothing"


def test_a_webhook_action_without_a_subscription_is_refused_on_its_row(admin, mainland, store):
    for choice in ("webhook:987654", ""):
        response = admin.post("/admin/rules", data=rule_form(admin, action_type_1="webhook", action_choice_1=choice))
        assert response.status_code == 400
        assert "Pick a fitting value from the choice list for this row." in response.get_data(as_text=True)
    assert store.rules() == []
