"""`mainland demo`: the sample mail goes through the real pipeline once, and the demo admin can sign in.

Each test works on a copy of demo/ in a temporary folder, so the repository's demo/data/ is untouched.
The live channels (imitations, scenario) run end to end in tests/test_demo_live.py; here their
configuration is checked, and that email replies reach the SMTP sink although the demo's email
channel is never polled.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from inbox import create_app
from inbox import demo as demo_data
from inbox.cli import main
from inbox.config import load
from inbox.models import FLAG_AUTO_SUBMITTED, Author, FetchResult, InboundItem
from inbox.outbox import queue_reply, send_due
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.worker import poll_plans
from sandbox.demo_stack import DemoStack

ROOT = Path(__file__).resolve().parent.parent
DEMO_MAILS = len(list((ROOT / "demo" / "mail").glob("*.eml")))


@pytest.fixture
def demo_dir(tmp_path):
    target = tmp_path / "demo"
    shutil.copytree(ROOT / "demo", target, ignore=shutil.ignore_patterns("data"))
    return target


def run_demo(demo_dir: Path, *args: str):
    result = CliRunner().invoke(main, ["--config", str(demo_dir / "config.yaml"), "demo", "--seed-only", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def open_store(demo_dir: Path) -> Store:
    return Store(demo_dir / "data" / "mainland.db")


def test_the_demo_mail_is_a_dozen_realistic_messages():
    assert DEMO_MAILS >= 12


def test_seeding_creates_conversations_in_english_and_dutch(demo_dir):
    result = run_demo(demo_dir)
    assert f"{DEMO_MAILS} of {DEMO_MAILS} message(s) added to demo-mail" in result.output
    store = open_store(demo_dir)
    counts = store.counts()
    assert counts["messages_per_channel"] == {"demo-mail": DEMO_MAILS}
    assert counts["quarantined"] == 0
    assert counts["attachments"] >= 2  # the photo and the PDF receipt

    conversations = store.recent_conversations(limit=100)
    subjects = {c["subject"] for c in conversations}
    assert "Kettle arrived with a cracked lid" in subjects
    assert "Bestelling 10482 nog niet ontvangen" in subjects
    dutch = [s for s in subjects if re.search(r"\b(bestelling|factuur|retour|bezorgadres|openingstijden)\b", s, re.I)]
    english = [s for s in subjects if re.search(r"\b(order|password|kettle|subscription|thank|invoice)\b", s, re.I)]
    assert len(dutch) >= 4 and len(english) >= 4, subjects

    # Replies join their conversation; the same people write again; the auto-reply is flagged.
    assert counts["conversations"] < DEMO_MAILS
    emma = next(c for c in conversations if c["subject"] == "Bestelling 10482 nog niet ontvangen")
    assert len(store.conversation_messages(emma["id"])) == 2
    assert counts["customers"] < counts["conversations"]
    messages = [m for c in conversations for m in store.conversation_messages(c["id"])]
    assert any(FLAG_AUTO_SUBMITTED in (m.get("flags") or "") for m in messages)
    assert any(m.get("html") for m in messages)


def test_seeding_again_adds_nothing(demo_dir):
    first = run_demo(demo_dir)
    before = open_store(demo_dir).counts()
    second = run_demo(demo_dir)
    assert open_store(demo_dir).counts() == before
    assert f"0 of {DEMO_MAILS} message(s) added" in second.output
    assert "demo@mainland.test exists" in second.output
    password = re.search(r"demo login: \S+ / (\S+)", first.output).group(1)
    # The password is generated once and printed again on every run.
    assert f"demo login: demo@mainland.test / {password}" in second.output
    assert len(open_store(demo_dir).agents()) == 1 + len(demo_data.COLLEAGUES)
    assert "0 of" in second.output.split("demo answers: ", 1)[1]


def test_the_demo_admin_can_sign_in(demo_dir):
    if not (ROOT / "inbox" / "web" / "auth.py").exists():
        pytest.skip("the web sign-in (inbox/web/auth.py) is not there yet")
    output = run_demo(demo_dir).output
    email, password = re.search(r"demo login: (\S+) / (\S+)", output).groups()
    assert (demo_dir / "data" / "demo-admin-password").stat().st_mode & 0o077 == 0
    app = create_app(demo_dir / "config.yaml")

    def sign_in(password: str):
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return client, client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    client, response = sign_in(password)
    assert response.status_code == 302, response.get_data(as_text=True)
    inbox = client.get(response.headers["Location"])
    assert inbox.status_code == 200
    assert "Kettle arrived with a cracked lid" in inbox.get_data(as_text=True)
    assert sign_in("not-the-demo-password")[1].status_code == 401


def test_the_demo_serves_and_prints_url_login_and_form(demo_dir):
    proc = subprocess.Popen(
        [sys.executable, "-c", "from inbox.cli import run; run()", "--config", str(demo_dir / "config.yaml"),
         "demo", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("web form" in line for line in lines):
            lines.append(proc.stdout.readline())
        output = "".join(lines)
        url = re.search(r"open\s+(http://\S+)", output).group(1)
        assert re.search(r"sign in\s+demo@mainland\.test / \S+", output), output
        form_url = re.search(r"web form\s+(http://\S+)", output).group(1)
        assert form_url == f"{url}forms/contact"
        with urllib.request.urlopen(form_url, timeout=10) as response:
            assert response.status == 200
            assert "Contact the Mainland demo shop" in response.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The live channels ---------------------------------------------------------------------------------

@pytest.fixture
def stack():
    lines: list[str] = []
    with DemoStack(say=lines.append) as running:
        running.lines = lines
        yield running


def live_mainland(demo_dir: Path, stack: DemoStack) -> Mainland:
    config = load(demo_dir / "config.yaml")
    assert demo_data.DemoSettings.from_config(config).live_channels, "the shipped demo runs the live channels"
    live = demo_data.live_config(config, stack.channels(), allow_hosts=stack.allow_hosts(),
                                 mail_settings=stack.mail_settings())
    return Mainland(live)


@pytest.mark.server
def test_the_live_config_adds_a_channel_per_imitation(demo_dir, stack):
    mainland = live_mainland(demo_dir, stack)
    channels = mainland.config.channels
    assert {"telegram", "mastodon", "x", "bluesky", "facebook", "instagram", "whatsapp"} <= set(channels)
    assert {"demo-mail", "contact"} <= set(channels)  # the file's channels stay
    # Each points at its imitation on a port chosen at start; media may be fetched from them.
    assert channels["telegram"].settings["api_url"] == stack.telegram.url
    assert channels["whatsapp"].settings["api_url"] == stack.whatsapp.url
    assert set(stack.allow_hosts()) <= set(mainland.config.fetch_allow_hosts)
    assert all(c.poll_every and c.poll_every <= 30 for c in channels.values() if c.kind not in ("imap", "webform",
                                                                                              "whatsapp"))
    mail = channels["demo-mail"]
    assert not mail.enabled and mail.settings["smtp_port"] == stack.smtp.port
    assert mail.settings["smtp_security"] == "none"
    # Polled: the imitations that are polled; never the email channel (no IMAP server in the demo).
    polled = {plan.channel for plan in poll_plans(mainland)}
    assert polled == {"telegram", "mastodon", "x", "bluesky", "facebook", "instagram"}


@pytest.mark.server
def test_email_replies_reach_the_smtp_sink_although_the_channel_is_not_polled(demo_dir, stack):
    mainland = live_mainland(demo_dir, stack)
    store = mainland.open_store(migrate=True)
    try:
        demo_data.seed(mainland, store)
        kettle = next(c for c in store.recent_conversations(limit=100)
                      if c["subject"] == "Kettle arrived with a cracked lid")
        queue_reply(mainland, store, kettle["id"], "Hello James, a new lid is on its way to you.")
        report = send_due(mainland, store)
        assert report.sent == 1 and report.failed == 0
    finally:
        store.close()
    [(sender, recipients, content)] = stack.smtp.messages
    assert sender == "support@demo.mainland.test" and recipients == ["james.carter@example.com"]
    assert b"a new lid is on its way" in content
    stack.report_replies()
    assert any(line.startswith("→ Email received a reply to james.carter@example.com: Re: Kettle arrived")
               for line in stack.lines), stack.lines


def test_a_live_run_starts_afresh_but_keeps_the_login(demo_dir):
    first = run_demo(demo_dir)
    password = re.search(r"demo login: \S+ / (\S+)", first.output).group(1)
    config = load(demo_dir / "config.yaml")
    (config.data_dir / "tokens").mkdir()
    (config.data_dir / "tokens" / "x-x.json").write_text("{}")
    removed = demo_data.start_afresh(config)
    assert config.database in removed and not config.database.exists()
    assert not (config.data_dir / "tokens").exists()
    assert (config.data_dir / "secret_key").exists()
    again = run_demo(demo_dir)
    assert f"{DEMO_MAILS} of {DEMO_MAILS} message(s) added" in again.output
    assert f"demo login: demo@mainland.test / {password}" in again.output


# The team, the answer library, and what survives a restart ------------------------------------------

def sign_in(app, email: str, password: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client, client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def test_the_demo_has_a_team_ready_to_take_conversations(demo_dir):
    output = run_demo(demo_dir).output
    password = re.search(r"demo login: \S+ / (\S+)", output).group(1)
    assert "demo team: Customer care, same password: lead@mainland.test (team lead)" in output
    assert "tim@mainland.test (trainee)" in output
    store = open_store(demo_dir)
    team_id = store.team_id_by_name("Customer care")
    members = {m["email"]: m for m in store.team_members(team_id)}
    assert set(members) == {"demo@mainland.test", *(c.email for c in demo_data.COLLEAGUES)}
    assert {m["role"] for m in members.values()} == {"admin", "lead", "agent"}
    colleagues = [store.agent_routing(members[c.email]["id"]) for c in demo_data.COLLEAGUES]
    assert all(c["routing_status"] == "available" for c in colleagues)
    assert all(set(c["languages"].split()) <= {"en", "nl"} and c["languages"] for c in colleagues)
    assert [c["email"] for c in colleagues if c["trainee"]] == ["tim@mainland.test"]
    # The sample mail was routed to them as it came in (the automatic reply is nobody's work).
    people = [store.conversation(c["id"]) for c in store.recent_conversations(limit=100) if not c["automatic"]]
    assert people and all(c["team_id"] == team_id for c in people)
    colleague_ids = {members[c.email]["id"] for c in demo_data.COLLEAGUES}
    assert all(c["assignee_id"] in colleague_ids for c in people)
    store.close()

    app = create_app(demo_dir / "config.yaml")
    assert sign_in(app, "noah@mainland.test", password)[1].status_code == 302  # the shared demo password


def test_the_answer_library_speaks_english_and_dutch(demo_dir):
    output = run_demo(demo_dir).output
    store = open_store(demo_dir)
    answers = store.answers.all()
    by_language = {lang: [a for a in answers if a.language == lang] for lang in ("en", "nl")}
    assert len(answers) >= 15 and all(len(found) >= 8 for found in by_language.values())
    assert f"{len(answers)} of {len(answers)} answer(s) added" in output
    titles = {a.title for a in answers}
    assert {"Where is my order?", "Waar is mijn bestelling?", "Returns label", "Wachtwoord opnieuw instellen"} <= titles
    assert all("{{customer_first_name}}" in a.body for a in answers)
    store.close()


def test_what_you_do_in_the_demo_survives_a_restart_and_fresh_starts_afresh(demo_dir):
    first = run_demo(demo_dir)
    password = re.search(r"demo login: \S+ / (\S+)", first.output).group(1)
    store = open_store(demo_dir)
    admin = store.agent_by_email("demo@mainland.test")
    kettle = next(c for c in store.recent_conversations(limit=100) if c["subject"] == "Kettle arrived with a cracked lid")
    store.add_note(kettle["id"], agent_id=admin["id"], author_name="Demo Admin", text="Send a new lid, not a kettle",
                   external_id="demo-test-note", now="2026-11-23T09:00:00.000000Z")
    [refund] = [a for a in store.answers.all() if a.title == "Refund on its way"]
    store.answers.update(refund.id, title="Refund on its way", body="Hi {{customer_first_name}}, refunded today.",
                         language="en", tags=["refund"], editor_id=admin["id"], now="2026-11-23T09:00:00.000000Z")
    store.close()

    again = run_demo(demo_dir)  # the default start: keep what is there
    assert "starting afresh" not in again.output
    store = open_store(demo_dir)
    notes = [m for m in store.conversation_messages(kettle["id"]) if m["direction"] == "note"]
    assert [n["text"] for n in notes] == ["Send a new lid, not a kettle"]
    [refund] = [a for a in store.answers.all() if a.title == "Refund on its way"]
    assert refund.body == "Hi {{customer_first_name}}, refunded today." and refund.version == 2
    assert len([a for a in store.answers.all() if a.title == "Refund on its way"]) == 1
    store.close()

    fresh = run_demo(demo_dir, "--fresh")
    assert "starting afresh" in fresh.output
    assert f"demo login: demo@mainland.test / {password}" in fresh.output  # the login stays
    store = open_store(demo_dir)
    kettle = next(c for c in store.recent_conversations(limit=100) if c["subject"] == "Kettle arrived with a cracked lid")
    assert not [m for m in store.conversation_messages(kettle["id"]) if m["direction"] == "note"]
    [refund] = [a for a in store.answers.all() if a.title == "Refund on its way"]
    assert refund.version == 1
    store.close()


def test_a_new_live_run_keeps_the_earlier_runs_messages_and_takes_its_own(demo_dir):
    """The imitations number their items from the same start on every run: the new run's first
    message has the id of the earlier run's first message, and must not be taken for a copy of it."""
    run_demo(demo_dir)
    mainland = Mainland(load(demo_dir / "config.yaml"))
    store = mainland.open_store()

    def customer_writes(text: str):
        item = InboundItem(channel="contact", external_id="imitation-1", text=text, subject=text,
                           author=Author("ada@example.com", "Ada", identity_kind="email"))
        return mainland.ingestor(store).ingest("contact", FetchResult(items=[item], cursor="after-1"))

    assert customer_writes("Where is my parcel?").stored == 1  # the earlier run
    assert demo_data.keep_earlier_run(store, ["contact"]) == 1
    assert store.cursor("contact") is None
    assert customer_writes("Can I change my address?").stored == 1  # this run: the same id, a new message
    texts = {m["text"] for c in store.recent_conversations(limit=100) if c["channel"] == "contact"
             for m in store.conversation_messages(c["id"])}
    assert {"Where is my parcel?", "Can I change my address?"} <= texts
    assert demo_data.keep_earlier_run(store, ["contact"]) == 1  # the next run moves only this run's
    store.close()


