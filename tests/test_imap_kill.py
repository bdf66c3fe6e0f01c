"""A poll killed with SIGKILL at any moment loses nothing and doubles nothing (FI-01, FI-02, FI-03).

Each test appends 500 real corpus mails to Dovecot, runs polls in a subprocess
(tests/imap_poll_worker.py) that is SIGKILLed twice at different points, then runs it once more
without a fault. After every kill and at the end it checks the invariants of
shared/reliability.md: every message is stored once or quarantined (I1), there are no duplicates
(I2), the database is intact (I4), and the cursor is never ahead of committed data (I5).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.base import ItemError
from connectors.imap import parse_cursor
from inbox.mail import parse_email
from inbox.store import Store
from tests.servers import imap_append_many
from tests.test_imap_corpus import as_stored

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = "mail"
COUNT = 500
WORKER_TIMEOUT = 120


@pytest.fixture(scope="module")
def corpus_sample(spam_assassin_corpus) -> list[bytes]:
    """500 mails from every folder of the corpus (ham, spam, hard ham), as the server stores them."""
    step = len(spam_assassin_corpus) // COUNT
    return [as_stored(path.read_bytes()) for path in spam_assassin_corpus[::step][:COUNT]]


class Mailbox:
    """The appended mails by UID, with the id each must be stored under (None: quarantined)."""

    def __init__(self, account: dict[str, Any], raws: list[bytes]) -> None:
        uids = imap_append_many(account, raws)
        self.expected: dict[int, str | None] = {}
        for uid, raw in zip(uids, raws, strict=True):
            try:
                self.expected[uid] = parse_email(raw, channel=CHANNEL).external_id
            except ItemError:
                self.expected[uid] = None
        self.ids = {eid for eid in self.expected.values() if eid}
        assert len(self.ids) == len([e for e in self.expected.values() if e]), "the sample has duplicate mails"


@pytest.fixture
def worker_config(imap_account, tmp_path) -> Path:
    path = tmp_path / "mainland.yaml"
    path.write_text(yaml.safe_dump({
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "kill-test",
        "instance_id": "kill-test",
        "mail_domain": "mainland.test",
        "channels": {CHANNEL: {
            "kind": "imap", "host": imap_account["host"], "port": imap_account["port"], "security": "none",
            "username": imap_account["user"], "password": imap_account["password"],
            "address": "support@mainland.test", "batch_size": 20, "max_per_poll": 10_000, "timeout": 30,
        }},
    }))
    return path


def start_worker(config: Path, fault: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MAINLAND_TEST_FAULT"}
    if fault:
        env["MAINLAND_TEST_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "tests.imap_poll_worker", str(config), CHANNEL],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def message_count(database: Path) -> int:
    if not database.exists():
        return 0
    store = Store(database, check=False)
    try:
        return store.counts()["messages"]
    except sqlite3.OperationalError:  # the worker has not created the tables yet
        return 0
    finally:
        store.close()


def kill_when_stored(proc: subprocess.Popen, database: Path, at_least: int) -> None:
    """SIGKILL the worker from outside once `at_least` messages are committed."""
    deadline = time.monotonic() + WORKER_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        if message_count(database) >= at_least:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)


def run(config: Path, step: str | None) -> subprocess.CompletedProcess:
    """One worker run: with a fault point ("imap.fetch:4"), an outside kill ("outside:150") or none."""
    database = config.parent / "mainland.db"
    if step and step.startswith("outside:"):
        proc = start_worker(config)
        kill_when_stored(proc, database, int(step.partition(":")[2]))
    else:
        proc = start_worker(config, step)
    try:
        out, err = proc.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the worker hung (step {step}):\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def check_invariants(database: Path, mailbox: Mailbox) -> tuple[int, int | None]:
    """I1, I2, I4, I5 on the database as the last run left it; returns (messages, cursor's last UID)."""
    with sqlite3.connect(database) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # I4
    store = Store(database)
    try:
        messages = store.counts()["messages"]
        known = store.known_external_ids(CHANNEL, mailbox.ids)
        assert messages == len(known), "a message is stored twice or under an id no mail has"  # I2
        held = {row["source_ref"] for row in store.quarantined(limit=10_000)}
        state = parse_cursor(store.cursor(CHANNEL))
        last_uid = None
        if state is not None:
            uidvalidity, last_uid = state
            for uid, eid in mailbox.expected.items():  # I5 (and I1 for what the cursor covers)
                if uid > last_uid:
                    continue
                if eid is None:
                    assert f"{uidvalidity}:{uid}" in held, f"UID {uid} is behind the cursor but not in quarantine"
                else:
                    assert eid in known, f"UID {uid} is behind the cursor but was never stored"
        return messages, last_uid
    finally:
        store.close()


@pytest.mark.parametrize("steps", [
    pytest.param(["imap.fetch:4", "store.save_cursor:6"], id="FI-01-fetch-then-FI-02-before-cursor"),
    pytest.param(["store.save_cursor:3", "ingest.after_commit:5"], id="FI-02-before-cursor-then-FI-03-after-commit"),
    pytest.param(["outside:150", "outside:350"], id="outside-sigkill-at-150-then-350"),
])
def test_killed_poll_resumes_with_exactly_one_row_per_mail(corpus_sample, imap_account, worker_config, steps):
    mailbox = Mailbox(imap_account, corpus_sample)
    database = worker_config.parent / "mainland.db"
    previous = 0
    for step in steps:
        result = run(worker_config, step)
        assert result.returncode == -signal.SIGKILL, f"the worker was not killed at {step}: {result.stderr[-2000:]}"
        messages, last_uid = check_invariants(database, mailbox)
        assert previous < messages < len(mailbox.ids), f"the kill at {step} was not halfway ({messages} stored)"
        assert last_uid is not None and last_uid < len(mailbox.expected)
        previous = messages

    final = run(worker_config, None)
    assert final.returncode == 0, final.stderr[-3000:]
    outcome = json.loads(final.stdout.strip().splitlines()[-1])
    assert outcome["error"] is None
    messages, last_uid = check_invariants(database, mailbox)
    assert messages == len(mailbox.ids) and last_uid == max(mailbox.expected)
    store = Store(database)
    try:
        assert store.known_external_ids(CHANNEL, mailbox.ids) == mailbox.ids
        assert store.counts()["quarantined"] == sum(1 for e in mailbox.expected.values() if e is None)
        # FI-03: even with the cursor lost, the dedupe keys keep a full re-read from adding rows.
        with store.write():
            store.save_cursor(CHANNEL, None, "2000-01-01T00:00:00.000000Z")
    finally:
        store.close()
    again = run(worker_config, None)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["stored"] == 0
    assert check_invariants(database, mailbox)[0] == len(mailbox.ids)
