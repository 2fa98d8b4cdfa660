"""Purging old tracking rows: oldest first, in batches, with their history, within one tenant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import wastate


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def track(uow: wastate.UnitOfWork, wamid: str) -> None:
    uow.messages.track(
        wastate.NewMessage(meta_message_id=wamid, direction="outbound", status="sent")
    )
    uow.messages.update_status(wamid, "delivered")


def test_purge_deletes_old_messages_with_their_history_only(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Messages older than the cut-off go, history included; younger ones and other tenants stay."""
    clock = Clock()
    store = make_store(database_url, clock=clock)
    other = tenant + "-other"
    with store.unit_of_work(tenant) as uow:
        for n in range(5):
            track(uow, f"wamid.old{n}")
    with store.unit_of_work(other) as uow:
        track(uow, "wamid.old0")
    clock.now += timedelta(days=100)
    with store.unit_of_work(tenant) as uow:
        track(uow, "wamid.young")
        assert uow.messages.purge(timedelta(days=90), limit=2) == 2
        assert uow.messages.purge(timedelta(days=90)) == 3
        assert uow.messages.purge(timedelta(days=90)) == 0
    with store.unit_of_work(tenant) as uow:
        assert all(uow.messages.get(f"wamid.old{n}") is None for n in range(5))
        assert uow.messages.history("wamid.old0") == []
        assert uow.messages.get("wamid.young") is not None
        assert [e.status for e in uow.messages.history("wamid.young")] == ["delivered"]
    with store.unit_of_work(other) as uow:
        assert uow.messages.get("wamid.old0") is not None
        assert len(uow.messages.history("wamid.old0")) == 1


@pytest.mark.parametrize(("age", "limit"), [(timedelta(0), 10), (timedelta(days=1), 0)])
def test_purge_refuses_a_non_positive_age_or_limit(
    store: wastate.Store, tenant: str, age: timedelta, limit: int
) -> None:
    """A zero age would mean 'everything': refused, like a zero batch."""
    with pytest.raises(wastate.InvalidInput), store.unit_of_work(tenant) as uow:
        uow.messages.purge(age, limit=limit)


def test_purge_drains_every_batch_like_mappings_purge(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """`messages.purge` means what `mappings.purge` means: every batch, not just the first
    1,000 rows; `limit` caps the rows in all, and `purge_batch` is the one-statement form."""
    clock = Clock()
    store = make_store(database_url, clock=clock)
    with store.unit_of_work(tenant) as uow:
        uow.messages.track_batch(
            wastate.NewMessage(meta_message_id=f"wamid.old{n}", direction="outbound")
            for n in range(1_205)
        )
    clock.now += timedelta(days=100)
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.purge_batch(timedelta(days=90), limit=3) == 3
        assert uow.messages.purge(timedelta(days=90), limit=1_001) == 1_001
        assert uow.messages.purge(timedelta(days=90)) == 201
        assert uow.messages.purge(timedelta(days=90)) == 0


def test_purge_pending_drains_every_batch(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Parked status events drain the same way; a zero age still means all of them."""
    store = make_store(database_url)
    events = [
        wastate.StatusEvent(message_id=f"wamid.unknown{n}", status="delivered")
        for n in range(1_003)
    ]
    with store.unit_of_work(tenant) as uow:
        uow.messages.apply_status_events(events)
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.purge_pending_batch(timedelta(0), limit=2) == 2
        assert uow.messages.purge_pending(timedelta(0)) == 1_001
