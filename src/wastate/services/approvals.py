"""The approval lifecycle (seed 004) as a use-case over one unit of work: add, move, approve,
reject.

`ApprovalLifecycle` is what `uow.approvals` is: the SQL of `ApprovalRepository` plus what a move
means. A move is the repository's compare-and-set statement followed, only if it matched, by the
history row and the statistics increment, all in the unit of work's transaction, so a statistic
never counts a move that did not happen. The transition table and the guard's rule come from
`wastate.domain.lifecycle`; the guard's *value* (`human_in_the_loop` in the client's config) is
read here, inside the move's transaction and held there (`ConfigRepository.get_for_write`), so
turning the guard on cannot slip between the check and the move.

The CLI's `approve`/`reject` and `StateManager.move_message` call these; nothing else restates
them.
"""

from __future__ import annotations

from typing import Literal

from wastate.domain.lifecycle import (
    BYPASSES_APPROVAL,
    MessageStatus,
    approval_message,
    check_transition,
    normalize_message_id,
    parse_message_status,
)
from wastate.domain.storable import require_text
from wastate.errors import InvalidInput
from wastate.repositories.approvals import ApprovalRepository
from wastate.repositories.base import Database, atomic
from wastate.repositories.config import ConfigRepository
from wastate.repositories.statistics import StatisticsRepository

__all__ = ["HUMAN_IN_THE_LOOP", "MAX_REASON_LENGTH", "ApprovalLifecycle", "Decision"]

HUMAN_IN_THE_LOOP = "human_in_the_loop"
"""The config key of the approval guard (unset means false, as in the seed's examples)."""

MAX_REASON_LENGTH = 1000

Decision = Literal["approved", "rejected"]
"""What an operator decides about a message pending approval."""


def _reason(value: object) -> str | None:
    """A move's reason (e.g. why a reply was rejected): trimmed text, None when blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("reason", f"must be a string, got {type(value).__name__}")
    text = require_text(value.strip(), field="reason", max_length=MAX_REASON_LENGTH)
    return text or None


class ApprovalLifecycle(ApprovalRepository):
    """Lifecycle messages of one tenant's clients, with the rules of their moves.

    `statistics` and `config` are the unit of work's own repositories (the counters a move
    increments, the entry the guard is read from); built over `db` when not given.
    """

    def __init__(
        self,
        db: Database,
        statistics: StatisticsRepository | None = None,
        config: ConfigRepository | None = None,
    ) -> None:
        super().__init__(db)
        self._statistics = statistics if statistics is not None else StatisticsRepository(db)
        self._config = config if config is not None else ConfigRepository(db)

    @atomic
    def add(self, client_id: str, message_data: object, status: MessageStatus | str) -> bool:
        """Add the caller's message dict in `status`, counting one entry into it.

        Returns False, and changes nothing, when the message id already exists for this client
        (whatever its status): adding is idempotent, so a retried delivery is counted once.
        """
        key = self._key(client_id)
        status = parse_message_status(status)
        message_id, payload = approval_message(message_data)
        now = self._db.now()
        row_id = self._insert(key, message_id, status, payload, now)
        if row_id is None:
            return False
        self._record_move(row_id, None, status, now)
        self._statistics.record_entry(key["client_id"], status, now)
        return True

    @atomic
    def move(
        self,
        client_id: str,
        message_id: str,
        from_status: MessageStatus | str,
        to_status: MessageStatus | str,
        *,
        human_in_the_loop: bool | None = None,
        reason: str | None = None,
    ) -> bool:
        """Move a message from `from_status` to `to_status` if it is in `from_status` now.

        Raises `InvalidTransition` (changing nothing) when the transition table or the approval
        guard forbid the move; `human_in_the_loop` None reads it from the client's config. Returns
        False, changing nothing, when the message is not (or no longer) in `from_status`.
        `reason` (why it was rejected, say) is kept with the move in the history.
        """
        client_id = self._key(client_id)["client_id"]
        source = parse_message_status(from_status, field="from_status")
        target = parse_message_status(to_status, field="to_status")
        message_id = normalize_message_id(message_id)
        why = _reason(reason)
        if human_in_the_loop is not None and not isinstance(human_in_the_loop, bool):
            raise InvalidInput("human_in_the_loop", "must be True, False or None")
        if human_in_the_loop is None:
            human_in_the_loop = (source, target) in BYPASSES_APPROVAL and self._guard_on(client_id)
        check_transition(source, target, human_in_the_loop=human_in_the_loop)
        now = self._db.now()
        row_id = self._compare_and_set(client_id, message_id, source, target, now)
        if row_id is None:
            return False
        self._record_move(row_id, source, target, now, why)
        self._statistics.record_entry(client_id, target, now)
        return True

    @atomic
    def decide(
        self, client_id: str, message_id: str, decision: Decision, *, reason: str | None = None
    ) -> bool:
        """Approve or reject a message pending approval (`pending_approval → approved|rejected`):
        True if moved, False if the message is not (or no longer) pending approval."""
        if decision not in ("approved", "rejected"):
            raise InvalidInput("decision", f"must be 'approved' or 'rejected', got {decision!r}")
        return self.move(
            client_id,
            message_id,
            MessageStatus.PENDING_APPROVAL,
            MessageStatus(decision),
            reason=reason,
        )

    def _guard_on(self, client_id: str) -> bool:
        # Read and held in the move's transaction: turning the guard on cannot slip between
        # this check and the move.
        return self._config.get_for_write(client_id, HUMAN_IN_THE_LOOP, False) is True
