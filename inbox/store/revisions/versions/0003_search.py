"""search: documents for full-text search, kept by triggers, where SQLite has its FTS5 indexes

Revision ID: 0003
Revises: 0002
Created: 2026-12-07 11:40:00.000000

SQLite searches three FTS5 tables (`messages_fts`, `conversation_search`, `help_search`, all with
`tokenize = 'unicode61 remove_diacritics 2'`). Here each is a table of `tsvector` documents with a
GIN index, one row per indexed row, written by triggers as SQLite's are:

    message_documents (message_id)        author_handle, author_name, subject, text of a message
    conversation_documents (conversation_id)   subject; the customer's name and identities
    help_documents (answer_id)             title (weight A), summary (B), body (C) of a help article

inbox/store/pg_search.py turns `fts_query`'s FTS5 text into a `tsquery` over the same words; the
store's search verbs read these tables on PostgreSQL.

Words, as FTS5's unicode61 makes them, as far as PostgreSQL allows (`search_text`): the text in
lower case, without diacritics (`unaccent`, whose function is STABLE and so wrapped in an IMMUTABLE
one), every run of what is not a letter or a digit a space. The `simple` configuration then makes
each remaining run one lexeme, unstemmed: "jan@example.com" is jan, example, com and "e-mail" is e,
mail, as in FTS5 (PostgreSQL's own parser would keep an address, a host or a hyphenated word whole,
and "example" would not find it). Letters and digits are ICU's (the `search_words` collation, ICU's
root locale), whatever the database's own LC_CTYPE; a server built without ICU uses the database's
LC_CTYPE instead, and a database whose LC_CTYPE is C then reads only ASCII letters as letters.

English and Dutch stems are left out: a stem makes "shipping" find "shipped", which SQLite does
not find, and search is to find the same on both engines.

What still differs from FTS5, each rare in what people type:

* unaccent spells out some characters that FTS5 keeps as they are (ß is ss, æ ae, ø o, þ th, ĳ ij,
  ﬁ fi, Ⅻ xii, ½ the words 1 and 2), and other numbers that are not digits (², ①) and private-use
  characters are not letters or digits here (a term of nothing else finds nothing);
* a field is one run of positions: PostgreSQL keeps positions up to 16,383 (later words all stand
  at 16,383) and at most 256 of one word, so a phrase far into a long text may be missed. The short
  fields come first and the text last, so this only ever concerns the text itself;
* a document holds at most 1 MB; a longer one (only a text of some 100,000 characters or more can
  come near) is built from the first part of each field that fits (`search_document`).

Fields do not run into each other: a phrase is found within one field only, as in FTS5, because
the fields are joined with a lexeme no query can name (`|`) between them.

Each trigger has the name of the SQLite trigger it stands for and fires on the same table and
event. SQLite's WHEN conditions about `search_index_deferred` have no twin: PostgreSQL indexes a
row as it is written, batch or not. The `*_ad` triggers have none either: a document's foreign key
deletes it with its row (ON DELETE CASCADE) and follows a changed id (ON UPDATE CASCADE). An UPDATE
trigger writes only when a searched value changed (SQLite's fires when the column is in the SET list):

    messages_ai, messages_au                                   (message_documents)
    conversation_search_ai, conversation_search_au, conversation_search_customer,
    conversation_search_identity_ai, conversation_search_identity_au,
    conversation_search_identity_ad                            (conversation_documents)
    help_articles_ai, help_articles_au, help_answers_au        (help_documents)

`search_headline`, a text search configuration (the `simple` one after `unaccent`), lets
`ts_headline` find the words of a query in the text it shows: "café" for "cafe".

Translated from SQLite's dialect: `group_concat` is `string_agg`, in SQLite's order (by identity id,
as its index on identities(customer_id) reads them); `ifnull` is `coalesce`.

The `unaccent` extension is created when the database has none (it is a trusted extension: the
database's owner may create it); going back drops it only if this revision created it.

Upgrading a database that already has messages writes every document once, in the migration's
transaction: some 0.2 ms of one core for a message of a kilobyte, minutes for a million.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

#: The document tables, each with its key and the table and column that key refers to.
DOCUMENTS = (
    ("message_documents", "message_id", "messages", "id"),
    ("conversation_documents", "conversation_id", "conversations", "id"),
    ("help_documents", "answer_id", "help_articles", "answer_id"),
)

#: Total characters of a document's fields below which it cannot pass PostgreSQL's 1 MB for a tsvector
#: (at worst some 6 bytes a character: one-character words of three UTF-8 bytes, each with its entry).
SAFE_CHARS = 100_000

#: The lexeme between two fields, so that no phrase runs from one into the next: a `|` is never part
#: of a word, so no query names it. (`\:` keeps SQLAlchemy from reading `:1` as a parameter.)
FIELD_GAP = r"'|\:1'::tsvector"

#: The words of a message, a conversation and a help article (fields with short ones first).
MESSAGE = "search_document(ARRAY[NEW.author_handle, NEW.author_name, NEW.subject, NEW.text])"
CONVERSATION = "search_document(ARRAY[{row}.subject, search_customer_text({row}.customer_id)])"
HELP = "search_document(ARRAY[{answer}.title, {article}.summary, {answer}.body], '{{A,B,C}}')"


def functions(unaccent_schema: str) -> tuple[str, ...]:
    """The search functions, with `unaccent` from the schema the extension is in."""
    return (
        # `(\W|_)+`: a run of what is not a letter or a digit (`\w` is those and `_`).
        rf"""
