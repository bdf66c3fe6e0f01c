"""The schema's description (inbox/store/schema.py) is exactly what the SQLite migrations build (#17).

PostgreSQL's schema is built from the description, SQLite's from the migrations; if the two drift,
an installation on one engine has a column, default, check or index the other lacks. Both SQLite
schemas are read back through SQLite itself (PRAGMA table_info, index_xinfo, foreign_key_list and
the stored CREATE statements), so what is compared is what SQLite really made.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine

from inbox.store import Store
from inbox.store.schema import metadata

#: The migration tools' own bookkeeping: the frozen chain's list and Alembic's revision (#17).
MIGRATION_TABLES = ("_sqlite_migrations", "alembic_version")


@dataclass(frozen=True)
class TableShape:
    columns: tuple[tuple, ...]
    collations: tuple[tuple[str, str], ...]
    foreign_keys: tuple[tuple, ...]
    indexes: tuple[tuple, ...]
    checks: tuple[str, ...]
    without_rowid: bool


def _normal(sql: str) -> str:
    """SQL text compared loosely: case, spacing, quoting and ifnull/coalesce (the same function)."""
    sql = re.sub(r"\s+", " ", sql.replace('"', "")).strip().lower()
    sql = re.sub(r"\( ", "(", re.sub(r" \)", ")", sql))
    return sql.replace("ifnull(", "coalesce(")


def _parenthesised(sql: str, start: int) -> str:
    """The text inside the parentheses opening at sql[start]."""
    depth = 0
    for at in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[at], 0)
        if depth == 0:
            return sql[start + 1:at]
    raise AssertionError(f"unbalanced parentheses in {sql!r}")


def _top_level_parts(body: str) -> list[str]:
    parts, depth, start, quoted = [], 0, 0, False
    for at, char in enumerate(body):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and char == "," and depth == 0:
            parts.append(body[start:at])
            start = at + 1
    parts.append(body[start:])
    return [part.strip() for part in parts]


def _checks(create_sql: str) -> tuple[str, ...]:
    found = []
    for match in re.finditer(r"\bCHECK\s*\(", create_sql, re.IGNORECASE):
        found.append(_normal(_parenthesised(create_sql, match.end() - 1)))
    return tuple(sorted(found))


def _collations(create_sql: str) -> tuple[tuple[str, str], ...]:
    body = _parenthesised(create_sql, create_sql.index("("))
    found = []
    for part in _top_level_parts(body):
        match = re.search(r"\bCOLLATE\s+\"?(\w+)", part, re.IGNORECASE)
        if match and not re.match(r"(CONSTRAINT|UNIQUE|PRIMARY|CHECK|FOREIGN)\b", part, re.IGNORECASE):
            found.append((part.split()[0].strip('"'), match.group(1).upper()))
    return tuple(sorted(found))


def _index(conn: sqlite3.Connection, table: str, name: str, unique: int, origin: str, partial: int) -> tuple:
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
    sql = row[0] or "" if row else ""  # a WITHOUT ROWID table's key has no row there
    keys = [row for row in conn.execute(f"PRAGMA index_xinfo('{name}')") if row[5]]  # key columns only
    if any(row[1] == -2 for row in keys):  # an expression: compare the definition
        columns = (_normal(_parenthesised(sql, sql.index("(", sql.upper().index(" ON ")))),)
    else:
        columns = tuple((row[2], row[4]) for row in keys)  # column, collation
    where = ""
    if partial:
        where = _normal(sql[re.search(r"\bWHERE\b", sql, re.IGNORECASE).end():])
    # SQLite names the indexes of UNIQUE and PRIMARY KEY constraints itself; those are compared by content.
    return (name if origin == "c" else f"<{origin}>", bool(unique), columns, where)


def sqlite_shape(conn: sqlite3.Connection) -> dict[str, TableShape]:
    virtual = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
    shapes = {}
    for name, create_sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall():
        # FTS5's own tables: the virtual table and its shadow tables (a table merely named like one is kept:
        # help_search_days is no shadow of help_search).
        shadows = {f"{v}_{suffix}" for v in virtual for suffix in ("data", "idx", "content", "docsize", "config")}
        if name in virtual or name in shadows or name.startswith("sqlite_") or name in MIGRATION_TABLES:
            continue
        # A key column counts as NOT NULL: SQLAlchemy declares it so, PostgreSQL's keys are never
        # null, and no Mainland table stores a null key (SQLite alone would let a TEXT key be null).
        columns = tuple((cid, col, decl.upper(), bool(notnull or pk), default, pk)
                        for cid, col, decl, notnull, default, pk in conn.execute(f"PRAGMA table_info('{name}')"))
        foreign_keys = tuple(sorted((row[2], row[3], row[4], row[5], row[6])
                                    for row in conn.execute(f"PRAGMA foreign_key_list('{name}')")))
        indexes = tuple(sorted(_index(conn, name, row[1], row[2], row[3], row[4])
                               for row in conn.execute(f"PRAGMA index_list('{name}')")))
        shapes[name] = TableShape(columns, _collations(create_sql), foreign_keys, indexes, _checks(create_sql),
                                  bool(re.search(r"WITHOUT\s+ROWID\s*$", create_sql, re.IGNORECASE)))
    return shapes


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> dict[str, TableShape]:
    store = Store(tmp_path_factory.mktemp("schema") / "m.db")
    store.migrate()
    try:
        return sqlite_shape(store.conn)
    finally:
        store.close()


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> dict[str, TableShape]:
    path = tmp_path_factory.mktemp("schema") / "described.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    try:
        return sqlite_shape(conn)
    finally:
        conn.close()


def test_the_description_has_every_table_the_migrations_make_and_no_other(migrated, described):
    assert sorted(described) == sorted(migrated)


@pytest.mark.parametrize("table", sorted(metadata.tables))
def test_each_table_is_described_as_the_migrations_make_it(migrated, described, table):
    made, told = migrated.get(table), described[table]
    assert made is not None, f"{table} is described but no migration makes it"
    for part in ("columns", "collations", "foreign_keys", "indexes", "checks", "without_rowid"):
        assert getattr(told, part) == getattr(made, part), f"{table}: {part} differ"


def test_the_comparison_sees_a_drift(migrated, described):
    # The checks above would pass vacuously if the shape missed what it claims to read.
    conversations = migrated["conversations"]
    assert ("queue_urgency", False, ("status, coalesce(sla_due_adequate, '~'), team_id, channel, assignee_id, "
                                     "priority",), "") in conversations.indexes
    assert any(index[3] for index in conversations.indexes), "partial indexes are read with their condition"
    assert "status in ('new', 'open', 'pending', 'snoozed', 'resolved', 'spam')" in conversations.checks
    assert migrated["labels"].collations == (("name", "NOCASE"),)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL DEFAULT '' CHECK (a != 'x'))")
    before = sqlite_shape(conn)["t"]
    conn.execute("ALTER TABLE t ADD COLUMN b INTEGER")
    conn.execute("CREATE INDEX t_b ON t(b) WHERE b IS NOT NULL")
    after = sqlite_shape(conn)["t"]
    assert after.columns != before.columns and after.indexes != before.indexes and after.checks == before.checks
