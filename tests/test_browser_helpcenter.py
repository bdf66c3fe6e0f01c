"""The public help center in Chromium (#18): a visitor on a phone finds an article through search; the
home page, a category, an article and search at 1440x900 and 390x844 pass axe, fit the screen, run no
script and ask nothing of any other host.

Set MAINLAND_SCREENSHOTS=<folder> to keep a screenshot of each page and size.
"""

from __future__ import annotations

import pytest

from inbox.store.base import now_iso
from tests.axe import describe, run_axe
from tests.browser_helpers import keep_screenshot, new_page, sign_in
from tests.test_web_auth import make_agent

pytestmark = pytest.mark.browser

SIZES = {"wide": (1440, 900), "phone": (390, 844)}

ARTICLES = [
    ("shipping", "Where is my parcel?", "Every parcel has a tracking link in the mail we send when it leaves "
     "our warehouse.\n\n* Open the mail **Your order is on its way**\n* Press *Track my parcel*\n\n"
     "No mail after two days? [Write to us](https://example.org/contact).", "Follow your order with the tracking "
     "link from our mail.", "tracking parcel"),
    ("shipping", "Delivery times", "Parcels ordered before 22:00 on a working day arrive the next working day in "
     "the Netherlands and Belgium, and within three working days elsewhere in the EU.", "", "delivery"),
    ("shipping", "Changing the delivery address", "We can change the address until the parcel leaves the "
     "warehouse. After that, ask the carrier to deliver it to a pick-up point.", "Possible until the parcel "
     "leaves our warehouse.", "address"),
    ("returns", "How refunds work", "# Returning an item\n\nYou have 30 days to return an item, unused and in "
     "its box.\n\n# The refund\n\nWe refund the full price within 5 working days after the parcel arrives "
     "back, to the card or account you paid with.", "Money back within five working days of your return "
     "arriving.", "refund returns"),
    ("returns", "Exchanging for another size", "Return the item and place a new order for the size you want: "
     "that is the fastest way.", "", "exchange"),
    ("payments", "Paying by invoice", "Business customers can pay by invoice within 30 days.", "", "invoice"),
]
DUTCH = [
    ("returns", "Zo werkt terugbetalen", "Je hebt 30 dagen om een artikel terug te sturen, ongebruikt en in de "
     "doos. We betalen binnen 5 werkdagen terug nadat het pakket bij ons is.", "Je geld terug binnen vijf "
     "werkdagen.", "terugbetaling", "how-refunds-work"),
    ("shipping", "Waar is mijn pakket?", "Elk pakket heeft een track-and-trace-link in de mail die we sturen "
     "als het ons magazijn verlaat.", "", "pakket", "where-is-my-parcel"),
]
CATEGORIES = {"shipping": (("Shipping and delivery", "shipping"), ("Verzending", "verzending")),
              "returns": (("Returns and refunds", "returns"), ("Retourneren", "retourneren")),
              "payments": (("Payments", "payments"), ("Betalen", "betalen"))}


@pytest.fixture
def app_config(app_config):
    app_config["help_center"] = {"enabled": True, "title": "Acme Help", "brand_color": "#1f5f8b"}
    return app_config


def _publish_library(app) -> None:
    from inbox import helpcenter

    store = app.extensions["mainland"].open_store()
    now = now_iso()
    categories = {}
    for position, (key, (en, nl)) in enumerate(CATEGORIES.items()):
        categories[key] = store.save_help_category(None, position=position, names={"en": en, "nl": nl},
                                                   actor="test", now=now)
    for cat, title, body, summary, tags in ARTICLES:
        answer_id = store.answers.create(title=title, body=body, language="en", tags=tags.split(), owner_id=None,
                                         now=now)
        slug = helpcenter.slugify(title)
        store.save_help_article(answer_id, slug=slug, category_id=categories[cat], summary=summary,
                                article_key=slug, published=True, actor="test", now=now)
        for _ in range(len(body) % 7 + 1):
            store.count_article_view(answer_id, now[:10])
    for cat, title, body, summary, tags, key in DUTCH:
        answer_id = store.answers.create(title=title, body=body, language="nl", tags=tags.split(), owner_id=None,
                                         now=now)
        store.save_help_article(answer_id, slug=helpcenter.slugify(title), category_id=categories[cat],
                                summary=summary, article_key=key, published=True, actor="test", now=now)
    store.close()


