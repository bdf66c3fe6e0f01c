"""Channels administered in the browser: add one from the installed connectors, test it, pause it.

Routes (admins only; every change audited and in force without a restart, see inbox/settings.py):

- `GET  /admin/channels`                  every channel: kind, where it is set, state, team, last poll/error
- `GET  /admin/channels/new?kind=K`       the form the connector's declared settings describe
- `POST /admin/channels/new`              add it (secrets sealed, inbox/secrets_box.py)
- `GET  /admin/channels/<name>`           its settings, state, webhook address, health and connection test
- `POST /admin/channels/<name>`           change its settings (a blank secret keeps the stored one)
- `POST /admin/channels/<name>/state`     enable, pause or disable
- `POST /admin/channels/<name>/test`      ask the provider through the connector's `probe()`
- `POST /admin/channels/<name>/delete`    remove a disabled channel (its conversations stay)

Channels from the config file are listed and tested like the others but shown read-only: the file
is where they change.

A connector's words are English marked with `N_` (connectors/base.py): a setting's label and help and
a connection test's summary are translated here, when shown; unmarked text shows as written.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from connectors.base import Connector, ProbeResult, Setting
from inbox import clock, health, secrets_box
from inbox.config import _duration
from inbox.i18n import gettext as _
from inbox.i18n import lazy_gettext as _l
from inbox.settings import CHANNEL_STATES, open_channel_settings
from inbox.store import now_iso
from inbox.store.settings import StoredChannel
from inbox.web import get_store, mainland
from inbox.web.auth import role_required

bp = Blueprint("channels_admin", __name__)
admin_only = role_required("admin")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
#: Longest value a setting field takes (a token, an address, a URL).
MAX_SETTING_CHARS = 4000
STATE_LABELS = {"enabled": _l("enabled"), "paused": _l("paused"), "disabled": _l("disabled")}


def _audit(action: str, name: str, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(now_iso(), f"agent:{g.agent['id']}", action, "channel", name, ip=request.remote_addr,
                    **details)


def kind_name(cls: type[Connector]) -> str:
    """The name of a connector's kind in the reader's language ("Webformulier"): built-ins mark their
    `display_name` with `N_`; another connector's name is shown as written."""
    return _translated(str(getattr(cls, "display_name", None) or cls.kind))


@bp.context_processor
def _kind_names() -> dict[str, Any]:
    return {"kind_name": kind_name}


def _kinds() -> list[type[Connector]]:
    return sorted(mainland().registry.values(), key=lambda cls: kind_name(cls).lower())


def _class_or_404(kind: str) -> type[Connector]:
    cls = mainland().registry.get(kind)
    if cls is None:
        abort(404)
    return cls


def _field_type(setting: Setting) -> str:
    if setting.secret:
        return "password"
    if isinstance(setting.default, bool):
        return "checkbox"
    if isinstance(setting.default, int | float):
        return "number"
    if isinstance(setting.default, list | tuple):
        return "list"
    return "text"


def _translated(text: str) -> str:
    """A connector's marked text in the reader's language (gettext("") would be the catalog's header)."""
    return _(text) if text else ""


def _label(setting: Setting) -> str:
    """A setting's label, translated: its own `label`, or its key as words ("verify_token" -> "Verify token")."""
    return _translated(setting.shown_label)


def _probe_shown(result: ProbeResult | dict[str, Any]) -> dict[str, Any]:
    """A connection test's result as the page shows it: the summary in the reader's language, values filled
    in after translating (`Phrase.render`); already redacted by the connector."""
    if isinstance(result, dict):
        return result
    phrase = getattr(result, "phrase", None)  # an outside connector's result may be older than `phrase`
    return {"ok": result.ok, "summary": phrase.render(_translated) if phrase else result.summary,
            "detail": result.detail}


