"""The mapping repository's contract: the protocol every implementation keeps (the SQL
repository, the cache decorator over it, `wastate.testing`'s fake), the batched maintenance they
share, and the check of `touch`'s argument. No SQL here: that is `repositories/mappings.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from wastate.domain.clock import as_utc
from wastate.domain.ids import normalize_wa_id
from wastate.domain.maintenance import BATCH_SIZE as _BATCH_SIZE
from wastate.domain.maintenance import drain
from wastate.domain.mappings import ConversationMapping
from wastate.errors import InvalidInput

__all__ = ["BatchedMaintenance", "MappingRepository", "check_refreshes"]


class MappingRepository(Protocol):
    """What `uow.mappings` offers; the SQL repository and the caching decorator both provide it."""

    def get_or_create(self, wa_id: str, *, contact_name: str | None = None) -> ConversationMapping:
        """The user's active mapping, created (with a new conversation id) if there is none.

        A `contact_name` different from the stored one replaces it.
        """
        ...

    def by_wa_id(self, wa_id: str) -> ConversationMapping | None:
        """The user's active mapping, or None. Never creates."""
        ...

    def by_conversation(self, conversation_id: str) -> ConversationMapping | None:
        """The mapping (in any status) of a conversation id: the reverse lookup."""
        ...

    def correlate(
        self, wa_id: str, conversation_id: str, communication_id: str | None = None
    ) -> ConversationMapping:
        """Give the user's active mapping the contact center's conversation id, once.

        Idempotent for the same id; a different second id raises `Conflict`. With no active
        mapping (the contact center starts the conversation), one is created with that id.
        """
        ...

    def close(self, wa_id: str) -> ConversationMapping | None:
        """Close the user's active mapping (the next message starts a new conversation)."""
        ...

    def touch(self, refreshes: Sequence[tuple[str, datetime]]) -> None:
        """Move `last_activity_at` of the users' active mappings forward to the given times
        (never backwards); (wa_id, time) pairs, wa_ids already normalised."""
        ...

    def expire_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Expire up to `limit` active mappings idle for longer than `older_than`."""
        ...

    def expire_idle(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Expire active mappings idle for longer than `older_than`, in batches; how many."""
        ...

    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Delete up to `limit` closed/expired mappings closed more than `older_than` ago."""
        ...

    def purge(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Delete closed/expired mappings closed more than `older_than` ago; how many."""
        ...


class BatchedMaintenance:
    """`expire_idle` and `purge` as loops over the batch methods, shared by every implementation."""

    BATCH_SIZE = _BATCH_SIZE

    def expire_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        raise NotImplementedError

    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        raise NotImplementedError

    def expire_idle(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Expire active mappings idle for longer than `older_than`, in batches; how many."""
        return drain(self.expire_batch, older_than, limit=limit, batch_size=self.BATCH_SIZE)

    def purge(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Delete closed/expired mappings closed more than `older_than` ago; how many."""
        return drain(self.purge_batch, older_than, limit=limit, batch_size=self.BATCH_SIZE)


def check_refreshes(refreshes: object) -> list[tuple[str, datetime]]:
    """`touch`'s argument checked: (wa_id, aware time) pairs, wa_ids normalised, times in UTC."""
    if isinstance(refreshes, str | bytes) or not isinstance(refreshes, Sequence):
        raise InvalidInput("refreshes", f"must be a list of pairs, got {type(refreshes).__name__}")
    checked = []
    for index, pair in enumerate(refreshes):
        field = f"refreshes[{index}]"
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise InvalidInput(field, "must be a (wa_id, time) pair")
        wa_id, at = pair
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise InvalidInput(f"{field}[1]", "must be a timezone-aware datetime")
        checked.append((normalize_wa_id(wa_id, field=f"{field}[0]"), as_utc(at, field=field)))
    return checked
