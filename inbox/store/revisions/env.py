"""Alembic's environment for Mainland's revisions on both engines (#17): run by `inbox.store.pg_schema`
(PostgreSQL) and `inbox.store.sqlite_schema` (SQLite, from revision 0006 on), never by hand.

The caller hands over an open SQLAlchemy connection (`config.attributes["connection"]`). On
PostgreSQL each migration runs in the transaction Alembic opens on it; on SQLite the caller's
`BEGIN IMMEDIATE` transaction holds them all (processes starting at once take turns on the write
lock). Either way a failed revision leaves the database as it was (both engines' DDL is
transactional). On SQLite, Alembic writes and runs table changes in batch mode (a new table copied
from the old), since SQLite alters a table in place only to add a column or rename. The target
metadata is the schema's description, so that `scripts/revision.py` writes the next revision from a
change to `inbox/store/schema.py`.
"""

from __future__ import annotations

from alembic import context

from inbox.store.pg_schema import UNDESCRIBED_TABLES
from inbox.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Mainland's revisions run through Store.migrate() (inbox.store.pg_schema, "
                       "inbox.store.sqlite_schema), not alembic's own CLI")
sqlite = connection.dialect.name == "sqlite"

context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=not sqlite,
                  render_as_batch=True,  # revisions written once run on both: SQLite needs batch mode
                  compare_type=True, compare_server_default=True,
                  process_revision_directives=context.config.attributes.get("process_revision_directives"),
                  # PostgreSQL's search documents and rate counters are not in the description.
                  include_name=lambda name, kind, parent: not (kind == "table" and name in UNDESCRIBED_TABLES))
with context.begin_transaction():
    context.run_migrations()
