"""Account safety: password reset by email, and the second factor (TOTP) at sign-in.

Password reset

"Forgot your password?" on the sign-in page asks for an email address and always gives the same
answer, whether or not an active agent has that address, so the page cannot be used to find out
who works here. For an agent, a link goes out by mail (through the same SMTP settings and session
as the weekly digest and the notification mails, `inbox.digest.smtp_session`). The link's token is
random (256 bits), kept only as a SHA-256 (a copied database yields no working link), works once
and for `RESET_VALID`, and asking again ends the earlier link.

The answer also takes about as long either way: storing the link and talking to the SMTP server
happen in a background thread, so the request itself does the same work (one look-up) for a known
and an unknown address.

Setting the new password ends every session of the agent (the session epoch, inbox/web/auth.py)
and is audited; the agent then signs in with it as usual (so a second factor is still asked for).

Second factor
An agent sets up TOTP at `/account/security`: a QR code (and the secret as text) for an authenticator
app, confirmed by a first code, then ten recovery codes shown once. From then on a right password
leads to a second step (`/login/code`) that asks for a code or a recovery code; the session is only
issued after it. `web.require_second_factor` lists roles that must have one: such an agent without
it is sent to set it up after sign-in and can use no other page until they have. Turning it off
needs a current code or the password. Codes themselves: inbox/second_factor.py.

With `web.remember_device_days` above 0 the code step offers "Remember this device for N days", and
the security page lists the remembered devices, to forget one or all (inbox/web/devices.py).
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import logging
import secrets
import smtplib
import threading
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import force_locale

from inbox import clock, digest, second_factor, settings
from inbox.i18n import LANGUAGES
from inbox.i18n import gettext as _
from inbox.store.base import iso, now_iso
from inbox.triage import LOOP_HEADER
from inbox.web import devices, get_store, mainland
from inbox.web.admin import token_hash
from inbox.web.auth import (
    MAX_PASSWORD_CHARS,
    audit_agent,
    current_agent,
    end_other_sessions,
    hash_password,
    login_required,
    new_password_from_form,
    password_matches,
    safe_next,
    second_step_agent,
    start_session,
)
from inbox.web.security import limiter

log = logging.getLogger(__name__)

bp = Blueprint("account", __name__)

#: How long a reset link works.
RESET_VALID = dt.timedelta(minutes=30)
#: Links asked for one typed address (known or not: the limit must not tell), and from one client
#: address for any addresses. Each asked-for link is a mail in someone's inbox: keep it to a few.
RESET_ACCOUNT_LIMIT = "3 per 15 minutes"
RESET_ADDRESS_LIMIT = "20 per hour"
#: Attempts at the new-password form from one address (the token itself cannot be guessed).
RESET_FORM_LIMIT = "30 per minute"
#: Codes tried at the sign-in step, per account and per client address.
CODE_ACCOUNT_LIMIT = "5 per minute"
CODE_ADDRESS_LIMIT = "30 per minute"
#: Codes tried on the security page (turning the factor on or off), per agent.
SECURITY_LIMIT = "10 per minute"
MAX_EMAIL_CHARS = 320
MAX_TOKEN_CHARS = 100


def _typed_email() -> str:
    return request.form.get("email", "").strip().lower()[:MAX_EMAIL_CHARS]


def _reset_account_key() -> str:
    return "reset-email:" + _typed_email()


# Asking for a link ------------------------------------------------------------------------------

@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(RESET_ACCOUNT_LIMIT, methods=["POST"], key_func=_reset_account_key)
@limiter.limit(RESET_ADDRESS_LIMIT, methods=["POST"])
def forgot_password():
    if request.method != "POST":  # HEAD and OPTIONS included: they never send a link
        return render_template("auth/forgot.html", sent=False)
    typed = _typed_email()
    agent = get_store().agent_by_email(typed) if typed else None
    if agent is not None and agent["active"]:
        _send_link_in_background(agent)
    else:
        log.info("password reset asked for an address with no active agent, from %s", request.remote_addr)
    return render_template("auth/forgot.html", sent=True)


def _send_link_in_background(agent: dict[str, Any]) -> None:
    """Make the link and its mail now (the request knows the language and URLs); store and send later."""
    token = secrets.token_urlsafe(32)
    app = mainland()
    link = f"{app.config.base_url}{url_for('account.reset_password', token=token)}"
    locale = agent["locale"] if agent["locale"] in LANGUAGES else app.config.default_language
    with force_locale(locale or "en"):
        subject = _("Reset your Mainland password")
        text = _mail_text(agent["email"], link)
    job = {"agent_id": agent["id"], "digest": token_hash(token), "to": agent["email"], "subject": subject,
           "text": text, "ip": request.remote_addr}
    threading.Thread(target=_store_and_send, args=(app, job), name="password-reset-mail", daemon=True).start()


def _mail_text(address: str, link: str) -> str:
    minutes = int(RESET_VALID.total_seconds() // 60)
    return "\n\n".join([
        _("Someone, hopefully you, asked to reset the password of the Mainland account %(email)s.", email=address),
        _("Choose a new password with this link. It works once, for %(minutes)d minutes:", minutes=minutes),
        link,
        _("If you did not ask for this, ignore this mail: your password stays as it is."),
    ]) + "\n"


def _store_and_send(app: Any, job: dict[str, Any]) -> None:
    """The background half: keep the token's hash, audit, and mail the link. Failures are logged."""
    now = clock.now()
    store = app.open_store(check=False)
    try:
        store.create_password_reset(job["agent_id"], job["digest"], expires_at=iso(now + RESET_VALID), now=iso(now))
        with store.write():
            store.audit(iso(now), "anonymous", "password_reset_requested", "agent", job["agent_id"], ip=job["ip"])
        smtp = digest.smtp_settings(app)
        message = _message(job, smtp, app.config.instance_id, app.config.mail_domain)
        with digest.smtp_session(smtp) as server:
            server.sendmail(smtp["from_address"], [job["to"]], message.as_bytes())
    except (digest.DigestError, smtplib.SMTPException, OSError) as exc:
        log.warning("password reset mail to agent %s not sent: %s", job["agent_id"], exc)
    except Exception:  # a thread's exception would only reach stderr: keep it in the log
        log.exception("password reset mail to agent %s failed", job["agent_id"])
    finally:
        store.close()


