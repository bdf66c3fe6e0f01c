"""Connector health: the admin page, the `/-/connectors` JSON and the warning on every inbox page.

Health rows, cursors, refusals, quarantine and messages are written through the store with times
relative to now (the "frozen clock" is the timestamps we write), then read back through the test
client as an admin, an agent, an API client and an anonymous visitor.
"""

from __future__ import annotations

import datetime as dt

import pytest

from inbox.attachments import AttachmentStore
from inbox.ingest import Ingestor
from inbox.models import Author, FetchResult, InboundItem, Reject
from inbox.store.base import iso, parse_iso
from tests.test_web_auth import login, make_agent, web_store  # noqa: F401

API_TOKEN = "health-monitoring-token-0123456789"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def frozen_now():
    """Each test writes its rows relative to its own start, so "25 minutes ago" stays 25 minutes."""
    global NOW
    NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def app_config(app_config):
    app_config["health"] = {"warn_after": "15m"}
    app_config["api_tokens"] = [API_TOKEN]
    app_config["channels"] = {
        "support-mail": {"kind": "imap", "host": "127.0.0.1", "port": 1143, "security": "none",
                         "username": "support@mainland.test", "password": "not-a-real-password",
                         "address": "support@mainland.test", "poll_every": "10m"},
        "telegram": {"kind": "telegram", "token": "7000000001:AAE-test", "api_url": "http://127.0.0.1:9",
                     "poll_every": 30},
        "whatsapp": {"kind": "whatsapp", "phone_number_id": "1065", "access_token": "EAA-test",
                     "app_secret": "whatsapp-app-secret", "verify_token": "verify", "api_url": "http://127.0.0.1:9"},
        "old-mail": {"kind": "imap", "enabled": False, "host": "127.0.0.1", "username": "old@mainland.test",
                     "password": "not-a-real-password", "address": "old@mainland.test"},
        "contact": {"kind": "webform", "reply_channel": "support-mail"},
    }
    return app_config


def at(minutes_ago: float) -> str:
    return iso(NOW - dt.timedelta(minutes=minutes_ago))


def item(channel: str, external_id: str, handle: str = "jane@example.org") -> InboundItem:
    return InboundItem(channel=channel, external_id=external_id, author=Author(handle=handle, name="Jane"),
                       text=f"message {external_id}", subject="Order", thread_key=external_id)


def ingest(app, store, channel, items, *, hours_ago: float = 0, rejects=()):
    mainland = app.extensions["mainland"]
    ingestor = Ingestor(store, AttachmentStore(mainland.config.attachments_dir), instance_id="test-instance",
                        now=lambda: NOW - dt.timedelta(hours=hours_ago))
    return ingestor.ingest(channel, FetchResult(items=list(items), cursor=None, rejects=list(rejects)),
                           save_cursor=False)


def record(store, channel, minutes_ago, **kw):
    with store.write():
        store.record_poll(channel, at(minutes_ago), **kw)


@pytest.fixture
def clients(app, web_store):  # noqa: F811
    make_agent(web_store, "ada@example.org", name="Ada Admin", role="admin")
    make_agent(web_store, "ann@example.org", name="Ann Agent", role="agent")
    make_agent(web_store, "mia@example.org", name="Mia Manager", role="manager")
    made = {"anonymous": app.test_client()}
    for role, email in (("admin", "ada@example.org"), ("agent", "ann@example.org"), ("manager", "mia@example.org")):
        client = app.test_client()
        assert login(client, email).status_code == 302
        made[role] = client
    return made


# Who may see it -------------------------------------------------------------------------------

