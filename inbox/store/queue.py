"""Store verbs for the queue: filtered, keyset-paged conversation lists, counts, labels, saved
views, "seen" marks, bulk changes and full-text search.

Everything a request can choose arrives here as a validated `QueueQuery` (values from allow-lists,
ids as ints); the SQL text is built only from constants in this module, and every value is a
parameter (SEC-12).

Why the list is built the way it is: SQLite reads `WHERE status = ? ORDER BY last_message_at`
straight off an index and stops after a page, but `status IN (...)`, or a team restriction with
`OR team_id IS NULL`, makes it collect every match and sort them. So a page is the UNION ALL of one
branch per (status, team) pair, each ordered by an index and limited to a page, merged and cut
once more; only then are the page's rows joined with customers, labels and seen marks. Counts are
bounded (`LIMIT cap + 1` under the count) so a large queue costs no more than a capped one.

Search never orders the whole match set by rank: at a million messages FTS5 `ORDER BY rank` takes
about 320 ms (shared/design.md). Matches are read newest first (rowid order, which FTS5 gives for
free) and at most `SEARCH_CANDIDATES` of them are kept; relevance ordering, when asked for, ranks
only those. User text is never FTS syntax: every term becomes a quoted string (IN-63).
"""

from __future__ import annotations

import json
import secrets
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inbox.store import pg_search
from inbox.store.base import StoreError, as_dicts, now_iso

#: Every status a conversation can have (the CHECK constraint of m001).
STATUSES = ("new", "open", "pending", "snoozed", "resolved", "spam")
#: Status filters offered in the queue, each a set of statuses. "active" is the default view.
STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "active": ("new", "open"),
    **{s: (s,) for s in STATUSES},
    "all": ("new", "open", "pending", "snoozed", "resolved"),
}
#: Statuses an agent can set in bulk (snoozing needs a wake-up time: the conversation page does it).
BULK_STATUSES = ("open", "pending", "resolved", "spam")
#: Priorities: 0 none, 1 low, 2 medium, 3 high, 4 urgent (as inbox/lifecycle.py).
PRIORITIES = (0, 1, 2, 3, 4)
#: Sort orders: name -> (SQL sort expression, direction). Both expressions have an index.
SORTS: dict[str, tuple[str, str]] = {
    "activity": ("c.last_message_at", "DESC"),
    "waiting": ("ifnull(c.waiting_since, '~')", "ASC"),
    # Most urgent first: past adequate, then the soonest to pass it (inbox/service_levels.py).
    "urgency": ("ifnull(c.sla_due_adequate, '~')", "ASC"),
}
#: Assignee filters besides an agent id.
ASSIGNEE_MINE, ASSIGNEE_NONE, ASSIGNEE_ANY = "mine", "unassigned", "anyone"
#: Team filter for conversations of no team (the unrouted pool).
NO_TEAM = "none"

PAGE_SIZE = 50
COUNT_CAP = 1000
MAX_LABEL_NAME = 40
MAX_VIEW_NAME = 60
MAX_VIEWS_PER_AGENT = 30

SEARCH_CANDIDATES = 1000
SEARCH_GROUPS = 50
SNIPPETS_PER_CONVERSATION = 3
#: User search text: the longest accepted (IN-63) and the most terms used.
MAX_SEARCH_CHARS = 500
MAX_SEARCH_TERMS = 12
#: Shortest prefix search (`ap*`): the search indexes keep prefixes of 2 and 3 characters (m033); a
#: one-letter prefix would match a large share of all words and read most of the index.
MIN_PREFIX_CHARS = 2

#: Label colours, picked by name so a label keeps its colour.
LABEL_COLORS = ("#1d5f8a", "#2f855a", "#b7791f", "#9b2c2c", "#6b46c1", "#2c7a7b", "#975a16", "#4a5568")


class SearchQueryError(StoreError):
    """The search text cannot be used (too long); the page says so instead of searching."""


class PrefixTooShortError(SearchQueryError):
    """A prefix search (`a*`) shorter than MIN_PREFIX_CHARS letters or digits."""


