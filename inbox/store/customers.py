"""Store verbs for customers: records, identities, claims, notes, suggestions, merges, export and erasure.

Visibility: a customer is visible to an agent who can see at least one of the customer's
conversations; `team_ids=None` (admins, managers, `web.visibility: all`) sees every customer.
Every listing, count and search here takes `team_ids` and filters in SQL.

Merges move rows from one record to another and keep a snapshot of every row they touch, so that
`unmerge_customers` puts back exactly what each side had. Erasure deletes a customer and every
row that depends on them, found through the schema's foreign keys (so tables added later by other
modules are covered too), then compacts every FTS5 index so deleted words do not linger in index
segments; with `secure_delete` on, freed pages are zeroed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from inbox.identity import name_key as make_name_key
from inbox.store.base import NotFound, StoreError, as_dict, as_dicts

#: Columns of `customers` an update may set.
_CUSTOMER_FIELDS = ("display_name", "locale", "owner_agent_id", "crm_ref")
#: Core tables whose rows belong to somebody else when they merely point at an erased row: the
#: pointer is cleared, the row kept (another customer's conversation merged into one of theirs).
_KEEP_ON_ERASE = frozenset({"customers", "conversations", "messages", "agents", "teams"})


class MergeConflict(StoreError):
    """The two records carry conflicting identifiers; merging needs an explicit override."""

    def __init__(self, conflicts: list[str]) -> None:
        super().__init__("conflicting identifiers: " + ", ".join(conflicts))
        self.conflicts = conflicts


class UnmergeRefused(StoreError):
    """A merge that cannot be undone (already undone, a later merge builds on it, a side erased)."""


def visible_clause(team_ids: Iterable[int] | None, alias: str = "cu") -> tuple[str, list[int]]:
    """A WHERE fragment: customers with at least one conversation in `team_ids` or unrouted.

    `alias` is a fixed table alias from this module, never request data.
    """
    if team_ids is None:
        return "1 = 1", []
    ids = sorted({int(t) for t in team_ids})
    team = "vc.team_id IS NULL" if not ids else f"(vc.team_id IS NULL OR vc.team_id IN ({','.join('?' * len(ids))}))"
    return f"EXISTS (SELECT 1 FROM conversations vc WHERE vc.customer_id = {alias}.id AND {team})", ids  # noqa: S608


def identity_hash(kind: str, value: str) -> str:
    """What an erased identity leaves behind: a SHA-256 of its kind and normalised value."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _marks(values: list) -> str:
    return ",".join("?" * len(values))


