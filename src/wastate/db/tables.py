"""The schema: one declarative model per table. `tenant_id` leads every unique key and index.

Record families and their tables:

- mappings: `conversation_mappings`
- message tracking: `message_tracking`, `message_status_events` (append-only history),
  `pending_status_events` (status events that arrived before their message was tracked)
- seed-004 state: `client_sessions`, `approval_messages`, `approval_transitions`,
  `approval_statistics`, `config_entries`
- HTTP: `api_keys`
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from wastate.db.base import Base, BigId, JSONValue, UTCDateTime, enum_check
from wastate.domain.ids import MAX_WA_ID_LENGTH
from wastate.domain.lifecycle import ApprovalStatus
from wastate.domain.mappings import MAX_CONVERSATION_ID_LENGTH, MappingStatus
from wastate.domain.messages import DeliveryStatus, Direction, MessageType

__all__ = [
    "ApiKey",
    "ApprovalMessage",
    "ApprovalStatistics",
    "ApprovalTransition",
    "ClientSession",
    "ConfigEntry",
    "ConversationMappingRow",
    "MessageStatusEvent",
    "MessageTrackingRow",
    "PendingStatusEvent",
]

ACTIVE_ONLY = text("status = 'active'")
"""The predicate of the partial unique index: at most one *active* mapping per (tenant, wa_id)."""

_TENANT = 64
_EXTERNAL_ID = 256


class ConversationMappingRow(Base):
    """A WhatsApp user's conversation in a tenant; many closed ones, at most one active."""

    __tablename__ = "conversation_mappings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    wa_id: Mapped[str] = mapped_column(String(MAX_WA_ID_LENGTH))
    conversation_id: Mapped[str] = mapped_column(String(MAX_CONVERSATION_ID_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default=MappingStatus.ACTIVE.value)
    contact_name: Mapped[str | None] = mapped_column(String(256))
    communication_id: Mapped[str | None] = mapped_column(String(MAX_CONVERSATION_ID_LENGTH))
    last_message_id: Mapped[str | None] = mapped_column(String(_EXTERNAL_ID))
    correlated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("tenant_id", "conversation_id"),
        Index(
            "uq_conversation_mappings_active_wa_id",
            "tenant_id",
            "wa_id",
            unique=True,
            postgresql_where=ACTIVE_ONLY,
            sqlite_where=ACTIVE_ONLY,
        ),
        Index(None, "tenant_id", "wa_id", "created_at"),
        Index(None, "tenant_id", "status", "last_activity_at"),
        enum_check("status", MappingStatus),
        CheckConstraint("(status = 'active') = (closed_at IS NULL)", name="closed_at_iff_closed"),
    )


MessageJSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSON of the message-tracking tables: Python None is SQL NULL (their COALESCE rules need it)."""


class MessageTrackingRow(Base):
    """A tracked WhatsApp message: ids, direction, type, media, and its delivery status."""

    __tablename__ = "message_tracking"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    meta_message_id: Mapped[str | None] = mapped_column(String(_EXTERNAL_ID))
    genesys_message_id: Mapped[str | None] = mapped_column(String(_EXTERNAL_ID))
    conversation_id: Mapped[str | None] = mapped_column(String(MAX_CONVERSATION_ID_LENGTH))
    wa_id: Mapped[str | None] = mapped_column(String(MAX_WA_ID_LENGTH))
    direction: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    message_type: Mapped[str] = mapped_column(String(32))
    media_type: Mapped[str | None] = mapped_column(String(128))
    media_url: Mapped[str | None] = mapped_column(String(2048))
    media_id: Mapped[str | None] = mapped_column(String(256))
    media_mime_type: Mapped[str | None] = mapped_column(String(255))
    media_sha256: Mapped[str | None] = mapped_column(String(128))
    media_filename: Mapped[str | None] = mapped_column(String(1024))
    media_caption: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    played_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_title: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[str | None] = mapped_column(Text)
    pricing: Mapped[dict[str, Any] | None] = mapped_column(MessageJSON)
    conversation_info: Mapped[dict[str, Any] | None] = mapped_column(MessageJSON)
    biz_opaque_callback_data: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("tenant_id", "meta_message_id"),
        UniqueConstraint("tenant_id", "genesys_message_id"),
        Index(None, "tenant_id", "conversation_id", "created_at", "id"),
        Index(None, "tenant_id", "created_at"),
        enum_check("direction", Direction),
        enum_check("status", DeliveryStatus),
        enum_check("message_type", MessageType),
        CheckConstraint(
            "meta_message_id IS NOT NULL OR genesys_message_id IS NOT NULL", name="has_an_id"
        ),
    )


class MessageStatusEvent(Base):
    """Append-only delivery-status history: one row per (message, status), earliest time kept."""

    __tablename__ = "message_status_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("message_tracking.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_title: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(MessageJSON)

    __table_args__ = (
        UniqueConstraint("tenant_id", "message_id", "status"),
        enum_check("status", DeliveryStatus),
    )


class PendingStatusEvent(Base):
    """A status event for a message not tracked yet (webhooks race the sender); adopted by
    `track`, purged when old."""

    __tablename__ = "pending_status_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    external_id: Mapped[str] = mapped_column(String(_EXTERNAL_ID))
    status: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_title: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(MessageJSON)

    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id", "status"),
        Index(None, "tenant_id", "recorded_at"),
        enum_check("status", DeliveryStatus),
    )


class ClientSession(Base):
    """A WhatsApp Web style client's session (seed 004), one per (tenant, client_id)."""

    __tablename__ = "client_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    client_id: Mapped[str] = mapped_column(String(_TENANT))
    authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    session_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    requires_qr: Mapped[bool] = mapped_column(Boolean, default=True)
    session_path: Mapped[str] = mapped_column(String(1024), default=".wwebjs_auth")
    last_authenticated: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_validation: Mapped[datetime | None] = mapped_column(UTCDateTime())
    validation_interval_minutes: Mapped[int] = mapped_column(Integer, default=30)
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    account_info: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    account_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("tenant_id", "client_id"),
        CheckConstraint("validation_interval_minutes > 0", name="positive_interval"),
    )


class ApprovalMessage(Base):
    """A message in the human-in-the-loop lifecycle; the caller's dict is kept whole."""

    __tablename__ = "approval_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    client_id: Mapped[str] = mapped_column(String(_TENANT))
    message_id: Mapped[str] = mapped_column(String(_EXTERNAL_ID))
    status: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("tenant_id", "client_id", "message_id"),
        # A bucket lists messages in the order they entered it (the seed appends on every move).
        # Named by hand: the generated name would pass PostgreSQL's 63-character limit.
        Index(
            "ix_approval_messages_bucket_order",
            "tenant_id",
            "client_id",
            "status",
            "status_changed_at",
            "id",
        ),
        enum_check("status", ApprovalStatus),
    )


class ApprovalTransition(Base):
    """Every move of an approval message (from_status is NULL for the add)."""

    __tablename__ = "approval_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    approval_message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("approval_messages.id", ondelete="CASCADE")
    )
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(None, "tenant_id", "approval_message_id", "id"),
        enum_check("from_status", ApprovalStatus),
        enum_check("to_status", ApprovalStatus),
    )


class ApprovalStatistics(Base):
    """Entries into each lifecycle status since the last reset, per (tenant, client)."""

    __tablename__ = "approval_statistics"

    tenant_id: Mapped[str] = mapped_column(String(_TENANT), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(_TENANT), primary_key=True)
    total_incoming: Mapped[int] = mapped_column(Integer, default=0)
    total_pending_approval: Mapped[int] = mapped_column(Integer, default=0)
    total_approved: Mapped[int] = mapped_column(Integer, default=0)
    total_rejected: Mapped[int] = mapped_column(Integer, default=0)
    total_sent: Mapped[int] = mapped_column(Integer, default=0)
    total_failed: Mapped[int] = mapped_column(Integer, default=0)
    last_message_received: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_message_sent: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConfigEntry(Base):
    """A key/value config entry (JSON value), per (tenant, client)."""

    __tablename__ = "config_entries"

    tenant_id: Mapped[str] = mapped_column(String(_TENANT), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(_TENANT), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONValue)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An HTTP API key: only a hash of the secret is stored; a key opens only its tenant."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_TENANT))
    key_id: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "key_id"),)
