"""Run the Alembic migrations from code: `Store.migrate()`, `wastate migrate [--sql]`.

The revisions live in the project's top-level `alembic/` folder; the wheel ships the same folder
as `wastate/_alembic`, so an installed package migrates without the source tree.
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError

from alembic import command
from wastate.db.engine import normalize_url
from wastate.db.errors import translate_db_error
from wastate.errors import ConfigurationError, SchemaNotReady, ServiceUnavailable

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


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (in its own, transactional engine)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection=connection), revision)
    finally:
        engine.dispose()


def migration_sql(url: str, revision: str = "head") -> str:
    """The SQL of an upgrade to `revision`, for a DBA to review; needs no database."""
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
