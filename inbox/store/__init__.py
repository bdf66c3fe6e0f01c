"""The store: the only place in Mainland that speaks SQL.

One `Store` wraps one SQLite file through sqlite-utils. It runs in WAL mode with a busy timeout,
and every write transaction starts with `BEGIN IMMEDIATE` (`with store.write():`): a deferred
transaction that reads and then writes can fail with SQLITE_BUSY at once, ignoring the timeout.

Given a `postgresql://` URL instead, the store runs the same statements on PostgreSQL through
`inbox/store/pg_connection.py` (#17, under way: not every verb runs there yet, and `database:`
still refuses PostgreSQL). Its write transactions take turns through one advisory lock, as
SQLite's writers do, so no verb needs to know which engine it runs on to stay correct.
Verbs are named after the domain and grouped by subject in the modules of this package; each verb
that writes is its own transaction unless the caller already holds one.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

from sqlite_utils import Database

from inbox.store import write_locks
from inbox.store.agents import AgentQueries
from inbox.store.answers import Answers
from inbox.store.api import ApiIdempotency
from inbox.store.audit import AuditLog
from inbox.store.base import NotFound, StoreError, is_postgresql_url, libpq_url, now_iso, redacted_url
from inbox.store.chat import ChatQueries
from inbox.store.checkins import CheckIns
from inbox.store.conversations import ConversationQueries
from inbox.store.customers import CustomerQueries
from inbox.store.demo import DemoQueries
from inbox.store.drafts import Drafts
from inbox.store.health import Health
from inbox.store.helpcenter import HelpCenterQueries
from inbox.store.ingest import IngestQueries
from inbox.store.message_changes import MessageChanges
from inbox.store.notifications import Notifications
from inbox.store.operations import OperationsQueries
from inbox.store.outbox import OutboxQueries
from inbox.store.outreach import Outreach
from inbox.store.quarantine import Quarantine
from inbox.store.queue import QueueQueries
from inbox.store.reports import ReportQueries
from inbox.store.review import Review
from inbox.store.routing import RoutingQueries
from inbox.store.rules import RuleQueries
from inbox.store.sendability import Sendability
from inbox.store.service_levels import ServiceLevelQueries
from inbox.store.settings import StoredSettings
from inbox.store.signatures import Signatures
from inbox.store.teams import TeamQueries
from inbox.store.tokens import ApiTokens
from inbox.store.triage import Triage
from inbox.store.webforms import Webforms
from inbox.store.webhooks import InboundWebhooks
from inbox.store.webhooks_out import WebhookOutQueries
from inbox.store.work import WorkQueries

__all__ = ["Store", "NotFound", "StoreError", "now_iso"]

log = logging.getLogger("mainland.store")

BUSY_TIMEOUT_MS = 10_000
#: Rows per index that ANALYZE (run by PRAGMA optimize) looks at: SQLite's recommended bound.
ANALYSIS_LIMIT = 400


class Store(IngestQueries, ConversationQueries, OperationsQueries, OutboxQueries, AgentQueries,
            TeamQueries, WorkQueries, QueueQueries, ServiceLevelQueries, ReportQueries,
            CustomerQueries, RoutingQueries, DemoQueries,
            HelpCenterQueries, WebhookOutQueries, ChatQueries, RuleQueries):
    """A Mainland database. Open one per thread; share the file, not the object."""

    #: Called with the store after each of this process's write transactions commits, in the committing
    #: thread, outside the write lock: the web's live streams wake on it instead of waiting for their next
    #: look (inbox/web/live.py). A hook must be quick; one that raises is logged and the write stands.
    commit_hooks: ClassVar[list[Callable[[Store], None]]] = []

    def __init__(self, path: str | Path, *, check: bool = True) -> None:
        if is_postgresql_url(path):
            self._open_postgresql(str(path))
        else:
            self._open_sqlite(Path(path))
        #: The store's concerns with typed rows (#17); the rest are still the mixins above.
        self.api_tokens = ApiTokens(self)
        self.check_ins = CheckIns(self)
        self.quarantine = Quarantine(self)
        self.signatures = Signatures(self)
        self.stored_settings = StoredSettings(self)
        self.drafts = Drafts(self)
        self.audit_log = AuditLog(self)
        self.inbound_webhooks = InboundWebhooks(self)
        self.outreach = Outreach(self)
        self.health = Health(self)
        self.answers = Answers(self)
        self.review = Review(self)
        self.notifications = Notifications(self)
        self.triage = Triage(self)
        self.sendability = Sendability(self)
        self.webforms = Webforms(self)
        self.api_idempotency = ApiIdempotency(self)
        self.message_changes = MessageChanges(self)
        self._local = threading.local()
        if check:
            self.check_integrity()

    def _open_sqlite(self, path: Path) -> None:
        self.engine = "sqlite"
        self.path = path
        #: The file, however it was named: this process's writers to it take turns (`write_locks.turn`).
        self._database = str(self.path.resolve())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves; sqlite3's implicit
        # transactions are DEFERRED and would bring back the upgrade-to-write SQLITE_BUSY.
        conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self.conn = conn
        self.db = Database(conn, execute_plugins=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: cursors and the outbox live here; a commit must survive power loss.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Erased personal data must not linger in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        # SQLite's advice for long-lived connections: optimize once at open (0x10002: look at every
        # table, but only analyze what has no or stale statistics, within analysis_limit), then
        # now and then (the worker's housekeeping, `optimize()`). Without it the planner never has statistics.
        conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
        conn.execute("PRAGMA optimize = 0x10002")

    def _open_postgresql(self, url: str) -> None:
        # Imported here: an installation on SQLite needs neither psycopg nor the schema's description.
        from inbox.store.pg_connection import PgConnection
        from inbox.store.schema import tables_with_id

        self.engine = "postgresql"
        # SQLAlchemy's name for the driver (postgresql+psycopg://) is not one libpq reads.
        self.url = url = libpq_url(url)
        #: Names the database in logs and keys (the password left out); not a file.
        self.path = redacted_url(url)
        self._database = self.path
        self.conn = PgConnection(url, id_tables=tables_with_id())
        self.db = None

    # Transactions -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, *, journals_in_memory: bool = False) -> Iterator[Store]:
        """A write transaction (`BEGIN IMMEDIATE`); nested calls join the outer one.

        `journals_in_memory`: for a transaction of many small statements (an ingest batch). SQLite
        keeps what each statement changed, to undo that statement alone, and writes it to a
        temporary file once it passes 64 KiB: every message insert with its triggers did, about
        seventy writes a message. In memory that costs nothing; it stays off by default because one
        statement that changes a large part of the database (a migration) would hold all of it.
        """
        if self.conn.in_transaction:
            yield self
            return
        with write_locks.turn(self._database, BUSY_TIMEOUT_MS / 1000):
            journals_in_memory = journals_in_memory and self.engine == "sqlite"
            if journals_in_memory:
                # Read as the transaction begins (and changed outside one only: SQLite refuses
                # otherwise once TEMP storage is open). Mainland makes no TEMP tables to lose by it.
                self.conn.execute("PRAGMA temp_store = MEMORY")
            try:
                self._begin_write()
                took_lock = time.perf_counter()
                try:
                    yield self
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
                else:
                    self.conn.execute("COMMIT")
                finally:
                    write_locks.record(time.perf_counter() - took_lock)
            finally:
                if journals_in_memory and not self.conn.in_transaction:
                    self.conn.execute("PRAGMA temp_store = DEFAULT")
        for hook in self.commit_hooks:
            try:
                hook(self)
            except Exception:
                log.exception("a commit hook failed; the write is committed")

    def _begin_write(self) -> None:
        if self.engine == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn.begin_write()

    @contextlib.contextmanager
    def savepoint(self, name: str = "item") -> Iterator[Store]:
        """A nested unit inside the current write transaction, rolled back alone on error."""
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            self.conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self.conn.execute(f"RELEASE SAVEPOINT {name}")

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    # Life cycle ---------------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of those applied."""
        if self.engine == "postgresql":
            from inbox.store import pg_schema

            return pg_schema.upgrade(self.url)
        from inbox.store.migrations import migrations

        pending = [m.name for m in migrations.pending(self.db)]
        if pending:
            # Migrations.apply() opens deferred transactions of its own; take the write lock first
            # so that two processes starting at once apply each migration once.
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                still_pending = [m.name for m in migrations.pending(self.db)]
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            if still_pending:
                migrations.apply(self.db)
        from inbox.store import sqlite_schema

        # The frozen chain ends at the baseline; Alembic's revisions (both engines' from 0006 on) follow.
        return pending + sqlite_schema.upgrade(self.path, self.conn, timeout=BUSY_TIMEOUT_MS / 1000)

    def check_integrity(self) -> None:
        """Refuse to work on a damaged database file (PRAGMA quick_check).

        PostgreSQL checks its own pages (and a cluster made with data checksums says so in its log);
        there the check is that the server answers.
        """
        if self.engine == "postgresql":
            self.conn.execute("SELECT 1")
            return
        try:
            row = self.conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable SQLite database: {exc}") from exc
        if row and row[0] != "ok":
            raise StoreError(
                f"{self.path} failed its integrity check ({row[0]}). Restore the latest backup; "
                "see docs/operations.md."
            )

    def optimize(self) -> None:
        """Gather the planner's statistics where they are missing or stale (`PRAGMA optimize`, bounded
        by analysis_limit rows per index, so it costs milliseconds even at a million messages).
        PostgreSQL's autovacuum gathers them by itself."""
        if self.engine == "sqlite":
            self.conn.execute("PRAGMA optimize")

    def checkpoint(self) -> tuple[int, int, int]:
        """Recycle the write-ahead log so that it does not grow without bound (PostgreSQL: its own job)."""
        if self.engine == "postgresql":
            return (0, 0, 0)
        return tuple(self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the live database (online backup API), checked after writing."""
        if self.engine == "postgresql":
            raise StoreError("a PostgreSQL database is backed up with pg_dump or the server's own base "
                             "backups (docs/operations.md), not with mainland backup")
        dest = sqlite3.connect(str(target))
        try:
            self.conn.backup(dest)
            result = dest.execute("PRAGMA integrity_check").fetchone()[0]
            if result != "ok":
                raise StoreError(f"backup {target} failed its integrity check: {result}")
        finally:
            dest.close()

    def close(self) -> None:
        self.conn.close()