class CustomerQueries:
    conn: Any
    write: Any
    audit: Any
    savepoint: Any  # Store.savepoint: a part of the current transaction that can fail alone

    # Records -----------------------------------------------------------------------------------

    def customer_record(self, customer_id: int) -> dict[str, Any]:
        cur = self.conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no customer {customer_id}")
        return row

    def live_customer_id(self, customer_id: int) -> int | None:
        """The record `customer_id` was merged into (or itself); None when it does not exist."""
        seen = set()
        while customer_id not in seen:
            seen.add(customer_id)
            row = self.conn.execute("SELECT merged_into FROM customers WHERE id = ?", (customer_id,)).fetchone()
            if row is None:
                return None
            if row[0] is None:
                return customer_id
            customer_id = row[0]
        raise StoreError(f"merge cycle at customer {customer_id}")

    def create_customer_record(self, display_name: str, now: str, *, locale: str | None = None,
                               crm_ref: str | None = None, owner_agent_id: int | None = None,
                               matchable: bool = True) -> int:
        """A new customer. `matchable=False`: the display name is a channel's stand-in, not a person's
        name, so it gets no matching key (no namesakes, no name statistics)."""
        key = make_name_key(display_name) if matchable else ""
        cur = self.conn.execute(
            "INSERT INTO customers (display_name, name_key, locale, crm_ref, owner_agent_id, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (display_name, key, locale, crm_ref, owner_agent_id, now, now),
        )
        self._count_name(key, 1)
        return cur.lastrowid

    def fill_customer_name_key(self, customer_id: int, name: str, now: str) -> None:
        """Give a nameless customer the name they signed with; a fuller name improves the matching key.

        "Jan" on WhatsApp who later signs "Jan de Vries" is matched as "jan de vries" from then on;
        the name agents see changes only when there was none.
        """
        from inbox.identity import is_full_name

        key = make_name_key(name)
        row = self.conn.execute("SELECT display_name, name_key FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            return
        if not row[0]:
            self.conn.execute("UPDATE customers SET display_name = ?, name_key = ?, updated_at = ? WHERE id = ?",
                              (name, key, now, customer_id))
        elif key and key != row[1] and is_full_name(key) and (
                not is_full_name(row[1]) or (min(map(len, row[1].split())) == 1 and min(map(len, key.split())) > 1)):
            self.conn.execute("UPDATE customers SET name_key = ? WHERE id = ?", (key, customer_id))
        else:
            return
        self._count_name(row[1], -1)
        self._count_name(key, 1)

    def _count_name(self, key: str, delta: int) -> None:
        from inbox.identity import name_tokens

        if not key:
            return
        tokens = sorted({"", *name_tokens(key)})
        self.conn.executemany(
            "INSERT INTO name_token_counts (token, n) VALUES (?, ?) ON CONFLICT (token) DO UPDATE SET n = name_token_counts.n + excluded.n",
            [(t, delta) for t in tokens])
        if delta < 0:
            self.conn.execute(f"DELETE FROM name_token_counts WHERE n <= 0 AND token IN ({_marks(tokens)})",  # noqa: S608
                              tokens)

    def name_token_counts(self, tokens: Iterable[str]) -> dict[str, int]:
        """Records per name token, and under "" the number of named records."""
        wanted = sorted({"", *tokens})
        return {t: n for t, n in self.conn.execute(
            f"SELECT token, n FROM name_token_counts WHERE token IN ({_marks(wanted)})", wanted)}  # noqa: S608

    def customers_named(self, key: str, exclude: int, limit: int = 5) -> list[int]:
        """Live records that carry exactly this name key, or were seen writing under it."""
        rows = self.conn.execute(
            # `name_key != ''` lets SQLite use the partial index on name_key.
            "SELECT id FROM customers WHERE name_key = ? AND name_key != '' AND merged_into IS NULL AND id != ? "
            "UNION SELECT DISTINCT customer_id FROM name_sightings WHERE name_key = ? AND customer_id != ? LIMIT ?",
            (key, exclude, key, exclude, limit)).fetchall()
        return [r[0] for r in rows]

    def active_on(self, day: str) -> int:
        """How many records were seen writing under a full name on `day`."""
        return self.conn.execute("SELECT count(DISTINCT customer_id) FROM name_sightings WHERE day = ?",
                                 (day,)).fetchone()[0]

    def update_customer(self, customer_id: int, fields: dict[str, Any], now: str) -> list[str]:
        """Set the given fields; returns the names of those that changed (none: nothing written)."""
        current = self.customer_record(customer_id)
        changed = [k for k in _CUSTOMER_FIELDS if k in fields and fields[k] != current[k]]
        if changed:
            sets = [f"{k} = ?" for k in changed]
            params = [fields[k] for k in changed]
            if "display_name" in changed:
                sets.append("name_key = ?")
                params.append(make_name_key(fields["display_name"] or ""))
                self._count_name(current["name_key"], -1)
                self._count_name(params[-1], 1)
            self.conn.execute(
                f"UPDATE customers SET {', '.join(sets)}, updated_at = ? WHERE id = ?",  # noqa: S608
                (*params, now, customer_id),
            )
        return changed

    def customer_by_crm_ref(self, crm_ref: str) -> int | None:
        """The live customer for an external CRM reference, following merges."""
        rows = self.conn.execute(
            "SELECT id FROM customers WHERE crm_ref = ? ORDER BY merged_into IS NOT NULL, id", (crm_ref,)
        ).fetchall()
        for (customer_id,) in rows:
            live = self.live_customer_id(customer_id)
            if live is not None:
                return live
        return None

    def namesake_count(self, key: str, exclude: Iterable[int] = ()) -> int:
        """How many live records carry exactly this name key (leaving out `exclude`)."""
        excluded = [int(i) for i in exclude]
        sql = "SELECT count(*) FROM customers WHERE name_key = ? AND name_key != '' AND merged_into IS NULL"
        if excluded:
            sql += f" AND id NOT IN ({_marks(excluded)})"
        return self.conn.execute(sql, (key, *excluded)).fetchone()[0]

    # Identities and claims ------------------------------------------------------------------------

    def attach_identity(self, customer_id: int, kind: str, value: str, display: str, valid: bool, now: str) -> bool:
        """Add an identity to a customer; False when that identity exists already (anyone's)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO identities (customer_id, kind, value, display, valid, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (customer_id, kind, value, display, int(valid), now),
        )
        return cur.rowcount > 0

    def identity_owner(self, kind: str, value: str) -> int | None:
        """The live customer holding identity (kind, value), or None."""
        row = self.conn.execute("SELECT customer_id FROM identities WHERE kind = ? AND value = ?",
                                (kind, value)).fetchone()
        return self.live_customer_id(row[0]) if row else None

    def identities_of(self, customer_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT id, kind, value, display, valid, delivery_failed, created_at FROM identities "
            "WHERE customer_id = ? ORDER BY kind, value", (customer_id,)))

    def identity_kinds(self, customer_id: int) -> dict[str, set[str]]:
        """The customer's identity values by kind."""
        found: dict[str, set[str]] = {}
        for kind, value in self.conn.execute("SELECT kind, value FROM identities WHERE customer_id = ?",
                                             (customer_id,)):
            found.setdefault(kind, set()).add(value)
        return found

    def add_claim(self, customer_id: int, kind: str, value: str, source: str, now: str,
                  message_id: int | None = None) -> bool:
        """Record that a customer's record names this identifier; False if it already did."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO customer_claims (customer_id, kind, value, source, message_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (customer_id, kind, value, source, message_id, now),
        )
        return cur.rowcount > 0

    def claim_holders(self, kind: str, value: str) -> list[tuple[int, str]]:
        """(customer id, source) of every record claiming (kind, value)."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT customer_id, source FROM customer_claims WHERE kind = ? AND value = ? ORDER BY customer_id",
            (kind, value))]

    def claims_of(self, customer_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT id, kind, value, source, message_id, created_at FROM customer_claims WHERE customer_id = ? "
            "ORDER BY kind, value", (customer_id,)))

    def is_erased_identity(self, kind: str, value: str, written_at: str) -> bool:
        """True when (kind, value) was erased after `written_at`: an old item, not a new message."""
        row = self.conn.execute("SELECT erased_at FROM erased_identities WHERE kind = ? AND value_hash = ?",
                                (kind, identity_hash(kind, value))).fetchone()
        return row is not None and written_at <= row[0]

    # Attributes and notes -------------------------------------------------------------------------

    def customer_attributes(self, customer_id: int) -> dict[str, str]:
        return {k: v for k, v in self.conn.execute(
            "SELECT key, value FROM customer_attributes WHERE customer_id = ? ORDER BY key", (customer_id,))}

    def set_customer_attribute(self, customer_id: int, key: str, value: str | None, now: str) -> bool:
        """Set (or with None/"" remove) one attribute; True when something changed."""
        if value is None or value == "":
            cur = self.conn.execute("DELETE FROM customer_attributes WHERE customer_id = ? AND key = ?",
                                    (customer_id, key))
            return cur.rowcount > 0
        cur = self.conn.execute(
            "INSERT INTO customer_attributes (customer_id, key, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (customer_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at "
            "WHERE customer_attributes.value != excluded.value",
            (customer_id, key, value, now),
        )
        return cur.rowcount > 0

    def customer_notes(self, customer_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT n.id, n.text, n.created_at, n.agent_id, a.name AS agent_name, a.email AS agent_email "
            "FROM customer_notes n LEFT JOIN agents a ON a.id = n.agent_id WHERE n.customer_id = ? "
            "ORDER BY n.id DESC", (customer_id,)))

    def add_customer_note(self, customer_id: int, agent_id: int | None, text: str, now: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO customer_notes (customer_id, agent_id, text, created_at) VALUES (?, ?, ?, ?)",
            (customer_id, agent_id, text, now))
        return cur.lastrowid

    # Same-day name sightings ----------------------------------------------------------------------

    def add_sighting(self, day: str, blocks: Iterable[str], customer_id: int, channel: str, key: str) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO name_sightings (day, block, customer_id, channel, name_key) VALUES (?, ?, ?, ?, ?)",
            [(day, b, customer_id, channel, key) for b in blocks])

    def sightings(self, days: Iterable[str], blocks: Iterable[str],
                  exclude_customer: int) -> list[tuple[int, str, str, str]]:
        """(customer id, channel, name key, day) of others seen on one of `days` under one of `blocks`."""
        blocks, days = sorted(blocks), sorted(days)
        if not blocks or not days:
            return []
        return [tuple(r) for r in self.conn.execute(
            "SELECT DISTINCT customer_id, channel, name_key, day FROM name_sightings "  # noqa: S608
            f"WHERE day IN ({_marks(days)}) AND block IN ({_marks(blocks)}) AND customer_id != ?",
            (*days, *blocks, exclude_customer))]

    def customer_channels(self, customer_id: int) -> set[str]:
        """Channels the customer has conversations on."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT channel FROM conversations WHERE customer_id = ?",
                                                (customer_id,))}

    # Merge suggestions ----------------------------------------------------------------------------

    def suggestion_for_pair(self, a: int, b: int) -> dict[str, Any] | None:
        a, b = min(a, b), max(a, b)
        cur = self.conn.execute("SELECT * FROM merge_suggestions WHERE customer_a = ? AND customer_b = ?", (a, b))
        return as_dict(cur, cur.fetchone())

    def save_suggestion(self, a: int, b: int, score: float, reasons: list[dict[str, Any]], now: str) -> int:
        """Create or update the open suggestion for the pair (callers skip decided pairs)."""
        a, b = min(a, b), max(a, b)
        cur = self.conn.execute(
            "INSERT INTO merge_suggestions (customer_a, customer_b, score, reasons, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (customer_a, customer_b) DO UPDATE SET score = excluded.score, "
            "reasons = excluded.reasons, updated_at = excluded.updated_at WHERE merge_suggestions.status = 'open' "
            "RETURNING id",
            (a, b, round(score, 4), json.dumps(reasons), now, now))
        row = cur.fetchone()
        return row[0] if row else self.suggestion_for_pair(a, b)["id"]

    def suggestion(self, suggestion_id: int) -> dict[str, Any]:
        cur = self.conn.execute("SELECT * FROM merge_suggestions WHERE id = ?", (suggestion_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no suggestion {suggestion_id}")
        return row

    def open_suggestions(self, team_ids: Iterable[int] | None, *, min_score: float = 0.0,
                         limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Open suggestions whose two customers the caller can both see, best first."""
        clause_a, params_a = visible_clause(team_ids, "ca")
        clause_b, params_b = visible_clause(team_ids, "cb")
        return as_dicts(self.conn.execute(
            "SELECT s.*, ca.display_name AS name_a, cb.display_name AS name_b FROM merge_suggestions s "  # noqa: S608
            "JOIN customers ca ON ca.id = s.customer_a JOIN customers cb ON cb.id = s.customer_b "
            f"WHERE s.status = 'open' AND s.score >= ? AND {clause_a} AND {clause_b} "
            "ORDER BY s.score DESC, s.id LIMIT ? OFFSET ?",
            (min_score, *params_a, *params_b, limit, offset)))

    def count_open_suggestions(self, team_ids: Iterable[int] | None, *, min_score: float = 0.0) -> int:
        clause_a, params_a = visible_clause(team_ids, "ca")
        clause_b, params_b = visible_clause(team_ids, "cb")
        return self.conn.execute(
            "SELECT count(*) FROM merge_suggestions s JOIN customers ca ON ca.id = s.customer_a "  # noqa: S608
            f"JOIN customers cb ON cb.id = s.customer_b WHERE s.status = 'open' AND s.score >= ? AND {clause_a} "
            f"AND {clause_b}", (min_score, *params_a, *params_b)).fetchone()[0]

    def customer_suggestions(self, customer_id: int) -> list[dict[str, Any]]:
        """Open suggestions involving a customer (for their page)."""
        return as_dicts(self.conn.execute(
            "SELECT * FROM merge_suggestions WHERE status = 'open' AND (customer_a = ? OR customer_b = ?) "
            "ORDER BY score DESC", (customer_id, customer_id)))

    def decide_suggestion(self, suggestion_id: int, status: str, agent_id: int | None, now: str) -> None:
        if status not in ("confirmed", "rejected"):
            raise ValueError(status)
        self.conn.execute(
            "UPDATE merge_suggestions SET status = ?, decided_by = ?, decided_at = ?, updated_at = ? WHERE id = ?",
            (status, agent_id, now, now, suggestion_id))

    # Merging ---------------------------------------------------------------------------------------

    def merge_conflicts(self, a: int, b: int) -> list[str]:
        """Identifiers of one kind that differ between two records: "crm_ref", "telegram", ..."""
        from inbox.identity import single_kinds

        conflicts = []
        ref_a, ref_b = self.customer_record(a)["crm_ref"], self.customer_record(b)["crm_ref"]
        if ref_a and ref_b and ref_a != ref_b:
            conflicts.append("crm_ref")
        kinds_a, kinds_b = self.identity_kinds(a), self.identity_kinds(b)
        for kind in sorted(single_kinds() & kinds_a.keys() & kinds_b.keys()):
            if not kinds_a[kind] & kinds_b[kind]:
                conflicts.append(kind)
        return conflicts

    def _rows(self, sql: str, params: tuple | list) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(sql, params))

    def merge_customers(self, survivor: int, merged: int, *, agent_id: int | None, now: str,
                        suggestion_id: int | None = None, force: bool = False) -> int:
        """Move everything of `merged` onto `survivor`; returns the merge id (for undo)."""
        with self.write():
            s, m = self.customer_record(survivor), self.customer_record(merged)
            if survivor == merged or s["merged_into"] is not None or m["merged_into"] is not None:
                raise StoreError("only two different, unmerged customers can be merged")
            conflicts = self.merge_conflicts(survivor, merged)
            if conflicts and not force:
                raise MergeConflict(conflicts)
            pair = (survivor, merged)
            snapshot = {
                "customers": [s, m],
                "identities": self._rows("SELECT * FROM identities WHERE customer_id = ?", (merged,)),
                "conversations": [r[0] for r in self.conn.execute(
                    "SELECT id FROM conversations WHERE customer_id = ?", (merged,))],
                "messages": [r[0] for r in self.conn.execute(
                    "SELECT id FROM messages WHERE customer_id = ?", (merged,))],
                "notes": [r[0] for r in self.conn.execute(
                    "SELECT id FROM customer_notes WHERE customer_id = ?", (merged,))],
                "attributes": self._rows("SELECT * FROM customer_attributes WHERE customer_id IN (?, ?)", pair),
                "claims": self._rows("SELECT * FROM customer_claims WHERE customer_id = ?", (merged,)),
                "suggestions": self._rows(
                    "SELECT * FROM merge_suggestions WHERE customer_a IN (?, ?) OR customer_b IN (?, ?)", pair * 2),
                "sightings": self._rows("SELECT * FROM name_sightings WHERE customer_id IN (?, ?)", pair),
            }
            ids = snapshot["conversations"]
            self.conn.execute("UPDATE identities SET customer_id = ? WHERE customer_id = ?", pair)
            self.conn.execute("UPDATE conversations SET customer_id = ? WHERE customer_id = ?", pair)
            self.conn.execute("UPDATE messages SET customer_id = ? WHERE customer_id = ?", pair)
            self.conn.execute("UPDATE customer_notes SET customer_id = ? WHERE customer_id = ?", pair)
            # Attributes: the survivor's value wins a clash; the merged side's stays in the snapshot.
            self.conn.execute(
                "INSERT OR IGNORE INTO customer_attributes (customer_id, key, value, updated_at) "
                "SELECT ?, key, value, updated_at FROM customer_attributes WHERE customer_id = ?", pair)
            self.conn.execute("DELETE FROM customer_attributes WHERE customer_id = ?", (merged,))
            # Each claim moves unless the survivor already has the same one (the rest go below).
            self.conn.execute(
                "UPDATE customer_claims SET customer_id = ? WHERE customer_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM customer_claims o WHERE o.customer_id = ? AND o.kind = customer_claims.kind "
                "AND o.value = customer_claims.value)", (*pair, pair[0]))
            self.conn.execute("DELETE FROM customer_claims WHERE customer_id = ?", (merged,))
            self.conn.execute(
                "INSERT OR IGNORE INTO name_sightings (day, block, customer_id, channel, name_key) "
                "SELECT day, block, ?, channel, name_key FROM name_sightings WHERE customer_id = ?", pair)
            self.conn.execute("DELETE FROM name_sightings WHERE customer_id = ?", (merged,))
            self._repoint_suggestions(survivor, merged, now)
            fill = {k: m[k] for k in ("display_name", "locale", "owner_agent_id", "crm_ref") if not s[k] and m[k]}
            sets = ", ".join(f"{k} = ?" for k in fill)
            self.conn.execute(
                f"UPDATE customers SET {sets + ', ' if sets else ''}"  # noqa: S608
                f"{'name_key = ?, ' if 'display_name' in fill else ''}updated_at = ? WHERE id = ?",
                (*fill.values(), *([make_name_key(fill['display_name'])] if 'display_name' in fill else []),
                 now, survivor))
            self.conn.execute(
                f"UPDATE customers SET merged_into = ?, {'crm_ref = NULL, ' if 'crm_ref' in fill else ''}"  # noqa: S608
                "updated_at = ? WHERE id = ?", (survivor, now, merged))
            cur = self.conn.execute(
                "INSERT INTO customer_merges (survivor_id, merged_id, suggestion_id, agent_id, snapshot, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (survivor, merged, suggestion_id, agent_id, json.dumps(snapshot), now))
            merge_id = cur.lastrowid
            self.audit(now, f"agent:{agent_id}" if agent_id else "system", "customer_merged", "customer", survivor,
                       merged=merged, merge_id=merge_id, conversations=len(ids))
            return merge_id

    def _repoint_suggestions(self, survivor: int, merged: int, now: str) -> None:
        rows = self._rows("SELECT * FROM merge_suggestions WHERE customer_a = ? OR customer_b = ?", (merged, merged))
        for row in rows:
            other = row["customer_b"] if row["customer_a"] == merged else row["customer_a"]
            if other == survivor:
                status = "confirmed" if row["status"] == "open" else row["status"]
                self.conn.execute("UPDATE merge_suggestions SET status = ?, updated_at = ? WHERE id = ?",
                                  (status, now, row["id"]))
                continue
            existing = self.suggestion_for_pair(survivor, other)
            if existing is None:
                a, b = min(survivor, other), max(survivor, other)
                self.conn.execute("UPDATE merge_suggestions SET customer_a = ?, customer_b = ? WHERE id = ?",
                                  (a, b, row["id"]))
                continue
            # One row per pair: a rejection on either side is remembered; open evidence adds up.
            if "rejected" in (existing["status"], row["status"]):
                self.conn.execute("UPDATE merge_suggestions SET status = 'rejected', updated_at = ? WHERE id = ?",
                                  (now, existing["id"]))
            elif existing["status"] == "open" and row["status"] == "open":
                from inbox.identity import combine

                reasons = json.loads(existing["reasons"]) + json.loads(row["reasons"])
                self.conn.execute("UPDATE merge_suggestions SET score = ?, reasons = ?, updated_at = ? WHERE id = ?",
                                  (round(combine(reasons), 4), json.dumps(reasons), now, existing["id"]))
            self.conn.execute("DELETE FROM merge_suggestions WHERE id = ?", (row["id"],))

    def customer_merge(self, merge_id: int) -> dict[str, Any]:
        cur = self.conn.execute("SELECT * FROM customer_merges WHERE id = ?", (merge_id,))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no merge {merge_id}")
        return row

    def merges_into(self, customer_id: int) -> list[dict[str, Any]]:
        """Merges onto this customer, newest first, with the merged record's old name."""
        rows = self._rows(
            "SELECT id, survivor_id, merged_id, agent_id, created_at, undone_at, snapshot FROM customer_merges "
            "WHERE survivor_id = ? ORDER BY id DESC", (customer_id,))
        for row in rows:
            snapshot = json.loads(row.pop("snapshot"))
            row["merged_name"] = snapshot["customers"][1]["display_name"]
            row["undoable"] = row["undone_at"] is None and self._later_merge(row) is None
        return rows

    def _later_merge(self, merge: dict[str, Any]) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM customer_merges WHERE id > ? AND undone_at IS NULL AND "
            "(survivor_id IN (?, ?) OR merged_id IN (?, ?)) LIMIT 1",
            (merge["id"], merge["survivor_id"], merge["merged_id"], merge["survivor_id"], merge["merged_id"]),
        ).fetchone()
        return row[0] if row else None

    def unmerge_customers(self, merge_id: int, *, agent_id: int | None, now: str) -> None:
        """Undo a merge: every row the merge touched gets back the values it had before."""
        with self.write():
            merge = self.customer_merge(merge_id)
            if merge["undone_at"] is not None:
                raise UnmergeRefused("this merge was already undone")
            if self._later_merge(merge) is not None:
                raise UnmergeRefused("a later merge involves these customers; undo that one first")
            snap = json.loads(merge["snapshot"])
            survivor, merged = merge["survivor_id"], merge["merged_id"]
            for row in snap["customers"]:
                if self.conn.execute("SELECT 1 FROM customers WHERE id = ?", (row["id"],)).fetchone() is None:
                    raise UnmergeRefused("one of the customers no longer exists")
            for row in snap["customers"]:
                self._restore_row("customers", row)
            for row in snap["identities"]:
                self._restore_row("identities", row)
            for table, ids in (("conversations", snap["conversations"]), ("messages", snap["messages"]),
                               ("customer_notes", snap["notes"])):
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    self.conn.execute(f"UPDATE {table} SET customer_id = ? WHERE id IN ({_marks(chunk)})",  # noqa: S608
                                      (merged, *chunk))
            self.conn.execute("DELETE FROM customer_attributes WHERE customer_id IN (?, ?)", (survivor, merged))
            for row in snap["attributes"]:
                self._insert_row("customer_attributes", row)
            for row in snap["claims"]:
                self.conn.execute("DELETE FROM customer_claims WHERE id = ?", (row["id"],))
                self._insert_row("customer_claims", row, replace=True)
            before_s = {(r["day"], r["block"], r["channel"]) for r in snap["sightings"] if r["customer_id"] == survivor}
            for row in snap["sightings"]:
                if row["customer_id"] == merged:
                    if (row["day"], row["block"], row["channel"]) not in before_s:
                        self.conn.execute("DELETE FROM name_sightings WHERE day = ? AND block = ? AND customer_id = ? "
                                          "AND channel = ?", (row["day"], row["block"], survivor, row["channel"]))
                    self._insert_row("name_sightings", row, replace=True)
            snap_ids = [r["id"] for r in snap["suggestions"]]
            if snap_ids:
                self.conn.execute(f"DELETE FROM merge_suggestions WHERE id IN ({_marks(snap_ids)})",  # noqa: S608
                                  snap_ids)
            for row in snap["suggestions"]:
                self._insert_row("merge_suggestions", row, replace=True)
            self.conn.execute("UPDATE customer_merges SET undone_at = ?, undone_by = ? WHERE id = ?",
                              (now, agent_id, merge_id))
            self.audit(now, f"agent:{agent_id}" if agent_id else "system", "customer_unmerged", "customer", survivor,
                       merged=merged, merge_id=merge_id)

    def _restore_row(self, table: str, row: dict[str, Any]) -> None:
        columns = [c for c in row if c != "id"]
        self.conn.execute(
            f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",  # noqa: S608
            (*[row[c] for c in columns], row["id"]))

    def _insert_row(self, table: str, row: dict[str, Any], *, replace: bool = False) -> None:
        """Insert `row`; `replace`: first delete any row it would collide with on a key (SQLite's
        INSERT OR REPLACE, written so that both engines do it: the keys from the schema's description)."""
        columns = list(row)
        if replace:
            from sqlalchemy import UniqueConstraint

            from inbox.store.schema import metadata

            described = metadata.tables[table]
            keys = [[c.name for c in described.primary_key.columns]]
            keys += [[c.name for c in constraint.columns] for constraint in described.constraints
                     if isinstance(constraint, UniqueConstraint)]
            keys += [[c.name for c in index.columns] for index in described.indexes
                     if index.unique and not index.dialect_options["sqlite"].get("where")]
            for key in keys:
                if key and all(row.get(c) is not None for c in key):
                    self.conn.execute(f"DELETE FROM {table} WHERE {' AND '.join(f'{c} = ?' for c in key)}",  # noqa: S608
                                      [row[c] for c in key])
        self.conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(columns)})",  # noqa: S608
            [row[c] for c in columns])

    # Pages -----------------------------------------------------------------------------------------

    def customer_visible(self, customer_id: int, team_ids: Iterable[int] | None) -> bool:
        clause, params = visible_clause(team_ids)
        return self.conn.execute(
            f"SELECT 1 FROM customers cu WHERE cu.id = ? AND {clause}", (customer_id, *params)  # noqa: S608
        ).fetchone() is not None

    def search_customers(self, *, values: Iterable[str] = (), name: str = "", text: str = "",
                         team_ids: Iterable[int] | None, limit: int = 50) -> list[dict[str, Any]]:
        """Live customers with an identity or claim equal to one of `values`, an identity starting with
        `text`, a name containing `name`, or the CRM reference `text`; newest activity first."""
        clause, params = visible_clause(team_ids)
        values = sorted({v for v in values if v})
        conditions, args = [], []
        if values:
            conditions.append(f"cu.id IN (SELECT customer_id FROM identities WHERE value IN ({_marks(values)}))")  # noqa: S608
            conditions.append(f"cu.id IN (SELECT customer_id FROM customer_claims WHERE value IN ({_marks(values)}))")  # noqa: S608
            args += values * 2
        if text:
            like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append("cu.id IN (SELECT customer_id FROM identities WHERE value LIKE ? ESCAPE '\\')")
            conditions.append("cu.crm_ref = ?")
            args += [like, text]
        if name:
            like = "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append("cu.name_key LIKE ? ESCAPE '\\'")
            args.append(like)
        where = f"({' OR '.join(conditions)})" if conditions else "1 = 1"
        return as_dicts(self.conn.execute(
            "SELECT cu.id, cu.display_name, cu.crm_ref, cu.locale, cu.owner_agent_id, cu.created_at, "  # noqa: S608
            "(SELECT max(c.last_message_at) FROM conversations c WHERE c.customer_id = cu.id) AS last_activity, "
            "(SELECT group_concat(i.kind || ':' || i.value, ' ') FROM identities i WHERE i.customer_id = cu.id) "
            "AS identity_list "
            f"FROM customers cu WHERE cu.merged_into IS NULL AND {where} AND {clause} "
            "ORDER BY last_activity DESC NULLS LAST, cu.id DESC LIMIT ?",
            (*args, *params, limit)))

    def customer_conversations(self, customer_id: int, team_ids: Iterable[int] | None) -> list[dict[str, Any]]:
        ids = [] if team_ids is None else sorted({int(t) for t in team_ids})
        team = "1 = 1" if team_ids is None else (
            "c.team_id IS NULL" if not ids else f"(c.team_id IS NULL OR c.team_id IN ({_marks(ids)}))")
        return as_dicts(self.conn.execute(
            "SELECT c.id, c.channel, c.subject, c.status, c.created_at, c.last_message_at, c.team_id, "  # noqa: S608
            "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count "
            f"FROM conversations c WHERE c.customer_id = ? AND {team} ORDER BY c.last_message_at DESC",
            (customer_id, *ids)))

    def customer_timeline(self, conversation_ids: list[int], limit: int = 200) -> list[dict[str, Any]]:
        """The latest messages of these conversations, newest first."""
        if not conversation_ids:
            return []
        return as_dicts(self.conn.execute(
            "SELECT m.id, m.conversation_id, m.channel, m.direction, m.author_name, m.author_handle, "  # noqa: S608
            "m.subject, substr(m.text, 1, 600) AS text, m.sent_at, m.received_at, "
            "(SELECT count(*) FROM attachments a WHERE a.message_id = m.id) AS attachment_count "
            f"FROM messages m WHERE m.conversation_id IN ({_marks(conversation_ids)}) "
            "ORDER BY coalesce(m.sent_at, m.received_at) DESC, m.id DESC LIMIT ?",
            (*conversation_ids, limit)))

    def agent_choices(self) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute("SELECT id, name, email FROM agents WHERE active = 1 ORDER BY name, email"))

    # Export ----------------------------------------------------------------------------------------

    def customer_export(self, customer_id: int) -> dict[str, Any]:
        """Everything held about one customer, as plain data (attachment files referenced by hash)."""
        customer = self.customer_record(customer_id)
        merged_ids = [r[0] for r in self.conn.execute(
            "WITH RECURSIVE past(id) AS (SELECT id FROM customers WHERE merged_into = ? "
            "UNION SELECT c.id FROM customers c JOIN past p ON c.merged_into = p.id) SELECT id FROM past",
            (customer_id,))]
        owners = [customer_id, *merged_ids]
        conversations = self._rows(
            f"SELECT * FROM conversations WHERE customer_id IN ({_marks(owners)}) ORDER BY id", owners)  # noqa: S608
        conv_ids = [c["id"] for c in conversations]
        messages = self._rows(
            "SELECT * FROM messages WHERE conversation_id IN (SELECT id FROM conversations "  # noqa: S608
            f"WHERE customer_id IN ({_marks(owners)})) OR customer_id IN ({_marks(owners)}) ORDER BY id",
            owners * 2)
        msg_ids = [m["id"] for m in messages]
        attachments = self._rows(
            f"SELECT * FROM attachments WHERE message_id IN ({_marks(msg_ids)}) ORDER BY id", msg_ids) if msg_ids else []  # noqa: S608
        raw = ({r[0]: r[1] for r in self.conn.execute(
            f"SELECT message_id, data FROM raw_messages WHERE message_id IN ({_marks(msg_ids)})", msg_ids)}  # noqa: S608
            if msg_ids else {})
        return {
            "customer": customer,
            "merged_records": [self.customer_record(i) for i in merged_ids],
            "identities": self._rows(f"SELECT * FROM identities WHERE customer_id IN ({_marks(owners)})", owners),  # noqa: S608
            "claims": self._rows(f"SELECT * FROM customer_claims WHERE customer_id IN ({_marks(owners)})", owners),  # noqa: S608
            "attributes": self.customer_attributes(customer_id),
            "notes": self._rows(f"SELECT * FROM customer_notes WHERE customer_id IN ({_marks(owners)})", owners),  # noqa: S608
            "conversations": conversations,
            "conversation_ids": conv_ids,
            "messages": messages,
            "attachments": attachments,
            "raw": raw,
        }

    # Erasure ---------------------------------------------------------------------------------------

    def _references_to(self, table: str) -> list[tuple[str, str, str, bool]]:
        """(child table, child column, parent column, child column NOT NULL) for every FK onto `table`.

        Read from the schema's description (inbox/store/schema.py), which tests/test_schema.py holds
        to what SQLite's migrations build, so both engines erase along the same references."""
        from inbox.store.schema import metadata

        return [(child.name, key.parent.name, key.column.name, not key.parent.nullable)
                for child in metadata.sorted_tables for key in child.foreign_keys
                if key.column.table.name == table]

    def _delete_tree(self, table: str, column: str, values: list, depth: int = 0) -> int:
        """Delete rows of `table` whose `column` is in `values`, and everything that depends on them."""
        if not values or depth > 8:
            return 0
        for child, child_col, parent_col, not_null in self._references_to(table):
            parent_values = values if parent_col == column else [r[0] for r in self._select_in(
                f"SELECT {parent_col} FROM {table} WHERE {column} IN ({{marks}})", values)]  # noqa: S608
            if not parent_values:
                continue
            if child in _KEEP_ON_ERASE and not not_null:
                self._exec_in(f"UPDATE {child} SET {child_col} = NULL WHERE {child_col} IN ({{marks}})",  # noqa: S608
                              parent_values)
                continue
            if child == table and child_col == column:
                continue
            self._delete_tree(child, child_col, parent_values, depth + 1)
        return self._exec_in(f"DELETE FROM {table} WHERE {column} IN ({{marks}})", values)  # noqa: S608

    def _select_in(self, sql: str, values: list) -> list[tuple]:
        out: list[tuple] = []
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            out += self.conn.execute(sql.format(marks=_marks(chunk)), chunk).fetchall()
        return out

    def _exec_in(self, sql: str, values: list) -> int:
        count = 0
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            count += self.conn.execute(sql.format(marks=_marks(chunk)), chunk).rowcount
        return count

    def erase_customer(self, customer_id: int, *, actor: str, now: str) -> dict[str, Any]:
        """Delete a customer and everything held about them; returns ids and the attachment hashes
        that lost a reference (the caller deletes files nobody references any more)."""
        with self.write():
            self.customer_record(customer_id)
            owners = [customer_id] + [r[0] for r in self.conn.execute(
                "WITH RECURSIVE past(id) AS (SELECT id FROM customers WHERE merged_into = ? "
                "UNION SELECT c.id FROM customers c JOIN past p ON c.merged_into = p.id) SELECT id FROM past",
                (customer_id,))]
            conv_ids = [r[0] for r in self._select_in("SELECT id FROM conversations WHERE customer_id IN ({marks})",
                                                      owners)]
            msg_ids = sorted({r[0] for r in self._select_in(
                "SELECT id FROM messages WHERE customer_id IN ({marks})", owners)} | {r[0] for r in self._select_in(
                    "SELECT id FROM messages WHERE conversation_id IN ({marks})", conv_ids)})
            hashes = sorted({r[0] for r in self._select_in(
                "SELECT sha256 FROM attachments WHERE sha256 IS NOT NULL AND message_id IN ({marks})", msg_ids)})
            identities = self._select_in("SELECT kind, value FROM identities WHERE customer_id IN ({marks})", owners)
            # Held quarantine items (not linked to a message) that carry one of their email addresses:
            # raw mail the pipeline could not read is still theirs. Other kinds are too short or too
            # differently written in raw payloads to find safely.
            for kind, value in identities:
                if kind == "email" and "@" in value:
                    self.conn.execute("DELETE FROM quarantine WHERE message_id IS NULL AND "
                                      "instr(lower(CAST(raw AS TEXT)), ?) > 0", (value.lower(),))
            for kind, value in identities:
                # Other records that merely claim this address or number (typed into a chat) lose the claim.
                self.conn.execute("DELETE FROM customer_claims WHERE kind = ? AND value = ?", (kind, value))
                self.conn.execute(
                    "INSERT INTO erased_identities (kind, value_hash, erased_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (kind, value_hash) DO UPDATE SET erased_at = excluded.erased_at",
                    (kind, identity_hash(kind, value), now))
            for (key,) in self._select_in("SELECT name_key FROM customers WHERE id IN ({marks})", owners):
                self._count_name(key, -1)
            self._delete_tree("messages", "id", msg_ids)
            self._delete_tree("conversations", "id", conv_ids)
            self._delete_tree("customers", "id", owners)
            # Audit lines about these objects keep their ids, not what they said.
            for object_type, ids in (("customer", owners), ("conversation", conv_ids), ("message", msg_ids)):
                self._exec_in(f"UPDATE audit_log SET details = '{{{{}}}}' WHERE object_type = '{object_type}' "  # noqa: S608
                              "AND object_id IN ({marks})", [str(i) for i in ids])
            self.audit(now, actor, "customer_erased", "customer", customer_id, customers=owners,
                       conversations=conv_ids, messages=len(msg_ids), attachments=len(hashes))
            self._compact_search_indexes()
            return {"customers": owners, "conversations": conv_ids, "messages": msg_ids, "hashes": hashes}

    def _compact_search_indexes(self) -> None:
        # A deleted FTS5 row leaves its words in older index segments until they are merged:
        # 'optimize' rewrites each index as one segment without them. PostgreSQL's documents are
        # rows: deleted with the message, their space reused once vacuumed.
        if self.engine != "sqlite":
            return
        for (name,) in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%fts5%'"
        ).fetchall():
            self.conn.execute(f"INSERT INTO \"{name}\"(\"{name}\") VALUES ('optimize')")  # noqa: S608

    def attachment_hashes_in_use(self, hashes: Iterable[str]) -> set[str]:
        """Those of `hashes` that some attachment row still references."""
        values = sorted(set(hashes))
        return {r[0] for r in self._select_in("SELECT DISTINCT sha256 FROM attachments WHERE sha256 IN ({marks})",
                                              values)}

    def vacuum_wal(self) -> None:
        """Write everything into the main file and empty the write-ahead log (after an erasure).
        PostgreSQL recycles its own log."""
        if self.engine == "sqlite":
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
