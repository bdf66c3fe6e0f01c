"""The running Mainland: configuration, connector registry and configured channels in one object.

The web app, the worker and the command line each build one `Mainland` from the configuration
and ask it for stores, connectors and an ingestor, so all three wire things the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import connectors
from connectors.base import Connector
from inbox import clock, identity, rules, service_levels, settings, triage_flow
from inbox.attachments import AttachmentStore
from inbox.config import Config, ConfigError
from inbox.ingest import Ingestor
from inbox.secrets_box import SecretBox
from inbox.store import Store


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector may know of the installation it runs in (never the store)."""

    instance_id: str
    mail_domain: str
    base_url: str
    max_message_bytes: int
    max_attachment_bytes: int
    data_dir: Path
    signing_secret: bytes = field(default=b"", repr=False)
    #: Hosts that media downloads may reach although they are not public (tests and the demo only).
    fetch_allow_hosts: tuple[str, ...] = ()

    def signing_key(self, purpose: str) -> bytes:
        """A key for `purpose` (e.g. "webform:contact") derived from the app's secret; never the secret itself."""
        return hmac.new(self.signing_secret, purpose.encode(), hashlib.sha256).digest()


class Mainland:
    """Configuration plus everything built from it."""

    def __init__(self, config: Config, *, include_entry_points: bool = True,
                 extra_connectors: Iterable[type[Connector]] = ()) -> None:
        #: The YAML file's configuration; `config` is it plus what admins set in the browser.
        self.bootstrap = config
        self.config = config
        #: Stored settings left out of `config`, each with why (shown on the admin pages).
        self.settings_problems: dict[str, str] = {}
        self._settings_version: int | None = None
        self._settings_lock = threading.Lock()
        # Embedders (`create_app(connectors=...)`) and tests may add connector classes of their own,
        # under the registry's rules: a kind claimed twice is an error.
        extra_connectors = tuple(extra_connectors)
        self.registry = connectors.discover(include_entry_points=include_entry_points, extra=extra_connectors)
        # Their identity kinds are matched like the built-ins' (the declared `IdentityRule`s).
        identity.register_connectors(extra_connectors)
        problems = []
        for channel in config.channels.values():
            cls = self.registry.get(channel.kind)
            if cls is None:
                problems.append(
                    f"channels.{channel.name}.kind: no connector {channel.kind!r} is installed "
                    f"(installed: {', '.join(sorted(self.registry))})"
                )
                continue
            try:
                cls.check_config(channel.settings)
            except Exception as exc:
                problems.append(f"channels.{channel.name}: {exc}")
        if problems:
            raise ConfigError(problems)
        self.context = ConnectorContext(
            instance_id=config.instance_id, mail_domain=config.mail_domain, base_url=config.base_url,
            max_message_bytes=config.max_message_bytes, max_attachment_bytes=config.max_attachment_bytes,
            data_dir=config.data_dir,
            signing_secret=hmac.new(config.secret_key.encode(), b"mainland-connectors", hashlib.sha256).digest(),
            fetch_allow_hosts=config.fetch_allow_hosts,
        )

    def open_store(self, *, migrate: bool = False, check: bool = True) -> Store:
        """A new connection to the database. `check=False` skips the integrity check (it reads the whole
        file): for connections opened while the app runs, after start-up has checked it once."""
        store = Store(self.config.database, check=check)
        if migrate:
            store.migrate()
            self.refresh(store)
        return store

    def secret_box(self) -> SecretBox:
        """Seals and opens the secret settings admins type in the browser."""
        return SecretBox(self.config.data_dir)

    def refresh(self, store: Store, *, force: bool = False) -> bool:
        """Take in the settings stored in the browser if they changed since the last look; True if they did.

        One small read when nothing changed, so the web app calls it on requests and the worker on a
        schedule: a change made in one process reaches every other without a restart.
        """
        version = store.stored_settings.version()
        if version is None or (version == self._settings_version and not force):
            return False
        with self._settings_lock:
            if version == self._settings_version and not force:
                return False
            config, problems = settings.effective_config(self.bootstrap, store, self.registry, self.secret_box())
            self.config = config
            self.settings_problems = problems
            self._settings_version = version
        return True

    def attachment_store(self) -> AttachmentStore:
        return AttachmentStore(self.config.attachments_dir)

    def ingestor(self, store: Store, *, rules_run: bool = True) -> Ingestor:
        """An ingestor with this installation's settings. `rules_run=False` (a mailbox import of old mail)
        stores without running automation rules, so old messages set off no replies."""
        return Ingestor(
            store, self.attachment_store(), instance_id=self.config.instance_id,
            own_addresses=self.config.own_addresses(), now=clock.now,
            phone_region=self.config.extra.get("default_phone_region"),
            team_for_channel=self.team_for_channel,
            service_levels=service_levels.for_config(self.config),
            triage=triage_flow.TriageFlow.for_mainland(self),
            after_ingest=(lambda report, now: rules.after_ingest(self, store, report.new_conversations,
                                                                 report.message_ids, now)) if rules_run else None,
        )

    def team_for_channel(self, name: str) -> str | None:
        """The team name new conversations of channel `name` belong to (its `team` setting), or None."""
        channel = self.config.channels.get(name)
        team = channel.settings.get("team") if channel else None
        return (str(team).strip() or None) if team is not None else None

    def channel_names(self, *, kind: str | None = None, enabled_only: bool = True) -> list[str]:
        return [
            c.name for c in self.config.channels.values()
            if (not enabled_only or c.enabled) and (kind is None or c.kind == kind)
        ]

    def connector(self, name: str) -> Connector:
        """A fresh connector instance for the configured channel `name`."""
        try:
            channel = self.config.channels[name]
        except KeyError:
            known = ", ".join(sorted(self.config.channels)) or "none configured"
            raise ConfigError([f"no channel named {name!r} (channels: {known})"]) from None
        cls = self.registry[channel.kind]
        return cls(name, channel.settings, context=self.context)

    def sending_connector(self, name: str) -> Connector:
        """The connector that delivers replies for channel `name`.

        Most channels answer on themselves; one that cannot (a web form) names the channel that
        carries its replies in its `reply_channel` setting (for a web form, an email channel).
        """
        connector = self.connector(name)
        through = connector.config.get("reply_channel")
        if through and through != name:
            connector.close()
            return self.connector(through)
        return connector

    def connector_class(self, name: str) -> type[Connector]:
        return self.registry[self.config.channels[name].kind]