@dataclass(frozen=True)
class QueueQuery:
    """One queue view: validated filters and a sort. `None` means "no filter"."""

    status: str = "active"
    channel: str | None = None
    team: int | str | None = None  # a team id or NO_TEAM
    assignee: int | str | None = None  # an agent id, ASSIGNEE_MINE or ASSIGNEE_NONE
    label: int | None = None
    priority: int | None = None
    sort: str = "activity"

    def __post_init__(self) -> None:
        # The last line of defence: the web validates first, but SQL text depends on these.
        if self.status not in STATUS_GROUPS:
            raise ValueError(f"unknown status filter {self.status!r}")
        if self.sort not in SORTS:
            raise ValueError(f"unknown sort {self.sort!r}")
        if self.team is not None and self.team != NO_TEAM and not isinstance(self.team, int):
            raise ValueError("team must be an id or 'none'")
        if self.assignee is not None and self.assignee not in (ASSIGNEE_MINE, ASSIGNEE_NONE) \
                and not isinstance(self.assignee, int):
            raise ValueError("assignee must be an id, 'mine' or 'unassigned'")
        if self.priority is not None and self.priority not in PRIORITIES:
            raise ValueError("unknown priority")

    def as_params(self) -> dict[str, str]:
        """The query string that shows this view (defaults left out)."""
        params: dict[str, str] = {}
        if self.status != "active":
            params["status"] = self.status
        for name in ("channel", "team", "assignee", "label", "priority"):
            value = getattr(self, name)
            if value is not None:
                params[name] = str(value)
        if self.sort != "activity":
            params["sort"] = self.sort
        return params


@dataclass
class SearchGroup:
    """The matches of one conversation: the conversation row, its snippets, how many matched."""

    conversation: dict[str, Any]
    hits: int = 0
    matched_conversation: bool = False
    snippets: list[dict[str, Any]] = field(default_factory=list)
    conversation_snippet: str | None = None


@dataclass
class SearchResult:
    groups: list[SearchGroup]
    #: Conversations with a match among the candidates (all of them, not only the groups shown).
    conversations: int
    #: True when the candidate bound was reached: older matches exist that were not looked at.
    truncated: bool
    #: The snippet highlight markers, random per search so message text cannot forge them.
    mark_open: str
    mark_close: str


# Search text --------------------------------------------------------------------------------

