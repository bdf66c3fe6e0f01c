"""The weekly digest: a realistic week of traffic, its figures checked against numbers the test
computes itself, and the mail as received by a real SMTP server (aiosmtpd), HTML and images parsed.

`week_of_traffic()` is also used by the browser test for its screenshots.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import itertools
import random
import re
import statistics
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest

from inbox import csat, digest, service_levels
from inbox.models import Author, FetchResult, InboundItem
from inbox.outbox import queue_reply
from inbox.reports import Period
from inbox.store.base import iso
from tests.test_web_auth import login, make_agent

#: Unique external ids for the items the tests make.
_SEQUENCE = itertools.count(1)
AMS = ZoneInfo("Europe/Amsterdam")
WEEK = "2026-W47"  # Monday 16 November to Sunday 22 November 2026
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
FR_DESIRED, FR_ADEQUATE = H, 4 * H
RES_DESIRED, RES_ADEQUATE = 8 * H, 24 * H
#: When the digest is made: Monday after the week, 08:00 in Amsterdam.
DIGEST_AT = dt.datetime(2026, 11, 23, 8, 0, tzinfo=AMS)

SECTION = {
    "policy": {"first_response": {"desired": "1h", "adequate": "4h"},
               "next_response": {"desired": "2h", "adequate": "8h"},
               "resolution": {"desired": "8h", "adequate": "24h"}},
    # Open around the clock in Amsterdam time: business time is wall time, so the test can count
    # it by subtraction (business hours have their own tests).
    "business_hours": {"timezone": "Europe/Amsterdam"},
    "csat": {"delay": "10m"},
}
CHANNELS = ("support-mail", "telegram", "mastodon")


def scenario_config(app_config, smtp_server):
    app_config.update({
        "base_url": "http://mainland.test",
        "service_levels": SECTION,
        "digest": {"weekday": "mon", "hour": 8, "timezone": "Europe/Amsterdam",
                   "smtp": {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
                            "from_address": "reports@mainland.test", "from_name": "Mainland reports"}},
        "channels": {
            "support-mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test",
                             "password": "x", "address": "support@mainland.test", "security": "none",
                             "smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_security": "none",
                             "team": "Support"},
            "telegram": {"kind": "telegram", "token": "123:abc", "team": "Social"},
            "mastodon": {"kind": "mastodon", "base_url": "https://social.example", "access_token": "t",
                         "team": "Social"},
        },
    })
    return app_config


@dataclass
class Planned:
    """One generated conversation as the test knows it, independently of Mainland."""

    channel: str
    customer: str
    arrival: dt.datetime
    agent: str
    first_reply: dt.timedelta | None
    resolved_after: dt.timedelta | None
    score: int | None
    conversation_id: int = 0

    def fr_level(self, now: dt.datetime) -> str | None:
        if self.first_reply is None:
            return "missed" if now - self.arrival > FR_ADEQUATE else None
        return _level(self.first_reply, FR_DESIRED, FR_ADEQUATE)

    def res_level(self, now: dt.datetime) -> str | None:
        if self.resolved_after is None:
            return "missed" if now - self.arrival > RES_ADEQUATE else None
        return _level(self.resolved_after, RES_DESIRED, RES_ADEQUATE)


def _level(elapsed, desired, adequate):
    return "desired" if elapsed <= desired else "adequate" if elapsed <= adequate else "missed"


@dataclass
class Traffic:
    planned: list[Planned] = field(default_factory=list)
    previous: list[Planned] = field(default_factory=list)
    agents: dict[str, dict] = field(default_factory=dict)
    managers: list[dict] = field(default_factory=list)


def _ingest(mainland, store, channel, when, handle, name, text):
    n = next(_SEQUENCE)
    ingestor = mainland.ingestor(store)
    ingestor.now = lambda: when
    item = InboundItem(
        channel=channel, external_id=f"scn-{n}", text=text, subject=text[:40],
        author=Author(handle, name, identity_kind="email" if channel == "support-mail" else channel),
        thread_key=None if channel == "support-mail" else f"thread-{handle}",
        message_id=f"scn-{n}@customer.example" if channel == "support-mail" else None)
    return ingestor.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)


def _plan_week(rng: random.Random, first_day: dt.datetime, count: int, slow_channel: str) -> list[Planned]:
    plans = []
    for i in range(count):
        channel = CHANNELS[i % len(CHANNELS)]
        # Office-hour arrivals Monday to Friday, a few at the weekend.
        day = rng.choice([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6])
        arrival = first_day + dt.timedelta(days=day, hours=rng.randint(8, 17), minutes=rng.randint(0, 59))
        slow = channel == slow_channel
        first_reply = rng.choice([10 * M, 25 * M, 50 * M, 2 * H, 3 * H, 5 * H] if not slow
                                 else [50 * M, 3 * H, 5 * H, 7 * H, 9 * H, 26 * H])
        if i % 11 == 5:
            first_reply = None  # never answered: still waiting when the digest is made
        resolved_after = None
        score = None
        if first_reply is not None and i % 5 != 0:
            resolved_after = first_reply + rng.choice([30 * M, 2 * H, 6 * H, 20 * H])
            if arrival + resolved_after + 2 * H < first_day + dt.timedelta(days=7) and i % 7 != 0:
                score = 5 if first_reply <= 15 * M else 4 if first_reply <= H else 3 if first_reply <= 4 * H else 2
        plans.append(Planned(channel, f"Customer {first_day:%m%d}-{i:02d}", arrival, ["ann", "bob", "cas"][i % 3],
                             first_reply, resolved_after, score))
    return plans


def week_of_traffic(mainland, store, *, seed: int = 47, count: int = 60) -> Traffic:
    """A week (2026-W47, and a smaller week before it) of conversations on three channels, with
    replies by three agents, resolutions, surveys and their answers, all on the clocks they imply."""
    rng = random.Random(seed)
    traffic = Traffic()
    with store.write():
        support, social = store.create_team("Support"), store.create_team("Social")
    for key, name, team in (("ann", "Ann Agent", support), ("bob", "Bob Builder", social), ("cas", "Cas Care", social)):
        traffic.agents[key] = make_agent(store, f"{key}@example.org", name=name)
        store.add_team_member(team, traffic.agents[key]["id"])
    traffic.managers = [make_agent(store, "mia@example.org", name="Mia Manager", role="manager"),
                        make_agent(store, "max@example.org", name="Max Beheer", role="manager", locale="nl")]
    make_agent(store, "lee@example.org", name="Lee Lead", role="lead")

    this_week = dt.datetime(2026, 11, 16, tzinfo=AMS)
    traffic.previous = _plan_week(rng, this_week - dt.timedelta(days=7), count // 3, slow_channel="none")
    traffic.planned = _plan_week(rng, this_week, count, slow_channel="telegram")
    events = []  # (moment, order, action, plan)
    for plan in traffic.previous + traffic.planned:
        events.append((plan.arrival, 0, "arrive", plan))
        if plan.first_reply is not None:
            events.append((plan.arrival + plan.first_reply, 1, "reply", plan))
        if plan.resolved_after is not None:
            events.append((plan.arrival + plan.resolved_after, 2, "resolve", plan))
            events.append((plan.arrival + plan.resolved_after + 15 * M, 3, "survey", plan))
            if plan.score is not None:
                events.append((plan.arrival + plan.resolved_after + H, 4, "answer", plan))
    events.sort(key=lambda e: (e[0], e[1], e[3].customer))
    for moment, _, action, plan in events:
        moment_utc = moment.astimezone(dt.UTC)
        handle = (f"{plan.customer.lower().replace(' ', '.')}@customer.example" if plan.channel == "support-mail"
                  else plan.customer.lower().replace(" ", "-"))
        if action == "arrive":
            report = _ingest(mainland, store, plan.channel, moment_utc, handle, plan.customer,
                             f"Question from {plan.customer}")
            [plan.conversation_id] = report.new_conversations
            if plan.first_reply is None:
                with store.write():  # unanswered: it sits with its agent
                    store.execute("UPDATE conversations SET assignee_id = ? WHERE id = ?",
                                  (traffic.agents[plan.agent]["id"], plan.conversation_id))
        elif action == "reply":
            queue_reply(mainland, store, plan.conversation_id, "We are looking into it.",
                        agent=traffic.agents[plan.agent], now=moment_utc)
        elif action == "resolve":
            with store.write():
                store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                              (iso(moment_utc), plan.conversation_id))
        elif action == "survey":
            csat.send_due_surveys(mainland, store, now=moment_utc)
        elif action == "answer":
            survey = store.survey_for_conversation(plan.conversation_id)
            assert survey is not None, f"no survey for {plan}"
            if survey["kind"] == "link":
                question = [m for m in store.conversation_messages(plan.conversation_id)
                            if "survey" in (m["flags"] or "").split()][0]
                token = re.search(r"/survey/(\S+)", question["text"]).group(1)
                assert csat.answer_by_token(store, token, plan.score, None, now=moment_utc)
            else:
                _ingest(mainland, store, plan.channel, moment_utc, handle, plan.customer, str(plan.score))
    return traffic


# Independent arithmetic --------------------------------------------------------------------------------

def expected_figures(traffic: Traffic, now: dt.datetime) -> dict:
    by_channel = defaultdict(list)
    for p in traffic.planned:
        by_channel[p.channel].append(p)
    channels = {}
    for channel, plans in by_channel.items():
        fr = [p.fr_level(now) for p in plans if p.fr_level(now)]
        scores = [p.score for p in plans if p.score is not None]
        channels[channel] = {
            "volume": len(plans),
            "fr_desired": sum(1 for lv in fr if lv == "desired") / len(fr),
            "fr_adequate": sum(1 for lv in fr if lv != "missed") / len(fr),
            "fr_median": statistics.median(p.first_reply.total_seconds() for p in plans if p.first_reply),
            "csat_average": sum(scores) / len(scores) if scores else None,
            "csat_answers": len(scores),
        }
    breaches = Counter()
    for p in traffic.planned:
        breaches[p.agent] += (p.fr_level(now) == "missed") + (p.res_level(now) == "missed")
    bands = Counter()
    for p in traffic.planned:
        if p.score is not None:
            s = p.first_reply.total_seconds()
            bands["15m" if s <= 900 else "1h" if s <= 3600 else "4h" if s <= 14400 else "24h" if s <= 86400
                  else "more"] += 1
    # Waiting now, whichever week they wrote in.
    waiting = sorted((p for p in traffic.previous + traffic.planned if p.first_reply is None), key=lambda p: p.arrival)
    return {"channels": channels, "breaches": breaches, "bands": bands,
            "waiting": [p.customer for p in waiting], "volume": len(traffic.planned),
            "previous_volume": len(traffic.previous)}


# Parsing the mail ---------------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StrictHTML(HTMLParser):
    """Fails on a closing tag that does not close the innermost open element; collects img/a/rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self._cells: list[str] = []
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        if tag == "tr" and attrs.get("data-channel"):
            self._row, self._cells = attrs["data-channel"], []
        if tag == "td":
            self._text = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        if tag == "td" and self._row:
            self._cells.append(self._text.strip())
        if tag == "tr" and self._row:
            self.rows[self._row] = self._cells
            self._row = None

    def handle_data(self, data):
        self._text += data


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


