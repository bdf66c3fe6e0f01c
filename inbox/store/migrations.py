"""SQLite's own schema migrations, m001-m045: one function per change, applied in order, never edited.

Frozen (#17): this chain brings a database of an earlier Mainland to the baseline and takes no more
steps. Every later change is an Alembic revision for both engines (`inbox/store/revisions/`,
`inbox/store/sqlite_schema.py`; docs/architecture.md, "Changing the schema").

A migration imports nothing of Mainland's own: what it computes is written here, so that it gives
the same result on every later version (tests/test_migrations_frozen.py holds it to that).

The data model follows shared/design.md: customers with identities, conversations, messages with
an FTS5 index, attachments by content hash, quarantine, cursors, outbox, agents and teams, an
audit log and leases. Columns for later work (service levels, routing) are added by later
migrations, not guessed at here.
"""

from __future__ import annotations

import re
import unicodedata

from sqlite_utils import Database, Migrations

migrations = Migrations("mainland")


@migrations()
def m001_core(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            display_name TEXT NOT NULL DEFAULT '',
            locale TEXT,
            owner_agent_id INTEGER REFERENCES agents(id),
            crm_ref TEXT,
            merged_into INTEGER REFERENCES customers(id),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE identities (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            display TEXT NOT NULL DEFAULT '',
            valid INTEGER NOT NULL DEFAULT 1,
            delivery_failed INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (kind, value)
        );
        CREATE INDEX identities_customer ON identities(customer_id);

        CREATE TABLE teams (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE
        );
        CREATE TABLE agents (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL DEFAULT '',
            password_hash TEXT,
            role TEXT NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'lead', 'manager', 'admin')),
            locale TEXT,
            active INTEGER NOT NULL DEFAULT 1,
            session_epoch INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE team_members (
            team_id INTEGER NOT NULL REFERENCES teams(id),
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            PRIMARY KEY (team_id, agent_id)
        );

        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            token TEXT NOT NULL UNIQUE,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            channel TEXT NOT NULL,
            thread_key TEXT,
            subject TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'open', 'pending', 'snoozed', 'resolved', 'spam')),
            priority INTEGER NOT NULL DEFAULT 0,
            assignee_id INTEGER REFERENCES agents(id),
            team_id INTEGER REFERENCES teams(id),
            public INTEGER NOT NULL DEFAULT 0,
            automatic INTEGER NOT NULL DEFAULT 0,
            flags TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            last_message_at TEXT NOT NULL,
            last_inbound_at TEXT,
            first_response_at TEXT
        );
        CREATE INDEX conversations_activity ON conversations(status, last_message_at);
        CREATE INDEX conversations_customer ON conversations(customer_id);
        CREATE INDEX conversations_thread ON conversations(channel, thread_key);

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            channel TEXT NOT NULL,
            external_id TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'note')),
            customer_id INTEGER REFERENCES customers(id),
            agent_id INTEGER REFERENCES agents(id),
            author_name TEXT NOT NULL DEFAULT '',
            author_handle TEXT NOT NULL DEFAULT '',
            subject TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL DEFAULT '',
            html TEXT,
            message_id TEXT,
            refs TEXT NOT NULL DEFAULT '',
            flags TEXT NOT NULL DEFAULT '',
            defects TEXT NOT NULL DEFAULT '',
            headers TEXT NOT NULL DEFAULT '{}',
            source_ref TEXT,
            size INTEGER,
            sent_at TEXT,
            received_at TEXT NOT NULL,
            delivery_status TEXT,
            delivery_error TEXT,
            UNIQUE (channel, external_id)
        );
        CREATE INDEX messages_conversation ON messages(conversation_id, id);
        CREATE INDEX messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL;

        CREATE TABLE raw_messages (
            message_id INTEGER PRIMARY KEY REFERENCES messages(id),
            data BLOB NOT NULL
        );

        CREATE TABLE attachments (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id),
            filename TEXT NOT NULL,
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT,
            stored INTEGER NOT NULL DEFAULT 1,
            content_id TEXT,
            inline INTEGER NOT NULL DEFAULT 0,
            type_mismatch INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX attachments_message ON attachments(message_id);

        CREATE TABLE cursors (
            channel TEXT PRIMARY KEY,
            value TEXT,
            updated_at TEXT
        );
        CREATE TABLE channel_health (
            channel TEXT PRIMARY KEY,
            last_poll_at TEXT,
            last_success_at TEXT,
            last_error TEXT,
            last_error_at TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            paused_until TEXT,
            items_total INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            source_ref TEXT,
            sha256 TEXT NOT NULL,
            raw BLOB NOT NULL,
            reason TEXT NOT NULL,
            exception TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'released', 'deleted')),
            message_id INTEGER REFERENCES messages(id),
            UNIQUE (channel, sha256)
        );

        CREATE TABLE outbox (
            id TEXT PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id),
            channel TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'retry_wait', 'sent', 'failed', 'dead', 'needs_review')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL,
            lease_until TEXT,
            last_error TEXT,
            provider_id TEXT,
            possible_duplicate INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX outbox_due ON outbox(state, next_at);

        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            object_type TEXT,
            object_id TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        );

        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        """
    )
    db["messages"].enable_fts(
        ["subject", "text", "author_name", "author_handle"],
        fts_version="FTS5",
        create_triggers=True,
        tokenize="unicode61 remove_diacritics 2",
    )


@migrations()
def m002_webhook_events(db: Database) -> None:
    # Event ids of webhook deliveries already taken in (dedupe of provider retries), and refused
    # deliveries (a secret rotated on one side only must be visible, not silent).
    db.executescript(
        """
        CREATE TABLE webhook_events (
            channel TEXT NOT NULL,
            event_id TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (channel, event_id)
        );
        CREATE INDEX webhook_events_received ON webhook_events(received_at);
        CREATE TABLE webhook_refusals (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            at TEXT NOT NULL,
            remote_addr TEXT,
            reason TEXT NOT NULL
        );
        CREATE INDEX webhook_refusals_at ON webhook_refusals(channel, at);
        """
    )


@migrations()
def m003_access(db: Database) -> None:
    # Invitations keep only the SHA-256 of their token (a copied database yields no working link);
    # revoked_at is set when a newer invitation replaces an unused one. The audit index serves the
    # "last sign-in" column of the agent list; the team index serves per-team conversation lists.
    db.executescript(
        """
        CREATE TABLE agent_invitations (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            created_by INTEGER REFERENCES agents(id),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX agent_invitations_agent ON agent_invitations(agent_id);
        CREATE INDEX audit_log_action ON audit_log(action, object_type, object_id);
        CREATE INDEX conversations_team ON conversations(team_id, last_message_at);
        """
    )


@migrations()
def m005_conversation_work(db: Database) -> None:
    # What agents do in a conversation: snoozing, merging, mentions, presence, and a change
    # watermark for live updates. Notes are messages with direction 'note' (m001).
    #
    # `conversation_changes` holds one row per conversation with the sequence number of its last
    # change; triggers keep it current whoever writes (ingest, outbox, web), so the live-update
    # stream asks one indexed question per tick: "which conversations changed after seq N?".
    # `created_seq` tells a new conversation from a changed one.
    statements = [
        "ALTER TABLE conversations ADD COLUMN snoozed_until TEXT",
        "ALTER TABLE conversations ADD COLUMN merged_into INTEGER REFERENCES conversations(id)",
        "CREATE INDEX conversations_snoozed ON conversations(snoozed_until) WHERE snoozed_until IS NOT NULL",
        """CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            conversation_id INTEGER REFERENCES conversations(id) ON DELETE CASCADE,
            message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            actor_id INTEGER REFERENCES agents(id) ON DELETE SET NULL,
            created_at TEXT NOT NULL,
            read_at TEXT
        )""",
        "CREATE INDEX notifications_agent ON notifications(agent_id, read_at, id)",
        "CREATE INDEX notifications_conversation ON notifications(conversation_id)",
        """CREATE TABLE presence (
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            state TEXT NOT NULL CHECK (state IN ('viewing', 'typing')),
            seen_at TEXT NOT NULL,
            PRIMARY KEY (conversation_id, agent_id)
        )""",
        """CREATE TABLE conversation_merges (
            id INTEGER PRIMARY KEY,
            source_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            target_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            agent_id INTEGER REFERENCES agents(id) ON DELETE SET NULL,
            message_ids TEXT NOT NULL,
            source_status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            undone_at TEXT
        )""",
        "CREATE INDEX conversation_merges_source ON conversation_merges(source_id)",
        "CREATE INDEX conversation_merges_target ON conversation_merges(target_id)",
        """CREATE TABLE conversation_changes (
            conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            created_seq INTEGER NOT NULL
        )""",
        "CREATE INDEX conversation_changes_seq ON conversation_changes(seq)",
        # Leaving 'snoozed' any way at all (a customer's message, an agent, the wake-up job) ends the snooze.
        """CREATE TRIGGER conversations_unsnooze AFTER UPDATE OF status ON conversations
           WHEN NEW.status != 'snoozed' AND NEW.snoozed_until IS NOT NULL
           BEGIN UPDATE conversations SET snoozed_until = NULL WHERE id = NEW.id; END""",
        """CREATE TRIGGER conversations_changed_insert AFTER INSERT ON conversations BEGIN
             INSERT INTO conversation_changes (conversation_id, seq, created_seq)
             SELECT NEW.id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s);
           END""",
        """CREATE TRIGGER conversations_changed_update AFTER UPDATE OF status, assignee_id, team_id, priority,
             last_message_at, snoozed_until, merged_into, subject, customer_id ON conversations BEGIN
             INSERT INTO conversation_changes (conversation_id, seq, created_seq)
             SELECT NEW.id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s) WHERE 1
             ON CONFLICT (conversation_id) DO UPDATE SET seq = excluded.seq;
           END""",
        """CREATE TRIGGER messages_changed_insert AFTER INSERT ON messages BEGIN
             INSERT INTO conversation_changes (conversation_id, seq, created_seq)
             SELECT NEW.conversation_id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s)
             WHERE 1 ON CONFLICT (conversation_id) DO UPDATE SET seq = excluded.seq;
           END""",
        """CREATE TRIGGER messages_changed_update AFTER UPDATE OF delivery_status, conversation_id ON messages BEGIN
             INSERT INTO conversation_changes (conversation_id, seq, created_seq)
             SELECT NEW.conversation_id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s)
             WHERE 1 ON CONFLICT (conversation_id) DO UPDATE SET seq = excluded.seq;
           END""",
        # Conversations that exist before this migration start at seq 0: nothing to announce.
        "INSERT INTO conversation_changes (conversation_id, seq, created_seq) SELECT id, 0, 0 FROM conversations",
    ]
    for sql in statements:
        db.execute(sql)


#: The text the conversation search index holds for a customer: name, then every identity.
_CUSTOMER_SEARCH_TEXT = (
    "(SELECT cu.display_name || ' ' || ifnull((SELECT group_concat(i.value || ' ' || i.display, ' ') "
    "FROM identities i WHERE i.customer_id = cu.id), '') FROM customers cu WHERE cu.id = {customer})"
)

#: When the customer started waiting: their first inbound message after our latest reply.
_WAITING_SINCE = (
    "(SELECT min(m.received_at) FROM messages m WHERE m.conversation_id = {conversation} AND m.direction = 'in' "
    "AND m.id > ifnull((SELECT max(o.id) FROM messages o WHERE o.conversation_id = {conversation} "
    "AND o.direction = 'out'), 0))"
)


@migrations()
def m004_queue(db: Database) -> None:
    # Labels, saved views and per-agent "seen up to" marks for the queue; `waiting_since` kept by
    # triggers so that every writer (ingest, outbox, merges) keeps it right without knowing of it;
    # indexes that let a queue page be read in sort order per status and stop after a page
    # (conversations_activity of m001 for activity; queue_waiting, which also holds the filter
    # columns so that filters and counts need no table reads; queue_assignee for "mine", which is
    # selective); and an FTS5 index over conversation
    # subjects and their customers' names and identities (messages have theirs since m001).
    customer_of_new = _CUSTOMER_SEARCH_TEXT.format(customer="NEW.customer_id")
    db.executescript(
        f"""
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            color TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE conversation_labels (
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
            PRIMARY KEY (conversation_id, label_id)
        ) WITHOUT ROWID;
        CREATE INDEX conversation_labels_label ON conversation_labels(label_id, conversation_id);

        CREATE TABLE saved_views (
            id INTEGER PRIMARY KEY,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            name TEXT NOT NULL,
            filters TEXT NOT NULL DEFAULT '{{}}',
            created_at TEXT NOT NULL,
            UNIQUE (agent_id, name)
        );

        CREATE TABLE conversation_seen (
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            message_id INTEGER NOT NULL,
            PRIMARY KEY (agent_id, conversation_id)
        ) WITHOUT ROWID;

        ALTER TABLE conversations ADD COLUMN waiting_since TEXT;
        UPDATE conversations SET waiting_since = {_WAITING_SINCE.format(conversation="conversations.id")};
        CREATE TRIGGER conversations_waiting_in AFTER INSERT ON messages WHEN NEW.direction = 'in' BEGIN
            UPDATE conversations SET waiting_since = ifnull(waiting_since, NEW.received_at)
            WHERE id = NEW.conversation_id;
        END;
        CREATE TRIGGER conversations_waiting_out AFTER INSERT ON messages WHEN NEW.direction = 'out' BEGIN
            UPDATE conversations SET waiting_since = NULL WHERE id = NEW.conversation_id;
        END;
        CREATE TRIGGER conversations_waiting_moved AFTER UPDATE OF conversation_id ON messages BEGIN
            UPDATE conversations SET waiting_since = {_WAITING_SINCE.format(conversation="conversations.id")}
            WHERE id IN (OLD.conversation_id, NEW.conversation_id);
        END;

        CREATE INDEX queue_waiting ON conversations(status, ifnull(waiting_since, '~'), team_id, channel,
                                                    assignee_id, priority);
        CREATE INDEX queue_assignee ON conversations(assignee_id, status, last_message_at);

        CREATE VIRTUAL TABLE conversation_search USING fts5(
            subject, customer, tokenize = 'unicode61 remove_diacritics 2'
        );
        INSERT INTO conversation_search (rowid, subject, customer)
            SELECT c.id, c.subject, {_CUSTOMER_SEARCH_TEXT.format(customer="c.customer_id")} FROM conversations c;
        CREATE TRIGGER conversation_search_ai AFTER INSERT ON conversations BEGIN
            INSERT INTO conversation_search (rowid, subject, customer) VALUES (NEW.id, NEW.subject, {customer_of_new});
        END;
        CREATE TRIGGER conversation_search_au AFTER UPDATE OF subject, customer_id ON conversations BEGIN
            UPDATE conversation_search SET subject = NEW.subject, customer = {customer_of_new} WHERE rowid = NEW.id;
        END;
        CREATE TRIGGER conversation_search_ad AFTER DELETE ON conversations BEGIN
            DELETE FROM conversation_search WHERE rowid = OLD.id;
        END;
        CREATE TRIGGER conversation_search_customer AFTER UPDATE OF display_name ON customers BEGIN
            UPDATE conversation_search SET customer = {_CUSTOMER_SEARCH_TEXT.format(customer="NEW.id")}
            WHERE rowid IN (SELECT id FROM conversations WHERE customer_id = NEW.id);
        END;
        CREATE TRIGGER conversation_search_identity_ai AFTER INSERT ON identities BEGIN
            UPDATE conversation_search SET customer = {customer_of_new}
            WHERE rowid IN (SELECT id FROM conversations WHERE customer_id = NEW.customer_id);
        END;
        CREATE TRIGGER conversation_search_identity_au AFTER UPDATE ON identities BEGIN
            UPDATE conversation_search SET customer = {_CUSTOMER_SEARCH_TEXT.format(customer="OLD.customer_id")}
            WHERE rowid IN (SELECT id FROM conversations WHERE customer_id = OLD.customer_id);
            UPDATE conversation_search SET customer = {customer_of_new}
            WHERE rowid IN (SELECT id FROM conversations WHERE customer_id = NEW.customer_id);
        END;
        CREATE TRIGGER conversation_search_identity_ad AFTER DELETE ON identities BEGIN
            UPDATE conversation_search SET customer = {_CUSTOMER_SEARCH_TEXT.format(customer="OLD.customer_id")}
            WHERE rowid IN (SELECT id FROM conversations WHERE customer_id = OLD.customer_id);
        END;
        """  # noqa: S608 (constants of this module only)
    )


@migrations()
def m007_service_levels(db: Database) -> None:
    # Service levels (inbox/service_levels.py), satisfaction surveys (inbox/csat.py) and the weekly
    # digest (inbox/digest.py). Policies live in the config file, not here: they are few, reviewed
    # like code, and the due times computed from them are stored on each conversation instead.
    #
    # The status log is written by triggers, so that every status change (by an agent, by a new
    # message reopening a conversation, by any later automation) is recorded without each writer
    # remembering to: pauses and resolution times are computed from it. The same triggers mark the
    # conversation's service levels as stale (sla_computed_at NULL) for the worker to recompute.
    db.executescript(
        """
        ALTER TABLE conversations ADD COLUMN sla_policy TEXT;
        ALTER TABLE conversations ADD COLUMN first_response_due_desired TEXT;
        ALTER TABLE conversations ADD COLUMN first_response_due_adequate TEXT;
        ALTER TABLE conversations ADD COLUMN next_response_due_desired TEXT;
        ALTER TABLE conversations ADD COLUMN next_response_due_adequate TEXT;
        ALTER TABLE conversations ADD COLUMN resolution_due_desired TEXT;
        ALTER TABLE conversations ADD COLUMN resolution_due_adequate TEXT;
        ALTER TABLE conversations ADD COLUMN sla_due_desired TEXT;
        ALTER TABLE conversations ADD COLUMN sla_due_adequate TEXT;
        ALTER TABLE conversations ADD COLUMN sla_paused_since TEXT;
        ALTER TABLE conversations ADD COLUMN sla_paused_seconds REAL NOT NULL DEFAULT 0;
        ALTER TABLE conversations ADD COLUMN first_response_seconds REAL;
        ALTER TABLE conversations ADD COLUMN first_response_level TEXT;
        ALTER TABLE conversations ADD COLUMN resolution_seconds REAL;
        ALTER TABLE conversations ADD COLUMN resolution_level TEXT;
        ALTER TABLE conversations ADD COLUMN next_response_breaches INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE conversations ADD COLUMN resolved_at TEXT;
        ALTER TABLE conversations ADD COLUMN sla_computed_at TEXT;
        CREATE INDEX conversations_sla_due ON conversations(sla_due_adequate) WHERE sla_due_adequate IS NOT NULL;
        CREATE INDEX conversations_sla_stale ON conversations(id) WHERE sla_computed_at IS NULL;
        CREATE INDEX conversations_created ON conversations(created_at);

        CREATE TABLE conversation_status_log (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            at TEXT NOT NULL,
            old_status TEXT,
            new_status TEXT NOT NULL
        );
        CREATE INDEX conversation_status_log_conversation ON conversation_status_log(conversation_id, at);

        CREATE TRIGGER conversation_status_logged AFTER UPDATE OF status ON conversations
        WHEN OLD.status IS NOT NEW.status
        BEGIN
            INSERT INTO conversation_status_log (conversation_id, at, old_status, new_status)
            VALUES (NEW.id,
                    CASE WHEN NEW.updated_at > OLD.updated_at THEN NEW.updated_at
                         ELSE strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') END,
                    OLD.status, NEW.status);
            UPDATE conversations SET sla_computed_at = NULL WHERE id = NEW.id;
        END;
        CREATE TRIGGER conversation_sla_inputs_changed AFTER UPDATE OF priority, team_id, channel ON conversations
        BEGIN
            UPDATE conversations SET sla_computed_at = NULL WHERE id = NEW.id;
        END;
        CREATE TRIGGER message_marks_sla_stale AFTER INSERT ON messages
        BEGIN
            UPDATE conversations SET sla_computed_at = NULL WHERE id = NEW.conversation_id;
        END;

        -- One row per warning or breach announced to the leads (the notifications themselves go
        -- to the `notifications` table): a due time is announced once, however often the check runs.
        CREATE TABLE sla_notifications (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            metric TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('warning', 'breach')),
            due_at TEXT NOT NULL,
            notified INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (conversation_id, metric, kind, due_at)
        );

        CREATE TABLE csat_surveys (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL UNIQUE REFERENCES conversations(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            customer_id INTEGER REFERENCES customers(id),
            agent_id INTEGER REFERENCES agents(id),
            team_id INTEGER REFERENCES teams(id),
            kind TEXT NOT NULL CHECK (kind IN ('link', 'chat')),
            state TEXT NOT NULL DEFAULT 'asked' CHECK (state IN ('asked', 'answered', 'expired')),
            token_hash TEXT UNIQUE,
            message_id INTEGER REFERENCES messages(id),
            first_response_seconds REAL,
            asked_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            score INTEGER CHECK (score BETWEEN 1 AND 5),
            comment TEXT,
            answered_at TEXT,
            answer_message_id INTEGER REFERENCES messages(id)
        );
        CREATE INDEX csat_surveys_answered ON csat_surveys(answered_at) WHERE answered_at IS NOT NULL;
        CREATE INDEX csat_surveys_asked ON csat_surveys(asked_at);

        CREATE TABLE digests (
            week TEXT PRIMARY KEY,
            period_start TEXT NOT NULL,
            period_end TEXT NOT NULL,
            subject TEXT NOT NULL,
            html TEXT NOT NULL,
            text TEXT NOT NULL,
            figures TEXT NOT NULL DEFAULT '{}',
            generated_at TEXT NOT NULL,
            sent_at TEXT,
            recipients TEXT NOT NULL DEFAULT '',
            send_error TEXT
        );
        CREATE TABLE digest_images (
            week TEXT NOT NULL REFERENCES digests(week) ON DELETE CASCADE,
            name TEXT NOT NULL,
            png BLOB NOT NULL,
            PRIMARY KEY (week, name)
        );
        """
    )


# Name keys as m006 and m006b fill them in, frozen here: a migration must give the same result on
# every future version, whatever inbox/identity.py later makes of names (#17). Equal to
# `inbox.identity.name_key` / `name_tokens` when written; the ingest keeps later keys up to date.
_NAME_NOISE = frozenset({"mr", "mrs", "ms", "miss", "dr", "dhr", "mevr", "mw", "ir", "drs", "prof", "hr", "fam",
                         "familie"})
_NAME_PARTICLES = frozenset({"de", "van", "der", "den", "het", "te", "ten", "ter", "von", "zu", "la", "le", "du", "da",
                             "di", "del", "dos", "el", "al", "bin", "y", "t", "s", "op", "in"})


def _name_key(name: str) -> str:
    if "@" in (name or "") or "://" in (name or ""):
        return ""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    if text.count(",") == 1:
        last, first = text.split(",")
        text = f"{first} {last}"
    words = re.findall(r"[^\W\d_]+", text)
    return " ".join(w for w in words if w not in _NAME_NOISE)[:200]


def _name_tokens(key: str) -> list[str]:
    return [t for t in key.split() if t not in _NAME_PARTICLES]


@migrations()
def m006_customers(db: Database) -> None:
    # One customer across channels (issue 5, docs/customers.md): attributes, notes, identifiers a
    # record claims without a channel proving them (a CRM's phone numbers, an address written in a
    # chat: `customer_claims`), merge suggestions (one row per pair, a < b; a rejected pair stays
    # rejected), merges with a snapshot for undo, same-day name sightings for the "close name"
    # evidence, and hashes of erased identities so re-imported old items do not bring them back.
    db.executescript(
        """
        ALTER TABLE customers ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
        CREATE INDEX customers_name_key ON customers(name_key) WHERE name_key != '';
        CREATE INDEX customers_crm_ref ON customers(crm_ref) WHERE crm_ref IS NOT NULL;
        CREATE INDEX customers_merged_into ON customers(merged_into) WHERE merged_into IS NOT NULL;
        CREATE INDEX messages_customer ON messages(customer_id);

        CREATE TABLE customer_attributes (
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (customer_id, key)
        ) WITHOUT ROWID;

        CREATE TABLE customer_notes (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            agent_id INTEGER REFERENCES agents(id),
            text TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX customer_notes_customer ON customer_notes(customer_id, id);

        CREATE TABLE customer_claims (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('import', 'api', 'message', 'agent')),
            message_id INTEGER REFERENCES messages(id),
            created_at TEXT NOT NULL,
            UNIQUE (customer_id, kind, value)
        );
        CREATE INDEX customer_claims_value ON customer_claims(kind, value);

        CREATE TABLE merge_suggestions (
            id INTEGER PRIMARY KEY,
            customer_a INTEGER NOT NULL REFERENCES customers(id),
            customer_b INTEGER NOT NULL REFERENCES customers(id),
            score REAL NOT NULL,
            reasons TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'rejected')),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            decided_by INTEGER REFERENCES agents(id),
            decided_at TEXT,
            CHECK (customer_a < customer_b),
            UNIQUE (customer_a, customer_b)
        );
        CREATE INDEX merge_suggestions_queue ON merge_suggestions(status, score);
        CREATE INDEX merge_suggestions_b ON merge_suggestions(customer_b);

        CREATE TABLE customer_merges (
            id INTEGER PRIMARY KEY,
            survivor_id INTEGER NOT NULL REFERENCES customers(id),
            merged_id INTEGER NOT NULL REFERENCES customers(id),
            suggestion_id INTEGER REFERENCES merge_suggestions(id),
            agent_id INTEGER REFERENCES agents(id),
            snapshot TEXT NOT NULL,
            created_at TEXT NOT NULL,
            undone_at TEXT,
            undone_by INTEGER REFERENCES agents(id)
        );
        CREATE INDEX customer_merges_survivor ON customer_merges(survivor_id);
        CREATE INDEX customer_merges_merged ON customer_merges(merged_id);

        CREATE TABLE name_sightings (
            day TEXT NOT NULL,
            block TEXT NOT NULL,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            channel TEXT NOT NULL,
            name_key TEXT NOT NULL,
            PRIMARY KEY (day, block, customer_id, channel)
        ) WITHOUT ROWID;
        CREATE INDEX name_sightings_customer ON name_sightings(customer_id);

        CREATE TABLE erased_identities (
            kind TEXT NOT NULL,
            value_hash TEXT NOT NULL,
            erased_at TEXT NOT NULL,
            PRIMARY KEY (kind, value_hash)
        ) WITHOUT ROWID;
        """
    )
    rows = db.execute("SELECT id, display_name FROM customers WHERE display_name != ''").fetchall()
    for customer_id, display_name in rows:
        db.execute("UPDATE customers SET name_key = ? WHERE id = ?", (_name_key(display_name), customer_id))


@migrations()
def m008_answers_routing(db: Database) -> None:
    # The answer library (inbox/answers.py), routing (inbox/routing.py) and review before sending
    # (inbox/review.py). Every edit of an answer keeps the text it replaced (`answer_versions`), so a
    # changed answer shows as changed. `answer_uses` is what agents picked in which conversation: the
    # question itself is read from that conversation when ranking, never copied here, so erasing a
    # customer erases it too. An agent's routing status starts `offline`: nobody gets conversations
    # before saying they are available; `status_auto` marks a status set by inactivity, which the
    # agent's next action undoes. `routing_decisions` is the "why it went where" log leads read.
    db.executescript(
        """
        CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            language TEXT NOT NULL DEFAULT 'en',
            tags TEXT NOT NULL DEFAULT '',
            owner_id INTEGER REFERENCES agents(id),
            version INTEGER NOT NULL DEFAULT 1,
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX answers_active ON answers(active, language);
        CREATE TABLE answer_versions (
            answer_id INTEGER NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            language TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '',
            edited_by INTEGER REFERENCES agents(id),
            edited_at TEXT NOT NULL,
            PRIMARY KEY (answer_id, version)
        );
        CREATE TABLE answer_uses (
            id INTEGER PRIMARY KEY,
            answer_id INTEGER NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            agent_id INTEGER REFERENCES agents(id),
            language TEXT,
            at TEXT NOT NULL,
            UNIQUE (answer_id, conversation_id)
        );
        CREATE INDEX answer_uses_language ON answer_uses(language, id);

        ALTER TABLE agents ADD COLUMN routing_status TEXT NOT NULL DEFAULT 'offline'
            CHECK (routing_status IN ('available', 'away', 'offline'));
        ALTER TABLE agents ADD COLUMN status_auto INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE agents ADD COLUMN status_changed_at TEXT;
        ALTER TABLE agents ADD COLUMN last_active_at TEXT;
        ALTER TABLE agents ADD COLUMN capacity INTEGER NOT NULL DEFAULT 5 CHECK (capacity BETWEEN 0 AND 1000);
        ALTER TABLE agents ADD COLUMN languages TEXT NOT NULL DEFAULT '';
        ALTER TABLE agents ADD COLUMN topics TEXT NOT NULL DEFAULT '';
        ALTER TABLE agents ADD COLUMN trainee INTEGER NOT NULL DEFAULT 0;

        ALTER TABLE teams ADD COLUMN routing_mode TEXT NOT NULL DEFAULT 'auto'
            CHECK (routing_mode IN ('auto', 'round_robin', 'manual'));
        ALTER TABLE teams ADD COLUMN last_routed_agent_id INTEGER;
        -- The unrouted pool (conversations without a team) has no teams row: its mode lives here.
        CREATE TABLE routing_settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

        CREATE TABLE routing_decisions (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            agent_id INTEGER REFERENCES agents(id),
            previous_agent_id INTEGER REFERENCES agents(id),
            team_id INTEGER REFERENCES teams(id),
            reason TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            at TEXT NOT NULL
        );
        CREATE INDEX routing_decisions_conversation ON routing_decisions(conversation_id, id);
        CREATE INDEX routing_decisions_at ON routing_decisions(at);
        CREATE INDEX conversations_routing_backlog ON conversations(status, assignee_id)
            WHERE assignee_id IS NULL AND automatic = 0;

        CREATE TABLE review_items (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            text TEXT NOT NULL,
            html TEXT,
            state TEXT NOT NULL DEFAULT 'pending_review'
                CHECK (state IN ('pending_review', 'approved', 'returned')),
            created_at TEXT NOT NULL,
            reviewer_id INTEGER REFERENCES agents(id),
            decided_at TEXT,
            review_seconds REAL,
            comment TEXT,
            final_text TEXT,
            edited INTEGER NOT NULL DEFAULT 0,
            outbox_id TEXT
        );
        CREATE INDEX review_items_state ON review_items(state, created_at);
        CREATE INDEX review_items_agent ON review_items(agent_id, id);
        CREATE INDEX review_items_conversation ON review_items(conversation_id);
        """
    )


@migrations()
def m006b_customer_name_tokens(db: Database) -> None:
    # How many customer records carry each name token (given and family names, particles left out):
    # how common "Jan" and "de Vries" are tells how much a second "Jan de Vries" means. The row
    # with the empty token counts the named records. Sightings get an index for cross-day lookups
    # of rare names.
    db.executescript(
        """
        CREATE TABLE name_token_counts (
            token TEXT PRIMARY KEY,
            n INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX name_sightings_key ON name_sightings(name_key);
        """
    )
    counts: dict[str, int] = {}
    for (key,) in db.execute("SELECT name_key FROM customers WHERE name_key != ''").fetchall():
        for token in {"", *_name_tokens(key)}:
            counts[token] = counts.get(token, 0) + 1
    for token, n in counts.items():
        db.execute("INSERT INTO name_token_counts (token, n) VALUES (?, ?)", (token, n))


@migrations()
def m009_queue_urgency_index(db: Database) -> None:
    # The queue's "most urgent" sort orders by this expression within one status at a time, like
    # queue_waiting does for waiting time; without it every page sorted all conversations of a status.
    db.execute("CREATE INDEX queue_urgency ON conversations(status, ifnull(sla_due_adequate, '~'), team_id, channel, "
               "assignee_id, priority)")


@migrations()
def m010_team_default_send_status(db: Database) -> None:
    # What the conversation page's plain "Send" does to the status, per team (Help Scout lets each user
    # choose; a team setting keeps a team's habit in one place). Pending by default: the customer has
    # the answer, the conversation waits for them. The unrouted pool has no teams row and uses pending.
    db.execute("ALTER TABLE teams ADD COLUMN default_send_status TEXT NOT NULL DEFAULT 'pending' "
               "CHECK (default_send_status IN ('open', 'pending', 'resolved'))")


@migrations()
def m011_assignment_source(db: Database) -> None:
    # Who set a conversation's assignee: a person ('person': the assign form, bulk actions) or routing
    # ('routing'). Routing only ever moves what it assigned itself, except the waiting conversations
    # of an agent who leaves (goes away or offline while holding them, from `unavailable_since`).
    # A trigger marks every change of assignee as a person's, whoever writes it; `route_assign`
    # then marks its own as routing's in the same transaction. `assigned_at` is the writer's
    # `updated_at`, so it follows the application's clock.
    #
    # An agent whose status nobody chose (new agents start offline) is marked as set by the system
    # (`status_auto`), so signing in makes them available.
    db.executescript(
        """
        ALTER TABLE conversations ADD COLUMN assigned_by TEXT CHECK (assigned_by IN ('person', 'routing'));
        ALTER TABLE conversations ADD COLUMN assigned_at TEXT;
        ALTER TABLE agents ADD COLUMN unavailable_since TEXT;

        UPDATE conversations SET
            assigned_by = CASE WHEN assignee_id = (SELECT d.agent_id FROM routing_decisions d
                WHERE d.conversation_id = conversations.id ORDER BY d.id DESC LIMIT 1) THEN 'routing' ELSE 'person' END,
            assigned_at = (SELECT d.at FROM routing_decisions d WHERE d.conversation_id = conversations.id
                AND d.agent_id = conversations.assignee_id ORDER BY d.id DESC LIMIT 1)
        WHERE assignee_id IS NOT NULL;
        UPDATE agents SET status_auto = 1 WHERE status_changed_at IS NULL;
        UPDATE agents SET unavailable_since = status_changed_at WHERE routing_status != 'available';

        CREATE TRIGGER conversations_assigned AFTER UPDATE OF assignee_id ON conversations
        WHEN NEW.assignee_id IS NOT OLD.assignee_id BEGIN
            UPDATE conversations SET
                assigned_by = CASE WHEN NEW.assignee_id IS NULL THEN NULL ELSE 'person' END,
                assigned_at = CASE WHEN NEW.assignee_id IS NULL THEN NULL ELSE NEW.updated_at END
            WHERE id = NEW.id;
        END;
        """
    )


@migrations()
def m012_notification_settings(db: Database) -> None:
    # Notifications per agent (inbox/notifications.py, docs/notifications.md). `notification_settings`
    # holds each agent's choices as JSON {event: {medium: bool}}, only where they differ from the
    # defaults. A notification for an event switched off in-app is still recorded (email or the
    # browser may want it) with `in_app = 0`: the notifications page and the unread count skip it.
    # `email_state` is 'pending' while a batch mail may still carry it, then 'mailed' (with the
    # `notification_emails` row that did) or 'skipped' (read in the app first, or switched off);
    # NULL: never to be mailed. `notification_emails` is the notification mails' own outbox.
    # `notification_marks` holds watermarks: the last message checked for "customer replied", the
    # last service-level notice passed on to the assignee; they start at the newest, so that
    # history notifies nobody.
    db.executescript(
        """
        CREATE TABLE notification_settings (
            agent_id INTEGER PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
            settings TEXT NOT NULL DEFAULT '{}',
            updated_at TEXT
        );
        CREATE TABLE notification_emails (
            id INTEGER PRIMARY KEY,
            agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            to_address TEXT NOT NULL,
            subject TEXT NOT NULL,
            text TEXT NOT NULL,
            message_id TEXT NOT NULL,
            item_count INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'sent', 'retry_wait', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL,
            lease_until TEXT,
            possible_duplicate INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX notification_emails_due ON notification_emails(state, next_at);
        CREATE INDEX notification_emails_agent ON notification_emails(agent_id, id);
        ALTER TABLE notifications ADD COLUMN in_app INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE notifications ADD COLUMN email_state TEXT
            CHECK (email_state IN ('pending', 'mailed', 'skipped'));
        ALTER TABLE notifications ADD COLUMN email_id INTEGER REFERENCES notification_emails(id) ON DELETE SET NULL;
        CREATE INDEX notifications_email_pending ON notifications(agent_id, id) WHERE email_state = 'pending';
        CREATE INDEX notifications_agent_newest ON notifications(agent_id, id);
        CREATE TABLE notification_marks (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        );
        INSERT INTO notification_marks (name, value)
            SELECT 'customer_replied', coalesce(max(id), 0) FROM messages;
        INSERT INTO notification_marks (name, value)
            SELECT 'sla_assignee', coalesce(max(id), 0) FROM sla_notifications;
        """
    )


@migrations()
def m013_composer_drafts_undo(db: Database) -> None:
    # Composer drafts on the server, one per agent, conversation and box (reply or internal note):
    # saved as the agent types, restored on any device, deleted when sent or emptied. Colleagues
    # see that someone has a draft (inbox/store/drafts.py).
    #
    # Undo send: a reply waits in the outbox (`next_at`) for the undo window; undoing it deletes the
    # outbox row and its message while the row is still unclaimed. `undo_status` is the status the
    # conversation had before "Send + status" changed it, put back by an undo.
    db.executescript(
        """
        CREATE TABLE drafts (
            agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('reply', 'note')),
            text TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (agent_id, conversation_id, kind)
        ) WITHOUT ROWID;
        CREATE INDEX drafts_conversation ON drafts(conversation_id);
        ALTER TABLE outbox ADD COLUMN undo_status TEXT;
        """
    )


@migrations()
def m014_message_reply_context(db: Database) -> None:
    # What an inbound item answers (the post a comment is on): its text and a link, shown above the
    # item in the thread. Any connector may fill them (InboundItem.context_text / context_url).
    db.executescript(
        """
        ALTER TABLE messages ADD COLUMN context_text TEXT;
        ALTER TABLE messages ADD COLUMN context_url TEXT;
        """
    )


@migrations()
def m015_message_changes(db: Database) -> None:
    # A customer may edit or withdraw a message we hold (WhatsApp edit/revoke, a deleted Bluesky chat
    # message). The message keeps its row and place in the thread; earlier texts are kept as history
    # (message_edits, erased with the message). A change is announced to open pages like a new message.
    db.executescript(
        """
        ALTER TABLE messages ADD COLUMN edited_at TEXT;
        ALTER TABLE messages ADD COLUMN deleted_at TEXT;
        CREATE TABLE message_edits (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            previous_text TEXT,
            previous_html TEXT,
            replaced_at TEXT NOT NULL
        );
        CREATE INDEX message_edits_message ON message_edits(message_id);
        DROP TRIGGER messages_changed_update;
        CREATE TRIGGER messages_changed_update AFTER UPDATE OF delivery_status, conversation_id, text, deleted_at
        ON messages BEGIN
             INSERT INTO conversation_changes (conversation_id, seq, created_seq)
             SELECT NEW.conversation_id, s, s FROM (SELECT coalesce((SELECT max(seq) FROM conversation_changes), 0) + 1 AS s)
             WHERE 1 ON CONFLICT (conversation_id) DO UPDATE SET seq = excluded.seq;
        END;
        """
    )


@migrations()
def m016_outbound_attachments(db: Database) -> None:
    # An agent's reply may carry files: they are `attachments` rows of the outgoing message, stored
    # by content hash like inbound ones (so the thread lists and serves them the same way).
    #
    # A channel where one message cannot hold both text and a file (Limits.files_with_text False)
    # gets one outbox row per part of the reply: `part` is 'all' (the text with every file, the
    # usual case), 'text' or 'file' (`attachment_id` names it); `part_index` keeps them in order.
    # Each row is sent once, with its own idempotency key (its id). The message counts as sent
    # when every part is.
    #
    # A trainee's reply held for review keeps its files in `review_attachments` until approved.
    #
    # Email replies may go to further people in copy: `cc` and `bcc` (comma-separated addresses)
    # on our message and on a held reply.
    #
    # Signatures (inbox/signatures.py): templates per agent, team and channel; the rendered one is
    # kept with our message (`signature`) and added to its text when it is sent.
    #
    # Forwards: an internal note (flag `forward`, the addresses in `cc`) records who forwarded what
    # to whom; its outbox row sends the message `forward_of` (NULL: the whole conversation).
    db.executescript(
        """
        ALTER TABLE messages ADD COLUMN signature TEXT;
        ALTER TABLE outbox ADD COLUMN forward_of INTEGER;
        CREATE TABLE signatures (
            scope TEXT NOT NULL CHECK (scope IN ('agent', 'team', 'channel')),
            owner TEXT NOT NULL,
            text TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (scope, owner)
        ) WITHOUT ROWID;
        ALTER TABLE messages ADD COLUMN cc TEXT;
        ALTER TABLE messages ADD COLUMN bcc TEXT;
        ALTER TABLE review_items ADD COLUMN cc TEXT;
        ALTER TABLE review_items ADD COLUMN bcc TEXT;
        ALTER TABLE outbox ADD COLUMN part TEXT NOT NULL DEFAULT 'all' CHECK (part IN ('all', 'text', 'file'));
        ALTER TABLE outbox ADD COLUMN attachment_id INTEGER REFERENCES attachments(id);
        ALTER TABLE outbox ADD COLUMN part_index INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX outbox_message ON outbox(message_id);
        CREATE TABLE review_attachments (
            id INTEGER PRIMARY KEY,
            review_item_id INTEGER NOT NULL REFERENCES review_items(id) ON DELETE CASCADE,
            filename TEXT NOT NULL,
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL
        );
        CREATE INDEX review_attachments_item ON review_attachments(review_item_id);
        """
    )


@migrations()
def m017_acknowledgements(db: Database) -> None:
    # Where a queued reply goes: the inbound message it answers, and that message's thread and
    # audience (after a merge of two channels' conversations, not the conversation's own). NULL on
    # rows queued before: those answer the conversation's latest inbound message, as they did.
    # `acknowledgements`: when each sender was last sent an automatic receipt, per channel (at most
    # one per `acknowledgement.every`).
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN reply_to INTEGER;
        ALTER TABLE outbox ADD COLUMN thread_key TEXT;
        ALTER TABLE outbox ADD COLUMN public INTEGER;
        CREATE TABLE acknowledgements (
            channel TEXT NOT NULL,
            handle TEXT NOT NULL,
            conversation_id INTEGER,
            last_at TEXT NOT NULL,
            PRIMARY KEY (channel, handle)
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m018_webhook_refusal_counts(db: Database) -> None:
    # Refused webhook deliveries are counted per channel, address and minute in one row, instead of
    # one row each: a flood of unsigned requests (also capped by a rate limit) cannot grow the table.
    db.executescript(
        """
        ALTER TABLE webhook_refusals ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE webhook_refusals ADD COLUMN minute TEXT;
        UPDATE webhook_refusals SET minute = substr(at, 1, 16) || '#' || id, remote_addr = ifnull(remote_addr, '');
        CREATE UNIQUE INDEX webhook_refusals_minute ON webhook_refusals(channel, remote_addr, minute);
        """
    )


@migrations()
def m019_password_resets(db: Database) -> None:
    # A reset link is a secret like an invitation's: only its SHA-256 is kept. A link works once,
    # until expires_at; asking again (revoked_at) or using one ends the agent's other live links.
    db.executescript(
        """
        CREATE TABLE password_resets (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX password_resets_agent ON password_resets(agent_id);
        """
    )


@migrations()
def m020_api_tokens(db: Database) -> None:
    # API tokens made by admins at /admin/tokens (the `api_tokens` config key keeps working beside
    # them). Only the SHA-256 of a token is kept, looked up by its hash; `prefix` is its first
    # characters, enough to recognise it on the page. `scopes` is a space-separated list.
    db.executescript(
        """
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            scopes TEXT NOT NULL,
            created_by INTEGER REFERENCES agents(id) ON DELETE SET NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            last_used_at TEXT,
            revoked_at TEXT,
            revoked_by INTEGER REFERENCES agents(id) ON DELETE SET NULL
        );
        """
    )


@migrations()
def m021_audit_index(db: Database) -> None:
    # /admin/audit pages the log newest first by id, filtered by actor, action, object or date. An
    # index entry ends in the row id, so each of these serves "WHERE x = ? ORDER BY id DESC" as one
    # backwards range; m003's (action, object_type, object_id) keeps serving the exact-object lookups.
    db.executescript(
        """
        CREATE INDEX audit_log_actor ON audit_log(actor);
        CREATE INDEX audit_log_action_only ON audit_log(action);
        CREATE INDEX audit_log_object ON audit_log(object_type, object_id);
        CREATE INDEX audit_log_object_type ON audit_log(object_type);
        CREATE INDEX audit_log_at ON audit_log(at);
        """
    )


@migrations()
def m022_outbound_start(db: Database) -> None:
    # A queued message may start a conversation instead of answering a message (#12): it then names
    # whom it goes to (`to_handle`, `to_name`, the identity kind `to_kind`) on the row's channel.
    # `template`: an approved template to send instead of the text (JSON: name, language, parameters).
    # NULL on every row before, and on ordinary replies.
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN to_handle TEXT;
        ALTER TABLE outbox ADD COLUMN to_name TEXT;
        ALTER TABLE outbox ADD COLUMN to_kind TEXT;
        ALTER TABLE outbox ADD COLUMN template TEXT;
        """
    )


