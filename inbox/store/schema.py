"""The schema as SQLAlchemy Core metadata: one description of every table for both engines (#17).

SQLite builds its schema with the migrations in `inbox/store/migrations.py` up to the baseline
(m045, frozen) and with Alembic's revisions after it (`inbox/store/sqlite_schema.py`);
`tests/test_schema.py` holds this description to exactly what they build (columns in order, types,
defaults, keys, checks and indexes), so the two cannot drift. PostgreSQL builds its schema from
this description through Alembic (`inbox/store/revisions/`) throughout.

The types are the same on both engines, so that a row reads the same whichever engine it came
from: timestamps are ISO 8601 text (`inbox.store.base.iso`, sortable as text; a PostgreSQL
database for Mainland uses the C collation, so text sorts by code point as in SQLite), flags are
integers 0 and 1, whole numbers are 64-bit (SQLite's INTEGER is; PostgreSQL's `integer` is not),
fractions are double precision (PostgreSQL's `real` is single). SQLite's search indexes (FTS5
virtual tables) are not described here: each engine builds search its own way.
"""

from __future__ import annotations

from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

#: A whole number: INTEGER on SQLite (so an INTEGER PRIMARY KEY stays the rowid), BIGINT on PostgreSQL.
Int = BigInteger().with_variant(Integer(), "sqlite")
#: A fraction: REAL on SQLite, double precision on PostgreSQL.
Real = Double().with_variant(REAL(), "sqlite")
#: Text whose equality ignores ASCII case on SQLite (COLLATE NOCASE). PostgreSQL has no such
#: collation that LIKE accepts; there a unique index on lower() keeps such a name unique
#: (`labels_name_folded`), and queries fold case with lower() on both engines.
NoCaseText = Text().with_variant(Text(collation="NOCASE"), "sqlite")
#: Bytes: BLOB on SQLite, bytea on PostgreSQL.
Bytes = LargeBinary

metadata = MetaData()


