"""The one seam for the database difference: what PostgreSQL and SQLite each can do.

wastate runs the same rules on both databases; where they differ, code asks a `Dialect` — chosen
once per engine (`Store.dialect`, `Database.dialect`) — and never compares backend names. Each
record family builds its dialect-specific statements once, at import, with `per_dialect`, and a
repository picks its own at construction: no call pays for the choice.

docs/architecture.md ("Where each dialect difference lives") has the table of capabilities and
the reason behind each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect as SqlDialect

from wastate.errors import ConfigurationError

__all__ = ["POSTGRESQL", "SQLITE", "Dialect", "Upsert", "dialect_of", "per_dialect"]

Upsert = postgresql.Insert | sqlite.Insert
"""An INSERT that can take `on_conflict_do_nothing` / `on_conflict_do_update`."""

_T = TypeVar("_T")


# eq=False: a dialect is one of two module-level singletons, compared and hashed by identity
# (cheap as a dict key, which is how repositories pick their statements).
@dataclass(frozen=True, eq=False)
class Dialect:
    """What one database can do, as far as wastate cares. Two instances: `POSTGRESQL`, `SQLITE`."""

    name: str
    """SQLAlchemy's backend name (`postgresql`, `sqlite`): for labels and messages, not branches."""

    begin: str
    """The verb that opens a writing transaction. SQLite: `BEGIN IMMEDIATE`, so writers queue on
    the write lock (busy timeout) instead of failing when a read lock cannot be upgraded."""

    row_locks: bool
    """`SELECT … FOR UPDATE [SKIP LOCKED]` / `FOR SHARE` exist. Without them (SQLite) writers are
    serialized by the database-wide write lock that `begin` takes, which is as strong."""

    snapshot: str
    """The first statement of a transaction that must read one consistent view (export).
    PostgreSQL: a REPEATABLE READ, READ ONLY snapshot that blocks no one. SQLite: any statement
    (`SELECT 1`) — its `begin` takes the write lock, so writers wait until the view ends."""

    insert: Callable[[Table], Upsert]
    """The INSERT builder with ON CONFLICT (`sqlalchemy.dialects.<name>.insert`)."""

    compiler: SqlDialect
    """The compile target for statements turned into cacheable `text()` at import
    (`wastate.repositories.upserts.precompiled`): the base dialect, which renders plain
    `:name` placeholders (no `::type` casts, which psycopg's dialect adds)."""

    migrates_on_first_use: bool
    """The schema may be created or upgraded by the first process that opens the database
    (SQLite, the embedded default). A server database never: its operator runs `wastate migrate`
    and a service only checks that the schema is current."""

    prepared_statements: bool
    """The unit of work drives the driver connection (psycopg) itself: hot statements are
    prepared server-side and skip SQLAlchemy's execution layer, transaction verbs travel in one
    pipeline with the statement after them, and COMMIT's outcome is read from its status.
    Elsewhere statements go through SQLAlchemy Core."""

    def __repr__(self) -> str:
        return f"Dialect({self.name})"


POSTGRESQL = Dialect(
    name="postgresql",
    begin="BEGIN",
    row_locks=True,
    snapshot="SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    insert=postgresql.insert,
    compiler=PGDialect(paramstyle="named"),  # type: ignore[no-untyped-call]
    migrates_on_first_use=False,
    prepared_statements=True,
)

SQLITE = Dialect(
    name="sqlite",
    begin="BEGIN IMMEDIATE",
    row_locks=False,
    snapshot="SELECT 1",
    insert=sqlite.insert,
    compiler=SQLiteDialect(paramstyle="named"),
    migrates_on_first_use=True,
    prepared_statements=False,
)

_BY_NAME = {dialect.name: dialect for dialect in (POSTGRESQL, SQLITE)}


def dialect_of(engine: Engine) -> Dialect:
    """The capabilities of `engine`'s database (chosen once, by whoever owns the engine)."""
    found = _BY_NAME.get(engine.dialect.name)
    if found is None:
        raise ConfigurationError(f"wastate does not support the {engine.dialect.name} database")
    return found


def per_dialect(build: Callable[[Dialect], _T]) -> dict[Dialect, _T]:
    """`build` run once for every dialect (at import): a repository picks its own entry once,
    at construction, by its `Database.dialect`."""
    return {dialect: build(dialect) for dialect in _BY_NAME.values()}
