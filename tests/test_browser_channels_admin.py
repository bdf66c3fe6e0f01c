"""In Chromium (issue 13): an admin adds a Telegram channel in the browser, tests its connection against
the Bot API imitation, and sees its first message arrive in the queue without a restart; every page
without axe violations, at desktop and phone sizes."""

from __future__ import annotations

import pytest

from inbox.worker import Worker
from sandbox.telegram import TelegramImitation
from tests.test_browser_accounts import SIZES, browser, check  # noqa: F401
from tests.test_browser_smoke import live_app  # noqa: F401
from tests.test_web_auth import PASSWORD, make_agent

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture
def telegram():
    with TelegramImitation() as imitation:
        yield imitation


@pytest.fixture
def app(app_config, telegram):
    from inbox import create_app

    app_config["fetch_allow_hosts"] = [telegram.host]
    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def worker(app, monkeypatch):
    monkeypatch.setattr("inbox.worker.SETTINGS_EVERY", 0.2)
    worker = Worker(app.extensions["mainland"])
    worker.start()
    yield worker
    worker.stop()


@pytest.mark.parametrize("size", SIZES)
def test_add_a_channel_test_it_and_see_its_first_message(app, live_app, browser, telegram, worker, size):  # noqa: F811
    store = app.extensions["mainland"].open_store()
    make_agent(store, "ada@example.org", name="Ada Admin", role="admin")
    store.close()
    jane = telegram.user("Jane", username="janedoe")
    telegram.private_message(jane, "Is my order on its way?")

    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{live_app}/login")
    page.get_by_label("Email address").fill("ada@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    page.goto(f"{live_app}/admin/channels")
    check(page, f"channels-empty-{size}")
    page.get_by_label("Kind").select_option(label="Telegram")
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    page.get_by_label("Name", exact=True).fill("Support Bot")  # not a valid name: said, nothing stored
    page.get_by_label("Token (required)").fill(telegram.token)
    page.get_by_label("Api url").fill(telegram.url)
    with page.expect_navigation():
        page.get_by_role("button", name="Add channel").click()
    assert page.get_by_text("lower-case letters").is_visible()
    check(page, f"channel-new-error-{size}")
    page.get_by_label("Name", exact=True).fill("support-bot")
    page.get_by_label("Token (required)").fill(telegram.token)  # a secret is never sent back to the page
    with page.expect_navigation():
        page.get_by_role("button", name="Add channel").click()
    assert page.url.endswith("/admin/channels/support-bot")

    with page.expect_navigation():
        page.get_by_role("button", name="Test connection").click()
    assert page.get_by_role("heading", name="Connection works").is_visible()
    check(page, f"channel-tested-{size}")

    assert worker.wait_until(lambda: worker.polls["support-bot"] >= 1, 30), worker.status()
    page.goto(f"{live_app}/")
    assert page.get_by_text("Is my order on its way?").first.is_visible()
