"""Store verbs for the triage flow (#14): verdicts, the triage review queue, samples, blocks, spam upkeep.

A suspicious conversation is held as status `spam` with `triage_hold = 1` (m025): the status that
already keeps it out of the queue and stops clocks, surveys and acknowledgements, marked as waiting
for a person. `release_from_triage` puts it in the queue as if it had been there from its arrival.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from inbox.store.base import as_dict, as_dicts


class TriageQueries:
    conn: Any

    # Facts for the verdict -----------------------------------------------------------------------

    def earlier_clean_conversations(self, customer_id: int, *, besides: int | None = None,
                                    at_most: int | None = None) -> int:
        """How many conversations this customer had that are not spam (a person's history with us),
        counted up to `at_most`: a mailing list or a regular writes thousands, and counting them all
        for every new message made a long import slower with each one (#16)."""
        limit = "" if at_most is None else " LIMIT ?"
        counted = f"SELECT 1 FROM conversations WHERE customer_id = ? AND status != 'spam' AND id IS NOT ?{limit}"  # noqa: S608
        params = (customer_id, besides) if at_most is None else (customer_id, besides, at_most)
        return self.conn.execute(f"SELECT count(*) FROM ({counted}) AS counted", params).fetchone()[0]  # noqa: S608

    # Verdicts and the review queue -----------------------------------------------------------------

    def hold_for_triage(self, conversation_id: int) -> None:
        """Keep a new conversation out of the queue until a person decides (it was created as spam)."""
        self.conn.execute("UPDATE conversations SET triage_hold = 1 WHERE id = ?", (conversation_id,))

    def add_triage_review(self, *, message_id: int, conversation_id: int, channel: str, kind: str,
                          machine_verdict: str, probability: float | None, model_version: int | None,
                          reason: str, facts: dict[str, Any], now: str) -> int | None:
        cur = self.conn.execute(
            "INSERT INTO triage_reviews (message_id, conversation_id, channel, kind, machine_verdict, probability, "
            "model_version, reason, facts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (message_id) DO NOTHING",
            (message_id, conversation_id, channel, kind, machine_verdict, probability, model_version, reason,
             json.dumps(facts), now))
        return cur.lastrowid if cur.rowcount else None

    def triage_waiting(self, team_sql: str, team_params: Sequence[Any], limit: int = 200) -> list[dict[str, Any]]:
        """Undecided review items, oldest first, with the message and its conversation (`team_sql`
        restricts `c.team_id`, from `inbox.store.queue._team_filter`)."""
        cur = self.conn.execute(
            "SELECT r.*, m.author_name, m.author_handle, m.subject, m.text, m.received_at, m.spam_reason, "  # noqa: S608
            "c.status AS conversation_status, c.triage_hold, c.token "
            "FROM triage_reviews r JOIN messages m ON m.id = r.message_id "
            "JOIN conversations c ON c.id = r.conversation_id "
            f"WHERE r.decided_at IS NULL AND {team_sql} ORDER BY r.created_at, r.id LIMIT ?",
            [*team_params, limit])
        return as_dicts(cur)

    def triage_waiting_count(self, team_sql: str, team_params: Sequence[Any], cap: int = 100) -> int:
        """How many undecided review items (at most `cap`: a badge, not a report)."""
        row = self.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM triage_reviews r JOIN conversations c ON c.id = r.conversation_id "  # noqa: S608
            f"WHERE r.decided_at IS NULL AND {team_sql} LIMIT ?) AS capped", [*team_params, cap]).fetchone()
        return row[0]

    def triage_review(self, review_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute(
            "SELECT r.*, c.status AS conversation_status, c.triage_hold FROM triage_reviews r "
            "JOIN conversations c ON c.id = r.conversation_id WHERE r.id = ?", (review_id,))
        return as_dict(cur, cur.fetchone())

    def open_triage_reviews(self, conversation_id: int) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM triage_reviews WHERE conversation_id = ? AND decided_at IS NULL",
                                (conversation_id,))
        return as_dicts(cur)

    def first_inbound_facts(self, conversation_id: int) -> dict[str, Any] | None:
        """The facts the model was shown for the conversation's first judged item, when it waited in triage."""
        row = self.conn.execute(
            "SELECT facts FROM triage_reviews WHERE conversation_id = ? ORDER BY id LIMIT 1",
            (conversation_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def first_inbound_message(self, conversation_id: int) -> dict[str, Any] | None:
        """The customer's first message in the conversation, with what the model's facts are made of."""
        cur = self.conn.execute(
            "SELECT m.id, m.channel, m.text, m.html, m.subject, m.author_handle, m.headers, c.customer_id "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.conversation_id = ? AND m.direction = 'in' ORDER BY m.id LIMIT 1", (conversation_id,))
        return as_dict(cur, cur.fetchone())

    def decide_triage_review(self, review_id: int, *, verdict: str, agent_id: int | None, now: str) -> bool:
        """Record a person's verdict; False when it was already decided."""
        cur = self.conn.execute(
            "UPDATE triage_reviews SET decided_at = ?, decided_by = ?, human_verdict = ? "
            "WHERE id = ? AND decided_at IS NULL", (now, agent_id, verdict, review_id))
        return bool(cur.rowcount)

    def release_from_triage(self, conversation_id: int, now: str) -> bool:
        """Put a conversation the machine kept out (held or judged spam) in the queue, as new.

        When no person ever changed its status, its status history is dropped with the machine's
        verdict: the service-level clock then counts from the first message, as if it had been in
        the queue from its arrival. Returns False when it was not spam.
        """
        row = self.conn.execute("SELECT status FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None or row[0] != "spam":
            return False
        machine_only = self.conn.execute(
            "SELECT count(*) FROM conversation_status_log WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()[0] == 0
        self.conn.execute("UPDATE conversations SET status = 'new', triage_hold = 0, updated_at = ? WHERE id = ?",
                          (now, conversation_id))
        if machine_only:
            self.conn.execute("DELETE FROM conversation_status_log WHERE conversation_id = ?", (conversation_id,))
            self.conn.execute("UPDATE conversations SET sla_computed_at = NULL WHERE id = ?", (conversation_id,))
        return True

    def forget_machine_spam(self, conversation_id: int) -> None:
        """After a person took a conversation the machine had judged spam out of spam: when that was its
        only status change, its clock counts from the first message (as `release_from_triage`)."""
        rows = self.conn.execute("SELECT old_status FROM conversation_status_log WHERE conversation_id = ?",
                                 (conversation_id,)).fetchall()
        if len(rows) == 1 and rows[0][0] == "spam":
            self.conn.execute("DELETE FROM conversation_status_log WHERE conversation_id = ?", (conversation_id,))
            self.conn.execute("UPDATE conversations SET sla_computed_at = NULL WHERE id = ?", (conversation_id,))

    def end_triage_hold(self, conversation_id: int) -> None:
        self.conn.execute("UPDATE conversations SET triage_hold = 0 WHERE id = ?", (conversation_id,))

    def set_message_verdict(self, conversation_id: int, verdict: str, reason: str) -> None:
        """A person's verdict on a conversation's inbound items (shown beside the machine's probability)."""
        self.conn.execute("UPDATE messages SET spam_verdict = ?, spam_reason = ? "
                          "WHERE conversation_id = ? AND direction = 'in'", (verdict, reason, conversation_id))

    def sample_outcomes(self) -> list[dict[str, Any]]:
        """Per channel, the machine's verdicts on decided samples against the person's (for precision/recall)."""
        cur = self.conn.execute(
            "SELECT channel, "
            "sum(CASE WHEN machine_verdict = 'spam' AND human_verdict = 'spam' THEN 1 ELSE 0 END) AS true_spam, "
            "sum(CASE WHEN machine_verdict = 'spam' AND human_verdict = 'customer' THEN 1 ELSE 0 END) AS false_spam, "
            "sum(CASE WHEN machine_verdict != 'spam' AND human_verdict = 'spam' THEN 1 ELSE 0 END) AS missed_spam, "
            "sum(CASE WHEN machine_verdict != 'spam' AND human_verdict = 'customer' THEN 1 ELSE 0 END) AS true_clean, "
            "count(*) AS decided "
            "FROM triage_reviews WHERE kind = 'sample' AND decided_at IS NOT NULL GROUP BY channel ORDER BY channel")
        return as_dicts(cur)

    # Blocks ----------------------------------------------------------------------------------------

    def add_block(self, kind: str, identity_kind: str, value: str, *, agent_id: int | None, now: str) -> int | None:
        cur = self.conn.execute(
            "INSERT INTO spam_blocks (kind, identity_kind, value, created_at, created_by) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, identity_kind, value) DO NOTHING",
            (kind, identity_kind, value.lower() if kind == "domain" else value, now, agent_id))
        return cur.lastrowid if cur.rowcount else None

    def blocks(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT b.*, a.name AS created_by_name FROM spam_blocks b "
                                "LEFT JOIN agents a ON a.id = b.created_by ORDER BY b.kind, b.value")
        return as_dicts(cur)

    def block(self, block_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM spam_blocks WHERE id = ?", (block_id,))
        return as_dict(cur, cur.fetchone())

    def blocks_matching(self, identity_kind: str, value: str) -> list[dict[str, Any]]:
        """Every block that covers this identity (its normal form, inbox.identity): the address or
        handle itself and, for an email address, its domain."""
        domain = value.rsplit("@", 1)[1].lower() if identity_kind == "email" and "@" in value else None
        cur = self.conn.execute(
            "SELECT * FROM spam_blocks WHERE (kind IN ('address', 'handle') AND identity_kind = ? AND value = ?) "
            "OR (kind = 'domain' AND value = ?) ORDER BY id", (identity_kind, value, domain))
        return as_dicts(cur)

    def remove_block(self, block_id: int) -> bool:
        return bool(self.conn.execute("DELETE FROM spam_blocks WHERE id = ?", (block_id,)).rowcount)

    # Upkeep ----------------------------------------------------------------------------------------

    def old_spam_conversations(self, cutoff: str, limit: int = 500) -> list[int]:
        """Spam conversations nobody is deciding on, quiet since before `cutoff` and spam since then."""
        rows = self.conn.execute(
            "SELECT c.id FROM conversations c WHERE c.status = 'spam' AND c.triage_hold = 0 "
            "AND c.last_message_at < ? AND ifnull((SELECT max(l.at) FROM conversation_status_log l "
            "WHERE l.conversation_id = c.id AND l.new_status = 'spam'), c.created_at) < ? ORDER BY c.id LIMIT ?",
            (cutoff, cutoff, limit)).fetchall()
        return [r[0] for r in rows]

    def delete_conversations(self, conversation_ids: Iterable[int]) -> list[str]:
        """(Uses CustomerQueries' `_select_in` and `_delete_tree`.) Delete conversations with their messages; returns attachment hashes that lost a reference."""
        conv_ids = list(conversation_ids)
        msg_ids = [r[0] for r in self._select_in("SELECT id FROM messages WHERE conversation_id IN ({marks})",
                                                 conv_ids)]
        hashes = sorted({r[0] for r in self._select_in(
            "SELECT sha256 FROM attachments WHERE sha256 IS NOT NULL AND message_id IN ({marks})", msg_ids)})
        self._delete_tree("messages", "id", msg_ids)
        self._delete_tree("conversations", "id", conv_ids)
        return hashes
