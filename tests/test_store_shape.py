"""The store's verbs are each defined once (#17's code review).

`Store` is built from many query classes; a verb defined in two of them silently runs only the one
first in the method resolution order (the review found `CustomerQueries.savepoint` shadowed by
`Store.savepoint` and never run), so a fix made to the other copy would never take effect.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt

import pytest

from inbox.store import Store
from inbox.store.audit import AuditEntry, AuditFilter, AuditLog
from inbox.store.checkins import CheckInMark, QuietCandidate, RatedCandidate, StartedCheckIn
from inbox.store.customers import identity_hash
from inbox.store.drafts import DraftingColleague
from inbox.store.health import SavedCursor
from inbox.store.outreach import CustomerIdentity
from inbox.store.quarantine import QuarantineItem
from inbox.store.settings import SectionInfo, StoredChannel
from inbox.store.signatures import Signatures
from inbox.store.tokens import ApiToken
from inbox.store.webhooks import WebhookRefusal


def test_no_store_verb_is_defined_in_two_of_its_classes():
    defined_in: dict[str, list[str]] = collections.defaultdict(list)
    for cls in Store.__mro__:
        if cls is object:
            continue
        for name, value in vars(cls).items():
            if name.startswith("__") or not (callable(value) or isinstance(value, property | classmethod |
                                                                              staticmethod)):
                continue
            defined_in[name].append(cls.__name__)
    twice = {name: classes for name, classes in defined_in.items() if len(classes) > 1}
    assert twice == {}, f"defined more than once, only the first runs: {twice}"


def test_the_api_tokens_concern_returns_typed_frozen_rows(tmp_path):
    # #17: concerns leave the mixins for objects the store holds, typed at the boundary.
    store = Store(tmp_path / "m.db")
    store.migrate()
    token_id = store.api_tokens.create(name="CRM", token_hash="a" * 64, prefix="ml_abc", scopes=["write", "read"],
                                       created_by=None, now="2026-01-02T03:04:05.000000Z")
    row = store.api_tokens.get(token_id)
    assert isinstance(row, ApiToken) and row.scopes == ("read", "write") and row.created_by_name is None
    assert store.api_tokens.by_hash("a" * 64) == row and store.api_tokens.all() == [row]
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.revoked_at = "now"  # a row is what was read; changes go through the concern's verbs
    assert store.api_tokens.revoke(token_id, by=None) and store.api_tokens.get(token_id).revoked_at is not None
    assert not hasattr(store, "api_token_by_hash"), "the mixin's verbs are gone, not kept beside the concern"
    store.close()


def test_the_stored_settings_concern_returns_typed_frozen_rows(tmp_path):
    store = Store(tmp_path / "m.db")
    store.migrate()
    settings = store.stored_settings
    before = settings.version()
    now = "2026-01-02T03:04:05.000000Z"
    assert settings.add_channel(name="tg", kind="telegram", settings={"token": {"$encrypted": "x"}},
                                poll_every=60, by=None, now=now)
    assert not settings.add_channel(name="tg", kind="telegram", settings={}, poll_every=None, by=None)
    row = settings.channel("tg")
    assert isinstance(row, StoredChannel)
    assert (row.kind, row.state, row.poll_every) == ("telegram", "enabled", 60)
    assert row.settings == {"token": {"$encrypted": "x"}} and row.updated_by_name is None
    assert settings.channels() == [row] and settings.version() != before
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.state = "paused"  # a row is what was read; changes go through the concern's verbs
    assert settings.update_channel("tg", settings={"token": {"$encrypted": "y"}}, poll_every=None, by=None)
    assert settings.set_channel_state("tg", "disabled", by=None)
    assert not settings.set_channel_state("tg", "disabled", by=None)
    changed = settings.channel("tg")
    assert (changed.state, changed.poll_every) == ("disabled", None)
    assert changed.settings == {"token": {"$encrypted": "y"}}
    assert settings.delete_channel("tg") and settings.channel("tg") is None and settings.channels() == []

    settings.save_section("digest", {"smtp": {"host": "smtp.example.com"}}, by=None, now=now)
    info = settings.section_info("digest")
    assert isinstance(info, SectionInfo) and info.value == {"smtp": {"host": "smtp.example.com"}}
    assert info.updated_at == now and info.updated_by is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.value = {}
    assert settings.sections() == {"digest": {"smtp": {"host": "smtp.example.com"}}}
    assert settings.delete_section("digest") and settings.section_info("digest") is None
    assert settings.sections() == {}
    for old in ("settings_version", "stored_channels", "stored_channel", "add_stored_channel",
                "update_stored_channel", "set_stored_channel_state", "delete_stored_channel", "stored_sections",
                "stored_section_info", "save_section", "delete_section"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    store.close()


def test_the_drafts_concern_returns_typed_frozen_rows(tmp_path):
    store = Store(tmp_path / "m.db")
    store.migrate()
    now = "2026-01-02T03:04:05.000000Z"
    ann = store.create_agent(email="ann@example.com", name="Ann", role="agent", password_hash=None, now=now)
    bob = store.create_agent(email="bob@example.com", name="Bob", role="agent", password_hash=None, now=now)
    with store.write():
        customer = store.create_customer("Carla", now)
        cid = store.create_conversation(token="t" * 16, customer_id=customer, channel="mail", thread_key=None,
                                        subject="Parcel", public=False, automatic=False, flags="", now=now)
    store.drafts.save(ann, cid, "reply", "Your parcel", now)
    store.drafts.save(ann, cid, "note", "Ask the courier", "2026-01-02T03:05:00.000000Z")
    assert store.drafts.of(ann, cid) == {"reply": "Your parcel", "note": "Ask the courier"}
    assert store.drafts.of(bob, cid) == {} and store.drafts.colleagues(cid, ann) == []
    [colleague] = store.drafts.colleagues(cid, bob)
    assert colleague == DraftingColleague(id=ann, name="Ann", email="ann@example.com", since=now)
    with pytest.raises(dataclasses.FrozenInstanceError):
        colleague.name = "Someone"
    store.drafts.save(ann, cid, "reply", "  ", now)  # a blank text deletes the draft
    store.drafts.delete(ann, cid, "note")
    assert store.drafts.of(ann, cid) == {} and store.drafts.colleagues(cid, bob) == []
    for old in ("save_draft", "delete_draft", "drafts_of", "drafting_colleagues"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    store.close()


def test_the_check_ins_concern_returns_typed_frozen_rows(tmp_path):
    store = Store(tmp_path / "m.db")
    store.migrate()
    at, now = "2026-01-02T03:04:05.000000Z", "2026-01-05T09:00:00.000000Z"
    ann = store.create_agent(email="ann@example.com", name="Ann", role="agent", password_hash=None, now=at)
    with store.write():
        customer = store.create_customer("Carla", at)
        cid = store.execute(
            "INSERT INTO conversations (token, customer_id, channel, subject, status, created_at, updated_at, "
            "last_message_at, last_inbound_at, resolved_at) VALUES ('t', ?, 'mail', 'Parcel', 'resolved', ?, ?, ?, ?, ?)",
            (customer, at, at, at, at, at)).lastrowid
        store.execute("INSERT INTO messages (conversation_id, channel, external_id, direction, customer_id, text, "
                      "received_at) VALUES (?, 'mail', 'in1', 'in', ?, 'Hello', ?)", (cid, customer, at))
        survey = store.execute(
            "INSERT INTO csat_surveys (conversation_id, channel, customer_id, kind, state, asked_at, expires_at, "
            "score, answered_at) VALUES (?, 'mail', ?, 'link', 'answered', ?, ?, 5, ?)",
            (cid, customer, at, now, at)).lastrowid
    [rated] = store.check_ins.rated(resolved_since=at, min_score=4, team_ids=None)
    assert rated == RatedCandidate(survey_id=survey, score=5, answered_at=at, conversation_id=cid, subject="Parcel",
                                   channel="mail", resolved_at=at, customer_id=customer, display_name="Carla")
    [quiet] = store.check_ins.quiet(quiet_before=now, min_conversations=1, team_ids=None)
    assert quiet == QuietCandidate(customer_id=customer, display_name="Carla", last_at=at, conversation_id=cid,
                                   conversations=1, first_at=at)
    assert store.check_ins.marks([customer]) == [] and store.check_ins.started() == []
    with store.write():
        mark_id = store.check_ins.mark(customer_id=customer, basis=f"rated:{survey}", rule="rated", state="started",
                                       now=now, agent_id=ann, owner_id=ann, conversation_id=cid, channel="mail")
    [mark] = store.check_ins.marks([customer])
    assert mark == CheckInMark(customer_id=customer, basis=f"rated:{survey}", state="started", snoozed_until=None)
    [started] = store.check_ins.started(customer_id=customer)
    assert started == StartedCheckIn(
        id=mark_id, customer_id=customer, basis=f"rated:{survey}", rule="rated", conversation_id=cid, owner_id=ann,
        agent_id=ann, channel="mail", started_at=now, display_name="Carla", owner_name="Ann", subject="Parcel",
        replied_at=at, score=5, rated_at=at)
    for row in (rated, quiet, mark, started):
        with pytest.raises(dataclasses.FrozenInstanceError):
            row.customer_id = 0  # a row is what was read; changes go through the concern's verbs
    assert store.check_ins.channels_used(customer) == ["mail"]
    for old in ("check_in_rated", "check_in_quiet", "check_in_marks", "mark_check_in", "started_check_ins",
                "check_in_channels_used"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    store.close()


def test_the_quarantine_concern_returns_typed_frozen_rows(tmp_path):
    store = Store(tmp_path / "m.db")
    store.migrate()
    at = "2026-01-02T03:04:05.000000Z"
    with store.write():
        held = store.quarantine_put("mail", b"junk", "unreadable", source_ref="a.eml", exception="ValueError", now=at)
    [row] = store.quarantine.page()
    assert row == QuarantineItem(id=held, channel="mail", source_ref="a.eml", size=4, reason="unreadable",
                                 exception="ValueError", attempts=1, first_seen=at, last_seen=at, status="held",
                                 message_id=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.status = "released"
    assert store.quarantine.page(status="released") == [] and store.quarantine.page(channel="chat") == []
    assert store.quarantine.page(status="all", before=held) == [] and store.quarantine.channels() == ["mail"]
    assert store.quarantine.delete(held) and not store.quarantine.delete(held)
    assert store.quarantine.page(status="all") == [] and store.quarantine.channels() == []
    for old in ("quarantine_page", "quarantine_channels", "quarantine_delete"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    store.close()


def test_the_signatures_concern_reads_back_what_it_writes(tmp_path):
    # A signature is its template's text: the concern returns strings, not rows.
    store = Store(tmp_path / "m.db")
    store.migrate()
    at = "2026-01-02T03:04:05.000000Z"
    assert isinstance(store.signatures, Signatures) and store.signatures.get("agent", 7) is None
    store.signatures.set("agent", 7, "Ann, {{ team_name }}", at)
    store.signatures.set("channel", "mail", "The Mainland team", at)
    assert store.signatures.get("agent", "7") == "Ann, {{ team_name }}"
    assert store.signatures.all("agent") == {"7": "Ann, {{ team_name }}"}
    assert store.signatures.all("channel") == {"mail": "The Mainland team"} and store.signatures.all("team") == {}
    store.signatures.set("agent", 7, "  ", at)  # a blank template deletes the signature
    assert store.signatures.get("agent", 7) is None and store.signatures.all("agent") == {}
    with pytest.raises(ValueError, match="unknown signature scope"):
        store.signatures.set("customer", 1, "Hi", at)
    for old in ("signature", "set_signature"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    store.close()


def test_the_audit_log_concern_returns_typed_frozen_rows(store):
    # `store.audit` stays the writer; `store.audit_log` reads the log (and records views).
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert isinstance(store.audit_log, AuditLog)
    with store.write():
        store.audit("2026-01-02T03:00:00.000000Z", "agent:1", "login", "agent", 1)
    assert store.audit_log.record_view(at, "agent:1", "customer", 9)
    assert not store.audit_log.record_view(at, "agent:1", "customer", 9), "once an hour per agent and object"
    view, login = store.audit_log.page(AuditFilter())
    assert view == AuditEntry(id=view.id, at="2026-01-02T03:04:05.000000Z", actor="agent:1", action="customer_viewed",
                              object_type="customer", object_id="9", details="{}")
    assert (login.action, login.object_id) == ("login", "1") and login.id < view.id
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.details = "{}"  # a row is what was read; changes go through the concern's verbs
    assert store.audit_log.page(AuditFilter(), before=view.id) == [login]
    assert list(store.audit_log.rows(AuditFilter(action="login"))) == [login]
    assert "audit_log" in store.audit_log.page_plan(AuditFilter(actor="agent:1"))
    for old in ("audit_page", "audit_page_plan", "audit_rows", "audit_view"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"


def test_the_inbound_webhooks_concern_returns_typed_frozen_rows(store):
    at, later = "2026-01-02T03:04:05.000000Z", "2026-01-02T03:04:45.000000Z"
    hooks = store.inbound_webhooks
    with store.write():
        assert not hooks.seen("tg", "e1") and hooks.record("tg", "e1", at) and not hooks.record("tg", "e1", later)
        assert hooks.seen("tg", "e1") and not hooks.seen("wa", "e1")
        assert hooks.forget(at) == 0 and hooks.forget(later) == 1 and not hooks.seen("tg", "e1")
        hooks.record_refusal("tg", at, remote_addr=None, reason="bad secret", keep_after="2026-01-01")
        hooks.record_refusal("tg", later, remote_addr=None, reason="bad secret again", keep_after="2026-01-01")
        hooks.record_refusal("wa", at, remote_addr="203.0.113.9", reason="bad signature", keep_after="2026-01-01")
    [refusal] = hooks.refusals("tg")
    assert refusal == WebhookRefusal(channel="tg", at=later, remote_addr=None, reason="bad secret again", count=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        refusal.count = 0
    assert [r.channel for r in hooks.refusals()] == ["tg", "wa"] and hooks.refusals(since=later) == [refusal]
    assert hooks.refusals("wa")[0].remote_addr == "203.0.113.9"
    for old in ("webhook_event_seen", "record_webhook_event", "forget_webhook_events", "record_webhook_refusal",
                "webhook_refusals"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"


def test_the_outreach_concern_returns_typed_frozen_rows(store):
    now = "2026-01-02T03:04:05.000000Z"
    ann = store.create_agent(email="ann@example.com", name="Ann", role="agent", password_hash=None, now=now)
    with store.write():
        customer = store.create_customer("Carla", now)
        other = store.create_customer("Dora", now)
        store.add_identity(customer, "email", "carla@example.com", "Carla", True, now)
        store.execute("INSERT INTO erased_identities (kind, value_hash, erased_at) VALUES (?, ?, ?)",
                      ("email", identity_hash("email", "gone@example.com"), now))
        cid = store.outreach.create_conversation(token="t" * 16, customer_id=customer, channel="mail",
                                                 thread_key=None, subject="Hello", agent_id=ann, team_id=None, now=now)
        store.queue_outbound(outbox_id="o1", conversation_id=cid, channel="mail", agent_id=ann, text="Hi",
                             html=None, subject="Hello", message_id=None, refs="", author_name="Ann", now=now)
        store.outreach.set_outbox_start("o1", to_handle="carla@example.com", to_kind="email",
                                        template={"name": "welcome"})
    assert store.execute("SELECT status, assignee_id FROM conversations WHERE id = ?", (cid,)).fetchone() == \
        ("pending", ann)
    assert tuple(store.execute("SELECT to_handle, to_kind, template FROM outbox WHERE id = 'o1'").fetchone()) == \
        ("carla@example.com", "email", '{"name": "welcome"}')
    [identity_id] = [r[0] for r in store.execute("SELECT id FROM identities WHERE customer_id = ?", (customer,))]
    identity = store.outreach.identity(customer, identity_id)
    assert identity == CustomerIdentity(id=identity_id, kind="email", value="carla@example.com", display="Carla",
                                        valid=True, delivery_failed=False)
    assert store.outreach.identity(other, identity_id) is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.valid = False
    assert store.outreach.identity_erased("email", "gone@example.com")
    assert not store.outreach.identity_erased("email", "carla@example.com")
    assert not store.outreach.customer_blocked(customer) and not store.outreach.customer_blocked(other)
    with store.write():
        store.execute("UPDATE conversations SET status = 'spam' WHERE id = ?", (cid,))
    assert store.outreach.customer_blocked(customer)
    for old in ("create_started_conversation", "set_outbox_start", "identity_erased", "customer_blocked",
                "customer_identity"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"


def test_the_health_concern_returns_typed_frozen_rows(store):
    at, later = "2026-01-02T03:04:05.000000Z", "2026-01-02T05:00:00.000000Z"
    health = store.health
    assert health.cursors() == {} and health.quarantine_counts() == {} and health.first_webhook_refusals() == {}
    with store.write():
        store.save_cursor("mail", '{"uid": 42}', at)
        store.quarantine_put("mail", b"junk", "unreadable", source_ref=None, exception=None, now=at)
        store.inbound_webhooks.record("wa", "e1", at)
        store.inbound_webhooks.record_refusal("wa", at, remote_addr=None, reason="bad", keep_after="2026-01-01")
        store.inbound_webhooks.record_refusal("wa", later, remote_addr=None, reason="bad", keep_after="2026-01-01")
    cursor = health.cursors()["mail"]
    assert cursor == SavedCursor(channel="mail", value='{"uid": 42}', updated_at=at)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cursor.value = None
    assert health.quarantine_counts() == {"mail": 1} and health.last_webhook_events() == {"wa": at}
    assert health.first_webhook_refusals() == {"wa": at}
    assert health.webhook_refusal_counts_since(at) == {"wa": 2} and health.webhook_refusal_counts_since(later) == {
        "wa": 1}
    assert health.inbound_counts_since(at) == {} and health.last_inbound_at(["mail"]) == {}
    for old in ("inbound_counts_since", "last_inbound_at", "webhook_refusal_counts_since", "first_webhook_refusals",
                "last_webhook_events", "quarantine_counts", "cursors"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"


def _agents_and_a_conversation(store, now):
    """Ann and Bob, and Carla's conversation "Parcel" with one message of hers (`store` migrated)."""
    ann = store.create_agent(email="ann@example.com", name="Ann", role="agent", password_hash=None, now=now)
    bob = store.create_agent(email="bob@example.com", name="Bob", role="lead", password_hash=None, now=now)
    with store.write():
        customer = store.create_customer("Carla", now)
        cid = store.create_conversation(token="t" * 16, customer_id=customer, channel="mail", thread_key=None,
                                        subject="Parcel", public=False, automatic=False, flags="", now=now)
        store.execute("INSERT INTO messages (conversation_id, channel, external_id, direction, customer_id, subject, "
                      "text, received_at) VALUES (?, 'mail', 'in1', 'in', ?, 'Parcel', 'Where is my parcel?', ?)",
                      (cid, customer, now))
    return ann, bob, customer, cid


