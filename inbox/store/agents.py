"""Store verbs for agents: the people who sign in to the web inbox.

An agent's `session_epoch` is how every open session of that agent is ended at once: a signed
session cookie remembers the epoch it was issued under, and anything that must end sessions
(logout, a new password, disabling the account) bumps it. Emails are stored lower-case.

Remembered devices (the sign-in code step skipped on a browser the agent chose to trust) are
forgotten here, in the same transaction as the change that must end them: a new password (not a
mere rehash), a second factor turned on, off or its recovery codes replaced, the agent disabled, or
"sign out everywhere" (`end_agent_sessions(..., forget_devices=True)`; a plain sign-out keeps them).
"""

from __future__ import annotations

from typing import Any

from inbox.store.base import StoreError, as_dict, as_dicts, now_iso

ROLES = ("agent", "lead", "manager", "admin")

_PUBLIC_COLUMNS = "id, email, name, role, locale, active, session_epoch, created_at"


class AgentExists(StoreError):
    """An agent with that email address already exists."""


class AgentQueries:
    conn: Any
    write: Any

    def create_agent(self, *, email: str, name: str, role: str, password_hash: str | None,
                     locale: str | None = None, now: str | None = None) -> int:
        """Add an agent; raises AgentExists when the email is taken."""
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        with self.write():
            if self.conn.execute("SELECT 1 FROM agents WHERE email = ?", (email.lower(),)).fetchone():
                raise AgentExists(f"an agent with email {email.lower()} already exists")
            # Offline until they sign in: a status the system set (`status_auto`), not one they chose,
            # so signing in makes them available (inbox/routing.py).
            cur = self.conn.execute(
                "INSERT INTO agents (email, name, password_hash, role, locale, created_at, status_auto) "
                "VALUES (?, ?, ?, ?, ?, ?, 1)",
                (email.lower(), name, password_hash, role, locale, now or now_iso()),
            )
            return cur.lastrowid

    def agent(self, agent_id: int) -> dict[str, Any] | None:
        """One agent with their password hash (for sign-in checks), or None."""
        cur = self.conn.execute(f"SELECT {_PUBLIC_COLUMNS}, password_hash FROM agents WHERE id = ?",  # noqa: S608
                                (agent_id,))
        return as_dict(cur, cur.fetchone())

    def agent_by_email(self, email: str) -> dict[str, Any] | None:
        cur = self.conn.execute(f"SELECT {_PUBLIC_COLUMNS}, password_hash FROM agents WHERE email = ?",  # noqa: S608
                                (email.strip().lower(),))
        return as_dict(cur, cur.fetchone())

    def agents(self) -> list[dict[str, Any]]:
        """Every agent, without password hashes, by name."""
        return as_dicts(self.conn.execute(f"SELECT {_PUBLIC_COLUMNS} FROM agents ORDER BY name, id"))  # noqa: S608

    def set_agent_password(self, agent_id: int, password_hash: str, *, end_sessions: bool = True) -> int:
        """Store a new password hash; by default also end every session. Returns the session epoch."""
        with self.write():
            bump = 1 if end_sessions else 0
            self.conn.execute(
                "UPDATE agents SET password_hash = ?, session_epoch = session_epoch + ? WHERE id = ?",
                (password_hash, bump, agent_id),
            )
            if end_sessions:
                self.forget_devices(agent_id)
            return self._epoch(agent_id)

    def end_agent_sessions(self, agent_id: int, *, forget_devices: bool = False) -> int:
        """End every session of the agent (and with `forget_devices`, every remembered device too);
        returns the new session epoch."""
        with self.write():
            self.conn.execute("UPDATE agents SET session_epoch = session_epoch + 1 WHERE id = ?", (agent_id,))
            if forget_devices:
                self.forget_devices(agent_id)
            return self._epoch(agent_id)

    def set_agent_locale(self, agent_id: int, locale: str | None) -> None:
        with self.write():
            self.conn.execute("UPDATE agents SET locale = ? WHERE id = ?", (locale, agent_id))

    def set_agent_active(self, agent_id: int, active: bool) -> None:
        """Enable or disable an agent; disabling also ends every session."""
        with self.write():
            self.conn.execute(
                "UPDATE agents SET active = ?, session_epoch = session_epoch + ? WHERE id = ?",
                (int(active), 0 if active else 1, agent_id),
            )
            if not active:
                self.forget_devices(agent_id)

    # Password resets by email (inbox/web/account.py) ------------------------------------------------

    def create_password_reset(self, agent_id: int, token_hash: str, *, expires_at: str,
                              now: str | None = None) -> int:
        """Store a reset link's token hash; the agent's earlier unused links stop working."""
        now = now or now_iso()
        with self.write():
            self.conn.execute(
                "UPDATE password_resets SET revoked_at = ? WHERE agent_id = ? AND used_at IS NULL "
                "AND revoked_at IS NULL", (now, agent_id))
            return self.conn.execute(
                "INSERT INTO password_resets (token_hash, agent_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (token_hash, agent_id, now, expires_at)).lastrowid

    def live_password_reset(self, token_hash: str, now: str | None = None) -> dict[str, Any] | None:
        """The unused, unexpired reset with this token hash whose agent is active, or None."""
        cur = self.conn.execute(
            "SELECT r.id, r.agent_id, r.expires_at, a.email, a.name FROM password_resets r "
            "JOIN agents a ON a.id = r.agent_id WHERE r.token_hash = ? AND r.used_at IS NULL "
            "AND r.revoked_at IS NULL AND r.expires_at > ? AND a.active = 1",
            (token_hash, now or now_iso()))
        return as_dict(cur, cur.fetchone())

    def use_password_reset(self, token_hash: str, password_hash: str, now: str | None = None) -> int | None:
        """Use up the reset, set the new password and end every session; the agent id, or None if not live."""
        now = now or now_iso()
        with self.write():
            reset = self.live_password_reset(token_hash, now)
            if reset is None:
                return None
            self.conn.execute("UPDATE password_resets SET used_at = ? WHERE id = ?", (now, reset["id"]))
            self.conn.execute(
                "UPDATE agents SET password_hash = ?, session_epoch = session_epoch + 1 WHERE id = ?",
                (password_hash, reset["agent_id"]))
            self.forget_devices(reset["agent_id"])
            return reset["agent_id"]

    # Second factor (TOTP and recovery codes, inbox/web/account.py) ---------------------------------

    def second_factor(self, agent_id: int) -> dict[str, Any]:
        """The agent's TOTP state: secret (confirmed, or None), pending_secret, last_step, codes_left."""
        row = self.conn.execute(
            "SELECT totp_secret, totp_pending_secret, totp_last_step FROM agents WHERE id = ?", (agent_id,)).fetchone()
        left = self.conn.execute("SELECT count(*) FROM agent_recovery_codes WHERE agent_id = ? AND used_at IS NULL",
                                 (agent_id,)).fetchone()[0]
        secret, pending, last_step = row if row else (None, None, None)
        return {"secret": secret, "pending_secret": pending, "last_step": last_step, "codes_left": left}

    def set_pending_totp(self, agent_id: int, secret: str | None) -> None:
        with self.write():
            self.conn.execute("UPDATE agents SET totp_pending_secret = ? WHERE id = ?", (secret, agent_id))

    def confirm_totp(self, agent_id: int, secret: str, step: int, code_hashes: list[str],
                     now: str | None = None) -> None:
        """Make `secret` the agent's second factor (used at `step`) with fresh recovery codes."""
        now = now or now_iso()
        with self.write():
            self.conn.execute(
                "UPDATE agents SET totp_secret = ?, totp_pending_secret = NULL, totp_last_step = ? WHERE id = ?",
                (secret, step, agent_id))
            self.conn.execute("DELETE FROM agent_recovery_codes WHERE agent_id = ?", (agent_id,))
            self.conn.executemany(
                "INSERT INTO agent_recovery_codes (agent_id, code_hash, created_at) VALUES (?, ?, ?)",
                [(agent_id, h, now) for h in code_hashes])
            self.forget_devices(agent_id)

    def replace_recovery_codes(self, agent_id: int, code_hashes: list[str], now: str | None = None) -> None:
        """New recovery codes for the agent; every earlier one stops working."""
        now = now or now_iso()
        with self.write():
            self.conn.execute("DELETE FROM agent_recovery_codes WHERE agent_id = ?", (agent_id,))
            self.conn.executemany(
                "INSERT INTO agent_recovery_codes (agent_id, code_hash, created_at) VALUES (?, ?, ?)",
                [(agent_id, h, now) for h in code_hashes])
            self.forget_devices(agent_id)

    def disable_totp(self, agent_id: int) -> None:
        with self.write():
            self.conn.execute("UPDATE agents SET totp_secret = NULL, totp_pending_secret = NULL, "
                              "totp_last_step = NULL WHERE id = ?", (agent_id,))
            self.conn.execute("DELETE FROM agent_recovery_codes WHERE agent_id = ?", (agent_id,))
            self.forget_devices(agent_id)

    def use_totp_step(self, agent_id: int, step: int) -> bool:
        """Record that the code of time step `step` was used; False if it (or a later one) already was."""
        with self.write():
            cur = self.conn.execute(
                "UPDATE agents SET totp_last_step = ? WHERE id = ? AND totp_secret IS NOT NULL "
                "AND (totp_last_step IS NULL OR totp_last_step < ?)", (step, agent_id, step))
            return cur.rowcount == 1

    def use_recovery_code(self, agent_id: int, code_hash: str, now: str | None = None) -> bool:
        """Use up one recovery code; False if the agent has no such unused code."""
        with self.write():
            cur = self.conn.execute(
                "UPDATE agent_recovery_codes SET used_at = ? WHERE agent_id = ? AND code_hash = ? AND used_at IS NULL",
                (now or now_iso(), agent_id, code_hash))
            return cur.rowcount == 1

    # Remembered devices ("Remember this device" at the code step, inbox/web/devices.py) -------------

    def remember_device(self, agent_id: int, token_hash: str, *, label: str, expires_at: str,
                        now: str | None = None) -> int:
        """Keep a remembered device's token hash; returns its id."""
        with self.write():
            return self.conn.execute(
                "INSERT INTO remembered_devices (agent_id, token_hash, label, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)", (agent_id, token_hash, label, now or now_iso(), expires_at)).lastrowid

    def live_remembered_device(self, token_hash: str, now: str) -> dict[str, Any] | None:
        """The unexpired remembered device with this token hash, or None."""
        cur = self.conn.execute(
            "SELECT id, agent_id, label, created_at, expires_at, last_used_at FROM remembered_devices "
            "WHERE token_hash = ? AND expires_at > ?", (token_hash, now))
        return as_dict(cur, cur.fetchone())

    def note_device_used(self, device_id: int, now: str) -> None:
        with self.write():
            self.conn.execute("UPDATE remembered_devices SET last_used_at = ? WHERE id = ?", (now, device_id))

    def remembered_devices(self, agent_id: int, now: str) -> list[dict[str, Any]]:
        """The agent's unexpired remembered devices, most recently used (or made) first."""
        return as_dicts(self.conn.execute(
            "SELECT id, label, created_at, expires_at, last_used_at FROM remembered_devices "
            "WHERE agent_id = ? AND expires_at > ? ORDER BY coalesce(last_used_at, created_at) DESC, id DESC",
            (agent_id, now)))

    def forget_device(self, agent_id: int, device_id: int) -> bool:
        """Forget one of the agent's devices; False when the agent has no such device."""
        with self.write():
            cur = self.conn.execute("DELETE FROM remembered_devices WHERE id = ? AND agent_id = ?",
                                    (device_id, agent_id))
        return cur.rowcount > 0

    def forget_devices(self, agent_id: int) -> int:
        """Forget every remembered device of the agent; returns how many there were."""
        with self.write():
            return self.conn.execute("DELETE FROM remembered_devices WHERE agent_id = ?", (agent_id,)).rowcount

    def _epoch(self, agent_id: int) -> int:
        row = self.conn.execute("SELECT session_epoch FROM agents WHERE id = ?", (agent_id,)).fetchone()
        if row is None:
            raise StoreError(f"no agent {agent_id}")
        return row[0]
