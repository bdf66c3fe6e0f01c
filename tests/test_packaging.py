"""What `pip install mainland` brings: the product alone, from ranges that stop before the next major,
and the hashed lock files that scripts/setup.sh installs from."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEMO_OR_TEST = {"aiosmtpd", "pytest", "pytest-timeout", "hypothesis", "playwright", "ruff", "wheel"}


def names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in requirements}


def locked(lock: str) -> dict[str, str]:
    """name -> version of every package a lock file pins (each must carry hashes)."""
    text = (ROOT / "requirements" / lock).read_text()
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = block.split(" ", 1)[0].strip()
        if not first or first.startswith("#"):
            continue
        name, _, version = first.partition("==")
        assert version, f"{lock}: {first!r} is not pinned with =="
        assert "--hash=sha256:" in block, f"{lock}: {first} has no hash"
        pins[Requirement(name).name.lower()] = version
    return pins


def test_the_product_needs_no_demo_or_test_package_and_no_setuptools_pin():
    runtime = names(PYPROJECT["project"]["dependencies"])
    assert not runtime & DEMO_OR_TEST
    assert "twitter-text-parser" not in runtime and "setuptools" not in runtime
    assert "aiosmtpd" in names(PYPROJECT["project"]["optional-dependencies"]["demo"])


@pytest.mark.parametrize("group", ["dependencies", "demo", "test"])
def test_every_range_stops_before_the_next_major(group):
    listed = (PYPROJECT["project"]["dependencies"] if group == "dependencies"
              else PYPROJECT["project"]["optional-dependencies"][group])
    for text in listed:
        requirement = Requirement(text)
        assert any(spec.operator == "<" for spec in requirement.specifier), f"{text}: no upper bound"
        assert any(spec.operator == ">=" for spec in requirement.specifier), f"{text}: no lower bound"


@pytest.mark.parametrize("lock, extras", [("runtime.lock", ()), ("demo.lock", ("demo",)),
                                          ("test.lock", ("demo", "test"))])
def test_each_lock_pins_what_its_install_needs_within_the_ranges(lock, extras):
    pins = locked(lock)
    wanted = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        wanted += PYPROJECT["project"]["optional-dependencies"][extra]
    for text in wanted:
        requirement = Requirement(text)
        assert requirement.name.lower() in pins, f"{lock} does not pin {requirement.name}"
        assert pins[requirement.name.lower()] in requirement.specifier, f"{lock}: {requirement.name} out of range"
    if not extras:
        assert not set(pins) & DEMO_OR_TEST, "the product's lock pins a demo or test package"


def test_the_wheel_holds_the_product_without_the_imitations(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in ("inbox", "connectors", "sandbox"):
        shutil.copytree(ROOT / part, source / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("mainland-*.whl")
    files = zipfile.ZipFile(wheel).namelist()
    assert any(f.startswith("inbox/") for f in files) and any(f.startswith("connectors/") for f in files)
    assert not any(f.startswith(("sandbox/", "tests/")) for f in files)
    metadata = zipfile.ZipFile(wheel).read(next(f for f in files if f.endswith("/METADATA"))).decode()
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            assert Requirement(line.split(":", 1)[1].strip()).name.lower() not in DEMO_OR_TEST, line


def test_starting_mainland_prints_no_warning(tmp_path):
    # twitter-text-parser used to print a pkg_resources warning at every start.
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import inbox, connectors, connectors.x; inbox.create_app("
         f"{{'database': {str(tmp_path / 'm.db')!r}, 'secret_key': 'k'}})"],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr
