"""The ingest pipeline: one batch of fetched items into the store, in one transaction with its cursor.

For each batch (`Ingestor.ingest`):

1. skip items whose `(channel, external_id)` is already stored       -> nothing doubled
2. normalize: sanitize HTML, plain text, cap sizes, triage loops      -> bad item: quarantine
3. write attachment files (before the rows that point at them)
4. in one `BEGIN IMMEDIATE` transaction: customer by identity, thread to a conversation,
   insert messages (their search index entries together at the end: m044), quarantine the
   rejects, save the connector's new cursor -> nothing lost

A poll that dies before step 4 commits leaves the old cursor; the next poll fetches the same items
and step 1 (and the unique key, for a concurrent writer) drops those already stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from inbox import clock, csat, models, routing, triage, triage_flow
from inbox.attachments import AttachmentStore, safe_filename, type_mismatch
from inbox.conversations import find_conversation, unused_token
from inbox.customers import is_known_identity, is_suppressed, note_item_evidence, resolve_author
from inbox.mail_batch import Sanitized, exception_text
from inbox.models import (
    AUTOMATIC_FLAGS,
    DELIVERY_ORDER,
    FLAG_CLAIMED_ADDRESS,
    FLAG_HTML_REPLACED,
    FetchResult,
    InboundItem,
    Reject,
)
from inbox.sanitize import CONTROLS, first_line, html_to_text, sanitize_html, without_bidi_controls
from inbox.service_levels import FLAG_SURVEY_ANSWER, ServiceLevels, refresh_stale
from inbox.store import Store
from inbox.store.base import OPERATIONAL_ERRORS, iso

log = logging.getLogger("mainland.ingest")

MAX_SUBJECT_CHARS = 500
SEARCH_TEXT_CHARS = 200_000
MAX_CONTEXT_CHARS = 1000  # the post an item answers, shown above it (connectors trim it shorter)
MAX_CONTEXT_URL_CHARS = 2000


@dataclass
class IngestReport:
    """What one batch did; the counts add up to the items and rejects handed in."""

    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    delivery_updates: int = 0
    #: Old items of erased customers (a re-import or re-fetch): not stored again.
    suppressed: int = 0
    #: Customers' edits and withdrawals applied to stored messages, and those about messages we do not hold.
    changes: int = 0
    changes_dropped: int = 0
    message_ids: list[int] = field(default_factory=list)
    new_conversations: list[int] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.delivery_updates += other.delivery_updates
        self.suppressed += other.suppressed
        self.changes += other.changes
        self.changes_dropped += other.changes_dropped
        self.message_ids += other.message_ids
        self.new_conversations += other.new_conversations


@dataclass
class _Prepared:
    item: InboundItem
    html: str | None
    text: str
    flags: set[str]
    attachments: list[dict]


class Ingestor:
    """Stores fetched items. One per store; cheap to make."""

    def __init__(
        self,
        store: Store,
        attachments: AttachmentStore,
        *,
        instance_id: str,
        own_addresses: Collection[str] = (),
        now: Callable[[], dt.datetime] = lambda: clock.now(),
        phone_region: str | None = None,
        team_for_channel: Callable[[str], str | None] | None = None,
        service_levels: ServiceLevels | None = None,
        triage: triage_flow.TriageFlow | None = None,
        after_ingest: Callable[[IngestReport, dt.datetime], None] | None = None,
    ) -> None:
        self.store = store
        #: Called after each committed batch (automation rules, inbox/rules.py); its failures are logged.
        self.after_ingest = after_ingest
        #: Judges each item clean, suspicious or spam (inbox/triage_flow.py); by default blocks alone.
        self.triage = triage or triage_flow.TriageFlow()
        #: Policies for the due times set on new and answered-to conversations (None: the worker sets them).
        self.service_levels = service_levels
        #: Channel name -> name of the team its new conversations belong to (the `team` channel setting).
        self.team_for_channel = team_for_channel
        self.attachments = attachments
        self.instance_id = instance_id
        self.own_addresses = {a.lower() for a in own_addresses}
        self.now = now
        #: Country of phone numbers written without country code (config `default_phone_region`).
        self.phone_region = phone_region
        #: HTML worked out ahead of the batch being stored (see `ingest`).
        self._sanitized: Mapping[str, Sanitized] = {}

    def ingest(self, channel: str, result: FetchResult, *, save_cursor: bool = True,
               sanitized: Mapping[str, Sanitized] | None = None) -> IngestReport:
        """Store `result` and (unless told not to) its cursor, all in one transaction.

        `sanitized` maps an item's HTML to what `sanitize_html` makes of it and the text derived from
        it, when that was worked out elsewhere (`inbox.mail_batch.presanitize` in the parsing
        processes); the rest is worked out here.
        """
        report = IngestReport()
        self._sanitized = sanitized or {}
        rejects: list[Reject] = list(result.rejects)
        known = self.store.known_external_ids(channel, [i.external_id for i in result.items])
        earlier = self.store.stored_contents(channel, [i.external_id for i in result.items
                                                       if i.external_id in known and i.message_id])
        prepared: list[_Prepared] = []
        #: Items of this batch by external_id; their stored text is worked out only if a twin follows.
        seen: dict[str, InboundItem] = {}
        for item in result.items:
            if item.external_id in known or item.external_id in seen:
                first = seen.get(item.external_id)
                if first is not None and first.message_id and item.external_id not in earlier:
                    earlier[item.external_id] = (_content_text(first), " ".join(sorted(first.flags)))
                if _differs(item, earlier.get(item.external_id)):
                    rejects.append(_different_content(item))
                else:
                    report.duplicates += 1
                continue
            seen[item.external_id] = item
            if is_suppressed(self.store, item, region=self.phone_region):
                report.suppressed += 1
                continue
            try:
                prepared.append(self._prepare(item))
            except Exception as exc:  # a poison item must not block the batch
                log.warning("item %s of %s quarantined: %s", item.external_id, channel, exc)
                rejects.append(Reject(raw=item.raw or _item_json(item), reason=f"could not be normalized: {exc}",
                                      source_ref=item.source_ref, exception=exception_text(exc)))

        self._sanitized = {}
        now = iso(self.now())
        with self.triage.model_opened(), self.store.write(journals_in_memory=True):
            # The batch's messages go into the search index together at the end of the loop: a third
            # of the cost of storing one when each was indexed on its own (m044).
            with self.store.search_index_deferred():
                for prep in prepared:
                    try:
                        # One item that cannot be written (a bug, a constraint) must not fail its whole
                        # page: it is rolled back alone and quarantined. Database trouble (locked, disk
                        # full) still fails the page, which is then retried with its cursor.
                        with self.store.savepoint():
                            message_id = self._store_one(channel, prep, now, report)
                    except OPERATIONAL_ERRORS:
                        raise
                    except Exception as exc:
                        log.warning("item %s of %s quarantined while storing: %s", prep.item.external_id, channel,
                                    exc)
                        rejects.append(Reject(raw=prep.item.raw or _item_json(prep.item),
                                              reason=f"could not be stored: {exc}", source_ref=prep.item.source_ref,
                                              exception=exception_text(exc)))
                        continue
                    if message_id is None:
                        report.duplicates += 1
                    else:
                        report.stored += 1
                        report.message_ids.append(message_id)
            for update in result.updates:
                if self.store.apply_delivery_update(channel, update.provider_id, update.status, update.error,
                                                    DELIVERY_ORDER):
                    report.delivery_updates += 1
            for change in result.changes:
                # After the page's items: an edit may arrive in the same page as its message.
                at = iso(change.at) if change.at else now
                if self.store.message_changes.apply(channel, change.external_id, change.kind,
                                                    _changed_text(change.text), at):
                    report.changes += 1
                else:
                    report.changes_dropped += 1
            for reject in rejects:
                self.store.quarantine_put(channel, reject.raw, reject.reason, source_ref=reject.source_ref,
                                          exception=reject.exception, now=now)
                report.quarantined += 1
            if save_cursor:
                self.store.save_cursor(channel, result.cursor, now)
            if self.service_levels is not None and report.message_ids:
                # Due times of the conversations this batch touched (the triggers marked them stale).
                refresh_stale(self.store, self.service_levels, self.now())
        if report.new_conversations:
            # After the commit, outside the batch's transaction: routing never slows or fails ingest.
            routing.route_new(self.store, report.new_conversations, self.now())
        if self.after_ingest is not None and report.message_ids:
            try:
                self.after_ingest(report, self.now())
            except Exception:  # rules never cost the messages, which are committed already
                log.exception("after-ingest hook failed")
        return report

    def ingest_one(self, channel: str, item: InboundItem) -> IngestReport:
        """Store a single item without touching any cursor (web forms, webhooks, reprocessing)."""
        return self.ingest(channel, FetchResult(items=[item], cursor=None), save_cursor=False)

    # Steps ---------------------------------------------------------------------------------------

    def _note_evidence(self, customer_id: int, item: InboundItem, text: str, channel: str, message_id: int,
                       now: str) -> None:
        # Merge-suggestion evidence is best effort: it must never cost the message itself.
        try:
            with self.store.savepoint("evidence"):
                note_item_evidence(self.store, customer_id, item, text, channel=channel, message_id=message_id,
                                   now=now, region=self.phone_region)
        except Exception:
            log.exception("merge evidence for message %s failed", message_id)

    def _prepare(self, item: InboundItem) -> _Prepared:
        if item.author.name != without_bidi_controls(item.author.name):
            # A name is shown in lists, JSON and mail headers alike: it is stored without disguises.
            item = dataclasses.replace(item, author=dataclasses.replace(
                item.author, name=without_bidi_controls(item.author.name)))
        flags = set(item.flags) | triage.loop_flags(item, instance_id=self.instance_id,
                                                     own_addresses=self.own_addresses)
        html = None
        text = item.text or ""
        if item.html:
            known = self._sanitized.get(item.html)
            html, replaced, derived = known if known is not None else (*sanitize_html(item.html), None)
            if replaced:
                flags.add(FLAG_HTML_REPLACED)
                html = None
            if not text.strip():
                text = (derived if derived is not None else html_to_text(html)) if html else ""
        attachments = []
        for index, att in enumerate(item.attachments, start=1):
            meta = {
                "filename": safe_filename(att.filename, index, att.content_type),
                "content_type": (att.content_type or "application/octet-stream").lower()[:100],
                "size": att.size if att.size is not None else len(att.data or b""),
                "content_id": att.content_id,
                "inline": att.inline,
                "stored": att.data is not None,
                "type_mismatch": type_mismatch(att.content_type or "", att.data),
            }
            if att.data is not None:
                meta["sha256"] = self.attachments.put(att.data)
            attachments.append(meta)
        return _Prepared(item=item, html=html, text=text, flags=flags, attachments=attachments)

    def _store_one(self, channel: str, prep: _Prepared, now: str, report: IngestReport) -> int | None:
        item = prep.item
        # Anyone can type someone else's address into a form: say so when it joins a known customer.
        claimed = not item.author.proven and is_known_identity(self.store, item.author, region=self.phone_region)
        customer_id = resolve_author(self.store, item.author, now, region=self.phone_region)
        decision = find_conversation(self.store, item, customer_id)
        verdict, facts = self.triage.judge(self.store, channel, item, prep.text, customer_id,
                                           decision.conversation_id, region=self.phone_region)
        flags = prep.flags | decision.flags | ({FLAG_CLAIMED_ADDRESS} if claimed else set())
        automatic = bool(flags & AUTOMATIC_FLAGS)
        subject = (item.subject or "")[:MAX_SUBJECT_CHARS]
        conversation_id = decision.conversation_id
        # A rating answering our chat survey is recorded as the answer; it does not reopen anything.
        answer = None if automatic else csat.match_answer(self.store, channel, item, customer_id, conversation_id,
                                                           prep.text, now)
        if answer is not None:
            conversation_id = answer.conversation_id
            flags.add(FLAG_SURVEY_ANSWER)
        new_conversation = conversation_id is None
        # Spam, and the suspicious until a person decides, start out of the queue (status spam).
        kept_out = verdict.verdict != triage_flow.CLEAN
        if new_conversation:
            conversation_id = self.store.create_conversation(
                token=unused_token(self.store), customer_id=customer_id, channel=channel, thread_key=item.thread_key,
                subject=subject or first_line(prep.text), public=item.public, automatic=automatic,
                flags=" ".join(sorted(flags)), now=now, status="spam" if kept_out else "new",
            )
            if verdict.verdict == triage_flow.SUSPICIOUS:
                self.store.triage.hold(conversation_id)
            team_id = self._team_id(channel)
            if team_id is not None:
                self.store.set_conversation_team(conversation_id, team_id)
        message_id = self.store.insert_message({
            "conversation_id": conversation_id,
            "channel": channel,
            "external_id": item.external_id,
            "direction": "in",
            "customer_id": customer_id,
            "author_name": item.author.name,
            "author_handle": item.author.handle,
            "subject": subject,
            "text": prep.text[:SEARCH_TEXT_CHARS] if len(prep.text) > SEARCH_TEXT_CHARS else prep.text,
            "html": prep.html,
            "message_id": item.message_id,
            "refs": " ".join(item.references),
            "flags": " ".join(sorted(flags)),
            "defects": " ".join(item.defects),
            "headers": json.dumps(item.headers),
            "source_ref": item.source_ref,
            "size": item.size,
            "sent_at": iso(item.sent_at) if item.sent_at else None,
            "received_at": now,
            "context_text": (item.context_text or "")[:MAX_CONTEXT_CHARS] or None,
            "context_url": (item.context_url or "")[:MAX_CONTEXT_URL_CHARS] or None,
            "spam_verdict": verdict.verdict,
            "spam_probability": verdict.probability,
            "spam_model_version": verdict.model_version,
            "spam_reason": verdict.reason,
        })
        if message_id is None:
            return None
        if new_conversation:
            self._queue_for_review(channel, conversation_id, message_id, verdict, facts, now)
        if not automatic and verdict.verdict != triage_flow.SPAM:
            self._note_evidence(customer_id, item, prep.text, channel, message_id, now)
        if item.raw is not None:
            self.store.insert_raw(message_id, item.raw)
        for meta in prep.attachments:
            self.store.insert_attachment(message_id, meta)
        if decision.bounced_message_ids:
            self.store.mark_outbound_bounced(decision.bounced_message_ids, first_line(prep.text))
        if answer is not None:
            csat.record_answer(self.store, answer, message_id, now)
        if not new_conversation:
            # An auto-reply, a bounce, a survey answer or spam is added to the thread but does not reopen it.
            self.store.note_inbound(conversation_id, now, reopen=not automatic and answer is None
                                    and verdict.verdict != triage_flow.SPAM)
        elif not kept_out:
            report.new_conversations.append(conversation_id)
        return message_id

    def _queue_for_review(self, channel: str, conversation_id: int, message_id: int,
                          verdict: triage_flow.Verdict, facts: dict, now: str) -> None:
        """A suspicious item waits for a person; a share of the machine's own decisions goes too, as a sample."""
        if verdict.verdict == triage_flow.SUSPICIOUS:
            kind = "suspicious"
        elif verdict.reason in {triage_flow.REASON_MODEL, triage_flow.REASON_UPSTREAM} and self.triage.wants_sample():
            kind = "sample"
        else:
            return
        self.store.triage.add_review(message_id=message_id, conversation_id=conversation_id, channel=channel,
                                     kind=kind, machine_verdict=verdict.verdict, probability=verdict.probability,
                                     model_version=verdict.model_version, reason=verdict.reason, facts=facts,
                                     now=now)

    def _team_id(self, channel: str) -> int | None:
        name = self.team_for_channel(channel) if self.team_for_channel else None
        if not name:
            return None
        team_id = self.store.team_id_by_name(name)
        if team_id is None:
            # Unrouted rather than lost: the conversation lands in the pool every agent sees.
            log.warning("channel %s names team %r, which does not exist; conversation left unrouted", channel, name)
        return team_id


