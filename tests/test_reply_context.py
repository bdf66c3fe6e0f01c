"""What an inbound item answers ("this coat in XL?" - which coat?) is shown above it in the thread.

Any connector may set `InboundItem.context_text` / `context_url` (Facebook and Instagram set the post
a comment is on). The text is customer-visible content: it is shown escaped, and a link that is not
http(s) is never made a link.
"""

from __future__ import annotations

import datetime as dt

import pytest
from markupsafe import escape

from inbox.models import Author, FetchResult, InboundItem
from tests.test_web_auth import login, make_agent, web_store  # noqa: F401  (web_store is a fixture)
from tests.test_web_conversations import assert_nothing_executable

POST = "Our new wool coat <script>alert('coat')</script> & scarf"
POST_URL = "https://www.facebook.com/1234/posts/900000000000001"


@pytest.fixture
def agent_client(client, web_store, frozen_clock):  # noqa: F811
    make_agent(web_store)
    assert login(client).status_code == 302
    return client


@pytest.fixture
def ingest(app, web_store, frozen_clock):  # noqa: F811
    ingestor = app.extensions["mainland"].ingestor(web_store)

    def ingest(external_id: str, text: str, **context):
        item = InboundItem(
            channel="fb-page", external_id=external_id, text=text, public=True, thread_key=f"post:{external_id}",
            author=Author(handle=f"user-{external_id}", name="Bob", identity_kind="facebook"),
            sent_at=frozen_clock.now() - dt.timedelta(minutes=5), **context)
        ingestor.ingest("fb-page", FetchResult(items=[item], cursor=f"c-{external_id}"))
        [message] = [m for c in web_store.recent_conversations()
                     for m in web_store.thread_messages(c["id"]) if m["external_id"] == external_id]
        return message

    return ingest


def test_the_post_a_comment_is_on_is_stored_and_shown_escaped_with_its_link(agent_client, ingest):
    message = ingest("c1", "this coat in XL?", context_text=POST, context_url=POST_URL)
    assert (message["context_text"], message["context_url"]) == (POST, POST_URL)
    page = agent_client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)
    assert "On the post:" in page
    assert str(escape(POST)) in page, "the post's text is shown, escaped"
    assert "<script>alert('coat')" not in page
    assert f'href="{POST_URL}"' in page and "Open the post" in page
    link = page[page.index(f'href="{POST_URL}"') - 80:page.index("Open the post")]
    assert 'rel="noopener noreferrer"' in link and 'target="_blank"' in link
    section = page[page.index(f'id="message-{message["id"]}"'):]
    assert section.index("On the post:") < section.index('<div class="text">this coat in XL?'), "above the comment"
    assert_nothing_executable(page)


def test_a_javascript_url_is_not_linked(agent_client, ingest):
    message = ingest("c2", "which size?", context_text="Spring coats", context_url="JavaScript:alert(1)//https://x")
    page = agent_client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)
    assert "Spring coats" in page
    assert "Open the post" not in page and "alert(1)" not in page
    assert_nothing_executable(page)


def test_an_item_without_context_shows_no_post(agent_client, ingest):
    message = ingest("c3", "just a question")
    assert (message["context_text"], message["context_url"]) == (None, None)
    page = agent_client.get(f"/conversations/{message['conversation_id']}").get_data(as_text=True)
    assert "just a question" in page and "On the post:" not in page
