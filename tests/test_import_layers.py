"""The core and the connectors import each other only one way round (#15).

Connectors build on the core's neutral modules (`inbox.models`, `inbox.errors`, `inbox.mail`, ...) and
the core talks to them only through the contract (`connectors.base`) and the registry (`connectors`,
in the runtime wiring). So each side can be imported first, alone, and no import cycle runs through
both packages: `inbox.mail` (which the IMAP connector parses with) used to import `connectors.base`,
whose package scan imports `connectors.imap`, which imports `inbox.mail`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import connectors
from tests import python_source

ROOT = Path(__file__).resolve().parents[1]

#: Modules under inbox/ that import a specific connector module, with why (the contract and the
#: registry are not specific: every module may import `connectors.base`).
ALLOWED_SPECIFIC = {
    ("inbox.web.forms", "connectors.webform"): "the web form's own pages hand each post to their connector",
    ("inbox.web.chat", "connectors.chat"): "the chat widget's own endpoints hand each post to their connector",
    ("inbox.web.chat", "connectors.webform"): "the chat widget checks the page's origin as the web form does",
    ("inbox.chat_followup", "connectors.chat"): "the chat's email follow-up reads its own channel's settings",
    ("inbox.chat_followup", "connectors.webform"): "the sign-in link goes only to an allowed origin, read as the "
                                                   "web form reads origins",
    ("inbox.web.own_endpoints", "connectors.webform"): "the web form's and the chat's shared channel lookup reads "
                                                        "origins with the web form's origin_of",
}

#: The registry/runtime wiring: the only modules under inbox/ that import the registry (`connectors`).
# (new_connector refuses a kind that an installed connector already claims.)
REGISTRY_USERS = {"inbox.runtime", "inbox.identity", "inbox.commands.new_connector"}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(root: Path) -> dict[str, Path]:
    """Every module of `inbox/` and `connectors/` under `root`, by dotted name."""
    found = {}
    for package in ("inbox", "connectors"):
        for path in sorted((root / package).rglob("*.py")):
            if "translations" not in path.parts:
                found[module_name(root, path)] = path
    return found


def imported_names(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """What a module imports (`from a import b` counts as `a.b` and `a`); with `top_level_only`, only the
    imports that run when the module is imported (not those inside functions)."""
    tree = python_source.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = _module_level(tree.body) if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements run at import: the body, and what `if`/`try` blocks at module level hold (but not
    `if TYPE_CHECKING:`, which only type checkers read)."""
    found = []
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        found.append(node)
        if isinstance(node, ast.If | ast.Try):
            for block in (node.body, node.orelse, *[h.body for h in getattr(node, "handlers", [])],
                          getattr(node, "finalbody", [])):
                found += _module_level(block)
    return found


def import_graph(root: Path, scanned: list[str]) -> dict[str, set[str]]:
    """Module -> the modules importing it runs: its imports, their parent packages, and for the
    `connectors` package every module its registry scan imports (`scanned`)."""
    modules = source_modules(root)
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(name, path, top_level_only=True):
            parts = imported.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        parts = name.split(".")
        targets.update(".".join(parts[:i]) for i in range(1, len(parts)))
        graph[name] = {t for t in targets if t in modules and t != name}
    if "connectors" in graph:
        graph["connectors"] |= {m for m in scanned if m in modules}
    return graph


