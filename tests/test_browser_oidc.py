"""In Chromium (issue 13): sign in through OpenID Connect, with the loopback provider (sandbox/oidc.py)
approving the chosen user at once, and signing out there too. The sign-in page with its button, in English and Dutch, at desktop
and phone sizes, without axe violations; a refusal shows its page. Screenshots go to
$MAINLAND_SCREENSHOTS when it is set."""

from __future__ import annotations

import dataclasses

import pytest

from sandbox.oidc import OIDCProvider
from tests.test_browser_accounts import SIZES, browser, check  # noqa: F401
from tests.test_browser_smoke import _require_chromium, live_app  # noqa: F401
from tests.test_web_auth import make_agent

SECRET = "provider-secret-0123456789"


@pytest.fixture
def provider():
    with OIDCProvider(client_secret=SECRET) as imitation:
        yield imitation


@pytest.fixture
def app(app_config, provider):
    from inbox import create_app

    app_config["oidc"] = {"issuer": provider.url, "client_id": "mainland", "client_secret": SECRET,
                          "button_label": "Example ID"}
    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def site(app, live_app):  # noqa: F811
    """The live app's address, which is also the base URL its redirect_uri is made from."""
    app.config["MAINLAND"] = dataclasses.replace(app.config["MAINLAND"], base_url=live_app)
    return live_app


@pytest.mark.parametrize("size", SIZES)
def test_sign_in_through_oidc(app, site, provider, browser, size):  # noqa: F811
    store = app.extensions["mainland"].open_store()
    make_agent(store, email="ann@example.org", name="Ann Agent")
    store.close()
    provider.sign_in_as("ann@example.org")
    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{site}/login?next=/customers")
    check(page, f"oidc-login-{size}")
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.wait_for_url(f"{site}/customers")
    assert page.get_by_role("heading", name="Customers").first.is_visible()
    assert provider.requests_to(r"^/token$"), "the code was redeemed at the provider"


@pytest.mark.parametrize("size", SIZES)
def test_the_sign_in_page_in_dutch(app, site, browser, size):  # noqa: F811
    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height}, locale="nl-NL",
                            extra_http_headers={"Accept-Language": "nl"})
    page.goto(f"{site}/login")
    assert page.locator("a.sso").is_visible()
    check(page, f"oidc-login-nl-{size}")


def test_a_refusal_at_the_provider_shows_a_page(app, site, provider, browser):  # noqa: F811
    provider.sign_in_as("ann@example.org")
    provider.refuse_next("access_denied")
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{site}/login")
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.get_by_role("heading", name="You are not signed in").wait_for()
    assert page.get_by_role("alert").inner_text().startswith("The sign-in service did not sign you in")
    check(page, "oidc-refused-desktop")
    page.get_by_role("link", name="Back to the sign-in page").click()
    page.wait_for_url(f"{site}/login")


@pytest.mark.parametrize("size", SIZES)
def test_signing_out_signs_out_at_the_provider_too(app, site, provider, browser, size):  # noqa: F811
    store = app.extensions["mainland"].open_store()
    make_agent(store, email="ann@example.org", name="Ann Agent")
    store.close()
    provider.sign_in_as("ann@example.org")
    provider.post_logout_redirect_uris.add(f"{site}/login")
    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{site}/login")
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.wait_for_url(f"{site}/")
    page.locator(".whoami summary").click()
    page.get_by_role("button", name="Sign out", exact=True).click()
    # Through the provider's end-session endpoint and back to our sign-in page.
    page.wait_for_url(f"{site}/login")
    assert page.get_by_text("You are signed out.").is_visible()
    assert len(provider.signed_out) == 1 and provider.requests_to(r"^/logout$")
    check(page, f"oidc-signed-out-{size}")
