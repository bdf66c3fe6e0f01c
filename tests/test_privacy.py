"""Export and erasure of a customer (GDPR-01..04): one ZIP with everything; erase leaves no trace.

The erasure oracle is the bytes on disk: after erasing, neither the database file nor its
write-ahead log holds the customer's address or a word only their message used, no FTS index
finds them, and their attachment file is gone unless another customer's attachment shares it.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from inbox import privacy
from inbox.attachments import AttachmentStore
from inbox.cli import main
from inbox.ingest import Ingestor
from inbox.mail import parse_email
from inbox.models import CHANGE_EDITED, Author, FetchResult, InboundItem, MessageChange
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso

ADDRESS = "zeno.quibble@privacy.example"
WORD = "Zwartewaterkloosterzuivel"
PDF = b"%PDF-1.4\n" + b"invoice of zeno quibble " * 40 + b"\n%%EOF"
OTHER_PDF = b"%PDF-1.4\n" + b"somebody else's invoice " * 40 + b"\n%%EOF"


def mail(sender: str, body: str, *, attachment: bytes | None = None, date: str = "Thu, 05 Mar 2026 10:15:02 +0000",
         message_id: str = "<m1@privacy.example>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@mainland.test"
    msg["Subject"] = "My order"
    msg["Date"] = date
    msg["Message-ID"] = message_id
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes()


@pytest.fixture
def world(tmp_path):
    store = Store(tmp_path / "mainland.db")
    store.migrate()
    files = AttachmentStore(tmp_path / "attachments")
    ingestor = Ingestor(store, files, instance_id="test", phone_region="NL")

    def take(raw: bytes, channel: str = "mail"):
        return ingestor.ingest_one(channel, parse_email(raw, channel=channel))

    report = take(mail(f"Zeno Quibble <{ADDRESS}>", f"Hello, the {WORD} arrived broken.", attachment=PDF))
    zeno = store.customer_for_identity("email", ADDRESS)
    # A long Telegram id: the file is searched for it after the erasure, and a short one ("31337") turned up
    # by chance inside a random 19-digit MIME boundary of another message.
    tg = InboundItem(channel="tg", external_id="tg-1", author=Author("7319044826513", "Zeno Quibble", "telegram"),
                     text=f"also me, {ADDRESS}", sent_at=dt.datetime(2026, 3, 5, 11, tzinfo=dt.UTC),
                     raw=b'{"from": {"id": 7319044826513}}')
    ingestor.ingest_one("tg", tg)
    # Zeno edits the chat message: the earlier text (with the address) is kept as history, and is
    # the customer's data like the rest.
    ingestor.ingest("tg", FetchResult(items=[], cursor=None, changes=[MessageChange("tg-1", CHANGE_EDITED,
                                                                                    text="also me")]),
                    save_cursor=False)
    other = take(mail("Olga Other <olga@other.example>", "Another customer, with the same invoice file.",
                      attachment=PDF, message_id="<m2@other.example>"))
    take(mail("Olga Other <olga@other.example>", "And a file of her own.", attachment=OTHER_PDF,
              message_id="<m3@other.example>"))
    conversation = store.execute("SELECT conversation_id FROM messages WHERE id = ?",
                                 (report.message_ids[0],)).fetchone()[0]
    with store.write():
        now = iso(dt.datetime.now(dt.UTC))
        store.insert_message({"conversation_id": conversation, "channel": "mail", "external_id": "note-1",
                              "direction": "note", "text": f"internal: {WORD} case, refund", "received_at": now})
        store.insert_message({"conversation_id": conversation, "channel": "mail", "external_id": "out-1",
                              "direction": "out", "text": "Sorry to hear that, Zeno!", "received_at": now})
        store.add_customer_note(zeno, None, f"Zeno note: {WORD}", now)
        store.set_customer_attribute(zeno, "segment", "gold", now)
        store.quarantine_put("mail", f"From: {ADDRESS}\r\n\r\nunreadable".encode(), "test", source_ref=None, exception=None, now=now)
        store.quarantine_put("mail", b"From: olga@other.example\r\n\r\nunreadable", "test", source_ref=None, exception=None, now=now)
    yield {"store": store, "files": files, "zeno": zeno, "take": take, "path": tmp_path / "mainland.db",
           "olga": store.customer_for_identity("email", "olga@other.example"), "other_report": other}
    store.close()


def test_export_is_one_zip_with_everything_and_nothing_of_others(world, tmp_path):
    store, zeno = world["store"], world["zeno"]
    path = privacy.export_to_dir(store, world["files"], zeno, tmp_path / "out", actor="test")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        contact = json.loads(zf.read("contact.json"))
        conversations = [json.loads(zf.read(n)) for n in names if n.startswith("conversations/")]
        everything = b"".join(zf.read(n) for n in names)
        pdfs = [zf.read(n) for n in names if n.startswith("attachments/")]
    assert {(i["kind"], i["value"]) for i in contact["identities"]} == {("email", ADDRESS)}
    assert contact["attributes"] == {"segment": "gold"}
    assert WORD in contact["notes"][0]["text"]
    directions = sorted(m["direction"] for c in conversations for m in c["messages"])
    assert directions == ["in", "note", "out"]
    assert pdfs == [PDF]
    assert any(n.startswith("raw/") and n.endswith(".eml") for n in names)
    assert b"olga@other.example" not in everything
    audit = store.execute("SELECT actor, details FROM audit_log WHERE action = 'customer_exported'").fetchone()
    assert audit[0] == "test" and ADDRESS not in audit[1]


def _disk_bytes(db_path: Path) -> bytes:
    data = db_path.read_bytes()
    wal = Path(f"{db_path}-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def test_erase_leaves_no_trace_in_the_database_file_the_indexes_or_the_attachments(world):
    store, files, zeno = world["store"], world["files"], world["zeno"]
    store.checkpoint()
    before = _disk_bytes(world["path"])
    assert ADDRESS.encode() in before and WORD.encode() in before, "the oracle must see the data first"
    assert store.execute("SELECT count(*) FROM message_edits WHERE previous_text LIKE ?",
                         (f"%{ADDRESS}%",)).fetchone()[0] == 1, "an edited message's earlier text is held"
    own_file = files.path_for(__import__("hashlib").sha256(PDF).hexdigest())
    other_file = files.path_for(__import__("hashlib").sha256(OTHER_PDF).hexdigest())

    # The Telegram record is the same person (the suggestion an agent confirms first); erasing the
    # merged customer takes both.
    from inbox import customers

    telegram = store.customer_for_identity("telegram", "7319044826513")
    assert store.suggestion_for_pair(zeno, telegram)["status"] == "open"
    customers.merge(store, zeno, telegram, agent_id=None, now=iso(dt.datetime.now(dt.UTC)))
    result = privacy.erase_customer(store, files, zeno, actor="agent:1")
    store.checkpoint()

    after = _disk_bytes(world["path"])
    for needle in (ADDRESS, WORD, "Zeno Quibble", "zeno quibble", "7319044826513"):
        assert needle.encode() not in after, needle
    assert store.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (WORD,)).fetchone()[0] == 0
    assert store.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", ('"zeno"',)).fetchone()[0] == 0
    if store.execute("SELECT 1 FROM sqlite_master WHERE name = 'conversation_search'").fetchone():
        assert store.execute("SELECT count(*) FROM conversation_search WHERE conversation_search MATCH 'zeno'"
                             ).fetchone()[0] == 0
    # The invoice is shared with Olga's attachment (same bytes): it stays for her; Olga is untouched.
    assert own_file.exists() and other_file.exists()
    assert store.identity_owner("email", "olga@other.example") == world["olga"]
    assert store.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 1
    assert result["messages"] == 4 and result["conversations"] == 2 and len(result["customers"]) == 2
    audit = store.execute("SELECT object_id, details FROM audit_log WHERE action = 'customer_erased'").fetchone()
    assert audit[0] == str(zeno) and "zeno" not in audit[1].lower()
    assert store.execute("SELECT count(*) FROM customers WHERE id = ?", (zeno,)).fetchone()[0] == 0


def test_erase_removes_the_file_when_nobody_else_references_it(world):
    store, files = world["store"], world["files"]
    olga = world["olga"]
    other_file = files.path_for(__import__("hashlib").sha256(OTHER_PDF).hexdigest())
    shared = files.path_for(__import__("hashlib").sha256(PDF).hexdigest())
    privacy.erase_customer(store, files, world["zeno"], actor="test")
    privacy.erase_customer(store, files, olga, actor="test")
    assert not other_file.exists() and not shared.exists()
    assert not [p for p in files.root.rglob("*") if p.is_file()]


def test_old_items_do_not_bring_an_erased_customer_back_but_a_new_message_does(world):
    store, take = world["store"], world["take"]
    privacy.erase_customer(store, world["files"], world["zeno"], actor="test")
    replay = take(mail(f"Zeno Quibble <{ADDRESS}>", f"Hello, the {WORD} arrived broken.", attachment=PDF))
    assert replay.stored == 0 and replay.suppressed == 1
    assert store.customer_for_identity("email", ADDRESS) is None
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    fresh = take(mail(f"Zeno Quibble <{ADDRESS}>", "Me again, a new question.", date=tomorrow,
                      message_id="<new@privacy.example>"))
    assert fresh.stored == 1
    new_customer = store.customer_for_identity("email", ADDRESS)
    assert new_customer is not None and new_customer != world["zeno"]
    assert len(store.customer_conversations(new_customer, None)) == 1


def test_erasing_a_merged_customer_erases_the_records_merged_into_it(world):
    from inbox import customers

    store = world["store"]
    tg_customer = store.customer_for_identity("telegram", "7319044826513")
    customers.merge(store, world["zeno"], tg_customer, agent_id=None, now=iso(dt.datetime.now(dt.UTC)))
    result = privacy.erase_customer(store, world["files"], world["zeno"], actor="test")
    assert sorted(result["customers"]) == sorted([world["zeno"], tg_customer])
    assert store.execute("SELECT count(*) FROM customer_merges").fetchone()[0] == 0
    store.checkpoint()
    assert b"7319044826513" not in _disk_bytes(world["path"])


# Command line -------------------------------------------------------------------------------------

@pytest.fixture
def cli_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"database": "cli.db", "data_dir": "data", "secret_key": "test-secret",
                                    "default_phone_region": "NL"}))
    return path


def test_export_and_erase_commands(cli_config, tmp_path):
    mainland = Mainland(__import__("inbox.config", fromlist=["load"]).load(cli_config))
    store = mainland.open_store(migrate=True)
    mainland.ingestor(store).ingest_one("mail", parse_email(mail(f"Zeno <{ADDRESS}>", WORD), channel="mail"))
    zeno = store.customer_for_identity("email", ADDRESS)
    store.close()
    runner = CliRunner()
    out = runner.invoke(main, ["--config", str(cli_config), "export-customer", str(zeno), "--out",
                               str(tmp_path / "exports")], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert zipfile.ZipFile(out.output.strip()).read("contact.json")
    refused = runner.invoke(main, ["--config", str(cli_config), "erase-customer", str(zeno)])
    assert refused.exit_code != 0 and "--yes" in refused.output
    done = runner.invoke(main, ["--config", str(cli_config), "erase-customer", str(zeno), "--yes"],
                         catch_exceptions=False)
    assert done.exit_code == 0 and "1 message" in done.output
    missing = runner.invoke(main, ["--config", str(cli_config), "export-customer", str(zeno), "--out",
                                   str(tmp_path / "exports")])
    assert missing.exit_code != 0 and "no customer" in missing.output


def test_other_records_lose_their_claim_of_an_erased_address(world):
    store = world["store"]
    telegram = store.customer_for_identity("telegram", "7319044826513")
    assert ("email", ADDRESS) in {(c["kind"], c["value"]) for c in store.claims_of(telegram)}
    privacy.erase_customer(store, world["files"], world["zeno"], actor="test")
    # A record that was never merged with them is another customer: it stays, without the claim.
    assert store.live_customer_id(telegram) == telegram
    assert store.claims_of(telegram) == []
    assert store.execute("SELECT count(*) FROM merge_suggestions").fetchone()[0] == 0
