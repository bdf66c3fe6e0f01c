"""The public help center (#18): answers of the library published as articles, per language.

**One source.** An article is an answer with publishing settings (inbox/store/helpcenter.py); its
title and text are read from the library on every request, so an edit there is the article's edit.

**No one's data on a public page.** An answer that uses variables (`{{customer_first_name}}`,
`{{agent_name}}`, ...) cannot be published: those are filled in per conversation and have no
public value. Should one be added to an answer after publishing, the public page still never fills
it in: `render_article` drops every variable (with the space before it), so "Hi {{customer_name}},"
reads "Hi,".

**Search** is SQLite FTS5 over title, summary and text (the `help_search` table, kept in step by
triggers): every word is searched as a prefix ("refu" finds "refund"), text in double quotes as a
phrase, all of them required. Nothing the visitor types is FTS syntax.

**Counting without tracking.** Reads are counted per article per day and searches that find
nothing by their normalised text per day: no address, no cookie, no visitor id. So a read cannot
be tied to a conversation that followed it; `report` sets the reads of each category's articles
beside the conversations started on that category's topic (its articles' tags, recognised in the
first message as routing recognises topics) instead. That is a comparison, not a measured
deflection, and the reports page says so.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from inbox.answers import VARIABLE, fold, variables_in
from inbox.channel_format import to_html
from inbox.i18n import LANGUAGES
from inbox.routing import detect_topics
from inbox.store.answers import Answer
from inbox.store.base import iso

SETTINGS_KEYS = frozenset({"enabled", "title", "brand_color", "logo_url"})
DEFAULT_TITLE = "Help center"
DEFAULT_BRAND_COLOR = "#1f5f8b"
MAX_SLUG_CHARS = 80
MAX_SUMMARY_CHARS = 300
#: Longer search text is cut (not refused): a visitor pasting a paragraph still gets results.
MAX_QUERY_CHARS = 200
#: At most this many words and phrases are searched for.
MAX_QUERY_TERMS = 8
#: A search that found nothing is kept by at most this many characters of its normalised text.
MAX_MISS_CHARS = 100
#: Days of reads that make an article "most read".
MOST_READ_DAYS = 30

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_PHRASE = re.compile(r'"([^"]*)"')
_BULLET_LINE = re.compile(r"^\s*[*+-]\s+")
_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}\s+")


# Settings ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    enabled: bool = False
    title: str = DEFAULT_TITLE
    brand_color: str = DEFAULT_BRAND_COLOR
    logo_url: str | None = None


def check_config(data: Any) -> list[str]:
    """What is wrong with the `help_center` section (docs/configuration.md)."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        return ["help_center: must be a mapping (enabled, title, brand_color, logo_url)"]
    problems = []
    if not isinstance(data.get("enabled", False), bool):
        problems.append("help_center.enabled: must be true or false")
    title = data.get("title", DEFAULT_TITLE)
    if not isinstance(title, str) or not title.strip() or len(title) > 80:
        problems.append("help_center.title: must be text of 1 to 80 characters")
    color = data.get("brand_color", DEFAULT_BRAND_COLOR)
    if not isinstance(color, str) or not _COLOR.match(color):
        problems.append(f"help_center.brand_color: must be a colour like #1f5f8b (got {color!r})")
    logo = data.get("logo_url")
    # The pages allow no third-party requests (CSP default-src 'self'): the logo is one of ours.
    if logo is not None and not (isinstance(logo, str) and logo.startswith("/") and not logo.startswith("//")
                                 and not any(ch.isspace() or ch in "\"'<>\\" for ch in logo)):
        problems.append(f"help_center.logo_url: must be a path on this site such as /static/logo.png (got {logo!r})")
    return problems


def settings_for(config: Any) -> Settings:
    data = (config.extra or {}).get("help_center") or {}
    return Settings(enabled=bool(data.get("enabled", False)), title=str(data.get("title") or DEFAULT_TITLE),
                    brand_color=str(data.get("brand_color") or DEFAULT_BRAND_COLOR),
                    logo_url=data.get("logo_url") or None)


# Publishing -------------------------------------------------------------------------------------

def slugify(text: str) -> str:
    """An address part from a title: "Refunds & returns" -> "refunds-returns"."""
    words = re.findall(r"[a-z0-9]+", fold(text or ""))
    slug = "-".join(words)[:MAX_SLUG_CHARS].strip("-")
    return slug


def valid_slug(slug: str) -> bool:
    return bool(_SLUG.match(slug or "")) and len(slug) <= MAX_SLUG_CHARS and slug not in ("search", "sitemap-xml")


