"""Customers and their identities: who wrote an item, whatever channel they used.

On ingest, the author's identity on the channel (an email address, a phone number, a handle) is
normalised (`inbox.identity`) and looked up; an exact match attaches the item to that customer,
otherwise a customer record is created on first contact. That is the only automatic decision.

Everything short of an exact match is *evidence*, and evidence only ever becomes a merge
suggestion for an agent to confirm or reject (`note_item_evidence`, `note_record_evidence`):

- a channel's phone number or address that another record claims (a CRM record's phone),
- an email address or phone number written in a chat message that is another record's identity,
- a close name on the same day on another channel.

Two records with different identities of a single-valued kind (two Telegram accounts, two CRM
references) are penalised and never merged without an agent saying so (`merge`, `force=True`).
A rejected pair is remembered and never suggested again. See docs/customers.md.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from inbox import identity
from inbox.identity import Reason, canonical_kind, normalize_identity
from inbox.models import Author, InboundItem
from inbox.store import Store
from inbox.store.base import iso

#: Suggestions below this score are not kept at all (weaker ones are noise; see SUGGEST_THRESHOLD
#: for what is shown). Kept ones gather later evidence.
KEEP_THRESHOLD = 0.25

__all__ = ["normalize_identity", "resolve_author", "is_suppressed", "note_item_evidence", "note_record_evidence",
           "merge", "confirm_suggestion", "reject_suggestion", "choose_survivor"]


# Ingest ---------------------------------------------------------------------------------------

def resolve_author(store: Store, author: Author, now: str, *, region: str | None = None) -> int:
    """The customer id for `author`, creating the customer on first contact. Call inside a write."""
    kind = canonical_kind(author.identity_kind)
    value = normalize_identity(kind, author.handle, region)
    customer_id = store.customer_for_identity(kind, value)
    if customer_id is None:
        customer_id = store.create_customer_record(author.name or author.handle, now, matchable=author.name_given)
        store.attach_identity(customer_id, kind, value, author.name, author.valid, now)
    elif author.name and author.name_given:
        store.fill_customer_name_key(customer_id, author.name, now)
    return customer_id


def is_known_identity(store: Store, author: Author, *, region: str | None = None) -> bool:
    """True when some customer already has `author`'s identity."""
    kind = canonical_kind(author.identity_kind)
    return store.customer_for_identity(kind, normalize_identity(kind, author.handle, region)) is not None


def is_suppressed(store: Store, item: InboundItem, *, region: str | None = None) -> bool:
    """True for an old item of an erased identity: written before the erasure, so not "writing again".

    Items without a date count as new: dropping a customer's fresh message would be worse than
    keeping an undated old one.
    """
    if item.sent_at is None:
        return False
    kind = canonical_kind(item.author.identity_kind)
    value = normalize_identity(kind, item.author.handle, region)
    return store.is_erased_identity(kind, value, iso(item.sent_at))


