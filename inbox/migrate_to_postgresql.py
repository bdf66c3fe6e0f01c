"""`mainland migrate-to-postgresql URL` (#17): this installation's SQLite database copied into a PostgreSQL
database, resumable, verified by counts and checksums per table, attachments included.

What it does, in order (the SQL is inbox/store/pg_copy.py's):

1. **The target.** It must be empty, or hold an unfinished copy of this same SQLite file (its progress
   table, `mainland_copy_progress`, says so): then the copy resumes. A database with Mainland data of
   any other origin is refused before anything is written to it. The target is migrated to the newest
   revision (`Store.migrate`), and the copy's first transaction makes the progress table and removes
   the rows every new database starts with (the source's own take their place).
2. **Triggers off.** Revisions 0002 and 0003 keep change numbers, webhook events, the status log and the
   search documents with triggers; rows copied with them on would invent events and log lines that never
   happened. They are turned off on every table (`DISABLE TRIGGER USER`) for the copy and on again at the
   end, also after a failure (a killed process leaves them off: the next run turns them off and on again).
3. **Rows.** Table by table in foreign-key order (`schema.metadata.sorted_tables`), each in key order, in
   batches; each batch is one transaction together with its progress row (the last key copied), so a kill
   at any moment loses nothing and copies nothing twice when the command runs again. Values go as SQLite
   holds them (text, integers, floats, bytes, NULL).
4. **Forward references.** A foreign key that points at a row not copied yet would fail: the tables'
   order puts every referred table first except a table referring to itself (customers.merged_into,
   conversations.merged_into, webhook_deliveries.replay_of) or, should the schema gain one, a cycle of
   tables. A reference to an earlier row of the same table (a smaller key: copied already, or earlier in
   the same batch) is inserted as it is; one to a later row (a conversation merged into a newer one), and
   any reference to a table copied later, is NULL at first and set once every table is copied. (Leaving
   every self-reference NULL at first would break `webhook_deliveries_once`, a unique index of the
   deliveries that are not replays: a replay would look like a second original.)
5. **Afterwards.** Each `id` sequence is set past the largest id, the triggers are on again, and every
   search document is written anew from its row (`pg_search.rebuild_documents`).
6. **Verification.** Every table is read again from both databases in key order (text in code-point
   order on both): its row count, and a SHA-256 of a canonical text of every value (`canonical_row`),
   must be the same. A table that agrees is marked verified; one that does not is reported, and the
   command ends with an error.
7. **Attachments.** Their files (in `attachments_dir`, named by their SHA-256) are not in the database:
   every file an attachment row names must be there with the right content, and `--attachments-to DIR`
   copies them into DIR (the folder every node of a larger installation mounts), each copy checked.
   Missing or damaged files are counted and the first few named.

Only when the tables and the files are all right is the progress table dropped: the copy is finished, and
the command refuses the database from then on (it holds Mainland data).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from inbox.attachments import AttachmentStore
from inbox.store import Store, pg_copy, pg_search
from inbox.store.pg_copy import TablePlan
from inbox.store.schema import metadata

log = logging.getLogger("mainland.migrate_to_postgresql")

#: Rows a batch copies in one transaction.
DEFAULT_BATCH_ROWS = 1000
#: How many missing or damaged files, or mismatched tables, are named (all are counted).
SHOWN_PROBLEMS = 5
_CHUNK = 1 << 20


class CopyRefused(Exception):
    """The target cannot take this copy; the message says what to do. Nothing was written to it."""


class CopyFailed(Exception):
    """The copy stopped; what was copied so far stays, and the same command continues it."""


class Progress:
    """What the copy tells while it works (the command shows it with tqdm); by default nothing."""

    def note(self, text: str) -> None:
        """Something worth a line of its own (resuming, a stage done)."""

    def stage(self, name: str, total: int, done: int = 0) -> None:
        """A stage begins: `total` units (rows, files), `done` of them before this run."""

    def advance(self, count: int) -> None:
        """`count` more units of the current stage are done."""


@dataclass(frozen=True)
class TableCheck:
    """One table's rows and checksum on each engine."""

    table: str
    source_rows: int
    source_checksum: str
    target_rows: int
    target_checksum: str

    @property
    def ok(self) -> bool:
        return (self.source_rows, self.source_checksum) == (self.target_rows, self.target_checksum)


