"""Fakes for your own unit tests: an in-memory store and unit of work, no database, no cache.

```python
from wastate.testing import FakeStore

store = FakeStore()
with store.unit_of_work("tenant-a") as uow:
    mapping = uow.mappings.get_or_create("+919876543210")
```

What is faked, and how faithfully:

- `FakeStore.unit_of_work(tenant)` → `FakeUnitOfWork` with the real unit of work's shape:
  context manager (commit on clean exit, rollback on exception), `commit()`, `rollback()`,
  `close()`, `after_commit(callback)` (run after commit, at once outside a transaction, dropped
  on rollback), `in_transaction`.
- `uow.mappings` is a `FakeMappingRepository` with the rules of the SQL repository: the same
  `wa_id` normalisation and validation (`InvalidInput`, nothing written), at most one active
  mapping per (tenant, wa_id), conversation ids unique per tenant, correlate-once (`Conflict` for
  a different second id), close, expire and purge in batches, contact-name replacement. A
  transaction is a private copy of the tenant's rows taken at the first write, published on
  commit and dropped on rollback; tenants never see each other's rows.
- Not faked: concurrency between processes (the fake serialises commits with a lock; there is
  no isolation level to imitate), activity coalescing (`last_activity_at` changes only on
  creation), the cache (there is nothing to cache), and the other repositories (`messages`,
  `sessions`, … raise `NotImplementedError`).

`tests/integration/test_cache_fake_contract.py` runs one set of behaviour checks against this
fake and against the real repository on PostgreSQL and SQLite, so the fake cannot drift
silently.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from wastate.domain.clock import Clock, utcnow
from wastate.domain.ids import normalize_tenant_id, normalize_wa_id
from wastate.domain.maintenance import cutoff_before, require_batch_size
from wastate.domain.mappings import (
    ConversationMapping,
    MappingStatus,
    adds_communication_id,
    normalize_contact_name,
    validate_communication_id,
    validate_conversation_id,
)
from wastate.errors import Conflict
from wastate.repositories.mapping_contract import BatchedMaintenance, check_refreshes

__all__ = ["FakeMappingRepository", "FakeStore", "FakeUnitOfWork"]

_ACTIVE = MappingStatus.ACTIVE


class FakeStore:
    """An in-memory stand-in for `wastate.Store` (mappings only); thread-safe."""

    def __init__(self, *, clock: Clock = utcnow) -> None:
        self.clock = clock
        self._rows: dict[str, list[ConversationMapping]] = {}
        self._lock = threading.Lock()

    def unit_of_work(self, tenant_id: str) -> FakeUnitOfWork:
        """A unit of work bound to `tenant_id`; use it as a context manager."""
        return FakeUnitOfWork(self, tenant_id)

    def close(self) -> None:
        """Nothing to release; for symmetry with `Store.close()`."""

    def _committed(self, tenant_id: str) -> list[ConversationMapping]:
        with self._lock:
            return list(self._rows.get(tenant_id, ()))

    def _publish(self, tenant_id: str, rows: list[ConversationMapping]) -> None:
        with self._lock:
            self._rows[tenant_id] = rows

    def __enter__(self) -> FakeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FakeUnitOfWork:
    """An in-memory stand-in for `wastate.UnitOfWork`."""

    def __init__(self, store: FakeStore, tenant_id: str) -> None:
        self.tenant_id = normalize_tenant_id(tenant_id)
        self._store = store
        self._working: list[ConversationMapping] | None = None
        self._after_commit: list[Callable[[], None]] = []
        self.mappings = FakeMappingRepository(self)

    @property
    def in_transaction(self) -> bool:
        """True between the first write and the next commit or rollback."""
        return self._working is not None

    def now(self) -> Any:
        """The store's clock."""
        return self._store.clock()

    def rows(self) -> list[ConversationMapping]:
        """The rows this unit of work sees (its own uncommitted ones included)."""
        if self._working is not None:
            return self._working
        return self._store._committed(self.tenant_id)

    def writable_rows(self) -> list[ConversationMapping]:
        """The transaction's private copy of the rows (taken at the first write)."""
        if self._working is None:
            self._working = copy.copy(self._store._committed(self.tenant_id))
        return self._working

    def commit(self) -> None:
        """Publish the transaction's rows, then run the post-commit callbacks."""
        if self._working is not None:
            self._store._publish(self.tenant_id, self._working)
            self._working = None
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        """Drop the transaction's rows and its post-commit callbacks."""
        self._working = None
        self._after_commit.clear()

    def close(self) -> None:
        """Roll back anything uncommitted."""
        self.rollback()

    def after_commit(
        self, callback: Callable[[], None], if_unknown: Callable[[], None] | None = None
    ) -> None:
        """Run `callback` once the current transaction commits (at once if none is open); a fake
        commit always has a known outcome, so `if_unknown` never runs."""
        if self._working is not None:
            self._after_commit.append(callback)
        else:
            callback()

    def __getattr__(self, name: str) -> Any:
        if name in ("messages", "sessions", "approvals", "statistics", "config"):
            raise NotImplementedError(
                f"wastate.testing fakes only uow.mappings; uow.{name} needs a real store "
                "(e.g. wastate.connect() on a migrated SQLite file)"
            )
        raise AttributeError(name)

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()


