"""The store's verbs are each defined once (#17's code review).

`Store` is built from many query classes; a verb defined in two of them silently runs only the one
first in the method resolution order (the review found `CustomerQueries.savepoint` shadowed by
`Store.savepoint` and never run), so a fix made to the other copy would never take effect.
"""

from __future__ import annotations

import collections
import dataclasses

import pytest

from inbox.store import Store
from inbox.store.checkins import CheckInMark, QuietCandidate, RatedCandidate, StartedCheckIn
from inbox.store.drafts import DraftingColleague
from inbox.store.quarantine import QuarantineItem
from inbox.store.settings import SectionInfo, StoredChannel
from inbox.store.signatures import Signatures
from inbox.store.tokens import ApiToken


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
