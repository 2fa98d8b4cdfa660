"""What a repository sees of its unit of work: `Database`, a tenant-bound statement runner.

Repositories hold SQL (SQLAlchemy Core statements built once, at import) and nothing else: no
cache, no transaction control. `read` runs on the unit of work's connection without opening a
transaction; `write` opens the unit of work's transaction first (once). Both translate database
errors into the wastate family. A public method that writes is marked `@atomic`: the unit of work
makes the call all or nothing, so a caller that catches its error keeps every earlier write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import CursorResult, Executable

from wastate.db.dialect import Dialect
from wastate.db.prepared import Prepared

__all__ = ["Database", "Params", "atomic"]

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class Database(Protocol):
    """A tenant-bound handle on one unit of work's connection."""

    @property
    def tenant_id(self) -> str:
        """The tenant every statement must be scoped to."""
        ...

    @property
    def dialect(self) -> Dialect:
        """What the database can do: a repository picks its dialect-specific statements from it
        once, at construction (`wastate.db.dialect`)."""
        ...

    @property
    def in_transaction(self) -> bool:
        """True once a write opened the transaction, until commit or rollback."""
        ...

    def now(self) -> datetime:
        """The store's clock: aware UTC."""
        ...

    def first(self, query: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        """The first row of a prepared SELECT (a tuple in column order), or None.

        The fast path for hot lookups; see `wastate.db.prepared`.
        """
        ...

    def write_first(self, query: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        """Like `write`, for a prepared statement with RETURNING: its first row, or None."""
        ...

    def read(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        """Run a statement that changes nothing (inside the transaction if one is open)."""
        ...

    def write(self, statement: Executable, params: Params = None) -> CursorResult[Any]:
        """Run a statement inside the unit of work's transaction, opening it if needed."""
        ...

    def after_commit(
        self, callback: Callable[[], None], if_unknown: Callable[[], None] | None = None
    ) -> None:
        """Run `callback` after the transaction commits; at once if none is open; never on
        rollback. If COMMIT's outcome is unknown (connection lost), run `if_unknown` instead."""
        ...

    def begin_call(self) -> None:
        """A repository call starts (calls nest; the outermost one counts)."""
        ...

    def end_call(self, *, failed: bool) -> None:
        """The call ended; if it `failed`, undo its writes and drop its post-commit callbacks."""
        ...


class _Repository(Protocol):
    @property
    def _db(self) -> Database: ...


_R = TypeVar("_R", bound=_Repository)
_P = ParamSpec("_P")
_T = TypeVar("_T")


def atomic(method: Callable[Concatenate[_R, _P], _T]) -> Callable[Concatenate[_R, _P], _T]:
    """Make a repository method all or nothing within its unit of work's transaction.

    Whatever it raises, its writes are undone (a savepoint, or the transaction it opened) and the
    unit of work stays usable with every earlier write intact — on PostgreSQL, where a failed
    statement would otherwise abort the whole transaction, exactly as on SQLite.
    """

    @functools.wraps(method)
    def call(self: _R, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        db = self._db
        db.begin_call()
        try:
            result = method(self, *args, **kwargs)
        except BaseException:
            db.end_call(failed=True)
            raise
        db.end_call(failed=False)
        return result

    return call
