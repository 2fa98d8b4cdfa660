"""Prepared statements: compiled once per dialect and run straight on the driver connection.

SQLAlchemy's execution machinery costs ~35 µs per statement here, as much as half a
PostgreSQL round trip. The hottest statements (a mapping by wa_id or conversation id with the cache
off or missed; the insert of a new mapping) skip it: the statement is compiled once, psycopg
prepares it server-side (`prepare=True`), and the row comes back as a plain tuple. This is only
for statements (SELECT, or DML with RETURNING) whose parameters and result columns need no type
processing on PostgreSQL (text, numbers, and timestamptz, which psycopg returns aware and in
UTC because every wastate connection sets `timezone=UTC`). Other dialects go through Core.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect

__all__ = ["Prepared"]


class Prepared:
    """A Core statement with its compiled SQL and constant parameters cached per dialect."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, dict[str, Any]]] = {}

    def compiled(self, dialect: Dialect) -> tuple[str, dict[str, Any]]:
        """The SQL text for `dialect` and the statement's own (constant) parameter values."""
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            found = self._compiled[dialect.name] = (str(compiled), dict(compiled.params))
        return found
