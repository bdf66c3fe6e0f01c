"""The configuration in force: the YAML file, plus what admins set in the browser.

The YAML file is the bootstrap (database, secret key, base URL, SMTP) and a way to keep settings in
version control. Channels an admin adds in the browser, and the sections listed in
`STORABLE_SECTIONS` when the file does not set them, are kept in the database (inbox/store/settings.py).
`effective_config` lays the stored settings over the file's: whatever the file sets wins and is shown
read-only in the browser as "set in the config file". A stored setting that no longer passes its
check (a secret that cannot be opened, a connector uninstalled) is left out and reported, never a
reason for the app or the worker to stop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from inbox.config import ChannelConfig, Config
from inbox.secrets_box import SecretBox, SecretError

#: Config sections an admin may set in the browser when the YAML file leaves them out.
STORABLE_SECTIONS = ("service_levels", "digest", "security")
#: Roles an admin may require a second factor of (the file's `web.require_second_factor` wins).
SECOND_FACTOR_ROLES = ("agent", "lead", "manager", "admin")
#: Channel states stored for channels added in the browser.
CHANNEL_STATES = ("enabled", "paused", "disabled")


def section_in_file(bootstrap: Config, section: str) -> bool:
    """True when the YAML file sets `section` (the browser then shows it read-only)."""
    return section in bootstrap.extra


def open_channel_settings(registry: Mapping[str, type], kind: str, stored: Mapping[str, Any],
                          box: SecretBox) -> dict[str, Any]:
    """A stored channel's settings in clear, checked by its connector (raises ValueError with the reason)."""
    cls = registry.get(kind)
    if cls is None:
        raise ValueError(f"no connector {kind!r} is installed")
    clear = {}
    for key, value in stored.items():
        try:
            clear[key] = box.open(value)
        except SecretError as exc:
            raise ValueError(f"{key}: {exc}") from None
    try:
        cls.check_config(clear)
    except Exception as exc:
        raise ValueError(str(exc)) from None
    return clear


def effective_config(bootstrap: Config, store: Any, registry: Mapping[str, type],
                     box: SecretBox) -> tuple[Config, dict[str, str]]:
    """The configuration in force, and a problem per stored setting that was left out (key -> why)."""
    problems: dict[str, str] = {}
    channels = dict(bootstrap.channels)
    for row in store.stored_settings.channels():
        name = row.name
        if name in channels:
            problems[f"channels.{name}"] = "the config file defines a channel of this name; the file's wins"
            continue
        try:
            settings = open_channel_settings(registry, row.kind, row.settings, box)
        except ValueError as exc:
            problems[f"channels.{name}"] = str(exc)
            continue
        channels[name] = ChannelConfig(
            name=name, kind=row.kind, enabled=row.state != "disabled", paused=row.state == "paused",
            poll_every=row.poll_every, settings=settings, origin="browser")
    extra = dict(bootstrap.extra)
    for section, value in store.stored_settings.sections().items():
        if section not in STORABLE_SECTIONS or section_in_file(bootstrap, section):
            continue
        try:
            value = open_all(value, box)
        except SecretError as exc:
            problems[section] = str(exc)
            continue
        found = check_section(section, value, channels)
        if found:
            problems[section] = "; ".join(found)
            continue
        extra[section] = value
    return dataclasses.replace(bootstrap, channels=channels, extra=extra), problems


def open_all(value: Any, box: SecretBox) -> Any:
    """`value` with every sealed secret in it opened (a stored section keeps its secrets sealed)."""
    if isinstance(value, dict):
        opened = box.open(value)
        if opened is not value:
            return opened
        return {k: open_all(v, box) for k, v in value.items()}
    if isinstance(value, list):
        return [open_all(v, box) for v in value]
    return value


def check_section(section: str, value: Any, channels: Mapping[str, ChannelConfig]) -> list[str]:
    """What is wrong with `value` as the config section `section` (empty: fine)."""
    from inbox import digest, service_levels

    if section == "service_levels":
        return service_levels.check_config(value)
    if section == "digest":
        return digest.check_config(value, dict(channels))
    if section == "security":
        roles = value.get("require_second_factor") if isinstance(value, Mapping) else None
        if not isinstance(value, Mapping) or set(value) - {"require_second_factor"} or not isinstance(roles, list) \
                or not all(r in SECOND_FACTOR_ROLES for r in roles):
            return ["security: must hold require_second_factor, a list of roles out of "
                    + ", ".join(SECOND_FACTOR_ROLES)]
        return []
    return [f"{section}: cannot be set in the browser"]


def second_factor_roles(config: Config) -> tuple[tuple[str, ...], bool]:
    """The roles that must sign in with a second factor, and whether the config file decides it."""
    web = config.extra.get("web") or {}
    if "require_second_factor" in web:
        return tuple(web.get("require_second_factor") or ()), True
    stored = (config.extra.get("security") or {}).get("require_second_factor") or ()
    return tuple(stored), False
