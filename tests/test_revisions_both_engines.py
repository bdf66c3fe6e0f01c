"""One migration tool for both engines (#17): a revision written once, with Alembic, reaches SQLite and
PostgreSQL alike (inbox/store/sqlite_schema.py, inbox/store/pg_schema.py).

SQLite's own chain is frozen at the baseline (m045); a database that reaches it is stamped with the
revision PostgreSQL's Alembic chain builds the same schema at, and takes the revisions after it. The
tests write such a next revision (0006) into a copy of Mainland's revisions folder: a column, an index
and a filled-in value, in batch mode as `scripts/revision.py` writes them for SQLite.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from inbox.store import Store, pg_schema, sqlite_schema
from inbox.store.migrations import migrations

REVISIONS = Path(pg_schema.__file__).with_name("revisions")

NEXT_REVISION = '''"""A test's next revision: teams get a motto, filled in from the name."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("motto", sa.Text(), nullable=True))
        batch.create_index("teams_motto", ["motto"])
    op.execute("UPDATE teams SET motto = 'We help: ' || name")
    {fail}


def downgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.drop_index("teams_motto")
        batch.drop_column("motto")
'''


def with_next_revision(tmp_path: Path, *, fail: bool = False) -> str:
    """A copy of Mainland's revisions with a 0006 after them; its folder."""
    folder = tmp_path / "revisions"
    shutil.copytree(REVISIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "0006_team_motto.py").write_text(
        NEXT_REVISION.format(fail='raise RuntimeError("this revision fails halfway")' if fail else ""))
    return str(folder)


def before_the_tool(path: Path) -> Store:
    """A database as Mainland left it before Alembic reached SQLite: the frozen chain only."""
    store = Store(path)
    migrations.apply(store.db)
    assert sqlite_schema.current(store.conn) is None
    with store.write():
        store.execute("INSERT INTO teams (name) VALUES ('Care')")
    return store


def columns(store: Store, table: str) -> list[str]:
    return [row[1] for row in store.execute(f"PRAGMA table_info({table})")]  # noqa: S608 - a test's constant


def test_the_frozen_chain_ends_at_the_baseline(tmp_path):
    # A schema change is the next Alembic revision, for both engines: never an m046.
    store = Store(tmp_path / "empty.db")
    assert [m.name for m in migrations.pending(store.db)][-1] == "m045_search_index_merge_width"
    store.close()


def test_a_new_database_is_stamped_at_the_newest_revision_and_a_second_start_does_nothing(tmp_path):
    store = Store(tmp_path / "new.db")
    applied = store.migrate()
    assert applied[-1] == "m045_search_index_merge_width"
    assert sqlite_schema.current(store.conn) == pg_schema.head()
    assert store.migrate() == []
    store.close()


def test_a_database_of_an_earlier_mainland_is_stamped_and_keeps_its_rows(tmp_path):
    store = before_the_tool(tmp_path / "old.db")
    schema = store.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    assert store.migrate() == []  # stamped, nothing to apply
    assert sqlite_schema.current(store.conn) == sqlite_schema.SQLITE_BASELINE
    assert store.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version' "
                         "ORDER BY name").fetchall() == schema
    assert store.execute("SELECT name FROM teams").fetchall() == [("Care",)]
    store.close()


def test_the_next_revision_reaches_an_old_sqlite_database_once(tmp_path):
    location = with_next_revision(tmp_path)
    store = before_the_tool(tmp_path / "old.db")
    applied = sqlite_schema.upgrade(store.path, store.conn, timeout=10, script_location=location)
    assert applied == ["0006"]
    assert "motto" in columns(store, "teams")
    assert store.execute("SELECT motto FROM teams").fetchall() == [("We help: Care",)]
    assert store.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'teams_motto'").fetchone()
    assert sqlite_schema.current(store.conn) == "0006"
    assert sqlite_schema.upgrade(store.path, store.conn, timeout=10, script_location=location) == []
    store.close()


def test_processes_starting_at_once_apply_the_revision_once(tmp_path):
    location = with_next_revision(tmp_path)
    before_the_tool(tmp_path / "old.db").close()
    start = threading.Barrier(3)
    results: list[list[str] | BaseException] = []

    def starting() -> None:
        store = Store(tmp_path / "old.db")
        try:
            start.wait()
            results.append(sqlite_schema.upgrade(store.path, store.conn, timeout=10, script_location=location))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            results.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=starting) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results, key=len) == [[], [], ["0006"]]


def test_a_revision_that_fails_halfway_leaves_the_file_as_it_was(tmp_path):
    location = with_next_revision(tmp_path, fail=True)
    store = before_the_tool(tmp_path / "old.db")
    with pytest.raises(RuntimeError, match="fails halfway"):
        sqlite_schema.upgrade(store.path, store.conn, timeout=10, script_location=location)
    assert "motto" not in columns(store, "teams")
    assert sqlite_schema.current(store.conn) is None  # not even stamped: one transaction
    assert store.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store.close()


@pytest.mark.server
def test_the_same_revision_reaches_postgresql(cluster, tmp_path):
    from tests.pg_cluster import create_database, drop_database

    location = with_next_revision(tmp_path)
    url = create_database(cluster)
    try:
        assert pg_schema.upgrade(url)[-1] == "0005"
        store = Store(url)
        with store.write():
            store.execute("INSERT INTO teams (name) VALUES ('Care')")
        assert pg_schema.upgrade(url, script_location=location) == ["0006"]
        assert store.execute("SELECT motto FROM teams").fetchall() == [("We help: Care",)]
        assert pg_schema.upgrade(url, script_location=location) == []
        store.close()
    finally:
        drop_database(url)