# The tests ---------------------------------------------------------------------------------------------

@pytest.fixture
def scenario(app_config, smtp_server):
    from inbox import create_app

    app = create_app(scenario_config(app_config, smtp_server))
    app.config.update(TESTING=True)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    traffic = week_of_traffic(mainland, store)
    yield app, mainland, store, traffic
    store.close()


def test_the_digest_of_a_week_of_traffic_adds_up(scenario, smtp_server):
    app, mainland, store, traffic = scenario
    now = DIGEST_AT.astimezone(dt.UTC)
    expected = expected_figures(traffic, now)
    # The generated week has what every figure needs: answers on each channel, customers waiting.
    assert all(c["csat_answers"] for c in expected["channels"].values())
    assert len(expected["waiting"]) >= 3
    result = digest.run(mainland, store, Period.parse(WEEK, "Europe/Amsterdam"), send_mail=True, now=now)
    figures = result.figures

    # Volume, first response against both targets, median, satisfaction: per channel.
    got = {c["channel"]: c for c in figures["channels"]}
    assert set(got) == set(CHANNELS)
    for channel, want in expected["channels"].items():
        c = got[channel]
        assert c["volume"] == want["volume"], channel
        assert c["first_response"]["share_desired"] == pytest.approx(want["fr_desired"]), channel
        assert c["first_response"]["share_adequate"] == pytest.approx(want["fr_adequate"]), channel
        assert c["first_response"]["median_seconds"] == pytest.approx(want["fr_median"]), channel
        assert c["csat"]["answers"] == want["csat_answers"], channel
        assert c["csat"]["average"] == pytest.approx(want["csat_average"]), channel
        assert c["policies"] == []  # one policy for every channel
    assert figures["totals"]["volume"] == expected["volume"]
    assert figures["comparison"]["volume"] == expected["volume"] - expected["previous_volume"]
    assert {b["band"]: b["answers"] for b in figures["csat_by_band"] if b["answers"]} == dict(expected["bands"])

    # The three things worth attention.
    channel_item, agent_item, waiting_item = figures["attention"]
    worst = min(expected["channels"], key=lambda ch: expected["channels"][ch]["fr_adequate"])
    assert worst == "telegram" and channel_item["channel"] == "telegram"
    top_agent, top_breaches = expected["breaches"].most_common(1)[0]
    assert agent_item["agent_id"] == traffic.agents[top_agent]["id"]
    assert agent_item["breaches"] == top_breaches
    waiting_names = [store.conversation(cid)["customer_name"] for cid in waiting_item["conversation_ids"]]
    assert waiting_names == expected["waiting"][:3]

    # Mailed: one message per manager, each in their own language.
    messages = smtp_server.wait_for(2)
    assert sorted(addr for m in messages for addr in m.rcpt_tos) == ["max@example.org", "mia@example.org"]
    by_rcpt = {m.rcpt_tos[0]: email.message_from_bytes(m.content, policy=email.policy.default) for m in messages}
    english, dutch = by_rcpt["mia@example.org"], by_rcpt["max@example.org"]
    assert english["Subject"].startswith("Mainland weekly digest, week 2026-W47: 60 conversations")
    assert dutch["Subject"].startswith("Mainland weekoverzicht")
    assert english["Auto-Submitted"] == "auto-generated"

    html_part = english.get_body(("html",))
    html = html_part.get_content()
    parser = StrictHTML()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed elements: {parser.stack}"
    cids = [src.removeprefix("cid:") for src in parser.images]
    assert len(cids) == 5 and all(src.startswith("cid:") for src in parser.images)
    related = {part["Content-ID"].strip("<>"): part.get_content() for part in english.walk()
               if part.get_content_type() == "image/png"}
    assert set(related) == set(cids)
    from PIL import Image

    for cid, data in related.items():
        width, height = png_size(data)
        assert width >= 400 and height >= 100, cid
        with Image.open(BytesIO(data)) as image:
            image.load()
            assert image.size == (width, height)
    # The channel table in the mail shows the same volumes.
    assert {ch: cells[1] for ch, cells in parser.rows.items()} == {
        ch: str(want["volume"]) for ch, want in expected["channels"].items()}
    assert english.get_body(("plain",)).get_content().count("http://mainland.test/reports/export.csv?") == 3

    # Archived and shown in the web app.
    row = store.digest(WEEK)
    assert row["sent_at"] and sorted(row["recipients"].split()) == ["max@example.org", "mia@example.org"]
    client = app.test_client()
    login(client, "mia@example.org")
    page = client.get(f"/reports/digests/{WEEK}")
    assert page.status_code == 200
    body = client.get(f"/reports/digests/{WEEK}/body")
    assert "sandbox" in body.headers["Content-Security-Policy"]
    images = re.findall(r'src="(/reports/digests/2026-W47/images/[a-z_]+\.png)"', body.get_data(as_text=True))
    assert len(images) == 5
    assert png_size(client.get(images[0]).data)[0] >= 400
    assert WEEK in client.get("/reports/digests").get_data(as_text=True)


