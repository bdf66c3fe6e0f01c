"""Search: FTS5 over messages, conversation subjects and customers, with snippets, grouped per
conversation, limited to the agent's teams in SQL (IN-65), and safe against FTS syntax and SQL in
the search box (IN-63, SEC-12). Message text never becomes markup in a snippet (SEC-01).
"""

from __future__ import annotations

import re

import pytest

from inbox.store import queue as queue_store
from inbox.store.queue import PrefixTooShortError, SearchQueryError, fts_query
from inbox.web.queue import highlight
from tests.test_web_auth import login, make_agent, web_store  # noqa: F401
from tests.test_web_queue import Clock, Inbox


@pytest.fixture
def inbox(app, web_store):  # noqa: F811
    return Inbox(app, web_store, Clock())


@pytest.fixture
def ann(web_store):  # noqa: F811
    return make_agent(web_store)


@pytest.fixture
def agent_client(client, ann):
    assert login(client).status_code == 302
    return client


def search(client, q: str, **params):
    response = client.get("/search", query_string={"q": q, **params})
    return response.status_code, response.get_data(as_text=True)


def groups(html: str) -> list[int]:
    """Conversation ids of the result groups, in order."""
    return [int(i) for i in re.findall(r'<a class="title" href="/conversations/(\d+)"', html)]


def test_a_word_in_a_message_is_found_with_its_snippet(agent_client, inbox):
    found = inbox.mail("Delivery question", body="My parcel with the blue teapot never arrived.")
    inbox.mail("Other", sender="x@example.org", body="Nothing to see here.")
    status, page = search(agent_client, "teapot")
    assert status == 200
    assert groups(page) == [found]
    assert "with the blue <mark>teapot</mark> never arrived" in page
    assert "Matches in 1 conversation." in page


def test_matches_are_grouped_per_conversation_newest_first(agent_client, inbox):
    older = inbox.mail("Kettle", sender="k@example.org", body="The kettle leaks.", message_id="<k1@example.org>")
    inbox.mail("Re: Kettle", sender="k@example.org", body="Still, the kettle leaks more.",
               in_reply_to="<k1@example.org>")
    newer = inbox.chat("My kettle is broken too", handle="55")
    status, page = search(agent_client, "kettle")
    assert groups(page) == [newer, older]
    assert page.count("<mark>kettle</mark>") == 3  # from the texts, not the repeated subject
    assert re.search(r'title="Matching messages">2<', page)


def test_subjects_customer_names_and_addresses_are_searched(agent_client, inbox, web_store):  # noqa: F811
    by_subject = inbox.mail("Invoice 2026-0042 missing", sender="Kim <kim@example.org>", body="See subject.")
    by_name = inbox.chat("hello", handle="8811", name="Wilhelmina Vermeulen")
    assert groups(search(agent_client, "0042")[1]) == [by_subject]
    status, page = search(agent_client, "vermeulen")
    assert groups(page) == [by_name]
    assert "<mark>Vermeulen</mark>" in page
    assert groups(search(agent_client, "kim@example.org")[1]) == [by_subject]
    # The customer's name changes: the index follows (triggers, whoever writes).
    customer = web_store.conversation(by_name)["customer_id"]
    with web_store.write():
        web_store.execute("UPDATE customers SET display_name = 'Mina Jansen' WHERE id = ?", (customer,))
    assert groups(search(agent_client, "jansen")[1]) == [by_name]
    assert groups(search(agent_client, "vermeulen")[1]) == [by_name]  # still in her messages' author name
    assert groups(search(agent_client, "8811")[1]) == [by_name]


def test_prefix_search_and_several_words(agent_client, inbox):
    invoices = inbox.mail("Two invoices", body="Both invoices were charged twice.")
    inbox.mail("One invoice", sender="y@example.org", body="The invoice is fine.")
    assert len(groups(search(agent_client, "invoic*")[1])) == 2
    assert groups(search(agent_client, "invoices twice")[1]) == [invoices]
    assert groups(search(agent_client, "invoices nonexistentword")[1]) == []


