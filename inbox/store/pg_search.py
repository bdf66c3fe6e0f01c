"""PostgreSQL's full-text search: what FTS5 does for the store's search verbs on SQLite (#17).

The documents are `tsvector`s in `message_documents`, `conversation_documents` and `help_documents`,
written by triggers (revisions/versions/0003_search.py says how their words are made, and what
differs from FTS5's unicode61). Here:

* `tsquery`: the FTS5 query that `fts_query` (or helpcenter.match_expression) writes becomes a
  tsquery over the same words: its terms AND-ed, a term of several words a phrase (`<->`), a
  trailing `*` a prefix (`:*`) of the last word. Each term's words are made by the database, by the
  very function that makes the documents' words (`search_text`), and every word is written quoted,
  so what a person typed is never tsquery syntax.
* `message_snippets` and `conversation_snippets`: FTS5's `snippet()`, from `ts_headline` in the
  `search_headline` configuration (unaccent, then simple: "café" is shown for "cafe"), with the
  search's random markers, as many words as FTS5 shows and "…" where the text goes on.

The verbs themselves (inbox/store/queue.py, helpcenter.py) choose their engine's SQL; this module
imports nothing of a driver's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: The tables of PostgreSQL's search documents (not in inbox/store/schema.py: SQLite has FTS5 instead).
SEARCH_TABLES = ("message_documents", "conversation_documents", "help_documents")

#: ts_rank's weights of a help article's words, {D, C, B, A}: body (C) 1, summary (B) 4, title (A) 10,
#: as SQLite's bm25 weighs the columns. (D is only the lexeme between two fields.)
HELP_WEIGHTS = [0.1, 0.1, 0.4, 1.0]

#: ts_rank's normalization: the rank divided by 1 + the logarithm of the document's length, as bm25
#: weighs a match in a short document more.
RANK_NORMALIZATION = 1

#: FTS5 snippet lengths in the search (queue.py): a message's text 16 words, a conversation's 12.
MESSAGE_SNIPPET_WORDS = 16
CONVERSATION_SNIPPET_WORDS = 12
ELLIPSIS = "…"

#: One term as FTS5 reads it: a string in double quotes ("" inside is a quote), maybe a prefix (*).
_TERM = re.compile(r'"((?:[^"]|"")*)"(\*?)')

#: Around every run of what is not a letter or digit, a \x01 on each side: ts_headline's parser then
#: reads each run of letters and digits as one word, as the documents' words are made (it would
#: otherwise keep "jan@example.com" or "e-mail" whole). The \x01 are taken out of what it shows.
_SPACED = r"regexp_replace({field} COLLATE search_words, '((\W|_)+)', chr(1) || '\1' || chr(1), 'g')"
_SEPARATOR = "\x01"


def terms(match: str) -> list[tuple[str, bool]]:
    """The terms of an FTS5 query made of quoted strings (what fts_query writes): (text, prefix)."""
    found, end = [], 0
    for term in _TERM.finditer(match):
        if match[end:term.start()].strip():
            break
        found.append((term.group(1).replace('""', '"'), term.group(2) == "*"))
        end = term.end()
    if match[end:].strip():
        raise ValueError(f"not a query of quoted terms (inbox.store.queue.fts_query makes one): {match!r}")
    return found


def _lexeme(word: str) -> str:
    """A word as a tsquery operand: quoted, so that nothing in it is syntax."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery(conn: Any, match: str) -> str | None:
    """The tsquery text for the FTS5 query `match`; None when a term has no word PostgreSQL reads as
    one (FTS5 finds one in any term: that term, and so the search, finds nothing here)."""
    wanted = terms(match)
    if not wanted:
        return None
    words: dict[int, list[tuple[int, str]]] = {}
    for number, lexeme, position in conn.execute(
        "SELECT t.n, w.lexeme, p.pos FROM unnest(CAST(? AS text[])) WITH ORDINALITY AS t (term, n) "
        "CROSS JOIN LATERAL unnest(to_tsvector('simple', coalesce(search_text(t.term), ''))) AS w "
        "CROSS JOIN LATERAL unnest(w.positions) AS p (pos) ORDER BY t.n, p.pos",
        [[text for text, _ in wanted]],
    ):
        words.setdefault(number, []).append((position, lexeme))
    parts = []
    for number, (_, prefix) in enumerate(wanted, start=1):
        if number not in words:
            return None
        phrase = ""
        previous = None
        for position, lexeme in words[number]:
            if previous is not None:
                # Next to each other is <->; further apart, as the words stand in the document.
                phrase += " <-> " if position - previous == 1 else f" <{position - previous}> "
            phrase += _lexeme(lexeme)
            previous = position
        phrase += ":*" if prefix else ""
        parts.append(f"({phrase})" if len(words[number]) > 1 else phrase)
    return " & ".join(parts)


