"""Settings made in the browser: `store.stored_settings`, rows as `StoredChannel` and `SectionInfo`.

Channels added by an admin, and stored config sections. Values are JSON. A channel's secret settings
arrive here already sealed (`{"$encrypted": ...}`, see inbox/secrets_box.py) or as `{"$env": NAME}`
references; this module never sees a secret in clear. `version()` is one small read, moved by triggers
on every change (m024), so callers can check it on every request and rebuild only when it moved.

A concern in the shape #17 asks for: an object the store holds (`store.stored_settings`) with typed
rows at its boundary, instead of a mixin of `Store` returning dicts. `sections()` stays a mapping of
section name -> value, which is what the configuration in force is built from.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inbox.store.base import now_iso

if TYPE_CHECKING:
    from inbox.store import Store

_CHANNEL_COLUMNS = ("c.name, c.kind, c.state, c.poll_every, c.settings, c.created_at, c.created_by, "
                    "c.updated_at, c.updated_by, a.name AS updated_by_name")


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """A channel added in the browser, as stored (`settings` parsed from JSON, its secrets sealed)."""

    name: str
    kind: str
    state: str
    poll_every: float | None
    settings: dict[str, Any]
    created_at: str
    created_by: int | None
    updated_at: str
    updated_by: int | None
    updated_by_name: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> StoredChannel | None:
        if row is None:
            return None
        values = list(row)
        values[4] = json.loads(values[4] or "{}")
        return cls(*values)


@dataclass(frozen=True, slots=True)
class SectionInfo:
    """A stored config section with who changed it last and when (`value` parsed from JSON)."""

    section: str
    value: Any
    updated_at: str
    updated_by: int | None
    updated_by_name: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> SectionInfo | None:
        if row is None:
            return None
        values = list(row)
        values[1] = json.loads(values[1])
        return cls(*values)


class StoredSettings:
    """`store.stored_settings`: stored channels and sections, read and written on the store's connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def version(self) -> int | None:
        """A number that changes with every stored setting; None on a database from before m024."""
        try:
            row = self._store.conn.execute("SELECT version FROM settings_version WHERE id = 1").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    # Channels --------------------------------------------------------------------------------

    def channels(self) -> list[StoredChannel]:
        """Every channel added in the browser, by name."""
        rows = self._store.conn.execute(
            f"SELECT {_CHANNEL_COLUMNS} FROM channel_settings c "  # noqa: S608
            "LEFT JOIN agents a ON a.id = c.updated_by ORDER BY c.name").fetchall()
        return [StoredChannel.from_row(row) for row in rows]

    def channel(self, name: str) -> StoredChannel | None:
        return StoredChannel.from_row(self._store.conn.execute(
            f"SELECT {_CHANNEL_COLUMNS} FROM channel_settings c "  # noqa: S608
            "LEFT JOIN agents a ON a.id = c.updated_by WHERE c.name = ?", (name,)).fetchone())

    def add_channel(self, *, name: str, kind: str, settings: dict[str, Any], poll_every: float | None,
                    state: str = "enabled", by: int | None, now: str | None = None) -> bool:
        """Add a channel; False when one of that name is stored already."""
        at = now or now_iso()
        with self._store.write():
            cur = self._store.conn.execute(
                "INSERT OR IGNORE INTO channel_settings (name, kind, state, poll_every, settings, created_at, "
                "created_by, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, kind, state, poll_every, json.dumps(settings, sort_keys=True), at, by, at, by))
            return cur.rowcount == 1

    def update_channel(self, name: str, *, settings: dict[str, Any], poll_every: float | None,
                       by: int | None, now: str | None = None) -> bool:
        with self._store.write():
            cur = self._store.conn.execute(
                "UPDATE channel_settings SET settings = ?, poll_every = ?, updated_at = ?, updated_by = ? "
                "WHERE name = ?", (json.dumps(settings, sort_keys=True), poll_every, now or now_iso(), by, name))
            return cur.rowcount == 1

    def set_channel_state(self, name: str, state: str, *, by: int | None, now: str | None = None) -> bool:
        with self._store.write():
            cur = self._store.conn.execute(
                "UPDATE channel_settings SET state = ?, updated_at = ?, updated_by = ? WHERE name = ? AND state <> ?",
                (state, now or now_iso(), by, name, state))
            return cur.rowcount == 1

    def delete_channel(self, name: str) -> bool:
        with self._store.write():
            return self._store.conn.execute(
                "DELETE FROM channel_settings WHERE name = ?", (name,)).rowcount == 1

    # Sections --------------------------------------------------------------------------------

    def sections(self) -> dict[str, Any]:
        """Every stored config section: name -> its value (as the YAML section would hold it)."""
        rows = self._store.conn.execute("SELECT section, value FROM stored_settings").fetchall()
        return {section: json.loads(value) for section, value in rows}

    def section_info(self, section: str) -> SectionInfo | None:
        """Who changed `section` last and when, with its value."""
        return SectionInfo.from_row(self._store.conn.execute(
            "SELECT s.section, s.value, s.updated_at, s.updated_by, a.name AS updated_by_name "
            "FROM stored_settings s LEFT JOIN agents a ON a.id = s.updated_by WHERE s.section = ?",
            (section,)).fetchone())

    def save_section(self, section: str, value: Any, *, by: int | None, now: str | None = None) -> None:
        with self._store.write():
            self._store.conn.execute(
                "INSERT INTO stored_settings (section, value, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (section) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (section, json.dumps(value, sort_keys=True), now or now_iso(), by))

    def delete_section(self, section: str) -> bool:
        with self._store.write():
            return self._store.conn.execute(
                "DELETE FROM stored_settings WHERE section = ?", (section,)).rowcount == 1
