"""What tests need to ask of either engine that SQL alone does not say the same way on both (#17)."""

from __future__ import annotations

from inbox.store.schema import metadata


def writes_seen(store) -> object:
    """A value that changes whenever anything is written to the database (for "changes nothing" checks).

    SQLite counts its changes (total_changes()). PostgreSQL gives each written row version the
    writing transaction's id (xmin): the tables' row counts and newest xmin change with any insert,
    update or delete.
    """
    if store.engine == "sqlite":
        return store.conn.execute("SELECT total_changes()").fetchone()[0]
    parts = " UNION ALL ".join(
        f"SELECT '{name}', count(*), max(xmin::text::bigint) FROM {name}"  # noqa: S608 (the schema's table names)
        for name in sorted(metadata.tables))
    return store.conn.execute(parts).fetchall()


def sqlite_only(why: str) -> None:
    """Skip the calling test on PostgreSQL (scripts/test.sh --engine postgresql), saying why."""
    import os

    import pytest

    if os.environ.get("MAINLAND_TEST_ENGINE", "sqlite") != "sqlite":
        pytest.skip(f"SQLite's own: {why}")
