"""Store verbs for the quarantine pages of the admin area: a keyset-paged list and deletion.

Holding, showing and releasing items stay in operations.py (the ingest path and the command line
use them); these are what the browser adds.
"""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dicts

#: Items on one page of /admin/quarantine.
QUARANTINE_PAGE = 50
#: Which items a list shows: held ones (the default), released ones, or both.
QUARANTINE_STATES = ("held", "released", "all")


class QuarantineQueries:
    def quarantine_page(self, *, channel: str | None = None, status: str = "held", before: int | None = None,
                        limit: int = QUARANTINE_PAGE) -> list[dict[str, Any]]:
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
        return as_dicts(self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)))

    def quarantine_channels(self) -> list[str]:
        """Channels that have anything in the quarantine (the list's filter)."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT channel FROM quarantine ORDER BY channel")]

    def quarantine_delete(self, quarantine_id: int) -> bool:
        """Remove an item and its raw bytes for good; the same bytes arriving again are held anew."""
        with self.write():
            return self.conn.execute("DELETE FROM quarantine WHERE id = ?", (quarantine_id,)).rowcount > 0