CREATE FUNCTION search_text(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT btrim(regexp_replace(
        {unaccent_schema}.unaccent('{unaccent_schema}.unaccent'::regdictionary, lower($1 COLLATE search_words))
            COLLATE search_words,
        '(\W|_)+', ' ', 'g'))
$fn$
""",
        f"""
CREATE FUNCTION search_fields(fields text[], weights "char"[], cap integer) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    document tsvector := '';
    part tsvector;
BEGIN
    FOR i IN 1 .. coalesce(array_length(fields, 1), 0) LOOP
        part := to_tsvector('simple', coalesce(search_text(left(fields[i], cap)), ''));
        IF weights[i] IS NOT NULL THEN
            part := setweight(part, weights[i]);
        END IF;
        IF i > 1 THEN
            document := document || {FIELD_GAP};
        END IF;
        document := document || part;
    END LOOP;
    RETURN document;
END
$fn$
""",
        f"""
CREATE FUNCTION search_document(fields text[], weights "char"[] DEFAULT '{{}}') RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    cap integer := coalesce((SELECT max(length(field)) FROM unnest(fields) AS field), 0);
BEGIN
    IF cap * coalesce(array_length(fields, 1), 0) <= {SAFE_CHARS} THEN
        RETURN search_fields(fields, weights, cap);
    END IF;
    -- A long document may pass the 1 MB a tsvector holds: then each field is cut, by half at a time,
    -- until it fits.
    LOOP
        BEGIN
            RETURN search_fields(fields, weights, cap);
        EXCEPTION WHEN program_limit_exceeded THEN
            cap := cap / 2;
        END;
    END LOOP;
END
$fn$
""",  # noqa: S608 - constants of this module
        # The customer's part of a conversation's document: m004's text (ingest.py _CUSTOMER_SEARCH_TEXT).
        """
CREATE FUNCTION search_customer_text(bigint) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT cu.display_name || ' ' || coalesce((SELECT string_agg(i.value || ' ' || i.display, ' ' ORDER BY i.id)
                                               FROM identities i WHERE i.customer_id = cu.id), '')
    FROM customers cu WHERE cu.id = $1
$fn$
""",
        # A customer's name or identities changed: the documents of their conversations.
        """
CREATE FUNCTION search_customer_changed(bigint) RETURNS void
LANGUAGE sql VOLATILE AS $fn$
    UPDATE conversation_documents d SET document = search_document(ARRAY[c.subject, t.customer])
    FROM conversations c, (SELECT search_customer_text($1) AS customer) AS t
    WHERE c.customer_id = $1 AND d.conversation_id = c.id
$fn$
""",
    )


class Trigger:
    """AFTER `event` ON `table` FOR EACH ROW, `when` it holds: `body`, in a function of the same name."""

    def __init__(self, name: str, event: str, table: str, when: str, body: str) -> None:
        self.name = name
        self.event = event
        self.table = table
        self.when = when
        self.body = body


TRIGGERS: tuple[Trigger, ...] = (
    Trigger("messages_ai", "INSERT", "messages", "", f"""
INSERT INTO message_documents (message_id, document) VALUES (NEW.id, {MESSAGE});
"""),  # noqa: S608 - constants of this module
    # A changed id alone is followed by the foreign key.
    Trigger("messages_au", "UPDATE OF id, subject, text, author_name, author_handle", "messages",
            "(OLD.subject, OLD.text, OLD.author_name, OLD.author_handle) "
            "IS DISTINCT FROM (NEW.subject, NEW.text, NEW.author_name, NEW.author_handle)", f"""
INSERT INTO message_documents (message_id, document) VALUES (NEW.id, {MESSAGE})
ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document;
"""),  # noqa: S608 - constants of this module
    Trigger("conversation_search_ai", "INSERT", "conversations", "", f"""
INSERT INTO conversation_documents (conversation_id, document) VALUES (NEW.id, {CONVERSATION.format(row="NEW")});
"""),  # noqa: S608 - constants of this module
    Trigger("conversation_search_au", "UPDATE OF subject, customer_id", "conversations",
            "(OLD.subject, OLD.customer_id) IS DISTINCT FROM (NEW.subject, NEW.customer_id)", f"""
INSERT INTO conversation_documents (conversation_id, document) VALUES (NEW.id, {CONVERSATION.format(row="NEW")})
ON CONFLICT (conversation_id) DO UPDATE SET document = EXCLUDED.document;
"""),  # noqa: S608 - constants of this module
    Trigger("conversation_search_customer", "UPDATE OF display_name", "customers",
            "OLD.display_name IS DISTINCT FROM NEW.display_name",
            "PERFORM search_customer_changed(NEW.id);"),
    Trigger("conversation_search_identity_ai", "INSERT", "identities", "",
            "PERFORM search_customer_changed(NEW.customer_id);"),
    Trigger("conversation_search_identity_au", "UPDATE", "identities",
            "(OLD.customer_id, OLD.value, OLD.display) IS DISTINCT FROM (NEW.customer_id, NEW.value, NEW.display)", """
PERFORM search_customer_changed(OLD.customer_id);
IF NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
    PERFORM search_customer_changed(NEW.customer_id);
END IF;
"""),
    Trigger("conversation_search_identity_ad", "DELETE", "identities", "",
            "PERFORM search_customer_changed(OLD.customer_id);"),
    Trigger("help_articles_ai", "INSERT", "help_articles", "", f"""
INSERT INTO help_documents (answer_id, document)
SELECT a.id, {HELP.format(answer="a", article="NEW")} FROM answers a WHERE a.id = NEW.answer_id;
"""),  # noqa: S608 - constants of this module
    Trigger("help_articles_au", "UPDATE OF answer_id, summary", "help_articles",
            "(OLD.answer_id, OLD.summary) IS DISTINCT FROM (NEW.answer_id, NEW.summary)", f"""
INSERT INTO help_documents (answer_id, document)
SELECT a.id, {HELP.format(answer="a", article="NEW")} FROM answers a WHERE a.id = NEW.answer_id
ON CONFLICT (answer_id) DO UPDATE SET document = EXCLUDED.document;
"""),  # noqa: S608 - constants of this module
    Trigger("help_answers_au", "UPDATE OF title, body", "answers",
            "(OLD.title, OLD.body) IS DISTINCT FROM (NEW.title, NEW.body)", f"""
UPDATE help_documents SET document = {HELP.format(answer="NEW", article="h")}
FROM help_articles h WHERE h.answer_id = NEW.id AND help_documents.answer_id = NEW.id;
"""),  # noqa: S608 - constants of this module
)

#: The documents of the rows a database already has.
FILL = (
    "INSERT INTO message_documents (message_id, document) SELECT id, "
    "search_document(ARRAY[author_handle, author_name, subject, text]) FROM messages",
    "INSERT INTO conversation_documents (conversation_id, document) "  # noqa: S608 - constants of this module
    f"SELECT c.id, {CONVERSATION.format(row='c')} FROM conversations c",
    "INSERT INTO help_documents (answer_id, document) "  # noqa: S608 - constants of this module
    f"SELECT a.id, {HELP.format(answer='a', article='h')} FROM help_articles h JOIN answers a ON a.id = h.answer_id",
)

#: The token types of the default parser that make words of letters and digits (ts_headline reads
#: the text with it: see inbox/store/pg_search.py).
WORD_TOKENS = "asciiword, word, numword, hword_asciipart, hword_part, hword_numpart, int, uint, float, sfloat"

#: Said on `search_text` when this revision created the unaccent extension (downgrade drops it then).
CREATED_UNACCENT = "Search words of Mainland; revision 0003 created the unaccent extension"


def upgrade() -> None:
    bind = op.get_bind()
    had_unaccent = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'unaccent'")).first()
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    schema = bind.execute(sa.text(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent'")).scalar_one()
    if bind.execute(sa.text("SELECT 1 FROM pg_collation WHERE collprovider = 'i' LIMIT 1")).first():
        op.execute("CREATE COLLATION search_words (provider = icu, locale = 'und')")
    else:
        ctype = bind.execute(sa.text(
            "SELECT datctype FROM pg_database WHERE datname = current_database()")).scalar_one()
        op.execute(f"CREATE COLLATION search_words (provider = libc, locale = '{ctype}')")
    for table, key, parent, parent_key in DOCUMENTS:
        op.execute(f"CREATE TABLE {table} ({key} bigint PRIMARY KEY REFERENCES {parent} ({parent_key}) "
                   "ON DELETE CASCADE ON UPDATE CASCADE, document tsvector NOT NULL)")
    for function in functions(schema):
        op.execute(function)
    comment = CREATED_UNACCENT if had_unaccent is None else "Search words of Mainland"
    op.execute(f"COMMENT ON FUNCTION search_text(text) IS '{comment}'")
    for fill in FILL:
        op.execute(fill)
    for table, _, _, _ in DOCUMENTS:
        op.execute(f"CREATE INDEX {table}_words ON {table} USING gin (document)")

    for trigger in TRIGGERS:
        op.execute(f"CREATE FUNCTION {trigger.name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
                   f"BEGIN\n{trigger.body.strip()}\nRETURN NULL;\nEND\n$fn$")
        when = f" WHEN ({trigger.when})" if trigger.when else ""
        op.execute(f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} ON {trigger.table} "
                   f"FOR EACH ROW{when} EXECUTE FUNCTION {trigger.name}()")

    op.execute("CREATE TEXT SEARCH CONFIGURATION search_headline (COPY = pg_catalog.simple)")
    op.execute(f"ALTER TEXT SEARCH CONFIGURATION search_headline ALTER MAPPING FOR {WORD_TOKENS} "
               f"WITH {schema}.unaccent, pg_catalog.simple")


def downgrade() -> None:
    bind = op.get_bind()
    created_unaccent = bind.execute(sa.text(
        "SELECT obj_description('search_text(text)'::regprocedure, 'pg_proc')")).scalar() == CREATED_UNACCENT
    op.execute("DROP TEXT SEARCH CONFIGURATION search_headline")
    for trigger in reversed(TRIGGERS):
        op.execute(f"DROP TRIGGER {trigger.name} ON {trigger.table}")
        op.execute(f"DROP FUNCTION {trigger.name}()")
    for function in ("search_customer_changed(bigint)", "search_customer_text(bigint)",
                     'search_document(text[], "char"[])', 'search_fields(text[], "char"[], integer)',
                     "search_text(text)"):
        op.execute(f"DROP FUNCTION {function}")
    for table, _, _, _ in reversed(DOCUMENTS):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP COLLATION search_words")
    if created_unaccent:
        op.execute("DROP EXTENSION unaccent")
