"""Admin -> Webhooks (#15): subscribe with the secret shown once, pause and resume, delete, a test event,
the delivery log with replay; every change audited; receiver addresses checked by the SSRF guard."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from inbox import webhooks_out
from inbox.store.base import iso
from tests.test_web_auth import csrf_token, login, make_agent, web_store  # noqa: F401

RECEIVER = "https://203.0.114.20/hooks/mainland"  # an address literal: the test machine resolves no names


@pytest.fixture
def admin(client, web_store, frozen_clock):  # noqa: F811
    person = make_agent(web_store, "adam@example.org", name="Adam Admin", role="admin")
    assert login(client, "adam@example.org").status_code == 302
    return person


def subscribe(client, url=RECEIVER, events=("message.received", "conversation.assigned")):
    return client.post("/admin/webhooks", data={"url": url, "event": list(events),
                                                "csrf_token": csrf_token(client, "/admin/webhooks")})


def audit_actions(store) -> list[str]:
    return [r[0] for r in store.execute("SELECT action FROM audit_log WHERE object_type = 'webhook_subscription' "
                                        "ORDER BY id")]


def test_a_subscription_shows_its_secret_once_and_keeps_it_sealed(client, admin, web_store):  # noqa: F811
    response = subscribe(client)

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-webhook-secret" type="text" value="(whsec_[^"]+)"',
                       response.get_data(as_text=True)).group(1)
    [subscription] = web_store.webhook_subscriptions()
    assert subscription["events"] == ["message.received", "conversation.assigned"]
    assert secret not in subscription["secret"], "the database keeps it sealed"
    listing = client.get("/admin/webhooks").get_data(as_text=True)
    detail = client.get(f"/admin/webhooks/{subscription['id']}").get_data(as_text=True)
    assert RECEIVER in listing and secret not in listing and secret not in detail
    assert audit_actions(web_store) == ["webhook_created"]


@pytest.mark.parametrize("url, reason", [
    ("http://203.0.114.20/hook", "https://"),
    ("https://127.0.0.1/hook", "non-public"),
    ("https://192.168.1.10/hook", "non-public"),
    ("https://169.254.169.254/latest/meta-data", "non-public"),
])
def test_a_receiver_the_guard_refuses_is_not_subscribed(client, admin, web_store, url, reason):  # noqa: F811
    response = subscribe(client, url=url)
    assert response.status_code == 400 and reason in response.get_data(as_text=True)
    assert web_store.webhook_subscriptions() == []


def test_no_event_chosen_is_refused(client, admin, web_store):  # noqa: F811
    response = subscribe(client, events=())
    assert response.status_code == 400 and "Choose at least one event." in response.get_data(as_text=True)
    assert web_store.webhook_subscriptions() == []


def test_pause_resume_test_event_replay_and_delete_are_audited(client, admin, web_store, frozen_clock):  # noqa: F811
    subscribe(client)
    [subscription] = web_store.webhook_subscriptions()
    page = f"/admin/webhooks/{subscription['id']}"

    client.post(f"{page}/state", data={"state": "paused", "csrf_token": csrf_token(client, page)})
    paused = client.get(page).get_data(as_text=True)
    assert web_store.webhook_subscription(subscription["id"])["state"] == "paused"
    assert 'id="paused-notice"' in paused and ">Resume</button>" in paused

    client.post(f"{page}/state", data={"state": "active", "csrf_token": csrf_token(client, page)})
    client.post(f"{page}/test", data={"csrf_token": csrf_token(client, page)})
    [delivery] = web_store.webhook_deliveries(subscription["id"])
    assert delivery["event_type"] == webhooks_out.TEST_EVENT and delivery["state"] == "pending"
    with web_store.write():
        web_store.finish_webhook_attempt(delivery["id"], state="delivered", now=iso(frozen_clock.now()),
                                         status_code=204, response_body=None, duration_ms=12, error=None)
    log_page = client.get(page).get_data(as_text=True)
    assert "Replay</button>" in log_page and "12 ms" in log_page

    client.post(f"{page}/deliveries/{delivery['id']}/replay", data={"csrf_token": csrf_token(client, page)})
    replay, original = web_store.webhook_deliveries(subscription["id"])
    assert replay["replay_of"] == original["id"] and replay["event_id"] == original["event_id"]

    client.post(f"{page}/delete", data={"csrf_token": csrf_token(client, page)})
    assert web_store.webhook_subscriptions() == []
    assert client.get(page).status_code == 404
    assert audit_actions(web_store) == ["webhook_created", "webhook_paused", "webhook_resumed", "webhook_test_sent",
                                        "webhook_replayed", "webhook_deleted"]


def test_an_automatic_pause_is_explained_on_the_page(client, admin, web_store, frozen_clock):  # noqa: F811
    subscribe(client)
    [subscription] = web_store.webhook_subscriptions()
    with web_store.write():
        web_store.set_webhook_subscription_state(subscription["id"], "paused", iso(frozen_clock.now()),
                                                 "the receiver answered 503")
    page = client.get(f"/admin/webhooks/{subscription['id']}").get_data(as_text=True)
    assert "Paused automatically" in page and "the receiver answered 503" in page and "24 hours" in page
    assert "automatically" in client.get("/admin/webhooks").get_data(as_text=True)


def test_replay_of_another_subscriptions_delivery_is_not_found(client, admin, web_store):  # noqa: F811
    subscribe(client)
    subscribe(client, url="https://203.0.114.21/other")
    first, second = web_store.webhook_subscriptions()
    delivery = webhooks_out.queue_test(web_store, second["id"])
    page = f"/admin/webhooks/{first['id']}"
    response = client.post(f"{page}/deliveries/{delivery}/replay", data={"csrf_token": csrf_token(client, page)})
    assert response.status_code == 404
    assert len(web_store.webhook_deliveries(second["id"])) == 1


def test_the_delivery_log_is_paged(client, admin, web_store):  # noqa: F811
    subscribe(client)
    [subscription] = web_store.webhook_subscriptions()
    made = [webhooks_out.queue_test(web_store, subscription["id"]) for _ in range(30)]
    first = client.get(f"/admin/webhooks/{subscription['id']}").get_data(as_text=True)
    assert f'id="delivery-{made[-1]}"' in first and f'id="delivery-{made[0]}"' not in first
    older = re.search(r'href="([^"]+before=\d+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert f'id="delivery-{made[0]}"' in second and f'id="delivery-{made[-1]}"' not in second
    assert json.loads(web_store.webhook_delivery(made[0])["payload"])["type"] == webhooks_out.TEST_EVENT


def test_resuming_sends_what_waited_at_once(client, admin, web_store, frozen_clock):  # noqa: F811
    subscribe(client)
    [subscription] = web_store.webhook_subscriptions()
    delivery = webhooks_out.queue_test(web_store, subscription["id"])
    later = iso(frozen_clock.now() + dt.timedelta(minutes=40))
    with web_store.write():
        web_store.finish_webhook_attempt(delivery, state="retry_wait", now=iso(frozen_clock.now()), status_code=500,
                                         response_body=None, duration_ms=5, error="the receiver answered 500",
                                         next_at=later)
        web_store.set_webhook_subscription_state(subscription["id"], "paused", iso(frozen_clock.now()), "500")
    frozen_clock.advance(minutes=5)
    page = f"/admin/webhooks/{subscription['id']}"
    client.post(f"{page}/state", data={"state": "active", "csrf_token": csrf_token(client, page)})
    assert web_store.webhook_delivery(delivery)["next_at"] == iso(frozen_clock.now())
