"""Store verbs for connector health: the per-channel figures the health page and `/-/connectors` show.

Each verb answers one figure for every channel at once (one query, grouped by channel), so the
page costs a handful of small queries however many channels there are. The poll outcomes
themselves (`channel_health`) and cursors are read with `OperationsQueries`.
"""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dicts


class HealthQueries:
    conn: Any

    def inbound_counts_since(self, since: str) -> dict[str, int]:
        """Customers' messages received at or after `since`, per channel."""
        rows = self.conn.execute(
            "SELECT channel, count(*) FROM messages WHERE direction = 'in' AND received_at >= ? GROUP BY channel",
            (since,),
        ).fetchall()
        return {channel: count for channel, count in rows}

    def last_inbound_at(self, channels: list[str]) -> dict[str, str]:
        """When each of `channels` last took in a customer's message (the messages the counts count)."""
        found = {}
        for channel in channels:
            row = self.conn.execute(
                "SELECT max(received_at) FROM messages WHERE channel = ? AND direction = 'in'", (channel,)
            ).fetchone()
            if row[0]:
                found[channel] = row[0]
        return found

    def webhook_refusal_counts_since(self, since: str) -> dict[str, int]:
        """Refused webhook deliveries (bad signature or secret) at or after `since`, per channel."""
        rows = self.conn.execute(
            "SELECT channel, sum(count) FROM webhook_refusals WHERE at >= ? GROUP BY channel", (since,)
        ).fetchall()
        return {channel: count for channel, count in rows}

    def first_webhook_refusals(self) -> dict[str, str]:
        """The oldest refusal still kept, per channel (when a push channel began to be refused)."""
        rows = self.conn.execute("SELECT channel, min(at) FROM webhook_refusals GROUP BY channel").fetchall()
        return {channel: at for channel, at in rows}

    def last_webhook_events(self) -> dict[str, str]:
        """When each channel last had a webhook delivery taken in."""
        rows = self.conn.execute(
            "SELECT channel, max(received_at) FROM webhook_events GROUP BY channel"
        ).fetchall()
        return {channel: at for channel, at in rows}

    def quarantine_counts(self) -> dict[str, int]:
        """Items held in quarantine (not released or deleted), per channel."""
        rows = self.conn.execute(
            "SELECT channel, count(*) FROM quarantine WHERE status = 'held' GROUP BY channel"
        ).fetchall()
        return {channel: count for channel, count in rows}

    def cursors(self) -> dict[str, dict[str, Any]]:
        """Every channel's saved cursor with the time it was saved: {channel: {value, updated_at}}."""
        rows = as_dicts(self.conn.execute("SELECT channel, value, updated_at FROM cursors"))
        return {row["channel"]: row for row in rows}
