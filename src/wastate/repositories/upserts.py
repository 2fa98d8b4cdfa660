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
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, TextClause, bindparam, text
from sqlalchemy.sql.dml import UpdateBase

from wastate.db.dialect import Dialect, per_dialect

__all__ = ["precompiled", "precompiled_per_dialect"]

# PostgreSQL's JSON types render `:name::JSONB`, which `text()` would not see as a parameter.
_BIND_CAST = re.compile(r":(\w+)::(JSONB|JSON)\b")


def precompiled(
    statement: UpdateBase, dialect: Dialect, *returning: ColumnElement[Any]
) -> TextClause:
    """`statement` compiled for `dialect` as a cacheable `text()`; `returning` types the
    RETURNING columns, if any.

    It is compiled for `dialect.compiler`, which renders the plain `:name` placeholders `text()`
    understands; the driver's own dialect takes over when the `text()` runs."""
    compiled = statement.compile(dialect=dialect.compiler)
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


def precompiled_per_dialect(
    build: Callable[[Dialect], UpdateBase], *returning: ColumnElement[Any]
) -> dict[Dialect, TextClause]:
    """The statement `build` makes for each dialect, `precompiled` for it: a repository picks its
    own once, at construction, by `Database.dialect`."""
    return per_dialect(lambda dialect: precompiled(build(dialect), dialect, *returning))


def _without_bind_casts(sql: str) -> str:
    rewritten = _BIND_CAST.sub(r"CAST(:\1 AS \2)", sql)
    if "::" in rewritten:
        raise ValueError(f"a bind cast text() cannot carry is left in: {rewritten}")
    return rewritten
