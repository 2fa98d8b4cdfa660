"""A unit of work never lies: a caught error keeps every earlier write, a failed call is undone
whole, an aborted transaction never reports success, COMMIT is checked, and a COMMIT whose outcome
is unknown invalidates the cache instead of filling it — on PostgreSQL exactly as on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import text

import wastate
from wastate.errors import Conflict, ServiceUnavailable, TransactionAborted, WastateError
from wastate.repositories.base import Database, atomic


class Boom(WastateError):
    """A failure raised in the middle of a repository call."""


class _TwoWrites:
    """A repository (over the real database) whose call writes twice, then may fail."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @atomic
    def run(self, key: str, *, fail: bool, callback: Callable[[], None] | None = None) -> None:
        for suffix in ("a", "b"):
            self._db.write(
                text(
                    "INSERT INTO config_entries (tenant_id, client_id, key, value, updated_at)"
                    " VALUES (:t, 'c', :k, '1', CURRENT_TIMESTAMP)"
                ),
                {"t": self._db.tenant_id, "k": key + suffix},
            )
        if callback is not None:
            self._db.after_commit(callback)
        if fail:
            raise Boom("failed after two writes")


def _config_keys(store: wastate.Store, tenant: str) -> set[str]:
    with store.unit_of_work(tenant) as uow:
        return set(uow.config.all("c"))


def _tracked(store: wastate.Store, tenant: str, message_id: str) -> bool:
    with store.unit_of_work(tenant) as uow:
        return uow.messages.get(message_id) is not None


def _backend_pid(uow: wastate.UnitOfWork) -> int:
    pid: int = uow._db._driver().info.backend_pid
    return pid


@pytest.fixture
def terminate(postgres_admin: Callable[[str], None]) -> Callable[[int], None]:
    """Kill one PostgreSQL backend, as a crash or a failover would."""
    return lambda pid: postgres_admin(f"SELECT pg_terminate_backend({int(pid)})")


def test_a_caught_conflict_keeps_every_earlier_write(store: wastate.Store, tenant: str) -> None:
    """The issue's example: a Conflict caught inside the block loses nothing on either database."""
    with store.unit_of_work(tenant) as uow:
        other = uow.mappings.get_or_create("+919800000001").conversation_id
    with store.unit_of_work(tenant) as uow:
        uow.messages.track({"meta_message_id": "wamid.keep-me", "direction": "inbound"})
        uow.mappings.get_or_create("+919800000002")
        with pytest.raises(Conflict):
            uow.mappings.correlate("+919800000002", other)
        uow.messages.track({"meta_message_id": "wamid.after", "direction": "outbound"})
    assert _tracked(store, tenant, "wamid.keep-me")
    assert _tracked(store, tenant, "wamid.after")
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.by_wa_id("+919800000002")
        assert mapping is not None
        assert mapping.conversation_id != other


def test_a_failed_call_is_undone_whole_and_the_unit_of_work_goes_on(
    store: wastate.Store, tenant: str
) -> None:
    """Both writes of a failing call vanish; the calls before and after it commit."""
    ran: list[str] = []
    with store.unit_of_work(tenant) as uow:
        repository = _TwoWrites(uow._db)
        repository.run("before-", fail=False, callback=lambda: ran.append("before"))
        with pytest.raises(Boom):
            repository.run("failed-", fail=True, callback=lambda: ran.append("failed"))
        assert uow.in_transaction
        repository.run("after-", fail=False)
    assert _config_keys(store, tenant) == {"before-a", "before-b", "after-a", "after-b"}
    assert ran == ["before"], "a failed call's post-commit work must be dropped"


def test_a_failing_first_call_leaves_no_transaction_behind(
    store: wastate.Store, tenant: str
) -> None:
    """A call that opened the transaction and failed rolls it back; later work commits alone."""
    with store.unit_of_work(tenant) as uow:
        repository = _TwoWrites(uow._db)
        with pytest.raises(Boom):
            repository.run("failed-", fail=True)
        assert not uow.in_transaction
        repository.run("later-", fail=False)
    assert _config_keys(store, tenant) == {"later-a", "later-b"}


def test_a_statement_failing_outside_a_call_aborts_the_unit_of_work(
    store: wastate.Store, tenant: str
) -> None:
    """Nothing smaller than the transaction can be undone there: every later statement and the
    clean exit raise TransactionAborted, and nothing is committed; rollback() makes it usable."""
    with pytest.raises(TransactionAborted), store.unit_of_work(tenant) as uow:
        uow.messages.track({"meta_message_id": "wamid.lost", "direction": "inbound"})
        with pytest.raises(WastateError):
            uow._db.read(text("SELECT * FROM no_such_table"))
        with pytest.raises(TransactionAborted):
            uow.messages.get("wamid.lost")
        with pytest.raises(TransactionAborted):
            uow.mappings.get_or_create("+919800000003")
    assert not _tracked(store, tenant, "wamid.lost")
    with store.unit_of_work(tenant) as uow:
        uow.messages.track({"meta_message_id": "wamid.first", "direction": "inbound"})
        with pytest.raises(WastateError):
            uow._db.read(text("SELECT * FROM no_such_table"))
        uow.rollback()
        uow.messages.track({"meta_message_id": "wamid.second", "direction": "inbound"})
    assert not _tracked(store, tenant, "wamid.first")
    assert _tracked(store, tenant, "wamid.second")


