"""Quarantined items taken in again once the cause is fixed (a parser bug, a missing setting)."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import ItemError
from inbox.mail import parse_email
from inbox.models import InboundItem
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import now_iso


@dataclass
class ReprocessResult:
    quarantine_id: int
    outcome: str  # "stored", "duplicate" or "still failing"
    detail: str = ""
    message_id: int | None = None


def _parse(mainland: Mainland, channel: str, raw: bytes, source_ref: str | None) -> InboundItem:
    if channel in mainland.config.channels:
        return mainland.connector(channel).parse_raw(raw, source_ref)
    # Items from `mainland import` belong to no configured channel: they are email.
    return parse_email(raw, channel=channel, source_ref=source_ref,
                       max_attachment_bytes=mainland.config.max_attachment_bytes)


def reprocess(mainland: Mainland, store: Store, quarantine_id: int) -> ReprocessResult:
    """Parse and ingest one quarantined item again; release it from quarantine when that works."""
    row = store.quarantine_item(quarantine_id)
    try:
        item = _parse(mainland, row["channel"], row["raw"], row["source_ref"])
    except (ItemError, NotImplementedError) as exc:
        with store.write():
            store.quarantine_put(row["channel"], row["raw"], str(exc), source_ref=row["source_ref"],
                                 exception=type(exc).__name__, now=now_iso())
        return ReprocessResult(quarantine_id, "still failing", str(exc))
    report = mainland.ingestor(store).ingest_one(row["channel"], item)
    if report.quarantined:
        return ReprocessResult(quarantine_id, "still failing", "normalization failed again")
    message_id = report.message_ids[0] if report.message_ids else None
    with store.write():
        store.quarantine_release(quarantine_id, message_id)
    return ReprocessResult(quarantine_id, "stored" if report.stored else "duplicate", message_id=message_id)