def test_the_worker_sends_the_digest_once_when_its_hour_has_come(scenario, smtp_server):
    _, mainland, store, _ = scenario
    before = dt.datetime(2026, 11, 23, 7, 59, tzinfo=AMS)
    assert digest.due_period(mainland, before) is None
    assert digest.run_if_due(mainland, store, before) is None
    assert store.digest(WEEK) is None
    at_eight = dt.datetime(2026, 11, 23, 8, 0, tzinfo=AMS)
    assert digest.run_if_due(mainland, store, at_eight) == WEEK
    assert len(smtp_server.wait_for(2)) == 2
    assert digest.run_if_due(mainland, store, at_eight + 10 * M) is None  # sent already
    assert len(smtp_server.messages) == 2


def test_a_refused_mail_is_recorded_and_tried_again(scenario, smtp_server):
    _, mainland, store, _ = scenario
    smtp_server.fail_next(451, "4.7.1 try later", stage="MAIL")
    at_eight = dt.datetime(2026, 11, 23, 8, 0, tzinfo=AMS)
    assert digest.run_if_due(mainland, store, at_eight) == WEEK
    row = store.digest(WEEK)
    assert row["sent_at"] is None and "451" in row["send_error"]
    assert digest.run_if_due(mainland, store, at_eight + 10 * M) == WEEK
    assert store.digest(WEEK)["sent_at"] is not None


