"""IMAP polls parse through the import's pipeline (#16), against a real Dovecot.

A first sync of a mailbox big enough (`parse_pool.MIN_MESSAGES_FOR_PROCESSES`) parses its pages in
worker processes while the connector fetches the next ones, and stores exactly what a poll
parsing in its own process stores: every message once, in UID order, the unreadable ones in
quarantine with their reason, oversized ones from their first bytes. A worker killed mid-poll
costs nothing and doubles nothing. A poll of a few mails starts no process at all.

The large mailbox is made once per module; each sync reads it (EXAMINE) into a database of its own.
"""

from __future__ import annotations

import email.message
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from connectors.imap import parse_cursor
from inbox import clock, parse_pool, poller
from inbox.config import from_mapping
from inbox.ingest import Ingestor
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store import Store
from tests.conftest import FROZEN_START
from tests.mailfactory import raw_mail
from tests.servers import imap_append_many
from tests.test_import_processes import MESSAGE_COLUMNS

CHANNEL = "mail"
#: Just over the threshold: the first sync of this mailbox parses in processes.
LARGE = parse_pool.MIN_MESSAGES_FOR_PROCESSES + 40
#: Small enough for a test, big enough that a mail with an attachment goes over it.
MAX_MESSAGE_BYTES = 40_000


def _with_attachment(index: int) -> bytes:
    """A mail over MAX_MESSAGE_BYTES: its text first, then a large file (read from its first bytes)."""
    message = email.message.EmailMessage()
    message["From"] = f"Big Sender {index} <big{index}@example.net>"
    message["To"] = "support@mainland.test"
    message["Subject"] = f"Scan {index}"
    message["Date"] = "Thu, 05 Mar 2026 10:15:02 +0000"
    message["Message-ID"] = f"<big-{index}@example.net>"
    message.set_content(f"The scan of invoice {index} is attached.")
    message.add_attachment(os.urandom(60_000), maintype="application", subtype="pdf", filename=f"scan{index}.pdf")
    return message.as_bytes()


def _mailbox_content(count: int) -> list[bytes]:
    """Mail of the kinds a mailbox holds: replies that thread, HTML, auto-replies, oversized mail,
    and some the parser refuses (no sender address at all)."""
    senders = ["Jane Doe <jane@example.net>", '"Doe, Jane" <JANE@example.net>', "=?utf-8?q?Jos=C3=A9?= <jose@x.net>",
               "bob@example.org (Bob)", "no address at all", "J. R. <jr@example.net>"]
    raws = []
    for i in range(count):
        if i % 500 == 7:
            raws.append(_with_attachment(i))
        elif i % 250 == 3:
            raws.append(raw_mail(subject=f"html {i}", message_id=f"<h{i}@example.net>", content_type="text/html",
                                 body=f"<p onclick='x()'>Order {i}</p><script>alert(1)</script>"))
        else:
            raws.append(raw_mail(
                sender=senders[i % len(senders)], subject=f"Question {i}", message_id=f"<m{i}@example.net>",
                body=f"Message {i}\n" + "x" * (i * 37 % 400),
                in_reply_to=f"<m{i - 4}@example.net>" if i % 4 == 0 and i else None,
                extra_headers="Auto-Submitted: auto-replied" if i % 9 == 0 else ""))
    return raws


@pytest.fixture(scope="module")
def large_mailbox(dovecot_server) -> dict[str, Any]:
    account = dovecot_server["server"].add_user(hint="first-sync")
    account["uids"] = imap_append_many(account, _mailbox_content(LARGE))
    return account


def _mainland(account: dict[str, Any], folder: Path, **channel: Any) -> Mainland:
    folder.mkdir(parents=True, exist_ok=True)
    config = from_mapping({
        "database": str(folder / "mainland.db"), "data_dir": str(folder / "data"), "secret_key": "processes",
        "instance_id": "processes-test", "mail_domain": "mainland.test", "max_message_bytes": MAX_MESSAGE_BYTES,
        "channels": {CHANNEL: {
            "kind": "imap", "host": account["host"], "port": account["port"], "security": "none",
            "username": account["user"], "password": account["password"], "address": "support@mainland.test",
            "timeout": 60, **channel,
        }},
    }, base=folder)
    return Mainland(config, include_entry_points=False)


def _first_sync(account: dict[str, Any], folder: Path, **channel: Any) -> tuple[Store, list[poller.PollOutcome]]:
    """Poll an empty inbox until a poll finds nothing new; the store (open) and every poll's outcome."""
    mainland = _mainland(account, folder, **channel)
    store = mainland.open_store(migrate=True)
    outcomes = []
    for _ in range(20):
        outcomes.append(poll_channel(mainland, store, CHANNEL))
        assert outcomes[-1].ok, outcomes[-1].error
        if not outcomes[-1].report.stored + outcomes[-1].report.quarantined:
            return store, outcomes
    raise AssertionError("the first sync never ended")


def _rows(store: Store) -> tuple[list, list]:
    columns = ", ".join(MESSAGE_COLUMNS)  # constant names
    messages = store.conn.execute(f"SELECT {columns} FROM messages ORDER BY id").fetchall()  # noqa: S608
    held = store.conn.execute("SELECT channel, reason, source_ref, raw FROM quarantine ORDER BY id").fetchall()
    return [tuple(r) for r in messages], [tuple(r) for r in held]


