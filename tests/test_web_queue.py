"""The queue: one list of every channel with filters, sorts, keyset pages, saved views, counts,
bulk actions and unread marks, limited to the agent's teams; hostile filter values (SEC-12) are a
400 or ignored, never a 500.

Conversations come in through the real ingest pipeline (email and a chat channel) with a clock the
test moves, so waiting times and activity order are known.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading

import pytest
from werkzeug.serving import make_server

from inbox.mail import parse_email
from inbox.models import Author, FetchResult, InboundItem
from inbox.store.base import iso
from inbox.store.queue import COUNT_CAP, QueueQuery
from tests.mailfactory import raw_mail
from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent, web_store  # noqa: F401


class Clock:
    """The ingest clock; it starts 250 minutes ago, so waiting times shown (against the real
    time) are predictable."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=250)

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, minutes: float = 1) -> None:
        self.now += dt.timedelta(minutes=minutes)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def inbox(app, web_store, clock):  # noqa: F811
    """Helpers that make conversations through the ingest pipeline and change them like agents do."""
    return Inbox(app, web_store, clock)


class Inbox:
    def __init__(self, app, store, clock) -> None:
        self.store = store
        self.clock = clock
        self.ingestor = app.extensions["mainland"].ingestor(store)
        self.ingestor.now = clock
        self._ids = itertools.count(1)

    def _ingest(self, channel: str, item: InboundItem) -> int:
        report = self.ingestor.ingest(channel, FetchResult(items=[item], cursor=f"c{next(self._ids)}"))
        [message_id] = report.message_ids
        self.clock.tick()
        return self.store.message(message_id)["conversation_id"]

    def mail(self, subject: str = "Order 1234 arrived broken", *, sender: str = "Jane Doe <jane@example.net>",
             body: str = "Hello, my order arrived broken.", **kw) -> int:
        return self._ingest("mail", parse_email(raw_mail(sender=sender, subject=subject, body=body, **kw),
                                                channel="mail"))

    def chat(self, text: str, *, handle: str = "4711", name: str = "Piet Chat", channel: str = "telegram",
             thread: str | None = None) -> int:
        n = next(self._ids)
        item = InboundItem(channel=channel, external_id=f"{channel}-{n}", text=text, thread_key=thread or f"t{n}",
                           author=Author(handle=handle, name=name, identity_kind=channel))
        return self._ingest(channel, item)

    def reply(self, conversation_id: int, text: str = "We are on it.") -> None:
        conversation = self.store.conversation(conversation_id)
        with self.store.write():
            self.store.queue_outbound(
                outbox_id=f"out-{next(self._ids)}", conversation_id=conversation_id, channel=conversation["channel"],
                agent_id=None, text=text, html=None, subject="", message_id=None, refs="", author_name="Agent",
                now=iso(self.clock()))
        self.clock.tick()

    def set(self, conversation_id: int, **changes) -> None:
        for action, value in changes.items():
            self.store.bulk_update([conversation_id], action=action, value=value, actor="test")

    def team(self, name: str) -> int:
        return self.store.create_team(name)


@pytest.fixture
def ann(web_store):  # noqa: F811
    agent = make_agent(web_store)
    # Ann chose offline, so signing in does not make routing hand her the conversations these tests
    # arrange by hand (routing: tests/test_routing.py, tests/test_presence_assignment.py).
    web_store.set_agent_status(agent["id"], "offline", "2000-01-01T00:00:00.000000Z")
    return agent


@pytest.fixture
def agent_client(client, ann):
    assert login(client).status_code == 302
    return client


def listed(client, url: str = "/", **params) -> list[int]:
    """Conversation ids on the queue page, in page order."""
    response = client.get(url, query_string=params or None)
    assert response.status_code == 200, response.status_code
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)"', response.get_data(as_text=True))]


def next_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">', html)
    return match.group(1).replace("&amp;", "&") if match else None


# What a row shows ----------------------------------------------------------------------------

