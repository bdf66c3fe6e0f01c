"""One customer across channels: exact attachment, merge suggestions from evidence, review, merge and unmerge.

Every rule of issue 5's identity resolution has a test here, run through the real ingest pipeline
on a real SQLite file.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from inbox import customers
from inbox.attachments import AttachmentStore
from inbox.customer_import import Record, apply_record
from inbox.identity import SUGGEST_THRESHOLD
from inbox.ingest import Ingestor
from inbox.models import Author, InboundItem
from inbox.store.base import iso
from inbox.store.customers import MergeConflict, UnmergeRefused

DAY = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC)
_ids = iter(range(1, 1_000_000))


@pytest.fixture
def ingest(store, tmp_path):
    ingestor = Ingestor(store, AttachmentStore(tmp_path / "att"), instance_id="test", phone_region="NL")

    def ingest(channel: str, kind: str, handle: str, name: str = "", text: str = "Hello", when: dt.datetime = DAY):
        item = InboundItem(channel=channel, external_id=f"{channel}-{next(_ids)}",
                           author=Author(handle=handle, name=name, identity_kind=kind), text=text, sent_at=when)
        report = ingestor.ingest_one(channel, item)
        assert report.stored == 1, report
        return store.execute("SELECT customer_id FROM messages WHERE id = ?", (report.message_ids[0],)).fetchone()[0]

    return ingest


def crm(store, **fields) -> int:
    with store.write():
        outcome = apply_record(store, Record(**fields), now=iso(DAY), region="NL")
    assert outcome.action in ("create", "update"), outcome
    return outcome.customer_id


def suggestion(store, a: int, b: int) -> dict | None:
    row = store.suggestion_for_pair(a, b)
    if row is not None:
        row["codes"] = {r["code"] for r in json.loads(row["reasons"])}
    return row


def customer_count(store) -> int:
    return store.execute("SELECT count(*) FROM customers WHERE merged_into IS NULL").fetchone()[0]


# Exact matches attach ----------------------------------------------------------------------------

def test_the_same_address_on_mail_and_web_form_is_one_customer(ingest, store):
    by_mail = ingest("mail", "email", "Jan.DeVries@Example.com", "Jan de Vries")
    by_form = ingest("contact", "webform", "jan.devries@example.com", "Jan")
    again = ingest("mail", "email", "JAN.DEVRIES@EXAMPLE.COM")
    assert by_mail == by_form == again
    assert customer_count(store) == 1
    assert [(i["kind"], i["value"]) for i in store.identities_of(by_mail)] == [("email", "jan.devries@example.com")]


def test_a_crm_email_attaches_the_first_mail_to_the_crm_record(ingest, store):
    record = crm(store, crm_ref="C1", name="Jan de Vries", emails=["Jan.DeVries@example.com"])
    assert ingest("mail", "email", "jan.devries@EXAMPLE.com", "J. de Vries") == record


def test_resolve_author_keeps_its_pipeline_signature(store):
    with store.write():
        first = customers.resolve_author(store, Author("+31 6 1234 5678", "Jan", "phone"), iso(DAY))
        second = customers.resolve_author(store, Author("+31612345678", "", "phone"), iso(DAY))
    assert first == second


# Evidence short of an exact match becomes a suggestion ----------------------------------------------

def test_a_whatsapp_number_that_a_crm_record_lists_is_a_suggestion_not_an_attachment(ingest, store):
    record = crm(store, crm_ref="C1", name="Jan de Vries", emails=["jan@example.com"], phones=["06-12345678"])
    whatsapp = ingest("wa", "phone", "+31612345678", "Jan de Vries")
    assert whatsapp != record
    found = suggestion(store, record, whatsapp)
    assert found["status"] == "open" and found["score"] >= SUGGEST_THRESHOLD
    assert {"same_phone", "similar_name"} <= found["codes"]


def test_a_crm_phone_imported_after_the_whatsapp_message_is_a_suggestion_too(ingest, store):
    whatsapp = ingest("wa", "phone", "+31612345678", "Jan")
    record = crm(store, crm_ref="C1", name="Jan de Vries", emails=["jan@example.com"], phones=["+31 6 1234 5678"])
    found = suggestion(store, record, whatsapp)
    assert found["score"] >= SUGGEST_THRESHOLD and "same_phone" in found["codes"]


def test_an_email_address_written_in_a_telegram_message_is_a_suggestion(ingest, store):
    by_mail = ingest("mail", "email", "jan@example.com", "Jan de Vries", when=DAY - dt.timedelta(days=20))
    by_telegram = ingest("tg", "telegram", "424242", "JdV", text="Ik had al gemaild, vanaf JAN@example.com")
    assert by_mail != by_telegram
    found = suggestion(store, by_mail, by_telegram)
    assert found["score"] >= SUGGEST_THRESHOLD and "email_in_text" in found["codes"]


def test_the_same_address_mentioned_first_and_written_from_later_is_a_suggestion(ingest, store):
    by_telegram = ingest("tg", "telegram", "424242", "JdV", text="mail me at jan@example.com")
    by_mail = ingest("mail", "email", "jan@example.com", "Jan", when=DAY + dt.timedelta(days=30))
    assert suggestion(store, by_mail, by_telegram)["score"] >= SUGGEST_THRESHOLD


def test_a_close_name_on_the_same_day_on_two_channels_is_a_suggestion(ingest, store):
    by_mail = ingest("mail", "email", "jdv@example.com", "Jan de Vries")
    by_x = ingest("x", "x", "1001", "Jan de Vriess", when=DAY + dt.timedelta(hours=5))
    found = suggestion(store, by_mail, by_x)
    assert found["score"] >= SUGGEST_THRESHOLD and found["codes"] == {"close_name_same_day"}


def populate_names(store, n: int = 40) -> None:
    """Records that make "Jan" and "de Vries" common names, as they are."""
    with store.write():
        for i in range(n):
            store.create_customer_record(f"Jan Other{i}", iso(DAY))
            store.create_customer_record(f"Piet de Vries{i}", iso(DAY))
            store.create_customer_record(f"Unrelated Person{i}", iso(DAY))


def test_a_common_name_on_another_day_is_not_suggested(ingest, store):
    populate_names(store)
    by_mail = ingest("mail", "email", "jdv@example.com", "Jan de Vries")
    other_day = ingest("x", "x", "1001", "Jan de Vries", when=DAY + dt.timedelta(days=2))
    assert suggestion(store, by_mail, other_day) is None


def test_the_same_name_on_one_channel_counts_for_less_than_across_two(ingest, store):
    populate_names(store, 5)
    by_mail = ingest("mail", "email", "jdv@example.com", "Jan de Vries")
    by_x = ingest("x", "x", "1001", "Jan de Vries")
    second_address = ingest("mail", "email", "jan@work.example", "Jan de Vries")
    across = suggestion(store, by_mail, by_x)["score"]
    same_channel = suggestion(store, by_mail, second_address)
    assert same_channel is None or same_channel["score"] < across


def test_an_uncommon_name_is_evidence_on_any_day(ingest, store):
    populate_names(store)
    by_mail = ingest("mail", "email", "oq@example.com", "Ottoline Quarles")
    later = ingest("instagram", "instagram", "555", "Ottoline Quarles", when=DAY + dt.timedelta(days=20))
    found = suggestion(store, by_mail, later)
    assert found["score"] >= SUGGEST_THRESHOLD and found["codes"] == {"rare_name"}


def test_another_given_name_of_the_same_family_is_not_suggested(ingest, store):
    jan = ingest("mail", "email", "jan@jansen.nl", "Jan Jansen")
    joke = ingest("x", "x", "2002", "Joke Jansen")
    assert suggestion(store, jan, joke) is None


def test_a_common_name_counts_for_less_than_a_rare_one(ingest, store):
    populate_names(store)
    for n in range(4):
        ingest("archive", "email", f"jan{n}@old.example", "Jan de Vries", when=DAY - dt.timedelta(days=100))
    # Many others write that day: more chance that another "Jan de Vries" is among them.
    for n in range(20):
        ingest("web", "email", f"busy{n}@example.com", f"Jan Busy{n}")
    common_mail = ingest("mail", "email", "a@example.com", "Jan de Vries")
    common_x = ingest("x", "x", "1", "Jan de Vries")
    rare_mail = ingest("mail", "email", "b@example.com", "Ottoline Quarles")
    rare_x = ingest("x", "x", "2", "Ottoline Quarles")
    common = suggestion(store, common_mail, common_x)
    assert suggestion(store, rare_mail, rare_x)["score"] >= SUGGEST_THRESHOLD
    assert common is None or common["score"] < SUGGEST_THRESHOLD


def test_conflicting_accounts_of_one_kind_are_never_merged_and_count_against(ingest, store):
    first = ingest("tg", "telegram", "111", "Jan de Vries")
    second = ingest("tg2", "telegram", "222", "Jan de Vries")
    assert first != second
    found = suggestion(store, first, second)
    assert found is None or (found["score"] < SUGGEST_THRESHOLD and "conflict" in found["codes"])
    with pytest.raises(MergeConflict):
        customers.merge(store, first, second, agent_id=None, now=iso(DAY))
    assert customer_count(store) == 2


def test_a_crm_row_pointing_at_two_customers_is_a_conflict_not_a_merge(ingest, store):
    by_mail = ingest("mail", "email", "jan@example.com", "Jan de Vries")
    record = crm(store, crm_ref="C1", name="Jan de Vries", emails=["jan.work@example.com"])
    with store.write():
        outcome = apply_record(store, Record(crm_ref="C1", emails=["jan@example.com"]), now=iso(DAY))
    assert outcome.action == "conflict"
    assert store.identity_owner("email", "jan@example.com") == by_mail
    assert customer_count(store) == 2
    assert "same_record" in suggestion(store, by_mail, record)["codes"]


def test_automatic_mail_gives_no_evidence(ingest, store, tmp_path):
    ingestor = Ingestor(store, AttachmentStore(tmp_path / "att"), instance_id="test")
    ingest("mail", "email", "jan@example.com", "Jan de Vries")
    bounce = InboundItem(channel="x", external_id="auto-1", author=Author("9", "Jan de Vries", "x"), text="away",
                         sent_at=DAY, flags=frozenset({"auto_submitted"}))
    ingestor.ingest_one("x", bounce)
    assert store.execute("SELECT count(*) FROM merge_suggestions").fetchone()[0] == 0


# Review: reject is remembered, confirm merges -------------------------------------------------------

def test_a_rejected_pair_is_never_suggested_again(ingest, store):
    by_mail = ingest("mail", "email", "jan@example.com", "Jan de Vries")
    by_telegram = ingest("tg", "telegram", "424242", "Jan de Vries", text="jan@example.com")
    found = suggestion(store, by_mail, by_telegram)
    customers.reject_suggestion(store, found["id"], agent_id=None, now=iso(DAY))
    ingest("tg", "telegram", "424242", "Jan de Vries", text="really, jan@example.com, call 06-12345678",
           when=DAY + dt.timedelta(days=1))
    ingest("mail", "email", "jan@example.com", "Jan de Vries", when=DAY + dt.timedelta(days=1))
    again = suggestion(store, by_mail, by_telegram)
    assert again["status"] == "rejected" and again["id"] == found["id"]
    assert again["reasons"] == found["reasons"]
    assert store.count_open_suggestions(None) == 0


def test_confirming_moves_identities_conversations_notes_and_attributes(ingest, store):
    record = crm(store, crm_ref="C1", name="Jan de Vries", emails=["jan@example.com"], phones=["0612345678"],
                 attributes={"segment": "gold"})
    whatsapp = ingest("wa", "phone", "+31612345678", "Jan")
    with store.write():
        store.add_customer_note(whatsapp, None, "prefers WhatsApp", iso(DAY))
        store.set_customer_attribute(whatsapp, "segment", "silver", iso(DAY))
        store.set_customer_attribute(whatsapp, "pet", "cat", iso(DAY))
    found = suggestion(store, record, whatsapp)
    merge_id = customers.confirm_suggestion(store, found["id"], agent_id=None, now=iso(DAY))
    merge = store.customer_merge(merge_id)
    assert (merge["survivor_id"], merge["merged_id"]) == (record, whatsapp)
    assert {(i["kind"], i["value"]) for i in store.identities_of(record)} == {
        ("email", "jan@example.com"), ("phone", "+31612345678")}
    assert store.customer_conversations(record, None)[0]["channel"] == "wa"
    assert [n["text"] for n in store.customer_notes(record)] == ["prefers WhatsApp"]
    # The survivor's value wins a clash; what only the other had comes along.
    assert store.customer_attributes(record) == {"segment": "gold", "pet": "cat"}
    assert store.suggestion(found["id"])["status"] == "confirmed"
    audit = store.execute("SELECT details FROM audit_log WHERE action = 'customer_merged'").fetchone()
    assert json.loads(audit[0])["merged"] == whatsapp
    # The next WhatsApp message goes straight to the merged customer.
    assert ingest("wa", "phone", "+31612345678", "Jan", when=DAY + dt.timedelta(days=1)) == record


AFFECTED = {
    "customers": "SELECT * FROM customers WHERE id IN ({ids}) ORDER BY id",
    "identities": "SELECT * FROM identities WHERE customer_id IN ({ids}) ORDER BY id",
    "conversations": "SELECT * FROM conversations WHERE id IN (SELECT id FROM conversations "
                     "WHERE customer_id IN ({ids})) ORDER BY id",
    "messages": "SELECT * FROM messages WHERE customer_id IN ({ids}) ORDER BY id",
    "customer_notes": "SELECT * FROM customer_notes WHERE customer_id IN ({ids}) ORDER BY id",
    "customer_attributes": "SELECT * FROM customer_attributes WHERE customer_id IN ({ids}) ORDER BY customer_id, key",
    "customer_claims": "SELECT * FROM customer_claims WHERE customer_id IN ({ids}) ORDER BY id",
    "merge_suggestions": "SELECT * FROM merge_suggestions WHERE customer_a IN ({ids}) OR customer_b IN ({ids}) "
                         "ORDER BY id",
    "name_sightings": "SELECT * FROM name_sightings WHERE customer_id IN ({ids}) ORDER BY day, block, customer_id, "
                      "channel",
}


def dump(store, ids: list[int]) -> dict[str, list[tuple]]:
    marks = ",".join(str(int(i)) for i in ids)
    tables = {name: [tuple(r) for r in store.execute(sql.format(ids=marks))] for name, sql in AFFECTED.items()}
    conversation_ids = ",".join(str(r[0]) for r in tables["conversations"])
    if conversation_ids and store.engine == "sqlite":
        tables["conversation_search"] = [tuple(r) for r in store.execute(
            f"SELECT rowid, * FROM conversation_search WHERE rowid IN ({conversation_ids}) ORDER BY rowid")]  # noqa: S608
    elif conversation_ids:
        tables["conversation_documents"] = [tuple(r) for r in store.execute(
            "SELECT conversation_id, document::text FROM conversation_documents "  # noqa: S608
            f"WHERE conversation_id IN ({conversation_ids}) ORDER BY conversation_id")]
    return tables


def test_merge_then_unmerge_leaves_every_affected_row_exactly_as_before(ingest, store):
    record = crm(store, crm_ref=None, name="", emails=["jan@example.com"], phones=["0612345678"],
                 attributes={"segment": "gold", "city": "Utrecht"})
    ingest("mail", "email", "jan@example.com", "Jan de Vries")
    whatsapp = ingest("wa", "phone", "+31612345678", "Jan de Vries", text="mijn andere mail: jdv@werk.nl")
    ingest("wa", "phone", "+31612345678", "Jan de Vries", text="en nog iets", when=DAY + dt.timedelta(hours=1))
    third = ingest("x", "x", "777", "Jan de Vries")  # a suggestion that involves both sides
    with store.write():
        store.add_customer_note(whatsapp, None, "note on the WhatsApp side", iso(DAY))
        store.add_customer_note(record, None, "note on the CRM side", iso(DAY))
        store.set_customer_attribute(whatsapp, "segment", "silver", iso(DAY))
        store.set_customer_attribute(whatsapp, "pet", "cat", iso(DAY))
        store.update_customer(whatsapp, {"locale": "nl", "crm_ref": "WA-1"}, iso(DAY))
    ids = [record, whatsapp, third]
    before = dump(store, ids)
    assert before["merge_suggestions"], "the fixture should hold suggestions to re-point"

    merge_id = customers.merge(store, record, whatsapp, agent_id=None, now=iso(DAY + dt.timedelta(days=1)))
    during = dump(store, ids)
    assert during != before
    assert not store.identities_of(store.customer_merge(merge_id)["merged_id"])

    store.unmerge_customers(merge_id, agent_id=None, now=iso(DAY + dt.timedelta(days=2)))
    after = dump(store, ids)
    for table in before:
        assert after[table] == before[table], table
    assert store.customer_merge(merge_id)["undone_at"] is not None
    actions = [r[0] for r in store.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["customer_merged", "customer_unmerged"]


def test_a_merge_another_merge_builds_on_cannot_be_undone_first(ingest, store):
    a = ingest("mail", "email", "a@example.com", "Ann Example")
    b = ingest("wa", "phone", "+31611111111", "Ann Example")
    c = ingest("x", "x", "5", "Ann Example")
    first = customers.merge(store, a, b, agent_id=None, now=iso(DAY))
    second = customers.merge(store, a, c, agent_id=None, now=iso(DAY))
    with pytest.raises(UnmergeRefused):
        store.unmerge_customers(first, agent_id=None, now=iso(DAY))
    store.unmerge_customers(second, agent_id=None, now=iso(DAY))
    store.unmerge_customers(first, agent_id=None, now=iso(DAY))
    with pytest.raises(UnmergeRefused):
        store.unmerge_customers(first, agent_id=None, now=iso(DAY))
    assert customer_count(store) == 3


def test_two_crm_references_need_an_explicit_override(store):
    a = crm(store, crm_ref="C1", name="Jan de Vries", emails=["a@example.com"])
    b = crm(store, crm_ref="C2", name="Jan de Vries", emails=["b@example.com"])
    with pytest.raises(MergeConflict) as refused:
        customers.merge(store, a, b, agent_id=None, now=iso(DAY))
    assert refused.value.conflicts == ["crm_ref"]
    customers.merge(store, a, b, agent_id=None, now=iso(DAY), force=True)
    # Both references still lead to the merged customer.
    assert store.customer_by_crm_ref("C1") == store.customer_by_crm_ref("C2") == a


def test_evidence_in_one_message_reaches_every_record_it_names(ingest, store):
    mail = ingest("mail", "email", "jan@example.com", "Jan de Vries", when=DAY - dt.timedelta(days=3))
    wa = ingest("wa", "phone", "+31612345678", "Jan", when=DAY - dt.timedelta(days=3))
    tg = ingest("tg", "telegram", "99", "JdV", text="mail: jan@example.com, tel 06 12 34 56 78")
    assert suggestion(store, tg, mail)["codes"] >= {"email_in_text"}
    assert suggestion(store, tg, wa)["codes"] >= {"phone_in_text"}
    claims = {(c["kind"], c["value"], c["source"]) for c in store.claims_of(tg)}
    assert claims == {("email", "jan@example.com", "message"), ("phone", "+31612345678", "message")}