# Snippets -------------------------------------------------------------------------------------------
# FTS5's snippet is `words` tokens of one field around the best match, the whole field when it is
# that short, with "…" where the field goes on. ts_headline is asked for the same: the whole field
# (HighlightAll) when it has no more words, else one fragment of that many words around the best
# match (MaxFragments=1; MinWords one fewer, as ts_headline wants; ShortWord=0: a fragment may begin
# or end with a short word). What differs: a fragment near the field's start or end is shorter than
# FTS5's (FTS5 moves its window to fill it), and a word of a phrase is highlighted wherever it stands.

#: A field this long or shorter is counted, in words, to see whether it is shown whole.
_COUNTED_CHARS = 1000

#: One headline per field `v.field`, with the parameters of `_PARAMETERS`: `shown`, and `lead` and
#: `tail`, the field's text before and after what is shown (NULL when it is not found in the field).
_HEADLINES = (
    "CROSS JOIN LATERAL (SELECT ts_headline('search_headline', "  # noqa: S608 - constants of this module
    f"{_SPACED.format(field='v.field')}, q.query, CASE WHEN length(v.field) <= {_COUNTED_CHARS} "
    "AND coalesce(array_length(string_to_array(search_text(v.field), ' '), 1), 0) <= q.words "
    "THEN q.whole ELSE q.fragment END) AS shown OFFSET 0) AS h "
    "CROSS JOIN LATERAL (SELECT replace(v.field, chr(1), '') AS base, "
    "replace(replace(replace(h.shown, q.mark_open, ''), q.mark_close, ''), chr(1), '') AS plain OFFSET 0) AS t "
    "CROSS JOIN LATERAL (SELECT strpos(t.base, t.plain) AS at OFFSET 0) AS a "
    "CROSS JOIN LATERAL (SELECT CASE WHEN a.at > 0 THEN left(t.base, a.at - 1) END AS lead, "
    "CASE WHEN a.at > 0 THEN substr(t.base, a.at + length(t.plain)) END AS tail) AS e "
)
#: How many of the query's terms the field has (ts_headline highlights a word of a phrase wherever it
#: stands, and every term it finds, so its highlights do not say whether the field has the phrase, or
#: how many terms). A third of the snippets' cost: see `_hits`.
_COUNTED_HITS = (
    "CROSS JOIN LATERAL (SELECT to_tsvector('simple', coalesce(search_text(v.field), '')) AS words OFFSET 0) AS w "
    "CROSS JOIN LATERAL (SELECT count(*) AS hits FROM unnest(q.terms) AS term "
    "WHERE w.words @@ CAST(term AS tsquery)) AS k "
)
#: For a query of one word (or one prefix), the most common search, the headline says it: the field
#: has the word exactly when a word is highlighted.
_HIGHLIGHTED_HITS = "CROSS JOIN LATERAL (SELECT CAST(strpos(h.shown, q.mark_open) > 0 AS integer) AS hits) AS k "


def _hits(query: str) -> str:
    """How the snippets' SQL counts a field's terms for `query` (a tsquery from `tsquery`)."""
    one_word = " & " not in query and "<->" not in query
    return _HIGHLIGHTED_HITS if one_word else _COUNTED_HITS
#: The terms the field has; what is shown, and the text before and after it when that has no word
#: (FTS5 shows it then), else NULL.
_SHOWN = ("k.hits, h.shown, CASE WHEN e.lead COLLATE search_words !~ '[[:alnum:]]' THEN e.lead END, "
          "CASE WHEN e.tail COLLATE search_words !~ '[[:alnum:]]' THEN e.tail END")
_PARAMETERS = ("(SELECT CAST(? AS tsquery) AS query, CAST(? AS text[]) AS terms, CAST(? AS integer) AS words, "
               "CAST(? AS text) AS whole, CAST(? AS text) AS fragment, CAST(? AS text) AS mark_open, "
               "CAST(? AS text) AS mark_close) AS q ")


def _parameters(query: str, words: int, mark_open: str, mark_close: str) -> list[Any]:
    marks = f"StartSel={mark_open}, StopSel={mark_close}"
    # `tsquery` joins its terms with " & ", which no term has (its words are letters and digits).
    return [query, query.split(" & "), words, f"{marks}, HighlightAll=true",
            f"{marks}, MaxWords={words}, MinWords={words - 1}, ShortWord=0, MaxFragments=1", mark_open, mark_close]


