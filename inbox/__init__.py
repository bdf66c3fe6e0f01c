"""Mainland: a self-hosted customer-care inbox that brings every channel onto one mainland.

`create_app(config)` builds the Flask app: it reads and checks the configuration, applies
database migrations, builds the connector registry and registers the web blueprints and the
translations. Nothing happens at import time.
"""

from __future__ import annotations

import email.policy
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket

from inbox import config as config_module
from inbox.config import Config

ROOT = Path(__file__).resolve().parent.parent


class _ProcessTemplateCache(BytecodeCache):
    """Compiled templates shared by every app of this process (Jinja keys them by name and source
    checksum, so an edited template is compiled again). One app per process compiles each template
    once anyway; a process that builds several (the web and worker of `serve`, tests) compiles it once."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_TEMPLATE_CACHE = _ProcessTemplateCache()


def create_app(config: Config | Mapping[str, Any] | str | Path | None = None) -> Flask:
    """Build the web app from a `Config`, a mapping of config keys, or a config file path.

    With no argument the file named by `$MAINLAND_CONFIG` is read (or defaults are used).
    """
    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = config_module.from_mapping(config, base=Path.cwd())
    else:
        cfg = config_module.load(config)

    # Imported here, not at the top: connectors import inbox.models, and importing the connector
    # package first must not find inbox half-initialised.
    from inbox.runtime import Mainland

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_relative_config=False,
    )
    app.jinja_options = {**app.jinja_options, "bytecode_cache": _TEMPLATE_CACHE}
    mainland = Mainland(cfg)
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
    if not hasattr(email.policy.default, "verify_generated_headers"):
        # SEC-13: inbox.mail.build_reply re-checks every header it writes, but other code that
        # serialises mail with this interpreter would not be protected.
        app.logger.warning(
            "Python %s lacks the email header-injection fix (CVE-2024-6923); Mainland's reply builder "
            "checks its own output, but upgrade to Python 3.11.10 or newer.", platform.python_version())

    from inbox import i18n, web

    i18n.init_app(app)
    web.init_app(app)
    return app
