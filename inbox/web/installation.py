"""The Flask app for one installation: its configuration read and checked, its connectors, its database migrated."""

from __future__ import annotations

import email.policy
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from connectors.base import Connector
from inbox import config as config_module
from inbox.config import Config
from inbox.runtime import Mainland

ROOT = Path(__file__).resolve().parents[2]


def read_config(config: Config | Mapping[str, Any] | str | Path | None) -> Config:
    """A `Config` from a `Config`, a mapping of config keys, or a config file path (None: $MAINLAND_CONFIG)."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return config_module.from_mapping(config, base=Path.cwd())
    return config_module.load(config)


def new_app(config: Config | Mapping[str, Any] | str | Path | None,
            connectors: Iterable[type[Connector]] = ()) -> Flask:
    """A Flask app holding the installation's `Mainland` (built-in, entry-point and `connectors` classes),
    with the database migrated and checked once, and Flask's own settings taken from the configuration."""
    cfg = read_config(config)
    # Named "inbox": Flask finds the translations (i18n) relative to that package.
    app = Flask(
        "inbox",
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_relative_config=False,
    )
    mainland = Mainland(cfg, extra_connectors=connectors)
    store = mainland.open_store(migrate=True)
    store.close()
    app.config.update(
        SECRET_KEY=cfg.secret_key,
        MAINLAND=cfg,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cfg.session_cookie_secure,
        MAX_CONTENT_LENGTH=cfg.max_message_bytes,
    )
    if cfg.base_url.startswith("https://") and cfg.session_cookie_secure:
        # `__Host-`: the browser takes the cookie only over HTTPS, for this host alone (no Domain)
        # and the whole site, so a sibling subdomain cannot plant or overwrite a session.
        app.config.update(SESSION_COOKIE_NAME="__Host-session", SESSION_COOKIE_PATH="/", SESSION_COOKIE_DOMAIN=None)
    app.extensions["mainland"] = mainland
    _warn_about_old_python(app)
    return app


def _warn_about_old_python(app: Flask) -> None:
    if not hasattr(email.policy.default, "verify_generated_headers"):
        # SEC-13: inbox.mail.build_reply re-checks every header it writes, but other code that
        # serialises mail with this interpreter would not be protected.
        app.logger.warning(
            "Python %s lacks the email header-injection fix (CVE-2024-6923); Mainland's reply builder "
            "checks its own output, but upgrade to Python 3.11.10 or newer.", platform.python_version())