@migrations()
def m023_second_factor(db: Database) -> None:
    # TOTP (RFC 6238): the confirmed secret, the one being set up (until its first code confirms it),
    # and the last time step accepted, so that a code cannot be used twice. Recovery codes are kept as
    # SHA-256 only and used up one by one.
    db.executescript(
        """
        ALTER TABLE agents ADD COLUMN totp_secret TEXT;
        ALTER TABLE agents ADD COLUMN totp_pending_secret TEXT;
        ALTER TABLE agents ADD COLUMN totp_last_step INTEGER;
        CREATE TABLE agent_recovery_codes (
            id INTEGER PRIMARY KEY,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            code_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            used_at TEXT,
            UNIQUE (agent_id, code_hash)
        );
        """
    )


@migrations()
def m024_stored_settings(db: Database) -> None:
    # Settings an admin makes in the browser (issue 13): channels added there, and whole config sections
    # (service levels, digest) not set in the YAML file. Secret channel settings are kept encrypted
    # (inbox/secrets_box.py). `settings_version` moves with every change, by trigger, so that each web
    # process and the worker can tell cheaply that they must rebuild their configuration.
    db.executescript(
        """
        CREATE TABLE channel_settings (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'paused', 'disabled')),
            poll_every REAL,
            settings TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES agents(id),
            updated_at TEXT NOT NULL,
            updated_by INTEGER REFERENCES agents(id)
        );
        CREATE TABLE stored_settings (
            section TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            updated_by INTEGER REFERENCES agents(id)
        );
        CREATE TABLE settings_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        );
        INSERT INTO settings_version (id, version) VALUES (1, 0);
        """
    )
    for table in ("channel_settings", "stored_settings"):
        for event in ("INSERT", "UPDATE", "DELETE"):
            sql = (f"CREATE TRIGGER {table}_{event.lower()} AFTER {event} ON {table} "  # noqa: S608 - fixed names
                   "BEGIN UPDATE settings_version SET version = version + 1 WHERE id = 1; END")
            db.execute(sql)


