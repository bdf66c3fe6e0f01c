"""The team's default after sending, set on the team's admin page: what the composer's plain "Send"
does in the team's conversations (keep open, pending, resolve). Admins only, CSRF-protected,
checked on the server and written to the audit log like the other team settings.
"""

from __future__ import annotations

import re

from tests.test_web_conversation_actions import World, app_config, post, world  # noqa: F401  (fixtures)


def team_page(client, team_id: int) -> str:
    response = client.get(f"/admin/teams/{team_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def set_default(client, team_id: int, status: str, **extra):
    return post(client, f"/admin/teams/{team_id}/send-status", {"default_send_status": status, **extra}, json=False)


def primary_send_button(client, conversation_id: int) -> str:
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    return re.search(r'<button type="submit" class="primary" id="send-reply"[^>]*>.*?</button>', page, re.S).group(0)


def test_the_team_page_offers_the_composers_choices_with_the_current_one_selected(world: World):  # noqa: F811
    page = team_page(world.client("root"), world.team_a)
    select = re.search(r'<select id="default-send-status" name="default_send_status">(.*?)</select>', page, re.S)
    options = re.findall(r'<option value="(\w+)"( selected)?>([^<]+)</option>', select.group(1))
    assert options == [("open", "", "Send, keep open"), ("pending", " selected", "Send + pending"),
                       ("resolved", "", "Send + resolve")]


def test_an_admin_sets_it_and_the_composers_primary_button_follows(world: World):  # noqa: F811
    cid = world.conversation()  # in team A
    ann, root = world.client(), world.client("root")
    assert 'value="pending"' in primary_send_button(ann, cid)

    response = set_default(root, world.team_a, "resolved")
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/teams/{world.team_a}"
    assert world.store.team_default_send_status(world.team_a) == "resolved"
    assert world.store.team_default_send_status(world.team_b) == "pending", "only that team"
    assert "The team&#39;s default after sending is saved." in team_page(root, world.team_a)
    button = primary_send_button(ann, cid)
    assert 'value="resolved"' in button and "→ Resolved" in button
    # A plain send (no status chosen) now resolves.
    post(ann, f"/conversations/{cid}/reply", {"text": "All done", "seen_up_to": 10**6})
    assert world.store.conversation(cid)["status"] == "resolved"

    [entry] = world.store.audit_entries(object_type="team", object_id=world.team_a)
    assert entry["action"] == "team_default_send_status_changed"
    assert entry["actor"] == f"agent:{world.root['id']}"
    assert '"before": "pending"' in entry["details"] and '"after": "resolved"' in entry["details"]


def test_an_agent_cannot_change_it(world: World):  # noqa: F811
    response = set_default(world.client(), world.team_a, "resolved")
    assert response.status_code == 403
    assert world.store.team_default_send_status(world.team_a) == "pending"


def test_a_bad_value_or_missing_token_is_refused(world: World):  # noqa: F811
    root = world.client("root")
    for bad in ("snoozed", "spam", "", "Resolved"):
        assert set_default(root, world.team_a, bad).status_code == 400
    assert post(root, f"/admin/teams/{world.team_a}/send-status", {"default_send_status": "open"},
                token=False).status_code == 400
    assert post(root, "/admin/teams/999/send-status", {"default_send_status": "open"}).status_code == 404
    assert world.store.team_default_send_status(world.team_a) == "pending"
    assert world.store.audit_entries(object_type="team", object_id=world.team_a) == []
