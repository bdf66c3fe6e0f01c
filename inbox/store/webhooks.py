"""Inbound webhook deliveries: `store.inbound_webhooks`, which events were already taken in, and which
were refused (rows as `WebhookRefusal`).

Providers redeliver a webhook until they get a 2xx (Telegram after a failure, Meta for about
7 days), so each delivery's event id is recorded in the same transaction as the items it
carried: a redelivery finds it and is answered without storing anything twice. Refused
deliveries (a bad signature or secret) are counted per channel, so that a secret rotated on one
side only shows up on the health page instead of failing silently.

A concern in the shape #17 asks for: an object the store holds (`store.inbound_webhooks`, named so
apart from the webhooks Mainland sends, inbox/store/webhooks_out.py) with typed rows at its
boundary, instead of a mixin of `Store` returning dicts. Its writes run in the caller's write
transaction (the webhook endpoint's), as they did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inbox.store import Store


@dataclass(frozen=True, slots=True)
class WebhookRefusal:
    """Refused deliveries of one channel from one address in one minute: the latest time and reason,
    and how many (`count`). `remote_addr` is None when the address was not known."""

    channel: str
    at: str
    remote_addr: str | None
    reason: str
    count: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> WebhookRefusal:
        return cls(*row)


class InboundWebhooks:
    """`store.inbound_webhooks`: the deliveries' event ids and refusals, on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def seen(self, channel: str, event_id: str) -> bool:
        """Whether a delivery with this event id was already taken in on `channel`."""
        row = self._store.conn.execute(
            "SELECT 1 FROM webhook_events WHERE channel = ? AND event_id = ?", (channel, event_id)
        ).fetchone()
        return row is not None

    def record(self, channel: str, event_id: str, now: str) -> bool:
        """Remember a delivery; False when it was already recorded (a redelivery, or a concurrent one)."""
        cur = self._store.conn.execute(
            "INSERT OR IGNORE INTO webhook_events (channel, event_id, received_at) VALUES (?, ?, ?)",
            (channel, event_id, now),
        )
        return cur.rowcount == 1

    def forget(self, before: str) -> int:
        """Drop event ids received before `before` (older than any provider still retries)."""
        return self._store.conn.execute("DELETE FROM webhook_events WHERE received_at < ?", (before,)).rowcount

    def record_refusal(self, channel: str, now: str, *, remote_addr: str | None, reason: str,
                       keep_after: str) -> None:
        """Count a refused delivery: one row per channel, address and minute holds the count, the
        latest time and reason. Refusals older than `keep_after` are dropped on the way."""
        conn = self._store.conn
        conn.execute(
            "INSERT INTO webhook_refusals (channel, at, remote_addr, reason, count, minute) VALUES (?, ?, ?, ?, 1, ?) "
            "ON CONFLICT (channel, remote_addr, minute) DO UPDATE SET count = webhook_refusals.count + 1, at = excluded.at, "
            "reason = excluded.reason",
            (channel, now, remote_addr or "", reason[:300], now[:16]),
        )
        conn.execute("DELETE FROM webhook_refusals WHERE at < ?", (keep_after,))

    def refusals(self, channel: str | None = None, *, since: str | None = None,
                 limit: int = 100) -> list[WebhookRefusal]:
        """Refused deliveries, newest first, one row per channel, address and minute with its `count`
        (for the health page and `mainland stats`)."""
        return [WebhookRefusal.from_row(row) for row in self._store.conn.execute(
            "SELECT channel, at, nullif(remote_addr, '') AS remote_addr, reason, count FROM webhook_refusals "
            "WHERE (? IS NULL OR channel = ?) AND (? IS NULL OR at >= ?) ORDER BY at DESC, id DESC LIMIT ?",
            (channel, channel, since, since, limit),
        ).fetchall()]
