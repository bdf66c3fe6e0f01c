"""`mainland new-connector NAME`: a connector, its contract test and recordings that pass at once.

The command writes into a temporary checkout (or a package folder); the generated test then runs in
a pytest of its own, as the integrator would run it, and the registry finds the new connector.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import connectors
from inbox.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent


def new_connector(*args: str):
    return CliRunner().invoke(main, ["new-connector", *args])


@pytest.fixture
def checkout(tmp_path):
    """An empty checkout to write into: only its connectors/ folder."""
    (tmp_path / "connectors").mkdir()
    return tmp_path


@pytest.fixture
def generated(checkout):
    result = new_connector("acme_chat", "--root", str(checkout))
    assert result.exit_code == 0, result.output
    return checkout


def run_generated_test(checkout: Path, *pytest_args: str) -> subprocess.CompletedProcess:
    """The generated test in a pytest of its own, with the generated module found as a built-in would be."""
    bootstrap = ("import sys, connectors, pytest; "
                 f"connectors.__path__.append({str(checkout / 'connectors')!r}); "
                 "sys.exit(pytest.main(sys.argv[1:]))")
    return subprocess.run(
        # The checkout's own pytest configuration declares the `server` marker; this one has none.
        [sys.executable, "-c", bootstrap, "-q", "-p", "no:cacheprovider", "-o", "markers=server: a loopback server",
         "tests/connectors/test_acme_chat.py", *pytest_args],
        cwd=checkout, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=600)


def only_passes(output: str) -> bool:
    """pytest's summary says only "N passed": nothing failed, was skipped or warned."""
    return re.fullmatch(r"[1-9]\d* passed in [\d.]+s( \([\d:]+\))?", output.strip().splitlines()[-1]) is not None


def test_it_writes_the_module_its_test_and_a_folder_per_promise(generated):
    assert (generated / "connectors" / "acme_chat.py").is_file()
    assert (generated / "tests" / "connectors" / "test_acme_chat.py").is_file()
    fixtures = generated / "tests" / "fixtures" / "connectors" / "acme_chat"
    from connectors.testing import NEEDS

    folders = {p.name for p in fixtures.iterdir() if p.is_dir()}
    # Every promise a polling, sending connector with a secret (and parse_raw) is held to has its recordings.
    held_to = {"poll", "send", "secrets", "reprocess"}
    assert {name.removeprefix("test_") for name, needs in NEEDS.items() if needs <= held_to} <= folders
    for path in fixtures.rglob("*.json"):
        exchange = json.loads(path.read_text())
        assert exchange["request"]["path"].startswith("/v1/"), path
        assert "recorded-token-123" not in path.read_text(), "a recording must hold {{token}}, not the secret"


def test_the_registry_discovers_the_generated_connector(generated, monkeypatch):
    monkeypatch.setattr(connectors, "__path__", [*connectors.__path__, str(generated / "connectors")])
    try:
        found = connectors.discover(include_entry_points=False)["acme_chat"]
        module = importlib.import_module(found.__module__)
        # What tests/test_completeness.py asks of every built-in.
        assert found.__name__ == "AcmeChatConnector" and found.display_name == "Acme Chat"
        assert module.__doc__ and "mainland new-connector acme_chat" in module.__doc__
        assert all(setting.help for setting in found.settings)
    finally:
        sys.modules.pop("connectors.acme_chat", None)


@pytest.mark.server  # the generated test serves its recordings on a loopback port
def test_the_generated_test_passes_out_of_the_box(generated):
    run = run_generated_test(generated)
    assert run.returncode == 0, run.stdout + run.stderr
    assert only_passes(run.stdout), run.stdout


@pytest.mark.server
def test_a_reply_the_recordings_do_not_hold_fails_the_generated_test_naming_both(generated):
    recorded = (generated / "tests" / "fixtures" / "connectors" / "acme_chat" /
                "reply_is_threaded_to_the_message_it_answers" / "02-post-messages.json")
    exchange = json.loads(recorded.read_text())
    exchange["request"]["json"]["reply_to"] = "m9"
    recorded.write_text(json.dumps(exchange))
    run = run_generated_test(generated, "-k", "reply_is_threaded")
    assert run.returncode == 1, run.stdout
    assert "no recording answered POST /v1/messages" in run.stdout
    assert "recorded but never requested: reply_is_threaded_to_the_message_it_answers/02-post-messages.json" \
        in run.stdout
    assert "json.reply_to: recorded \"m9\", got \"m1\"" in run.stdout


@pytest.mark.server  # installs the generated package with pip and runs its test against its recordings
def test_a_package_installs_with_its_entry_point_and_its_test_passes(tmp_path):
    package = tmp_path / "mainland-acme-chat"
    result = new_connector("acme_chat", "--package", str(package))
    assert result.exit_code == 0, result.output
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(package)], check=True, capture_output=True, text=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        found = connectors.discover()["acme_chat"]
        assert found.__module__ == "mainland_acme_chat"
        assert "acme_chat" not in connectors.discover(include_entry_points=False)
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("mainland_acme_chat", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=package,
                         env={"PYTHONPATH": f"{package}:{ROOT}", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert only_passes(run.stdout), run.stdout


@pytest.mark.parametrize(("name", "says"), [
    ("Acme", "is not a connector name"),
    ("acme-chat", "is not a connector name"),
    ("9lives", "is not a connector name"),
    ("class", "is reserved"),
    ("testing", "is reserved"),
    ("telegram", "a connector of kind 'telegram' is already installed (connectors.telegram.TelegramConnector)"),
])
def test_a_bad_name_is_refused_saying_why(checkout, name, says):
    result = new_connector(name, "--root", str(checkout))
    assert result.exit_code == 2
    assert says in result.output
    assert list(checkout.rglob("*")) == [checkout / "connectors"], "nothing may be written"


def test_an_existing_file_is_never_overwritten(checkout):
    mine = checkout / "tests" / "connectors" / "test_acme_chat.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("# my own work\n")
    result = new_connector("acme_chat", "--root", str(checkout))
    assert result.exit_code == 1
    assert f"{mine} already exists: choose another name, or move the existing files away" in result.output
    assert mine.read_text() == "# my own work\n"
    assert not (checkout / "connectors" / "acme_chat.py").exists(), "nothing may be written"


def test_a_folder_that_is_no_checkout_is_refused(tmp_path):
    result = new_connector("acme_chat", "--root", str(tmp_path))
    assert result.exit_code == 1
    assert "holds no connectors/ folder: pass --root with a Mainland checkout, or write a package" in result.output