def _snippet(shown: str, lead: str | None, tail: str | None, mark_open: str, mark_close: str) -> str:
    """ts_headline's text as FTS5 shows a snippet: the words of one typed term highlighted together
    (`jan@example.com`, not each of its words), "…" where the field has more words."""
    joined = re.sub(re.escape(mark_close) + f"{_SEPARATOR}([^{_SEPARATOR}\\s]*){_SEPARATOR}" + re.escape(mark_open),
                    lambda m: m.group(1), shown)
    return (ELLIPSIS if lead is None else lead) + joined.replace(_SEPARATOR, "") + (ELLIPSIS if tail is None else tail)


def _best(fields: dict[int, tuple[int, str]], order: Sequence[int]) -> str:
    """The snippet of the field with the most of the query's terms (the first in `order` of equals)."""
    return max((fields.get(n, (0, "")) for n in order), key=lambda field: field[0])[1]


def message_snippets(conn: Any, query: str, message_ids: Sequence[int], mark_open: str,
                     mark_close: str) -> dict[int, dict[str, Any]]:
    """Message id -> the snippet of the message as the search shows it (queue.py): its text's when
    the text has a term of the query, else that of the field with the most (subject, author name,
    handle)."""
    marks = ",".join("?" * len(message_ids))
    found: dict[int, dict[str, Any]] = {}
    fields: dict[int, dict[int, tuple[int, str]]] = {}
    for message_id, direction, author, received_at, number, hits, shown, lead, tail in conn.execute(
        "SELECT m.id, m.direction, coalesce(nullif(m.author_name, ''), m.author_handle), m.received_at, v.n, "  # noqa: S608
        f"{_SHOWN} FROM {_PARAMETERS} CROSS JOIN messages m "
        "CROSS JOIN LATERAL (VALUES (1, m.text), (2, m.subject), (3, m.author_name), (4, m.author_handle)) "
        f"AS v (n, field) {_HEADLINES}{_hits(query)} WHERE m.id IN ({marks})",
        [*_parameters(query, MESSAGE_SNIPPET_WORDS, mark_open, mark_close), *message_ids],
    ):
        found[message_id] = {"message_id": message_id, "direction": direction, "author": author,
                             "received_at": received_at}
        fields.setdefault(message_id, {})[number] = (hits, _snippet(shown, lead, tail, mark_open, mark_close))
    for message_id, snippet in found.items():
        hits, text = fields[message_id].get(1, (0, ""))
        snippet["text"] = text if hits else _best(fields[message_id], (2, 3, 4, 1))
    return found


def conversation_snippets(conn: Any, query: str, conversation_ids: Sequence[int], mark_open: str,
                          mark_close: str) -> dict[int, str]:
    """Conversation id -> the snippet of its subject or customer (name and identities), the one
    with the most of the query's terms."""
    marks = ",".join("?" * len(conversation_ids))
    fields: dict[int, dict[int, tuple[int, str]]] = {}
    for conversation_id, number, hits, shown, lead, tail in conn.execute(
        f"SELECT c.id, v.n, {_SHOWN} FROM {_PARAMETERS} CROSS JOIN conversations c "  # noqa: S608
        "CROSS JOIN LATERAL (VALUES (1, c.subject), (2, search_customer_text(c.customer_id))) AS v (n, field) "
        f"{_HEADLINES}{_hits(query)} WHERE c.id IN ({marks})",
        [*_parameters(query, CONVERSATION_SNIPPET_WORDS, mark_open, mark_close), *conversation_ids],
    ):
        fields.setdefault(conversation_id, {})[number] = (hits, _snippet(shown, lead, tail, mark_open, mark_close))
    return {conversation_id: _best(texts, (1, 2)) for conversation_id, texts in fields.items()}


# Rebuilding ------------------------------------------------------------------------------------------

#: Every search document written anew from its row, as the triggers write them (revisions 0003).
#: The source of these statements from now on: revision 0003 keeps its own frozen copy (`FILL`), which a
#: revision must not import, and a later revision that changes how documents are made changes these too.
REBUILD = (
    "DELETE FROM message_documents",
    "DELETE FROM conversation_documents",
    "DELETE FROM help_documents",
    "INSERT INTO message_documents (message_id, document) "
    "SELECT id, search_document(ARRAY[author_handle, author_name, subject, text]) FROM messages",
    "INSERT INTO conversation_documents (conversation_id, document) "
    "SELECT c.id, search_document(ARRAY[c.subject, search_customer_text(c.customer_id)]) FROM conversations c",
    "INSERT INTO help_documents (answer_id, document) "
    "SELECT a.id, search_document(ARRAY[a.title, h.summary, a.body], '{A,B,C}') "
    "FROM help_articles h JOIN answers a ON a.id = h.answer_id",
)


def rebuild_documents(conn: Any) -> None:
    """Write every search document anew from the rows (after rows were written with the triggers
    off: `mainland migrate-to-postgresql`). Run it inside a write transaction: searches meanwhile see
    the old documents, then all the new ones."""
    for statement in REBUILD:
        conn.execute(statement)
