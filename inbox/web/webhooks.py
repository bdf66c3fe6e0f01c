"""The generic webhook endpoint: `POST /webhooks/<channel>` for every channel whose connector takes webhooks.

Order of work for each delivery (reliability.md §7, WH-01..WH-06, FI-07):

1. 404 unless `<channel>` is a configured, enabled channel whose connector implements
   `verify_webhook` (and, when it has the attribute, `webhook_enabled` is true: a Telegram
   channel in polling mode takes no webhooks). Web forms have their own pages and are not served
   here.
2. 413 for a body over the cap (1 MB, or the connector's `webhook_max_bytes`). The raw bytes are
   read from the stream before anything parses them: signatures are over the exact bytes.
3. `verify_webhook` on the raw body and headers. Any failure is a 403 (or the 401 a connector's
   refusal names in its `status`, with its message as `reason`: the generic API channel tells its
   integrator why) with nothing parsed and nothing stored; the refusal is logged, counted
   (`store.inbound_webhooks.refusals`: one row per channel, address and minute) and shown on the channel's
   health, so a secret rotated on one side only is noticed. After 30 refusals in a minute an
   address gets 429 without its body being read.
4. The delivery's event id (the connector's optional `webhook_event_id(request)`, else the
   SHA-256 of the body): a redelivery already taken in is answered 200 without parsing again.
5. `parse_webhook`; the items are ingested, the event id recorded and the channel's health
   updated in ONE transaction. 200 is answered only after that commit, so a provider that saw no
   200 retries and the retry is stored once. A verified body that cannot be parsed goes to the
   quarantine (200: retrying would not help); a `RetryableError` while parsing (a media server
   busy) answers 503 so that the provider retries. A connector whose sender can fix its request
   raises an error with a 4xx `status` (and `field`) instead: that is answered as it is, with the
   message, and nothing is stored or quarantined (the generic API channel's 400 naming the field).

`GET /webhooks/<channel>` answers a subscription handshake (Meta's `hub.challenge`) when the
connector has an optional `webhook_challenge(args) -> str | None`: the returned text is sent as
text/plain; None means the handshake is refused (403).

CSRF does not apply (providers have no session): the blueprint is exempt, and the signature check
replaces it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from flask import Blueprint, Response, abort, current_app, jsonify, request

from connectors.base import Connector, RetryableError, WebhookRequest
from inbox import clock
from inbox.models import FetchResult, Reject
from inbox.store.base import iso
from inbox.web import get_store
from inbox.web.security import csrf, limiter

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)
csrf.exempt(bp)

MAX_BODY_BYTES = 1024 * 1024
#: Event ids are kept longer than any provider retries (Meta: about 7 days).
EVENT_RETENTION = dt.timedelta(days=8)
REFUSAL_RETENTION = dt.timedelta(days=30)
#: Refused deliveries one address may cause per channel and minute before it is answered 429.
REFUSALS_PER_MINUTE = "30 per minute"


def _connector(channel: str) -> Connector:
    """The connector of a channel that takes webhooks; 404 for anything else."""
    mainland = current_app.extensions["mainland"]
    config = mainland.config.channels.get(channel)
    if config is None or not config.enabled:
        abort(404)
    cls = mainland.connector_class(channel)
    # Channels without webhooks, and those with pages of their own (`own_endpoint`: the web form).
    if cls.verify_webhook is Connector.verify_webhook or cls.own_endpoint:
        abort(404)
    if config.paused and request.method == "POST":
        # Paused by an admin: the provider keeps the delivery and tries again later, so nothing is lost.
        response, response.status_code = _answer(503, error="channel paused")
        response.headers["Retry-After"] = "60"
        abort(response)
    connector = mainland.connector(channel)
    if not getattr(connector, "webhook_enabled", True):
        connector.close()
        abort(404)
    return connector


def _answer(status: int, **fields) -> tuple[Response, int]:
    return jsonify(ok=200 <= status < 300, **fields), status


def _refusal_key() -> str:
    return f"webhook-refused:{request.view_args.get('channel') if request.view_args else ''}:{request.remote_addr}"


def _was_refused(response) -> bool:
    return response.status_code in (401, 403)


def _stated_status(exc: Exception, allowed: range) -> int | None:
    """The HTTP status a connector's error names for its caller (`status`), when it is one of `allowed`."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and status in allowed else None