def test_one_list_for_every_channel_with_what_an_agent_needs(agent_client, inbox, ann):
    mail = inbox.mail("Where is my parcel?", sender="Jane Doe <jane@example.net>")
    chat = inbox.chat("\n\nHi, is the shop open on Sunday?\nSecond line", handle="4711", name="Piet Chat")
    inbox.set(mail, assign=ann["id"], status="open")
    inbox.set(chat, label_add=inbox.store.ensure_label("VIP"))
    with inbox.store.write():
        inbox.store.execute("UPDATE conversations SET priority = 4 WHERE id = ?", (chat,))

    page = agent_client.get("/").get_data(as_text=True)
    assert listed(agent_client) == [chat, mail]  # newest activity first
    # Each row: the channel's icon named for people, the customer, the question, state and owner.
    assert 'class="chan-icon"' in page and 'aria-label="telegram"' in page and 'aria-label="mail"' in page
    assert "Jane Doe" in page and 'title="jane@example.net"' in page
    assert "Where is my parcel?" in page
    assert "Hi, is the shop open on Sunday?" in page and "Second line" not in page  # first line, no subject
    assert "Piet Chat" in page
    assert "Ann Agent" in page and "Unassigned" in page
    assert 'title="Ann Agent">' in page and ">AA<" in page  # the assignee's initials, named on hover
    assert "Urgent" in page and ">VIP<" in page
    assert page.count('class="waiting"') == 2  # both customers wait for an answer


def test_rows_fit_a_screen_and_name_people_not_network_ids(agent_client, inbox):
    """The list a shift works from: no raw account number or DID as the customer, a one-line preview of
    the latest message (ours marked), and a public post told apart from a private message."""
    dm = inbox.chat("Can I change my order?", handle="17841450000000010", name="", channel="telegram")
    did = inbox.chat("Is the sale on?", handle="did:plc:a5041f3e54a77423ee029d9a", name="Michael O'Neill",
                     channel="telegram")
    mail = inbox.mail("Order 99", sender="Kim <kim@example.net>", body="First question")
    inbox.reply(mail, "We sent it yesterday.")
    with inbox.store.write():
        inbox.store.execute("UPDATE conversations SET public = 1 WHERE id = ?", (did,))
    page = agent_client.get("/").get_data(as_text=True)

    def row(cid: int) -> str:
        return page.split(f'<tr data-id="{cid}"')[1].split("</tr>")[0]

    assert "17841450000000010" not in row(dm) and "Unknown customer" in row(dm)
    assert "did:plc" not in row(did) and "Michael O&#39;Neill" in row(did)
    assert 'class="vis vis-public"' in row(did) and 'class="vis vis-public"' not in row(dm)
    assert "Order 99" in row(mail) and "We sent it yesterday." in row(mail)
    assert "Our reply:" in row(mail)  # the latest message is ours, and says so


def test_each_channel_is_drawn_as_its_connector_declares(app_config):
    from inbox import create_app
    from inbox.web.queue import channel_marks

    app_config["channels"] = {"support": {"kind": "telegram", "token": "123:abc"},
                              "shop": {"kind": "webform", "reply_channel": "support"}}
    app = create_app(app_config)
    with app.test_request_context("/"):
        marks = channel_marks()
    assert marks["support"] == {"text": "T", "color": "#1b75a8", "label": "Telegram · support"}
    assert marks["shop"]["label"] == "Web form · shop" and marks["shop"]["text"] == "F"


def test_the_rows_alone_for_live_updates_follow_the_same_filters(agent_client, inbox, ann):
    mine = inbox.mail("Mine", sender="a@example.net")
    other = inbox.mail("Not mine", sender="b@example.net")
    inbox.set(mine, assign=ann["id"])
    html = agent_client.get("/", query_string={"assignee": "mine", "part": "rows"}).get_data(as_text=True)
    assert "<html" not in html and "<nav" not in html  # only rows, to swap into the table
    assert f'<tr data-id="{mine}"' in html and f'<tr data-id="{other}"' not in html


def test_waiting_time_runs_from_the_first_unanswered_message(agent_client, inbox):
    waiting = inbox.mail("Still waiting")  # 250 minutes ago
    inbox.clock.tick(180)
    answered = inbox.mail("Answered already", sender="bob@example.org")
    inbox.reply(answered)
    page = agent_client.get("/").get_data(as_text=True)
    row = page.split(f'<tr data-id="{waiting}"')[1].split("</tr>")[0]
    assert re.search(r'class="waiting"[^>]*>4 hr<', row), row
    assert 'class="waiting"' not in page.split(f'<tr data-id="{answered}"')[1].split("</tr>")[0]


