"""Search finds the same on PostgreSQL as on SQLite (#17): revisions 0003 and inbox/store/pg_search.py.

The same messages are ingested into a SQLite store and a PostgreSQL store (a throwaway cluster,
tests/pg_cluster.py), with the same clock, so that their ids agree; then what a person types is
searched on both and the results compared: the conversations, their order, how many of their
messages matched, whether the conversation matched itself, which messages have snippets and what
the snippets show.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from inbox import clock, helpcenter
from inbox.attachments import AttachmentStore
from inbox.ingest import Ingestor
from inbox.mail import parse_email
from inbox.models import CHANGE_EDITED, Author, FetchResult, InboundItem, MessageChange
from inbox.store import Store
from inbox.store.queue import SearchQueryError, fts_query
from tests.conftest import FROZEN_START, fresh_database
from tests.mailfactory import raw_mail
from tests.pg_cluster import ThrowawayCluster, create_database, drop_database, server_bin_dir
from tests.servers import unavailable

pytestmark = pytest.mark.server

T = "2026-11-23T09:00:00.000000Z"
SENT = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def template():
    """A throwaway cluster with a database upgraded to the newest revision; (cluster URL, its name)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (scripts/setup.sh --test installs it)")
    if server_bin_dir() is None:
        unavailable("no PostgreSQL 15+ server in /usr/lib/postgresql (scripts/setup.sh --test installs it)")
    with ThrowawayCluster() as cluster:
        upgraded = Store(create_database(cluster))
        upgraded.migrate()
        upgraded.close()
        yield cluster, upgraded.url.rsplit("/", 1)[1]


