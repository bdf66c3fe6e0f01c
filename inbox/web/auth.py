"""Signing in and out, who is signed in, and the decorators that guard pages.

Passwords are hashed with argon2-cffi's `PasswordHasher` as Argon2id with the OWASP parameters
(19 MiB, 2 passes, 1 lane: about 60 ms on a small 2-core server, where argon2-cffi's 64 MiB default
takes ten times as long; guessing is throttled by the rate limits anyway) and rehashed on
sign-in whenever those parameters change. A wrong password and an unknown address give the same page and take the same
time: unknown addresses are verified against a dummy hash.

Sessions are Flask's signed cookies, which have no server-side id to rotate. So signing in clears
the session and writes new contents (agent id, the agent's `session_epoch`, a fresh random nonce,
the time), and every request compares the epoch with the database: signing out, a new password
and disabling the agent bump the epoch, which ends every session of that agent at once. Sessions
also end `SESSION_MAX_AGE` after sign-in, whatever the cookie says, and after
`web.idle_timeout_minutes` without use (the cookie notes when it was last used; the requests an open
page makes by itself do not count).

`g.agent` is a dict (id, email, name, role, locale) for the signed-in agent, or None.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from inbox import clock, notifications
from inbox.i18n import LANGUAGES
from inbox.i18n import gettext as _
from inbox.store import now_iso
from inbox.web import devices, get_store, mainland
from inbox.web.security import limiter

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

#: A session ends this long after sign-in, even if the browser keeps the cookie.
SESSION_MAX_AGE = dt.timedelta(hours=12)
#: Failed sign-ins allowed per minute for one account from one address: guessing a password is slow.
LOGIN_LIMIT = "10 per minute"
#: ... for one account from anywhere (a spread-out guess at one password), and from one address for
#: any accounts (spraying one password over many). Both higher, so that people sharing an office's
#: address, or a colleague's typos, never lock anyone else out.
LOGIN_ACCOUNT_LIMIT = "30 per minute"
LOGIN_ADDRESS_LIMIT = "60 per minute"
#: The code step must follow the password within this time.
SECOND_STEP_MAX_AGE = dt.timedelta(minutes=5)
#: A session unused this long ends (`web.idle_timeout_minutes`; 0 turns it off).
DEFAULT_IDLE_MINUTES = 120
#: Requests an open page makes on its own (live updates, presence beats, new messages): not "use".
_BACKGROUND_ENDPOINTS = {"live.events", "live.presence", "conversations.messages_after"}
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_dummy_hash: str | None = None

_AGENT_KEYS = ("id", "email", "name", "role", "locale")


# Passwords ------------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problem(password: str) -> str | None:
    """Why `password` cannot be used, or None. Length only: composition rules make passwords worse."""
    if len(password) < MIN_PASSWORD_CHARS:
        return _("Use at least %(n)d characters.", n=MIN_PASSWORD_CHARS)
    if len(password) > MAX_PASSWORD_CHARS:
        return _("Use at most %(n)d characters.", n=MAX_PASSWORD_CHARS)
    if not password.strip():
        return _("A password cannot be only spaces.")
    return None


def new_password_from_form() -> tuple[str, dict[str, str]]:
    """The new password typed twice in a form (`password`, `repeat_password`), and what is wrong
    with it per field (empty when it can be used): invitations and password resets alike."""
    password = request.form.get("password", "")[:MAX_PASSWORD_CHARS + 1]
    repeat = request.form.get("repeat_password", "")[:MAX_PASSWORD_CHARS + 1]
    problem = password_problem(password)
    if problem:
        return password, {"password": problem}
    if password != repeat:
        return password, {"repeat_password": _("The two passwords differ.")}
    return password, {}


def _verify(password_hash: str | None, password: str) -> bool:
    global _dummy_hash
    if not password_hash:
        # Same work as a real check, so timing does not tell whether the address exists.
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        password_hash = _dummy_hash
        password = password + "\x00never"
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_matches(agent_id: int, password: str) -> bool:
    """Whether `password` is the agent's current password (same work when they have none)."""
    row = get_store().agent(agent_id)
    return _verify(row["password_hash"] if row else None, password[:MAX_PASSWORD_CHARS + 1])