def _message(job: dict[str, Any], smtp: dict[str, Any], instance_id: str, domain: str) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((smtp["from_name"], smtp["from_address"]))
    msg["To"] = job["to"]
    msg["Subject"] = job["subject"]
    msg["Date"] = email.utils.format_datetime(clock.now())
    msg["Message-ID"] = make_msgid(idstring="password-reset", domain=domain)
    # RFC 3834: a notice, not a conversation; the loop header keeps an auto-reply out of the inbox.
    msg["Auto-Submitted"] = "auto-generated"
    msg[LOOP_HEADER] = instance_id
    msg.set_content(job["text"])
    return msg


# Using the link ---------------------------------------------------------------------------------

@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(RESET_FORM_LIMIT, methods=["POST"])
def reset_password(token: str):
    store = get_store()
    # The path is what was mailed; no trimming or case folding, so only the exact token works.
    if not token or len(token) > MAX_TOKEN_CHARS:
        abort(404)
    digest_ = token_hash(token)
    reset = store.live_password_reset(digest_)
    if reset is None:
        return _no_referrer(render_template("auth/reset_gone.html")), 404
    if request.method != "POST":
        return _no_referrer(render_template("auth/reset.html", reset=reset, errors={}))
    password, errors = new_password_from_form()
    if errors:
        return _no_referrer(render_template("auth/reset.html", reset=reset, errors=errors)), 400
    agent_id = store.use_password_reset(digest_, hash_password(password))
    if agent_id is None:  # used up in another tab between the two checks
        return _no_referrer(render_template("auth/reset_gone.html")), 404
    with store.write():
        store.audit(now_iso(), f"agent:{agent_id}", "password_reset", "agent", agent_id, ip=request.remote_addr)
    flash(_("Your password is changed and you are signed out everywhere. Sign in with the new password."),
          "success")
    return redirect(url_for("auth.login"))


def _no_referrer(body: str):
    """The page's URL holds the token: never send it on as a Referer."""
    response = make_response(body)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# Second factor: the sign-in step ---------------------------------------------------------------

def _pending_key() -> str:
    pending = session.get("second_step")
    agent_id = pending.get("agent_id") if isinstance(pending, dict) else None
    return f"sign-in-code:{agent_id}"


