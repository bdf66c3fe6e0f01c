"""PostgreSQL's migrations (inbox/store/pg_schema.py, Alembic) build the schema the description says (#17).

On a real throwaway PostgreSQL cluster (tests/pg_cluster.py): a fresh database gets every table,
column, key and index of inbox/store/schema.py (Alembic's own comparison finds no difference), a
second start applies nothing, two processes starting at once apply each migration once, and
going back to the start leaves no table behind.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import pytest

from tests.pg_cluster import create_database

pytestmark = pytest.mark.server




@pytest.fixture
def database_url(cluster):
    """A fresh, empty database on the cluster; its URL."""
    return create_database(cluster)


def _tables(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def _every_revision() -> list[str]:
    """PostgreSQL's migrations as files, oldest first (each file is named after its revision)."""
    from inbox.store import pg_schema

    versions = Path(pg_schema.__file__).with_name("revisions") / "versions"
    return sorted(path.name.split("_", 1)[0] for path in versions.glob("[0-9]*.py"))


def test_a_fresh_database_gets_every_described_table_and_a_second_start_applies_nothing(database_url):
    from inbox.store import pg_schema
    from inbox.store.schema import metadata

    assert pg_schema.upgrade(database_url) == _every_revision()
    assert _every_revision()[-1] == pg_schema.head()
    # PostgreSQL's search documents stand where SQLite has FTS5 tables, its rate counters where SQLite
    # has a file of their own: neither is in the description.
    assert _tables(database_url) == set(metadata.tables) | {"alembic_version", *pg_schema.UNDESCRIBED_TABLES}
    assert pg_schema.upgrade(database_url) == []


def test_the_migrated_database_is_exactly_the_description(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from inbox.store import pg_schema
    from inbox.store.schema import metadata

    def described(obj, name, type_, reflected, compare_to):
        # The search documents and rate counters are not described: tests/test_pg_search.py and
        # tests/test_rate_counters.py check them.
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table not in pg_schema.UNDESCRIBED_TABLES

    pg_schema.upgrade(database_url)
    engine = create_engine(pg_schema.sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            # Alembic cannot compare indexes on expressions and says so; tests/test_schema.py checks those.
            warnings.filterwarnings("ignore", message=".*expression.*")
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True,
                                                             "include_object": described})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_two_processes_starting_at_once_apply_each_migration_once(database_url):
    from inbox.store import pg_schema

    applied: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def migrate():
        start.wait()
        try:
            applied.append(pg_schema.upgrade(database_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(applied) == [[], _every_revision()]


def test_a_fresh_database_starts_with_the_rows_sqlites_migrations_start_with(database_url, tmp_path):
    import psycopg

    from inbox.store import Store, pg_schema
    from inbox.store.schema import metadata

    sqlite = Store(tmp_path / "m.db")
    sqlite.migrate()
    pg_schema.upgrade(database_url)
    with psycopg.connect(database_url) as pg:
        for table in sorted(metadata.tables):
            order = ", ".join(str(n) for n in range(1, len(metadata.tables[table].columns) + 1))
            on_sqlite = sqlite.conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()  # noqa: S608
            on_pg = pg.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()  # noqa: S608
            assert on_pg == on_sqlite, table
    sqlite.close()


def test_label_names_stay_unique_whatever_their_case(database_url):
    import psycopg

    from inbox.store import pg_schema

    pg_schema.upgrade(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO labels (name) VALUES ('Billing')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO labels (name) VALUES ('BILLING')")


def test_going_back_to_the_start_leaves_no_table(database_url):
    from alembic import command
    from sqlalchemy import create_engine

    from inbox.store import pg_schema

    pg_schema.upgrade(database_url)
    engine = create_engine(pg_schema.sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            command.downgrade(pg_schema.alembic_config(conn), "base")
            conn.commit()
    finally:
        engine.dispose()
    assert _tables(database_url) == {"alembic_version"}


def test_a_url_that_is_not_postgresql_is_refused_with_the_form_to_give():
    from inbox.store import pg_schema

    assert pg_schema.sqlalchemy_url("postgresql://m@db:5432/mainland") == "postgresql+psycopg://m@db:5432/mainland"
    with pytest.raises(ValueError, match="postgresql://user@host:port/database"):
        pg_schema.sqlalchemy_url("mysql://m@db/mainland")