def _visitor_page(browser, live: str, width: int, height: int, language: str = "en"):
    """A page, and the list of every request it makes to a host other than the app."""
    page = new_page(browser, width=width, height=height, language=language)
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((live, "data:")) else elsewhere.append(r.url))
    return page, elsewhere


def test_a_visitor_on_a_phone_finds_an_article_through_search(app, live_app, browser):
    _publish_library(app)
    page, elsewhere = _visitor_page(browser, live_app, 390, 844)
    page.goto(f"{live_app}/help")
    assert page.locator("h1").inner_text() == "How can we help?"
    page.fill("#help-q", "refu")
    page.keyboard.press("Enter")
    page.wait_for_url("**/help/search?**")
    first = page.locator(".help-list li a").first
    assert first.inner_text() == "How refunds work"
    first.click()
    page.wait_for_url("**/help/en/how-refunds-work")
    assert page.locator("h1").inner_text() == "How refunds work"
    assert page.locator("article h2").first.inner_text() == "Returning an item"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The Dutch version is one tap away.
    page.click(".help-lang a[hreflang=nl]")
    page.wait_for_url("**/help/nl/zo-werkt-terugbetalen")
    assert page.locator("html").get_attribute("lang") == "nl"
    assert page.context.cookies() == [], "the help center sets no cookie"
    assert elsewhere == [], f"requests to other hosts: {elsewhere}"
    views = app.extensions["mainland"].open_store()
    try:
        assert views.execute("SELECT count(*) FROM help_search_misses").fetchone()[0] == 0
    finally:
        views.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_the_public_pages_fit_pass_axe_and_run_nothing(app, live_app, browser, size):
    _publish_library(app)
    width, height = SIZES[size]
    pages = (("help", "/help"), ("category", "/help/en/returns"), ("article", "/help/en/where-is-my-parcel"),
             ("search", "/help/search?lang=en&q=parcel"), ("search-empty", "/help/search?lang=en&q=helicopter"),
             ("article-nl", "/help/nl/waar-is-mijn-pakket"))
    page, elsewhere = _visitor_page(browser, live_app, width, height)
    for name, path in pages:
        page.goto(live_app + path)
        assert page.locator("h1").is_visible()
        assert page.evaluate("document.scripts.length") == 0, f"{path} has a script"
        found = run_axe(page)
        assert found == [], f"{path}: {describe(found)}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} is wider than the screen"
        keep_screenshot(page, f"help-{name}-{size}")
    assert elsewhere == [], f"requests to other hosts: {elsewhere}"


@pytest.mark.parametrize("size", list(SIZES))
def test_the_publishing_panel_and_the_categories_page_pass_axe(app, live_app, browser, size):
    _publish_library(app)
    store = app.extensions["mainland"].open_store()
    make_agent(store, "lea@example.org", name="Lea Lead", role="lead")
    store.close()
    width, height = SIZES[size]
    page, _elsewhere = _visitor_page(browser, live_app, width, height)
    sign_in(page, live_app, "lea@example.org")
    for name, path in (("publish", "/answers/1/edit"), ("categories", "/help-center/categories")):
        page.goto(live_app + path)
        found = run_axe(page)
        assert found == [], f"{path}: {describe(found)}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} is wider than the screen"
        keep_screenshot(page, f"help-{name}-{size}")
    # Unpublishing from the panel takes the article off the help center.
    page.goto(f"{live_app}/answers/1/edit")
    page.click("#help-center button[value='0']")
    page.wait_for_url("**/answers/1/edit*")
    assert page.locator("#help-center").get_by_text("Not published.").is_visible()
    assert page.goto(f"{live_app}/help/en/where-is-my-parcel").status == 404
