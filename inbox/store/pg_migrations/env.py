"""Alembic's environment for PostgreSQL's migrations (#17): run by `inbox.store.pg_schema`, never by hand.

The caller hands over an open SQLAlchemy connection (`config.attributes["connection"]`); each
migration runs in the transaction Alembic opens on it, so a failed one leaves the database as it was
(PostgreSQL's DDL is transactional). The target metadata is the schema's description, so that
`alembic revision --autogenerate` (scripts in docs/development.md) writes the next migration from a
change to `inbox/store/schema.py`.
"""

from __future__ import annotations

from alembic import context

from inbox.store.pg_schema import UNDESCRIBED_TABLES
from inbox.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("PostgreSQL's migrations run through inbox.store.pg_schema.upgrade(), not alembic's own CLI")

context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True,
                  compare_type=True, compare_server_default=True,
                  process_revision_directives=context.config.attributes.get("process_revision_directives"),
                  # PostgreSQL's search documents and rate counters are not in the description.
                  include_name=lambda name, kind, parent: not (kind == "table" and name in UNDESCRIBED_TABLES))
with context.begin_transaction():
    context.run_migrations()
