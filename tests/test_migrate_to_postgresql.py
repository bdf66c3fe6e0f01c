"""`mainland migrate-to-postgresql`: a SQLite installation copied into PostgreSQL (#17), inbox/migrate_to_postgresql.py.

One installation is made once for the module: the demo seed (team, answers, sample mail with attachments),
a webhook subscription with its deliveries and a replay, a few more mails, a merged conversation and a
merged customer (each merged into a newer one: references forward), a resolved conversation with an
answered survey, published help articles, a customer note and an erased customer. Each test copies it into
a database of its own on a throwaway cluster (tests/pg_cluster.py) and compares what both engines hold
and show.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from inbox import clock, privacy, reports, webhooks_out
from inbox import demo as demo_data
from inbox import migrate_to_postgresql as copying
from inbox.cli import main
from inbox.config import load
from inbox.mail import parse_email
from inbox.migrate_to_postgresql import CopyRefused, canonical, migrate_to_postgresql
from inbox.models import FetchResult
from inbox.runtime import Mainland
from inbox.store import Store, pg_copy
from inbox.store.base import iso
from inbox.store.queue import QueueQuery, fts_query
from inbox.store.schema import metadata
from tests.conftest import FROZEN_START
from tests.mailfactory import raw_mail
from tests.pg_cluster import create_database, drop_database
from tests.test_pg_search import STALE_DOCUMENTS

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
PLANS = pg_copy.plan_tables(metadata)
#: Words a person might search for in the installation's mail.
SEARCHES = ("kettle", "bestelling", "factuur", "invoice", "James", "teapot", "refund please", "zzzz")


# The installation ---------------------------------------------------------------------------------------

def write_config(folder: Path) -> Path:
    """A config with paths relative to `folder`, so that a copy of the folder is an installation of its own."""
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database": "mainland.db",
        "data_dir": "data",
        "secret_key": "test-secret-key",
        "instance_id": "test-instance",
        "mail_domain": "mainland.test",
        "demo": {"mail_dir": str(ROOT / "demo" / "mail"), "answers_file": str(ROOT / "demo" / "answers.yaml"),
                 "mail_channel": "demo-mail", "team": "Customer care"},
        "channels": {"demo-mail": {
            "kind": "imap", "enabled": False, "host": "127.0.0.1", "port": 1143, "security": "none",
            "username": "support@mainland.test", "password": "not-a-secret", "address": "support@mainland.test",
            "team": "Customer care"}},
    }))
    return path


def populate(folder: Path) -> None:
    mainland = Mainland(load(write_config(folder)))
    store = mainland.open_store(migrate=True)
    try:
        now = iso(clock.now())
        with store.write():
            store.create_webhook_subscription(url="https://hooks.example.com/in", secret='{"v": "sealed"}',
                                              events=["conversation.created", "message.received",
                                                      "conversation.status_changed"], created_by=None, now=now)
        demo_data.seed(mainland, store)
        mails = [parse_email(raw, channel="demo-mail") for raw in (
            raw_mail(sender="Zebedee Quist <zq@example.net>", subject="Broken teapot", message_id="<t1@example.net>",
                     body="The blue teapot snapped. Please send a new one to jan@example.com, café Rotterdam."),
            raw_mail(sender="Zebedee Quist <zq@example.net>", subject="Refund please",
                     body="Or a refund please: the teapot was a gift."),
            raw_mail(sender="Zeb Quist <zeb.quist@example.org>", subject="Teapot again",
                     body="Writing from my other address: any news about the teapot?"),
            raw_mail(sender="Wilma Gone <wilma@example.net>", subject="Delete me",
                     body="Please erase everything you hold about me."),
        )]
        mainland.ingestor(store).ingest("demo-mail", FetchResult(items=mails, cursor=None), save_cursor=False)
        conversations = {c["subject"]: c for c in store.recent_conversations(limit=200)}
        # A conversation merged into a newer one, a customer merged into a newer one: forward references.
        teapot, refund = conversations["Broken teapot"], conversations["Refund please"]
        store.merge_conversations(teapot["id"], refund["id"], agent_id=None, now=iso(clock.now()))
        older, newer = teapot["customer_id"], conversations["Teapot again"]["customer_id"]
        assert older < newer
        store.merge_customers(newer, older, agent_id=None, now=iso(clock.now()), force=True)
        store.add_customer_note(newer, None, "Prefers mail; two addresses.", iso(clock.now()))
        # Resolved, with an answered survey.
        kettle = conversations["Kettle arrived with a cracked lid"]
        clock.current().advance(dt.timedelta(hours=2))
        store.set_conversation_status(kettle["id"], "resolved", None, iso(clock.now()))
        with store.write():
            store.execute(
                "INSERT INTO csat_surveys (conversation_id, channel, customer_id, kind, state, token_hash, "
                "first_response_seconds, asked_at, expires_at, score, comment, answered_at) "
                "VALUES (?, 'demo-mail', ?, 'link', 'answered', 'hash-1', 1234.5, ?, ?, 5, 'Very quick!', ?)",
                (kettle["id"], kettle["customer_id"], iso(clock.now()), iso(clock.now() + dt.timedelta(days=7)),
                 iso(clock.now())))
        # Published help articles.
        for answer in store.execute("SELECT id, title FROM answers ORDER BY id LIMIT 3").fetchall():
            store.save_help_article(answer[0], slug=f"article-{answer[0]}", category_id=None,
                                    summary=f"About {answer[1]}", article_key=f"key-{answer[0]}", published=True,
                                    actor="test", now=iso(clock.now()))
        # Webhook deliveries, and a replay of one (it points back at an older delivery).
        assert webhooks_out.fan_out(store) > 0
        with store.write():
            first = store.execute("SELECT min(id) FROM webhook_deliveries").fetchone()[0]
            store.replay_webhook_delivery(first, iso(clock.now()))
        # Text keys that sort differently by code point (SQLite) and by most languages' rules (expired
        # leases of no one: harmless).
        with store.write():
            for name in ("Zeta", "alpha", "éclair", "_under", "Ärger", "日本", "Éclair", "zeta", "a b", "a-b"):
                store.execute("INSERT INTO leases (name, holder, expires_at) VALUES (?, 'nobody', ?)",
                              (name, "2000-01-01T00:00:00.000000Z"))
        # An erased customer.
        privacy.erase_customer(store, mainland.attachment_store(), conversations["Delete me"]["customer_id"],
                               actor="test")
    finally:
        store.close()


@pytest.fixture(scope="module")
def migrated(cluster) -> tuple[str, str]:
    """The module's throwaway cluster (tests/pg_cluster.py) with a migrated (empty) template database:
    (cluster URL, template name)."""
    template = Store(create_database(cluster))
    template.migrate()
    template.close()
    return cluster, template.url.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def installation(tmp_path_factory) -> Iterator[Path]:
    """The installation's folder (config.yaml, mainland.db, data/attachments), on the frozen clock."""
    folder = tmp_path_factory.mktemp("installation")
    with clock.installed(clock.FrozenClock(FROZEN_START)):
        populate(folder)
        yield folder


