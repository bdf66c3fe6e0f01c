"""Store verbs for the public help center (#18): categories, publishing settings, the public reads
and the anonymous counters.

An article is an answer of the library with a `help_articles` row; its title and text are always
read from `answers`, so an edit in the library is the help center's edit too. Every public read
asks for `published = 1` *and* an active answer in one query, so an unpublished or archived answer
is exactly as absent as one that never existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inbox.store import pg_search
from inbox.store.base import as_dict, as_dicts

#: The columns of a public article (answer text plus its help-center settings).
_ARTICLE = ("a.id, a.title, a.body, a.language, a.tags, a.updated_at, h.slug, h.summary, h.article_key, "
            "h.category_id, h.published_at")
_PUBLIC = "h.published = 1 AND a.active = 1"


class HelpCenterQueries:
    conn: Any
    write: Any
    audit: Any
    engine: str

    # Categories ---------------------------------------------------------------------------------

    def help_categories(self) -> list[dict[str, Any]]:
        """Every category in order, each with `names`: {language: {"name", "slug"}}."""
        rows = as_dicts(self.conn.execute("SELECT id, position FROM help_categories ORDER BY position, id"))
        names: dict[int, dict[str, dict[str, str]]] = {}
        for category_id, language, name, slug in self.conn.execute(
                "SELECT category_id, language, name, slug FROM help_category_names"):
            names.setdefault(category_id, {})[language] = {"name": name, "slug": slug}
        for row in rows:
            row["names"] = names.get(row["id"], {})
        return rows

    def save_help_category(self, category_id: int | None, *, position: int, names: Mapping[str, tuple[str, str]],
                           actor: str, now: str) -> int:
        """Create (`category_id` None) or change a category; `names` maps language -> (name, slug)."""
        with self.write():
            if category_id is None:
                category_id = self.conn.execute(
                    "INSERT INTO help_categories (position, created_at) VALUES (?, ?)", (position, now)).lastrowid
            else:
                self.conn.execute("UPDATE help_categories SET position = ? WHERE id = ?", (position, category_id))
            self.conn.execute("DELETE FROM help_category_names WHERE category_id = ?", (category_id,))
            for language, (name, slug) in names.items():
                self.conn.execute("INSERT INTO help_category_names (category_id, language, name, slug) "
                                  "VALUES (?, ?, ?, ?)", (category_id, language, name, slug))
            self.audit(now, actor, "help_category_saved", "help_category", category_id, position=position,
                       names={k: v[0] for k, v in names.items()})
            return category_id

    def delete_help_category(self, category_id: int, *, actor: str, now: str) -> None:
        """Remove a category; its articles stay published, without a category."""
        with self.write():
            self.conn.execute("DELETE FROM help_categories WHERE id = ?", (category_id,))
            self.audit(now, actor, "help_category_deleted", "help_category", category_id)

    def help_category_by_slug(self, language: str, slug: str) -> dict[str, Any] | None:
        cur = self.conn.execute(
            "SELECT c.id, c.position, n.name, n.slug, n.language FROM help_category_names n "
            "JOIN help_categories c ON c.id = n.category_id WHERE n.language = ? AND n.slug = ?", (language, slug))
        return as_dict(cur, cur.fetchone())

    def help_slug_taken(self, language: str, slug: str, *, answer_id: int | None = None,
                        category_id: int | None = None) -> bool:
        """Whether `slug` already names another article (any language) or another category in
        `language`: both share the address space /help/<language>/<slug>."""
        article = self.conn.execute("SELECT 1 FROM help_articles WHERE slug = ? AND answer_id IS NOT ?",
                                    (slug, -1 if answer_id is None else answer_id)).fetchone()
        category = self.conn.execute(
            "SELECT 1 FROM help_category_names WHERE language = ? AND slug = ? AND category_id IS NOT ?",
            (language, slug, -1 if category_id is None else category_id)).fetchone()
        return bool(article or category)

    # Publishing -----------------------------------------------------------------------------------

    def help_article_settings(self, answer_id: int) -> dict[str, Any] | None:
        """The help-center settings of an answer (published or not), or None when it never had any."""
        cur = self.conn.execute(
            "SELECT answer_id, slug, category_id, summary, article_key, published, published_at, updated_at "
            "FROM help_articles WHERE answer_id = ?", (answer_id,))
        return as_dict(cur, cur.fetchone())

    def save_help_article(self, answer_id: int, *, slug: str, category_id: int | None, summary: str,
                          article_key: str, published: bool, actor: str, now: str) -> None:
        """Publish, unpublish or change an answer's help-center settings, with an audit entry."""
        with self.write():
            before = self.help_article_settings(answer_id)
            published_at = now if published and not (before and before["published"]) else (
                before["published_at"] if before else None)
            self.conn.execute(
                "INSERT INTO help_articles (answer_id, slug, category_id, summary, article_key, published, "
                "published_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (answer_id) DO UPDATE SET "
                "slug = excluded.slug, category_id = excluded.category_id, summary = excluded.summary, "
                "article_key = excluded.article_key, published = excluded.published, "
                "published_at = excluded.published_at, updated_at = excluded.updated_at",
                (answer_id, slug, category_id, summary, article_key, int(published), published_at, now))
            was_published = bool(before and before["published"])
            action = ("help_article_published" if published and not was_published else
                      "help_article_unpublished" if was_published and not published else "help_article_changed")
            self.audit(now, actor, action, "answer", answer_id, slug=slug, category_id=category_id)

    # Public reads ---------------------------------------------------------------------------------

    def public_article(self, language: str, slug: str) -> dict[str, Any] | None:
        """A published article of an active answer, or None (never published, unpublished, archived
        and unknown alike)."""
        cur = self.conn.execute(
            f"SELECT {_ARTICLE} FROM help_articles h JOIN answers a ON a.id = h.answer_id "  # noqa: S608
            f"WHERE h.slug = ? AND a.language = ? AND {_PUBLIC}", (slug, language))
        return as_dict(cur, cur.fetchone())

    def public_articles(self, language: str | None = None, *, category_id: int | None = None) -> list[dict[str, Any]]:
        """Published articles by title, in `language` (all when None), of one category if given."""
        where, params = [_PUBLIC], []
        if language:
            where.append("a.language = ?")
            params.append(language)
        if category_id is not None:
            where.append("h.category_id = ?")
            params.append(category_id)
        return as_dicts(self.conn.execute(
            f"SELECT {_ARTICLE} FROM help_articles h JOIN answers a ON a.id = h.answer_id "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY lower(a.title), a.id", params))

    def public_article_versions(self, article_key: str) -> list[dict[str, Any]]:
        """The published language versions of one article (those sharing `article_key`)."""
        if not article_key:
            return []
        return as_dicts(self.conn.execute(
            f"SELECT a.id, a.language, a.title, h.slug FROM help_articles h JOIN answers a ON a.id = h.answer_id "  # noqa: S608
            f"WHERE h.article_key = ? AND {_PUBLIC} ORDER BY a.language, a.id", (article_key,)))

    def search_public_articles(self, language: str, match: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Published articles in `language` matching the FTS5 expression `match`, best first
        (a title match weighs most, then the summary, then the text)."""
        if self.engine == "postgresql":
            query = pg_search.tsquery(self.conn, match)
            if query is None:
                return []
            return as_dicts(self.conn.execute(
                f"SELECT {_ARTICLE} FROM (SELECT CAST(? AS tsquery) AS query) AS q "  # noqa: S608
                "CROSS JOIN help_documents s JOIN answers a ON a.id = s.answer_id "
                f"JOIN help_articles h ON h.answer_id = a.id WHERE s.document @@ q.query AND a.language = ? AND {_PUBLIC} "
                f"ORDER BY ts_rank(CAST(? AS real[]), s.document, q.query, {pg_search.RANK_NORMALIZATION}) DESC, a.id "
                "LIMIT ?", (query, language, pg_search.HELP_WEIGHTS, limit)))
        return as_dicts(self.conn.execute(
            f"SELECT {_ARTICLE} FROM help_search s JOIN answers a ON a.id = s.rowid "  # noqa: S608
            f"JOIN help_articles h ON h.answer_id = a.id WHERE help_search MATCH ? AND a.language = ? AND {_PUBLIC} "
            "ORDER BY bm25(help_search, 10.0, 4.0, 1.0), a.id LIMIT ?", (match, language, limit)))

    def most_read_articles(self, language: str, since_day: str, *, limit: int = 5) -> list[dict[str, Any]]:
        """Published articles in `language` with the most reads from `since_day` on."""
        return as_dicts(self.conn.execute(
            f"SELECT {_ARTICLE}, sum(v.views) AS views FROM help_article_views v "  # noqa: S608
            f"JOIN help_articles h ON h.answer_id = v.answer_id JOIN answers a ON a.id = v.answer_id "
            f"WHERE v.day >= ? AND a.language = ? AND {_PUBLIC} GROUP BY a.id, h.answer_id "
            "ORDER BY views DESC, a.id LIMIT ?",
            (since_day, language, limit)))

    # Counters (no personal data: an article and a day; a normalised query text and a day) ---------

    def count_article_view(self, answer_id: int, day: str) -> None:
        with self.write():
            self.conn.execute(
                "INSERT INTO help_article_views (answer_id, day, views) VALUES (?, ?, 1) "
                "ON CONFLICT (answer_id, day) DO UPDATE SET views = help_article_views.views + 1", (answer_id, day))

    def count_help_search(self, language: str, day: str, query: str, *, found: bool) -> None:
        """Count one search; one that found nothing is also counted under its normalised text."""
        with self.write():
            self.conn.execute(
                "INSERT INTO help_search_days (day, language, searches, misses) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (day, language) DO UPDATE SET searches = help_search_days.searches + 1, "
                "misses = help_search_days.misses + excluded.misses",
                (day, language, int(not found)))
            if not found:
                self.conn.execute(
                    "INSERT INTO help_search_misses (day, language, query, count) VALUES (?, ?, ?, 1) "
                    "ON CONFLICT (day, language, query) DO UPDATE SET count = help_search_misses.count + 1",
                    (day, language, query))

    # Reports --------------------------------------------------------------------------------------

    def help_reads(self, first_day: str, last_day: str) -> list[dict[str, Any]]:
        """Reads per article between two days (inclusive), most read first, with its category."""
        return as_dicts(self.conn.execute(
            "SELECT a.id, a.title, a.language, a.tags, h.slug, h.category_id, h.published, a.active, "
            "sum(v.views) AS views FROM help_article_views v JOIN answers a ON a.id = v.answer_id "
            "LEFT JOIN help_articles h ON h.answer_id = v.answer_id WHERE v.day BETWEEN ? AND ? "
            "GROUP BY a.id, h.answer_id ORDER BY views DESC, lower(a.title)", (first_day, last_day)))

    def help_search_totals(self, first_day: str, last_day: str) -> dict[str, int]:
        row = self.conn.execute("SELECT ifnull(sum(searches), 0), ifnull(sum(misses), 0) FROM help_search_days "
                                "WHERE day BETWEEN ? AND ?", (first_day, last_day)).fetchone()
        return {"searches": row[0], "misses": row[1]}

    def help_search_misses(self, first_day: str, last_day: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """The searches that found nothing, by how often they were made."""
        return as_dicts(self.conn.execute(
            "SELECT query, language, sum(count) AS count FROM help_search_misses WHERE day BETWEEN ? AND ? "
            "GROUP BY query, language ORDER BY count DESC, query LIMIT ?", (first_day, last_day, limit)))

    def help_topic_tags(self) -> dict[int, set[str]]:
        """Per category: the tags of its published articles (the words its topic is recognised by)."""
        found: dict[int, set[str]] = {}
        for category_id, tags in self.conn.execute(
                f"SELECT h.category_id, a.tags FROM help_articles h JOIN answers a ON a.id = h.answer_id "  # noqa: S608
                f"WHERE h.category_id IS NOT NULL AND {_PUBLIC}"):
            found.setdefault(category_id, set()).update((tags or "").split())
        return found

    def help_first_questions(self, start: str, end: str, *, limit: int = 20_000) -> list[str]:
        """The first customer message (subject and text) of each conversation people started in the
        period: what the topic comparison reads. Only counted, never stored or shown."""
        return [r[0] for r in self.conn.execute(
            "SELECT (SELECT ifnull(m.subject, '') || ' ' || substr(m.text, 1, 2000) FROM messages m "
            " WHERE m.conversation_id = c.id AND m.direction = 'in' ORDER BY m.id LIMIT 1) "
            "FROM conversations c WHERE c.created_at >= ? AND c.created_at < ? AND c.status != 'spam' "
            "AND c.automatic = 0 LIMIT ?", (start, end, limit))]
