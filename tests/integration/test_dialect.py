"""The dialect seam (`wastate.db.dialect`): what each database is said to be able to do, that a
store and its units of work ask one `Dialect`, that the capabilities take effect on the real
databases, and that no module outside the seam compares backend names.

The expected capabilities are written out by hand from docs/architecture.md ("Where each dialect
difference lives"), not derived from the implementation.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import timedelta

import pytest
from helpers import ROOT, FakeClock
from sqlalchemy import create_engine, create_mock_engine, text
from sqlalchemy.dialects import postgresql, sqlite

import wastate
from wastate.db.dialect import POSTGRESQL, SQLITE, Dialect, dialect_of, per_dialect
from wastate.db.tables import ConfigEntry
from wastate.errors import ConfigurationError

SRC = ROOT / "src" / "wastate"


def test_postgresql_says_what_it_can_do() -> None:
    assert POSTGRESQL.name == "postgresql"
    assert POSTGRESQL.begin == "BEGIN"
    assert POSTGRESQL.row_locks is True  # FOR UPDATE SKIP LOCKED, FOR SHARE
    assert POSTGRESQL.snapshot == "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    assert POSTGRESQL.insert is postgresql.insert
    assert POSTGRESQL.compiler.name == "postgresql"
    assert POSTGRESQL.migrates_on_first_use is False  # a server schema belongs to its operator
    assert POSTGRESQL.prepared_statements is True


def test_sqlite_says_what_it_can_do() -> None:
    assert SQLITE.name == "sqlite"
    assert SQLITE.begin == "BEGIN IMMEDIATE"  # writers queue on the write lock
    assert SQLITE.row_locks is False
    assert SQLITE.snapshot == "SELECT 1"  # BEGIN IMMEDIATE is the snapshot
    assert SQLITE.insert is sqlite.insert
    assert SQLITE.compiler.name == "sqlite"
    assert SQLITE.migrates_on_first_use is True  # the embedded default migrates at first use
    assert SQLITE.prepared_statements is False


@pytest.mark.parametrize("dialect", [POSTGRESQL, SQLITE], ids=lambda d: d.name)
def test_each_compiler_renders_plain_named_parameters(dialect: Dialect) -> None:
    """`precompiled` turns statements into `text()`, which only sees `:name` placeholders."""
    table = ConfigEntry.__table__
    statement = dialect.insert(table).on_conflict_do_nothing()  # type: ignore[arg-type]
    sql = str(statement.compile(dialect=dialect.compiler))
    assert ":tenant_id" in sql
    assert "%(" not in sql
    assert "ON CONFLICT DO NOTHING" in sql


def test_dialect_of_names_the_engines_database() -> None:
    assert dialect_of(create_engine("sqlite://")) is SQLITE
    assert dialect_of(create_engine("postgresql+psycopg://nobody@127.0.0.1/none")) is POSTGRESQL
    with pytest.raises(ConfigurationError, match="mysql"):
        dialect_of(create_mock_engine("mysql://", lambda *_a, **_k: None))  # type: ignore[arg-type]


def test_per_dialect_builds_once_for_every_dialect() -> None:
    built: list[Dialect] = []

    def build(dialect: Dialect) -> str:
        built.append(dialect)
        return dialect.name

    assert per_dialect(build) == {POSTGRESQL: "postgresql", SQLITE: "sqlite"}
    assert built == [POSTGRESQL, SQLITE]


def test_a_store_and_its_units_of_work_ask_one_dialect(
    make_store: Callable[..., wastate.Store], database_url: str
) -> None:
    store = make_store(database_url)
    expected = SQLITE if database_url.startswith("sqlite") else POSTGRESQL
    assert store.dialect is expected
    with store.unit_of_work("t") as uow:
        assert uow._db.dialect is expected


def test_a_snapshot_is_what_the_dialect_says(
    make_store: Callable[..., wastate.Store], database_url: str
) -> None:
    """PostgreSQL: a REPEATABLE READ, READ ONLY transaction. SQLite: the write lock is held, so
    another writer cannot begin."""
    store = make_store(database_url)
    with store.unit_of_work("t") as uow:
        uow.open_snapshot()
        assert uow.in_transaction
        if store.dialect is POSTGRESQL:
            isolation = uow._db.read(text("SHOW transaction_isolation")).scalar()
            read_only = uow._db.read(text("SHOW transaction_read_only")).scalar()
            assert (isolation, read_only) == ("repeatable read", "on")
        else:
            path = store.engine.url.database
            assert path
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()


def test_expiry_skips_rows_another_transaction_holds_where_rows_can_be_locked(
    make_store: Callable[..., wastate.Store], postgres_url: str, tenant: str
) -> None:
    """With SKIP LOCKED an expiring unit of work takes the idle rows nobody holds, at once;
    without it, it would wait for the other transaction's row locks (here: time out)."""
    clock = FakeClock()
    store = make_store(postgres_url, clock=clock, statement_timeout_ms=3000)
    users = [f"+1555000{index:04d}" for index in range(4)]
    with store.unit_of_work(tenant) as uow:
        for user in users:
            uow.mappings.get_or_create(user)
    clock.advance(days=2)
    held, free = users[:2], users[2:]
    with store.engine.connect() as other:
        other.exec_driver_sql("BEGIN")
        locked = other.execute(
            text(
                "SELECT id FROM conversation_mappings WHERE tenant_id = :t AND wa_id IN (:a, :b)"
                " FOR UPDATE"
            ),
            {"t": tenant, "a": held[0], "b": held[1]},
        ).all()
        assert len(locked) == 2
        try:
            with store.unit_of_work(tenant) as uow:
                expired = uow.mappings.expire_batch(timedelta(days=1), limit=4)
        finally:
            other.exec_driver_sql("ROLLBACK")
    assert sorted(m.wa_id for m in expired) == free


# Comparisons of backend names, and URL predicates: the seam answers these questions.
_NAME_COMPARISON = re.compile(
    r"""(dialect(\.name|_name)\s*[!=]=|[!=]=\s*["'](postgresql|sqlite)["']|is_sqlite\(|"""
    r"""["'](postgresql|sqlite)["']\s*[!=]=)"""
)
# Where a backend name may still be compared, and why (docs/architecture.md).
_ALLOWED = {
    "db/dialect.py": "the seam itself",
    "db/engine.py": "a URL picks its engine factory before any engine (or Dialect) exists",
    "migrations.py": "a URL picks its migration runner (SQLite: its own engine, serialized)",
    "db/base.py": "UTCDateTime's bind processor gets SQLAlchemy's dialect, per value",
}


def test_no_module_outside_the_seam_compares_backend_names() -> None:
    offenders: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative in _ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _NAME_COMPARISON.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []
