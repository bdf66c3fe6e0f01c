"""Migrations give the same result on every later version: they import nothing of Mainland's own (#17)."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from inbox.store import Store
from inbox.store.migrations import migrations

MIGRATIONS = Path(__file__).resolve().parent.parent / "inbox" / "store" / "migrations.py"


PG_MIGRATIONS = MIGRATIONS.parent / "revisions" / "versions"


def _imported(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    return imported


def test_the_migrations_import_only_the_standard_library_and_sqlite_utils():
    assert _imported(MIGRATIONS) <= {"__future__", "re", "unicodedata", "sqlite_utils"}, _imported(MIGRATIONS)


def test_postgresqls_migrations_import_only_alembic_and_sqlalchemy():
    # Not even inbox/store/schema.py: a revision says what it changes, so a later change to the
    # description cannot change what an old database gets on upgrade.
    revisions = sorted(PG_MIGRATIONS.glob("*.py"))
    assert revisions, "no PostgreSQL migrations found"
    for revision in revisions:
        assert _imported(revision) <= {"__future__", "alembic", "sqlalchemy"}, (revision.name, _imported(revision))


def test_customers_of_an_old_inbox_get_their_name_keys_and_token_counts(tmp_path):
    db = Database(sqlite3.connect(str(tmp_path / "old.db"), isolation_level=None))
    migrations.apply(db, stop_before="m006_customers")
    for name in ("Dhr. José  de Vríes", "de Vries, Jan", "jane@example.net", "Jan Jansen"):
        db.execute("INSERT INTO customers (display_name, created_at, updated_at) VALUES (?, 'x', 'x')", (name,))
    db.conn.close()
    store = Store(tmp_path / "old.db")
    store.migrate()
    keys = [row[0] for row in store.conn.execute("SELECT name_key FROM customers ORDER BY id")]
    assert keys == ["jose de vries", "jan de vries", "", "jan jansen"]
    counts = dict(store.conn.execute("SELECT token, n FROM name_token_counts"))
    assert counts == {"": 3, "jose": 1, "vries": 2, "jan": 2, "jansen": 1}
    store.close()