def test_hostile_subject_and_name_are_shown_escaped(agent_client, inbox):
    inbox.mail("<script>alert(1)</script>", sender='"<img src=x onerror=alert(1)>" <m@evil.example>')
    page = agent_client.get("/").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_encoded_word_subject_is_decoded_then_escaped(agent_client, inbox):
    inbox.mail("=?utf-8?q?Bestelling_=3Cb=3Ekapot=3C/b=3E_=E2=9C=93?=")
    page = agent_client.get("/").get_data(as_text=True)
    assert "Bestelling &lt;b&gt;kapot&lt;/b&gt; ✓" in page


def test_a_possible_misthread_is_flagged_in_the_list(agent_client, inbox):
    inbox.mail("First", sender="alice@example.org", message_id="<a1@example.org>")
    inbox.mail("Hijack", sender="mallory@evil.example", in_reply_to="<a1@example.org>")
    assert "possible misthread" in agent_client.get("/").get_data(as_text=True)


# Filters and sorts ---------------------------------------------------------------------------

@pytest.fixture
def mixed(inbox, ann, web_store):  # noqa: F811
    """Five conversations that differ in exactly one filterable way each."""
    other = make_agent(web_store, "bob@example.org", name="Bob Agent")
    billing = inbox.team("Billing")
    vip = inbox.store.ensure_label("VIP")
    c = {
        "new_mail": inbox.mail("New by mail"),
        "mine_chat": inbox.chat("Mine on chat", handle="1", name="Chat One"),
        "pending": inbox.mail("Pending one", sender="p@example.org"),
        "resolved": inbox.mail("Resolved one", sender="r@example.org"),
        "bobs_billing": inbox.mail("Billing for Bob", sender="b@example.org"),
    }
    inbox.set(c["mine_chat"], assign=ann["id"], status="open", label_add=vip)
    with inbox.store.write():
        inbox.store.execute("UPDATE conversations SET priority = 3 WHERE id = ?", (c["mine_chat"],))
    inbox.set(c["pending"], status="pending")
    inbox.set(c["resolved"], status="resolved")
    inbox.set(c["bobs_billing"], assign=other["id"], team=billing)
    web_store.set_agent_teams(ann["id"], [billing])
    return c | {"bob": other["id"], "billing": billing, "vip": vip}


def test_each_filter_changes_the_list(agent_client, mixed):
    c = mixed
    everything = {c["new_mail"], c["mine_chat"], c["pending"], c["resolved"], c["bobs_billing"]}
    assert set(listed(agent_client)) == {c["new_mail"], c["mine_chat"], c["bobs_billing"]}  # needs attention
    assert set(listed(agent_client, status="all")) == everything
    assert listed(agent_client, status="pending") == [c["pending"]]
    assert listed(agent_client, status="resolved") == [c["resolved"]]
    assert listed(agent_client, status="open") == [c["mine_chat"]]
    assert listed(agent_client, status="all", channel="telegram") == [c["mine_chat"]]
    assert set(listed(agent_client, status="all", channel="mail")) == everything - {c["mine_chat"]}
    assert listed(agent_client, status="all", team=str(c["billing"])) == [c["bobs_billing"]]
    assert set(listed(agent_client, status="all", team="none")) == everything - {c["bobs_billing"]}
    assert listed(agent_client, status="all", assignee="mine") == [c["mine_chat"]]
    assert listed(agent_client, status="all", assignee=str(c["bob"])) == [c["bobs_billing"]]
    assert set(listed(agent_client, status="all", assignee="unassigned")) == {c["new_mail"], c["pending"],
                                                                             c["resolved"]}
    assert set(listed(agent_client, status="all", assignee="anyone")) == everything
    assert listed(agent_client, status="all", label=str(c["vip"])) == [c["mine_chat"]]
    assert listed(agent_client, status="all", priority="3") == [c["mine_chat"]]
    assert set(listed(agent_client, status="all", priority="0")) == everything - {c["mine_chat"]}
    # Filters combine.
    assert listed(agent_client, status="all", channel="mail", assignee="mine") == []
    page = agent_client.get("/", query_string={"status": "all", "channel": "mail", "assignee": "mine"})
    assert "No conversations match these filters." in page.get_data(as_text=True)


