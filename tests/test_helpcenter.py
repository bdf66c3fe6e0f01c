"""The public help center (#18): publishing answers, the public pages, search, counters and reports."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from inbox import create_app, helpcenter
from inbox.reports import Period
from inbox.store.base import iso
from tests.test_web_auth import csrf_token, login, make_agent

NOW = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)
T = iso(NOW)


@pytest.fixture
def help_config(app_config):
    app_config["help_center"] = {"enabled": True, "title": "Acme Help", "brand_color": "#aa3300"}
    app_config["base_url"] = "https://help.example.org"
    return app_config


@pytest.fixture
def happ(help_config, frozen_clock):
    frozen_clock.set(NOW)
    app = create_app(help_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def hstore(happ):
    from inbox.web import mainland

    with happ.app_context():
        store = mainland().open_store(check=False)
    yield store
    store.close()


@pytest.fixture
def lead(happ):
    """A test client signed in as a lead (who may write the library and publish)."""
    from inbox.web import mainland

    with happ.app_context():
        store = mainland().open_store(check=False)
        make_agent(store, email="lea@example.org", name="Lea Lead", role="lead")
        store.close()
    client = happ.test_client()
    assert login(client, email="lea@example.org").status_code == 302
    return client


def answer(store, title: str, body: str, language: str = "en", tags: str = "") -> int:
    return store.answers.create(title=title, body=body, language=language, tags=tags.split(), owner_id=None, now=T)


def publish(client, answer_id: int, *, slug: str, published: bool = True, category: int | str = "",
            summary: str = "", key: str = ""):
    token = csrf_token(client, f"/answers/{answer_id}/edit")
    return client.post(f"/answers/{answer_id}/publish", data={
        "csrf_token": token, "slug": slug, "published": "1" if published else "0", "category": str(category),
        "summary": summary, "article_key": key})


def category(store, en: tuple[str, str], nl: tuple[str, str] | None = None, position: int = 0) -> int:
    names = {"en": en} | ({"nl": nl} if nl else {})
    return store.save_help_category(None, position=position, names=names, actor="test", now=T)


def text(response) -> str:
    return response.get_data(as_text=True)


# Publishing --------------------------------------------------------------------------------------

def test_a_published_answer_is_a_public_article_without_signing_in(happ, hstore, lead):
    refunds = category(hstore, ("Refunds", "refunds"))
    answer_id = answer(hstore, "How refunds work", "We refund **returned** items within 5 days.\n\n"
                                                   "* pack the item\n* send it back")
    assert publish(lead, answer_id, slug="how-refunds-work", category=refunds,
                   summary="Money back within five days.").status_code == 302
    visitor = happ.test_client()
    page = visitor.get("/help/en/how-refunds-work")
    assert page.status_code == 200
    body = text(page)
    assert "<h1>How refunds work</h1>" in body and "<strong>returned</strong>" in body
    assert "<li>pack the item</li>" in body
    assert '<meta name="description" content="Money back within five days.">' in body
    assert '<link rel="canonical" href="https://help.example.org/help/en/how-refunds-work">' in body
    assert "Set-Cookie" not in page.headers, "no cookie for a visitor"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<script" not in body and "http://" not in body.replace("http://www.w3.org", "")
    sibling = answer(hstore, "Refunds for gift cards", "Gift cards are refunded as a new card.")
    publish(lead, sibling, slug="refunds-gift-cards", category=refunds)
    assert 'href="/help/en/refunds-gift-cards"' in text(visitor.get("/help/en/how-refunds-work")).split("More about")[1]
    listing = text(visitor.get("/help/en/refunds"))
    assert "How refunds work" in listing and "Money back within five days." in listing
    home = text(visitor.get("/help/en"))
    assert "Refunds" in home and "How can we help?" in home


def test_publishing_is_audited_and_for_those_who_may_edit_answers(happ, hstore, lead):
    answer_id = answer(hstore, "Opening hours", "We are open from 9 to 5.")
    publish(lead, answer_id, slug="opening-hours")
    publish(lead, answer_id, slug="opening-hours", published=False)
    actions = [r[0] for r in hstore.execute(
        "SELECT action FROM audit_log WHERE object_type = 'answer' AND object_id = ? ORDER BY id", [str(answer_id)])]
    assert actions == ["help_article_published", "help_article_unpublished"]
    agent_client = happ.test_client()
    make_agent(hstore, email="ann@example.org", name="Ann Agent", role="agent")
    login(agent_client)
    token = csrf_token(agent_client, "/settings")
    refused = agent_client.post(f"/answers/{answer_id}/publish", data={"csrf_token": token, "slug": "x",
                                                                       "published": "1"})
    assert refused.status_code == 403
    assert happ.test_client().get("/help/en/opening-hours").status_code == 404


def test_the_edit_page_has_the_publishing_panel(happ, hstore, lead):
    answer_id = answer(hstore, "Opening hours", "We are open from 9 to 5.")
    page = text(lead.get(f"/answers/{answer_id}/edit"))
    assert 'id="help-center"' in page and 'value="opening-hours"' in page
    publish(lead, answer_id, slug="opening-hours")
    assert 'href="/help/en/opening-hours"' in text(lead.get(f"/answers/{answer_id}/edit"))


def test_an_answer_with_customer_variables_cannot_be_published(happ, hstore, lead):
    answer_id = answer(hstore, "Your order", "Hi {{customer_first_name}}, order {{order_number}} ships today.")
    response = publish(lead, answer_id, slug="your-order")
    assert response.status_code == 302
    assert hstore.help_article_settings(answer_id) is None, "nothing saved"
    assert happ.test_client().get("/help/en/your-order").status_code == 404
    panel = text(lead.get(f"/answers/{answer_id}/edit"))
    assert "cannot be published" in panel and "{{customer_first_name}}" in panel


def test_a_variable_added_after_publishing_is_never_filled_in_on_the_public_page(happ, hstore, lead):
    answer_id = answer(hstore, "Greeting", "Hi there, thanks for asking.")
    publish(lead, answer_id, slug="greeting")
    make_agent(hstore, email="other@example.org", name="Olga Other", role="agent")
    hstore.answers.update(answer_id, title="Greeting", body="Hi {{customer_name}}, I am {{agent_name}}.",
                          language="en", tags=[], editor_id=None, now=T)
    body = text(happ.test_client().get("/help/en/greeting"))
    assert "<p>Hi, I am.</p>" in body
    assert "{{" not in body and "Lea Lead" not in body and "Olga Other" not in body


def test_an_edit_in_the_library_changes_the_article_and_its_search(happ, hstore, lead):
    answer_id = answer(hstore, "Delivery times", "Parcels arrive within two days.")
    publish(lead, answer_id, slug="delivery-times")
    visitor = happ.test_client()
    token = csrf_token(lead, f"/answers/{answer_id}/edit")
    lead.post(f"/answers/{answer_id}/edit", data={"csrf_token": token, "title": "Delivery times",
                                                  "body": "Parcels arrive within three working days by courier.",
                                                  "language": "en", "tags": ""})
    page = text(visitor.get("/help/en/delivery-times"))
    assert "three working days" in page and "two days" not in page
    assert "Delivery times" in text(visitor.get("/help/search", query_string={"q": "courier", "lang": "en"}))
    assert "Nothing found" in text(visitor.get("/help/search", query_string={"q": "arrive two", "lang": "en"}))


def test_unpublished_archived_and_unknown_articles_are_the_same_404(happ, hstore, lead):
    shown = answer(hstore, "Shown", "Visible text.")
    hidden = answer(hstore, "Hidden", "Secret text of a draft.")
    archived = answer(hstore, "Archived", "Old text.")
    publish(lead, shown, slug="shown")
    publish(lead, hidden, slug="hidden")
    publish(lead, hidden, slug="hidden", published=False)
    publish(lead, archived, slug="archived")
    hstore.answers.set_active(archived, False, T)
    visitor = happ.test_client()
    never = visitor.get("/help/en/never-existed")
    assert never.status_code == 404
    for slug in ("hidden", "archived"):
        response = visitor.get(f"/help/en/{slug}")
        assert response.status_code == 404
        assert text(response) == text(never), "an unpublished article looks exactly like one that never existed"
    assert visitor.get("/help/nl/shown").status_code == 404, "an English article is not under /help/nl"
    listing = text(visitor.get("/help/en"))
    assert "Shown" in listing and "Hidden" not in listing and "Archived" not in listing
    searched = text(visitor.get("/help/search", query_string={"q": "text", "lang": "en"}))
    assert "Shown" in searched and "Hidden" not in searched and "Archived" not in searched


def test_unpublished_and_unknown_ask_the_database_the_same_questions(happ, hstore, lead, monkeypatch):
    """No difference in timing either: both run the very same statements, only the slug differs."""
    from inbox.store import Store
    from inbox.web.request_store import pool_of

    hidden = answer(hstore, "Hidden", "Secret text of a draft.")
    publish(lead, hidden, slug="hidden")
    publish(lead, hidden, slug="hidden", published=False)
    statements: list[str] = []
    original = Store.__init__

    def traced(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.conn.set_trace_callback(statements.append)

    monkeypatch.setattr(Store, "__init__", traced)
    pool_of(happ).close()  # the next request opens a traced connection (the idle ones were opened untraced)
    visitor = happ.test_client()
    visitor.get("/help/en/hidden")
    unpublished = [sql.replace("'hidden'", "?") for sql in statements]
    statements.clear()
    visitor.get("/help/en/absent")
    unknown = [sql.replace("'absent'", "?") for sql in statements]
    assert any("help_articles" in sql for sql in unknown), "the trace saw the article query"
    assert unpublished == unknown


def test_a_dutch_article_lives_under_help_nl_and_links_its_english_version(happ, hstore, lead):
    en = answer(hstore, "Returns", "Send the item back within 30 days.")
    nl = answer(hstore, "Retourneren", "Stuur het artikel binnen 30 dagen terug.", language="nl")
    publish(lead, en, slug="returns", key="returns")
    publish(lead, nl, slug="retourneren", key="returns")
    visitor = happ.test_client()
    page = visitor.get("/help/nl/retourneren")
    assert page.status_code == 200
    body = text(page)
    assert '<html lang="nl">' in body and "Stuur het artikel" in body
    assert '<link rel="alternate" hreflang="en" href="https://help.example.org/help/en/returns">' in body
    assert '<link rel="alternate" hreflang="nl" href="https://help.example.org/help/nl/retourneren">' in body
    assert 'href="/help/en/returns" hreflang="en"' in body, "the language switch goes to the other version"
    assert visitor.get("/help/en/retourneren").status_code == 404


def test_the_help_center_is_a_404_when_it_is_off(app, store):
    answer_id = answer(store, "Opening hours", "We are open from 9 to 5.")
    store.save_help_article(answer_id, slug="opening-hours", category_id=None, summary="", article_key="",
                            published=True, actor="test", now=T)
    client = app.test_client()
    for path in ("/help", "/help/en", "/help/en/opening-hours", "/help/search?q=open", "/help/sitemap.xml",
                 "/help/theme.css"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "opening" not in text(response).lower()


# Search ------------------------------------------------------------------------------------------

def test_search_finds_by_word_prefix_and_phrase(happ, hstore, lead):
    answer_id = answer(hstore, "Refund for a returned item", "We refund returned items within five days.")
    other = answer(hstore, "Gift cards", "Gift cards never expire and work in every shop.")
    publish(lead, answer_id, slug="refund-returned-item")
    publish(lead, other, slug="gift-cards")
    visitor = happ.test_client()

    def found(q: str) -> list[str]:
        page = text(visitor.get("/help/search", query_string={"q": q, "lang": "en"}))
        return re.findall(r'<li><a href="/help/en/([a-z0-9-]+)"', page)

    assert found("refund") == ["refund-returned-item"]
    assert found("refu") == ["refund-returned-item"], "a prefix finds the word"
    assert found("réfund") == ["refund-returned-item"], "accents are folded"
    assert found('"never expire"') == ["gift-cards"]
    assert found('"expire never"') == [], "a phrase keeps its order"
    assert found("gift shop") == ["gift-cards"]


def test_search_text_is_not_syntax_and_is_escaped_and_cut(happ, hstore, lead):
    answer_id = answer(hstore, "Gift cards", "Gift cards never expire.")
    publish(lead, answer_id, slug="gift-cards")
    visitor = happ.test_client()
    for hostile in ('gift" OR "x', "NEAR(gift", "title:gift", "gift*", "^gift", "gift AND", "(", '"', "*"):
        response = visitor.get("/help/search", query_string={"q": hostile, "lang": "en"})
        assert response.status_code == 200, hostile
    page = text(visitor.get("/help/search", query_string={"q": "<script>alert(1)</script>", "lang": "en"}))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    long = "gift " + "x" * 5000
    page = text(visitor.get("/help/search", query_string={"q": long, "lang": "en"}))
    assert "x" * (helpcenter.MAX_QUERY_CHARS + 1) not in page


def test_empty_searches_are_counted_by_their_normalised_text_only(happ, hstore, lead):
    answer_id = answer(hstore, "Gift cards", "Gift cards never expire.")
    publish(lead, answer_id, slug="gift-cards")
    visitor = happ.test_client()
    visitor.get("/help/search", query_string={"q": "  Gift  ", "lang": "en"})
    visitor.get("/help/search", query_string={"q": "Wheel  Chair", "lang": "en"})
    visitor.get("/help/search", query_string={"q": "wheel chair!", "lang": "en"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    visitor.head("/help/search", query_string={"q": "helicopter", "lang": "en"})
    visitor.options("/help/search", query_string={"q": "helicopter", "lang": "en"})
    rows = hstore.execute("SELECT * FROM help_search_misses").fetchall()
    assert rows == [("2026-03-04", "en", "wheel chair", 2)]
    assert hstore.help_search_totals("2026-03-04", "2026-03-04") == {"searches": 3, "misses": 2}
    stored = repr(hstore.execute("SELECT * FROM help_search_days").fetchall()) + repr(rows)
    assert "127.0.0.1" not in stored and "10.0.0.9" not in stored


def test_search_is_rate_limited_per_address(happ, hstore):
    visitor = happ.test_client()
    codes = [visitor.get("/help/search", query_string={"q": f"word{i}", "lang": "en"}).status_code
             for i in range(31)]
    assert codes[:30] == [200] * 30 and codes[30] == 429
    other = visitor.get("/help/search", query_string={"q": "word", "lang": "en"},
                        environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 200, "another address is not held back"


# Counters and the sitemap ------------------------------------------------------------------------

def test_reads_are_counted_per_article_per_day_without_cookies(happ, hstore, lead, frozen_clock):
    answer_id = answer(hstore, "Opening hours", "We are open from 9 to 5.")
    publish(lead, answer_id, slug="opening-hours")
    visitor = happ.test_client()
    for _ in range(3):
        response = visitor.get("/help/en/opening-hours")
        assert "Set-Cookie" not in response.headers
    visitor.head("/help/en/opening-hours")
    visitor.options("/help/en/opening-hours")
    frozen_clock.set(NOW + dt.timedelta(days=1))
    visitor.get("/help/en/opening-hours")
    rows = hstore.execute("SELECT answer_id, day, views FROM help_article_views ORDER BY day").fetchall()
    assert rows == [(answer_id, "2026-03-04", 3), (answer_id, "2026-03-05", 1)]
    assert "Opening hours" in text(visitor.get("/help/en")).split("Most read")[1]


def test_the_sitemap_lists_exactly_the_published_articles(happ, hstore, lead):
    en = answer(hstore, "Returns", "Send the item back within 30 days.")
    nl = answer(hstore, "Retourneren", "Stuur het artikel binnen 30 dagen terug.", language="nl")
    draft = answer(hstore, "Draft", "Not yet.")
    gone = answer(hstore, "Gone", "Archived.")
    publish(lead, en, slug="returns", key="returns")
    publish(lead, nl, slug="retourneren", key="returns")
    publish(lead, draft, slug="draft")
    publish(lead, draft, slug="draft", published=False)
    publish(lead, gone, slug="gone")
    hstore.answers.set_active(gone, False, T)
    response = happ.test_client().get("/help/sitemap.xml")
    assert response.mimetype == "application/xml"
    root = ET.fromstring(response.get_data())
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9", "x": "http://www.w3.org/1999/xhtml"}
    locs = sorted(e.text for e in root.findall("s:url/s:loc", ns))
    assert locs == ["https://help.example.org/help/en/returns", "https://help.example.org/help/nl/retourneren"]
    alternates = {e.get("hreflang") for e in root.findall("s:url/x:link", ns)}
    assert alternates == {"en", "nl"}


# Categories --------------------------------------------------------------------------------------

def test_categories_are_named_per_language_and_ordered(happ, hstore, lead):
    token = csrf_token(lead, "/help-center/categories")
    lead.post("/help-center/categories", data={"csrf_token": token, "position": "2", "name_en": "Shipping",
                                               "name_nl": "Verzending"})
    lead.post("/help-center/categories", data={"csrf_token": token, "position": "1", "name_en": "Payments",
                                               "name_nl": "Betalen", "slug_nl": "betalingen"})
    cats = hstore.help_categories()
    assert [c["names"]["en"]["name"] for c in cats] == ["Payments", "Shipping"]
    assert cats[0]["names"]["nl"]["slug"] == "betalingen"
    for cat in cats:
        article = answer(hstore, f"About {cat['names']['en']['name']}", "Some words.")
        publish(lead, article, slug=f"about-{cat['id']}", category=cat["id"])
    home = text(happ.test_client().get("/help/en"))
    assert home.index("Payments") < home.index("Shipping")
    dutch = text(happ.test_client().get("/help/nl"))
    assert "Betalen" in dutch and 'href="/help/nl/betalingen"' in dutch
    clash = lead.post("/help-center/categories", data={"csrf_token": token, "name_en": "x", "slug_en": "about-1"})
    assert clash.status_code == 302 and len(hstore.help_categories()) == 2, "an article's address is taken"
    assert hstore.execute("SELECT count(*) FROM audit_log WHERE action = 'help_category_saved'").fetchone()[0] == 2
    page = text(lead.get("/help-center/categories"))
    delete = f'formaction="/help-center/categories/{cats[0]["id"]}/delete"'
    assert delete in page, "each category's form has its remove button"
    lead.post(f"/help-center/categories/{cats[0]['id']}/delete", data={"csrf_token": token})
    assert [c["names"]["en"]["name"] for c in hstore.help_categories()] == ["Shipping"]
    orphan = text(happ.test_client().get("/help/en"))
    assert "About Payments" in orphan.split("More answers")[1], "its article stays published, without a category"


# Reports -----------------------------------------------------------------------------------------

def test_the_report_sets_reads_beside_conversations_on_the_topic(happ, hstore, lead, ingestor_for):
    shipping = category(hstore, ("Shipping", "shipping"))
    answer_id = answer(hstore, "Where is my parcel", "Follow it with the tracking link.", tags="tracking parcel")
    publish(lead, answer_id, slug="where-is-my-parcel", category=shipping)
    visitor = happ.test_client()
    for _ in range(4):
        visitor.get("/help/en/where-is-my-parcel")
    visitor.get("/help/search", query_string={"q": "voucher", "lang": "en"})
    ingestor_for(hstore, "My parcel never came, the tracking page is empty")
    ingestor_for(hstore, "Can I pay by invoice?")
    period = Period.containing(NOW)
    figures = helpcenter.report(hstore, period)
    assert figures["reads"] == 4 and figures["misses"] == 1
    assert figures["missed_queries"][0]["query"] == "voucher"
    assert figures["categories"] == [{"id": shipping, "name": "Shipping", "topics": ["parcel", "tracking"],
                                      "reads": 4, "conversations": 1}]
    make_agent(hstore, email="mia@example.org", name="Mia Manager", role="manager")
    manager = happ.test_client()
    login(manager, email="mia@example.org")
    page = text(manager.get("/reports", query_string={"week": period.key}))
    assert "Help center" in page and "voucher" in page and "Where is my parcel" in page


@pytest.fixture
def ingestor_for(tmp_path):
    from inbox.attachments import AttachmentStore
    from inbox.ingest import Ingestor
    from inbox.models import Author, FetchResult, InboundItem

    def ingest(store, text_: str) -> None:
        ingestor = Ingestor(store, AttachmentStore(tmp_path / "att"), instance_id="test-instance")
        item = InboundItem(channel="mail", external_id=text_, author=Author(f"{len(text_)}@example.org", "C"),
                           text=text_, subject="Question", sent_at=NOW)
        ingestor.ingest("mail", FetchResult(items=[item], cursor=None), save_cursor=False)

    return ingest


def test_the_weekly_digest_has_a_help_center_line(happ, hstore, lead):
    from inbox import digest
    from inbox.web import mainland

    answer_id = answer(hstore, "Opening hours", "We are open from 9 to 5.")
    publish(lead, answer_id, slug="opening-hours")
    visitor = happ.test_client()
    for _ in range(2):
        visitor.get("/help/en/opening-hours")
    visitor.get("/help/search", query_string={"q": "helicopter", "lang": "en"})
    visitor.get("/help/search", query_string={"q": "open", "lang": "en"})
    with happ.app_context():
        built = digest.build_digest(mainland(), hstore, Period.containing(NOW), now=NOW)
    line = "Help center: 2 article reads; 1 of 2 searches found nothing."
    assert line in built.text and line in built.html


def test_the_digest_has_no_help_center_line_when_it_is_off(app, store):
    from inbox import digest
    from inbox.web import mainland

    with app.app_context():
        built = digest.build_digest(mainland(), store, Period.containing(NOW), now=NOW)
    assert "Help center" not in built.text


def test_the_help_center_section_is_checked(tmp_path):
    from inbox.config import ConfigError, from_mapping

    good = from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k",
                         "help_center": {"enabled": True, "title": "Acme Help", "brand_color": "#aa3300",
                                         "logo_url": "/static/logo.png"}}, base=tmp_path)
    assert helpcenter.settings_for(good) == helpcenter.Settings(True, "Acme Help", "#aa3300", "/static/logo.png")
    assert helpcenter.settings_for(from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k"},
                                                base=tmp_path)).enabled is False, "off unless turned on"
    with pytest.raises(ConfigError) as caught:
        from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k",
                      "help_center": {"enabled": "yes", "brand_color": "red;}body{display:none",
                                      "logo_url": "https://tracker.example/logo.png", "colour": "#fff"}},
                     base=tmp_path)
    problems = "\n".join(caught.value.problems)
    for key in ("help_center.enabled", "help_center.brand_color", "help_center.logo_url",
                "help_center.colour: unknown key"):
        assert key in problems


def test_the_theme_carries_the_configured_colour(happ):
    response = happ.test_client().get("/help/theme.css")
    assert response.mimetype == "text/css" and "--brand:#aa3300" in response.get_data(as_text=True)
