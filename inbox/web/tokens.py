"""API tokens: who may call the bearer-token routes, with which scopes, and the admin page that manages them.

Routes (admins only):

- `GET  /admin/tokens`                     the tokens: name, scopes, made by and when, last used, expiry, state;
                                           the `api_tokens` of the config file read-only beside them
- `POST /admin/tokens`                     make a token (name, scopes, expiry); the token is shown once
- `POST /admin/tokens/<id>/revoke`         revoke one (the form confirms first)

Every bearer-token route asks `bearer_caller()` who is calling and checks its own scope (`SCOPES`)
with `scope_refusal()`: no valid token is a 401, a valid token without the scope a 403 whose JSON
names the missing scope. A token is `ml_` and 43 URL-safe characters (32 random bytes). The
database keeps only its SHA-256 and its first characters (`ml_ab12cd`, to recognise it on the page).

Why a plain SHA-256 and not a password hash: the token is 32 random bytes, so there is nothing to
guess and a slow hash (Argon2, bcrypt) would add nothing but a cost on every API call; and a
deterministic hash lets us find the row by its hash. Looking up by hash also keeps the timing
honest: the index compares the *hash* of what was sent, and how many leading bytes of a hash
match says nothing about how much of a token matched. Tokens from the config file (`api_tokens`,
the bootstrap) have every scope; they are compared as SHA-256 digests with `hmac.compare_digest`,
against every configured token, so neither length nor position leaks through the time taken.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, flash, g, jsonify, redirect, render_template, request, url_for

from inbox import clock
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.sanitize import one_line
from inbox.store import now_iso
from inbox.store.base import iso, parse_iso
from inbox.store.tokens import ApiToken
from inbox.web import get_store, mainland
from inbox.web.auth import role_required

bp = Blueprint("tokens", __name__)

#: What a token may do, named after the routes that exist. Each bearer-token route names one.
SCOPES: dict[str, Any] = {
    "customers:read": _l("Read customers (GET /api/customers/…)"),
    "customers:write": _l("Create and update customers (POST /api/customers)"),
    "health:read": _l("Read connector health and totals (/-/connectors, /-/health)"),
    "read": _l("Read conversations, messages, customers, agents and teams (GET /api/v1/…)"),
    "write": _l("Change conversations, reply and add notes (PATCH and POST /api/v1/…)"),
    "admin": _l("Everything the REST API v1 allows, reading and writing"),
}
#: Every token starts so, which makes a leaked one easy to find with secret scanners and in logs.
TOKEN_PREFIX = "ml_"
#: How much of a token the page keeps showing: the prefix and six random characters.
SHOWN_CHARS = len(TOKEN_PREFIX) + 6
#: Expiry choices of the form, in days ("" = never).
EXPIRY_DAYS = ("30", "90", "365", "")
DEFAULT_EXPIRY = "90"
MAX_NAME_CHARS = 80

admin_only = role_required("admin")


# Who is calling -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ApiCaller:
    """A request's valid bearer token: how the audit log names it, and what it may do."""

    actor: str
    scopes: frozenset[str]
    token_id: int | None = None


def new_token() -> str:
    """A fresh token: the prefix and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _presented_token() -> str | None:
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


def _config_caller(token: str) -> ApiCaller | None:
    given = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    found = None
    for index, secret in enumerate(mainland().config.extra.get("api_tokens") or []):
        # Compare with every token, digest against digest: the time says neither which nor how much.
        if secret and hmac.compare_digest(given, hashlib.sha256(str(secret).encode()).digest()) and found is None:
            found = index
    if found is None:
        return None
    return ApiCaller(actor=f"api:{found}", scopes=frozenset(SCOPES))


def token_state(token: ApiToken, now: dt.datetime) -> str:
    """`active`, `expired` or `revoked`."""
    if token.revoked_at:
        return "revoked"
    expires = parse_iso(token.expires_at)
    if expires is not None and expires <= now:
        return "expired"
    return "active"


def _stored_caller(token: str) -> ApiCaller | None:
    store = get_store()
    row = store.api_tokens.by_hash(token_digest(token))
    now = clock.now()
    if row is None or token_state(row, now) != "active":
        return None
    store.api_tokens.note_used(row, now)
    return ApiCaller(actor=f"token:{row.id}", scopes=frozenset(row.scopes), token_id=row.id)


def bearer_caller() -> ApiCaller | None:
    """The request's valid bearer token (config file or database), or None; worked out once per request."""
    if "api_caller" not in g:
        token = _presented_token()
        g.api_caller = None if token is None else (_config_caller(token) or _stored_caller(token))
    return g.api_caller