def test_sort_by_activity_or_by_waiting_longest(agent_client, inbox):
    oldest = inbox.mail("Oldest question", sender="o@example.org")
    inbox.clock.tick(30)
    middle = inbox.mail("Middle question", sender="m@example.org")
    inbox.clock.tick(30)
    answered = inbox.mail("Answered question", sender="a@example.org")
    inbox.reply(answered)
    inbox.clock.tick(30)
    newest = inbox.chat("Newest of all", handle="9")

    by_activity = listed(agent_client)
    assert by_activity[0] == newest and by_activity.index(answered) < by_activity.index(middle)
    by_waiting = listed(agent_client, sort="waiting")
    assert by_waiting[:2] == [oldest, middle]  # waited longest first
    assert by_waiting[-1] == answered  # nobody waits: last


def test_a_follow_up_keeps_the_original_waiting_time(inbox, agent_client):
    first = inbox.mail("Question", sender="o@example.org", message_id="<q1@example.org>")
    started = inbox.store.conversation(first)["waiting_since"]
    inbox.clock.tick(90)
    inbox.mail("Re: Question", sender="o@example.org", in_reply_to="<q1@example.org>")
    assert inbox.store.conversation(first)["waiting_since"] == started
    inbox.reply(first)
    assert inbox.store.conversation(first)["waiting_since"] is None
    inbox.clock.tick(5)
    inbox.mail("Re: Question (3)", sender="o@example.org", in_reply_to="<q1@example.org>")
    assert inbox.store.conversation(first)["waiting_since"] == iso(inbox.clock.now - dt.timedelta(minutes=1))


# Keyset pages --------------------------------------------------------------------------------

@pytest.mark.parametrize("sort", ["activity", "waiting"])
def test_pages_have_no_gaps_or_repeats_while_new_conversations_arrive(agent_client, inbox, sort):
    made = []
    for n in range(120):
        made.append(inbox.chat(f"Question {n:03d}", handle=f"h{n}"))
        if n % 3:
            inbox.clock.now -= dt.timedelta(minutes=1)  # ties in the sort key: the id breaks them
    first = agent_client.get("/", query_string={"sort": sort}).get_data(as_text=True)
    seen = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', first)]
    assert len(seen) == 50
    href = next_link(first)
    arrived = []
    while href:
        arrived.append(inbox.chat(f"Arrived meanwhile {len(arrived)}", handle=f"new{len(arrived)}"))
        page = agent_client.get(href).get_data(as_text=True)
        seen += [int(i) for i in re.findall(r'<tr data-id="(\d+)"', page)]
        href = next_link(page)
    assert len(seen) == len(set(seen)), "a conversation showed twice"
    assert set(seen) - set(arrived) == set(made), "a conversation was skipped"
    assert "after=" in agent_client.get("/", query_string={"sort": sort}).get_data(as_text=True)


def test_next_link_keeps_the_filters(agent_client, inbox):
    for n in range(55):
        inbox.chat(f"Chat {n}", handle=f"h{n}")
    inbox.mail("Mail one")
    page = agent_client.get("/", query_string={"channel": "telegram"}).get_data(as_text=True)
    href = next_link(page)
    assert "channel=telegram" in href and "after=" in href
    second = agent_client.get(href).get_data(as_text=True)
    assert second.count("<tr data-id=") == 5 and "Mail one" not in second
    assert next_link(second) is None


# Hostile values (SEC-12) ---------------------------------------------------------------------

HOSTILE = ["'", '"', ")", "--", ";", "' OR 1=1--", "1 OR 1=1", "1; DROP TABLE conversations", "NEAR(", "*",
           "col:", "^", "-1", "0x10", "1e3", "99999999999999999999999", "\x00", "ünïcödé", "status", "c.id",
           "last_message_at DESC; --", "x" * 5000, "%", "1,2"]
