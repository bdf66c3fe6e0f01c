"""PostgreSQL under the store's SQL: a psycopg 3 connection with the part of sqlite3's API the store uses (#17).

The store's statements are written once, in SQL both engines read (`coalesce`, `ON CONFLICT`,
`lower()`...). What SQLite spells its own way is translated here, once per distinct statement
(`translate`, cached): `?` and `:name` placeholders, `INSERT OR IGNORE`, `ifnull`, `instr`,
`group_concat`, the two-argument `max`/`min`, `LIKE` (case-blind in SQLite: `ILIKE` here), and
the `id` SQLite hands back as `lastrowid` (`RETURNING id` here). A statement that needs more than
that (search, PRAGMAs) goes to a per-engine verb instead, and an untranslatable spelling raises
at once rather than running with another meaning.

Values keep SQLite's looseness where the store relies on it: an integer parameter is sent with no
declared type, so PostgreSQL reads it as the column it meets (a number compared with a TEXT
column, as SQLite's affinity does), True and False are sent as 1 and 0 (flags are integers), and
`numeric` results (sum, avg) come back as int or float, not Decimal.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import postgres
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus

#: The advisory lock every write transaction takes first: writers take turns, as SQLite's one
#: writer does, until a concern is shown safe with row locks of its own (#17).
WRITE_LOCK = 0x6D61696E6C776C6B


class StatementError(Exception):
    """A statement uses SQLite's own spelling that has no translation; write it portably."""


class _UntypedInt(Dumper):
    """An int (or bool) as text with no declared type: PostgreSQL takes the type of what it meets."""

    oid = 0

    def dump(self, obj: int) -> bytes:
        return b"%d" % obj


class _NumericAsNumber(Loader):
    """`numeric` (what sum() and avg() of integers give) as int when whole, else float."""

    def load(self, data: bytes | bytearray | memoryview) -> int | float:
        text = bytes(data)
        try:
            return int(text)
        except ValueError:  # a fraction, NaN or Infinity
            return float(text)


@dataclass(frozen=True, slots=True)
class Translated:
    sql: str
    #: The statement was given `RETURNING id` so that the cursor has a `lastrowid`.
    returns_id: bool


_LITERAL = re.compile(r"'(?:[^']|'')*'")
_MASK = "\x00{}\x00"
_MASKED = re.compile(r"\x00(\d+)\x00")


def _close_paren(sql: str, opening: int) -> int:
    depth = 0
    for at in range(opening, len(sql)):
        if sql[at] == "(":
            depth += 1
        elif sql[at] == ")":
            depth -= 1
            if depth == 0:
                return at
    raise StatementError(f"unbalanced parentheses: {sql!r}")


def _top_level_commas(sql: str, opening: int, closing: int) -> list[int]:
    depth, commas = 0, []
    for at in range(opening + 1, closing):
        depth += {"(": 1, ")": -1}.get(sql[at], 0)
        if sql[at] == "," and depth == 0:
            commas.append(at)
    return commas


def _rewrite_calls(sql: str, name: str, rewrite: Any) -> str:
    """Rewrite each call `name(...)` (innermost last) with `rewrite(args) -> str | None`."""
    pattern = re.compile(rf"\b{name}\s*\(", re.IGNORECASE)
    start = 0
    while match := pattern.search(sql, start):
        opening = match.end() - 1
        closing = _close_paren(sql, opening)
        commas = _top_level_commas(sql, opening, closing)
        bounds = [opening, *commas, closing]
        args = [sql[bounds[i] + 1:bounds[i + 1]].strip() for i in range(len(bounds) - 1)]
        replacement = rewrite(args)
        if replacement is None:
            start = match.end()
            continue
        sql = sql[:match.start()] + replacement + sql[closing + 1:]
        start = match.start() + 1
    return sql


def _group_concat(args: list[str]) -> str:
    separator = args[1] if len(args) > 1 else "','"
    distinct = re.match(r"DISTINCT\s+", args[0], re.IGNORECASE)
    value = args[0][distinct.end():] if distinct else args[0]
    return f"string_agg({'DISTINCT ' if distinct else ''}({value})::text, {separator})"


