"""New conversation on Bluesky from the customer's page (#12): the page offers the customer's Bluesky
identity on the Bluesky channel, and the form's message goes out as a direct message to the imitation."""

from __future__ import annotations

import pytest

from connectors import bluesky as bluesky_module
from sandbox.bluesky import BlueskyImitation
from tests.test_web_outreach import World, text_of

pytestmark = pytest.mark.server

JANE = "jane.bsky.social"


@pytest.fixture
def pds():
    bluesky_module._SESSIONS.clear()
    with BlueskyImitation() as imitation:
        yield imitation
    bluesky_module._SESSIONS.clear()


@pytest.fixture
def app_config(app_config, pds):
    app_config["channels"] = {"bsky": {"kind": "bluesky", "identifier": pds.handle, "app_password": pds.app_password,
                                       "service_url": pds.url, "dms": True, "timeout": 10}}
    return app_config


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def test_the_page_offers_the_bluesky_identity_and_sends_a_direct_message(world, pds):
    did = pds.chat_settings(JANE, "all")
    cid = world.customer(name="Jane Doe", bluesky=did)
    client = world.client()
    page = text_of(client.get(f"/customers/{cid}/conversations/new"))
    choice = f"{world.identity_id(cid, 'bluesky')}|bsky"
    assert f'value="{choice}"' in page
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "csrf_token": client.token, "to": choice, "text": "Hi Jane, your parcel left our warehouse today."})
    assert response.status_code == 303
    assert world.send().sent == 1
    assert pds.convo_requests == [[did]]
    [dm] = pds.sent
    assert dm["kind"] == "dm" and dm["text"] == "Hi Jane, your parcel left our warehouse today."
