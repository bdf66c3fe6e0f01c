"""A blocked sender goes straight to spam on every channel (#14): email, Telegram and Mastodon.

A real Mainland (config, SQLite file, poller) polls the Telegram Bot API and Mastodon imitations;
email comes through the mail parser. Each sender first writes a question that lands in the queue; a
lead blocks what the conversation page offers (a Telegram account, a Mastodon handle, a mail domain);
what each writes next is spam (its conversation kept out of the queue), while another customer on
the same channels still reaches the queue.
"""

from __future__ import annotations

import pytest

from inbox.config import from_mapping
from inbox.mail import parse_email
from inbox.models import FetchResult
from inbox.poller import poll_channel
from inbox.runtime import Mainland
from inbox.store.base import now_iso
from inbox.web.triage import blockable
from sandbox.mastodon import MastodonImitation
from sandbox.telegram import TelegramImitation
from tests.mailfactory import raw_mail

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs


@pytest.fixture
def telegram():
    with TelegramImitation() as imitation:
        yield imitation


@pytest.fixture
def mastodon():
    with MastodonImitation(domain="acme.social") as imitation:
        yield imitation


@pytest.fixture
def mainland(tmp_path, telegram, mastodon):
    config = from_mapping({
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "e2e-secret",
        "instance_id": "e2e",
        "fetch_allow_hosts": [telegram.host, mastodon.host],
        "channels": {
            "telegram": {"kind": "telegram", "token": telegram.token, "api_url": telegram.url},
            "social": {"kind": "mastodon", "base_url": mastodon.url, "access_token": mastodon.token,
                       "account_domain": "acme.social"},
        },
    }, base=tmp_path)
    return Mainland(config, include_entry_points=False)


@pytest.fixture
def store(mainland):
    store = mainland.open_store(migrate=True)
    yield store
    store.close()


def newest_conversation(store, channel: str) -> dict:
    return next(c for c in store.recent_conversations() if c["channel"] == channel)


def mail(mainland, store, sender: str, body: str, n: int) -> dict:
    item = parse_email(raw_mail(sender=sender, body=body, subject=body[:20], message_id=f"<b{n}@example.net>"),
                       channel="mail")
    report = mainland.ingestor(store).ingest("mail", FetchResult(items=[item], cursor=None), save_cursor=False)
    return store.conversation(store.message(report.message_ids[0])["conversation_id"])


def block_from_the_page(store, conversation: dict, kind: str) -> str:
    """What a lead does on the conversation page: block the offer of `kind` (inbox/web/triage.py)."""
    [offer] = [o for o in blockable(store, conversation) if o["kind"] == kind]
    with store.write():
        store.triage.add_block(offer["kind"], offer["identity_kind"], offer["value"], agent_id=None, now=now_iso())
        store.set_conversation_status(conversation["id"], "resolved", None, now_iso())
    return offer["value"]


def test_a_blocked_sender_goes_to_spam_on_every_channel(mainland, store, telegram, mastodon):
    spammer_tg = telegram.user("Cheap", username="cheapwatches")
    spammer_md = mastodon.account("cheapwatches", domain="spam.town")
    telegram.private_message(spammer_tg, "Is my order shipped?")
    mastodon.direct(spammer_md, "Is my order shipped?")
    assert poll_channel(mainland, store, "telegram").ok and poll_channel(mainland, store, "social").ok
    first_mail = mail(mainland, store, "Cheap <sales@cheap.example>", "Is my order shipped?", 1)
    first = {"telegram": newest_conversation(store, "telegram"), "social": newest_conversation(store, "social"),
             "mail": first_mail}
    assert {c["status"] for c in first.values()} == {"new"}, "before the block: in the queue"

    assert block_from_the_page(store, first["telegram"], "handle") == str(spammer_tg["id"])
    assert block_from_the_page(store, first["social"], "handle") == "cheapwatches@spam.town"
    assert block_from_the_page(store, first["mail"], "domain") == "cheap.example"

    telegram.private_message(spammer_tg, "WATCHES 90% OFF")
    mastodon.direct(spammer_md, "WATCHES 90% OFF")
    telegram.private_message(telegram.user("Jane", username="janedoe"), "Where is my parcel?")
    mastodon.direct(mastodon.account("jane"), "Where is my parcel?")
    assert poll_channel(mainland, store, "telegram").ok and poll_channel(mainland, store, "social").ok
    later_mail = mail(mainland, store, "Other Cheap <news@cheap.example>", "WATCHES 90% OFF", 2)
    jane_mail = mail(mainland, store, "Jane <jane@example.net>", "Where is my parcel?", 3)

    for channel in ("telegram", "social"):
        by_text = {}
        for conversation in store.recent_conversations():
            if conversation["channel"] == channel and conversation["id"] != first[channel]["id"]:
                [message] = store.conversation_messages(conversation["id"])
                by_text[message["text"].split(" ", 1)[-1] if channel == "social" else message["text"]] = conversation
        assert by_text["WATCHES 90% OFF"]["status"] == "spam", f"blocked on {channel}"
        assert by_text["Where is my parcel?"]["status"] == "new", f"others still reach the queue on {channel}"
    assert later_mail["status"] == "spam", "the whole domain is blocked"
    assert jane_mail["status"] == "new"
    verdicts = {r[0]: r[1] for r in store.execute(
        "SELECT spam_reason, count(*) FROM messages WHERE spam_verdict = 'spam' GROUP BY spam_reason")}
    assert verdicts == {"blocked": 3}
