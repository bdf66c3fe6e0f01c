"""Store verbs for people and access: teams, memberships, roles, invitations and the team filter.

`team_clause()` is how every listing query limits itself to what an agent may see: it turns the
`team_ids` answer of `inbox.access.visible_team_ids` (None = everything) into a WHERE fragment, so
counts, search and pages are filtered in SQL and never in Python after the fact.

Invitations keep only the SHA-256 of their token: a copy of the database cannot be turned into a
working link. Using one is a single transaction that checks it is unused, unexpired and that its
agent is still active, marks it used and stores the password, so two tabs cannot both use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inbox.store.agents import ROLES
from inbox.store.base import StoreError, as_dict, as_dicts, now_iso

#: The longest team name accepted.
MAX_TEAM_NAME = 80


class TeamExists(StoreError):
    """Another team already has that name."""


class TeamNotEmpty(StoreError):
    """A team with members or conversations cannot be deleted."""


class LastAdmin(StoreError):
    """The change would leave no active admin."""


def team_clause(team_ids: Iterable[int] | None, column: str = "c.team_id") -> tuple[str, list[int]]:
    """A WHERE fragment and its parameters: rows of the unrouted pool or of one of `team_ids`.

    `team_ids=None` means no restriction. `column` is a fixed column name from the calling store
    module, never request data.
    """
    if team_ids is None:
        return "1 = 1", []
    ids = sorted({int(t) for t in team_ids})
    if not ids:
        return f"{column} IS NULL", []
    marks = ",".join("?" * len(ids))
    return f"({column} IS NULL OR {column} IN ({marks}))", ids


class TeamQueries:
    conn: Any
    write: Any

    # Teams ---------------------------------------------------------------------------------------

    def teams(self) -> list[dict[str, Any]]:
        """Every team by name, with its number of members and conversations."""
        return as_dicts(self.conn.execute(
            "SELECT t.id, t.name, "
            "(SELECT count(*) FROM team_members tm WHERE tm.team_id = t.id) AS member_count, "
            "(SELECT count(*) FROM conversations c WHERE c.team_id = t.id) AS conversation_count "
            "FROM teams t ORDER BY lower(t.name), t.id"
        ))

    def team(self, team_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute(
            "SELECT t.id, t.name, "
            "(SELECT count(*) FROM conversations c WHERE c.team_id = t.id) AS conversation_count "
            "FROM teams t WHERE t.id = ?", (team_id,))
        return as_dict(cur, cur.fetchone())

    def team_id_by_name(self, name: str) -> int | None:
        """The id of the team called `name` (case-insensitive, surrounding spaces ignored), or None."""
        row = self.conn.execute("SELECT id FROM teams WHERE lower(name) = lower(?) ORDER BY id LIMIT 1",
                                (name.strip(),)).fetchone()
        return row[0] if row else None

    def create_team(self, name: str) -> int:
        """Add a team; raises TeamExists when the name is taken (case-insensitively)."""
        with self.write():
            if self.team_id_by_name(name) is not None:
                raise TeamExists(f"a team named {name!r} already exists")
            return self.conn.execute("INSERT INTO teams (name) VALUES (?)", (name.strip(),)).lastrowid

    def rename_team(self, team_id: int, name: str) -> None:
        with self.write():
            other = self.team_id_by_name(name)
            if other is not None and other != team_id:
                raise TeamExists(f"a team named {name!r} already exists")
            self.conn.execute("UPDATE teams SET name = ? WHERE id = ?", (name.strip(), team_id))

    def delete_team(self, team_id: int) -> None:
        """Delete a team that has neither members nor conversations; else raise TeamNotEmpty."""
        with self.write():
            busy = self.conn.execute(
                "SELECT EXISTS (SELECT 1 FROM team_members WHERE team_id = ?) "
                "OR EXISTS (SELECT 1 FROM conversations WHERE team_id = ?)", (team_id, team_id)).fetchone()[0]
            if busy:
                raise TeamNotEmpty(f"team {team_id} still has members or conversations")
            self.conn.execute("DELETE FROM teams WHERE id = ?", (team_id,))

    def set_conversation_team(self, conversation_id: int, team_id: int | None) -> None:
        with self.write():
            self.conn.execute("UPDATE conversations SET team_id = ? WHERE id = ?", (team_id, conversation_id))

    # Memberships ---------------------------------------------------------------------------------

    def team_members(self, team_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT a.id, a.email, a.name, a.role, a.active FROM team_members tm "
            "JOIN agents a ON a.id = tm.agent_id WHERE tm.team_id = ? ORDER BY a.name, a.id", (team_id,)))

    def agent_team_ids(self, agent_id: int) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT team_id FROM team_members WHERE agent_id = ?", (agent_id,))}

    def agents_teams(self) -> dict[int, list[dict[str, Any]]]:
        """Agent id -> that agent's teams (id, name), for the agent list."""
        found: dict[int, list[dict[str, Any]]] = {}
        for agent_id, team_id, name in self.conn.execute(
            "SELECT tm.agent_id, t.id, t.name FROM team_members tm JOIN teams t ON t.id = tm.team_id "
            "ORDER BY lower(t.name)"
        ):
            found.setdefault(agent_id, []).append({"id": team_id, "name": name})
        return found

    def add_team_member(self, team_id: int, agent_id: int) -> None:
        with self.write():
            self.conn.execute("INSERT OR IGNORE INTO team_members (team_id, agent_id) VALUES (?, ?)",
                              (team_id, agent_id))

    def remove_team_member(self, team_id: int, agent_id: int) -> None:
        with self.write():
            self.conn.execute("DELETE FROM team_members WHERE team_id = ? AND agent_id = ?", (team_id, agent_id))

    def set_agent_teams(self, agent_id: int, team_ids: Iterable[int]) -> None:
        """Make `team_ids` exactly the agent's teams (ids that are no team are skipped)."""
        with self.write():
            self.conn.execute("DELETE FROM team_members WHERE agent_id = ?", (agent_id,))
            for team_id in sorted(set(team_ids)):
                self.conn.execute(
                    "INSERT INTO team_members (team_id, agent_id) SELECT id, ? FROM teams WHERE id = ?",
                    (agent_id, team_id))

    # Roles and the last admin ----------------------------------------------------------------------

    def active_admin_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM agents WHERE role = 'admin' AND active = 1").fetchone()[0]

    def _guard_last_admin(self, agent_id: int) -> None:
        row = self.conn.execute("SELECT role, active FROM agents WHERE id = ?", (agent_id,)).fetchone()
        if row and row[0] == "admin" and row[1] and self.active_admin_count() <= 1:
            raise LastAdmin("Mainland needs at least one active admin")

    def set_agent_role(self, agent_id: int, role: str) -> None:
        """Change an agent's role; raises LastAdmin rather than demote the last active admin."""
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}")
        with self.write():
            if role != "admin":
                self._guard_last_admin(agent_id)
            self.conn.execute("UPDATE agents SET role = ? WHERE id = ?", (role, agent_id))

    def disable_agent(self, agent_id: int) -> None:
        """Disable an agent and end every session; raises LastAdmin for the last active admin."""
        with self.write():
            self._guard_last_admin(agent_id)
            self.conn.execute("UPDATE agents SET active = 0, session_epoch = session_epoch + 1 WHERE id = ?",
                              (agent_id,))

    def enable_agent(self, agent_id: int) -> None:
        with self.write():
            self.conn.execute("UPDATE agents SET active = 1 WHERE id = ?", (agent_id,))

    def set_agent_name(self, agent_id: int, name: str) -> None:
        with self.write():
            self.conn.execute("UPDATE agents SET name = ? WHERE id = ?", (name, agent_id))

    def last_logins(self) -> dict[int, str]:
        """Agent id -> time of their latest sign-in, from the audit log."""
        rows = self.conn.execute(
            "SELECT object_id, max(at) FROM audit_log WHERE action = 'login' AND object_type = 'agent' "
            "GROUP BY object_id")
        return {int(r[0]): r[1] for r in rows if r[0] and str(r[0]).isdigit()}

    def audit_entries(self, *, object_type: str | None = None, object_id: int | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        """The latest audit-log entries, newest first, optionally about one object."""
        where, params = ["1 = 1"], []
        if object_type is not None:
            where.append("object_type = ?")
            params.append(object_type)
        if object_id is not None:
            where.append("object_id = ?")
            params.append(str(object_id))
        return as_dicts(self.conn.execute(
            "SELECT id, at, actor, action, object_type, object_id, details FROM audit_log "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*params, limit)))

    # Invitations -----------------------------------------------------------------------------------

    def create_invitation(self, agent_id: int, token_hash: str, *, expires_at: str, created_by: int | None,
                          now: str | None = None) -> int:
        """Store a new invitation for `agent_id`; earlier unused ones of that agent stop working."""
        now = now or now_iso()
        with self.write():
            self.conn.execute(
                "UPDATE agent_invitations SET revoked_at = ? WHERE agent_id = ? AND used_at IS NULL "
                "AND revoked_at IS NULL", (now, agent_id))
            return self.conn.execute(
                "INSERT INTO agent_invitations (token_hash, agent_id, created_by, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)", (token_hash, agent_id, created_by, now, expires_at)).lastrowid

    def live_invitation(self, token_hash: str, now: str | None = None) -> dict[str, Any] | None:
        """The unused, unexpired invitation with this token hash whose agent is active, or None."""
        cur = self.conn.execute(
            "SELECT i.id, i.agent_id, i.expires_at, a.email, a.name FROM agent_invitations i "
            "JOIN agents a ON a.id = i.agent_id WHERE i.token_hash = ? AND i.used_at IS NULL "
            "AND i.revoked_at IS NULL AND i.expires_at > ? AND a.active = 1",
            (token_hash, now or now_iso()))
        return as_dict(cur, cur.fetchone())

    def accept_invitation(self, token_hash: str, password_hash: str, now: str | None = None) -> int | None:
        """Use up the invitation and set its agent's password; the agent id, or None if it is not live."""
        now = now or now_iso()
        with self.write():
            invitation = self.live_invitation(token_hash, now)
            if invitation is None:
                return None
            self.conn.execute("UPDATE agent_invitations SET used_at = ? WHERE id = ?", (now, invitation["id"]))
            self.conn.execute(
                "UPDATE agents SET password_hash = ?, session_epoch = session_epoch + 1 WHERE id = ?",
                (password_hash, invitation["agent_id"]))
            return invitation["agent_id"]

    def pending_invitations(self, now: str | None = None) -> dict[int, str]:
        """Agent id -> expiry of their live invitation."""
        rows = self.conn.execute(
            "SELECT agent_id, max(expires_at) FROM agent_invitations WHERE used_at IS NULL AND revoked_at IS NULL "
            "AND expires_at > ? GROUP BY agent_id", (now or now_iso(),))
        return {r[0]: r[1] for r in rows}
