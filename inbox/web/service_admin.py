"""Admin pages for service levels, business hours, surveys and the weekly digest (issue #13).

Each page edits one part of a stored config section (`service_levels` or `digest`, inbox/settings.py)
that holds exactly what the YAML section would hold: the form is read field by field (an explicit
allow-list), every field gets its own error in words an admin can act on ("write it like 4h"), and
the whole section must still pass `inbox.settings.check_section` before it is stored. A save is one
write transaction with its audit row (what changed, before and after; secrets never), after which
this process takes the change in at once (`Mainland.refresh`); other processes do on their own.

When the YAML file sets the section, the page shows its values read-only, marked "set in the
config file", and refuses a POST with 409. A stored section that fails its check (a secret that no
longer opens) is named on the page: Mainland runs on the defaults until it is saved again.

A saved policy or business hours apply to conversations that are still open: the first batch of
their due times is recomputed in the request, the worker's minute job does the rest
(`service_levels.refresh_after_policy_change`, see docs/service-levels.md).

Admins only, like the rest of /admin: managers see the policies in force on /reports and in the
digest, and a change to targets moves every agent's queue, so it stays with whoever runs the
installation.
"""

from __future__ import annotations

import copy
import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from inbox import business_hours, clock, digest, service_levels
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.secrets_box import is_sealed
from inbox.settings import SECOND_FACTOR_ROLES, check_section, second_factor_roles, section_in_file
from inbox.store import now_iso
from inbox.store.base import parse_iso
from inbox.web import get_store, mainland
from inbox.web.admin import _check_email
from inbox.web.auth import role_required
from inbox.web.conversations import PRIORITY_LABELS

bp = Blueprint("service_admin", __name__)

admin_only = role_required("admin")

METRIC_LABELS = {
    "first_response": _l("First response"),
    "next_response": _l("Next response"),
    "resolution": _l("Resolution"),
}
DAY_LABELS = {
    "mon": _l("Monday"), "tue": _l("Tuesday"), "wed": _l("Wednesday"), "thu": _l("Thursday"),
    "fri": _l("Friday"), "sat": _l("Saturday"), "sun": _l("Sunday"),
}
SURVEY_CHOICES = {"": _l("By the channel's kind"), "link": _l("A link to a survey page"),
                  "chat": _l("A question in the chat"), "off": _l("No survey")}
SECURITY_CHOICES = ("starttls", "ssl", "none")
#: Conversations whose due times a save recomputes at once; the worker does the rest within a minute.
SAVE_BATCH = 200
MAX_TEXT = 200
MAX_LIST = 5000
#: Field of one SMTP setting that is a secret: never shown back, blank keeps the stored one.
SECRET_FIELD = "password"


# The section being edited ------------------------------------------------------------------------------

def _in_file(section: str) -> bool:
    return section_in_file(mainland().bootstrap, section)


def _current(section: str) -> dict[str, Any]:
    """What the page shows: the file's section when it sets one, else the stored one (secrets sealed)."""
    if _in_file(section):
        return copy.deepcopy(dict(mainland().bootstrap.extra.get(section) or {}))
    return copy.deepcopy(dict(get_store().stored_settings.sections().get(section) or {}))


def _refuse_if_in_file(section: str) -> None:
    if _in_file(section):
        abort(409)


def _page_context(section: str) -> dict[str, Any]:
    store = get_store()
    return {
        "in_file": _in_file(section),
        "problem": mainland().settings_problems.get(section),
        "info": None if _in_file(section) else store.stored_settings.section_info(section),
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and not is_sealed(value):
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix: "(secret)" if is_sealed(value) else value}


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What a save changed, key path -> {before, after}; a secret shows only that it changed."""
    old, new = _flatten(before), _flatten(after)
    found = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            found[key] = {"before": old.get(key), "after": new.get(key)}
        elif key in new and new[key] == "(secret)" and _sealed_at(before, key) != _sealed_at(after, key):
            found[key] = {"before": "(secret)", "after": "(secret, changed)"}
    return found


def _sealed_at(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _save(section: str, value: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Store the section and its audit row in one transaction, then take it in here at once."""
    store = get_store()
    changed = changes(before, value)
    with store.write():
        store.stored_settings.save_section(section, value, by=g.agent["id"])
        store.audit(now_iso(), f"agent:{g.agent['id']}", "settings_changed", "settings", section,
                    ip=request.remote_addr, changes=changed)
    mainland().refresh(store)
    return changed


