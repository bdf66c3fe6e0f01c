"""Team access: who sees which conversation, per role, per configuration and per channel (SEC-06).

Also home of `build_world`, the two-team installation the access-matrix test uses: channels
`mail-a` (team A) and `mail-b` (team B) plus an unrouted channel, an agent in each team, a lead,
a manager and an admin, and conversations with attachments and original bytes on each channel.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from werkzeug.exceptions import NotFound

from inbox import access, create_app
from inbox.config import ConfigError, from_mapping
from inbox.mail import parse_email
from inbox.models import FetchResult
from tests.test_web_auth import PASSWORD, csrf_token, make_agent

#: Words that appear only in team B's conversation: search for them as team A must find nothing.
B_SECRET = "zebrafish"
B_SUBJECT = f"Quarterly {B_SECRET} invoice dispute"
B_SENDER_NAME = "Bettina Bravo"
A_SUBJECT = "Alpha order arrived late"
POOL_SUBJECT = "Unrouted question about opening hours"


def imap_channel(team: str | None, address: str) -> dict:
    """An IMAP channel with dummy settings: configured, never polled."""
    channel = {"kind": "imap", "host": "imap.invalid", "username": address, "password": "unused",
               "address": address, "enabled": True}
    if team:
        channel["team"] = team
    return channel


def mail_with_attachment(*, sender: str, subject: str, body: str, message_id: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@mainland.test"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = "Thu, 05 Mar 2026 10:15:02 +0000"
    msg.set_content(body)
    msg.add_alternative(f"<p>{body}</p>", subtype="html")
    msg.add_attachment(f"{body} (attached)".encode(), maintype="text", subtype="plain", filename="details.txt")
    return msg.as_bytes()


@dataclass
class World:
    """Ids of everything the access tests ask for, per team."""

    app: object
    store: object
    root: object = None
    extra: dict = field(default_factory=dict)
    team_a: int = 0
    team_b: int = 0
    agents: dict[str, dict] = field(default_factory=dict)
    conversation: dict[str, int] = field(default_factory=dict)
    message: dict[str, int] = field(default_factory=dict)
    attachment: dict[str, int] = field(default_factory=dict)
    customer: dict[str, int] = field(default_factory=dict)

    def client(self, who: str | None):
        """A test client signed in as `who` (a key of `agents`), or anonymous for None."""
        client = self.app.test_client()
        if who is not None:
            email = self.agents[who]["email"]
            response = client.post("/login", data={"email": email, "password": PASSWORD,
                                                   "csrf_token": csrf_token(client)})
            assert response.status_code == 302, f"{who} could not sign in"
        return client


def world_config(root, **extra) -> dict:
    config = {
        "database": str(root / "mainland.db"),
        "data_dir": str(root / "data"),
        "secret_key": "test-secret-key",
        "instance_id": "test-instance",
        "mail_domain": "mainland.test",
        "channels": {
            "mail-a": imap_channel("Team A", "support-a@mainland.test"),
            "mail-b": imap_channel("Team B", "support-b@mainland.test"),
            "mail-x": imap_channel(None, "support-x@mainland.test"),
        },
    }
    config.update(extra)
    return config


def build_world(root, **extra) -> World:
    """A new installation in folder `root` with teams, agents and a conversation on each channel."""
    app = create_app(world_config(root, **extra))
    app.config.update(TESTING=True)
    store = app.extensions["mainland"].open_store()
    world = World(app=app, store=store, root=root, extra=extra)
    world.team_a = store.create_team("Team A")
    world.team_b = store.create_team("Team B")
    for key, email, role, teams in [
        ("agent_a", "ann@example.org", "agent", [world.team_a]),
        ("agent_b", "bob@example.org", "agent", [world.team_b]),
        ("lead_a", "lea@example.org", "lead", [world.team_a]),
        ("loner", "lone@example.org", "agent", []),
        ("manager", "max@example.org", "manager", []),
        ("admin", "ada@example.org", "admin", []),
    ]:
        agent = make_agent(store, email, name=key.replace("_", " ").title(), role=role)
        store.set_agent_teams(agent["id"], teams)
        world.agents[key] = agent
    ingestor = app.extensions["mainland"].ingestor(store)
    for key, channel, sender, subject, body in [
        ("a", "mail-a", "Alice Alpha <alice@example.net>", A_SUBJECT, "The alpha parcel came a week late."),
        ("b", "mail-b", f"{B_SENDER_NAME} <bettina@example.net>", B_SUBJECT,
         f"Our {B_SECRET} invoice is wrong, please check."),
        ("x", "mail-x", "Xavier Pool <xavier@example.net>", POOL_SUBJECT, "When are you open on Sunday?"),
    ]:
        raw = mail_with_attachment(sender=sender, subject=subject, body=body, message_id=f"<{key}-1@example.net>")
        item = parse_email(raw, channel=channel)
        report = ingestor.ingest(channel, FetchResult(items=[item], cursor=f"{key}1"))
        [conversation_id] = report.new_conversations
        [message_id] = report.message_ids
        world.conversation[key] = conversation_id
        world.message[key] = message_id
        [message] = store.conversation_messages(conversation_id)
        world.attachment[key] = message["attachments"][0]["id"]
        world.customer[key] = store.conversation(conversation_id)["customer_id"]
    return world


def copy_world(world: World, root) -> World:
    """An independent copy of `world` (database and files) in folder `root`, with the same ids."""
    world.store.checkpoint()
    shutil.copytree(world.root, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    app = create_app(world_config(root, **world.extra))
    app.config.update(TESTING=True)
    copy = dataclasses.replace(world, app=app, store=app.extensions["mainland"].open_store(), root=root)
    copy.agents = {k: dict(v) for k, v in world.agents.items()}
    return copy


@pytest.fixture
def world(tmp_path):
    world = build_world(tmp_path)
    yield world
    world.store.close()


# Routing new conversations to teams ----------------------------------------------------------

def test_channel_team_setting_routes_new_conversations(world):
    store = world.store
    assert store.conversation(world.conversation["a"])["team_id"] == world.team_a
    assert store.conversation(world.conversation["b"])["team_id"] == world.team_b
    assert store.conversation(world.conversation["x"])["team_id"] is None
    assert world.app.extensions["mainland"].team_for_channel("mail-b") == "Team B"
    assert world.app.extensions["mainland"].team_for_channel("mail-x") is None
    assert world.app.extensions["mainland"].team_for_channel("no-such-channel") is None


def test_a_channel_naming_an_unknown_team_leaves_conversations_unrouted(tmp_path, caplog):
    config = world_config(tmp_path)
    config["channels"]["mail-a"]["team"] = "Nobody"
    app = create_app(config)
    store = app.extensions["mainland"].open_store()
    raw = mail_with_attachment(sender="c@example.net", subject="Hi", body="Hello", message_id="<n-1@example.net>")
    report = app.extensions["mainland"].ingestor(store).ingest(
        "mail-a", FetchResult(items=[parse_email(raw, channel="mail-a")], cursor="1"))
    assert store.conversation(report.new_conversations[0])["team_id"] is None
    assert "names team 'Nobody', which does not exist" in caplog.text
    store.close()


def test_team_names_match_whatever_their_case(world):
    assert world.store.team_id_by_name(" team b ") == world.team_b


# The rule per role -----------------------------------------------------------------------------

def test_visible_teams_per_role(world):
    store, agents = world.store, world.agents
    with world.app.test_request_context():
        assert access.visible_team_ids(store, agents["agent_a"]) == {world.team_a}
        assert access.visible_team_ids(store, agents["lead_a"]) == {world.team_a}
        assert access.visible_team_ids(store, agents["loner"]) == set()
        assert access.visible_team_ids(store, agents["manager"]) is None
        assert access.visible_team_ids(store, agents["admin"]) is None


@pytest.mark.parametrize("who, sees", [
    ("agent_a", {"a", "x"}),
    ("lead_a", {"a", "x"}),
    ("agent_b", {"b", "x"}),
    ("loner", {"x"}),
    ("manager", {"a", "b", "x"}),
    ("admin", {"a", "b", "x"}),
])
def test_who_sees_which_conversation(world, who, sees):
    store = world.store
    with world.app.test_request_context():
        for key, conversation_id in world.conversation.items():
            row = store.conversation(conversation_id)
            assert access.can_see_conversation(store, world.agents[who], row) is (key in sees), (who, key)
            if key in sees:
                assert access.require_conversation(store, world.agents[who], conversation_id)["id"] == conversation_id
                assert access.require_message(store, world.agents[who], world.message[key])
                assert access.require_attachment(store, world.agents[who], world.attachment[key])
            else:
                for check, object_id in [(access.require_conversation, conversation_id),
                                         (access.require_message, world.message[key]),
                                         (access.require_attachment, world.attachment[key])]:
                    with pytest.raises(NotFound):
                        check(store, world.agents[who], object_id)


def test_anonymous_sees_nothing(world):
    with world.app.test_request_context():
        row = world.store.conversation(world.conversation["x"])
        assert not access.can_see_conversation(world.store, None, row)
        with pytest.raises(NotFound):
            access.require_conversation(world.store, None, world.conversation["x"])


def test_unknown_ids_are_not_found_like_hidden_ones(world):
    with world.app.test_request_context():
        for check in (access.require_conversation, access.require_message, access.require_attachment):
            with pytest.raises(NotFound):
                check(world.store, world.agents["admin"], 10**9)


def test_joining_a_team_shows_its_conversations_on_the_next_request(world):
    client = world.client("agent_a")
    url = f"/conversations/{world.conversation['b']}"
    assert client.get(url).status_code == 404
    world.store.add_team_member(world.team_b, world.agents["agent_a"]["id"])
    assert client.get(url).status_code == 200
    world.store.remove_team_member(world.team_b, world.agents["agent_a"]["id"])
    assert client.get(url).status_code == 404


def test_visibility_all_shows_everyone_everything(tmp_path):
    world = build_world(tmp_path, web={"visibility": "all"})
    try:
        with world.app.test_request_context():
            assert access.visible_team_ids(world.store, world.agents["agent_a"]) is None
        client = world.client("agent_a")
        assert client.get(f"/conversations/{world.conversation['b']}").status_code == 200
        assert B_SUBJECT in client.get("/").get_data(as_text=True)
    finally:
        world.store.close()


@pytest.mark.parametrize("web", [{"visibility": "everyone"}, {"visibility": None}, "all"])
def test_visibility_takes_only_team_or_all(tmp_path, web):
    with pytest.raises(ConfigError, match="web"):
        from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k", "web": web}, base=tmp_path)


def test_visibility_defaults_to_team(tmp_path):
    config = from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k", "web": {"port": 8000}},
                          base=tmp_path)
    assert access.configured_visibility(config) == "team"
    assert access.configured_visibility(from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k"},
                                                     base=tmp_path)) == "team"


# The conversation list ------------------------------------------------------------------------

def test_list_shows_own_team_and_the_unrouted_pool_only(world):
    page = world.client("agent_a").get("/").get_data(as_text=True)
    assert A_SUBJECT in page and POOL_SUBJECT in page
    assert B_SUBJECT not in page and B_SENDER_NAME not in page and B_SECRET not in page


def test_list_of_a_manager_has_every_team(world):
    page = world.client("manager").get("/").get_data(as_text=True)
    assert A_SUBJECT in page and POOL_SUBJECT in page and B_SUBJECT in page


def test_list_filter_is_in_sql_so_pages_stay_full(world):
    # 60 more conversations for team B, then one for A: agent A's first page must still show A's,
    # not an empty page of filtered-out rows.
    ingestor = world.app.extensions["mainland"].ingestor(world.store)
    items = [parse_email(mail_with_attachment(sender=f"b{n}@example.net", subject=f"B flood {n}", body="x",
                                              message_id=f"<flood-{n}@example.net>"), channel="mail-b")
             for n in range(60)]
    ingestor.ingest("mail-b", FetchResult(items=items, cursor="flood"))
    page = world.client("agent_a").get("/").get_data(as_text=True)
    assert A_SUBJECT in page and POOL_SUBJECT in page and "B flood" not in page


def test_nobody_signed_out_reaches_the_list(world):
    response = world.client(None).get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_settings_page_still_works_for_every_role(world):
    for who in ("agent_a", "lead_a", "manager", "admin"):
        assert world.client(who).get("/settings").status_code == 200
