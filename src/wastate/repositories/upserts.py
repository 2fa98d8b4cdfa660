"""ON CONFLICT statements that SQLAlchemy's statement cache can hold.

`sqlalchemy.dialects.postgresql.insert` and `sqlalchemy.dialects.sqlite.insert` build the upserts,
but in SQLAlchemy 2.0 their statements have no cache key, so every execution compiles them again
(about 0.3 ms each, more than the database round trip on a hot path). `precompiled()` compiles such
a statement once, at import, for its dialect, and hands back an equivalent `text()` whose bind
parameters keep their types (so `UTCDateTime` and JSON still process values) and their literal
values: a statement the cache holds like any other.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["DIALECTS", "precompiled"]

# PostgreSQL's JSON types render `:name::JSONB`, which `text()` would not see as a parameter.
_BIND_CAST = re.compile(r":(\w+)::(JSONB|JSON)\b")

DIALECTS: dict[str, Dialect] = {
    "postgresql": PGDialect(paramstyle="named"),  # type: ignore[no-untyped-call]
    "sqlite": SQLiteDialect(paramstyle="named"),
}
"""Compilation targets: the base dialects render plain `:name` placeholders (no `::type` casts,
which psycopg's dialect adds), the form `text()` understands; the driver's own dialect takes over
when the `text()` runs."""


def precompiled(
    statement: UpdateBase, dialect_name: str, *returning: ColumnElement[Any]
) -> TextClause:
    """`statement` compiled for `dialect_name` as a cacheable `text()`; `returning` types the
    RETURNING columns, if any."""
    compiled = statement.compile(dialect=DIALECTS[dialect_name])
    binds = []
    # bind_names holds the names as rendered (anonymous binds get theirs at compile time).
    for bind, name in compiled.bind_names.items():
        if bind.required or bind.callable is not None:
            binds.append(bindparam(name, type_=bind.type))
        else:
            binds.append(bindparam(name, value=bind.effective_value, type_=bind.type))
    clause = text(_without_bind_casts(str(compiled))).bindparams(*binds)
    if returning:
        return clause.columns(*returning)  # type: ignore[return-value]
    return clause


def _without_bind_casts(sql: str) -> str:
    rewritten = _BIND_CAST.sub(r"CAST(:\1 AS \2)", sql)
    if "::" in rewritten:
        raise ValueError(f"a bind cast text() cannot carry is left in: {rewritten}")
    return rewritten
