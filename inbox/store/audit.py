"""The audit log as admins read it: `store.audit_log`, filtered, newest first, keyset-paged, and
streamed for export, rows as `AuditEntry`.

Every page is `ORDER BY id DESC LIMIT n` below an id (never OFFSET), so page 20,000 of a million rows
costs what page 1 costs. Each filter has an index whose entries end in the row id (m021), so a filter
plus the ordering is one index range, read backwards.

The log is written all over the code base with `store.audit(...)` (inbox/store/ingest.py); this
concern reads it, and writes the one line that needs a look first (`record_view`). A concern in the
shape #17 asks for: an object the store holds (`store.audit_log`; `store.audit` is the writer) with
typed rows at its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.store.base import iso

if TYPE_CHECKING:
    from inbox.store import Store

#: Rows on one page of /admin/audit.
AUDIT_PAGE = 50
#: Rows read per query while streaming an export.
EXPORT_CHUNK = 1000
#: A view of a customer's record is written at most once per agent and customer in this window.
VIEW_AUDIT_WINDOW = dt.timedelta(hours=1)

_COLUMNS = "id, at, actor, action, object_type, object_id, details"


@dataclass(frozen=True)
class AuditFilter:
    """What /admin/audit narrows the log to; None means "any". Dates are UTC days, both inclusive."""

    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    day_from: dt.date | None = None
    day_to: dt.date | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column in ("actor", "action", "object_type", "object_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.day_from is not None:
            clauses.append("at >= ?")
            params.append(iso(dt.datetime.combine(self.day_from, dt.time(), dt.UTC)))
        if self.day_to is not None:
            clauses.append("at < ?")
            params.append(iso(dt.datetime.combine(self.day_to + dt.timedelta(days=1), dt.time(), dt.UTC)))
        return " AND ".join(clauses) or "1 = 1", params


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the log as written; `details` is its JSON text (an object, `{}` when none)."""

    id: int
    at: str
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    details: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> AuditEntry:
        return cls(*row)


class AuditLog:
    """`store.audit_log`: the audit log read (and a view recorded) on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def page(self, criteria: AuditFilter, *, before: int | None = None,
             limit: int = AUDIT_PAGE) -> list[AuditEntry]:
        """Up to `limit` entries matching `criteria` with an id below `before`, newest first."""
        where, params = criteria.where()
        if before is not None:
            where += " AND id < ?"
            params.append(before)
        return [AuditEntry.from_row(row) for row in self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM audit_log "  # noqa: S608
            f"WHERE {where} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()]

    def page_plan(self, criteria: AuditFilter) -> str:
        """The engine's query plan for a page of `criteria` (tests check it reads an index, not the table)."""
        where, params = criteria.where()
        sqlite = self._store.engine == "sqlite"
        explain = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN"
        rows = self._store.conn.execute(
            f"{explain} SELECT id FROM audit_log "  # noqa: S608
            f"WHERE {where} AND id < ? ORDER BY id DESC LIMIT ?", (*params, 1 << 62, AUDIT_PAGE))
        return "\n".join(r[3] if sqlite else r[0] for r in rows)

    def rows(self, criteria: AuditFilter) -> Iterator[AuditEntry]:
        """Every entry matching `criteria`, newest first, read in chunks (no cursor held across them)."""
        before = None
        while True:
            chunk = self.page(criteria, before=before, limit=EXPORT_CHUNK)
            yield from chunk
            if len(chunk) < EXPORT_CHUNK:
                return
            before = chunk[-1].id

    def record_view(self, moment: dt.datetime, actor: str, object_type: str, object_id: int | str,
                    action: str = "customer_viewed") -> bool:
        """Write that `actor` looked at an object, unless they already did within VIEW_AUDIT_WINDOW.

        Returns whether a line was written. Reading a record is not a change, but who saw whose
        personal data must be answerable; one line an hour keeps a busy agent's log readable.
        """
        conn = self._store.conn
        args = (action, object_type, str(object_id), actor, iso(moment - VIEW_AUDIT_WINDOW))
        sql = ("SELECT 1 FROM audit_log WHERE action = ? AND object_type = ? AND object_id = ? AND actor = ? "
               "AND at > ? LIMIT 1")
        # Most views are repeats: answer those without taking the write lock; check again under it.
        if conn.execute(sql, args).fetchone():
            return False
        with self._store.write():
            if conn.execute(sql, args).fetchone():
                return False
            self._store.audit(iso(moment), actor, action, object_type, object_id)
        return True
