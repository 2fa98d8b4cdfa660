"""The statement runner a unit of work hands its repositories, and the transaction rules.

`TenantDatabase` implements `wastate.repositories.base.Database` for one unit of work: one
lazily borrowed connection, at most one transaction, all-or-nothing repository calls (a savepoint
each, pipelined with the call's first statement), the aborted-transaction safety net, a checked
COMMIT, post-commit callbacks, and one retry of a statement on a dead pooled connection.
docs/architecture.md ("Transaction semantics") states the rules;
`tests/integration/test_uow_integrity.py` proves them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from sqlalchemy import Connection, CursorResult, Executable, text
from sqlalchemy.exc import DBAPIError

from wastate.db.dialect import Dialect, per_dialect
from wastate.db.errors import translate_db_error
from wastate.db.prepared import Prepared
from wastate.errors import InvalidInput, ServiceUnavailable, TransactionAborted, WastateError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from wastate.domain.clock import Clock
    from wastate.repositories.base import Params

__all__ = ["TenantDatabase"]

log = logging.getLogger(__name__)

_SAVEPOINT = "wastate_call"
_ROLLBACK_TO = f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}"

# What the outermost repository call in progress has done to the transaction.
_CALL_IDLE = 0  # no statement in a transaction yet: a failure has nothing to undo
_CALL_BEGAN = 1  # it opened the transaction: a failure rolls the whole (call-only) transaction back
_CALL_SAVEPOINT = 2  # it runs under the call savepoint: a failure rolls back to it

# The first statement of a consistent multi-statement read: see `Dialect.snapshot`.
_SNAPSHOT = per_dialect(lambda dialect: text(dialect.snapshot))

_T = TypeVar("_T")
_Callback = Callable[[], None]


def _broken(exc: BaseException, connection: Connection | None) -> bool:
    """True when `exc` means the connection itself is gone (the server's state is unknown)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return _broken(exc.orig, connection) if exc.orig is not None else False
    if not isinstance(exc, psycopg.Error):
        return False
    driver = None if connection is None else connection.connection.driver_connection
    if isinstance(driver, psycopg.Connection) and (driver.broken or driver.closed):
        return True
    return isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None


class TenantDatabase:
    """The `wastate.repositories.base.Database` a unit of work hands its repositories.

    Where the dialect has `prepared_statements` (PostgreSQL) the transaction verbs and the
    prepared statements go straight to the psycopg connection (SQLAlchemy's execution layer costs
    as much as half a round trip), and the first write of a transaction travels in one pipeline
    with its `BEGIN`.

    A repository call (`begin_call`/`end_call`, see `wastate.repositories.base.atomic`) is all or
    nothing, on PostgreSQL exactly as on SQLite: inside an open transaction its first statement is
    preceded by `SAVEPOINT` (in the same pipeline, so no extra round trip on the prepared path),
    and a failure rolls back to it, so a caught `WastateError` leaves every earlier write intact.
    A call that opened the transaction needs no savepoint: its failure rolls the transaction back.
    A statement that fails inside a transaction outside any call, or a connection lost inside
    one, aborts the unit of work: every later statement and `commit()` raise `TransactionAborted`
    until `rollback()`. `COMMIT` is checked (PostgreSQL answers an aborted transaction's COMMIT
    with ROLLBACK, not an error); one whose outcome is unknown raises and invalidates the cache
    entries the unit of work touched instead of filling them.
    """

    __slots__ = (
        "_aborted",
        "_after_commit",
        "_begin",
        "_call",
        "_call_mark",
        "_clock",
        "_connection",
        "_depth",
        "_engine",
        "_in_transaction",
        "_savepoint_open",
        "_snapshot",
        "_to_driver",
        "dialect",
        "tenant_id",
    )

    def __init__(self, engine: Engine, dialect: Dialect, clock: Clock, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._engine = engine
        self._clock = clock
        self.dialect = dialect
        # Read once: both are asked on every statement.
        self._to_driver = dialect.prepared_statements
        self._begin = dialect.begin
        self._snapshot = _SNAPSHOT[dialect]
        self._connection: Connection | None = None
        self._in_transaction = False
        # (callback after COMMIT, callback when COMMIT's outcome is unknown)
        self._after_commit: list[tuple[_Callback, _Callback | None]] = []
        self._depth = 0  # nesting of repository calls
        self._call = _CALL_IDLE
        self._call_mark = 0  # len(_after_commit) when the outermost call began
        self._savepoint_open = False  # the call savepoint exists in the open transaction
        self._aborted: BaseException | None = None  # why the transaction was lost

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def now(self) -> datetime:
        return self._clock()

    # -- connection ----------------------------------------------------------------------------

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

    def _discard_connection(self) -> None:
        """Never hand a broken connection back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except Exception:  # already gone: nothing else to release
                log.debug("discarding a broken connection failed", exc_info=True)

    def _send(self, verbs: Sequence[str]) -> None:
        """Transaction-control statements, in one round trip."""
        if not verbs:
            return
        if not self._to_driver:
            connection = self._conn()
            for verb in verbs:
                connection.exec_driver_sql(verb)
            return
        driver = self._driver()
        if len(verbs) == 1:
            driver.execute(verbs[0])
            return
        with driver.pipeline():
            for verb in verbs:
                driver.execute(verb)

    # -- repository calls ----------------------------------------------------------------------

    def begin_call(self) -> None:
        self._depth += 1
        if self._depth == 1:
            self._call = _CALL_IDLE
            self._call_mark = len(self._after_commit)

    def end_call(self, *, failed: bool) -> None:
        self._depth -= 1
        if self._depth:
            return
        call, self._call = self._call, _CALL_IDLE
        if not failed or self._aborted is not None or not self._in_transaction:
            return
        del self._after_commit[self._call_mark :]
        if call == _CALL_BEGAN:
            self.rollback()
        elif call == _CALL_SAVEPOINT:
            try:
                self._send((_ROLLBACK_TO,))
            except (DBAPIError, psycopg.Error) as exc:
                self._abort(exc)

    # -- statements ----------------------------------------------------------------------------

    def _prologue(self, *, write: bool) -> list[str]:
        """The transaction verbs the next statement needs first; updates the state for them."""
        if not self._in_transaction:
            if not write:
                return []
            self._in_transaction = True
            if self._depth:
                self._call = _CALL_BEGAN
            # `BEGIN IMMEDIATE` on SQLite: see `Dialect.begin`.
            return [self._begin]
        if not self._depth or self._call != _CALL_IDLE:
            return []
        self._call = _CALL_SAVEPOINT
        if self._savepoint_open:  # keep one savepoint level, not one per call
            return [f"RELEASE SAVEPOINT {_SAVEPOINT}", f"SAVEPOINT {_SAVEPOINT}"]
        self._savepoint_open = True
        return [f"SAVEPOINT {_SAVEPOINT}"]

    def _run(self, step: Callable[[list[str]], _T], *, write: bool) -> _T:
        """Run one statement (`step` sends `verbs` first) under the unit of work's rules.

        A connection found dead when no transaction was open (a pooled connection the server
        closed while idle) is replaced and the statement retried once: nothing can have been
        committed on it.
        """
        for attempt in (1, 2):
            self._refuse_if_aborted()
            self._conn()
            had_transaction = self._in_transaction
            verbs = self._prologue(write=write)
            try:
                return step(verbs)
            except (DBAPIError, psycopg.Error) as exc:
                broken = _broken(exc, self._connection)
                self._failed(exc, had_transaction, broken=broken)
                if not broken:
                    raise (translate_db_error(exc) or _unexpected(exc)) from exc
                if had_transaction:
                    raise ServiceUnavailable(
                        "the database connection was lost inside a transaction: nothing of this"
                        " unit of work was committed"
                    ) from exc
                if attempt == 2:
                    raise ServiceUnavailable(f"database connection lost: {exc}") from exc
                log.warning("a pooled database connection was dead; retrying on a new one")
        raise AssertionError("unreachable")  # pragma: no cover

    def _refuse_if_aborted(self) -> None:
        if self._aborted is not None:
            raise TransactionAborted(
                "an earlier failure rolled this unit of work's transaction back; call rollback()"
                " and redo its work"
            ) from self._aborted

    def _failed(self, exc: BaseException, had_transaction: bool, *, broken: bool) -> None:
        """Bring the state in line with a statement that raised `exc`."""
        if broken:
            self._discard_connection()
            if had_transaction:
                self._abort(exc)
            else:
                self._reset_transaction()
        elif not had_transaction:
            if self._in_transaction:  # the statement that opened the transaction failed
                self.rollback()
        elif not self._depth:  # outside a call nothing smaller than the transaction can be undone
            self._abort(exc)
        # else: the failed call is undone by `end_call`

    def _abort(self, cause: BaseException) -> None:
        """The transaction is lost: roll back what is left, refuse everything until rollback()."""
        self.rollback()
        self._aborted = cause

    def _reset_transaction(self) -> None:
        self._in_transaction = False
        self._savepoint_open = False
        self._after_commit.clear()
        if self._call == _CALL_BEGAN:
            self._call = _CALL_IDLE

    def first(self, query: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        if not self._to_driver:
            return self.read(query.statement, params).first()
        return self._run(self._prepared(query, params), write=False)

    def write_first(self, query: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        if not self._to_driver:
            return self.write(query.statement, params).first()
        return self._run(self._prepared(query, params), write=True)

    def _prepared(
        self, query: Prepared, params: dict[str, Any]
    ) -> Callable[[list[str]], Sequence[Any] | None]:
        sql, constants = query.compiled(self._engine.dialect)
        arguments = {**constants, **params}

        def step(verbs: list[str]) -> Sequence[Any] | None:
            driver = self._driver()
            if not verbs:
                return driver.execute(sql, arguments, prepare=True).fetchone()
            with driver.pipeline():  # the verbs and the statement in one round trip
                for verb in verbs:
                    driver.execute(verb)
                cursor = driver.execute(sql, arguments, prepare=True)
            # Fetched after the pipeline's one sync: fetching inside it synced twice.
            return cursor.fetchone()

        return step

    def read(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        return self._run(lambda verbs: self._core(verbs, statement, params), write=False)

    def write(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        return self._run(lambda verbs: self._core(verbs, statement, params), write=True)

    def _core(self, verbs: list[str], statement: Executable, params: Params) -> CursorResult[Any]:
        self._send(verbs)
        return self._conn().execute(statement, params)

    def open_snapshot(self) -> None:
        """Open the transaction as one consistent view for a multi-statement read (see
        `UnitOfWork.open_snapshot`)."""
        if self._in_transaction:
            raise InvalidInput("unit_of_work", "open_snapshot() must come before any write")
        self._run(lambda verbs: self._core(verbs, self._snapshot, None), write=True)

    # -- the end of a transaction --------------------------------------------------------------

    def after_commit(self, callback: _Callback, if_unknown: _Callback | None = None) -> None:
        if self._in_transaction:
            self._after_commit.append((callback, if_unknown))
        else:
            _run_quietly(callback)

    def commit(self) -> None:
        if self._aborted is not None:
            cause = self._aborted
            self.rollback()
            raise TransactionAborted(
                "this unit of work's transaction was rolled back before it could commit:"
                " nothing of it was committed"
            ) from cause
        if self._in_transaction:
            self._commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback, _ in callbacks:
            _run_quietly(callback)

    def _commit(self) -> None:
        try:
            if self._to_driver:
                committed = self._driver().execute("COMMIT").statusmessage == "COMMIT"
            else:
                connection = self._conn()
                # SQLite rolls a transaction back by itself on some errors (full disk, I/O).
                sqlite = connection.connection.driver_connection
                committed = bool(getattr(sqlite, "in_transaction", True))
                if committed:
                    connection.exec_driver_sql("COMMIT")
                else:
                    self._send(("ROLLBACK",))
        except (DBAPIError, psycopg.Error) as exc:
            # The outcome may be unknown: what the transaction touched is invalidated, never
            # filled, and the caller hears of it.
            unknown = [if_unknown for _, if_unknown in self._after_commit if if_unknown]
            broken = _broken(exc, self._connection)
            if broken:
                self._discard_connection()
                self._reset_transaction()
            else:
                self.rollback()
            for callback in unknown:
                _run_quietly(callback)
            if broken:
                raise ServiceUnavailable(
                    "the database connection was lost during COMMIT: whether the unit of work"
                    " committed is unknown"
                ) from exc
            raise (translate_db_error(exc) or _unexpected(exc)) from exc
        if not committed:
            self._reset_transaction()
            raise TransactionAborted(
                "the database rolled the transaction back instead of committing it:"
                " nothing of this unit of work was committed"
            )
        self._in_transaction = False
        self._savepoint_open = False

    def rollback(self) -> None:
        self._aborted = None
        if not self._in_transaction:
            self._after_commit.clear()
            return
        self._reset_transaction()
        if self._connection is None:
            return
        try:
            self._send(("ROLLBACK",))
        except (DBAPIError, psycopg.Error):
            # The connection is broken; the server has rolled back already. Never reuse it.
            log.warning("rollback failed; discarding the connection", exc_info=True)
            self._discard_connection()

    def close(self) -> None:
        self.rollback()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _unexpected(exc: BaseException) -> WastateError:
    """A database error with no wastate meaning: still a `WastateError` for the caller."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None) or "?"
    return ServiceUnavailable(f"the database refused the statement ({type(orig).__name__} {code})")


def _run_quietly(callback: Callable[[], None]) -> None:
    """Post-commit work (cache upkeep) must never fail a call whose data is committed."""
    try:
        callback()
    except Exception:
        log.exception("post-commit callback failed")
