"""Conversation mappings: which WhatsApp user talks in which contact-center conversation."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

__all__ = ["ConversationMapping", "MappingStatus"]


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
