"""The managers' weekly digest: one email with the week's figures, charts and what needs attention.

Once a week, at `digest.weekday` / `digest.hour` in `digest.timezone`, the worker builds the
digest of the week that just ended: volume, service levels met against desired and adequate,
satisfaction (also by first-response time), people and backlog, each compared with the week
before, the check-ins made and how customers answered them (inbox/checkins.py), and the three things most worth a manager's attention (the channel furthest below its
adequate target, the agent with the most breaches, the customers waiting longest). Charts are PNG
images (inbox/charts.py) carried inline in the mail (`cid:`), so any mail client shows them.

The digest is archived in the database (HTML, text, figures and images) and shown in the web app
at /reports/digests/<week>; it is mailed to every active agent with the role *manager* (each in
their own language) plus `digest.recipients`, over SMTP: `digest.smtp` if set, else the SMTP
settings of the email channel `digest.channel`, else of the first email channel. `mainland digest
--week 2026-W47 [--send] [--out DIR]` builds any week by hand.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import functools
import json
import logging
import smtplib
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

from inbox import charts, checkins, clock, helpcenter, reports, service_levels
from inbox.reports import Period, Report
from inbox.store.base import iso
from inbox.triage import LOOP_HEADER

log = logging.getLogger("mainland.digest")

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LANGUAGES = ("en", "nl")
#: Share of first responses within adequate below which a channel is named as needing attention.
DEFAULT_GOAL = 0.9
CID_DOMAIN = "digest.mainland"
SMTP_KEYS = {"host", "port", "security", "username", "password", "from_address", "from_name", "timeout"}
_KNOWN = {"enabled", "weekday", "hour", "timezone", "send", "channel", "smtp", "recipients", "goal"}


class DigestError(Exception):
    """The digest cannot be sent (no SMTP settings, the server refused it)."""


# Settings --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DigestSettings:
    enabled: bool = True
    weekday: int = 0
    hour: int = 8
    timezone: str = "UTC"
    send: bool = True
    channel: str | None = None
    smtp: Mapping[str, Any] | None = None
    recipients: tuple[str, ...] = ()
    goal: float = DEFAULT_GOAL


def check_config(data: Mapping[str, Any] | None, channels: Mapping[str, Any]) -> list[str]:
    """Problems in the `digest:` section (empty: fine)."""
    problems: list[str] = []
    if data is None:
        return problems
    if not isinstance(data, Mapping):
        return ["digest: must be a mapping"]
    for key in set(data) - _KNOWN:
        problems.append(f"digest.{key}: unknown key (known: {', '.join(sorted(_KNOWN))})")
    if str(data.get("weekday", "mon")).lower()[:3] not in WEEKDAYS:
        problems.append("digest.weekday: one of mon, tue, wed, thu, fri, sat, sun")
    hour = data.get("hour", 8)
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        problems.append("digest.hour: a whole hour from 0 to 23")
    if data.get("timezone") is not None:
        try:
            ZoneInfo(str(data["timezone"]))
        except Exception:
            problems.append(f"digest.timezone: unknown time zone {data['timezone']!r}")
    channel = data.get("channel")
    if channel is not None and (channel not in channels or channels[channel].kind != "imap"):
        problems.append(f"digest.channel: {channel!r} is not an email (imap) channel")
    smtp = data.get("smtp")
    if smtp is not None:
        if not isinstance(smtp, Mapping) or "host" not in smtp or "from_address" not in smtp:
            problems.append("digest.smtp: needs at least host and from_address")
        else:
            for key in set(smtp) - SMTP_KEYS:
                problems.append(f"digest.smtp.{key}: unknown key (known: {', '.join(sorted(SMTP_KEYS))})")
            if smtp.get("security", "starttls") not in ("starttls", "ssl", "none"):
                problems.append("digest.smtp.security: starttls, ssl or none")
    recipients = data.get("recipients") or []
    if not isinstance(recipients, list) or not all(isinstance(r, str) and "@" in r for r in recipients):
        problems.append("digest.recipients: a list of email addresses")
    goal = data.get("goal", DEFAULT_GOAL)
    if isinstance(goal, bool) or not isinstance(goal, int | float) or not 0 < goal <= 1:
        problems.append("digest.goal: a share between 0 and 1, e.g. 0.9")
    return problems


def settings_for(config: Any) -> DigestSettings:
    data = (config.extra.get("digest") or {}) if hasattr(config, "extra") else {}
    levels = service_levels.for_config(config)
    return DigestSettings(
        enabled=bool(data.get("enabled", True)),
        weekday=WEEKDAYS.index(str(data.get("weekday", "mon")).lower()[:3]),
        hour=int(data.get("hour", 8)),
        timezone=str(data.get("timezone") or levels.hours.timezone),
        send=bool(data.get("send", True)),
        channel=data.get("channel"),
        smtp=data.get("smtp"),
        recipients=tuple(data.get("recipients") or ()),
        goal=float(data.get("goal", DEFAULT_GOAL)),
    )


def last_full_week(now: dt.datetime, timezone: str) -> Period:
    """The week before the one `now` is in."""
    return Period.containing(now, timezone).previous()


# Building ---------------------------------------------------------------------------------------------

@dataclass
class Digest:
    period: Period
    subject: str
    html: str
    text: str
    images: dict[str, bytes]
    figures: dict[str, Any]
    #: Rendered (subject, html, text) per language, for mailing each manager in theirs.
    languages: dict[str, tuple[str, str, str]] = field(default_factory=dict)


@functools.cache
def _environment(locale: str) -> jinja2.Environment:
    """The digest's templates in `locale`: one environment per process and language, so that each
    template is compiled once, not again for every digest (the loader still sees a changed file)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROOT / "templates")),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(_translations(locale), newstyle=True)
    env.filters.update(
        pct=lambda v: "–" if v is None else format_percent(v, locale=locale),
        num=lambda v, digits=1: "–" if v is None else format_decimal(round(v, digits), locale=locale),
        duration=lambda s: _duration(s, locale),
        day=lambda d: format_date(d, "d MMM yyyy", locale=locale),
        moment=lambda text: format_datetime(dt.datetime.fromisoformat(text.replace("Z", "+00:00")),
                                            "d MMM HH:mm", locale=locale) if text else "",
        points=lambda v: "" if v is None else f"{v * 100:+.0f}",
        signed=lambda v, digits=1: "" if v is None else f"{v:+.{digits}f}",
    )
    return env


