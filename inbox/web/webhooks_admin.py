"""Outbound webhook subscriptions, administered in the browser (issue 15; inbox/webhooks_out.py).

Routes (admins only; every change audited):

- `GET  /admin/webhooks`                                   the subscriptions: URL, events, state, last delivery,
                                                           failures; and the form for a new one
- `POST /admin/webhooks`                                   subscribe (URL, events); the secret is shown once
- `GET  /admin/webhooks/<id>`                              one subscription and its delivery log (paged)
- `POST /admin/webhooks/<id>/state`                        pause or resume
- `POST /admin/webhooks/<id>/test`                         queue a `webhook.test` event for it
- `POST /admin/webhooks/<id>/delete`                       remove it with its log (the form confirms first)
- `POST /admin/webhooks/<id>/deliveries/<delivery>/replay` send that delivery's event again (same id)

The worker sends what these queue within seconds; the pages never wait for a receiver.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for

from inbox import webhooks_out
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.i18n import ngettext
from inbox.store.webhooks_out import DELIVERY_PAGE
from inbox.web import get_store, mainland
from inbox.web.auth import role_required

bp = Blueprint("webhooks_admin", __name__)
admin_only = role_required("admin")

EVENT_LABELS = {
    "conversation.created": _l("A conversation is created"),
    "message.received": _l("A customer's message is received"),
    "message.sent": _l("A reply is sent"),
    "conversation.status_changed": _l("A conversation's status changes"),
    "conversation.assigned": _l("A conversation is assigned"),
    "satisfaction.received": _l("A satisfaction survey is answered"),
    "service_level.breached": _l("A service level is breached"),
    webhooks_out.TEST_EVENT: _l("Test event"),
    webhooks_out.RULE_EVENT: _l("A rule fired"),
}
DELIVERY_STATES = {"pending": _l("waiting"), "sending": _l("sending"), "retry_wait": _l("will retry"),
                   "delivered": _l("delivered"), "dead": _l("gave up")}


def _as_admin() -> dict[str, Any]:
    """Who the audit names for a change made on these pages, and from where."""
    return {"actor": f"agent:{g.agent['id']}", "ip": request.remote_addr}


def _subscription_or_404(subscription_id: int) -> dict[str, Any]:
    subscription = get_store().webhook_subscription(subscription_id)
    if subscription is None:
        abort(404)
    return subscription


def _index(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None, status: int = 200):
    return render_template(
        "admin/webhooks.html", subscriptions=get_store().webhook_subscriptions(), event_types=webhooks_out.EVENT_TYPES,
        errors=errors or {}, form=form or {"url": "", "events": set()},
        pause_after=webhooks_out.pause_after(mainland().config),
    ), status


@bp.get("/admin/webhooks")
@admin_only
def index():
    return _index()


@bp.post("/admin/webhooks")
@admin_only
def create():
    # Allow-list: url and event. Nothing else from the form is read.
    url = request.form.get("url", "").strip()
    events = [e for e in webhooks_out.EVENT_TYPES if e in request.form.getlist("event")]
    store = get_store()
    try:
        subscription_id, secret = webhooks_out.subscribe(
            store, mainland().secret_box(), url=url, events=events, allow_hosts=mainland().config.fetch_allow_hosts,
            created_by=g.agent["id"], **_as_admin())
    except webhooks_out.SubscriptionRefused as refused:
        return _index(refused.errors, {"url": url[:webhooks_out.MAX_URL_CHARS], "events": set(events)}, 400)
    page = render_template("admin/webhook_created.html", secret=secret,
                           subscription=store.webhook_subscription(subscription_id))
    response = Response(page)
    # The only time the secret is shown: no cache may keep the page.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/admin/webhooks/<int:subscription_id>")
@admin_only
def detail(subscription_id: int):
    subscription = _subscription_or_404(subscription_id)
    before = request.args.get("before", type=int)
    deliveries = get_store().webhook_deliveries(subscription_id, before=before)
    next_url = (url_for(".detail", subscription_id=subscription_id, before=deliveries[-1]["id"])
                if len(deliveries) == DELIVERY_PAGE else None)
    first_url = url_for(".detail", subscription_id=subscription_id) if before is not None else None
    return render_template("admin/webhook.html", subscription=subscription, deliveries=deliveries,
                           next_url=next_url, first_url=first_url,
                           pause_after=webhooks_out.pause_after(mainland().config))


@bp.post("/admin/webhooks/<int:subscription_id>/state")
@admin_only
def set_state(subscription_id: int):
    subscription = _subscription_or_404(subscription_id)
    state = request.form.get("state", "")
    if state not in ("active", "paused"):
        abort(400)
    if webhooks_out.set_subscription_state(get_store(), subscription, state, **_as_admin()):
        flash(_("Deliveries resumed: what waited goes out now.") if state == "active"
              else _("Paused: events wait until you resume."), "success")
    return redirect(url_for(".detail", subscription_id=subscription_id))


@bp.post("/admin/webhooks/<int:subscription_id>/test")
@admin_only
def test(subscription_id: int):
    subscription = _subscription_or_404(subscription_id)
    webhooks_out.send_test(get_store(), subscription, **_as_admin())
    flash(_("A test event is on its way; its delivery shows in the log below within seconds."), "success")
    return redirect(url_for(".detail", subscription_id=subscription_id))


@bp.post("/admin/webhooks/<int:subscription_id>/delete")
@admin_only
def delete(subscription_id: int):
    subscription = _subscription_or_404(subscription_id)
    webhooks_out.remove_subscription(get_store(), subscription, **_as_admin())
    flash(_("The subscription to %(url)s is removed.", url=subscription["url"]), "success")
    return redirect(url_for(".index"))


@bp.post("/admin/webhooks/<int:subscription_id>/deliveries/<int:delivery_id>/replay")
@admin_only
def replay(subscription_id: int, delivery_id: int):
    subscription = _subscription_or_404(subscription_id)
    replayed = webhooks_out.replay(get_store(), subscription, delivery_id, **_as_admin())
    if replayed is None:
        abort(404)
    flash(_("The event %(event)s is sent again, marked as a replay.", event=replayed["event_id"]), "success")
    return redirect(url_for(".detail", subscription_id=subscription_id))


def duration_text(span: dt.timedelta) -> str:
    """`webhooks.pause_after` as people say it: in days, hours or minutes."""
    seconds = int(span.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return ngettext("%(num)d day", "%(num)d days", seconds // 86400)
    if seconds % 3600 == 0:
        return ngettext("%(num)d hour", "%(num)d hours", seconds // 3600)
    return ngettext("%(num)d minute", "%(num)d minutes", max(1, seconds // 60))


def init_app(app) -> None:
    app.jinja_env.globals.update(
        webhook_duration=duration_text,
        webhook_event_label=lambda event: EVENT_LABELS.get(event, event),
        webhook_delivery_state=lambda state: DELIVERY_STATES.get(state, state),
    )