def test_prefix_search_of_two_three_and_more_characters_finds_every_word_with_that_start(agent_client, inbox):
    # The prefix indexes of m033 hold 2 and 3 characters; longer prefixes expand over the terms: all the same.
    parcel = inbox.mail("Parcel", sender="a@example.org", body="Where is my parcel? Parcels get lost.")
    pardon = inbox.chat("Pardon the delay, I paid twice", handle="71")
    inbox.mail("Other", sender="b@example.org", body="Nothing about that here.")
    cases = {"pa*": {parcel, pardon}, "par*": {parcel, pardon}, "parc*": {parcel}, "pard*": {pardon},
             "parcels*": {parcel}, "PAR*": {parcel, pardon}, "pai*": {pardon}}
    for query, expected in cases.items():
        status, page = search(agent_client, query)
        assert status == 200 and set(groups(page)) == expected, query
    page = search(agent_client, "parc*")[1]
    assert "my <mark>parcel</mark>? <mark>Parcels</mark> get lost" in page


def test_prefix_search_snippets_belong_to_the_shown_messages_only(agent_client, inbox):
    # Snippets are read in one pass over a rowid range: matches inside that range that are not
    # shown (beyond the snippets per conversation) must not leak into the page.
    first = inbox.mail("Kettle", sender="k@example.org", body="kettle one", message_id="<k1@example.org>")
    for n in range(2, 6):
        inbox.mail("Re: Kettle", sender="k@example.org", body=f"kettle number{n}", in_reply_to="<k1@example.org>")
    other = inbox.chat("kettlebell question", handle="72")
    status, page = search(agent_client, "ke*")
    assert status == 200 and set(groups(page)) == {first, other}
    shown = re.findall(r"<mark>kettle</mark> number(\d)", page)
    assert sorted(shown) == ["3", "4", "5"]  # the newest three of five; "one" and "number2" are not shown
    assert "<mark>kettlebell</mark> question" in page


@pytest.mark.parametrize("q", ["a*", "é*", "'a*", "needle b*"])
def test_a_one_letter_prefix_is_refused_with_a_message_to_type_more(agent_client, inbox, q):
    inbox.mail("Apples", body="apples and bananas needle")
    status, page = search(agent_client, q)
    assert status == 400
    assert "needs at least 2 letters before the *. Type more." in page
    assert groups(page) == []


def test_a_prefix_in_the_customer_name_shows_the_conversation_snippet(agent_client, inbox):
    by_name = inbox.chat("hello", handle="8812", name="Wilhelmina Vermeulen")
    status, page = search(agent_client, "verm*")
    assert status == 200 and groups(page) == [by_name]
    assert "<mark>Vermeulen</mark>" in page


def test_snippets_never_carry_markup_from_the_message(agent_client, inbox):
    inbox.mail("x", body='<script>alert(1)</script> needle <img src=x onerror=alert(2)> </mark><mark>'
                         "\x02fake\x03 marker")
    status, page = search(agent_client, "needle")
    assert status == 200
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>needle</mark> &lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;/mark&gt;&lt;mark&gt;" in page
    assert page.count("<mark>") == 1


def test_highlight_escapes_everything_but_its_own_markers():
    assert str(highlight("<b>x</b> [a]word[z] & more", "[a]", "[z]")) == \
        "&lt;b&gt;x&lt;/b&gt; <mark>word</mark> &amp; more"
    assert str(highlight("[a]unclosed", "[a]", "[z]")) == "<mark>unclosed</mark>"
    assert str(highlight("stray [z] close", "[a]", "[z]")) == "stray  close"


IN_63 = ['"', '""', "NEAR(", "NEAR(a b", "*", "col:", "subject:x", "text:needle", "' OR 1=1--", "a OR b", "NOT a",
         "a AND", "^a", "(", ")", "-", "+", "{a b}:c", "x" * 300, "\x00", "'; DROP TABLE messages; --", "a\"b",
         "*needle", "needle**", "ünïcödé", "🙂", "   ", "%", "\\"]


@pytest.mark.parametrize("q", IN_63)
def test_hostile_search_text_is_a_page_never_an_error(agent_client, inbox, web_store, q):  # noqa: F811
    inbox.mail("x", body="needle in subject:x and OR NOT a\"b text")
    status, page = search(agent_client, q)
    assert status in (200, 400), (q, status)
    assert "Something went wrong" not in page
    assert web_store.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_a_10_kb_query_is_refused_with_a_message(agent_client, inbox):
    status, page = search(agent_client, "needle " * 1500)
    assert status == 400
    assert "The search text is too long" in page