class Both:
    """A SQLite store and a PostgreSQL store, given the same writes."""

    def __init__(self, lite: Store, pg: Store, attachments) -> None:
        self.stores = {"sqlite": lite, "postgresql": pg}
        self.ingestors = {name: Ingestor(store, AttachmentStore(attachments / name), instance_id="test-instance",
                                         own_addresses={"support@mainland.test"})
                          for name, store in self.stores.items()}

    def ingest(self, channel: str, items: list[Any], cursor: str) -> None:
        for ingestor in self.ingestors.values():
            ingestor.ingest(channel, FetchResult(items=items, cursor=cursor))

    def mails(self, *raws: bytes, cursor: str = "c1") -> None:
        self.ingest("mail", [parse_email(raw, channel="mail") for raw in raws], cursor)

    def execute(self, sql: str, params: tuple = ()) -> None:
        for store in self.stores.values():
            with store.write():
                store.execute(sql, params)

    def each(self, verb: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {name: getattr(store, verb)(*args, **kwargs) for name, store in self.stores.items()}

    def search(self, typed: str, order: str = "recent", shape: bool = False) -> dict[str, Any]:
        """What each engine finds for `typed`: the groups, with their snippets' text (markers as [ ]),
        or with `shape`, the words the snippets highlight and whether they begin or end with "…".
        Text that fts_query refuses (a one-letter prefix) is the error's name on both."""
        try:
            match = fts_query(typed)
        except SearchQueryError as error:
            return {name: type(error).__name__ for name in self.stores}
        if match is None:
            return {name: None for name in self.stores}
        found = {}
        for name, result in self.each("search", match, team_ids=None, agent_id=None, order=order).items():
            def shown(text: str | None, result=result) -> Any:
                text = text and text.replace(result.mark_open, "[").replace(result.mark_close, "]")
                if not shape or text is None:
                    return text
                # FTS5 highlights a phrase as one span, ts_headline its words (but "a@b.c" as one here).
                highlighted = re.findall(r"\w+", " ".join(re.findall(r"\[([^]]*)\]", text)))
                return highlighted, text.startswith("…"), text.rstrip().endswith("…")

            found[name] = {
                "conversations": result.conversations,
                "truncated": result.truncated,
                "groups": [(g.conversation["id"], g.hits, g.matched_conversation,
                            [(s["message_id"], shown(s["text"])) for s in g.snippets], shown(g.conversation_snippet))
                           for g in result.groups],
            }
        return found

    def found(self, typed: str) -> dict[str, list[int] | None]:
        return {name: [group[0] for group in result["groups"]] for name, result in self.search(typed).items()}

    def help(self, typed: str) -> dict[str, list[str]]:
        match = helpcenter.match_expression(typed)
        return {name: [a["slug"] for a in articles]
                for name, articles in self.each("search_public_articles", "en", match).items()} if match else {}


#: Rows whose document is missing, left over or not what their words make now (none when whole).
STALE_DOCUMENTS = (
    "SELECT count(*) FROM messages m FULL JOIN message_documents d ON d.message_id = m.id "
    "WHERE d.document IS DISTINCT FROM search_document(ARRAY[m.author_handle, m.author_name, m.subject, m.text])",
    "SELECT count(*) FROM conversations c FULL JOIN conversation_documents d ON d.conversation_id = c.id "
    "WHERE d.document IS DISTINCT FROM search_document(ARRAY[c.subject, search_customer_text(c.customer_id)])",
    "SELECT count(*) FROM (SELECT h.answer_id, a.title, h.summary, a.body FROM help_articles h "
    "JOIN answers a ON a.id = h.answer_id) AS h FULL JOIN help_documents d ON d.answer_id = h.answer_id "
    "WHERE d.document IS DISTINCT FROM search_document(ARRAY[h.title, h.summary, h.body], '{A,B,C}')",
)


def assert_documents_whole(both: Both) -> None:
    """PostgreSQL's FTS5 'integrity-check': every document is exactly its row's words."""
    for sql in STALE_DOCUMENTS:
        assert both.stores["postgresql"].execute(sql).fetchone()[0] == 0, sql


@contextlib.contextmanager
def two_stores(template, migrated_database, folder) -> Iterator[Both]:
    """A SQLite store and a PostgreSQL store, fresh, on the frozen clock."""
    cluster, name = template
    lite = Store(fresh_database(migrated_database, folder / "search.db"))
    lite.migrate()
    url = create_database(cluster, template=name)
    pg = Store(url)
    try:
        with clock.installed(clock.FrozenClock(FROZEN_START)):
            yield Both(lite, pg, folder / "attachments")
    finally:
        lite.close()
        pg.close()
        drop_database(url)


@pytest.fixture
def both(template, migrated_database, tmp_path) -> Iterator[Both]:
    with two_stores(template, migrated_database, tmp_path) as stores:
        yield stores


def chat(external_id: str, text: str, *, handle: str, name: str = "") -> InboundItem:
    return InboundItem(channel="fb", external_id=external_id, text=text, thread_key=f"chat:{handle}",
                       author=Author(handle=handle, name=name, identity_kind="facebook"), sent_at=SENT)


def fill(both: Both) -> Both:
    """Seven conversations: 1 teapot (two messages), 2 invoice, 3 kettles (a long text), 4 odd
    characters, 5 coat and 6 reservation (chats), in that order."""
    both.mails(
        raw_mail(sender="Zebedee Quist <zq@example.net>", subject="Broken teapot", message_id="<t1@example.net>",
                 body="The blue teapot snapped. Please send an e-mail to jan@example.com about the café."),
        raw_mail(sender="amara@example.org", subject="Invoice",
                 body="Please resend the invoice: a naïve question, sorry. Naïveté is mine."),
        raw_mail(sender="Kim <kim@example.org>", subject="Teapots and kettles",
                 body=" ".join(f"before{i}" for i in range(30)) + " the teapot lid " + " ".join(f"after{i}" for i in range(30))),
        raw_mail(sender="Zebedee Quist <zq@example.net>", subject="Re: Broken teapot", in_reply_to="<t1@example.net>",
                 body="Still waiting for the new teapot. CAFÉ owner, Rotterdam."),
        raw_mail(sender="pat@example.com", subject="Odd characters",
                 body='Use "quotes" & ampersands | pipes ! bangs :* stars (parens) <-> arrows \\ back\\slash'),
    )
    both.ingest("fb", [chat("m1", "Is the coat in medium?", handle="wil_88", name="Wilhelmina Vermeulen"),
                       chat("m2", "Réservation pour deux, s'il vous plaît", handle="4471", name="Élodie Dubois")],
                cursor="1")
    return both


@pytest.fixture
def inbox(both) -> Both:
    """The conversations of `fill`, for a test that changes them."""
    return fill(both)


@pytest.fixture(scope="module")
def searched(template, migrated_database, tmp_path_factory) -> Iterator[Both]:
    """The conversations of `fill`, shared by the tests that only search."""
    with two_stores(template, migrated_database, tmp_path_factory.mktemp("searched")) as stores:
        yield fill(stores)


#: What a person might type, with what each is.
QUERIES = {
    "a word": "teapot",
    "a word in capitals": "TEAPOT",
    "two words": "blue teapot",
    "two words in two messages of a conversation": "snapped waiting",
    "two words in two fields": "invoice amara",
    "a prefix": "tea*",
    "a longer prefix": "teapo*",
    "a prefix of the last word of a phrase": "jan@exa*",
    "a diacritic folded": "cafe",
    "a diacritic typed": "café",
    "a diacritic typed where the text has none": "réservation",
    "a diacritic in capitals": "CAFÉ",
    "a diaeresis folded": "naive",
    "a folded prefix": "naiv*",
    "a hyphenated word": "e-mail",
    "an address": "jan@example.com",
    "a domain": "example.org",
    "an author's address": "kim@example.org",
    "a word only in an author name": "quist",
    "a word only in an author handle": "wil_88",
    "a name with a diacritic": "elodie",
    "a prefix of a name": "vermeul*",
    "a word at the end of a long text": "after29",
    "a word at the start of a long text": "before0",
    "a word in no message": "walrus",
    "a phrase in the wrong order": "example@jan.com",
    "a word and a word in no message": "teapot walrus",
    "an apostrophe": "s'il",
}

#: Text that is tsquery or FTS5 syntax elsewhere: searched for as words, never an error.
HOSTILE = (
    '"quotes"', "quotes&", "& ampersands", "&", "|", "pipes|bangs", "!bangs", "!", "stars:*", ":*", "a:*",
    "(parens)", "(", ")", "<->", "arrows<->", "'", "''", "\\", "back\\slash", "teapot & blue", "teapot | coat",
    "!teapot", "teapot:*", "teapot:A", "teapot:B*", '"blue teapot"', 'tea"pot', "tea'pot", "teapot)(", "(teapot",
    "teapot<2>blue", "NEAR(teapot", "subject:teapot", "^teapot", "teapot AND coat", "teapot OR coat",
    "teapot NOT coat", "$1", "%s", "?", "'; DROP TABLE messages; --",
)


@pytest.mark.parametrize("typed", [*QUERIES.values(), *HOSTILE], ids=[*QUERIES, *HOSTILE])
def test_what_a_person_types_finds_the_same_on_both_engines(searched, typed):
    # Snippets by what they highlight: a fragment near the end of a long text has fewer words on
    # PostgreSQL (test_snippets_show_the_words_found_in_their_own_spelling shows the rest exactly).
    recent = searched.search(typed, shape=True)
    assert recent["postgresql"] == recent["sqlite"]
    relevance = searched.search(typed, order="relevance", shape=True)
    # bm25 and ts_rank weigh differently: the same groups, each with the same snippets.
    def groups(found: dict[str, Any]) -> dict[str, Any]:
        return {name: sorted(result["groups"]) if isinstance(result, dict) else result
                for name, result in found.items()}

    assert groups(relevance) == groups(recent)


def test_the_queries_find_what_they_are_about(searched):
    # The comparison above means little if nothing is found: the main cases, by hand.
    teapot, invoice, kettles, odd, coat, reservation = 1, 2, 3, 4, 5, 6
    expected = {
        "teapot": [kettles, teapot], "cafe": [teapot], "naive": [invoice], "e-mail": [teapot],
        "jan@example.com": [teapot], "quist": [teapot], "wil_88": [coat], "elodie": [reservation],
        "snapped waiting": [], "example@jan.com": [], "!bangs": [odd], "(parens)": [odd], "arrows<->": [odd],
        "back\\slash": [odd], "tea*": [kettles, teapot], "jan@exa*": [teapot],
    }
    for typed, ids in expected.items():
        assert searched.found(typed)["postgresql"] == ids, typed
    group = searched.search("teapot")["postgresql"]["groups"][1]  # equal times: the newer conversation first
    assert group[:3] == (teapot, 2, True), "both messages of the conversation, and its subject"


def test_snippets_show_the_words_found_in_their_own_spelling(searched):
    snippets = {typed: [text for group in searched.search(typed)["postgresql"]["groups"] for _, text in group[3]]
                for typed in ("cafe", "jan@example.com", "e-mail", "after29", "before0", "quist")}
    assert snippets["cafe"] == ["Still waiting for the new teapot. [CAFÉ] owner, Rotterdam.\n",
                                "The blue teapot snapped. Please send an e-mail to jan@example.com about the [café].\n"]
    assert snippets["jan@example.com"][0].count("[jan@example.com]") == 1
    assert "[e-mail]" in snippets["e-mail"][0]
    # A long text: a fragment of at most 16 words, "…" where the text goes on.
    assert re.fullmatch(r"…(after\d+ ){7}\[after29\]\n", snippets["after29"][0])
    assert re.fullmatch(r"\[before0\]( before\d+){15}…", snippets["before0"][0])
    assert snippets["quist"] == ["Zebedee [Quist]", "Zebedee [Quist]"], "the author's name: the text has no match"


def test_relevance_puts_the_closer_match_first_on_both_engines(both):
    # The short message that is all about it was written first: newest first puts it last.
    both.mails(raw_mail(sender="a@example.net", subject="Zeppelin", body="Zeppelin, zeppelin: the zeppelin tour."),
               raw_mail(sender="b@example.net", subject="Holiday",
                        body=" ".join(f"filler{i}" for i in range(60)) + " and a zeppelin " + " ".join(f"more{i}" for i in range(60))))
    found = {order: {name: [g.conversation["id"] for g in result.groups] for name, result in
                     both.each("search", fts_query("zeppelin"), team_ids=None, agent_id=None, order=order).items()}
             for order in ("recent", "relevance")}
    assert found == {"recent": {"sqlite": [2, 1], "postgresql": [2, 1]},
                     "relevance": {"sqlite": [1, 2], "postgresql": [1, 2]}}


def test_a_customers_identities_and_name_are_searched_and_followed(inbox):
    both = inbox
    customer = both.stores["sqlite"].conversation(5)["customer_id"]
    assert both.stores["postgresql"].conversation(5)["customer_id"] == customer
    for store in both.stores.values():
        with store.write():
            store.add_identity(customer, "phone", "+31612345678", "Wil (mobile)", True, T)
    found = both.search("+31612345678")
    assert found["postgresql"] == found["sqlite"]
    assert found["postgresql"]["groups"] == [
        (5, 0, True, [], "Wilhelmina Vermeulen wil_88 Wilhelmina Vermeulen +[31612345678] Wil (mobile)")]
    assert both.search("mobile")["postgresql"] == both.search("mobile")["sqlite"]

    both.execute("UPDATE customers SET display_name = 'Mina Jansen' WHERE id = ?", (customer,))
    for typed in ("jansen", "mina", "wilhelmina"):
        assert both.found(typed)["postgresql"] == both.found(typed)["sqlite"], typed
    assert both.found("jansen")["postgresql"] == [5]

    both.execute("UPDATE identities SET display = 'Wil at work' WHERE value = '+31612345678'")
    assert both.found("work") == {"sqlite": [5], "postgresql": [5]}
    assert both.found("mobile") == {"sqlite": [], "postgresql": []}

    other = both.stores["sqlite"].conversation(6)["customer_id"]
    both.execute("UPDATE identities SET customer_id = ? WHERE value = '+31612345678'", (other,))
    assert both.found("+31612345678") == {"sqlite": [6], "postgresql": [6]}
    both.execute("DELETE FROM identities WHERE value = '+31612345678'")
    assert both.found("+31612345678") == {"sqlite": [], "postgresql": []}

    # A conversation moved to another customer (as a merge does) is found by that customer's name.
    both.execute("UPDATE conversations SET customer_id = ? WHERE id = 5", (other,))
    assert both.found("dubois") == {"sqlite": [6, 5], "postgresql": [6, 5]}
    assert both.found("jansen") == {"sqlite": [], "postgresql": []}
    both.execute("UPDATE conversations SET subject = 'Sizes of the winter coat' WHERE id = 5")
    assert both.found("winter") == {"sqlite": [5], "postgresql": [5]}
    assert_documents_whole(both)


def test_a_changed_or_removed_message_is_found_by_its_words_as_they_are(inbox):
    both = inbox
    both.execute("UPDATE messages SET text = 'The green kettle whistles' WHERE id = 1")
    assert both.found("green") == {"sqlite": [1], "postgresql": [1]}
    assert both.found("snapped") == {"sqlite": [], "postgresql": []}
    both.execute("UPDATE messages SET author_name = 'Zeb Q' WHERE id = 1")
    assert both.found("zeb") == {"sqlite": [1], "postgresql": [1]}
    both.execute("UPDATE messages SET delivery_status = 'sent' WHERE id = 1")  # not searched: nothing to do
    assert both.found("whistles") == {"sqlite": [1], "postgresql": [1]}
    both.execute("DELETE FROM messages WHERE id = 6")  # the chat message, which nothing else refers to
    found = both.search("coat")
    assert found["postgresql"] == found["sqlite"]
    assert found["postgresql"]["groups"][0][:3] == (5, 0, True), "the conversation's subject only"
    assert_documents_whole(both)


def test_messages_written_outside_an_ingest_batch_are_found_at_once(inbox):
    both = inbox
    for store in both.stores.values():
        with store.write():
            store.insert_message({"conversation_id": 3, "channel": "mail", "external_id": "note-1",
                                  "direction": "note", "text": "Descaled the kettle", "received_at": T})
    assert both.search("descaled")["postgresql"] == both.search("descaled")["sqlite"]
    assert both.found("descaled")["postgresql"] == [3]
    assert_documents_whole(both)


def test_an_edit_in_the_same_batch_is_found_by_its_new_words_only(both):
    item = InboundItem(channel="fb", external_id="m1", text="Is the coat in medium?", thread_key="chat:bob",
                       author=Author(handle="bob-1", name="Bob", identity_kind="facebook"), sent_at=SENT)
    for ingestor in both.ingestors.values():
        ingestor.ingest("fb", FetchResult(items=[item], cursor="1", changes=[
            MessageChange("m1", CHANGE_EDITED, text="Is the coat in large?", at=SENT + dt.timedelta(minutes=1))]))
    for typed in ("large", "medium", "coat"):
        found = both.search(typed)
        assert found["postgresql"] == found["sqlite"], typed
    # "medium" is still the conversation's subject (its first line), but no message's word.
    assert [group[:3] for group in both.search("medium")["postgresql"]["groups"]] == [(1, 0, True)]
    assert_documents_whole(both)


def test_a_batch_that_fails_leaves_nothing_found(both, monkeypatch):
    pg = both.stores["postgresql"]

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pg, "save_cursor", explode)
    with pytest.raises(RuntimeError):
        both.ingestors["postgresql"].ingest("mail", FetchResult(
            items=[parse_email(raw_mail(body="lost walrus"), channel="mail")], cursor="c1"))
    monkeypatch.undo()
    assert pg.search(fts_query("walrus"), team_ids=None, agent_id=None).groups == []
    assert pg.execute("SELECT count(*) FROM message_documents").fetchone()[0] == 0


