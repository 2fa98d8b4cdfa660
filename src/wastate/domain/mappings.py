"""Conversation mappings: which WhatsApp user talks in which contact-center conversation."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from wastate.domain.ids import require_external_id
from wastate.domain.storable import check_text
from wastate.errors import Conflict, InvalidInput

__all__ = [
    "MAX_CONVERSATION_ID_LENGTH",
    "ConversationMapping",
    "MappingStatus",
    "adds_communication_id",
    "normalize_contact_name",
    "validate_communication_id",
    "validate_conversation_id",
]

MAX_CONVERSATION_ID_LENGTH = 128
"""The one length limit of a conversation (and communication) id: the rule, the models, the
HTTP schemas and the table columns all use it."""
MAX_CONTACT_NAME_LENGTH = 256


def validate_conversation_id(value: object, *, field: str = "conversation_id") -> str:
    """A conversation (or communication) id: printable, no spaces, at most 128 characters."""
    text = require_external_id(value, field=field)
    if len(text) > MAX_CONVERSATION_ID_LENGTH:
        raise InvalidInput(field, f"is longer than {MAX_CONVERSATION_ID_LENGTH} characters")
    return text


def validate_communication_id(value: object) -> str | None:
    """An optional contact-center communication id: None, or as `validate_conversation_id`."""
    return None if value is None else validate_conversation_id(value, field="communication_id")


def normalize_contact_name(value: object, *, field: str = "contact_name") -> str | None:
    """A profile name with whitespace runs collapsed (names arrive with stray newlines and
    tabs); None for no name or a blank one, which leaves a stored name alone."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    text = " ".join(value.split())
    if len(text) > MAX_CONTACT_NAME_LENGTH:
        raise InvalidInput(field, f"is longer than {MAX_CONTACT_NAME_LENGTH} characters")
    return check_text(text, field=field) or None


class MappingStatus(StrEnum):
    """`active` mappings receive messages; `closed`/`expired` ones are history.

    At most one mapping per (tenant, wa_id) is active; closing or expiring it lets the next
    message start a new conversation.
    """

    ACTIVE = "active"
    CLOSED = "closed"
    EXPIRED = "expired"


class ConversationMapping(BaseModel):
    """One WhatsApp user's conversation in one tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    wa_id: str
    conversation_id: str
    status: MappingStatus = MappingStatus.ACTIVE
    contact_name: str | None = None
    communication_id: str | None = None
    last_message_id: str | None = None
    correlated_at: AwareDatetime | None = None
    created_at: AwareDatetime
    last_activity_at: AwareDatetime
    closed_at: AwareDatetime | None = None

    @property
    def is_active(self) -> bool:
        """True while this mapping receives the user's messages."""
        return self.status is MappingStatus.ACTIVE

    def touched(self, at: datetime) -> ConversationMapping:
        """A copy whose `last_activity_at` is `at` (never moved backwards)."""
        if at <= self.last_activity_at:
            return self
        return self.model_copy(update={"last_activity_at": at})


def adds_communication_id(
    current: ConversationMapping, conversation_id: str, communication_id: str | None
) -> bool:
    """The correlate-once rule for a mapping already correlated.

    False: the call repeats what is stored (idempotent). True: it adds a communication id the
    mapping lacks. A different conversation or communication id is a `Conflict`.
    """
    if current.conversation_id != conversation_id:
        raise Conflict(
            f"wa_id {current.wa_id} is already correlated with conversation "
            f"{current.conversation_id!r}, not {conversation_id!r}",
            constraint="correlate_once",
        )
    if communication_id is None or current.communication_id == communication_id:
        return False
    if current.communication_id is None:
        return True
    raise Conflict(
        f"conversation {conversation_id!r} already has communication id "
        f"{current.communication_id!r}, not {communication_id!r}",
        constraint="correlate_once",
    )