def _section_problems(section: str, value: dict[str, Any]) -> list[str]:
    return check_section(section, value, mainland().config.channels)


def _save_or_show(section: str, before: dict[str, Any], after: dict[str, Any], *, done: str, page: str,
                  show: Callable[[dict[str, str]], Any]):
    """Save `after` and go back to `page` with `done` as the message; or, when the section's own check
    refuses it, `show` the form again with why. Every settings page saves through here."""
    problems = _section_problems(section, after)
    if problems:
        return show({"section": "; ".join(problems)})
    _save(section, after, before)
    if section == "service_levels":
        _recompute_due_times(before, after)
    flash(done, "success")
    return redirect(url_for(f"service_admin.{page}"))


#: Parts of `service_levels` that move due times.
_TIMING_KEYS = ("policy", "overrides", "business_hours", "teams")


def _recompute_due_times(before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """First batch of open conversations now; the worker's minute job does the rest."""
    if all(before.get(k) == after.get(k) for k in _TIMING_KEYS):
        return
    store = get_store()
    info = store.stored_settings.section_info("service_levels")
    levels = service_levels.for_config(mainland().config)
    changed_at = parse_iso(info.updated_at) if info else None
    service_levels.refresh_after_policy_change(store, levels, changed_at, clock.now(), batch=SAVE_BATCH,
                                               max_batches=1)


# Reading form fields --------------------------------------------------------------------------------------

def _text(name: str, limit: int = MAX_TEXT) -> str:
    return request.form.get(name, "").strip()[:limit]


def human_duration(value: Any) -> str:
    """A stored duration as people write it: 3600 -> "1h", "30m" stays "30m"."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        seconds = int(value)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    return str(value)


def _duration(name: str, errors: dict[str, str]) -> str | None:
    """A duration typed as people write it ("30m", "4h", "2d"), kept as typed (tidied)."""
    text = _text(name, 40).lower().replace(" ", "")
    if not text:
        errors[name] = _("Enter a duration, like 30m, 4h or 2d.")
        return None
    try:
        service_levels.parse_duration(text, name)
    except service_levels.PolicyError:
        errors[name] = _("“%(value)s” is not a duration: write minutes, hours or days, like 30m, 4h or 2d.",
                         value=text)
        return None
    return text


def _target(prefix: str, errors: dict[str, str]) -> dict[str, str] | None:
    desired = _duration(f"{prefix}_desired", errors)
    adequate = _duration(f"{prefix}_adequate", errors)
    if desired is None or adequate is None:
        return None
    if service_levels.parse_duration(adequate, "") < service_levels.parse_duration(desired, ""):
        errors[f"{prefix}_adequate"] = _("The adequate time cannot be shorter than the desired time (%(desired)s).",
                                         desired=desired)
        return None
    return {"desired": desired, "adequate": adequate}


def _checked(name: str) -> bool:
    return request.form.get(name) in ("1", "on", "yes", "true")


# Service levels: the default policy, overrides, lead warnings -------------------------------------------------

def _policy_rows(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each metric of the default policy as the form shows it."""
    policy = section.get("policy") or {}
    rows = []
    for metric in service_levels.METRICS:
        if metric in policy and policy[metric] in (None, False):
            rows.append({"metric": metric, "on": False, "desired": "", "adequate": ""})
            continue
        value = policy.get(metric) or {}
        desired, adequate = service_levels.DEFAULT_TARGETS[metric]
        rows.append({"metric": metric, "on": True, "desired": human_duration(value.get("desired", desired)),
                     "adequate": human_duration(value.get("adequate", adequate))})
    return rows


def _override_view(item: Mapping[str, Any]) -> dict[str, Any]:
    metrics = {}
    for metric in service_levels.METRICS:
        if metric not in item:
            metrics[metric] = {"mode": "inherit", "desired": "", "adequate": ""}
        elif item[metric] in (None, False):
            metrics[metric] = {"mode": "off", "desired": "", "adequate": ""}
        else:
            metrics[metric] = {"mode": "set", "desired": human_duration(item[metric].get("desired")),
                               "adequate": human_duration(item[metric].get("adequate"))}
    return {"channel": item.get("channel") or "", "priority": "" if item.get("priority") is None
            else str(item["priority"]), "metrics": metrics, "key": _override_key(item)}


def _override_key(item: Mapping[str, Any]) -> str:
    """What an override applies to, as a hidden field: an edit aimed at a list that changed meanwhile is refused."""
    priority = item.get("priority")
    return f"{item.get('channel') or ''}|{'' if priority is None else priority}"


def _override_channels() -> list[str]:
    """Channels an override may name: those in force, and any an override already names (a channel removed since)."""
    named = [str(o.get("channel")) for o in _current("service_levels").get("overrides") or ()
             if isinstance(o, Mapping) and o.get("channel")]
    return sorted(set(mainland().config.channels) | set(named))


def _service_levels_page(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
                         error_form: str | None = None, status: int = 200):
    section = _current("service_levels")
    overrides = [_override_view(o) for o in section.get("overrides") or () if isinstance(o, Mapping)]
    channels = _override_channels()
    blank = {"channel": "", "priority": "",
             "metrics": {m: {"mode": "inherit", "desired": "", "adequate": ""} for m in service_levels.METRICS}}
    defaults = {row["metric"]: row for row in _policy_rows(section)}
    return render_template(
        "admin/service_levels.html", defaults=defaults,
        policy=form if error_form == "policy" else {
            "rows": _policy_rows(section),
            "warn_before": human_duration(section.get("warn_before", "15m")),
            "notify": bool(section.get("notify", True))},
        overrides=overrides, new_override=form if error_form == "new" else blank,
        edited=form if error_form not in (None, "policy", "new") else None,
        errors=errors or {}, error_form=error_form, channels=channels,
        priorities=sorted(PRIORITY_LABELS.items()), metric_labels=METRIC_LABELS, active="service_levels",
        **_page_context("service_levels"),
    ), status


@bp.get("/admin/service-levels")
@admin_only
def service_levels_page():
    return _service_levels_page()


@bp.post("/admin/service-levels")
@admin_only
def save_policy():
    _refuse_if_in_file("service_levels")
    errors: dict[str, str] = {}
    policy: dict[str, Any] = {}
    rows = []
    for metric in service_levels.METRICS:
        on = _checked(f"{metric}_on")
        rows.append({"metric": metric, "on": on, "desired": _text(f"{metric}_desired", 40),
                     "adequate": _text(f"{metric}_adequate", 40)})
        policy[metric] = _target(metric, errors) if on else None
    warn_before = _duration("warn_before", errors)
    notify = _checked("notify")
    if errors:
        form = {"rows": rows, "warn_before": _text("warn_before", 40), "notify": notify}
        return _service_levels_page(errors, form, "policy", 400)
    before = _current("service_levels")
    after = {**before, "policy": policy, "warn_before": warn_before, "notify": notify}
    return _store_service_levels(before, after, "policy", _("The service levels are saved."))


def _store_service_levels(before: dict[str, Any], after: dict[str, Any], error_form: str, done: str,
                          form: dict[str, Any] | None = None):
    return _save_or_show("service_levels", before, after, done=done, page="service_levels_page",
                         show=lambda errors: _service_levels_page(errors, form, error_form, 400))


def _read_override(errors: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the override as stored, the form as typed) from an override form."""
    channel = _text("channel")
    priority_text = _text("priority", 4)
    item: dict[str, Any] = {}
    view = {"channel": channel, "priority": priority_text, "metrics": {}}
    if channel:
        if channel not in _override_channels():
            errors["channel"] = _("Choose a channel from the list.")
        item["channel"] = channel
    if priority_text:
        if not priority_text.isdigit() or int(priority_text) not in PRIORITY_LABELS:
            errors["priority"] = _("Choose a priority from the list.")
        else:
            item["priority"] = int(priority_text)
    if not channel and not priority_text:
        errors["channel"] = _("Choose a channel, a priority or both: an override applies to those only.")
    for metric in service_levels.METRICS:
        mode = request.form.get(f"{metric}_mode", "inherit")
        view["metrics"][metric] = {"mode": mode, "desired": _text(f"{metric}_desired", 40),
                                   "adequate": _text(f"{metric}_adequate", 40)}
        if mode == "off":
            item[metric] = None
        elif mode == "set":
            item[metric] = _target(metric, errors)
        elif mode != "inherit":
            abort(400)
    if not errors and not any(m in item for m in service_levels.METRICS):
        errors["first_response_mode"] = _("Change at least one target: an override names only what differs.")
    return item, view


def _override_errors(item: dict[str, Any], others: list[Any], errors: dict[str, str]) -> None:
    if "channel" not in errors and any(_override_key(o) == _override_key(item) for o in others
                                       if isinstance(o, Mapping)):
        errors["channel"] = _("There is already an override for this channel and priority: change that one.")


@bp.post("/admin/service-levels/overrides")
@admin_only
def add_override():
    _refuse_if_in_file("service_levels")
    errors: dict[str, str] = {}
    item, view = _read_override(errors)
    before = _current("service_levels")
    overrides = list(before.get("overrides") or [])
    _override_errors(item, overrides, errors)
    if errors:
        return _service_levels_page(errors, view, "new", 400)
    after = {**before, "overrides": [*overrides, item]}
    return _store_service_levels(before, after, "new", _("The override is added."), view)


def _override_at(before: Mapping[str, Any], index: int) -> list[Any]:
    overrides = list(before.get("overrides") or [])
    if index >= len(overrides) or _override_key(overrides[index]) != request.form.get("key", ""):
        # Someone else changed the list since the page was shown.
        flash(_("The overrides changed meanwhile: here they are as they are now."), "error")
        abort(redirect(url_for("service_admin.service_levels_page")))
    return overrides


@bp.post("/admin/service-levels/overrides/<int:index>")
@admin_only
def edit_override(index: int):
    _refuse_if_in_file("service_levels")
    before = _current("service_levels")
    overrides = _override_at(before, index)
    errors: dict[str, str] = {}
    item, view = _read_override(errors)
    view["key"], view["index"] = request.form.get("key", ""), index
    _override_errors(item, overrides[:index] + overrides[index + 1:], errors)
    if errors:
        return _service_levels_page(errors, view, f"override-{index}", 400)
    overrides[index] = item
    return _store_service_levels(before, {**before, "overrides": overrides}, f"override-{index}",
                                 _("The override is saved."), view)


@bp.post("/admin/service-levels/overrides/<int:index>/delete")
@admin_only
def delete_override(index: int):
    _refuse_if_in_file("service_levels")
    before = _current("service_levels")
    overrides = _override_at(before, index)
    del overrides[index]
    after = {**before, "overrides": overrides}
    if not overrides:
        after.pop("overrides")
    return _store_service_levels(before, after, "policy", _("The override is removed."))


# Business hours ---------------------------------------------------------------------------------------

def _hours_view(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Business hours as the form shows them: one line per day, holidays one per line."""
    data = data or {}
    try:
        hours = business_hours.from_config(data)
    except business_hours.BusinessHoursError:
        hours = None
    always = not data.get("hours")
    days = {}
    for index, day in enumerate(business_hours.DAYS):
        windows = hours.weekly[index] if hours is not None and not always else ()
        days[day] = ", ".join(_window_text(w) for w in windows)  # empty: closed, in any language
    return {"always": always, "timezone": str(data.get("timezone") or "UTC"), "days": days,
            "holidays": "\n".join(str(d) for d in data.get("holidays") or ())}


def _window_text(window: tuple[Any, Any]) -> str:
    begin, end = window
    if begin.hour == 0 and begin.minute == 0 and end is None:
        return "24h"
    return f"{begin:%H:%M}-{'24:00' if end is None else f'{end:%H:%M}'}"


def _read_hours(errors: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(business hours as stored, the form as typed)."""
    view = {"always": _checked("always"), "timezone": _text("timezone", 80),
            "days": {day: _text(f"hours_{day}", 100) for day in business_hours.DAYS},
            "holidays": request.form.get("holidays", "")[:MAX_LIST]}
    value: dict[str, Any] = {}
    if view["timezone"] not in _timezones():
        errors["timezone"] = _("Choose a time zone from the list, like Europe/Amsterdam.")
    value["timezone"] = view["timezone"]
    if not view["always"]:
        hours = {}
        for day, text in view["days"].items():
            try:
                business_hours.parse_window(text or "closed")
            except business_hours.BusinessHoursError:
                errors[f"hours_{day}"] = _("Write the hours like 09:00-17:00 (or 09:00-12:00, 13:00-17:00) "
                                           "or 24h; leave it empty when closed.")
            hours[day] = text or "closed"
        if not any(f"hours_{day}" in errors for day in hours) and all(
                not business_hours.parse_window(t) for t in hours.values()):
            errors["hours_mon"] = _("Open on at least one day, or choose “Open around the clock”.")
        value["hours"] = hours
    holidays = []
    for line in view["holidays"].replace(",", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            day = dt.date.fromisoformat(line)
        except ValueError:
            errors["holidays"] = _("“%(value)s” is not a date: write one date a line, like 2026-12-25.", value=line)
            break
        holidays.append(day.isoformat())
    if holidays and view["always"]:
        errors["holidays"] = _("Holidays stop the clock only with opening hours: set the hours per day, "
                               "or remove the holidays.")
    if holidays:
        value["holidays"] = sorted(set(holidays))
    return value, view


_ZONES: list[str] = []


def _timezones() -> list[str]:
    if not _ZONES:
        _ZONES.extend(sorted(zoneinfo.available_timezones() | {"UTC"}))
    return _ZONES


def _hours_summary(data: Mapping[str, Any] | None) -> str:
    view = _hours_view(data)
    if view["always"]:
        return _("Around the clock, %(zone)s", zone=view["timezone"])
    open_days = [f"{DAY_LABELS[d]} {t}" for d, t in view["days"].items() if t]
    return f"{view['timezone']}: " + "; ".join(open_days)


def _business_hours_page(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
                         error_form: str | None = None, status: int = 200):
    section = _current("service_levels")
    team_sections = section.get("teams") or {}
    teams = []
    for team in get_store().teams():
        own = (team_sections.get(team["name"]) or {}).get("business_hours")
        teams.append({"id": team["id"], "name": team["name"], "own": own is not None,
                      "summary": _hours_summary(own) if own is not None else None,
                      "form": form if error_form == f"team-{team['id']}" else _hours_view(
                          own if own is not None else section.get("business_hours"))})
    known = {t["name"] for t in teams}
    return render_template(
        "admin/business_hours.html",
        default=form if error_form == "default" else _hours_view(section.get("business_hours")),
        default_summary=_hours_summary(section.get("business_hours")),
        teams=teams, unknown_teams=sorted(set(team_sections) - known),
        errors=errors or {}, error_form=error_form, timezones=_timezones(), day_labels=DAY_LABELS,
        active="business_hours", **_page_context("service_levels"),
    ), status


@bp.get("/admin/business-hours")
@admin_only
def business_hours_page():
    return _business_hours_page()


def _store_hours(before: dict[str, Any], after: dict[str, Any], error_form: str, view: dict[str, Any], done: str):
    return _save_or_show("service_levels", before, after, done=done, page="business_hours_page",
                         show=lambda errors: _business_hours_page(errors, view, error_form, 400))


@bp.post("/admin/business-hours")
@admin_only
def save_business_hours():
    _refuse_if_in_file("service_levels")
    errors: dict[str, str] = {}
    value, view = _read_hours(errors)
    if errors:
        return _business_hours_page(errors, view, "default", 400)
    before = _current("service_levels")
    return _store_hours(before, {**before, "business_hours": value}, "default", view,
                       _("The business hours are saved."))


def _team_or_404(team_id: int) -> dict[str, Any]:
    team = get_store().team(team_id)
    if team is None:
        abort(404)
    return team


@bp.post("/admin/business-hours/teams/<int:team_id>")
@admin_only
def save_team_hours(team_id: int):
    _refuse_if_in_file("service_levels")
    team = _team_or_404(team_id)
    errors: dict[str, str] = {}
    value, view = _read_hours(errors)
    if errors:
        return _business_hours_page(errors, view, f"team-{team_id}", 400)
    before = _current("service_levels")
    teams = dict(before.get("teams") or {})
    teams[team["name"]] = {"business_hours": value}
    return _store_hours(before, {**before, "teams": teams}, f"team-{team_id}", view,
                       _("The business hours of %(team)s are saved.", team=team["name"]))


@bp.post("/admin/business-hours/teams/<int:team_id>/default")
@admin_only
def use_default_hours(team_id: int):
    _refuse_if_in_file("service_levels")
    team = _team_or_404(team_id)
    before = _current("service_levels")
    teams = dict(before.get("teams") or {})
    if teams.pop(team["name"], None) is None:
        return redirect(url_for("service_admin.business_hours_page"))
    after = {**before, "teams": teams}
    if not teams:
        after.pop("teams")
    return _store_hours(before, after, "default", _hours_view(before.get("business_hours")),
                       _("%(team)s uses the default business hours.", team=team["name"]))


# Surveys --------------------------------------------------------------------------------------------------

def _survey_channels() -> list[str]:
    return sorted(mainland().config.channels)


def _surveys_view(csat: Mapping[str, Any]) -> dict[str, Any]:
    chosen = {str(k): str(v) for k, v in (csat.get("channels") or {}).items()}
    return {"enabled": bool(csat.get("enabled", True)), "delay": human_duration(csat.get("delay", "10m")),
            "expires": human_duration(csat.get("expires", "7d")),
            "channels": {name: chosen.get(name, "") for name in sorted({*_survey_channels(), *chosen})}}


def _surveys_page(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None, status: int = 200):
    section = _current("service_levels")
    return render_template(
        "admin/surveys.html", form=form or _surveys_view(section.get("csat") or {}), errors=errors or {},
        choices=SURVEY_CHOICES, active="surveys", **_page_context("service_levels"),
    ), status


@bp.get("/admin/surveys")
@admin_only
def surveys_page():
    return _surveys_page()


@bp.post("/admin/surveys")
@admin_only
def save_surveys():
    _refuse_if_in_file("service_levels")
    errors: dict[str, str] = {}
    before = _current("service_levels")
    old = dict(before.get("csat") or {})
    names = sorted({*_survey_channels(), *(str(k) for k in (old.get("channels") or {}))})
    view = {"enabled": _checked("enabled"), "delay": _text("delay", 40), "expires": _text("expires", 40),
            "channels": {name: request.form.get(f"channel:{name}", "") for name in names}}
    csat: dict[str, Any] = {"enabled": view["enabled"], "delay": _duration("delay", errors),
                            "expires": _duration("expires", errors)}
    per_channel = {}
    for name, choice in view["channels"].items():
        if choice not in SURVEY_CHOICES:
            abort(400)
        if choice:
            per_channel[name] = choice
    if per_channel:
        csat["channels"] = per_channel
    if errors:
        return _surveys_page(errors, view, 400)
    return _save_or_show("service_levels", before, {**before, "csat": csat},
                         done=_("The survey settings are saved."), page="surveys_page",
                         show=lambda errors: _surveys_page(errors, view, 400))


# The weekly digest ---------------------------------------------------------------------------------------

def _email_channels() -> list[str]:
    return sorted(n for n, c in mainland().config.channels.items() if c.kind == "imap")


def _digest_view(data: Mapping[str, Any]) -> dict[str, Any]:
    smtp = dict(data.get("smtp") or {})
    goal = data.get("goal", digest.DEFAULT_GOAL)
    return {
        "enabled": bool(data.get("enabled", True)), "weekday": str(data.get("weekday", "mon"))[:3].lower(),
        "hour": str(data.get("hour", 8)), "timezone": str(data.get("timezone") or ""),
        "send": bool(data.get("send", True)), "delivery": "smtp" if smtp else "channel",
        "channel": str(data.get("channel") or ""),
        "smtp_host": str(smtp.get("host") or ""), "smtp_port": str(smtp.get("port") or ""),
        "smtp_security": str(smtp.get("security") or "starttls"), "smtp_username": str(smtp.get("username") or ""),
        "smtp_from_address": str(smtp.get("from_address") or ""), "smtp_from_name": str(smtp.get("from_name") or ""),
        "has_password": bool(smtp.get(SECRET_FIELD)),
        "recipients": "\n".join(data.get("recipients") or ()),
        "goal": _percent(goal),
    }


def _percent(goal: Any) -> str:
    try:
        return f"{float(goal) * 100:g}"
    except (TypeError, ValueError):
        return str(goal)


def _digest_page(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None, status: int = 200):
    data = _current("digest")
    return render_template(
        "admin/digest.html", form=form or _digest_view(data), errors=errors or {},
        weekdays=list(DAY_LABELS.items()), hours=range(24), timezones=_timezones(),
        email_channels=_email_channels(), security_choices=SECURITY_CHOICES,
        zone_default=service_levels.for_config(mainland().config).hours.timezone,
        active="digest", **_page_context("digest"),
    ), status


@bp.get("/admin/digest")
@admin_only
def digest_page():
    return _digest_page()


def _read_digest(before: Mapping[str, Any], errors: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    view = {key: _text(key) for key in ("weekday", "hour", "timezone", "delivery", "channel", "smtp_host",
                                        "smtp_port", "smtp_security", "smtp_username", "smtp_from_address",
                                        "smtp_from_name", "goal")}
    view.update(enabled=_checked("enabled"), send=request.form.get("send") != "archive",
                recipients=request.form.get("recipients", "")[:MAX_LIST],
                has_password=bool((before.get("smtp") or {}).get(SECRET_FIELD)))
    value: dict[str, Any] = {"enabled": view["enabled"], "send": view["send"]}
    if view["weekday"] not in DAY_LABELS:
        errors["weekday"] = _("Choose a day of the week.")
    value["weekday"] = view["weekday"]
    if not view["hour"].isdigit() or not 0 <= int(view["hour"]) <= 23:
        errors["hour"] = _("Choose an hour from 0 to 23.")
    else:
        value["hour"] = int(view["hour"])
    if view["timezone"]:
        if view["timezone"] not in _timezones():
            errors["timezone"] = _("Choose a time zone from the list, like Europe/Amsterdam, or leave it empty.")
        value["timezone"] = view["timezone"]
    if view["delivery"] == "smtp":
        value["smtp"] = _read_smtp(view, before, errors)
    elif view["delivery"] == "channel":
        if view["channel"]:
            if view["channel"] not in _email_channels():
                errors["channel"] = _("Choose an email channel from the list.")
            value["channel"] = view["channel"]
    else:
        abort(400)
    recipients = []
    for line in view["recipients"].replace(",", "\n").replace(";", "\n").splitlines():
        if not line.strip():
            continue
        address = _check_email(line)
        if address is None:
            errors["recipients"] = _("“%(value)s” is not an email address: write one address a line, "
                                     "like name@example.com.", value=line.strip()[:MAX_TEXT])
            break
        if address not in recipients:
            recipients.append(address)
    if recipients:
        value["recipients"] = recipients
    try:
        goal = float(view["goal"].replace(",", ".").rstrip("% "))
        if not 0 < goal <= 100:
            raise ValueError
        value["goal"] = round(goal / 100, 4)
    except ValueError:
        errors["goal"] = _("Enter a percentage above 0 and at most 100, like 90.")
    return value, view


def _read_smtp(view: dict[str, Any], before: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    smtp: dict[str, Any] = {}
    if not view["smtp_host"]:
        errors["smtp_host"] = _("Enter the mail server's name, like smtp.example.com.")
    smtp["host"] = view["smtp_host"]
    if view["smtp_port"]:
        if not view["smtp_port"].isdigit() or not 0 < int(view["smtp_port"]) < 65536:
            errors["smtp_port"] = _("Enter a port number, like 587, or leave it empty.")
        else:
            smtp["port"] = int(view["smtp_port"])
    if view["smtp_security"] not in SECURITY_CHOICES:
        abort(400)
    smtp["security"] = view["smtp_security"]
    address = _check_email(view["smtp_from_address"])
    if address is None:
        errors["smtp_from_address"] = _("Enter the address the digest comes from, like reports@example.com.")
    smtp["from_address"] = address or view["smtp_from_address"]
    for key in ("username", "from_name"):
        if view[f"smtp_{key}"]:
            smtp[key] = view[f"smtp_{key}"]
    # The password: typed anew it is sealed; left blank the stored one stays; never shown back.
    typed = request.form.get("smtp_password", "")[:MAX_TEXT]
    old = (before.get("smtp") or {}).get(SECRET_FIELD)
    if typed.strip():
        smtp[SECRET_FIELD] = mainland().secret_box().seal(typed)
    elif old is not None and not _checked("smtp_password_clear"):
        smtp[SECRET_FIELD] = old
    return smtp


@bp.post("/admin/digest")
@admin_only
def save_digest():
    _refuse_if_in_file("digest")
    errors: dict[str, str] = {}
    before = _current("digest")
    value, view = _read_digest(before, errors)
    if errors:
        return _digest_page(errors, view, 400)
    return _save_or_show("digest", before, value, done=_("The digest settings are saved."), page="digest_page",
                         show=lambda errors: _digest_page(errors, view, 400))


def init_app(app) -> None:
    filters: dict[str, Callable[..., Any]] = {"human_duration": human_duration}
    app.jinja_env.filters.update(filters)


# Sign-in security: which roles must use two-step sign-in ------------------------------------------

@bp.get("/admin/security")
@admin_only
def security_page():
    return _security_page()


def _security_page(errors: dict[str, str] | None = None, status: int = 200):
    roles, in_file = second_factor_roles(mainland().config)
    context = _page_context("security")
    context["in_file"] = in_file  # decided by the file's web.require_second_factor
    return render_template("admin/security.html", roles=SECOND_FACTOR_ROLES, required=set(roles),
                           errors=errors or {}, active="security", **context), status


@bp.post("/admin/security")
@admin_only
def save_security():
    if second_factor_roles(mainland().config)[1]:
        abort(409)
    chosen = [role for role in SECOND_FACTOR_ROLES if _checked(f"role_{role}")]
    before = _current("security")
    return _save_or_show("security", before, {"require_second_factor": chosen},
                         done=_("Saved: the roles ticked must set up two-step sign-in at their next page."),
                         page="security_page", show=lambda errors: _security_page(errors, 400))
