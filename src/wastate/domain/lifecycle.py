"""The human-in-the-loop approval lifecycle (seed 004): one transition table, in one place.

    incoming ─► pending_approval ─► approved ─► sent
                      │  │  └──────► rejected     ▲
                      │  └──────────────► sent ───┘   (only when human_in_the_loop is off)
                      └─────────────────► failed ◄── approved
                                            └──────► approved   (retry)

Every entry into a status counts once in that status's statistic (`STATISTIC_FOR_STATUS`).

Also here: what a lifecycle message and a config key must look like (`approval_message`,
`normalize_message_id`, `normalize_config_key`; stored JSON follows `wastate.domain.storable`'s
`json_value`, re-exported here), so bad input is refused with `InvalidInput` before anything is
written.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wastate.domain.clock import isoformat
from wastate.domain.ids import require_bounded_str
from wastate.domain.storable import (
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    StorableJSONObject,
    StorableStr,
    UtcTime,
    check_text,
    json_value,
    require_int,
)
from wastate.errors import InvalidInput, InvalidTransition

__all__ = [
    "BYPASSES_APPROVAL",
    "MAX_CONFIG_KEY_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "RESERVED_MESSAGE_KEYS",
    "STATISTIC_FIELDS",
    "STATISTIC_FOR_STATUS",
    "TRANSITIONS",
    "ApprovalRecord",
    "ApprovalStatus",
    "LifecycleStatistics",
    "MessageStatus",
    "approval_message",
    "check_transition",
    "is_allowed",
    "json_value",
    "normalize_config_key",
    "normalize_message_id",
    "parse_message_status",
]

MAX_MESSAGE_ID_LENGTH = 256
MAX_CONFIG_KEY_LENGTH = 256

RESERVED_MESSAGE_KEYS = frozenset({"status", "added_at", "status_changed_at"})
"""Keys wastate adds to every message it hands back; in a dict being added they are ignored, so a
message read from `get_messages()` or an exported file can be added again unchanged."""


class ApprovalStatus(StrEnum):
    """Where an approval-lifecycle message is (incoming → pending approval → approved/rejected →
    sent/failed). Not a delivery status: WhatsApp's sent/delivered/read is `DeliveryStatus`."""

    INCOMING = "incoming"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    SENT = "sent"
    FAILED = "failed"


MessageStatus = ApprovalStatus
"""The seed-004 name of `ApprovalStatus` (`wastate.MessageStatus.INCOMING` keeps working); new
code says `ApprovalStatus`."""

_S = ApprovalStatus

TRANSITIONS: dict[ApprovalStatus, frozenset[ApprovalStatus]] = {
    _S.INCOMING: frozenset({_S.PENDING_APPROVAL}),
    _S.PENDING_APPROVAL: frozenset({_S.APPROVED, _S.REJECTED, _S.SENT, _S.FAILED}),
    _S.APPROVED: frozenset({_S.SENT, _S.FAILED}),
    _S.REJECTED: frozenset(),
    _S.SENT: frozenset(),
    _S.FAILED: frozenset({_S.APPROVED}),
}
"""Allowed moves. Anything not listed raises `InvalidTransition`."""

BYPASSES_APPROVAL: frozenset[tuple[ApprovalStatus, ApprovalStatus]] = frozenset(
    {(_S.PENDING_APPROVAL, _S.SENT), (_S.PENDING_APPROVAL, _S.FAILED)}
)
"""Moves that skip the human; refused while config `human_in_the_loop` is true."""

STATISTIC_FOR_STATUS: dict[ApprovalStatus, str] = {
    _S.INCOMING: "total_incoming",
    _S.PENDING_APPROVAL: "total_pending_approval",
    _S.APPROVED: "total_approved",
    _S.REJECTED: "total_rejected",
    _S.SENT: "total_sent",
    _S.FAILED: "total_failed",
}
"""The counter each entry into a status increments (adding a message counts as an entry)."""


def parse_message_status(value: object, *, field: str = "status") -> ApprovalStatus:
    """`value` as a `ApprovalStatus`, or `InvalidInput` listing the known names."""
    if isinstance(value, ApprovalStatus):
        return value
    if isinstance(value, str):
        try:
            return ApprovalStatus(value.lower())
        except ValueError:
            pass
    known = ", ".join(status.value for status in ApprovalStatus)
    raise InvalidInput(field, f"unknown message status {value!r}; expected one of {known}")


