"""The help center's pages (#18): public articles without sign-in, and publishing for leads.

Public (only when `help_center.enabled`; otherwise every one is a 404):

- `GET /help` (the visitor's language), `/help/<lang>`: categories, search box, most read.
- `GET /help/<lang>/<slug>`: a category (its articles) or an article; the two share the address space.
- `GET /help/search?lang=&q=`: FTS5 search (inbox/helpcenter.py), rate-limited per address.
- `GET /help/sitemap.xml`: every published article, with its language versions.
- `GET /help/theme.css`: the configured brand colour, so the pages need no inline style.

The pages need no JavaScript, set no cookie, load nothing from elsewhere and are served with a
strict policy (`HELP_CSP`). Reads and searches are counted on GET only (HEAD and OPTIONS change
nothing), without anything about the visitor.

For leads, managers and admins (`LEAD_ROLES` of the library): `POST /answers/<id>/publish` from the
answer's edit page, and `/help-center/categories` to name and order the categories. Both audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale, format_date

from inbox import clock, helpcenter
from inbox.i18n import LANGUAGES, select_locale
from inbox.i18n import gettext as _
from inbox.store import NotFound as StoreNotFound
from inbox.store.answers import Answer
from inbox.store.base import iso, parse_iso
from inbox.web import get_store, mainland
from inbox.web.answers import LEAD_ROLES
from inbox.web.auth import current_agent, role_required
from inbox.web.security import error_page, limiter

bp = Blueprint("helpcenter", __name__)

#: No script at all, styles and images from this site only, no framing.
HELP_CSP = ("default-src 'self'; script-src 'none'; object-src 'none'; img-src 'self'; style-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: Per address: reading is cheap, a search runs a full-text query.
PAGE_LIMIT = "240 per minute"
SEARCH_LIMIT = "30 per minute"
#: Other articles of the same category listed under an article.
RELATED_ARTICLES = 5
lead_required = role_required(*LEAD_ROLES)


def _settings() -> helpcenter.Settings:
    return helpcenter.settings_for(mainland().config)


def _require_enabled() -> helpcenter.Settings:
    settings = _settings()
    if not settings.enabled:
        abort(404)
    return settings


def _language(lang: str) -> str:
    if lang not in LANGUAGES:
        abort(404)
    return lang


def _public(template: str, language: str, status: int = 200, **context: Any) -> Response:
    """A public page in `language`, with the help center's headers."""
    context.setdefault("alternates", [])
    with force_locale(language):
        body = render_template(template, settings=_settings(), language=language, languages=LANGUAGES,
                               base_url=mainland().config.base_url, **context)
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HELP_CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _not_found(language: str) -> Response:
    """The one 404 of the help center: the same page for an unpublished, archived or unknown article."""
    return _public("help/not_found.html", language, 404)


def _categories(language: str) -> list[dict[str, Any]]:
    """The categories that have a name in `language`, in order."""
    found = []
    for category in get_store().help_categories():
        name = category["names"].get(language)
        if name:
            found.append({"id": category["id"], **name})
    return found


# Public pages ------------------------------------------------------------------------------------

@bp.get("/help")
@limiter.limit(PAGE_LIMIT)
def home_best():
    _require_enabled()
    response = _home(select_locale())
    response.headers["Vary"] = "Accept-Language"
    return response


@bp.get("/help/<lang>")
@limiter.limit(PAGE_LIMIT)
def home(lang: str):
    _require_enabled()
    return _home(_language(lang))


def _home(language: str) -> Response:
    store = get_store()
    since = helpcenter.day_of(clock.now() - dt.timedelta(days=helpcenter.MOST_READ_DAYS))
    articles = store.public_articles(language)
    categories = _categories(language)
    for category in categories:
        category["count"] = sum(1 for a in articles if a["category_id"] == category["id"])
    return _public("help/home.html", language, categories=categories,
                   most_read=store.most_read_articles(language, since),
                   uncategorised=[a for a in articles if a["category_id"] not in {c["id"] for c in categories}],
                   alternates=[{"language": code, "url": url_for("helpcenter.home", lang=code)} for code in LANGUAGES])


@bp.get("/help/<lang>/<slug>")
@limiter.limit(PAGE_LIMIT)
def page(lang: str, slug: str):
    _require_enabled()
    language = _language(lang)
    store = get_store()
    category = store.help_category_by_slug(language, slug) if len(slug) <= helpcenter.MAX_SLUG_CHARS else None
    if category is not None:
        return _public("help/category.html", language, category=category,
                       articles=store.public_articles(language, category_id=category["id"]),
                       alternates=_category_alternates(category["id"]))
    article = store.public_article(language, slug) if len(slug) <= helpcenter.MAX_SLUG_CHARS else None
    if article is None:
        return _not_found(language)
    if request.method == "GET":
        store.count_article_view(article["id"], helpcenter.day_of(clock.now()))
    versions = store.public_article_versions(article["article_key"])
    categories = {c["id"]: c for c in _categories(language)}
    category = categories.get(article["category_id"])
    related = [a for a in store.public_articles(language, category_id=category["id"]) if a["id"] != article["id"]
               ][:RELATED_ARTICLES] if category else []
    return _public("help/article.html", language, article=article, html=helpcenter.render_article(article["body"]),
                   description=helpcenter.plain_summary(article), category=category, related=related,
                   alternates=[{"language": v["language"], "url": url_for("helpcenter.page", lang=v["language"],
                                                                           slug=v["slug"])}
                               for v in versions if v["language"] in LANGUAGES])