def _duration(seconds: float | None, locale: str) -> str:
    if seconds is None:
        return "–"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{format_decimal(round(hours, 1), locale=locale)} h"
    return f"{format_decimal(round(hours / 24, 1), locale=locale)} d"


@functools.cache
def _translations(locale: str) -> Translations:
    """The catalogue of `locale`, read once per process."""
    return Translations.load(str(TRANSLATIONS), [locale])


def _translator(locale: str) -> Any:
    """gettext for `locale` with Flask-Babel's `%(name)s` keyword formatting."""
    translations = _translations(locale)

    def gettext(text: str, **values: Any) -> str:
        translated = translations.gettext(text)
        return translated % values if values else translated

    return gettext


def _plural_translator(locale: str) -> Any:
    """ngettext for `locale`, formatted as Flask-Babel's: the count is `%(num)d`."""
    translations = _translations(locale)

    def ngettext(singular: str, plural: str, num: int, **values: Any) -> str:
        return translations.ngettext(singular, plural, num) % {"num": num, **values}

    return ngettext


def attention(report: Report, previous: Report, goal: float, locale: str) -> list[dict[str, Any]]:
    """The three things most worth a manager's attention, in a fixed order, each with its link."""
    _ = _translator(locale)
    ngettext = _plural_translator(locale)
    items: list[dict[str, Any]] = []
    prev = {c["channel"]: c for c in previous.channels}
    decided = [c for c in report.channels if c["first_response"]["decided"]]
    worst = min(decided, key=lambda c: (c["first_response"]["share_adequate"], c["channel"]), default=None)
    quiet = not report.totals["volume"]
    if quiet:
        items.append({"kind": "channel", "channel": None, "title": _("No conversations this week"),
                      "text": _("No customer started a conversation, so there is nothing to measure."),
                      "query": {"figure": "volume"}})
    elif worst is not None and worst["first_response"]["share_adequate"] < goal:
        fr = worst["first_response"]
        before = prev.get(worst["channel"], {}).get("first_response", {}).get("share_adequate")
        items.append({
            "kind": "channel", "channel": worst["channel"], "share_adequate": fr["share_adequate"],
            "previous_share_adequate": before, "missed": fr["missed"],
            "title": _("%(channel)s fell below its adequate target", channel=worst["channel"]),
            "text": _("%(share)s of first responses came within adequate (goal %(goal)s); %(missed)d missed it.",
                      share=format_percent(fr["share_adequate"], locale=locale),
                      goal=format_percent(goal, locale=locale), missed=fr["missed"]),
            "query": {"figure": "first_response", "level": "missed", "channel": worst["channel"]},
        })
    elif worst is None:
        items.append({"kind": "channel", "channel": None, "title": _("No first responses were due this week"),
                      "text": _("Nothing to judge the channels by yet."), "query": {"figure": "first_response"}})
    else:
        items.append({"kind": "channel", "channel": None,
                      "title": _("Every channel met its adequate target"),
                      "text": _("At least %(goal)s of first responses on each channel came within adequate.",
                                goal=format_percent(goal, locale=locale)),
                      "query": {"figure": "first_response"}})
    offenders = [a for a in report.agents if a["id"] is not None and a["breaches"]]
    top = max(offenders, key=lambda a: (a["breaches"], -a["id"]), default=None)
    if top is not None:
        items.append({
            "kind": "agent", "agent_id": top["id"], "breaches": top["breaches"],
            "title": _("%(name)s had the most service-level breaches", name=top["name"] or "?"),
            "text": _("%(breaches)s in %(conversations)s; look at the workload and the hand-overs.",
                      breaches=ngettext("%(num)d breach", "%(num)d breaches", top["breaches"]),
                      conversations=ngettext("%(num)d conversation", "%(num)d conversations",
                                             top["conversations"])),
            "query": {"figure": "breaches", "agent": top["id"]},
        })
    else:
        # Of an empty week there is nothing to praise: "every conversation" would be none of them.
        items.append({"kind": "agent", "agent_id": None, "title": _("No agent breached a service level"),
                      "text": _("There were no conversations to answer.") if quiet
                      else _("Every answered conversation stayed within adequate."),
                      "query": {"figure": "breaches"}})
    waiting = report.backlog["longest_waiting"][:3]
    if waiting:
        names = ", ".join(f"{w['customer_name'] or '?'} ({_duration(w['waiting_seconds'], locale)})" for w in waiting)
        items.append({
            "kind": "waiting", "conversation_ids": [w["id"] for w in waiting],
            "title": _("Customers waiting longest for an answer"),
            "text": names,
            "query": {"figure": "waiting"},
        })
    else:
        items.append({"kind": "waiting", "conversation_ids": [], "title": _("Nobody is waiting for an answer"),
                      "text": _("Every open conversation has our latest reply."), "query": {"figure": "waiting"}})
    return items


