"""One place per concept: each shared rule or helper, checked once, here (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from wastate.db.tables import ConversationMappingRow, MessageTrackingRow
from wastate.domain.clock import isoformat
from wastate.domain.ids import MAX_WA_ID_LENGTH
from wastate.domain.mappings import MAX_CONVERSATION_ID_LENGTH
from wastate.domain.messages import NewMessage
from wastate.domain.sessions import ClientSessionState, qr_required, requires_qr_scan
from wastate.domain.storable import field_path
from wastate.errors import one_line
from wastate.http.schemas import CorrelateRequest, TrackMessageRequest


def _max_length(model: Any, name: str) -> int:
    for item in model.model_fields[name].metadata:
        if getattr(item, "max_length", None) is not None:
            return int(item.max_length)
    raise AssertionError(f"{model.__name__}.{name} has no max_length")


def _column_length(model: Any, name: str) -> int:
    return int(model.__table__.c[name].type.length)


def test_the_id_length_limits_are_one_constant_each() -> None:
    """Rule, models, HTTP schemas and columns agree because they read the same constant."""
    assert _column_length(ConversationMappingRow, "wa_id") == MAX_WA_ID_LENGTH
    assert _column_length(MessageTrackingRow, "wa_id") == MAX_WA_ID_LENGTH
    for column in ("conversation_id", "communication_id"):
        assert _column_length(ConversationMappingRow, column) == MAX_CONVERSATION_ID_LENGTH
    assert _column_length(MessageTrackingRow, "conversation_id") == MAX_CONVERSATION_ID_LENGTH
    assert _max_length(NewMessage, "wa_id") == _max_length(TrackMessageRequest, "wa_id")
    assert _max_length(TrackMessageRequest, "wa_id") == MAX_WA_ID_LENGTH
    for model, name in [
        (NewMessage, "conversation_id"),
        (TrackMessageRequest, "conversation_id"),
        (CorrelateRequest, "conversation_id"),
        (CorrelateRequest, "communication_id"),
    ]:
        assert _max_length(model, name) == MAX_CONVERSATION_ID_LENGTH


@pytest.mark.parametrize(
    ("authenticated", "session_valid", "needed"),
    # Written out from DESIGN.md's rule, not computed: QR iff not authenticated or invalid.
    [(False, False, True), (False, True, True), (True, False, True), (True, True, False)],
)
def test_the_qr_rule(authenticated: bool, session_valid: bool, needed: bool) -> None:
    assert qr_required(authenticated=authenticated, session_valid=session_valid) is needed
    session = ClientSessionState(
        client_id="c", authenticated=authenticated, session_valid=session_valid
    )
    assert requires_qr_scan(session) is needed
    assert session.requires_qr is needed


def test_no_session_needs_a_qr_scan() -> None:
    assert requires_qr_scan(None) is True


def test_isoformat_writes_z_only_when_asked() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert isoformat(None) is None
    assert isoformat(at) == "2026-01-02T03:04:05+00:00"
    assert isoformat(at, zulu=True) == "2026-01-02T03:04:05Z"
    east = at.astimezone(timezone(timedelta(hours=5)))
    assert isoformat(east, zulu=True) == "2026-01-02T08:04:05+05:00"


def test_field_path_reads_like_a_json_path() -> None:
    assert field_path(("entry", 0, "changes", 1, "value")) == "entry[0].changes[1].value"
    assert field_path((0, "id")) == "[0].id"
    assert field_path(("timestamp",), prefix="statuses[2]") == "statuses[2].timestamp"
    assert field_path(()) == ""


def test_one_line_is_the_drivers_first_line() -> None:
    driver = RuntimeError("connection refused\n\tIs the server running?")
    wrapped = OperationalError("SELECT 1", {}, driver)
    assert one_line(wrapped) == "connection refused"
    assert one_line(ValueError("")) == "ValueError"
    assert one_line(ValueError("  \n second line")) == "second line"
    assert one_line(ValueError("x" * 500), limit=300) == "x" * 300
