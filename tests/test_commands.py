"""The running commands (`poll`, `serve`, `backup`) and how the database behaves under a held lock.

`mainland poll` is exercised on a channel served by a connector defined here and registered for
the test; the database is a real SQLite file; `serve` runs as a real process on a free port.
"""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import connectors
from connectors.base import Connector, RetryableError
from inbox import config as config_module
from inbox.cli import main
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso
from inbox.worker import LEASE_NAME
from tests.mailfactory import raw_mail

ROOT = Path(__file__).resolve().parent.parent


class MailboxConnector(Connector):
    """Two customer mails on the first page, nothing after; `mode: ratelimit` answers 429."""

    kind = "testbox"
    display_name = "Test mailbox"

    def fetch(self, cursor):
        if self.config.get("mode") == "ratelimit":
            raise RetryableError("429 Too Many Requests", retry_after=90)
        if cursor:
            return FetchResult(items=[], cursor=cursor)
        raws = [raw_mail(sender="Ann <ann@example.net>", message_id="<a1@example.net>"),
                raw_mail(sender="Bob <bob@example.net>", message_id="<b1@example.net>")]
        return FetchResult(items=[parse_email(r, channel=self.name) for r in raws], cursor="page-1")

    def send(self, reply):
        raise NotImplementedError


@pytest.fixture(autouse=True)
def testbox_in_registry(monkeypatch):
    real = connectors.discover
    monkeypatch.setattr(connectors, "discover", lambda **kw: {**real(**kw), "testbox": MailboxConnector})


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database": "mainland.db",
        "data_dir": "data",
        "secret_key": "test-secret",
        "channels": {
            "support": {"kind": "testbox", "poll_every": 1},
            "limited": {"kind": "testbox", "mode": "ratelimit"},
        },
    }))
    return path


def mainland_cli(config_file: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(config_file), *args], catch_exceptions=False)


def open_store(config_file: Path) -> Store:
    return Store(config_file.parent / "mainland.db")


def test_poll_once_stores_the_new_items_and_says_so(config_file):
    result = mainland_cli(config_file, "poll", "support", "--once")
    assert result.exit_code == 0, result.output
    assert "support: 2 stored, 0 duplicate(s), 0 quarantined in 1 page(s)" in result.output
    store = open_store(config_file)
    assert store.counts()["messages"] == 2
    assert store.cursor("support") == "page-1"
    assert store.channel_health()["support"]["last_success_at"]
    again = mainland_cli(config_file, "poll", "support", "--once")
    assert "0 stored" in again.output and store.counts()["messages"] == 2


def test_poll_error_exits_1_and_says_when_the_next_try_is(config_file):
    result = mainland_cli(config_file, "poll", "limited", "--once")
    assert result.exit_code == 1
    assert "limited: error: 429 Too Many Requests" in result.output
    assert "next try in 90 s" in result.output
    # Paused now: a second poll does not call the channel, unless told to.
    paused = mainland_cli(config_file, "poll", "limited", "--once")
    assert paused.exit_code == 0 and "skipped, paused until" in paused.output
    forced = mainland_cli(config_file, "poll", "limited", "--once", "--ignore-pause")
    assert forced.exit_code == 1 and "429" in forced.output


def test_poll_unknown_channel_lists_the_configured_ones(config_file):
    result = mainland_cli(config_file, "poll", "nope", "--once")
    assert result.exit_code == 1
    assert "no channel named 'nope'; configured channels: limited, support" in result.output


def test_poll_without_once_keeps_polling_until_ctrl_c(config_file, monkeypatch):
    from inbox.commands import running

    sleeps = []

    def fake_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    # Only the command's own pause: patching time.sleep would also catch other threads' sleeps.
    monkeypatch.setattr(running, "pause", fake_sleep)
    result = mainland_cli(config_file, "poll", "support")
    assert result.exit_code == 0, result.output
    assert result.output.count("support: ") == 3
    assert "2 stored" in result.output and result.output.count("0 stored") == 2
    assert sleeps == [1.0, 1.0, 1.0]
    assert result.output.rstrip().endswith("stopped")


def test_backup_writes_a_checked_copy_with_every_row(config_file, tmp_path):
    mainland_cli(config_file, "poll", "support", "--once")
    target = tmp_path / "backups" / "mainland-copy.db"
    result = mainland_cli(config_file, "backup", str(target))
    assert result.exit_code == 0, result.output
    assert "integrity check ok" in result.output
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM messages").fetchone()[0] == 2
    copy.close()
    assert not list(target.parent.glob(".*partial*"))
    refused = mainland_cli(config_file, "backup", str(target))
    assert refused.exit_code == 1 and "--force" in refused.output
    assert mainland_cli(config_file, "backup", str(target), "--force").exit_code == 0


