"""Sending replies reliably: a transactional outbox worked by the worker.

`queue_reply` writes the reply as a message and an outbox row in one transaction, so a reply the
agent saw as "queued" is never lost. `send_due` claims due rows under a lease and sends each
through the conversation's channel (`Mainland.sending_connector`):

- accepted -> `sent`, with the channel's id; only then is the message shown as sent;
- `RetryableError` (SMTP 4xx, 429, timeouts) -> `retry_wait` with backoff, at most
  `MAX_ATTEMPTS` tries within `MAX_AGE`, then `dead`;
- `PermanentError` (SMTP 5xx, a refused request) -> `failed`, with the reason shown to the agent,
  who can retry after fixing the cause.

Undo send: the conversation page queues a reply with a hold of `web.undo_send_seconds` (default
10; 0 sends at once): the row is not due before the window ends, and until a sender claims it the
writer can take it back (`undo_reply`: the row and its message are deleted, the text goes back to
the composer). Claiming and taking back are each one write transaction that changes the row only
from `pending`, so a reply is never both handed to the channel and taken back.

The one window no outbox can close: the channel accepted the reply and the process died before
`sent` was committed. The lease then runs out, the row is sent again and flagged
`possible_duplicate`; email keeps the same Message-ID, so the customer's mail client shows one
message, and channels with idempotency keys get the same key (the outbox id).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from connectors.base import ConnectorError, PermanentError, RetryableError
from inbox import clock, review, sendability, service_levels
from inbox.mail import conversation_message_id
from inbox.models import FLAG_AUTO_SUBMITTED, Author, MessageTemplate, OutboundReply
from inbox.poller import backoff_delay
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso, parse_iso

log = logging.getLogger("mainland.outbox")

#: Flag on a reply to a public conversation that goes to the customer privately instead.
FLAG_PRIVATE_REPLY = "private_reply"

LEASE_SECONDS = 120
MAX_ATTEMPTS = 10
MAX_AGE = dt.timedelta(hours=24)
#: The undo window when `web.undo_send_seconds` is not set; the longest one allowed.
DEFAULT_UNDO_SECONDS = 10
MAX_UNDO_SECONDS = 300


def undo_seconds(config: object) -> float:
    """The configured undo window in seconds (`web.undo_send_seconds`; 0: replies go out at once)."""
    web = (getattr(config, "extra", None) or {}).get("web") or {}
    value = web.get("undo_send_seconds", DEFAULT_UNDO_SECONDS)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else DEFAULT_UNDO_SECONDS


class ReplyRefused(Exception):
    """The reply cannot be queued (nobody to answer, an address we must not write to)."""


def queue_reply(mainland: Mainland, store: Store, conversation_id: int, text: str, *, agent: dict | None = None,
                html: str | None = None, now: dt.datetime | None = None, flags: Iterable[str] = (),
                reviewed: bool = False, hold_seconds: float = 0, target: sendability.Target | None = None) -> str:
    """Queue an agent's reply in a conversation; returns the outbox id.

    `flags` mark the message; FLAG_AUTO_SUBMITTED makes it an automatic message (a survey), sent
    as such (email: `Auto-Submitted: auto-generated`). A trainee's reply is held for a lead's
    review instead (inbox/review.py) and the id returned is "review:<item id>"; `reviewed` is
    how the approval itself sends it. `hold_seconds`: the undo window; the reply is not due before
    it ends (a held trainee's reply has none: it waits for the review instead). `target`: the
    message answered and where the reply goes (`inbox.sendability.decide`); default the customer's
    latest message, on its own channel and thread.
    """
    now = now or clock.now()
    now_text = iso(now)
    conversation = store.conversation(conversation_id)
    target = target or sendability.default_target(mainland, store, conversation)
    answered = target.message if target else store.latest_inbound(conversation_id)
    if answered is None:
        raise ReplyRefused("this conversation has no message from the customer to answer")
    if not reviewed and review.needs_review(store, agent):
        return review.hold_reply(store, conversation_id, text, agent=agent, html=html, now=now)
    outbox_id = uuid.uuid4().hex
    # The channel of the message answered: after a merge, not necessarily the conversation's.
    channel = target.channel if target else conversation["channel"]
    # Email replies carry a Message-ID naming the conversation, so the customer's answer threads
    # even when their mail client drops In-Reply-To.
    message_id = conversation_message_id(conversation["token"], outbox_id, mainland.config.mail_domain).strip("<>")
    refs = " ".join(r for r in (answered["refs"] or "").split() + [answered["message_id"] or ""] if r)
    with store.write():
        store.queue_outbound(
            outbox_id=outbox_id, conversation_id=conversation_id, channel=channel,
            agent_id=agent["id"] if agent else None, text=text, html=html,
            subject=conversation["subject"] or answered["subject"] or "", message_id=message_id, refs=refs,
            author_name=(agent or {}).get("name", ""), now=now_text, flags=" ".join(sorted(set(flags))),
            next_at=iso(now + dt.timedelta(seconds=hold_seconds)) if hold_seconds > 0 else None,
        )
        if target:
            store.set_outbox_target(outbox_id, reply_to=target.message_id, thread_key=target.thread_key,
                                    public=target.public)
        # The reply stops the first- or next-response clock: the queue's due times move at once.
        service_levels.refresh(store, service_levels.for_config(mainland.config), [conversation_id], now)
    return outbox_id


class UndoRefused(Exception):
    """The reply cannot be taken back: a sender has it already (or it was sent), or there is no such reply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "released" or "missing"


def undo_reply(mainland: Mainland, store: Store, conversation_id: int, outbox_id: str, *, agent: dict,
               now: dt.datetime | None = None) -> dict:
    """Take the agent's queued reply back before any sender claimed it; returns the reply (its
    `text`, and `undo_status`: the conversation's status before the send). UndoRefused otherwise."""
    now = now or clock.now()
    with store.write():
        outcome, row = store.take_back_outbound(outbox_id, conversation_id, agent["id"])
        if outcome != "taken" or row is None:
            raise UndoRefused(outcome)
        service_levels.refresh(store, service_levels.for_config(mainland.config), [conversation_id], now)
    return row


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def build_outbound(store: Store, row: dict) -> OutboundReply:
    """The `OutboundReply` for a claimed outbox row: to the customer's last message in the conversation."""
    conversation = store.conversation(row["conversation_id"])
    # The message the reply answers, in the thread it arrived in (rows from before m017: the latest).
    answered = (row.get("reply_to") and store.answerable_message(row["conversation_id"], row["reply_to"])) \
        or store.latest_inbound(row["conversation_id"]) or {}
    thread_key, public = conversation["thread_key"], bool(conversation["public"])
    if row.get("reply_to"):
        thread_key, public = row["thread_key"], bool(row["public"])
    refs = tuple((row["refs"] or "").split())
    to = Author(handle=answered.get("author_handle", ""), name=answered.get("author_name", ""))
    if row.get("to_handle"):
        # The first message of a conversation we started (m022): to the handle chosen, answering nothing.
        answered, refs = {}, ()
        to = Author(handle=row["to_handle"], name=row.get("to_name") or "", identity_kind=row.get("to_kind") or "email")
    return OutboundReply(
        idempotency_key=row["id"],
        channel=row["channel"],
        conversation_id=row["conversation_id"],
        text=row["text"],
        html=row["html"],
        to=to,
        subject=row["subject"],
        thread_key=thread_key,
        reply_to_external_id=answered.get("external_id"),
        reply_to_message_id=answered.get("message_id"),
        references=refs[:-1] if refs and refs[-1] == answered.get("message_id") else refs,
        message_id=f"<{row['our_message_id']}>" if row["our_message_id"] else None,
        # An agent may answer a public comment privately (where the channel allows it, once).
        public=public and FLAG_PRIVATE_REPLY not in (row.get("flags") or "").split(),
        from_name=row["agent_name"] or None,
        automatic=FLAG_AUTO_SUBMITTED in (row.get("flags") or "").split(),
        template=_template_of(row),
        starts_conversation=bool(row.get("to_handle")),
    )


def _template_of(row: dict) -> MessageTemplate | None:
    """The approved template a row sends instead of its text (m022's `template`, JSON), or None."""
    raw = json.loads(row["template"]) if row.get("template") else None
    if not isinstance(raw, dict):
        return None
    return MessageTemplate(str(raw["name"]), str(raw["language"]), tuple(str(p) for p in raw.get("parameters") or ()))


def send_due(mainland: Mainland, store: Store, *, now: dt.datetime | None = None) -> SendReport:
    """Send every due reply once; never raises for a channel's failure."""
    now = now or clock.now()
    report = SendReport()
    with store.write():
        rows = store.claim_outbox(iso(now), iso(now + dt.timedelta(seconds=LEASE_SECONDS)))
    for row in rows:
        try:
            reply = build_outbound(store, row)
            connector = mainland.sending_connector(row["channel"])
        except Exception as exc:  # a channel removed from the config, a vanished conversation
            with store.write():
                store.mark_outbox_failed(row["id"], f"cannot send: {exc}")
            report.failed += 1
            continue
        try:
            provider_id = connector.send(reply)
        except RetryableError as exc:
            error = connector.redact(str(exc))
            created = parse_iso(row["created_at"]) or now
            if row["attempts"] >= MAX_ATTEMPTS or now - created > MAX_AGE:
                with store.write():
                    store.mark_outbox_failed(row["id"], f"gave up after {row['attempts']} tries: {error}", dead=True)
                report.failed += 1
            else:
                retry_at = now + dt.timedelta(seconds=backoff_delay(row["attempts"], exc.retry_after))
                with store.write():
                    store.mark_outbox_retry(row["id"], iso(retry_at), error)
                report.retrying += 1
            continue
        except (PermanentError, ConnectorError) as exc:
            with store.write():
                store.mark_outbox_failed(row["id"], connector.redact(str(exc)))
            report.failed += 1
            continue
        finally:
            connector.close()
        with store.write():
            store.mark_outbox_sent(row["id"], str(provider_id), iso(clock.now()))
        report.sent += 1
    return report