def note_item_evidence(store: Store, customer_id: int, item: InboundItem, text: str, *, channel: str,
                       message_id: int | None, now: str, region: str | None = None) -> list[int]:
    """Look for evidence that the author of a stored item is also another record; returns the
    ids of suggestions created or strengthened. Call inside the ingest write, after the insert."""
    kind = canonical_kind(item.author.identity_kind)
    value = normalize_identity(kind, item.author.handle, region)
    # A channel's stand-in name ("Website visitor 3f9a1c") says nothing about the person: every anonymous
    # visitor of a day would be compared with every other (bench/chat_load.py).
    key = identity.name_key(item.author.name) if item.author.name_given else ""
    candidates: dict[int, list[Reason]] = defaultdict(list)

    # The channel's identity is something another record claims (a CRM phone, an address a chat mentioned).
    holders = [h for h in store.claim_holders(kind, value) if h[0] != customer_id]
    for other, source in holders:
        code = {"phone": "same_phone"}.get(kind, "email_in_text" if source == "message" else "same_email")
        if kind == "phone" and source == "message":
            code = "phone_in_text"
        candidates[other].append(Reason(code, value, identity.shared_claim_weight(identity.WEIGHTS[code],
                                                                                 len(holders))))

    # Contact details typed into a chat message.
    if kind in identity.chat_kinds() and text:
        for address in identity.emails_in_text(text):
            store.add_claim(customer_id, "email", address, "message", now, message_id)
            owner = store.identity_owner("email", address)
            if owner is not None and owner != customer_id:
                candidates[owner].append(Reason("email_in_text", address, identity.WEIGHTS["email_in_text"]))
        for number in identity.phones_in_text(text, region):
            if kind == "phone" and number == value:
                continue
            store.add_claim(customer_id, "phone", number, "message", now, message_id)
            owner = store.identity_owner("phone", number)
            if owner is not None and owner != customer_id:
                candidates[owner].append(Reason("phone_in_text", number, identity.WEIGHTS["phone_in_text"]))
            record_holders = [h for h in store.claim_holders("phone", number)
                              if h[0] != customer_id and h[1] in ("import", "api", "agent")]
            for other, _source in record_holders:
                candidates[other].append(Reason("phone_in_text", number, identity.shared_claim_weight(
                    identity.WEIGHTS["phone_in_text"], len(record_holders))))

    # A close name on the same day on another channel; the same uncommon name on any day.
    if key and identity.is_full_name(key):
        day = (item.sent_at or dt.datetime.fromisoformat(now.replace("Z", "+00:00"))).astimezone(dt.UTC)
        day_text = day.date().isoformat()
        blocks = identity.name_blocks(key)
        counts = store.name_token_counts(identity.name_tokens(key))
        total = max(counts.get("", 0), 1)
        active = store.active_on(day_text)
        for other, other_channel, other_key, other_day in store.sightings([day_text], blocks, customer_id):
            similarity = identity.name_similarity(key, other_key)
            if similarity < identity.CLOSE_NAME:
                continue
            if other_key != key:
                counts.update(store.name_token_counts(identity.name_tokens(other_key)))
            pair = (key, other_key)
            expected = min(identity.expected_namesakes(key, counts, pair),
                           identity.expected_namesakes(other_key, counts, pair))
            weight = identity.close_name_weight(similarity, expected * active / total)
            if other_channel == channel:
                # Two addresses on one channel (home and work mail) happen, but less than two channels.
                weight *= 0.6
            first, second = sorted([channel, other_channel])
            when = min(day_text, other_day)
            candidates[other].append(Reason("close_name_same_day", f"{when} {first} / {second}", weight))
        store.add_sighting(day_text, blocks, customer_id, channel, key)
        # Besides this record and one namesake, how many would carry the name by chance?
        expected = identity.expected_namesakes(key, counts, (key, key))
        if expected < identity.RARE_NAME:
            for other in store.customers_named(key, customer_id):
                candidates[other].append(Reason("rare_name", key, identity.rare_name_weight(expected)))

    return _suggest(store, customer_id, candidates, key, now)


def note_record_evidence(store: Store, customer_id: int, *, identities: list[tuple[str, str]] = (),
                         claims: list[tuple[str, str]] = (), now: str) -> list[int]:
    """Evidence from a record changed by an import or the API: new identities and claimed numbers."""
    candidates: dict[int, list[Reason]] = defaultdict(list)
    for kind, value in claims:
        owner = store.identity_owner(kind, value)
        if owner is not None and owner != customer_id:
            code = "same_phone" if kind == "phone" else "same_email"
            candidates[owner].append(Reason(code, value, identity.WEIGHTS[code]))
    for kind, value in identities:
        for other, source in store.claim_holders(kind, value):
            if other != customer_id and source == "message":
                code = "email_in_text" if kind == "email" else "phone_in_text"
                candidates[other].append(Reason(code, value, identity.WEIGHTS.get(code, 0.8)))
    key = store.customer_record(customer_id)["name_key"]
    return _suggest(store, customer_id, candidates, key, now)


