"""Request and response bodies of the HTTP service, in the seed's camelCase.

The response models document the answers (OpenAPI) and are the single source of their shape; the
hot mapping routes build the same dicts by hand (`mapping_body`) to skip a validation pass, and
the schemathesis test checks that every answer still matches these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from wastate.domain.clock import isoformat
from wastate.domain.ids import MAX_WA_ID_LENGTH
from wastate.domain.mappings import (
    MAX_CONVERSATION_ID_LENGTH,
    ConversationMapping,
    MappingStatus,
)
from wastate.domain.messages import (
    DeliveryStatus,
    Direction,
    MessageError,
    MessageType,
    NewMessage,
    StatusEvent,
    TrackedMessage,
)
from wastate.domain.storable import AwareUtcTime

__all__ = [
    "CorrelateRequest",
    "HealthBody",
    "HealthCheck",
    "MappingBody",
    "MessageBody",
    "MessageErrorBody",
    "MessageHistoryBody",
    "MessagePage",
    "StatusEventBody",
    "StatusUpdateBody",
    "StatusUpdateRequest",
    "TrackMessageRequest",
    "TrackedBody",
    "WebhookAck",
    "camelize",
    "iso",
    "mapping_body",
    "message_body",
    "status_event_body",
]


class _Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL; refuse it here, naming the field, not deep in SQL.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


UtcDatetime = AwareUtcTime
"""An ISO 8601 time with a zone, converted to UTC (refused if that overflows)."""

_INT32 = 2**31 - 1


def iso(value: datetime | None) -> str | None:
    """An aware UTC datetime as ISO 8601 with a `Z`, as every answer writes times."""
    return isoformat(value, zulu=True)


def camelize(data: Any) -> Any:
    """`data` with every dict key turned to camelCase (recursively) and datetimes as ISO text."""
    if isinstance(data, dict):
        return {to_camel(str(key)): camelize(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [camelize(item) for item in data]
    if isinstance(data, datetime):
        return iso(data)
    return data


# --- mappings ---------------------------------------------------------------------------------


class MappingBody(_Camel):
    """A conversation mapping: the seed's four fields, then wastate's lifecycle fields."""

    conversation_id: str
    wa_id: str = Field(description="the canonical form: `+<digits>` or a business-scoped id")
    tenant_id: str
    contact_name: str | None
    status: MappingStatus
    communication_id: str | None
    created_at: AwareDatetime
    last_activity_at: AwareDatetime
    closed_at: AwareDatetime | None


def mapping_body(mapping: ConversationMapping) -> dict[str, Any]:
    """The `MappingBody` of `mapping`, built directly (the hot path)."""
    return {
        "conversationId": mapping.conversation_id,
        "waId": mapping.wa_id,
        "tenantId": mapping.tenant_id,
        "contactName": mapping.contact_name,
        "status": mapping.status.value,
        "communicationId": mapping.communication_id,
        "createdAt": iso(mapping.created_at),
        "lastActivityAt": iso(mapping.last_activity_at),
        "closedAt": iso(mapping.closed_at),
    }


class CorrelateRequest(_Camel):
    """The contact center's ids for the user's active conversation (set once)."""

    conversation_id: str = Field(min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH)
    communication_id: str | None = Field(None, min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH)


# --- messages ---------------------------------------------------------------------------------


class MessageErrorBody(_Camel):
    """WhatsApp's error for a failed message."""

    code: int | None = Field(None, ge=-_INT32 - 1, le=_INT32)
    title: str | None = Field(None, max_length=4096)
    message: str | None = Field(None, max_length=4096)
    details: str | None = Field(None, max_length=4096)


class TrackMessageRequest(_Camel):
    """The seed's `POST /state/message` body (camelCase); at least one message id is required."""

    meta_message_id: str | None = Field(None, min_length=1, max_length=256)
    genesys_message_id: str | None = Field(None, min_length=1, max_length=256)
    conversation_id: str | None = Field(None, min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH)
    tenant_id: str | None = Field(None, description="must agree with X-Tenant-ID / the API key")
    direction: Direction
    status: DeliveryStatus = DeliveryStatus.SENT
    message_type: MessageType = MessageType.TEXT
    wa_id: str | None = Field(None, min_length=1, max_length=MAX_WA_ID_LENGTH)
    media_type: str | None = Field(None, max_length=128)
    media_url: str | None = Field(None, max_length=2048)
    media_id: str | None = Field(None, max_length=256)
    media_mime_type: str | None = Field(None, max_length=255)
    media_sha256: str | None = Field(None, max_length=128)
    media_filename: str | None = Field(None, max_length=1024)
    media_caption: str | None = Field(None, max_length=4096)
    occurred_at: UtcDatetime | None = Field(None, description="when the status was reached")

    def to_new_message(self) -> NewMessage:
        """The domain form (without the tenant, which the unit of work carries)."""
        return NewMessage.model_validate(self.model_dump(exclude={"tenant_id"}))