def test_the_answers_concern_returns_typed_frozen_rows(tmp_path):
    from inbox.store.answers import Answer, AnswerContext, AnswerPick, AnswerVersion, ImportedAnswers

    store = Store(tmp_path / "m.db")
    store.migrate()
    now, later = "2026-01-02T03:04:05.000000Z", "2026-01-02T04:00:00.000000Z"
    ann, _bob, customer, cid = _agents_and_a_conversation(store, now)
    answers = store.answers
    answer_id = answers.create(title="Parcel times", body="Parcels take two days.", language="en",
                               tags=["parcel", "shipping"], owner_id=ann, now=now)
    row = answers.get(answer_id)
    assert row == Answer(id=answer_id, title="Parcel times", body="Parcels take two days.", language="en",
                         tags="parcel shipping", owner_id=ann, version=1, active=True, created_at=now, updated_at=now,
                         owner_name="Ann", uses=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.title = "Other"  # a row is what was read; changes go through the concern's verbs
    assert answers.all() == [row] and answers.all(language="nl") == [] and answers.languages() == ["en"]
    assert answers.update(answer_id, title="Parcel times", body="Parcels take one day.", language="en",
                          tags=["parcel"], editor_id=ann, now=later) == 2
    newer, older = answers.versions(answer_id)
    assert isinstance(newer, AnswerVersion) and (newer.version, newer.body, newer.editor_name) == (
        2, "Parcels take one day.", "Ann")
    assert (older.version, older.tags) == (1, "parcel shipping") and answers.tag_vocabulary() == {"parcel"}

    store.set_customer_attribute(customer, "order_number", "A-1", now)
    context = answers.context(cid)
    assert context == AnswerContext(id=cid, channel="mail", public=False, subject="Parcel", team_id=None,
                                    customer_id=customer, customer_name="Carla", locale=None,
                                    question="Parcel Where is my parcel?", attributes={"order_number": "A-1"})
    assert answers.context(cid + 1) is None
    assert answers.record_use(answer_id, 2, cid, ann, "en", later) and not answers.record_use(
        answer_id, 2, cid, ann, "en", later)
    assert answers.picks("en") == [AnswerPick(answer_id=answer_id, conversation_id=cid,
                                              question="Parcel Where is my parcel?")]
    assert answers.picks("en", exclude_conversation=cid) == [] and answers.get(answer_id).uses == 1

    answers.set_active(answer_id, False, later)
    assert answers.all() == [] and [a.id for a in answers.all(active=None)] == [answer_id]
    assert not answers.get(answer_id).active and answers.tag_vocabulary() == set()
    imported = answers.apply_import(
        creates=[{"title": "Refunds", "body": "Within five days.", "language": "en", "tags": [], "active": None}],
        updates=[(answer_id, {"title": "Parcel times", "body": "Parcels take one day.", "language": "en",
                              "tags": ["parcel"], "active": True})], agent_id=ann, now=later)
    assert imported == ImportedAnswers(created=1, updated=1)
    assert [a.title for a in answers.all()] == ["Parcel times", "Refunds"] and answers.get(answer_id).version == 2
    for old in ("create_answer", "update_answer", "set_answer_active", "import_answers", "answer", "answer_languages",
                "answer_versions", "record_answer_use", "answer_use_questions", "answer_context",
                "customer_attribute_map", "answer_tag_vocabulary"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    store.close()


def test_the_review_concern_returns_typed_frozen_rows(tmp_path):
    from inbox.store import NotFound
    from inbox.store.review import ReviewItem, ReviewStats

    store = Store(tmp_path / "m.db")
    store.migrate()
    now, later = "2026-01-02T03:04:05.000000Z", "2026-01-02T03:14:05.000000Z"
    ann, bob, _customer, cid = _agents_and_a_conversation(store, now)
    review = store.review
    assert not review.is_trainee(ann) and not review.is_trainee(None)
    store.set_agent_routing(ann, capacity=5, languages=(), topics=(), trainee=True)
    assert review.is_trainee(ann)
    item_id = review.hold(conversation_id=cid, agent_id=ann, text="It ships today.", html=None, now=now)
    item = review.item(item_id)
    assert item == ReviewItem(
        id=item_id, conversation_id=cid, agent_id=ann, text="It ships today.", html=None, state="pending_review",
        created_at=now, reviewer_id=None, decided_at=None, review_seconds=None, comment=None, final_text=None,
        edited=False, outbox_id=None, subject="Parcel", channel="mail", team_id=None, agent_name="Ann",
        agent_email="ann@example.com", reviewer_name=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.state = "approved"  # a row is what was read; decisions go through `decide`
    assert review.items(None) == [item] and review.items(None, state="approved") == []
    assert review.of_agent(ann) == [item] and review.of_conversation(cid) == [item] and review.count_pending(None) == 1
    assert review.stats() == {}
    assert review.decide(item_id, state="approved", reviewer_id=bob, now=later, review_seconds=600.0,
                         final_text="It ships today!", edited=True)
    assert not review.decide(item_id, state="returned", reviewer_id=bob, now=later, review_seconds=600.0)
    decided = review.item(item_id)
    assert (decided.state, decided.edited, decided.reviewer_name, decided.final_text) == (
        "approved", True, "Bob", "It ships today!")
    assert review.of_conversation(cid) == [] and review.of_conversation(cid, pending_only=False) == [decided]
    assert review.count_pending(None) == 0 and review.items(None, state="approved") == [decided]
    assert review.stats([ann]) == {ann: ReviewStats(agent_id=ann, reviewed=1, approved=1, edited=1, returned=0,
                                                    avg_seconds=600.0, max_seconds=600.0)}
    with pytest.raises(NotFound):
        review.item(item_id + 1)
    for old in ("is_trainee", "hold_for_review", "review_item", "review_items", "agent_review_items",
                "conversation_review_items", "count_pending_reviews", "decide_review", "review_stats"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    store.close()


def test_the_notifications_concern_returns_typed_frozen_rows(tmp_path):
    from inbox.store.notifications import (
        DEFAULTS,
        CustomerReply,
        NewestNotification,
        Notification,
        NotificationEmail,
        NotificationEmailSummary,
        PendingEmailNotification,
    )

    store = Store(tmp_path / "m.db")
    store.migrate()
    now, later = "2026-01-02T03:04:05.000000Z", "2026-01-02T03:14:05.000000Z"
    ann, bob, _customer, cid = _agents_and_a_conversation(store, now)
    notifications = store.notifications
    assert notifications.settings(ann) == DEFAULTS and notifications.newest(ann) is None
    assert notifications.newest_id(ann) == 0
    assert notifications.add([ann], kind="mention", conversation_id=cid, message_id=None, actor_id=bob, now=now) == 1
    [row] = notifications.of(ann, None)
    assert row == Notification(id=row.id, kind="mention", conversation_id=cid, message_id=None, created_at=now,
                               read_at=None, actor_name="Bob", actor_email="bob@example.com", subject="Parcel",
                               channel="mail", excerpt=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.read_at = later  # a row is what was read; changes go through the concern's verbs
    assert notifications.of(bob, None) == [] and notifications.unread_count(ann, None) == 1
    assert notifications.newest(ann) == NewestNotification(
        id=row.id, kind="mention", conversation_id=cid, message_id=None, read_at=None, in_app=True, subject="Parcel",
        team_id=None, actor_name="Bob", actor_email="bob@example.com", customer_name="Carla")
    assert notifications.newest_id(ann) == row.id and notifications.newest_id(bob) == 0

    # Mentions are mailed by default: the notification waits for the next batch mail.
    [pending] = notifications.pending_email(ann)
    assert pending == PendingEmailNotification(
        id=row.id, kind="mention", conversation_id=cid, message_id=None, created_at=now, read_at=None,
        subject="Parcel", channel="mail", actor_name="Bob", actor_email="bob@example.com", customer_name="Carla")
    assert notifications.agents_with_pending_email(later) == [ann]
    assert notifications.agents_with_pending_email("2026-01-01T00:00:00.000000Z") == []
    with store.write():
        email_id = notifications.queue_email(agent_id=ann, to_address="ann@example.com", subject="1 new", text="Hi",
                                             message_id="<m@x>", notification_ids=[row.id], skipped_ids=[], now=now)
        [claimed] = notifications.claim_emails(later, "2026-01-02T03:20:00.000000Z")
    assert claimed == NotificationEmail(
        id=email_id, agent_id=ann, to_address="ann@example.com", subject="1 new", text="Hi", message_id="<m@x>",
        item_count=1, state="sending", attempts=1, next_at=now, lease_until="2026-01-02T03:20:00.000000Z",
        possible_duplicate=False, last_error=None, created_at=now, sent_at=None)
    with store.write():
        notifications.mark_email(email_id, "sent", later)
    assert notifications.emails(ann) == [NotificationEmailSummary(
        id=email_id, subject="1 new", item_count=1, state="sent", attempts=1, created_at=now, sent_at=later,
        last_error=None)]
    assert notifications.pending_email(ann) == [] and notifications.agents_with_pending_email(later) == []

    notifications.set_settings(ann, {"mention": {"in_app": False}}, now)
    assert notifications.settings(ann)["mention"] == {"in_app": False, "browser": True, "email": True}
    notifications.add([ann], kind="mention", conversation_id=cid, message_id=None, actor_id=None, now=later)
    assert notifications.unread_count(ann, None) == 1, "switched off in the app: recorded, not counted"
    assert not notifications.newest(ann).in_app
    assert notifications.mark_read(ann, later) == 2 and notifications.unread_count(ann, None) == 0
    assert notifications.mark_read(ann, later) == 0

    with store.write():
        mark, [reply] = notifications.customer_replies_since_mark()
        assert reply == CustomerReply(id=reply.id, conversation_id=cid, direction="in", flags="", assignee_id=None,
                                      has_earlier=False) and mark < reply.id
        notifications.move_mark("customer_replied", reply.id)
        notifications.move_mark("customer_replied", 0)  # never down
        assert notifications.customer_replies_since_mark() == (reply.id, [])
        assert notifications.mark_or_start("customer_replied", "messages") == (reply.id, False)
        assert notifications.sla_notices_since_mark()[1] == []
    for old in ("notification_settings", "set_notification_settings", "mark_or_start", "customer_replies_since_mark",
                "sla_notices_since_mark", "move_mark", "newest_notification", "newest_notification_id",
                "agents_with_pending_email", "pending_email_notifications", "queue_notification_email",
                "claim_notification_emails", "mark_notification_email", "notification_emails", "add_notifications",
                "unread_notification_count", "mark_notifications_read"):
        assert not hasattr(store, old), f"the mixin's verb {old} is gone, not kept beside the concern"
    assert not callable(store.notifications), "`store.notifications` is the concern, no longer the bell's list"
    store.close()