def _comparison(report: Report, previous: Report) -> dict[str, Any]:
    def delta(now_value: float | None, before: float | None) -> float | None:
        return None if now_value is None or before is None else now_value - before

    t, p = report.totals, previous.totals
    return {
        "volume": delta(t["volume"], p["volume"]),
        "fr_desired": delta(t["first_response"]["share_desired"], p["first_response"]["share_desired"]),
        "fr_adequate": delta(t["first_response"]["share_adequate"], p["first_response"]["share_adequate"]),
        "fr_median": delta(t["first_response"]["median_seconds"], p["first_response"]["median_seconds"]),
        "res_adequate": delta(t["resolution"]["share_adequate"], p["resolution"]["share_adequate"]),
        "csat": delta(t["csat"]["average"], p["csat"]["average"]),
        "breaches": delta(t["breaches"], p["breaches"]),
    }


def _charts(report: Report, previous: Report, locale: str) -> dict[str, bytes]:
    _ = _translator(locale)
    ngettext = _plural_translator(locale)
    empty = _("No data this week")
    band_labels = {"15m": _("≤ 15 min"), "1h": _("15–60 min"), "4h": _("1–4 h"), "24h": _("4–24 h"),
                   "more": _("> 24 h")}
    age_labels = {"1d": _("< 1 day"), "3d": _("1–3 days"), "7d": _("3–7 days"), "older": _("> 7 days")}
    return {
        "volume": charts.volume_chart(
            {c["channel"]: c["volume"] for c in report.channels if c["volume"]},
            {c["channel"]: c["volume"] for c in previous.channels if c["volume"]},
            title=_("Conversations per channel"), current_label=_("This week"), previous_label=_("Week before"),
            empty_label=empty),
        "first_response": charts.service_levels_chart(
            report.channels, metric="first_response", title=_("First responses on time"),
            desired_label=_("within desired"), adequate_label=_("within adequate"), empty_label=empty),
        "resolution": charts.service_levels_chart(
            report.channels, metric="resolution", title=_("Resolutions on time"),
            desired_label=_("within desired"), adequate_label=_("within adequate"), empty_label=empty),
        "csat_by_wait": charts.csat_by_wait_chart(
            report.csat_by_band, band_labels, title=_("Satisfaction by first-response time"),
            answers_label=lambda n: ngettext("%(num)d answer", "%(num)d answers", n), empty_label=empty),
        "backlog": charts.backlog_chart(report.backlog["by_age"], age_labels, title=_("Open conversations by age")),
    }


