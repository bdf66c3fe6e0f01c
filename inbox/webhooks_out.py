"""Outbound webhooks (issue 15): events sent, signed, to the URLs admins subscribe.

Events are recorded by database triggers (m032) in the transaction of what they report, and only
while a subscription listens for their type. The worker's `webhooks` job then:

1. fans each new event out (`fan_out`): its payload is built once and frozen on the event, and one
   delivery is made per active subscription that listens for the type;
2. sends the due deliveries (`deliver_due`), each claimed under a lease as the outbox does. A 2xx is
   delivered; anything else (another status, a timeout, a refused address) is retried with
   `backoff_delay`, at most `MAX_ATTEMPTS` tries, then dead. A delivery whose sender stopped
   mid-request is simply sent again: receivers dedupe by the event id (`id` in the body and the
   `Mainland-Event-Id` header).

A subscription that has failed without a single success for `webhooks.pause_after` (default 24h) is
paused; its deliveries wait until an admin resumes it. A replay sends a delivery's event again, with
the same id and body, marked `Mainland-Replay: true`.

Signature (as Stripe and Chatwoot do): `Mainland-Signature: t=<unix time>,v1=<hex>` where the hex is
HMAC-SHA256 with the subscription's secret over `<unix time>.<body>`; see docs/webhooks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from inbox import clock
from inbox.i18n import gettext
from inbox.poller import backoff_delay
from inbox.safe_fetch import FetchRefused, check_url, safe_post
from inbox.secrets_box import SecretError
from inbox.signing import SIGNATURE_HEADER, signature, verify  # noqa: F401 - verify: what a receiver runs (docs)
from inbox.store.base import iso, parse_iso

log = logging.getLogger("mainland.webhooks")

#: The events a subscription may listen for, in the order the admin page lists them.
EVENT_TYPES = (
    "conversation.created",
    "message.received",
    "message.sent",
    "conversation.status_changed",
    "conversation.assigned",
    "satisfaction.received",
    "service_level.breached",
)
TEST_EVENT = "webhook.test"
EVENT_ID_HEADER = "Mainland-Event-Id"
REPLAY_HEADER = "Mainland-Replay"
#: Tries of one delivery before it is dead (with backoff: about a day of trying).
MAX_ATTEMPTS = 12
#: Seconds a receiver has to answer.
TIMEOUT_SECONDS = 10.0
#: How long a claimed delivery is held before its request starts, and how long a request may take.
CLAIM_SECONDS = 30
LEASE_SECONDS = int(TIMEOUT_SECONDS * 3)
#: How much of a receiver's answer the delivery log keeps.
RESPONSE_CHARS = 500
DEFAULT_PAUSE_AFTER = dt.timedelta(hours=24)
#: How long finished deliveries (and the events they carried) stay in the log.
KEEP_LOG = dt.timedelta(days=30)
MAX_URL_CHARS = 2000
SECRET_PREFIX = "whsec_"


# Configuration ------------------------------------------------------------------------------------

def _duration_seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except (ValueError, IndexError):
        return None


def check_config(section: Any) -> list[str]:
    """What is wrong with the `webhooks` section (docs/configuration.md)."""
    if section is None:
        return []
    if not isinstance(section, Mapping):
        return ["webhooks: must be a mapping (pause_after)"]
    if "pause_after" in section:
        seconds = _duration_seconds(section["pause_after"])
        if seconds is None or not 60 <= seconds <= 30 * 86400:
            return [f"webhooks.pause_after: must be a duration from 1m to 30d, e.g. '24h' "
                    f"(got {section['pause_after']!r})"]
    return []


def pause_after(config: object) -> dt.timedelta:
    """How long a subscription may fail without a success before it is paused."""
    section = (getattr(config, "extra", None) or {}).get("webhooks") or {}
    seconds = _duration_seconds(section.get("pause_after")) if "pause_after" in section else None
    return dt.timedelta(seconds=seconds) if seconds else DEFAULT_PAUSE_AFTER


# URLs, secrets and signatures ---------------------------------------------------------------------

def url_problem(url: str, allow_hosts: Collection[str] = ()) -> str | None:
    """Why `url` cannot receive webhooks (https unless allow-listed, a public address), or None. Our own
    reasons are translated; the guard's (which address was refused) are technical and stay as they are."""
    if not url or len(url) > MAX_URL_CHARS:
        return gettext("Enter the receiver's address, at most %(num)d characters.", num=MAX_URL_CHARS)
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:
        return gettext("The address has an invalid port.")
    allowed = host in allow_hosts or f"{host}:{port}" in allow_hosts
    if parts.scheme != "https" and not allowed:
        return gettext("The address must start with https://.")
    try:
        check_url(url, allow_hosts)
    except FetchRefused as exc:
        return str(exc)
    return None


