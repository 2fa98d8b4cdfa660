"""Initial schema: mappings, message tracking with status history, seed-004 state, API keys.

Hand-reviewed. Every constraint and index is named by the metadata naming convention.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:58:15.206548+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _bigid() -> sa.types.TypeEngine[int]:
    # 64-bit keys; SQLite auto-increments only an INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("tenant_id", "key_id", name=op.f("uq_api_keys_tenant_id_key_id")),
    )
    op.create_table(
        "approval_messages",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("status_changed_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "status IN ('incoming', 'pending_approval', 'approved', 'rejected', 'sent', 'failed')",
            name=op.f("ck_approval_messages_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_messages")),
        sa.UniqueConstraint(
            "tenant_id",
            "client_id",
            "message_id",
            name=op.f("uq_approval_messages_tenant_id_client_id_message_id"),
        ),
    )
    op.create_index(
        op.f("ix_approval_messages_bucket_order"),
        "approval_messages",
        ["tenant_id", "client_id", "status", "status_changed_at", "id"],
        unique=False,
    )

    op.create_table(
        "approval_statistics",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("total_incoming", sa.Integer(), nullable=False),
        sa.Column("total_pending_approval", sa.Integer(), nullable=False),
        sa.Column("total_approved", sa.Integer(), nullable=False),
        sa.Column("total_rejected", sa.Integer(), nullable=False),
        sa.Column("total_sent", sa.Integer(), nullable=False),
        sa.Column("total_failed", sa.Integer(), nullable=False),
        sa.Column("last_message_received", _ts(), nullable=True),
        sa.Column("last_message_sent", _ts(), nullable=True),
        sa.Column("reset_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "client_id", name=op.f("pk_approval_statistics")),
    )
    op.create_table(
        "client_sessions",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.Column("session_valid", sa.Boolean(), nullable=False),
        sa.Column("requires_qr", sa.Boolean(), nullable=False),
        sa.Column("session_path", sa.String(length=1024), nullable=False),
        sa.Column("last_authenticated", _ts(), nullable=True),
        sa.Column("last_validation", _ts(), nullable=True),
        sa.Column("validation_interval_minutes", sa.Integer(), nullable=False),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
        sa.Column("invalidated_at", _ts(), nullable=True),
        sa.Column("account_info", _json(), nullable=True),
        sa.Column("account_updated_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "validation_interval_minutes > 0", name=op.f("ck_client_sessions_positive_interval")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_sessions")),
        sa.UniqueConstraint(
            "tenant_id", "client_id", name=op.f("uq_client_sessions_tenant_id_client_id")
        ),
    )
    op.create_table(
        "config_entries",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", _json(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "client_id", "key", name=op.f("pk_config_entries")),
    )
    op.create_table(
        "conversation_mappings",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("wa_id", sa.String(length=140), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("contact_name", sa.String(length=256), nullable=True),
        sa.Column("communication_id", sa.String(length=128), nullable=True),
        sa.Column("last_message_id", sa.String(length=256), nullable=True),
        sa.Column("correlated_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("last_activity_at", _ts(), nullable=False),
        sa.Column("closed_at", _ts(), nullable=True),
        sa.CheckConstraint(
            "(status = 'active') = (closed_at IS NULL)",
            name=op.f("ck_conversation_mappings_closed_at_iff_closed"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'closed', 'expired')",
            name=op.f("ck_conversation_mappings_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_mappings")),
        sa.UniqueConstraint(
            "tenant_id",
            "conversation_id",
            name=op.f("uq_conversation_mappings_tenant_id_conversation_id"),
        ),
    )
    op.create_index(
        op.f("ix_conversation_mappings_tenant_id_status_last_activity_at"),
        "conversation_mappings",
        ["tenant_id", "status", "last_activity_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_conversation_mappings_tenant_id_wa_id_created_at"),
        "conversation_mappings",
        ["tenant_id", "wa_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_conversation_mappings_active_wa_id",
        "conversation_mappings",
        ["tenant_id", "wa_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "message_tracking",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("meta_message_id", sa.String(length=256), nullable=True),
        sa.Column("genesys_message_id", sa.String(length=256), nullable=True),
        sa.Column("conversation_id", sa.String(length=128), nullable=True),
        sa.Column("wa_id", sa.String(length=140), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_type", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=True),
        sa.Column("media_url", sa.String(length=2048), nullable=True),
        sa.Column("media_id", sa.String(length=256), nullable=True),
        sa.Column("media_mime_type", sa.String(length=255), nullable=True),
        sa.Column("media_sha256", sa.String(length=128), nullable=True),
        sa.Column("media_filename", sa.String(length=1024), nullable=True),
        sa.Column("media_caption", sa.Text(), nullable=True),
        sa.Column("queued_at", _ts(), nullable=True),
        sa.Column("sent_at", _ts(), nullable=True),
        sa.Column("failed_at", _ts(), nullable=True),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("read_at", _ts(), nullable=True),
        sa.Column("played_at", _ts(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("pricing", _json(), nullable=True),
        sa.Column("conversation_info", _json(), nullable=True),
        sa.Column("biz_opaque_callback_data", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_message_tracking_direction")
        ),
        sa.CheckConstraint(
            "message_type IN ('text', 'image', 'video', 'audio', 'document', 'sticker', 'location', 'contacts', 'interactive', 'button', 'reaction', 'order', 'template', 'system', 'request_welcome', 'unsupported', 'unknown')",
            name=op.f("ck_message_tracking_message_type"),
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'failed', 'delivered', 'read', 'played')",
            name=op.f("ck_message_tracking_status"),
        ),
        sa.CheckConstraint(
            "meta_message_id IS NOT NULL OR genesys_message_id IS NOT NULL",
            name=op.f("ck_message_tracking_has_an_id"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_tracking")),
        sa.UniqueConstraint(
            "tenant_id",
            "genesys_message_id",
            name=op.f("uq_message_tracking_tenant_id_genesys_message_id"),
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "meta_message_id",
            name=op.f("uq_message_tracking_tenant_id_meta_message_id"),
        ),
    )
    op.create_index(
        op.f("ix_message_tracking_tenant_id_conversation_id_created_at_id"),
        "message_tracking",
        ["tenant_id", "conversation_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_message_tracking_tenant_id_created_at"),
        "message_tracking",
        ["tenant_id", "created_at"],
        unique=False,
    )

    op.create_table(
        "pending_status_events",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("payload", _json(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'failed', 'delivered', 'read', 'played')",
            name=op.f("ck_pending_status_events_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_status_events")),
        sa.UniqueConstraint(
            "tenant_id",
            "external_id",
            "status",
            name=op.f("uq_pending_status_events_tenant_id_external_id_status"),
        ),
    )
    op.create_index(
        op.f("ix_pending_status_events_tenant_id_recorded_at"),
        "pending_status_events",
        ["tenant_id", "recorded_at"],
        unique=False,
    )

    op.create_table(
        "approval_transitions",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("approval_message_id", _bigid(), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "from_status IN ('incoming', 'pending_approval', 'approved', 'rejected', 'sent', 'failed')",
            name=op.f("ck_approval_transitions_from_status"),
        ),
        sa.CheckConstraint(
            "to_status IN ('incoming', 'pending_approval', 'approved', 'rejected', 'sent', 'failed')",
            name=op.f("ck_approval_transitions_to_status"),
        ),
        sa.ForeignKeyConstraint(
            ["approval_message_id"],
            ["approval_messages.id"],
            name=op.f("fk_approval_transitions_approval_message_id_approval_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_transitions")),
    )
    op.create_index(
        op.f("ix_approval_transitions_tenant_id_approval_message_id_id"),
        "approval_transitions",
        ["tenant_id", "approval_message_id", "id"],
        unique=False,
    )

    op.create_table(
        "message_status_events",
        sa.Column("id", _bigid(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", _bigid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("payload", _json(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'failed', 'delivered', 'read', 'played')",
            name=op.f("ck_message_status_events_status"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message_tracking.id"],
            name=op.f("fk_message_status_events_message_id_message_tracking"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_status_events")),
        sa.UniqueConstraint(
            "tenant_id",
            "message_id",
            "status",
            name=op.f("uq_message_status_events_tenant_id_message_id_status"),
        ),
    )


def downgrade() -> None:
    op.drop_table("message_status_events")

    op.drop_table("approval_transitions")

    op.drop_table("pending_status_events")

    op.drop_table("message_tracking")

    op.drop_table("conversation_mappings")
    op.drop_table("config_entries")
    op.drop_table("client_sessions")
    op.drop_table("approval_statistics")

    op.drop_table("approval_messages")
    op.drop_table("api_keys")
