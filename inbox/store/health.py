"""Connector health: `store.health`, the per-channel figures the health page and `/-/connectors` show.

Each verb answers one figure for every channel at once (one query, grouped by channel), so the
page costs a handful of small queries however many channels there are. The poll outcomes
themselves (`channel_health`) and single cursors are read with `OperationsQueries`.

A concern in the shape #17 asks for: an object the store holds (`store.health`) with typed rows at
its boundary (`SavedCursor`), instead of a mixin of `Store` returning dicts. The figures are plain
mappings of channel -> count or time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inbox.store import Store


@dataclass(frozen=True, slots=True)
class SavedCursor:
    """A channel's saved cursor (positions, never secrets) and when it was saved."""

    channel: str
    value: str | None
    updated_at: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> SavedCursor:
        return cls(*row)


class Health:
    """`store.health`: the health page's per-channel figures, read on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def inbound_counts_since(self, since: str) -> dict[str, int]:
        """Customers' messages received at or after `since`, per channel."""
        rows = self._store.conn.execute(
            "SELECT channel, count(*) FROM messages WHERE direction = 'in' AND received_at >= ? GROUP BY channel",
            (since,),
        ).fetchall()
        return {channel: count for channel, count in rows}

    def last_inbound_at(self, channels: list[str]) -> dict[str, str]:
        """When each of `channels` last took in a customer's message (the messages the counts count)."""
        found = {}
        for channel in channels:
            row = self._store.conn.execute(
                "SELECT max(received_at) FROM messages WHERE channel = ? AND direction = 'in'", (channel,)
            ).fetchone()
            if row[0]:
                found[channel] = row[0]
        return found

    def webhook_refusal_counts_since(self, since: str) -> dict[str, int]:
        """Refused webhook deliveries (bad signature or secret) at or after `since`, per channel."""
        rows = self._store.conn.execute(
            "SELECT channel, sum(count) FROM webhook_refusals WHERE at >= ? GROUP BY channel", (since,)
        ).fetchall()
        return {channel: count for channel, count in rows}

    def first_webhook_refusals(self) -> dict[str, str]:
        """The oldest webhook refusal still kept, per channel (when a push channel began to be refused)."""
        rows = self._store.conn.execute("SELECT channel, min(at) FROM webhook_refusals GROUP BY channel").fetchall()
        return {channel: at for channel, at in rows}

    def last_webhook_events(self) -> dict[str, str]:
        """When each channel last had a webhook delivery taken in."""
        rows = self._store.conn.execute(
            "SELECT channel, max(received_at) FROM webhook_events GROUP BY channel"
        ).fetchall()
        return {channel: at for channel, at in rows}

    def quarantine_counts(self) -> dict[str, int]:
        """Items held in quarantine (not released or deleted), per channel."""
        rows = self._store.conn.execute(
            "SELECT channel, count(*) FROM quarantine WHERE status = 'held' GROUP BY channel"
        ).fetchall()
        return {channel: count for channel, count in rows}

    def cursors(self) -> dict[str, SavedCursor]:
        """Every channel's saved cursor with the time it was saved, by channel."""
        rows = self._store.conn.execute("SELECT channel, value, updated_at FROM cursors").fetchall()
        return {row[0]: SavedCursor.from_row(row) for row in rows}