FILTERS = ["status", "channel", "team", "assignee", "label", "priority", "sort", "after"]


@pytest.mark.parametrize("name", FILTERS)
def test_hostile_filter_values_are_refused_never_an_error(agent_client, inbox, web_store, name):  # noqa: F811
    inbox.mail("Still here")
    for value in HOSTILE:
        response = agent_client.get("/", query_string={name: value})
        assert response.status_code in (200, 400), (name, value, response.status_code)
    assert web_store.execute("SELECT count(*) FROM conversations").fetchone()[0] == 1
    response = agent_client.get("/", query_string={name: "' OR 1=1--"})
    assert response.status_code == 400
    assert "This filter cannot be used" in response.get_data(as_text=True)


def test_unknown_parameters_and_empty_values_are_ignored(agent_client, inbox):
    conversation = inbox.mail("Hello")
    assert listed(agent_client, order="id; DROP TABLE x", channel="", team="", label="", priority="") == \
        [conversation]


def test_an_agent_filtered_by_id_must_exist(agent_client, inbox):
    inbox.mail("Hello")
    assert agent_client.get("/?assignee=424242").status_code == 400
    assert agent_client.get("/?label=424242").status_code == 400
    assert agent_client.get("/?team=424242").status_code == 400
    assert agent_client.get("/?channel=nonexistent").status_code == 400
    assert agent_client.get("/?priority=9").status_code == 400


def test_the_store_refuses_a_query_outside_the_allow_lists():
    for bad in ({"status": "open; --"}, {"sort": "id"}, {"team": "1"}, {"assignee": "x"}, {"priority": 7}):
        with pytest.raises(ValueError):
            QueueQuery(**bad)


# Access -------------------------------------------------------------------------------------

@pytest.fixture
def two_teams(inbox, ann, web_store):  # noqa: F811
    """Ann is in team A; one conversation each in A, B and the unrouted pool."""
    team_a, team_b = inbox.team("Team A"), inbox.team("Team B")
    web_store.set_agent_teams(ann["id"], [team_a])
    conversations = {"a": inbox.mail("Team A question", sender="a@example.org"),
                     "b": inbox.mail("Team B secret plans", sender="b@example.org"),
                     "pool": inbox.mail("Unrouted question", sender="u@example.org")}
    inbox.set(conversations["a"], team=team_a)
    inbox.set(conversations["b"], team=team_b)
    return conversations | {"team_a": team_a, "team_b": team_b}


def test_an_agent_lists_and_counts_only_their_teams_and_the_pool(agent_client, two_teams):
    page = agent_client.get("/", query_string={"status": "all"}).get_data(as_text=True)
    assert set(listed(agent_client, status="all")) == {two_teams["a"], two_teams["pool"]}
    assert "Team B secret plans" not in page and "b@example.org" not in page
    assert listed(agent_client, status="all", team=str(two_teams["team_b"])) == []
    nav = agent_client.get("/").get_data(as_text=True)
    assert re.search(r'data-status="new">New <span class="nav-count">2</span>', nav)


def test_an_admin_sees_every_team(client, two_teams, web_store):  # noqa: F811
    make_agent(web_store, "root@example.org", name="Root", role="admin")
    login(client, "root@example.org")
    assert set(listed(client, status="all")) == {two_teams["a"], two_teams["b"], two_teams["pool"]}


# Counts -------------------------------------------------------------------------------------

def test_counts_per_status_and_shortcut(agent_client, mixed):
    nav = agent_client.get("/").get_data(as_text=True)
    counts = dict(re.findall(r'data-(?:status|assignee)="(\w+)">[^<]*<span class="nav-count">(\d+\+?)</span>', nav))
    assert counts == {"active": "3", "new": "2", "open": "1", "pending": "1", "snoozed": "0", "mine": "1",
                      "unassigned": "1"}


def test_counts_are_capped(inbox, web_store, ann):  # noqa: F811
    for n in range(5):
        inbox.chat(f"c{n}", handle=f"h{n}")
    query = QueueQuery()
    assert web_store.count_conversations(query, team_ids=None, agent_id=ann["id"]) == 5
    assert web_store.count_conversations(query, team_ids=None, agent_id=ann["id"], cap=3) == 4
    from inbox.web.queue import count_label
    assert count_label(COUNT_CAP + 1) == f"{COUNT_CAP}+"