@pytest.fixture
def own_installation(installation, tmp_path) -> Path:
    """A copy of the installation that a test may change."""
    folder = tmp_path / "installation"
    shutil.copytree(installation, folder)
    return folder


@pytest.fixture
def target(migrated) -> Iterator[str]:
    """A new database that a fresh migration left (no data); its URL."""
    url = create_database(migrated[0], template=migrated[1])
    yield url
    drop_database(url)


def copy(folder: Path, url: str, **kwargs: Any) -> copying.CopyReport:
    config = load(folder / "config.yaml")
    source = Store(config.database)
    try:
        return migrate_to_postgresql(source, url, attachments_dir=config.attachments_dir, **kwargs)
    finally:
        source.close()


@pytest.fixture(scope="module")
def moved(migrated, installation) -> Iterator[dict[str, Store]]:
    """The installation copied once; both stores, for the tests that only read."""
    yield from copied_once(installation, create_database(migrated[0], template=migrated[1]))


def copied_once(installation: Path, url: str) -> Iterator[dict[str, Store]]:
    """Copy the installation into the empty database at `url`; yields both stores, then drops the copy."""
    report = copy(installation, url)
    assert report.finished and not report.mismatched and report.attachments.ok, report
    stores = {"sqlite": Store(installation / "mainland.db"), "postgresql": Store(url)}
    yield stores
    for store in stores.values():
        store.close()
    drop_database(url)


def rows(store: Store, plan: pg_copy.TablePlan) -> list[tuple[Any, ...]]:
    return pg_copy.read_rows(store.conn, plan, None, None, collate_c=store.engine == "postgresql")


def assert_same_rows(lite: Store, pg: Store) -> None:
    for plan in PLANS:
        assert rows(pg, plan) == rows(lite, plan), plan.name


