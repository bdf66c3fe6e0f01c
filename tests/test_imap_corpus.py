"""The whole SpamAssassin corpus (6,046 real mails) through Dovecot and the email channel.

Every message must end up either stored or quarantined with a reason, polling again must add
nothing, and the result must be the same set of messages as importing the files directly
(parse_email + Ingestor), so the IMAP path loses, doubles and changes nothing on real mail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ItemError
from inbox.attachments import AttachmentStore
from inbox.config import from_mapping
from inbox.ingest import Ingestor
from inbox.mail import parse_email
from inbox.models import FetchResult, Reject
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store import Store
from tests.servers import imap_append_many

pytestmark = pytest.mark.slow

CHANNEL = "corpus"
_LINE_END = re.compile(rb"\r\n|\r(?!\n)|\n")


def as_stored(raw: bytes) -> bytes:
    """A corpus file as the IMAP server holds it: without the mbox "From " line, with CRLF lines.

    imaplib's APPEND turns every line ending into CRLF, as the wire format requires, so the
    direct import must see the same bytes for mail whose id is the hash of its bytes.
    """
    if raw.startswith(b"From "):
        raw = raw[raw.find(b"\n") + 1 :]
    return _LINE_END.sub(b"\r\n", raw)


def mainland_for(account: dict[str, Any], tmp_path: Path, **channel: Any) -> Mainland:
    """A real Mainland built from a config mapping, with one IMAP channel on the test account."""
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "corpus-test",
        "instance_id": "corpus-test",
        "mail_domain": "mainland.test",
        "channels": {CHANNEL: {
            "kind": "imap", "host": account["host"], "port": account["port"], "security": "none",
            "username": account["user"], "password": account["password"], "address": "support@mainland.test",
            **channel,
        }},
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


def poll_until_done(mainland: Mainland, store: Store, max_polls: int = 100) -> tuple[int, int]:
    """Poll as the worker would until a poll finds nothing new; (stored, quarantined) in all."""
    stored = quarantined = 0
    for _ in range(max_polls):
        outcome = poll_channel(mainland, store, CHANNEL)
        assert outcome.ok, outcome.error or outcome.skipped
        stored += outcome.report.stored
        quarantined += outcome.report.quarantined
        if outcome.report.stored == outcome.report.quarantined == outcome.report.duplicates == 0:
            return stored, quarantined
    raise AssertionError(f"still new mail after {max_polls} polls")


def import_directly(raws: list[bytes], tmp_path: Path) -> tuple[set[str], int]:
    """The files through parse_email + Ingestor into another database: (external ids, quarantined)."""
    store = Store(tmp_path / "direct.db")
    store.migrate()
    ingestor = Ingestor(store, AttachmentStore(tmp_path / "direct-attachments"), instance_id="corpus-test",
                        own_addresses={"support@mainland.test"})
    ids: set[str] = set()
    try:
        for start in range(0, len(raws), 100):
            items, rejects = [], []
            for offset, raw in enumerate(raws[start : start + 100]):
                try:
                    items.append(parse_email(raw, channel=CHANNEL, source_ref=f"file:{start + offset}"))
                except ItemError as exc:
                    rejects.append(Reject(raw=raw, reason=str(exc)))
            ids.update(item.external_id for item in items)
            ingestor.ingest(CHANNEL, FetchResult(items=items, cursor=None, rejects=rejects), save_cursor=False)
        counts = store.counts()
        assert counts["messages"] == len(ids)
        return ids, counts["quarantined"]
    finally:
        store.close()


def test_whole_corpus_arrives_once_as_message_or_quarantine(spam_assassin_corpus, imap_account, tmp_path):
    raws = [as_stored(path.read_bytes()) for path in spam_assassin_corpus]
    assert len(raws) == 6046
    imap_append_many(imap_account, raws)

    mainland = mainland_for(imap_account, tmp_path)
    store = mainland.open_store(migrate=True)
    try:
        stored, quarantined = poll_until_done(mainland, store)
        counts = store.counts()
        assert (counts["messages"], counts["quarantined"]) == (stored, quarantined)
        assert stored + quarantined == 6046, "every mail must be a stored message or a quarantine row"
        held = store.quarantined(limit=10_000)
        assert len(held) == quarantined and all(row["reason"] for row in held)

        again = poll_channel(mainland, store, CHANNEL)
        assert again.ok and again.report.stored == again.report.quarantined == 0
        assert store.counts()["messages"] == stored

        direct_ids, direct_quarantined = import_directly(raws, tmp_path)
        assert len(direct_ids) == stored and direct_quarantined == quarantined
        assert store.known_external_ids(CHANNEL, direct_ids) == direct_ids, (
            "the IMAP path and a direct import must give the same messages")
        store.check_integrity()
    finally:
        store.close()
