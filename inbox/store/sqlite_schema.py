"""SQLite's schema under the one migration tool (#17): its own frozen chain up to the baseline, Alembic after it.

SQLite's own migrations (`inbox/store/migrations.py`, m001-m045) take no more steps: they bring a
database of any earlier Mainland to the baseline, the schema `inbox/store/schema.py` describes, which
PostgreSQL's Alembic revisions 0001-0005 build there (`SQLITE_BASELINE`). A SQLite database that
reaches it is stamped with that revision in Alembic's own `alembic_version` table, once. From there on
both engines take the same revisions (`inbox/store/revisions/versions/`, 0006 on), each written once
with Alembic's operations, in batch mode where SQLite cannot alter a table in place
(`scripts/revision.py` writes them so).

Processes that start at once take turns: the whole upgrade is one `BEGIN IMMEDIATE` transaction
(SQLite's DDL is transactional, so a failed revision leaves the file as it was), as the frozen
chain's own step takes SQLite's write lock (`Store.migrate`). A database already at the newest
revision costs one read and no SQLAlchemy engine: the tests copy a migrated template thousands of
times and each copy is migrated again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event

from inbox.store import pg_schema

#: The revision SQLite's frozen chain (m001-m045) is equal to: the baseline (0001), the triggers as
#: PL/pgSQL (0002), search (0003: FTS5 on SQLite), help search counts (0004), and the live updates'
#: NOTIFY and shared rate counters (0005: PostgreSQL's own, SQLite keeps them in-process and in a file).
SQLITE_BASELINE = "0005"


def current(conn: sqlite3.Connection) -> str | None:
    """The Alembic revision the file is stamped with; None before it ever was."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: never stamped
        return None
    return row[0] if row else None


def _engine(path: Path, timeout: float) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": timeout})

    # SQLAlchemy's recipe for SQLite: let it issue BEGIN itself, as IMMEDIATE (the write lock at
    # once), instead of the driver's deferred BEGIN before the first DML only.
    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, record) -> None:  # noqa: ANN001 - SQLAlchemy's hook
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:  # noqa: ANN001 - SQLAlchemy's hook
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(path: Path, conn: sqlite3.Connection, *, timeout: float, script_location: str | None = None) -> list[str]:
    """Stamp the file at `SQLITE_BASELINE` when it never was, then apply the pending revisions; the
    revisions applied, oldest first. The frozen chain must have run first (`Store.migrate`)."""
    if current(conn) == pg_schema.head(script_location):
        return []
    engine = _engine(path, timeout)
    try:
        with engine.connect() as connection, connection.begin():
            config = pg_schema.alembic_config(connection, script_location=script_location)
            before = pg_schema.current(connection)
            if before is None:
                command.stamp(config, SQLITE_BASELINE)
                before = SQLITE_BASELINE
            command.upgrade(config, "head")
            scripts = ScriptDirectory.from_config(config)
            applied = [script.revision for script in scripts.iterate_revisions("head", before)]
    finally:
        engine.dispose()
    return list(reversed(applied))