def _has_token(term: str) -> bool:
    # unicode61 makes tokens of letters, numbers and private-use characters; a term without any
    # would become an empty phrase.
    return any(unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Co" for ch in term)


def _token_chars(term: str) -> int:
    return sum(1 for ch in term if _has_token(ch))


def fts_query(text: str) -> str | None:
    """An FTS5 query for what a person typed: every term a quoted string, all required.

    `abc*` keeps its meaning (prefix search); nothing else is syntax: quotes, NEAR(, column
    filters, ^ and operators are searched for as words. None when there is nothing to search for.
    Raises SearchQueryError for text longer than MAX_SEARCH_CHARS, PrefixTooShortError for a
    prefix of fewer than MIN_PREFIX_CHARS letters or digits.
    """
    if len(text) > MAX_SEARCH_CHARS:
        raise SearchQueryError(f"search text longer than {MAX_SEARCH_CHARS} characters")
    parts = []
    for raw in text.split():
        prefix = raw.endswith("*")
        term = raw.rstrip("*")
        if not _has_token(term):
            continue
        if prefix and _token_chars(term) < MIN_PREFIX_CHARS:
            raise PrefixTooShortError(f"prefix {term!r} shorter than {MIN_PREFIX_CHARS} characters")
        quoted = '"' + term.replace('"', '""') + '"'
        parts.append(quoted + ("*" if prefix else ""))
        if len(parts) == MAX_SEARCH_TERMS:
            break
    return " ".join(parts) or None


def _team_filter(team_ids: Iterable[int] | None, column: str = "c.team_id") -> tuple[str, list[int]]:
    # Same rule as inbox.store.teams.team_clause: the unrouted pool plus the agent's teams.
    if team_ids is None:
        return "1 = 1", []
    ids = sorted({int(t) for t in team_ids})
    if not ids:
        return f"{column} IS NULL", []
    return f"({column} IS NULL OR {column} IN ({','.join('?' * len(ids))}))", ids


# Queries --------------------------------------------------------------------------------------

_DETAIL_COLUMNS = (
    "c.id, c.channel, c.subject, c.status, c.priority, c.flags, c.assignee_id, c.team_id, "
    "c.last_message_at, c.waiting_since, c.created_at, c.customer_id, cu.display_name AS customer_name, "
    "c.sla_due_desired, c.sla_due_adequate, "
    "a.name AS assignee_name, a.email AS assignee_email, t.name AS team_name, "
    "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count, "
    "(SELECT m.author_handle FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in' "
    "ORDER BY m.id LIMIT 1) AS customer_handle, "
    "(SELECT substr(m.text, 1, 300) FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id LIMIT 1) "
    "AS first_text, "
    "(SELECT max(m.id) FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in') AS last_inbound_id, "
    "substr(lm.text, 1, 240) AS last_text, lm.direction AS last_direction, c.public AS is_public"
)
#: The latest message of each listed conversation, for the row's one-line preview.
_LATEST_MESSAGE_JOIN = (
    "LEFT JOIN messages lm ON lm.id = (SELECT max(m.id) FROM messages m WHERE m.conversation_id = c.id "
    "AND m.direction != 'note') "
)


class QueueQueries:
    conn: Any
    write: Any
    engine: str

    # The list ----------------------------------------------------------------------------------

    def _filters(self, query: QueueQuery, agent_id: int | None) -> tuple[list[str], list[Any]]:
        """WHERE terms (constants) and their parameters for everything but status and team access."""
        terms: list[str] = []
        params: list[Any] = []
        if query.channel is not None:
            terms.append("+c.channel = ?")
            params.append(query.channel)
        if query.assignee == ASSIGNEE_MINE:
            terms.append("c.assignee_id = ?")
            params.append(agent_id if agent_id is not None else -1)
        elif query.assignee == ASSIGNEE_NONE:
            terms.append("+c.assignee_id IS NULL")
        elif isinstance(query.assignee, int):
            terms.append("c.assignee_id = ?")
            params.append(query.assignee)
        if query.label is not None:
            terms.append("c.id IN (SELECT conversation_id FROM conversation_labels WHERE label_id = ?)")
            params.append(query.label)
        if query.priority is not None:
            terms.append("+c.priority = ?")
            params.append(query.priority)
        return terms, params

    def _team_values(self, query: QueueQuery, team_ids: set[int] | None) -> list[int | None] | None:
        """The team ids (None = unrouted) the list may hold, or None for "any team"."""
        if query.team == NO_TEAM:
            return [None]
        if isinstance(query.team, int):
            if team_ids is not None and query.team not in team_ids:
                return []  # a team the agent does not see: nothing, and nothing said about it
            return [query.team]
        if team_ids is None:
            return None
        return [None, *sorted(team_ids)]

    @staticmethod
    def _team_alternatives(teams: list[int | None] | None) -> tuple[str, list[int]]:
        """One WHERE term for "team is one of `teams`" (None in it = unrouted); "" for any team."""
        if teams is None:
            return "", []
        ids = [t for t in teams if t is not None]
        alternatives = (["+c.team_id IS NULL"] if None in teams else []) + \
            ([f"+c.team_id IN ({','.join('?' * len(ids))})"] if ids else [])
        return "(" + " OR ".join(alternatives) + ")", ids

    def queue_page(self, query: QueueQuery, *, team_ids: set[int] | None, agent_id: int | None,
                   after: tuple[str, int] | None = None, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
        """One page of the queue: up to `limit` conversations after the keyset position `after`
        (the sort value and id of the last row of the previous page), with everything a row shows.

        Each row carries `sort_value`; `(row["sort_value"], row["id"])` is the next page's `after`.
        """
        sort_sql, direction = SORTS[query.sort]
        compare = "<" if direction == "DESC" else ">"
        terms, params = self._filters(query, agent_id)
        if after is not None:
            terms.append(f"({sort_sql}, c.id) {compare} (?, ?)")
            params.extend([after[0], after[1]])
        statuses = STATUS_GROUPS[query.status]
        teams = self._team_values(query, team_ids)
        if teams is not None and not teams:
            return []

        # One branch per status, each read in index order and cut at a page, then merged: with
        # `status IN (...)` SQLite would collect every match and sort. Team, channel, priority and
        # "unassigned" are checked while reading (`+column` keeps SQLite from driving the query
        # by a less selective index instead); queue_waiting holds those columns, so that costs no
        # table reads. A label list is driven from conversation_labels and sorted once.
        split = query.label is None
        status_options: list[Any] = list(statuses) if split else [tuple(statuses)]
        team_sql, team_params = self._team_alternatives(teams)
        branches: list[tuple[str, list[Any]]] = []
        for status in status_options:
            if isinstance(status, tuple):
                where = [f"c.status IN ({','.join('?' * len(status))})"]
                branch_params: list[Any] = list(status)
            else:
                where = ["c.status = ?"]
                branch_params = [status]
            if team_sql:
                where.append(team_sql)
                branch_params.extend(team_params)
            branches.append((" AND ".join([*where, *terms]), [*branch_params, *params]))

        arms = []
        all_params: list[Any] = []
        for where, branch_params in branches:
            arms.append(
                f"SELECT * FROM (SELECT c.id AS id, {sort_sql} AS sort_value FROM conversations c "  # noqa: S608
                f"WHERE {where} ORDER BY {sort_sql} {direction}, c.id {direction} LIMIT ?) AS arm"
            )
            all_params.extend([*branch_params, limit])
        sql = (" UNION ALL ".join(arms) + f" ORDER BY sort_value {direction}, id {direction} LIMIT ?")
        keys = self.conn.execute(sql, [*all_params, limit]).fetchall()
        if not keys:
            return []
        rows = self.conversation_rows([k[0] for k in keys], agent_id=agent_id)
        by_id = {r["id"]: r for r in rows}
        page = []
        for conversation_id, sort_value in keys:
            row = by_id.get(conversation_id)
            if row is not None:
                row["sort_value"] = sort_value
                page.append(row)
        return page

    def conversation_rows(self, ids: Sequence[int], *, agent_id: int | None) -> list[dict[str, Any]]:
        """The queue's view of these conversations (any order), with labels and the unread mark."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = as_dicts(self.conn.execute(
            f"SELECT {_DETAIL_COLUMNS} FROM conversations c JOIN customers cu ON cu.id = c.customer_id "  # noqa: S608
            f"LEFT JOIN agents a ON a.id = c.assignee_id LEFT JOIN teams t ON t.id = c.team_id "
            f"{_LATEST_MESSAGE_JOIN}WHERE c.id IN ({marks})",
            list(ids),
        ))
        labels = self.labels_of(ids)
        seen: dict[int, int] = {}
        if agent_id is not None:
            seen = dict(self.conn.execute(
                f"SELECT conversation_id, message_id FROM conversation_seen WHERE agent_id = ? "  # noqa: S608
                f"AND conversation_id IN ({marks})",
                [agent_id, *ids],
            ).fetchall())
        for row in rows:
            row["labels"] = labels.get(row["id"], [])
            last_in = row.pop("last_inbound_id")
            row["unread"] = last_in is not None and last_in > seen.get(row["id"], 0)
        return rows

    def count_conversations(self, query: QueueQuery, *, team_ids: set[int] | None, agent_id: int | None,
                            cap: int = COUNT_CAP) -> int:
        """How many conversations `query` lists, counting at most `cap + 1` (so "more than cap")."""
        statuses = STATUS_GROUPS[query.status]
        terms, params = self._filters(query, agent_id)
        where = [f"c.status IN ({','.join('?' * len(statuses))})", *terms]
        all_params: list[Any] = [*statuses, *params]
        teams = self._team_values(query, team_ids)
        if teams is not None and not teams:
            return 0
        team_sql, team_params = self._team_alternatives(teams)
        if team_sql:
            where.append(team_sql)
            all_params.extend(team_params)
        sql = (f"SELECT count(*) FROM (SELECT 1 FROM conversations c WHERE {' AND '.join(where)} "  # noqa: S608
               "LIMIT ?) AS capped")
        return self.conn.execute(sql, [*all_params, cap + 1]).fetchone()[0]

    def conversation_channels(self) -> list[str]:
        """The channel names conversations have, read by skipping along the channel index."""
        return [r[0] for r in self.conn.execute(
            "WITH RECURSIVE ch(name) AS (SELECT min(channel) FROM conversations UNION ALL "
            "SELECT (SELECT min(channel) FROM conversations WHERE channel > ch.name) FROM ch "
            "WHERE ch.name IS NOT NULL) SELECT name FROM ch WHERE name IS NOT NULL"
        )]

    def queue_team_names(self) -> dict[int, str]:
        """Team id -> name, for filters and bulk assignment."""
        return dict(self.conn.execute("SELECT id, name FROM teams ORDER BY lower(name), id").fetchall())

    # Seen marks --------------------------------------------------------------------------------

    def mark_seen(self, agent_id: int, conversation_id: int, message_id: int) -> None:
        """Remember that the agent has seen the conversation up to `message_id` (never moves back)."""
        with self.write():
            self.conn.execute(
                "INSERT INTO conversation_seen (agent_id, conversation_id, message_id) VALUES (?, ?, ?) "
                "ON CONFLICT (agent_id, conversation_id) DO UPDATE SET "
                "message_id = max(conversation_seen.message_id, excluded.message_id)",
                (agent_id, conversation_id, message_id),
            )

    # Labels ------------------------------------------------------------------------------------

    def labels(self) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute("SELECT id, name, color FROM labels ORDER BY lower(name), id"))

    def label_id_by_name(self, name: str) -> int | None:
        row = self.conn.execute("SELECT id FROM labels WHERE name = ?", (name.strip(),)).fetchone()
        return row[0] if row else None

    def ensure_label(self, name: str) -> int:
        """The id of the label called `name` (case-insensitive), created if there is none."""
        name = " ".join(name.split())
        if not name or len(name) > MAX_LABEL_NAME:
            raise StoreError(f"a label name has 1 to {MAX_LABEL_NAME} characters")
        with self.write():
            found = self.label_id_by_name(name)
            if found is not None:
                return found
            color = LABEL_COLORS[sum(name.lower().encode()) % len(LABEL_COLORS)]
            return self.conn.execute("INSERT INTO labels (name, color) VALUES (?, ?)", (name, color)).lastrowid

    def delete_label(self, label_id: int) -> None:
        with self.write():
            self.conn.execute("DELETE FROM conversation_labels WHERE label_id = ?", (label_id,))
            self.conn.execute("DELETE FROM labels WHERE id = ?", (label_id,))

    def labels_of(self, conversation_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Conversation id -> its labels (id, name, color) by name."""
        if not conversation_ids:
            return {}
        marks = ",".join("?" * len(conversation_ids))
        found: dict[int, list[dict[str, Any]]] = {}
        for conversation_id, label_id, name, color in self.conn.execute(
            "SELECT cl.conversation_id, l.id, l.name, l.color FROM conversation_labels cl "  # noqa: S608
            f"JOIN labels l ON l.id = cl.label_id WHERE cl.conversation_id IN ({marks}) "
            "ORDER BY lower(l.name)",
            list(conversation_ids),
        ):
            found.setdefault(conversation_id, []).append({"id": label_id, "name": name, "color": color})
        return found

    # Saved views -------------------------------------------------------------------------------

    def saved_views(self, agent_id: int) -> list[dict[str, Any]]:
        """The agent's saved views by name; `filters` decoded (a dict of query-string values)."""
        views = as_dicts(self.conn.execute(
            "SELECT id, name, filters, created_at FROM saved_views WHERE agent_id = ? ORDER BY lower(name), id",
            (agent_id,),
        ))
        for view in views:
            try:
                filters = json.loads(view["filters"])
            except ValueError:
                filters = {}
            view["filters"] = {str(k): str(v) for k, v in filters.items()} if isinstance(filters, dict) else {}
        return views

    def save_view(self, agent_id: int, name: str, filters: Mapping[str, str]) -> int:
        """Save (or replace, by name) one of the agent's views; returns its id."""
        name = " ".join(name.split())
        if not name or len(name) > MAX_VIEW_NAME:
            raise StoreError(f"a view name has 1 to {MAX_VIEW_NAME} characters")
        with self.write():
            existing = self.conn.execute("SELECT id FROM saved_views WHERE agent_id = ? AND name = ?",
                                         (agent_id, name)).fetchone()
            if existing:
                self.conn.execute("UPDATE saved_views SET filters = ? WHERE id = ?",
                                  (json.dumps(dict(filters)), existing[0]))
                return existing[0]
            count = self.conn.execute("SELECT count(*) FROM saved_views WHERE agent_id = ?", (agent_id,)).fetchone()[0]
            if count >= MAX_VIEWS_PER_AGENT:
                raise StoreError(f"at most {MAX_VIEWS_PER_AGENT} saved views")
            return self.conn.execute(
                "INSERT INTO saved_views (agent_id, name, filters, created_at) VALUES (?, ?, ?, ?)",
                (agent_id, name, json.dumps(dict(filters)), now_iso()),
            ).lastrowid

    def delete_view(self, agent_id: int, view_id: int) -> bool:
        """Delete one of the agent's own views; False when it has no such view."""
        with self.write():
            cur = self.conn.execute("DELETE FROM saved_views WHERE id = ? AND agent_id = ?", (view_id, agent_id))
            return cur.rowcount > 0

    # Bulk changes ------------------------------------------------------------------------------

    def visible_conversation_ids(self, ids: Iterable[int], *, team_ids: set[int] | None) -> list[int]:
        """Those of `ids` that exist and are in the agent's teams (or unrouted)."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return []
        team_sql, team_params = _team_filter(team_ids)
        found: list[int] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found.extend(r[0] for r in self.conn.execute(
                f"SELECT c.id FROM conversations c WHERE c.id IN ({','.join('?' * len(chunk))}) "  # noqa: S608
                f"AND {team_sql}",
                [*chunk, *team_params],
            ))
        return found

    def bulk_update(self, ids: Sequence[int], *, action: str, value: Any, actor: str, now: str | None = None) -> int:
        """Apply one change to the conversations `ids` (already checked as visible) and audit it.

        Actions: "assign" (agent id or None), "team" (team id or None), "label_add" / "label_remove"
        (label id), "status" (one of BULK_STATUSES). Returns how many conversations changed.
        """
        now = now or now_iso()
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self.write():
            if action == "assign":
                cur = self.conn.execute(
                    f"UPDATE conversations SET assignee_id = ?, updated_at = ? WHERE id IN ({marks}) "  # noqa: S608
                    "AND assignee_id IS NOT ?", [value, now, *ids, value])
            elif action == "team":
                cur = self.conn.execute(
                    f"UPDATE conversations SET team_id = ?, updated_at = ? WHERE id IN ({marks}) "  # noqa: S608
                    "AND team_id IS NOT ?", [value, now, *ids, value])
            elif action == "status":
                if value not in BULK_STATUSES:
                    raise StoreError(f"status {value!r} cannot be set in bulk")
                cur = self.conn.execute(
                    f"UPDATE conversations SET status = ?, updated_at = ? WHERE id IN ({marks}) "  # noqa: S608
                    "AND status != ?", [value, now, *ids, value])
            elif action == "label_add":
                cur = self.conn.execute(
                    f"INSERT OR IGNORE INTO conversation_labels (conversation_id, label_id) "  # noqa: S608
                    f"SELECT id, ? FROM conversations WHERE id IN ({marks})", [value, *ids])
            elif action == "label_remove":
                cur = self.conn.execute(
                    f"DELETE FROM conversation_labels WHERE label_id = ? AND conversation_id IN ({marks})",  # noqa: S608
                    [value, *ids])
            else:
                raise StoreError(f"unknown bulk action {action!r}")
            changed = cur.rowcount
            self.conn.execute(
                "INSERT INTO audit_log (at, actor, action, object_type, object_id, details) VALUES (?, ?, ?, ?, ?, ?)",
                (now, actor, f"bulk_{action}", "conversation", None,
                 json.dumps({"value": value, "ids": list(ids), "changed": changed})),
            )
            return changed

    # Search ------------------------------------------------------------------------------------

    def search(self, match: str, *, team_ids: set[int] | None, agent_id: int | None, order: str = "recent",
               candidates: int | None = None, groups: int | None = None, status: str | None = None) -> SearchResult:
        """Conversations matching the FTS5 query `match` (from `fts_query`), grouped, newest first.

        Messages (subject, text, author name and handle) and conversations (subject, the customer's
        name and identities) are searched; both are limited to the agent's teams in SQL, before
        the candidate bound, so hidden conversations take no place and leave no count. `order` is
        "recent" (latest match first) or "relevance" (bm25, within the candidates only).

        On PostgreSQL the same reads go to its search documents, `match` made a tsquery over the
        same words, ts_rank standing for bm25 and ts_headline for snippet (inbox/store/pg_search.py).
        """
        candidates = candidates or SEARCH_CANDIDATES
        groups = groups or SEARCH_GROUPS
        team_sql, team_params = _team_filter(team_ids)
        if status is not None:
            # One status only (spam, #14): its value is a parameter, the SQL text a constant.
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            team_sql, team_params = f"{team_sql} AND c.status = ?", [*team_params, status]
        mark_open = f"\x02{secrets.token_hex(8)}\x03"
        mark_close = f"\x02{secrets.token_hex(8)}\x04"
        if self.engine == "postgresql":
            # The same reads of PostgreSQL's documents (pg_search.py); ts_rank is higher-is-better,
            # so it is negated to be ordered as bm25 is.
            query = pg_search.tsquery(self.conn, match)
            if query is None:
                return SearchResult([], 0, False, mark_open, mark_close)
            rank = (f"-ts_rank(d.document, q.query, {pg_search.RANK_NORMALIZATION})" if order == "relevance"
                    else "0")
            message_hits = self.conn.execute(
                f"SELECT d.message_id, m.conversation_id, m.received_at, {rank} "  # noqa: S608
                "FROM (SELECT CAST(? AS tsquery) AS query) AS q CROSS JOIN message_documents d "
                "JOIN messages m ON m.id = d.message_id JOIN conversations c ON c.id = m.conversation_id "
                f"WHERE d.document @@ q.query AND {team_sql} ORDER BY d.message_id DESC LIMIT ?",
                [query, *team_params, candidates],
            ).fetchall()
            conversation_hits = self.conn.execute(
                f"SELECT d.conversation_id, c.last_message_at, {rank} "  # noqa: S608
                "FROM (SELECT CAST(? AS tsquery) AS query) AS q CROSS JOIN conversation_documents d "
                "JOIN conversations c ON c.id = d.conversation_id "
                f"WHERE d.document @@ q.query AND {team_sql} ORDER BY d.conversation_id DESC LIMIT ?",
                [query, *team_params, candidates],
            ).fetchall()
        else:
            # bm25() costs about as much as the rest of the candidate query: only when ranking.
            rank = "bm25(messages_fts)" if order == "relevance" else "0"
            conversation_rank = "bm25(conversation_search)" if order == "relevance" else "0"
            message_hits = self.conn.execute(
                f"SELECT f.rowid, m.conversation_id, m.received_at, {rank} "  # noqa: S608
                "FROM messages_fts f JOIN messages m ON m.id = f.rowid JOIN conversations c ON c.id = m.conversation_id "
                f"WHERE messages_fts MATCH ? AND {team_sql} ORDER BY f.rowid DESC LIMIT ?",
                [match, *team_params, candidates],
            ).fetchall()
            conversation_hits = self.conn.execute(
                f"SELECT s.rowid, c.last_message_at, {conversation_rank} "  # noqa: S608
                "FROM conversation_search s JOIN conversations c ON c.id = s.rowid "
                f"WHERE conversation_search MATCH ? AND {team_sql} ORDER BY s.rowid DESC LIMIT ?",
                [match, *team_params, candidates],
            ).fetchall()
        truncated = len(message_hits) >= candidates or len(conversation_hits) >= candidates

        # conversation id -> [recency, best score, message ids newest first, matched itself]
        found: dict[int, list[Any]] = {}
        for message_id, conversation_id, received_at, score in message_hits:
            entry = found.setdefault(conversation_id, [received_at, score, [], False])
            entry[0] = max(entry[0], received_at)
            entry[1] = min(entry[1], score)
            entry[2].append(message_id)
        for conversation_id, last_message_at, score in conversation_hits:
            entry = found.setdefault(conversation_id, [last_message_at, score, [], True])
            entry[0] = max(entry[0], last_message_at)
            entry[1] = min(entry[1], score)
            entry[3] = True
        if order == "relevance":
            ranked = sorted(found.items(), key=lambda kv: (kv[1][1], -kv[0]))
        else:
            ranked = sorted(found.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)
        shown = ranked[:groups]
        if not shown:
            return SearchResult([], 0, truncated, mark_open, mark_close)

        rows = {r["id"]: r for r in self.conversation_rows([cid for cid, _ in shown], agent_id=agent_id)}
        snippet_ids = [mid for _, entry in shown for mid in entry[2][:SNIPPETS_PER_CONVERSATION]]
        snippets: dict[int, dict[str, Any]] = {}
        if snippet_ids and self.engine == "postgresql":
            snippets = pg_search.message_snippets(self.conn, query, snippet_ids, mark_open, mark_close)
        elif snippet_ids:
            marks = ",".join("?" * len(snippet_ids))
            # The text column's snippet when the match is there (the subject usually repeats the
            # conversation's), else the best column's (subject, author name or handle).
            # One MATCH over the ids' rowid range, the ids picked by `+rowid IN` (not handed to FTS5):
            # `rowid IN (...)` would run the MATCH once per id, expanding a prefix each time.
            for message_id, direction, author, received_at, in_text, best in self.conn.execute(
                "SELECT f.rowid, m.direction, coalesce(nullif(m.author_name, ''), m.author_handle), "  # noqa: S608
                "m.received_at, snippet(messages_fts, 1, ?, ?, '…', 16), snippet(messages_fts, -1, ?, ?, '…', 16) "
                f"FROM messages_fts f JOIN messages m ON m.id = f.rowid WHERE messages_fts MATCH ? "
                f"AND f.rowid BETWEEN ? AND ? AND +f.rowid IN ({marks})",
                [mark_open, mark_close, mark_open, mark_close, match, min(snippet_ids), max(snippet_ids),
                 *snippet_ids],
            ):
                snippets[message_id] = {"message_id": message_id, "direction": direction, "author": author,
                                        "received_at": received_at,
                                        "text": in_text if mark_open in (in_text or "") else best}
        conversation_snippets: dict[int, str] = {}
        # A conversation's own snippet (subject, customer) only where no message snippet says more.
        matched_itself = [cid for cid, entry in shown if entry[3] and not entry[2]]
        if matched_itself and self.engine == "postgresql":
            conversation_snippets = pg_search.conversation_snippets(self.conn, query, matched_itself, mark_open,
                                                                    mark_close)
        elif matched_itself:
            marks = ",".join("?" * len(matched_itself))
            conversation_snippets = dict(self.conn.execute(
                "SELECT rowid, snippet(conversation_search, -1, ?, ?, '…', 12) FROM conversation_search "  # noqa: S608
                f"WHERE conversation_search MATCH ? AND rowid BETWEEN ? AND ? AND +rowid IN ({marks})",
                [mark_open, mark_close, match, min(matched_itself), max(matched_itself), *matched_itself],
            ).fetchall())

        result = []
        for conversation_id, entry in shown:
            row = rows.get(conversation_id)
            if row is None:
                continue
            result.append(SearchGroup(
                conversation=row,
                hits=len(entry[2]),
                matched_conversation=entry[3],
                snippets=[snippets[mid] for mid in entry[2][:SNIPPETS_PER_CONVERSATION] if mid in snippets],
                conversation_snippet=conversation_snippets.get(conversation_id),
            ))
        return SearchResult(result, len(found), truncated, mark_open, mark_close)
