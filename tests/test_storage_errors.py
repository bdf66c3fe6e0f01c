"""A locked database, a full disk and a config file in another encoding give a message that says
what to do next (#16), on the command line and in the web app, never a traceback or "something went
wrong". The full disk is real SQLite's: the database may not grow past the pages it has
(`PRAGMA max_page_count`), which fails a write exactly as a full disk does (SQLITE_FULL)."""

from __future__ import annotations

import sqlite3
import sys

import pytest
import yaml

import inbox.store as store_module
from inbox import cli
from inbox.config import ConfigError, load
from inbox.web.request_store import pool_of
from tests.engine_state import sqlite_only
from tests.test_web_auth import csrf_token, login, make_agent


@pytest.fixture
def fill_the_disk(monkeypatch, app_config):
    """Call it to make every Store opened from then on unable to grow its file by a single page (the
    free pages are vacuumed away first, so the next sizeable write needs a new one)."""
    sqlite_only("a full disk made with max_page_count; PostgreSQL's errors: tests/test_pg_connection.py")

    def fill() -> None:
        with sqlite3.connect(app_config["database"]) as conn:
            conn.execute("VACUUM")
        opened = store_module.Store.__init__

        def init(self, *args, **kwargs):
            opened(self, *args, **kwargs)
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count = {pages}")

        monkeypatch.setattr(store_module.Store, "__init__", init)

    return fill


def _run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["mainland", *args])
    with pytest.raises(SystemExit) as exited:
        cli.run()
    return exited.value.code, capsys.readouterr().err


@pytest.fixture
def config_file(tmp_path, app_config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(app_config))
    return path


def _add_user(monkeypatch, capsys, config_file) -> tuple[int, str]:
    return _run_cli(monkeypatch, capsys, "--config", str(config_file), "create-user", "--email", "zoe@example.org",
                    "--name", "Zoë " + "Z" * 200_000, "--password", "a long enough password 1")


def test_a_full_disk_on_the_command_line_says_so_and_what_to_do(monkeypatch, capsys, config_file, fill_the_disk):
    fill_the_disk()
    code, err = _add_user(monkeypatch, capsys, config_file)
    assert code == 1
    assert "disk holding the database" in err and "is full" in err and "Free space" in err
    assert "Traceback" not in err


def test_a_locked_database_on_the_command_line_says_who_may_hold_it(monkeypatch, capsys, config_file, app_config):
    sqlite_only("the busy timeout on a locked file")
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    store_module.Store(app_config["database"]).close()  # migrated and checked before the lock is taken
    blocker = sqlite3.connect(app_config["database"], isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        code, err = _add_user(monkeypatch, capsys, config_file)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert code == 1
    assert "stayed locked by another process" in err and "run the command again" in err


def test_a_config_file_that_is_not_utf8_names_the_line_and_the_fix(tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"mail_domain: example.org\nsignature: Met vriendelijke groet, Zo\xeb\n")
    with pytest.raises(ConfigError) as refused:
        load(path)
    assert "is not UTF-8 text (line 2" in str(refused.value) and "iconv" in str(refused.value)
    code, err = _run_cli(monkeypatch, capsys, "--config", str(path), "check-config")
    assert code == 2 and "not UTF-8" in err and "Traceback" not in err


def test_a_utf8_config_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes("\ufeffmail_domain: zoë.example\n".encode())
    assert load(path).mail_domain == "zoë.example"


def test_the_web_app_says_the_disk_is_full_and_nothing_was_saved(app, client, fill_the_disk, monkeypatch):
    store = app.extensions["mainland"].open_store()
    make_agent(store, email="lea@example.org", role="lead")
    store.close()
    login(client, email="lea@example.org")
    token = csrf_token(client, "/answers/new")
    fill_the_disk()
    pool_of(app).close()  # the next request opens its connection on the full disk
    response = client.post("/answers/new", data={"title": "Refunds", "body": "We refund within five days. " * 350,
                                                 "language": "en", "csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "Mainland cannot save right now" in page and "disk is full" in page and "Tell your administrator" in page
    monkeypatch.undo()
    store = app.extensions["mainland"].open_store()
    assert store.answers.all() == [], "nothing half-saved"
    store.close()