def new_secret() -> str:
    """A subscription's signing secret: shown to the admin once, stored sealed."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# Events --------------------------------------------------------------------------------------------

def payload(event_id: str, event_type: str, created_at: str, data: dict[str, Any]) -> str:
    """The body every delivery of an event carries."""
    return json.dumps({"id": event_id, "type": event_type, "created_at": created_at, "data": data},
                      ensure_ascii=False, separators=(",", ":"), default=str)


def fan_out(store: Any, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Freeze the payload of each new event and make its deliveries; the number of deliveries made."""
    moment = iso(now or clock.now())
    made = 0
    for event in store.unfanned_webhook_events(limit):
        data = store.webhook_event_facts(event["conversation_id"], event["message_id"])
        try:
            data.update(json.loads(event["data"] or "{}"))
        except ValueError:
            pass
        body = payload(event["event_id"], event["type"], event["created_at"], data)
        with store.write():
            made += store.fan_out_webhook_event(event["id"], body, moment)
    return made


def queue_test(store: Any, subscription_id: int, now: dt.datetime | None = None) -> int:
    """A `webhook.test` event for one subscription; the delivery's id."""
    moment = iso(now or clock.now())
    event_id = f"evt_{uuid.uuid4().hex}"
    body = payload(event_id, TEST_EVENT, moment, {"message": "A test event from Mainland."})
    with store.write():
        return store.queue_webhook_test(subscription_id, event_id=event_id, payload=body, now=moment)


# Deliveries ----------------------------------------------------------------------------------------

@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    paused: int = 0


def _trimmed(data: bytes) -> str:
    return data.decode("utf-8", "replace")[:RESPONSE_CHARS]


def deliver_due(mainland: Any, store: Any, *, now: dt.datetime | None = None) -> DeliveryReport:
    """Fan out new events, then send every due delivery once (see the module docstring)."""
    fan_out(store, now)
    report = DeliveryReport()
    moment = now or clock.now()
    with store.write():
        store.forget_webhook_out_events(iso(moment - KEEP_LOG))
        claimed = store.claim_webhook_deliveries(iso(moment), iso(moment + dt.timedelta(seconds=CLAIM_SECONDS)))
    box = mainland.secret_box()
    for delivery in claimed:
        _deliver_one(mainland, store, box, delivery, report, now)
    return report


def _deliver_one(mainland: Any, store: Any, box: Any, delivery: dict[str, Any], report: DeliveryReport,
                 now: dt.datetime | None) -> None:
    started = now or clock.now()
    with store.write():
        if not store.start_webhook_attempt(delivery["id"], delivery["lease_until"], iso(started),
                                           iso(started + dt.timedelta(seconds=LEASE_SECONDS))):
            return  # another sender took it meanwhile
    body = delivery["payload"].encode()
    timestamp = int(started.timestamp())
    status, answer, error = None, "", None
    clock_start = time.monotonic()
    try:
        secret = box.open(json.loads(delivery["secret"]))
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: delivery["event_id"],
                   SIGNATURE_HEADER: signature(secret, timestamp, body)}
        if delivery["replay_of"] is not None:
            headers[REPLAY_HEADER] = "true"
        posted = safe_post(delivery["url"], body, allow_hosts=mainland.config.fetch_allow_hosts, headers=headers,
                           timeout=TIMEOUT_SECONDS)
        status, answer = posted.status, _trimmed(posted.body)
        if not 200 <= status < 300:
            error = f"the receiver answered {status}"
    except (FetchRefused, SecretError) as exc:
        # A secret that cannot be opened (the secrets key changed) fails like an unreachable receiver:
        # the log says why, and the subscription pauses instead of the job failing for everyone.
        error = str(exc)
    duration_ms = int((time.monotonic() - clock_start) * 1000)
    finished = now or clock.now()
    with store.write():
        _record_outcome(store, delivery, status=status, answer=answer, error=error, duration_ms=duration_ms,
                        at=finished, pause_after=pause_after(mainland.config), report=report)


def _record_outcome(store: Any, delivery: dict[str, Any], *, status: int | None, answer: str, error: str | None,
                    duration_ms: int, at: dt.datetime, pause_after: dt.timedelta, report: DeliveryReport) -> None:
    common = {"now": iso(at), "status_code": status, "response_body": answer or None, "duration_ms": duration_ms}
    if error is None:
        store.finish_webhook_attempt(delivery["id"], state="delivered", error=None, **common)
        store.note_webhook_outcome(delivery["subscription_id"], ok=True, now=iso(at))
        report.delivered += 1
        return
    if delivery["attempts"] >= MAX_ATTEMPTS:
        store.finish_webhook_attempt(delivery["id"], state="dead", error=error, **common)
        report.dead += 1
    else:
        next_at = at + dt.timedelta(seconds=backoff_delay(delivery["attempts"]))
        store.finish_webhook_attempt(delivery["id"], state="retry_wait", error=error, next_at=iso(next_at), **common)
        report.retrying += 1
    failing_since = parse_iso(store.note_webhook_outcome(delivery["subscription_id"], ok=False, now=iso(at)))
    if failing_since is not None and at - failing_since >= pause_after:
        # The reason kept is the last error; the page says in the reader's language that it was automatic.
        if store.set_webhook_subscription_state(delivery["subscription_id"], "paused", iso(at), error[:500]):
            store.audit(iso(at), "system", "webhook_paused", "webhook_subscription", delivery["subscription_id"],
                        failing_since=iso(failing_since), last_error=error[:500])
            log.warning("webhook subscription %s paused after failing since %s: %s", delivery["subscription_id"],
                        iso(failing_since), error)
            report.paused += 1