class StatusUpdateRequest(_Camel):
    """The seed's `PATCH /state/message/{messageId}` body, plus an optional time and error."""

    status: DeliveryStatus
    timestamp: UtcDatetime | None = Field(None, description="when it happened (default: now)")
    error: MessageErrorBody | None = Field(None, description="WhatsApp's error, for `failed`")

    def domain_error(self) -> MessageError | None:
        """The error in the domain's form."""
        return None if self.error is None else MessageError(**self.error.model_dump())


class MessageBody(_Camel):
    """A tracked message: its ids, direction, type, media, status and the time of each status."""

    tenant_id: str
    meta_message_id: str | None
    genesys_message_id: str | None
    conversation_id: str | None
    wa_id: str | None
    direction: Direction
    status: DeliveryStatus
    message_type: MessageType
    media_type: str | None
    media_url: str | None
    media_id: str | None
    media_mime_type: str | None
    media_sha256: str | None
    media_filename: str | None
    media_caption: str | None
    queued_at: AwareDatetime | None
    sent_at: AwareDatetime | None
    failed_at: AwareDatetime | None
    delivered_at: AwareDatetime | None
    read_at: AwareDatetime | None
    played_at: AwareDatetime | None
    error_code: int | None
    error_title: str | None
    error_message: str | None
    error_details: str | None
    pricing: dict[str, Any] | None
    conversation_info: dict[str, Any] | None
    biz_opaque_callback_data: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime


_MESSAGE_FIELDS = tuple(MessageBody.model_fields)


def message_body(message: TrackedMessage) -> dict[str, Any]:
    """The `MessageBody` of `message`."""
    data = message.model_dump(include=set(_MESSAGE_FIELDS))
    return {to_camel(name): camelize(data.get(name)) for name in _MESSAGE_FIELDS}


class TrackedBody(_Camel):
    """The answer to `POST /state/message`: 201 when new, 200 for a duplicate (nothing written)."""

    message: str
    created: bool
    tracked_message: MessageBody


class StatusUpdateBody(_Camel):
    """The answer to `PATCH /state/message/{messageId}`: the record after the event."""

    message: str
    tracked_message: MessageBody


class MessagePage(_Camel):
    """A page of a conversation's messages, newest first; `nextBefore` (a message id, when the
    page is full) asks for the next page."""

    conversation_id: str
    messages: list[MessageBody]
    next_before: str | None


class StatusEventBody(_Camel):
    """One recorded delivery-status event (the earliest of its status)."""

    message_id: str
    status: DeliveryStatus
    at: AwareDatetime | None
    error: MessageErrorBody | None = None
    pricing: dict[str, Any] | None = None
    conversation: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None


_EVENT_FIELDS = tuple(StatusEventBody.model_fields)


def status_event_body(event: StatusEvent) -> dict[str, Any]:
    """The `StatusEventBody` of `event` (documented fields only, whatever the domain adds)."""
    data = event.model_dump()
    return {to_camel(name): camelize(data.get(name)) for name in _EVENT_FIELDS}


class MessageHistoryBody(_Camel):
    """Every status event recorded for a message, oldest first."""

    message_id: str
    events: list[StatusEventBody]


# --- webhooks and health ----------------------------------------------------------------------


class WebhookAck(_Camel):
    """The answer to a webhook delivery: what the ingest did."""

    received: bool
    report: dict[str, Any]


class HealthCheck(_Camel):
    """One dependency's state."""

    status: str = Field(description="`up` or `down`")
    latency_ms: float | None
    backend: str | None = None
    error: str | None = None


class HealthBody(_Camel):
    """`/health`: the seed's two fields, then the checks (200 healthy/degraded, 503 unhealthy)."""

    status: str = Field(description="`healthy`, `degraded` (cache down) or `unhealthy`")
    service: str
    version: str
    checks: dict[str, HealthCheck]
