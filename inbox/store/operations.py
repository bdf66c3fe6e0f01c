"""Store verbs for running Mainland: cursors, channel health, quarantine, leases and counts."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from inbox.store.base import NotFound, as_dict, as_dicts

if TYPE_CHECKING:
    from inbox.store.pg_lease import SessionLock


class OperationsQueries:
    conn: Any

    # Cursors ------------------------------------------------------------------------------------

    def cursor(self, channel: str) -> str | None:
        row = self.conn.execute("SELECT value FROM cursors WHERE channel = ?", (channel,)).fetchone()
        return row[0] if row else None

    def save_cursor(self, channel: str, value: str | None, now: str) -> None:
        self.conn.execute(
            "INSERT INTO cursors (channel, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (channel) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (channel, value, now),
        )

    # Channel health -----------------------------------------------------------------------------

    def record_poll(self, channel: str, now: str, *, items: int = 0, error: str | None = None,
                    paused_until: str | None = None) -> None:
        """Remember how a poll went: the health page and `mainland stats` read this."""
        self.conn.execute("INSERT OR IGNORE INTO channel_health (channel) VALUES (?)", (channel,))
        if error is None:
            self.conn.execute(
                "UPDATE channel_health SET last_poll_at = ?, last_success_at = ?, failures = 0, paused_until = NULL, "
                "items_total = items_total + ? WHERE channel = ?",
                (now, now, items, channel),
            )
        else:
            self.conn.execute(
                "UPDATE channel_health SET last_poll_at = ?, last_error = ?, last_error_at = ?, "
                "failures = failures + 1, paused_until = ? WHERE channel = ?",
                (now, error, now, paused_until, channel),
            )

    def channel_health(self) -> dict[str, dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM channel_health ORDER BY channel")
        return {row["channel"]: row for row in as_dicts(cur)}

    # Quarantine ---------------------------------------------------------------------------------

    def quarantine_put(self, channel: str, raw: bytes, reason: str, *, source_ref: str | None,
                       exception: str | None, now: str) -> int:
        """Hold raw input that could not be ingested; the same bytes again only count an attempt."""
        digest = hashlib.sha256(raw).hexdigest()
        self.conn.execute(
            "INSERT INTO quarantine (channel, source_ref, sha256, raw, reason, exception, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, sha256) DO UPDATE SET "
            "attempts = quarantine.attempts + 1, last_seen = excluded.last_seen, reason = excluded.reason, "
            "exception = excluded.exception, "
            "status = CASE WHEN quarantine.status = 'released' THEN quarantine.status ELSE 'held' END",
            (channel, source_ref, digest, raw, reason, exception, now, now),
        )
        return self.conn.execute(
            "SELECT id FROM quarantine WHERE channel = ? AND sha256 = ?", (channel, digest)
        ).fetchone()[0]

    def quarantined(self, status: str | None = "held", limit: int = 1000) -> list[dict[str, Any]]:
        """Quarantine rows without their raw bytes, newest first."""
        sql = ("SELECT id, channel, source_ref, sha256, length(raw) AS size, reason, exception, attempts, "
               "first_seen, last_seen, status, message_id FROM quarantine")
        params: tuple = ()
        if status:
            sql += " WHERE status = ?"
            params = (status,)
        cur = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return as_dicts(cur)

    def quarantine_item(self, quarantine_id: int) -> dict[str, Any]:
        cur = self.conn.execute("SELECT * FROM quarantine WHERE id = ?", (quarantine_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no quarantined item {quarantine_id}")
        return row

    def quarantine_release(self, quarantine_id: int, message_id: int | None) -> None:
        """The item was ingested after all (or found to be a duplicate)."""
        self.conn.execute(
            "UPDATE quarantine SET status = 'released', message_id = ? WHERE id = ?", (message_id, quarantine_id)
        )

    # Leases -------------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, now: str, until: str, *, take_over: bool = False) -> bool:
        """Take or renew the named lease unless someone else holds an unexpired one; with `take_over`
        (the caller holds the lease's session lock, so no one else can be leading) take it anyway."""
        cur = self.conn.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder OR leases.expires_at < ? OR ?",
            (name, holder, until, now, int(take_over)),
        )
        return cur.rowcount == 1

    def session_lock(self, name: str) -> SessionLock | None:
        """A lock the database lets go of when its holder's session ends (PostgreSQL's advisory lock,
        inbox/store/pg_lease.py), for the lease `name`; None where the engine has none (SQLite)."""
        if self.engine != "postgresql":
            return None
        from inbox.store.pg_lease import SessionLock

        return SessionLock(self.url, name)

    def release_lease(self, name: str, holder: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str, now: str) -> str | None:
        row = self.conn.execute(
            "SELECT holder FROM leases WHERE name = ? AND expires_at >= ?", (name, now)
        ).fetchone()
        return row[0] if row else None

    # Counts -------------------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """The figures an operator checks first."""
        one = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        per_channel = as_dicts(self.conn.execute(
            "SELECT channel, count(*) AS messages FROM messages GROUP BY channel ORDER BY channel"))
        return {
            "messages": one("SELECT count(*) FROM messages"),
            "conversations": one("SELECT count(*) FROM conversations"),
            "customers": one("SELECT count(*) FROM customers WHERE merged_into IS NULL"),
            "quarantined": one("SELECT count(*) FROM quarantine WHERE status = 'held'"),
            "attachments": one("SELECT count(*) FROM attachments"),
            "messages_per_channel": {r["channel"]: r["messages"] for r in per_channel},
        }
