"""A Bluesky reply fetched from the imitation shows, on its conversation page, the post it answers.

The connector fills `context_text` / `context_url` from `app.bsky.feed.getPosts`; the store and the
page show them (tests/test_reply_context.py covers escaping and links in general).
"""

from __future__ import annotations

import pytest

from connectors import bluesky as bluesky_module
from connectors.bluesky import BlueskyConnector
from connectors.testing import fetch_all
from sandbox.bluesky import BlueskyImitation
from tests.test_web_auth import login, make_agent, web_store  # noqa: F401  (web_store is a fixture)

pytestmark = pytest.mark.server  # starts a loopback imitation of the Bluesky API


@pytest.fixture
def pds():
    bluesky_module._SESSIONS.clear()
    with BlueskyImitation() as imitation:
        yield imitation
    bluesky_module._SESSIONS.clear()


def test_the_conversation_of_a_reply_shows_the_post_it_answers(client, app, web_store, frozen_clock, pds):  # noqa: F811
    make_agent(web_store)
    assert login(client).status_code == 302
    ours = pds.our_post("Our spring boots are back in stock")
    reply = pds.customer_reply("jane.bsky.social", ours, "In size 39 too?", name="Jane Doe")
    connector = BlueskyConnector("bsky", {"identifier": pds.handle, "app_password": pds.app_password,
                                          "service_url": pds.url, "download_media": False})
    result = fetch_all(connector)
    app.extensions["mainland"].ingestor(web_store).ingest("bsky", result)
    [message] = [m for c in web_store.recent_conversations() for m in web_store.thread_messages(c["id"])
                 if m["external_id"] == reply]

    page = client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)
    assert "Our spring boots are back in stock" in page
    link = f"https://bsky.app/profile/acme.bsky.social/post/{ours.rsplit('/', 1)[-1]}"
    assert f'href="{link}"' in page
    section = page[page.index(f'id="message-{message["id"]}"'):]
    assert section.index("Our spring boots") < section.index("In size 39 too?"), "above the reply"
