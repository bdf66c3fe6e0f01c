"""The whole SpamAssassin corpus (6,046 real messages) through `mainland import`: none lost, none doubled.

Every message ends up either stored or held in quarantine with a reason; a second import adds
nothing; the database is sound; no stored HTML can run script; every attachment file on disk has
the content its row claims.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from inbox import config as config_module
from inbox.importer import import_mailbox
from inbox.runtime import Mainland
from tests.corpus import messages_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def imported(spam_assassin_corpus, tmp_path_factory):
    """The corpus imported once into a fresh database; yields (mainland, store, folder, first report)."""
    tmp = tmp_path_factory.mktemp("corpus")
    folder = messages_folder(spam_assassin_corpus, tmp / "mail")
    mainland = Mainland(config_module.load(None, overrides={"database": str(tmp / "mainland.db"),
                                                            "data_dir": str(tmp / "data")}))
    store = mainland.open_store(migrate=True)
    report = import_mailbox(store, mainland.ingestor(store), folder,
                            max_bytes=mainland.config.max_message_bytes,
                            max_attachment_bytes=mainland.config.max_attachment_bytes)
    yield mainland, store, folder, report
    store.close()


def test_every_message_is_stored_or_held_with_a_reason(imported, spam_assassin_corpus):
    _, store, folder, report = imported
    assert report.complete and report.messages == len(spam_assassin_corpus) == 6046
    stored = store.execute("SELECT count(*) FROM messages").fetchone()[0]
    held = store.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert stored + held == 6046
    assert (report.stored, report.quarantined) == (stored, held)
    # Each file is accounted for by its own row, not just by the totals.
    refs = {r[0] for r in store.execute("SELECT source_ref FROM messages UNION ALL SELECT source_ref FROM quarantine")}
    expected = {str(folder / p.parent.name / p.name) for p in spam_assassin_corpus}
    assert refs == expected
    reasons = [r[0] for r in store.execute("SELECT reason FROM quarantine")]
    assert all(reason and reason.strip() for reason in reasons)


def test_importing_the_corpus_again_adds_nothing(imported):
    mainland, store, folder, _ = imported
    before = store.counts()
    quarantine_rows = store.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    nothing_new = import_mailbox(store, mainland.ingestor(store), folder)
    assert (nothing_new.skipped, nothing_new.messages) == (6046, 0)
    # Read every message again, past the cursor: dedupe alone must keep it single.
    reread = import_mailbox(store, mainland.ingestor(store), folder, from_start=True,
                            max_bytes=mainland.config.max_message_bytes,
                            max_attachment_bytes=mainland.config.max_attachment_bytes)
    assert reread.messages == 6046 and reread.stored == 0
    assert store.counts() == before
    assert store.execute("SELECT count(*) FROM quarantine").fetchone()[0] == quarantine_rows


def test_the_database_passes_its_integrity_check(imported):
    _, store, _, _ = imported
    assert store.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert store.execute("PRAGMA foreign_key_check").fetchall() == []


def test_every_stored_message_has_a_sender(imported):
    _, store, _, _ = imported
    nameless = store.execute("SELECT count(*) FROM messages WHERE trim(coalesce(author_handle, '')) = ''")
    assert nameless.fetchone()[0] == 0


def test_no_stored_html_can_run_script(imported):
    _, store, _, _ = imported
    with_html = store.execute("SELECT count(*) FROM messages WHERE html IS NOT NULL").fetchone()[0]
    assert with_html > 500  # the corpus is full of HTML mail: the check below looks at something
    for needle in ("<script", "onerror=", "javascript:"):
        hits = store.execute("SELECT id FROM messages WHERE instr(lower(html), ?) > 0 LIMIT 5", (needle,))
        assert hits.fetchall() == [], needle


def test_every_stored_attachment_is_on_disk_with_its_hash(imported):
    mainland, store, _, _ = imported
    rows = store.execute("SELECT id, sha256, size FROM attachments WHERE stored = 1").fetchall()
    assert len(rows) > 50
    root = Path(mainland.config.attachments_dir)
    for attachment_id, sha256, size in rows:
        path = root / sha256[:2] / sha256[2:4] / sha256
        assert path.is_file(), f"attachment {attachment_id}: {path} missing"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256, f"attachment {attachment_id}: content differs"
        assert len(data) == size
