"""The configuration file: minimal files work, every problem is reported at once, secrets resolve,
and the example file and docs/configuration.md cover every key Mainland knows."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

import connectors
from inbox import config as config_module
from inbox.config import ConfigError
from inbox.runtime import Mainland
from inbox.worker import poll_plans

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
DOCS = ROOT / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_file_with_only_database_is_valid(tmp_path):
    cfg = config_module.load(write(tmp_path, "database: inbox.db\n"))
    assert cfg.database == tmp_path / "inbox.db"
    assert cfg.data_dir == tmp_path / "inbox-data"
    assert cfg.channels == {}
    assert cfg.max_message_bytes == 25 * 1024 * 1024 and cfg.default_language == "en"
    # No secret_key configured: one is generated once and kept beside the data.
    assert len(cfg.secret_key) == 64
    assert config_module.load(tmp_path / "config.yaml").secret_key == cfg.secret_key
    Mainland(cfg).open_store(migrate=True).close()


def test_database_may_be_given_as_a_sqlite_url(tmp_path):
    # The URL form #17's engines share: sqlite:///relative (to the config file) and sqlite:////absolute.
    assert config_module.load(write(tmp_path, "database: sqlite:///inbox.db\n")).database == tmp_path / "inbox.db"
    absolute = tmp_path / "elsewhere" / "inbox.db"
    cfg = config_module.load(write(tmp_path, f"database: sqlite:///{absolute}\n"))
    assert cfg.database == absolute and cfg.data_dir == tmp_path / "elsewhere" / "inbox-data"
    Mainland(cfg).open_store(migrate=True).close()
    assert absolute.exists()


@pytest.mark.parametrize("url, said", [
    ("mysql://db.example/mainland", "database: mysql:// is not a database Mainland can use"),
    ("mongodb+srv://db.example/mainland", "database: mongodb+srv:// is not a database Mainland can use"),
])
def test_a_database_url_mainland_cannot_use_is_refused_with_what_to_give(tmp_path, url, said):
    with pytest.raises(ConfigError) as refused:
        config_module.load(write(tmp_path, f"database: {url}\n"))
    assert any(problem.startswith(said) and "sqlite:///path" in problem and "postgresql://" in problem
               for problem in refused.value.problems)
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"], "nothing was made under a name taken from the URL"


@pytest.mark.parametrize("url", ["postgresql://mainland:s3cret@db.example:5433/mainland",
                                 "postgresql+psycopg://mainland:s3cret@db.example/mainland"])
def test_database_may_be_a_postgresql_url_with_data_dir_beside_the_config_file(tmp_path, url):
    cfg = config_module.load(write(tmp_path, f"database: {url}\n"))
    assert cfg.database == url and cfg.data_dir == tmp_path / "mainland-data"
    # The instance id names the database without its password: changing the password keeps it.
    other = config_module.load(write(tmp_path, f"database: {url.replace('s3cret', 'changed')}\n"))
    assert other.instance_id == cfg.instance_id


def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path, monkeypatch):
    monkeypatch.delenv("MAINLAND_NOT_SET", raising=False)
    path = write(tmp_path, textwrap_dedent("""
        database: inbox.db
        max_message_bytes: -5
        colour: blue
        secret_key: {"$env": "MAINLAND_NOT_SET"}
        channels:
          mail:
            host: imap.example.com
          form:
            kind: webform
            poll_every: soon
          "bad name!":
            kind: webform
    """))
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    problems = caught.value.problems
    expected = [
        "max_message_bytes: must be a positive whole number",
        "colour: unknown key",
        "secret_key: environment variable MAINLAND_NOT_SET is not set",
        "channels.mail.kind: required",
        "channels.form.poll_every: 'soon' is not a duration",
        "channels.bad name!: a channel name may hold",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), f"{start!r} not in {problems}"
    assert str(caught.value).count("\n") >= len(expected)


def test_missing_connector_settings_are_reported_per_channel(tmp_path):
    cfg = config_module.load(write(tmp_path, "database: x.db\nchannels:\n  mail:\n    kind: imap\n    host: h\n"))
    with pytest.raises(ConfigError) as caught:
        Mainland(cfg)
    (problem,) = caught.value.problems
    assert problem.startswith("channels.mail:") and "username" in problem and "password" in problem


def test_env_and_file_references_are_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_MAIL_PASSWORD", "s3cret-from-env")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text("key-from-file\n")
    cfg = config_module.load(write(tmp_path, textwrap_dedent("""
        database: x.db
        secret_key: {"$file": "secrets/key"}
        channels:
          mail:
            kind: imap
            host: imap.example.com
            username: support@example.com
            password: {"$env": "TEST_MAIL_PASSWORD"}
            address: support@example.com
    """)))
    assert cfg.secret_key == "key-from-file"
    assert cfg.channels["mail"].settings["password"] == "s3cret-from-env"
    missing = write(tmp_path, 'database: x.db\nsecret_key: {"$file": "secrets/nope"}\n')
    with pytest.raises(ConfigError, match=r"secret_key: cannot read .*secrets/nope"):
        config_module.load(missing)


def test_durations_accept_seconds_and_units(tmp_path):
    cfg = config_module.load(write(tmp_path, textwrap_dedent("""
        database: x.db
        channels:
          a: {kind: imap, host: h, username: u, password: p, address: a@example.com, poll_every: 90}
          b: {kind: imap, host: h, username: u, password: p, address: b@example.com, poll_every: "5m"}
    """)))
    assert (cfg.channels["a"].poll_every, cfg.channels["b"].poll_every) == (90.0, 300.0)


@pytest.fixture
def example_env(monkeypatch):
    for name in set(re.findall(r'"\$env": "([A-Z0-9_]+)"', EXAMPLE.read_text())):
        monkeypatch.setenv(name, f"value-of-{name.lower()}")


def test_the_example_config_loads_and_its_channels_start(example_env):
    cfg = config_module.load(EXAMPLE)
    assert cfg.secret_key == "value-of-mainland_secret_key"
    mainland = Mainland(cfg)
    assert set(cfg.channels) == {"support-mail", "contact"}
    assert [p.channel for p in poll_plans(mainland)] == ["support-mail"]  # forms are never polled


def test_the_example_holds_secrets_only_as_references():
    data = yaml.safe_load(EXAMPLE.read_text())
    secret_names = {s.name for cls in connectors.discover().values() for s in cls.settings if s.secret}

    def walk(value, path):
        if isinstance(value, dict):
            if set(value) <= {"$env", "$file"}:
                return
            for key, inner in value.items():
                if key in secret_names | {"secret_key"}:
                    assert isinstance(inner, dict) and set(inner) <= {"$env", "$file"}, (
                        f"{path}{key} in config.example.yaml must be an $env or $file reference")
                walk(inner, f"{path}{key}.")

    walk(data, "")


def test_every_top_level_key_is_documented_and_in_the_example():
    docs = DOCS.read_text()
    example = EXAMPLE.read_text()
    for key in sorted(config_module._KNOWN_KEYS):
        assert f"### `{key}`" in docs, f"docs/configuration.md needs a section '### `{key}`'"
        assert re.search(rf"^#? ?{key}:", example, re.M), f"config.example.yaml needs the key {key!r}"


@pytest.mark.parametrize("kind", ["imap", "webform"])
def test_every_builtin_connector_setting_is_documented(kind):
    cls = connectors.discover(include_entry_points=False)[kind]
    docs = DOCS.read_text()
    example = EXAMPLE.read_text()
    for setting in cls.settings:
        assert f"| `{setting.name}` |" in docs, f"docs/configuration.md: document {kind} setting {setting.name!r}"
        assert re.search(rf"^\s+{setting.name}:", example, re.M), (
            f"config.example.yaml: add {kind} setting {setting.name!r} with a comment")


def textwrap_dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def test_session_cookie_is_https_only_by_default_for_an_https_site(tmp_path):
    from inbox.config import from_mapping

    https = from_mapping({"database": "m.db", "base_url": "https://support.example.com"}, base=tmp_path)
    http = from_mapping({"database": "m.db", "base_url": "http://127.0.0.1:5000"}, base=tmp_path)
    told = from_mapping({"database": "m.db", "base_url": "https://support.example.com",
                         "session_cookie_secure": False}, base=tmp_path)
    assert (https.session_cookie_secure, http.session_cookie_secure, told.session_cookie_secure) == (True, False, False)


def test_attachments_may_live_in_a_folder_of_their_own(tmp_path):
    # #17: several machines share one attachments folder while each keeps its own data_dir.
    from inbox.importer import import_mailbox
    from tests.test_attachments import mail_with_attachment

    cfg = config_module.load(write(tmp_path, "database: inbox.db\nattachments_dir: shared/files\n"))
    assert cfg.attachments_dir == tmp_path / "shared" / "files"
    assert config_module.load(write(tmp_path, "database: inbox.db\n")).attachments_dir == tmp_path / "inbox-data" / "attachments"
    mailbox = tmp_path / "mail"
    mailbox.mkdir()
    (mailbox / "1.eml").write_bytes(mail_with_attachment(b"%PDF-1.4 the invoice"))
    mainland = Mainland(cfg)
    store = mainland.open_store(migrate=True)
    import_mailbox(store, mainland.ingestor(store), mailbox, workers=0)
    [sha] = [row[0] for row in store.conn.execute("SELECT sha256 FROM attachments")]
    assert mainland.attachment_store().read(sha) == b"%PDF-1.4 the invoice"
    stored = [p for p in (tmp_path / "shared" / "files").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in stored] == [b"%PDF-1.4 the invoice"]
    assert not (tmp_path / "inbox-data" / "attachments").exists()
    store.close()


def test_attachments_dir_must_be_a_path(tmp_path):
    with pytest.raises(config_module.ConfigError, match="attachments_dir: must be the path of a folder"):
        config_module.load(write(tmp_path, "database: inbox.db\nattachments_dir: [a, b]\n"))