def publish_blockers(answer: Answer) -> list[str]:
    """The variables that keep an answer off the public pages (every variable: each is filled in
    with someone's data)."""
    return variables_in(answer.body or "") + [v for v in variables_in(answer.title or "")
                                              if v not in variables_in(answer.body or "")]


def is_public_language(language: str) -> bool:
    return language in LANGUAGES


# Rendering --------------------------------------------------------------------------------------

def neutral_text(text: str) -> str:
    """`text` with every variable removed, with the space before it ("Hi {{customer_name}}," -> "Hi,")."""
    return re.sub(r"[ \t]*" + VARIABLE.pattern, "", text or "")


def render_article(body: str) -> Markup:
    """An answer's light markup as the article's HTML: headings, lists, paragraphs, bold, italic and
    https links. Everything else is escaped (channel_format.to_html does the inline part)."""
    parts = []
    for block in re.split(r"\n\s*\n", neutral_text(body).strip()):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(_BULLET_LINE.match(line) for line in lines):
            items = "".join(f"<li>{_inline(_BULLET_LINE.sub('', line))}</li>" for line in lines)
            parts.append(f"<ul>{items}</ul>")
        elif len(lines) == 1 and _HEADING_LINE.match(lines[0]):
            parts.append(f"<h2>{_inline(_HEADING_LINE.sub('', lines[0]))}</h2>")
        else:
            parts.append(to_html(block))
    return Markup("".join(parts))  # noqa: S704 - built from html.escape'd text only


def _inline(text: str) -> str:
    html = to_html(text)
    return html[3:-4] if html.startswith("<p>") and html.endswith("</p>") else html


def plain_summary(article: Mapping[str, Any], limit: int = 160) -> str:
    """The article's summary, else the start of its text as plain words (meta description, lists)."""
    summary = (article.get("summary") or "").strip()
    if summary:
        return summary
    text = re.sub(r"[*_#`\[\]]|\(https?://[^)\s]+\)", "", neutral_text(article.get("body") or ""))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


# Search -----------------------------------------------------------------------------------------

def _has_token(term: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in term)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def match_expression(text: str) -> str | None:
    """The FTS5 expression for what a visitor typed (cut to MAX_QUERY_CHARS): each word a prefix,
    text in double quotes a phrase, all required. None when nothing searchable is left."""
    text = (text or "")[:MAX_QUERY_CHARS]
    parts: list[str] = []
    for phrase in _PHRASE.findall(text):
        words = re.findall(r"\w+", phrase)
        if words:
            parts.append(_quoted(" ".join(words)))
    rest = _PHRASE.sub(" ", text)
    for word in re.findall(r"\w+", rest):
        if _has_token(word):
            parts.append(_quoted(word) + "*")
    return " ".join(parts[:MAX_QUERY_TERMS]) or None


def normalise_query(text: str) -> str:
    """A search as it is counted: folded, words only, single spaces, cut to MAX_MISS_CHARS."""
    return " ".join(re.findall(r"\w+", fold((text or "")[:MAX_QUERY_CHARS])))[:MAX_MISS_CHARS].strip()


def day_of(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).date().isoformat()


# Reports ----------------------------------------------------------------------------------------

def report(store: Any, period: Any, *, language: str = "en") -> dict[str, Any]:
    """The help center's figures for a week (`inbox.reports.Period`): reads per article, searches
    that found nothing, and per category its articles' reads beside the conversations started on its
    topic. Reads and searches are counted per UTC day: the week's are those of its seven dates."""
    first_day, last_day = (day.isoformat() for day in period.days)
    start, end = period.start, period.end
    reads = store.help_reads(first_day, last_day)
    searches = store.help_search_totals(first_day, last_day)
    categories = store.help_categories()
    tags = store.help_topic_tags()
    questions = store.help_first_questions(iso(start), iso(end)) if tags else []
    topics = [detect_topics(q or "", set().union(*tags.values())) for q in questions]
    by_category = []
    for category in categories:
        vocabulary = tags.get(category["id"], set())
        names = category["names"]
        name = (names.get(language) or next(iter(names.values()), {})).get("name") or f"#{category['id']}"
        by_category.append({
            "id": category["id"], "name": name, "topics": sorted(vocabulary),
            "reads": sum(r["views"] for r in reads if r["category_id"] == category["id"]),
            "conversations": sum(1 for found in topics if found & vocabulary),
        })
    return {
        "reads": sum(r["views"] for r in reads), "articles": reads[:20], "searches": searches["searches"],
        "misses": searches["misses"], "missed_queries": store.help_search_misses(first_day, last_day),
        "categories": by_category, "conversations": len(questions),
    }
