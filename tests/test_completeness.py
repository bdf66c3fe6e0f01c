"""Checks that keep connectors, commands and docs complete; each failure says which file to fix."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import connectors
from connectors.testing import ConnectorContract
from tests import python_source

ROOT = Path(__file__).resolve().parent.parent
BUILTINS = connectors.discover(include_entry_points=False)


@pytest.mark.parametrize("kind", sorted(BUILTINS))
def test_connector_is_documented(kind):
    cls = BUILTINS[kind]
    module = importlib.import_module(cls.__module__)
    assert module.__doc__ and len(module.__doc__.strip()) > 40, (
        f"connectors/{kind}.py needs a module docstring: it is the connector's user documentation")
    assert getattr(cls, "display_name", None), f"{cls.__name__} needs a display_name"
    for setting in cls.settings:
        assert setting.help, f"connectors/{kind}.py: setting {setting.name!r} needs help text"


@pytest.mark.parametrize("kind", sorted(BUILTINS))
def test_connector_joins_the_contract_kit(kind):
    test_file = ROOT / "tests" / "connectors" / f"test_{kind}.py"
    assert test_file.exists(), f"add {test_file.relative_to(ROOT)} with a class joining ConnectorContract"
    module = importlib.import_module(f"tests.connectors.test_{kind}")
    joined = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
              if issubclass(obj, ConnectorContract) and obj is not ConnectorContract]
    assert joined, f"{test_file.relative_to(ROOT)} must define a class that subclasses ConnectorContract"
    assert any(c.connector_class is BUILTINS[kind] for c in joined)


def _python_files():
    for folder in ("inbox", "connectors", "bench"):
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", list(_python_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_says_what_it_is_for(path):
    tree = python_source.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} needs a module docstring saying what it is for"


def test_sql_lives_in_the_store_layer():
    offenders = []
    for path in _python_files():
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("inbox", "store") or rel.parts[0] == "bench":
            continue
        text = path.read_text()
        for keyword in ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE"):
            for line in text.splitlines():
                stripped = line.strip()
                if keyword in stripped and ('"' in stripped or "'" in stripped) and not stripped.startswith("#"):
                    if stripped.upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE")) or \
                            f'"{keyword}' in stripped or f"'{keyword}" in stripped:
                        offenders.append(f"{rel}: {stripped[:80]}")
    assert not offenders, "SQL outside inbox/store/ (move it into a store verb):\n" + "\n".join(offenders)


def test_every_cli_command_is_in_the_docs():
    from inbox.cli import main

    docs = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md")) + (ROOT / "README.md").read_text()
    missing = [name for name in main.commands if f"mainland {name}" not in docs]
    assert not missing, f"document these commands in docs/ or README.md: {', '.join(missing)}"
