"""The store: engine + cache + settings. `connect()` builds one; `unit_of_work()` uses it.

A process keeps one `Store` (it owns the connection pool, the cache clients and the coalesced
activity writer) and opens a short `UnitOfWork` per request or message.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from wastate import migrations
from wastate.activity import ActivityWriter
from wastate.cache.layers import CacheReach
from wastate.cache.mappings import CachedMappingRepository, MappingCache
from wastate.db.dialect import Dialect, dialect_of
from wastate.db.engine import create_wastate_engine, normalize_url
from wastate.domain.clock import Clock, Monotonic, utcnow
from wastate.errors import ConfigurationError
from wastate.repositories.mappings import SqlMappingRepository
from wastate.settings import Settings, load_settings
from wastate.uow import UnitOfWork, UnitOfWorkResources

if TYPE_CHECKING:
    from wastate.repositories.base import Database
    from wastate.repositories.mappings import MappingRepository

__all__ = ["Store", "connect"]


class Store:
    """Everything a process shares: the engine, the cache, the settings and the clocks.

    `clock` (aware UTC datetimes) stamps what is written; `monotonic` (seconds, like
    `time.monotonic`) times the cache: near-cache and `memory://` entry lifetimes, the breaker's
    probes. Both exist so tests can inject fakes and check every time bound exactly.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock = utcnow,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        if settings is not None and not isinstance(settings, Settings):
            raise ConfigurationError(f"settings: must be Settings, got {type(settings).__name__}")
        if not callable(clock):
            raise ConfigurationError(f"clock: must be callable, got {type(clock).__name__}")
        self.settings = settings if settings is not None else load_settings()
        self.clock = clock
        self.monotonic = monotonic
        self.engine = create_wastate_engine(self.settings)
        self.dialect: Dialect = dialect_of(self.engine)
        """What the database can do (`wastate.db.dialect`): every dialect difference asks it."""
        self.database_url = normalize_url(self.settings.database_url)
        self._closed = False
        self._close_lock = threading.Lock()
        self._init_mapping_layer()
        self._uow_resources = UnitOfWorkResources(
            engine=self.engine,
            dialect=self.dialect,
            clock=self.clock,
            mappings=self._mapping_repository,
        )

    def _init_mapping_layer(self) -> None:
        """Build the store-level parts of the mapping repository (cache, activity writer)."""
        self._activity = ActivityWriter(
            self.engine, interval=self.settings.activity_flush_seconds, clock=self.clock
        )
        self._mapping_cache = MappingCache.from_settings(
            self.settings, activity=self._activity, monotonic=self.monotonic
        )

    def _mapping_repository(self, db: Database) -> MappingRepository:
        # Always the decorator, even over `none://`: activity is recorded the same way.
        return CachedMappingRepository(SqlMappingRepository(db), db, self._mapping_cache)

    def unit_of_work(self, tenant_id: str) -> UnitOfWork:
        """A unit of work bound to `tenant_id`; use it as a context manager."""
        return UnitOfWork(self._uow_resources, tenant_id)

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to `revision` (`alembic upgrade head`, `wastate migrate`)."""
        migrations.migrate(self.settings.database_url, revision)

    def require_current_schema(self) -> None:
        """Raise `SchemaNotReady` unless the database is migrated to this version's head."""
        migrations.require_current_schema(self.engine)

    def ping_database(self) -> None:
        """One round trip to the database on a fresh checkout; raises if it does not answer."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def cache_reach(self) -> CacheReach:
        """Whom this store's cache changes reach: other processes? their near caches?"""
        return self._mapping_cache.reach()

    def settle_cache(self) -> None:
        """Wait until every cache fill sent so far is applied (fills do not wait for Redis's
        reply): for tests and for readers of Redis that must see them."""
        self._mapping_cache.settle()

    def ping_cache(self) -> None:
        """One round trip to the cache backend itself (not the circuit breaker's memory of it);
        raises if it does not answer."""
        self._mapping_cache.backend.ping()

    def close(self) -> None:
        """Flush coalesced activity, close the cache clients and the connection pool."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._close_mapping_layer()
        self.engine.dispose()

    def _close_mapping_layer(self) -> None:
        try:
            self._activity.close()
        finally:
            self._mapping_cache.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(
    database_url: str | None = None,
    cache_url: str | None = None,
    *,
    clock: Clock = utcnow,
    monotonic: Monotonic = time.monotonic,
    **settings: Any,
) -> Store:
    """A `Store` for `database_url` and `cache_url`, else `WASTATE_*` settings, else the embedded
    default (SQLite file `./wastate.db` and an in-process cache). `clock` and `monotonic` are
    the store's clocks (see `Store`); leave them alone outside tests."""
    return Store(
        load_settings(database_url=database_url, cache_url=cache_url, **settings),
        clock=clock,
        monotonic=monotonic,
    )
