"""PostgreSQL's schema: Alembic's revisions (`inbox/store/revisions/`), applied in order (#17).

Alembic is the one migration tool of both engines: PostgreSQL takes every revision; SQLite reaches
the baseline through its own frozen chain (`inbox/store/migrations.py`, m001-m045) and takes the
revisions after it (`inbox/store/sqlite_schema.py`). Both build the schema that
`inbox/store/schema.py` describes, and the tests hold each to it. Processes that start at once
take turns through a PostgreSQL advisory lock, so each migration is applied once, as
`Store.migrate` does with SQLite's write lock.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text

from inbox.store.pg_search import SEARCH_TABLES

#: The advisory lock key migrations hold (any constant; "mainland" in ASCII, as a 64-bit number).
MIGRATION_LOCK = 0x6D61696E6C616E64
_SCRIPTS = Path(__file__).with_name("revisions")
#: PostgreSQL's tables that `inbox/store/schema.py` does not describe, because SQLite keeps the same
#: facts another way: the search documents (FTS5 there) and the rate-limit counters (a file of their
#: own there, inbox/store/rate_limits.py).
UNDESCRIBED_TABLES = (*SEARCH_TABLES, "rate_counters")


def sqlalchemy_url(url: str) -> str:
    """A `postgresql://` URL as SQLAlchemy names it with the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {url!r} (give postgresql://user@host:port/database)")


def alembic_config(connection: Connection | None = None, *, script_location: str | None = None) -> Config:
    """Alembic's configuration, made in code: Mainland ships no alembic.ini. `script_location`: another
    folder of revisions than Mainland's (tests)."""
    config = Config()
    config.set_main_option("script_location", script_location or str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head(script_location: str | None = None) -> str:
    """The newest revision (read once per process)."""
    return ScriptDirectory.from_config(alembic_config(script_location=script_location)).get_current_head()


def current(connection: Connection) -> str | None:
    """The revision the database is at; None for a database Mainland never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, *, script_location: str | None = None) -> list[str]:
    """Apply the pending migrations to the database at `url`; the revisions applied, oldest first."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
            try:
                before = current(connection)
                connection.commit()
                command.upgrade(alembic_config(connection, script_location=script_location), "head")
                connection.commit()
                scripts = ScriptDirectory.from_config(alembic_config(script_location=script_location))
                applied = [script.revision for script in scripts.iterate_revisions("head", before)]
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
    finally:
        engine.dispose()
    return list(reversed(applied))