def check_login(email: str, password: str) -> dict[str, Any] | None:
    """The agent for these credentials, or None. Also upgrades an outdated hash."""
    store = get_store()
    agent = store.agent_by_email(email) if email else None
    ok = _verify(agent["password_hash"] if agent else None, password)
    if not ok or agent is None or not agent["active"] or not agent["password_hash"]:
        return None
    if _hasher.check_needs_rehash(agent["password_hash"]):
        store.set_agent_password(agent["id"], hash_password(password), end_sessions=False)
    return agent


# Sessions -------------------------------------------------------------------------------------

def start_session(agent: dict[str, Any]) -> None:
    """Replace whatever the session held with a fresh sign-in of `agent`."""
    session.clear()
    session["agent_id"] = agent["id"]
    session["epoch"] = agent["session_epoch"]
    session["nonce"] = secrets.token_urlsafe(16)
    session["login_at"] = session["seen_at"] = int(clock.now().timestamp())
    g.agent = {k: agent[k] for k in _AGENT_KEYS}


def idle_timeout() -> dt.timedelta | None:
    """`web.idle_timeout_minutes` (default 120), or None when it is 0 (off)."""
    web = current_app.config["MAINLAND"].extra.get("web") or {}
    minutes = web.get("idle_timeout_minutes", DEFAULT_IDLE_MINUTES)
    return dt.timedelta(minutes=minutes) if minutes else None


def _idle_too_long(now: float) -> bool:
    """Whether the session went unused past the idle timeout; otherwise notes this request as use."""
    limit = idle_timeout()
    # Sessions from before this setting existed count from their sign-in.
    seen_at = session.get("seen_at", session.get("login_at"))
    if limit is not None and (not isinstance(seen_at, int) or now - seen_at > limit.total_seconds()):
        return True
    # Requests an open tab makes by itself are no sign of someone at the keyboard; writing the
    # cookie once a minute at most keeps it from changing on every request.
    if request.endpoint not in _BACKGROUND_ENDPOINTS and (not isinstance(seen_at, int) or now - seen_at >= 60):
        session["seen_at"] = int(now)
    return False


def begin_second_step(agent: dict[str, Any]) -> None:
    """Remember, in an otherwise empty session, whose password was right: nobody is signed in yet."""
    session.clear()
    session["second_step"] = {"agent_id": agent["id"], "epoch": agent["session_epoch"],
                              "at": int(clock.now().timestamp())}


def second_step_agent() -> dict[str, Any] | None:
    """The agent whose password was right in this session less than `SECOND_STEP_MAX_AGE` ago, or None."""
    pending = session.get("second_step")
    if not isinstance(pending, dict) or not isinstance(pending.get("agent_id"), int):
        return None
    agent = get_store().agent(pending["agent_id"])
    at = pending.get("at")
    if (agent is None or not agent["active"] or pending.get("epoch") != agent["session_epoch"]
            or not isinstance(at, int) or clock.now().timestamp() - at > SECOND_STEP_MAX_AGE.total_seconds()):
        return None
    return agent


