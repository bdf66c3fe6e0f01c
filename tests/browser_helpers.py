"""What the Chromium tests share (a pytest plugin, loaded from tests/conftest.py).

Fixtures:

* ``live_app``: the test's app served on a free loopback port; yields its base URL.
* ``browser``: a headless Chromium for the test (skips without Chromium, fails under CI=true).

Helpers: ``require_chromium``, ``chromium`` (the same browser as a context manager, for tests that
launch inside their own body), ``new_page`` (a page at a window size, in a language), ``sign_in``
(through the login form), ``keep_screenshot`` (only when $MAINLAND_SCREENSHOTS names a folder) and
``screenshots_at_both_sizes`` (always, under test-artifacts/screenshots, at 1440x900 and 390x844).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
#: No sandbox (the tests may run as root); no GPU, background fetches or /dev/shm, which CI machines lack.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    """Skip the test without Chromium or Playwright, except under CI=true, where that is a failure."""
    problem = None
    if not shutil.which(CHROMIUM):
        problem = f"{CHROMIUM} is not installed (apt-get install -y chromium, or scripts/setup.sh --test)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture
def live_app(app):
    """The app served on a free loopback port for the browser; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@contextmanager
def chromium(args: list[str] | None = None) -> Iterator:
    """A headless Chromium, closed afterwards (and Playwright with it)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=LAUNCH_ARGS if args is None else args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser():
    """A headless Chromium for one test."""
    with chromium() as launched:
        yield launched


def new_page(browser, *, width: int = DESKTOP["width"], height: int = DESKTOP["height"],
             language: str | None = None, **context_options):
    """A page in a fresh context (no cookies) at width x height; with `language`, the browser asks for
    that language (locale and Accept-Language), as a visitor's browser does."""
    if language:
        context_options.update(locale=language, extra_http_headers={"Accept-Language": language})
    return browser.new_context(viewport={"width": width, "height": height}, **context_options).new_page()


def sign_in(page, base: str, email: str = "ann@example.org", target: str = "/") -> None:
    """Sign in through the login form (the password of tests.test_web_auth.make_agent) and wait for `target`."""
    from tests.test_web_auth import PASSWORD  # a test module: not imported while the plugins load

    page.goto(f"{base}/login" if target == "/" else f"{base}/login?next={target}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{target}")


def keep_screenshot(page, name: str) -> None:
    """A full-page screenshot `name`.png in $MAINLAND_SCREENSHOTS, when that is set (otherwise nothing)."""
    folder = os.environ.get("MAINLAND_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def screenshots_at_both_sizes(page, name: str, *, must_fit: bool = False) -> None:
    """Full-page screenshots `name`-1440x900.png and `name`-390x844.png under test-artifacts/screenshots;
    with `must_fit`, the page may not be wider than either window. The viewport is put back afterwards."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    was = page.viewport_size
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"), full_page=True)
        if must_fit:
            excess = page.evaluate("() => document.documentElement.scrollWidth") - size["width"]
            assert excess <= 0, f"{name} is {excess} px wider than the {size['width']} px window"
    page.set_viewport_size(was)