@dataclass
class AttachmentCheck:
    """The attachment files the database names: how many, which are missing or damaged, how many copied."""

    folder: Path
    files: int = 0
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    #: Where they were copied (`--attachments-to`), and how many were written there by this run.
    copied_to: Path | None = None
    copied: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.damaged


@dataclass
class CopyReport:
    target: str
    resumed: bool
    tables: list[TableCheck] = field(default_factory=list)
    attachments: AttachmentCheck | None = None
    #: The copy is whole and verified, and its progress table was dropped.
    finished: bool = False

    @property
    def mismatched(self) -> list[TableCheck]:
        return [check for check in self.tables if not check.ok]

    @property
    def rows(self) -> int:
        return sum(check.source_rows for check in self.tables)


# Checksums ------------------------------------------------------------------------------------------------

def canonical(value: Any) -> str:
    """One value as text, the same whichever engine it was read from: its kind and its value (a string
    with its length, so that no value can pass for two), bytes as hex, a float as `repr` gives it
    (the shortest text that reads back as the same double)."""
    if value is None:
        return "n"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return f"f{value!r}"
    if isinstance(value, str):
        return f"s{len(value)}:{value}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"b{bytes(value).hex()}"
    raise TypeError(f"no canonical text for a {type(value).__name__}")


def canonical_row(row: Sequence[Any]) -> bytes:
    return ("\t".join(canonical(value) for value in row) + "\n").encode("utf-8", "surrogatepass")


def table_checksum(conn: Any, plan: TablePlan, *, collate_c: bool = False, batch_rows: int = DEFAULT_BATCH_ROWS,
                   progress: Progress | None = None) -> tuple[int, str]:
    """The table's row count and the SHA-256 of its rows in key order (`canonical_row`); `collate_c` as
    `pg_copy.read_rows` takes it."""
    digest = hashlib.sha256()
    rows = 0
    after = None
    while True:
        batch = pg_copy.read_rows(conn, plan, after, batch_rows if plan.keyed else None, collate_c=collate_c)
        for row in batch:
            digest.update(canonical_row(row))
        rows += len(batch)
        if progress:
            progress.advance(len(batch))
        if not plan.keyed or len(batch) < batch_rows:
            return rows, digest.hexdigest()
        after = plan.key_of(batch[-1])


# The copy -----------------------------------------------------------------------------------------------

def migrate_to_postgresql(source: Store, url: str, *, attachments_dir: Path, attachments_to: Path | None = None,
                          batch_rows: int = DEFAULT_BATCH_ROWS, progress: Progress | None = None) -> CopyReport:
    """Copy `source` (a SQLite store, migrated) into the PostgreSQL database at `url` (see the module's
    docstring). Raises CopyRefused for a target it must not touch, CopyFailed when a row is refused."""
    if source.engine != "sqlite":
        raise CopyRefused("the copy reads a SQLite database; this installation's database is already PostgreSQL")
    progress = progress or Progress()
    origin = str(Path(source.path).resolve())
    plans = pg_copy.plan_tables(metadata)
    target = Store(url)
    try:
        if not pg_copy.try_lock(target.conn):
            raise CopyRefused(f"another migrate-to-postgresql is copying into {target.path} right now; "
                              "wait for it to end")
        try:
            return _migrate(source, target, origin, plans, attachments_dir=attachments_dir,
                            attachments_to=attachments_to, batch_rows=batch_rows, progress=progress)
        finally:
            with contextlib.suppress(Exception):
                pg_copy.unlock(target.conn)
    finally:
        target.close()


