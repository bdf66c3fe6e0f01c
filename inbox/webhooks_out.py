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
#: What a rule's webhook action sends (inbox/rules.py): not subscribed to, the rule names the subscription.
RULE_EVENT = "rule.fired"
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


def queue_rule_firing(store: Any, subscription_id: int, *, rule: Mapping[str, Any], trigger: str,
                      conversation_id: int, message_id: int | None, firing_id: int, now: dt.datetime) -> int:
    """A `rule.fired` event for one subscription (a rule's webhook action), queued in the caller's
    transaction, so it is sent only if the firing is kept: the conversation's facts as other events
    carry them, and which rule fired on which trigger. The delivery's id."""
    moment = iso(now)
    event_id = f"evt_{uuid.uuid4().hex}"
    data = store.webhook_event_facts(conversation_id, message_id)
    data["rule"] = {"id": rule["id"], "name": rule["name"], "trigger": trigger, "firing_id": firing_id}
    body = payload(event_id, RULE_EVENT, moment, data)
    with store.write():
        return store.queue_webhook_event(subscription_id, event_id=event_id, event_type=RULE_EVENT, payload=body,
                                         conversation_id=conversation_id, now=moment)


# Subscriptions: the one place their changes are checked, made and audited ---------------------------
# (used by /admin/webhooks and the REST API's /api/v1/webhooks alike; `actor` is who the audit names).

class SubscriptionRefused(ValueError):
    """What is wrong with a subscription's fields: {field: message}, in the current language."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def subscription_problems(*, url: str | None, events: list[str] | None,
                          allow_hosts: Collection[str] = ()) -> dict[str, str]:
    """What is wrong with a subscription's URL and events ({field: message}); None means "not changed"."""
    errors: dict[str, str] = {}
    if url is not None:
        problem = url_problem(url, allow_hosts)
        if problem:
            errors["url"] = gettext("This address cannot receive webhooks: %(reason)s", reason=problem)
    if events is not None:
        unknown = [e for e in events if e not in EVENT_TYPES]
        if unknown:
            errors["events"] = gettext("Unknown event %(event)s; the events are: %(events)s.",
                                       event=unknown[0], events=", ".join(EVENT_TYPES))
        elif not events:
            errors["events"] = gettext("Choose at least one event.")
    return errors


def _audit(store: Any, actor: str, action: str, subscription_id: int, at: str, **details: Any) -> None:
    with store.write():
        store.audit(at, actor, action, "webhook_subscription", subscription_id, **details)


def subscribe(store: Any, box: Any, *, url: str, events: list[str], allow_hosts: Collection[str], actor: str,
              created_by: int | None, now: dt.datetime | None = None, **audit: Any) -> tuple[int, str]:
    """A new subscription, checked and audited: (its id, its signing secret, to show once)."""
    errors = subscription_problems(url=url, events=events, allow_hosts=allow_hosts)
    if errors:
        raise SubscriptionRefused(errors)
    ordered = [e for e in EVENT_TYPES if e in events]
    secret = new_secret()
    moment = iso(now or clock.now())
    with store.write():
        subscription_id = store.create_webhook_subscription(url=url, events=ordered, secret=json.dumps(box.seal(secret)),
                                                            created_by=created_by, now=moment)
        _audit(store, actor, "webhook_created", subscription_id, moment, url=url, events=ordered, **audit)
    return subscription_id, secret


def set_subscription_state(store: Any, subscription: Mapping[str, Any], state: str, *, actor: str,
                           now: dt.datetime | None = None, **audit: Any) -> bool:
    """Pause or resume (`paused` / `active`), audited; resuming sends what waited at once. True if it changed."""
    if state not in ("active", "paused"):
        raise SubscriptionRefused({"state": gettext("Choose active or paused.")})
    moment = iso(now or clock.now())
    with store.write():
        changed = store.set_webhook_subscription_state(subscription["id"], state, moment)
        if changed and state == "active":
            store.release_held_webhook_deliveries(subscription["id"], moment)
        if changed:
            _audit(store, actor, "webhook_resumed" if state == "active" else "webhook_paused", subscription["id"],
                   moment, url=subscription["url"], **audit)
    return changed


def change_subscription(store: Any, subscription: Mapping[str, Any], *, url: str | None = None,
                        events: list[str] | None = None, allow_hosts: Collection[str] = (), actor: str,
                        now: dt.datetime | None = None, **audit: Any) -> bool:
    """A new URL and/or event list, checked and audited (before and after). True if anything changed."""
    errors = subscription_problems(url=url, events=events, allow_hosts=allow_hosts)
    if errors:
        raise SubscriptionRefused(errors)
    new_url = subscription["url"] if url is None else url
    new_events = subscription["events"] if events is None else [e for e in EVENT_TYPES if e in events]
    if (new_url, new_events) == (subscription["url"], subscription["events"]):
        return False
    moment = iso(now or clock.now())
    with store.write():
        store.update_webhook_subscription(subscription["id"], url=new_url, events=new_events, now=moment)
        _audit(store, actor, "webhook_changed", subscription["id"], moment,
               before={"url": subscription["url"], "events": subscription["events"]},
               after={"url": new_url, "events": new_events}, **audit)
    return True


def remove_subscription(store: Any, subscription: Mapping[str, Any], *, actor: str, now: dt.datetime | None = None,
                        **audit: Any) -> None:
    """Delete a subscription with its delivery log, audited."""
    moment = iso(now or clock.now())
    with store.write():
        store.delete_webhook_subscription(subscription["id"])
        _audit(store, actor, "webhook_deleted", subscription["id"], moment, url=subscription["url"], **audit)


def send_test(store: Any, subscription: Mapping[str, Any], *, actor: str, now: dt.datetime | None = None,
              **audit: Any) -> int:
    """Queue a `webhook.test` event for the subscription, audited; the delivery's id."""
    delivery_id = queue_test(store, subscription["id"], now)
    _audit(store, actor, "webhook_test_sent", subscription["id"], iso(now or clock.now()), delivery=delivery_id,
           **audit)
    return delivery_id


def replay(store: Any, subscription: Mapping[str, Any], delivery_id: int, *, actor: str,
           now: dt.datetime | None = None, **audit: Any) -> dict[str, Any] | None:
    """Send one of the subscription's deliveries again (same event id and body), audited: the new
    delivery as the log shows it, or None when the subscription has no such delivery."""
    delivery = store.webhook_delivery(delivery_id)
    if delivery is None or delivery["subscription_id"] != subscription["id"]:
        return None
    moment = iso(now or clock.now())
    with store.write():
        replay_id = store.replay_webhook_delivery(delivery_id, moment)
        _audit(store, actor, "webhook_replayed", subscription["id"], moment, delivery=delivery_id, replay=replay_id,
               event=delivery["event_id"], **audit)
    return store.webhook_log_entry(replay_id)


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