# Saved views --------------------------------------------------------------------------------

def test_save_list_use_and_delete_a_view(agent_client, mixed, client, web_store):  # noqa: F811
    token = csrf_token(agent_client, "/")
    response = agent_client.post("/views", data={"csrf_token": token, "name": "My chats", "channel": "telegram",
                                                  "status": "all"})
    assert response.status_code == 302 and "channel=telegram" in response.headers["Location"]
    nav = agent_client.get("/").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)">My chats <span class="nav-count">1</span></a>', nav)
    assert link, "the view is listed with its count"
    assert listed(agent_client, link.group(1).replace("&amp;", "&")) == [mixed["mine_chat"]]

    # Another agent neither sees it nor can delete it.
    [view] = web_store.saved_views(web_store.agent_by_email("ann@example.org")["id"])
    other = agent_client.application.test_client()
    login(other, "bob@example.org")
    assert "My chats" not in other.get("/").get_data(as_text=True)
    assert other.post(f"/views/{view['id']}/delete", data={"csrf_token": csrf_token(other, "/")}).status_code == 404

    assert agent_client.post(f"/views/{view['id']}/delete", data={"csrf_token": token}).status_code == 302
    assert "My chats" not in agent_client.get("/").get_data(as_text=True)


def test_saving_a_view_needs_the_form_token_and_valid_filters(agent_client, web_store, ann):  # noqa: F811
    assert agent_client.post("/views", data={"name": "x"}).status_code == 400
    token = csrf_token(agent_client, "/")
    assert agent_client.post("/views", data={"csrf_token": token, "name": "x", "sort": "id; --"}).status_code == 400
    assert agent_client.post("/views", data={"csrf_token": token, "name": ""}).status_code == 302
    assert web_store.saved_views(ann["id"]) == []


# Bulk actions -------------------------------------------------------------------------------

def bulk(client, ids, op, **extra):
    data = {"csrf_token": csrf_token(client, "/"), "ids": [str(i) for i in ids], "op": op, **extra}
    return client.post("/bulk", data=data)


def test_bulk_assign_label_and_status(agent_client, inbox, ann, web_store):  # noqa: F811
    one, two, three = (inbox.mail(f"Bulk {n}", sender=f"s{n}@example.org") for n in range(3))
    response = bulk(agent_client, [one, two], "assign:me", back="status=all")
    assert response.status_code == 302 and response.headers["Location"] == "/?status=all"
    assert listed(agent_client, assignee="mine") == [two, one]

    assert bulk(agent_client, [one, three], "label_add:new", label_name="  Refund   asked ").status_code == 302
    label = web_store.label_id_by_name("Refund asked")
    assert set(listed(agent_client, label=str(label))) == {one, three}
    bulk(agent_client, [one], f"label_remove:{label}")
    assert listed(agent_client, label=str(label)) == [three]

    bulk(agent_client, [one, two, three], "status:resolved")
    assert listed(agent_client) == []
    assert set(listed(agent_client, status="resolved")) == {one, two, three}

    # Moved to a team Ann is not in: out of her sight.
    team = inbox.team("Returns")
    bulk(agent_client, [two], f"team:{team}")
    assert web_store.conversation(two)["team_id"] == team
    assert set(listed(agent_client, status="resolved")) == {one, three}

    actions = [row[0] for row in web_store.execute(
        "SELECT action FROM audit_log WHERE action LIKE 'bulk_%' ORDER BY id")]
    assert actions == ["bulk_assign", "bulk_label_add", "bulk_label_remove", "bulk_status", "bulk_team"]
    details = json.loads(web_store.execute(
        "SELECT details FROM audit_log WHERE action = 'bulk_status'").fetchone()[0])
    assert details["changed"] == 3 and sorted(details["ids"]) == sorted([one, two, three])
    assert web_store.execute("SELECT DISTINCT actor FROM audit_log WHERE action LIKE 'bulk_%'").fetchall() == \
        [(f"agent:{ann['id']}",)]