@migrations()
def m025_triage_flow(db: Database) -> None:
    # The triage verdict of every inbound item (#14): clean, suspicious or spam, with the model's
    # probability and version and why (a block, a rule, the model), beside the automatic flags.
    # `triage_hold` marks a conversation whose first item is suspicious: it is out of the queue (status
    # spam, which already stops clocks, surveys and acknowledgements) until a person decides.
    # `triage_reviews`: what waits in /review/triage (suspicious items, and audit samples of the
    # machine's own decisions) with the facts the model was shown, and the person's decision.
    # `spam_blocks`: senders, domains and handles whose items go straight to spam on every channel.
    db.executescript(
        """
        ALTER TABLE messages ADD COLUMN spam_verdict TEXT;
        ALTER TABLE messages ADD COLUMN spam_probability REAL;
        ALTER TABLE messages ADD COLUMN spam_model_version INTEGER;
        ALTER TABLE messages ADD COLUMN spam_reason TEXT;
        ALTER TABLE conversations ADD COLUMN triage_hold INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE triage_reviews (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('suspicious', 'sample')),
            machine_verdict TEXT NOT NULL CHECK (machine_verdict IN ('clean', 'suspicious', 'spam')),
            probability REAL,
            model_version INTEGER,
            reason TEXT,
            facts TEXT NOT NULL,
            created_at TEXT NOT NULL,
            decided_at TEXT,
            decided_by INTEGER REFERENCES agents(id) ON DELETE SET NULL,
            human_verdict TEXT CHECK (human_verdict IN ('customer', 'spam')),
            UNIQUE (message_id)
        );
        CREATE INDEX triage_reviews_waiting ON triage_reviews(created_at) WHERE decided_at IS NULL;
        CREATE INDEX triage_reviews_samples ON triage_reviews(channel) WHERE kind = 'sample';
        CREATE TABLE spam_blocks (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('address', 'domain', 'handle')),
            identity_kind TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES agents(id) ON DELETE SET NULL,
            UNIQUE (kind, identity_kind, value)
        );
        """
    )


