"""Message tracking: delivery statuses, their one total order, and the tracked-message models.

The order (`STATUS_RANK`) is the whole rule: a record's status is the highest-ranked status seen,
and each status's timestamp is the earliest seen for it, so applying any permutation of a set of
events, with duplicates, gives the same record.

    queued < sent < failed < delivered < read < played

Why `failed` sits above `sent` and below `delivered`: a failure report is newer news than the send
acknowledgement (and a late `sent` must not hide it), but a delivery or read receipt proves the
message reached the phone, which outweighs a failure report for the same message (WhatsApp may
report a failed retry of a message that had already arrived). The failure is never lost: its
timestamp, error and history row stay. `delivered` may be skipped (sent → read is legal);
`played` (voice notes) follows `read`.

Alongside the status, a record keeps what the events carry: the WhatsApp error of the earliest
`failed` event, and the first `pricing`, `conversation` and `biz_opaque_callback_data` recorded
(WhatsApp repeats the same objects on every status of a message; the history keeps each status's
own copy). The SQL that applies these rules lives in `wastate.repositories.messages`; this module
holds the order it is generated from.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from wastate.domain.ids import MAX_WA_ID_LENGTH
from wastate.domain.mappings import MAX_CONVERSATION_ID_LENGTH, validate_conversation_id
from wastate.domain.storable import (
    AwareUtcTime,
    Int32,
    StorableJSONObject,
    StorableStr,
    invalid_input_from,
    problem_text,
)
from wastate.errors import InvalidInput

__all__ = [
    "STATUS_RANK",
    "DeliveryStatus",
    "Direction",
    "MessageError",
    "MessageType",
    "NewMessage",
    "StatusEvent",
    "TrackedMessage",
    "invalid_input_from",
    "parse_delivery_status",
    "problem_text",
]


class DeliveryStatus(StrEnum):
    """WhatsApp delivery statuses, declared in rank order (see the module docstring)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"

    @property
    def rank(self) -> int:
        """Position in the total order; higher wins."""
        return STATUS_RANK[self]

    @property
    def timestamp_field(self) -> str:
        """The `TrackedMessage` field holding the earliest time this status was seen."""
        return f"{self.value}_at"


STATUS_RANK: dict[DeliveryStatus, int] = {
    status: rank for rank, status in enumerate(DeliveryStatus)
}
"""The one total order over delivery statuses; the stored status is the maximum seen."""


class Direction(StrEnum):
    """Inbound: from the WhatsApp user. Outbound: to the WhatsApp user."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageType(StrEnum):
    """WhatsApp Cloud API message types (`messages[].type`), plus `unknown`."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    REACTION = "reaction"
    ORDER = "order"
    TEMPLATE = "template"
    SYSTEM = "system"
    REQUEST_WELCOME = "request_welcome"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


def parse_delivery_status(value: object, *, field: str = "status") -> DeliveryStatus:
    """`value` as a `DeliveryStatus`, or `InvalidInput` listing the known names."""
    if isinstance(value, DeliveryStatus):
        return value
    if isinstance(value, str):
        try:
            return DeliveryStatus(value.lower())
        except ValueError:
            pass
    known = ", ".join(status.value for status in DeliveryStatus)
    raise InvalidInput(field, f"unknown delivery status {value!r}; expected one of {known}")


class MessageError(BaseModel):
    """WhatsApp's error for a failed message (`statuses[].errors[0]`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: Int32 | None = None
    title: StorableStr | None = None
    message: StorableStr | None = None
    details: StorableStr | None = None


class NewMessage(BaseModel):
    """A message to start tracking. At least one of the two external ids is required."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    conversation_id: StorableStr | None = Field(None, max_length=MAX_CONVERSATION_ID_LENGTH)
    meta_message_id: StorableStr | None = Field(None, min_length=1, max_length=256)
    genesys_message_id: StorableStr | None = Field(None, min_length=1, max_length=256)
    direction: Direction
    status: DeliveryStatus = DeliveryStatus.SENT
    message_type: MessageType = MessageType.TEXT
    wa_id: StorableStr | None = Field(
        None, max_length=MAX_WA_ID_LENGTH, description="the WhatsApp user, if known"
    )
    media_type: StorableStr | None = Field(None, max_length=128)
    media_url: StorableStr | None = Field(None, max_length=2048)
    media_id: StorableStr | None = Field(None, max_length=256)
    media_mime_type: StorableStr | None = Field(None, max_length=255)
    media_sha256: StorableStr | None = Field(None, max_length=128)
    media_filename: StorableStr | None = Field(None, max_length=1024)
    media_caption: StorableStr | None = Field(None, max_length=4096)
    biz_opaque_callback_data: StorableStr | None = Field(None, max_length=4096)
    error: MessageError | None = Field(
        None, description="WhatsApp's error (a failed send, or an inbound `unsupported` message)"
    )
    occurred_at: AwareUtcTime | None = Field(None, description="when the status was reached")

    @field_validator("conversation_id")
    @classmethod
    def _conversation_id(cls, value: str | None) -> str | None:
        # The one conversation-id rule (`wastate.domain.mappings`), as every lookup applies it.
        return None if value is None else validate_conversation_id(value)

    @model_validator(mode="after")
    def _has_an_id(self) -> NewMessage:
        if self.meta_message_id is None and self.genesys_message_id is None:
            raise ValueError("one of meta_message_id, genesys_message_id is required")
        return self


class StatusEvent(BaseModel):
    """One delivery-status event for a message, by either of its external ids."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: StorableStr = Field(min_length=1, max_length=256)
    status: DeliveryStatus
    at: AwareUtcTime | None = None
    error: MessageError | None = None
    pricing: StorableJSONObject | None = None
    conversation: StorableJSONObject | None = None
    biz_opaque_callback_data: StorableStr | None = None
    recipient_id: StorableStr | None = None
    recipient_user_id: StorableStr | None = Field(
        None, description="business-scoped user id (`CC.…`)"
    )


class TrackedMessage(BaseModel):
    """A tracked message as stored: ids, direction, type, media, status and its timestamps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    meta_message_id: str | None
    genesys_message_id: str | None
    conversation_id: str | None
    wa_id: str | None = None
    direction: Direction
    status: DeliveryStatus
    message_type: MessageType
    media_type: str | None = None
    media_url: str | None = None
    media_id: str | None = None
    media_mime_type: str | None = None
    media_sha256: str | None = None
    media_filename: str | None = None
    media_caption: str | None = None
    queued_at: AwareDatetime | None = None
    sent_at: AwareDatetime | None = None
    failed_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    read_at: AwareDatetime | None = None
    played_at: AwareDatetime | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_message: str | None = None
    error_details: str | None = None
    pricing: dict[str, Any] | None = None
    conversation_info: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    created: bool = Field(
        False, exclude=True, description="True only on the `track` call that inserted it"
    )

    def status_at(self, status: DeliveryStatus) -> datetime | None:
        """When `status` was first seen, if ever."""
        value: datetime | None = getattr(self, status.timestamp_field)
        return value
