"""The public contact form pages: what a site embeds, and where its submissions come in.

Routes (every one only for a configured, enabled channel of kind "webform"; 404 otherwise):

- `GET  /forms/<channel>`            the form page, framable by the channel's `allowed_origins`
- `POST /forms/<channel>`            the form's own submit: thank-you page, or the form again with errors
- `GET  /forms/<channel>/embed.js`   a script for site owners that inserts the form as an iframe
- `GET  /api/forms/<channel>`        JSON: fresh hidden token fields, for a site's own JavaScript form
- `POST /api/forms/<channel>`        JSON or multipart in, `{"ok": true, "conversation": token}` out
- `OPTIONS /api/forms/<channel>`     CORS preflight

The form is posted from other sites, where our session cookie is not sent, so Flask-WTF's CSRF
token cannot work; the blueprint is exempt and the connector's signed form token, the honeypot,
an Origin/Referer allow-list and Flask-Limiter per-IP limits protect it instead. All parsing and
checking of the body is the connector's (connectors/webform.py); this module maps the outcomes to
HTTP. CORS answers name only an allowed origin, never `*` and never an echo of any Origin.
See docs/web-forms.md.
"""

from __future__ import annotations

import logging
import time

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException

from connectors.base import WebhookRequest
from connectors.webform import FormError, FormRefused, Submission, WebformConnector, origin_of
from inbox.i18n import gettext as _
from inbox.i18n import ngettext
from inbox.web import get_store
from inbox.web.own_endpoints import channel_connector, connector_made, own_origins
from inbox.web.security import csrf, limiter

log = logging.getLogger(__name__)

bp = Blueprint("forms", __name__)
csrf.exempt(bp)

#: How long a browser may cache a CORS preflight answer.
PREFLIGHT_MAX_AGE = 600
_HIDDEN = ("submission_id", "issued_at", "token")


# The channel ------------------------------------------------------------------------------------

def _request_origin() -> str | None:
    """Who is posting: the Origin header, else the Referer's origin; None when neither is sent.

    A browser sends Origin on every cross-site POST; `null` (sandboxed frames, privacy redirects)
    is kept as the string "null", which no allow-list contains.
    """
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin_of(origin) or "null"
    referer = request.headers.get("Referer")
    if referer:
        return origin_of(referer) or "null"
    return None


def _check_origin(connector: WebformConnector) -> str | None:
    """403 unless the request comes from us, from an allowed site, or names no origin at all."""
    origin = _request_origin()
    if origin is not None and origin not in own_origins() and origin not in connector.allowed_origins:
        log.info("web form %s: refused a post from origin %s", connector.name, origin)
        abort(403)
    return origin


def _cors_origin() -> str | None:
    """The Origin to name in Access-Control-Allow-Origin: only one the channel allows."""
    origin = request.headers.get("Origin")
    connector = connector_made(WebformConnector)
    if not origin or connector is None:
        return None
    origin = origin_of(origin)
    if origin and (origin in connector.allowed_origins or origin in own_origins()):
        return origin
    return None


# Rate limits (Flask-Limiter): one bucket per channel and client IP, shared by both submit routes.

def _limit_value() -> str:
    channel = (request.view_args or {}).get("channel", "")
    config = current_app.extensions["mainland"].config.channels.get(channel)
    if config is None or config.kind != WebformConnector.kind:
        return "1000 per hour"  # the view answers 404 anyway
    settings = WebformConnector.check_config(config.settings)
    return f"{settings['per_ip_per_hour']} per hour;{settings['per_ip_per_day']} per day"


def _limit_scope(endpoint: str) -> str:
    return f"webform:{(request.view_args or {}).get('channel', '')}"


_submission_limit = limiter.shared_limit(_limit_value, scope=_limit_scope, methods=["POST"])


# Reading and accepting a submission ---------------------------------------------------------------

def _read_body(connector: WebformConnector) -> bytes:
    """The request body, 413 when it is larger than any genuine submission of this form can be."""
    cap = connector.max_request_bytes
    if request.content_length is not None and request.content_length > cap:
        abort(413)
    body = request.stream.read(cap + 1)
    if len(body) > cap:
        abort(413)
    return body


def _webhook_request(connector: WebformConnector) -> WebhookRequest:
    return WebhookRequest(
        body=_read_body(connector),
        headers={k: v for k, v in request.headers.items()},
        remote_addr=request.remote_addr,
    )