def _category_alternates(category_id: int) -> list[dict[str, str]]:
    for category in get_store().help_categories():
        if category["id"] == category_id:
            return [{"language": code, "url": url_for("helpcenter.page", lang=code, slug=name["slug"])}
                    for code, name in sorted(category["names"].items()) if code in LANGUAGES]
    return []


@bp.get("/help/search")
@limiter.limit(SEARCH_LIMIT)
def search():
    _require_enabled()
    lang = request.args.get("lang") or select_locale()
    language = lang if lang in LANGUAGES else select_locale()
    typed = (request.args.get("q") or "")[:helpcenter.MAX_QUERY_CHARS]
    expression = helpcenter.match_expression(typed)
    results = get_store().search_public_articles(language, expression) if expression else []
    normalised = helpcenter.normalise_query(typed)
    if normalised and request.method == "GET":
        get_store().count_help_search(language, helpcenter.day_of(clock.now()), normalised, found=bool(results))
    response = _public("help/search.html", language, query=typed, results=results, searched=bool(normalised),
                       alternates=[])
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/help/sitemap.xml")
@limiter.limit(PAGE_LIMIT)
def sitemap():
    _require_enabled()
    base = mainland().config.base_url
    articles = [a for a in get_store().public_articles() if a["language"] in LANGUAGES]
    for article in articles:
        article["url"] = base + url_for("helpcenter.page", lang=article["language"], slug=article["slug"])
        article["versions"] = [
            {"language": v["language"], "url": base + url_for("helpcenter.page", lang=v["language"], slug=v["slug"])}
            for v in get_store().public_article_versions(article["article_key"]) if v["language"] in LANGUAGES]
    body = render_template("help/sitemap.xml", articles=articles)
    return Response(body, mimetype="application/xml")


