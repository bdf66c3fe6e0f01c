"""Admin -> Webhooks in a real Chromium (#15): subscribe with the keyboard, copy the secret shown once, a
subscription's page with its delivery log, a paused one with its resume button; calm (one subscription,
a few deliveries) and dense (many subscriptions, a full page of deliveries with long answers), at
1440x900 and 390x844, in English and Dutch, with no serious accessibility faults (axe-core).

Screenshots go to test-artifacts/screenshots/webhooks-*.png (ignored by git).
"""

from __future__ import annotations

import json

import pytest

from inbox import webhooks_out
from inbox.store.base import iso
from tests.axe import describe, run_axe
from tests.browser_helpers import DESKTOP, screenshots_at_both_sizes
from tests.browser_helpers import sign_in as sign_in_through_the_form
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

RECEIVER = "https://203.0.114.20/hooks/mainland"  # an address literal: the test machine resolves no names


@pytest.fixture
def store(app):
    store = app.extensions["mainland"].open_store()
    make_agent(store, "adam@example.org", name="Adam Admin", role="admin")
    yield store
    store.close()


def sign_in(browser, base: str, *, viewport=DESKTOP, locale: str = "en-GB"):
    context = browser.new_context(viewport=viewport, locale=locale)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    sign_in_through_the_form(page, base, "adam@example.org", target="/admin/webhooks")
    return page


def shoot(page, name: str) -> None:
    screenshots_at_both_sizes(page, f"webhooks-{name}", must_fit=True)


def no_faults(page, where: str) -> None:
    violations = run_axe(page)
    assert violations == [], f"{where}:\n{describe(violations)}"


def finish(store, delivery_id: int, state: str, status: int | None, answer: str | None, error: str | None = None):
    with store.write():
        store.finish_webhook_attempt(delivery_id, state=state, now=iso(webhooks_out.clock.now()), status_code=status,
                                     response_body=answer, duration_ms=183, error=error,
                                     next_at=iso(webhooks_out.clock.now()))


def test_subscribe_copy_the_secret_and_read_the_log_calm(live_app, store, browser):  # noqa: F811
    page = sign_in(browser, live_app)
    no_faults(page, "the empty list")
    shoot(page, "list-empty")

    page.get_by_label("Receiver address").fill(RECEIVER)
    for label in ("A customer's message is received", "A reply is sent"):
        page.get_by_label(label).focus()
        page.keyboard.press("Space")
    page.get_by_role("button", name="Subscribe").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_app}/admin/webhooks")

    secret = page.locator("#new-webhook-secret").input_value()
    assert secret.startswith(webhooks_out.SECRET_PREFIX)
    assert page.get_by_role("alert").is_visible(), "the warning that it is shown once"
    page.get_by_role("button", name="Copy secret").click()
    page.get_by_text("Copied", exact=True).wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    no_faults(page, "the new subscription")
    shoot(page, "created")

    [subscription] = store.webhook_subscriptions()
    first = webhooks_out.queue_test(store, subscription["id"])
    finish(store, first, "delivered", 204, None)
    second = webhooks_out.queue_test(store, subscription["id"])
    finish(store, second, "retry_wait", 503, "Service Unavailable", "the receiver answered 503")

    page.get_by_role("link", name="Go to the subscription").click()
    assert page.locator(f"#delivery-{first}").get_by_role("button", name="Replay").is_visible()
    assert "503" in page.locator(f"#delivery-{second}").inner_text()
    no_faults(page, "the subscription")
    shoot(page, "subscription-calm")

    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Resume").wait_for()
    assert page.locator("#paused-notice").is_visible()
    no_faults(page, "a paused subscription")
    shoot(page, "paused")
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Pause").wait_for()
    assert page.errors == []


def test_many_subscriptions_and_a_full_log_dense_in_dutch(live_app, store, browser):  # noqa: F811
    now = iso(webhooks_out.clock.now())
    ids = []
    with store.write():
        for n in range(8):
            ids.append(store.create_webhook_subscription(
                url=f"https://203.0.114.{20 + n}/a/rather/long/path/for/receiver/number/{n}?token=abcdef0123456789",
                events=list(webhooks_out.EVENT_TYPES[: 2 + n % 6]), secret=json.dumps({"$encrypted": "x"}),
                created_by=None, now=now))
        store.set_webhook_subscription_state(ids[1], "paused", now, "posting to 203.0.114.21 failed: "
                                             "NewConnectionError " + "x" * 300)
    for n in range(27):
        delivery = webhooks_out.queue_test(store, ids[1])
        if n % 3 == 0:
            finish(store, delivery, "dead", 500, "<html><body>" + "Internal Server Error " * 40 + "</body></html>",
                   "the receiver answered 500")
        elif n % 3 == 1:
            finish(store, delivery, "delivered", 200, '{"ok":true,"received":"' + "y" * 200 + '"}')

    page = sign_in(browser, live_app, locale="nl-NL")
    assert page.locator("html").get_attribute("lang") == "nl"
    no_faults(page, "the dense list in Dutch")
    shoot(page, "list-dense-nl")
    page.goto(f"{live_app}/admin/webhooks/{ids[1]}")
    assert page.locator("#paused-notice").is_visible()
    assert page.locator("tr[id^=delivery-]").count() == 25
    no_faults(page, "the dense log in Dutch")
    shoot(page, "subscription-dense-nl")
    page.locator("a[rel=next]").click()
    assert page.locator("tr[id^=delivery-]").count() == 2
    assert page.errors == []