class FakeMappingRepository(BatchedMaintenance):
    """The `MappingRepository` protocol over a list in memory, with the SQL repository's rules."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def get_or_create(self, wa_id: str, *, contact_name: str | None = None) -> ConversationMapping:
        """The user's active mapping, created (with a new conversation id) if there is none."""
        key = normalize_wa_id(wa_id)
        name = normalize_contact_name(contact_name)
        found = self._active(key)
        if found is None:
            now = self._uow.now()
            found = ConversationMapping(
                tenant_id=self._uow.tenant_id,
                wa_id=key,
                conversation_id=str(uuid.uuid4()),
                contact_name=name,
                created_at=now,
                last_activity_at=now,
            )
            self._uow.writable_rows().append(found)
            return found
        if name is not None and found.contact_name != name:
            found = self._replace(found, contact_name=name)
        return found

    def by_wa_id(self, wa_id: str) -> ConversationMapping | None:
        """The user's active mapping, or None. Never creates."""
        return self._active(normalize_wa_id(wa_id))

    def touch(self, refreshes: Sequence[tuple[str, datetime]]) -> None:
        """Move `last_activity_at` of active mappings forward (never backwards)."""
        for wa_id, at in check_refreshes(refreshes):
            found = self._active(wa_id)
            if found is not None and found.last_activity_at < at:
                self._replace(found, last_activity_at=at)

    def by_conversation(self, conversation_id: str) -> ConversationMapping | None:
        """The mapping (in any status) of a conversation id: the reverse lookup."""
        wanted = validate_conversation_id(conversation_id)
        for row in self._uow.rows():
            if row.conversation_id == wanted:
                return row
        return None

    def correlate(
        self, wa_id: str, conversation_id: str, communication_id: str | None = None
    ) -> ConversationMapping:
        """Set the contact center's conversation id on the active mapping, once."""
        key = normalize_wa_id(wa_id)
        wanted = validate_conversation_id(conversation_id)
        communication = validate_communication_id(communication_id)
        current = self._active(key)
        owner = self.by_conversation(wanted)
        if owner is not None and (current is None or owner is not current):
            raise Conflict(f"already exists (conversation {wanted!r})", constraint="conversation")
        now = self._uow.now()
        if current is None:
            created = ConversationMapping(
                tenant_id=self._uow.tenant_id,
                wa_id=key,
                conversation_id=wanted,
                communication_id=communication,
                correlated_at=now,
                created_at=now,
                last_activity_at=now,
            )
            self._uow.writable_rows().append(created)
            return created
        if current.correlated_at is None:
            return self._replace(
                current,
                conversation_id=wanted,
                communication_id=communication or current.communication_id,
                correlated_at=now,
            )
        if adds_communication_id(current, wanted, communication):
            return self._replace(current, communication_id=communication)
        return current

    def close(self, wa_id: str) -> ConversationMapping | None:
        """Close the user's active mapping; None if there was none."""
        current = self._active(normalize_wa_id(wa_id))
        if current is None:
            return None
        return self._replace(current, status=MappingStatus.CLOSED, closed_at=self._uow.now())

    def expire_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Expire up to `limit` active mappings idle for longer than `older_than`."""
        now = self._uow.now()
        cutoff = cutoff_before(now, older_than)
        limit = require_batch_size(limit)
        idle = sorted(
            (r for r in self._uow.rows() if r.is_active and r.last_activity_at < cutoff),
            key=lambda row: row.last_activity_at,
        )[:limit]
        return [self._replace(row, status=MappingStatus.EXPIRED, closed_at=now) for row in idle]

    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Delete up to `limit` closed/expired mappings closed more than `older_than` ago."""
        cutoff = cutoff_before(self._uow.now(), older_than)
        limit = require_batch_size(limit)
        doomed = sorted(
            (
                r
                for r in self._uow.rows()
                if not r.is_active and r.closed_at is not None and r.closed_at < cutoff
            ),
            key=lambda row: row.closed_at or cutoff,
        )[:limit]
        if doomed:
            rows = self._uow.writable_rows()
            gone = {id(row) for row in doomed}
            rows[:] = [row for row in rows if id(row) not in gone]
        return doomed

    def _active(self, key: str) -> ConversationMapping | None:
        for row in self._uow.rows():
            if row.wa_id == key and row.is_active:
                return row
        return None

    def _replace(self, row: ConversationMapping, **changes: Any) -> ConversationMapping:
        rows = self._uow.writable_rows()
        new = row.model_copy(update=changes)
        for index, candidate in enumerate(rows):
            if candidate.conversation_id == row.conversation_id:
                rows[index] = new
                break
        return new