class QuietStack:
    """Stands in for sandbox.demo_stack.DemoStack where no server may listen: no imitated channels."""

    CHANNEL_NAMES: dict[str, str] = {}

    def __init__(self, **_kwargs) -> None:
        self.started = self.stopped = False

    def start(self):
        self.started = True
        return self

    def stop(self) -> None:
        self.stopped = True

    def channels(self) -> dict:
        return {}

    def allow_hosts(self) -> list:
        return []

    def mail_settings(self) -> dict:
        return {}


def run_live_start(demo_dir: Path, monkeypatch, *args: str):
    """`mainland demo` down the live-channel path, up to where it would serve (nothing listens)."""
    import types

    from inbox.commands import demo as demo_command

    fake = types.SimpleNamespace(CHANNEL_NAMES={}, DemoStack=QuietStack)
    monkeypatch.setattr(demo_command, "_sandbox", lambda module: fake)
    monkeypatch.setattr(demo_command, "serve_forever", lambda app, **kwargs: None)
    result = CliRunner().invoke(main, ["--config", str(demo_dir / "config.yaml"), "demo", "--port", "0", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_a_live_start_keeps_what_you_did_unless_asked_to_start_afresh(demo_dir, monkeypatch):
    run_live_start(demo_dir, monkeypatch)
    store = open_store(demo_dir)
    admin = store.agent_by_email("demo@mainland.test")
    kettle = next(c for c in store.recent_conversations(limit=100) if c["subject"] == "Kettle arrived with a cracked lid")
    store.add_note(kettle["id"], agent_id=admin["id"], author_name="Demo Admin", text="Send a new lid",
                   external_id="demo-test-note", now="2026-11-23T09:00:00.000000Z")
    store.close()

    again = run_live_start(demo_dir, monkeypatch)
    assert "starting afresh" not in again.output and f"0 of {DEMO_MAILS} message(s) added" in again.output
    store = open_store(demo_dir)
    assert [m["text"] for m in store.conversation_messages(kettle["id"]) if m["direction"] == "note"] == [
        "Send a new lid"]
    store.close()

    fresh = run_live_start(demo_dir, monkeypatch, "--fresh")
    assert "starting afresh" in fresh.output and f"{DEMO_MAILS} of {DEMO_MAILS} message(s) added" in fresh.output
    store = open_store(demo_dir)
    assert not any(m["text"] == "Send a new lid" for c in store.recent_conversations(limit=100)
                   for m in store.conversation_messages(c["id"]))
    store.close()


def test_the_colleagues_stay_available_while_the_demo_runs(demo_dir, frozen_clock):
    from inbox import routing

    run_demo(demo_dir)
    store = open_store(demo_dir)

    def statuses() -> set[str]:
        return {store.agent_routing(store.agent_by_email(c.email)["id"])["routing_status"]
                for c in demo_data.COLLEAGUES}

    start = frozen_clock.now()
    assert demo_data.keep_colleagues_at_work(store, start + dt.timedelta(minutes=10)) == len(demo_data.COLLEAGUES)
    routing.apply_inactivity(store, start + dt.timedelta(minutes=11))
    assert statuses() == {"available"}  # ten idle minutes would have made them away
    routing.apply_inactivity(store, start + dt.timedelta(minutes=21))  # the demo stopped keeping them
    assert statuses() == {"away"}
    store.close()
