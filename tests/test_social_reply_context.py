"""A mention answering a post shows that post above it in the conversation ("which coat?").

The X and Mastodon connectors fill `context_text` / `context_url` from the post the customer
answers; here an item fetched from each imitation goes through the app's own ingest pipeline and
the agent's conversation page shows the post's text (escaped) and a link to it.
"""

from __future__ import annotations

import pytest
from markupsafe import escape

from connectors import x as x_module
from connectors.mastodon import MastodonConnector
from connectors.testing import fetch_all
from connectors.x import XConnector
from inbox.models import FetchResult
from sandbox.mastodon import MastodonImitation
from sandbox.x import XImitation
from tests.test_web_auth import login, make_agent, web_store  # noqa: F401  (web_store is a fixture)
from tests.test_web_conversations import assert_nothing_executable

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs


@pytest.fixture
def agent_client(client, web_store, frozen_clock):  # noqa: F811
    make_agent(web_store)
    assert login(client).status_code == 302
    return client


@pytest.fixture
def page_of(app, web_store, agent_client):  # noqa: F811
    """Ingest `item` as the app would, and return the conversation page it lands on."""
    ingestor = app.extensions["mainland"].ingestor(web_store)

    def page_of(channel: str, item) -> str:
        ingestor.ingest(channel, FetchResult(items=[item], cursor="c1"))
        [message] = [m for c in web_store.recent_conversations()
                     for m in web_store.thread_messages(c["id"]) if m["external_id"] == item.external_id]
        return agent_client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)

    return page_of


def assert_post_shown_above(page: str, text: str, url: str, reply: str) -> None:
    assert str(escape(text)) in page, "the post's text is shown, escaped"
    assert f'href="{url}"' in page and "Open the post" in page
    context = page.index('class="reply-context-text"')
    assert page.index(str(escape(text))) > context
    assert context < page.index(f'<div class="text">{escape(reply)}'), "the post stands above the customer's words"
    assert_nothing_executable(page)


def test_an_x_mention_shows_the_post_it_answers(tmp_path, page_of):
    x_module._TOKENS.clear()
    with XImitation() as api:
        coat = api.our_post("Our wool coat <b>is back</b> & warmer")
        api.customer_mention("janedoe", "@AcmeSupport which sizes?", in_reply_to=coat)
        connector = XConnector("x-support", {"user_id": api.user_id, "api_url": api.url, "dms": False,
                                             "access_token": api.access_token, "download_media": False})
        [item] = fetch_all(connector).items
        connector.close()
    x_module._TOKENS.clear()
    page = page_of("x-support", item)
    assert_post_shown_above(page, "Our wool coat <b>is back</b> & warmer",
                            f"https://x.com/AcmeSupport/status/{coat}", "@AcmeSupport which sizes?")


def test_a_mastodon_reply_shows_the_status_it_answers(page_of):
    with MastodonImitation() as server:
        coat = server.our_status("Our wool coat is back <3")
        server.mention("jane", "which sizes?", in_reply_to=coat)
        connector = MastodonConnector("social", {"base_url": server.url, "access_token": server.token,
                                                 "account_domain": server.domain})
        [item] = fetch_all(connector).items
        connector.close()
    page = page_of("social", item)
    assert_post_shown_above(page, "Our wool coat is back <3", coat["url"], "@support which sizes?")
