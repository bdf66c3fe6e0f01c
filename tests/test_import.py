"""`mainland import`: mbox, Maildir and folders in; once only; resumable; bad messages quarantined."""

from __future__ import annotations

import json
import mailbox
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from inbox import importer, mail
from inbox.attachments import AttachmentStore
from inbox.cli import main
from inbox.ingest import Ingestor
from inbox.store import Store
from tests.mailfactory import raw_mail

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "mainland.yaml"
    path.write_text(f"database: {tmp_path / 'mainland.db'}\n")
    return path


@pytest.fixture
def mainland(config_file):
    """Run `mainland ARGS...` against the config in tmp_path; returns click's Result."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["--config", str(config_file), *args], catch_exceptions=False)

    return run


def stats(mainland) -> dict:
    result = mainland("stats", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def messages(count: int, prefix: str = "m") -> list[bytes]:
    return [raw_mail(sender=f"customer{i % 3}@example.net", subject=f"{prefix} question {i}",
                     body=f"Hello, this is {prefix} message {i}.") for i in range(count)]


def write_mbox(path: Path, raws: list[bytes]) -> Path:
    box = mailbox.mbox(str(path))
    for raw in raws:
        box.add(raw)
    box.close()
    return path


def write_maildir(path: Path, raws: list[bytes]) -> Path:
    box = mailbox.Maildir(str(path), create=True)
    for i, raw in enumerate(raws):
        key = box.add(raw)
        if i % 2:  # some read (cur/), some new (new/)
            msg = box[key]
            msg.set_subdir("cur")
            box[key] = msg
    return path


def write_folder(path: Path, raws: list[bytes]) -> Path:
    (path / "2024" / "march").mkdir(parents=True)
    for i, raw in enumerate(raws):
        sub = path / "2024" / "march" if i % 2 else path
        (sub / f"{i:04d}.eml").write_bytes(raw)
    # Hidden files (editor backups, .DS_Store) are no messages.
    (path / ".DS_Store").write_bytes(b"\x00\x01junk")
    return path


WRITERS = {"mbox": lambda p, r: write_mbox(p / "inbox.mbox", r),
           "maildir": lambda p, r: write_maildir(p / "Maildir", r),
           "folder": lambda p, r: write_folder(p / "eml", r)}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_import_stores_every_message_once(kind, tmp_path, mainland):
    source = WRITERS[kind](tmp_path, messages(7))
    result = mainland("import", str(source), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "imported 7 messages: 7 stored, 0 duplicates, 0 quarantined in" in result.stdout
    figures = stats(mainland)
    assert figures["messages"] == 7
    assert figures["messages_per_channel"] == {"import": 7}
    assert figures["customers"] == 3
    assert figures["quarantined"] == 0

    again = mainland("import", str(source), "--no-progress")
    assert again.exit_code == 0, again.output
    assert "nothing new" in again.stdout
    reread = mainland("import", str(source), "--no-progress", "--from-start")
    assert "imported 7 messages: 0 stored, 7 duplicates, 0 quarantined" in reread.stdout
    assert stats(mainland)["messages"] == 7


def test_imported_message_keeps_its_text_and_source(tmp_path, mainland, config_file):
    source = write_mbox(tmp_path / "one.mbox", [raw_mail(subject="Broken kettle", body="It leaks.")])
    mainland("import", str(source), "--channel", "archive", "--no-progress")
    store = Store(tmp_path / "mainland.db")
    [conversation] = store.recent_conversations()
    [message] = store.conversation_messages(conversation["id"])
    assert (conversation["channel"], message["subject"], message["text"].strip()) == (
        "archive", "Broken kettle", "It leaks.")
    assert b"It leaks." in store.raw_message(message["id"])
    store.close()


def test_same_messages_from_another_source_are_not_stored_again(tmp_path, mainland):
    raws = messages(6)
    mainland("import", str(write_folder(tmp_path / "eml", raws)), "--no-progress")
    result = mainland("import", str(write_mbox(tmp_path / "same.mbox", raws)), "--no-progress")
    assert "imported 6 messages: 0 stored, 6 duplicates, 0 quarantined" in result.stdout
    assert stats(mainland)["messages"] == 6


def test_a_grown_mbox_imports_only_the_new_messages(tmp_path, mainland):
    path = write_mbox(tmp_path / "grows.mbox", messages(4, "old"))
    mainland("import", str(path), "--no-progress")
    write_mbox(path, messages(3, "new"))  # mailbox.mbox appends
    result = mainland("import", str(path), "--no-progress")
    assert "imported 3 messages: 3 stored" in result.stdout
    assert "resuming" in result.stderr
    assert stats(mainland)["messages"] == 7


def test_a_rewritten_source_is_read_again_from_the_start(tmp_path, mainland):
    folder = write_folder(tmp_path / "eml", messages(4, "a"))
    mainland("import", str(folder), "--no-progress")
    last = sorted(p for p in folder.rglob("*.eml"))[-1]
    last.write_bytes(raw_mail(subject="replaced"))
    result = mainland("import", str(folder), "--no-progress")
    assert "changed since it was last read" in result.stderr
    assert "imported 4 messages: 1 stored, 3 duplicates" in result.stdout
    assert stats(mainland)["messages"] == 5


# Interrupted imports --------------------------------------------------------------------------


def _ingestor(store: Store, tmp_path: Path) -> Ingestor:
    return Ingestor(store, AttachmentStore(tmp_path / "attachments"), instance_id="test-instance")


def test_an_import_cut_short_resumes_after_the_last_batch(tmp_path, store):
    folder = write_folder(tmp_path / "eml", messages(23))
    first = importer.import_mailbox(store, _ingestor(store, tmp_path), folder, batch_size=5, max_batches=2)
    assert (first.complete, first.messages, first.stored) == (False, 10, 10)
    assert store.counts()["messages"] == 10

    second = importer.import_mailbox(store, _ingestor(store, tmp_path), folder, batch_size=5)
    assert (second.complete, second.skipped, second.messages, second.stored, second.duplicates) == (
        True, 10, 13, 13, 0)
    assert store.counts()["messages"] == 23


def test_a_batch_that_dies_before_commit_is_read_again(tmp_path, store, monkeypatch):
    folder = write_folder(tmp_path / "eml", messages(12))
    calls = {"n": 0}
    real_save = store.save_cursor

    def dies_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C inside the third batch's transaction
        return real_save(*args, **kwargs)

    monkeypatch.setattr(store, "save_cursor", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        importer.import_mailbox(store, _ingestor(store, tmp_path), folder, batch_size=4)
    monkeypatch.undo()
    assert store.counts()["messages"] == 8  # the third batch rolled back with its cursor

    report = importer.import_mailbox(store, _ingestor(store, tmp_path), folder, batch_size=4)
    assert (report.skipped, report.stored, report.duplicates) == (8, 4, 0)
    assert store.counts()["messages"] == 12


@pytest.mark.slow
def test_sigkill_mid_import_then_rerun_leaves_one_row_per_message(tmp_path, config_file):
    count = 1500
    folder = tmp_path / "eml"
    folder.mkdir()
    for i, raw in enumerate(messages(count)):
        (folder / f"{i:05d}.eml").write_bytes(raw)
    command = [sys.executable, "-c", "from inbox.cli import run; run()", "--config", str(config_file),
               "import", str(folder), "--batch-size", "25", "--no-progress"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = tmp_path / "mainland.db"
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                probe = Store(db, check=False)
                stored = probe.counts()["messages"]
                probe.close()
            except Exception:  # the schema may not exist yet
                stored = 0
            if stored >= 100:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the import finished before it could be killed; make it bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    store = Store(db)
    partial = store.counts()["messages"]
    assert 100 <= partial < count
    store.close()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    # It went on right after the last committed batch: nothing read twice, nothing skipped.
    rest = count - partial
    assert f"imported {rest} messages: {rest} stored, 0 duplicates, 0 quarantined" in result.stdout
    store = Store(db)
    assert store.counts()["messages"] == count
    store.close()


# Errors that say what to do -------------------------------------------------------------------


def test_a_missing_path_says_what_to_give(tmp_path, mainland):
    result = mainland("import", str(tmp_path / "nowhere.mbox"))
    assert result.exit_code != 0
    assert "does not exist" in result.stderr and "mbox" in result.stderr


def test_a_file_that_is_no_mailbox_is_refused(tmp_path, mainland):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping: milk, bread\n")
    result = mainland("import", str(notes))
    assert result.exit_code != 0
    assert "not a mailbox" in result.stderr
    assert stats(mainland)["messages"] == 0


def test_an_unreadable_message_stops_with_advice_and_keeps_what_was_done(tmp_path, mainland, monkeypatch):
    folder = write_folder(tmp_path / "eml", messages(6))
    locked = sorted(folder.rglob("*.eml"))[4]
    real_read = Path.read_bytes

    def read_bytes(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    # Root may read any file, so a chmod would not stop this test's process.
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = mainland("import", str(folder), "--batch-size", "2", "--no-progress")
    assert result.exit_code != 0
    assert f"permission denied reading {locked}" in result.stderr
    assert "run the same command again" in result.stderr
    assert stats(mainland)["messages"] == 4
    monkeypatch.undo()
    result = mainland("import", str(folder), "--batch-size", "2", "--no-progress")
    assert "imported 2 messages: 2 stored" in result.stdout


def test_a_polled_channel_is_not_an_import_target(tmp_path, mainland):
    store = Store(tmp_path / "mainland.db")
    store.migrate()
    with store.write():
        store.save_cursor("support", "uidvalidity:7;uid:1234", "2026-01-01T00:00:00.000000Z")
    result = mainland("import", str(write_mbox(tmp_path / "x.mbox", messages(2))), "--channel", "support")
    assert result.exit_code != 0
    assert "polled by a connector" in result.stderr
    assert store.cursor("support") == "uidvalidity:7;uid:1234"
    store.close()


# Quarantine -----------------------------------------------------------------------------------


def test_a_message_without_sender_is_held_and_stays_held_on_reprocess(tmp_path, mainland):
    folder = write_folder(tmp_path / "eml", messages(3))
    (folder / "no-from.eml").write_bytes(b"To: support@mainland.test\r\nSubject: who am I\r\n\r\nNo sender.\r\n")
    result = mainland("import", str(folder), "--no-progress")
    assert "imported 4 messages: 3 stored, 0 duplicates, 1 quarantined" in result.stdout
    listing = mainland("quarantine", "list")
    assert "no sender" in listing.stdout and listing.stdout.count("held") == 1

    again = mainland("quarantine", "reprocess", "--all")
    assert again.exit_code != 0
    assert "still failing" in again.stdout
    figures = stats(mainland)
    assert (figures["messages"], figures["quarantined"]) == (3, 1)


def test_a_parser_crash_is_quarantined_and_reprocessed_after_the_fix(tmp_path, mainland, monkeypatch):
    """IN-41: the parser raises on one message; after the fix, reprocess stores it."""
    raws = messages(4)
    raws[2] = raw_mail(subject="poison pill", body="The parser trips on this one.")
    folder = write_folder(tmp_path / "eml", raws)
    real_parse = mail.parse_email

    def buggy_parse(raw, **kwargs):
        if b"poison pill" in raw:
            raise IndexError("list index out of range in the header parser")
        return real_parse(raw, **kwargs)

    monkeypatch.setattr(mail, "parse_email", buggy_parse)
    result = mainland("import", str(folder), "--no-progress")
    assert "imported 4 messages: 3 stored, 0 duplicates, 1 quarantined" in result.stdout
    monkeypatch.undo()

    store = Store(tmp_path / "mainland.db")
    [held] = store.quarantined()
    item = store.quarantine_item(held["id"])
    assert "IndexError: list index out of range in the header parser" in held["reason"]
    assert item["exception"].startswith("IndexError: list index out of range")
    assert item["source_ref"].endswith(".eml") and b"poison pill" in item["raw"]
    store.close()

    fixed = mainland("quarantine", "reprocess", str(held["id"]))
    assert fixed.exit_code == 0, fixed.output
    assert "stored" in fixed.stdout
    figures = stats(mainland)
    assert (figures["messages"], figures["quarantined"]) == (4, 0)


def test_files_that_are_not_mail_are_skipped_with_a_note_not_quarantined(tmp_path, mainland):
    folder = write_folder(tmp_path / "eml", messages(2))
    (folder / "README.txt").write_text("Exported from the old helpdesk on 2024-01-02.\n\nAsk Kim about it.\n")
    (folder / "invoice.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\x00\x01")
    (folder / "z-banner.eml").write_bytes(b"\r\n" + raw_mail(sender="late@example.net", subject="After blank lines"))
    result = mainland("import", str(folder), "--no-progress", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "imported 3 messages: 3 stored, 0 duplicates, 0 quarantined" in result.stdout
    assert "skipped 2 files that are not mail: README.txt, invoice.pdf" in result.stdout
    figures = stats(mainland)
    assert (figures["messages"], figures["quarantined"]) == (3, 0)
    again = mainland("import", str(folder), "--no-progress")
    assert "not mail" not in again.stdout, "a finished import is not read again"
