"""The SQL of `mainland migrate-to-postgresql` (inbox/migrate_to_postgresql.py, #17): a SQLite database
read table by table in key order, its rows written into a PostgreSQL database, and the copy's progress
kept in that database.

Every statement here names only tables and columns of the schema's description
(`inbox/store/schema.py`), each quoted, and takes every value as a parameter. Both connections are
the store's own: `sqlite3` for the source, `PgConnection` (inbox/store/pg_connection.py) for the
target, so `?` is the placeholder on both.

The progress table, `mainland_copy_progress`, has one row per table of the description and one per
search-document table; it exists from the copy's first transaction until the copy is verified, and
its presence is what says "an unfinished copy" (the only kind of non-empty database the copy resumes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, Text

from inbox.store.pg_search import SEARCH_TABLES

#: The table of the copy's progress in the target database.
PROGRESS = "mainland_copy_progress"

#: The advisory lock one copy into a database holds (at most one copy runs into it at a time):
#: "mncopy2p" in ASCII, as a 64-bit number.
COPY_LOCK = 0x6D6E636F70793270

#: The rows revision 0001 starts every database with (revisions/versions/0001_baseline.py, and
#: SQLite's migrations the same): a database holding these and nothing else holds no data yet.
SEED_ROWS: dict[str, frozenset[tuple[Any, ...]]] = {
    "settings_version": frozenset({(1, 0)}),
    "rules_version": frozenset({(1, 0)}),
    "notification_marks": frozenset({("customer_replied", 0), ("sla_assignee", 0)}),
}


def quoted(name: str) -> str:
    """An identifier as both engines read it whatever its name (`trigger`, `key`, `text`...)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Forward:
    """A foreign key column that may point at a row not copied yet: inserted as NULL where it does,
    and set once every table is copied (`forward_rows`, `set_forward`)."""

    column: str
    #: It refers to its own table's one-column key: only a value past the row's own key points
    #: forward (rows are copied in key order). Otherwise it refers to a table copied later (a cycle
    #: of tables), and every value waits.
    own_key: bool


@dataclass(frozen=True)
class TablePlan:
    """How one table is copied: its columns, the key its rows are read in the order of, and its
    forward references."""

    name: str
    columns: tuple[str, ...]
    #: The primary key's columns; every column for a table without one (`keyed` False).
    key: tuple[str, ...]
    #: The key columns that hold text (PostgreSQL orders them with COLLATE "C", SQLite's byte order).
    text_key: frozenset[str]
    keyed: bool
    forward: tuple[Forward, ...] = ()

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(column)] for column in self.key)


def plan_tables(metadata: MetaData) -> list[TablePlan]:
    """Every table of the description in foreign-key order (`sorted_tables`), with its forward
    references: to its own table, or to a table that comes later in that order."""
    order = {table.name: at for at, table in enumerate(metadata.sorted_tables)}
    plans = []
    for table in metadata.sorted_tables:
        key = tuple(column.name for column in table.primary_key.columns)
        keyed = bool(key)
        key = key or tuple(column.name for column in table.columns)
        forward = []
        for column in table.columns:
            for foreign_key in column.foreign_keys:
                referred = foreign_key.column.table.name
                if referred == table.name:
                    forward.append(Forward(column.name, own_key=key == (foreign_key.column.name,) and keyed))
                elif order[referred] > order[table.name]:
                    forward.append(Forward(column.name, own_key=False))
        plans.append(TablePlan(
            name=table.name,
            columns=tuple(column.name for column in table.columns),
            key=key,
            text_key=frozenset(name for name in key if isinstance(table.c[name].type, Text)),
            keyed=keyed,
            forward=tuple(forward),
        ))
    return plans


# Reading, the same on both engines ---------------------------------------------------------------------

def _ordered_key(plan: TablePlan, collate_c: bool) -> str:
    """The key columns, in the order both engines sort them: text by code point (SQLite's BINARY)."""
    collate = ' COLLATE "C"' if collate_c else ""
    return ", ".join(quoted(c) + (collate if c in plan.text_key else "") for c in plan.key)


def sorts_text_by_code_point(conn: Any) -> bool:
    """Whether the PostgreSQL database's own collation orders text as SQLite does (by code point: the
    collations C, POSIX and C.UTF-8 of the libc provider). Then its key indexes give the rows in that
    order; otherwise each read says COLLATE "C", which no index serves (a sort of the table per batch)."""
    provider, collation = conn.execute(
        "SELECT datlocprovider, datcollate FROM pg_database WHERE datname = current_database()").fetchone()
    return provider == "c" and collation in {"C", "POSIX", "C.UTF-8", "C.utf8"}