def test_help_articles_are_found_by_title_summary_and_text_title_first(both):
    ids = {}
    for slug, title, body, summary in (
        ("refunds", "Refund for a returned item", "We refund returned items within five days.", "Money back"),
        ("gift-cards", "Gift cards", "Gift cards never expire. A refund of a gift card is not possible.", ""),
        ("delivery", "Delivery times", "Parcels arrive in two days; a café pickup point is possible.", "Refund?"),
    ):
        made = {name: store.answers.create(title=title, body=body, language="en", tags=[], owner_id=None, now=T)
                for name, store in both.stores.items()}
        assert made["sqlite"] == made["postgresql"]
        ids[slug] = made["sqlite"]
        both.each("save_help_article", made["sqlite"], slug=slug, category_id=None, summary=summary,
                  article_key=slug, published=True, actor="test", now=T)
    for typed in ("refund", "refu", "gift card", "cafe", '"never expire"', '"expire never"', "money", "arrive two",
                  "days", "possible", "a & b", "(refund", '"', "*", "gift:*", "!gift"):
        found = both.help(typed)
        assert found.get("postgresql") == found.get("sqlite"), typed
    assert both.help("refund")["postgresql"] == ["refunds", "delivery", "gift-cards"], "title, summary, then text"
    assert both.help("gift card")["postgresql"] == ["gift-cards"]
    assert both.help("cafe")["postgresql"] == ["delivery"]

    # Edits in the library and of the article's settings are followed; unpublished is not found.
    for store in both.stores.values():
        store.answers.update(ids["delivery"], title="Shipping times", body="Parcels arrive in two days.",
                             language="en", tags=[], editor_id=None, now=T)
    assert both.help("cafe") == {"sqlite": [], "postgresql": []}
    assert both.help("shipping") == {"sqlite": ["delivery"], "postgresql": ["delivery"]}
    both.each("save_help_article", ids["refunds"], slug="refunds", category_id=None, summary="Returns",
              article_key="refunds", published=True, actor="test", now=T)
    assert both.help("money") == {"sqlite": [], "postgresql": []}
    assert both.help("returns") == {"sqlite": ["refunds"], "postgresql": ["refunds"]}
    both.each("save_help_article", ids["gift-cards"], slug="gift-cards", category_id=None, summary="",
              article_key="gift-cards", published=False, actor="test", now=T)
    assert both.help("gift") == {"sqlite": [], "postgresql": []}
    both.execute("DELETE FROM help_articles WHERE answer_id = ?", (ids["refunds"],))
    assert both.help("refund") == {"sqlite": ["delivery"], "postgresql": ["delivery"]}
    assert both.stores["postgresql"].execute("SELECT count(*) FROM help_documents").fetchone()[0] == 2
    assert_documents_whole(both)


