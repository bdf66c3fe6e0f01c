"""`mainland import` parsing in worker processes (#16): the same rows as parsing in-process, in the
same order, and exactly once when a worker process is killed mid-import."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from inbox import importer, mail_batch, parse_pool
from inbox.attachments import AttachmentStore
from inbox.ingest import Ingestor
from inbox.store import Store
from tests.conftest import fresh_database
from tests.mailfactory import raw_mail

#: What a user sees of a stored message (ids, conversation and order included; not the random tokens).
MESSAGE_COLUMNS = ("id", "conversation_id", "customer_id", "external_id", "author_name", "author_handle", "subject",
                   "text", "html", "message_id", "refs", "flags", "defects", "headers", "source_ref", "size", "sent_at",
                   "received_at")


def _sample(folder: Path, count: int = 60) -> Path:
    """Mail of every kind the parser distinguishes, with hostile headers, replies, a file that is
    not mail and messages that go to quarantine, in two subfolders."""
    (folder / "b").mkdir(parents=True)
    senders = ["Jane Doe <jane@example.net>", '"Doe, Jane" <JANE@example.net>', "=?utf-8?q?Jos=C3=A9?= <jose@x.net>",
               "bob@example.org (Bob)", "Mallory <mallory@evil.example>, Eve <eve@evil.example>",
               "no address at all", "J. R. <jr@example.net>", "<>"]
    for i in range(count):
        raw = raw_mail(sender=senders[i % len(senders)], subject=f"Question {i} =?utf-8?b?w6k=?=",
                       body=f"Message {i}\n" + "x" * (i * 37 % 500), message_id=f"<m{i}@example.net>",
                       in_reply_to=f"<m{i - 3}@example.net>" if i % 4 == 0 and i else None,
                       extra_headers="Auto-Submitted: auto-replied" if i % 9 == 0 else "")
        ((folder / "b") if i % 2 else folder).joinpath(f"{i:03d}.eml").write_bytes(raw)
    for i in range(3):  # HTML, sanitized in the parsing processes
        html = (f"<p onclick='x()'>Order {i}</p><script>alert(1)</script><img src='https://t.example/{i}.gif'>"
                + ("<a href='https://x.example'>l</a>" * 5001 if i == 2 else ""))  # too many links: replaced
        (folder / f"html{i}.eml").write_bytes(raw_mail(subject=f"html {i}", body=html, content_type="text/html"))
    (folder / "b" / "notes.txt").write_text("not a mail\n")
    (folder / "b" / "nosender.eml").write_bytes(b"To: support@mainland.test\r\nSubject: who\r\n\r\nNobody.\r\n")
    return folder


def _store(tmp_path: Path, migrated_database, name: str) -> Store:
    store = Store(fresh_database(migrated_database, tmp_path / f"{name}.db"))
    store.migrate()
    return store


def _import(store: Store, tmp_path: Path, folder: Path, **kwargs) -> importer.ImportReport:
    ingestor = Ingestor(store, AttachmentStore(tmp_path / "attachments"), instance_id="test-instance")
    return importer.import_mailbox(store, ingestor, folder, batch_size=7, **kwargs)


def _rows(store: Store) -> tuple[list, list]:
    columns = ", ".join(MESSAGE_COLUMNS)  # constant names
    messages = store.conn.execute(f"SELECT {columns} FROM messages ORDER BY id").fetchall()  # noqa: S608
    held = store.conn.execute("SELECT channel, reason, source_ref, raw FROM quarantine ORDER BY id").fetchall()
    return [tuple(r) for r in messages], [tuple(r) for r in held]


def test_processes_store_exactly_what_the_in_process_path_stores(tmp_path, migrated_database, frozen_clock):
    folder = _sample(tmp_path / "mail")
    here, there = _store(tmp_path, migrated_database, "here"), _store(tmp_path, migrated_database, "there")
    in_process = _import(here, tmp_path, folder, workers=0)
    processes = _import(there, tmp_path, folder, workers=2)

    messages, held = _rows(here)
    assert (messages, held) == _rows(there)
    assert len(messages) == in_process.stored > 40 and len(held) == in_process.quarantined >= 1
    assert (processes.stored, processes.quarantined, processes.not_mail) == (
        in_process.stored, in_process.quarantined, in_process.not_mail) == (
        in_process.stored, in_process.quarantined, ["b/notes.txt"])
    # Stored in source order: the ids follow the sorted paths.
    refs = [row[MESSAGE_COLUMNS.index("source_ref")] for row in messages]
    assert refs == sorted(refs)


def test_html_sanitized_while_parsing_is_stored_as_the_writer_would_store_it(tmp_path, migrated_database,
                                                                               frozen_clock, monkeypatch):
    folder = _sample(tmp_path / "mail", count=10)
    ahead = _store(tmp_path, migrated_database, "ahead")
    _import(ahead, tmp_path, folder, workers=0)
    monkeypatch.setattr(mail_batch, "presanitize", lambda items: {})
    by_writer = _store(tmp_path, migrated_database, "writer")
    _import(by_writer, tmp_path, folder, workers=0)
    assert _rows(ahead) == _rows(by_writer)
    html = ahead.conn.execute("SELECT html, flags FROM messages WHERE subject LIKE 'html %' ORDER BY subject").fetchall()
    assert [("Order" in (h or ""), "script" in (h or ""), "html_replaced" in f) for h, f in html] == [
        (True, False, False), (True, False, False), (False, False, True)]


def test_a_killed_worker_costs_nothing_and_doubles_nothing(tmp_path, migrated_database, frozen_clock, monkeypatch):
    folder = _sample(tmp_path / "mail", count=150)
    pipelines: list[parse_pool.ParsePipeline] = []
    real_pipeline = importer.ParsePipeline

    def recording(*args, **kwargs):
        pipelines.append(real_pipeline(*args, **kwargs))
        return pipelines[-1]

    monkeypatch.setattr(importer, "ParsePipeline", recording)
    killed: list[int] = []

    def kill_a_worker_after_the_first_batch(_count, _batch):
        if not killed:
            pid = pipelines[0].worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    there = _store(tmp_path, migrated_database, "there")
    report = _import(there, tmp_path, folder, workers=2, progress=kill_a_worker_after_the_first_batch)
    assert killed and pipelines[0].restarts >= 1  # the pool broke and the batches in flight were redone

    here = _store(tmp_path, migrated_database, "here")
    expected = _import(here, tmp_path, folder, workers=0)
    assert _rows(there) == _rows(here)
    assert (report.complete, report.stored, report.quarantined) == (True, expected.stored, expected.quarantined)
    assert there.conn.execute("SELECT count(*), count(DISTINCT external_id) FROM messages").fetchone() == (
        expected.stored, expected.stored)


def _parsed_where(payload: int) -> tuple[int, int]:
    return payload, os.getpid()


def test_the_first_batch_is_parsed_here_while_the_workers_start_and_the_rest_by_them():
    with parse_pool.ParsePipeline(_parsed_where, {}, workers=2) as pipeline:
        done = [parsed for _batch, parsed in pipeline.run(parse_pool.Batch(payload=i) for i in range(6))]
    assert [n for n, _pid in done] == list(range(6)), "handed back in order"
    assert done[0][1] == os.getpid()
    assert all(pid != os.getpid() for _n, pid in done[1:])


def test_without_processes_the_import_parses_in_its_own_process(tmp_path, migrated_database, frozen_clock,
                                                                  monkeypatch):
    def no_processes(*args, **kwargs):
        raise OSError(38, "Function not implemented: no semaphores here")

    monkeypatch.setattr(parse_pool, "ProcessPoolExecutor", no_processes)
    folder = _sample(tmp_path / "mail", count=20)
    store = _store(tmp_path, migrated_database, "store")
    report = _import(store, tmp_path, folder, workers=2)
    assert (report.complete, report.stored) == (True, store.counts()["messages"])
    assert report.stored >= 15


@pytest.mark.parametrize("layout", [["a.eml", "a/b.eml", "a.b/c.eml", "a-b.eml", "ab/z.eml", "a/.hidden/x.eml"]])
def test_the_folder_is_walked_in_sorted_path_order(tmp_path, layout):
    """A saved position must name the same file as before the walk was streamed: sorted full paths."""
    for name in layout:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(raw_mail())
    source = importer.open_source(tmp_path)
    expected = sorted(str(tmp_path / name) for name in layout if "/." not in name)
    assert [ref for _, ref in source.refs()] == expected and len(source) == len(expected)
    assert [ref for _, ref in source.refs(3)] == expected[3:]


def test_the_import_command_parses_in_the_processes_it_is_given(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from inbox.cli import main

    config = tmp_path / "mainland.yaml"
    config.write_text(f"database: {tmp_path / 'mainland.db'}\n")
    given: list[int] = []
    real_pipeline = importer.ParsePipeline

    def recording(*args, **kwargs):
        given.append(kwargs["workers"])
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(importer, "ParsePipeline", recording)
    folder = _sample(tmp_path / "mail", count=30)
    result = CliRunner().invoke(main, ["--config", str(config), "import", str(folder), "--workers", "2",
                                       "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert given == [2]
    # 33 mails and one without any sender; 7 of the 30 name no address either ("no address at all", "<>").
    assert "imported 34 messages: 26 stored, 0 duplicates, 8 quarantined" in result.stdout
