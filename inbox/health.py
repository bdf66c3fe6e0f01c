"""Connector health: per configured channel, how its polls and webhooks are going, in one report.

`channel_report(mainland, store, now=)` gathers, for every channel in the configuration: kind,
enabled, push-only or polled, the last poll and last success (a web form's: its last message), the
last error (connectors redact secrets before an error is stored), failures in a row, paused until,
the cursor (it holds positions, never secrets), customer messages received in the last 24 hours,
the next poll (or, for a push channel, the last webhook taken in), webhook refusals in the last 24
hours and the items held in quarantine. The admin page `/admin/connectors` and the JSON `/-/connectors`
(inbox/web/health.py) show it.

A channel is *failing* while its last poll or webhook failed (`failures > 0`). It has been
failing since its last success; a channel that never succeeded has no such moment, so the time
is estimated from below: the oldest webhook refusal still kept (push channels), else one poll
interval per failure after the first (polls are never closer together than that; backoff makes
them further apart). `warnings()` lists the enabled channels failing for longer than
`health.warn_after` (default 15 minutes): every page of the inbox shows them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from inbox import clock
from inbox import config as config_module
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso, parse_iso

#: A channel failing for longer than this raises the warning, unless `health.warn_after` says otherwise.
DEFAULT_WARN_AFTER = 15 * 60.0
#: The window of the "last 24 hours" figures.
RECENT = dt.timedelta(hours=24)


@dataclass(frozen=True)
class ChannelHealth:
    """One channel's health, as the page and the JSON show it (times are stored ISO strings, UTC)."""

    name: str
    kind: str
    display_name: str
    enabled: bool
    push_only: bool
    polled: bool
    webhooks: bool
    poll_every_seconds: float | None
    last_poll_at: str | None
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None
    failures: int
    paused_until: str | None
    cursor: str | None
    cursor_updated_at: str | None
    items_24h: int
    next_poll_at: str | None
    last_webhook_at: str | None
    webhook_refusals_24h: int
    quarantined: int
    failing_since: str | None
    failing_seconds: float | None
    warning: bool

    @property
    def label(self) -> str:
        """How people call the channel: "Telegram" when named after its kind, else "support-mail (Email)"."""
        if self.name.lower() in {self.kind.lower(), self.display_name.lower()}:
            return self.display_name
        return f"{self.name} ({self.display_name.split(' (')[0]})"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["label"] = self.label
        return data


def warn_after_seconds(mainland: Mainland) -> float:
    """`health.warn_after` in seconds (checked when the configuration was loaded)."""
    section = mainland.config.extra.get("health") or {}
    value = config_module._duration(section.get("warn_after"), "health.warn_after", [])
    return value if value and value > 0 else DEFAULT_WARN_AFTER


def channel_report(mainland: Mainland, store: Store, *, now: dt.datetime | None = None,
                   counts: bool = True) -> list[ChannelHealth]:
    """The health of every configured channel, in configuration order.

    `counts=False` leaves out the figures only the health page shows (the 24-hour item and refusal
    counts read 0, cursors, last webhooks and quarantine None/0): the item count scans a day of
    messages, too slow for the warning checked on every page of a large inbox.
    """
    now = now or clock.now()
    since = iso(now - RECENT)
    warn_after = warn_after_seconds(mainland)
    health = store.channel_health()
    first_refusals = store.health.first_webhook_refusals()
    cursors = store.health.cursors() if counts else {}
    items = store.health.inbound_counts_since(since) if counts else {}
    refusals = store.health.webhook_refusal_counts_since(since) if counts else {}
    webhooks_seen = store.health.last_webhook_events() if counts else {}
    quarantined = store.health.quarantine_counts() if counts else {}
    # A web form records no polls and no webhooks: it was last used when its last message came in.
    own_pages = [name for name, channel in mainland.config.channels.items()
                 if getattr(mainland.registry.get(channel.kind), "own_endpoint", False)]
    form_used = store.health.last_inbound_at(own_pages) if counts and own_pages else {}

    report = []
    for name, channel in mainland.config.channels.items():
        cls = mainland.registry.get(channel.kind)
        display = getattr(cls, "display_name", None) or channel.kind
        push_only = bool(cls and cls.push_only)
        polled = bool(cls) and not push_only
        every = (channel.poll_every or float(cls.default_poll_every)) if polled else None
        row = health.get(name, {})
        last_success = max(filter(None, (row.get("last_success_at"), form_used.get(name))), default=None)
        failures = int(row.get("failures") or 0)
        last_poll = row.get("last_poll_at")
        paused = row.get("paused_until")

        next_poll = None
        if polled and channel.enabled:
            due = parse_iso(last_poll) + dt.timedelta(seconds=every) if last_poll else now
            paused_at = parse_iso(paused)
            next_poll = iso(max(due, paused_at) if paused_at else due)

        failing_since = None
        if failures:
            if row.get("last_success_at"):
                failing_since = parse_iso(row["last_success_at"])
            elif first_refusals.get(name):
                failing_since = parse_iso(first_refusals[name])
            elif row.get("last_error_at"):
                failing_since = parse_iso(row["last_error_at"]) - dt.timedelta(
                    seconds=(every or 0) * (failures - 1))
        failing_seconds = max(0.0, (now - failing_since).total_seconds()) if failing_since else None

        cursor = cursors.get(name)
        report.append(ChannelHealth(
            name=name, kind=channel.kind, display_name=str(display), enabled=channel.enabled,
            push_only=push_only, polled=polled,
            webhooks=bool(cls) and cls.takes_webhooks(channel.settings),
            poll_every_seconds=every, last_poll_at=last_poll, last_success_at=last_success,
            last_error=row.get("last_error"),
            last_error_at=row.get("last_error_at"), failures=failures, paused_until=paused,
            cursor=cursor.value if cursor else None, cursor_updated_at=cursor.updated_at if cursor else None,
            items_24h=items.get(name, 0), next_poll_at=next_poll, last_webhook_at=webhooks_seen.get(name),
            webhook_refusals_24h=refusals.get(name, 0), quarantined=quarantined.get(name, 0),
            failing_since=iso(failing_since) if failing_since else None, failing_seconds=failing_seconds,
            warning=bool(channel.enabled and failing_seconds is not None and failing_seconds > warn_after),
        ))
    return report


def warnings(mainland: Mainland, store: Store, *, now: dt.datetime | None = None) -> list[ChannelHealth]:
    """The enabled channels failing for longer than `health.warn_after`."""
    return [channel for channel in channel_report(mainland, store, now=now, counts=False) if channel.warning]