@migrations()
def m026_remembered_devices(db: Database) -> None:
    # "Remember this device" at the sign-in code step (#13): a browser keeps a random token in a
    # cookie; only its SHA-256 is kept here, with the agent, a readable label from the User-Agent and
    # when it was made, expires and was last used. Rows are deleted when the device is forgotten or
    # the agent's password, second factor or sessions change (inbox/store/agents.py).
    db.executescript(
        """
        CREATE TABLE remembered_devices (
            id INTEGER PRIMARY KEY,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            token_hash TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            last_used_at TEXT
        );
        CREATE INDEX remembered_devices_agent ON remembered_devices(agent_id);
        """
    )


@migrations()
def m027_check_ins(db: Database) -> None:
    # Proactive care (#14, inbox/checkins.py): what an agent did with a check-in suggestion. One row
    # per customer and `basis` (what the suggestion rests on: 'rated:<survey id>' or 'quiet:<latest
    # conversation id>'), so a skipped suggestion stays away until something new happens, and a
    # snoozed one comes back at `snoozed_until`. A started one names the conversation it opened; its
    # outcome (a reply, a rating) is read from that conversation, not copied here.
    db.executescript(
        """
        CREATE TABLE check_ins (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
            basis TEXT NOT NULL,
            rule TEXT NOT NULL CHECK (rule IN ('rated', 'quiet')),
            state TEXT NOT NULL CHECK (state IN ('started', 'skipped', 'snoozed')),
            snoozed_until TEXT,
            conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL,
            owner_id INTEGER REFERENCES agents(id) ON DELETE SET NULL,
            agent_id INTEGER REFERENCES agents(id) ON DELETE SET NULL,
            channel TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (customer_id, basis)
        );
        CREATE INDEX check_ins_started ON check_ins(updated_at) WHERE state = 'started';
        CREATE INDEX check_ins_conversation ON check_ins(conversation_id);
        """
    )


