"""Ingest stays as fast at the millionth message as at the first (#16): the statements run per batch
or per message find their rows through an index instead of reading a table that grows with every
import. Checked by the query plan, not by timing."""

from __future__ import annotations

import datetime as dt

import pytest

from inbox import spam_model, triage_flow
from inbox.mail import parse_email
from inbox.models import FetchResult, InboundItem
from inbox.store.base import iso
from tests.mailfactory import raw_mail


def _sqlite_only(store) -> None:
    if store.engine != "sqlite":
        pytest.skip("measured by SQLite's own query plan or instruction count; PostgreSQL's by its bench")


def _plan(store, sql: str, params: dict | tuple) -> str:
    _sqlite_only(store)
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


# Work per message that must not grow with what is already stored ----------------------------------
# Counted in SQLite virtual-machine steps (a progress handler), which do not depend on the machine's load.


def _steps(store, call) -> int:
    """SQLite virtual-machine instructions run by `call()` (in tens)."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    _sqlite_only(store)
    store.conn.set_progress_handler(tick, 10)
    try:
        call()
    finally:
        store.conn.set_progress_handler(None, 0)
    return steps


def _mail(sender: str, n: int) -> InboundItem:
    return parse_email(raw_mail(sender=sender, subject=f"Question {n}", body=f"Question number {n}, please."),
                       channel="mail")


def _ingest(ingestor, *items: InboundItem) -> None:
    ingestor.ingest("mail", FetchResult(items=list(items), cursor=None), save_cursor=False)


def test_a_message_from_a_customer_with_a_long_history_costs_what_it_costs_for_a_new_one(ingestor, store):
    # A mailing list or a regular customer writes thousands of conversations; the triage verdict
    # counted every one of them for each new message, so a long import slowed down with each (#16).
    sender = "List <list@example.net>"
    _ingest(ingestor, *(_mail(sender, n) for n in range(10)))
    early = _steps(store, lambda: _ingest(ingestor, _mail(sender, 10)))
    _ingest(ingestor, *(_mail(sender, n) for n in range(11, 300)))
    late = _steps(store, lambda: _ingest(ingestor, _mail(sender, 300)))
    assert late < early * 1.2, (early, late)


def test_the_verdict_still_sees_as_much_history_as_the_model_reads(ingestor, store):
    sender = "Regular <regular@example.net>"
    _ingest(ingestor, *(_mail(sender, n) for n in range(30)))
    customer_id = store.execute("SELECT customer_id FROM messages LIMIT 1").fetchone()[0]
    _verdict, facts = ingestor.triage.judge(store, "mail", _mail(sender, 30), "text", customer_id, None)
    assert facts["known_customer"] is True
    # The model reads up to MAX_PRIOR_CONVERSATIONS; the count may stop there, not before.
    assert facts["prior_conversations"] >= spam_model.MAX_PRIOR_CONVERSATIONS
    assert facts["prior_conversations"] == triage_flow.PRIOR_CONVERSATIONS_COUNTED < 30
