"""Store verbs for outbound webhooks (issue 15): subscriptions, the events they listen for, deliveries.

An event is recorded by a trigger (m032) in the transaction of what it reports (the one that stored
the message or changed the status), and only while a subscription listens for its type, so an
installation without webhooks writes nothing more. Deliveries follow the outbox's states:
pending -> sending (lease) -> delivered | retry_wait -> ... | dead. A delivery whose lease ran out
mid-send is simply taken again: receivers dedupe by the event id, so a resend is harmless.
"""

from __future__ import annotations

from typing import Any

from inbox.store.base import as_dict, as_dicts

#: Deliveries per page of a subscription's log.
DELIVERY_PAGE = 25
#: What the delivery log shows of a delivery.
_LOG_COLUMNS = ("d.id, d.subscription_id, d.replay_of, d.state, d.next_at, d.attempts, d.status_code, "
                "d.response_body, d.duration_ms, d.last_error, d.created_at, d.finished_at, e.event_id, "
                "e.type AS event_type")



class WebhookOutQueries:
    conn: Any

    # Events --------------------------------------------------------------------------------------

    def unfanned_webhook_events(self, limit: int = 100) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(
            "SELECT * FROM webhook_out_events WHERE fanned_out_at IS NULL ORDER BY id LIMIT ?", (limit,)))

    def fan_out_webhook_event(self, event_row: int, payload: str, now: str) -> int:
        """Freeze the event's payload and make one delivery per active subscription that listens for it."""
        cur = self.conn.execute(
            "UPDATE webhook_out_events SET payload = ?, fanned_out_at = ? WHERE id = ? AND fanned_out_at IS NULL",
            (payload, now, event_row))
        if not cur.rowcount:
            return 0
        event_type = self.conn.execute("SELECT type FROM webhook_out_events WHERE id = ?",
                                       (event_row,)).fetchone()[0]
        return self.conn.execute(
            "INSERT OR IGNORE INTO webhook_deliveries (subscription_id, event_row, next_at, created_at) "
            "SELECT id, :event_row, :now, :now FROM webhook_subscriptions WHERE state = 'active' "
            "AND instr(' ' || events || ' ', ' ' || :type || ' ') > 0",
            {"event_row": event_row, "now": now, "type": event_type}).rowcount

    def webhook_event_facts(self, conversation_id: int | None, message_id: int | None) -> dict[str, Any]:
        """What a payload tells of a conversation, its customer and a message (no secrets, no file bytes).
        Without a message, a conversation's first one (what a new conversation was opened with)."""
        facts: dict[str, Any] = {}
        if message_id is None and conversation_id is not None:
            first = self.conn.execute("SELECT min(id) FROM messages WHERE conversation_id = ? AND direction = 'in'",
                                      (conversation_id,)).fetchone()
            message_id = first[0] if first else None
        if message_id is not None:
            cur = self.conn.execute(
                "SELECT id, conversation_id, channel, direction, author_name, author_handle, subject, text, "
                "received_at, sent_at, delivery_status FROM messages WHERE id = ?", (message_id,))
            facts["message"] = as_dict(cur, cur.fetchone())
            if facts["message"] is not None:
                facts["message"]["attachments"] = as_dicts(self.conn.execute(
                    "SELECT filename, content_type, size FROM attachments WHERE message_id = ? ORDER BY id",
                    (message_id,)))
                conversation_id = conversation_id or facts["message"]["conversation_id"]
        if conversation_id is not None:
            cur = self.conn.execute(
                "SELECT c.id, c.token, c.channel, c.subject, c.status, c.priority, c.team_id, t.name AS team_name, "
                "c.assignee_id, a.name AS assignee_name, a.email AS assignee_email, c.customer_id, c.created_at, "
                "c.updated_at, c.last_message_at FROM conversations c LEFT JOIN agents a ON a.id = c.assignee_id "
                "LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?", (conversation_id,))
            facts["conversation"] = as_dict(cur, cur.fetchone())
            if facts["conversation"] is not None:
                customer_id = facts["conversation"]["customer_id"]
                cur = self.conn.execute("SELECT id, display_name AS name, locale, crm_ref FROM customers WHERE id = ?",
                                        (customer_id,))
                facts["customer"] = as_dict(cur, cur.fetchone())
                if facts["customer"] is not None:
                    facts["customer"]["identities"] = as_dicts(self.conn.execute(
                        "SELECT kind, value FROM identities WHERE customer_id = ? AND valid = 1 ORDER BY id",
                        (customer_id,)))
        return facts

    # Subscriptions -------------------------------------------------------------------------------

    def create_webhook_subscription(self, *, url: str, events: list[str], secret: str, created_by: int | None,
                                    now: str) -> int:
        """A subscription; `secret` is the sealed secret as stored (JSON text)."""
        return self.conn.execute(
            "INSERT INTO webhook_subscriptions (url, events, secret, created_at, created_by, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", (url, " ".join(events), secret, now, created_by, now)).lastrowid

    def webhook_subscription(self, subscription_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM webhook_subscriptions WHERE id = ?", (subscription_id,))
        row = as_dict(cur, cur.fetchone())
        if row is not None:
            row["events"] = row["events"].split()
        return row

    def webhook_subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription with its last finished delivery and its failed deliveries (dead or retrying)."""
        rows = as_dicts(self.conn.execute(
            "SELECT s.*, "
            "(SELECT max(finished_at) FROM webhook_deliveries d WHERE d.subscription_id = s.id "
            " AND d.state = 'delivered') AS last_delivery_at, "
            "(SELECT d.status_code FROM webhook_deliveries d WHERE d.subscription_id = s.id AND d.attempts > 0 "
            " AND d.state != 'sending' ORDER BY d.id DESC LIMIT 1) AS last_status_code, "
            "(SELECT count(*) FROM webhook_deliveries d WHERE d.subscription_id = s.id "
            " AND d.state IN ('retry_wait', 'dead')) AS failures "
            "FROM webhook_subscriptions s ORDER BY s.id"))
        for row in rows:
            row["events"] = row["events"].split()
        return rows

    def set_webhook_subscription_state(self, subscription_id: int, state: str, now: str,
                                       reason: str | None = None) -> bool:
        """Pause or resume; resuming starts a fresh failure count. True if the state changed."""
        cur = self.conn.execute(
            "UPDATE webhook_subscriptions SET state = :state, updated_at = :now, "
            "paused_at = CASE WHEN :state = 'paused' THEN :now END, "
            "paused_reason = CASE WHEN :state = 'paused' THEN :reason END, "
            "failing_since = CASE WHEN :state = 'active' THEN NULL ELSE failing_since END "
            "WHERE id = :id AND state != :state",
            {"state": state, "now": now, "reason": reason, "id": subscription_id})
        return cur.rowcount == 1

    def release_held_webhook_deliveries(self, subscription_id: int, now: str) -> int:
        """A resumed subscription's waiting deliveries are due at once, not at their old backoff time."""
        return self.conn.execute(
            "UPDATE webhook_deliveries SET next_at = ? WHERE subscription_id = ? AND state IN ('pending', 'retry_wait') "
            "AND next_at > ?", (now, subscription_id, now)).rowcount

    def forget_webhook_out_events(self, before: str) -> int:
        """Drop events made before `before` whose deliveries are all finished, with their deliveries: the
        payloads hold customers' messages, kept no longer than the log is useful."""
        old = ("SELECT id FROM webhook_out_events e WHERE e.created_at < :before AND e.fanned_out_at IS NOT NULL "
               "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_row = e.id "
               "AND d.state NOT IN ('delivered', 'dead'))")
        self.conn.execute(f"DELETE FROM webhook_deliveries WHERE event_row IN ({old})",  # noqa: S608 - fixed text
                          {"before": before})
        return self.conn.execute(f"DELETE FROM webhook_out_events WHERE id IN ({old})",  # noqa: S608 - fixed text
                                 {"before": before}).rowcount

    def update_webhook_subscription(self, subscription_id: int, *, url: str, events: list[str], now: str) -> bool:
        """A subscription's new receiver and events; its secret, state and log stay."""
        return self.conn.execute(
            "UPDATE webhook_subscriptions SET url = ?, events = ?, updated_at = ? WHERE id = ?",
            (url, " ".join(events), now, subscription_id)).rowcount == 1

    def delete_webhook_subscription(self, subscription_id: int) -> bool:
        return self.conn.execute("DELETE FROM webhook_subscriptions WHERE id = ?", (subscription_id,)).rowcount == 1

    # Deliveries ----------------------------------------------------------------------------------

    def claim_webhook_deliveries(self, now: str, lease_until: str, limit: int = 20) -> list[dict[str, Any]]:
        """Take due deliveries of active subscriptions under a lease, with what sending them needs.

        A delivery whose lease ran out belongs to a sender that stopped; whether the receiver got it is
        unknown, and it is simply sent again (receivers dedupe by the event id)."""
        ids = [r[0] for r in self.conn.execute(
            "SELECT d.id FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id "
            "WHERE s.state = 'active' AND ((d.state IN ('pending', 'retry_wait') AND d.next_at <= ?) "
            "OR (d.state = 'sending' AND d.lease_until < ?)) ORDER BY d.next_at, d.id LIMIT ?",
            (now, now, limit))]
        claimed = []
        for delivery_id in ids:
            cur = self.conn.execute(
                "UPDATE webhook_deliveries SET state = 'sending', lease_until = ?, attempts = attempts + 1, "
                "attempt_started_at = NULL WHERE id = ? AND (state IN ('pending', 'retry_wait') "
                "OR state = 'sending' AND lease_until < ?)", (lease_until, delivery_id, now))
            if cur.rowcount:
                claimed.append(self.webhook_delivery(delivery_id))
        return claimed

    def start_webhook_attempt(self, delivery_id: int, claimed_until: str, now: str, lease_until: str) -> bool:
        """Record that the request is being made now, if our claim (proven by its lease) still holds."""
        return self.conn.execute(
            "UPDATE webhook_deliveries SET attempt_started_at = ?, lease_until = ? WHERE id = ? "
            "AND state = 'sending' AND lease_until = ?", (now, lease_until, delivery_id, claimed_until)).rowcount == 1

    def finish_webhook_attempt(self, delivery_id: int, *, state: str, now: str, status_code: int | None,
                               response_body: str | None, duration_ms: int | None, error: str | None,
                               next_at: str | None = None) -> None:
        """The attempt's outcome: `delivered`, `retry_wait` (at `next_at`) or `dead`."""
        self.conn.execute(
            "UPDATE webhook_deliveries SET state = ?, next_at = coalesce(?, next_at), lease_until = NULL, "
            "status_code = ?, response_body = ?, duration_ms = ?, last_error = ?, "
            "finished_at = CASE WHEN ? IN ('delivered', 'dead') THEN ? ELSE finished_at END WHERE id = ?",
            (state, next_at, status_code, response_body, duration_ms, error, state, now, delivery_id))

    def note_webhook_outcome(self, subscription_id: int, *, ok: bool, now: str) -> str | None:
        """A success ends a run of failures; a failure starts one. The start of the run (None after a success)."""
        if ok:
            self.conn.execute("UPDATE webhook_subscriptions SET failing_since = NULL WHERE id = ?", (subscription_id,))
            return None
        self.conn.execute("UPDATE webhook_subscriptions SET failing_since = coalesce(failing_since, ?) WHERE id = ?",
                          (now, subscription_id))
        row = self.conn.execute("SELECT failing_since FROM webhook_subscriptions WHERE id = ?",
                                (subscription_id,)).fetchone()
        return row[0] if row else None

    def webhook_delivery(self, delivery_id: int) -> dict[str, Any] | None:
        cur = self.conn.execute(
            "SELECT d.*, e.event_id, e.type AS event_type, e.payload, e.created_at AS event_created_at, "
            "s.url, s.secret FROM webhook_deliveries d JOIN webhook_out_events e ON e.id = d.event_row "
            "JOIN webhook_subscriptions s ON s.id = d.subscription_id WHERE d.id = ?", (delivery_id,))
        return as_dict(cur, cur.fetchone())

    def webhook_deliveries(self, subscription_id: int, *, before: int | None = None,
                           limit: int = DELIVERY_PAGE) -> list[dict[str, Any]]:
        """A page of a subscription's delivery log, newest first (no payload, no secret)."""
        return as_dicts(self.conn.execute(
            f"SELECT {_LOG_COLUMNS} FROM webhook_deliveries d JOIN webhook_out_events e "  # noqa: S608 - fixed text
            "ON e.id = d.event_row WHERE d.subscription_id = ? AND d.id < ? ORDER BY d.id DESC LIMIT ?",
            (subscription_id, before if before is not None else 1 << 62, limit)))

    def webhook_log_entry(self, delivery_id: int) -> dict[str, Any] | None:
        """One delivery as the log shows it (no payload, no secret)."""
        cur = self.conn.execute(
            f"SELECT {_LOG_COLUMNS} FROM webhook_deliveries d JOIN webhook_out_events e "  # noqa: S608 - fixed text
            "ON e.id = d.event_row WHERE d.id = ?", (delivery_id,))
        return as_dict(cur, cur.fetchone())

    def replay_webhook_delivery(self, delivery_id: int, now: str) -> int | None:
        """A new delivery of the same event (same id, same body) to the same subscription, due at once."""
        row = self.conn.execute("SELECT subscription_id, event_row FROM webhook_deliveries WHERE id = ?",
                                (delivery_id,)).fetchone()
        if row is None:
            return None
        return self.conn.execute(
            "INSERT INTO webhook_deliveries (subscription_id, event_row, replay_of, next_at, created_at) "
            "VALUES (?, ?, ?, ?, ?)", (row[0], row[1], delivery_id, now, now)).lastrowid

    def queue_webhook_test(self, subscription_id: int, *, event_id: str, payload: str, now: str) -> int:
        """A test event for one subscription only, delivered like any other."""
        event_row = self.conn.execute(
            "INSERT INTO webhook_out_events (event_id, type, data, payload, created_at, fanned_out_at) "
            "VALUES (?, 'webhook.test', '{}', ?, ?, ?)", (event_id, payload, now, now)).lastrowid
        return self.conn.execute(
            "INSERT INTO webhook_deliveries (subscription_id, event_row, next_at, created_at) VALUES (?, ?, ?, ?)",
            (subscription_id, event_row, now, now)).lastrowid

    def queue_webhook_event(self, subscription_id: int, *, event_id: str, event_type: str, payload: str,
                            conversation_id: int | None, now: str) -> int:
        """An event for one subscription only (a rule's webhook action), its payload frozen, delivered like
        any other; the delivery's id. Call inside the transaction of what the event reports."""
        event_row = self.conn.execute(
            "INSERT INTO webhook_out_events (event_id, type, conversation_id, data, payload, created_at, fanned_out_at) "
            "VALUES (?, ?, ?, '{}', ?, ?, ?)", (event_id, event_type, conversation_id, payload, now, now)).lastrowid
        return self.conn.execute(
            "INSERT INTO webhook_deliveries (subscription_id, event_row, next_at, created_at) VALUES (?, ?, ?, ?)",
            (subscription_id, event_row, now, now)).lastrowid
