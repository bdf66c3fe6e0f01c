"""Messenger button presses: postbacks ("Get started", postback buttons, menu items) and quick replies.

Each press becomes an inbound message in the customer's Messenger conversation whose text is what
the customer saw and pressed, with the payload our bot set behind it kept in the `pressed` header.
The webhook bodies in tests/fixtures/facebook/ are written from Meta's documentation; the rest runs
against the loopback imitation (sandbox/meta.py).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import WebhookRequest
from connectors.facebook import FacebookConnector
from connectors.testing import fetch_all
from sandbox.meta import MetaImitation

pytestmark = pytest.mark.server  # starts the loopback imitation of Meta's Graph API

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "facebook"
PSID = "6723400011122233"


@pytest.fixture
def meta():
    with MetaImitation(page_size=2) as imitation:
        yield imitation


@pytest.fixture
def context(tmp_path, meta):
    from inbox.runtime import ConnectorContext

    return ConnectorContext(
        instance_id="t", mail_domain="mainland.test", base_url="http://127.0.0.1:5000",
        max_message_bytes=1 << 20, max_attachment_bytes=1 << 20, data_dir=tmp_path, fetch_allow_hosts=(meta.host,))


def make(meta: MetaImitation, context, **overrides: Any) -> FacebookConnector:
    settings = {"page_id": meta.page_id, "access_token": meta.access_token, "app_secret": meta.app_secret,
                "api_url": meta.url, "lookup_names": False, **overrides}
    return FacebookConnector("fb-page", settings, context=context)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def parse(conn: FacebookConnector, meta: MetaImitation, payload: dict[str, Any]):
    body, headers = meta.signed(payload)
    request = WebhookRequest(body=body, headers=headers)
    conn.verify_webhook(request)
    return conn.parse_webhook(request)


def test_a_postback_button_press_is_a_message_with_its_title_and_payload(meta, context):
    result = parse(make(meta, context), meta, fixture("postback_button.json"))
    assert result.rejects == []
    [item] = result.items
    assert item.text == "Track my order", "the agent reads the button the customer pressed"
    assert item.headers["pressed"] == "Track my order (TRACK_ORDER)"
    assert item.external_id == "m_PostbackMid0001"
    assert (item.thread_key, item.author.handle, item.public) == (PSID, PSID, False)
    # Meta's reference sends every property as a string, the time in seconds among them.
    assert item.sent_at == dt.datetime(2025, 3, 5, 10, 15, 1, tzinfo=dt.UTC)


def test_a_get_started_press_without_mid_gets_an_id_that_is_the_same_every_time(meta, context):
    conn = make(meta, context)
    payload = fixture("postback_get_started.json")
    [first] = parse(conn, meta, payload).items
    [again] = parse(conn, meta, payload).items  # Meta delivers it again
    assert first.text == "Get Started" and first.headers["pressed"] == "Get Started (GET_STARTED)"
    assert first.external_id == again.external_id and first.external_id.startswith("postback_")
    later = json.loads(json.dumps(payload))
    later["entry"][0]["messaging"][0]["timestamp"] += 60_000  # the customer presses it again later
    [second_press] = parse(conn, meta, later).items
    assert second_press.external_id != first.external_id


def test_a_quick_reply_keeps_its_payload_next_to_the_text_the_customer_tapped(meta, context):
    [item] = parse(make(meta, context), meta, fixture("quick_reply.json")).items
    assert (item.external_id, item.text) == ("m_QuickReplyMid0002", "Belgium")
    assert item.headers["pressed"] == "Belgium (SHIP_TO_BE)"


def test_an_ordinary_message_has_no_pressed_header(meta, context):
    meta.customer_dm("Jane Doe", "hello")
    [payload] = meta.webhook_payloads()
    [item] = parse(make(meta, context), meta, payload).items
    assert "pressed" not in item.headers


def test_presses_thread_into_the_customers_messenger_conversation(meta, context, store, ingestor):
    conn = make(meta, context)
    meta.customer_dm("Jane Doe", "Hi, I have a question")
    meta.customer_presses("Jane Doe", "Talk to a person", "HUMAN")
    meta.customer_quick_reply("Jane Doe", "Yes", "CONFIRM_YES")
    for payload in meta.webhook_payloads():
        body, headers = meta.signed(payload)
        ingestor.ingest("fb-page", conn.parse_webhook(WebhookRequest(body=body, headers=headers)),
                        save_cursor=False)
    ingestor.ingest("fb-page", fetch_all(conn))  # the fallback poll lists the presses as messages too
    counts = store.counts()
    assert counts["messages"] == 3 and counts["conversations"] == 1


def test_a_press_without_mid_delivered_twice_is_stored_once(meta, context, store, ingestor):
    conn = make(meta, context)
    meta.customer_presses("Jane Doe", "Get Started", "GET_STARTED", with_mid=False)
    [payload] = meta.webhook_payloads()
    body, headers = meta.signed(payload)
    for _ in range(2):
        ingestor.ingest("fb-page", conn.parse_webhook(WebhookRequest(body=body, headers=headers)),
                        save_cursor=False)
    assert store.counts()["messages"] == 1


def test_a_postback_without_title_or_payload_goes_to_quarantine(meta, context):
    payload = fixture("postback_button.json")
    payload["entry"][0]["messaging"][0]["postback"] = {"mid": "m_empty"}
    result = parse(make(meta, context), meta, payload)
    assert result.items == [] and "postback" in result.rejects[0].reason


def test_an_instagram_icebreaker_press_is_a_message_too(meta, context):
    from connectors.instagram import InstagramConnector

    conn = InstagramConnector("ig", {"account_id": meta.ig_id, "page_id": meta.page_id,
                                     "access_token": meta.access_token, "app_secret": meta.app_secret,
                                     "api_url": meta.url, "lookup_names": False}, context=context)
    mid = meta.customer_presses("Ann", "Where is my order?", "ICEBREAKER_ORDER", platform="instagram")
    [payload] = meta.webhook_payloads()
    [item] = parse(conn, meta, payload).items
    assert (item.external_id, item.text, item.thread_key) == (mid, "Where is my order?", meta.user("Ann", "instagram"))


def test_a_press_kept_in_quarantine_can_be_reprocessed(meta, context):
    conn = make(meta, context)
    [item] = parse(conn, meta, fixture("postback_get_started.json")).items
    again = conn.parse_raw(item.raw)
    assert (again.external_id, again.text, again.headers) == (item.external_id, item.text, item.headers)
