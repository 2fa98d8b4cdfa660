"""Pure domain: pydantic models, enums and rules. Imports neither SQLAlchemy nor redis."""

from wastate.domain.clock import Clock, utcnow
from wastate.domain.ids import normalize_tenant_id, normalize_wa_id, require_external_id
from wastate.domain.lifecycle import (
    STATISTIC_FOR_STATUS,
    TRANSITIONS,
    ApprovalRecord,
    ApprovalStatus,
    LifecycleStatistics,
    MessageStatus,
    check_transition,
)
from wastate.domain.mappings import ConversationMapping, MappingStatus
from wastate.domain.messages import (
    STATUS_RANK,
    DeliveryStatus,
    Direction,
    MessageError,
    MessageType,
    NewMessage,
    StatusEvent,
    TrackedMessage,
    parse_delivery_status,
)
from wastate.domain.sessions import ClientSessionState

__all__ = [
    "STATISTIC_FOR_STATUS",
    "STATUS_RANK",
    "TRANSITIONS",
    "ApprovalRecord",
    "ApprovalStatus",
    "ClientSessionState",
    "Clock",
    "ConversationMapping",
    "DeliveryStatus",
    "Direction",
    "LifecycleStatistics",
    "MappingStatus",
    "MessageError",
    "MessageStatus",
    "MessageType",
    "NewMessage",
    "StatusEvent",
    "TrackedMessage",
    "check_transition",
    "normalize_tenant_id",
    "normalize_wa_id",
    "parse_delivery_status",
    "require_external_id",
    "utcnow",
]
