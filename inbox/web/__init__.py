"""The web app's wiring: blueprints, per-request store, security headers and error pages.

Every module in this package that defines a blueprint named `bp` is registered, so adding a page
area means adding one module. Each request gets its own `Store` (closed at teardown).
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, request
from markupsafe import Markup
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from inbox.runtime import Mainland
from inbox.sanitize import without_bidi_controls
from inbox.store import Store


def mainland() -> Mainland:
    return current_app.extensions["mainland"]


def get_store() -> Store:
    """The request's store, opened on first use."""
    if "store" not in g:
        # No integrity check per request: PRAGMA quick_check reads the whole file (about 2 s at a
        # million messages); create_app checks once at start-up.
        g.store = mainland().open_store(check=False)
    return g.store


def _close_store(exc: BaseException | None) -> None:
    store = g.pop("store", None)
    if store is not None:
        store.close()


def _security_headers(response):
    if request.endpoint == "static" and request.args.get("v") and response.status_code == 200:
        response.cache_control.no_cache = None
        response.cache_control.max_age = STATIC_MAX_AGE
        response.cache_control.public = True
        response.cache_control.immutable = True
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if current_app.config["MAINLAND"].base_url.startswith("https://"):
        # Served over HTTPS (behind the TLS proxy the docs describe): browsers never try plain HTTP again.
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # A page with its own frame-ancestors (the embeddable web form) is framed by that policy alone:
    # X-Frame-Options cannot name other sites and would contradict it.
    if "frame-ancestors" not in response.headers.get("Content-Security-Policy", ""):
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    )
    return response


#: A year: a static file's URL carries its content hash, so a changed file has a new URL.
STATIC_MAX_AGE = 365 * 24 * 3600


def _static_version(app: Flask, filename: str) -> str:
    """A short hash of a static file's bytes, computed once per file and process."""
    versions: dict[str, str] = app.extensions.setdefault("static_versions", {})
    if filename not in versions:
        try:
            data = (Path(app.static_folder or "") / filename).read_bytes()
        except OSError:
            data = b""
        versions[filename] = hashlib.sha256(data).hexdigest()[:12]
    return versions[filename]


def _version_static_urls(endpoint: str, values: dict) -> None:
    # Every page asked again for each script and stylesheet (a 304 each, 100-200 ms a page); with the
    # content hash in the URL the browser keeps them until they change.
    if endpoint == "static" and "filename" in values and "v" not in values:
        values["v"] = _static_version(current_app, values["filename"])


def _shown(value: Any) -> Any:
    """Every value a page shows passes here: customer-written names and text lose the bidi controls
    that could make them pass for something else (inbox.sanitize.without_bidi_controls)."""
    if isinstance(value, str):
        cleaned = without_bidi_controls(value)
        return Markup(cleaned) if isinstance(value, Markup) else cleaned
    return value


def _take_in_settings() -> None:
    # Settings an admin changed in another process (another web process, the command line) apply on
    # this process's next request: one single-row read, which nearly every page opens the store for anyway.
    if request.endpoint in (None, "static"):
        return
    mainland().refresh(get_store())


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: ids the database can hold. A larger number (SQLite keeps 64-bit
    signed integers) matches no route, so it is a 404 instead of an overflow error and a 500."""

    def __init__(self, url_map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = 2**63 - 1, signed: bool = False) -> None:  # noqa: A002
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def init_app(app: Flask) -> None:
    # Before any blueprint: a rule takes its converters when it is added.
    app.url_map.converters["int"] = RowIdConverter
    hops = ((app.config["MAINLAND"].extra.get("web") or {}).get("trusted_proxies") or 0)
    if hops:
        # Behind a TLS proxy every request comes from the proxy's address: take the client's address
        # and scheme from the X-Forwarded-* headers the trusted proxies add, and from nobody else.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    app.jinja_env.finalize = _shown
    app.teardown_appcontext(_close_store)
    app.url_defaults(_version_static_urls)
    app.after_request(_security_headers)
    app.before_request(_take_in_settings)
    # `security` first: its CSRF check and limiter must run before any other module's hooks.
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "security", m.name)):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        bp = getattr(module, "bp", None)
        if bp is not None:
            app.register_blueprint(bp)
        init = getattr(module, "init_app", None)
        if callable(init):
            init(app)
