"""Engine factory: pool settings, SQLite pragmas, and the transaction mode wastate relies on.

Every connection runs in driver-level autocommit. A unit of work reads without a transaction (one
statement, one round trip) and opens one explicitly (`BEGIN`, or `BEGIN IMMEDIATE` on SQLite so
writers queue on the write lock instead of failing an upgrade) only when it first writes. That is
how a read-only unit of work costs exactly its SELECTs: no BEGIN/ROLLBACK round trips.

Pre-ping is adaptive: a connection idle for more than `PING_IDLE_SECONDS` is pinged at checkout
(and replaced if dead); a connection used moments ago is not, so the hot path pays no extra trip.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, StaticPool

from wastate.settings import Settings

__all__ = [
    "PING_IDLE_SECONDS",
    "create_sqlite_engine",
    "create_wastate_engine",
    "is_sqlite",
    "normalize_url",
    "switch_to_wal",
]

PING_IDLE_SECONDS = 10.0
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | URL) -> URL:
    """`url` with a driver wastate supports: `postgresql://` means psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(url: URL) -> bool:
    """True for SQLite URLs (file or memory)."""
    return url.get_backend_name() == "sqlite"


def create_wastate_engine(settings: Settings, *, url: str | URL | None = None) -> Engine:
    """An engine for `settings.database_url` (or `url`) configured as the module docstring says."""
    parsed = normalize_url(url if url is not None else settings.database_url)
    if is_sqlite(parsed):
        return create_sqlite_engine(parsed)
    return _server_engine(parsed, settings)


def _server_engine(url: URL, settings: Settings) -> Engine:
    # timezone=UTC: timestamptz values come back aware and in UTC, with no conversion step.
    options = "-c timezone=UTC"
    if settings.statement_timeout_ms:
        options += f" -c statement_timeout={settings.statement_timeout_ms}"
    connect_args: dict[str, Any] = {
        "connect_timeout": 5,
        "application_name": "wastate",
        "options": options,
    }
    engine = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=settings.pool_timeout_seconds,
        pool_recycle=1800,
        pool_use_lifo=True,
        connect_args=connect_args,
    )
    _install_adaptive_ping(engine)
    return engine


def create_sqlite_engine(url: URL) -> Engine:
    """An engine for the SQLite `url`: autocommit, a 30 s busy timeout, WAL for a file."""
    memory = url.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # One shared connection keeps an in-memory database alive across checkouts.
        **({"poolclass": StaticPool} if memory else {"pool_size": 8, "max_overflow": 8}),
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # First, so that every statement below waits for a lock rather than failing.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                switch_to_wal(dbapi_connection)
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine


def switch_to_wal(
    connection: sqlite3.Connection,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Put the database file in WAL mode, waiting (up to the busy timeout) as SQLite will not.

    WAL is a property of the file: once any connection has switched it, `PRAGMA journal_mode=WAL`
    only reads it (under a shared lock, for which SQLite does wait). Switching a rollback-journal
    file (a new one, or one made by `alembic upgrade`) writes its header: the pragma takes a
    read lock and then upgrades it to a write lock, and SQLite never waits for such an upgrade
    (two connections upgrading at once would deadlock), so `busy_timeout` does not apply and
    the pragma fails at once with SQLITE_BUSY whenever another connection holds the write lock —
    e.g. several processes opening a file for the first time together. So: retry, with short
    sleeps, until the winner has switched the file or the busy timeout has passed.
    """
    deadline = clock() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL").close()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or clock() >= deadline:
                raise
        sleep(pause)
        pause = min(pause * 2, 0.05)


def _install_adaptive_ping(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:  # any driver error means: replace this connection
            raise DisconnectionError("connection failed its idle ping") from exc
