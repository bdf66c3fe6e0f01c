"""Schema migrations: one function per change, applied in order, never edited after release.

The data model follows shared/design.md: customers with identities, conversations, messages with
an FTS5 index, attachments by content hash, quarantine, cursors, outbox, agents and teams, an
audit log and leases. Columns for later work (service levels, routing) are added by later
migrations, not guessed at here.
"""

from __future__ import annotations

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