@migrations()
def m028_help_center(db: Database) -> None:
    # The public help center (#18, inbox/helpcenter.py). An article is an answer of the library with a
    # `help_articles` row: the text is always the answer's own (one source), the row adds the public
    # address (`slug`, unique over all languages), a category, a summary for lists and search results,
    # and `article_key`, shared by the language versions of one article (linked with hreflang).
    # Unpublished rows keep their settings so publishing again restores them. Categories are ordered by
    # `position` and named per language (`help_category_names`). The counters hold no personal data:
    # reads per article per day, and searches per day with the normalised text of those that found
    # nothing. `help_search` is the FTS5 index over every article row (published or not: the public
    # queries filter), kept in step by triggers so an edit in the library is found at once.
    db.executescript(
        """
        CREATE TABLE help_categories (
            id INTEGER PRIMARY KEY,
            position INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE help_category_names (
            category_id INTEGER NOT NULL REFERENCES help_categories(id) ON DELETE CASCADE,
            language TEXT NOT NULL,
            name TEXT NOT NULL,
            slug TEXT NOT NULL,
            PRIMARY KEY (category_id, language),
            UNIQUE (language, slug)
        );
        CREATE TABLE help_articles (
            answer_id INTEGER PRIMARY KEY REFERENCES answers(id) ON DELETE CASCADE,
            slug TEXT NOT NULL UNIQUE,
            category_id INTEGER REFERENCES help_categories(id) ON DELETE SET NULL,
            summary TEXT NOT NULL DEFAULT '',
            article_key TEXT NOT NULL DEFAULT '',
            published INTEGER NOT NULL DEFAULT 0,
            published_at TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX help_articles_category ON help_articles(category_id, published);
        CREATE INDEX help_articles_key ON help_articles(article_key);
        CREATE TABLE help_article_views (
            answer_id INTEGER NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
            day TEXT NOT NULL,
            views INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (answer_id, day)
        ) WITHOUT ROWID;
        CREATE TABLE help_search_days (
            day TEXT NOT NULL,
            language TEXT NOT NULL,
            searches INTEGER NOT NULL DEFAULT 0,
            misses INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, language)
        ) WITHOUT ROWID;
        CREATE TABLE help_search_misses (
            day TEXT NOT NULL,
            language TEXT NOT NULL,
            query TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, language, query)
        ) WITHOUT ROWID;

        CREATE VIRTUAL TABLE help_search USING fts5(
            title, summary, body, tokenize = 'unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER help_articles_ai AFTER INSERT ON help_articles BEGIN
            INSERT INTO help_search (rowid, title, summary, body)
                SELECT a.id, a.title, NEW.summary, a.body FROM answers a WHERE a.id = NEW.answer_id;
        END;
        CREATE TRIGGER help_articles_au AFTER UPDATE OF summary ON help_articles BEGIN
            DELETE FROM help_search WHERE rowid = OLD.answer_id;
            INSERT INTO help_search (rowid, title, summary, body)
                SELECT a.id, a.title, NEW.summary, a.body FROM answers a WHERE a.id = NEW.answer_id;
        END;
        CREATE TRIGGER help_articles_ad AFTER DELETE ON help_articles BEGIN
            DELETE FROM help_search WHERE rowid = OLD.answer_id;
        END;
        CREATE TRIGGER help_answers_au AFTER UPDATE OF title, body ON answers
            WHEN EXISTS (SELECT 1 FROM help_articles h WHERE h.answer_id = NEW.id) BEGIN
            DELETE FROM help_search WHERE rowid = NEW.id;
            INSERT INTO help_search (rowid, title, summary, body)
                SELECT NEW.id, NEW.title, h.summary, NEW.body FROM help_articles h WHERE h.answer_id = NEW.id;
        END;
        """
    )


