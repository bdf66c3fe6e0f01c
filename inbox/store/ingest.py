"""Store verbs used by the ingest pipeline: dedupe checks, identities, threading lookups, inserts.

They are called inside one `store.write()` transaction per batch (see inbox/ingest.py), together
with `save_cursor`, so that a batch and the cursor after it are committed together or not at all.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from inbox.store.base import as_dict

#: The conversation search index's text for a customer, as the triggers of m004 write it: name, then identities.
_CUSTOMER_SEARCH_TEXT = (
    "(SELECT cu.display_name || ' ' || ifnull((SELECT group_concat(i.value || ' ' || i.display, ' ') "
    "FROM identities i WHERE i.customer_id = cu.id), '') FROM customers cu WHERE cu.id = c.customer_id)"
)


class IngestQueries:
    conn: Any
    engine: str

    def known_external_ids(self, channel: str, external_ids: Iterable[str]) -> set[str]:
        """Those of `external_ids` already stored for `channel`."""
        ids = list(external_ids)
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT external_id FROM messages WHERE channel = ? AND external_id IN ({marks})",  # noqa: S608
                (channel, *chunk),
            )
            known.update(r[0] for r in rows)
        return known

    def stored_contents(self, channel: str, external_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """external_id -> (text, flags) of those of `external_ids` stored for `channel`."""
        ids = list(external_ids)
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT external_id, text, flags FROM messages WHERE channel = ? AND external_id IN ({marks})",  # noqa: S608
                (channel, *chunk),
            )
            found.update((r[0], (r[1] or "", r[2] or "")) for r in rows)
        return found

    # Customers and identities -------------------------------------------------------------------

    def customer_for_identity(self, kind: str, value: str) -> int | None:
        """The customer an identity belongs to (following merges), or None."""
        row = self.conn.execute(
            "SELECT c.id, c.merged_into FROM identities i JOIN customers c ON c.id = i.customer_id "
            "WHERE i.kind = ? AND i.value = ?",
            (kind, value),
        ).fetchone()
        if row is None:
            return None
        customer_id, merged_into = row
        while merged_into:
            customer_id, merged_into = self.conn.execute(
                "SELECT id, merged_into FROM customers WHERE id = ?", (merged_into,)
            ).fetchone()
        return customer_id

    def create_customer(self, display_name: str, now: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO customers (display_name, created_at, updated_at) VALUES (?, ?, ?)",
            (display_name, now, now),
        )
        return cur.lastrowid

    def add_identity(self, customer_id: int, kind: str, value: str, display: str, valid: bool, now: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO identities (customer_id, kind, value, display, valid, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (customer_id, kind, value, display, int(valid), now),
        )

    def fill_customer_name(self, customer_id: int, name: str, now: str) -> None:
        """Give a nameless customer the name they signed with."""
        self.conn.execute(
            "UPDATE customers SET display_name = ?, updated_at = ? WHERE id = ? AND display_name = ''",
            (name, now, customer_id),
        )

    # Threading lookups --------------------------------------------------------------------------

    def messages_by_message_id(self, message_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Stored messages (ours or the customer's) whose Message-ID is one of `message_ids`."""
        ids = [m for m in message_ids if m]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        cur = self.conn.execute(
            "SELECT m.id, m.conversation_id, m.direction, c.customer_id, m.message_id "  # noqa: S608
            f"FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.message_id IN ({marks}) "
            "ORDER BY m.id DESC",
            ids,
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def conversation_by_token(self, token: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT id, customer_id, channel, status FROM conversations WHERE token = ?", (token,))
        return as_dict(cur, cur.fetchone())

    def open_conversation_for_thread(self, channel: str, thread_key: str, customer_id: int) -> int | None:
        """The latest unresolved conversation of this customer on this channel thread (one held in
        triage counts: what the customer adds waits with it, #14)."""
        row = self.conn.execute(
            "SELECT id FROM conversations WHERE channel = ? AND thread_key = ? AND customer_id = ? "
            "AND (status NOT IN ('resolved', 'spam') OR triage_hold = 1) ORDER BY id DESC LIMIT 1",
            (channel, thread_key, customer_id),
        ).fetchone()
        return row[0] if row else None

    def adopt_started_conversation(self, channel: str, thread_key: str, customer_id: int) -> int | None:
        """The customer's newest open private conversation we started on this channel that has no thread
        key yet (the channel's key was only known after sending); it takes `thread_key`."""
        row = self.conn.execute(
            "SELECT c.id FROM conversations c WHERE c.channel = ? AND c.customer_id = ? AND c.thread_key IS NULL "
            "AND c.public = 0 AND c.status NOT IN ('resolved', 'spam') AND EXISTS (SELECT 1 FROM outbox o "
            "JOIN messages m ON m.id = o.message_id WHERE m.conversation_id = c.id AND o.to_handle IS NOT NULL) "
            "ORDER BY c.id DESC LIMIT 1",
            (channel, customer_id)).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE conversations SET thread_key = ? WHERE id = ?", (thread_key, row[0]))
        return row[0]

    def create_conversation(
        self,
        *,
        token: str,
        customer_id: int,
        channel: str,
        thread_key: str | None,
        subject: str,
        public: bool,
        automatic: bool,
        flags: str,
        now: str,
        status: str = "new",
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO conversations (token, customer_id, channel, thread_key, subject, public, automatic, "
            "flags, created_at, updated_at, last_message_at, last_inbound_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (token, customer_id, channel, thread_key, subject, int(public), int(automatic), flags, now, now, now, now,
             status),
        )
        return cur.lastrowid

    def note_inbound(self, conversation_id: int, now: str, *, reopen: bool) -> None:
        """A customer wrote again: move the activity times, and reopen unless told not to."""
        if reopen:
            self.conn.execute(
                "UPDATE conversations SET last_message_at = ?, last_inbound_at = ?, updated_at = ?, "
                "status = CASE WHEN status IN ('resolved', 'pending', 'snoozed') THEN 'open' ELSE status END "
                "WHERE id = ?",
                (now, now, now, conversation_id),
            )
        else:
            self.conn.execute(
                "UPDATE conversations SET last_message_at = ?, updated_at = ? WHERE id = ?",
                (now, now, conversation_id),
            )

    # Inserts ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def search_index_deferred(self) -> Iterator[None]:
        """Inside a write transaction: the messages and conversations inserted meanwhile go into the
        search indexes when the block ends, one statement per index, instead of row by row from
        their triggers (m044 says why: FTS5 made an index segment per message).

        A block that raises indexes nothing: its transaction is to be rolled back.

        PostgreSQL's search documents are written row by row by their triggers at little cost
        (revisions 0003): there is nothing to hold back.
        """
        if self.engine == "postgresql":
            yield
            return
        start = self.conn.execute(
            "SELECT (SELECT ifnull(max(id), 0) + 1 FROM messages), (SELECT ifnull(max(id), 0) + 1 FROM conversations)"
        ).fetchone()
        self.conn.execute("INSERT INTO search_index_deferred (messages_from, conversations_from) VALUES (?, ?)", start)
        try:
            yield
        except BaseException:
            # Never leave the mark behind (it would keep every later row out of search), even if
            # the caller went on to commit; the database may refuse even this (disk full).
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("DELETE FROM search_index_deferred")
            raise
        self.conn.execute("DELETE FROM search_index_deferred")
        self.conn.execute(
            "INSERT INTO messages_fts (rowid, subject, text, author_name, author_handle) "
            "SELECT id, subject, text, author_name, author_handle FROM messages WHERE id >= ? ORDER BY id",
            (start[0],),
        )
        self.conn.execute(
            f"INSERT INTO conversation_search (rowid, subject, customer) "  # noqa: S608 (a constant)
            f"SELECT c.id, c.subject, {_CUSTOMER_SEARCH_TEXT} FROM conversations c WHERE c.id >= ? ORDER BY c.id",
            (start[1],),
        )

    def insert_message(self, row: dict[str, Any]) -> int | None:
        """Insert one message; None when `(channel, external_id)` is already stored."""
        columns = list(row)
        cur = self.conn.execute(
            f"INSERT INTO messages ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "  # noqa: S608
            "ON CONFLICT (channel, external_id) DO NOTHING",
            [row[c] for c in columns],
        )
        return cur.lastrowid if cur.rowcount else None

    def insert_raw(self, message_id: int, data: bytes) -> None:
        self.conn.execute("INSERT INTO raw_messages (message_id, data) VALUES (?, ?) "
                          "ON CONFLICT (message_id) DO UPDATE SET data = excluded.data", (message_id, data))

    def insert_attachment(self, message_id: int, meta: dict[str, Any]) -> int:
        cur = self.conn.execute(
            "INSERT INTO attachments (message_id, filename, content_type, size, sha256, stored, content_id, inline, "
            "type_mismatch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                meta["filename"],
                meta["content_type"],
                meta["size"],
                meta.get("sha256"),
                int(meta.get("stored", True)),
                meta.get("content_id"),
                int(meta.get("inline", False)),
                int(meta.get("type_mismatch", False)),
            ),
        )
        return cur.lastrowid

    def mark_outbound_bounced(self, message_ids: Iterable[str], reason: str) -> list[int]:
        """Our replies that a delivery-status notification says did not arrive."""
        bounced = []
        for mid in message_ids:
            row = self.conn.execute(
                "SELECT id, customer_id FROM messages WHERE message_id = ? AND direction = 'out'", (mid,)
            ).fetchone()
            if row:
                self.conn.execute(
                    "UPDATE messages SET delivery_status = 'bounced', delivery_error = ? WHERE id = ?",
                    (reason, row[0]),
                )
                # The address we wrote to (the customer's last message before our reply) does not take
                # mail: flag it so the composer warns before the next reply bounces too.
                self.conn.execute(
                    "UPDATE identities SET delivery_failed = 1 WHERE kind = 'email' AND value = ("
                    "SELECT lower(author_handle) FROM messages WHERE conversation_id = "
                    "(SELECT conversation_id FROM messages WHERE id = ?) AND direction = 'in' AND id < ? "
                    "ORDER BY id DESC LIMIT 1)",
                    (row[0], row[0]),
                )
                bounced.append(row[0])
        return bounced

    def audit(self, now: str, actor: str, action: str, object_type: str | None = None,
              object_id: str | int | None = None, **details: Any) -> None:
        self.conn.execute(
            "INSERT INTO audit_log (at, actor, action, object_type, object_id, details) VALUES (?, ?, ?, ?, ?, ?)",
            (now, actor, action, object_type, None if object_id is None else str(object_id),
             json.dumps(details, default=str)),
        )