def _failed_code(response) -> bool:
    return response.status_code != 302


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(CODE_ACCOUNT_LIMIT, methods=["POST"], key_func=_pending_key, deduct_when=_failed_code)
@limiter.limit(CODE_ADDRESS_LIMIT, methods=["POST"], deduct_when=_failed_code)
def sign_in_code():
    target = safe_next(request.values.get("next"))
    agent = second_step_agent()
    if agent is None:
        session.pop("second_step", None)
        if current_agent() is not None:
            return redirect(target)
        flash(_("Sign in again: the code must follow the password within a few minutes."), "info")
        return redirect(url_for("auth.login"))
    remember_days = devices.remember_days()
    if request.method != "POST":
        return render_template("auth/code.html", next=target, error=None, remember_days=remember_days)
    code = request.form.get("code", "")[:64]
    used = _use_code(agent["id"], code)
    if used is None:
        log.info("wrong sign-in code for agent %s from %s", agent["id"], request.remote_addr)
        return render_template("auth/code.html", next=target, error=_("This code is not right."),
                               remember_days=remember_days), 401
    audit_agent("login", agent["id"])
    if used == "recovery":
        audit_agent("recovery_code_used", agent["id"])
    start_session(agent)
    if used == "recovery":
        left = get_store().second_factor(agent["id"])["codes_left"]
        flash(_("You used a recovery code. %(n)d are left: make new ones on the security page.", n=left), "info")
    response = redirect(target)
    if remember_days and request.form.get("remember") == "1":
        label = devices.remember(response, agent["id"])
        audit_agent("device_remembered", agent["id"], label=label, days=remember_days)
    return response


def _use_code(agent_id: int, code: str) -> str | None:
    """"totp" or "recovery" when `code` is a valid, unused code of the agent (and uses it up), else None."""
    store = get_store()
    state = store.second_factor(agent_id)
    if not state["secret"]:
        return None
    step = second_factor.matching_step(state["secret"], code)
    if step is not None:
        return "totp" if store.use_totp_step(agent_id, step) else None
    if second_factor.looks_like_recovery_code(code) and store.use_recovery_code(
            agent_id, second_factor.recovery_hash(code)):
        return "recovery"
    return None


# Second factor: setting it up and turning it off -----------------------------------------------

def _security_key() -> str:
    agent = current_agent()
    return f"security:{agent['id'] if agent else request.remote_addr}"


@bp.route("/account/security", methods=["GET", "POST"])
@login_required
@limiter.limit(SECURITY_LIMIT, methods=["POST"], key_func=_security_key)
def security():
    agent = g.agent
    if request.method != "POST":
        return _security_page(agent)
    action = request.form.get("action")
    if action == "start":
        get_store().set_pending_totp(agent["id"], second_factor.new_secret())
        return redirect(url_for("account.security") + "#set-up")
    if action == "confirm":
        return _confirm(agent)
    if action == "disable":
        return _disable(agent)
    if action == "new_codes":
        return _new_recovery_codes(agent)
    if action == "sign_out_everywhere":
        # Remembered devices too: whoever had one must pass the code step again.
        get_store().end_agent_sessions(agent["id"], forget_devices=True)
        audit_agent("signed_out_everywhere", agent["id"])
        session.clear()
        flash(_("You are signed out on every device, this one too."), "info")
        return redirect(url_for("auth.login"))
    if action == "forget_device":
        return _forget_device(agent)
    if action == "forget_devices":
        return _forget_devices(agent)
    abort(400)


def _security_page(agent: dict[str, Any], *, errors: dict[str, str] | None = None,
                   recovery_codes: list[str] | None = None, status: int = 200):
    state = get_store().second_factor(agent["id"])
    qr = secret = None
    if state["pending_secret"] and not state["secret"]:
        qr = second_factor.qr_svg(second_factor.provisioning_uri(state["pending_secret"], agent["email"]))
        # In groups of four, as authenticator apps show and accept it: easier to type, and it wraps.
        secret = " ".join(state["pending_secret"][i:i + 4] for i in range(0, len(state["pending_secret"]), 4))
    this_device = devices.this_device()
    return render_template("auth/security.html", state=state, qr=qr, secret=secret, errors=errors or {},
                           recovery_codes=recovery_codes, required=role_must_have_second_factor(agent["role"]),
                           remember_days=devices.remember_days(),
                           remembered_devices=get_store().remembered_devices(agent["id"], now_iso()),
                           this_device_id=this_device["id"] if this_device else None), status


