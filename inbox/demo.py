"""Demo data for `mainland demo`: sample customer mail, a demo admin, and the live channels.

Each kind of demo data is a `Seeder` in `SEEDERS`; `seed()` runs them in order. A seeder must be
idempotent, because `mainland demo` runs every seeder on every start: seeding what is already
there adds nothing.

- `MailSeeder` takes the `.eml` files of `demo/mail/` through the real pipeline
  (`inbox.mail.parse_email`, then `Ingestor.ingest`) into the demo's email channel, so the demo
  shows what polled mail looks like. The pipeline's dedupe keeps a second run from storing any
  message twice. The channel's cursor is left alone: it belongs to the IMAP connector.
- `AdminSeeder` creates the demo admin with a password generated once and kept (mode 0600) in
  the demo's data folder, so every start can print the same login.
- `TeamSeeder` creates the team ("Customer care") with a lead, two agents and a trainee beside the
  admin, who share the admin's password; every start makes them available, so routing has someone
  to hand conversations to, and while the demo runs `keep_colleagues_at_work()` counts as their
  activity (they never click anything, and inactivity would make them away).
- `AnswerSeeder` fills the answer library from `demo/answers.yaml` (English and Dutch); an answer
  whose title exists in its language is left alone, so edits made in the web app survive.

The live channels (`demo: {live_channels: true}`, docs/demo.md): `live_config()` adds one
channel per loopback imitation of a `sandbox.demo_stack.DemoStack` to the configuration (their
ports are only known once they run, so the file cannot name them), lets media downloads reach the
imitations (`fetch_allow_hosts`) and points the email channel's SMTP at the stack's sink.
What the previous run stored stays: the imitations start empty and number their items afresh, so
`keep_earlier_run()` moves the previous run's ids of their channels out of the way (the new run's
first message would otherwise be taken for a copy of the old one). `start_afresh()` (`--fresh`)
clears everything instead (database, attachments, refreshed tokens); the admin's password and the
secret key stay.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from connectors.base import ItemError
from inbox import clock
from inbox import config as config_module
from inbox.config import Config, ConfigError
from inbox.mail import parse_email
from inbox.models import FetchResult, Reject
from inbox.runtime import Mainland
from inbox.store import Store
from inbox.store.base import iso

DEFAULT_ADMIN_EMAIL = "demo@mainland.test"
DEFAULT_ADMIN_NAME = "Demo Admin"
DEFAULT_MAIL_CHANNEL = "demo-mail"
DEFAULT_MAIL_DIR = "mail"
DEFAULT_ANSWERS_FILE = "answers.yaml"
DEFAULT_TEAM = "Customer care"
PASSWORD_FILE = "demo-admin-password"
DEFAULT_LIVE_POLL_EVERY = 5.0
#: The languages the demo's customers write in: everyone in the team answers both unless said otherwise.
DEMO_LANGUAGES = ("en", "nl")


@dataclass(frozen=True)
class Colleague:
    """A demo team member beside the admin (signs in with the admin's password)."""

    email: str
    name: str
    role: str
    languages: tuple[str, ...] = DEMO_LANGUAGES
    trainee: bool = False

    @property
    def label(self) -> str:
        return "trainee" if self.trainee else "team lead" if self.role == "lead" else self.role


#: The demo's colleagues, in the order the console lists them.
COLLEAGUES = (
    Colleague("lead@mainland.test", "Ingrid Jansen", "lead"),
    Colleague("noah@mainland.test", "Noah Peeters", "agent"),
    Colleague("fatima@mainland.test", "Fatima El Amrani", "agent", languages=("en",)),
    Colleague("tim@mainland.test", "Tim de Wit", "agent", trainee=True),
)


@dataclass(frozen=True)
class DemoSettings:
    """The `demo:` section of the config, with defaults, and where the demo keeps its files."""

    admin_email: str
    admin_name: str
    mail_channel: str
    mail_dir: Path
    data_dir: Path
    answers_file: Path
    team: str = DEFAULT_TEAM
    #: Run the loopback imitations of the social channels and play the scenario (docs/demo.md).
    live_channels: bool = False
    scenario: bool = True
    poll_every: float = DEFAULT_LIVE_POLL_EVERY

    @classmethod
    def from_config(cls, config: Config) -> DemoSettings:
        section = config.extra.get("demo") or {}
        base = config.source.parent if config.source else Path.cwd()
        mail_dir = Path(str(section.get("mail_dir") or DEFAULT_MAIL_DIR))
        answers_file = Path(str(section.get("answers_file") or DEFAULT_ANSWERS_FILE))
        poll_every = config_module._duration(section.get("poll_every"), "demo.poll_every", [])
        return cls(
            admin_email=str(section.get("admin_email") or DEFAULT_ADMIN_EMAIL).strip().lower(),
            admin_name=str(section.get("admin_name") or DEFAULT_ADMIN_NAME),
            mail_channel=str(section.get("mail_channel") or DEFAULT_MAIL_CHANNEL),
            mail_dir=mail_dir if mail_dir.is_absolute() else base / mail_dir,
            data_dir=config.data_dir,
            answers_file=answers_file if answers_file.is_absolute() else base / answers_file,
            team=str(section.get("team") or DEFAULT_TEAM),
            live_channels=bool(section.get("live_channels", False)),
            scenario=bool(section.get("scenario", True)),
            poll_every=poll_every if poll_every and poll_every > 0 else DEFAULT_LIVE_POLL_EVERY,
        )

    @property
    def password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE


@dataclass
class SeedResult:
    """What one seeder did: how many things it added, in words for the console."""

    name: str
    added: int
    detail: str = ""


class Seeder(Protocol):
    name: str

    def seed(self, mainland: Mainland, store: Store, settings: DemoSettings) -> SeedResult:
        """Add this seeder's demo data unless it is there already."""


class MailSeeder:
    """The sample customer mail in `demo/mail/*.eml`, through the real ingest pipeline."""

    name = "sample mail"

    def seed(self, mainland: Mainland, store: Store, settings: DemoSettings) -> SeedResult:
        channel = settings.mail_channel
        if channel not in mainland.config.channels:
            return SeedResult(self.name, 0, f"no channel {channel!r} in the demo config; skipped")
        files = sorted(settings.mail_dir.glob("*.eml"))
        items, rejects = [], []
        for path in files:
            raw = path.read_bytes()
            try:
                items.append(parse_email(raw, channel=channel, source_ref=f"demo:{path.name}",
                                         max_bytes=mainland.config.max_message_bytes,
                                         max_attachment_bytes=mainland.config.max_attachment_bytes))
            except ItemError as exc:
                rejects.append(Reject(raw=raw, reason=str(exc), source_ref=f"demo:{path.name}"))
        report = mainland.ingestor(store).ingest(channel, FetchResult(items=items, cursor=None, rejects=rejects),
                                                 save_cursor=False)
        return SeedResult(self.name, report.stored,
                          f"{report.stored} of {len(files)} message(s) added to {channel}"
                          + (f", {report.quarantined} quarantined" if report.quarantined else ""))


class AdminSeeder:
    """The demo admin, with a password generated on the first run and kept in the data folder."""

    name = "admin account"

    def seed(self, mainland: Mainland, store: Store, settings: DemoSettings) -> SeedResult:
        # The web app's own hashing (Argon2id), so the demo login is checked like any other.
        from inbox.web.auth import hash_password

        if store.agent_by_email(settings.admin_email):
            return SeedResult(self.name, 0, f"{settings.admin_email} exists")
        password = demo_password(settings, create=True)
        store.create_agent(email=settings.admin_email, name=settings.admin_name, role="admin",
                           password_hash=hash_password(password))
        return SeedResult(self.name, 1, f"created admin {settings.admin_email}")


class TeamSeeder:
    """The team with the admin, a lead, two agents and a trainee, all available and speaking the
    demo's languages, so routing has people to choose from."""

    name = "team"

    def seed(self, mainland: Mainland, store: Store, settings: DemoSettings) -> SeedResult:
        from inbox.store.teams import TeamExists
        from inbox.web.auth import hash_password

        added = 0
        team_id = store.team_id_by_name(settings.team)
        if team_id is None:
            try:
                team_id = store.create_team(settings.team)
                added += 1
            except TeamExists:  # made by a demo starting at the same moment
                team_id = store.team_id_by_name(settings.team)
        password = demo_password(settings, create=True)
        members = [store.agent_by_email(settings.admin_email)]
        for colleague in COLLEAGUES:
            agent = store.agent_by_email(colleague.email)
            if agent is None:
                agent_id = store.create_agent(email=colleague.email, name=colleague.name, role=colleague.role,
                                              password_hash=hash_password(password))
                store.set_agent_routing(agent_id, capacity=5, languages=colleague.languages, topics=(),
                                        trainee=colleague.trainee)
                agent = store.agent(agent_id)
                added += 1
            members.append(agent)
        now = iso(clock.now())
        for agent in filter(None, members):
            store.add_team_member(team_id, agent["id"])
            if agent["email"] != settings.admin_email:
                # Every start: the colleagues are at work (the admin's status is the admin's own).
                store.set_agent_status(agent["id"], "available", now)
        return SeedResult(self.name, added, f"{settings.team}: {len(COLLEAGUES)} colleagues and the admin"
                          + (f" ({added} added)" if added else ", all there"))


class AnswerSeeder:
    """The answer library of `demo/answers.yaml`, in English and Dutch."""

    name = "answers"

    def seed(self, mainland: Mainland, store: Store, settings: DemoSettings) -> SeedResult:
        from inbox.answers import normalise_tags

        entries = load_answers(settings.answers_file)
        if not entries:
            return SeedResult(self.name, 0, f"no answers in {settings.answers_file}; skipped")
        # Archived answers count as there: the library's keeper archived them on purpose.
        present = {(a.title.casefold(), a.language) for a in store.answers.all(active=None)}
        admin = store.agent_by_email(settings.admin_email)
        now = iso(clock.now())
        added = 0
        for entry in entries:
            if (entry["title"].casefold(), entry["language"]) in present:
                continue
            store.answers.create(title=entry["title"], body=entry["body"], language=entry["language"],
                                 tags=normalise_tags(entry.get("tags") or ()), owner_id=admin["id"] if admin else None,
                                 now=now)
            added += 1
        return SeedResult(self.name, added, f"{added} of {len(entries)} answer(s) added to the library")


def keep_colleagues_at_work(store: Store, now: dt.datetime | None = None) -> int:
    """Count as activity for the demo's colleagues, who never click anything themselves: without it,
    ten idle minutes would make them away and routing would stop giving them conversations. A
    status chosen for them (signed in as one of them) stays. Returns how many were touched."""
    moment = iso(now or clock.now())
    touched = 0
    for colleague in COLLEAGUES:
        agent = store.agent_by_email(colleague.email)
        if agent is not None and agent["active"]:
            store.touch_agent(agent["id"], moment)
            touched += 1
    return touched


def load_answers(path: Path) -> list[dict[str, Any]]:
    """The answers of a demo answers file: dicts with title, body, language and tags."""
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [entry for entry in data.get("answers") or []
            if entry.get("title") and entry.get("body") and entry.get("language")]


#: Run in this order on every `mainland demo`; each adds only what is missing. The people come
#: before the mail, so the sample mail is routed to them as it comes in.
SEEDERS: list[Seeder] = [AdminSeeder(), TeamSeeder(), AnswerSeeder(), MailSeeder()]


def seed(mainland: Mainland, store: Store, settings: DemoSettings | None = None,
         seeders: list[Seeder] | None = None) -> list[SeedResult]:
    """Run every seeder; returns what each added (zero everywhere on a second run)."""
    settings = settings or DemoSettings.from_config(mainland.config)
    return [seeder.seed(mainland, store, settings) for seeder in (seeders or SEEDERS)]


def demo_password(settings: DemoSettings, *, create: bool = False) -> str | None:
    """The demo admin's password from the data folder (made there first if `create`)."""
    path = settings.password_file
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


# The live channels ---------------------------------------------------------------------------------

def live_config(config: Config, channels: Mapping[str, Mapping[str, Any]], *, allow_hosts: list[str],
                mail_settings: Mapping[str, Any], base_url: str | None = None) -> Config:
    """`config` again, from its file, with `channels` added and the email channel's SMTP replaced.

    `channels` are the generated ones (a file channel of the same name gives way), in the demo's
    team unless they name one; `allow_hosts` join `fetch_allow_hosts`; `mail_settings` go into the
    demo's email channel.
    """
    if config.source is None:
        raise ConfigError(["demo.live_channels: needs a configuration file (--config)"])
    data = yaml.safe_load(config.source.read_text()) or {}
    merged = dict(data.get("channels") or {})
    settings = DemoSettings.from_config(config)
    if settings.mail_channel in merged:
        merged[settings.mail_channel] = {**merged[settings.mail_channel], **mail_settings}
    merged.update({name: {"team": settings.team, **channel} for name, channel in channels.items()})
    data["channels"] = merged
    data["fetch_allow_hosts"] = [*(data.get("fetch_allow_hosts") or []), *allow_hosts]
    if base_url:
        data["base_url"] = base_url
    return config_module.from_mapping(data, base=config.source.parent, source=config.source)


def keep_earlier_run(store: Store, channels: Iterable[str], now: dt.datetime | None = None) -> int:
    """Keep what an earlier live run stored, for a run whose imitations start empty again.

    The imitations number their items from the same start on every run; the earlier run's ids of
    their `channels` are moved out of the way (the messages stay), and the channels' cursors
    forgotten, so the new run's items are neither skipped nor taken for copies. Returns how many
    messages were from an earlier run.
    """
    moment = now or clock.now()
    names = list(channels)
    with store.write():
        moved = store.retire_external_ids(names, moment.strftime("%Y%m%dT%H%M%S%f"))
        for channel in names:
            store.save_cursor(channel, None, iso(moment))
    return moved


def start_afresh(config: Config) -> list[Path]:
    """Remove what an earlier live demo stored (database, attachments, tokens); returns what went.

    The imitations start empty on every run, so conversations of an earlier run could not be
    answered any more. The admin's password file and the secret key are kept.
    """
    removed = []
    database = config.database
    if isinstance(database, str):
        raise ValueError("the demo starts afresh on its own SQLite file only; drop and create the PostgreSQL "
                         "database yourself, or run the demo without database: set")
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        if path.exists():
            path.unlink()
            removed.append(path)
    for folder in (config.attachments_dir, config.data_dir / "tokens"):
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(folder)
    return removed
