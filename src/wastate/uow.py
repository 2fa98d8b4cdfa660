"""The unit of work: one tenant, one connection, at most one transaction at a time.

A unit of work borrows a connection only when a repository first needs the database, so a call
served from the cache costs no database round trip. Reads run without a transaction; the first
write opens one (`BEGIN`). Leaving the `with` block cleanly commits; an exception rolls back.
Callbacks queued with `after_commit` (cache writes and invalidations) run only after a successful
commit, and are dropped on rollback: nothing from a rolled-back write ever reaches the cache.
The statement runner and its transaction rules live in `wastate.transaction`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from wastate.db.dialect import Dialect
from wastate.domain.ids import normalize_tenant_id
from wastate.repositories.api_keys import ApiKeyRepository
from wastate.repositories.config import ConfigRepository
from wastate.repositories.mappings import MappingRepository
from wastate.repositories.messages import MessageRepository
from wastate.repositories.sessions import SessionRepository
from wastate.repositories.statistics import StatisticsRepository
from wastate.services.approvals import ApprovalLifecycle
from wastate.transaction import TenantDatabase

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from wastate.domain.clock import Clock
    from wastate.repositories.base import Database

__all__ = ["UnitOfWork", "UnitOfWorkResources"]


@dataclass(frozen=True, slots=True)
class UnitOfWorkResources:
    """What every unit of work of a store shares, handed in by the store (so this module never
    imports the store: the dependencies point one way, as in a composition root)."""

    engine: Engine
    dialect: Dialect
    clock: Clock
    mappings: Callable[[Database], MappingRepository]
    """Builds the unit of work's mapping repository (the store's cache decorator over SQL)."""


class UnitOfWork:
    """One tenant's repositories over one connection and (at most) one transaction.

    Use it as a context manager: a clean exit commits, an exception rolls back. `commit()` and
    `rollback()` give explicit control; the unit of work stays usable after either.
    """

    def __init__(self, resources: UnitOfWorkResources, tenant_id: str) -> None:
        self.tenant_id: str = normalize_tenant_id(tenant_id)
        self._make_mappings = resources.mappings
        self._db = TenantDatabase(
            resources.engine, resources.dialect, resources.clock, self.tenant_id
        )
        self._mappings: MappingRepository | None = None
        self._messages: MessageRepository | None = None
        self._sessions: SessionRepository | None = None
        self._approvals: ApprovalLifecycle | None = None
        self._statistics: StatisticsRepository | None = None
        self._config: ConfigRepository | None = None
        self._api_keys: ApiKeyRepository | None = None

    def __enter__(self) -> UnitOfWork:
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

    @property
    def in_transaction(self) -> bool:
        """True between the first write and the next commit or rollback."""
        return self._db.in_transaction

    def commit(self) -> None:
        """Commit the open transaction (if any), then run the post-commit callbacks."""
        self._db.commit()

    def rollback(self) -> None:
        """Roll back the open transaction (if any) and drop its post-commit callbacks."""
        self._db.rollback()

    def close(self) -> None:
        """Roll back anything uncommitted and return the connection to the pool."""
        self._db.close()

    def after_commit(
        self, callback: Callable[[], None], if_unknown: Callable[[], None] | None = None
    ) -> None:
        """Run `callback` once the current transaction commits (at once if none is open), or
        `if_unknown` instead if COMMIT's outcome cannot be known (the connection was lost)."""
        self._db.after_commit(callback, if_unknown)

    def open_snapshot(self) -> None:
        """Start the transaction as one consistent view for a multi-statement read (an export):
        on PostgreSQL a REPEATABLE READ, READ ONLY snapshot that blocks no one; on SQLite the
        write lock (`BEGIN IMMEDIATE`), so writers wait until the unit of work ends. Must come
        before any write."""
        self._db.open_snapshot()

    @property
    def mappings(self) -> MappingRepository:
        """Conversation mappings of this tenant (cached as the store is configured)."""
        if self._mappings is None:
            self._mappings = self._make_mappings(self._db)
        return self._mappings

    @property
    def messages(self) -> MessageRepository:
        """Tracked WhatsApp messages of this tenant and their delivery status."""
        if self._messages is None:
            self._messages = MessageRepository(self._db)
        return self._messages

    @property
    def sessions(self) -> SessionRepository:
        """Client session records (seed 004) of this tenant."""
        if self._sessions is None:
            self._sessions = SessionRepository(self._db)
        return self._sessions

    @property
    def approvals(self) -> ApprovalLifecycle:
        """Approval-lifecycle messages (seed 004) of this tenant, with the rules of their moves."""
        if self._approvals is None:
            self._approvals = ApprovalLifecycle(self._db, self.statistics, self.config)
        return self._approvals

    @property
    def statistics(self) -> StatisticsRepository:
        """Approval-lifecycle statistics (seed 004) of this tenant."""
        if self._statistics is None:
            self._statistics = StatisticsRepository(self._db)
        return self._statistics

    @property
    def config(self) -> ConfigRepository:
        """Key/value config entries (seed 004) of this tenant."""
        if self._config is None:
            self._config = ConfigRepository(self._db)
        return self._config

    @property
    def api_keys(self) -> ApiKeyRepository:
        """HTTP API keys of this tenant (only hashes of their secrets are stored)."""
        if self._api_keys is None:
            self._api_keys = ApiKeyRepository(self._db)
        return self._api_keys
