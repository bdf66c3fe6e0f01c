"""live changes told by NOTIFY, and rate-limit counters every node shares

Two things only PostgreSQL has, for an installation on several processes or machines:

* `mainland_changes`: a transaction that moves `conversation_changes` (the watermark of changed
  conversations that live pages follow) sends `NOTIFY mainland_changes` with the newest change
  number. PostgreSQL delivers it when the transaction commits, to every listening session on every
  machine, so a live page learns of another node's write within milliseconds instead of on its next
  look a second later (inbox/store/pg_notify.py). Once a transaction: the trigger is deferred to the
  commit, where every changed row reads the same newest number, and PostgreSQL sends a transaction's
  identical notices once (an import of a thousand conversations tells once, not a thousand times).
* `rate_counters`: the web app's rate-limit counters (inbox/store/rate_limits.py), one row a key.
  SQLite keeps them in a file of its own beside the database (`<data_dir>/rate-limits.db`), which
  machines do not share. UNLOGGED: a counter is cheap to lose and written on every counted request,
  so it skips the write-ahead log; after a crash (and on a failover standby) the counters start
  again from zero, which lets a client a few more attempts, never fewer.

Revision ID: 0005
Revises: 0004
Created: 2026-12-07 14:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

def upgrade() -> None:
    # The channel's name is inbox/store/pg_notify.CHANNEL; a revision imports nothing of Mainland's.
    op.execute("""
CREATE FUNCTION notify_conversation_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mainland_changes', (SELECT coalesce(max(seq), 0) FROM conversation_changes)::text);
    RETURN NULL;
END
$$""")
    op.execute("CREATE CONSTRAINT TRIGGER notify_conversation_changes AFTER INSERT OR UPDATE ON conversation_changes "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION notify_conversation_changes()")
    op.execute("CREATE UNLOGGED TABLE rate_counters (key text PRIMARY KEY, hits bigint NOT NULL, "
               "expires_at double precision NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE rate_counters")
    op.execute("DROP TRIGGER notify_conversation_changes ON conversation_changes")
    op.execute("DROP FUNCTION notify_conversation_changes()")
