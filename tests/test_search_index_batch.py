"""The search indexes of an ingest batch are written at its end (m044), and stay exactly the rows' words.

FTS5's own `integrity-check` compares each index with what it indexes (for messages_fts: the
messages table itself), so a row left out, indexed twice or indexed with old words fails it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from sqlite_utils import Database

from inbox.mail import parse_email
from inbox.models import CHANGE_EDITED, Author, FetchResult, InboundItem, MessageChange
from inbox.store import Store
from inbox.store.migrations import migrations
from inbox.store.queue import fts_query
from tests.mailfactory import raw_mail


def _ingest(ingestor, *raws, cursor="c1"):
    return ingestor.ingest("mail", FetchResult(items=[parse_email(r, channel="mail") for r in raws], cursor=cursor))


def _found(store, words: str) -> list[int]:
    return sorted(g.conversation["id"] for g in store.search(fts_query(words), team_ids=None, agent_id=None).groups)


def _assert_indexes_whole(store) -> None:
    if store.engine == "postgresql":
        # PostgreSQL's documents against their rows (tests/test_pg_search.py's check).
        from tests.test_pg_search import STALE_DOCUMENTS

        for sql in STALE_DOCUMENTS:
            assert store.conn.execute(sql).fetchone()[0] == 0, sql
        return
    for index in ("messages_fts", "conversation_search"):
        store.conn.execute(f"INSERT INTO {index} ({index}) VALUES ('integrity-check')")  # noqa: S608 (two names above); raises when not whole
    assert store.conn.execute("SELECT count(*) FROM search_index_deferred").fetchone()[0] == 0


def _sqlite_only(store) -> None:
    if store.engine != "sqlite":
        pytest.skip("FTS5's own tables and SQLite's journal setting; PostgreSQL's search is tests/test_pg_search.py")


def test_a_batch_is_found_by_its_words_and_its_senders(ingestor, store):
    report = _ingest(ingestor,
                     raw_mail(sender="Zebedee Quist <zq@example.net>", subject="Broken hinge", body="The hinge snapped"),
                     raw_mail(sender="amara@example.org", subject="Invoice", body="Please resend the invoice"),
                     raw_mail(sender="zq@example.net", subject="Photos", body="Photos of the hinge attached"))
    assert report.stored == 3
    _assert_indexes_whole(store)
    conversations = sorted(set(store.conn.execute("SELECT conversation_id FROM messages").fetchall()))
    assert len(conversations) == 3
    assert len(_found(store, "hinge")) == 2
    assert len(_found(store, "resend")) == 1
    assert len(_found(store, "Quist")) == 2, "the customer's name, from the conversation index"
    assert _found(store, "hin*") == _found(store, "hinge"), "prefix search over the batch"


def test_an_edit_in_the_same_batch_is_found_by_its_new_words_only(ingestor, store):
    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    item = InboundItem(channel="fb", external_id="m1", text="Is the coat in medium?", thread_key="chat:bob",
                       author=Author(handle="bob-1", name="Bob", identity_kind="facebook"), sent_at=now)
    report = ingestor.ingest("fb", FetchResult(items=[item], cursor="1", changes=[
        MessageChange("m1", CHANGE_EDITED, text="Is the coat in large?", at=now + dt.timedelta(minutes=1))]))
    assert (report.stored, report.changes) == (1, 1)
    _assert_indexes_whole(store)
    def messages_with(word: str) -> list[int]:
        found = store.search(fts_query(word), team_ids=None, agent_id=None).groups
        return [snippet["message_id"] for group in found for snippet in group.snippets]

    # (The conversation keeps its first line as its subject, so the conversation search still knows "medium".)
    assert messages_with("large") == [1] and messages_with("medium") == []


def test_an_item_that_cannot_be_stored_leaves_the_rest_found_and_the_index_whole(ingestor, store, monkeypatch):
    real_insert_raw = store.insert_raw

    def insert_raw(message_id, data):
        if b"poison" in data:
            raise ValueError("a bug while storing this one")
        real_insert_raw(message_id, data)

    monkeypatch.setattr(store, "insert_raw", insert_raw)
    report = _ingest(ingestor, raw_mail(body="first lighthouse"), raw_mail(body="poison lighthouse"),
                     raw_mail(body="third lighthouse"))
    assert (report.stored, report.quarantined) == (2, 1)
    _assert_indexes_whole(store)
    assert len(_found(store, "lighthouse")) == 2
    assert _found(store, "poison") == []


def test_a_failed_batch_leaves_no_mark_and_the_next_one_is_indexed(ingestor, store, monkeypatch):
    def explode(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "save_cursor", explode)
    with pytest.raises(sqlite3.OperationalError):
        _ingest(ingestor, raw_mail(body="lost walrus"))
    monkeypatch.undo()
    assert store.counts()["messages"] == 0
    _assert_indexes_whole(store)
    _ingest(ingestor, raw_mail(body="found walrus"))
    _assert_indexes_whole(store)
    assert len(_found(store, "walrus")) == 1


def test_rows_written_outside_a_batch_are_indexed_at_once(ingestor, store):
    _ingest(ingestor, raw_mail(body="about the kettle"))
    [(conversation_id,)] = store.conn.execute("SELECT id FROM conversations").fetchall()
    with store.write():
        message_id = store.insert_message({"conversation_id": conversation_id, "channel": "mail",
                                           "external_id": "note-1", "direction": "note", "text": "descaled kettle",
                                           "received_at": "2026-03-02T09:00:00.000000Z"})
    assert _found(store, "descaled") == [conversation_id]
    with store.write():
        store.conn.execute("UPDATE messages SET text = 'replaced kettle' WHERE id = ?", (message_id,))
    assert _found(store, "descaled") == [] and _found(store, "replaced") == [conversation_id]
    # A delivery status is not searched: its update leaves the index as it was (no entry rewritten;
    # on PostgreSQL, the document row is not updated at all).
    index = ("SELECT count(*) FROM messages_fts_data" if store.engine == "sqlite" else
             "SELECT xmin::text || ctid::text FROM message_documents")
    before = store.conn.execute(index).fetchall()
    with store.write():
        store.conn.execute("UPDATE messages SET delivery_status = 'sent' WHERE id = ?", (message_id,))
    assert store.conn.execute(index).fetchall() == before
    _assert_indexes_whole(store)


def test_an_inbox_from_before_the_change_stays_searchable_after_the_upgrade(tmp_path):
    db = Database(sqlite3.connect(str(tmp_path / "old.db"), isolation_level=None))
    migrations.apply(db, stop_before="m044_search_index_per_batch")
    db.conn.close()
    old = Store(tmp_path / "old.db")
    with old.write():
        old.execute("INSERT INTO customers (display_name, created_at, updated_at) VALUES ('Ida Old', 'x', 'x')")
        old.execute("INSERT INTO conversations (token, customer_id, channel, subject, created_at, updated_at, "
                    "last_message_at) VALUES ('OLDTOKEN', 1, 'mail', 'Old question', 'x', 'x', 'x')")
        old.execute("INSERT INTO messages (conversation_id, channel, external_id, direction, text, received_at) "
                    "VALUES (1, 'mail', 'old-1', 'in', 'an archived barometer', 'x')")
    assert "m044_search_index_per_batch" in old.migrate()
    _assert_indexes_whole(old)
    assert _found(old, "barometer") == [1] and _found(old, "Ida") == [1]
    old.close()


def test_statement_journals_stay_in_memory_only_for_the_ingest_transaction(ingestor, store, monkeypatch):
    _sqlite_only(store)
    # In memory for a batch's many small statements; back on file for every other transaction (a
    # migration's single statement may change much of the database), after a commit or a rollback.
    seen: list[int] = []
    real_store_one = ingestor._store_one

    def store_one(*args, **kwargs):
        seen.append(store.conn.execute("PRAGMA temp_store").fetchone()[0])
        return real_store_one(*args, **kwargs)

    monkeypatch.setattr(ingestor, "_store_one", store_one)
    _ingest(ingestor, raw_mail(body="one"))
    assert seen == [2]  # MEMORY
    assert store.conn.execute("PRAGMA temp_store").fetchone()[0] == 0
    with pytest.raises(RuntimeError), store.write(journals_in_memory=True):
        raise RuntimeError("rolled back")
    assert store.conn.execute("PRAGMA temp_store").fetchone()[0] == 0
    with store.write():
        assert store.conn.execute("PRAGMA temp_store").fetchone()[0] == 0


def test_the_indexes_merge_sixteen_segments_at_a_time_and_stay_whole(ingestor, store):
    _sqlite_only(store)
    # m045: fewer, wider merges keep a large import's index work from growing (bench/README.md).
    for index in ("messages_fts", "conversation_search"):
        config = dict(store.conn.execute(f"SELECT k, v FROM {index}_config"))  # noqa: S608 (two names above)
        assert (config.get("automerge"), config.get("crisismerge")) == (16, 64), index
    words = [f"zyxword{n}" for n in range(40)]
    for n, word in enumerate(words):  # one batch each: one index segment each, a few pages long
        filler = " ".join(f"w{n}x{k}" for k in range(800))  # FTS5 paces its merges by pages written
        _ingest(ingestor, raw_mail(sender=f"s{n}@example.net", subject=f"Question {n}", body=f"About the {word} {filler}"),
                cursor=f"c{n}")
    segments = store.conn.execute("SELECT count(DISTINCT segid) FROM messages_fts_idx").fetchone()[0]
    # Merged 16 at a time: up to 15 wait at a level (with FTS5's default of 4 there were 5 in all).
    assert 16 <= segments < 40
    _assert_indexes_whole(store)
    assert all(len(_found(store, word)) == 1 for word in (words[0], words[15], words[39]))