@pytest.mark.postgres
def test_a_commit_answered_with_rollback_is_not_reported_as_success(
    make_store: Callable[..., wastate.Store], postgres_url: str, tenant: str
) -> None:
    """PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK, not an error: checked."""
    store = make_store(postgres_url)
    with pytest.raises(TransactionAborted), store.unit_of_work(tenant) as uow:
        uow.messages.track({"meta_message_id": "wamid.ghost", "direction": "inbound"})
        driver = uow._db._driver()  # a failure the unit of work never heard of
        with pytest.raises(psycopg.Error):
            driver.execute("SELECT * FROM no_such_table")
    assert not _tracked(store, tenant, "wamid.ghost")


@pytest.mark.postgres
def test_a_connection_lost_mid_transaction_never_commits_the_later_writes(
    make_store: Callable[..., wastate.Store],
    postgres_url: str,
    tenant: str,
    terminate: Callable[[int], None],
) -> None:
    """Once the transaction is gone, later writes must not quietly start and commit a new one."""
    store = make_store(postgres_url)
    with pytest.raises(TransactionAborted), store.unit_of_work(tenant) as uow:
        uow.messages.track({"meta_message_id": "wamid.early", "direction": "inbound"})
        terminate(_backend_pid(uow))
        with pytest.raises(ServiceUnavailable):
            uow.messages.track({"meta_message_id": "wamid.late", "direction": "inbound"})
        with pytest.raises(TransactionAborted):
            uow.messages.track({"meta_message_id": "wamid.later", "direction": "inbound"})
    for message_id in ("wamid.early", "wamid.late", "wamid.later"):
        assert not _tracked(store, tenant, message_id)


@pytest.mark.postgres
def test_a_dead_pooled_connection_is_replaced_and_the_read_retried(
    make_store: Callable[..., wastate.Store],
    postgres_url: str,
    tenant: str,
    terminate: Callable[[int], None],
) -> None:
    """A connection the server closed while it sat in the pool costs a retry, not an error."""
    store = make_store(postgres_url, pool_size=1)
    with store.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create("+919800000004")
        pid = _backend_pid(uow)
    terminate(pid)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+919800000004") == created
        assert _backend_pid(uow) != pid
    terminate(_backend_pid_of(store, tenant))
    with store.unit_of_work(tenant) as uow:  # the first write of a transaction too
        uow.messages.track({"meta_message_id": "wamid.retried", "direction": "inbound"})
    assert _tracked(store, tenant, "wamid.retried")


def _backend_pid_of(store: wastate.Store, tenant: str) -> int:
    with store.unit_of_work(tenant) as uow:
        uow.mappings.by_wa_id("+919800000004")
        return _backend_pid(uow)


@pytest.mark.postgres
@pytest.mark.redis
def test_an_unknown_commit_outcome_raises_and_invalidates_instead_of_filling(
    make_store: Callable[..., wastate.Store],
    postgres_url: str,
    redis_url: str,
    tenant: str,
    terminate: Callable[[int], None],
) -> None:
    """The connection dies at COMMIT: the caller hears ServiceUnavailable, and no cache (Redis
    or the near cache) holds anything the unit of work touched — neither the close nor the new
    mapping, whichever way the commit went."""
    store = make_store(postgres_url, redis_url)
    cache = store._mapping_cache
    with store.unit_of_work(tenant) as uow:
        kept = uow.mappings.get_or_create("+919800000005")
    with store.unit_of_work(tenant) as uow:  # a read fills the cache
        assert uow.mappings.by_wa_id("+919800000005") == kept
    cache.settle()
    client = redis.Redis.from_url(redis_url)
    prefix = cache.keys.tenant_prefix(tenant)
    assert any(True for _ in client.scan_iter(match=prefix + "*")), "the cache was not filled"

    uow = store.unit_of_work(tenant)
    uow.mappings.close("+919800000005")
    fresh = uow.mappings.get_or_create("+919800000006")
    terminate(_backend_pid(uow))
    with pytest.raises(ServiceUnavailable, match="unknown"):
        uow.commit()
    uow.close()
    cache.settle()
    cached = [cache.parse(client.get(key) or b"") for key in client.scan_iter(match=prefix + "*")]
    assert [mapping for mapping in cached if mapping is not None] == []  # tombstones at most
    near: Any = cache.near
    assert near is None or not [k for k in near._data if k.startswith(prefix)]
    with store.unit_of_work(tenant) as uow:  # the database is the truth: nothing committed
        assert uow.mappings.by_wa_id("+919800000005") == kept
        assert uow.mappings.by_conversation(fresh.conversation_id) is None