def test_only_admins_see_the_health_page(clients):
    page = clients["admin"].get("/admin/connectors")
    assert page.status_code == 200
    assert "Connector health" in page.get_data(as_text=True)
    assert clients["agent"].get("/admin/connectors").status_code == 403
    assert clients["manager"].get("/admin/connectors").status_code == 403
    anonymous = clients["anonymous"].get("/admin/connectors")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_only_admins_and_api_tokens_get_the_json(clients):
    assert clients["admin"].get("/-/connectors").status_code == 200
    for who in ("agent", "manager", "anonymous"):
        response = clients[who].get("/-/connectors")
        assert response.status_code == 403, who
        assert response.is_json and response.get_json()["ok"] is False
        assert "channels" not in response.get_json()
    token = clients["anonymous"].get("/-/connectors", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert token.status_code == 200 and token.get_json()["ok"] is True
    wrong = clients["anonymous"].get("/-/connectors", headers={"Authorization": f"Bearer {API_TOKEN}x"})
    assert wrong.status_code == 403
    basic = clients["anonymous"].get("/-/connectors", headers={"Authorization": f"Basic {API_TOKEN}"})
    assert basic.status_code == 403


def test_the_totals_of_the_liveness_check_need_a_token_or_a_session(clients):
    assert "counts" not in clients["anonymous"].get("/-/health").get_json()
    wrong = clients["anonymous"].get("/-/health", headers={"Authorization": f"Bearer {API_TOKEN}x"})
    assert wrong.status_code == 200 and "counts" not in wrong.get_json()
    token = clients["anonymous"].get("/-/health", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert "messages" in token.get_json()["counts"]
    assert "messages" in clients["agent"].get("/-/health").get_json()["counts"]


def test_the_health_link_is_in_the_admins_navigation_only(clients):
    assert "/admin/connectors" in clients["admin"].get("/").get_data(as_text=True)
    assert "/admin/connectors" not in clients["agent"].get("/").get_data(as_text=True)


# What it shows --------------------------------------------------------------------------------

def test_json_gives_every_channel_with_its_figures(app, clients, web_store):  # noqa: F811
    # support-mail: polled fine two minutes ago, with a cursor; 3 messages today, 1 two days ago.
    record(web_store, "support-mail", 2, items=3)
    with web_store.write():
        web_store.save_cursor("support-mail", '{"uidvalidity": 7, "uid": 42}', at(2))
    ingest(app, web_store, "support-mail", [item("support-mail", f"m{i}") for i in range(3)],
           rejects=[Reject(raw=b"broken", reason="no sender")])
    ingest(app, web_store, "support-mail", [item("support-mail", "old")], hours_ago=48)
    # telegram: failing, paused for 5 more minutes after a rate limit.
    record(web_store, "telegram", 60)
    record(web_store, "telegram", 3, error="429 Too Many Requests: retry after 480", paused_until=iso(
        NOW + dt.timedelta(minutes=5)))
    # whatsapp: one webhook taken in, two refused today and one refused long ago.
    with web_store.write():
        web_store.inbound_webhooks.record("whatsapp", "wamid.1", at(7))
        for minutes in (30, 20, 60 * 30):
            web_store.inbound_webhooks.record_refusal("whatsapp", at(minutes), remote_addr="203.0.113.9",
                                                      reason="bad signature", keep_after=at(60 * 24 * 40))
    ingest(app, web_store, "whatsapp", [item("whatsapp", "wamid.1", handle="+31612345678")])

    data = clients["admin"].get("/-/connectors").get_json()
    assert data["ok"] is True and data["warn_after_seconds"] == 900
    channels = {c["name"]: c for c in data["channels"]}
    assert list(channels) == ["support-mail", "telegram", "whatsapp", "old-mail", "contact"]
    expected_keys = {"name", "kind", "display_name", "label", "enabled", "push_only", "polled", "webhooks",
                     "poll_every_seconds", "last_poll_at", "last_success_at", "last_error", "last_error_at",
                     "failures", "paused_until", "cursor", "cursor_updated_at", "items_24h", "next_poll_at",
                     "last_webhook_at", "webhook_refusals_24h", "quarantined", "failing_since", "failing_seconds",
                     "warning"}
    assert all(set(c) == expected_keys for c in channels.values())

    mail = channels["support-mail"]
    assert (mail["kind"], mail["enabled"], mail["polled"], mail["push_only"]) == ("imap", True, True, False)
    assert mail["items_24h"] == 3 and mail["quarantined"] == 1
    assert mail["cursor"] == '{"uidvalidity": 7, "uid": 42}'
    assert mail["failures"] == 0 and mail["last_success_at"] == at(2) and not mail["warning"]
    assert parse_iso(mail["next_poll_at"]) == parse_iso(at(2)) + dt.timedelta(minutes=10)

    telegram = channels["telegram"]
    assert telegram["failures"] == 1 and telegram["last_error"].startswith("429")
    assert telegram["last_success_at"] == at(60) and telegram["poll_every_seconds"] == 30
    # The pause is later than last poll + 30 s, so the next poll waits for it.
    assert telegram["next_poll_at"] == telegram["paused_until"]
    assert telegram["warning"] is True and telegram["failing_since"] == at(60)

    whatsapp = channels["whatsapp"]
    assert whatsapp["push_only"] and whatsapp["webhooks"] and not whatsapp["polled"]
    assert whatsapp["next_poll_at"] is None and whatsapp["last_webhook_at"] == at(7)
    assert whatsapp["webhook_refusals_24h"] == 2 and whatsapp["items_24h"] == 1

    old = channels["old-mail"]
    assert old["enabled"] is False and old["next_poll_at"] is None and old["items_24h"] == 0
    assert channels["contact"]["push_only"] and channels["contact"]["kind"] == "webform"
    assert not channels["contact"]["webhooks"]  # forms post to their own pages, not /webhooks/


def test_the_page_shows_errors_cursors_and_counts(app, clients, web_store):  # noqa: F811
    record(web_store, "telegram", 4, error="Telegram answered 502 Bad Gateway", paused_until=at(-1))
    with web_store.write():
        web_store.save_cursor("telegram", "795120400", at(10))
    ingest(app, web_store, "telegram", [item("telegram", "t1", handle="111")])
    page = clients["admin"].get("/admin/connectors").get_data(as_text=True)
    assert "Telegram answered 502 Bad Gateway" in page
    assert "795120400" in page
    assert "1 failure in a row" in page
    assert "1 message" in page
    assert "not polled: the channel is disabled" in page  # old-mail


# The warning on every page -----------------------------------------------------------------------

def test_a_channel_failing_longer_than_warn_after_warns_on_every_page(clients, web_store):  # noqa: F811
    record(web_store, "telegram", 25)
    record(web_store, "telegram", 1, error="connection refused", paused_until=at(-2))
    admin_page = clients["admin"].get("/").get_data(as_text=True)
    assert "Telegram has not been reachable for 25 minutes" in admin_page
    assert 'href="/admin/connectors#channel-telegram"' in admin_page
    agent_page = clients["agent"].get("/").get_data(as_text=True)
    assert "Telegram has not been reachable for 25 minutes." in agent_page
    assert "/admin/connectors" not in agent_page  # agents cannot open the health page
    # Every page, not only the queue.
    assert "has not been reachable" in clients["agent"].get("/settings").get_data(as_text=True)
    # Anonymous visitors learn nothing about the channels.
    assert "reachable" not in clients["anonymous"].get("/login").get_data(as_text=True)


def test_no_warning_before_the_threshold_or_after_recovery(clients, web_store):  # noqa: F811
    record(web_store, "telegram", 10)
    record(web_store, "telegram", 1, error="connection refused")
    assert "reachable" not in clients["agent"].get("/").get_data(as_text=True)
    record(web_store, "telegram", 0.5)  # a success clears the failures
    record(web_store, "telegram", 30, error="an older error")  # (recorded out of order: still 1 failure)
    record(web_store, "telegram", 0)
    assert "reachable" not in clients["agent"].get("/").get_data(as_text=True)


def test_a_channel_that_never_worked_warns_after_enough_failed_polls(clients, web_store):  # noqa: F811
    # support-mail polls every 10 minutes: two failures in a row span at least 10 minutes, three 20.
    for minutes in (11, 1):
        record(web_store, "support-mail", minutes, error="login failed")
    assert "reachable" not in clients["agent"].get("/").get_data(as_text=True)
    record(web_store, "support-mail", 0.2, error="login failed")
    page = clients["agent"].get("/").get_data(as_text=True)
    assert "support-mail (Email) has not been reachable for 20 minutes" in page


def test_refused_webhooks_warn_from_the_first_refusal(clients, web_store):  # noqa: F811
    with web_store.write():
        for minutes in (40, 5):
            web_store.inbound_webhooks.record_refusal("whatsapp", at(minutes), remote_addr=None,
                                                      reason="bad signature", keep_after=at(60 * 24))
            web_store.record_poll("whatsapp", at(minutes), error="webhook refused: bad signature")
    assert "has not been reachable for 40 minutes" in clients["agent"].get("/").get_data(as_text=True)


def test_a_disabled_channel_never_warns(clients, web_store):  # noqa: F811
    record(web_store, "old-mail", 120)
    record(web_store, "old-mail", 60, error="login failed")
    assert "reachable" not in clients["admin"].get("/").get_data(as_text=True)


def test_the_warning_is_translated(app, clients, web_store):  # noqa: F811
    agent = web_store.agent_by_email("ann@example.org")
    with web_store.write():
        web_store.set_agent_locale(agent["id"], "nl")
    record(web_store, "telegram", 181)
    record(web_store, "telegram", 1, error="connection refused")
    page = clients["agent"].get("/").get_data(as_text=True)
    assert "Telegram is al 3 uur niet bereikbaar" in page
