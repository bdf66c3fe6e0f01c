"""Single sign-on's configuration (issue 13): the `oidc` section is checked like every other, and
without it there is no single sign-on at all. The flow itself: tests/test_oidc.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox.config import ConfigError, from_mapping


def test_without_the_oidc_section_the_routes_are_not_there(client):
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_a_misspelt_oidc_key_is_reported(app_config):
    app_config["oidc"] = {"issuer": "https://id.example", "client_id": "m", "client_secret": "s",
                          "buton_label": "X"}
    with pytest.raises(ConfigError) as error:
        from_mapping(app_config, base=Path("."))
    assert "oidc.buton_label: unknown key; did you mean button_label?" in error.value.problems


def test_the_oidc_section_needs_issuer_client_and_secret(app_config, monkeypatch):
    app_config["oidc"] = {"issuer": "id.example", "allow_password_sign_in": "no"}
    with pytest.raises(ConfigError) as error:
        from_mapping(app_config, base=Path("."))
    problems = "\n".join(error.value.problems)
    for key in ("oidc.issuer", "oidc.client_id", "oidc.client_secret", "oidc.allow_password_sign_in"):
        assert key in problems
    monkeypatch.setenv("OIDC_SECRET", "from-the-environment")
    app_config["oidc"] = {"issuer": "https://id.example", "client_id": "m", "client_secret": {"$env": "OIDC_SECRET"}}
    assert from_mapping(app_config, base=Path(".")).extra["oidc"]["client_secret"] == "from-the-environment"