def each(stores: dict[str, Store], verb: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {name: getattr(store, verb)(*args, **kwargs) for name, store in stores.items()}


def user_triggers(url: str) -> dict[str, str]:
    """Each user trigger of the database and whether it fires ('O') or is off ('D')."""
    store = Store(url)
    try:
        return dict(store.execute("SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal").fetchall())
    finally:
        store.close()


def table_exists(url: str, table: str) -> bool:
    store = Store(url)
    try:
        return store.execute("SELECT to_regclass(?) IS NOT NULL", (table,)).fetchone()[0]
    finally:
        store.close()


# What the copy holds ------------------------------------------------------------------------------------

def test_the_installation_has_what_the_copy_must_carry(moved):
    lite = moved["sqlite"]
    one = lambda sql: lite.execute(sql).fetchone()[0]  # noqa: E731
    assert one("SELECT count(*) FROM conversations WHERE merged_into > id") == 1
    assert one("SELECT count(*) FROM customers WHERE merged_into > id") == 1
    assert one("SELECT count(*) FROM webhook_deliveries WHERE replay_of IS NOT NULL") == 1
    assert one("SELECT count(*) FROM csat_surveys WHERE state = 'answered'") == 1
    assert one("SELECT count(*) FROM help_articles WHERE published = 1") == 3
    assert one("SELECT count(*) FROM attachments WHERE stored = 1") >= 2
    assert one("SELECT count(*) FROM audit_log WHERE action LIKE '%erase%'") >= 1
    assert one("SELECT count(*) FROM webhook_out_events") > 0
    assert one("SELECT count(*) FROM conversation_status_log") > 0


def test_every_table_holds_the_same_rows(moved):
    assert_same_rows(moved["sqlite"], moved["postgresql"])


def test_the_triggers_did_not_fire_during_the_copy_and_are_on_again(moved):
    lite, pg = moved["sqlite"], moved["postgresql"]
    for table in ("conversation_changes", "webhook_out_events", "conversation_status_log", "conversation_marks"):
        assert pg_copy.count_rows(pg.conn, table) == pg_copy.count_rows(lite.conn, table), table
    for sql in ("SELECT version FROM settings_version", "SELECT version FROM rules_version"):
        assert pg.execute(sql).fetchall() == lite.execute(sql).fetchall()
    states = user_triggers(moved["postgresql"].url)
    assert len(states) > 30 and set(states.values()) == {"O"}


def test_the_copy_shows_the_same_queue_search_history_and_reports(moved):
    pages = each(moved, "queue_page", QueueQuery(), team_ids=None, agent_id=None)
    assert pages["postgresql"] == pages["sqlite"] and pages["sqlite"]
    everything = each(moved, "queue_page", QueueQuery(status="all"), team_ids=None, agent_id=None)
    assert everything["postgresql"] == everything["sqlite"]
    for typed in SEARCHES:
        found = {name: [(g.conversation["id"], g.hits) for g in result.groups]
                 for name, result in each(moved, "search", fts_query(typed), team_ids=None, agent_id=None).items()}
        assert found["postgresql"] == found["sqlite"], typed
        assert bool(found["sqlite"]) == (typed != "zzzz"), typed
    customers = [row[0] for row in moved["sqlite"].execute("SELECT id FROM customers ORDER BY id").fetchall()]
    for customer_id in customers:
        history = each(moved, "customer_history", customer_id, None)
        assert history["postgresql"] == history["sqlite"], customer_id
    for moment in (FROZEN_START, FROZEN_START - dt.timedelta(days=300)):
        period = reports.Period.containing(moment)
        figures = {name: reports.build(store, period, now=FROZEN_START).figures() for name, store in moved.items()}
        assert figures["postgresql"] == figures["sqlite"]


def test_text_keys_are_read_in_the_same_order_on_both_engines(moved):
    lite, pg = moved["sqlite"], moved["postgresql"]
    assert pg_copy.sorts_text_by_code_point(pg.conn)  # the cluster's C.UTF-8: its indexes serve the reads
    keyed_by_text = [plan for plan in PLANS if plan.text_key]
    assert "leases" in {plan.name for plan in keyed_by_text}
    for plan in keyed_by_text:
        assert (copying.table_checksum(pg.conn, plan, batch_rows=2)
                == copying.table_checksum(pg.conn, plan, collate_c=True, batch_rows=3)
                == copying.table_checksum(lite.conn, plan, batch_rows=4)), plan.name
    leases = [row[0] for row in rows(pg, next(plan for plan in PLANS if plan.name == "leases"))]
    assert leases == sorted(leases) and leases[0] == "Zeta" and leases[-1] == "日本"


def test_the_copied_tables_are_vacuumed_and_analyzed_at_once(moved):
    # Without them the first pages after a move were several times slower (bench/web.py).
    never = moved["postgresql"].execute(
        "SELECT relname FROM pg_stat_user_tables WHERE relname IN ('messages', 'conversations', 'customers') "
        "AND (last_analyze IS NULL OR last_vacuum IS NULL) AND last_autoanalyze IS NULL").fetchall()
    assert never == []


def test_the_search_documents_are_whole(moved):
    pg = moved["postgresql"]
    for sql in STALE_DOCUMENTS:
        assert pg.execute(sql).fetchone()[0] == 0, sql
    assert pg_copy.count_rows(pg.conn, "message_documents") == pg_copy.count_rows(pg.conn, "messages") > 0


def test_the_progress_table_is_gone_and_the_copy_is_refused_as_holding_data(moved, installation):
    url = moved["postgresql"].url
    assert not table_exists(url, pg_copy.PROGRESS)
    with pytest.raises(CopyRefused, match="already holds Mainland data"):
        copy(installation, url)


# Resuming -----------------------------------------------------------------------------------------------

def kill_at_batch(monkeypatch, number: int) -> None:
    """The copy is killed in its `number`th batch, after writing it and before committing."""
    record_copied = pg_copy.record_copied
    calls = {"n": 0}

    def killed(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        record_copied(*args, **kwargs)
        if calls["n"] == number:
            monkeypatch.setattr(pg_copy, "record_copied", record_copied)
            raise KeyboardInterrupt

    monkeypatch.setattr(pg_copy, "record_copied", killed)


def test_a_copy_killed_anywhere_resumes_to_the_same_rows(installation, own_installation, target, monkeypatch):
    kill_at_batch(monkeypatch, 20)
    with pytest.raises(KeyboardInterrupt):
        copy(installation, target, batch_rows=3)

    # Nothing half-done: each table holds exactly the rows its progress says, and the triggers are on.
    pg = Store(target)
    try:
        states = pg_copy.progress(pg.conn)
        assert sum(state.copied for state in states.values()) > 0
        assert not all(state.done for state in states.values())
        for plan in PLANS:
            assert pg_copy.count_rows(pg.conn, plan.name) == states[plan.name].copied, plan.name
    finally:
        pg.close()
    assert set(user_triggers(target).values()) == {"O"}

    # Another installation's copy may not continue it.
    with pytest.raises(CopyRefused, match="unfinished copy of"):
        copy(own_installation, target)

    # Killed again while setting the forward references, after every row was copied.
    set_forward = pg_copy.set_forward

    def killed_while_linking(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(pg_copy, "set_forward", killed_while_linking)
    with pytest.raises(RuntimeError, match="killed"):
        copy(installation, target, batch_rows=3)
    monkeypatch.setattr(pg_copy, "set_forward", set_forward)

    report = copy(installation, target, batch_rows=3)
    assert report.resumed and report.finished and not report.mismatched
    lite, pg = Store(installation / "mainland.db"), Store(target)
    try:
        assert_same_rows(lite, pg)
        for sql in STALE_DOCUMENTS:
            assert pg.execute(sql).fetchone()[0] == 0, sql
    finally:
        lite.close()
        pg.close()


def test_a_database_with_other_data_is_refused_and_left_alone(installation, target):
    pg = Store(target)
    try:
        with pg.write():
            pg.execute("INSERT INTO agents (email, name, created_at) VALUES ('ann@example.org', 'Ann', ?)",
                       (iso(FROZEN_START),))
    finally:
        pg.close()
    with pytest.raises(CopyRefused, match=r"already holds Mainland data \(1 table\(s\) with rows: agents\)"):
        copy(installation, target)
    assert not table_exists(target, pg_copy.PROGRESS)
    assert set(user_triggers(target).values()) == {"O"}


def test_a_source_changed_between_two_runs_is_reported_by_table(own_installation, target, monkeypatch):
    kill_at_batch(monkeypatch, 20)
    with pytest.raises(KeyboardInterrupt):
        copy(own_installation, target, batch_rows=3)
    # Mainland ran on meanwhile: an agent copied already changed its name.
    lite = Store(own_installation / "mainland.db")
    try:
        with lite.write():
            lite.execute("UPDATE agents SET name = name || ' (renamed)' WHERE id = 1")
    finally:
        lite.close()
    result = run(own_installation, target, "--batch-size", "3")
    assert result.exit_code == 1
    [agents] = [line for line in result.output.splitlines() if line.startswith("agents ")]
    assert "MISMATCH: 5 rows in PostgreSQL" in agents
    assert "1 table(s) differ between SQLite and PostgreSQL: agents. Was Mainland running" in result.output
    assert "every row count and checksum matches" not in result.output
    assert table_exists(target, pg_copy.PROGRESS)


# Through the command ------------------------------------------------------------------------------------

def run(folder: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(folder / "config.yaml"), "migrate-to-postgresql", *args])


def test_the_command_copies_into_an_empty_database_with_the_attachments(own_installation, cluster, tmp_path):
    url = create_database(cluster)  # never migrated: the command migrates it
    shared = tmp_path / "shared-attachments"
    try:
        result = run(own_installation, url, "--attachments-to", str(shared), "--batch-size", "50")
        assert result.exit_code == 0, result.output
        assert "every row count and checksum matches" in result.output
        assert "done: " in result.output and "holds a verified copy" in result.output
        lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.strip()}
        assert lines["messages"][-1] == "ok" and int(lines["messages"][0].replace(",", "")) > 10
        config = load(own_installation / "config.yaml")
        source_files = sorted(p.relative_to(config.attachments_dir) for p in config.attachments_dir.rglob("*")
                              if p.is_file())
        assert source_files
        assert sorted(p.relative_to(shared) for p in shared.rglob("*") if p.is_file()) == source_files
        for relative in source_files:
            assert (shared / relative).read_bytes() == (config.attachments_dir / relative).read_bytes()

        # After the copy, new rows get fresh ids and the triggers do their work again.
        pg = Store(url)
        try:
            largest = pg.execute("SELECT max(id) FROM messages").fetchone()[0]
            events = pg_copy.count_rows(pg.conn, "webhook_out_events")
            mainland = Mainland(config)
            ingestor = mainland.ingestor(pg)
            report = ingestor.ingest("demo-mail", FetchResult(items=[parse_email(raw_mail(
                sender="New Person <new@example.net>", subject="Quokka plush", body="Do you sell quokka plushies?"),
                channel="demo-mail")], cursor=None), save_cursor=False)
            [conversation_id] = report.new_conversations
            assert pg.execute("SELECT max(id) FROM messages").fetchone()[0] == largest + 1
            assert pg.conversation_change_seq(conversation_id) > 0
            assert pg_copy.count_rows(pg.conn, "webhook_out_events") == events + 2  # created, received
            [group] = pg.search(fts_query("quokka"), team_ids=None, agent_id=None).groups
            assert group.conversation["id"] == conversation_id
        finally:
            pg.close()
        again = run(own_installation, url)
        assert again.exit_code == 1 and "already holds Mainland data" in again.output
    finally:
        drop_database(url)


def test_missing_and_damaged_attachment_files_are_reported_then_checked_again(own_installation, target):
    config = load(own_installation / "config.yaml")
    files = sorted(p for p in config.attachments_dir.rglob("*") if p.is_file())
    assert len(files) >= 2
    damaged, missing = files[0], files[1]
    kept = damaged.read_bytes(), missing.read_bytes()
    damaged.write_bytes(b"not what it was")
    missing.unlink()
    result = run(own_installation, target)
    assert result.exit_code == 1
    assert "1 attachment file(s) missing:" in result.output and str(missing) in result.output
    assert "1 attachment file(s) damaged:" in result.output and str(damaged) in result.output
    assert "every row count and checksum matches" in result.output
    assert table_exists(target, pg_copy.PROGRESS)  # not finished: the files are checked again next time

    damaged.write_bytes(kept[0])
    missing.write_bytes(kept[1])
    result = run(own_installation, target)
    assert result.exit_code == 0, result.output
    assert "resuming the unfinished copy" in result.output
    assert not table_exists(target, pg_copy.PROGRESS)


def test_the_command_refuses_while_a_worker_runs(own_installation, target):
    lite = Store(own_installation / "mainland.db")
    try:
        with lite.write():
            lite.execute("INSERT INTO leases (name, holder, expires_at) VALUES ('scheduler', 'host:123', ?)",
                         (iso(clock.now() + dt.timedelta(minutes=1)),))
    finally:
        lite.close()
    result = run(own_installation, target)
    assert result.exit_code == 1 and "a Mainland worker is running" in result.output
    assert not table_exists(target, pg_copy.PROGRESS)


def test_the_command_wants_a_postgresql_url(own_installation):
    result = run(own_installation, "mysql://somewhere/db")
    assert result.exit_code == 2 and "not a PostgreSQL URL" in result.output


def test_canonical_text_tells_every_kind_of_value_apart():
    values = [None, 0, 1, -7, 1.0, 0.1, 1e300, "", "1", "a\tb", b"", b"\x00\xff", "n", "i1"]
    texts = [canonical(value) for value in values]
    assert len(set(texts)) == len(texts)
    assert canonical(0.1) == "f0.1" and canonical(b"\x00\xff") == "b00ff" and canonical("ab") == "s2:ab"