def test_search_order_and_sort_values(agent_client, inbox):
    inbox.mail("Teapot", body="teapot")
    assert search(agent_client, "teapot", sort="relevance")[0] == 200
    assert search(agent_client, "teapot", sort="rank; --")[0] == 400


def test_fts_query_quotes_every_term():
    # Quotes are text like any other (doubled inside the FTS string); the tokenizer drops them.
    assert fts_query('needle NEAR( col:x "a b" pre* OR') == '"needle" "NEAR(" "col:x" """a" "b""" "pre"* "OR"'
    assert fts_query('say "hi"') == '"say" """hi"""'
    assert fts_query("' -- ; * ^") is None
    assert fts_query('a"b') == '"a""b"'
    with pytest.raises(SearchQueryError):
        fts_query("x" * 501)
    assert fts_query("ab*") == '"ab"*'
    with pytest.raises(PrefixTooShortError):
        fts_query("needle x*")


# Access (IN-65) ------------------------------------------------------------------------------

@pytest.fixture
def two_teams(inbox, ann, web_store):  # noqa: F811
    team_a, team_b = web_store.create_team("Team A"), web_store.create_team("Team B")
    web_store.set_agent_teams(ann["id"], [team_a])
    a = inbox.mail("Alpha plans", sender="Alice <alice@example.org>", body="shared word zebra, for team A")
    b = inbox.mail("Bravo secret merger", sender="Boris Bravo <boris@example.org>",
                   body="shared word zebra, and the secret codeword okapi")
    inbox.set(a, team=team_a)
    inbox.set(b, team=team_b)
    return {"a": a, "b": b}


def test_search_never_shows_another_teams_titles_snippets_or_counts(agent_client, two_teams):
    status, page = search(agent_client, "okapi")
    assert status == 200 and groups(page) == []
    assert "Bravo" not in page and "okapi</mark>" not in page and "Matches in" not in page
    assert "Nothing found." in page
    for q in ("merger", "boris", "boris@example.org", "bravo"):
        assert groups(search(agent_client, q)[1]) == [], q
    status, page = search(agent_client, "zebra")
    assert groups(page) == [two_teams["a"]]
    assert "Matches in 1 conversation." in page and "Bravo" not in page


def test_an_admin_finds_every_team(client, two_teams, web_store):  # noqa: F811
    make_agent(web_store, "root@example.org", name="Root", role="admin")
    login(client, "root@example.org")
    assert set(groups(search(client, "zebra")[1])) == {two_teams["a"], two_teams["b"]}


# The bounded candidate set --------------------------------------------------------------------

def test_only_the_newest_matches_are_candidates(agent_client, inbox, web_store, ann, monkeypatch):  # noqa: F811
    made = [inbox.chat(f"walrus number {n}", handle=f"w{n}") for n in range(8)]
    result = web_store.search(fts_query("walrus"), team_ids=None, agent_id=ann["id"], candidates=5)
    assert [g.conversation["id"] for g in result.groups] == made[::-1][:5]
    assert result.truncated and result.conversations == 5

    monkeypatch.setattr(queue_store, "SEARCH_CANDIDATES", 5)
    status, page = search(agent_client, "walrus")
    assert groups(page) == made[::-1][:5]
    assert "older ones were not searched" in page


def test_relevance_orders_within_the_candidates(inbox, web_store, ann):  # noqa: F811
    weak = inbox.chat("otter " + "filler " * 40, handle="o1")
    strong = inbox.chat("otter otter otter", handle="o2")
    inbox.chat("otter and " + "filler " * 30, handle="o3")
    recent = web_store.search(fts_query("otter"), team_ids=None, agent_id=ann["id"])
    ranked = web_store.search(fts_query("otter"), team_ids=None, agent_id=ann["id"], order="relevance")
    assert [g.conversation["id"] for g in recent.groups][-1] == weak
    assert [g.conversation["id"] for g in ranked.groups][0] == strong
