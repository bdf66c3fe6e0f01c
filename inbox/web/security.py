"""Request-level protections shared by every page: CSRF, rate limits and the error pages.

`csrf` (Flask-WTF) checks a token on every state-changing request unless a blueprint is exempted
with `csrf.exempt(bp)` (public form posts and signed webhooks do that). `limiter` (Flask-Limiter)
holds per-IP and per-account limits that views declare with `@limiter.limit(...)`, counted in a
file every process of the installation shares (inbox/web/rate_limit_storage.py). Both are
well-kept libraries: token signing, expiry and window counting are not things to write by hand.

This module is initialised before the other web modules (see inbox/web/__init__.py) so that the
CSRF check runs first in every request, before any view or session work.

Error pages render HTML for people and JSON for API-style callers, and never include internals:
a 400 for an expired form, a 429 when a limit is hit, a 503 when SQLite stays locked past its
busy timeout ("Mainland is busy") or the disk is full or the database unwritable ("Mainland cannot
save right now", with what to do), and generic pages for the other HTTP errors.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import psycopg
from flask import Flask, Response, g, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from inbox import storage_errors
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.web.rate_limit_storage import SharedCounters

log = logging.getLogger(__name__)

csrf = CSRFProtect()
# Counted in a file all of the installation's processes share (inbox/web/rate_limit_storage.py): in
# each process's memory, every web process let a client the whole limit again.
limiter = Limiter(key_func=get_remote_address, storage_uri=f"{SharedCounters.STORAGE_SCHEME[0]}://", default_limits=[])

#: Seconds a client is asked to wait when the database is busy.
BUSY_RETRY_AFTER = 5

_MESSAGES = {
    400: (_l("Bad request"), _l("The request could not be understood.")),
    403: (_l("Not allowed"), _l("You do not have access to this page.")),
    404: (_l("Not found"), _l("This page does not exist, or you do not have access to it.")),
    405: (_l("Not allowed"), _l("This page cannot be used that way.")),
    413: (_l("Too large"), _l("What you sent is larger than Mainland accepts.")),
    429: (_l("Too many attempts"), _l("Too many attempts in a short time. Wait a minute and try again.")),
    500: (_l("Something went wrong"), _l("Mainland could not handle this request. Try again later.")),
    503: (_l("Mainland is busy"), _l("Mainland is busy, try again in a few seconds.")),
}


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.is_json or best == "application/json"


def error_page(code: int, title: str | None = None, message: str | None = None) -> tuple[Response | str, int]:
    """Render the error page for `code` (HTML, or JSON when the caller asked for JSON)."""
    default_title, default_message = _MESSAGES.get(code, _MESSAGES[500])
    title = title or str(default_title)
    message = message or str(default_message)
    if _wants_json():
        return jsonify(ok=False, error=message), code
    return render_template("errors/error.html", code=code, title=title, message=message), code


def _load_agent_for_language() -> None:
    # These handlers can run before the agent was loaded (the CSRF check runs first); the page
    # should still come in the agent's chosen language. Best effort: never fail an error page.
    try:
        from inbox.web.auth import current_agent

        current_agent()
    except Exception:  # the page falls back to the browser's language
        pass


def _csrf_error(exc: CSRFError):
    _load_agent_for_language()
    # The reason (missing, expired, wrong) stays in the log; the page says what to do.
    log.info("CSRF check failed on %s %s: %s", request.method, request.path, exc.description)
    return error_page(400, _("The form expired"), _("The form expired, reload the page and try again."))


def _http_error(exc: HTTPException):
    if exc.code is None or exc.code < 400:
        return exc
    _load_agent_for_language()
    body, code = error_page(exc.code if exc.code in _MESSAGES else 500 if exc.code >= 500 else 400)
    response = body if isinstance(body, Response) else Response(body, mimetype="text/html")
    response.status_code = exc.code
    if exc.code == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    if exc.code == 429:
        response.headers["Retry-After"] = str(_seconds_until_reset())
    return response


def _seconds_until_reset() -> int:
    try:
        current = limiter.current_limit
        return max(1, int(current.reset_at - time.time())) if current else 60
    except Exception:  # the storage is gone or no limit applied: a safe guess
        return 60


def _storage_error(exc: Exception):
    """A locked database (503, try again), a full disk or an unwritable database (503, tell the
    administrator): a page that says so instead of "something went wrong"; anything else is a bug."""
    found = storage_errors.kind(exc)
    if found is None:
        raise exc
    if isinstance(exc, storage_errors.ConnectionsBusy):
        # The page comes without the agent's name and language: loading them would wait for a
        # connection again.
        g.setdefault("agent", None)
    else:
        _load_agent_for_language()
    if found == storage_errors.LOCKED:
        log.warning("database stayed busy past the wait on %s %s: %s", request.method, request.path, exc)
        body, code = error_page(503)
    else:
        log.error("%s %s: %s (%s)", request.method, request.path, storage_errors.explain(exc), exc)
        body, code = error_page(503, _("Mainland cannot save right now"), _STORAGE_MESSAGES[found])
    response = body if isinstance(body, Response) else Response(body, mimetype="text/html")
    response.status_code = 503
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER if found == storage_errors.LOCKED else 300)
    return response


_STORAGE_MESSAGES = {
    storage_errors.FULL: _l("The server's disk is full, so what you just did was not saved. Tell your "
                            "administrator; once there is space again, try again."),
    storage_errors.UNWRITABLE: _l("The server cannot write to its database, so what you just did was "
                                  "not saved. Tell your administrator (the database file's owner or "
                                  "permissions changed)."),
    storage_errors.UNREACHABLE: _l("Mainland cannot reach its database server, so what you just did was "
                                   "not saved. Try again in a minute; if it persists, tell your administrator."),
}


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    limiter.init_app(app)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(sqlite3.DatabaseError, _storage_error)
    app.register_error_handler(psycopg.Error, _storage_error)
    app.register_error_handler(storage_errors.ConnectionsBusy, _storage_error)
    app.register_error_handler(OSError, _storage_error)
