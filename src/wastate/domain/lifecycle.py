"""The human-in-the-loop approval lifecycle (seed 004): one transition table, in one place.

    incoming ─► pending_approval ─► approved ─► sent
                      │  │  └──────► rejected     ▲
                      │  └──────────────► sent ───┘   (only when human_in_the_loop is off)
                      └─────────────────► failed ◄── approved
                                            └──────► approved   (retry)

Every entry into a status counts once in that status's statistic (`STATISTIC_FOR_STATUS`).
"""

from __future__ import annotations

from enum import StrEnum

from wastate.errors import InvalidInput, InvalidTransition

__all__ = [
    "BYPASSES_APPROVAL",
    "STATISTIC_FOR_STATUS",
    "TRANSITIONS",
    "MessageStatus",
    "check_transition",
    "parse_message_status",
]


class MessageStatus(StrEnum):
    """Where an approval-lifecycle message is (the seed's `MessageStatus`)."""

    INCOMING = "incoming"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    SENT = "sent"
    FAILED = "failed"


_S = MessageStatus

TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    _S.INCOMING: frozenset({_S.PENDING_APPROVAL}),
    _S.PENDING_APPROVAL: frozenset({_S.APPROVED, _S.REJECTED, _S.SENT, _S.FAILED}),
    _S.APPROVED: frozenset({_S.SENT, _S.FAILED}),
    _S.REJECTED: frozenset(),
    _S.SENT: frozenset(),
    _S.FAILED: frozenset({_S.APPROVED}),
}
"""Allowed moves. Anything not listed raises `InvalidTransition`."""

BYPASSES_APPROVAL: frozenset[tuple[MessageStatus, MessageStatus]] = frozenset(
    {(_S.PENDING_APPROVAL, _S.SENT), (_S.PENDING_APPROVAL, _S.FAILED)}
)
"""Moves that skip the human; refused while config `human_in_the_loop` is true."""

STATISTIC_FOR_STATUS: dict[MessageStatus, str] = {
    _S.INCOMING: "total_incoming",
    _S.PENDING_APPROVAL: "total_pending_approval",
    _S.APPROVED: "total_approved",
    _S.REJECTED: "total_rejected",
    _S.SENT: "total_sent",
    _S.FAILED: "total_failed",
}
"""The counter each entry into a status increments (adding a message counts as an entry)."""


def parse_message_status(value: object, *, field: str = "status") -> MessageStatus:
    """`value` as a `MessageStatus`, or `InvalidInput` listing the known names."""
    if isinstance(value, MessageStatus):
        return value
    if isinstance(value, str):
        try:
            return MessageStatus(value.lower())
        except ValueError:
            pass
    known = ", ".join(status.value for status in MessageStatus)
    raise InvalidInput(field, f"unknown message status {value!r}; expected one of {known}")


def check_transition(
    from_status: MessageStatus, to_status: MessageStatus, *, human_in_the_loop: bool
) -> None:
    """Raise `InvalidTransition` unless the table (and the approval guard) allow the move."""
    if to_status not in TRANSITIONS[from_status]:
        raise InvalidTransition(from_status.value, to_status.value, "not in the transition table")
    if human_in_the_loop and (from_status, to_status) in BYPASSES_APPROVAL:
        raise InvalidTransition(
            from_status.value, to_status.value, "human_in_the_loop requires approval first"
        )
