"""Mainland's configuration: one YAML file, checked whole at start-up.

A file with only `database:` is valid; every other key has a default. Secrets are never literals:
a value `{"$env": "NAME"}` is read from the environment and `{"$file": "path"}` from a file.
Every problem is reported at once, each with its key path (`channels.mail.host: required`), so
an operator fixes the file in one go. docs/configuration.md explains every key.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inbox.store.base import is_postgresql_url, redacted_url

DEFAULT_DATABASE = "mainland.db"
#: data_dir when `database:` is a PostgreSQL URL (relative to the configuration file's folder).
DEFAULT_SERVER_DATA_DIR = "mainland-data"
#: Values of `web.visibility`: "team" (agents and leads see their teams' conversations and the
#: unrouted ones) or "all" (every agent sees every conversation).
VISIBILITIES = ("team", "all")


class ConfigError(Exception):
    """The configuration cannot be used; the message lists every problem with its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("configuration problems:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ChannelConfig:
    """One configured channel: a name, the connector kind serving it, and its settings."""

    name: str
    kind: str
    enabled: bool
    poll_every: float | None
    settings: dict[str, Any]
    #: Paused: not polled, webhook deliveries answered "try later"; replies still go out.
    paused: bool = False
    #: "file" (the YAML file: shown read-only in the browser) or "browser" (added by an admin).
    origin: str = "file"


@dataclass(frozen=True)
class Config:
    #: The SQLite file, or a PostgreSQL URL (a str starting postgresql://).
    database: Path | str
    data_dir: Path
    secret_key: str
    instance_id: str
    base_url: str = "http://127.0.0.1:5000"
    mail_domain: str = "mainland.localhost"
    max_message_bytes: int = 25 * 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    default_language: str = "en"
    session_cookie_secure: bool = False
    fetch_allow_hosts: tuple[str, ...] = ()
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    #: `attachments_dir:` when set (a folder every node of an installation shares), else None.
    attachments_path: Path | None = None

    @property
    def attachments_dir(self) -> Path:
        """Where attachment files live: `attachments_dir:`, by default `data_dir/attachments`."""
        return self.attachments_path or self.data_dir / "attachments"

    def own_addresses(self) -> set[str]:
        """Email addresses that are ours: mail from them is a loop, never a customer."""
        found = set()
        for channel in self.channels.values():
            for key in ("address", "username", "from_address"):
                value = channel.settings.get(key)
                if isinstance(value, str) and "@" in value:
                    found.add(value.lower())
        return found


_KNOWN_KEYS = {
    "database", "data_dir", "attachments_dir", "secret_key", "instance_id", "base_url", "mail_domain", "max_message_bytes",
    "max_attachment_bytes", "default_language", "session_cookie_secure", "fetch_allow_hosts", "channels", "demo", "web", "worker",
    "service_levels", "digest", "api_tokens", "default_phone_region", "health", "notifications",
    "oidc", "check_ins", "help_center", "triage", "webhooks",
}

#: The keys of each section this module checks, the one list `check-config` and start-up hold a file
#: against: a key not listed is reported with the nearest listed one ("did you mean ..."). A new
#: setting is added here and in docs/configuration.md. `service_levels`, `notifications` and `digest`
#: are checked by their own modules; channel settings by their connectors.
SECTION_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(_KNOWN_KEYS),
    "web": frozenset({
        "host", "port", "threads", "visibility", "undo_send_seconds", "trusted_proxies",
        # The live stream (inbox/web/live.py).
        "live_streams", "live_poll_seconds", "live_heartbeat_seconds", "live_max_seconds",
        # The chat widget's long poll (inbox/web/chat.py).
        "chat_waits", "chat_check_seconds",
        # Sign-in and sessions (issue 13).
        "idle_timeout_minutes", "require_second_factor", "remember_device_days",
        # The connections a web process opens at once (inbox/web/request_store.py).
        "database_connections",
    }),
    "worker": frozenset({"lease_seconds", "renew_every", "outbox_every", "checkpoint_every"}),
    "demo": frozenset({"admin_email", "admin_name", "team", "answers_file", "mail_channel", "mail_dir",
                       "live_channels", "scenario", "poll_every"}),
    "health": frozenset({"warn_after"}),
    # Single sign-on through an OpenID Connect provider (inbox/web/oidc.py).
    "oidc": frozenset({"issuer", "client_id", "client_secret", "button_label", "allow_password_sign_in"}),
    # Proactive care: who is worth a check-in (inbox/checkins.py checks the values).
    "check_ins": frozenset({"good_rating", "resolved_within_days", "quiet_after_days",
                            "regular_contact_conversations", "max_suggestions", "answer_tag"}),
    # The public help center (inbox/helpcenter.py, docs/help-center.md).
    "help_center": frozenset({"enabled", "title", "brand_color", "logo_url"}),
    # The triage flow (inbox/triage_flow.py): how long spam is kept, the share of machine verdicts audited.
    "triage": frozenset({"keep_spam_days", "audit_share"}),
    # Outbound webhooks (inbox/webhooks_out.py): how long a failing subscription keeps trying before it pauses.
    "webhooks": frozenset({"pause_after"}),
}


