"""Alembic environment for wastate.

The URL, in order: a connection passed in `config.attributes["connection"]` (tests, `Store.migrate`),
`-x url=…`, `sqlalchemy.url` set by the caller, `WASTATE_DATABASE_URL` / the seed's `DB_*`
variables, the embedded default. SQLite gets batch mode (`render_as_batch`) for ALTERs it lacks.
"""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import Connection, Engine, create_engine, pool

from alembic import context
from wastate.db import Base
from wastate.db.engine import normalize_url
from wastate.settings import load_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    explicit = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    return str(normalize_url(explicit or load_settings().database_url))


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    if connection is not None:
        dialect = connection.dialect.name
    else:
        dialect = normalize_url(url or "").get_backend_name()
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=dialect == "sqlite",
        compare_type=True,
        literal_binds=connection is None,
        dialect_opts={"paramstyle": "named"} if connection is None else {},
    )


def run_migrations_offline() -> None:
    """Write the SQL (`alembic upgrade head --sql`) without a database."""
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a database: the caller's connection if given, else a fresh engine."""
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run_on(given)
    elif isinstance(given, Engine):  # pytest-alembic hands over an engine
        with given.connect() as connection:
            _run_on(connection)
            connection.commit()
    else:
        engine = create_engine(_url(), poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                _run_on(connection)
                connection.commit()
        finally:
            engine.dispose()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
