"""The "New conversation" page for X (#12): a customer's X account is offered under X, and the
message goes out as a direct message to the X imitation through the outbox."""

from __future__ import annotations

import re

import pytest

from connectors import x as x_module
from sandbox.x import XImitation
from tests.test_web_outreach import World, text_of

pytestmark = pytest.mark.server


@pytest.fixture(autouse=True)
def _forget_refreshed_tokens():
    x_module._TOKENS.clear()
    yield
    x_module._TOKENS.clear()


@pytest.fixture
def x_api():
    with XImitation() as imitation:
        yield imitation


@pytest.fixture
def app_config(app_config, x_api):
    app_config["channels"] = {
        "x-support": {"kind": "x", "user_id": x_api.user_id, "access_token": x_api.access_token,
                      "refresh_token": x_api.refresh_token, "client_id": x_api.client_id, "api_url": x_api.url},
    }
    return app_config


@pytest.fixture
def world(app):
    w = World(app)
    yield w
    w.store.close()


def test_an_x_account_is_offered_and_the_message_goes_out_as_a_dm(world, x_api):
    jane = x_api.user("janedoe", "Jane Doe")
    cid = world.customer(name="Jane Doe", x=jane)
    client = world.client()
    page = text_of(client.get(f"/customers/{cid}/conversations/new"))
    choice = f"{world.identity_id(cid, 'x')}|x-support"
    assert f'value="{choice}"' in page and "via X (Twitter)" in page
    assert 'id="cannot-start"' not in page  # her only identity can be written to
    response = client.post(f"/customers/{cid}/conversations/new", data={
        "csrf_token": client.token, "to": choice, "text": "Hello Jane, your replacement is on its way."})
    assert response.status_code == 303
    conversation_id = int(re.search(r"/conversations/(\d+)", response.headers["Location"]).group(1))
    assert world.send().sent == 1
    [request] = x_api.requests_to(r"^/2/dm_conversations/")
    assert request.path == f"/2/dm_conversations/with/{jane}/messages"
    assert request.json() == {"text": "Hello Jane, your replacement is on its way."}
    assert "your replacement is on its way" in text_of(client.get(f"/conversations/{conversation_id}"))