def _json_extract(args: list[str], literals: list[str]) -> str:
    """`json_extract(doc, '$.key')` as `(doc)::jsonb ->> 'key'` (a top-level key only)."""
    path = _MASKED.fullmatch(args[1]) if len(args) == 2 else None
    key = re.fullmatch(r"'\$\.(\w+)'", literals[int(path.group(1))]) if path else None
    if key is None:
        raise StatementError(f"json_extract with a path other than '$.key' has no translation: {args}")
    return f"(({args[0]})::jsonb ->> '{key.group(1)}')"


_UNARY_PLUS = re.compile(r"\+(?=\s*[A-Za-z_])")
_KEYWORDS_BEFORE_AN_OPERAND = frozenset({"AND", "OR", "NOT", "WHEN", "THEN", "ELSE", "WHERE", "SELECT", "ON", "BY",
                                         "IN", "IS", "HAVING", "RETURNING", "SET"})


def _is_unary(text: str, at: int) -> bool:
    """Whether the + at text[at] has no operand before it (so it is a sign, not an addition)."""
    before = text[:at].rstrip()
    if not before or before[-1] in "(,=<>!":
        return True
    word = re.search(r"(\w+)$", before)
    return bool(word) and word.group(1).upper() in _KEYWORDS_BEFORE_AN_OPERAND