def _confirm(agent: dict[str, Any]):
    store = get_store()
    state = store.second_factor(agent["id"])
    if state["secret"] or not state["pending_secret"]:
        return redirect(url_for("account.security"))
    step = second_factor.matching_step(state["pending_secret"], request.form.get("code", "")[:64])
    if step is None:
        return _security_page(agent, errors={"code": _("This code is not right. Type the code your app shows now.")},
                              status=400)
    codes = second_factor.new_recovery_codes()
    store.confirm_totp(agent["id"], state["pending_secret"], step, [second_factor.recovery_hash(c) for c in codes])
    audit_agent("second_factor_enabled", agent["id"])
    # A session opened with the password alone should not outlive the change.
    end_other_sessions(agent["id"])
    flash(_("Two-step sign-in is on. Keep your recovery codes somewhere safe."), "success")
    # Shown in this answer only: never stored in the clear, never shown again.
    return _security_page(agent, recovery_codes=codes)


def _proven(agent_id: int, secret: str) -> bool:
    """Whether the form's `proof` is a current (unused) code or the agent's password."""
    proof = request.form.get("proof", "")[:MAX_PASSWORD_CHARS + 1]
    step = second_factor.matching_step(secret, proof)
    if step is not None:
        return get_store().use_totp_step(agent_id, step)
    return password_matches(agent_id, proof)


def _disable(agent: dict[str, Any]):
    store = get_store()
    state = store.second_factor(agent["id"])
    if not state["secret"]:
        return redirect(url_for("account.security"))
    if not _proven(agent["id"], state["secret"]):
        return _security_page(agent, errors={"proof": _("This is neither a current code nor your password.")},
                              status=400)
    store.disable_totp(agent["id"])
    audit_agent("second_factor_disabled", agent["id"])
    flash(_("Two-step sign-in is off."), "success")
    return redirect(url_for("account.security"))


def _new_recovery_codes(agent: dict[str, Any]):
    """Ten new recovery codes (the old ones stop working), shown once; needs a code or the password."""
    store = get_store()
    state = store.second_factor(agent["id"])
    if not state["secret"]:
        return redirect(url_for("account.security"))
    if not _proven(agent["id"], state["secret"]):
        return _security_page(agent, errors={"codes_proof": _("This is neither a current code nor your password.")},
                              status=400)
    codes = second_factor.new_recovery_codes()
    store.replace_recovery_codes(agent["id"], [second_factor.recovery_hash(c) for c in codes])
    audit_agent("recovery_codes_replaced", agent["id"])
    return _security_page(agent, recovery_codes=codes)


# Remembered devices -----------------------------------------------------------------------------

def _forget_device(agent: dict[str, Any]):
    store = get_store()
    device_id = request.form.get("device_id", "")
    device = next((d for d in store.remembered_devices(agent["id"], now_iso()) if str(d["id"]) == device_id), None)
    if device is None or not store.forget_device(agent["id"], device["id"]):
        abort(404)
    audit_agent("device_forgotten", agent["id"], device=device["id"], label=device["label"])
    flash(_("%(device)s is forgotten: it asks for a code at the next sign-in.", device=device["label"]), "success")
    return redirect(url_for("account.security") + "#devices")


def _forget_devices(agent: dict[str, Any]):
    count = get_store().forget_devices(agent["id"])
    audit_agent("devices_forgotten", agent["id"], count=count)
    flash(_("Every device is forgotten: each asks for a code at the next sign-in."), "success")
    response = redirect(url_for("account.security") + "#devices")
    devices.forget_cookie(response)
    return response


# Roles that must have a second factor ----------------------------------------------------------

def role_must_have_second_factor(role: str) -> bool:
    roles, _in_file = settings.second_factor_roles(mainland().config)
    return role in roles


#: What an agent who must still set up a second factor may use.
_OPEN_WHILE_ENROLLING = {"account.security", "auth.logout", "static"}


def _require_second_factor():
    if request.endpoint in (None, *_OPEN_WHILE_ENROLLING) or request.endpoint.startswith("introspect."):
        return None
    agent = current_agent()
    if agent is None or not role_must_have_second_factor(agent["role"]):
        return None
    if get_store().second_factor(agent["id"])["secret"]:
        return None
    flash(_("Your role needs two-step sign-in. Set it up to go on."), "info")
    return redirect(url_for("account.security"))


def init_app(app: Flask) -> None:
    app.before_request(_require_second_factor)