def test_a_text_too_long_for_one_tsvector_is_stored_and_found_by_its_start(both):
    # PostgreSQL holds at most 1 MB in a tsvector; a text of a million characters of different words
    # needs more. The message is stored all the same, found by the words that fit.
    pg = both.stores["postgresql"]
    words = " ".join(f"w{n:x}q{n * 7919 % 100003:05d}" for n in range(100_000))
    assert len(words) > 1_000_000
    item = parse_email(raw_mail(subject="Log dump", body="zyzzyva " + words), channel="mail")
    both.ingestors["postgresql"].ingest("mail", FetchResult(items=[item], cursor="c1"))
    assert [g.conversation["id"] for g in pg.search(fts_query("zyzzyva"), team_ids=None, agent_id=None).groups] == [1]
    assert [g.conversation["id"] for g in pg.search(fts_query("log dump"), team_ids=None, agent_id=None).groups] == [1]


def test_search_text_is_made_of_words_as_fts5_makes_them(both):
    pg = both.stores["postgresql"]

    def words(text: str) -> str:
        return pg.execute("SELECT search_text(?)", (text,)).fetchone()[0]

    assert words("Café ÉCOLE naïve") == "cafe ecole naive"
    assert words("jan@example.com e-mail don't wil_88") == "jan example com e mail don t wil 88"
    assert words("Москва ΑΘΗΝΑ 東京タワー") == "москва αθηνα 東京タワー"
    assert words("  ¡¿…!  ") == ""


def test_fts5_syntax_that_fts_query_does_not_make_is_refused(both):
    from inbox.store import pg_search

    for match in ('teapot', '"tea" OR "pot"', 'NEAR("a" "b")', '"unclosed'):
        with pytest.raises(ValueError, match="quoted terms"):
            pg_search.terms(match)
    assert pg_search.terms('"a""b"* "c d"') == [('a"b', True), ("c d", False)]
    pg = both.stores["postgresql"]
    assert pg_search.tsquery(pg.conn, '"jan@exa"* "Café" "x-x"') == "('jan' <-> 'exa':*) & 'cafe' & ('x' <-> 'x')"
    assert pg_search.tsquery(pg.conn, '"\ue000"') is None, "no word PostgreSQL reads as one: nothing is found"