@pytest.fixture(scope="module")
def in_process_sync(large_mailbox, tmp_path_factory) -> tuple[list, list]:
    """The large mailbox synced with every page parsed in the poller's own process: what must be stored."""
    with pytest.MonkeyPatch.context() as patch, clock.installed(clock.FrozenClock(FROZEN_START)):
        patch.setattr(poller, "workers_for", lambda messages, workers=None: 0)
        store, _ = _first_sync(large_mailbox, tmp_path_factory.mktemp("in-process"), max_per_poll=10_000)
        try:
            return _rows(store)
        finally:
            store.close()


@pytest.fixture
def pipelines(monkeypatch) -> list[parse_pool.ParsePipeline]:
    """Every parse pipeline the poller makes, in order."""
    made: list[parse_pool.ParsePipeline] = []
    real = poller.ParsePipeline

    def recording(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(poller, "ParsePipeline", recording)
    return made


@pytest.fixture
def processes_started(monkeypatch) -> list[int]:
    """The number of workers of every process pool started."""
    started: list[int] = []
    real = parse_pool.ProcessPoolExecutor

    def recording(*args, **kwargs):
        started.append(kwargs.get("max_workers", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(parse_pool, "ProcessPoolExecutor", recording)
    return started


@pytest.fixture
def two_cpus() -> None:
    if parse_pool.default_workers() < 2:
        pytest.skip("worker processes need more than one CPU")


def _assert_every_mail_once_in_order(store: Store, account: dict[str, Any], expected: tuple[list, list]) -> None:
    messages, held = _rows(store)
    assert (messages, held) == expected
    uids = [int(row[MESSAGE_COLUMNS.index("source_ref")].rsplit(":", 1)[1]) for row in messages]
    assert uids == sorted(uids), "stored in UID order"
    held_uids = {int(ref.rsplit(":", 1)[1]) for _, _, ref, _ in held}
    assert set(uids).isdisjoint(held_uids) and len(uids) == len(set(uids))
    assert sorted(uids + list(held_uids)) == account["uids"], "every mail stored or quarantined, once"
    assert all(reason for _, reason, _, _ in held) and len(held) >= 300  # "no address at all"
    flags = [row[MESSAGE_COLUMNS.index("flags")] for row in messages]
    assert sum("oversized" in f for f in flags) == 5
    assert parse_cursor(store.cursor(CHANNEL))[1] == account["uids"][-1]


@pytest.mark.slow  # 2,040 mails appended and synced at least twice
def test_a_large_first_sync_parses_in_processes_and_stores_every_mail_once_in_order(
        large_mailbox, in_process_sync, tmp_path, frozen_clock, pipelines, processes_started, two_cpus):
    store, outcomes = _first_sync(large_mailbox, tmp_path, max_per_poll=10_000)
    try:
        assert processes_started == [2] and pipelines[0].workers == 2
        assert outcomes[0].report.stored + outcomes[0].report.quarantined == LARGE  # one poll took it all
        _assert_every_mail_once_in_order(store, large_mailbox, in_process_sync)
        html = store.conn.execute("SELECT html FROM messages WHERE subject LIKE 'html %'").fetchall()
        assert html and all("Order" in h and "script" not in h and "onclick" not in h for (h,) in html)
    finally:
        store.close()


@pytest.mark.slow  # 2,040 mails appended and synced at least twice
def test_a_worker_killed_mid_sync_costs_nothing_and_doubles_nothing(
        large_mailbox, in_process_sync, tmp_path, frozen_clock, pipelines, two_cpus, monkeypatch):
    killed: list[int] = []
    real_ingest = Ingestor.ingest

    def kill_a_worker_after_the_first_page(self, *args, **kwargs):
        report = real_ingest(self, *args, **kwargs)
        if not killed:
            pid = pipelines[0].worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return report

    monkeypatch.setattr(Ingestor, "ingest", kill_a_worker_after_the_first_page)
    store, _ = _first_sync(large_mailbox, tmp_path, max_per_poll=10_000)
    try:
        assert killed and pipelines[0].restarts >= 1  # the pool broke; the pages in it were parsed again
        _assert_every_mail_once_in_order(store, large_mailbox, in_process_sync)
        assert store.conn.execute("SELECT count(*) = count(DISTINCT external_id) FROM messages").fetchone()[0]
    finally:
        store.close()


def test_a_poll_of_a_few_mails_starts_no_process(imap_account, tmp_path, processes_started):
    imap_append_many(imap_account, [raw_mail(subject=f"New {i}") for i in range(3)])
    store, outcomes = _first_sync(imap_account, tmp_path)
    try:
        assert outcomes[0].report.stored == 3 and store.counts()["messages"] == 3
        assert processes_started == []
    finally:
        store.close()


@pytest.mark.slow  # 2,040 mails appended and synced at least twice
def test_polls_capped_below_the_threshold_parse_in_their_own_process(large_mailbox, tmp_path, processes_started):
    """The default `max_per_poll` (500) keeps every poll under the threshold: no process is started."""
    mainland = _mainland(large_mailbox, tmp_path)
    store = mainland.open_store(migrate=True)
    try:
        outcome = poll_channel(mainland, store, CHANNEL)
        assert outcome.ok and outcome.report.stored + outcome.report.quarantined == 500
        assert processes_started == []
    finally:
        store.close()
