"""`store.quarantine`, for the quarantine pages of the admin area: a keyset-paged list (rows as
`QuarantineItem`) and deletion.

Holding, showing and releasing items stay in operations.py (the ingest path and the command line
use them); these are what the browser adds.

A concern in the shape #17 asks for: an object the store holds (`store.quarantine`) with typed rows
at its boundary, instead of a mixin of `Store` returning dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inbox.store import Store

#: Items on one page of /admin/quarantine.
QUARANTINE_PAGE = 50
#: Which items a list shows: held ones (the default), released ones, or both.
QUARANTINE_STATES = ("held", "released", "all")


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    """An item as the list shows it: without its raw bytes, but with their `size`."""

    id: int
    channel: str
    source_ref: str | None
    size: int
    reason: str
    exception: str | None
    attempts: int
    first_seen: str
    last_seen: str
    status: str
    message_id: int | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> QuarantineItem:
        return cls(*row)


class Quarantine:
    """`store.quarantine`: the items listed and deleted, on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def page(self, *, channel: str | None = None, status: str = "held", before: int | None = None,
             limit: int = QUARANTINE_PAGE) -> list[QuarantineItem]:
        """Items without their raw bytes (but with their size), newest first, below id `before`."""
        where, params = [], []
        if status != "all":
            where.append("status = ?")
            params.append(status)
        if channel:
            where.append("channel = ?")
            params.append(channel)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = ("SELECT id, channel, source_ref, length(raw) AS size, reason, exception, attempts, first_seen, "
               "last_seen, status, message_id FROM quarantine")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [QuarantineItem.from_row(row) for row in self._store.conn.execute(
            sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()]

    def channels(self) -> list[str]:
        """Channels that have anything in the quarantine (the list's filter)."""
        return [r[0] for r in self._store.conn.execute("SELECT DISTINCT channel FROM quarantine ORDER BY channel")]

    def delete(self, quarantine_id: int) -> bool:
        """Remove an item and its raw bytes for good; the same bytes arriving again are held anew."""
        with self._store.write():
            return self._store.conn.execute("DELETE FROM quarantine WHERE id = ?", (quarantine_id,)).rowcount > 0
