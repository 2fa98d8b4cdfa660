"""`wastate.testing.FakeStore` keeps the real repository's rules: one set of behaviour checks
runs against the fake and against real stores (PostgreSQL and SQLite, with and without cache)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import FakeClock

import wastate
from wastate.errors import Conflict, InvalidInput
from wastate.testing import FakeStore

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["fake", "sql-none", "sql-memory"])
def subject(
    request: pytest.FixtureRequest, make_store: Callable[..., wastate.Store]
) -> tuple[Any, FakeClock]:
    """A store (fake or real) and the clock it reads."""
    clock = FakeClock(START)
    if request.param == "fake":
        return FakeStore(clock=clock), clock
    database_url = request.getfixturevalue("sqlite_url")
    cache_url = "none://" if request.param == "sql-none" else "memory://"
    return make_store(database_url, cache_url, clock=clock), clock


@pytest.fixture
def on_postgres(make_store: Callable[..., wastate.Store], postgres_url: str) -> Any:
    return make_store(postgres_url, "memory://", clock=FakeClock(START))


def new_tenant() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def check_spellings_unify_and_bad_ids_write_nothing(store: Any) -> None:
    tenant = new_tenant()
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create("+919876543210")
        for spelling in ("919876543210", "919876543210@c.us", "919876543210@s.whatsapp.net"):
            assert uow.mappings.get_or_create(spelling) == first
        assert uow.mappings.get_or_create("US.13491208655302741918").wa_id == (
            "US.13491208655302741918"
        )
        for bad in ("", "abc", "+0123", "1" * 200):
            with pytest.raises(InvalidInput):
                uow.mappings.get_or_create(bad)
        with pytest.raises(InvalidInput):
            uow.mappings.by_conversation("has space")
    assert first.wa_id == "+919876543210"


def check_close_starts_a_new_conversation(store: Any) -> None:
    tenant = new_tenant()
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create("+15550001111", contact_name=" Ravi \n Kumar ")
        assert first.contact_name == "Ravi Kumar"
        closed = uow.mappings.close("+15550001111")
        assert closed is not None
        assert closed.status == "closed"
        assert uow.mappings.close("+15550001111") is None
        second = uow.mappings.get_or_create("+15550001111")
        assert second.conversation_id != first.conversation_id
        reverse = uow.mappings.by_conversation(first.conversation_id)
        assert reverse is not None
        assert reverse.status == "closed"
        renamed = uow.mappings.get_or_create("+15550001111", contact_name="New")
        assert renamed.contact_name == "New"
        assert uow.mappings.by_conversation("nope") is None


def check_correlation_happens_once(store: Any) -> None:
    tenant = new_tenant()
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+15550002222")
        done = uow.mappings.correlate("+15550002222", "cc-1")
        assert done.conversation_id == "cc-1"
        assert uow.mappings.correlate("+15550002222", "cc-1") == done
        with_comm = uow.mappings.correlate("+15550002222", "cc-1", "comm-1")
        assert with_comm.communication_id == "comm-1"
        with pytest.raises(Conflict):
            uow.mappings.correlate("+15550002222", "cc-2")
        with pytest.raises(Conflict):
            uow.mappings.correlate("+15550002222", "cc-1", "comm-2")
        started = uow.mappings.correlate("+15550003333", "cc-3")  # contact center starts
        assert started.is_active
        assert uow.mappings.by_wa_id("+15550003333") == started


def check_rollback_and_tenants(store: Any) -> None:
    one, two = new_tenant(), new_tenant()
    ran: list[str] = []
    uow = store.unit_of_work(one)
    doomed = uow.mappings.get_or_create("+15550004444")
    uow.after_commit(lambda: ran.append("committed"))
    uow.rollback()
    uow.close()
    assert ran == []
    with store.unit_of_work(one) as uow:
        assert uow.mappings.by_wa_id("+15550004444") is None
        assert uow.mappings.by_conversation(doomed.conversation_id) is None
        mine = uow.mappings.get_or_create("+15550004444")
    with store.unit_of_work(two) as uow:
        assert uow.mappings.by_wa_id("+15550004444") is None
        assert uow.mappings.get_or_create("+15550004444").conversation_id != mine.conversation_id


def check_expire_and_purge(store: Any, clock: FakeClock) -> None:
    tenant = new_tenant()
    with store.unit_of_work(tenant) as uow:
        old = uow.mappings.get_or_create("+15550005555")
    clock.now += timedelta(hours=2)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+15550006666")
        with pytest.raises(InvalidInput):
            uow.mappings.expire_idle(timedelta(0))
        assert uow.mappings.expire_idle(timedelta(hours=1)) == 1
        expired = uow.mappings.by_conversation(old.conversation_id)
        assert expired is not None
        assert expired.status == "expired"
    clock.now += timedelta(hours=2)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.purge(timedelta(hours=1)) == 1
        assert uow.mappings.by_conversation(old.conversation_id) is None


CHECKS = [
    check_spellings_unify_and_bad_ids_write_nothing,
    check_close_starts_a_new_conversation,
    check_correlation_happens_once,
    check_rollback_and_tenants,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__[6:])
def test_the_fake_and_the_real_repository_obey_the_same_rules(
    subject: tuple[Any, FakeClock], check: Callable[[Any], None]
) -> None:
    """Each behaviour check passes on the fake and on the real store alike."""
    check(subject[0])


def test_the_fake_and_the_real_repository_expire_and_purge_alike(
    subject: tuple[Any, FakeClock],
) -> None:
    """Idle mappings expire and old closed ones are purged, by the store's clock."""
    check_expire_and_purge(*subject)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__[6:])
def test_the_checks_hold_on_postgresql_too(on_postgres: Any, check: Callable[[Any], None]) -> None:
    """The same checks on PostgreSQL (with the memory cache)."""
    check(on_postgres)


def test_the_fake_says_plainly_what_it_does_not_fake() -> None:
    """Reaching for an unfaked repository names the limit instead of failing obscurely."""
    with FakeStore().unit_of_work("t") as uow, pytest.raises(NotImplementedError, match="messages"):
        uow.messages  # noqa: B018
