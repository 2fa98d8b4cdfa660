"""The schema's own guarantees, tried directly against PostgreSQL and SQLite with raw inserts.

Each constraint is attacked without going through a repository, so these tests fail if the
constraint itself is missing, whatever the Python code above it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Table, create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from wastate.db.base import table_of
from wastate.db.tables import (
    ApprovalMessage,
    ConversationMappingRow,
    MessageStatusEvent,
    MessageTrackingRow,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def connection(database_url: str) -> Iterator[Connection]:
    """A connection whose work is rolled back at the end (nothing leaks into other tests)."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        yield conn
        conn.rollback()
    engine.dispose()


def mapping(
    tenant: str, wa_id: str, conversation_id: str, status: str = "active"
) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "wa_id": wa_id,
        "conversation_id": conversation_id,
        "status": status,
        "created_at": NOW,
        "last_activity_at": NOW,
        "closed_at": None if status == "active" else NOW,
    }


def message(tenant: str, **ids: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "direction": "inbound",
        "status": "sent",
        "message_type": "text",
        "created_at": NOW,
        "updated_at": NOW,
        **ids,
    }


def refused(connection: Connection, table: Table, row: dict[str, Any]) -> bool:
    """True when the database refuses the row (the savepoint keeps the test's work alive)."""
    savepoint = connection.begin_nested()
    try:
        connection.execute(insert(table), row)
    except IntegrityError:
        savepoint.rollback()
        return True
    savepoint.commit()
    return False


MAPPINGS = table_of(ConversationMappingRow)
MESSAGES = table_of(MessageTrackingRow)
EVENTS = table_of(MessageStatusEvent)
APPROVALS = table_of(ApprovalMessage)


def test_one_active_mapping_per_tenant_and_wa_id(connection: Connection, tenant: str) -> None:
    """A second active mapping for a user is refused; closed ones may pile up."""
    assert not refused(connection, MAPPINGS, mapping(tenant, "+1555", "c1"))
    assert refused(connection, MAPPINGS, mapping(tenant, "+1555", "c2"))
    assert not refused(connection, MAPPINGS, mapping(tenant, "+1555", "c3", "closed"))
    assert not refused(connection, MAPPINGS, mapping(tenant, "+1555", "c4", "expired"))
    assert not refused(connection, MAPPINGS, mapping(tenant + "x", "+1555", "c1"))


def test_conversation_ids_are_unique_per_tenant(connection: Connection, tenant: str) -> None:
    """Two mappings of one tenant cannot share a conversation id, in any status."""
    assert not refused(connection, MAPPINGS, mapping(tenant, "+1555", "same", "closed"))
    assert refused(connection, MAPPINGS, mapping(tenant, "+1666", "same"))


def test_mapping_status_must_be_known_and_consistent(connection: Connection, tenant: str) -> None:
    """Unknown statuses and closed rows without closed_at are refused."""
    assert refused(connection, MAPPINGS, mapping(tenant, "+1555", "c1", "paused"))
    row = mapping(tenant, "+1555", "c2", "closed") | {"closed_at": None}
    assert refused(connection, MAPPINGS, row)


def test_external_message_ids_are_unique_per_tenant(connection: Connection, tenant: str) -> None:
    """Either external id may appear once per tenant; other tenants are independent."""
    assert not refused(connection, MESSAGES, message(tenant, meta_message_id="wamid.1"))
    assert refused(connection, MESSAGES, message(tenant, meta_message_id="wamid.1"))
    assert not refused(connection, MESSAGES, message(tenant, genesys_message_id="g-1"))
    assert refused(connection, MESSAGES, message(tenant, genesys_message_id="g-1"))
    assert not refused(connection, MESSAGES, message(tenant + "x", meta_message_id="wamid.1"))


def test_a_message_needs_an_id_and_known_enums(connection: Connection, tenant: str) -> None:
    """No external id, or an unknown direction/status/type, is refused."""
    assert refused(connection, MESSAGES, message(tenant))
    assert refused(connection, MESSAGES, message(tenant, meta_message_id="m", direction="sideways"))
    assert refused(connection, MESSAGES, message(tenant, meta_message_id="m", status="seen"))
    assert refused(connection, MESSAGES, message(tenant, meta_message_id="m", message_type="fax"))


def test_one_status_event_per_message_and_status(connection: Connection, tenant: str) -> None:
    """The history keeps one row per (message, status); another status is a new row."""
    connection.execute(insert(MESSAGES), message(tenant, meta_message_id="wamid.h"))
    message_id = connection.execute(
        select(MESSAGES.c.id).where(
            MESSAGES.c.tenant_id == tenant, MESSAGES.c.meta_message_id == "wamid.h"
        )
    ).scalar_one()
    event = {
        "tenant_id": tenant,
        "message_id": message_id,
        "status": "delivered",
        "occurred_at": NOW,
        "recorded_at": NOW,
    }
    assert not refused(connection, EVENTS, event)
    assert refused(connection, EVENTS, event)
    assert not refused(connection, EVENTS, event | {"status": "read"})
    assert refused(connection, EVENTS, event | {"status": "bounced"})
    assert refused(connection, EVENTS, event | {"message_id": 10**12, "status": "sent"})


def test_approval_messages_need_a_known_status(connection: Connection, tenant: str) -> None:
    """The lifecycle status column accepts only the six MessageStatus names."""
    row = {
        "tenant_id": tenant,
        "client_id": "default",
        "message_id": "msg1",
        "status": "limbo",
        "payload": {"id": "msg1"},
        "created_at": NOW,
        "status_changed_at": NOW,
    }
    assert refused(connection, APPROVALS, row)
    assert not refused(connection, APPROVALS, row | {"status": "incoming"})
    assert refused(connection, APPROVALS, row | {"status": "incoming"})