@functools.lru_cache(maxsize=4096)
def translate(sql: str, *, named: bool, id_tables: frozenset[str]) -> Translated:
    """SQLite's spelling of `sql` in PostgreSQL's (see the module's docstring)."""
    literals: list[str] = []

    def mask(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return _MASK.format(len(literals) - 1)

    text = _LITERAL.sub(mask, sql)
    if re.search(r"\bCOLLATE\s+NOCASE\b|\bINSERT\s+OR\s+REPLACE\b|\bPRAGMA\b|\bGLOB\b|\bMATCH\b", text,
                 re.IGNORECASE):
        raise StatementError(f"SQLite's own SQL with no PostgreSQL translation (write it portably): {sql}")
    ignore = re.search(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", text, re.IGNORECASE)
    if ignore:
        text = text[:ignore.start()] + "INSERT INTO" + text[ignore.end():]
    # SQLite's IS compares any two values, NULL included: PostgreSQL's IS [NOT] DISTINCT FROM.
    text = re.sub(r"\bIS\s+NOT\s+(?!NULL\b|DISTINCT\b|TRUE\b|FALSE\b)", "IS DISTINCT FROM ", text, flags=re.IGNORECASE)
    text = re.sub(r"\bIS\s+(?!NOT\b|NULL\b|DISTINCT\b|TRUE\b|FALSE\b)", "IS NOT DISTINCT FROM ", text,
                  flags=re.IGNORECASE)
    # SQLite's unary plus on a column (`+c.channel`) keeps its planner off that column's index; on
    # PostgreSQL it means nothing (and is no text operator): dropped.
    text = _UNARY_PLUS.sub(lambda m: "" if _is_unary(text, m.start()) else m.group(0), text)
    text = re.sub(r"\bifnull\s*\(", "coalesce(", text, flags=re.IGNORECASE)
    text = re.sub(r"\binstr\s*\(", "strpos(", text, flags=re.IGNORECASE)
    text = re.sub(r"\bINDEXED\s+BY\s+\w+", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\bLIMIT\s+-1\b", "LIMIT ALL", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(NOT\s+)?LIKE\b", lambda m: (m.group(1) or "") + "ILIKE", text, flags=re.IGNORECASE)
    text = _rewrite_calls(text, "group_concat", _group_concat)
    text = _rewrite_calls(text, "json_extract", lambda args: _json_extract(args, literals))
    text = _rewrite_calls(text, "json_each", lambda args: f"jsonb_array_elements_text(({args[0]})::jsonb)")
    for sqlite_name, pg_name in (("max", "greatest"), ("min", "least")):
        text = _rewrite_calls(text, sqlite_name,
                              lambda args, pg_name=pg_name: f"{pg_name}({', '.join(args)})" if len(args) > 1 else None)
    text = text.rstrip().rstrip(";")
    returning = re.search(r"\bRETURNING\b", text, re.IGNORECASE)
    if ignore:
        at = returning.start() if returning else len(text)
        text = text[:at].rstrip() + " ON CONFLICT DO NOTHING" + (" " + text[at:] if returning else "")
    returns_id = False
    insert = re.match(r"\s*INSERT\s+INTO\s+(\w+)", text, re.IGNORECASE)
    if insert and not returning and insert.group(1).lower() in id_tables:
        text += " RETURNING id"
        returns_id = True
    # A parameter only tested for NULL gives PostgreSQL no type to read it as: any value reads as text.
    text = re.sub(r"\?(\s+IS\s+(?:NOT\s+)?NULL\b)", r"CAST(? AS TEXT)\1", text, flags=re.IGNORECASE)
    text = text.replace("%", "%%")
    text = text.replace("?", "%s")
    if named:
        text = re.sub(r"(?<!:):([A-Za-z_]\w*)", r"%(\1)s", text)
    text = _MASKED.sub(lambda m: literals[int(m.group(1))].replace("%", "%%"), text)
    return Translated(text, returns_id)


class PgCursor:
    """A finished statement, read as sqlite3's cursor is (a statement with no rows reads as empty)."""

    __slots__ = ("_cursor", "lastrowid")

    def __init__(self, cursor: psycopg.Cursor, returns_id: bool) -> None:
        self._cursor = cursor
        self.lastrowid: int | None = None
        if returns_id:
            ids = cursor.fetchall()
            self.lastrowid = ids[-1][0] if ids else None

    @property
    def description(self) -> Sequence[Any] | None:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        return self._cursor.fetchmany(size) if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PgConnection:
    """One PostgreSQL session in autocommit, transactions begun and ended by the store as with SQLite."""

    def __init__(self, url: str, *, id_tables: Iterable[str]) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.adapters.register_dumper(int, _UntypedInt)
        self._conn.adapters.register_dumper(bool, _UntypedInt)
        self._conn.adapters.register_loader(postgres.types["numeric"].oid, _NumericAsNumber)
        self._id_tables = frozenset(name.lower() for name in id_tables)
        self._trace: Callable[[str], object] | None = None

    def set_trace_callback(self, trace: Callable[[str], object] | None) -> None:
        """Call `trace` with each statement as the store wrote it, as sqlite3's does (tests count them)."""
        self._trace = trace

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> PgCursor:
        named = isinstance(params, Mapping)
        translated = translate(sql, named=named, id_tables=self._id_tables)
        if self._trace is not None:
            self._trace(sql)
        cursor = self._conn.cursor()
        cursor.execute(translated.sql, params if named else tuple(params))
        return PgCursor(cursor, translated.returns_id)

    def executemany(self, sql: str, seq_of_params: Iterable[Sequence[Any] | Mapping[str, Any]]) -> PgCursor:
        rows = list(seq_of_params)
        named = bool(rows) and isinstance(rows[0], Mapping)
        translated = translate(sql, named=named, id_tables=self._id_tables)
        if self._trace is not None:
            for _ in rows:
                self._trace(sql)
        cursor = self._conn.cursor()
        cursor.executemany(translated.sql.removesuffix(" RETURNING id") if translated.returns_id else translated.sql,
                           rows if named else [tuple(row) for row in rows])
        return PgCursor(cursor, False)

    def begin_write(self) -> None:
        """Begin a write transaction, after this installation's other writers (`WRITE_LOCK`)."""
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def rollback(self) -> None:
        """End the transaction this session is in, if any; nothing on a connection the server dropped
        (the caller closes it, as the web's pool does with one left in a transaction)."""
        if not self._conn.broken and not self._conn.closed and self.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()
