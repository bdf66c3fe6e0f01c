"""A populated installation moved to PostgreSQL shows the same thing (#17): the demo data plus the
whole SpamAssassin corpus (6,046 real messages), through `migrate_to_postgresql`.

tests/test_migrate_to_postgresql.py proves the copy on a small installation built to hold every kind of
row (merges, replays, erasures, surveys); this one proves it on mail the size and shape of real mail:
thousands of senders, mailing lists with long threads, HTML, attachments, eight-bit headers, spam held
in triage. After the copy an agent must see, on either engine:
- the same queue, page by page to its end, for every status and channel;
- the same search results (conversation and hits) for words common and rare, prefixes and phrases,
  including words taken from the corpus itself;
- the same history for every customer;
- the same weekly reports for every week the mail spans.

It compares both engines itself, so `scripts/test.sh --engine postgresql` (which changes only the `store`
fixture) skips it rather than running it twice.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inbox import clock, reports
from inbox.config import load
from inbox.importer import import_mailbox
from inbox.outbox import queue_reply
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso
from inbox.store.queue import SORTS, QueueQuery, fts_query
from tests.conftest import FROZEN_START
from tests.corpus import messages_folder
from tests.pg_cluster import create_database
from tests.test_migrate_to_postgresql import assert_same_rows, copied_once, each, populate

pytestmark = [pytest.mark.server, pytest.mark.slow]

#: What agents type: common words, rare ones, names, numbers, prefixes, two words, nothing found.
SEARCHES = ("money", "free", "linux", "razor", "mortgage", "python", "unsubscribe", "click here",
            "spamassassin", "exmh", "perl", "ireland", "guaranteed", "viagra", "sourceforge", "2002",
            "mon*", "spam*", "irish linux", "kettle", "bestelling", "zzzzqqq")
#: The corpus arrives in batches this size, the clock moving on between them: about three weeks in all.
BATCH = 100
BETWEEN_BATCHES = dt.timedelta(hours=8)
#: A queue page as short as an agent's screen shows, so that paging to the end is exercised often.
PAGE = 50


@pytest.fixture(scope="module")
def corpus_installation(spam_assassin_corpus, tmp_path_factory) -> Iterator[Path]:
    """The demo installation of tests/test_migrate_to_postgresql.py with the corpus arriving into it over
    three weeks, and the team's work on it: replies after minutes to days, assignments, resolutions."""
    if os.environ.get("MAINLAND_TEST_ENGINE", "sqlite") != "sqlite":
        pytest.skip("compares both engines itself; the SQLite run covers it")
    folder = tmp_path_factory.mktemp("corpus-installation")
    mail = messages_folder(spam_assassin_corpus, tmp_path_factory.mktemp("corpus-mail"))
    frozen = clock.FrozenClock(FROZEN_START)
    with clock.installed(frozen):
        populate(folder)
        mainland = Mainland(load(folder / "config.yaml"))
        store = mainland.open_store()
        try:
            before = store.execute("SELECT max(id) FROM conversations").fetchone()[0]
            # Into the demo's mail channel, so that replies have somewhere to go.
            report = import_mailbox(store, mainland.ingestor(store), mail, channel="demo-mail", batch_size=BATCH,
                                    max_bytes=mainland.config.max_message_bytes,
                                    max_attachment_bytes=mainland.config.max_attachment_bytes,
                                    progress=lambda n, batch: frozen.advance(BETWEEN_BATCHES))
            assert report.complete and report.messages == len(spam_assassin_corpus)
            work_on(mainland, store, after=before)
        finally:
            store.close()
        yield folder


def work_on(mainland: Mainland, store: Store, *, after: int) -> None:
    """The team's work, spread as a week's is: a reply to every third conversation (after 5 minutes to two
    days; then waiting on the customer), an assignment for every seventh, every fifth resolved a day after
    it arrived."""
    agents = [dict(agent) for agent in store.agents() if agent["role"] != "trainee"]
    conversations = store.execute("SELECT id, created_at FROM conversations WHERE id > ? AND status = 'new' "
                                  "ORDER BY id", (after,)).fetchall()
    for n, (conversation_id, created_at) in enumerate(conversations):
        arrived = dt.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        agent = agents[n % len(agents)]
        if n % 7 == 0:
            store.assign_conversation(conversation_id, assignee_id=agent["id"], team_id=None, now=iso(arrived))
        if n % 3 == 0:
            replied = arrived + dt.timedelta(minutes=5 + 37 * (n % 78))
            queue_reply(mainland, store, conversation_id, "Thank you, we are looking into it.", agent=agent,
                        now=replied)
            store.set_conversation_status(conversation_id, "pending", None, iso(replied))
        if n % 5 == 0:
            store.set_conversation_status(conversation_id, "resolved", None, iso(arrived + dt.timedelta(days=1)))