@bp.get("/help/theme.css")
def theme():
    _require_enabled()
    color = _settings().brand_color
    response = Response(f":root{{--brand:{color}}}\n", mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.errorhandler(404)
def _help_404(exc):
    # A 404 inside the help center looks like the help center when it is on; when it is off the
    # help center does not exist, so it is the application's ordinary 404.
    if request.path.startswith("/help") and not request.path.startswith("/help-center") and _settings().enabled:
        parts = request.path.split("/")
        language = parts[2] if len(parts) > 2 and parts[2] in LANGUAGES else select_locale()
        return _not_found(language)
    return error_page(404)


# Publishing (the answer's edit page) -----------------------------------------------------------------

def publishing(answer: Answer) -> dict[str, Any]:
    """What the publishing panel on an answer's edit page shows (a template global)."""
    store = get_store()
    current = store.help_article_settings(answer.id) or {}
    blockers = helpcenter.publish_blockers(answer)
    slug = current.get("slug") or helpcenter.slugify(answer.title)
    public = bool(current.get("published")) and answer.active
    return {
        "enabled": _settings().enabled, "settings": current, "slug": slug,
        "summary": current.get("summary") or "", "article_key": current.get("article_key") or slug,
        "category_id": current.get("category_id"), "published": bool(current.get("published")),
        "categories": [{"id": c["id"], "name": (c["names"].get(answer.language)
                                                or next(iter(c["names"].values()), {})).get("name", "")}
                       for c in store.help_categories()],
        "blockers": blockers, "blocker_names": ", ".join("{{" + b + "}}" for b in blockers),
        "language_ok": helpcenter.is_public_language(answer.language),
        "url": url_for("helpcenter.page", lang=answer.language, slug=slug) if public else None,
    }


def _publish_problems(answer: Answer, slug: str, summary: str, article_key: str, publish: bool,
                      category_id: int | None) -> list[str]:
    problems = []
    if not helpcenter.valid_slug(slug):
        problems.append(_("Use lower-case letters, digits and hyphens for the address (at most %(n)d).",
                          n=helpcenter.MAX_SLUG_CHARS))
    elif get_store().help_slug_taken(answer.language, slug, answer_id=answer.id):
        problems.append(_("Another article or category already has the address %(slug)s.", slug=slug))
    if len(summary) > helpcenter.MAX_SUMMARY_CHARS:
        problems.append(_("Use at most %(n)d characters for the summary.", n=helpcenter.MAX_SUMMARY_CHARS))
    if article_key and not helpcenter.valid_slug(article_key):
        problems.append(_("Use lower-case letters, digits and hyphens for the language-versions key."))
    if category_id is not None and category_id not in {c["id"] for c in get_store().help_categories()}:
        problems.append(_("Choose one of the categories."))
    if publish:
        blockers = helpcenter.publish_blockers(answer)
        if blockers:
            problems.append(_("An answer with variables cannot be published: a public page has no customer "
                              "to fill in %(names)s. Write it without them.",
                              names=", ".join("{{" + b + "}}" for b in blockers)))
        if not answer.active:
            problems.append(_("An archived answer cannot be published."))
        if not helpcenter.is_public_language(answer.language):
            problems.append(_("The help center is in English and Dutch: this answer's language is neither."))
    return problems


@bp.post("/answers/<int:answer_id>/publish")
@lead_required
def publish(answer_id: int):
    store = get_store()
    try:
        answer = store.answers.get(answer_id)
    except StoreNotFound:
        abort(404)
    publish_it = request.form.get("published") == "1"
    slug = (request.form.get("slug") or "").strip().lower()
    summary = " ".join((request.form.get("summary") or "").split())
    article_key = (request.form.get("article_key") or "").strip().lower() or slug
    raw_category = request.form.get("category") or ""
    category_id = int(raw_category) if raw_category.isdigit() and len(raw_category) < 18 else None
    problems = _publish_problems(answer, slug, summary, article_key, publish_it, category_id)
    if problems:
        for problem in problems:
            flash(problem, "error")
        return redirect(url_for("answers.edit", answer_id=answer_id) + "#help-center")
    store.save_help_article(answer_id, slug=slug, category_id=category_id, summary=summary,
                            article_key=article_key, published=publish_it, actor=f"agent:{current_agent()['id']}",
                            now=iso(clock.now()))
    flash(_("Published in the help center.") if publish_it else _("Not in the help center."), "success")
    return redirect(url_for("answers.edit", answer_id=answer_id) + "#help-center")


# Categories ------------------------------------------------------------------------------------------

@bp.get("/help-center/categories")
@lead_required
def categories():
    return render_template("help/categories.html", categories=get_store().help_categories(), languages=LANGUAGES,
                           enabled=_settings().enabled)


def _category_form(category_id: int | None) -> tuple[int, dict[str, tuple[str, str]], list[str]]:
    problems: list[str] = []
    try:
        position = int(request.form.get("position") or 0)
    except ValueError:
        position = 0
    position = max(-1000, min(position, 1000))
    names: dict[str, tuple[str, str]] = {}
    for code in LANGUAGES:
        name = " ".join((request.form.get(f"name_{code}") or "").split())[:80]
        if not name:
            continue
        slug = (request.form.get(f"slug_{code}") or "").strip().lower() or helpcenter.slugify(name)
        if not helpcenter.valid_slug(slug):
            problems.append(_("Use lower-case letters, digits and hyphens for the address (at most %(n)d).",
                              n=helpcenter.MAX_SLUG_CHARS))
        elif get_store().help_slug_taken(code, slug, category_id=category_id):
            problems.append(_("Another article or category already has the address %(slug)s.", slug=slug))
        names[code] = (name, slug)
    if not names:
        problems.append(_("Name the category in at least one language."))
    return position, names, problems


@bp.post("/help-center/categories")
@lead_required
def create_category():
    position, names, problems = _category_form(None)
    if problems:
        for problem in problems:
            flash(problem, "error")
    else:
        get_store().save_help_category(None, position=position, names=names,
                                       actor=f"agent:{current_agent()['id']}", now=iso(clock.now()))
        flash(_("Category saved."), "success")
    return redirect(url_for("helpcenter.categories"))


def _category_or_404(category_id: int) -> None:
    if category_id not in {c["id"] for c in get_store().help_categories()}:
        abort(404)


@bp.post("/help-center/categories/<int:category_id>")
@lead_required
def update_category(category_id: int):
    _category_or_404(category_id)
    position, names, problems = _category_form(category_id)
    if problems:
        for problem in problems:
            flash(problem, "error")
    else:
        get_store().save_help_category(category_id, position=position, names=names,
                                       actor=f"agent:{current_agent()['id']}", now=iso(clock.now()))
        flash(_("Category saved."), "success")
    return redirect(url_for("helpcenter.categories"))


@bp.post("/help-center/categories/<int:category_id>/delete")
@lead_required
def delete_category(category_id: int):
    _category_or_404(category_id)
    get_store().delete_help_category(category_id, actor=f"agent:{current_agent()['id']}", now=iso(clock.now()))
    flash(_("Category removed; its articles stay published without a category."), "success")
    return redirect(url_for("helpcenter.categories"))


def _date(text: str | None) -> str:
    moment = parse_iso(text)
    return format_date(moment, "long") if moment else ""


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(help_publishing=publishing, help_summary=helpcenter.plain_summary, help_date=_date)