def _ingest(connector: WebformConnector, webhook: WebhookRequest) -> tuple[Submission, str | None]:
    """Verify, parse and store the submission; its conversation token (also for a replay)."""
    connector.verify_webhook(webhook)
    [item] = connector.parse_webhook(webhook).items
    store = get_store()
    report = current_app.extensions["mainland"].ingestor(store).ingest_one(connector.name, item)
    if report.quarantined:
        log.warning("web form %s: submission %s was quarantined", connector.name, item.external_id)
    elif report.duplicates:
        log.info("web form %s: submission %s was sent again; stored once", connector.name, item.external_id)
    return connector.read(webhook), store.webforms.conversation_token_for_item(connector.name, item.external_id)


def _submitted(connector: WebformConnector, webhook: WebhookRequest) -> Submission | None:
    try:
        return connector.read(webhook)
    except FormError:
        return None


def _message_for(field: str, code: str, connector: WebformConnector) -> str:
    """The visitor-facing text for a connector error code."""
    if code == "required":
        return _("This field is required.")
    if code == "invalid_email":
        return _("Enter one email address, like name@example.com.")
    if code == "too_long":
        return _("This is too long.")
    if code == "too_large" and field == "message":
        return _("The message is too long: at most %(n)s characters.", n=connector.config["max_text_chars"])
    if code == "too_many":
        return ngettext("Attach at most %(num)d file.", "Attach at most %(num)d files.",
                        int(connector.config["max_attachments"]))
    if code == "file_too_large":
        return _("Each file may be at most %(size)s MB.", size=_megabytes(connector.max_attachment_bytes))
    if code == "too_large":
        return _("What you sent is too large.")
    if code == "expired":
        return _("This form has expired. Check your message and send it again.")
    if code == "invalid_token":
        return _("This form could not be verified. Check your message and send it again.")
    return _("The form could not be read. Please try again.")


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f}".removesuffix(".0")


def _translated(error: FormError, connector: WebformConnector) -> dict[str, str]:
    return {field: _message_for(field, error.codes.get(field, ""), connector) for field in error.errors}


# The form page ----------------------------------------------------------------------------------

def _render_form(connector: WebformConnector, *, values: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, hidden: dict[str, str] | None = None,
                 status: int = 200) -> tuple[str, int]:
    values = values or {}
    if hidden is None or not all(hidden.get(k) for k in _HIDDEN):
        hidden = connector.new_form_token()
    page = render_template(
        "forms/form.html",
        channel=connector.name,
        title=connector.config["title"] or _("Contact us"),
        intro=connector.config["intro"],
        values={k: values.get(k, "") for k in ("name", "email", "subject", "message")},
        errors=errors or {},
        hidden={k: hidden[k] for k in _HIDDEN},
        max_attachments=int(connector.config["max_attachments"]),
        max_attachment_mb=_megabytes(connector.max_attachment_bytes),
        max_text_chars=int(connector.config["max_text_chars"]),
    )
    return page, status


def _render_message(connector: WebformConnector, message: str, status: int) -> tuple[str, int]:
    page = render_template("forms/message.html", channel=connector.name,
                           title=connector.config["title"] or _("Contact us"), message=message)
    return page, status


@bp.context_processor
def _page_context() -> dict[str, object]:
    connector = connector_made(WebformConnector)
    if connector is None:
        return {}
    # The origins the form page may report its height to (see static/forms/frame.js).
    return {"frame_origins": sorted(own_origins() | set(connector.allowed_origins))}


@bp.get("/forms/<channel>")
def form(channel: str):
    return _render_form(channel_connector(channel, WebformConnector))


@bp.post("/forms/<channel>")
@_submission_limit
def submit(channel: str):
    connector = channel_connector(channel, WebformConnector)
    _check_origin(connector)
    webhook = _webhook_request(connector)
    try:
        submission, _token = _ingest(connector, webhook)
    except FormRefused as refused:
        submitted = _submitted(connector, webhook)
        if refused.reason == "honeypot":
            # Bots learn nothing: the same thank-you a person sees, and nothing is stored.
            log.info("web form %s: honeypot refused a submission from %s", channel, request.remote_addr)
            return _render_thanks(connector, None)
        values = submitted.fields if submitted else {}
        return _render_form(connector, values=values, errors={"form": _message_for("form", refused.reason, connector)},
                            status=400)
    except FormError as error:
        submitted = _submitted(connector, webhook)
        values = submitted.fields if submitted else {}
        # The token was fine (or the body unreadable): keep it, so the corrected form is the same submission.
        return _render_form(connector, values=values, errors=_translated(error, connector),
                            hidden=values, status=error.status)
    return _render_thanks(connector, submission)


