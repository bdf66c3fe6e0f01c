"""The queue on a phone, in English and Dutch: the views strip sits right above the filters (no empty
band between them) and nothing scrolls sideways at 360 px; the desktop layout keeps its side bar.

Screenshots at 390x844 and 1440x900 in both languages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import pytest

from tests.test_browser_smoke import CHROMIUM, _require_chromium, live_app  # noqa: F401  (live_app: fixture)
from tests.test_browser_workspace import DESKTOP, LAUNCH_ARGS, PHONE, SCREENSHOTS, Customers
from tests.test_web_auth import PASSWORD, make_agent

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
#: The most space between the views strip and the filters that still reads as one header.
MAX_BAND_PX = 12

#: Where the views' links end, where the views' strip ends, and where the filters start.
MEASURE = """() => {
  const links = Array.from(document.querySelectorAll('.queue-nav a')).filter(a => a.offsetParent !== null);
  return {
    links: Math.max(...links.map(a => a.getBoundingClientRect().bottom)),
    strip: document.querySelector('.queue-nav').getBoundingClientRect().bottom,
    filters: document.querySelector('form.filters').getBoundingClientRect().top,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  };
}"""


@pytest.fixture
def queue(app):
    store = app.extensions["mainland"].open_store()
    make_agent(store)
    customers = Customers(app)
    customers.many(8)
    yield
    customers.close()
    store.close()


def open_queue(browser, base: str, viewport: dict, language: str):
    context = browser.new_context(viewport=viewport, locale=language, extra_http_headers={"Accept-Language": language})
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#email", "ann@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.wait_for_selector("table.queue tbody tr", timeout=TIMEOUT)
    return context, page


@pytest.mark.parametrize("language", ["en", "nl"])
def test_no_empty_band_above_the_filters_on_a_phone(live_app, queue, language):  # noqa: F811
    _require_chromium()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context, page = open_queue(browser, live_app, PHONE, language)
            page.screenshot(path=str(SCREENSHOTS / f"queue-phone-{language}-390x844.png"))
            at = page.evaluate(MEASURE)
            assert at["strip"] - at["links"] < 1, f"the views strip has an empty band under its links: {at}"
            assert at["filters"] - at["links"] <= MAX_BAND_PX, f"empty band above the filters: {at}"
            assert at["overflow"] <= 0
            page.set_viewport_size({"width": 360, "height": 800})
            assert page.evaluate(MEASURE)["overflow"] <= 0, "nothing scrolls sideways at 360 px"
            context.close()

            context, page = open_queue(browser, live_app, DESKTOP, language)
            page.screenshot(path=str(SCREENSHOTS / f"queue-desktop-{language}-1440x900.png"))
            side, main = (page.locator(s).bounding_box() for s in (".queue-nav", ".queue-main"))
            assert side["x"] + side["width"] <= main["x"], "the views stay a side bar beside the list"
            assert page.evaluate(MEASURE)["overflow"] <= 0
            context.close()
        finally:
            browser.close()