def json_error(status: int, message: str, **more: Any) -> Response:
    response = jsonify(ok=False, error=message, **more)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mainland"'
    return response


def missing_scope(scope: str) -> Response:
    """The 403 for a valid token that lacks `scope`."""
    return json_error(403, f"this token lacks the scope {scope}", missing_scope=scope)


def scope_refusal(scope: str) -> Response | None:
    """None when the request's bearer token has `scope`; else the 401 (no valid token) or 403 to send."""
    caller = bearer_caller()
    if caller is None:
        return json_error(401, "a valid bearer token is required")
    if scope not in caller.scopes:
        return missing_scope(scope)
    return None


# The admin page ------------------------------------------------------------------------------

def _audit(action: str, token_id: int, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(now_iso(), f"agent:{g.agent['id']}", action, "api_token", token_id,
                    ip=request.remote_addr, **details)


def expiry_label(days: str) -> str:
    return {"30": _("30 days"), "90": _("90 days"), "365": _("1 year")}.get(days) or _("Never")


def state_label(state: str) -> str:
    return {"active": _("active"), "expired": _("expired"), "revoked": _("revoked")}.get(state, state)


def _page(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None, status: int = 200):
    now = clock.now()
    tokens = get_store().api_tokens.all()
    config_tokens = len(mainland().config.extra.get("api_tokens") or [])
    return render_template(
        "admin/tokens.html", tokens=tokens, states={t.id: token_state(t, now) for t in tokens},
        config_tokens=config_tokens, scopes=SCOPES,
        expiry_days=EXPIRY_DAYS, errors=errors or {},
        form=form or {"name": "", "scopes": set(), "expiry": DEFAULT_EXPIRY},
    ), status


@bp.get("/admin/tokens")
@admin_only
def index():
    return _page()


@bp.post("/admin/tokens")
@admin_only
def create():
    # Allow-list: name, scope, expiry. Nothing else from the form is read.
    name = one_line(request.form.get("name", ""))
    scopes = {s for s in request.form.getlist("scope") if s in SCOPES}
    expiry = request.form.get("expiry", DEFAULT_EXPIRY)
    form = {"name": name[:MAX_NAME_CHARS], "scopes": scopes, "expiry": expiry}
    errors = {}
    if not name or len(name) > MAX_NAME_CHARS:
        errors["name"] = _("Enter a name of at most %(n)d characters, e.g. the system that will use it.",
                           n=MAX_NAME_CHARS)
    if not scopes:
        errors["scopes"] = _("Choose at least one scope.")
    if expiry not in EXPIRY_DAYS:
        errors["expiry"] = _("Choose when the token expires.")
    if errors:
        return _page(errors, form, 400)
    token = new_token()
    now = clock.now()
    expires_at = iso(now + dt.timedelta(days=int(expiry))) if expiry else None
    token_id = get_store().api_tokens.create(name=name, token_hash=token_digest(token), prefix=token[:SHOWN_CHARS],
                                             scopes=scopes, created_by=g.agent["id"], expires_at=expires_at,
                                             now=iso(now))
    _audit("api_token_created", token_id, name=name, scopes=sorted(scopes), expires_at=expires_at)
    page = render_template("admin/tokens_created.html", token=token, token_row=get_store().api_tokens.get(token_id))
    response = Response(page)
    # The only time the token exists outside the caller's hands: no cache may keep the page.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/admin/tokens/<int:token_id>/revoke")
@admin_only
def revoke(token_id: int):
    token = get_store().api_tokens.get(token_id)
    if token is None:
        abort(404)
    if get_store().api_tokens.revoke(token_id, by=g.agent["id"]):
        _audit("api_token_revoked", token_id, name=token.name)
        flash(_('The token "%(name)s" is revoked: requests with it are refused from now on.', name=token.name),
              "success")
    else:
        flash(_('The token "%(name)s" was revoked already.', name=token.name), "success")
    return redirect(url_for("tokens.index"))


def init_app(app) -> None:
    app.jinja_env.globals.update(token_expiry_label=expiry_label, token_state_label=state_label)
