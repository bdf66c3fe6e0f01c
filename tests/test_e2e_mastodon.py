"""End to end on Mastodon: a direct message and a public mention come in, an agent answers both.

A real Mainland (config, SQLite file, poller, outbox) runs against the Mastodon imitation. The
answers go out through `queue_reply` + `send_due`, the path of the reply composer, and the
imitation receives each as a reply to the right status with the right visibility: the direct
message is answered directly (mentioning the customer so it reaches them), the public mention in
public. A reply resent after a crash carries the same Idempotency-Key and is posted once.
"""

from __future__ import annotations

import datetime as dt

import pytest

from inbox.config import from_mapping
from inbox.outbox import LEASE_SECONDS, build_outbound, queue_reply, send_due
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store.base import iso
from sandbox.mastodon import MastodonImitation

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs

IMAGE = b"\x89PNG\r\n\x1a\n" + b"dent" * 300


@pytest.fixture
def mastodon():
    with MastodonImitation(domain="acme.social") as imitation:
        yield imitation


@pytest.fixture
def mainland(tmp_path, mastodon):
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "e2e-secret",
        "instance_id": "e2e",
        "fetch_allow_hosts": [mastodon.host],
        "channels": {"social": {"kind": "mastodon", "base_url": mastodon.url, "access_token": mastodon.token,
                                "account_domain": "acme.social"}},
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def conversation_holding(store, external_id: str) -> dict:
    for conversation in store.recent_conversations():
        if any(m["external_id"] == external_id for m in store.conversation_messages(conversation["id"])):
            return conversation
    raise AssertionError(f"no conversation holds {external_id}")


def test_direct_message_and_public_mention_are_answered_with_their_visibility(mainland, store, mastodon):
    jane = mastodon.account("jane", display_name="Jane Doe")
    dm = mastodon.direct(jane, "my order #1234 arrived broken", media=[("dent.png", IMAGE, "image/png")])
    public = mastodon.mention(mastodon.account("bob", domain="other.town"), "do you ship to Belgium?")

    outcome = poll_channel(mainland, store, "social")
    assert outcome.ok and outcome.report.stored == 2

    private = conversation_holding(store, dm["id"])
    open_ = conversation_holding(store, public["id"])
    assert not private["public"] and open_["public"]
    [message] = store.conversation_messages(private["id"])
    assert message["text"] == "@support my order #1234 arrived broken"
    assert [a["filename"] for a in message["attachments"]] == ["dent.png"] and message["attachments"][0]["stored"]

    queue_reply(mainland, store, private["id"], "So sorry Jane, a replacement ships today.")
    queue_reply(mainland, store, open_["id"], "Yes, we ship to Belgium.")
    assert send_due(mainland, store).sent == 2

    by_parent = {s["in_reply_to_id"]: s for s in mastodon.replies()}
    to_jane, to_bob = by_parent[dm["id"]], by_parent[public["id"]]
    assert to_jane["visibility"] == "direct" and to_jane["reached"] == ["jane@example.social"]
    assert to_jane["text"] == "@jane@example.social So sorry Jane, a replacement ships today."
    assert to_bob["visibility"] == "public" and to_bob["text"].startswith("@bob@other.town ")

    # Jane answers our reply directly: it joins her direct conversation, not Bob's or a new one.
    ours = mastodon.statuses[to_jane["id"]]
    follow_up = mastodon.direct(jane, "thanks!", in_reply_to=ours)
    poll_channel(mainland, store, "social")
    assert conversation_holding(store, follow_up["id"])["id"] == private["id"]


def test_reply_resent_after_a_crash_is_posted_once(mainland, store, mastodon):
    mastodon.direct("jane", "where is my parcel?")
    poll_channel(mainland, store, "social")
    [conversation] = store.recent_conversations()
    outbox_id = queue_reply(mainland, store, conversation["id"], "It ships today.")
    now = dt.datetime.now(dt.UTC)
    with store.write():
        [claimed] = store.claim_outbox(iso(now), iso(now + dt.timedelta(seconds=LEASE_SECONDS)))
        # The sender records that it starts handing the reply over, as send_due does...
        assert store.start_outbox_attempt(claimed["id"], claimed["lease_until"], iso(now),
                                          iso(now + dt.timedelta(seconds=LEASE_SECONDS)))
    # ...posts the status, then dies before "sent" is committed.
    mainland.sending_connector("social").send(build_outbound(store, claimed))
    # Its lease runs out; the row is claimed and sent again with the same key.
    assert send_due(mainland, store, now=now + dt.timedelta(seconds=LEASE_SECONDS + 1)).sent == 1
    assert store.outbox_row(outbox_id)["possible_duplicate"] == 1
    keys = [r.headers.get("Idempotency-Key") for r in mastodon.requests_to("/api/v1/statuses")]
    assert keys == [outbox_id, outbox_id]
    assert len(mastodon.replies()) == 1
    assert len([s for s in mastodon.statuses.values() if s["account"]["acct"] == "support"]) == 1


def test_rate_limit_pauses_until_the_reset(mainland, store, mastodon):
    mastodon.mention("jane", "hello")
    mastodon.rate_limited(90)
    outcome = poll_channel(mainland, store, "social")
    assert outcome.error and outcome.retry_after == pytest.approx(90, abs=2)
    assert store.cursor("social") is None
    assert poll_channel(mainland, store, "social").skipped