def current_agent() -> dict[str, Any] | None:
    """The signed-in agent, checked against the database once per request."""
    if "agent" in g:
        return g.agent
    g.agent = None
    agent_id = session.get("agent_id")
    if agent_id is None:
        return None
    agent = get_store().agent(agent_id) if isinstance(agent_id, int) else None
    login_at = session.get("login_at")
    if (
        agent is None
        or not agent["active"]
        or session.get("epoch") != agent["session_epoch"]
        or not isinstance(login_at, int)
        or clock.now().timestamp() - login_at > SESSION_MAX_AGE.total_seconds()
    ):
        session.clear()
        return None
    if _idle_too_long(clock.now().timestamp()):
        session.clear()
        flash(_("You were signed out after %(minutes)d minutes without activity. Sign in again.",
                minutes=int(idle_timeout().total_seconds() // 60)), "info")
        return None
    g.agent = {k: agent[k] for k in _AGENT_KEYS}
    return g.agent


def _load_agent() -> None:
    if request.endpoint in (None, "static") or request.endpoint.startswith("introspect."):
        return
    current_agent()


# Guards ---------------------------------------------------------------------------------------

def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else "/" (no open redirects, IN-64/SEC-10)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    # Browsers treat "\" like "/" and drop tabs and newlines, so "/\evil" and "/\t/evil" leave the site.
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _wants_page() -> bool:
    """Whether the request is a page the browser shows, not a script's fetch or an event stream."""
    if request.headers.get("Sec-Fetch-Dest", "document") not in ("document", "iframe"):
        return False
    accept = request.accept_mimetypes
    return not (accept.best == "text/event-stream" or (accept.accept_json and not accept.accept_html))


def _login_redirect():
    if not _wants_page():
        # A live stream or script that followed a redirect would load the sign-in page behind the
        # agent's back, and the session it starts replaces the one of a sign-in form open in a tab
        # (its CSRF token no longer matches). Scripts get a plain 401 and no session at all.
        return Response(_("Sign in again."), status=401, mimetype="text/plain")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target if target and target != "/" else None))


def login_required(view: Callable) -> Callable:
    """Anonymous visitors go to the sign-in page (and come back afterwards)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_agent() is None:
            return _login_redirect()
        return view(*args, **kwargs)

    return wrapped


def role_required(*roles: str) -> Callable[[Callable], Callable]:
    """Only agents with one of `roles` may use the page; others get 403."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            agent = current_agent()
            if agent is None:
                return _login_redirect()
            if agent["role"] not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


# Views ----------------------------------------------------------------------------------------

def _email_key() -> str:
    return "login-email:" + request.form.get("email", "").strip().lower()[:320]


def _account_and_address_key() -> str:
    return f"login-pair:{request.remote_addr}:" + request.form.get("email", "").strip().lower()[:320]


def _failed_sign_in(response) -> bool:
    """Only failed attempts count against the limits: signing in (a redirect) costs nothing."""
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"], key_func=_account_and_address_key, deduct_when=_failed_sign_in)
@limiter.limit(LOGIN_ACCOUNT_LIMIT, methods=["POST"], key_func=_email_key, deduct_when=_failed_sign_in)
@limiter.limit(LOGIN_ADDRESS_LIMIT, methods=["POST"], deduct_when=_failed_sign_in)
def login():
    target = safe_next(request.values.get("next"))
    if request.method != "POST":
        if current_agent() is not None:
            return redirect(target)
        return render_template("auth/login.html", next=target, email="")
    email = request.form.get("email", "").strip()[:320]
    password = request.form.get("password", "")[:MAX_PASSWORD_CHARS + 1]
    agent = check_login(email, password)
    if agent is None:
        log.info("failed sign-in from %s", request.remote_addr)
        return render_template("auth/login.html", next=target, email=email,
                               error=_("Wrong email address or password.")), 401
    if get_store().second_factor(agent["id"])["secret"]:
        device = devices.remembered_for(agent)
        if device is not None:
            # A browser the agent chose to remember at the code step (inbox/web/devices.py).
            _audit("login", agent["id"], via="remembered_device", device=device["id"])
            start_session(agent)
            return redirect(target)
        # The password was right; no session until the code is too (inbox/web/account.py).
        begin_second_step(agent)
        return redirect(url_for("account.sign_in_code", next=target if target != "/" else None))
    # Audit first: if the database is busy the sign-in fails whole, with no session issued.
    _audit("login", agent["id"])
    start_session(agent)
    return redirect(target)


@bp.post("/logout")
def logout():
    # Imported here: inbox.web.oidc builds on this module.
    from inbox.web import oidc

    agent = current_agent()
    provider_sign_out = oidc.end_session_url(session.get(oidc.ID_TOKEN_KEY)) if agent is not None else None
    if agent is not None:
        get_store().end_agent_sessions(agent["id"])
        _audit("logout", agent["id"])
    session.clear()
    g.agent = None
    if provider_sign_out:
        # Signed in through the provider: end its session too (a page, not a redirect: see oidc.py).
        page = render_template("auth/signing_out.html", url=provider_sign_out, label=oidc.button_label())
        flash(_("You are signed out."), "info")  # for the sign-in page the provider sends the browser back to
        return page
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    agent = g.agent
    store = get_store()
    if request.method == "POST":
        action = request.form.get("action")
        if action == "language":
            locale = request.form.get("locale", "")
            if locale not in LANGUAGES and locale != "":
                abort(400)
            store.set_agent_locale(agent["id"], locale or None)
            agent["locale"] = locale or None
            flash(_("Your language is saved."), "success")
            return redirect(url_for("auth.settings"))
        if action == "password":
            return _change_password(agent)
        if action == "notifications":
            store.notifications.set_settings(agent["id"], notifications.settings_from_form(request.form), now_iso())
            flash(_("Your notification settings are saved."), "success")
            return redirect(url_for("auth.settings") + "#notifications")
        abort(400)
    return render_template("auth/settings.html", errors={}, **_notification_context(agent))


def _notification_context(agent: dict[str, Any]) -> dict[str, Any]:
    """The notifications section of the settings page: a checkbox per event and medium."""
    return {"notification_settings": get_store().notifications.settings(agent["id"]),
            "notification_events": [(e, _(notifications.EVENT_LABELS[e])) for e in notifications.EVENTS],
            "notification_media": [(m, _(notifications.MEDIUM_LABELS[m])) for m in notifications.MEDIA],
            "notification_email_minutes": max(1, round(
                notifications.settings_for(mainland().config).email_every.total_seconds() / 60))}


def end_other_sessions(agent_id: int) -> None:
    """End every session of the agent but this browser's, which goes on under the new epoch."""
    store = get_store()
    store.end_agent_sessions(agent_id)
    start_session(store.agent(agent_id))


def _change_password(agent: dict[str, Any]):
    store = get_store()
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    repeat = request.form.get("repeat_password", "")
    errors: dict[str, str] = {}
    row = store.agent(agent["id"])
    if not _verify(row["password_hash"] if row else None, current[:MAX_PASSWORD_CHARS + 1]):
        errors["current_password"] = _("This is not your current password.")
    problem = password_problem(new)
    if problem:
        errors["new_password"] = problem
    elif new != repeat:
        errors["repeat_password"] = _("The two new passwords differ.")
    if errors:
        return render_template("auth/settings.html", errors=errors, **_notification_context(agent)), 400
    epoch = store.set_agent_password(agent["id"], hash_password(new), end_sessions=True)
    _audit("password_changed", agent["id"])
    # This browser stays signed in under the new epoch; every other session has ended.
    row = store.agent(agent["id"])
    row["session_epoch"] = epoch
    start_session(row)
    flash(_("Your password is changed. You are signed out everywhere else."), "success")
    return redirect(url_for("auth.settings"))


def audit_agent(action: str, agent_id: int, **details: Any) -> None:
    """An audit entry by the agent about themselves, with the client's address."""
    _audit(action, agent_id, **details)


def _audit(action: str, agent_id: int, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(now_iso(), f"agent:{agent_id}", action, "agent", agent_id, ip=request.remote_addr, **details)


def _no_store(response):
    # Pages show personal data: no copy in browser or proxy caches (ASVS 14.3.2).
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.before_request(_load_agent)
    app.after_request(_no_store)
    app.jinja_env.globals["current_agent"] = current_agent
