"""The mapping repository on PostgreSQL and SQLite, with no cache: the data rules themselves."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from helpers import FakeClock
from sqlalchemy import func, select

import wastate
from wastate.db.tables import ConversationMappingRow
from wastate.domain.mappings import MappingStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def count_rows(store: wastate.Store, tenant: str, **where: str) -> int:
    table = ConversationMappingRow.__table__
    statement = select(func.count()).select_from(table).where(table.c.tenant_id == tenant)
    for column, value in where.items():
        statement = statement.where(table.c[column] == value)
    with store.engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def test_get_or_create_creates_once_and_then_returns_the_same_mapping(
    store: wastate.Store, tenant: str
) -> None:
    """The first call creates a conversation; later calls (any spelling) return it."""
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create("+919876543210")
    with store.unit_of_work(tenant) as uow:
        spellings = ["919876543210", "919876543210@c.us", "919876543210@s.whatsapp.net"]
        again = [uow.mappings.get_or_create(spelling) for spelling in spellings]
    assert first.wa_id == "+919876543210"
    assert first.tenant_id == tenant
    assert first.status is MappingStatus.ACTIVE
    assert {m.conversation_id for m in again} == {first.conversation_id}
    assert count_rows(store, tenant) == 1


def test_times_are_timezone_aware_utc(store: wastate.Store, tenant: str) -> None:
    """Every timestamp handed back is aware UTC, on SQLite too."""
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.get_or_create("+14155550100")
    assert mapping.created_at.utcoffset() == timedelta(0)
    assert mapping.last_activity_at.utcoffset() == timedelta(0)


def test_forward_and_reverse_lookups_agree(store: wastate.Store, tenant: str) -> None:
    """by_conversation finds the mapping get_or_create made; by_wa_id never creates."""
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155550101") is None
        mapping = uow.mappings.get_or_create("+14155550101", contact_name="Ada")
        assert uow.mappings.by_conversation(mapping.conversation_id) == mapping
        assert uow.mappings.by_wa_id("14155550101") == mapping
    assert count_rows(store, tenant) == 1


def test_a_changed_contact_name_is_stored(store: wastate.Store, tenant: str) -> None:
    """A new profile name replaces the old one; None leaves it alone."""
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155550102", contact_name="Ada")
        uow.mappings.get_or_create("+14155550102")
        renamed = uow.mappings.get_or_create("+14155550102", contact_name="Ada  Lovelace\n")
    assert renamed.contact_name == "Ada Lovelace"
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155550102").contact_name == "Ada Lovelace"  # type: ignore[union-attr]


def test_business_scoped_user_ids_are_accepted_as_they_are(
    store: wastate.Store, tenant: str
) -> None:
    """A BSUID (`CC.` + letters/digits) is a user key of its own."""
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.get_or_create("US.13491208655302741918")
    assert mapping.wa_id == "US.13491208655302741918"


@pytest.mark.parametrize(
    "bad", ["", "   ", "12", "+0123456789", "abc", "9" * 16, "919876543210@g.us", "x" * 200]
)
def test_malformed_wa_ids_are_refused_and_nothing_is_written(
    store: wastate.Store, tenant: str, bad: str
) -> None:
    """Empty, short, long or malformed ids raise InvalidInput naming wa_id; no row appears."""
    with pytest.raises(wastate.InvalidInput) as caught, store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create(bad)
    assert caught.value.field == "wa_id"
    assert count_rows(store, tenant) == 0


def test_close_lets_the_next_message_start_a_new_conversation(
    store: wastate.Store, tenant: str
) -> None:
    """After close, get_or_create makes a second conversation; the first stays findable."""
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create("+14155550103")
        closed = uow.mappings.close("+14155550103")
        assert uow.mappings.close("+14155550103") is None
        second = uow.mappings.get_or_create("+14155550103")
    assert closed is not None
    assert closed.status is MappingStatus.CLOSED
    assert closed.closed_at is not None
    assert second.conversation_id != first.conversation_id
    with store.unit_of_work(tenant) as uow:
        old = uow.mappings.by_conversation(first.conversation_id)
    assert old is not None
    assert old.status is MappingStatus.CLOSED
    assert count_rows(store, tenant, status="active") == 1


def test_correlate_sets_the_contact_center_id_once(store: wastate.Store, tenant: str) -> None:
    """Correlate replaces the generated id; the same id again is a no-op; another is a Conflict."""
    with store.unit_of_work(tenant) as uow:
        generated = uow.mappings.get_or_create("+14155550104")
        correlated = uow.mappings.correlate("+14155550104", "genesys-conv-1", "comm-1")
        again = uow.mappings.correlate("14155550104", "genesys-conv-1")
    assert correlated.conversation_id == "genesys-conv-1"
    assert correlated.communication_id == "comm-1"
    assert correlated.correlated_at is not None
    assert again == correlated
    with pytest.raises(wastate.Conflict), store.unit_of_work(tenant) as uow:
        uow.mappings.correlate("+14155550104", "genesys-conv-2")
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_conversation(generated.conversation_id) is None
        assert uow.mappings.by_conversation("genesys-conv-1") == correlated


def test_correlate_without_a_mapping_creates_one_with_that_id(
    store: wastate.Store, tenant: str
) -> None:
    """An outbound-first conversation: the contact center's id becomes the mapping's id."""
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.correlate("+14155550105", "genesys-conv-9")
        assert uow.mappings.get_or_create("+14155550105") == mapping
    assert mapping.conversation_id == "genesys-conv-9"


def test_one_conversation_id_cannot_belong_to_two_users(store: wastate.Store, tenant: str) -> None:
    """Correlating a second user with a taken conversation id is a Conflict."""
    with store.unit_of_work(tenant) as uow:
        uow.mappings.correlate("+14155550106", "genesys-conv-7")
    with pytest.raises(wastate.Conflict), store.unit_of_work(tenant) as uow:
        uow.mappings.correlate("+14155550107", "genesys-conv-7")
    assert count_rows(store, tenant, wa_id="+14155550107") == 0


def test_expire_idle_expires_only_idle_active_mappings(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Idle mappings expire in batches; recent ones stay; the count is returned."""
    clock = FakeClock(T0)
    store = make_store(database_url, clock=clock)
    with store.unit_of_work(tenant) as uow:
        for n in range(5):
            uow.mappings.get_or_create(f"+1415555020{n}")
    clock.now += timedelta(hours=2)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155550299")
        expired = uow.mappings.expire_idle(timedelta(hours=1), limit=None)
    assert expired == 5
    assert count_rows(store, tenant, status="expired") == 5
    assert count_rows(store, tenant, status="active") == 1
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155550200") is None


