"""The relational layer: declarative schema, engine factory, database-error translation, and
what each database can do (`Dialect`).

Imports `wastate.domain` (enums for CHECK constraints) and nothing above it.
"""

from wastate.db.base import NAMING_CONVENTION, Base
from wastate.db.dialect import POSTGRESQL, SQLITE, Dialect, dialect_of
from wastate.db.engine import create_wastate_engine, is_sqlite, normalize_url
from wastate.db.errors import translate_db_error
from wastate.db.tables import *  # noqa: F403  (register every table on Base.metadata)

__all__ = [
    "NAMING_CONVENTION",
    "POSTGRESQL",
    "SQLITE",
    "Base",
    "Dialect",
    "create_wastate_engine",
    "dialect_of",
    "is_sqlite",
    "normalize_url",
    "translate_db_error",
]