def test_bulk_ignores_and_counts_conversations_the_agent_cannot_see(agent_client, two_teams, web_store):  # noqa: F811
    response = bulk(agent_client, [two_teams["a"], two_teams["b"], 987654], "status:spam")
    assert response.status_code == 302
    page = agent_client.get("/").get_data(as_text=True)
    assert "1 conversation changed." in page
    assert "2 conversations were skipped" in page
    assert web_store.conversation(two_teams["a"])["status"] == "spam"
    assert web_store.conversation(two_teams["b"])["status"] == "new"


@pytest.mark.parametrize("op", ["", "status:new", "status:snoozed", "status:' OR 1=1--", "assign:424242",
                                "assign:1 OR 1=1", "team:424242", "label_add:424242", "label_remove:x", "drop:1",
                                "assign"])
def test_bulk_refuses_unknown_actions(agent_client, inbox, web_store, op):  # noqa: F811
    conversation = inbox.mail("Untouched")
    assert bulk(agent_client, [conversation], op).status_code == 400
    assert web_store.conversation(conversation)["status"] == "new"


def test_bulk_refuses_bad_ids_and_missing_token(agent_client, inbox, web_store):  # noqa: F811
    conversation = inbox.mail("Untouched")
    assert bulk(agent_client, ["1 OR 1=1"], "status:resolved").status_code == 400
    assert bulk(agent_client, list(range(1, 600)), "status:resolved").status_code == 400
    assert agent_client.post("/bulk", data={"ids": [str(conversation)], "op": "status:resolved"}).status_code == 400
    assert agent_client.get("/bulk").status_code == 405
    assert web_store.conversation(conversation)["status"] == "new"


def test_bulk_goes_back_to_a_valid_queue_only(agent_client, inbox):
    conversation = inbox.mail("Back")
    for back, location in (("channel=mail&sort=waiting", "/?channel=mail&sort=waiting"),
                           ("sort=id;--", "/"), ("//evil.example", "/"), ("status=all&next=//evil.example",
                                                                          "/?status=all")):
        response = bulk(agent_client, [conversation], "assign:none", back=back)
        assert response.headers["Location"] == location


# Unread ---------------------------------------------------------------------------------------

def test_unread_until_seen_and_again_after_a_new_message(agent_client, inbox, ann, web_store):  # noqa: F811
    conversation = inbox.mail("Question", sender="o@example.org", message_id="<u1@example.org>")
    assert 'class="is-unread"' in agent_client.get("/").get_data(as_text=True)
    [message] = web_store.conversation_messages(conversation)
    web_store.mark_seen(ann["id"], conversation, message["id"])
    web_store.mark_seen(ann["id"], conversation, message["id"] - 1)  # never moves back
    assert 'class="is-unread"' not in agent_client.get("/").get_data(as_text=True)
    inbox.reply(conversation)
    assert 'class="is-unread"' not in agent_client.get("/").get_data(as_text=True)  # our reply is not news
    inbox.mail("Re: Question", sender="o@example.org", in_reply_to="<u1@example.org>")
    assert 'class="is-unread"' in agent_client.get("/").get_data(as_text=True)


def test_every_queue_page_needs_sign_in(client):
    assert client.get("/").status_code == 302
    assert client.get("/search?q=x").status_code == 302
    assert client.post("/bulk").status_code in (302, 400)
    assert client.post("/views").status_code in (302, 400)


# In a real browser --------------------------------------------------------------------------

@pytest.fixture
def live_app(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.mark.browser
def test_chromium_filters_the_queue_and_opens_a_conversation(app, live_app, inbox, ann):
    from tests.test_browser_smoke import CHROMIUM, _require_chromium

    _require_chromium()
    from playwright.sync_api import sync_playwright

    inbox.mail("Broken kettle", sender="Kees <kees@example.nl>", body="The kettle leaks.")
    chat = inbox.chat("Is the shop open on Sunday?", handle="77", name="Sanne")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{live_app}/login")
            page.fill("#email", "ann@example.org")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_app}/")
            assert page.locator("table.queue tbody tr").count() == 2

            page.select_option("#f-channel", "telegram")
            page.click(".filters button[type=submit]")
            page.wait_for_url(re.compile(r".*channel=telegram.*"))
            rows = page.locator("table.queue tbody tr")
            assert rows.count() == 1
            assert "Sunday" in rows.first.inner_text() and "Broken kettle" not in page.content()

            # Select all works (script) and the bulk form is there.
            page.check("#pick-all")
            assert page.locator("input[name=ids]:checked").count() == 1

            page.click(f"a[href='/conversations/{chat}']")
            page.wait_for_url(f"{live_app}/conversations/{chat}")
            assert "Is the shop open on Sunday?" in page.content()
        finally:
            browser.close()


