"""Ingest stays as fast at the millionth message as at the first (#16): the statements run per batch
or per message find their rows through an index instead of reading a table that grows with every
import. Checked by the query plan, not by timing."""

from __future__ import annotations

import datetime as dt

from inbox.store.base import iso


def _plan(store, sql: str, params: dict | tuple) -> str:
    return " / ".join(row[-1] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_running_clocks_are_found_without_reading_every_open_conversation(store):
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    store.running_service_levels(iso(dt.datetime(2026, 3, 5, tzinfo=dt.UTC)))
    store.conn.set_trace_callback(None)
    [sql] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    plan = _plan(store, sql, ())
    # Bounded by the due time (the expression of queue_urgency), not every row of status new/open.
    assert "queue_urgency (status=? AND <expr><?)" in plan, plan


def test_running_clocks_are_still_the_ones_past_a_due_time(store):
    now = dt.datetime(2026, 3, 5, 12, tzinfo=dt.UTC)
    ids = {}
    hour = dt.timedelta(hours=1)
    cases = [("past", now - hour, "open"), ("future", now + hour, "new"), ("none", None, "open"),
             ("resolved", now - hour, "resolved")]
    for name, due, status in cases:
        with store.write():
            customer = store.create_customer(name, iso(now))
            ids[name] = store.create_conversation(token=f"TOKEN{name}", customer_id=customer, channel="email",
                                                  thread_key=None, subject=name, public=False, automatic=False,
                                                  flags="", now=iso(now - dt.timedelta(days=1)), status=status)
            due_text = iso(due) if due else None
            store.conn.execute("UPDATE conversations SET first_response_due_adequate = ?, sla_due_adequate = ?, "
                               "sla_computed_at = ? WHERE id = ?",
                               (due_text, due_text, iso(now - dt.timedelta(days=1)), ids[name]))
    assert store.running_service_levels(iso(now)) == [ids["past"]]
