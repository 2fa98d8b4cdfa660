"""wastate: the state layer for WhatsApp messaging integrations.

Conversation mappings, message tracking and seed-004 session/approval state on PostgreSQL (or
SQLite) with a Redis (or in-process) cache in front. Start with `connect()`.
"""

from wastate import webhooks
from wastate.domain import (
    ConversationMapping,
    DeliveryStatus,
    Direction,
    MappingStatus,
    MessageError,
    MessageStatus,
    MessageType,
    NewMessage,
    StatusEvent,
    TrackedMessage,
)
from wastate.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    SchemaNotReady,
    ServiceUnavailable,
    WastateError,
)
from wastate.settings import Settings
from wastate.state_manager import StateManager
from wastate.store import Store, connect
from wastate.uow import UnitOfWork

__all__ = [
    "ConfigurationError",
    "Conflict",
    "ConversationMapping",
    "DeliveryStatus",
    "Direction",
    "InvalidInput",
    "InvalidTransition",
    "MappingStatus",
    "MessageError",
    "MessageStatus",
    "MessageType",
    "NewMessage",
    "NotFound",
    "SchemaNotReady",
    "ServiceUnavailable",
    "Settings",
    "StateManager",
    "StatusEvent",
    "Store",
    "TrackedMessage",
    "UnitOfWork",
    "WastateError",
    "connect",
    "webhooks",
]

__version__ = "0.1.0"
