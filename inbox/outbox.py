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

Files go with the reply as attachments of its message (stored like inbound ones). Where a channel
cannot put text and a file in one message (`Limits.files_with_text` False) the reply gets one row
per part (the text, then each file), each sent once with its own idempotency key; the message is
sent when every part is, and undo takes back all parts or none. Copies (`cc`, `bcc`), the
signature and forwards (an internal note's row that sends messages to other addresses) are built
into the `OutboundReply` here, when the row is sent.

The one window no outbox can close: the channel accepted the reply and the process died before
`sent` was committed. The lease then runs out, the row is sent again and flagged
`possible_duplicate`; email keeps the same Message-ID, so the customer's mail client shows one
message, and channels with idempotency keys get the same key (the outbox id).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from connectors.base import ConnectorError, Limits, PermanentError, RetryableError, UncertainError
from inbox import chat_followup, clock, review, sendability, service_levels
from inbox.attachments import AttachmentStore, safe_filename, type_mismatch
from inbox.channel_format import to_html
from inbox.mail import conversation_message_id, forward_text
from inbox.models import (
    FLAG_ACKNOWLEDGEMENT,
    FLAG_AUTO_SUBMITTED,
    Attachment,
    Author,
    MessageTemplate,
    OutboundReply,
)
from inbox.poller import backoff_delay
from inbox.runtime import Mainland
from inbox.signatures import signature_for, signed_text
from inbox.store import Store
from inbox.store.base import iso, parse_iso
from inbox.store.outbox import split_addresses
from inbox.store.sendability import AnswerableMessage

log = logging.getLogger("mainland.outbox")

#: Flag on a reply to a public conversation that goes to the customer privately instead.
FLAG_PRIVATE_REPLY = "private_reply"

#: How long a sender holds a claimed row it has not started to send: a sender that dies right after
#: claiming leaves its rows to the next one within this time.
CLAIM_SECONDS = 30
#: How long a started send may take (the channel's timeout, uploads, a processing wait) before the
#: row counts as stranded mid-send.
LEASE_SECONDS = 120
MAX_ATTEMPTS = 10
#: Rows one claim takes; a round claims again until nothing is due.
CLAIM_BATCH = 20
#: The longest a round goes on claiming; the next one goes on from where it stopped.
ROUND_SECONDS = 60
MAX_AGE = dt.timedelta(hours=24)
#: The undo window when `web.undo_send_seconds` is not set; the longest one allowed.
DEFAULT_UNDO_SECONDS = 10
MAX_UNDO_SECONDS = 300


def undo_seconds(config: object) -> float:
    """The configured undo window in seconds (`web.undo_send_seconds`; 0: replies go out at once)."""
    web = (getattr(config, "extra", None) or {}).get("web") or {}
    value = web.get("undo_send_seconds", DEFAULT_UNDO_SECONDS)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else DEFAULT_UNDO_SECONDS


#: Called in this process with the moment a reply queued here falls due (the end of its undo window):
#: the worker running beside the web app (`mainland serve`) sends it then instead of at its next round,
#: up to `outbox_every` later. Another process's worker finds it at its next round. A listener must be quick.
due_listeners: list[Callable[[dt.datetime], None]] = []


def announce_due(at: dt.datetime) -> None:
    """Tell this process's listeners (`due_listeners`) that a reply falls due at `at`."""
    for listener in list(due_listeners):
        try:
            listener(at)
        except Exception:  # the reply is queued; the next round sends it
            log.exception("telling the sender that a reply is due failed")


class ReplyRefused(Exception):
    """The reply cannot be queued (nobody to answer, an address we must not write to)."""


class FilesRefused(Exception):
    """A reply's files break the channel's or the installation's rules; `reason` names which:
    "none" (the channel carries no files here), "count" (`limit`), "type" (`filename`, `content_type`),
    "size" (`filename`, `limit` in bytes), "empty" (`filename`)."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def file_size_cap(limits: Limits, installation_cap: int | None) -> int | None:
    """The largest file a reply may carry: the channel's limit or the installation's, whichever is lower."""
    caps = [c for c in (limits.max_attachment_bytes, installation_cap) if c]
    return min(caps) if caps else None


def check_files(limits: Limits, files: Sequence[Attachment], *, public: bool,
                installation_cap: int | None) -> None:
    """Raise FilesRefused unless `files` may go out in one reply on a channel with `limits`.

    The same rules the composer shows and checks in the browser; checked again here because the
    browser is never trusted."""
    refusal = limits.refuse_files(files, public=public, cap=installation_cap)
    if refusal is not None:
        details = {"filename": refusal.filename, "content_type": refusal.content_type, "limit": refusal.limit}
        raise FilesRefused(refusal.code, **{k: v for k, v in details.items() if v is not None})


def sending_limits(mainland: Mainland, channel: str) -> Limits:
    """The limits of the connector that delivers replies for `channel` (its `reply_channel`, if set)."""
    settings = mainland.config.channels[channel].settings
    return mainland.connector_class(settings.get("reply_channel") or channel).limits


#: An address a reply may go to in copy: a plain local@domain, nothing a header or an SMTP command
#: could be bent with (no spaces, brackets, quotes, commas or control characters).
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
#: Most people in copy of one reply (Cc and Bcc together).
MAX_COPIES = 20


def _headers(message: AnswerableMessage) -> dict[str, str]:
    try:
        headers = json.loads(message.headers or "{}")
    except ValueError:
        return {}
    return headers if isinstance(headers, dict) else {}


def reply_target(answered: AnswerableMessage) -> Author:
    """Who a reply goes to: the first plain address of the customer's Reply-To, when their message
    named one (a shared mailbox or a list asks for answers elsewhere), else its author."""
    for name, address in getaddresses([str(_headers(answered).get("reply-to") or "")]):
        if PLAIN_ADDRESS.fullmatch(address):
            return Author(handle=address, name=name or answered.author_name or "")
    return Author(handle=answered.author_handle or "", name=answered.author_name or "")


def is_own_address(address: str, own: set[str], mail_domain: str | None) -> bool:
    """True for an address of this installation: a channel's address or one at its mail domain."""
    lowered = address.lower()
    return lowered in own or bool(mail_domain) and lowered.endswith("@" + str(mail_domain).lower())


def suggested_copies(answered: AnswerableMessage, *, own: set[str], mail_domain: str | None) -> list[str]:
    """The Cc a reply-all would keep: the customer's last mail's To and Cc, minus our own addresses
    (the channel's, the installation's mail domain), the customer and the reply's own target."""
    headers = _headers(answered)
    skip = {(answered.author_handle or "").lower(), reply_target(answered).handle.lower()}
    found: list[str] = []
    for _name, address in getaddresses([str(headers.get("to") or ""), str(headers.get("cc") or "")]):
        lowered = address.lower()
        if (PLAIN_ADDRESS.fullmatch(address) and lowered not in skip and lowered not in (f.lower() for f in found)
                and not is_own_address(address, own, mail_domain)):
            found.append(address)
    return found[:MAX_COPIES]


class CopiesRefused(Exception):
    """The Cc or Bcc field holds something a reply cannot go to; `reason` is "invalid" (`address`),
    "own" (`address`: one of ours, a loop) or "count" (`limit`)."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def parse_copies(cc_text: str, bcc_text: str, *, to: str, own: set[str],
                 mail_domain: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Cc and Bcc fields (addresses separated by commas, semicolons or spaces) as addresses,
    each once (whoever is in To or Cc is not also in Bcc). CopiesRefused for anything else."""
    seen = {to.lower()}
    result: list[list[str]] = [[], []]
    for index, text in enumerate((cc_text, bcc_text)):
        for token in re.split(r"[,;\s]+", text or ""):
            if not token:
                continue
            address = token.strip("<>")
            if not PLAIN_ADDRESS.fullmatch(address) or len(address) > 320:
                raise CopiesRefused("invalid", address=token[:80])
            if is_own_address(address, own, mail_domain):
                raise CopiesRefused("own", address=address)
            if address.lower() not in seen:
                seen.add(address.lower())
                result[index].append(address)
    if len(result[0]) + len(result[1]) > MAX_COPIES:
        raise CopiesRefused("count", limit=MAX_COPIES)
    return tuple(result[0]), tuple(result[1])


def _store_files(mainland: Mainland, files: Sequence[Attachment]) -> list[dict[str, Any]]:
    """Put the files' bytes into the attachment store (before the rows that point at them are written)."""
    if not files:
        return []
    attachment_store = mainland.attachment_store()
    return [{"filename": safe_filename(f.filename, index, f.content_type),
             "content_type": (f.content_type or "application/octet-stream").split(";")[0].strip().lower(),
             "size": len(f.data or b""), "sha256": attachment_store.put(f.data or b""),
             # An "image" that is not one (or hides markup) is never shown inline, ours or not.
             "type_mismatch": type_mismatch(f.content_type or "", f.data)}
            for index, f in enumerate(files, start=1)]


def queue_reply(mainland: Mainland, store: Store, conversation_id: int, text: str, *, agent: dict | None = None,
                html: str | None = None, now: dt.datetime | None = None, flags: Iterable[str] = (),
                reviewed: bool = False, hold_seconds: float = 0, target: sendability.Target | None = None,
                files: Sequence[Attachment] = (), cc: Sequence[str] = (), bcc: Sequence[str] = ()) -> str:
    """Queue an agent's reply in a conversation; returns the outbox id.

    `flags` mark the message; FLAG_AUTO_SUBMITTED makes it an automatic message (a survey), sent
    as such (email: `Auto-Submitted: auto-generated`). A trainee's reply is held for a lead's
    review instead (inbox/review.py) and the id returned is "review:<item id>"; `reviewed` is
    how the approval itself sends it. `hold_seconds`: the undo window; the reply is not due before
    it ends (a held trainee's reply has none: it waits for the review instead). `target`: the
    message answered and where the reply goes (`inbox.sendability.decide`); default the customer's
    latest message, on its own channel and thread. `files` go out with the reply (checked by the
    caller with `check_files`); a held reply keeps them for the review. `cc` and `bcc` (checked by
    the caller with `parse_copies`) go to channels that declare `copies`.
    """
    now = now or clock.now()
    now_text = iso(now)
    flags = tuple(flags)
    conversation = store.conversation(conversation_id)
    target = target or sendability.default_target(mainland, store, conversation)
    answered = target.message if target else store.sendability.latest_inbound(conversation_id)
    if answered is None:
        raise ReplyRefused("this conversation has no message from the customer to answer")
    stored = _store_files(mainland, files)
    if not reviewed and review.needs_review(store, agent):
        return review.hold_reply(store, conversation_id, text, agent=agent, html=html, now=now, files=stored,
                                 cc=cc, bcc=bcc)
    outbox_id = uuid.uuid4().hex
    # The channel of the message answered: after a merge, not necessarily the conversation's.
    channel = target.channel if target else conversation["channel"]
    # Email replies carry a Message-ID naming the conversation, so the customer's answer threads
    # even when their mail client drops In-Reply-To.
    message_id = conversation_message_id(conversation["token"], outbox_id, mainland.config.mail_domain).strip("<>")
    refs = " ".join(r for r in (answered.refs or "").split() + [answered.message_id or ""] if r)
    # Signed on send, not in the composer: an agent's reply gets their and their channel's (or
    # team's) signature; an automatic one (a survey) none.
    signature = None if FLAG_AUTO_SUBMITTED in flags else signature_for(store, conversation, agent)
    with store.write():
        store.queue_outbound(
            outbox_id=outbox_id, conversation_id=conversation_id, channel=channel,
            agent_id=agent["id"] if agent else None, text=text, html=html,
            subject=conversation["subject"] or answered.subject or "", message_id=message_id, refs=refs,
            author_name=(agent or {}).get("name", ""), now=now_text, flags=" ".join(sorted(set(flags))),
            next_at=iso(now + dt.timedelta(seconds=hold_seconds)) if hold_seconds > 0 else None,
            files=stored, split_files=not sending_limits(mainland, channel).files_with_text, cc=cc, bcc=bcc,
            signature=signature,
        )
        if target:
            store.sendability.set_outbox_target(outbox_id, reply_to=target.message_id,
                                                thread_key=target.thread_key, public=target.public)
        # The reply stops the first- or next-response clock: the queue's due times move at once.
        service_levels.refresh(store, service_levels.for_config(mainland.config), [conversation_id], now)
    announce_due(now + dt.timedelta(seconds=max(hold_seconds, 0)))
    return outbox_id


#: Flag of the internal note that records a forward (and whose outbox row sends it).
FLAG_FORWARD = "forward"


def forward_channel(mainland: Mainland, channel: str) -> str | None:
    """The channel a forward from a conversation on `channel` goes out through: the one that sends
    its replies when that can write to others (`Limits.copies`, email), else the first configured
    channel that can; None when there is none."""
    settings = mainland.config.channels[channel].settings
    own = settings.get("reply_channel") or channel
    candidates = [own, *sorted(mainland.config.channels)]
    for name in candidates:
        try:
            if name in mainland.config.channels and mainland.connector_class(name).limits.copies:
                return name
        except KeyError:
            continue
    return None


def queue_forward(mainland: Mainland, store: Store, conversation_id: int, to: Sequence[str], *, agent: dict,
                  comment: str = "", message_row: int | None = None, now: dt.datetime | None = None) -> str:
    """Forward one message (`message_row`) or the whole conversation, with its files, to `to`
    (checked by the caller with `parse_copies`), through the outbox; recorded in the thread as an
    internal note of who forwarded what to whom. Returns the outbox id; ReplyRefused when no
    channel can send it."""
    now = now or clock.now()
    conversation = store.conversation(conversation_id)
    via = forward_channel(mainland, conversation["channel"])
    if via is None:
        raise ReplyRefused("no channel here can send mail to other addresses")
    outbox_id = uuid.uuid4().hex
    subject = conversation["subject"] or ""
    message_id = conversation_message_id(conversation["token"], outbox_id, mainland.config.mail_domain).strip("<>")
    with store.write():
        store.queue_forward(outbox_id=outbox_id, conversation_id=conversation_id, channel=via, agent_id=agent["id"],
                            author_name=agent.get("name") or "", comment=comment, to=list(to), forward_of=message_row,
                            subject=f"Fwd: {subject}" if subject else "Fwd:", message_id=message_id, now=iso(now))
    announce_due(now)
    return outbox_id


def build_forward(store: Store, row: dict, attachment_store: AttachmentStore | None) -> OutboundReply:
    """The mail for a forward's outbox row: the comment, the forwarded messages as text, their files."""
    messages = store.forwarded_messages(row["conversation_id"], row.get("forward_of"))
    to, *others = split_addresses(row.get("cc"))
    files = [att for message in messages for att in message["attachments"]]
    return OutboundReply(
        idempotency_key=row["id"], channel=row["channel"], conversation_id=row["conversation_id"],
        text=forward_text(row["text"] or "", messages), to=Author(handle=to), cc=tuple(others),
        subject=row["subject"], message_id=f"<{row['our_message_id']}>" if row["our_message_id"] else None,
        from_name=row["agent_name"] or None, attachments=load_files(attachment_store, files), forwarded=True,
    )


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
        orphans = store.unreferenced_files(row.get("dropped_files") or [])
    # The undone reply's files are dropped, not kept with the draft: nothing else refers to them.
    attachment_store = mainland.attachment_store()
    for digest in orphans:
        attachment_store.delete(digest)
    return row


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    #: Replies the channel may have received without confirming them, set aside for an agent.
    uncertain: int = 0


def signed_html(html: str | None, signature: str | None) -> str | None:
    """The HTML part with the signature (plain text, escaped into paragraphs) at its end."""
    if not html or not signature:
        return html
    return f'{html}<div class="signature">{to_html(signature)}</div>'


def load_files(attachment_store: AttachmentStore | None, rows: list[dict]) -> tuple[Attachment, ...]:
    """Our stored files with their bytes, ready for a connector."""
    if not rows:
        return ()
    if attachment_store is None:
        raise ValueError("this reply has files but no attachment store was given")
    return tuple(Attachment(filename=r["filename"], content_type=r["content_type"],
                            data=attachment_store.read(r["sha256"]), size=r["size"]) for r in rows)


def build_outbound(store: Store, row: dict, attachment_store: AttachmentStore | None = None) -> OutboundReply:
    """The `OutboundReply` for a claimed outbox row: to the customer's last message in the conversation.

    A row that is one part of a reply sent in parts carries only its text or only its one file."""
    conversation = store.conversation(row["conversation_id"])
    if FLAG_FORWARD in (row.get("flags") or "").split():
        return build_forward(store, row, attachment_store)
    # The message the reply answers, in the thread it arrived in (rows from before m017: the latest).
    chosen = row.get("reply_to") and store.sendability.answerable_message(row["conversation_id"], row["reply_to"])
    answered = chosen or store.sendability.latest_inbound(row["conversation_id"])
    thread_key, public = conversation["thread_key"], bool(conversation["public"])
    if row.get("reply_to"):
        thread_key, public = row["thread_key"], bool(row["public"])
    refs = tuple((row["refs"] or "").split())
    part = row.get("part") or "all"
    to = reply_target(answered) if answered else Author(handle="", name="")
    if row.get("to_handle"):
        # The first message of a conversation we started (m022): to the handle chosen, answering nothing.
        answered, refs = None, ()
        to = Author(handle=row["to_handle"], name=row.get("to_name") or "", identity_kind=row.get("to_kind") or "email")
    return OutboundReply(
        attachments=() if part == "text" else load_files(attachment_store, store.outbound_files(
            row["message_id"], row.get("attachment_id") if part == "file" else None)),
        idempotency_key=row["id"],
        channel=row["channel"],
        conversation_id=row["conversation_id"],
        text="" if part == "file" else signed_text(row["text"], row.get("signature")),
        html=None if part == "file" else signed_html(row["html"], row.get("signature")),
        to=to,
        # Copies go with the reply's text (or the whole reply), not again with each file sent apart.
        cc=split_addresses(row.get("cc")) if part != "file" else (),
        bcc=split_addresses(row.get("bcc")) if part != "file" else (),
        subject=row["subject"],
        thread_key=thread_key,
        reply_to_external_id=answered.external_id if answered else None,
        reply_to_message_id=answered.message_id if answered else None,
        references=refs[:-1] if refs and answered and refs[-1] == answered.message_id else refs,
        message_id=f"<{row['our_message_id']}>" if row["our_message_id"] else None,
        # An agent may answer a public comment privately (where the channel allows it, once).
        public=public and FLAG_PRIVATE_REPLY not in (row.get("flags") or "").split(),
        from_name=row["agent_name"] or None,
        automatic=FLAG_AUTO_SUBMITTED in (row.get("flags") or "").split(),
        auto_replied=FLAG_ACKNOWLEDGEMENT in (row.get("flags") or "").split(),
        template=_template_of(row),
        starts_conversation=bool(row.get("to_handle")),
    )


def _template_of(row: dict) -> MessageTemplate | None:
    """The approved template a row sends instead of its text (m022's `template`, JSON), or None."""
    raw = json.loads(row["template"]) if row.get("template") else None
    if not isinstance(raw, dict):
        return None
    return MessageTemplate(str(raw["name"]), str(raw["language"]), tuple(str(p) for p in raw.get("parameters") or ()))


def _resends_safely(mainland: Mainland, channel: str) -> bool:
    """Whether a reply on `channel` may be sent again when it may already have arrived."""
    try:
        through = mainland.config.channels[channel].settings.get("reply_channel") or channel
        return bool(mainland.connector_class(through).idempotent_sends)
    except KeyError:  # a channel gone from the configuration: an agent decides
        return False


def send_due(mainland: Mainland, store: Store, *, now: dt.datetime | None = None) -> SendReport:
    """Send every due reply once; never raises for a channel's failure.

    Claims `CLAIM_BATCH` rows at a time and goes on until nothing is due (at most `ROUND_SECONDS`;
    the next round goes on from there): a busy team's replies must not wait for later rounds in a
    queue that grows (one batch a round sent 2 replies a second at most)."""
    report = SendReport()
    # Due as the round began: a reply retried in this round waits for a later one (its backoff may
    # be a fraction of a second; ten quick tries in a row would give up on a channel's short outage).
    due_by = now or clock.now()
    began = time.monotonic()
    while time.monotonic() - began < ROUND_SECONDS:
        claimed_at = now or clock.now()
        with store.write():
            rows = store.claim_outbox(iso(due_by), iso(claimed_at + dt.timedelta(seconds=CLAIM_SECONDS)),
                                      CLAIM_BATCH, resendable=lambda channel: _resends_safely(mainland, channel))
        if not rows:
            break
        for row in rows:
            _send_claimed(mainland, store, row, due_by, report)
    return report


def _send_claimed(mainland: Mainland, store: Store, row: dict, now: dt.datetime, report: SendReport) -> None:
    """Send one claimed row through its channel and record the outcome in `report`."""
    try:
        # A website chat's mail (a follow-up, a sign-in link) is built by the chat's own module.
        reply = chat_followup.outbound_for(mainland, store, row) \
            or build_outbound(store, row, mainland.attachment_store())
        connector = mainland.sending_connector(row["channel"])
    except Exception as exc:  # a channel removed from the config, a vanished conversation
        with store.write():
            store.mark_outbox_failed(row["id"], f"cannot send: {exc}")
        report.failed += 1
        return
    try:
        started = clock.now()
        with store.write():
            ours = store.start_outbox_attempt(row["id"], row["lease_until"], iso(started),
                                              iso(started + dt.timedelta(seconds=LEASE_SECONDS)))
        if not ours:  # our claim ran out and another sender took the row: it sends it, not us
            return
        provider_id = connector.send(reply)
    except UncertainError as exc:
        error = connector.redact(str(exc))
        if type(connector).idempotent_sends:
            retry_at = now + dt.timedelta(seconds=backoff_delay(row["attempts"], exc.retry_after))
            with store.write():
                store.mark_outbox_retry(row["id"], iso(retry_at), error, possible_duplicate=True)
            report.retrying += 1
        else:
            with store.write():
                store.mark_outbox_uncertain(row["id"], error)
            report.uncertain += 1
        return
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
        return
    except (PermanentError, ConnectorError) as exc:
        with store.write():
            store.mark_outbox_failed(row["id"], connector.redact(str(exc)))
        report.failed += 1
        return
    finally:
        connector.close()
    with store.write():
        store.mark_outbox_sent(row["id"], str(provider_id), iso(clock.now()))
    report.sent += 1
    try:
        connector.send_recorded(reply, str(provider_id))
    except Exception:  # a listener's failure must not undo or repeat a send that happened
        log.exception("%s: telling that reply %s was sent failed", row["channel"], row["id"])