def read_rows(conn: Any, plan: TablePlan, after: Sequence[Any] | None, limit: int | None, *,
              collate_c: bool = False) -> list[tuple[Any, ...]]:
    """Up to `limit` rows of `plan`'s table after the key `after` (from the first when None), in key
    order; every row when `limit` is None (a table without a key is read whole). `collate_c`: on a
    PostgreSQL database that does not sort text by code point (`sorts_text_by_code_point`)."""
    key = _ordered_key(plan, collate_c)
    where, params = "", []
    if after is not None:
        where = f" WHERE ({key}) > ({', '.join('?' * len(plan.key))})"
        params = list(after)
    bound = ""
    if limit is not None:
        bound = " LIMIT ?"
        params.append(limit)
    return [tuple(row) for row in conn.execute(
        f"SELECT {', '.join(map(quoted, plan.columns))} FROM {quoted(plan.name)}{where} "  # noqa: S608 - names of the schema
        f"ORDER BY {key}{bound}", params).fetchall()]


def count_rows(conn: Any, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {quoted(table)}").fetchone()[0]  # noqa: S608 - a name of the schema


def forward_rows(conn: Any, plan: TablePlan, after: Sequence[Any] | None, limit: int) -> list[tuple[Any, ...]]:
    """The source rows of `plan`'s table whose forward references were left NULL in the copy:
    (forward values..., key values...), in key order after `after`."""
    pointing = " OR ".join(
        f"{quoted(f.column)} > {quoted(plan.key[0])}" if f.own_key else f"{quoted(f.column)} IS NOT NULL"
        for f in plan.forward)
    key = _ordered_key(plan, collate_c=False)
    where, params = f"({pointing})", []
    if after is not None:
        where += f" AND ({key}) > ({', '.join('?' * len(plan.key))})"
        params = list(after)
    columns = [quoted(f.column) for f in plan.forward] + [quoted(c) for c in plan.key]
    return [tuple(row) for row in conn.execute(
        f"SELECT {', '.join(columns)} FROM {quoted(plan.name)} WHERE {where} "  # noqa: S608 - names of the schema
        f"ORDER BY {key} LIMIT ?", [*params, limit]).fetchall()]


def attachment_files(conn: Any) -> list[tuple[str, str]]:
    """Every attachment file the database refers to, once, by sha256: (sha256, the first row naming it).
    A message's attachment whose bytes were not kept (`stored` 0) has none."""
    named = {digest: f"review attachment {row}" for digest, row in conn.execute(
        "SELECT sha256, min(id) FROM review_attachments GROUP BY sha256").fetchall()}
    named.update((digest, f"attachment {row}") for digest, row in conn.execute(
        "SELECT sha256, min(id) FROM attachments WHERE stored = 1 AND sha256 IS NOT NULL GROUP BY sha256").fetchall())
    return sorted(named.items())


# The target ---------------------------------------------------------------------------------------------

def try_lock(conn: Any) -> bool:
    """Take this database's copy lock (held by the session until `unlock` or the connection ends)."""
    return bool(conn.execute("SELECT pg_try_advisory_lock(?)", (COPY_LOCK,)).fetchone()[0])


def unlock(conn: Any) -> None:
    conn.execute("SELECT pg_advisory_unlock(?)", (COPY_LOCK,))


def progress_exists(conn: Any) -> bool:
    return conn.execute("SELECT to_regclass(?) IS NOT NULL", (PROGRESS,)).fetchone()[0]


def tables_holding_data(conn: Any, tables: Iterable[str]) -> list[str]:
    """Those of `tables` that exist in the target and hold rows other than the ones every new database
    starts with (`SEED_ROWS`)."""
    holding = []
    for table in tables:
        if not conn.execute("SELECT to_regclass(?) IS NOT NULL", (table,)).fetchone()[0]:
            continue
        if table in SEED_ROWS:
            rows = {tuple(row) for row in conn.execute(f"SELECT * FROM {quoted(table)}").fetchall()}  # noqa: S608
            if not rows <= SEED_ROWS[table]:
                holding.append(table)
        elif conn.execute(f"SELECT 1 FROM {quoted(table)} LIMIT 1").fetchone():  # noqa: S608 - a name of the schema
            holding.append(table)
    return holding


def begin_copy(conn: Any, tables: Sequence[str], source: str) -> None:
    """The copy's first transaction: its progress table, a row for each of `tables` and each
    search-document table, and the seed rows removed (the source's own take their place)."""
    conn.execute(
        f"CREATE TABLE {PROGRESS} ("
        "table_name text PRIMARY KEY, "
        "position integer NOT NULL, "
        # Where the copy comes from (the SQLite file), to resume from the same one only.
        "source text NOT NULL, "
        # The key of the last row copied, as a JSON array; NULL before the first.
        "last_key text, "
        "copied bigint NOT NULL DEFAULT 0, "
        # Every row copied (a search-document table: every document rebuilt).
        "done integer NOT NULL DEFAULT 0, "
        # Every forward reference set.
        "linked integer NOT NULL DEFAULT 0, "
        # Row count and checksum, once both engines were found to agree.
        "verified_rows bigint, "
        "checksum text)")
    add_tables(conn, [*tables, *SEARCH_TABLES], source)
    for table in SEED_ROWS:
        conn.execute(f"DELETE FROM {quoted(table)}")  # noqa: S608 - a name of the schema


def add_tables(conn: Any, tables: Sequence[str], source: str) -> None:
    """A progress row for each of `tables` that has none (a newer Mainland resuming may know more)."""
    for position, table in enumerate(tables):
        conn.execute(f"INSERT INTO {PROGRESS} (table_name, position, source) VALUES (?, ?, ?) "  # noqa: S608
                     "ON CONFLICT (table_name) DO NOTHING", (table, position, source))


@dataclass(frozen=True)
class TableProgress:
    table: str
    source: str
    last_key: tuple[Any, ...] | None
    copied: int
    done: bool
    linked: bool
    verified_rows: int | None
    checksum: str | None


def progress(conn: Any) -> dict[str, TableProgress]:
    return {row[0]: TableProgress(row[0], row[1], tuple(json.loads(row[2])) if row[2] is not None else None,
                                  row[3], bool(row[4]), bool(row[5]), row[6], row[7])
            for row in conn.execute(
                "SELECT table_name, source, last_key, copied, done, linked, verified_rows, checksum "  # noqa: S608
                f"FROM {PROGRESS} ORDER BY position")}


def set_user_triggers(conn: Any, tables: Iterable[str], *, enabled: bool) -> None:
    """Turn the tables' own triggers (revisions 0002 and 0003: change numbers, webhook events, the status
    log, search documents) off or on again. The foreign keys' system triggers stay on. Allowed to the
    tables' owner, the role that migrated the database."""
    state = "ENABLE" if enabled else "DISABLE"
    for table in tables:
        conn.execute(f"ALTER TABLE {quoted(table)} {state} TRIGGER USER")


def insert_rows(conn: Any, plan: TablePlan, rows: Sequence[Sequence[Any]]) -> None:
    conn.executemany(
        f"INSERT INTO {quoted(plan.name)} ({', '.join(map(quoted, plan.columns))}) "  # noqa: S608 - names of the schema
        f"VALUES ({', '.join('?' * len(plan.columns))})", rows)


def record_copied(conn: Any, table: str, last_key: Sequence[Any] | None, rows: int, *, done: bool) -> None:
    """What a batch copied, in the batch's transaction: a kill loses the batch and its record together."""
    conn.execute(
        f"UPDATE {PROGRESS} SET last_key = coalesce(?, last_key), copied = copied + ?, done = ? "  # noqa: S608
        "WHERE table_name = ?",
        (json.dumps(list(last_key)) if last_key is not None else None, rows, int(done), table))


def set_forward(conn: Any, plan: TablePlan, rows: Sequence[Sequence[Any]]) -> None:
    """Set the forward references of the rows `forward_rows` read (setting one twice changes nothing)."""
    assignments = ", ".join(f"{quoted(f.column)} = ?" for f in plan.forward)
    match = " AND ".join(f"{quoted(c)} = ?" for c in plan.key)
    conn.executemany(f"UPDATE {quoted(plan.name)} SET {assignments} WHERE {match}", rows)  # noqa: S608


def record_linked(conn: Any, table: str) -> None:
    conn.execute(f"UPDATE {PROGRESS} SET linked = 1 WHERE table_name = ?", (table,))  # noqa: S608


def reset_sequences(conn: Any, tables: Iterable[str]) -> None:
    """The `id` sequence of each of `tables` (each has an `id` column) past its largest id, so that the
    next insert gets a fresh one: the copy wrote the ids itself, which leaves a sequence where it was.
    (As SQLite does without AUTOINCREMENT, which Mainland's tables do not use: the largest id plus one.)"""
    for table in tables:
        sequence = conn.execute("SELECT pg_get_serial_sequence(?, 'id')", (quoted(table),)).fetchone()[0]
        if sequence is not None:
            conn.execute("SELECT setval(CAST(? AS regclass), "  # noqa: S608 - a name of the schema
                         f"coalesce((SELECT max(id) FROM {quoted(table)}), 0) + 1, false)", (sequence,))


def record_documents(conn: Any) -> None:
    """The search documents were rebuilt (inbox/store/pg_search.py `rebuild_documents`)."""
    conn.execute(f"UPDATE {PROGRESS} SET done = 1 WHERE table_name IN ({', '.join('?' * len(SEARCH_TABLES))})",  # noqa: S608
                 SEARCH_TABLES)


def record_verified(conn: Any, table: str, rows: int, checksum: str) -> None:
    conn.execute(f"UPDATE {PROGRESS} SET verified_rows = ?, checksum = ? WHERE table_name = ?",  # noqa: S608
                 (rows, checksum, table))


def finish(conn: Any) -> None:
    """The copy is whole and verified: its progress table goes."""
    conn.execute(f"DROP TABLE {PROGRESS}")


def gather_statistics(conn: Any) -> None:
    """The planner's statistics for every table, and the visibility map, at once. Autovacuum would
    do both some time after a bulk copy; until then the planner guesses (a page that takes
    milliseconds took tens, measured with bench/web.py), and an index-only scan (a conversation's
    message count) still reads every row from the table. Not in a transaction: VACUUM cannot be."""
    conn.execute("VACUUM (ANALYZE)")