def build_digest(mainland: Any, store: Any, period: Period, now: dt.datetime | None = None) -> Digest:
    """The digest of `period`, rendered in every language a recipient reads."""
    now = now or clock.now()
    conf = settings_for(mainland.config)
    levels = service_levels.for_config(mainland.config)
    service_levels.refresh_stale(store, levels, now)
    report = reports.build(store, period, now)
    previous = reports.build(store, period.previous(), now)
    default_language = mainland.config.default_language if mainland.config.default_language in LANGUAGES else "en"
    languages = {default_language} | {m["locale"] for m in store.managers() if m["locale"] in LANGUAGES}
    images = _charts(report, previous, default_language)
    help_center = (helpcenter.report(store, period, language=default_language)
                   if helpcenter.settings_for(mainland.config).enabled else None)
    rendered: dict[str, tuple[str, str, str]] = {}
    figures = report.figures()
    figures["check_ins"] = checkins.week_figures(store, period.start, period.end)
    for locale in sorted(languages):
        env = _environment(locale)
        context = {
            "report": report, "previous": previous, "comparison": _comparison(report, previous),
            "attention": attention(report, previous, conf.goal, locale), "base_url": mainland.config.base_url,
            "policies": policies_summary(levels), "cid": lambda name: f"cid:{name}@{CID_DOMAIN}",
            "link": lambda query: _report_link(mainland.config.base_url, period, query),
            "generated_at": iso(now), "goal": conf.goal, "locale": locale, "help_center": help_center,
            "check_in_line": check_in_line(figures["check_ins"], locale),
        }
        if locale == default_language:
            figures["attention"] = context["attention"]
            figures["comparison"] = context["comparison"]
        subject = env.get_template("reports/digest_subject.txt").render(context).strip()
        html = env.get_template("reports/digest_email.html").render(context)
        text = env.get_template("reports/digest_email.txt").render(context)
        rendered[locale] = (subject, html, text)
    subject, html, text = rendered[default_language]
    return Digest(period=period, subject=subject, html=html, text=text, images=images, figures=figures,
                  languages=rendered)


def check_in_line(figures: Mapping[str, Any], locale: str) -> str:
    """The digest's check-ins sentence: how many were started, how many customers replied, their rating."""
    _ = _translator(locale)
    ngettext = _plural_translator(locale)
    if not figures["started"]:
        return _("Check-ins: none started this week.")
    text = _("Check-ins: %(started)s, %(replied)s", started=ngettext("%(num)d started", "%(num)d started",
                                                                      figures["started"]),
             replied=ngettext("%(num)d customer replied", "%(num)d customers replied", figures["replied"]))
    if figures["rated"]:
        text += "; " + _("rated %(average)s / 5 (%(answers)s)",
                         average=format_decimal(round(figures["average"], 1), locale=locale),
                         answers=ngettext("%(num)d answer", "%(num)d answers", figures["rated"]))
    return text + "."


def policies_summary(levels: service_levels.ServiceLevels) -> list[dict[str, Any]]:
    rows = []
    for policy in [levels.default, *(o.policy for o in levels.overrides)]:
        rows.append({"name": policy.name, "override": policy.is_override,
                     "targets": {m: policy.target(m) for m in service_levels.METRICS}})
    return rows


def _report_link(base_url: str, period: Period, query: Mapping[str, Any]) -> str:
    from urllib.parse import urlencode

    return f"{base_url}/reports/export.csv?" + urlencode({"week": period.key, **query})


