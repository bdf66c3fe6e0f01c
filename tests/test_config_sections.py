"""Typed configuration sections (issue 13): a misspelt key anywhere in the file is reported, by
`mainland check-config` and at start, with the nearest valid key. Before, `web` and `worker` took any key.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inbox import create_app
from inbox.config import SECTION_KEYS, ConfigError, from_mapping, unknown_keys

ROOT = Path(__file__).resolve().parent.parent


def _problems(tmp_path, **sections) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k", **sections}, base=tmp_path)
    return caught.value.problems


@pytest.mark.parametrize(("sections", "problem"), [
    ({"web": {"undo_send_second": 5}}, "web.undo_send_second: unknown key; did you mean undo_send_seconds?"),
    ({"web": {"trusted_proxy": 1}}, "web.trusted_proxy: unknown key; did you mean trusted_proxies?"),
    ({"worker": {"lease_second": 60}}, "worker.lease_second: unknown key; did you mean lease_seconds?"),
    ({"demo": {"admin_mail": "a@example.org"}}, "demo.admin_mail: unknown key; did you mean admin_email?"),
    ({"health": {"warn_afer": "5m"}}, "health.warn_afer: unknown key; did you mean warn_after?"),
    ({"chanels": {}}, "chanels: unknown key; did you mean channels?"),
])
def test_a_misspelt_key_is_reported_with_the_nearest_valid_one(tmp_path, sections, problem):
    assert problem in _problems(tmp_path, **sections)


def test_a_key_like_nothing_known_lists_the_section_keys(tmp_path):
    [problem] = _problems(tmp_path, worker={"zzz": 1})
    assert problem.startswith("worker.zzz: unknown key (known: checkpoint_every, lease_seconds,")


def test_every_misspelling_in_the_file_is_reported_at_once(tmp_path):
    problems = _problems(tmp_path, web={"hots": "0.0.0.0", "prot": 80}, worker={"renew_evry": 5})
    assert {p.split(":")[0] for p in problems} == {"web.hots", "web.prot", "worker.renew_evry"}


def test_settings_other_engineers_add_in_this_issue_are_known(tmp_path):
    config = from_mapping({"database": str(tmp_path / "m.db"), "secret_key": "k", "web": {
        "idle_timeout_minutes": 30, "require_second_factor": ["admin"], "remember_device_days": 0,
        "trusted_proxies": 1, "live_streams": 4, "chat_waits": 3, "chat_check_seconds": 1}}, base=tmp_path)
    assert config.extra["web"]["idle_timeout_minutes"] == 30


@pytest.mark.parametrize("name", ["config.example.yaml", "demo/config.yaml"])
def test_the_shipped_configuration_files_hold_only_known_keys(name):
    data = yaml.safe_load((ROOT / name).read_text())
    problems = unknown_keys("", data)
    for section in SECTION_KEYS:
        if section and isinstance(data.get(section), dict):
            problems += unknown_keys(section, data[section])
    assert problems == []


def test_every_documented_setting_is_a_known_key():
    documented = re.findall(r"^\| `(web|worker|demo|health)\.([a-z_]+)`", (ROOT / "docs/configuration.md").read_text(),
                            re.M)
    assert documented, "the tables of docs/configuration.md"
    for section, key in documented:
        assert key in SECTION_KEYS[section], f"{section}.{key} is documented but not known"


def test_check_config_and_start_up_both_report_it(tmp_path, app_config):
    path = tmp_path / "mainland.yaml"
    path.write_text(yaml.safe_dump({"database": str(tmp_path / "c.db"), "secret_key": "k",
                                    "web": {"undo_send_second": 5}}))
    result = subprocess.run([sys.executable, "-c", "from inbox.cli import run; run()", "--config", str(path),
                             "check-config"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "web.undo_send_second: unknown key; did you mean undo_send_seconds?" in result.stderr
    with pytest.raises(ConfigError, match="did you mean undo_send_seconds"):
        create_app({**app_config, "web": {"undo_send_second": 5}})
