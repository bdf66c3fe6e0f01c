"""Shared fixtures: a Mainland app on a real temporary SQLite file, its store and an ingestor."""

from __future__ import annotations

import pytest

from inbox import create_app
from inbox.attachments import AttachmentStore
from inbox.ingest import Ingestor
from inbox.store import Store

pytest_plugins = ["tests.servers", "tests.corpus"]


@pytest.fixture
def app_config(tmp_path):
    """Config keys for a test app; tests add channels to it before asking for `app`."""
    return {
        "database": str(tmp_path / "mainland.db"),
        "data_dir": str(tmp_path / "data"),
        "secret_key": "test-secret-key",
        "instance_id": "test-instance",
        "mail_domain": "mainland.test",
        "channels": {},
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


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store.db")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def ingestor(store, tmp_path):
    return Ingestor(store, AttachmentStore(tmp_path / "attachments"), instance_id="test-instance",
                    own_addresses={"support@mainland.test"})
