"""wastate: the state layer for WhatsApp messaging integrations.

Conversation mappings, message tracking and seed-004 session/approval state on PostgreSQL (or
SQLite) with a Redis (or in-process) cache in front. Start with `connect()`.

Everything a public method takes or returns is importable from here. Two status enums, two
meanings: `DeliveryStatus` is WhatsApp's sent/delivered/read/failed of a tracked message;
`ApprovalStatus` is where a seed-004 message is in the approval lifecycle (`MessageStatus` is its
seed-004 name, kept as an alias).
"""

from wastate import webhooks
from wastate.cache.layers import CacheReach
from wastate.domain import (
    ApprovalRecord,
    ApprovalStatus,
    ClientSessionState,
    ConversationMapping,
    DeliveryStatus,
    Direction,
    LifecycleStatistics,
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
    TransactionAborted,
    WastateError,
)
from wastate.repositories.api_keys import ApiKeyRecord, ApiKeyRepository, IssuedApiKey
from wastate.repositories.approvals import ApprovalRepository
from wastate.repositories.config import ConfigRepository
from wastate.repositories.mappings import MappingRepository
from wastate.repositories.messages import MessageRepository, StatusBatchResult, TrackBatchResult
from wastate.repositories.sessions import SessionRepository
from wastate.repositories.statistics import StatisticsRepository
from wastate.services.approvals import ApprovalLifecycle
from wastate.settings import Settings
from wastate.state_manager import StateManager
from wastate.store import Store, connect
from wastate.uow import UnitOfWork
from wastate.webhooks import IngestReport, WebhookPayload

__all__ = [
    "ApiKeyRecord",
    "ApiKeyRepository",
    "ApprovalLifecycle",
    "ApprovalRecord",
    "ApprovalRepository",
    "ApprovalStatus",
    "CacheReach",
    "ClientSessionState",
    "ConfigRepository",
    "ConfigurationError",
    "Conflict",
    "ConversationMapping",
    "DeliveryStatus",
    "Direction",
    "IngestReport",
    "InvalidInput",
    "InvalidTransition",
    "IssuedApiKey",
    "LifecycleStatistics",
    "MappingRepository",
    "MappingStatus",
    "MessageError",
    "MessageRepository",
    "MessageStatus",
    "MessageType",
    "NewMessage",
    "NotFound",
    "SchemaNotReady",
    "ServiceUnavailable",
    "SessionRepository",
    "Settings",
    "StateManager",
    "StatisticsRepository",
    "StatusBatchResult",
    "StatusEvent",
    "Store",
    "TrackBatchResult",
    "TrackedMessage",
    "TransactionAborted",
    "UnitOfWork",
    "WastateError",
    "WebhookPayload",
    "connect",
    "webhooks",
]

__version__ = "0.1.0"
