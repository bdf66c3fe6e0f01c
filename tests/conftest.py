"""Shared fixtures: a Mainland app on a real temporary SQLite file, its store and an ingestor.

`scripts/test.sh --engine postgresql` (MAINLAND_TEST_ENGINE=postgresql) gives the `store` and
`app_config` fixtures, and what builds on them, a fresh database on a throwaway PostgreSQL cluster
instead (#17), copied from a migrated template.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest

from inbox import clock, create_app
from inbox.attachments import AttachmentStore
from inbox.ingest import Ingestor
from inbox.store import Store
from tests.python_source import serialize_ast_parse

# CPython 3.11's AST constructor is not thread-safe (gh-106905); see tests/python_source.py.
serialize_ast_parse()

pytest_plugins = ["tests.servers", "tests.corpus", "tests.browser_helpers", "tests.pg_cluster"]


#: The engine the `store` and `app_config` fixtures run on: "sqlite" (the default) or "postgresql".
ENGINE = os.environ.get("MAINLAND_TEST_ENGINE", "sqlite")

#: Where a frozen clock starts unless a test sets it: a Monday morning, far from any real "today".
FROZEN_START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def frozen_clock():
    """The process's clock, stopped at FROZEN_START; move it with `.set()` / `.advance()`.

    The domain, the web app and the worker all read this clock, so a test that fixes its own
    calendar (a survey sent "on T0") is judged by that calendar and not by the machine's date.
    """
    with clock.installed(clock.FrozenClock(FROZEN_START)) as frozen:
        yield frozen


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """An empty database with every migration applied, made once per run: each test copies it instead
    of replaying the migrations (about a tenth of a second a test). `migrate()` still runs on the copy."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    template = Store(path)
    template.migrate()
    template.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    template.close()
    return path


def fresh_database(template, path):
    shutil.copyfile(template, path)
    return path


@pytest.fixture
def app_config(tmp_path, migrated_database, request):
    """Config keys for a test app; tests add channels to it before asking for `app`."""
    if ENGINE == "postgresql":
        from tests.pg_cluster import create_database, drop_database

        cluster, template = request.getfixturevalue("pg_template")
        database = create_database(cluster, template=template)
        request.addfinalizer(lambda: drop_database(database))
    else:
        database = str(fresh_database(migrated_database, tmp_path / "mainland.db"))
    return {
        "database": database,
        "data_dir": str(tmp_path / "data"),
        "secret_key": "test-secret-key",
        "instance_id": "test-instance",
        "mail_domain": "mainland.test",
        "channels": {},
        # Replies go out at once in tests; the composer tests set the undo window themselves.
        "web": {"undo_send_seconds": 0},
    }


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.config.update(TESTING=True)
    yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def pg_template():
    """A throwaway PostgreSQL cluster with a migrated template database; the cluster's URL."""
    from tests.pg_cluster import ThrowawayCluster, create_database

    with ThrowawayCluster() as cluster:
        template = Store(create_database(cluster))
        template.migrate()
        template.close()
        yield cluster, template.url.rsplit("/", 1)[1]


@pytest.fixture
def store(tmp_path, migrated_database, request):
    if ENGINE == "postgresql":
        from tests.pg_cluster import create_database, drop_database

        cluster, template = request.getfixturevalue("pg_template")
        url = create_database(cluster, template=template)
        store = Store(url)
        store.migrate()
        yield store
        store.close()
        drop_database(url)
        return
    store = Store(fresh_database(migrated_database, tmp_path / "store.db"))
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def ingestor(store, tmp_path):
    return Ingestor(store, AttachmentStore(tmp_path / "attachments"), instance_id="test-instance",
                    own_addresses={"support@mainland.test"})


# --- Tiers -------------------------------------------------------------------------------------------
# `server`: the test starts a real server (Dovecot, an SMTP sink, a loopback imitation of a channel
# API, the app on a port); `browser`: it drives Chromium; `slow`: long corpus and kill runs.
# scripts/test.sh --fast runs the rest with MAINLAND_TEST_TIER=fast, where any attempt to listen on a
# socket fails the test with the reason, so a server test can never hide in the fast tier unmarked.

#: Fixtures that start servers (tests/servers.py and the connector and e2e tests' own imitations).
SERVER_FIXTURES = frozenset({
    "dovecot_server", "imap_account", "dovecot", "smtp_server", "live_app", "mail_app",
})
BROWSER_FIXTURES = frozenset({"live_app", "browser"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SERVER_FIXTURES:
            item.add_marker(pytest.mark.server)
        if names & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)


def _fast_tier() -> bool:
    # On PostgreSQL the fast tier's tests talk to the throwaway cluster, so its socket guard is off.
    return os.environ.get("MAINLAND_TEST_TIER") == "fast" and ENGINE == "sqlite"


@pytest.fixture(autouse=True)
def _fresh_connector_caches():
    """Connectors keep some answers per process (WhatsApp's approved templates, Meta's usage pauses and
    names): each test starts as a fresh process."""
    from connectors._meta import forget_process_state
    from connectors.whatsapp import forget_templates

    forget_templates()
    forget_process_state()
    yield
    forget_templates()
    forget_process_state()


@pytest.fixture(autouse=True)
def _no_random_audit_samples(monkeypatch):
    """The spam check sends a random share of machine verdicts to people (triage.audit_share, 2%): no test
    may depend on that luck, so no item is a sample unless a test sets its flow's `draw` itself."""
    from inbox import triage_flow

    monkeypatch.setattr(triage_flow, "sample_draw", lambda: 1.0)


@pytest.fixture(autouse=True)
def _no_servers_in_the_fast_tier(request, monkeypatch):
    if not _fast_tier() or any(request.node.get_closest_marker(m) for m in ("server", "browser", "slow")):
        yield
        return
    import socket

    def refuse(self, *args, **kwargs):
        raise RuntimeError(
            f"{request.node.nodeid} starts a server (listen on {self.getsockname()}) but is not marked "
            "`server`: mark it (or the fixture, in tests/conftest.py SERVER_FIXTURES) so the fast tier skips it")

    monkeypatch.setattr(socket.socket, "listen", refuse)
    yield