def check_transition(
    from_status: ApprovalStatus, to_status: ApprovalStatus, *, human_in_the_loop: bool
) -> None:
    """Raise `InvalidTransition` unless the table (and the approval guard) allow the move."""
    if to_status not in TRANSITIONS[from_status]:
        raise InvalidTransition(from_status.value, to_status.value, "not in the transition table")
    if human_in_the_loop and (from_status, to_status) in BYPASSES_APPROVAL:
        raise InvalidTransition(
            from_status.value, to_status.value, "human_in_the_loop requires approval first"
        )


def is_allowed(
    from_status: ApprovalStatus, to_status: ApprovalStatus, *, human_in_the_loop: bool
) -> bool:
    """True iff `check_transition` would let the move through."""
    if to_status not in TRANSITIONS[from_status]:
        return False
    return not (human_in_the_loop and (from_status, to_status) in BYPASSES_APPROVAL)


def normalize_message_id(value: object, *, field: str = "message_id") -> str:
    """A message id as stored: a non-empty string (ints are taken as their decimal text)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(field, f"must be a non-empty string, got {type(value).__name__}")
    if isinstance(value, int):  # (str() of a huge int raises ValueError of its own)
        value = str(require_int(value, field=field, minimum=INT64_MIN, maximum=INT64_MAX))
    text = value
    if not text.strip():
        raise InvalidInput(field, "must not be empty")
    if len(text) > MAX_MESSAGE_ID_LENGTH:
        raise InvalidInput(field, f"longer than {MAX_MESSAGE_ID_LENGTH} characters")
    return check_text(text, field=field)


def normalize_config_key(value: object, *, field: str = "key") -> str:
    """A config key as stored: a non-empty string of at most 256 characters."""
    key = require_bounded_str(value, field=field, max_length=MAX_CONFIG_KEY_LENGTH)
    return check_text(key, field=field)


def approval_message(message_data: object) -> tuple[str, dict[str, Any]]:
    """`(message_id, payload)` of a message dict being added: its `id`, and the dict as stored
    (a JSON copy, without the keys in `RESERVED_MESSAGE_KEYS`)."""
    if not isinstance(message_data, Mapping):
        raise InvalidInput(
            "message_data", f"must be a dict with an 'id', got {type(message_data).__name__}"
        )
    if "id" not in message_data:
        raise InvalidInput("message_data.id", "a message needs an 'id'")
    message_id = normalize_message_id(message_data["id"], field="message_data.id")
    payload = {k: v for k, v in message_data.items() if k not in RESERVED_MESSAGE_KEYS}
    stored: dict[str, Any] = json_value(payload, field="message_data")
    return message_id, stored


STATISTIC_FIELDS: tuple[str, ...] = tuple(STATISTIC_FOR_STATUS.values())


class ApprovalRecord(BaseModel):
    """A lifecycle message as stored: the caller's dict (`payload`), its status and times."""

    model_config = ConfigDict(frozen=True)

    message_id: StorableStr = Field(min_length=1, max_length=MAX_MESSAGE_ID_LENGTH)
    status: ApprovalStatus
    payload: StorableJSONObject
    added_at: UtcTime
    status_changed_at: UtcTime

    def as_seed_dict(self) -> dict[str, Any]:
        """The message as the seed hands it back: the caller's dict plus status and times."""
        document = dict(self.payload)
        document["status"] = self.status.value
        document["added_at"] = isoformat(self.added_at)
        document["status_changed_at"] = isoformat(self.status_changed_at)
        return document


class LifecycleStatistics(BaseModel):
    """Entries into each status since the last reset, and the last receive/send times."""

    model_config = ConfigDict(frozen=True)

    total_incoming: int = Field(default=0, ge=0, le=INT32_MAX)
    total_pending_approval: int = Field(default=0, ge=0, le=INT32_MAX)
    total_approved: int = Field(default=0, ge=0, le=INT32_MAX)
    total_rejected: int = Field(default=0, ge=0, le=INT32_MAX)
    total_sent: int = Field(default=0, ge=0, le=INT32_MAX)
    total_failed: int = Field(default=0, ge=0, le=INT32_MAX)
    last_message_received: UtcTime | None = None
    last_message_sent: UtcTime | None = None

    def total(self, status: ApprovalStatus) -> int:
        """The counter of `status`."""
        value: int = getattr(self, STATISTIC_FOR_STATUS[status])
        return value

    def as_seed_dict(self) -> dict[str, Any]:
        """The seed's `statistics` document (plus `total_pending_approval`)."""
        return {
            "total_incoming": self.total_incoming,
            "total_sent": self.total_sent,
            "total_failed": self.total_failed,
            "total_approved": self.total_approved,
            "total_rejected": self.total_rejected,
            "total_pending_approval": self.total_pending_approval,
            "last_message_received": isoformat(self.last_message_received),
            "last_message_sent": isoformat(self.last_message_sent),
        }
