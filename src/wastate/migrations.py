"""Run the Alembic migrations from code: `Store.migrate()`, `wastate migrate [--sql]`.

The revisions live in the project's top-level `alembic/` folder; the wheel ships the same folder
as `wastate/_alembic`, so an installed package migrates without the source tree.

SQLite is migrated on first use (`StateManager()`, each `wastate serve` worker), so several
processes may migrate one file at the same moment: there the upgrade runs as one `BEGIN
IMMEDIATE` transaction, and they take turns on the file's write lock (SQLite's DDL is
transactional, and Alembic reads the current revision inside that transaction), so the first
one migrates and the others find the schema current and change nothing.
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from alembic import command
from wastate.db.dialect import SQLITE
from wastate.db.engine import create_sqlite_engine, is_sqlite, normalize_url
from wastate.db.errors import translate_db_error
from wastate.errors import ConfigurationError, InvalidInput, SchemaNotReady, ServiceUnavailable

__all__ = [
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
    "migration_sql",
    "require_current_schema",
]


def _script_location() -> Path:
    package = Path(__file__).resolve().parent
    for candidate in (package / "_alembic", package.parents[1] / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigurationError("wastate's migrations are missing from this installation")


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic `Config` for wastate's migrations, bound to `url` or an open `connection`."""
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", str(normalize_url(url)).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this wastate version ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:  # e.g. a server that is not there: not a raw driver error
        translated = translate_db_error(exc)
        raise translated or ServiceUnavailable(f"cannot reach the database: {exc.orig}") from exc


def _require_revision(revision: object) -> str:
    """An upgrade target: `head`, `heads`, `base` or a revision this wastate ships, else
    `InvalidInput` — checked before Alembic, whose own answers to a bad target range from a
    `CommandError` to a bare `AssertionError`."""
    script = ScriptDirectory.from_config(alembic_config())
    known = [rev.revision for rev in script.walk_revisions()]
    if not isinstance(revision, str) or revision not in {"head", "heads", "base", *known}:
        shown = revision if isinstance(revision, str) else type(revision).__name__
        choices = ", ".join(["head", *sorted(known)])
        raise InvalidInput("revision", f"{shown!r} is not a revision (one of: {choices})")
    return revision


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (in its own, transactional engine)."""
    revision = _require_revision(revision)
    parsed = normalize_url(url)
    if is_sqlite(parsed):
        _migrate_sqlite(parsed, revision)
        return
    engine = create_engine(parsed)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection=connection), revision)
    finally:
        engine.dispose()


def _migrate_sqlite(url: URL, revision: str) -> None:
    """The upgrade in one write transaction, so concurrent callers serialize (module docstring).

    wastate's own engine: WAL and the busy timeout, like every other connection to the file, and
    driver autocommit, so the `BEGIN IMMEDIATE` issued here is the transaction. Alembic sees the
    connection already in a transaction and leaves beginning and committing to us.
    """
    engine = create_sqlite_engine(url)
    try:
        with engine.connect() as connection:
            # As `alembic upgrade` runs: a batch migration rebuilds tables by copy-and-drop.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql(SQLITE.begin)
            try:
                command.upgrade(alembic_config(connection=connection), revision)
            except BaseException:
                if connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                    connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
    except DBAPIError as exc:
        raise (translate_db_error(exc) or exc) from exc
    finally:
        engine.dispose()


def migration_sql(url: str, revision: str = "head") -> str:
    """The SQL of an upgrade to `revision`, for a DBA to review; needs no database."""
    revision = _require_revision(revision)
    buffer = io.StringIO()
    config = alembic_config(url)
    config.output_buffer = buffer
    command.upgrade(config, revision, sql=True)
    return buffer.getvalue()


def require_current_schema(engine: Engine) -> None:
    """Raise `SchemaNotReady` unless the database is at this version's head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no wastate schema" if current is None else f"is at revision {current}"
        raise SchemaNotReady(
            f"the database {state}, this wastate needs {head}: run `wastate migrate`"
        )
