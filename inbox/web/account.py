"""Account safety pages that need no sign-in: asking for a password reset link, and using it.

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

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import force_locale

from inbox import clock, digest
from inbox.i18n import LANGUAGES
from inbox.i18n import gettext as _
from inbox.store.base import iso, now_iso
from inbox.triage import LOOP_HEADER
from inbox.web import get_store, mainland
from inbox.web.admin import token_hash
from inbox.web.auth import MAX_PASSWORD_CHARS, hash_password, password_problem
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
    password = request.form.get("password", "")[:MAX_PASSWORD_CHARS + 1]
    repeat = request.form.get("repeat_password", "")[:MAX_PASSWORD_CHARS + 1]
    errors = {}
    problem = password_problem(password)
    if problem:
        errors["password"] = problem
    elif password != repeat:
        errors["repeat_password"] = _("The two passwords differ.")
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