def test_the_command_builds_any_week_into_a_folder(scenario, tmp_path, monkeypatch):
    app, mainland, store, _ = scenario
    from click.testing import CliRunner

    from inbox.cli import Context, main

    monkeypatch.setattr(Context, "mainland", property(lambda self: mainland))
    out = tmp_path / "digest-out"
    result = CliRunner().invoke(main, ["digest", "--week", WEEK, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"digest {WEEK}" in result.output
    html = (out / "index.html").read_text()
    assert 'src="first_response.png"' in html
    assert png_size((out / "first_response.png").read_bytes())[0] >= 400
    bad = CliRunner().invoke(main, ["digest", "--week", "2026-W99"])
    assert bad.exit_code != 0 and "--week" in bad.output


def test_service_levels_are_the_same_for_every_channel_in_the_scenario(scenario):
    _, mainland, store, traffic = scenario
    levels = service_levels.for_config(mainland.config)
    assert {levels.policy_for(ch).name for ch in CHANNELS} == {"default"}


# A quiet week and a week of one ------------------------------------------------------------------------

@pytest.fixture
def quiet(app_config):
    """The scenario's configuration without any traffic (and an SMTP server that is never used)."""
    from inbox import create_app

    app = create_app(scenario_config(app_config, type("NoServer", (), {"host": "127.0.0.1", "port": 9})))
    app.config.update(TESTING=True)
    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    make_agent(store, "mia@example.org", name="Mia Manager", role="manager")
    yield app, mainland, store
    store.close()


def _visible_text(html: str) -> str:
    """What a reader sees of an HTML mail: no tags, no styles."""
    return re.sub(r"\s+", " ", re.sub(r"<style.*?</style>|<[^>]+>", " ", html, flags=re.S))


def test_the_digest_of_an_empty_week_says_there_were_no_conversations(quiet, frozen_clock):
    app, mainland, store = quiet
    frozen_clock.set(DIGEST_AT.astimezone(dt.UTC))
    result = digest.run(mainland, store, Period.parse(WEEK, "Europe/Amsterdam"), send_mail=False,
                        now=DIGEST_AT.astimezone(dt.UTC))
    assert result.subject == "Mainland weekly digest, week 2026-W47: no conversations"
    html = _visible_text(result.html)
    for shown in (result.text, html):
        assert "No conversations this week" in shown
        assert "within adequate." not in shown and "Every answered conversation" not in shown  # nothing to praise
        assert "%" not in shown  # no share of nothing
    per_channel = result.text.split("Per channel", 1)[1]
    assert "No conversations this week" in per_channel

    client = app.test_client()
    login(client, "mia@example.org")
    archived = _visible_text(client.get(f"/reports/digests/{WEEK}/body").get_data(as_text=True))
    assert "No conversations this week" in archived and "Every answered conversation" not in archived
    with store.write():
        store.mark_digest_sent(WEEK, ["mia@example.org"], iso(DIGEST_AT.astimezone(dt.UTC)), None)
    page = _visible_text(client.get(f"/reports/digests/{WEEK}").get_data(as_text=True))
    assert "to 1 recipient." in page


def test_counts_of_one_read_in_the_singular(quiet, frozen_clock):
    app, mainland, store = quiet
    frozen_clock.set(DIGEST_AT.astimezone(dt.UTC))
    ann = make_agent(store, "ann@example.org", name="Ann Agent")
    monday = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)
    [cid] = _ingest(mainland, store, "support-mail", monday, "dora@customer.example", "Dora", "Where is my parcel?"
                    ).new_conversations
    # Answered after six hours, resolved in time: one breach, by Ann, in her one conversation.
    queue_reply(mainland, store, cid, "Sorry for the wait", agent=ann, now=monday + 6 * H)
    with store.write():
        store.execute("UPDATE conversations SET status = 'resolved', updated_at = ? WHERE id = ?",
                      (iso(monday + 7 * H), cid))
    result = digest.run(mainland, store, Period.parse(WEEK, "Europe/Amsterdam"), send_mail=False,
                        now=DIGEST_AT.astimezone(dt.UTC))
    assert result.subject.startswith("Mainland weekly digest, week 2026-W47: 1 conversation, ")
    assert "support-mail: 1 conversation;" in result.text
    assert "1 breach in 1 conversation;" in result.text
    for wrong in ("1 conversations", "1 breaches"):
        assert wrong not in result.text and wrong not in result.html and wrong not in result.subject


def test_starting_the_web_app_and_the_worker_loads_no_chart_library():
    # matplotlib (and numpy under it) costs about a second of a process's start; the reports and the
    # digest are imported at start, but charts are drawn only for a manager or once a week (#16).
    import subprocess
    import sys

    code = ("import sys; import inbox.digest, inbox.web.reports, inbox.worker; "
            "from inbox import charts; assert 'matplotlib' not in sys.modules; "
            "png = charts.backlog_chart({'1d': 2}, {'1d': '< 1 day'}, title='Open'); "
            "assert png.startswith(b'\\x89PNG') and 'matplotlib' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
