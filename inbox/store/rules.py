"""Store verbs for automation rules (issue 15): the ordered rules, their firings, and what a rule reads
about a conversation. The rule engine itself is inbox/rules.py; conditions and actions are JSON here.
"""

from __future__ import annotations

import json
from typing import Any

from inbox.store.base import as_dict, as_dicts

#: The note in a conversation's timeline that stands for one firing (`external_id` rule-firing:<id>).
FLAG_RULE_FIRED = "rule_fired"
#: Firings listed per rule on the admin page.
FIRINGS_SHOWN = 20

_RULE_COLUMNS = ("name", "trigger", "trigger_minutes", "conditions", "actions", "enabled", "stop")


def _decoded(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    for key in ("conditions", "actions"):
        try:
            value = json.loads(rule[key] or "[]")
        except ValueError:
            value = []
        rule[key] = value if isinstance(value, list) else []
    rule["enabled"] = bool(rule["enabled"])
    rule["stop"] = bool(rule["stop"])
    return rule


class RuleQueries:
    conn: Any
    write: Any

    # The rules ---------------------------------------------------------------------------------------

    def rules(self, *, enabled_only: bool = False) -> list[dict[str, Any]]:
        """Every rule in evaluation order (position, then id), conditions and actions decoded."""
        sql = "SELECT * FROM rules" + (" WHERE enabled = 1" if enabled_only else "") + " ORDER BY position, id"  # noqa: S608
        return [_decoded(r) for r in as_dicts(self.conn.execute(sql))]

    def rule(self, rule_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM rules WHERE id = ?", (rule_id,))
        return _decoded(as_dict(cur, cur.fetchone()))

    def rules_version(self) -> int:
        """Changes whenever a rule is added, changed, moved or deleted (the engine recompiles then)."""
        return self.conn.execute("SELECT version FROM rules_version WHERE id = 1").fetchone()[0]

    def _bump_rules_version(self) -> None:
        self.conn.execute("UPDATE rules_version SET version = version + 1 WHERE id = 1")

    def _rule_values(self, data: dict[str, Any]) -> list[Any]:
        return [data["name"], data["trigger"], data.get("trigger_minutes"), json.dumps(data["conditions"]),
                json.dumps(data["actions"]), int(bool(data.get("enabled", True))), int(bool(data.get("stop")))]

    def create_rule(self, data: dict[str, Any], now: str) -> int:
        """A new rule, last in the order."""
        with self.write():
            position = self.conn.execute("SELECT coalesce(max(position), 0) + 1 FROM rules").fetchone()[0]
            self._bump_rules_version()
            return self.conn.execute(
                f"INSERT INTO rules ({', '.join(_RULE_COLUMNS)}, position, created_at, updated_at) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(_RULE_COLUMNS))}, ?, ?, ?)",
                [*self._rule_values(data), position, now, now]).lastrowid

    def update_rule(self, rule_id: int, data: dict[str, Any], now: str) -> bool:
        with self.write():
            self._bump_rules_version()
            sets = ", ".join(f"{c} = ?" for c in _RULE_COLUMNS)
            return self.conn.execute(f"UPDATE rules SET {sets}, updated_at = ? WHERE id = ?",  # noqa: S608
                                     [*self._rule_values(data), now, rule_id]).rowcount > 0

    def delete_rule(self, rule_id: int) -> bool:
        with self.write():
            self._bump_rules_version()
            return self.conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount > 0

    def set_rule_enabled(self, rule_id: int, enabled: bool, now: str) -> bool:
        with self.write():
            self._bump_rules_version()
            return self.conn.execute("UPDATE rules SET enabled = ?, updated_at = ? WHERE id = ? AND enabled != ?",
                                     (int(enabled), now, rule_id, int(enabled))).rowcount > 0

    def move_rule(self, rule_id: int, step: int, now: str) -> bool:
        """Swap the rule with its neighbour before (`step` -1) or after (+1) it; False at either end."""
        with self.write():
            order = [r[0] for r in self.conn.execute("SELECT id FROM rules ORDER BY position, id")]
            if rule_id not in order:
                return False
            index = order.index(rule_id)
            other = index + step
            if not 0 <= other < len(order):
                return False
            order[index], order[other] = order[other], order[index]
            self._bump_rules_version()
            for position, rid in enumerate(order, start=1):
                self.conn.execute("UPDATE rules SET position = ?, updated_at = ? WHERE id = ?", (position, now, rid))
            return True

    def record_rule_failure(self, rule_id: int, error: str, now: str) -> None:
        with self.write():
            self.conn.execute("UPDATE rules SET failures = failures + 1, last_error = ?, last_error_at = ? "
                              "WHERE id = ?", (error[:500], now, rule_id))

    # Firings -----------------------------------------------------------------------------------------

    def claim_rule_firing(self, rule: dict[str, Any], conversation_id: int, event_key: str, depth: int,
                          now: str) -> int | None:
        """The firing's row id, or None when this rule already fired for this conversation and event."""
        cur = self.conn.execute(
            "INSERT INTO rule_firings (rule_id, rule_name, conversation_id, event_key, depth, outcome, fired_at) "
            "VALUES (?, ?, ?, ?, ?, 'done', ?) ON CONFLICT DO NOTHING",
            (rule["id"], rule["name"], conversation_id, event_key, depth, now))
        return cur.lastrowid if cur.rowcount else None

    def finish_rule_firing(self, firing_id: int, done: list[dict[str, Any]], *, outcome: str = "done",
                           error: str | None = None) -> None:
        self.conn.execute("UPDATE rule_firings SET done = ?, outcome = ?, error = ? WHERE id = ?",
                          (json.dumps(done), outcome, error, firing_id))

    def rule_fired(self, rule_id: int, conversation_id: int, event_key: str) -> bool:
        return self.conn.execute("SELECT 1 FROM rule_firings WHERE rule_id = ? AND conversation_id = ? "
                                 "AND event_key = ?", (rule_id, conversation_id, event_key)).fetchone() is not None

    def rule_firings(self, rule_id: int, limit: int = FIRINGS_SHOWN) -> list[dict[str, Any]]:
        """The rule's latest firings, newest first, with the conversation's subject."""
        rows = as_dicts(self.conn.execute(
            "SELECT f.*, c.subject FROM rule_firings f JOIN conversations c ON c.id = f.conversation_id "
            "WHERE f.rule_id = ? ORDER BY f.id DESC LIMIT ?", (rule_id, limit)))
        for row in rows:
            row["done"] = json.loads(row["done"] or "[]")
        return rows

    def conversation_rule_firings(self, conversation_id: int) -> list[dict[str, Any]]:
        rows = as_dicts(self.conn.execute(
            "SELECT * FROM rule_firings WHERE conversation_id = ? ORDER BY id", (conversation_id,)))
        for row in rows:
            row["done"] = json.loads(row["done"] or "[]")
        return rows

    def rule_firing_for_note(self, note: dict[str, Any]) -> dict[str, Any] | None:
        """The firing a timeline note (`add_rule_note`) stands for."""
        external_id = note.get("external_id") or ""
        if FLAG_RULE_FIRED not in (note.get("flags") or "").split() or not external_id.startswith("rule-firing:"):
            return None
        firing_id = external_id.removeprefix("rule-firing:")
        if not firing_id.isdigit():
            return None
        cur = self.conn.execute("SELECT * FROM rule_firings WHERE id = ?", (int(firing_id),))
        row = as_dict(cur, cur.fetchone())
        if row is not None:
            row["done"] = json.loads(row["done"] or "[]")
        return row

    def add_rule_note(self, conversation_id: int, firing_id: int, text: str, now: str) -> int:
        """A note in the conversation's timeline saying that a rule fired (`text` is the English kept
        for search; the page words it in the reader's language from the firing)."""
        channel = self.conn.execute("SELECT channel FROM conversations WHERE id = ?", (conversation_id,)).fetchone()[0]
        return self.conn.execute(
            "INSERT INTO messages (conversation_id, channel, external_id, direction, agent_id, author_name, "
            "text, flags, received_at) VALUES (?, ?, ?, 'note', NULL, 'Mainland', ?, ?, ?)",
            (conversation_id, channel, f"rule-firing:{firing_id}", text, FLAG_RULE_FIRED, now)).lastrowid

    # What a rule reads -------------------------------------------------------------------------------

    def rule_facts(self, conversation_id: int, message_id: int | None = None) -> dict[str, Any] | None:
        """The conversation as conditions see it: its row, the team's name, the customer's locale and
        attributes, and the text of `message_id` (default: the customer's latest message)."""
        cur = self.conn.execute(
            "SELECT c.*, t.name AS team_name, cu.locale AS customer_locale FROM conversations c "
            "JOIN customers cu ON cu.id = c.customer_id LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?",
            (conversation_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            return None
        if message_id is not None:
            found = self.conn.execute("SELECT subject, text FROM messages WHERE id = ? AND conversation_id = ?",
                                      (message_id, conversation_id)).fetchone()
        else:
            found = self.conn.execute("SELECT subject, text FROM messages WHERE conversation_id = ? "
                                      "AND direction = 'in' ORDER BY id DESC LIMIT 1", (conversation_id,)).fetchone()
        row["message_subject"], row["message_text"] = (found[0] or "", found[1] or "") if found else ("", "")
        row["attributes"] = self.customer_attributes(row["customer_id"])
        return row

    def inbound_message_conversations(self, message_ids: list[int]) -> list[tuple[int, int]]:
        """(message id, conversation id) of the customers' messages among `message_ids`, in order."""
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        return [(r[0], r[1]) for r in self.conn.execute(
            f"SELECT id, conversation_id FROM messages WHERE id IN ({marks}) AND direction = 'in' "  # noqa: S608
            "ORDER BY id", message_ids)]

    def sla_due_for_rules(self, level: str, until: str, since: str, limit: int = 500) -> list[dict[str, Any]]:
        """Running clocks whose `level` (desired or adequate) due time lies between `since` and `until`."""
        assert level in ("desired", "adequate")
        rows: list[dict[str, Any]] = []
        for metric in ("first_response", "next_response", "resolution"):
            column = f"{metric}_due_{level}"
            rows += as_dicts(self.conn.execute(
                f"SELECT id AS conversation_id, '{metric}' AS metric, {column} AS due_at FROM conversations "  # noqa: S608
                f"WHERE status IN ('new', 'open') AND merged_into IS NULL AND {column} IS NOT NULL "
                f"AND {column} <= ? AND {column} > ? ORDER BY {column} LIMIT ?", (until, since, limit)))
        return rows

    def waiting_since_before(self, before: str, limit: int = 500) -> list[dict[str, Any]]:
        """Conversations whose customer has waited since before `before` (new or open, not merged)."""
        return as_dicts(self.conn.execute(
            "SELECT id AS conversation_id, waiting_since FROM conversations WHERE status IN ('new', 'open') "
            "AND merged_into IS NULL AND waiting_since IS NOT NULL AND waiting_since <= ? "
            "ORDER BY waiting_since LIMIT ?", (before, limit)))

    def conversations_since(self, since: str, limit: int = 500) -> list[int]:
        """Conversations started since `since`, newest first (the dry run's sample)."""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM conversations WHERE created_at >= ? AND merged_into IS NULL "
            "ORDER BY created_at DESC, id DESC LIMIT ?", (since, limit))]

    def conversation_has_label(self, conversation_id: int, name: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM conversation_labels cl JOIN labels l ON l.id = cl.label_id "
            "WHERE cl.conversation_id = ? AND lower(l.name) = lower(?)", (conversation_id, name)).fetchone() is not None

    def add_conversation_label(self, conversation_id: int, label_id: int) -> bool:
        return self.conn.execute("INSERT OR IGNORE INTO conversation_labels (conversation_id, label_id) VALUES (?, ?)",
                                 (conversation_id, label_id)).rowcount > 0

    def remove_conversation_label(self, conversation_id: int, name: str) -> bool:
        return self.conn.execute(
            "DELETE FROM conversation_labels WHERE conversation_id = ? AND label_id IN "
            "(SELECT id FROM labels WHERE lower(name) = lower(?))", (conversation_id, name)).rowcount > 0
