"""The unit of work: one tenant, one connection, at most one transaction at a time.

A unit of work borrows a connection only when a repository first needs the database, so a call
served from the cache costs no database round trip. Reads run without a transaction; the first
write opens one (`BEGIN`). Leaving the `with` block cleanly commits; an exception rolls back.
Callbacks queued with `after_commit` (cache writes and invalidations) run only after a successful
commit, and are dropped on rollback: nothing from a rolled-back write ever reaches the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Connection, CursorResult, Executable
from sqlalchemy.exc import DBAPIError

from wastate.db.errors import translate_db_error
from wastate.db.prepared import Prepared
from wastate.domain.ids import normalize_tenant_id
from wastate.errors import ServiceUnavailable
from wastate.repositories.api_keys import ApiKeyRepository
from wastate.repositories.approvals import ApprovalRepository
from wastate.repositories.base import Params
from wastate.repositories.config import ConfigRepository
from wastate.repositories.mappings import MappingRepository
from wastate.repositories.messages import MessageRepository
from wastate.repositories.sessions import SessionRepository
from wastate.repositories.statistics import StatisticsRepository

if TYPE_CHECKING:
    from wastate.store import Store

__all__ = ["UnitOfWork"]

log = logging.getLogger(__name__)


def _translated(exc: DBAPIError) -> Exception:
    return translate_db_error(exc) or exc


class _TenantDatabase:
    """The `wastate.repositories.base.Database` a unit of work hands its repositories.

    On PostgreSQL the transaction verbs and the prepared statements go straight to the psycopg
    connection (SQLAlchemy's execution layer costs as much as half a round trip), and the first
    write of a transaction travels in one pipeline with its `BEGIN`.
    """

    __slots__ = (
        "_after_commit",
        "_clock",
        "_connection",
        "_engine",
        "_in_transaction",
        "_on_postgresql",
        "dialect_name",
        "tenant_id",
    )

    def __init__(self, store: Store, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._engine = store.engine
        self._clock = store.clock
        self.dialect_name: str = store.engine.dialect.name
        self._on_postgresql = self.dialect_name == "postgresql"
        self._connection: Connection | None = None
        self._in_transaction = False
        self._after_commit: list[Callable[[], None]] = []

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def now(self) -> datetime:
        return self._clock()

    def _conn(self) -> Connection:
        connection = self._connection
        if connection is None:
            try:
                connection = self._connection = self._engine.connect()
            except DBAPIError as exc:
                raise ServiceUnavailable(f"cannot connect to the database: {exc.orig}") from exc
        return connection

    def _driver(self) -> psycopg.Connection[Any]:
        driver: psycopg.Connection[Any] = self._conn().connection.driver_connection  # type: ignore[assignment]
        return driver

    def _driver_failed(self, exc: psycopg.Error) -> Exception:
        """Translate a driver error; a broken connection is never handed back to the pool."""
        connection = self._connection
        if connection is not None and (
            isinstance(exc, psycopg.OperationalError)
            or connection.connection.driver_connection.closed  # type: ignore[union-attr]
        ):
            connection.invalidate()
            self._connection = None
            self._in_transaction = False
        return translate_db_error(exc) or exc

    def _begin(self) -> None:
        if self._on_postgresql:
            self._driver().execute("BEGIN")
        else:
            # SQLite: take the write lock up front, so concurrent writers wait (busy_timeout)
            # instead of failing when a read lock cannot be upgraded.
            self._conn().exec_driver_sql("BEGIN IMMEDIATE")
        self._in_transaction = True

    def _end(self, verb: str) -> None:
        if self._on_postgresql:
            self._driver().execute(verb)
        else:
            self._conn().exec_driver_sql(verb)

    def first(self, query: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        if not self._on_postgresql:
            return self.read(query.statement, params).first()
        sql, constants = query.compiled(self._engine.dialect)
        try:
            cursor = self._driver().execute(sql, {**constants, **params}, prepare=True)
            return cursor.fetchone()
        except psycopg.Error as exc:
            raise self._driver_failed(exc) from exc

    def write_first(self, query: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        if not self._on_postgresql:
            return self.write(query.statement, params).first()
        sql, constants = query.compiled(self._engine.dialect)
        try:
            driver = self._driver()
            if self._in_transaction:
                return driver.execute(sql, {**constants, **params}, prepare=True).fetchone()
            with driver.pipeline():  # BEGIN and the statement in one round trip
                driver.execute("BEGIN")
                self._in_transaction = True
                cursor = driver.execute(sql, {**constants, **params}, prepare=True)
            # Fetched after the pipeline's one sync: fetching inside it would sync twice.
            return cursor.fetchone()
        except psycopg.Error as exc:
            raise self._driver_failed(exc) from exc

    def read(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        try:
            return self._conn().execute(statement, params)
        except DBAPIError as exc:
            raise _translated(exc) from exc

    def write(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        try:
            if not self._in_transaction:
                self._begin()
            return self._conn().execute(statement, params)
        except DBAPIError as exc:
            raise _translated(exc) from exc
        except psycopg.Error as exc:
            raise self._driver_failed(exc) from exc

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._in_transaction:
            self._after_commit.append(callback)
        else:
            _run_quietly(callback)

    def commit(self) -> None:
        if self._in_transaction:
            try:
                self._end("COMMIT")
            except (DBAPIError, psycopg.Error) as exc:
                self.rollback()
                if isinstance(exc, DBAPIError):
                    raise _translated(exc) from exc
                raise self._driver_failed(exc) from exc
            self._in_transaction = False
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            _run_quietly(callback)

    def rollback(self) -> None:
        self._after_commit.clear()
        if not self._in_transaction:
            return
        self._in_transaction = False
        connection = self._connection
        if connection is None:
            return
        try:
            self._end("ROLLBACK")
        except (DBAPIError, psycopg.Error):
            # The connection is broken; the server has rolled back already. Never reuse it.
            log.warning("rollback failed; discarding the connection", exc_info=True)
            connection.invalidate()
            self._connection = None

    def close(self) -> None:
        if self._in_transaction:
            self.rollback()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _run_quietly(callback: Callable[[], None]) -> None:
    """Post-commit work (cache upkeep) must never fail a call whose data is committed."""
    try:
        callback()
    except Exception:
        log.exception("post-commit callback failed")


class UnitOfWork:
    """One tenant's repositories over one connection and (at most) one transaction.

    Use it as a context manager: a clean exit commits, an exception rolls back. `commit()` and
    `rollback()` give explicit control; the unit of work stays usable after either.
    """

    def __init__(self, store: Store, tenant_id: str) -> None:
        self.tenant_id: str = normalize_tenant_id(tenant_id)
        self._store = store
        self._db = _TenantDatabase(store, self.tenant_id)
        self._mappings: MappingRepository | None = None
        self._messages: MessageRepository | None = None
        self._sessions: SessionRepository | None = None
        self._approvals: ApprovalRepository | None = None
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

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction commits (at once if none is open)."""
        self._db.after_commit(callback)

    @property
    def mappings(self) -> MappingRepository:
        """Conversation mappings of this tenant (cached as the store is configured)."""
        if self._mappings is None:
            self._mappings = self._store._mapping_repository(self._db)
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
    def approvals(self) -> ApprovalRepository:
        """Approval-lifecycle messages (seed 004) of this tenant."""
        if self._approvals is None:
            self._approvals = ApprovalRepository(self._db)
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