def test_serve_help_names_its_options():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--no-worker"):
        assert option in result.output


def test_serve_answers_http_runs_the_worker_and_stops_on_sigterm(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("database: mainland.db\nsecret_key: test-secret\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from inbox.cli import run; run()", "--config", str(config), "serve", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            lines.append(line)
            if "Mainland is running at " in line:
                url = line.split("running at ", 1)[1].strip()
        assert url, "".join(lines)
        try:
            headers = urllib.request.urlopen(url, timeout=10).headers
        except urllib.error.HTTPError as exc:  # the web pages are tested elsewhere; here: who answered
            headers = exc.headers
        assert headers["Server"] == "Mainland"  # waitress, not the Flask development server
        store = Store(tmp_path / "mainland.db")
        assert store.lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC))) is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        # A clean stop hands the lease back at once instead of letting it run out.
        assert store.lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC))) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# FI-08: a locked database -------------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO leases (name, holder, expires_at) VALUES ('other', 'x', 'y')")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
""")


def test_ingest_waits_for_another_process_holding_the_write_lock(tmp_path):
    cfg = config_module.from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k"}, base=tmp_path)
    mainland = Mainland(cfg)
    store = mainland.open_store(migrate=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(cfg.database), "3"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        items = [parse_email(raw_mail(), channel="mail") for _ in range(20)]
        report = mainland.ingestor(store).ingest("mail", FetchResult(items=items, cursor="c1"))
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=10)
    assert report.stored == 20
    assert waited >= 2.0, "the ingest should have waited for the other writer"
    assert store.counts()["messages"] == 20 and store.cursor("mail") == "c1"
    assert holder.returncode == 0  # the other process' write went through too


def test_deferred_read_then_write_fails_at_once_where_store_write_waits(tmp_path):
    store = Store(tmp_path / "m.db")
    store.migrate()
    other = sqlite3.connect(tmp_path / "m.db", isolation_level=None, timeout=10, check_same_thread=False)

    def hold_write_lock(seconds: float) -> threading.Thread:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO leases (name, holder, expires_at) VALUES (?, 'x', 'y')", (str(time.time()),))
        thread = threading.Thread(target=lambda: (time.sleep(seconds), other.execute("COMMIT")))
        thread.start()
        return thread

    # The trap: a DEFERRED transaction reads, then tries to write while another connection writes.
    deferred = sqlite3.connect(tmp_path / "m.db", isolation_level=None, timeout=10)
    deferred.execute("BEGIN")
    deferred.execute("SELECT count(*) FROM cursors").fetchone()
    thread = hold_write_lock(1.0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        deferred.execute("INSERT INTO cursors (channel, value, updated_at) VALUES ('a', '1', 'now')")
    assert time.monotonic() - started < 0.5, "SQLITE_BUSY came without waiting for the busy timeout"
    deferred.execute("ROLLBACK")
    thread.join()

    # Our path: store.write() begins IMMEDIATE, so it waits for the lock and then succeeds.
    thread = hold_write_lock(1.0)
    started = time.monotonic()
    with store.write():
        store.cursor("a")
        store.save_cursor("a", "1", "now")
    assert time.monotonic() - started >= 0.8
    thread.join()
    assert store.cursor("a") == "1"
    other.close()


def start_cli(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from inbox.cli import run; run()", "--config", str(config), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc: subprocess.Popen, needle: str, timeout: float = 20) -> str:
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return "".join(lines)
    raise AssertionError(f"{needle!r} not printed:\n{''.join(lines)}")


def test_a_second_worker_stands_by_and_takes_over_when_the_first_is_killed(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("database: mainland.db\nsecret_key: k\nworker: {lease_seconds: 2, renew_every: 0.3}\n")
    store = Store(tmp_path / "mainland.db")
    store.migrate()
    first = start_cli(config, "worker")
    second = None
    try:
        read_until(first, "worker: running")
        second = start_cli(config, "worker")
        read_until(second, "worker: on standby")
        holder = store.lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC)))
        assert holder.split(":")[1] == str(first.pid)
        first.send_signal(signal.SIGKILL)  # no clean stop: the lease must run out by itself
        first.wait()
        read_until(second, "took the scheduler lease", timeout=10)
        holder = store.lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC)))
        assert holder.split(":")[1] == str(second.pid)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0
        assert store.lease_holder(LEASE_NAME, iso(dt.datetime.now(dt.UTC))) is None
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_poll_refuses_a_push_only_channel(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent("""
        database: mainland.db
        secret_key: k
        channels:
          contact: {kind: webform, reply_channel: support}
          support: {kind: testbox}
    """))
    result = mainland_cli(config, "poll", "contact", "--once")
    assert result.exit_code == 1
    assert "channel 'contact' (webform) is push-only" in result.output
