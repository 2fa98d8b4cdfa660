"""Translate database errors into the wastate family by SQLSTATE / SQLite error code.

Not by message text: psycopg exposes `sqlstate` and `diag.constraint_name`, sqlite3 exposes
`sqlite_errorname`. (One exception: SQLite's missing table or column, which has no code of its
own; see `_SQLITE_MISSING_SCHEMA`.) Anything not recognised is re-raised unchanged by the caller.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import DBAPIError

from wastate.errors import (
    Conflict,
    InvalidInput,
    SchemaNotReady,
    ServiceUnavailable,
    TransactionAborted,
    WastateError,
)

__all__ = ["translate_db_error"]

_PG_INPUT_ERRORS = {
    "22001": "value too long",
    "22003": "number out of range",
    "22007": "invalid datetime",
    "22008": "datetime out of range",
    "22021": "invalid byte sequence (e.g. a NUL character)",
    "22P05": "untranslatable character (e.g. a NUL character)",
    "22P02": "invalid value",
    "23502": "a required value is missing",
    "23503": "refers to a record that does not exist",
    "23514": "breaks a check rule",
}


# SQLite reports a missing table or column only as the generic SQLITE_ERROR (code 1), the same
# code as a syntax error; unlike PostgreSQL (42P01, 42703) it has no distinct code, so here, and
# only here, the message text decides. These prefixes have been stable since SQLite 3.0.
_SQLITE_MISSING_SCHEMA = ("no such table:", "no such column:")


def _missing_schema(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and str(error).startswith(
        _SQLITE_MISSING_SCHEMA
    )


def translate_db_error(exc: DBAPIError | Exception) -> WastateError | None:
    """The wastate error for `exc` (SQLAlchemy-wrapped or a bare driver error), or None."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    invalidated = isinstance(exc, DBAPIError) and exc.connection_invalidated
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        diag = getattr(original, "diag", None)
        constraint = getattr(diag, "constraint_name", None)
        column = getattr(diag, "column_name", None)
        if sqlstate == "25P02":  # in_failed_sql_transaction: the unit of work's safety net
            return TransactionAborted("the transaction was aborted by an earlier failure")
        if sqlstate == "23505":
            return Conflict(f"already exists ({constraint})", constraint=constraint)
        if sqlstate in _PG_INPUT_ERRORS:
            return InvalidInput(constraint or column or "value", _PG_INPUT_ERRORS[sqlstate])
        if sqlstate.startswith("22"):
            return InvalidInput(column or "value", f"invalid data (SQLSTATE {sqlstate})")
        if sqlstate in ("42P01", "42703"):
            return SchemaNotReady("the database has no wastate schema: run `wastate migrate`")
        if sqlstate.startswith(("08", "57P")) or invalidated:
            return ServiceUnavailable(f"database unavailable (SQLSTATE {sqlstate})")
        return None
    if isinstance(original, psycopg.DataError):  # raised client-side, e.g. a NUL in text
        return InvalidInput("value", str(original))
    if isinstance(original, sqlite3.Error):
        name = getattr(original, "sqlite_errorname", "")
        if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
            return Conflict("already exists")
        if name in ("SQLITE_CONSTRAINT_CHECK", "SQLITE_CONSTRAINT_NOTNULL"):
            return InvalidInput("value", "breaks a check rule")
        if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
            return InvalidInput("value", "refers to a record that does not exist")
        if name in ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR"):
            return ServiceUnavailable(f"database unavailable ({name})")
        if name == "SQLITE_ERROR" and _missing_schema(original):
            return SchemaNotReady("the database has no wastate schema: run `wastate migrate`")
        return None
    if invalidated:
        return ServiceUnavailable("database connection lost")
    return None