def nearest_key(key: str, known: frozenset[str] | set[str]) -> str | None:
    """The known key `key` is most probably a misspelling of, or None when none is close."""
    matches = difflib.get_close_matches(str(key).lower(), sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_keys(section: str, mapping: Mapping[str, Any]) -> list[str]:
    """A problem line for each key of `mapping` that SECTION_KEYS[section] does not list."""
    known = SECTION_KEYS[section]
    problems = []
    for key in mapping:
        if key in known:
            continue
        where = f"{section}.{key}" if section else str(key)
        guess = nearest_key(key, known)
        if guess:
            problems.append(f"{where}: unknown key; did you mean {guess}?")
        else:
            problems.append(f"{where}: unknown key (known: {', '.join(sorted(known))})")
    return problems


def resolve_value(value: Any, path: str, problems: list[str], base: Path) -> Any:
    """Replace `{"$env": NAME}` / `{"$file": PATH}` references, recursively."""
    if isinstance(value, Mapping):
        if set(value) == {"$env"}:
            name = str(value["$env"])
            if name not in os.environ:
                problems.append(f"{path}: environment variable {name} is not set")
                return None
            return os.environ[name]
        if set(value) == {"$file"}:
            file = Path(str(value["$file"]))
            file = file if file.is_absolute() else base / file
            try:
                return file.read_text().strip()
            except OSError as exc:
                problems.append(f"{path}: cannot read {file}: {exc.strerror}")
                return None
        return {k: resolve_value(v, f"{path}.{k}" if path else str(k), problems, base) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_value(v, f"{path}[{i}]", problems, base) for i, v in enumerate(value)]
    return value


def _duration(value: Any, path: str, problems: list[str]) -> float | None:
    """Seconds from `90`, `"30s"`, `"5m"` or `"1h"`."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except (ValueError, IndexError):
        problems.append(f"{path}: {value!r} is not a duration (use e.g. 60, '30s', '5m')")
        return None


def _utf8_text(source: Path) -> str:
    """The file's text; a file in another encoding is a ConfigError naming the line and what to do."""
    data = source.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([
            f"{source} is not UTF-8 text (line {line} holds the byte 0x{data[exc.start]:02x}); save it as "
            f"UTF-8, e.g. `iconv -f latin1 -t utf-8 {source.name} > {source.stem}.utf8{source.suffix}` "
            "and use that file"]) from exc


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read the config file at `path` (or `$MAINLAND_CONFIG`), apply `overrides`, and check it all."""
    path = path or os.environ.get("MAINLAND_CONFIG")
    data: dict[str, Any] = {}
    base = Path.cwd()
    source = None
    if path:
        source = Path(path).resolve()
        base = source.parent
        try:
            loaded = yaml.safe_load(_utf8_text(source)) or {}
        except OSError as exc:
            raise ConfigError([f"cannot read {source}: {exc.strerror}"]) from exc
        except yaml.YAMLError as exc:
            raise ConfigError([f"{source} is not valid YAML: {exc}"]) from exc
        if not isinstance(loaded, dict):
            raise ConfigError([f"{source}: the top level must be a mapping of keys"])
        data.update(loaded)
    if overrides:
        data.update(overrides)
    return from_mapping(data, base=base, source=source)


#: The URL form of `database:` for SQLite, as SQLAlchemy writes it: `sqlite:///relative.db` or
#: `sqlite:////absolute/path.db` (the path is what follows the third slash).
SQLITE_URL = "sqlite:///"


def database_file(value: Any, problems: list[str]) -> str | None:
    """The SQLite file `database:` names, as a path (relative to the config file's folder unless
    absolute): a bare path or a `sqlite:///` URL; or a `postgresql://` URL, as given. Another URL is a
    problem, said in `problems`."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.startswith(SQLITE_URL):
        return text[len(SQLITE_URL):] or None
    scheme, separator, _ = text.partition("://")
    if separator and scheme.replace("+", "").replace("-", "").isalnum():
        if scheme.split("+")[0] in {"postgresql", "postgres"}:
            return text
        problems.append(f"database: {scheme}:// is not a database Mainland can use; give a SQLite file "
                        "(a path, or sqlite:///path) or a PostgreSQL URL (postgresql://user@host/database)")
        return None
    return text


def from_mapping(data: Mapping[str, Any], *, base: Path, source: Path | None = None) -> Config:
    problems: list[str] = unknown_keys("", data)
    for section in SECTION_KEYS:
        if section and isinstance(data.get(section), Mapping):
            problems += unknown_keys(section, data[section])
    resolved = resolve_value(dict(data), "", problems, base)
    resolved = {k.lstrip("."): v for k, v in resolved.items()}

    def as_path(key: str, default: str, value: Any = None) -> Path:
        value = value or resolved.get(key) or default
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else (base / p)

    named = database_file(resolved.get("database"), problems)
    database: Path | str
    if is_postgresql_url(named):
        # A server's database has no folder to put data_dir beside: beside the configuration file.
        database = named
        data_dir = as_path("data_dir", DEFAULT_SERVER_DATA_DIR)
    else:
        database = as_path("database", DEFAULT_DATABASE, named)
        data_dir = as_path("data_dir", str(database.with_suffix("")) + "-data")

    def as_int(key: str, default: int) -> int:
        value = resolved.get(key, default)
        if not isinstance(value, int) or value <= 0:
            problems.append(f"{key}: must be a positive whole number of bytes")
            return default
        return value

    channels: dict[str, ChannelConfig] = {}
    raw_channels = resolved.get("channels") or {}
    if not isinstance(raw_channels, Mapping):
        problems.append("channels: must be a mapping of channel name to settings")
        raw_channels = {}
    for name, settings in raw_channels.items():
        where = f"channels.{name}"
        if not isinstance(settings, Mapping):
            problems.append(f"{where}: must be a mapping of settings")
            continue
        if not str(name).replace("-", "").replace("_", "").isalnum():
            problems.append(f"{where}: a channel name may hold letters, digits, '-' and '_' only")
        kind = settings.get("kind")
        if not kind:
            problems.append(f"{where}.kind: required (the connector serving it, e.g. imap, webform)")
            continue
        rest = {k: v for k, v in settings.items() if k not in {"kind", "enabled", "poll_every"}}
        channels[str(name)] = ChannelConfig(
            name=str(name), kind=str(kind), enabled=bool(settings.get("enabled", True)),
            poll_every=_duration(settings.get("poll_every"), f"{where}.poll_every", problems), settings=rest,
        )

    web = resolved.get("web")
    if web is not None and not isinstance(web, Mapping):
        problems.append("web: must be a mapping (host, port, threads, visibility)")
    elif web and web.get("visibility", "team") not in VISIBILITIES:
        problems.append(f"web.visibility: must be one of {', '.join(VISIBILITIES)} (got {web.get('visibility')!r})")
    if isinstance(web, Mapping) and "undo_send_seconds" in web:
        # How long a reply waits in the outbox so that its writer can undo it (inbox/outbox.py); 0: no undo.
        undo = web["undo_send_seconds"]
        if isinstance(undo, bool) or not isinstance(undo, int | float) or not 0 <= undo <= 300:
            problems.append(f"web.undo_send_seconds: must be a number of seconds from 0 to 300 (got {undo!r})")

    if isinstance(web, Mapping) and "trusted_proxies" in web:
        # How many reverse proxies stand in front of the app (inbox/web/proxy.py, ProxyFix).
        hops = web["trusted_proxies"]
        if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
            problems.append(f"web.trusted_proxies: must be the number of proxies in front of Mainland, 0 to 5 "
                            f"(got {hops!r})")

    if isinstance(web, Mapping) and "idle_timeout_minutes" in web:
        # Minutes without use after which a session ends (inbox/web/auth.py); 0: never.
        idle = web["idle_timeout_minutes"]
        if isinstance(idle, bool) or not isinstance(idle, int) or not 0 <= idle <= 10080:
            problems.append(f"web.idle_timeout_minutes: must be a whole number of minutes from 0 (off) to 10080 "
                            f"(got {idle!r})")

    if isinstance(web, Mapping) and "require_second_factor" in web:
        # Roles whose agents must sign in with a second factor (inbox/web/account.py).
        roles = web["require_second_factor"]
        known = ("agent", "lead", "manager", "admin")
        if not isinstance(roles, list) or not all(r in known for r in roles):
            problems.append(f"web.require_second_factor: must be a list of roles out of {', '.join(known)} "
                            f"(got {roles!r})")

    if isinstance(web, Mapping) and "remember_device_days" in web:
        # Days a browser may skip the sign-in code step once the agent ticked "Remember this device"
        # (inbox/web/devices.py); 0: never offered.
        days = web["remember_device_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 90:
            problems.append(f"web.remember_device_days: must be a whole number of days from 0 (off) to 90 "
                            f"(got {days!r})")

    problems += _oidc_problems(resolved.get("oidc"))
    from inbox import helpcenter

    problems += helpcenter.check_config(resolved.get("help_center"))

    tokens = resolved.get("api_tokens")
    if tokens is not None and (not isinstance(tokens, list)
                               or not all(isinstance(t, str) and len(t) >= 16 for t in tokens if t is not None)):
        problems.append('api_tokens: must be a list of secrets of at least 16 characters, e.g. [{"$env": "CRM_TOKEN"}]')
    region = resolved.get("default_phone_region")
    if region is not None and not (isinstance(region, str) and len(region) == 2 and region.isalpha()):
        problems.append("default_phone_region: must be a two-letter country code such as NL")

    health = resolved.get("health")
    if health is not None and not isinstance(health, Mapping):
        problems.append("health: must be a mapping (warn_after)")
    elif health:
        warn_after = _duration(health.get("warn_after"), "health.warn_after", problems)
        if warn_after is not None and warn_after <= 0:
            problems.append("health.warn_after: must be longer than zero (e.g. '15m')")

    attachments = resolved.get("attachments_dir")
    if attachments is not None and not (isinstance(attachments, str) and attachments.strip()):
        problems.append("attachments_dir: must be the path of a folder, e.g. /srv/mainland-shared/attachments")
        attachments = None

    # A configuration with problems is refused below: no key file is written for it (its data_dir may
    # be a name made from a mistyped value).
    secret_key = resolved.get("secret_key") or ("" if problems else _local_secret(data_dir))
    named_database = redacted_url(database) if isinstance(database, str) else str(database)
    instance_id = str(resolved.get("instance_id") or hashlib.sha256(named_database.encode()).hexdigest()[:16])
    config = Config(
        database=database,
        data_dir=data_dir,
        secret_key=str(secret_key),
        instance_id=instance_id,
        base_url=str(resolved.get("base_url") or "http://127.0.0.1:5000").rstrip("/"),
        mail_domain=str(resolved.get("mail_domain") or "mainland.localhost"),
        max_message_bytes=as_int("max_message_bytes", 25 * 1024 * 1024),
        max_attachment_bytes=as_int("max_attachment_bytes", 10 * 1024 * 1024),
        default_language=str(resolved.get("default_language") or "en"),
        # Unless told otherwise, an https base_url means the cookie may only travel over HTTPS.
        session_cookie_secure=bool(resolved.get("session_cookie_secure",
                                                str(resolved.get("base_url") or "").startswith("https://"))),
        fetch_allow_hosts=tuple(str(h) for h in (resolved.get("fetch_allow_hosts") or ())),
        channels=channels,
        extra={k: v for k, v in resolved.items() if k in {"demo", "web", "worker", "service_levels", "digest",
                                                              "api_tokens", "default_phone_region", "health",
                                                              "notifications", "oidc", "check_ins", "help_center", "triage",
                                                              "webhooks"}},
        source=source,
        attachments_path=as_path("attachments_dir", "", attachments) if attachments else None,
    )
    # Sections checked by the modules that read them (docs/service-levels.md).
    from inbox import (
        acknowledgements,
        checkins,
        digest,
        notifications,
        service_levels,
        triage_flow,
        webhooks_out,
    )

    problems += service_levels.check_config(resolved.get("service_levels"))
    problems += acknowledgements.check_config(channels)
    problems += notifications.check_config(resolved.get("notifications"))
    problems += digest.check_config(resolved.get("digest"), channels)
    problems += checkins.check_config(resolved.get("check_ins"))
    problems += triage_flow.check_config(resolved.get("triage"), channels)
    problems += webhooks_out.check_config(resolved.get("webhooks"))
    if problems:
        raise ConfigError(problems)
    return config


def _oidc_problems(oidc: Any) -> list[str]:
    """What is wrong with the `oidc` section (single sign-on; docs/configuration.md)."""
    if oidc is None:
        return []
    if not isinstance(oidc, Mapping):
        return ["oidc: must be a mapping (issuer, client_id, client_secret, button_label, allow_password_sign_in)"]
    problems = []
    issuer = oidc.get("issuer")
    if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
        problems.append(f"oidc.issuer: required, the provider's https:// address (got {issuer!r})")
    for key in ("client_id", "client_secret"):
        if not isinstance(oidc.get(key), str) or not oidc.get(key):
            problems.append(f"oidc.{key}: required (from the provider's client registration)")
    if "button_label" in oidc and not isinstance(oidc["button_label"], str):
        problems.append("oidc.button_label: must be text, e.g. Okta")
    if not isinstance(oidc.get("allow_password_sign_in", True), bool):
        problems.append("oidc.allow_password_sign_in: must be true or false")
    return problems


def _local_secret(data_dir: Path) -> str:
    """A session key kept beside the data when none is configured (fine for one machine)."""
    key_file = data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