@pytest.fixture(scope="module")
def moved_corpus(cluster, corpus_installation) -> Iterator[dict[str, Store]]:
    """The installation copied into a freshly migrated database of the throwaway cluster; both stores."""
    url = create_database(cluster)
    target = Store(url)
    target.migrate()
    target.close()
    yield from copied_once(corpus_installation, url)


def whole_queue(store: Store, query: QueueQuery) -> list[dict[str, Any]]:
    """Every row of a queue view, page after page as the list loads them."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = store.queue_page(query, team_ids=None, agent_id=None, after=after, limit=PAGE)
        rows.extend(page)
        if len(page) < PAGE:
            return rows
        after = (page[-1]["sort_value"], page[-1]["id"])


def corpus_words(store: Store, every: int = 400) -> list[str]:
    """Words an agent might copy from the mail: the longest word of every `every`th subject."""
    subjects = [row[0] for row in store.execute("SELECT subject FROM messages WHERE subject IS NOT NULL "
                                                "ORDER BY id").fetchall()]
    words = []
    for subject in subjects[::every]:
        found = sorted(re.findall(r"[^\W_]{4,}", subject), key=lambda w: (-len(w), w))
        if found:
            words.append(found[0])
    return words


def test_the_installation_holds_the_corpus(moved_corpus, spam_assassin_corpus):
    lite = moved_corpus["sqlite"]
    stored = lite.execute("SELECT count(*) FROM messages").fetchone()[0]
    held = lite.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert stored + held > len(spam_assassin_corpus)  # the demo's mail besides
    assert lite.execute("SELECT count(*) FROM customers").fetchone()[0] > 1000
    assert lite.execute("SELECT count(*) FROM attachments WHERE stored = 1").fetchone()[0] > 100
    assert lite.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM messages GROUP BY conversation_id) "
                        "AS t").fetchone()[0] >= 5, "threads"


def test_every_table_holds_the_same_rows(moved_corpus):
    assert_same_rows(moved_corpus["sqlite"], moved_corpus["postgresql"])


@pytest.mark.parametrize("status", ["active", "pending", "resolved", "all"])
def test_the_queue_is_the_same_to_its_last_page(moved_corpus, status):
    for sort in SORTS:
        views = {name: whole_queue(store, QueueQuery(status=status, sort=sort)) for name, store in moved_corpus.items()}
        assert views["postgresql"] == views["sqlite"], (status, sort)
        assert len(views["sqlite"]) > PAGE, (status, sort)
    channels = [row[0] for row in moved_corpus["sqlite"].execute(
        "SELECT DISTINCT channel FROM conversations ORDER BY channel").fetchall()]
    for channel in channels:
        views = {name: whole_queue(store, QueueQuery(status=status, channel=channel))
                 for name, store in moved_corpus.items()}
        assert views["postgresql"] == views["sqlite"], (status, channel)


def test_search_finds_the_same_conversations_and_hits(moved_corpus):
    typed = [*SEARCHES, *corpus_words(moved_corpus["sqlite"])]
    assert len(typed) > len(SEARCHES) + 10
    found_any = 0
    for text in typed:
        match = fts_query(text)
        for status in (None, "resolved"):
            results = each(moved_corpus, "search", match, team_ids=None, agent_id=None, status=status)
            found = {name: ([(g.conversation["id"], g.hits) for g in result.groups], result.conversations, result.truncated)
                     for name, result in results.items()}
            assert found["postgresql"] == found["sqlite"], (text, status)
            found_any += bool(found["sqlite"][0])
    assert found_any > len(typed) // 2, "most searches find something"
    assert not each(moved_corpus, "search", fts_query("zzzzqqq"), team_ids=None, agent_id=None)["sqlite"].groups


def test_every_customer_has_the_same_history(moved_corpus):
    customers = [row[0] for row in moved_corpus["sqlite"].execute("SELECT id FROM customers ORDER BY id").fetchall()]
    longest = 0
    for customer_id in customers:
        history = each(moved_corpus, "customer_history", customer_id, None)
        assert history["postgresql"] == history["sqlite"], customer_id
        longest = max(longest, len(history["sqlite"]))
    assert longest >= 5, "a mailing list's sender has a long history"


def test_every_week_reports_the_same_figures(moved_corpus):
    lite = moved_corpus["sqlite"]
    first, last = lite.execute("SELECT min(received_at), max(received_at) FROM messages").fetchone()
    moment = dt.datetime.fromisoformat(first.replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(last.replace("Z", "+00:00"))
    now = end + dt.timedelta(days=3)  # the manager reads the digests after the last reply
    answered_weeks = 0
    while moment <= end:
        period = reports.Period.containing(moment)
        figures = {name: reports.build(store, period, now=now).figures() for name, store in moved_corpus.items()}
        assert figures["postgresql"] == figures["sqlite"], period
        answered_weeks += figures["sqlite"]["totals"]["first_response"]["decided"] > 0
        moment += dt.timedelta(days=7)
    assert answered_weeks >= 3