def archive(store: Any, digest: Digest, now: dt.datetime | None = None) -> None:
    with store.write():
        store.save_digest(week=digest.period.key, period_start=iso(digest.period.start),
                          period_end=iso(digest.period.end), subject=digest.subject, html=digest.html,
                          text=digest.text, figures=json.dumps(digest.figures, default=str),
                          images=digest.images, now=iso(now or clock.now()))


def write_files(digest: Digest, folder: Path) -> list[Path]:
    """The digest as files: index.html (images as files beside it), digest.txt and the PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    html = digest.html
    for name, png in digest.images.items():
        path = folder / f"{name}.png"
        path.write_bytes(png)
        written.append(path)
        html = html.replace(f"cid:{name}@{CID_DOMAIN}", f"{name}.png")
    for name, content in (("index.html", html), ("digest.txt", digest.text)):
        (folder / name).write_text(content, encoding="utf-8")
        written.append(folder / name)
    return written


def web_html(html: str, week: str, image_url: Any) -> str:
    """Archived HTML with its `cid:` images pointing at the web app's image route."""
    import re

    return re.sub(rf"cid:([a-z_]+)@{re.escape(CID_DOMAIN)}", lambda m: image_url(week, m[1]), html)


# Sending ------------------------------------------------------------------------------------------------

def smtp_settings(mainland: Any) -> dict[str, Any]:
    """Where the digest is sent through: `digest.smtp`, else an email channel's SMTP settings."""
    conf = settings_for(mainland.config)
    if conf.smtp:
        smtp = dict(conf.smtp)
        security = smtp.get("security", "starttls")
        return {"host": smtp["host"], "port": int(smtp.get("port") or {"ssl": 465, "none": 25}.get(security, 587)),
                "security": security, "username": smtp.get("username") or "", "password": smtp.get("password") or "",
                "from_address": smtp["from_address"], "from_name": smtp.get("from_name") or "Mainland",
                "timeout": float(smtp.get("timeout") or 60)}
    channel = conf.channel or next(iter(mainland.channel_names(kind="imap")), None)
    if channel is None:
        raise DigestError("no SMTP settings: set digest.smtp or digest.channel (an email channel)")
    connector = mainland.connector(channel)
    try:
        c = connector.config
        return {"host": c["smtp_host"], "port": int(c["smtp_port"]), "security": c["smtp_security"],
                "username": c["smtp_username"] or "", "password": c["smtp_password"] or c["password"] or "",
                "from_address": c["address"], "from_name": c["from_name"] or "Mainland",
                "timeout": float(c["timeout"])}
    finally:
        connector.close()


def recipients(mainland: Any, store: Any) -> list[tuple[str, str, str]]:
    """(address, name, language) of everyone who gets the digest."""
    default = mainland.config.default_language if mainland.config.default_language in LANGUAGES else "en"
    found = {m["email"].lower(): (m["email"], m["name"], m["locale"] if m["locale"] in LANGUAGES else default)
             for m in store.managers()}
    for address in settings_for(mainland.config).recipients:
        found.setdefault(address.lower(), (address, "", default))
    return sorted(found.values())


def build_message(digest: Digest, *, to: tuple[str, str], language: str, smtp: Mapping[str, Any],
                  instance_id: str, domain: str) -> EmailMessage:
    subject, html, text = digest.languages.get(language) or (digest.subject, digest.html, digest.text)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((smtp["from_name"], smtp["from_address"]))
    msg["To"] = formataddr((to[1], to[0]))
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(clock.now())
    msg["Message-ID"] = make_msgid(idstring=f"digest.{digest.period.key}", domain=domain)
    # RFC 3834: a report, not a conversation; our loop header keeps a manager's auto-reply out of the inbox.
    msg["Auto-Submitted"] = "auto-generated"
    msg[LOOP_HEADER] = instance_id
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_payload()[1]
    for name, png in digest.images.items():
        html_part.add_related(png, maintype="image", subtype="png", cid=f"<{name}@{CID_DOMAIN}>",
                              filename=f"{name}.png", disposition="inline")
    return msg


