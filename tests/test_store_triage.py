"""`store.triage` (#17): the triage flow's rows are typed and frozen, on either engine.

The flow itself (verdicts, decisions, blocks from the pages) is tested in test_triage_flow.py and
test_web_triage.py; this holds the concern to its rows: what a held item looks like in the review
list, a decision taken once, a release that counts the clock from the arrival, and blocks.
"""

from __future__ import annotations

import dataclasses

import pytest

from inbox.store.triage import (
    FirstInboundMessage,
    ListedSpamBlock,
    SampleOutcome,
    SpamBlock,
    TriageReview,
    TriageReviewWithConversation,
    WaitingTriageItem,
)

NOW, LATER = "2026-01-02T03:04:05.000000Z", "2026-01-02T04:00:00.000000Z"


def _held_conversation(store):
    """Carla's mail, judged suspicious: created as spam and held for a person."""
    with store.write():
        customer = store.create_customer("Carla", NOW)
        cid = store.create_conversation(token="t" * 16, customer_id=customer, channel="mail", thread_key=None,
                                        subject="Offer", public=False, automatic=False, flags="", now=NOW,
                                        status="spam")
        message = store.execute(
            "INSERT INTO messages (conversation_id, channel, external_id, direction, customer_id, author_name, "
            "author_handle, subject, text, received_at) VALUES (?, 'mail', 'in1', 'in', ?, 'Carla', "
            "'carla@example.com', 'Offer', 'A special offer', ?)", (cid, customer, NOW)).lastrowid
        store.triage.hold(cid)
    return customer, cid, message


def test_a_held_item_waits_is_decided_once_and_released(store):
    customer, cid, message = _held_conversation(store)
    triage = store.triage
    with store.write():
        review_id = triage.add_review(message_id=message, conversation_id=cid, channel="mail", kind="suspicious",
                                      machine_verdict="suspicious", probability=0.7, model_version=1, reason="model",
                                      facts={"sender": "carla@example.com"}, now=NOW)
        assert triage.add_review(message_id=message, conversation_id=cid, channel="mail", kind="sample",
                                 machine_verdict="spam", probability=0.9, model_version=1, reason="model",
                                 facts={}, now=NOW) is None, "one review per message"
    [item] = triage.waiting("1 = 1", [])
    assert item == WaitingTriageItem(
        id=review_id, message_id=message, conversation_id=cid, channel="mail", kind="suspicious",
        machine_verdict="suspicious", probability=0.7, model_version=1, reason="model",
        facts='{"sender": "carla@example.com"}', created_at=NOW, decided_at=None, decided_by=None, human_verdict=None,
        author_name="Carla", author_handle="carla@example.com", subject="Offer", text="A special offer",
        received_at=NOW, spam_reason=None, conversation_status="spam", triage_hold=True, token="t" * 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.kind = "sample"  # a row is what was read; decisions go through `decide_review`
    with pytest.raises(AttributeError):
        item.conversation  # noqa: B018 - a mistyped field fails where it is written
    assert triage.waiting_count("1 = 1", []) == 1
    assert triage.first_inbound_facts(cid) == {"sender": "carla@example.com"}
    assert triage.first_inbound_message(cid) == FirstInboundMessage(
        id=message, channel="mail", text="A special offer", html=None, subject="Offer",
        author_handle="carla@example.com", headers="{}", customer_id=customer)
    [open_review] = triage.open_reviews(cid)
    assert isinstance(open_review, TriageReview) and open_review.id == review_id

    with store.write():
        assert triage.decide_review(review_id, verdict="customer", agent_id=None, now=LATER)
        assert not triage.decide_review(review_id, verdict="spam", agent_id=None, now=LATER), "decided once"
        assert triage.release(cid, LATER) and not triage.release(cid, LATER), "released once: it is new now"
    review = triage.review(review_id)
    assert isinstance(review, TriageReviewWithConversation)
    assert (review.human_verdict, review.decided_at, review.conversation_status, review.triage_hold) == (
        "customer", LATER, "new", False)
    assert triage.review(review_id + 1) is None and triage.open_reviews(cid) == []
    assert triage.waiting("1 = 1", []) == [] and triage.waiting_count("1 = 1", []) == 0
    assert triage.earlier_clean_conversations(customer) == 1
    assert triage.earlier_clean_conversations(customer, besides=cid) == 0
    assert triage.sample_outcomes() == [], "a suspicious item is not an audit sample"


def test_decided_samples_are_counted_per_channel(store):
    _customer, cid, message = _held_conversation(store)
    with store.write():
        review_id = store.triage.add_review(
            message_id=message, conversation_id=cid, channel="mail", kind="sample", machine_verdict="spam",
            probability=0.97, model_version=1, reason="model", facts={}, now=NOW)
        store.triage.decide_review(review_id, verdict="customer", agent_id=None, now=LATER)
    assert store.triage.sample_outcomes() == [SampleOutcome(channel="mail", true_spam=0, false_spam=1,
                                                            missed_spam=0, true_clean=0, decided=1)]


def test_blocks_cover_an_address_and_its_domain(store):
    agent = store.create_agent(email="ann@example.com", name="Ann", role="admin", password_hash=None, now=NOW)
    triage = store.triage
    with store.write():
        domain = triage.add_block("domain", "email", "Cheap.Example", agent_id=agent, now=NOW)
        handle = triage.add_block("handle", "telegram", "42", agent_id=None, now=NOW)
        assert triage.add_block("domain", "email", "cheap.example", agent_id=None, now=NOW) is None, "once"
    block = triage.block(domain)
    assert block == SpamBlock(id=domain, kind="domain", identity_kind="email", value="cheap.example", created_at=NOW,
                              created_by=agent)
    assert triage.blocks_matching("email", "sales@cheap.example") == [block]
    assert triage.blocks_matching("email", "sales@other.example") == []
    assert triage.blocks() == [
        ListedSpamBlock(id=domain, kind="domain", identity_kind="email", value="cheap.example", created_at=NOW,
                        created_by=agent, created_by_name="Ann"),
        ListedSpamBlock(id=handle, kind="handle", identity_kind="telegram", value="42", created_at=NOW,
                        created_by=None, created_by_name=None)]
    with store.write():
        assert triage.remove_block(domain) and not triage.remove_block(domain)
    assert triage.block(domain) is None and [b.id for b in triage.blocks()] == [handle]


def test_the_mixins_verbs_are_gone(store):
    for old in ("earlier_clean_conversations", "hold_for_triage", "add_triage_review", "triage_waiting",
                "triage_waiting_count", "triage_review", "open_triage_reviews", "first_inbound_facts",
                "first_inbound_message", "decide_triage_review", "release_from_triage", "forget_machine_spam",
                "end_triage_hold", "set_message_verdict", "sample_outcomes", "add_block", "blocks", "block",
                "blocks_matching", "remove_block", "old_spam_conversations", "delete_conversations"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
