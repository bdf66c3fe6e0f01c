"""Operator endpoints under /-/: `/-/health` says whether the app and its database work.

No sign-in is needed for "is it up"; the totals (messages, conversations, customers...) are
added only for a signed-in agent or a bearer API token, since they tell outsiders how busy the
business is; so is `write_lock`, how long this process's write transactions held the database's
write lock (inbox/store/write_locks.py). Never names, addresses or channel details. A database that cannot be read gives 503
with `"db": "error"` (no error text: it could name paths).
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from inbox.store import write_locks
from inbox.web import get_store
from inbox.web.auth import current_agent
from inbox.web.health import bearer_token_ok

log = logging.getLogger(__name__)

bp = Blueprint("introspect", __name__, url_prefix="/-")

_TOTALS = ("messages", "conversations", "customers", "quarantined", "attachments")


@bp.get("/health")
def health():
    try:
        figures = get_store().counts()
    except Exception:
        log.exception("health check: the database cannot be read")
        response = jsonify(ok=False, db="error")
        response.status_code = 503
    else:
        if current_agent() is not None or bearer_token_ok():
            response = jsonify(ok=True, db="ok", counts={key: figures[key] for key in _TOTALS},
                               write_lock=write_locks.figures())
        else:
            response = jsonify(ok=True, db="ok")
    response.headers["Cache-Control"] = "no-store"
    return response
