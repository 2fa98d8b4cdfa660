"""The unit of work: one tenant, commit on clean exit, rollback on error, post-commit hooks."""

from __future__ import annotations

import logging

import pytest

import wastate


class Boom(Exception):
    """Raised by a test to force a rollback."""


def test_a_clean_exit_commits(store: wastate.Store, tenant: str) -> None:
    """What a unit of work wrote is visible to the next one after a clean exit."""
    with store.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create("+14155551000")
        assert uow.in_transaction
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155551000") == created


def test_an_exception_rolls_everything_back(store: wastate.Store, tenant: str) -> None:
    """Nothing escapes a unit of work left by an exception."""
    with pytest.raises(Boom), store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155551001")
        raise Boom
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155551001") is None


def test_explicit_rollback_then_commit_keeps_only_later_work(
    store: wastate.Store, tenant: str
) -> None:
    """rollback() drops earlier writes; the unit of work stays usable and commits later ones."""
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155551002")
        uow.rollback()
        assert not uow.in_transaction
        uow.mappings.get_or_create("+14155551003")
        uow.commit()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155551002") is None
        assert uow.mappings.by_wa_id("+14155551003") is not None


def test_post_commit_callbacks_run_after_commit_only(store: wastate.Store, tenant: str) -> None:
    """Callbacks wait for the commit, and a rollback discards them."""
    ran: list[str] = []
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155551004")
        uow.after_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    with pytest.raises(Boom), store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155551005")
        uow.after_commit(lambda: ran.append("rolled back"))
        raise Boom
    assert ran == ["committed"]


def test_a_callback_outside_a_transaction_runs_at_once(store: wastate.Store, tenant: str) -> None:
    """With no transaction open there is nothing to wait for."""
    ran: list[int] = []
    with store.unit_of_work(tenant) as uow:
        uow.after_commit(lambda: ran.append(1))
        assert ran == [1]


def test_a_failing_callback_does_not_fail_the_committed_call(
    store: wastate.Store, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cache upkeep after commit may fail; the data is committed and the call succeeds."""

    def broken() -> None:
        raise RuntimeError("cache exploded")

    with caplog.at_level(logging.ERROR), store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+14155551006")
        uow.after_commit(broken)
    assert "post-commit callback failed" in caplog.text
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+14155551006") is not None


def test_reads_open_no_transaction(store: wastate.Store, tenant: str) -> None:
    """A read-only unit of work never begins a transaction."""
    with store.unit_of_work(tenant) as uow:
        uow.mappings.by_wa_id("+14155551007")
        uow.mappings.by_conversation("no-such-conversation")
        assert not uow.in_transaction


def test_a_unit_of_work_borrows_a_connection_only_when_needed(
    store: wastate.Store, tenant: str
) -> None:
    """Entering a unit of work costs no connection; the first query borrows one."""
    pool = store.engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    with store.unit_of_work(tenant) as uow:
        assert pool.checkedout() == before  # type: ignore[attr-defined]
        uow.mappings.by_wa_id("+14155551008")
        assert pool.checkedout() == before + 1  # type: ignore[attr-defined]
    assert pool.checkedout() == before  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["", " space", "x" * 65, "tenant/with/slash", "{brace}"])
def test_a_malformed_tenant_is_refused(store: wastate.Store, bad: str) -> None:
    """Tenant ids are validated before anything touches the database."""
    with pytest.raises(wastate.InvalidInput) as caught:
        store.unit_of_work(bad)
    assert caught.value.field == "tenant_id"