def _migrate(source: Store, target: Store, origin: str, plans: list[TablePlan], *, attachments_dir: Path,
             attachments_to: Path | None, batch_rows: int, progress: Progress) -> CopyReport:
    names = [plan.name for plan in plans]
    resumed = pg_copy.progress_exists(target.conn)
    if resumed:
        sources = {state.source for state in pg_copy.progress(target.conn).values()}
        if sources != {origin}:
            raise CopyRefused(
                f"{target.path} holds an unfinished copy of {', '.join(sorted(sources))}, not of {origin}: run "
                "the command with that installation's configuration, or drop the database, create it again "
                "(empty) and run it again")
    else:
        holding = pg_copy.tables_holding_data(target.conn, names)
        if holding:
            shown = ", ".join(holding[:SHOWN_PROBLEMS]) + (", ..." if len(holding) > SHOWN_PROBLEMS else "")
            raise CopyRefused(
                f"{target.path} already holds Mainland data ({len(holding)} table(s) with rows: {shown}), "
                "and not from an unfinished migrate-to-postgresql: nothing was copied. Give an empty "
                "database (`createdb` a new one), or drop this one and create it again if its data is not needed")
    applied = target.migrate()
    if applied:
        progress.note(f"migrated {target.path}: {', '.join(applied)}")
    with target.write():
        if resumed:
            pg_copy.add_tables(target.conn, [*names, *pg_search.SEARCH_TABLES], origin)
        else:
            pg_copy.begin_copy(target.conn, names, origin)
    states = pg_copy.progress(target.conn)
    report = CopyReport(target=target.path, resumed=resumed)

    totals = {plan.name: pg_copy.count_rows(source.conn, plan.name) for plan in plans}
    copied = sum(min(states[name].copied, totals[name]) for name in names)
    if resumed:
        progress.note(f"resuming the unfinished copy into {target.path}: {copied:,} of {sum(totals.values()):,} "
                      "rows were copied before")
    _copy_rows(source, target, plans, states, totals, batch_rows, progress)

    states = pg_copy.progress(target.conn)
    if not all(states[name].done for name in pg_search.SEARCH_TABLES):
        progress.note("writing the search documents")
        with target.write():
            pg_search.rebuild_documents(target.conn)
            pg_copy.record_documents(target.conn)

    report.tables = _verify(source, target, plans, pg_copy.progress(target.conn), batch_rows, progress)
    if report.mismatched:
        return report
    report.attachments = check_attachments(source, attachments_dir, attachments_to, progress)
    if report.attachments.ok:
        with target.write():
            pg_copy.finish(target.conn)
        progress.note("gathering the planner's statistics")
        pg_copy.gather_statistics(target.conn)
        report.finished = True
    return report


def _copy_rows(source: Store, target: Store, plans: list[TablePlan], states: dict[str, pg_copy.TableProgress],
               totals: dict[str, int], batch_rows: int, progress: Progress) -> None:
    """Steps 2 to 5 of the module's docstring: the triggers are on again however this ends."""
    names = [plan.name for plan in plans]
    with target.write():
        pg_copy.set_user_triggers(target.conn, names, enabled=False)
    try:
        progress.stage("copying", sum(totals.values()),
                       sum(min(states[name].copied, totals[name]) for name in names))
        for plan in plans:
            _copy_table(source, target, plan, states[plan.name], batch_rows, progress)
        for plan in plans:
            if plan.forward and not states[plan.name].linked:
                _link_table(source, target, plan, batch_rows)
        with target.write():
            pg_copy.reset_sequences(target.conn, [plan.name for plan in plans if "id" in plan.columns])
    except BaseException:
        try:
            with target.write():
                pg_copy.set_user_triggers(target.conn, names, enabled=True)
        except Exception:
            log.exception("the triggers could not be turned on again; the next run of the copy does it")
        raise
    with target.write():
        pg_copy.set_user_triggers(target.conn, names, enabled=True)


def _held_back(plan: TablePlan) -> list[tuple[int, int | None]]:
    """(column index, key index or None) of each forward reference: NULL where it points past the row's
    own key (key index given), or always (None)."""
    return [(plan.columns.index(f.column), plan.columns.index(plan.key[0]) if f.own_key else None)
            for f in plan.forward]


def _copyable(row: tuple[Any, ...], held: list[tuple[int, int | None]]) -> tuple[Any, ...]:
    if not held:
        return row
    values = list(row)
    for column, key in held:
        value = values[column]
        if value is not None and (key is None or value > values[key]):
            values[column] = None
    return tuple(values)