def cycles_across(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of the graph that hold modules of both packages (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                part.append(member)
                if member == node:
                    break
            packages = {m.split(".")[0] for m in part}
            if packages == {"inbox", "connectors"}:
                found.append(sorted(part))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def layer_violations(root: Path) -> list[str]:
    """`module -> import` for each import (anywhere in the module) that crosses the layers the wrong way."""
    modules = source_modules(root)
    hits = []
    for name, path in modules.items():
        imports = imported_names(name, path, top_level_only=False) & set(modules)
        if name.startswith("connectors"):
            hits += [f"{name} -> {i}" for i in sorted(imports) if i == "inbox.web" or i.startswith("inbox.web.")]
            continue
        if "connectors" in imports and name not in REGISTRY_USERS:
            hits.append(f"{name} -> connectors (the registry: ask the runtime's Mainland for connectors)")
        hits += [f"{name} -> {i}" for i in sorted(imports)
                 if i.startswith("connectors.") and i != "connectors.base" and (name, i) not in ALLOWED_SPECIFIC]
    return sorted(hits)


# Each side imports first, alone ------------------------------------------------------------------

@pytest.mark.parametrize("first", ["inbox.mail", "connectors.imap", "connectors", "inbox.web", "connectors.base",
                                   "inbox.runtime", "inbox"])
def test_each_module_imports_first_in_a_fresh_interpreter(first, tmp_path):
    # After the module alone, the registry's scan (which imports every built-in) and the app factory (every
    # page area) run too.
    code = (f"import {first}\n"
            "import connectors\n"
            "assert 'imap' in connectors.discover(include_entry_points=False)\n"
            "import inbox\n"
            f"app = inbox.create_app({{'database': {str(tmp_path / 'm.db')!r}, 'data_dir': {str(tmp_path)!r}}})\n"
            "assert 'queue' in app.blueprints\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("order", [("inbox.mail", "connectors.imap"), ("connectors.imap", "inbox.mail")])
def test_mail_and_imap_import_in_either_order(order):
    code = "".join(f"import {name}\n" for name in order)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# No cycle through both packages --------------------------------------------------------------------

def test_no_import_cycle_runs_through_the_core_and_the_connectors():
    cycles = cycles_across(import_graph(ROOT, connectors.builtin_modules()))
    assert cycles == [], "an import cycle runs through inbox/ and connectors/:\n" + "\n".join(map(str, cycles))


def test_the_cycle_check_finds_a_cycle(tmp_path):
    # The check must be able to fail: the cycle this issue removed is found again.
    for name, text in {
        # What only type checkers read runs no import: no cycle through the package `inbox`.
        "inbox/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from connectors.base import X\n",
        "inbox/mail.py": "from connectors.base import ItemError\n",
        "connectors/__init__.py": "from connectors.base import Connector\n",
        "connectors/base.py": "class ItemError(Exception): ...\n",
        "connectors/imap.py": "from inbox.mail import parse_email\n",
    }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cycles_across(import_graph(tmp_path, ["connectors.imap"])) == [
        ["connectors", "connectors.base", "connectors.imap", "inbox.mail"]]
    assert cycles_across(import_graph(tmp_path, [])) == [], "without the scan nothing imports imap"


# Which side may import what ---------------------------------------------------------------------

def test_the_core_imports_only_the_contract_and_connectors_never_the_web_app():
    hits = layer_violations(ROOT)
    assert hits == [], ("an import crosses the layers: the core uses connectors through `connectors.base` and "
                        "the runtime's registry, and connectors know nothing of the web app:\n" + "\n".join(hits))


def test_the_layer_check_finds_each_wrong_import(tmp_path):
    for name, text in {
        "inbox/__init__.py": "",
        "inbox/outbox.py": "from connectors.base import PermanentError\n",
        "inbox/digest.py": "def send():\n    from connectors.imap import ImapConnector\n",
        "inbox/web/__init__.py": "",
        "inbox/web/queue.py": "import connectors\n",
        "connectors/__init__.py": "",
        "connectors/base.py": "",
        "connectors/imap.py": "from inbox.mail import parse_email\n",
        "connectors/x.py": "from inbox.web import get_store\n",
        "inbox/mail.py": "",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert layer_violations(tmp_path) == [
        "connectors.x -> inbox.web",
        "inbox.digest -> connectors.imap",
        "inbox.web.queue -> connectors (the registry: ask the runtime's Mainland for connectors)",
    ]