def _suggest(store: Store, customer_id: int, candidates: dict[int, list[Reason]], key: str, now: str) -> list[int]:
    saved = []
    mine = store.identity_kinds(customer_id) if candidates else {}
    for raw_other, reasons in candidates.items():
        other = store.live_customer_id(raw_other)
        if other is None or other == customer_id:
            continue
        existing = store.suggestion_for_pair(customer_id, other)
        if existing is not None and existing["status"] != "open":
            continue  # confirmed, or rejected: remembered, never suggested again
        evidence = [r.as_dict() for r in reasons]
        old = json.loads(existing["reasons"]) if existing else []
        # Name and conflict adjustments are recomputed from the records as they are now.
        kept = [r for r in old if r["code"] not in ("similar_name", "different_name", "conflict")]
        merged = kept + [r for r in evidence if (r["code"], r["detail"]) not in {(k["code"], k["detail"]) for k in kept}]
        other_row = store.customer_record(other)
        if any(r["code"] not in ("close_name_same_day", "rare_name") for r in merged):
            merged += [r.as_dict() for r in identity.name_reasons(key or store.customer_record(customer_id)["name_key"],
                                                                  other_row["name_key"])]
        merged += [r.as_dict() for r in identity.conflict_reasons(mine, store.identity_kinds(other))]
        if other_row["crm_ref"] and store.customer_record(customer_id)["crm_ref"] and (
                other_row["crm_ref"] != store.customer_record(customer_id)["crm_ref"]):
            merged.append(Reason("conflict", "crm_ref", -0.6).as_dict())
        score = identity.combine(merged)
        if existing is None and score < KEEP_THRESHOLD:
            continue
        saved.append(store.save_suggestion(customer_id, other, score, merged, now))
    return saved


# Merging ----------------------------------------------------------------------------------------

def choose_survivor(store: Store, a: int, b: int) -> tuple[int, int]:
    """(survivor, merged): the record with a CRM reference survives, else the older one."""
    ra, rb = store.customer_record(a), store.customer_record(b)
    if bool(ra["crm_ref"]) != bool(rb["crm_ref"]):
        return (a, b) if ra["crm_ref"] else (b, a)
    return (a, b) if a < b else (b, a)


def merge(store: Store, a: int, b: int, *, agent_id: int | None, now: str, suggestion_id: int | None = None,
          force: bool = False) -> int:
    """Merge two customers (survivor chosen by `choose_survivor`); returns the merge id."""
    survivor, merged = choose_survivor(store, a, b)
    return store.merge_customers(survivor, merged, agent_id=agent_id, now=now, suggestion_id=suggestion_id,
                                 force=force)


def confirm_suggestion(store: Store, suggestion_id: int, *, agent_id: int | None, now: str,
                       force: bool = False) -> int:
    """An agent says the pair is one person: merge them and mark the suggestion confirmed."""
    with store.write():
        suggestion = store.suggestion(suggestion_id)
        if suggestion["status"] != "open":
            raise ValueError("this suggestion was already decided")
        merge_id = merge(store, suggestion["customer_a"], suggestion["customer_b"], agent_id=agent_id, now=now,
                         suggestion_id=suggestion_id, force=force)
        store.decide_suggestion(suggestion_id, "confirmed", agent_id, now)
        return merge_id


def reject_suggestion(store: Store, suggestion_id: int, *, agent_id: int | None, now: str) -> None:
    """An agent says the pair are two people: remembered, never suggested again."""
    with store.write():
        suggestion = store.suggestion(suggestion_id)
        if suggestion["status"] != "open":
            raise ValueError("this suggestion was already decided")
        store.decide_suggestion(suggestion_id, "rejected", agent_id, now)
        store.audit(now, f"agent:{agent_id}" if agent_id else "system", "suggestion_rejected", "customer",
                    suggestion["customer_a"], other=suggestion["customer_b"], suggestion=suggestion_id)


def reasons_of(suggestion: dict[str, Any]) -> list[dict[str, Any]]:
    """The reasons of a suggestion row, strongest first."""
    return sorted(json.loads(suggestion["reasons"] or "[]"), key=lambda r: -abs(float(r.get("weight", 0))))