def where(condition: str) -> dict[str, object]:
    """A partial index's condition, the same text on both engines."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


acknowledgements = Table(
    "acknowledgements", metadata,
    Column("channel", Text, primary_key=True),
    Column("handle", Text, primary_key=True),
    Column("conversation_id", Int),
    Column("last_at", Text, nullable=False),
    sqlite_with_rowid=False
)

agents = Table(
    "agents", metadata,
    Column("id", Int, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False, server_default=text("''")),
    Column("password_hash", Text),
    Column("role", Text, nullable=False, server_default=text("'agent'")),
    Column("locale", Text),
    Column("active", Int, nullable=False, server_default=text("1")),
    Column("session_epoch", Int, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    Column("routing_status", Text, nullable=False, server_default=text("'offline'")),
    Column("status_auto", Int, nullable=False, server_default=text("0")),
    Column("status_changed_at", Text),
    Column("last_active_at", Text),
    Column("capacity", Int, nullable=False, server_default=text("5")),
    Column("languages", Text, nullable=False, server_default=text("''")),
    Column("topics", Text, nullable=False, server_default=text("''")),
    Column("trainee", Int, nullable=False, server_default=text("0")),
    Column("unavailable_since", Text),
    Column("totp_secret", Text),
    Column("totp_pending_secret", Text),
    Column("totp_last_step", Int),
    CheckConstraint("capacity BETWEEN 0 AND 1000"),
    CheckConstraint("role IN ('agent', 'lead', 'manager', 'admin')"),
    CheckConstraint("routing_status IN ('available', 'away', 'offline')")
)

api_idempotency = Table(
    "api_idempotency", metadata,
    Column("id", Int, primary_key=True),
    Column("token", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("request", Text, nullable=False),
    Column("body_hash", Text, nullable=False),
    Column("status", Int, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    UniqueConstraint("token", "idempotency_key"),
    Index("api_idempotency_created", "created_at")
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Int, primary_key=True),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("object_type", Text),
    Column("object_id", Text),
    Column("details", Text, nullable=False, server_default=text("'{}'")),
    Index("audit_log_action", "action", "object_type", "object_id"),
    Index("audit_log_action_only", "action"),
    Index("audit_log_actor", "actor"),
    Index("audit_log_at", "at"),
    Index("audit_log_object", "object_type", "object_id"),
    Index("audit_log_object_type", "object_type")
)

channel_health = Table(
    "channel_health", metadata,
    Column("channel", Text, primary_key=True),
    Column("last_poll_at", Text),
    Column("last_success_at", Text),
    Column("last_error", Text),
    Column("last_error_at", Text),
    Column("failures", Int, nullable=False, server_default=text("0")),
    Column("paused_until", Text),
    Column("items_total", Int, nullable=False, server_default=text("0"))
)

chat_device_links = Table(
    "chat_device_links", metadata,
    Column("channel", Text, primary_key=True),
    Column("device", Text, primary_key=True),
    Column("visitor", Text, nullable=False),
    Column("created_at", Text, nullable=False)
)

chat_email_addresses = Table(
    "chat_email_addresses", metadata,
    Column("channel", Text, primary_key=True),
    Column("visitor", Text, primary_key=True),
    Column("address", Text, nullable=False),
    Column("language", Text, nullable=False, server_default=text("'en'")),
    Column("page", Text),
    Column("created_at", Text, nullable=False)
)

cursors = Table(
    "cursors", metadata,
    Column("channel", Text, primary_key=True),
    Column("value", Text),
    Column("updated_at", Text)
)

digests = Table(
    "digests", metadata,
    Column("week", Text, primary_key=True),
    Column("period_start", Text, nullable=False),
    Column("period_end", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("figures", Text, nullable=False, server_default=text("'{}'")),
    Column("generated_at", Text, nullable=False),
    Column("sent_at", Text),
    Column("recipients", Text, nullable=False, server_default=text("''")),
    Column("send_error", Text)
)

erased_identities = Table(
    "erased_identities", metadata,
    Column("kind", Text, primary_key=True),
    Column("value_hash", Text, primary_key=True),
    Column("erased_at", Text, nullable=False),
    sqlite_with_rowid=False
)

help_categories = Table(
    "help_categories", metadata,
    Column("id", Int, primary_key=True),
    Column("position", Int, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False)
)

labels = Table(
    "labels", metadata,
    Column("id", Int, primary_key=True),
    Column("name", NoCaseText, nullable=False, unique=True),
    Column("color", Text, nullable=False, server_default=text("''"))
)

leases = Table(
    "leases", metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("expires_at", Text, nullable=False)
)

name_token_counts = Table(
    "name_token_counts", metadata,
    Column("token", Text, primary_key=True),
    Column("n", Int, nullable=False),
    sqlite_with_rowid=False
)

notification_marks = Table(
    "notification_marks", metadata,
    Column("name", Text, primary_key=True),
    Column("value", Int, nullable=False)
)

routing_settings = Table(
    "routing_settings", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False)
)

rules = Table(
    "rules", metadata,
    Column("id", Int, primary_key=True),
    Column("name", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("trigger_minutes", Int),
    Column("conditions", Text, nullable=False, server_default=text("'[]'")),
    Column("actions", Text, nullable=False, server_default=text("'[]'")),
    Column("position", Int, nullable=False),
    Column("enabled", Int, nullable=False, server_default=text("1")),
    Column("stop", Int, nullable=False, server_default=text("0")),
    Column("failures", Int, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("last_error_at", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("rules_position", "position", "id")
)

rules_version = Table(
    "rules_version", metadata,
    Column("id", Int, primary_key=True),
    Column("version", Int, nullable=False),
    CheckConstraint("id = 1")
)

search_index_deferred = Table(
    "search_index_deferred", metadata,
    Column("messages_from", Int, nullable=False),
    Column("conversations_from", Int, nullable=False)
)

settings_version = Table(
    "settings_version", metadata,
    Column("id", Int, primary_key=True),
    Column("version", Int, nullable=False),
    CheckConstraint("id = 1")
)

signatures = Table(
    "signatures", metadata,
    Column("scope", Text, primary_key=True),
    Column("owner", Text, primary_key=True),
    Column("text", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    CheckConstraint("scope IN ('agent', 'team', 'channel')"),
    sqlite_with_rowid=False
)

teams = Table(
    "teams", metadata,
    Column("id", Int, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("routing_mode", Text, nullable=False, server_default=text("'auto'")),
    Column("last_routed_agent_id", Int),
    Column("default_send_status", Text, nullable=False, server_default=text("'pending'")),
    CheckConstraint("default_send_status IN ('open', 'pending', 'resolved')"),
    CheckConstraint("routing_mode IN ('auto', 'round_robin', 'manual')")
)

webhook_events = Table(
    "webhook_events", metadata,
    Column("channel", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("received_at", Text, nullable=False),
    Index("webhook_events_received", "received_at")
)

webhook_out_events = Table(
    "webhook_out_events", metadata,
    Column("id", Int, primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("type", Text, nullable=False),
    Column("conversation_id", Int),
    Column("message_id", Int),
    Column("data", Text, nullable=False, server_default=text("'{}'")),
    Column("payload", Text),
    Column("created_at", Text, nullable=False),
    Column("fanned_out_at", Text),
    Index("webhook_out_events_created", "created_at"),
    Index("webhook_out_events_pending", "id", **where('fanned_out_at IS NULL'))
)

webhook_refusals = Table(
    "webhook_refusals", metadata,
    Column("id", Int, primary_key=True),
    Column("channel", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("remote_addr", Text),
    Column("reason", Text, nullable=False),
    Column("count", Int, nullable=False, server_default=text("1")),
    Column("minute", Text),
    Index("webhook_refusals_at", "channel", "at"),
    Index("webhook_refusals_minute", "channel", "remote_addr", "minute", unique=True)
)

agent_invitations = Table(
    "agent_invitations", metadata,
    Column("id", Int, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("agent_id", ForeignKey("agents.id"), nullable=False),
    Column("created_by", ForeignKey("agents.id")),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("used_at", Text),
    Column("revoked_at", Text),
    Index("agent_invitations_agent", "agent_id")
)

agent_recovery_codes = Table(
    "agent_recovery_codes", metadata,
    Column("id", Int, primary_key=True),
    Column("agent_id", ForeignKey("agents.id"), nullable=False),
    Column("code_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("used_at", Text),
    UniqueConstraint("agent_id", "code_hash")
)

answers = Table(
    "answers", metadata,
    Column("id", Int, primary_key=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("language", Text, nullable=False, server_default=text("'en'")),
    Column("tags", Text, nullable=False, server_default=text("''")),
    Column("owner_id", ForeignKey("agents.id")),
    Column("version", Int, nullable=False, server_default=text("1")),
    Column("active", Int, nullable=False, server_default=text("1")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("answers_active", "active", "language")
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Int, primary_key=True),
    Column("name", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("prefix", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_by", ForeignKey("agents.id", ondelete="SET NULL")),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text),
    Column("last_used_at", Text),
    Column("revoked_at", Text),
    Column("revoked_by", ForeignKey("agents.id", ondelete="SET NULL"))
)

channel_settings = Table(
    "channel_settings", metadata,
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False, server_default=text("'enabled'")),
    Column("poll_every", Real),
    Column("settings", Text, nullable=False, server_default=text("'{}'")),
    Column("created_at", Text, nullable=False),
    Column("created_by", ForeignKey("agents.id")),
    Column("updated_at", Text, nullable=False),
    Column("updated_by", ForeignKey("agents.id")),
    CheckConstraint("state IN ('enabled', 'paused', 'disabled')")
)

customers = Table(
    "customers", metadata,
    Column("id", Int, primary_key=True),
    Column("display_name", Text, nullable=False, server_default=text("''")),
    Column("locale", Text),
    Column("owner_agent_id", ForeignKey("agents.id")),
    Column("crm_ref", Text),
    Column("merged_into", ForeignKey("customers.id")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("name_key", Text, nullable=False, server_default=text("''")),
    Index("customers_crm_ref", "crm_ref", **where('crm_ref IS NOT NULL')),
    Index("customers_merged_into", "merged_into", **where('merged_into IS NOT NULL')),
    Index("customers_name_key", "name_key", **where("name_key != ''"))
)

digest_images = Table(
    "digest_images", metadata,
    Column("week", ForeignKey("digests.week", ondelete="CASCADE"), primary_key=True),
    Column("name", Text, primary_key=True),
    Column("png", Bytes, nullable=False)
)

help_category_names = Table(
    "help_category_names", metadata,
    Column("category_id", ForeignKey("help_categories.id", ondelete="CASCADE"), primary_key=True),
    Column("language", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("slug", Text, nullable=False),
    UniqueConstraint("language", "slug")
)

notification_emails = Table(
    "notification_emails", metadata,
    Column("id", Int, primary_key=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("to_address", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("item_count", Int, nullable=False),
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Int, nullable=False, server_default=text("0")),
    Column("next_at", Text, nullable=False),
    Column("lease_until", Text),
    Column("possible_duplicate", Int, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("created_at", Text, nullable=False),
    Column("sent_at", Text),
    CheckConstraint("state IN ('pending', 'sending', 'sent', 'retry_wait', 'failed')"),
    Index("notification_emails_agent", "agent_id", "id"),
    Index("notification_emails_due", "state", "next_at")
)

notification_settings = Table(
    "notification_settings", metadata,
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("settings", Text, nullable=False, server_default=text("'{}'")),
    Column("updated_at", Text)
)

password_resets = Table(
    "password_resets", metadata,
    Column("id", Int, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("agent_id", ForeignKey("agents.id"), nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("used_at", Text),
    Column("revoked_at", Text),
    Index("password_resets_agent", "agent_id")
)

remembered_devices = Table(
    "remembered_devices", metadata,
    Column("id", Int, primary_key=True),
    Column("agent_id", ForeignKey("agents.id"), nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("label", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("last_used_at", Text),
    Index("remembered_devices_agent", "agent_id")
)

saved_views = Table(
    "saved_views", metadata,
    Column("id", Int, primary_key=True),
    Column("agent_id", ForeignKey("agents.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("filters", Text, nullable=False, server_default=text("'{}'")),
    Column("created_at", Text, nullable=False),
    UniqueConstraint("agent_id", "name")
)

spam_blocks = Table(
    "spam_blocks", metadata,
    Column("id", Int, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("identity_kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("created_by", ForeignKey("agents.id", ondelete="SET NULL")),
    CheckConstraint("kind IN ('address', 'domain', 'handle')"),
    UniqueConstraint("kind", "identity_kind", "value")
)

stored_settings = Table(
    "stored_settings", metadata,
    Column("section", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("updated_by", ForeignKey("agents.id"))
)

team_members = Table(
    "team_members", metadata,
    Column("team_id", ForeignKey("teams.id"), primary_key=True),
    Column("agent_id", ForeignKey("agents.id"), primary_key=True)
)

webhook_subscriptions = Table(
    "webhook_subscriptions", metadata,
    Column("id", Int, primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("state", Text, nullable=False, server_default=text("'active'")),
    Column("paused_at", Text),
    Column("paused_reason", Text),
    Column("failing_since", Text),
    Column("created_at", Text, nullable=False),
    Column("created_by", ForeignKey("agents.id")),
    Column("updated_at", Text, nullable=False),
    CheckConstraint("state IN ('active', 'paused')")
)

answer_versions = Table(
    "answer_versions", metadata,
    Column("answer_id", ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Int, primary_key=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("language", Text, nullable=False),
    Column("tags", Text, nullable=False, server_default=text("''")),
    Column("edited_by", ForeignKey("agents.id")),
    Column("edited_at", Text, nullable=False)
)

conversations = Table(
    "conversations", metadata,
    Column("id", Int, primary_key=True),
    Column("token", Text, nullable=False, unique=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("thread_key", Text),
    Column("subject", Text, nullable=False, server_default=text("''")),
    Column("status", Text, nullable=False, server_default=text("'new'")),
    Column("priority", Int, nullable=False, server_default=text("0")),
    Column("assignee_id", ForeignKey("agents.id")),
    Column("team_id", ForeignKey("teams.id")),
    Column("public", Int, nullable=False, server_default=text("0")),
    Column("automatic", Int, nullable=False, server_default=text("0")),
    Column("flags", Text, nullable=False, server_default=text("''")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("last_message_at", Text, nullable=False),
    Column("last_inbound_at", Text),
    Column("first_response_at", Text),
    Column("snoozed_until", Text),
    Column("merged_into", ForeignKey("conversations.id")),
    Column("waiting_since", Text),
    Column("sla_policy", Text),
    Column("first_response_due_desired", Text),
    Column("first_response_due_adequate", Text),
    Column("next_response_due_desired", Text),
    Column("next_response_due_adequate", Text),
    Column("resolution_due_desired", Text),
    Column("resolution_due_adequate", Text),
    Column("sla_due_desired", Text),
    Column("sla_due_adequate", Text),
    Column("sla_paused_since", Text),
    Column("sla_paused_seconds", Real, nullable=False, server_default=text("0")),
    Column("first_response_seconds", Real),
    Column("first_response_level", Text),
    Column("resolution_seconds", Real),
    Column("resolution_level", Text),
    Column("next_response_breaches", Int, nullable=False, server_default=text("0")),
    Column("resolved_at", Text),
    Column("sla_computed_at", Text),
    Column("assigned_by", Text),
    Column("assigned_at", Text),
    Column("triage_hold", Int, nullable=False, server_default=text("0")),
    CheckConstraint("assigned_by IN ('person', 'routing')"),
    CheckConstraint("status IN ('new', 'open', 'pending', 'snoozed', 'resolved', 'spam')"),
    Index("conversations_backlog", "created_at", "status", "channel", "waiting_since", "automatic", **where("status IN ('new', 'open', 'pending', 'snoozed') AND automatic = 0")),
    Index("conversations_created", "created_at"),
    Index("conversations_customer", "customer_id"),
    Index("conversations_routing_backlog", "status", "assignee_id", **where('assignee_id IS NULL AND automatic = 0')),
    Index("conversations_sla_due", "sla_due_adequate", **where('sla_due_adequate IS NOT NULL')),
    Index("conversations_sla_stale", "id", **where('sla_computed_at IS NULL')),
    Index("conversations_snoozed", "snoozed_until", **where('snoozed_until IS NOT NULL')),
    Index("conversations_team", "team_id", "last_message_at"),
    Index("conversations_thread", "channel", "thread_key"),
    Index("queue_activity", "status", "last_message_at", "team_id", "channel", "assignee_id", "priority"),
    Index("queue_assignee", "assignee_id", "status", "last_message_at")
)

customer_attributes = Table(
    "customer_attributes", metadata,
    Column("customer_id", ForeignKey("customers.id"), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    sqlite_with_rowid=False
)

customer_notes = Table(
    "customer_notes", metadata,
    Column("id", Int, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("agent_id", ForeignKey("agents.id")),
    Column("text", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Index("customer_notes_customer", "customer_id", "id")
)

help_article_views = Table(
    "help_article_views", metadata,
    Column("answer_id", ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Text, primary_key=True),
    Column("views", Int, nullable=False, server_default=text("0")),
    sqlite_with_rowid=False
)

help_search_days = Table(
    "help_search_days", metadata,
    Column("day", Text, primary_key=True),
    Column("language", Text, primary_key=True),
    Column("searches", Int, nullable=False, server_default=text("0")),
    Column("misses", Int, nullable=False, server_default=text("0")),
    sqlite_with_rowid=False
)

help_search_misses = Table(
    "help_search_misses", metadata,
    Column("day", Text, primary_key=True),
    Column("language", Text, primary_key=True),
    Column("query", Text, primary_key=True),
    Column("count", Int, nullable=False, server_default=text("0")),
    sqlite_with_rowid=False
)

help_articles = Table(
    "help_articles", metadata,
    Column("answer_id", ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
    Column("slug", Text, nullable=False, unique=True),
    Column("category_id", ForeignKey("help_categories.id", ondelete="SET NULL")),
    Column("summary", Text, nullable=False, server_default=text("''")),
    Column("article_key", Text, nullable=False, server_default=text("''")),
    Column("published", Int, nullable=False, server_default=text("0")),
    Column("published_at", Text),
    Column("updated_at", Text, nullable=False),
    Index("help_articles_category", "category_id", "published"),
    Index("help_articles_key", "article_key")
)

identities = Table(
    "identities", metadata,
    Column("id", Int, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("display", Text, nullable=False, server_default=text("''")),
    Column("valid", Int, nullable=False, server_default=text("1")),
    Column("delivery_failed", Int, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    UniqueConstraint("kind", "value"),
    Index("identities_customer", "customer_id")
)

merge_suggestions = Table(
    "merge_suggestions", metadata,
    Column("id", Int, primary_key=True),
    Column("customer_a", ForeignKey("customers.id"), nullable=False),
    Column("customer_b", ForeignKey("customers.id"), nullable=False),
    Column("score", Real, nullable=False),
    Column("reasons", Text, nullable=False, server_default=text("'[]'")),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("decided_by", ForeignKey("agents.id")),
    Column("decided_at", Text),
    CheckConstraint("customer_a < customer_b"),
    CheckConstraint("status IN ('open', 'confirmed', 'rejected')"),
    UniqueConstraint("customer_a", "customer_b"),
    Index("merge_suggestions_b", "customer_b"),
    Index("merge_suggestions_queue", "status", "score")
)

name_sightings = Table(
    "name_sightings", metadata,
    Column("day", Text, primary_key=True),
    Column("block", Text, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("name_key", Text, nullable=False),
    Index("name_sightings_customer", "customer_id"),
    Index("name_sightings_key", "name_key"),
    sqlite_with_rowid=False
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Int, primary_key=True),
    Column("subscription_id", ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("event_row", ForeignKey("webhook_out_events.id"), nullable=False),
    Column("replay_of", ForeignKey("webhook_deliveries.id", ondelete="SET NULL")),
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("next_at", Text, nullable=False),
    Column("lease_until", Text),
    Column("attempts", Int, nullable=False, server_default=text("0")),
    Column("attempt_started_at", Text),
    Column("status_code", Int),
    Column("response_body", Text),
    Column("duration_ms", Int),
    Column("last_error", Text),
    Column("created_at", Text, nullable=False),
    Column("finished_at", Text),
    CheckConstraint("state IN ('pending', 'sending', 'retry_wait', 'delivered', 'dead')"),
    Index("webhook_deliveries_due", "state", "next_at"),
    Index("webhook_deliveries_once", "subscription_id", "event_row", **where('replay_of IS NULL'), unique=True),
    Index("webhook_deliveries_subscription", "subscription_id", "id")
)

answer_uses = Table(
    "answer_uses", metadata,
    Column("id", Int, primary_key=True),
    Column("answer_id", ForeignKey("answers.id", ondelete="CASCADE"), nullable=False),
    Column("version", Int, nullable=False),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("agent_id", ForeignKey("agents.id")),
    Column("language", Text),
    Column("at", Text, nullable=False),
    UniqueConstraint("answer_id", "conversation_id"),
    Index("answer_uses_language", "language", "id")
)

check_ins = Table(
    "check_ins", metadata,
    Column("id", Int, primary_key=True),
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("basis", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("snoozed_until", Text),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="SET NULL")),
    Column("owner_id", ForeignKey("agents.id", ondelete="SET NULL")),
    Column("agent_id", ForeignKey("agents.id", ondelete="SET NULL")),
    Column("channel", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    CheckConstraint("rule IN ('rated', 'quiet')"),
    CheckConstraint("state IN ('started', 'skipped', 'snoozed')"),
    UniqueConstraint("customer_id", "basis"),
    Index("check_ins_conversation", "conversation_id"),
    Index("check_ins_started", "updated_at", **where("state = 'started'"))
)

conversation_changes = Table(
    "conversation_changes", metadata,
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Int, nullable=False),
    Column("created_seq", Int, nullable=False),
    Index("conversation_changes_seq", "seq")
)

conversation_labels = Table(
    "conversation_labels", metadata,
    Column("conversation_id", ForeignKey("conversations.id"), primary_key=True),
    Column("label_id", ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True),
    Index("conversation_labels_label", "label_id", "conversation_id"),
    sqlite_with_rowid=False
)

conversation_marks = Table(
    "conversation_marks", metadata,
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("team_read_up_to", Int, nullable=False, server_default=text("0")),
    Column("customer_typing_at", Text)
)

conversation_merges = Table(
    "conversation_merges", metadata,
    Column("id", Int, primary_key=True),
    Column("source_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("target_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("agent_id", ForeignKey("agents.id", ondelete="SET NULL")),
    Column("message_ids", Text, nullable=False),
    Column("source_status", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("undone_at", Text),
    Index("conversation_merges_source", "source_id"),
    Index("conversation_merges_target", "target_id")
)

conversation_seen = Table(
    "conversation_seen", metadata,
    Column("agent_id", ForeignKey("agents.id"), primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id"), primary_key=True),
    Column("message_id", Int, nullable=False),
    sqlite_with_rowid=False
)

conversation_status_log = Table(
    "conversation_status_log", metadata,
    Column("id", Int, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("at", Text, nullable=False),
    Column("old_status", Text),
    Column("new_status", Text, nullable=False),
    Index("conversation_status_log_conversation", "conversation_id", "at")
)

customer_merges = Table(
    "customer_merges", metadata,
    Column("id", Int, primary_key=True),
    Column("survivor_id", ForeignKey("customers.id"), nullable=False),
    Column("merged_id", ForeignKey("customers.id"), nullable=False),
    Column("suggestion_id", ForeignKey("merge_suggestions.id")),
    Column("agent_id", ForeignKey("agents.id")),
    Column("snapshot", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("undone_at", Text),
    Column("undone_by", ForeignKey("agents.id")),
    Index("customer_merges_merged", "merged_id"),
    Index("customer_merges_survivor", "survivor_id")
)

drafts = Table(
    "drafts", metadata,
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("text", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    CheckConstraint("kind IN ('reply', 'note')"),
    Index("drafts_conversation", "conversation_id"),
    sqlite_with_rowid=False
)

messages = Table(
    "messages", metadata,
    Column("id", Int, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("external_id", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("customer_id", ForeignKey("customers.id")),
    Column("agent_id", ForeignKey("agents.id")),
    Column("author_name", Text, nullable=False, server_default=text("''")),
    Column("author_handle", Text, nullable=False, server_default=text("''")),
    Column("subject", Text, nullable=False, server_default=text("''")),
    Column("text", Text, nullable=False, server_default=text("''")),
    Column("html", Text),
    Column("message_id", Text),
    Column("refs", Text, nullable=False, server_default=text("''")),
    Column("flags", Text, nullable=False, server_default=text("''")),
    Column("defects", Text, nullable=False, server_default=text("''")),
    Column("headers", Text, nullable=False, server_default=text("'{}'")),
    Column("source_ref", Text),
    Column("size", Int),
    Column("sent_at", Text),
    Column("received_at", Text, nullable=False),
    Column("delivery_status", Text),
    Column("delivery_error", Text),
    Column("context_text", Text),
    Column("context_url", Text),
    Column("edited_at", Text),
    Column("deleted_at", Text),
    Column("signature", Text),
    Column("cc", Text),
    Column("bcc", Text),
    Column("spam_verdict", Text),
    Column("spam_probability", Real),
    Column("spam_model_version", Int),
    Column("spam_reason", Text),
    CheckConstraint("direction IN ('in', 'out', 'note')"),
    UniqueConstraint("channel", "external_id"),
    Index("messages_conversation", "conversation_id", "id"),
    Index("messages_customer", "customer_id"),
    Index("messages_message_id", "message_id", **where('message_id IS NOT NULL')),
    Index("messages_replies", "conversation_id", "received_at", "agent_id", "flags", "direction", **where("direction = 'out'")),
    Index("messages_replies_by_time", "received_at", "agent_id", "flags", "direction", **where("direction = 'out' AND agent_id IS NOT NULL"))
)

presence = Table(
    "presence", metadata,
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("state", Text, nullable=False),
    Column("seen_at", Text, nullable=False),
    CheckConstraint("state IN ('viewing', 'typing')")
)

review_items = Table(
    "review_items", metadata,
    Column("id", Int, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("agent_id", ForeignKey("agents.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("html", Text),
    Column("state", Text, nullable=False, server_default=text("'pending_review'")),
    Column("created_at", Text, nullable=False),
    Column("reviewer_id", ForeignKey("agents.id")),
    Column("decided_at", Text),
    Column("review_seconds", Real),
    Column("comment", Text),
    Column("final_text", Text),
    Column("edited", Int, nullable=False, server_default=text("0")),
    Column("outbox_id", Text),
    Column("cc", Text),
    Column("bcc", Text),
    CheckConstraint("state IN ('pending_review', 'approved', 'returned')"),
    Index("review_items_agent", "agent_id", "id"),
    Index("review_items_conversation", "conversation_id"),
    Index("review_items_state", "state", "created_at")
)

routing_decisions = Table(
    "routing_decisions", metadata,
    Column("id", Int, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("agent_id", ForeignKey("agents.id")),
    Column("previous_agent_id", ForeignKey("agents.id")),
    Column("team_id", ForeignKey("teams.id")),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=text("'{}'")),
    Column("at", Text, nullable=False),
    Index("routing_decisions_at", "at"),
    Index("routing_decisions_conversation", "conversation_id", "id")
)

rule_firings = Table(
    "rule_firings", metadata,
    Column("id", Int, primary_key=True),
    Column("rule_id", ForeignKey("rules.id", ondelete="SET NULL")),
    Column("rule_name", Text, nullable=False),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("event_key", Text, nullable=False),
    Column("depth", Int, nullable=False, server_default=text("0")),
    Column("outcome", Text, nullable=False),
    Column("done", Text, nullable=False, server_default=text("'[]'")),
    Column("error", Text),
    Column("fired_at", Text, nullable=False),
    UniqueConstraint("rule_id", "conversation_id", "event_key"),
    Index("rule_firings_conversation", "conversation_id", "id"),
    Index("rule_firings_rule", "rule_id", "id")
)

sla_notifications = Table(
    "sla_notifications", metadata,
    Column("id", Int, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("metric", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("due_at", Text, nullable=False),
    Column("notified", Int, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    CheckConstraint("kind IN ('warning', 'breach')"),
    UniqueConstraint("conversation_id", "metric", "kind", "due_at")
)

attachments = Table(
    "attachments", metadata,
    Column("id", Int, primary_key=True),
    Column("message_id", ForeignKey("messages.id"), nullable=False),
    Column("filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size", Int, nullable=False),
    Column("sha256", Text),
    Column("stored", Int, nullable=False, server_default=text("1")),
    Column("content_id", Text),
    Column("inline", Int, nullable=False, server_default=text("0")),
    Column("type_mismatch", Int, nullable=False, server_default=text("0")),
    Index("attachments_message", "message_id")
)

chat_emails = Table(
    "chat_emails", metadata,
    Column("outbox_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("visitor", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("language", Text, nullable=False, server_default=text("'en'")),
    Column("reply_id", ForeignKey("messages.id", ondelete="CASCADE"), unique=True),
    Column("page", Text),
    Column("nonce", Text, unique=True),
    Column("expires_at", Text),
    Column("used_at", Text),
    Column("created_at", Text, nullable=False),
    CheckConstraint("kind IN ('followup', 'signin')"),
    Index("chat_emails_address", "address", "created_at")
)

csat_surveys = Table(
    "csat_surveys", metadata,
    Column("id", Int, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("channel", Text, nullable=False),
    Column("customer_id", ForeignKey("customers.id")),
    Column("agent_id", ForeignKey("agents.id")),
    Column("team_id", ForeignKey("teams.id")),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False, server_default=text("'asked'")),
    Column("token_hash", Text, unique=True),
    Column("message_id", ForeignKey("messages.id")),
    Column("first_response_seconds", Real),
    Column("asked_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("score", Int),
    Column("comment", Text),
    Column("answered_at", Text),
    Column("answer_message_id", ForeignKey("messages.id")),
    CheckConstraint("kind IN ('link', 'chat')"),
    CheckConstraint("score BETWEEN 1 AND 5"),
    CheckConstraint("state IN ('asked', 'answered', 'expired')"),
    Index("csat_surveys_answered", "answered_at", **where('answered_at IS NOT NULL')),
    Index("csat_surveys_asked", "asked_at")
)

customer_claims = Table(
    "customer_claims", metadata,
    Column("id", Int, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("message_id", ForeignKey("messages.id")),
    Column("created_at", Text, nullable=False),
    CheckConstraint("source IN ('import', 'api', 'message', 'agent')"),
    UniqueConstraint("customer_id", "kind", "value"),
    Index("customer_claims_value", "kind", "value")
)

message_edits = Table(
    "message_edits", metadata,
    Column("id", Int, primary_key=True),
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("previous_text", Text),
    Column("previous_html", Text),
    Column("replaced_at", Text, nullable=False),
    Index("message_edits_message", "message_id")
)

notifications = Table(
    "notifications", metadata,
    Column("id", Int, primary_key=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE")),
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE")),
    Column("actor_id", ForeignKey("agents.id", ondelete="SET NULL")),
    Column("created_at", Text, nullable=False),
    Column("read_at", Text),
    Column("in_app", Int, nullable=False, server_default=text("1")),
    Column("email_state", Text),
    Column("email_id", ForeignKey("notification_emails.id", ondelete="SET NULL")),
    CheckConstraint("email_state IN ('pending', 'mailed', 'skipped')"),
    Index("notifications_agent", "agent_id", "read_at", "id"),
    Index("notifications_agent_newest", "agent_id", "id"),
    Index("notifications_conversation", "conversation_id"),
    Index("notifications_email_pending", "agent_id", "id", **where("email_state = 'pending'"))
)

quarantine = Table(
    "quarantine", metadata,
    Column("id", Int, primary_key=True),
    Column("channel", Text, nullable=False),
    Column("source_ref", Text),
    Column("sha256", Text, nullable=False),
    Column("raw", Bytes, nullable=False),
    Column("reason", Text, nullable=False),
    Column("exception", Text),
    Column("attempts", Int, nullable=False, server_default=text("1")),
    Column("first_seen", Text, nullable=False),
    Column("last_seen", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'held'")),
    Column("message_id", ForeignKey("messages.id")),
    CheckConstraint("status IN ('held', 'released', 'deleted')"),
    UniqueConstraint("channel", "sha256")
)

raw_messages = Table(
    "raw_messages", metadata,
    Column("message_id", ForeignKey("messages.id"), primary_key=True),
    Column("data", Bytes, nullable=False)
)

review_attachments = Table(
    "review_attachments", metadata,
    Column("id", Int, primary_key=True),
    Column("review_item_id", ForeignKey("review_items.id", ondelete="CASCADE"), nullable=False),
    Column("filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size", Int, nullable=False),
    Column("sha256", Text, nullable=False),
    Index("review_attachments_item", "review_item_id")
)

triage_reviews = Table(
    "triage_reviews", metadata,
    Column("id", Int, primary_key=True),
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("machine_verdict", Text, nullable=False),
    Column("probability", Real),
    Column("model_version", Int),
    Column("reason", Text),
    Column("facts", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("decided_at", Text),
    Column("decided_by", ForeignKey("agents.id", ondelete="SET NULL")),
    Column("human_verdict", Text),
    CheckConstraint("human_verdict IN ('customer', 'spam')"),
    CheckConstraint("kind IN ('suspicious', 'sample')"),
    CheckConstraint("machine_verdict IN ('clean', 'suspicious', 'spam')"),
    Index("triage_reviews_samples", "channel", **where("kind = 'sample'")),
    Index("triage_reviews_waiting", "created_at", **where('decided_at IS NULL'))
)

outbox = Table(
    "outbox", metadata,
    Column("id", Text, primary_key=True),
    Column("message_id", ForeignKey("messages.id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Int, nullable=False, server_default=text("0")),
    Column("next_at", Text, nullable=False),
    Column("lease_until", Text),
    Column("last_error", Text),
    Column("provider_id", Text),
    Column("possible_duplicate", Int, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    Column("sent_at", Text),
    Column("undo_status", Text),
    Column("forward_of", Int),
    Column("part", Text, nullable=False, server_default=text("'all'")),
    Column("attachment_id", ForeignKey("attachments.id")),
    Column("part_index", Int, nullable=False, server_default=text("0")),
    Column("reply_to", Int),
    Column("thread_key", Text),
    Column("public", Int),
    Column("to_handle", Text),
    Column("to_name", Text),
    Column("to_kind", Text),
    Column("template", Text),
    Column("attempt_started_at", Text),
    Column("uncertain", Int, nullable=False, server_default=text("0")),
    CheckConstraint("part IN ('all', 'text', 'file')"),
    CheckConstraint("state IN ('pending', 'sending', 'retry_wait', 'sent', 'failed', 'dead', 'needs_review')"),
    Index("outbox_due", "state", "next_at"),
    Index("outbox_message", "message_id")
)

# Indexes on expressions (SQLAlchemy's reflection cannot read these back; tests/test_schema.py
# checks them by their definition). The queue sorts conversations with no waiting time or due time
# last: '~' sorts after every timestamp.
Index("queue_urgency", conversations.c.status, func.coalesce(conversations.c.sla_due_adequate, "~"),
      conversations.c.team_id, conversations.c.channel, conversations.c.assignee_id, conversations.c.priority)
Index("queue_waiting", conversations.c.status, func.coalesce(conversations.c.waiting_since, "~"),
      conversations.c.team_id, conversations.c.channel, conversations.c.assignee_id, conversations.c.priority)
# Label names are unique whatever their case (SQLite: the column's NOCASE collation).
Index("labels_name_folded", func.lower(labels.c.name), unique=True).ddl_if(dialect="postgresql")


def tables_with_id() -> frozenset[str]:
    """The tables whose key is a generated whole number `id`: an insert into one hands back its id."""
    return frozenset(name for name, table in metadata.tables.items()
                     if [column.name for column in table.primary_key.columns] == ["id"]
                     and table.c.id.type.python_type is int)
