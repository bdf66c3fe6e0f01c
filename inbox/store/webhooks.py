"""Store verbs for webhook deliveries: which events were already taken in, and which were refused.

Providers redeliver a webhook until they get a 2xx (Telegram after a failure, Meta for about
7 days), so each delivery's event id is recorded in the same transaction as the items it
carried: a redelivery finds it and is answered without storing anything twice. Refused
deliveries (a bad signature or secret) are counted per channel, so that a secret rotated on one
side only shows up on the health page instead of failing silently.
"""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dicts


class WebhookQueries:
    conn: Any

    def webhook_event_seen(self, channel: str, event_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM webhook_events WHERE channel = ? AND event_id = ?", (channel, event_id)
        ).fetchone()
        return row is not None

    def record_webhook_event(self, channel: str, event_id: str, now: str) -> bool:
        """Remember a delivery; False when it was already recorded (a redelivery, or a concurrent one)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO webhook_events (channel, event_id, received_at) VALUES (?, ?, ?)",
            (channel, event_id, now),
        )
        return cur.rowcount == 1

    def forget_webhook_events(self, before: str) -> int:
        """Drop event ids received before `before` (older than any provider still retries)."""
        return self.conn.execute("DELETE FROM webhook_events WHERE received_at < ?", (before,)).rowcount

    def record_webhook_refusal(self, channel: str, now: str, *, remote_addr: str | None, reason: str,
                               keep_after: str) -> None:
        """Count a refused delivery: one row per channel, address and minute holds the count, the
        latest time and reason. Refusals older than `keep_after` are dropped on the way."""
        self.conn.execute(
            "INSERT INTO webhook_refusals (channel, at, remote_addr, reason, count, minute) VALUES (?, ?, ?, ?, 1, ?) "
            "ON CONFLICT (channel, remote_addr, minute) DO UPDATE SET count = webhook_refusals.count + 1, at = excluded.at, "
            "reason = excluded.reason",
            (channel, now, remote_addr or "", reason[:300], now[:16]),
        )
        self.conn.execute("DELETE FROM webhook_refusals WHERE at < ?", (keep_after,))

    def webhook_refusals(self, channel: str | None = None, *, since: str | None = None,
                         limit: int = 100) -> list[dict[str, Any]]:
        """Refused deliveries, newest first, one row per channel, address and minute with its `count`
        (for the health page and `mainland stats`)."""
        return as_dicts(self.conn.execute(
            "SELECT channel, at, nullif(remote_addr, '') AS remote_addr, reason, count FROM webhook_refusals "
            "WHERE (? IS NULL OR channel = ?) AND (? IS NULL OR at >= ?) ORDER BY at DESC, id DESC LIMIT ?",
            (channel, channel, since, since, limit),
        ))