def _changed_text(text: str | None) -> str | None:
    """A customer's edited text as we store it: control characters other than line breaks removed."""
    return None if text is None else CONTROLS.sub("", text)


def _content_text(item: InboundItem) -> str:
    """The text an item is stored with (as `_prepare` makes it), for comparing two with one Message-ID."""
    if item.text and item.text.strip():
        return item.text[:SEARCH_TEXT_CHARS]
    html = sanitize_html(item.html)[0] if item.html else None
    return html_to_text(html)[:SEARCH_TEXT_CHARS] if html else ""


def _differs(item: InboundItem, earlier: tuple[str, str] | None) -> bool:
    """A known Message-ID (and sender, date, subject) whose text is not the stored one's.

    A re-delivery parses to the same text; a different text is another message behind a reused or
    forged Message-ID, which must not vanish as a duplicate. Text cut at a size cap is not compared.
    """
    if earlier is None or not item.message_id:
        return False
    text, flags = earlier
    capped = {models.FLAG_OVERSIZED, models.FLAG_TRUNCATED}
    if capped & item.flags or capped & set(flags.split()):
        return False
    return " ".join(_content_text(item).split()) != " ".join(text.split())


def _different_content(item: InboundItem) -> Reject:
    return Reject(raw=item.raw or _item_json(item), source_ref=item.source_ref,
                  reason=f"same Message-ID, different content: <{item.message_id}> is already stored with "
                         "the same sender, date and subject but another text")


def _item_json(item: InboundItem) -> bytes:
    data = dataclasses.asdict(item)
    data.pop("raw", None)
    for att in data.get("attachments", []):
        att.pop("data", None)
    return json.dumps(data, default=str).encode()