@contextmanager
def smtp_session(smtp: Mapping[str, Any]) -> Iterator[smtplib.SMTP]:
    """A signed-in connection to the SMTP server of `smtp_settings` (TLS as configured), closed after.
    The digest and the agents' notification mails (inbox/notifications.py) both send through it."""
    context = ssl.create_default_context()
    if smtp["security"] == "ssl":
        server = smtplib.SMTP_SSL(smtp["host"], smtp["port"], timeout=smtp["timeout"], context=context)
    else:
        server = smtplib.SMTP(smtp["host"], smtp["port"], timeout=smtp["timeout"])
    try:
        server.ehlo()
        if smtp["security"] == "starttls":
            server.starttls(context=context)
            server.ehlo()
        if smtp["username"]:
            server.login(smtp["username"], smtp["password"])
        yield server
    finally:
        try:
            server.quit()
        except smtplib.SMTPException:
            server.close()


def send(mainland: Any, store: Any, digest: Digest) -> list[str]:
    """Mail the digest to every recipient; returns the addresses it went to. Raises DigestError."""
    smtp = smtp_settings(mainland)
    people = recipients(mainland, store)
    if not people:
        raise DigestError("nobody to send the digest to: no active agent has the role manager")
    try:
        with smtp_session(smtp) as server:
            for address, name, language in people:
                message = build_message(digest, to=(address, name), language=language, smtp=smtp,
                                        instance_id=mainland.config.instance_id, domain=mainland.config.mail_domain)
                server.sendmail(smtp["from_address"], [address], message.as_bytes())
    except (smtplib.SMTPException, OSError) as exc:
        raise DigestError(f"SMTP {smtp['host']}:{smtp['port']}: {exc}") from exc
    return [address for address, _, _ in people]


# Running ------------------------------------------------------------------------------------------------

def run(mainland: Any, store: Any, period: Period, *, send_mail: bool, now: dt.datetime | None = None) -> Digest:
    """Build, archive and (if asked) mail the digest of `period`. A mail failure is recorded, then raised."""
    now = now or clock.now()
    digest = build_digest(mainland, store, period, now)
    archive(store, digest, now)
    if send_mail:
        deliver(mainland, store, digest, now)
    return digest


def deliver(mainland: Any, store: Any, digest: Digest, now: dt.datetime) -> list[str]:
    try:
        sent_to = send(mainland, store, digest)
    except DigestError as exc:
        with store.write():
            store.mark_digest_sent(digest.period.key, [], None, str(exc)[:500])
        raise
    with store.write():
        store.mark_digest_sent(digest.period.key, sent_to, iso(now), None)
    log.info("digest %s sent to %d recipient(s)", digest.period.key, len(sent_to))
    return sent_to


def due_period(mainland: Any, now: dt.datetime) -> Period | None:
    """The week whose digest is due at `now` (its scheduled moment passed this week), else None."""
    conf = settings_for(mainland.config)
    if not conf.enabled:
        return None
    current = Period.containing(now, conf.timezone)
    scheduled = dt.datetime.combine(current.first_day + dt.timedelta(days=conf.weekday), dt.time(conf.hour),
                                    tzinfo=ZoneInfo(conf.timezone))
    return current.previous() if now >= scheduled else None


def run_if_due(mainland: Any, store: Any, now: dt.datetime | None = None) -> str | None:
    """The worker's check: build and send last week's digest once its moment has come this week.

    Idempotent: an archived digest is not built again, a sent one not sent again; a failed mail is
    tried again at the next check while the week lasts. Returns the week handled, if any.
    """
    now = now or clock.now()
    period = due_period(mainland, now)
    if period is None:
        return None
    conf = settings_for(mainland.config)
    existing = store.digest(period.key)
    if existing is not None and (existing["sent_at"] or not conf.send):
        return None
    if existing is None:
        digest = build_digest(mainland, store, period, now)
        archive(store, digest, now)
    else:
        digest = _from_archive(mainland, store, existing)
    if conf.send:
        try:
            deliver(mainland, store, digest, now)
        except DigestError as exc:
            log.warning("the digest of %s was not sent: %s", period.key, exc)
    return period.key


def _from_archive(mainland: Any, store: Any, row: Mapping[str, Any]) -> Digest:
    period = Period.parse(row["week"], settings_for(mainland.config).timezone)
    images = {name: store.digest_image(row["week"], name) for name in store.digest_image_names(row["week"])}
    return Digest(period=period, subject=row["subject"], html=row["html"], text=row["text"], images=images,
                  figures=json.loads(row["figures"]))
