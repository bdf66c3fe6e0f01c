"""Admin pages: inviting agents, roles, teams, disabling, the last-admin guard, and their protections.

Covers SEC-07 (extra form fields are ignored), SEC-08/IN-66 (every admin POST needs its CSRF token),
SEC-11 (invitation tokens: random, stored hashed, single use, expiring; empty, unknown, changed
and used tokens are 404) and WEB-05 (disabling an agent ends their sessions).
"""

from __future__ import annotations

import hashlib
import re

import pytest

from inbox.web import admin as admin_module
from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent, signed_in, web_store  # noqa: F401

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def admin(web_store):  # noqa: F811
    return make_agent(web_store, "ada@example.org", name="Ada Admin", role="admin")


@pytest.fixture
def admin_client(app, admin):
    client = app.test_client()
    assert login(client, "ada@example.org").status_code == 302
    return client


def post(client, path, data=None, *, token_from=None, **kw):
    """POST with a CSRF token taken from `token_from` (default: the path's own page or /admin/agents)."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, token_from or "/admin/agents"))
    return client.post(path, data=data, **kw)


def invite(client, email="nina@example.org", name="Nina New", role="agent", **extra):
    response = post(client, "/admin/agents", {"email": email, "name": name, "role": role, **extra})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    page = response.get_data(as_text=True)
    match = re.search(r'value="(http://[^"]+/invite/([A-Za-z0-9_-]+))"', page)
    assert match, "the invitation link is on the page"
    return match.group(1), match.group(2)


def accept(app, token, password=NEW_PASSWORD, repeat=None, **extra):
    client = app.test_client()
    page = client.get(f"/invite/{token}")
    if page.status_code != 200:
        return client, page
    token_field = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    data = {"password": password, "repeat_password": repeat if repeat is not None else password,
            "csrf_token": token_field, **extra}
    return client, client.post(f"/invite/{token}", data=data)


def flash_text(client, path):
    return client.get(path).get_data(as_text=True)


# Who gets in ----------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["agent", "lead", "manager"])
def test_only_admins_reach_the_admin_pages(app, web_store, role):  # noqa: F811
    make_agent(web_store, f"{role}@example.org", role=role)
    client = app.test_client()
    login(client, f"{role}@example.org")
    for path in ("/admin", "/admin/agents", "/admin/teams"):
        assert client.get(path).status_code == 403, path
    assert "/admin/agents" not in client.get("/").get_data(as_text=True), "no Admin link for non-admins"


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/admin/agents")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_admin_sees_the_agent_list_with_roles_teams_and_last_sign_in(admin_client, web_store):  # noqa: F811
    team = web_store.create_team("Billing")
    bob = make_agent(web_store, "bob@example.org", name="Bob Builder", role="lead")
    web_store.set_agent_teams(bob["id"], [team])
    page = admin_client.get("/admin/agents").get_data(as_text=True)
    assert "Ada Admin" in page and "ada@example.org" in page
    assert "Bob Builder" in page and "Lead" in page and "Billing" in page
    assert "never" in page  # Bob never signed in; Ada did
    assert 'href="/admin/agents"' in admin_client.get("/").get_data(as_text=True), "Admin link in the nav"


def test_the_agent_page_is_about_that_agent(admin_client, web_store, admin):  # noqa: F811
    bob = make_agent(web_store, "bob@example.org", name="Bob Builder", role="lead")
    page = admin_client.get(f"/admin/agents/{bob['id']}").get_data(as_text=True)
    assert re.search(r"<h1>\s*Bob Builder\s*</h1>", page)
    assert "bob@example.org · Lead · active" in " ".join(page.split())
    actions = re.findall(r'<form method="post" action="(/admin/agents/[^"]+)"', page)
    assert actions and all(a.startswith(f"/admin/agents/{bob['id']}/") for a in actions), actions
    assert 'value="Bob Builder"' in page


# Invitations ----------------------------------------------------------------------------------

def test_invitation_flow(app, admin_client, web_store):  # noqa: F811
    team = web_store.create_team("Billing")
    link, token = invite(admin_client, team=str(team))
    assert link.startswith("http://127.0.0.1:5000/invite/")
    assert len(token) >= 43, "secrets.token_urlsafe(32)"
    assert "Nina New" in admin_client.get("/admin/agents").get_data(as_text=True)
    nina = web_store.agent_by_email("nina@example.org")
    assert nina["password_hash"] is None and nina["role"] == "agent"
    assert web_store.agent_team_ids(nina["id"]) == {team}

    # Only the hash is stored: the token itself is nowhere in the database file.
    web_store.checkpoint()
    if web_store.engine == "sqlite":
        raw = (web_store.path).read_bytes()
    else:  # a server's files are not ours to read: every row of the invitations, as text
        raw = repr(web_store.conn.execute("SELECT * FROM agent_invitations").fetchall()).encode()
    assert token.encode() not in raw
    assert hashlib.sha256(token.encode()).hexdigest().encode() in raw

    # Not usable for sign-in before the password is set.
    assert login(app.test_client(), "nina@example.org", "").status_code == 401

    client, response = accept(app, token)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert signed_in(client), "the invitee is signed in"
    assert login(app.test_client(), "nina@example.org", NEW_PASSWORD).status_code == 302

    # Used up.
    assert app.test_client().get(f"/invite/{token}").status_code == 404
    _, again = accept(app, token, password="another password entirely")
    assert again.status_code == 404
    assert login(app.test_client(), "nina@example.org", NEW_PASSWORD).status_code == 302

    actions = [e["action"] for e in web_store.audit_entries(object_type="agent", object_id=nina["id"])]
    assert "agent_invited" in actions and "invitation_accepted" in actions


def test_the_link_is_shown_once_and_never_again(admin_client, web_store):  # noqa: F811
    link, token = invite(admin_client)
    agent_id = web_store.agent_by_email("nina@example.org")["id"]
    for path in ("/admin/agents", f"/admin/agents/{agent_id}"):
        assert token not in admin_client.get(path).get_data(as_text=True)


@pytest.mark.parametrize("mangle", [
    lambda t: t.swapcase(),
    lambda t: t.upper(),
    lambda t: t + "x",
    lambda t: t[:-1],
    lambda t: " " + t,
    lambda t: t + "%20",
    lambda t: "%20",
    lambda t: "%00",
    lambda t: "x" * 5000,
    lambda t: hashlib.sha256(t.encode()).hexdigest(),  # the stored hash is no key either
])
def test_changed_or_unknown_tokens_are_404(app, admin_client, mangle):
    _, token = invite(admin_client)
    client = app.test_client()
    assert client.get(f"/invite/{mangle(token)}").status_code == 404
    assert client.get(f"/invite/{token}").status_code == 200, "the real token still works"


@pytest.mark.parametrize("path", ["/invite/", "/invite", "/invite/%20/", "/invite//"])
def test_empty_tokens_are_404(app, admin_client, path):
    invite(admin_client)
    assert app.test_client().get(path).status_code == 404


def test_expired_invitation_is_404(app, admin_client, web_store, monkeypatch):  # noqa: F811
    import datetime as dt

    monkeypatch.setattr(admin_module, "INVITATION_VALID", dt.timedelta(seconds=-1))
    _, token = invite(admin_client)
    client, response = accept(app, token)
    assert response.status_code == 404
    assert web_store.agent_by_email("nina@example.org")["password_hash"] is None


def test_invitation_is_valid_for_72_hours(admin_client, web_store):  # noqa: F811
    import datetime as dt

    from inbox.store.base import parse_iso

    invite(admin_client)
    agent_id = web_store.agent_by_email("nina@example.org")["id"]
    expires = parse_iso(web_store.pending_invitations()[agent_id])
    left = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=71, minutes=59) < left <= dt.timedelta(hours=72)


def test_a_new_link_stops_the_old_one(app, admin_client, web_store):  # noqa: F811
    _, old = invite(admin_client)
    agent_id = web_store.agent_by_email("nina@example.org")["id"]
    response = post(admin_client, f"/admin/agents/{agent_id}/invitation")
    new = re.search(r"/invite/([A-Za-z0-9_-]+)", response.get_data(as_text=True)).group(1)
    assert app.test_client().get(f"/invite/{old}").status_code == 404
    assert app.test_client().get(f"/invite/{new}").status_code == 200


def test_a_disabled_agents_invitation_does_not_work(app, admin_client, web_store):  # noqa: F811
    _, token = invite(admin_client)
    agent_id = web_store.agent_by_email("nina@example.org")["id"]
    post(admin_client, f"/admin/agents/{agent_id}/disable")
    assert app.test_client().get(f"/invite/{token}").status_code == 404


def test_invitation_password_rules(app, admin_client, web_store):  # noqa: F811
    _, token = invite(admin_client)
    _, short = accept(app, token, password="short")
    assert short.status_code == 400 and "at least 8" in short.get_data(as_text=True)
    _, differ = accept(app, token, password=NEW_PASSWORD, repeat=NEW_PASSWORD + "!")
    assert differ.status_code == 400 and "differ" in differ.get_data(as_text=True)
    _, ok = accept(app, token)
    assert ok.status_code == 302, "failed attempts do not use the link up"


def test_invite_form_checks_its_fields(admin_client, web_store, admin):  # noqa: F811
    bad = post(admin_client, "/admin/agents", {"email": "not an address", "name": "", "role": "emperor"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "Enter an email address" in page and "Enter the name" in page and "Choose a role" in page
    taken = post(admin_client, "/admin/agents", {"email": "ADA@example.org", "name": "Twin", "role": "agent"})
    assert taken.status_code == 400 and "already exists" in taken.get_data(as_text=True)
    assert [a["email"] for a in web_store.agents()] == ["ada@example.org"]


def test_invitation_page_escapes_the_name(app, admin_client):
    _, token = invite(admin_client, name="<script>alert(1)</script>")
    page = app.test_client().get(f"/invite/{token}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


# Mass assignment (SEC-07) ---------------------------------------------------------------------

def test_invite_ignores_fields_it_does_not_name(app, admin_client, web_store):  # noqa: F811
    _, token = invite(admin_client, role="agent", is_admin="1", active="0", password_hash="x",
                      session_epoch="99", team_id="1", id="1")
    nina = web_store.agent_by_email("nina@example.org")
    assert nina["role"] == "agent" and nina["active"] == 1 and nina["password_hash"] is None
    assert nina["session_epoch"] == 0 and nina["id"] != 1
    # Nor does the invitee's form take a role, address or anything else.
    _, response = accept(app, token, role="admin", is_admin="1", email="ada@example.org", name="Boss")
    assert response.status_code == 302
    nina = web_store.agent_by_email("nina@example.org")
    assert nina["role"] == "agent" and nina["name"] == "Nina New"
    assert web_store.agent_by_email("ada@example.org")["name"] == "Ada Admin"


def test_role_form_changes_the_role_only(admin_client, web_store):  # noqa: F811
    team = web_store.create_team("Billing")
    bob = make_agent(web_store, "bob@example.org", name="Bob")
    response = post(admin_client, f"/admin/agents/{bob['id']}/role",
                    {"role": "lead", "is_admin": "1", "active": "0", "email": "evil@example.org", "name": "Evil",
                     "team": str(team), "team_id": str(team), "session_epoch": "7"})
    assert response.status_code == 302
    after = web_store.agent(bob["id"])
    assert after["role"] == "lead"
    assert (after["email"], after["name"], after["active"], after["session_epoch"]) == \
        ("bob@example.org", "Bob", 1, 0)
    assert web_store.agent_team_ids(bob["id"]) == set()


def test_teams_form_changes_memberships_only(admin_client, web_store):  # noqa: F811
    billing = web_store.create_team("Billing")
    bob = make_agent(web_store, "bob@example.org", name="Bob")
    post(admin_client, f"/admin/agents/{bob['id']}/teams",
         {"team": [str(billing), "999", "abc", "-1"], "role": "admin", "is_admin": "1", "name": "Evil"})
    after = web_store.agent(bob["id"])
    assert web_store.agent_team_ids(bob["id"]) == {billing}
    assert after["role"] == "agent" and after["name"] == "Bob"


def test_unknown_roles_are_refused(admin_client, web_store):  # noqa: F811
    bob = make_agent(web_store, "bob@example.org")
    for role in ("emperor", "", "ADMIN", "admin "):
        assert post(admin_client, f"/admin/agents/{bob['id']}/role", {"role": role}).status_code == 400
    assert web_store.agent(bob["id"])["role"] == "agent"


def test_name_form_cleans_the_name(admin_client, web_store):  # noqa: F811
    bob = make_agent(web_store, "bob@example.org", name="Bob")
    post(admin_client, f"/admin/agents/{bob['id']}/name", {"name": "  Robert\r\nBcc: x  ", "role": "admin"})
    after = web_store.agent(bob["id"])
    assert after["name"] == "Robert Bcc: x" and after["role"] == "agent"


# Disabling and sessions (WEB-05) --------------------------------------------------------------

def test_disabling_ends_the_agents_sessions_and_enabling_lets_them_back(app, admin_client, web_store):  # noqa: F811
    bob = make_agent(web_store, "bob@example.org")
    bob_client = app.test_client()
    login(bob_client, "bob@example.org")
    assert signed_in(bob_client)

    response = post(admin_client, f"/admin/agents/{bob['id']}/disable")
    assert response.status_code == 302
    assert not signed_in(bob_client), "the open session ended"
    assert login(app.test_client(), "bob@example.org").status_code == 401
    assert "disabled" in admin_client.get("/admin/agents").get_data(as_text=True)

    post(admin_client, f"/admin/agents/{bob['id']}/enable")
    assert not signed_in(bob_client), "enabling does not revive the old session"
    assert login(app.test_client(), "bob@example.org").status_code == 302
    actions = [e["action"] for e in web_store.audit_entries(object_type="agent", object_id=bob["id"])]
    assert actions[1:3] == ["agent_enabled", "agent_disabled"]
    assert all(e["actor"].startswith("agent:") for e in web_store.audit_entries(object_type="agent"))


def test_admin_can_sign_an_agent_out_everywhere(app, admin_client, web_store):  # noqa: F811
    bob = make_agent(web_store, "bob@example.org")
    bob_client = app.test_client()
    login(bob_client, "bob@example.org")
    post(admin_client, f"/admin/agents/{bob['id']}/sessions")
    assert not signed_in(bob_client)
    assert login(bob_client, "bob@example.org").status_code == 302, "they may sign in again"


def test_a_role_change_applies_on_the_next_request(app, admin_client, web_store):  # noqa: F811
    bob = make_agent(web_store, "bob@example.org")
    bob_client = app.test_client()
    login(bob_client, "bob@example.org")
    assert bob_client.get("/admin/agents").status_code == 403
    post(admin_client, f"/admin/agents/{bob['id']}/role", {"role": "admin"})
    assert bob_client.get("/admin/agents").status_code == 200
    post(admin_client, f"/admin/agents/{bob['id']}/role", {"role": "agent"})
    assert bob_client.get("/admin/agents").status_code == 403


# The last admin -------------------------------------------------------------------------------

def test_the_last_admin_cannot_demote_or_disable_themselves(admin_client, web_store, admin):  # noqa: F811
    response = post(admin_client, f"/admin/agents/{admin['id']}/role", {"role": "agent"})
    assert response.status_code == 302
    assert "at least one active admin" in admin_client.get(response.headers["Location"]).get_data(as_text=True)
    post(admin_client, f"/admin/agents/{admin['id']}/disable")
    after = web_store.agent(admin["id"])
    assert after["role"] == "admin" and after["active"] == 1
    assert signed_in(admin_client)


def test_with_a_second_admin_one_may_step_down(app, admin_client, web_store, admin):  # noqa: F811
    bea = make_agent(web_store, "bea@example.org", role="admin")
    post(admin_client, f"/admin/agents/{admin['id']}/role", {"role": "manager"})
    assert web_store.agent(admin["id"])["role"] == "manager"
    assert admin_client.get("/admin/agents").status_code == 403
    # Now Bea is the last admin: she cannot go either.
    bea_client = app.test_client()
    login(bea_client, "bea@example.org")
    post(bea_client, f"/admin/agents/{bea['id']}/disable")
    post(bea_client, f"/admin/agents/{bea['id']}/role", {"role": "agent"})
    assert web_store.agent(bea["id"])["role"] == "admin" and web_store.agent(bea["id"])["active"] == 1


def test_a_disabled_admin_does_not_count(admin_client, web_store, admin):  # noqa: F811
    bea = make_agent(web_store, "bea@example.org", role="admin")
    post(admin_client, f"/admin/agents/{bea['id']}/disable")
    post(admin_client, f"/admin/agents/{admin['id']}/role", {"role": "agent"})
    assert web_store.agent(admin["id"])["role"] == "admin"


def test_an_admin_who_is_not_the_last_may_disable_themselves(app, admin_client, web_store, admin):  # noqa: F811
    make_agent(web_store, "bea@example.org", role="admin")
    response = post(admin_client, f"/admin/agents/{admin['id']}/disable")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(admin_client)


# Teams ----------------------------------------------------------------------------------------

def test_create_rename_and_delete_a_team(admin_client, web_store):  # noqa: F811
    response = post(admin_client, "/admin/teams", {"name": "  Billing  "}, token_from="/admin/teams")
    assert response.status_code == 302
    team_id = web_store.team_id_by_name("Billing")
    assert response.headers["Location"] == f"/admin/teams/{team_id}"
    dup = post(admin_client, "/admin/teams", {"name": "BILLING"}, token_from="/admin/teams")
    assert dup.status_code == 400 and "already exists" in dup.get_data(as_text=True)
    empty = post(admin_client, "/admin/teams", {"name": "   "}, token_from="/admin/teams")
    assert empty.status_code == 400
    long = post(admin_client, "/admin/teams", {"name": "x" * 81}, token_from="/admin/teams")
    assert long.status_code == 400

    post(admin_client, f"/admin/teams/{team_id}/rename", {"name": "Invoices", "id": "77"})
    assert web_store.team(team_id)["name"] == "Invoices"
    assert "Invoices" in admin_client.get("/admin/teams").get_data(as_text=True)

    post(admin_client, f"/admin/teams/{team_id}/delete")
    assert web_store.team(team_id) is None
    actions = [e["action"] for e in web_store.audit_entries(object_type="team", object_id=team_id)]
    assert actions == ["team_deleted", "team_renamed", "team_created"]


def test_a_team_with_members_is_not_deleted(admin_client, web_store):  # noqa: F811
    team = web_store.create_team("Billing")
    bob = make_agent(web_store, "bob@example.org", name="Bob Builder")
    post(admin_client, f"/admin/teams/{team}/members", {"agent_id": str(bob["id"])})
    assert web_store.agent_team_ids(bob["id"]) == {team}
    assert "Bob Builder" in admin_client.get(f"/admin/teams/{team}").get_data(as_text=True)
    response = post(admin_client, f"/admin/teams/{team}/delete")
    assert web_store.team(team) is not None
    assert "Only a team without members" in admin_client.get(response.headers["Location"]).get_data(as_text=True)
    post(admin_client, f"/admin/teams/{team}/members/{bob['id']}/remove")
    assert web_store.agent_team_ids(bob["id"]) == set()
    post(admin_client, f"/admin/teams/{team}/delete")
    assert web_store.team(team) is None


def test_adding_an_unknown_agent_is_refused(admin_client, web_store):  # noqa: F811
    team = web_store.create_team("Billing")
    for value in ("999", "abc", "", "-1"):
        assert post(admin_client, f"/admin/teams/{team}/members", {"agent_id": value}).status_code == 400
    assert web_store.team_members(team) == []


@pytest.mark.parametrize("path", ["/admin/agents/999", "/admin/teams/999"])
def test_unknown_admin_objects_are_404(admin_client, path):
    assert admin_client.get(path).status_code == 404


def test_teams_page_shows_channel_routing_and_warns_of_unknown_team_names(tmp_path):
    from inbox import create_app
    from tests.test_access import imap_channel

    app = create_app({"database": str(tmp_path / "m.db"), "data_dir": str(tmp_path / "d"), "secret_key": "k",
                      "channels": {"mail-a": imap_channel("Billing", "a@mainland.test"),
                                   "mail-z": imap_channel("Nowhere", "z@mainland.test")}})
    store = app.extensions["mainland"].open_store()
    store.create_team("Billing")
    make_agent(store, "ada@example.org", role="admin")
    client = app.test_client()
    login(client, "ada@example.org")
    page = client.get("/admin/teams").get_data(as_text=True)
    assert "mail-a" in page
    assert "Nowhere" in page and "does not exist" in page
    store.close()


# CSRF on every admin POST (SEC-08, IN-66) ------------------------------------------------------

def _admin_post_urls(app, agent_id, team_id, quarantine_id=None):
    pages = {rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods:
            continue
        if not (rule.endpoint.startswith("admin.") or rule.rule.startswith("/admin")):
            continue
        if rule.endpoint == "admin.accept_invitation":
            continue  # covered below: it has its own token
        values = {}
        for arg in rule.arguments:
            # Any other id: the CSRF check refuses before the id is looked up.
            values[arg] = {"agent_id": agent_id, "team_id": team_id, "quarantine_id": quarantine_id}.get(arg, 1)
        urls.append((rule.build(values)[1], rule.rule in pages))
    return urls


def test_every_admin_post_needs_its_csrf_token(app, admin_client, web_store, admin):  # noqa: F811
    team = web_store.create_team("Billing")
    bob = make_agent(web_store, "bob@example.org", name="Bob")
    web_store.add_team_member(team, bob["id"])
    other = app.test_client()
    login(other, "bob@example.org")
    foreign_token = csrf_token(other, "/")  # another session's token
    with web_store.write():
        held = web_store.quarantine_put("mail", b"unreadable", "no sender", source_ref=None, exception=None,
                                        now="2026-03-05T10:00:00.000000Z")
    urls = _admin_post_urls(app, bob["id"], team, held)
    assert len(urls) >= 12, urls
    form = {"name": "Changed", "role": "manager", "email": "x@example.org", "team": str(team),
            "agent_id": str(admin["id"])}
    before_audit = len(web_store.audit_entries(limit=1000))
    for url, has_page in urls:
        for token in (None, foreign_token, "", "garbage"):
            data = dict(form)
            if token is not None:
                data["csrf_token"] = token
            response = admin_client.post(url, data=data)
            assert response.status_code == 400, (url, token, response.status_code)
            assert "The form expired" in response.get_data(as_text=True)
        if not has_page:
            assert admin_client.get(url).status_code == 405, f"no GET on a POST-only route: {url}"
    assert len(web_store.audit_entries(limit=1000)) == before_audit
    after = web_store.agent(bob["id"])
    assert (after["name"], after["role"], after["active"]) == ("Bob", "agent", 1)
    assert web_store.team(team)["name"] == "Billing"
    assert web_store.agent_team_ids(bob["id"]) == {team}
    assert [a["email"] for a in web_store.agents()] == ["ada@example.org", "bob@example.org"]
    assert web_store.quarantine_item(held)["status"] == "held"


def test_the_invitation_form_needs_its_csrf_token(app, admin_client, web_store):  # noqa: F811
    _, token = invite(admin_client)
    client = app.test_client()
    client.get(f"/invite/{token}")
    response = client.post(f"/invite/{token}", data={"password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD})
    assert response.status_code == 400
    assert web_store.agent_by_email("nina@example.org")["password_hash"] is None


def test_admin_pages_speak_dutch(app, admin_client, web_store, admin):  # noqa: F811
    web_store.set_agent_locale(admin["id"], "nl")
    page = admin_client.get("/admin/agents").get_data(as_text=True)
    assert "Een medewerker uitnodigen" in page and "Beheerder" in page
    assert "Nieuw team" in admin_client.get("/admin/teams").get_data(as_text=True)
