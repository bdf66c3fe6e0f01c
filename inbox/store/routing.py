"""Store verbs for routing: agents' status, skills and capacity, team modes, the backlog and the decision log.

The decisions themselves are made in `inbox.routing` from plain rows read here; this module only
reads the state and writes the outcome. An assignment is conditional on the conversation still
having the assignee the decision was made for (`route_assign`), so a routing run never overwrites
an agent who took the conversation by hand in the meantime.

Each conversation records who set its assignee (`assigned_by`: 'person' or 'routing', m011; a
trigger marks every change as a person's and `route_assign` marks its own). Routing moves only
its own assignments, and a person's only when their agent left (went away or offline, or was
disabled) while holding it: `waiting_assigned(..., person_assigned_before=...)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from inbox.store.base import as_dict, as_dicts
from inbox.store.teams import team_clause

STATUSES = ("available", "away", "offline")
MODES = ("auto", "round_robin", "manual")
#: Conversation statuses that count against an agent's capacity and that routing hands out.
OPEN_STATUSES = ("new", "open")
#: The flag of a timeline note routing writes when it moves a conversation away from an agent who left.
FLAG_ROUTING_MOVE = "routing_move"

_AGENT_COLUMNS = (
    "a.id, a.email, a.name, a.role, a.active, a.routing_status, a.status_auto, a.status_changed_at, "
    "a.last_active_at, a.unavailable_since, a.capacity, a.languages, a.topics, a.trainee"
)
_LOAD = ("(SELECT count(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status IN ('new', 'open') "
         "AND c.merged_into IS NULL) AS load")
_TEAMS = "(SELECT group_concat(tm.team_id, ' ') FROM team_members tm WHERE tm.agent_id = a.id) AS team_list"


def _agent_row(row: dict[str, Any]) -> dict[str, Any]:
    row["team_ids"] = {int(t) for t in (row.pop("team_list", None) or "").split()}
    return row


class RoutingQueries:
    conn: Any
    write: Any

    # Agents ----------------------------------------------------------------------------------------

    def routing_agents(self, team_id: int | None = None, *, all_teams: bool = False) -> list[dict[str, Any]]:
        """Active agents with their routing state and current load: the members of `team_id`, or
        (team None) everyone, who may all take conversations of the unrouted pool."""
        if team_id is None or all_teams:
            where, params = "a.active = 1", []
        else:
            where, params = "a.active = 1 AND a.id IN (SELECT agent_id FROM team_members WHERE team_id = ?)", [team_id]
        return [_agent_row(r) for r in as_dicts(self.conn.execute(
            f"SELECT {_AGENT_COLUMNS}, {_LOAD}, {_TEAMS} FROM agents a WHERE {where} ORDER BY a.id",  # noqa: S608
            params))]

    def routing_agents_in(self, team_ids: Iterable[int] | None) -> list[dict[str, Any]]:
        """Agents (active or not) who belong to one of `team_ids` (None: every agent), for the lead pages."""
        if team_ids is None:
            where, params = "1 = 1", []
        else:
            ids = sorted(set(team_ids)) or [-1]
            where = f"a.id IN (SELECT agent_id FROM team_members WHERE team_id IN ({','.join('?' * len(ids))}))"  # noqa: S608
            params = ids
        return [_agent_row(r) for r in as_dicts(self.conn.execute(
            f"SELECT {_AGENT_COLUMNS}, {_LOAD}, {_TEAMS} FROM agents a WHERE {where} "  # noqa: S608
            "ORDER BY lower(a.name), a.id", params))]

    def agent_routing(self, agent_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute(
            f"SELECT {_AGENT_COLUMNS}, {_LOAD}, {_TEAMS} FROM agents a WHERE a.id = ?", (agent_id,))  # noqa: S608
        row = as_dict(cur, cur.fetchone())
        return _agent_row(row) if row else None

    def set_agent_status(self, agent_id: int, status: str, now: str, *, auto: bool = False) -> bool:
        """Set an agent's routing status; `auto` marks it as set by inactivity. True if it changed.

        `unavailable_since` is when the agent left "available" (kept from away to offline): what a
        person assigned to them before that may flow on; what was assigned to them afterwards stays."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self.write():
            cur = self.conn.execute(
                "UPDATE agents SET routing_status = ?, status_auto = ?, status_changed_at = ?, "
                "unavailable_since = CASE WHEN ? = 'available' THEN NULL "
                "WHEN routing_status = 'available' THEN ? ELSE unavailable_since END "
                "WHERE id = ? AND (routing_status != ? OR status_auto != ?)",
                (status, int(auto), now, status, now, agent_id, status, int(auto)))
            if not auto:
                # Choosing a status is activity too: inactivity rules count from here.
                self.conn.execute("UPDATE agents SET last_active_at = ? WHERE id = ?", (now, agent_id))
            return bool(cur.rowcount)

    def touch_agent(self, agent_id: int, now: str) -> bool:
        """Record activity; an agent whose status the system set (inactivity, or never chosen: new
        agents start offline) is available again. True if so; a status the agent chose stays."""
        with self.write():
            cur = self.conn.execute(
                "UPDATE agents SET routing_status = 'available', status_auto = 0, status_changed_at = ?, "
                "unavailable_since = NULL "
                "WHERE id = ? AND status_auto = 1 AND routing_status != 'available'", (now, agent_id))
            self.conn.execute("UPDATE agents SET last_active_at = ? WHERE id = ?", (now, agent_id))
            return bool(cur.rowcount)

    def idle_agents(self, status: str, active_before: str, *, set_by_system_only: bool = False) -> list[int]:
        """Agents in `status` whose last activity (or status change) is older than `active_before`;
        with `set_by_system_only`, only those whose status inactivity set (not one they chose)."""
        extra = " AND status_auto = 1" if set_by_system_only else ""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM agents WHERE routing_status = ? AND active = 1 "  # noqa: S608
            f"AND coalesce(last_active_at, status_changed_at, created_at) < ?{extra}", (status, active_before))]

    def anyone_available(self) -> bool:
        """Whether any active agent is available (routing has nobody to give anything to otherwise)."""
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM agents WHERE routing_status = 'available' "
                                 "AND active = 1)").fetchone()[0] == 1

    def set_agent_routing(self, agent_id: int, *, capacity: int, languages: Iterable[str], topics: Iterable[str],
                          trainee: bool) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE agents SET capacity = ?, languages = ?, topics = ?, trainee = ? WHERE id = ?",
                (capacity, " ".join(sorted(set(languages))), " ".join(sorted(set(topics))), int(trainee), agent_id))

    # Modes -----------------------------------------------------------------------------------------

    def routing_mode(self, team_id: int | None) -> str:
        """'auto', 'round_robin' or 'manual' for a team, or (None) for the unrouted pool."""
        if team_id is None:
            row = self.conn.execute("SELECT value FROM routing_settings WHERE key = 'pool_mode'").fetchone()
        else:
            row = self.conn.execute("SELECT routing_mode FROM teams WHERE id = ?", (team_id,)).fetchone()
        return row[0] if row and row[0] in MODES else "auto"

    def routing_modes(self) -> list[dict[str, Any]]:
        """Every team with its mode (for the routing page)."""
        return as_dicts(self.conn.execute(
            "SELECT id, name, routing_mode FROM teams ORDER BY lower(name), id"))

    def set_routing_mode(self, team_id: int | None, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown routing mode {mode!r}")
        with self.write():
            if team_id is None:
                self.conn.execute(
                    "INSERT INTO routing_settings (key, value) VALUES ('pool_mode', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (mode,))
            else:
                self.conn.execute("UPDATE teams SET routing_mode = ? WHERE id = ?", (mode, team_id))

    def last_routed_agent(self, team_id: int | None) -> int | None:
        """The agent round-robin chose last in this team (None: the pool)."""
        if team_id is None:
            row = self.conn.execute("SELECT value FROM routing_settings WHERE key = 'pool_last_agent'").fetchone()
            return int(row[0]) if row and str(row[0]).isdigit() else None
        row = self.conn.execute("SELECT last_routed_agent_id FROM teams WHERE id = ?", (team_id,)).fetchone()
        return row[0] if row else None

    # Conversations ---------------------------------------------------------------------------------

    def routing_inputs(self, conversation_id: int) -> dict[str, Any] | None:
        """What a routing decision needs about a conversation: the row, its customer's locale and
        owner, who of us answered this customer last, and the customer's first words here."""
        cur = self.conn.execute(
            "SELECT c.id, c.team_id, c.assignee_id, c.status, c.automatic, c.customer_id, c.channel, c.subject, "
            "c.merged_into, c.waiting_since, cu.locale, cu.owner_agent_id FROM conversations c "
            "JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ?", (conversation_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            return None
        last = self.conn.execute(
            "SELECT m.agent_id FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE c.customer_id = ? AND m.direction = 'out' AND m.agent_id IS NOT NULL "
            "ORDER BY m.id DESC LIMIT 1", (row["customer_id"],)).fetchone()
        row["last_agent_id"] = last[0] if last else None
        first = self.conn.execute(
            "SELECT subject, substr(text, 1, 4000) FROM messages WHERE conversation_id = ? AND direction = 'in' "
            "ORDER BY id LIMIT 1", (conversation_id,)).fetchone()
        row["question"] = " ".join(p for p in (first or ("", "")) if p)
        return row

    def route_assign(self, conversation_id: int, *, agent_id: int | None, expected: int | None, reason: str,
                     detail: dict[str, Any], team_id: int | None, now: str, round_robin: bool = False) -> bool:
        """Assign (or, agent None, unassign) if the assignee is still `expected`; log the decision.

        False when someone changed the assignee since the decision was made (nothing is written).
        """
        with self.write():
            cur = self.conn.execute(
                "UPDATE conversations SET assignee_id = ?, updated_at = ? WHERE id = ? AND assignee_id IS ?",
                (agent_id, now, conversation_id, expected))
            if not cur.rowcount:
                return False
            if agent_id is not None:
                # The trigger (m011) marked the change as a person's; this one is routing's.
                self.conn.execute("UPDATE conversations SET assigned_by = 'routing' WHERE id = ?", (conversation_id,))
            self.log_routing_decision(conversation_id, agent_id=agent_id, previous_agent_id=expected,
                                      team_id=team_id, reason=reason, detail=detail, now=now)
            if round_robin and agent_id is not None:
                if team_id is None:
                    self.conn.execute(
                        "INSERT INTO routing_settings (key, value) VALUES ('pool_last_agent', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(agent_id),))
                else:
                    self.conn.execute("UPDATE teams SET last_routed_agent_id = ? WHERE id = ?", (agent_id, team_id))
            return True

    def log_routing_decision(self, conversation_id: int, *, agent_id: int | None, previous_agent_id: int | None,
                             team_id: int | None, reason: str, detail: dict[str, Any], now: str) -> None:
        self.conn.execute(
            "INSERT INTO routing_decisions (conversation_id, agent_id, previous_agent_id, team_id, reason, detail, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, agent_id, previous_agent_id, team_id, reason, json.dumps(detail, sort_keys=True), now))

    def last_routing_reason(self, conversation_id: int) -> str | None:
        row = self.conn.execute("SELECT reason FROM routing_decisions WHERE conversation_id = ? ORDER BY id DESC "
                                "LIMIT 1", (conversation_id,)).fetchone()
        return row[0] if row else None

    def routing_backlog(self, *, now: str, limit: int = 200) -> list[int]:
        """Unassigned open conversations of teams (and the pool) not in manual mode, most urgent first:
        the queue's urgency (past adequate, past desired, within desired, no service level; earliest
        due first), then higher priority, then customers who wait (longest first) before the rest."""
        pool_manual = self.routing_mode(None) == "manual"
        return [r[0] for r in self.conn.execute(
            "SELECT c.id FROM conversations c LEFT JOIN teams t ON t.id = c.team_id "
            "WHERE c.assignee_id IS NULL AND c.automatic = 0 AND c.status IN ('new', 'open') "
            "AND c.merged_into IS NULL "
            "AND (CASE WHEN c.team_id IS NULL THEN :pool_manual = 0 ELSE t.routing_mode != 'manual' END) "
            "ORDER BY CASE WHEN c.sla_due_desired IS NULL THEN 3 WHEN c.sla_due_adequate <= :now THEN 0 "
            "WHEN c.sla_due_desired <= :now THEN 1 ELSE 2 END, ifnull(c.sla_due_desired, '~'), c.priority DESC, "
            "c.waiting_since IS NULL, coalesce(c.waiting_since, c.created_at), c.id LIMIT :limit",
            {"pool_manual": int(pool_manual), "now": now, "limit": limit})]

    def waiting_assigned(self, agent_id: int, *, person_assigned_before: str | None = None) -> list[int]:
        """An agent's conversations whose customer waits for an answer (newest wait first), outside
        manual-only teams, that routing may move: those routing assigned, and those a person assigned
        before `person_assigned_before`, when the agent left (None: only routing's)."""
        pool_manual = self.routing_mode(None) == "manual"
        return [r[0] for r in self.conn.execute(
            "SELECT c.id FROM conversations c LEFT JOIN teams t ON t.id = c.team_id "
            "WHERE c.assignee_id = ? AND c.status IN ('new', 'open') AND c.waiting_since IS NOT NULL "
            "AND c.merged_into IS NULL "
            "AND (CASE WHEN c.team_id IS NULL THEN ? = 0 ELSE t.routing_mode != 'manual' END) "
            "AND (c.assigned_by = 'routing' OR (? IS NOT NULL AND ifnull(c.assigned_at, '') < ?)) "
            "ORDER BY c.waiting_since DESC, c.id DESC",
            (agent_id, int(pool_manual), person_assigned_before, person_assigned_before))]

    def announce_flow_on(self, conversation_id: int, *, from_agent: int, text: str, now: str) -> int:
        """After a flow-on away from an agent who left: a note in the conversation's timeline (the
        web renders it in the reader's language from its routing decision, `routing_move`; `text`
        is the English kept for search) and a notification for the agent who lost it. The note's id."""
        with self.write():
            decision_id = self.conn.execute(
                "SELECT max(id) FROM routing_decisions WHERE conversation_id = ?", (conversation_id,)).fetchone()[0]
            channel = self.conn.execute("SELECT channel FROM conversations WHERE id = ?",
                                        (conversation_id,)).fetchone()[0]
            note_id = self.conn.execute(
                "INSERT INTO messages (conversation_id, channel, external_id, direction, agent_id, author_name, "
                "text, flags, received_at) VALUES (?, ?, ?, 'note', NULL, 'Mainland', ?, ?, ?)",
                (conversation_id, channel, f"routing-move:{decision_id}", text, FLAG_ROUTING_MOVE, now)).lastrowid
            self.notifications.add([from_agent], kind="routing_moved", conversation_id=conversation_id,
                                   message_id=None, actor_id=None, now=now)
            return note_id

    def routing_move(self, note: dict[str, Any]) -> dict[str, Any] | None:
        """The routing decision a flow-on note (`announce_flow_on`) stands for, with both agents' names."""
        external_id = note.get("external_id") or ""
        if FLAG_ROUTING_MOVE not in (note.get("flags") or "").split() or not external_id.startswith("routing-move:"):
            return None
        decision_id = external_id.removeprefix("routing-move:")
        if not decision_id.isdigit():
            return None
        cur = self.conn.execute(
            "SELECT d.detail, coalesce(nullif(a.name, ''), a.email) AS agent_name, "
            "coalesce(nullif(p.name, ''), p.email) AS previous_agent_name FROM routing_decisions d "
            "LEFT JOIN agents a ON a.id = d.agent_id LEFT JOIN agents p ON p.id = d.previous_agent_id "
            "WHERE d.id = ?", (int(decision_id),))
        return as_dict(cur, cur.fetchone())

    def agents_holding_waiting(self) -> list[int]:
        """Agents who are not available but still hold conversations whose customer waits."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT a.id FROM agents a JOIN conversations c ON c.assignee_id = a.id "
            "WHERE (a.routing_status != 'available' OR a.active = 0) AND c.status IN ('new', 'open') "
            "AND c.waiting_since IS NOT NULL ORDER BY a.id")]

    def agents_over_capacity(self) -> list[int]:
        return [r[0] for r in self.conn.execute(
            f"SELECT a.id FROM agents a WHERE a.active = 1 AND {_LOAD.removesuffix(' AS load')} > a.capacity "  # noqa: S608
            "ORDER BY a.id")]

    def routing_decisions(self, team_ids: Iterable[int] | None, *, conversation_id: int | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        """The latest decisions about conversations in `team_ids` (plus the pool; None: all), newest first."""
        clause, params = team_clause(team_ids)
        extra = ""
        if conversation_id is not None:
            extra = " AND d.conversation_id = ?"
            params = [*params, conversation_id]
        return as_dicts(self.conn.execute(
            "SELECT d.id, d.conversation_id, d.agent_id, d.previous_agent_id, d.team_id, d.reason, d.detail, d.at, "  # noqa: S608
            "c.subject, c.channel, a.name AS agent_name, a.email AS agent_email, p.name AS previous_agent_name, "
            "t.name AS team_name FROM routing_decisions d JOIN conversations c ON c.id = d.conversation_id "
            "LEFT JOIN agents a ON a.id = d.agent_id LEFT JOIN agents p ON p.id = d.previous_agent_id "
            f"LEFT JOIN teams t ON t.id = d.team_id WHERE {clause}{extra} "
            "ORDER BY d.id DESC LIMIT ?", [*params, limit]))
