"""What a repository sees of its unit of work: `Database`, a tenant-bound statement runner.

Repositories hold SQL (SQLAlchemy Core statements built once, at import) and nothing else: no
cache, no transaction control. `read` runs on the unit of work's connection without opening a
transaction; `write` opens the unit of work's transaction first (once). Both translate database
errors into the wastate family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import CursorResult, Executable

from wastate.db.prepared import Prepared

__all__ = ["Database", "Params"]

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class Database(Protocol):
    """A tenant-bound handle on one unit of work's connection."""

    @property
    def tenant_id(self) -> str:
        """The tenant every statement must be scoped to."""
        ...

    @property
    def dialect_name(self) -> str:
        """`postgresql` or `sqlite`: for the few statements that differ."""
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

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after the transaction commits; at once if none is open; never on
        rollback."""
        ...