def _copy_table(source: Store, target: Store, plan: TablePlan, state: pg_copy.TableProgress, batch_rows: int,
                progress: Progress) -> None:
    if state.done:
        return
    held = _held_back(plan)
    after = state.last_key
    while True:
        rows = pg_copy.read_rows(source.conn, plan, after, batch_rows if plan.keyed else None)
        done = not plan.keyed or len(rows) < batch_rows
        last = plan.key_of(rows[-1]) if rows and plan.keyed else None
        try:
            with target.write():
                if rows:
                    pg_copy.insert_rows(target.conn, plan, [_copyable(row, held) for row in rows])
                pg_copy.record_copied(target.conn, plan.name, last, len(rows), done=done)
        except psycopg.Error as exc:
            where = f"after key {list(after)}" if after is not None else "from its first row"
            raise CopyFailed(f"PostgreSQL refused a row of {plan.name} ({len(rows)} rows {where}): "
                             f"{str(exc).strip()}") from exc
        progress.advance(len(rows))
        if done:
            return
        after = last


def _link_table(source: Store, target: Store, plan: TablePlan, batch_rows: int) -> None:
    after = None
    while True:
        rows = pg_copy.forward_rows(source.conn, plan, after, batch_rows)
        with target.write():
            if rows:
                pg_copy.set_forward(target.conn, plan, rows)
            if len(rows) < batch_rows:
                pg_copy.record_linked(target.conn, plan.name)
        if len(rows) < batch_rows:
            return
        after = rows[-1][len(plan.forward):]


def _verify(source: Store, target: Store, plans: list[TablePlan], states: dict[str, pg_copy.TableProgress],
            batch_rows: int, progress: Progress) -> list[TableCheck]:
    waiting = [plan for plan in plans if states[plan.name].checksum is None]
    collate_c = not pg_copy.sorts_text_by_code_point(target.conn)
    progress.stage("verifying", 2 * sum(pg_copy.count_rows(source.conn, plan.name) for plan in waiting))
    checks = []
    for plan in plans:
        state = states[plan.name]
        if state.checksum is not None:
            checks.append(TableCheck(plan.name, state.verified_rows, state.checksum, state.verified_rows,
                                     state.checksum))
            continue
        check = TableCheck(plan.name,
                           *table_checksum(source.conn, plan, batch_rows=batch_rows, progress=progress),
                           *table_checksum(target.conn, plan, collate_c=collate_c, batch_rows=batch_rows,
                                           progress=progress))
        if check.ok:
            with target.write():
                pg_copy.record_verified(target.conn, plan.name, check.source_rows, check.source_checksum)
        checks.append(check)
    return checks


# Attachments -------------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_attachments(source: Store, folder: Path, copy_to: Path | None = None,
                      progress: Progress | None = None) -> AttachmentCheck:
    """Every attachment file `source` names must be in `folder` with its SHA-256; with `copy_to`, each is
    copied there too (written beside its place, checked, then renamed into it; one already there with the
    right content is kept)."""
    progress = progress or Progress()
    files = pg_copy.attachment_files(source.conn)
    check = AttachmentCheck(folder=Path(folder), files=len(files), copied_to=copy_to)
    files_in = AttachmentStore(folder)
    destination = AttachmentStore(copy_to) if copy_to is not None else None
    progress.stage("attachments", len(files))
    for digest, named_by in files:
        try:
            path = files_in.path_for(digest)
        except ValueError:
            check.damaged.append(f"{digest!r}, named by {named_by}, is not a SHA-256")
            progress.advance(1)
            continue
        if not path.is_file():
            check.missing.append(f"{path} ({named_by})")
        elif file_sha256(path) != digest:
            check.damaged.append(f"{path} ({named_by}): its content is not what its name says")
        elif destination is not None and _copy_file(path, destination, digest):
            check.copied += 1
        progress.advance(1)
    return check


def _copy_file(path: Path, destination: AttachmentStore, digest: str) -> bool:
    """Copy the file into `destination`; False when a right copy was there already."""
    target = destination.path_for(digest)
    if target.is_file() and file_sha256(target) == digest:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    # ".tmp-": the name AttachmentStore gives a file being written (the worker removes one left behind).
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as original:
            shutil.copyfileobj(original, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        if file_sha256(Path(temporary)) != digest:
            raise CopyFailed(f"the copy of {path} in {target.parent} does not read back as written: "
                             "check the disk of the attachments' new folder")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