@migrations()
def m030_outbox_attempts(db: Database) -> None:
    # When a send was really handed to the channel (issue 16): after a crash only rows whose attempt
    # had started can have reached the customer, so only those are flagged; the others are simply sent.
    # `uncertain`: the channel may have the reply but never confirmed it, on a channel where a resend
    # could reach the customer twice; the row waits (state failed) for an agent to send again or mark it sent.
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN attempt_started_at TEXT;
        ALTER TABLE outbox ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
        """
    )


@migrations()
def m031_api_idempotency(db: Database) -> None:
    # REST API v1 (issue 15): a write sent again with the same Idempotency-Key replays the stored answer
    # instead of acting twice. One row per (token, key); the method, path and body hash tell a true
    # replay from a key reused for another request. Housekeeping deletes rows older than a day.
    db.executescript(
        """
        CREATE TABLE api_idempotency (
            id INTEGER PRIMARY KEY,
            token TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            request TEXT NOT NULL,
            body_hash TEXT NOT NULL,
            status INTEGER NOT NULL,
            response_body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (token, idempotency_key)
        );
        CREATE INDEX api_idempotency_created ON api_idempotency (created_at);
        """
    )


@migrations()
def m032_outbound_webhooks(db: Database) -> None:
    # Outbound webhooks (issue 15). `webhook_events` already holds the event ids of *inbound* deliveries
    # (m002), so the events we send are `webhook_out_events`. An event row is written in the transaction of
    # what it reports (only while some subscription listens for its type); the worker turns it into one
    # delivery per subscription, with the payload frozen on the event so that a retry or a replay sends the
    # same body. Deliveries are worked like the outbox: claimed under a lease, retried with backoff, dead
    # after a cap. `failing_since` on a subscription is the start of its current run of failures, which
    # pauses it after `webhooks.pause_after`. The secret is sealed (inbox/secrets_box.py), never stored clear.
    db.executescript(
        """
        CREATE TABLE webhook_subscriptions (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL,
            events TEXT NOT NULL,
            secret TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused')),
            paused_at TEXT,
            paused_reason TEXT,
            failing_since TEXT,
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES agents(id),
            updated_at TEXT NOT NULL
        );
        CREATE TABLE webhook_out_events (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            conversation_id INTEGER,
            message_id INTEGER,
            data TEXT NOT NULL DEFAULT '{}',
            payload TEXT,
            created_at TEXT NOT NULL,
            fanned_out_at TEXT
        );
        CREATE INDEX webhook_out_events_pending ON webhook_out_events(id) WHERE fanned_out_at IS NULL;
        CREATE INDEX webhook_out_events_created ON webhook_out_events(created_at);
        CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY,
            subscription_id INTEGER NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
            event_row INTEGER NOT NULL REFERENCES webhook_out_events(id),
            replay_of INTEGER REFERENCES webhook_deliveries(id) ON DELETE SET NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'retry_wait', 'delivered', 'dead')),
            next_at TEXT NOT NULL,
            lease_until TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            attempt_started_at TEXT,
            status_code INTEGER,
            response_body TEXT,
            duration_ms INTEGER,
            last_error TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_at);
        CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries(subscription_id, id);
        -- One first delivery of an event per subscription: a second fan-out never sends it twice.
        CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries(subscription_id, event_row)
            WHERE replay_of IS NULL;
        """
    )
    # Events are recorded by triggers: every path that stores a message, changes a status or an assignee
    # (the conversation page, bulk actions, routing, snooze wake-ups, reopening by a reply), answers a survey
    # or announces a breach is covered in its own transaction, and the domain code knows nothing of webhooks.
    # Each writes a row only while a subscription listens for the type (one lookup in a tiny table).
    for name, table, when, event_type, conversation, message, data, at in _WEBHOOK_EVENT_TRIGGERS:
        listened = ("EXISTS (SELECT 1 FROM webhook_subscriptions "  # noqa: S608 - fixed names from the table below
                    f"WHERE instr(' ' || events || ' ', ' {event_type} ') > 0)")
        db.execute(
            f"CREATE TRIGGER webhook_event_{name} AFTER {table} FOR EACH ROW WHEN {when} BEGIN "  # noqa: S608
            "INSERT INTO webhook_out_events (event_id, type, conversation_id, message_id, data, created_at) "
            f"SELECT 'evt_' || lower(hex(randomblob(16))), '{event_type}', {conversation}, {message}, {data}, "
            f"coalesce({at}, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) WHERE {listened}; END")


#: (trigger name, event, condition, event type, conversation id, message id, data, time) for m032. The
#: time is the one the row itself records (the domain's clock); the payload's facts are read when the
#: worker fans the event out.
_WEBHOOK_EVENT_TRIGGERS = (
    ("conversation_created", "INSERT ON conversations", "1", "conversation.created", "new.id", "NULL", "'{}'",
     "new.created_at"),
    ("message_received", "INSERT ON messages", "new.direction = 'in'", "message.received", "new.conversation_id",
     "new.id", "'{}'", "new.received_at"),
    ("message_sent", "UPDATE OF delivery_status ON messages",
     "new.direction = 'out' AND new.delivery_status = 'sent' AND old.delivery_status IS NOT 'sent'",
     "message.sent", "new.conversation_id", "new.id", "'{}'", "new.sent_at"),
    ("status_changed", "UPDATE OF status ON conversations", "old.status IS NOT new.status",
     "conversation.status_changed", "new.id", "NULL",
     "json_object('previous_status', old.status, 'status', new.status)", "new.updated_at"),
    ("assigned", "UPDATE OF assignee_id ON conversations", "old.assignee_id IS NOT new.assignee_id",
     "conversation.assigned", "new.id", "NULL",
     "json_object('previous_assignee_id', old.assignee_id, 'assignee_id', new.assignee_id)", "new.updated_at"),
    ("satisfaction_received", "UPDATE OF state ON csat_surveys",
     "new.state = 'answered' AND old.state IS NOT 'answered'", "satisfaction.received", "new.conversation_id",
     "new.answer_message_id", "json_object('score', new.score, 'comment', new.comment, 'kind', new.kind)",
     "new.answered_at"),
    ("service_level_breached", "INSERT ON sla_notifications", "new.kind = 'breach'", "service_level.breached",
     "new.conversation_id", "NULL", "json_object('metric', new.metric, 'due_at', new.due_at)", "new.created_at"),
)


@migrations()
def m033_prefix_search_and_queue_filter_index(db: Database) -> None:
    # Web worst cases (issue 16). Both search indexes get FTS5 prefix indexes of 2 and 3 characters, so
    # that `ap*` reads one stored list instead of merging the lists of every word starting with "ap"
    # (shorter prefixes are refused by inbox.store.queue.fts_query). FTS5 cannot add a prefix index to an
    # existing table: each is created again and filled in one pass. Cost: one read of every message and
    # a write of the new index, about two minutes of CPU per million real-sized messages (bench/web.py:
    # 11 s for 102,500), inside the migration's transaction (docs/operations.md says so).
    # The messages_* triggers name the table, not its definition, so they keep working unchanged.
    db.executescript(
        f"""
        DROP TABLE messages_fts;
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            subject, text, author_name, author_handle,
            tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3', content = 'messages'
        );
        INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

        DROP TABLE conversation_search;
        CREATE VIRTUAL TABLE conversation_search USING fts5(
            subject, customer, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
        );
        INSERT INTO conversation_search (rowid, subject, customer)
            SELECT c.id, c.subject, {_CUSTOMER_SEARCH_TEXT.format(customer="c.customer_id")} FROM conversations c;
        """  # noqa: S608 (constants of this module only)
    )
    # "All statuses" with channel, priority and "unassigned" sorted by latest activity: conversations_activity
    # (status, last_message_at) made every candidate row a table read for the filter columns; this index
    # holds them, as queue_waiting and queue_urgency do for the other sorts. It starts with the old index's
    # columns, so the old one goes (else the planner keeps taking the narrower one on small tables).
    db.executescript(
        """
        CREATE INDEX queue_activity ON conversations(status, last_message_at, team_id, channel, assignee_id,
                                                     priority);
        DROP INDEX conversations_activity;
        """
    )
    # Reports (inbox/store/reports.py): who sent each conversation's first reply, and replies per agent in a
    # week, were a read of every message row of the conversation, and of every message of the year. Both
    # partial indexes hold our replies only, with every column those questions read (so no message row is read).
    db.executescript(
        """
        CREATE INDEX messages_replies ON messages(conversation_id, received_at, agent_id, flags, direction)
            WHERE direction = 'out';
        CREATE INDEX messages_replies_by_time ON messages(received_at, agent_id, flags, direction)
            WHERE direction = 'out' AND agent_id IS NOT NULL;
        """
    )


@migrations()
def m035_rules(db: Database) -> None:
    # Automation rules (issue 15): a trigger, JSON conditions and actions, an order, a "stop here".
    # `failures`/`last_error`: a rule that raised is recorded on the rule, never in ingest's way.
    # `rule_firings`: one row per rule, conversation and trigger event (the UNIQUE key makes a rule
    # fire at most once per event); the conversation's timeline note points at its row.
    db.executescript(
        """
        CREATE TABLE rules (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            trigger TEXT NOT NULL,
            trigger_minutes INTEGER,
            conditions TEXT NOT NULL DEFAULT '[]',
            actions TEXT NOT NULL DEFAULT '[]',
            position INTEGER NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            stop INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_error_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX rules_position ON rules(position, id);
        -- Bumped by every change of the rules: each process recompiles its conditions when it moves.
        CREATE TABLE rules_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        );
        INSERT INTO rules_version (id, version) VALUES (1, 0);
        CREATE TABLE rule_firings (
            id INTEGER PRIMARY KEY,
            rule_id INTEGER REFERENCES rules(id) ON DELETE SET NULL,
            rule_name TEXT NOT NULL,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            event_key TEXT NOT NULL,
            depth INTEGER NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL,
            done TEXT NOT NULL DEFAULT '[]',
            error TEXT,
            fired_at TEXT NOT NULL,
            UNIQUE (rule_id, conversation_id, event_key)
        );
        CREATE INDEX rule_firings_rule ON rule_firings(rule_id, id);
        CREATE INDEX rule_firings_conversation ON rule_firings(conversation_id, id);
        """
    )


@migrations()
def m039_conversation_marks(db: Database) -> None:
    # Live marks of a conversation (#18, the website chat while both are there): how far the team has
    # read the customer's messages, and when the customer last said they were typing.
    # `team_read_up_to` is kept by triggers on `presence`: an agent's heartbeat from the open
    # conversation page (viewing or typing) means the customer's messages there so far were in front of
    # them. Only moves forward. `customer_typing_at` is written by the chat's typing reports.
    db.executescript(
        """
        CREATE TABLE conversation_marks (
            conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
            team_read_up_to INTEGER NOT NULL DEFAULT 0,
            customer_typing_at TEXT
        );
        CREATE TRIGGER presence_marks_read_insert AFTER INSERT ON presence BEGIN
            INSERT INTO conversation_marks (conversation_id, team_read_up_to)
            SELECT NEW.conversation_id, newest FROM (SELECT max(id) AS newest FROM messages
                WHERE conversation_id = NEW.conversation_id AND direction = 'in' AND deleted_at IS NULL)
            WHERE newest IS NOT NULL
            ON CONFLICT (conversation_id) DO UPDATE
            SET team_read_up_to = max(team_read_up_to, excluded.team_read_up_to);
        END;
        CREATE TRIGGER presence_marks_read_update AFTER UPDATE ON presence BEGIN
            INSERT INTO conversation_marks (conversation_id, team_read_up_to)
            SELECT NEW.conversation_id, newest FROM (SELECT max(id) AS newest FROM messages
                WHERE conversation_id = NEW.conversation_id AND direction = 'in' AND deleted_at IS NULL)
            WHERE newest IS NOT NULL
            ON CONFLICT (conversation_id) DO UPDATE
            SET team_read_up_to = max(team_read_up_to, excluded.team_read_up_to);
        END;
        """
    )


@migrations()
def m040_chat_email(db: Database) -> None:
    # Website chat by email (#18). `chat_email_addresses`: the address a visitor left in the widget
    # ("get our answer by email too"), the widget's language and the page it was on (the mail's link
    # back to the chat), one per visitor and channel.
    # `chat_emails`: each mail the chat sent through an email channel, keyed by its outbox row: a
    # follow-up of an unread reply (`reply_id` UNIQUE: at most one per reply) or a sign-in link
    # (`nonce`, `expires_at`, `used_at`: single use). `chat_device_links`: a device's visitor id
    # that a sign-in link bound to an earlier visitor's conversation.
    db.executescript(
        """
        CREATE TABLE chat_email_addresses (
            channel TEXT NOT NULL,
            visitor TEXT NOT NULL,
            address TEXT NOT NULL,
            language TEXT NOT NULL DEFAULT 'en',
            page TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (channel, visitor)
        );
        CREATE TABLE chat_emails (
            outbox_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('followup', 'signin')),
            channel TEXT NOT NULL,
            visitor TEXT NOT NULL,
            address TEXT NOT NULL,
            language TEXT NOT NULL DEFAULT 'en',
            reply_id INTEGER UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
            page TEXT,
            nonce TEXT UNIQUE,
            expires_at TEXT,
            used_at TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX chat_emails_address ON chat_emails(address, created_at);
        CREATE TABLE chat_device_links (
            channel TEXT NOT NULL,
            device TEXT NOT NULL,
            visitor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (channel, device)
        );
        """
    )


@migrations()
def m043_backlog_index(db: Database) -> None:
    # The reports' backlog (issue 16): the conversations still to be finished, people's only, in the
    # order they began, with every column their counts need. Partial, so it holds only the open part of
    # the inbox (a quarter of bench/web.py's conversations): the counts read it alone, and the median
    # age is one step into it instead of a sort of every open conversation. Its WHERE is _BACKLOG in
    # inbox/store/reports.py, word for word (a partial index serves only queries that say the same).
    db.execute("CREATE INDEX conversations_backlog ON conversations(created_at, status, channel, waiting_since, "
               "automatic) WHERE status IN ('new', 'open', 'pending', 'snoozed') AND automatic = 0")


#: Whether a row's search index entry waits for the end of its batch (see m044).
_INDEX_DEFERRED = "EXISTS (SELECT 1 FROM search_index_deferred WHERE {row}.id >= {column})"


@migrations()
def m044_search_index_per_batch(db: Database) -> None:
    # Ingest speed (issue 16). FTS5 writes out its pending index at every savepoint, and SQLite opens
    # one for each statement that must be undone alone when it fails: every message insert (it has
    # triggers). Indexed row by row from the triggers, a batch of 200 messages made 200 tiny index
    # segments that FTS5 then had to merge: half of what storing a message cost. While
    # search_index_deferred holds a row (only inside the ingest's write transaction: inbox/store/
    # ingest.py `search_index_deferred`), rows with an id from there on are indexed at the end of the
    # batch in one statement per index, and the triggers leave them alone. Edits and deletes of
    # those rows need nothing either: the end of the batch indexes what the rows hold then.
    # messages_au now fires only for the indexed columns (a delivery status change rewrote the entry).
    message_waits = _INDEX_DEFERRED.format(row="{row}", column="messages_from")
    conversation_waits = _INDEX_DEFERRED.format(row="NEW", column="conversations_from")
    columns = "subject, text, author_name, author_handle"
    db.executescript(
        f"""
        CREATE TABLE search_index_deferred (
            messages_from INTEGER NOT NULL,
            conversations_from INTEGER NOT NULL
        );
        DROP TRIGGER messages_ai;
        DROP TRIGGER messages_au;
        DROP TRIGGER messages_ad;
        CREATE TRIGGER messages_ai AFTER INSERT ON messages WHEN NOT {message_waits.format(row="NEW")} BEGIN
            INSERT INTO messages_fts (rowid, {columns})
            VALUES (NEW.id, NEW.subject, NEW.text, NEW.author_name, NEW.author_handle);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF id, {columns} ON messages
        WHEN NOT {message_waits.format(row="OLD")} BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, {columns})
            VALUES ('delete', OLD.id, OLD.subject, OLD.text, OLD.author_name, OLD.author_handle);
            INSERT INTO messages_fts (rowid, {columns})
            VALUES (NEW.id, NEW.subject, NEW.text, NEW.author_name, NEW.author_handle);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages WHEN NOT {message_waits.format(row="OLD")} BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, {columns})
            VALUES ('delete', OLD.id, OLD.subject, OLD.text, OLD.author_name, OLD.author_handle);
        END;
        DROP TRIGGER conversation_search_ai;
        CREATE TRIGGER conversation_search_ai AFTER INSERT ON conversations WHEN NOT {conversation_waits} BEGIN
            INSERT INTO conversation_search (rowid, subject, customer)
            VALUES (NEW.id, NEW.subject, {_CUSTOMER_SEARCH_TEXT.format(customer="NEW.customer_id")});
        END;
        """  # noqa: S608 (constants of this module only)
    )


@migrations()
def m045_search_index_merge_width(db: Database) -> None:
    # Ingest speed over a large import (issue 16). With one index segment per ingest batch (m044),
    # FTS5 merging its segments became the part of storing a message that grows with the inbox:
    # each entry is rewritten once per level, and the levels grow with the logarithm of the index
    # (base `automerge`, default 4). Merging 16 segments at a time instead halves the levels: a
    # 300,000-message import took 232 s instead of 260-274 s, its last copies of the corpus about
    # 15% faster (bench/README.md). `crisismerge` (default 16: a level that reaches it is merged
    # at once, inside one batch) goes to 64, so that the merging stays FTS5's small incremental
    # work after each write: with both at 16, batches held the write lock up to 2.8 s. A search
    # reads up to 15 segments a level (30 in all at 300,000 messages against 17) at the same cost.
    for table in ("messages_fts", "conversation_search"):
        db.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('automerge', 16)")  # noqa: S608 (two names above)
        db.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('crisismerge', 64)")  # noqa: S608