@bp.post("/webhooks/<channel>")
# Refusals cost a database write and a log line: an address sending unsigned or badly signed bodies
# is answered 429 after REFUSALS_PER_MINUTE of them, before anything is read. Accepted deliveries
# are never counted, so a provider's burst of real events is never slowed.
@limiter.limit(lambda: REFUSALS_PER_MINUTE, key_func=_refusal_key, deduct_when=_was_refused)
def receive(channel: str):
    connector = _connector(channel)
    try:
        return _receive(channel, connector)
    finally:
        connector.close()


def _receive(channel: str, connector: Connector):
    limit = int(getattr(connector, "webhook_max_bytes", MAX_BODY_BYTES))
    if request.content_length is not None and request.content_length > limit:
        return _answer(413, error="body too large")
    # The raw bytes, read before anything parses the body; at most one byte past the cap.
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _answer(413, error="body too large")
    hook = WebhookRequest(body=body, headers=request.headers, remote_addr=request.remote_addr,
                          args=request.args.to_dict())

    store = get_store()
    try:
        connector.verify_webhook(hook)
    except Exception as exc:  # whatever the reason, an unverified body is never parsed
        reason = connector.redact(str(exc)) or type(exc).__name__
        _refused(store, channel, reason)
        if _stated_status(exc, range(401, 402)):
            return _answer(401, error="refused", reason=reason)
        return _answer(403, error="refused")

    event_id = _event_id(connector, hook)
    if store.inbound_webhooks.seen(channel, event_id):
        return _answer(200, duplicate=True)
    try:
        result = connector.parse_webhook(hook)
    except RetryableError as exc:
        log.warning("webhook for %s not taken in yet: %s", channel, connector.redact(str(exc)))
        response, status = _answer(503, error="busy, retry later")
        response.headers["Retry-After"] = str(int(exc.retry_after or 60))
        return response, status
    except Exception as exc:  # verified but unreadable: keep the bytes, never lose a delivery
        stated = _stated_status(exc, range(400, 500))
        if stated:  # the sender is told what to fix and sends it again; nothing is kept
            fields = {"field": exc.field} if getattr(exc, "field", None) else {}
            return _answer(stated, error=connector.redact(str(exc)), **fields)
        reason = connector.redact(f"webhook body could not be parsed: {exc}")
        result = FetchResult(items=[], cursor=None, rejects=[Reject(raw=body, reason=reason,
                                                                    exception=type(exc).__name__)])

    mainland = current_app.extensions["mainland"]
    ingestor = mainland.ingestor(store)
    now = clock.now()
    with store.write():
        if not store.inbound_webhooks.record(channel, event_id, iso(now)):
            return _answer(200, duplicate=True)  # a concurrent delivery of the same event won
        report = ingestor.ingest(channel, result, save_cursor=False)
        store.inbound_webhooks.forget(iso(now - EVENT_RETENTION))
        store.record_poll(channel, iso(now), items=report.stored)
    # Only now, after the commit, may the provider hear that the delivery is safe.
    return _answer(200, stored=report.stored, duplicates=report.duplicates, quarantined=report.quarantined)


def _event_id(connector: Connector, hook: WebhookRequest) -> str:
    named = getattr(connector, "webhook_event_id", None)
    if callable(named):
        try:
            found = named(hook)
        except Exception:  # a body the connector cannot read is still one delivery: hash it
            found = None
        if found:
            return str(found)[:200]
    return "sha256:" + hashlib.sha256(hook.body).hexdigest()


def _refused(store, channel: str, reason: str) -> None:
    log.warning("webhook for %s refused (from %s): %s", channel, request.remote_addr, reason)
    now = clock.now()
    with store.write():
        store.inbound_webhooks.record_refusal(channel, iso(now), remote_addr=request.remote_addr, reason=reason,
                                              keep_after=iso(now - REFUSAL_RETENTION))
        store.record_poll(channel, iso(now), error=f"webhook refused: {reason}")


@bp.get("/webhooks/<channel>")
def challenge(channel: str):
    connector = _connector(channel)
    try:
        answer_for = getattr(connector, "webhook_challenge", None)
        if not callable(answer_for):
            abort(405)
        answer = answer_for(request.args.to_dict())
    finally:
        connector.close()
    if answer is None:
        return _answer(403, error="refused")
    # text/plain only: an echoed challenge must never be rendered as HTML (WH-02).
    return Response(str(answer), mimetype="text/plain")
