"""A customer's data protection rights: export everything held about them, and erase it.

Export (GDPR Art. 15/20) writes one ZIP:

    README.txt                  what the files are
    contact.json                the record, earlier records merged into it, identities, claimed
                                contact details, attributes and notes
    conversations/<id>.json     each conversation with every message: the customer's, our replies
                                and internal notes, each marked by `direction`
    attachments/<message>-<attachment>-<name>   the original files
    raw/<message>.eml|.json     the original bytes as the channel delivered them

Erase (Art. 17) deletes the customer, records merged into them, their conversations (with our
replies and notes in them), messages, raw messages, attachments, identities, claims, notes,
suggestions, merges, quarantine entries that carry their address, and the search index entries;
then the attachment files no other attachment references, and the write-ahead log. What is left
is an audit line "customer_erased" with ids and counts, and a SHA-256 of each erased identity so
that a re-import of old items does not bring them back (`inbox.customers.is_suppressed`); a new
message written after the erasure starts a new customer.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from inbox import clock
from inbox.attachments import AttachmentStore, safe_filename
from inbox.store import Store
from inbox.store.base import iso

README = """Everything Mainland holds about one customer, exported {when}.

contact.json              the customer record, records merged into it, identities (email addresses,
                          phone numbers, accounts), contact details found elsewhere, attributes, notes
conversations/<id>.json   every conversation with every message: "direction" is "in" (the
                          customer), "out" (our reply) or "note" (an internal note of ours)
attachments/              the files that came with messages, as they were received
raw/                      each message's original bytes as the channel delivered them
"""


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=_jsonable)


def write_export(store: Store, attachments: AttachmentStore, customer_id: int, target: BinaryIO, *,
                 actor: str, now: dt.datetime | None = None) -> dict[str, int]:
    """Write the ZIP for `customer_id` to `target`; returns counts. Audit-logged (no personal data)."""
    moment = now or clock.now()
    data = store.customer_export(customer_id)
    messages_by_conversation: dict[int, list[dict[str, Any]]] = {}
    attachments_by_message: dict[int, list[dict[str, Any]]] = {}
    for att in data["attachments"]:
        attachments_by_message.setdefault(att["message_id"], []).append(att)
    files = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", README.format(when=iso(moment)))
        contact = {
            "customer": data["customer"],
            "merged_records": data["merged_records"],
            "identities": data["identities"],
            "claimed_contact_details": data["claims"],
            "attributes": data["attributes"],
            "notes": data["notes"],
        }
        zf.writestr("contact.json", _dump(contact))
        for message in data["messages"]:
            message = dict(message)
            message["attachments"] = []
            for att in attachments_by_message.get(message["id"], []):
                name = safe_filename(att["filename"], content_type=att["content_type"])
                entry = {k: att[k] for k in ("id", "filename", "content_type", "size", "sha256", "stored")}
                if att["stored"] and att["sha256"]:
                    path = f"attachments/{message['id']}-{att['id']}-{name}"
                    try:
                        zf.writestr(path, attachments.read(att["sha256"]))
                        entry["file"] = path
                        files += 1
                    except (FileNotFoundError, ValueError):
                        entry["file"] = None
                message["attachments"].append(entry)
            raw = data["raw"].get(message["id"])
            if raw is not None:
                ext = "eml" if raw[:200].lstrip().startswith((b"From", b"Received", b"Return-Path", b"MIME", b"Date",
                                                               b"Message-ID", b"Delivered-To", b"To:", b"Subject"))\
                    else "json" if raw[:1] in (b"{", b"[") else "bin"
                message["raw_file"] = f"raw/{message['id']}.{ext}"
                zf.writestr(message["raw_file"], raw)
            messages_by_conversation.setdefault(message["conversation_id"], []).append(message)
        for conversation in data["conversations"]:
            zf.writestr(f"conversations/{conversation['id']}.json", _dump({
                "conversation": conversation,
                "messages": messages_by_conversation.get(conversation["id"], []),
            }))
        # Messages of theirs that sit in someone else's conversation (a misthread kept apart).
        stray = [m for cid, ms in messages_by_conversation.items() if cid not in data["conversation_ids"] for m in ms]
        if stray:
            zf.writestr("conversations/other.json", _dump({"messages": stray}))
    counts = {"conversations": len(data["conversations"]), "messages": len(data["messages"]), "files": files}
    with store.write():
        store.audit(iso(moment), actor, "customer_exported", "customer", customer_id, **counts)
    return counts


def export_to_dir(store: Store, attachments: AttachmentStore, customer_id: int, out_dir: str | Path, *,
                  actor: str) -> Path:
    """Write `customer-<id>-<date>.zip` into `out_dir` (created if needed) and return its path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    now = clock.now()
    path = folder / f"customer-{customer_id}-{now:%Y%m%d-%H%M%S}.zip"
    tmp = path.with_suffix(".zip.part")
    try:
        with tmp.open("wb") as fh:
            write_export(store, attachments, customer_id, fh, actor=actor, now=now)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def erase_customer(store: Store, attachments: AttachmentStore, customer_id: int, *, actor: str,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    """Erase a customer for good. Returns what went: ids and counts (no personal data)."""
    when = iso(now or clock.now())
    result = store.erase_customer(customer_id, actor=actor, now=when)
    in_use = store.attachment_hashes_in_use(result["hashes"])
    removed = 0
    for digest in result["hashes"]:
        # A file shared with another customer's attachment (same bytes) stays for them.
        if digest not in in_use and attachments.delete(digest):
            removed += 1
    # Old page images in the write-ahead log would still hold the deleted rows.
    store.vacuum_wal()
    return {"customers": result["customers"], "conversations": len(result["conversations"]),
            "messages": len(result["messages"]), "files_removed": removed}
