"""The store's SQL on PostgreSQL (inbox/store/pg_connection.py): translated once, read as sqlite3 reads it (#17).

The translation is checked as text; what it means is checked on a real throwaway cluster, side
by side with SQLite where the two engines must agree (a number compared with text, `max(a, b)`,
`LIKE` ignoring case, the id an insert hands back, an insert that meets a unique key).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import pytest

from inbox.store.pg_connection import StatementError, translate
from tests.pg_cluster import ThrowawayCluster, server_bin_dir
from tests.servers import unavailable

IDS = frozenset({"items"})


def sql(statement: str, named: bool = False) -> str:
    return translate(statement, named=named, id_tables=IDS).sql


def test_placeholders_become_psycopgs_and_a_percent_sign_stays_a_percent_sign():
    assert sql("SELECT a FROM t WHERE b = ? AND c LIKE '50%?' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c ILIKE '50%%?' AND d = %s")
    assert sql("UPDATE t SET a = :a, b = '12:30' WHERE c = :c AND d::text = :d", named=True) == (
        "UPDATE t SET a = %(a)s, b = '12:30' WHERE c = %(c)s AND d::text = %(d)s")


def test_sqlites_own_functions_become_postgresqls():
    assert sql("SELECT ifnull(a, ''), IFNULL(b, 0), instr(c, ?) FROM t") == (
        "SELECT coalesce(a, ''), coalesce(b, 0), strpos(c, %s) FROM t")
    assert sql("SELECT max(a, ifnull(b, 0)), min(a, b, c), max(a), min(ifnull(a, b)) FROM t") == (
        "SELECT greatest(a, coalesce(b, 0)), least(a, b, c), max(a), min(coalesce(a, b)) FROM t")
    assert sql("SELECT group_concat(i.kind || ':' || i.value, ' '), group_concat(DISTINCT x) FROM t") == (
        "SELECT string_agg((i.kind || ':' || i.value)::text, ' '), string_agg(DISTINCT (x)::text, ',') FROM t")


def test_sqlites_is_between_values_and_its_json_functions_become_postgresqls():
    assert sql("SELECT 1 FROM t WHERE a IS NOT ? AND b IS ? AND c IS NOT NULL AND d IS NULL") == (
        "SELECT 1 FROM t WHERE a IS DISTINCT FROM %s AND b IS NOT DISTINCT FROM %s AND c IS NOT NULL AND d IS NULL")
    # SQLite's unary plus (an index kept out of the plan) means nothing there; an addition stays.
    assert sql("SELECT a + b, 2+c FROM t WHERE (+c.team_id IS NULL OR +c.team_id IN (?)) AND +c.channel = ?") == (
        "SELECT a + b, 2+c FROM t WHERE (c.team_id IS NULL OR c.team_id IN (%s)) AND c.channel = %s")
    assert sql("SELECT 1 FROM t WHERE (? IS NOT NULL AND a < ?) OR ? is null") == (
        "SELECT 1 FROM t WHERE (CAST(%s AS TEXT) IS NOT NULL AND a < %s) OR CAST(%s AS TEXT) is null")
    assert sql("SELECT json_extract(m.headers, '$.pressed') FROM m WHERE EXISTS "
               "(SELECT 1 FROM json_each(g.ids) j WHERE j.value = ?)") == (
        "SELECT ((m.headers)::jsonb ->> 'pressed') FROM m WHERE EXISTS "
        "(SELECT 1 FROM jsonb_array_elements_text((g.ids)::jsonb) j WHERE j.value = %s)")
    with pytest.raises(StatementError):
        sql("SELECT json_extract(doc, '$.a[0].b') FROM t")


def test_insert_or_ignore_and_the_id_an_insert_hands_back():
    assert translate("INSERT OR IGNORE INTO items (a) VALUES (?)", named=False, id_tables=IDS) == (
        translate("INSERT INTO items (a) VALUES (?) ON CONFLICT DO NOTHING", named=False, id_tables=IDS))
    assert sql("INSERT OR IGNORE INTO items (a) VALUES (?);") == (
        "INSERT INTO items (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id")
    assert sql("INSERT OR IGNORE INTO other (a) SELECT b FROM t RETURNING a") == (
        "INSERT INTO other (a) SELECT b FROM t ON CONFLICT DO NOTHING RETURNING a")
    assert not translate("INSERT INTO other (a) VALUES (?)", named=False, id_tables=IDS).returns_id


@pytest.mark.parametrize("statement", [
    "SELECT a FROM t ORDER BY a COLLATE NOCASE",
    "INSERT OR REPLACE INTO t (a) VALUES (?)",
    "PRAGMA optimize",
    "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?",
])
def test_sqlites_own_sql_with_no_translation_is_refused_not_run(statement):
    with pytest.raises(StatementError, match="write it portably"):
        sql(statement)


# On a real cluster --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (scripts/setup.sh --test installs it)")
    if server_bin_dir() is None:
        unavailable("no PostgreSQL 15+ server in /usr/lib/postgresql (scripts/setup.sh --test installs it)")
    with ThrowawayCluster() as url:
        yield url


SCHEMA = ["CREATE TABLE items (id {key}, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL DEFAULT 0, "
          "ref TEXT, score {real})"]


@pytest.fixture
def pg_url(cluster):
    """A fresh, empty database on the cluster."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return cluster.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def engines(pg_url, tmp_path):
    """The same small table on SQLite and on PostgreSQL, through the store's two connections."""
    from inbox.store.pg_connection import PgConnection

    url = pg_url
    lite = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    pg = PgConnection(url, id_tables=["items"])
    for statement in SCHEMA:
        lite.execute(statement.format(key="INTEGER PRIMARY KEY", real="REAL"))
        pg.execute(statement.format(key="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                                    real="DOUBLE PRECISION"))
    yield {"sqlite": lite, "postgresql": pg}
    lite.close()
    pg.close()


pg_only = pytest.mark.server


@pg_only
def test_both_engines_answer_the_same_to_the_stores_sql(engines):
    answers = {}
    for engine, conn in engines.items():
        first = conn.execute("INSERT INTO items (name, size, ref) VALUES (?, ?, ?)", ("Alpha", 3, 42)).lastrowid
        second = conn.execute("INSERT INTO items (name, size, ref, score) VALUES (?, ?, ?, ?)",
                              ("beta", True, "7", 0.5)).lastrowid
        ignored = conn.execute("INSERT OR IGNORE INTO items (name) VALUES (?)", ("Alpha",))
        updated = conn.execute("UPDATE items SET size = size + 1 WHERE id = ?", (first,))
        answers[engine] = {
            "ids": (first, second),
            "ignored": (ignored.rowcount, ignored.fetchone()),
            "update": (updated.rowcount, updated.fetchone(), updated.fetchall()),
            # A number meets a TEXT column: SQLite's affinity stored '42'; PostgreSQL reads the untyped 42 as text.
            "ref": conn.execute("SELECT name FROM items WHERE ref = ?", (42,)).fetchall(),
            "like": conn.execute("SELECT name FROM items WHERE name LIKE ? ORDER BY id", ("ALP%",)).fetchall(),
            "greatest": conn.execute("SELECT max(size, 10), min(size, 1) FROM items ORDER BY id").fetchall(),
            "sums": conn.execute("SELECT sum(size), avg(size), count(*), total_score FROM items, "
                                 "(SELECT sum(score) AS total_score FROM items) s GROUP BY total_score").fetchone(),
            "named": conn.execute("SELECT name FROM items WHERE size >= :low AND name != :skip ORDER BY id",
                                  {"low": 1, "skip": "x"}).fetchall(),
            "columns": [column[0] for column in conn.execute("SELECT id, name AS label FROM items").description],
            "flags": conn.execute("SELECT size FROM items WHERE name = 'beta'").fetchone(),
            "is": conn.execute("SELECT name FROM items WHERE score IS ? AND ref IS NOT ? ORDER BY id",
                               (None, "7")).fetchall(),
        }
    assert answers["postgresql"] == answers["sqlite"]
    assert answers["sqlite"]["ids"] == (1, 2) and answers["sqlite"]["sums"] == (5, 2.5, 2, 0.5)


@pg_only
def test_write_transactions_take_turns_as_sqlites_one_writer_does(engines, pg_url):
    from inbox.store.pg_connection import PgConnection

    pg, other = engines["postgresql"], PgConnection(pg_url, id_tables=["items"])
    began = threading.Event()
    pg.begin_write()
    pg.execute("INSERT INTO items (name) VALUES ('first')")

    def second_writer():
        other.begin_write()
        began.set()
        other.execute("INSERT INTO items (name) VALUES ('second')")
        other.execute("COMMIT")

    writer = threading.Thread(target=second_writer)
    writer.start()
    # Wait (on the server's own word, not a sleep) until the second writer queues for the lock.
    deadline = time.monotonic() + 30
    while not pg.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]:
        assert time.monotonic() < deadline, "the second writer never asked for the write lock"
    assert not began.is_set(), "a second writer began while the first held the write lock"
    pg.execute("COMMIT")
    writer.join(timeout=30)
    other.close()
    assert began.is_set() and not pg.in_transaction
    assert [row[0] for row in pg.execute("SELECT name FROM items ORDER BY id")] == ["first", "second"]


@pg_only
def test_the_store_opens_a_postgresql_url_migrates_and_writes_in_turns(pg_url):
    from inbox.store import Store, pg_schema

    store = Store(pg_url.replace("postgres@", "postgres:secret@"))
    try:
        assert store.engine == "postgresql" and "secret" not in str(store.path)
        assert store.migrate()[-1] == pg_schema.head() and store.migrate() == []
        with store.write():
            token_id = store.api_tokens.create(name="CRM", token_hash="b" * 64, prefix="ml_b", scopes=["read"],
                                               created_by=None, now="2026-01-02T03:04:05.000000Z")
            with pytest.raises(RuntimeError), store.savepoint():
                store.api_tokens.revoke(token_id, by=None)
                raise RuntimeError("rolled back to the savepoint alone")
        assert store.api_tokens.get(token_id).revoked_at is None and not store.conn.in_transaction
        with pytest.raises(ValueError), store.write():
            store.api_tokens.revoke(token_id, by=None)
            raise ValueError("the whole transaction is rolled back")
        assert store.api_tokens.get(token_id).revoked_at is None
    finally:
        store.close()


@pg_only
def test_an_installation_on_postgresql_migrates_checks_and_points_backups_to_pg_dump(pg_url, tmp_path):
    from click.testing import CliRunner

    from inbox.cli import main

    url = pg_url.replace("postgres@", "postgres:secret@")
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {url}\nsecret_key: test\n")

    def mainland(*args: str):
        return CliRunner().invoke(main, ["--config", str(config), *args])

    migrated = mainland("migrate")
    assert migrated.exit_code == 0, migrated.output
    checked = mainland("check-config")
    assert checked.exit_code == 0 and "postgres@" in checked.output and "secret" not in checked.output
    backup = mainland("backup", str(tmp_path / "copy.db"))
    assert backup.exit_code == 1 and "pg_dump" in backup.output and not (tmp_path / "copy.db").exists()


@pg_only
def test_a_connection_the_server_dropped_is_told_apart_and_reads_as_unreachable(engines, pg_url):
    import psycopg

    from inbox import storage_errors
    from inbox.store.pg_connection import PgConnection

    pg, admin = engines["postgresql"], PgConnection(pg_url, id_tables=[])
    pid = pg.execute("SELECT pg_backend_pid()").fetchone()[0]
    admin.execute("SELECT pg_terminate_backend(?)", (pid,))
    admin.close()
    with pytest.raises(psycopg.OperationalError) as dropped:
        pg.execute("SELECT 1")
    assert storage_errors.kind(dropped.value) == storage_errors.UNREACHABLE
    assert "PostgreSQL server could not be reached" in storage_errors.explain(dropped.value)
    # The web's pool closes a connection left "in a transaction"; rolling back a dropped one must not raise.
    assert pg.in_transaction
    pg.rollback()
