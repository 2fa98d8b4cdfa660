"""The generated SQL of the message-tracking family, as each dialect renders it, against the
checked-in copies under `tests/snapshots/sql/<dialect>/`.

Most of that SQL is assembled from Python at import (the batch statement alone is a 7-CTE
statement of ~90 lines): a snapshot puts each change to it in the diff a reviewer reads. Every
statement constant of the family's modules is found by introspection, so a new one cannot be
left out. After a deliberate change, rewrite the copies and review their diff:

    WASTATE_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/unit/test_sql_snapshots.py
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import TESTS
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

from wastate.db.prepared import Prepared
from wastate.repositories.messages import postgres_sql, reads, repository, sqlite

SNAPSHOTS = TESTS / "snapshots" / "sql"
UPDATE = os.environ.get("WASTATE_UPDATE_SNAPSHOTS") == "1"
DIALECTS: dict[str, Dialect] = {
    "postgresql": psycopg.dialect(),  # the driver wastate runs PostgreSQL on
    "sqlite": pysqlite.dialect(),
}
# Module -> the dialects its statements run on (the shared ones run on both).
MODULES: dict[ModuleType, tuple[str, ...]] = {
    reads: ("postgresql", "sqlite"),
    repository: ("postgresql", "sqlite"),
    postgres_sql: ("postgresql",),
    sqlite: ("sqlite",),
}


def _key(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return "_".join(_key(part) for part in value)
    return str(value).lower()


def _statements() -> Iterator[tuple[str, str, Executable]]:
    """(dialect, snapshot name, statement) for each statement constant, each once: a statement
    one module imports from another is the other's."""
    seen: set[int] = set()
    for module, dialects in MODULES.items():
        found: list[tuple[str, Any]] = []
        for name, value in vars(module).items():
            if not name.isupper():
                continue
            if isinstance(value, dict):
                found += [(f"{name}.{_key(key)}", item) for key, item in value.items()]
            else:
                found.append((name, value))
        for name, value in found:
            statement = value.statement if isinstance(value, Prepared) else value
            if not isinstance(statement, Executable) or id(statement) in seen:
                continue
            seen.add(id(statement))
            stem = f"messages.{module.__name__.rsplit('.', 1)[-1]}.{name}"
            for dialect in dialects:
                yield dialect, stem, statement


STATEMENTS = sorted(_statements(), key=lambda found: found[:2])


def _path(dialect: str, stem: str) -> Path:
    return SNAPSHOTS / dialect / f"{stem}.sql"


def _render(statement: Executable, dialect: str) -> str:
    return str(statement.compile(dialect=DIALECTS[dialect])).strip() + "\n"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("dialect", "stem", "statement"), STATEMENTS, ids=[f"{d}/{s}" for d, s, _ in STATEMENTS]
)
def test_the_rendered_sql_matches_its_snapshot(
    dialect: str, stem: str, statement: Executable
) -> None:
    path = _path(dialect, stem)
    rendered = _render(statement, dialect)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    assert path.exists(), f"no snapshot {path}: run with WASTATE_UPDATE_SNAPSHOTS=1"
    assert rendered == path.read_text(), (
        f"{stem} renders differently on {dialect} than {path}; if that is meant, rewrite the"
        " snapshots with WASTATE_UPDATE_SNAPSHOTS=1 and review their diff"
    )


def test_every_snapshot_belongs_to_a_statement() -> None:
    expected = {_path(dialect, stem) for dialect, stem, _ in STATEMENTS}
    stale = sorted(set(SNAPSHOTS.glob("*/messages.*.sql")) - expected)
    if UPDATE:
        for path in stale:
            path.unlink()
        stale = []
    assert not stale, f"snapshots of no statement (delete them): {stale}"


def test_the_family_has_statements_to_snapshot() -> None:
    # The introspection found the batch statements, prepared ones and those in dicts included.
    stems = {stem for _, stem, _ in STATEMENTS}
    assert {
        "messages.postgres_sql.APPLY",
        "messages.postgres_sql.APPLY_ONE.failed",
        "messages.postgres_sql.INSERT.true_false",
        "messages.sqlite.APPLY_ONE",
        "messages.reads.GET",
        "messages.repository.PURGE",
    } <= stems
