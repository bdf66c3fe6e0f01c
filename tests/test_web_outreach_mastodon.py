"""The "New conversation" page offers a customer's Mastodon address (#12) and sends the first
message through the outbox to the Mastodon imitation as a private mention."""

from __future__ import annotations

import re

import pytest

from sandbox.mastodon import MastodonImitation
from tests.test_web_outreach import World, text_of

pytestmark = pytest.mark.server

JANE = "jane@example.social"


@pytest.fixture
def mastodon():
    with MastodonImitation(domain="acme.social") as imitation:
        yield imitation


@pytest.fixture
def app_config(app_config, mastodon):
    app_config["channels"] = {
        "social": {"kind": "mastodon", "base_url": mastodon.url, "access_token": mastodon.token,
                   "account_domain": "acme.social"},
    }
    return app_config


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def test_start_a_mastodon_conversation_from_the_customer_page(world, mastodon):
    mastodon.account("jane", display_name="Jane Doe")
    cid = world.customer(name="Jane Doe", mastodon=JANE)
    client = world.client()
    to = f"{world.identity_id(cid, 'mastodon')}|social"
    page = text_of(client.get(f"/customers/{cid}/conversations/new"))
    assert f'value="{to}"' in page and 'id="cannot-start"' not in page  # every address can be written to
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "csrf_token": client.token, "to": to, "text": "Your replacement coat is ready."})
    assert response.status_code == 303
    conversation_id = int(re.search(r"/conversations/(\d+)", response.headers["Location"]).group(1))
    assert world.send().sent == 1
    [sent] = mastodon.replies()
    assert (sent["visibility"], sent["in_reply_to_id"], sent["reached"]) == ("direct", None, [JANE])
    assert sent["text"] == "@jane@example.social Your replacement coat is ready."
    assert "Your replacement coat is ready." in text_of(client.get(f"/conversations/{conversation_id}"))