# Dates and language ---------------------------------------------------------------------------

@pytest.mark.parametrize("locale", ["en", "nl"])
def test_row_dates_read_as_everywhere_else(app, locale):
    from flask_babel import force_locale

    from inbox.web.conversations import when
    from inbox.web.queue import _date_formatter

    with app.test_request_context("/"), force_locale(locale):
        fast = _date_formatter()
        for stamp in ("2026-03-05T10:15:02.000000Z", "2026-12-31T23:59:59.999999Z", "2025-01-01T00:00:00.000000Z"):
            assert fast(stamp) == when(stamp)
        assert fast(None) == "" and fast("not a date") == "not a date"


def test_the_queue_in_dutch(client, web_store, inbox):  # noqa: F811
    make_agent(web_store, locale="nl")
    login(client)
    inbox.mail("Vraag")
    page = client.get("/").get_data(as_text=True)
    assert "Vraagt aandacht" in page and "Bewaarde weergaven" in page and "Niet toegewezen" in page


def test_moving_messages_recomputes_waiting_time(inbox, web_store):  # noqa: F811
    waiting = inbox.mail("Waiting", sender="w@example.org")
    answered = inbox.mail("Answered", sender="a@example.org")
    inbox.reply(answered)
    assert web_store.conversation(answered)["waiting_since"] is None
    [question] = [m for m in web_store.conversation_messages(waiting) if m["direction"] == "in"]
    # As a merge does: the customer's unanswered message moves to the answered conversation.
    with web_store.write():
        web_store.execute("UPDATE messages SET conversation_id = ? WHERE id = ?", (answered, question["id"]))
    assert web_store.conversation(waiting)["waiting_since"] is None
    assert web_store.conversation(answered)["waiting_since"] is None  # answered after it arrived
    later = inbox.mail("Later", sender="l@example.org")
    [late] = web_store.conversation_messages(later)
    with web_store.write():
        web_store.execute("UPDATE messages SET conversation_id = ? WHERE id = ?", (answered, late["id"]))
    assert web_store.conversation(answered)["waiting_since"] == late["received_at"]


def test_most_urgent_sort_reads_an_index_not_every_conversation(tmp_path):
    from inbox.store import Store

    store = Store(tmp_path / "plan.db")
    store.migrate()
    plan = " ".join(str(row[3]) for row in store.execute(
        "EXPLAIN QUERY PLAN SELECT c.id FROM conversations c WHERE c.status = 'open' "
        "ORDER BY ifnull(c.sla_due_adequate, '~') ASC, c.id ASC LIMIT 50").fetchall())
    store.close()
    assert "USING INDEX queue_urgency" in plan


def test_all_statuses_filtered_by_channel_priority_and_unassigned_read_one_covering_index(tmp_path):
    # status=all + channel + priority + unassigned, latest activity first: one branch per status
    # (inbox/store/queue.py); queue_activity (m033) holds the filter columns, so no table reads.
    from inbox.store import Store

    store = Store(tmp_path / "plan.db")
    store.migrate()
    plan = " ".join(str(row[3]) for row in store.execute(
        "EXPLAIN QUERY PLAN SELECT c.id FROM conversations c WHERE c.status = 'resolved' "
        "AND (+c.team_id IS NULL OR +c.team_id IN (1, 2)) AND +c.channel = 'mail' AND +c.assignee_id IS NULL "
        "AND +c.priority = 3 ORDER BY c.last_message_at DESC, c.id DESC LIMIT 50").fetchall())
    store.close()
    assert "USING COVERING INDEX queue_activity" in plan
