"""Chromium shows the reports page and an archived digest of a realistic week; screenshots of both
are saved under test-artifacts/ (kept by CI as artifacts, ignored by git)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from inbox import digest
from inbox.reports import Period
from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401 (fixture)
from tests.test_digest import DIGEST_AT, WEEK, scenario_config, week_of_traffic
from tests.test_web_auth import PASSWORD

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def app_config(app_config, smtp_server):  # noqa: F811 (the scenario's channels and digest settings)
    return scenario_config(app_config, smtp_server)


def test_reports_page_and_digest_in_chromium(app, live_app):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import sync_playwright

    mainland = app.extensions["mainland"]
    store = mainland.open_store()
    week_of_traffic(mainland, store)
    digest.run(mainland, store, Period.parse(WEEK, "Europe/Amsterdam"), send_mail=False,
               now=DIGEST_AT.astimezone(dt.UTC))
    store.close()
    ARTIFACTS.mkdir(exist_ok=True)

    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.on("request", lambda request: requested.append(request.url))
            page = context.new_page()
            page.goto(f"{live_app}/login")
            page.fill("#email", "mia@example.org")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")

            page.click("nav >> text=Reports")
            page.goto(f"{live_app}/reports?week={WEEK}")
            page.wait_for_load_state("networkidle")
            assert page.locator("#service-levels tbody tr").count() == 3
            assert page.locator("#service-levels tr[data-channel=telegram] td").first.inner_text() == "20"
            charts = page.locator(".charts img")
            assert charts.count() == 3
            for i in range(charts.count()):
                assert charts.nth(i).evaluate("img => img.complete && img.naturalWidth") >= 400
            page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)

            page.goto(f"{live_app}/reports/digests")
            page.click(f"a[href='/reports/digests/{WEEK}']")
            page.wait_for_load_state("networkidle")
            frame = page.frame_locator(".digest-frame iframe")
            frame.locator("ol.attention li").first.wait_for()
            assert frame.locator("ol.attention li").count() == 3
            images = frame.locator("img")
            assert images.count() == 5
            for i in range(images.count()):
                assert images.nth(i).evaluate("img => img.complete && img.naturalWidth") >= 400
            page.set_viewport_size({"width": 900, "height": 900})
            page.screenshot(path=str(ARTIFACTS / "digest.png"), full_page=True)
            frame_element = page.locator(".digest-frame iframe")
            frame_element.screenshot(path=str(ARTIFACTS / "digest-frame.png"))
        finally:
            browser.close()

    for name in ("reports.png", "digest.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
    hosts = {urlsplit(url).hostname for url in requested if not url.startswith(("data:", "about:"))}
    assert hosts == {"127.0.0.1"}, f"the browser fetched from elsewhere: {sorted(requested)}"
