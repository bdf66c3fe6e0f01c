"""Browser notifications in Chromium: assigned to me, mentioned, and the customer replied in my
conversation, over the live stream and over its polling fallback; none for a kind the agent
switched off for the browser.

The permission is granted to the browser context; an init script wraps `window.Notification` and
records each `new Notification(title, {body})`. Bob acts through the app's routes (a second
signed-in client); the customer writes through the real ingest pipeline, and the worker's
notifications job (`notifications.detect`) notices the reply. Every wait is for an event.
"""

from __future__ import annotations

import itertools

import pytest

from inbox import notifications
from inbox.models import Author, FetchResult, InboundItem
from tests.test_browser_conversation import sign_in
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_composer import app_config  # noqa: F401  (fixture: the fake chat channel)
from tests.test_web_auth import csrf_token, login, make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 20_000
JSON = {"Accept": "application/json"}

#: Records every notification the page makes, and still makes the real one.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  if (!Real) { return; }
  window.__notifications = [];
  function Recorded(title, options) {
    window.__notifications.push({ title: title, body: (options || {}).body || "", tag: (options || {}).tag || "" });
    try { return new Real(title, options); } catch (err) { return { close: function () {} }; }
  }
  Object.defineProperty(Recorded, "permission", { get: function () { return Real.permission; } });
  Recorded.requestPermission = function (cb) { return Real.requestPermission(cb); };
  window.Notification = Recorded;
})();
"""


class Desk:
    """Ann's conversations, Bob's client, and the customer's messages."""

    def __init__(self, app) -> None:
        self.mainland = app.extensions["mainland"]
        self.store = self.mainland.open_store()
        self.ann = make_agent(self.store)
        self.bob = make_agent(self.store, email="bob@example.org", name="Bob Builder")
        self.client = app.test_client()
        assert login(self.client, email="bob@example.org").status_code == 302
        self.token = csrf_token(self.client, "/notifications")
        self._n = itertools.count(1)

    def customer_writes(self, thread: str, text: str, subject: str = "") -> int:
        n = next(self._n)
        item = InboundItem(channel="chat", external_id=f"in-{n}", author=Author(f"cust-{thread}", "Cleo Customer"),
                           text=text, thread_key=thread, subject=subject)
        report = self.mainland.ingestor(self.store).ingest("chat", FetchResult(items=[item], cursor=f"c{n}"))
        [message_id] = report.message_ids
        return self.store.message(message_id)["conversation_id"]

    def bob_posts(self, path: str, **form) -> None:
        response = self.client.post(path, data={"csrf_token": self.token, **form}, headers=JSON)
        assert response.status_code == 200, response.get_data(as_text=True)

    def assign_to_ann(self, cid: int) -> None:
        assert self.store.conversation(cid)["assignee_id"] != self.ann["id"]  # a real hand-over
        self.bob_posts(f"/conversations/{cid}/assign", assignee=str(self.ann["id"]))

    def mention_ann(self, cid: int, text: str) -> None:
        self.bob_posts(f"/conversations/{cid}/notes", text=text, seen_up_to=str(10**6))

    def customer_replies(self, cid: int, thread: str, text: str) -> None:
        assert self.customer_writes(thread, text) == cid
        assert notifications.detect(self.store) == 1


@pytest.fixture
def desk(app, frozen_clock):
    app.config.update(LIVE_POLL_SECONDS=0.2)
    d = Desk(app)
    yield d
    d.store.close()


def open_ann(browser, base: str):
    context = browser.new_context(permissions=["notifications"], viewport={"width": 1440, "height": 900})
    context.add_init_script(RECORD_NOTIFICATIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, base, "ann@example.org", "/")
    page.wait_for_function("() => window.Live && Live.lastEventId() !== null", timeout=TIMEOUT)
    return page, errors


def wait_for_notification(page, count: int) -> dict:
    page.wait_for_function(f"() => window.__notifications.length >= {count}", timeout=TIMEOUT)
    return page.evaluate("window.__notifications")[count - 1]


def each_kind_notifies(page, desk: Desk, cid: int) -> None:
    desk.assign_to_ann(cid)
    shown = wait_for_notification(page, 1)
    assert shown["title"] == "Mainland"
    assert shown["body"] == "Bob Builder assigned a conversation to you: Winter coat"

    desk.mention_ann(cid, "@ann the XL is back in stock on Friday")
    shown = wait_for_notification(page, 2)
    assert shown["body"] == "Bob Builder mentioned you: Winter coat"

    desk.customer_replies(cid, "t-coat", "And in dark blue?")
    shown = wait_for_notification(page, 3)
    assert shown["body"] == "Cleo Customer replied: Winter coat"
    assert len({n["tag"] for n in page.evaluate("window.__notifications")}) == 3


def test_each_kind_becomes_a_browser_notification(live_app, desk):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            # Written before Ann signs in: routing has nobody available to give it to.
            cid = desk.customer_writes("t-coat", "Do you have this coat in XL?", subject="Winter coat")
            page, errors = open_ann(browser, live_app)
            assert page.evaluate("Notification.permission") == "granted"
            each_kind_notifies(page, desk, cid)
            assert errors == []
        finally:
            browser.close()


def test_browser_notifications_also_come_when_the_stream_falls_back_to_polling(app, live_app, desk):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import sync_playwright

    app.config.update(LIVE_STREAMS=0)  # no stream slot free: every answer is a short poll
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            polls: list[str] = []
            cid = desk.customer_writes("t-coat", "Do you have this coat in XL?", subject="Winter coat")
            page, errors = open_ann(browser, live_app)
            page.on("response", lambda r: polls.append(r.url) if "/events" in r.url else None)
            each_kind_notifies(page, desk, cid)
            assert page.evaluate("window.__notifications.length") == 3  # each one once, across polls
            assert polls, "the page polled /events"
            assert errors == []
        finally:
            browser.close()


def test_no_browser_notification_for_a_kind_switched_off(live_app, desk):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    desk.store.notifications.set_settings(desk.ann["id"], {"mention": {"browser": False}}, "2026-03-05T10:00:00Z")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            cid = desk.customer_writes("t-bike", "My bike arrived bent.", subject="Bent bike")
            page, errors = open_ann(browser, live_app)
            desk.mention_ann(cid, "@ann can you take this one?")
            # The bell counts it (in the app it is on): the page has had the news, and no pop-up.
            expect(page.locator("#notification-count")).to_have_text("1", timeout=TIMEOUT)
            desk.assign_to_ann(cid)
            shown = wait_for_notification(page, 1)
            assert shown["body"] == "Bob Builder assigned a conversation to you: Bent bike"
            expect(page.locator("#notification-count")).to_have_text("2", timeout=TIMEOUT)
            assert [n["body"] for n in page.evaluate("window.__notifications")] == [shown["body"]]
            assert errors == []
        finally:
            browser.close()