def _fields(cls: type[Connector], stored: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The form's fields: one per declared setting, with its value as shown (a secret never is)."""
    fields = []
    for setting in cls.settings:
        value = (stored or {}).get(setting.name, setting.default)
        if setting.secret:
            shown = secrets_box.describe(value)
        elif isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = "" if value is None else value
        fields.append({"name": setting.name, "label": _label(setting), "type": _field_type(setting), "required": setting.required,
                       "help": _translated(setting.help), "value": shown, "secret": setting.secret,
                       "stored": setting.secret and bool(value)})
    return fields


def _posted_settings(cls: type[Connector], stored: dict[str, Any] | None,
                     errors: dict[str, str]) -> dict[str, Any]:
    """The settings posted for `cls`: secrets sealed, numbers and switches typed; problems in `errors`."""
    box = mainland().secret_box()
    settings: dict[str, Any] = {}
    for setting in cls.settings:
        raw = request.form.get(f"setting-{setting.name}", "")
        if len(raw) > MAX_SETTING_CHARS:
            errors[setting.name] = _("Too long: at most %(n)d characters.", n=MAX_SETTING_CHARS)
            continue
        kind = _field_type(setting)
        if kind == "checkbox":
            settings[setting.name] = raw == "on"
        elif setting.secret:
            if raw:
                settings[setting.name] = box.seal(raw)
            elif stored and stored.get(setting.name):
                settings[setting.name] = stored[setting.name]  # blank: keep what is stored
        elif raw.strip() == "":
            continue
        elif kind == "list":
            settings[setting.name] = [part for part in re.split(r"[,\s]+", raw) if part]
        elif kind == "number":
            try:
                number = float(raw)
            except ValueError:
                errors[setting.name] = _("Write a number, e.g. %(example)s.", example=setting.default)
                continue
            settings[setting.name] = int(number) if isinstance(setting.default, int) and number.is_integer() else number
        else:
            settings[setting.name] = raw.strip()
    for setting in cls.settings:
        if setting.required and setting.name not in settings and setting.name not in errors:
            errors[setting.name] = _("Required.")
    return settings


def _posted_common(cls: type[Connector], errors: dict[str, str]) -> tuple[float | None, str | None]:
    """The poll interval and team posted with any channel."""
    poll_every = None
    text = request.form.get("poll_every", "").strip()
    if text and not cls.push_only:
        problems: list[str] = []
        poll_every = _duration(text, "poll_every", problems)
        if problems or poll_every is None or not 10 <= poll_every <= 86400:
            errors["poll_every"] = _("Write a time from 10 seconds to a day, e.g. 60, 30s, 5m or 1h.")
            poll_every = None
    team = request.form.get("team", "").strip() or None
    if team is not None and team not in {t["name"] for t in get_store().teams()}:
        errors["team"] = _("Choose one of the teams.")
    return poll_every, team


def _check_with_connector(cls: type[Connector], settings: dict[str, Any], errors: dict[str, str]) -> None:
    if errors:
        return
    try:
        open_channel_settings(mainland().registry, cls.kind, settings, mainland().secret_box())
    except ValueError as exc:
        errors["settings"] = str(exc)


def _health(name: str):
    for channel in health.channel_report(mainland(), get_store(), now=clock.now()):
        if channel.name == name:
            return channel
    return None


def _webhook_url(name: str, cls: type[Connector]) -> str | None:
    """Where the provider posts this channel's events, when it takes webhooks in its present settings."""
    if (cls.verify_webhook is Connector.verify_webhook or cls.own_endpoint
            or name not in mainland().config.channels):  # the same rule as the webhook route's
        return None
    connector = mainland().connector(name)
    try:
        if not getattr(connector, "webhook_enabled", True):
            return None
    finally:
        connector.close()
    return mainland().config.base_url + url_for("webhooks.receive", channel=name)


def _provider_values(name: str, cls: type[Connector]) -> list[dict[str, str]]:
    """Secrets the admin must type into the provider's settings too (a verify token), in clear."""
    channel = mainland().config.channels.get(name)
    if channel is None:
        return []
    return [{"name": s.name, "label": _label(s), "value": str(channel.settings[s.name])}
            for s in cls.settings if s.copy_to_provider and channel.settings.get(s.name)]


# Pages --------------------------------------------------------------------------------------

@bp.get("/admin/channels")
@admin_only
def index():
    config = mainland().config
    report = {c.name: c for c in health.channel_report(mainland(), get_store(), now=clock.now(), counts=False)}
    stored = {row.name: row for row in get_store().stored_settings.channels()}
    rows = []
    for name in sorted(set(config.channels) | set(stored)):
        channel = config.channels.get(name)
        row = stored.get(name)
        cls = mainland().registry.get(channel.kind if channel else row.kind)
        state = (row.state if row else ("enabled" if channel.enabled else "disabled"))
        rows.append({
            "name": name, "kind": kind_name(cls) if cls else (channel.kind if channel else row.kind),
            "origin": channel.origin if channel else "browser", "state": state,
            "team": (channel.settings.get("team") if channel else row.settings.get("team")) or "",
            "health": report.get(name), "problem": mainland().settings_problems.get(f"channels.{name}"),
        })
    return render_template("admin/channels.html", rows=rows, kinds=_kinds(), state_labels=STATE_LABELS)


@bp.route("/admin/channels/new", methods=["GET", "POST"])
@admin_only
def new():
    kind = request.values.get("kind", "")
    cls = _class_or_404(kind)
    errors: dict[str, str] = {}
    if request.method != "POST":
        return _new_page(cls, errors)
    name = request.form.get("name", "").strip().lower()
    if not _NAME.match(name):
        errors["name"] = _("Use 1 to 40 lower-case letters, digits, '-' and '_', starting with a letter or digit.")
    elif name in mainland().config.channels or get_store().stored_settings.channel(name):
        errors["name"] = _("There is a channel of this name already.")
    settings = _posted_settings(cls, None, errors)
    poll_every, team = _posted_common(cls, errors)
    if team:
        settings["team"] = team
    _check_with_connector(cls, settings, errors)
    if errors:
        return _new_page(cls, errors, status=400)
    store = get_store()
    if not store.stored_settings.add_channel(name=name, kind=cls.kind, settings=settings,
                                             poll_every=poll_every, by=g.agent["id"]):
        errors["name"] = _("There is a channel of this name already.")
        return _new_page(cls, errors, status=409)
    _audit("channel_added", name, kind=cls.kind, settings=sorted(settings))
    mainland().refresh(store)
    flash(_("Channel %(name)s added. Test the connection to see that the provider takes its settings.", name=name))
    return redirect(url_for("channels_admin.detail", name=name))


def _new_page(cls: type[Connector], errors: dict[str, str], status: int = 200):
    return render_template("admin/channel_new.html", cls=cls, fields=_fields(cls, _form_values(cls)),
                           errors=errors, teams=get_store().teams(), form=request.form), status


def _form_values(cls: type[Connector]) -> dict[str, Any] | None:
    """What was typed, to show again after an error (secrets never are)."""
    if request.method != "POST":
        return None
    return {s.name: request.form.get(f"setting-{s.name}", "") for s in cls.settings if not s.secret}


def _channel_or_404(name: str) -> tuple[Any, StoredChannel | None, type[Connector]]:
    """The channel in force (or None when left out), its stored row (None for the file's), its class."""
    channel = mainland().config.channels.get(name)
    row = get_store().stored_settings.channel(name)
    if channel is None and row is None:
        abort(404)
    kind = channel.kind if channel is not None and (row is None or channel.origin == "file") else row.kind
    cls = mainland().registry.get(kind)
    if cls is None:
        abort(404)
    return channel, (row if channel is None or channel.origin == "browser" else None), cls


@bp.route("/admin/channels/<name>", methods=["GET", "POST"])
@admin_only
def detail(name: str):
    channel, row, cls = _channel_or_404(name)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if row is None:
            abort(409)
        settings = _posted_settings(cls, row.settings, errors)
        poll_every, team = _posted_common(cls, errors)
        if team:
            settings["team"] = team
        _check_with_connector(cls, settings, errors)
        if not errors:
            changed = sorted(k for k in set(settings) | set(row.settings)
                             if settings.get(k) != row.settings.get(k))
            store = get_store()
            store.stored_settings.update_channel(name, settings=settings, poll_every=poll_every,
                                                 by=g.agent["id"])
            _audit("channel_changed", name, changed=changed,
                   poll_every=poll_every if poll_every != row.poll_every else None)
            mainland().refresh(store)
            flash(_("Channel %(name)s saved; it is in force now.", name=name))
            return redirect(url_for("channels_admin.detail", name=name))
    return _detail_page(name, channel, row, cls, errors, status=400 if errors else 200)


def _detail_page(name: str, channel: Any, row: StoredChannel | None, cls: type[Connector],
                 errors: dict[str, str], *, probe: Any = None, status: int = 200):
    stored = row.settings if row else (channel.settings if channel else {})
    state = row.state if row else ("enabled" if channel and channel.enabled else "disabled")
    poll_every = (row.poll_every if row else channel.poll_every) or None
    return render_template(
        "admin/channel.html", name=name, cls=cls, channel=channel, row=row, state=state,
        fields=_fields(cls, stored), errors=errors, teams=get_store().teams(), team=stored.get("team") or "",
        poll_every=poll_every, default_poll_every=cls.default_poll_every, health=_health(name),
        webhook_url=_webhook_url(name, cls), provider_values=_provider_values(name, cls), probe=probe, state_labels=STATE_LABELS, states=CHANNEL_STATES,
        problem=mainland().settings_problems.get(f"channels.{name}")), status


@bp.post("/admin/channels/<name>/state")
@admin_only
def set_state(name: str):
    channel, row, cls = _channel_or_404(name)
    state = request.form.get("state", "")
    if row is None or state not in CHANNEL_STATES:
        abort(400)
    store = get_store()
    if store.stored_settings.set_channel_state(name, state, by=g.agent["id"]):
        _audit("channel_state", name, before=row.state, after=state)
        mainland().refresh(store)
        flash({"enabled": _("Channel %(name)s is enabled: it is polled and takes webhooks again.", name=name),
               "paused": _("Channel %(name)s is paused: not polled; providers are asked to deliver webhooks "
                           "later. Replies still go out.", name=name),
               "disabled": _("Channel %(name)s is disabled: not polled, no webhooks, no replies.", name=name),
               }[state])
    return redirect(url_for("channels_admin.detail", name=name))


@bp.post("/admin/channels/<name>/test")
@admin_only
def test(name: str):
    channel, row, cls = _channel_or_404(name)
    if channel is None:
        flash(_("This channel's settings cannot be used (see the problem below): fix them first."))
        return redirect(url_for("channels_admin.detail", name=name))
    connector = mainland().connector(name)
    try:
        probe = getattr(connector, "probe", None)
        result = probe() if probe else None
    except Exception as exc:  # a connector's bug must show as a failed test, not a 500
        result = {"ok": False, "summary": _("The test failed inside Mainland: %(error)s",
                                            error=connector.redact(f"{type(exc).__name__}: {exc}")[:300]),
                  "detail": ""}
    finally:
        connector.close()
    if result is None:
        result = {"ok": False, "summary": _("This channel has no connection test."), "detail": ""}
    ok = result["ok"] if isinstance(result, dict) else result.ok
    _audit("channel_tested", name, ok=bool(ok))
    return _detail_page(name, channel, row, cls, {}, probe=_probe_shown(result))


@bp.post("/admin/channels/<name>/delete")
@admin_only
def delete(name: str):
    channel, row, cls = _channel_or_404(name)
    if row is None:
        abort(409)
    if row.state != "disabled":
        flash(_("Disable the channel before removing it."))
        return redirect(url_for("channels_admin.detail", name=name))
    store = get_store()
    store.stored_settings.delete_channel(name)
    _audit("channel_removed", name, kind=row.kind)
    mainland().refresh(store)
    flash(_("Channel %(name)s removed. Its conversations stay, without replies on it.", name=name))
    return redirect(url_for("channels_admin.index"))

