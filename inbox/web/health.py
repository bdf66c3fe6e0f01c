"""Connector health for people and for monitoring: the admin page, the JSON, and the inbox-wide warning.

Routes:

- `GET /admin/connectors`  the health page (admins only; others get 403, visitors the sign-in page)
- `GET /-/connectors`      the same figures as JSON, for monitoring: an admin's session, or a bearer
                           token with the scope `health:read` (inbox/web/tokens.py); a valid token
                           without it gets a 403 naming the scope, anything else a plain 403

Every page of the inbox shows a warning at the top for each enabled channel that has been failing
for longer than `health.warn_after` ("Telegram has not been reachable for 25 minutes"); admins
get a link to the health page with it. The figures come from `inbox.health`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Blueprint, Flask, g, jsonify, render_template
from flask_babel import format_datetime, format_timedelta

from inbox import clock, health
from inbox.i18n import gettext as _
from inbox.store.base import iso, parse_iso
from inbox.web import get_store, mainland
from inbox.web.auth import current_agent, role_required
from inbox.web.tokens import bearer_caller, missing_scope

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

#: What a bearer token needs for the JSON here and for the totals of `/-/health`.
HEALTH_SCOPE = "health:read"


def bearer_token_ok() -> bool:
    """True when the request carries a valid bearer token with the scope `health:read`."""
    caller = bearer_caller()
    return caller is not None and HEALTH_SCOPE in caller.scopes


@bp.get("/-/connectors")
def connectors_json():
    agent = current_agent()
    if not (agent and agent["role"] == "admin") and bearer_caller() is not None and not bearer_token_ok():
        return missing_scope(HEALTH_SCOPE)
    if not ((agent and agent["role"] == "admin") or bearer_token_ok()):
        response = jsonify(ok=False, error="admins only: sign in as an admin or send a bearer API token")
        response.status_code = 403
        return response
    now = clock.now()
    report = health.channel_report(mainland(), get_store(), now=now)
    response = jsonify(ok=True, generated_at=iso(now), warn_after_seconds=health.warn_after_seconds(mainland()),
                       channels=[channel.as_json() for channel in report])
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/admin/connectors")
@role_required("admin")
def page():
    now = clock.now()
    report = health.channel_report(mainland(), get_store(), now=now)
    return render_template("health/connectors.html", channels=report, now=iso(now),
                           warn_after=_duration(health.warn_after_seconds(mainland())))


# The warning on every page ---------------------------------------------------------------------

def _duration(seconds: float) -> str:
    """"25 minutes", "3 hours", in the page's language."""
    return format_timedelta(dt.timedelta(seconds=seconds), granularity="minute", threshold=2)


def connector_warnings() -> list[dict[str, Any]]:
    """The channels failing for too long, for the signed-in agent's page header (once per request)."""
    if "connector_warnings" in g:
        return g.connector_warnings
    found: list[dict[str, Any]] = []
    if current_agent() is not None:
        try:
            for channel in health.warnings(mainland(), get_store()):
                found.append({"name": channel.name, "label": channel.label,
                              "duration": _duration(channel.failing_seconds or 0)})
        except Exception:  # a health query must never take every page down with it
            log.exception("could not read connector health for the page warning")
    g.connector_warnings = found
    return found


def mode_label(channel: health.ChannelHealth) -> str:
    if channel.push_only:
        return _("push only (webhooks)") if channel.webhooks else _("push only")
    every = _("polled every %(duration)s", duration=_duration_short(channel.poll_every_seconds or 0))
    return _("%(polled)s, and webhooks", polled=every) if channel.webhooks else every


def _duration_short(seconds: float) -> str:
    return format_timedelta(dt.timedelta(seconds=seconds), granularity="second", threshold=2)


def moment(value: str | None) -> str:
    """A stored time with seconds, in the page's language: polls come every few seconds."""
    try:
        parsed = parse_iso(value) if value else None
    except ValueError:
        return value or ""
    return format_datetime(parsed, "medium") if parsed else ""


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(connector_warnings=connector_warnings, connector_mode_label=mode_label)
    app.jinja_env.filters["health_time"] = moment
