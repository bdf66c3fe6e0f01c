"""The ingest pipeline: stored once, threaded right, customers found, bad items quarantined."""

from __future__ import annotations

from inbox.mail import parse_email
from inbox.models import FetchResult, Reject
from inbox.store.queue import fts_query
from tests.mailfactory import raw_mail


def ingest_raw(ingestor, *raws, cursor="c1"):
    items = [parse_email(r, channel="mail") for r in raws]
    return ingestor.ingest("mail", FetchResult(items=items, cursor=cursor))


def test_same_item_twice_is_stored_once(ingestor, store):
    raw = raw_mail()
    first = ingest_raw(ingestor, raw, raw)
    second = ingest_raw(ingestor, raw, cursor="c2")
    assert (first.stored, first.duplicates) == (1, 1)
    assert (second.stored, second.duplicates) == (0, 1)
    assert store.counts()["messages"] == 1
    assert store.cursor("mail") == "c2"


def test_cursor_is_saved_with_the_batch(ingestor, store):
    ingest_raw(ingestor, raw_mail(), raw_mail(), cursor="uid:2")
    assert store.cursor("mail") == "uid:2"
    assert store.counts()["messages"] == 2


def test_failed_batch_leaves_nothing_and_the_old_cursor(ingestor, store, monkeypatch):
    ingest_raw(ingestor, raw_mail(), cursor="before")

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "save_cursor", explode)
    try:
        ingest_raw(ingestor, raw_mail(), raw_mail(), cursor="after")
    except RuntimeError:
        pass
    monkeypatch.undo()
    assert store.cursor("mail") == "before"
    assert store.counts()["messages"] == 1


def test_one_customer_per_sender_whatever_the_case(ingestor, store):
    ingest_raw(ingestor, raw_mail(sender="Jane <Jane@Example.NET>"), raw_mail(sender="jane@example.net"))
    assert store.counts()["customers"] == 1


def test_reply_joins_its_conversation_by_in_reply_to(ingestor, store):
    ingest_raw(ingestor, raw_mail(message_id="<first@example.net>"))
    ingest_raw(ingestor, raw_mail(subject="Re: something else", message_id="<second@example.net>",
                                  in_reply_to="<first@example.net>"))
    assert store.counts()["conversations"] == 1


def test_reply_never_joins_another_customers_conversation(ingestor, store):
    ingest_raw(ingestor, raw_mail(sender="alice@example.org", message_id="<a1@example.org>"))
    ingest_raw(ingestor, raw_mail(sender="mallory@evil.example", in_reply_to="<a1@example.org>"))
    conversations = store.recent_conversations()
    assert len(conversations) == 2
    mallory = next(c for c in conversations if c["customer_name"] == "mallory@evil.example")
    assert "possible_misthread" in mallory["flags"]


def test_subject_token_threads_when_message_ids_are_lost(ingestor, store):
    ingest_raw(ingestor, raw_mail(message_id="<t1@example.net>"))
    [conversation] = store.recent_conversations()
    ingest_raw(ingestor, raw_mail(subject=f"Re: Order 1234 [#{conversation['token']}]"))
    assert store.counts()["conversations"] == 1


def test_subject_token_of_another_customer_does_not_thread(ingestor, store):
    ingest_raw(ingestor, raw_mail(sender="alice@example.org"))
    [conversation] = store.recent_conversations()
    ingest_raw(ingestor, raw_mail(sender="bob@example.com", subject=f"Re: [#{conversation['token']}]"))
    assert store.counts()["conversations"] == 2


def test_new_message_reopens_a_resolved_conversation_but_an_auto_reply_does_not(ingestor, store):
    ingest_raw(ingestor, raw_mail(message_id="<r1@example.net>"))
    [conversation] = store.recent_conversations()
    store.execute("UPDATE conversations SET status = 'resolved' WHERE id = ?", (conversation["id"],))
    ingest_raw(ingestor, raw_mail(in_reply_to="<r1@example.net>", extra_headers="Auto-Submitted: auto-replied"))
    assert store.conversation(conversation["id"])["status"] == "resolved"
    ingest_raw(ingestor, raw_mail(in_reply_to="<r1@example.net>"))
    assert store.conversation(conversation["id"])["status"] == "open"


def test_rejects_go_to_quarantine_with_their_reason(ingestor, store):
    result = FetchResult(items=[parse_email(raw_mail(), channel="mail")], cursor="x",
                         rejects=[Reject(raw=b"garbage", reason="no sender", source_ref="uid 7")])
    report = ingestor.ingest("mail", result)
    assert (report.stored, report.quarantined) == (1, 1)
    [held] = store.quarantined()
    assert held["reason"] == "no sender"
    assert held["source_ref"] == "uid 7"
    # The same bad bytes again are one quarantine row with two attempts, not two rows.
    ingestor.ingest("mail", result)
    [held] = store.quarantined()
    assert held["attempts"] == 2


def test_own_loop_header_is_flagged(ingestor, store):
    ingest_raw(ingestor, raw_mail(extra_headers="X-Mainland-Loop: test-instance"))
    [conversation] = store.recent_conversations()
    assert "loop" in conversation["flags"]
    assert conversation["automatic"] == 1


def test_mail_from_our_own_address_is_a_loop(ingestor, store):
    ingest_raw(ingestor, raw_mail(sender="Support <support@mainland.test>"))
    [conversation] = store.recent_conversations()
    assert "loop" in conversation["flags"]


def test_search_index_finds_the_message(ingestor, store):
    ingest_raw(ingestor, raw_mail(body="The blender makes a grinding noise"))
    found = store.search(fts_query("grinding"), team_ids=None, agent_id=None).groups
    assert [len(group.snippets) for group in found] == [1]


def test_an_item_that_cannot_be_stored_is_quarantined_and_the_rest_of_the_page_arrives(ingestor, store, monkeypatch):
    items = [parse_email(raw_mail(subject=f"Item {n}"), channel="mail") for n in range(3)]
    real = store.insert_message

    def insert_fails_for_item_1(row):
        if row["subject"] == "Item 1":
            raise ValueError("constraint the pipeline did not foresee")
        return real(row)

    monkeypatch.setattr(store, "insert_message", insert_fails_for_item_1)
    report = ingestor.ingest("mail", FetchResult(items=items, cursor="page-1"))
    assert (report.stored, report.quarantined) == (2, 1)
    [held] = store.quarantined()
    assert "could not be stored" in held["reason"]
    assert store.cursor("mail") == "page-1"
    assert store.counts()["conversations"] == 2, "the failed item left no half-written conversation"


def test_a_new_conversation_never_gets_a_token_already_in_use(ingestor, store, monkeypatch):
    # Eight random letters collide now and then in a big inbox (a 300,000-message import drew one):
    # the second message was quarantined. A token in use is drawn again.
    from inbox import conversations

    drawn = iter(["SAMETOKN", "SAMETOKN", "OTHERTKN"])
    monkeypatch.setattr(conversations, "new_token", lambda: next(drawn))
    monkeypatch.setattr("inbox.ingest.new_token", conversations.new_token, raising=False)  # if imported by name
    report = ingest_raw(ingestor, raw_mail(sender="ann@example.net", subject="First"),
                        raw_mail(sender="bob@example.org", subject="Second"))
    assert (report.stored, report.quarantined) == (2, 0)
    tokens = [r[0] for r in store.execute("SELECT token FROM conversations ORDER BY id")]
    assert tokens == ["SAMETOKN", "OTHERTKN"]
