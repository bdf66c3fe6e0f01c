"""Store verbs for settings made in the browser: channels added by an admin, and stored config sections.

Values are JSON. A channel's secret settings arrive here already sealed (`{"$encrypted": ...}`, see
inbox/secrets_box.py) or as `{"$env": NAME}` references; this module never sees a secret in clear.
`settings_version()` is one small read, moved by triggers on every change (m024), so callers can
check it on every request and rebuild only when it moved.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from inbox.store.base import as_dict, as_dicts, now_iso

_CHANNEL_COLUMNS = ("c.name, c.kind, c.state, c.poll_every, c.settings, c.created_at, c.created_by, "
                    "c.updated_at, c.updated_by, a.name AS updated_by_name")


def _channel(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is not None:
        row["settings"] = json.loads(row["settings"] or "{}")
    return row


class SettingsQueries:
    """Mixed into `Store`; uses `self.conn` and `self.write()`."""

    def settings_version(self) -> int | None:
        """A number that changes with every stored setting; None on a database from before m024."""
        try:
            row = self.conn.execute("SELECT version FROM settings_version WHERE id = 1").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    # Channels --------------------------------------------------------------------------------

    def stored_channels(self) -> list[dict[str, Any]]:
        """Every channel added in the browser, by name."""
        cur = self.conn.execute(
            f"SELECT {_CHANNEL_COLUMNS} FROM channel_settings c "  # noqa: S608
            "LEFT JOIN agents a ON a.id = c.updated_by ORDER BY c.name")
        return [_channel(row) for row in as_dicts(cur)]

    def stored_channel(self, name: str) -> dict[str, Any] | None:
        cur = self.conn.execute(
            f"SELECT {_CHANNEL_COLUMNS} FROM channel_settings c "  # noqa: S608
            "LEFT JOIN agents a ON a.id = c.updated_by WHERE c.name = ?", (name,))
        return _channel(as_dict(cur, cur.fetchone()))

    def add_stored_channel(self, *, name: str, kind: str, settings: dict[str, Any], poll_every: float | None,
                           state: str = "enabled", by: int | None, now: str | None = None) -> bool:
        """Add a channel; False when one of that name is stored already."""
        at = now or now_iso()
        with self.write():
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO channel_settings (name, kind, state, poll_every, settings, created_at, "
                "created_by, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, kind, state, poll_every, json.dumps(settings, sort_keys=True), at, by, at, by))
            return cur.rowcount == 1

    def update_stored_channel(self, name: str, *, settings: dict[str, Any], poll_every: float | None,
                              by: int | None, now: str | None = None) -> bool:
        with self.write():
            cur = self.conn.execute(
                "UPDATE channel_settings SET settings = ?, poll_every = ?, updated_at = ?, updated_by = ? "
                "WHERE name = ?", (json.dumps(settings, sort_keys=True), poll_every, now or now_iso(), by, name))
            return cur.rowcount == 1

    def set_stored_channel_state(self, name: str, state: str, *, by: int | None, now: str | None = None) -> bool:
        with self.write():
            cur = self.conn.execute(
                "UPDATE channel_settings SET state = ?, updated_at = ?, updated_by = ? WHERE name = ? AND state <> ?",
                (state, now or now_iso(), by, name, state))
            return cur.rowcount == 1

    def delete_stored_channel(self, name: str) -> bool:
        with self.write():
            return self.conn.execute("DELETE FROM channel_settings WHERE name = ?", (name,)).rowcount == 1

    # Sections --------------------------------------------------------------------------------

    def stored_sections(self) -> dict[str, Any]:
        """Every stored config section: name -> its value (as the YAML section would hold it)."""
        rows = self.conn.execute("SELECT section, value FROM stored_settings").fetchall()
        return {section: json.loads(value) for section, value in rows}

    def stored_section_info(self, section: str) -> dict[str, Any] | None:
        """Who changed `section` last and when, with its value."""
        cur = self.conn.execute(
            "SELECT s.section, s.value, s.updated_at, s.updated_by, a.name AS updated_by_name "
            "FROM stored_settings s LEFT JOIN agents a ON a.id = s.updated_by WHERE s.section = ?", (section,))
        row = as_dict(cur, cur.fetchone())
        if row is not None:
            row["value"] = json.loads(row["value"])
        return row

    def save_section(self, section: str, value: Any, *, by: int | None, now: str | None = None) -> None:
        with self.write():
            self.conn.execute(
                "INSERT INTO stored_settings (section, value, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (section) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (section, json.dumps(value, sort_keys=True), now or now_iso(), by))

    def delete_section(self, section: str) -> bool:
        with self.write():
            return self.conn.execute("DELETE FROM stored_settings WHERE section = ?", (section,)).rowcount == 1
