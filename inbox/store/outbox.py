"""Store verbs for replies on their way out: the message row and its outbox row, claimed by lease.

States: pending -> sending (lease) -> sent | retry_wait -> ... | failed (the channel refused) |
dead (gave up after too many tries). A row is only `sent` after the channel accepted it.

Undo send: a reply is queued with `next_at` at the end of the undo window; until a sender claims
it (`pending`, never attempted) its writer can take it back, which deletes the row and its message
in one write transaction. Claiming and taking back both change the row under the write lock, so
a reply is either handed to the channel or taken back, never both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from inbox.store.base import NotFound, as_dict, as_dicts


def split_addresses(value: str | None) -> tuple[str, ...]:
    """Addresses stored comma-separated (our own, checked when written) as a tuple."""
    return tuple(a.strip() for a in (value or "").split(",") if a.strip())


class OutboxQueries:
    conn: Any

    def queue_outbound(self, *, outbox_id: str, conversation_id: int, channel: str, agent_id: int | None,
                       text: str, html: str | None, subject: str, message_id: str | None, refs: str,
                       author_name: str, now: str, flags: str = "", next_at: str | None = None,
                       files: Sequence[dict[str, Any]] = (), split_files: bool = False,
                       cc: Sequence[str] = (), bcc: Sequence[str] = (), signature: str | None = None) -> int:
        """The reply as a message (status queued) and its outbox row, in the caller's transaction.
        `next_at`: not sent before then (the undo window); default at once.

        `files` (filename, content_type, size, sha256; the bytes already in the attachment store)
        become the message's attachments. With `split_files` (a channel where text and a file cannot
        share a message) the text and each file get an outbox row of their own, sent in that order;
        the first one is `outbox_id`, the others `<outbox_id>-<n>`."""
        cur = self.conn.execute(
            "INSERT INTO messages (conversation_id, channel, external_id, direction, agent_id, author_name, subject, "
            "text, html, message_id, refs, received_at, delivery_status, flags, cc, bcc, signature) "
            "VALUES (?, ?, ?, 'out', ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
            (conversation_id, channel, f"out:{outbox_id}", agent_id, author_name, subject, text, html, message_id,
             refs, now, flags, ", ".join(cc) or None, ", ".join(bcc) or None, signature),
        )
        message_row = cur.lastrowid
        attachment_ids = [self.conn.execute(
            "INSERT INTO attachments (message_id, filename, content_type, size, sha256, stored, type_mismatch) "
            "VALUES (?, ?, ?, ?, ?, 1, ?)",
            (message_row, f["filename"], f["content_type"], f["size"], f["sha256"], int(f.get("type_mismatch", False))),
        ).lastrowid for f in files]
        if split_files and attachment_ids:
            parts = ([("text", None)] if text.strip() else []) + [("file", a) for a in attachment_ids]
        else:
            parts = [("all", None)]
        for index, (part, attachment_id) in enumerate(parts):
            self.conn.execute(
                "INSERT INTO outbox (id, message_id, channel, state, next_at, created_at, part, attachment_id, "
                "part_index) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (outbox_id if index == 0 else f"{outbox_id}-{index}", message_row, channel, next_at or now, now, part,
                 attachment_id, index),
            )
        self.conn.execute(
            "UPDATE conversations SET last_message_at = ?, updated_at = ?, "
            "first_response_at = COALESCE(first_response_at, ?), "
            "status = CASE WHEN status = 'new' THEN 'open' ELSE status END WHERE id = ?",
            (now, now, now, conversation_id),
        )
        return message_row

    def queue_forward(self, *, outbox_id: str, conversation_id: int, channel: str, agent_id: int | None,
                      author_name: str, comment: str, to: Sequence[str], forward_of: int | None, subject: str,
                      message_id: str, now: str) -> int:
        """A forward as an internal note that records it (flag `forward`, the addresses in `cc`) and its
        outbox row, in the caller's transaction. It is not a reply: the conversation's clocks stay."""
        cur = self.conn.execute(
            "INSERT INTO messages (conversation_id, channel, external_id, direction, agent_id, author_name, subject, "
            "text, message_id, received_at, delivery_status, flags, cc) "
            "VALUES (?, ?, ?, 'note', ?, ?, ?, ?, ?, ?, 'queued', 'forward', ?)",
            (conversation_id, channel, f"fwd:{outbox_id}", agent_id, author_name, subject, comment, message_id, now,
             ", ".join(to)))
        self.conn.execute(
            "INSERT INTO outbox (id, message_id, channel, state, next_at, created_at, forward_of) "
            "VALUES (?, ?, ?, 'pending', ?, ?, ?)", (outbox_id, cur.lastrowid, channel, now, now, forward_of))
        self.conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return cur.lastrowid

    def forwarded_messages(self, conversation_id: int, forward_of: int | None) -> list[dict[str, Any]]:
        """What a forward carries: one message, or the whole conversation's (no internal notes), each
        with its stored files."""
        if forward_of is not None:
            rows = as_dicts(self.conn.execute(
                "SELECT * FROM messages WHERE id = ? AND conversation_id = ? AND direction IN ('in', 'out')",
                (forward_of, conversation_id)))
        else:
            rows = as_dicts(self.conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? AND direction IN ('in', 'out') "
                "ORDER BY received_at, id", (conversation_id,)))
        for row in rows:
            row["attachments"] = as_dicts(self.conn.execute(
                "SELECT * FROM attachments WHERE message_id = ? AND stored = 1 AND sha256 IS NOT NULL ORDER BY id",
                (row["id"],)))
        return rows

    def claim_outbox(self, now: str, lease_until: str, limit: int = 20, *,
                     resendable: Callable[[str], bool] = lambda channel: True) -> list[dict[str, Any]]:
        """Take due rows for sending, each with its lease (`lease_until`, which also proves the claim).

        A row whose lease ran out while `sending` belongs to a sender that stopped. If its attempt had
        not started, nothing reached the channel: it is simply taken again. If it had, the channel may
        have the reply: on a channel where a resend reaches the customer once (`resendable(channel)`)
        it is taken again, flagged as a possible duplicate; elsewhere it is set aside as uncertain for
        an agent to decide (see `mark_outbox_uncertain`), never resent by itself.
        """
        rows = as_dicts(self.conn.execute(
            "SELECT id, state, channel, attempt_started_at FROM outbox WHERE (state IN ('pending', 'retry_wait') "
            "AND next_at <= ?) OR (state = 'sending' AND lease_until < ?) ORDER BY next_at, message_id, part_index "
            "LIMIT ?", (now, now, limit),
        ))
        claimed = []
        for row in rows:
            attempted = row["state"] == "sending" and row["attempt_started_at"] is not None
            if attempted and not resendable(row["channel"]):
                self.mark_outbox_uncertain(row["id"], "The sender stopped while handing this reply to the channel; "
                                           "whether the customer got it is unknown.", expected_state="sending")
                continue
            cur = self.conn.execute(
                "UPDATE outbox SET state = 'sending', lease_until = ?, attempts = attempts + 1, "
                "attempt_started_at = NULL, possible_duplicate = max(possible_duplicate, ?) "
                "WHERE id = ? AND state = ?",
                (lease_until, int(attempted), row["id"], row["state"]),
            )
            if cur.rowcount:
                claimed.append(self.outbox_row(row["id"]))
        return claimed

    def next_outbox_due(self) -> str | None:
        """When the next waiting reply falls due (the end of an undo window, a retry's time), or None."""
        row = self.conn.execute(
            "SELECT MIN(next_at) FROM (SELECT MIN(next_at) AS next_at FROM outbox WHERE state = 'pending' "
            "UNION ALL SELECT MIN(next_at) FROM outbox WHERE state = 'retry_wait') AS due").fetchone()
        return row[0] if row else None

    def start_outbox_attempt(self, outbox_id: str, claimed_until: str, now: str, lease_until: str) -> bool:
        """Record that this row is being handed to the channel now, if our claim still holds.

        The claim is proven by the lease it set: a row another sender took since has another lease."""
        cur = self.conn.execute(
            "UPDATE outbox SET attempt_started_at = ?, lease_until = ? WHERE id = ? AND state = 'sending' "
            "AND lease_until = ?", (now, lease_until, outbox_id, claimed_until))
        return cur.rowcount == 1

    def mark_outbox_uncertain(self, outbox_id: str, error: str, *, expected_state: str | None = None) -> None:
        """The channel may have the reply but did not confirm it: set aside for an agent, never resent."""
        cur = self.conn.execute(
            "UPDATE outbox SET state = 'failed', uncertain = 1, lease_until = NULL, last_error = ? "
            "WHERE id = ? AND (? IS NULL OR state = ?)", (error, outbox_id, expected_state, expected_state))
        if cur.rowcount:
            self.conn.execute(
                "UPDATE messages SET delivery_status = 'possibly_sent', delivery_error = ? "
                "WHERE id = (SELECT message_id FROM outbox WHERE id = ?)", (error, outbox_id))

    def confirm_outbox_sent(self, outbox_id: str, now: str) -> bool:
        """An agent saw at the channel that a possibly sent reply did arrive: mark it sent, never send it."""
        cur = self.conn.execute(
            "UPDATE outbox SET state = 'sent', uncertain = 0, sent_at = ?, last_error = NULL "
            "WHERE uncertain = 1 AND state = 'failed' AND message_id = (SELECT message_id FROM outbox WHERE id = ?)",
            (now, outbox_id))
        if cur.rowcount:
            self.conn.execute(
                "UPDATE messages SET delivery_status = 'sent', delivery_error = NULL, sent_at = ? "
                "WHERE id = (SELECT message_id FROM outbox WHERE id = ?) AND NOT EXISTS (SELECT 1 FROM outbox p "
                "WHERE p.message_id = messages.id AND p.state != 'sent')", (now, outbox_id))
        return bool(cur.rowcount)

    def outbox_row(self, outbox_id: str) -> dict[str, Any]:
        cur = self.conn.execute(
            "SELECT o.*, m.conversation_id, m.text, m.html, m.subject, m.message_id AS our_message_id, m.refs, "
            "m.author_name AS agent_name, m.flags, m.cc, m.bcc, m.signature FROM outbox o JOIN messages m ON m.id = o.message_id "
            "WHERE o.id = ?",
            (outbox_id,),
        )
        row = as_dict(cur, cur.fetchone())
        if row is None:
            raise NotFound(f"no outbox row {outbox_id}")
        return row

    def outbound_files(self, message_row: int, attachment_id: int | None = None) -> list[dict[str, Any]]:
        """The files of our outgoing message (or just the one `attachment_id`), in the order attached."""
        if attachment_id is not None:
            return as_dicts(self.conn.execute(
                "SELECT * FROM attachments WHERE message_id = ? AND id = ?", (message_row, attachment_id)))
        return as_dicts(self.conn.execute("SELECT * FROM attachments WHERE message_id = ? ORDER BY id", (message_row,)))

    def hold_review_files(self, review_item_id: int, files: Sequence[dict[str, Any]]) -> None:
        """The files of a trainee's reply held for review (bytes already in the attachment store)."""
        for f in files:
            self.conn.execute(
                "INSERT INTO review_attachments (review_item_id, filename, content_type, size, sha256) "
                "VALUES (?, ?, ?, ?, ?)", (review_item_id, f["filename"], f["content_type"], f["size"], f["sha256"]))

    def hold_review_copies(self, review_item_id: int, cc: Sequence[str], bcc: Sequence[str]) -> None:
        """Who a held reply goes to in copy (email), sent along when it is approved."""
        self.conn.execute("UPDATE review_items SET cc = ?, bcc = ? WHERE id = ?",
                          (", ".join(cc) or None, ", ".join(bcc) or None, review_item_id))

    def review_copies(self, review_item_id: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        row = self.conn.execute("SELECT cc, bcc FROM review_items WHERE id = ?", (review_item_id,)).fetchone()
        return (split_addresses(row[0]), split_addresses(row[1])) if row else ((), ())

    def review_files(self, review_item_id: int) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT * FROM review_attachments WHERE review_item_id = ? ORDER BY id", (review_item_id,)))

    def mark_outbox_sent(self, outbox_id: str, provider_id: str, now: str) -> None:
        self.conn.execute(
            "UPDATE outbox SET state = 'sent', provider_id = ?, sent_at = ?, lease_until = NULL, last_error = NULL "
            "WHERE id = ?", (provider_id, now, outbox_id))
        # A reply sent in parts (text, then each file) is sent once its last part is; a part that
        # failed keeps the message failed.
        self.conn.execute(
            "UPDATE messages SET delivery_status = 'sent', delivery_error = NULL, sent_at = ? "
            "WHERE id = (SELECT message_id FROM outbox WHERE id = ?) AND NOT EXISTS (SELECT 1 FROM outbox p "
            "WHERE p.message_id = messages.id AND p.state != 'sent')", (now, outbox_id))

    def mark_outbox_retry(self, outbox_id: str, next_at: str, error: str, *, possible_duplicate: bool = False) -> None:
        self.conn.execute(
            "UPDATE outbox SET state = 'retry_wait', next_at = ?, lease_until = NULL, last_error = ?, "
            "possible_duplicate = max(possible_duplicate, ?) WHERE id = ?",
            (next_at, error, int(possible_duplicate), outbox_id))
        self.conn.execute(
            "UPDATE messages SET delivery_status = 'retrying', delivery_error = ? "
            "WHERE id = (SELECT message_id FROM outbox WHERE id = ?)", (error, outbox_id))

    def mark_outbox_failed(self, outbox_id: str, error: str, *, dead: bool = False) -> None:
        self.conn.execute(
            "UPDATE outbox SET state = ?, lease_until = NULL, last_error = ? WHERE id = ?",
            ("dead" if dead else "failed", error, outbox_id))
        self.conn.execute(
            "UPDATE messages SET delivery_status = 'failed', delivery_error = ? "
            "WHERE id = (SELECT message_id FROM outbox WHERE id = ?)", (error, outbox_id))

    def retry_outbox(self, outbox_id: str, now: str) -> bool:
        """An agent's "try again" on a failed reply."""
        # Every failed part of the reply goes again; parts already sent are never sent twice.
        cur = self.conn.execute(
            # An uncertain part the agent chose to send again may reach the customer twice: flagged so.
            "UPDATE outbox SET state = 'pending', next_at = ?, attempts = 0, "
            "possible_duplicate = max(possible_duplicate, uncertain), uncertain = 0 WHERE state IN ('failed', 'dead') "
            "AND message_id = (SELECT message_id FROM outbox WHERE id = ?)", (now, outbox_id))
        if cur.rowcount:
            self.conn.execute(
                "UPDATE messages SET delivery_status = 'queued' WHERE id = (SELECT message_id FROM outbox WHERE id = ?)",
                (outbox_id,))
        return bool(cur.rowcount)

    def set_outbox_undo_status(self, outbox_id: str, status: str) -> None:
        """The conversation's status before "Send + status" changed it: an undo puts it back."""
        self.conn.execute("UPDATE outbox SET undo_status = ? WHERE id = ?", (status, outbox_id))

    def undoable_replies(self, conversation_id: int, agent_id: int) -> list[dict[str, Any]]:
        """The agent's replies in a conversation still waiting in the outbox (not yet claimed by a sender)."""
        return as_dicts(self.conn.execute(
            "SELECT o.id, o.next_at, m.id AS message_row, m.text FROM outbox o JOIN messages m ON m.id = o.message_id "
            "WHERE m.conversation_id = ? AND m.agent_id = ? AND o.state = 'pending' AND o.attempts = 0 "
            "AND o.part_index = 0 AND m.direction = 'out' ORDER BY o.created_at, o.id", (conversation_id, agent_id)))

    def undoable_replies_of(self, agent_id: int) -> list[dict[str, Any]]:
        """All the agent's replies still in the undo window, with whom they go to (the undo toast)."""
        return as_dicts(self.conn.execute(
            "SELECT o.id, o.next_at, m.conversation_id, cu.display_name AS customer_name FROM outbox o "
            "JOIN messages m ON m.id = o.message_id JOIN conversations c ON c.id = m.conversation_id "
            "JOIN customers cu ON cu.id = c.customer_id "
            "WHERE m.agent_id = ? AND o.state = 'pending' AND o.attempts = 0 AND o.part_index = 0 AND m.direction = 'out' "
            "ORDER BY o.created_at, o.id",
            (agent_id,)))

    def take_back_outbound(self, outbox_id: str, conversation_id: int, agent_id: int) -> tuple[str, dict | None]:
        """Undo send, in the caller's write transaction: ("taken", the reply) when the row was still
        unclaimed and is now gone with its message; ("released", row) when a sender has it already
        (or it was sent); ("missing", None) when there is no such reply of this agent here."""
        cur = self.conn.execute(
            "SELECT o.id, o.state, o.attempts, o.undo_status, m.id AS message_row, m.text, m.html, m.flags, "
            "m.received_at FROM outbox o JOIN messages m ON m.id = o.message_id "
            "WHERE o.id = ? AND m.conversation_id = ? AND m.agent_id = ? AND m.direction = 'out'",
            (outbox_id, conversation_id, agent_id))
        row = as_dict(cur, cur.fetchone())
        if row is None:
            return "missing", None
        # A reply sent in parts is taken back whole or not at all: once a sender has any part of it,
        # it is released.
        released = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE message_id = ? AND NOT (state = 'pending' AND attempts = 0)",
            (row["message_row"],)).fetchone()[0]
        if released or row["state"] != "pending" or row["attempts"]:
            return "released", row
        self.conn.execute("DELETE FROM outbox WHERE message_id = ?", (row["message_row"],))
        # Its files are dropped with it (the composer tells the writer to attach them again); the
        # caller removes a file from the attachment store once nothing refers to it any more.
        row["dropped_files"] = [r[0] for r in self.conn.execute(
            "SELECT sha256 FROM attachments WHERE message_id = ?", (row["message_row"],))]
        self.conn.execute("DELETE FROM attachments WHERE message_id = ?", (row["message_row"],))
        self.conn.execute("DELETE FROM messages WHERE id = ?", (row["message_row"],))
        # The conversation as if the reply had never been written: its last activity, its first
        # response and the customer's waiting time.
        self.conn.execute(
            "UPDATE conversations SET "
            "last_message_at = ifnull((SELECT max(received_at) FROM messages WHERE conversation_id = :c "
            "  AND direction IN ('in', 'out')), last_message_at), "
            "first_response_at = CASE WHEN first_response_at = :at THEN (SELECT min(received_at) FROM messages "
            "  WHERE conversation_id = :c AND direction = 'out') ELSE first_response_at END, "
            "waiting_since = (SELECT min(m.received_at) FROM messages m WHERE m.conversation_id = :c "
            "  AND m.direction = 'in' AND m.id > ifnull((SELECT max(o.id) FROM messages o "
            "  WHERE o.conversation_id = :c AND o.direction = 'out'), 0)), "
            "sla_computed_at = NULL WHERE id = :c",
            {"c": conversation_id, "at": row["received_at"]})
        return "taken", row

    def unreferenced_files(self, hashes: Sequence[str]) -> list[str]:
        """Those of `hashes` no attachment (of any message or held reply) refers to any more."""
        return [h for h in dict.fromkeys(hashes) if not self.conn.execute(
            "SELECT 1 FROM attachments WHERE sha256 = ? UNION ALL SELECT 1 FROM review_attachments WHERE sha256 = ? "
            "LIMIT 1", (h, h)).fetchone()]

    def apply_delivery_update(self, channel: str, provider_id: str, status: str, error: str | None,
                              order: dict[str, int]) -> bool:
        """Move our reply with this provider id forward to `status`; never backwards. True if it changed."""
        row = self.conn.execute(
            "SELECT m.id, m.delivery_status FROM outbox o JOIN messages m ON m.id = o.message_id "
            "WHERE o.provider_id = ? AND (o.channel = ? OR m.channel = ?) ORDER BY o.created_at DESC LIMIT 1",
            (provider_id, channel, channel),
        ).fetchone()
        if row is None:
            return False
        message_id, current = row
        if status == "failed":
            if current in ("read", "failed"):
                return False
        elif current == "failed" or order.get(status, -1) <= order.get(current or "queued", 0):
            return False
        self.conn.execute("UPDATE messages SET delivery_status = ?, delivery_error = ? WHERE id = ?",
                          (status, error if status == "failed" else None, message_id))
        return True

    def outbox_states(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in as_dicts(self.conn.execute(
            "SELECT state, count(*) AS n FROM outbox GROUP BY state"))}

    def hold_unsent_before(self, moment: str) -> int:
        """After restoring a backup: replies queued before `moment` may already have gone out; a person decides."""
        cur = self.conn.execute(
            "UPDATE outbox SET state = 'needs_review' WHERE state IN ('pending', 'sending', 'retry_wait') "
            "AND created_at < ?", (moment,))
        return cur.rowcount
