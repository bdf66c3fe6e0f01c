"""Writing first on Mastodon (#12): an agent starts a conversation with a customer's Mastodon address.

A real Mainland (config, SQLite file, outbox, poller) runs against the Mastodon imitation. The first
message goes out as a private mention (a `direct` status answering nothing, starting with the
customer's `@user@server`, which is what delivers it); the customer's direct answer to it joins the
conversation we started. A message that reached nobody (an address the server cannot find, an
account the support account blocked) fails with a reason for the agent, and a resend after a crash
is posted once (Idempotency-Key).
"""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.base import PermanentError
from connectors.mastodon import MastodonConnector
from inbox import outreach
from inbox.config import from_mapping
from inbox.models import Author, OutboundReply
from inbox.outbox import LEASE_SECONDS, build_outbound, send_due
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store.base import iso
from sandbox.mastodon import MastodonImitation

pytestmark = pytest.mark.server  # the Mastodon imitation on loopback

JANE = "jane@example.social"


@pytest.fixture
def mastodon():
    with MastodonImitation(domain="acme.social") as imitation:
        yield imitation


@pytest.fixture
def mainland(tmp_path, mastodon):
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"), "data_dir": str(tmp_path / "data"), "instance_id": "outreach-masto",
        "fetch_allow_hosts": [mastodon.host],
        "channels": {
            "social": {"kind": "mastodon", "base_url": mastodon.url, "access_token": mastodon.token,
                       "account_domain": "acme.social"},
            "telegram": {"kind": "telegram", "token": "123456:imitation-token", "api_url": "http://127.0.0.1:9"},
        },
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


@pytest.fixture
def agent(store):
    agent_id = store.create_agent(email="ann@mainland.test", name="Ann", role="agent", password_hash=None)
    return {"id": agent_id, "name": "Ann"}


def customer(store, now: dt.datetime, name: str = "Jane Doe", **identities: str) -> int:
    with store.write():
        customer_id = store.create_customer_record(name, iso(now))
        for kind, value in identities.items():
            store.add_identity(customer_id, kind, value, value, True, iso(now))
    return customer_id


def start(mainland, store, agent, customer_id: int, handle: str, now: dt.datetime, text: str) -> tuple[int, str]:
    return outreach.start_conversation(mainland, store, customer_id, channel="social", handle=handle,
                                       identity_kind="mastodon", text=text, agent=agent, now=now)


def test_a_private_mention_starts_the_conversation_and_the_answer_joins_it(mainland, store, agent, mastodon,
                                                                            frozen_clock):
    now = frozen_clock.now()
    jane = mastodon.account("jane", display_name="Jane Doe")
    cid = customer(store, now, mastodon=JANE)
    conversation_id, outbox_id = start(mainland, store, agent, cid, JANE, now,
                                       "Hello Jane, your replacement coat is ready for pick-up.")
    conversation = store.conversation(conversation_id)
    assert conversation["status"] == "pending" and not conversation["public"]

    assert send_due(mainland, store, now=now).sent == 1
    [sent] = mastodon.replies()
    assert sent["visibility"] == "direct" and sent["in_reply_to_id"] is None
    assert sent["text"] == "@jane@example.social Hello Jane, your replacement coat is ready for pick-up."
    assert sent["reached"] == [JANE] and sent["idempotency_key"] == outbox_id
    [ours] = store.conversation_messages(conversation_id)
    assert ours["delivery_status"] == "sent"

    # Jane answers our private mention directly: her status joins the conversation we started.
    answer = mastodon.direct(jane, "Great, I will come by on Friday.", in_reply_to=mastodon.statuses[sent["id"]])
    frozen_clock.advance(dt.timedelta(minutes=5))
    assert poll_channel(mainland, store, "social").report.stored == 1
    messages = store.conversation_messages(conversation_id)
    assert [m["external_id"] for m in messages][-1] == answer["id"]
    assert messages[-1]["text"] == "@support Great, I will come by on Friday."
    assert store.conversation(conversation_id)["status"] == "open"
    assert len(store.recent_conversations()) == 1


@pytest.mark.parametrize("case", ["unknown", "blocked"])
def test_a_private_mention_that_reached_nobody_fails_with_the_reason(mainland, store, agent, mastodon,
                                                                     frozen_clock, case):
    now = frozen_clock.now()
    handle = "ghost@example.social"
    if case == "blocked":
        mastodon.block(mastodon.account("ghost"))
    cid = customer(store, now, name="Ghost", mastodon=handle)
    conversation_id, _outbox_id = start(mainland, store, agent, cid, handle, now, "Hello, your parcel is here.")
    report = send_due(mainland, store, now=now)
    assert report.sent == 0 and report.failed == 1
    [ours] = store.conversation_messages(conversation_id)
    assert ours["delivery_status"] == "failed"
    assert "nobody received" in ours["delivery_error"] and "@ghost@example.social" in ours["delivery_error"]
    # Mastodon posted it all the same, reaching nobody (only the support account sees it).
    [sent] = mastodon.replies()
    assert sent["reached"] == [] and sent["visibility"] == "direct"


def test_a_first_message_resent_after_a_crash_is_posted_once(mainland, store, agent, mastodon, frozen_clock):
    now = frozen_clock.now()
    mastodon.account("jane")
    cid = customer(store, now, mastodon=JANE)
    _conversation_id, outbox_id = start(mainland, store, agent, cid, JANE, now, "Hello Jane!")
    with store.write():
        [claimed] = store.claim_outbox(iso(now), iso(now + dt.timedelta(seconds=LEASE_SECONDS)))
    # The sender posted the status, then died before "sent" was committed.
    first = mainland.sending_connector("social").send(build_outbound(store, claimed))
    assert send_due(mainland, store, now=now + dt.timedelta(seconds=LEASE_SECONDS + 1)).sent == 1
    keys = [r.headers.get("Idempotency-Key") for r in mastodon.requests_to("/api/v1/statuses")]
    assert keys == [outbox_id, outbox_id]
    [sent] = mastodon.replies()
    assert sent["id"] == first and store.outbox_row(outbox_id)["provider_id"] == first


def test_a_handle_without_a_server_is_refused_before_anything_is_posted(mastodon):
    connector = MastodonConnector("social", {"base_url": mastodon.url, "access_token": mastodon.token})
    reply = OutboundReply(idempotency_key="o-1", channel="social", conversation_id=1, text="Hello",
                          to=Author(handle="jane", name="Jane", identity_kind="mastodon"),
                          thread_key=MastodonConnector.thread_key_for("jane"), starts_conversation=True)
    with pytest.raises(PermanentError, match="user@server"):
        connector.send(reply)
    assert not mastodon.requests_to("/api/v1/statuses")


def test_the_thread_key_is_the_one_of_the_customers_direct_statuses():
    assert MastodonConnector.thread_key_for("@Jane@Example.Social ") == "direct:jane@example.social"
    assert MastodonConnector.thread_key_for("jane") is None


def test_the_options_offer_mastodon_for_a_mastodon_address(mainland, store, frozen_clock):
    cid = customer(store, frozen_clock.now(), mastodon=JANE, telegram="777")
    options = {o.identity["kind"]: o for o in outreach.start_options(mainland, store, cid)}
    assert [(t.channel, t.needs_template, t.thread_key) for t in options["mastodon"].targets] == [
        ("social", False, f"direct:{JANE}")]
    # Each address is offered on the channel that writes to its kind only.
    assert [t.channel for t in options["telegram"].targets] == ["telegram"]
