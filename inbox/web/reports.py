"""Reports for managers and admins: the week's figures, the CSV behind each, and the digest archive.

/reports shows one ISO week (`?week=2026-W47`, default the current one): volume, first-response
and resolution times against desired and adequate, satisfaction per channel and by first-response
time, people, backlog and the policies in force. Every count links to
/reports/export.csv with the same filters, which lists the conversations behind it (CSV-injection
safe). /reports/digests lists the archived weekly digests; /reports/digests/<week> shows one as it
was mailed, in a frame whose document may load nothing but its own images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request, url_for
from flask_babel import format_decimal, format_percent, get_locale

from inbox import charts, clock, digest, helpcenter, reports, service_levels
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.i18n import ngettext
from inbox.reports import Period
from inbox.web import get_store, mainland
from inbox.web.auth import role_required

bp = Blueprint("reports", __name__, url_prefix="/reports")

ROLES = ("manager", "admin")
#: The archived digest is our own HTML, but it is framed with the strictest policy that still shows it.
DIGEST_CSP = "sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; " \
             "frame-ancestors 'self'"

BAND_LABELS = {"15m": _l("≤ 15 min"), "1h": _l("15–60 min"), "4h": _l("1–4 h"), "24h": _l("4–24 h"),
               "more": _l("> 24 h")}
AGE_LABELS = {"1d": _l("< 1 day"), "3d": _l("1–3 days"), "7d": _l("3–7 days"), "older": _l("> 7 days")}
LEVEL_LABELS = {"desired": _l("within desired"), "adequate": _l("within adequate"), "missed": _l("missed")}
METRIC_LABELS = {"first_response": _l("First response"), "next_response": _l("Next response"),
                 "resolution": _l("Resolution")}


def _timezone() -> str:
    return digest.settings_for(mainland().config).timezone


def _period() -> Period:
    week = request.args.get("week", "").strip()
    if not week:
        return Period.containing(clock.now(), _timezone())
    try:
        return Period.parse(week, _timezone())
    except ValueError:
        abort(404)


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        abort(400)


@bp.get("")
@role_required(*ROLES)
def index():
    period = _period()
    report = _cache().report(get_store(), period)
    levels = service_levels.for_config(mainland().config)
    return render_template(
        "reports/index.html", report=report, period=period, policies=digest.policies_summary(levels),
        band_labels=BAND_LABELS, age_labels=AGE_LABELS, level_labels=LEVEL_LABELS, metric_labels=METRIC_LABELS,
        current_week=Period.containing(clock.now(), _timezone()).key, help_center=_help_center(period),
        spam_check=reports.spam_check_quality(get_store()),
    )


def _help_center(period: Period) -> dict[str, Any] | None:
    """The help center's figures of the week, when it is on (inbox/helpcenter.py)."""
    if not helpcenter.settings_for(mainland().config).enabled:
        return None
    return helpcenter.report(get_store(), period, language=str(get_locale() or "en"))


@bp.get("/export.csv")
@role_required(*ROLES)
def export():
    period = _period()
    figure = request.args.get("figure", "volume")
    if figure not in reports.FIGURES:
        abort(400)
    level = request.args.get("level") or None
    band = request.args.get("band") or None
    age = request.args.get("age") or None
    if level not in (None, *LEVEL_LABELS) or band not in (None, *BAND_LABELS) or age not in (None, *AGE_LABELS):
        abort(400)
    store = get_store()
    report = _cache().report(store, period)
    rows = reports.rows_for(report, figure, channel=request.args.get("channel") or None, level=level, band=band,
                            agent=_int_arg("agent"), team=_int_arg("team"), age=age, store=store)
    body = reports.to_csv(report, rows, mainland().config.base_url)
    name = "-".join(p for p in ("mainland", period.key, figure, request.args.get("channel", ""), level or "",
                                band or "", age or "") if p)
    safe_name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:120]
    return Response("\ufeff" + body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{safe_name}.csv"'})


@bp.get("/charts/<name>.png")
@role_required(*ROLES)
def chart(name: str):
    if name not in CHARTS:
        abort(404)
    png = _cache().chart(get_store(), _period(), name, str(get_locale()), CHARTS[name])
    return Response(png, mimetype="image/png")


def _service_levels_chart(report: reports.Report, metric: str) -> bytes:
    return charts.service_levels_chart(
        report.channels, metric=metric, title=str(METRIC_LABELS[metric]), desired_label=_("within desired"),
        adequate_label=_("within adequate"), empty_label=_("No data this week"))


def _csat_by_wait_chart(report: reports.Report) -> bytes:
    return charts.csat_by_wait_chart(report.csat_by_band, {k: str(v) for k, v in BAND_LABELS.items()},
                                     title=_("Satisfaction by first-response time"),
                                     answers_label=lambda n: ngettext("%(num)d answer", "%(num)d answers", n),
                                     empty_label=_("No data this week"))


#: The page's charts by name, each drawn from the cached report (in the request's language).
CHARTS: dict[str, Callable[[reports.Report], bytes]] = {
    "first_response": lambda report: _service_levels_chart(report, "first_response"),
    "resolution": lambda report: _service_levels_chart(report, "resolution"),
    "csat_by_wait": _csat_by_wait_chart,
}


def _cache() -> reports.ReportCache:
    """This app's report cache: the page, its three charts and its CSVs build the report once."""
    return current_app.extensions["mainland_reports"]


@bp.get("/digests")
@role_required(*ROLES)
def digests():
    return render_template("reports/digests.html", digests=get_store().digests())


def _digest_or_404(week: str) -> dict[str, Any]:
    row = get_store().digest(week)
    if row is None:
        abort(404)
    return row


@bp.get("/digests/<week>")
@role_required(*ROLES)
def digest_page(week: str):
    row = _digest_or_404(week)
    return render_template("reports/digest.html", digest=row)


@bp.get("/digests/<week>/body")
@role_required(*ROLES)
def digest_body(week: str):
    row = _digest_or_404(week)
    html = digest.web_html(row["html"], week, lambda w, name: url_for("reports.digest_image", week=w, name=name))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = DIGEST_CSP
    return response


@bp.get("/digests/<week>/images/<name>.png")
@role_required(*ROLES)
def digest_image(week: str, name: str):
    png = get_store().digest_image(week, name)
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png")


# Formatting ---------------------------------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "–" if value is None else format_percent(value)


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else format_decimal(round(value, digits))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = seconds / 60
    if minutes < 60:
        return _("%(n)s min", n=format_decimal(round(minutes)))
    if minutes < 48 * 60:
        return _("%(n)s h", n=format_decimal(round(minutes / 60, 1)))
    return _("%(n)s d", n=format_decimal(round(minutes / 1440, 1)))


def init_app(app: Flask) -> None:
    app.extensions["mainland_reports"] = reports.ReportCache()
    app.jinja_env.filters.update(report_pct=_pct, report_num=_num, report_duration=_duration)