def _render_thanks(connector: WebformConnector, submission: Submission | None):
    fields = submission.fields if submission else {}
    return render_template(
        "forms/thanks.html",
        channel=connector.name,
        title=connector.config["title"] or _("Contact us"),
        success_message=connector.config["success_message"]
        or _("Thank you! We received your message and will answer you by email."),
        subject=fields.get("subject", ""),
        message=fields.get("message", ""),
    )


@bp.get("/forms/<channel>/embed.js")
def embed_script(channel: str):
    connector = channel_connector(channel, WebformConnector)
    form_url = url_for("forms.form", channel=connector.name, _external=True)
    script = render_template("forms/embed.js", form_url=form_url, origin=origin_of(form_url),
                             title=connector.config["title"] or _("Contact us"))
    response = Response(script, mimetype="text/javascript")
    # private: the URL inside comes from the request, so no shared cache may keep it for others.
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


# The JSON API -------------------------------------------------------------------------------------

def _json_error(errors: dict[str, str], status: int):
    return jsonify(ok=False, errors=errors), status


@bp.route("/api/forms/<channel>", methods=["OPTIONS"], provide_automatic_options=False)
def api_preflight(channel: str):
    connector = channel_connector(channel, WebformConnector)
    _check_origin(connector)
    response = Response(status=204)
    if _cors_origin():
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return response


@bp.get("/api/forms/<channel>")
def api_token(channel: str):
    """Fresh hidden fields for a form that a site renders itself (token valid for 24 hours)."""
    connector = channel_connector(channel, WebformConnector)
    _check_origin(connector)
    return jsonify(ok=True, honeypot="website", max_attachments=int(connector.config["max_attachments"]),
                   max_attachment_bytes=connector.max_attachment_bytes,
                   max_text_chars=int(connector.config["max_text_chars"]), **connector.new_form_token())


@bp.post("/api/forms/<channel>")
@_submission_limit
def api_submit(channel: str):
    connector = channel_connector(channel, WebformConnector)
    _check_origin(connector)
    webhook = _webhook_request(connector)
    try:
        _submission, token = _ingest(connector, webhook)
    except FormRefused as refused:
        if refused.reason == "honeypot":
            log.info("web form %s: honeypot refused an API submission from %s", channel, request.remote_addr)
            return _json_error({"form": _("The submission was refused.")}, 400)
        return _json_error({"form": _message_for("form", refused.reason, connector)}, 400)
    except FormError as error:
        return _json_error(_translated(error, connector), error.status)
    return jsonify(ok=True, conversation=token)


# Errors and headers for every response of this blueprint -------------------------------------------

def _is_api() -> bool:
    return request.path.startswith("/api/")


@bp.errorhandler(403)
@bp.errorhandler(413)
@bp.errorhandler(429)
def _refused(error):
    code = error.code
    if code == 429:
        message = _("You have sent too many messages in a short time. Please try again later.")
    elif code == 413:
        message = _("What you sent is too large.")
    else:
        message = _("This form cannot be sent from that website.")
    if _is_api():
        response = _json_response({"form": message}, code)
    else:
        connector = connector_made(WebformConnector)
        if connector is None:
            try:
                connector = channel_connector((request.view_args or {}).get("channel", ""), WebformConnector)
            except HTTPException:
                connector = None
        response = (make_response(_render_message(connector, message, code)) if connector
                    else _json_response({"form": message}, code))
    if code == 429:
        response.headers["Retry-After"] = str(_seconds_until_reset())
    return response


def _json_response(errors: dict[str, str], status: int) -> Response:
    response = jsonify(ok=False, errors=errors)
    response.status_code = status
    return response


def _seconds_until_reset() -> int:
    """When the limit that was hit lets this client send again (60 s if unknown)."""
    current = limiter.current_limit
    return max(1, int(current.reset_at - time.time())) if current else 60


@bp.after_request
def _headers(response: Response) -> Response:
    connector = connector_made(WebformConnector)
    origin = _cors_origin() if _is_api() else None
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    if _is_api():
        response.vary.add("Origin")
    if connector is not None and response.mimetype == "text/html":
        ancestors = " ".join(["'self'", *connector.allowed_origins])
        # Replaces the app's default policy, whose frame-ancestors 'self' would forbid embedding.
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
            f"form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
        )
        response.headers["Cache-Control"] = "no-store"
    return response

