"""The relational layer: declarative schema, engine factory and database-error translation.

Imports `wastate.domain` (enums for CHECK constraints) and nothing above it.
"""

from wastate.db.base import NAMING_CONVENTION, Base
from wastate.db.engine import create_wastate_engine, is_sqlite, normalize_url
from wastate.db.errors import translate_db_error
from wastate.db.tables import *  # noqa: F403  (register every table on Base.metadata)

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "create_wastate_engine",
    "is_sqlite",
    "normalize_url",
    "translate_db_error",
]
