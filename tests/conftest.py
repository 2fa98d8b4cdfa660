"""Test harness: real PostgreSQL, real Redis and SQLite, found without configuration.

Where a server comes from, in order: the env var (`WASTATE_TEST_DATABASE_URL`,
`WASTATE_TEST_REDIS_URL`), the local default (127.0.0.1:5432 user postgres, 127.0.0.1:6379), a
testcontainer where a Docker engine runs, else the test is skipped — or fails, when
`WASTATE_REQUIRE_SERVICES=1` (CI sets it), so CI can never pass by skipping.

Isolation: each test run creates its own PostgreSQL database (dropped at the end) and claims its
own Redis db index; each test gets a fresh tenant id, so tests share the migrated schema without
seeing each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

import wastate
from wastate.migrations import migrate

REQUIRE_SERVICES = os.environ.get("WASTATE_REQUIRE_SERVICES") == "1"
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
RUN_ID = uuid.uuid4().hex[:10]

settings.register_profile(
    "default",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)


# The test folders, by what a test needs (docs/testing.md): each test gets its folder's name as
# a marker, so `-m "not stress and not e2e"` selects across folders as `tests/unit` does by path.
FOLDERS = ("unit", "integration", "stress", "e2e")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent
        if folder.parent == TESTS and folder.name in FOLDERS:
            item.add_marker(folder.name)


def service_missing(what: str) -> None:
    """Skip the test, or fail it when `WASTATE_REQUIRE_SERVICES=1`."""
    message = f"{what} is not reachable"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} and WASTATE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _docker_available() -> bool:
    return os.path.exists("/var/run/docker.sock") or "DOCKER_HOST" in os.environ


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server's maintenance database (`postgres`)."""
    explicit = os.environ.get("WASTATE_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if _port_open("127.0.0.1", 5432):
        yield LOCAL_POSTGRES
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    service_missing("PostgreSQL")


@pytest.fixture(scope="session")
def postgres_admin(postgres_server_url: str) -> Callable[[str], None]:
    """Run one statement on the server's maintenance database, in autocommit."""

    def run(sql: str) -> None:
        try:
            with psycopg.connect(_psycopg_dsn(postgres_server_url), autocommit=True) as conn:
                conn.execute(sql)  # type: ignore[arg-type]
        except psycopg.OperationalError:
            service_missing("PostgreSQL")

    return run


@pytest.fixture(scope="session")
def make_postgres_database(
    postgres_server_url: str, postgres_admin: Callable[[str], None]
) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases on the PostgreSQL server; all dropped at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"wastate_test_{RUN_ID}_{len(created)}"
        postgres_admin(f'CREATE DATABASE "{name}"')
        created.append(name)
        return (
            make_url(postgres_server_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )

    yield make
    for name in created:
        with contextlib.suppress(Exception):
            postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(make_postgres_database: Callable[[], str]) -> str:
    """A PostgreSQL database of this test run, migrated to head (shared; isolate by tenant)."""
    url = make_postgres_database()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file database of this test run, migrated to head (shared; isolate by tenant)."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "wastate.db"
    url = f"sqlite:///{path}"
    migrate(url)
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each migrated test database in turn: the same test runs on PostgreSQL and SQLite."""
    fixture = "postgres_url" if request.param == "postgresql" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis db index claimed by this test run alone (flushed before use)."""
    base = os.environ.get("WASTATE_TEST_REDIS_URL")
    if not base:
        if _port_open("127.0.0.1", 6379):
            base = LOCAL_REDIS
        elif _docker_available():
            yield from _redis_container()
            return
        else:
            service_missing("Redis")
            return
    yield from _claim_redis_db(base)


def _redis_container() -> Iterator[str]:
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7-alpine") as container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/1"


def _claim_redis_db(base: str) -> Iterator[str]:
    url = make_url(base.replace("redis://", "redis+x://", 1))  # parse host/port only
    host, port = url.host or "127.0.0.1", url.port or 6379
    try:
        admin = redis.Redis(host=host, port=port, db=0, socket_timeout=2)
        admin.ping()
    except redis.RedisError:
        service_missing("Redis")
        return
    lock_value = f"{os.getpid()}:{RUN_ID}"
    for index in range(1, 16):
        if admin.set(f"wastate-test-lock:{index}", lock_value, nx=True, ex=3600):
            break
    else:
        pytest.fail("no free Redis db index for this test run (1-15 all claimed)")
    redis.Redis(host=host, port=port, db=index).flushdb()
    try:
        yield f"redis://{host}:{port}/{index}"
    finally:
        if admin.get(f"wastate-test-lock:{index}") == lock_value.encode():
            admin.delete(f"wastate-test-lock:{index}")
        admin.close()


@pytest.fixture
def tenant() -> str:
    """A tenant id no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_store() -> Iterator[Callable[..., wastate.Store]]:
    """A factory of stores (closed at the end of the test)."""
    stores: list[wastate.Store] = []

    def make(database_url: str, cache_url: str = "none://", **options: Any) -> wastate.Store:
        store = wastate.connect(database_url, cache_url, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., wastate.Store], database_url: str) -> wastate.Store:
    """A store on each test database in turn, with no cache."""
    return make_store(database_url)
