"""The caching decorator over the mapping repository (the store-level cache it shares,
`MappingCache`, is in `wastate.cache.layers`, re-exported here).

`MappingCache` (one per store) holds the layers: the near cache (L1, mapping objects, optional),
the backend behind its circuit breaker (L2: Redis, memory or nothing), single flight, the key
builder and the TTL. `CachedMappingRepository` (one per unit of work) implements the
`MappingRepository` protocol over the SQL repository:

- reads (`get_or_create`, `by_wa_id`, `by_conversation`) go L1 → L2 → database; a database read
  fills both directions (forward only for an active mapping) through `db.after_commit`, so it
  runs at once outside a transaction and is dropped with a rolled-back one;
- concurrent misses of one key outside a transaction share one database read (single flight);
- writes (`correlate`, `close`, `expire_batch`, `purge_batch`, a rename through
  `get_or_create`) invalidate every key they affect — for `correlate` the old reverse key too —
  after commit only; until then this unit of work reads its own writes from the database;
- every active mapping a read returns is reported to the activity writer (throttled there), hit
  or miss; activity is flushed before expiring, so pending refreshes are not expired.

Nothing here knows SQL; the inner repository knows nothing of caches. With `none://` the
decorator still runs (activity is recorded the same way) and only the database answers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from wastate.cache.layers import TOMBSTONE_SECONDS, ActivityRecorder, MappingCache
from wastate.domain.ids import normalize_wa_id
from wastate.domain.maintenance import cutoff_before, require_batch_size
from wastate.domain.mappings import (
    ConversationMapping,
    MappingStatus,
    normalize_contact_name,
    validate_conversation_id,
)
from wastate.errors import InvalidInput
from wastate.repositories.mapping_contract import (
    BatchedMaintenance,
    MappingRepository,
    check_refreshes,
)

if TYPE_CHECKING:
    from wastate.repositories.base import Database

__all__ = ["TOMBSTONE_SECONDS", "ActivityRecorder", "CachedMappingRepository", "MappingCache"]

_ACTIVE = MappingStatus.ACTIVE


def _same_name(given: object, cached: str | None) -> bool:
    """Whether `contact_name=given` would leave a mapping named `cached` unchanged."""
    try:
        name = normalize_contact_name(given)
    except InvalidInput:
        return False  # let the repository raise it
    return name is None or name == cached


class CachedMappingRepository(BatchedMaintenance):
    """The `MappingRepository` of a unit of work, with the cache in front of `inner`."""

    __slots__ = ("_cache", "_db", "_dirty", "_forward", "_inner", "_keys", "_near", "_record")

    def __init__(self, inner: MappingRepository, db: Database, cache: MappingCache) -> None:
        self._inner = inner
        self._db = db
        self._cache = cache
        self._near = cache.near
        self._keys = cache.keys.tenant(db.tenant_id)
        self._forward = self._keys.forward  # bound once: the hot path makes one call per key
        self._record = cache.activity.record
        # True after this unit of work changed mappings in its open transaction: until that
        # ends, reads go to the database (the cache holds committed state only).
        self._dirty = False

    # -- reads ---------------------------------------------------------------------------------

    def get_or_create(self, wa_id: str, *, contact_name: str | None = None) -> ConversationMapping:
        """The user's active mapping, created (with a new conversation id) if there is none.

        A `contact_name` different from the cached one goes to the database (which renames).
        """
        key = normalize_wa_id(wa_id)
        normalize_contact_name(contact_name)  # refused before any cache or database is asked
        forward = self._forward(key)
        near = self._near
        if near is not None and not self._dirty:
            found = near.get(forward)
            if found is not None and (
                contact_name is None or _same_name(contact_name, found.contact_name)
            ):
                self._record(found)
                return found
        db = self._db
        bypass = self._bypass()
        if not bypass:
            found = self._cached(forward)
            if found is not None:
                if contact_name is None or _same_name(contact_name, found.contact_name):
                    self._record(found)
                    return found
                bypass = True  # a rename: the database does it, the keys are invalidated
        generation = near.generation if near is not None else 0
        was_in_transaction = db.in_transaction
        shared = False
        if bypass or was_in_transaction:
            mapping = self._inner.get_or_create(key, contact_name=contact_name)
        else:
            # One database call for concurrent misses. Its result is shared only if it wrote
            # nothing: a created row is visible to the creator's transaction alone until commit.
            mapping, shared = self._cache.create_flight.do_shared(
                forward,
                lambda: self._inner.get_or_create(key, contact_name=contact_name),
                lambda: not db.in_transaction,
            )
            if shared and not (
                contact_name is None or _same_name(contact_name, mapping.contact_name)
            ):
                mapping = self._inner.get_or_create(key, contact_name=contact_name)
                shared = False
        wrote = db.in_transaction and not was_in_transaction
        if bypass or (contact_name is not None and (wrote or was_in_transaction)):
            # Renamed — or created with a name, where losing the insert race to another
            # process means renaming the mapping it may have cached already: invalidate.
            self._changed([forward, self._keys.reverse(mapping.conversation_id)])
        elif not shared:  # read or created: cache it (at commit, if there is a transaction)
            self._fill_after_commit(mapping, generation)
        if db.in_transaction:
            self._dirty = True
        if mapping.status is _ACTIVE:
            self._record(mapping)
        return mapping

    def touch(self, refreshes: Sequence[tuple[str, datetime]]) -> None:
        """Write activity refreshes (last_activity_at is not cached: nothing to invalidate)."""
        self._inner.touch(check_refreshes(refreshes))

    def by_wa_id(self, wa_id: str) -> ConversationMapping | None:
        """The user's active mapping, or None. Never creates."""
        key = normalize_wa_id(wa_id)
        forward = self._forward(key)
        near = self._near
        if near is not None and not self._dirty:
            found = near.get(forward)
            if found is not None:
                self._record(found)
                return found
        found = self._inner.by_wa_id(key) if self._bypass() else self._active(key, forward)
        if found is not None:
            self._record(found)
        return found

    def by_conversation(self, conversation_id: str) -> ConversationMapping | None:
        """The mapping (in any status) of a conversation id: the reverse lookup."""
        conversation_id = validate_conversation_id(conversation_id)
        reverse = self._keys.reverse(conversation_id)
        near = self._near
        if near is not None and not self._dirty:
            found = near.get(reverse)
            if found is not None:
                if found.status is _ACTIVE:
                    self._record(found)
                return found
        if self._bypass():
            found = self._inner.by_conversation(conversation_id)
        else:
            found = self._cached(reverse)
            if found is None:
                found = self._load(reverse, lambda: self._inner.by_conversation(conversation_id))
        if found is not None and found.status is _ACTIVE:
            self._record(found)
        return found

    # -- writes --------------------------------------------------------------------------------

    def correlate(
        self, wa_id: str, conversation_id: str, communication_id: str | None = None
    ) -> ConversationMapping:
        """Set the contact center's conversation id on the active mapping, once."""
        key = normalize_wa_id(wa_id)
        # The generated id's reverse key goes stale when the id is replaced: find it first.
        before = self._inner.by_wa_id(key)
        mapping = self._inner.correlate(key, conversation_id, communication_id)
        keys = [self._forward(key), self._keys.reverse(mapping.conversation_id)]
        if before is not None and before.conversation_id != mapping.conversation_id:
            keys.append(self._keys.reverse(before.conversation_id))
        self._changed(keys)
        return mapping

    def close(self, wa_id: str) -> ConversationMapping | None:
        """Close the user's active mapping; None if there was none."""
        mapping = self._inner.close(wa_id)
        if mapping is not None:
            self._changed(self._keys_of([mapping]))
        return mapping

    def expire_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Expire up to `limit` idle active mappings (pending activity is written first)."""
        cutoff_before(self._db.now(), older_than)  # checked before the activity is written
        require_batch_size(limit)
        # Written in this unit of work's transaction: a flush on another connection could
        # wait on this transaction's own locks.
        pending = self._cache.activity.take(self._db.tenant_id)
        if pending:
            self._inner.touch(pending)
        expired = self._inner.expire_batch(older_than, limit=limit)
        if expired:
            self._changed(self._keys_of(expired))
        return expired

    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Delete up to `limit` closed/expired mappings closed more than `older_than` ago."""
        purged = self._inner.purge_batch(older_than, limit=limit)
        if purged:
            self._changed(self._keys_of(purged))
        return purged

    # -- internals -----------------------------------------------------------------------------

    def _keys_of(self, mappings: Sequence[ConversationMapping]) -> list[str]:
        keys: list[str] = []
        for mapping in mappings:
            keys.append(self._forward(mapping.wa_id))
            keys.append(self._keys.reverse(mapping.conversation_id))
        return keys

    def _bypass(self) -> bool:
        """True while this unit of work's own uncommitted mapping writes are in play."""
        if self._dirty:
            if self._db.in_transaction:
                return True
            self._dirty = False
        return False

    def _active(self, key: str, forward: str) -> ConversationMapping | None:
        found = self._cached(forward)
        if found is None:
            found = self._load(forward, lambda: self._inner.by_wa_id(key))
        return found

    def _cached(self, cache_key: str) -> ConversationMapping | None:
        """L1, then L2 (a hit there is kept in L1)."""
        cache = self._cache
        if not cache.enabled:
            return None
        near = self._near
        if near is not None:
            found = near.get(cache_key)
            if found is not None:
                return found
            generation = near.generation
        raw = cache.remote.get(cache_key)
        if raw is None:
            return None
        found = cache.parse(raw)
        if found is not None and near is not None:
            near.put(((cache_key, found),), generation)
        return found

    def _load(
        self, cache_key: str, read: Callable[[], ConversationMapping | None]
    ) -> ConversationMapping | None:
        """A database read, shared by concurrent callers outside a transaction, then filled."""
        near = self._near
        generation = near.generation if near is not None else 0
        # Inside a transaction a read may see this transaction's rows: never share it.
        found = read() if self._db.in_transaction else self._cache.flight.do(cache_key, read)
        if found is not None:
            self._fill_after_commit(found, generation)
        return found

    def _fill_after_commit(self, mapping: ConversationMapping, generation: int) -> None:
        if not self._cache.enabled:
            return
        cache, keys = self._cache, self._keys
        # If COMMIT's outcome is unknown, the row may differ from what this unit of work saw.
        self._db.after_commit(
            lambda: cache.store(mapping, keys, generation),
            lambda: cache.invalidate(self._keys_of([mapping])),
        )

    def _changed(self, keys: list[str]) -> None:
        if self._db.in_transaction:
            self._dirty = True
        cache = self._cache
        invalidate = functools.partial(cache.invalidate, keys)
        self._db.after_commit(invalidate, invalidate)