def test_purge_deletes_only_old_closed_mappings(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Purge removes closed/expired history older than the cut-off, never active mappings."""
    clock = FakeClock(T0)
    store = make_store(database_url, clock=clock)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155550300")
        uow.mappings.close("+14155550300")
        uow.mappings.get_or_create("+14155550300")
    clock.now += timedelta(days=100)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.purge(timedelta(days=90)) == 1
    assert count_rows(store, tenant) == 1
    assert count_rows(store, tenant, status="active") == 1


def test_a_batch_never_exceeds_its_limit(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """expire_batch/purge_batch touch at most `limit` rows, oldest first. (On PostgreSQL a
    `WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` subquery re-run per row took more.)"""
    clock = FakeClock(T0)
    store = make_store(database_url, clock=clock)
    with store.unit_of_work(tenant) as uow:
        for n in range(6):
            uow.mappings.get_or_create(f"+1415555040{n}")
            clock.now += timedelta(minutes=1)
    clock.now += timedelta(hours=2)
    with store.unit_of_work(tenant) as uow:
        expired = uow.mappings.expire_batch(timedelta(hours=1), limit=2)
    assert sorted(m.wa_id for m in expired) == ["+14155550400", "+14155550401"]
    assert count_rows(store, tenant, status="expired") == 2
    with store.unit_of_work(tenant) as uow:
        assert len(uow.mappings.expire_batch(timedelta(hours=1), limit=10)) == 4
    clock.now += timedelta(days=100)
    with store.unit_of_work(tenant) as uow:
        assert len(uow.mappings.purge_batch(timedelta(days=90), limit=3)) == 3
    assert count_rows(store, tenant) == 3


@pytest.mark.parametrize("age", [timedelta(0), timedelta(seconds=-1)])
def test_maintenance_refuses_a_non_positive_age(
    store: wastate.Store, tenant: str, age: timedelta
) -> None:
    """expire_idle/purge with a zero or negative age is InvalidInput, not 'everything'."""
    with store.unit_of_work(tenant) as uow:
        with pytest.raises(wastate.InvalidInput):
            uow.mappings.expire_idle(age)
        with pytest.raises(wastate.InvalidInput):
            uow.mappings.purge(age)


def test_tenants_never_see_each_other(store: wastate.Store, tenant: str) -> None:
    """One wa_id in two tenants: two conversations, and no lookup crosses over."""
    other = tenant + "-other"
    with store.unit_of_work(tenant) as uow:
        mine = uow.mappings.get_or_create("+14155550400")
    with store.unit_of_work(other) as uow:
        theirs = uow.mappings.get_or_create("+14155550400")
        assert uow.mappings.by_conversation(mine.conversation_id) is None
        assert uow.mappings.close("+14155550400") is not None
    assert mine.conversation_id != theirs.conversation_id
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155550400") == mine
        assert uow.mappings.by_conversation(theirs.conversation_id) is None


def test_concurrent_first_messages_make_one_conversation(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Sixteen threads racing on a new wa_id all get the same conversation."""
    store = make_store(database_url, pool_size=16)
    barrier = threading.Barrier(16)
    seen: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            with store.unit_of_work(tenant) as uow:
                seen.append(uow.mappings.get_or_create("+14155550500").conversation_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(seen) == 16
    assert len(set(seen)) == 1
    assert count_rows(store, tenant) == 1


def test_activity_is_coalesced_and_flushed_on_close(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Many uses of a mapping become one pending write, written by Store.close()."""
    clock = FakeClock(T0)
    store = make_store(database_url, clock=clock, activity_flush_seconds=3600)
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.get_or_create("+14155550600")
    clock.now += timedelta(hours=3)
    for _ in range(50):
        store._activity.record(mapping)
    assert store._activity.pending() == 1
    store.close()
    reopened = make_store(database_url)
    with reopened.unit_of_work(tenant) as uow:
        refreshed = uow.mappings.by_wa_id("+14155550600")
    assert refreshed is not None
    assert refreshed.last_activity_at == clock.now


def test_activity_never_moves_backwards(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """A late flush with an older time leaves a newer last_activity_at alone."""
    clock = FakeClock(T0)
    store = make_store(database_url, clock=clock, activity_flush_seconds=3600)
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.get_or_create("+14155550601")
    clock.now += timedelta(hours=2)
    store._activity.record(mapping)
    assert store._activity.flush() == 1
    clock.now -= timedelta(hours=1)
    store._activity.record(mapping)
    store._activity.flush()
    with store.unit_of_work(tenant) as uow:
        current = uow.mappings.by_wa_id("+14155550601")
    assert current is not None
    assert current.last_activity_at == mapping.created_at + timedelta(hours=2)


def test_pending_activity_saves_a_mapping_from_expiry_inside_a_transaction(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """A mapping used moments ago is not expired, even by a unit of work that already wrote."""
    clock = FakeClock(T0)
    store = make_store(database_url, clock=clock, activity_flush_seconds=3600)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155550700")
        uow.mappings.get_or_create("+14155550701")
    clock.now += timedelta(hours=2)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155550700") is not None  # used now: activity pending
    assert store._activity.pending() == 1
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155550702")  # a write: the transaction is open
        assert uow.mappings.expire_idle(timedelta(hours=1)) == 1
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155550700") is not None
        assert uow.mappings.by_wa_id("+14155550701") is None
    assert store._activity.pending() == 0


def test_activity_recorded_before_a_correlate_still_lands(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Activity is keyed by user, so a correlate that renames the conversation loses nothing."""
    clock = FakeClock(T0)
    store = make_store(database_url, clock=clock, activity_flush_seconds=3600)
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.get_or_create("+14155550710")
    clock.now += timedelta(hours=1)
    store._activity.record(mapping)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.correlate("+14155550710", "genesys-conv-710")
    assert store._activity.flush() == 1
    with store.unit_of_work(tenant) as uow:
        refreshed = uow.mappings.by_conversation("genesys-conv-710")
    assert refreshed is not None
    assert refreshed.last_activity_at == clock.now
