"""The connector registry: built-ins found by scanning, outside ones by entry point, clashes refused."""

from __future__ import annotations

import sys
import textwrap

import pytest

import connectors
from connectors.base import Connector


def test_builtins_are_found_by_scanning_the_package():
    registry = connectors.discover(include_entry_points=False)
    for kind, cls in registry.items():
        assert cls.kind == kind
        assert cls.__module__ == f"connectors.{kind}", "a built-in connector's kind must equal its module name"


@pytest.fixture
def outside_package(tmp_path, monkeypatch):
    """A connector shipped by someone else: a module plus a .dist-info declaring the entry point."""
    (tmp_path / "acme_chat.py").write_text(textwrap.dedent('''
        """Acme Chat: an outside connector used by the registry test."""
        from connectors.base import Connector
        from inbox.models import FetchResult

        class AcmeChatConnector(Connector):
            kind = "acmechat"
            display_name = "Acme Chat"

            def fetch(self, cursor):
                return FetchResult(items=[], cursor=cursor)

            def send(self, reply):
                return "sent-1"
    '''))
    dist = tmp_path / "acme_chat-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-chat\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mainland.connectors]\nacmechat = acme_chat:AcmeChatConnector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_chat", None)


def test_outside_connector_is_loaded_through_its_entry_point(outside_package):
    registry = connectors.discover()
    assert registry["acmechat"].display_name == "Acme Chat"
    assert issubclass(registry["acmechat"], Connector)


def test_outside_connector_serves_a_configured_channel(outside_package, tmp_path):
    from inbox.config import from_mapping
    from inbox.runtime import Mainland

    config = from_mapping({"database": str(tmp_path / "m.db"), "channels": {"acme": {"kind": "acmechat"}}},
                          base=tmp_path)
    assert Mainland(config).connector("acme").send(None) == "sent-1"


def test_two_connectors_claiming_one_kind_is_an_error(outside_package):
    builtin = next(iter(connectors.discover(include_entry_points=False)), None)
    if builtin is None:
        pytest.skip("no built-in connector to clash with")
    dist = outside_package / "acme_chat-1.0.dist-info" / "entry_points.txt"
    dist.write_text(f"[mainland.connectors]\n{builtin} = acme_chat:AcmeChatConnector\n")
    (outside_package / "acme_chat.py").write_text(
        (outside_package / "acme_chat.py").read_text().replace('kind = "acmechat"', f'kind = "{builtin}"'))
    with pytest.raises(connectors.RegistryError, match="claimed by both"):
        connectors.discover()


def test_unknown_kind_in_config_names_the_installed_ones(tmp_path):
    from inbox.config import ConfigError, from_mapping
    from inbox.runtime import Mainland

    config = from_mapping({"database": str(tmp_path / "m.db"), "channels": {"x": {"kind": "pigeon"}}}, base=tmp_path)
    with pytest.raises(ConfigError, match="no connector 'pigeon' is installed"):
        Mainland(config)
