"""Housekeeping use-cases: purge and expire in batches, with an exact dry run.

Each batch is its own unit of work, so a large purge never holds long locks. A dry run does the
same work in one transaction and rolls it back: its counts are exact (they are what the real run
would delete, at that moment) and nothing changes. The shells only show progress and results:
`wastate purge` / `wastate expire` drain the iterators returned here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wastate.store import Store
    from wastate.uow import UnitOfWork

__all__ = ["PURGE_KINDS", "Step", "batches", "expire_batches", "purge_batches"]

Step = Callable[["UnitOfWork"], int]
"""One batch of work in a unit of work: how many rows it handled (0 when done)."""

PURGE_KINDS = ("mappings", "trackingRows", "parkedStatusEvents")
"""What `purge` deletes, in order: closed/expired mappings, old tracking rows, stale parked
status events (the keys of `purge_batches`, and of the CLI's JSON)."""


def batches(store: Store, tenant_id: str, step: Step, *, dry_run: bool = False) -> Iterator[int]:
    """Run `step(uow)` in its own unit of work until it returns 0; yield each batch's count.

    A dry run does all the work in one transaction and rolls it back: the counts are exact and
    nothing changes.
    """
    if dry_run:
        with store.unit_of_work(tenant_id) as uow:
            try:
                while (count := step(uow)) > 0:
                    yield count
            finally:
                uow.rollback()
        return
    while True:
        with store.unit_of_work(tenant_id) as uow:
            count = step(uow)
        if count <= 0:
            return
        yield count


def _purge_steps(older_than: timedelta, batch_size: int) -> dict[str, Step]:
    return {
        "mappings": lambda uow: len(uow.mappings.purge_batch(older_than, limit=batch_size)),
        "trackingRows": lambda uow: int(uow.messages.purge(older_than, limit=batch_size)),
        "parkedStatusEvents": lambda uow: int(
            uow.messages.purge_pending(older_than, limit=batch_size)
        ),
    }


def purge_batches(
    store: Store, tenant_id: str, older_than: timedelta, *, batch_size: int, dry_run: bool = False
) -> dict[str, Iterator[int]]:
    """Per kind (`PURGE_KINDS`, in order), the batch counts of deleting what closed, was created
    or was parked longer than `older_than` ago. Each iterator does its work as it is drained."""
    steps = _purge_steps(older_than, batch_size)
    return {kind: batches(store, tenant_id, steps[kind], dry_run=dry_run) for kind in PURGE_KINDS}


def expire_batches(
    store: Store, tenant_id: str, idle: timedelta, *, batch_size: int
) -> Iterator[int]:
    """The batch counts of expiring active mappings idle for longer than `idle`."""
    return batches(
        store, tenant_id, lambda uow: len(uow.mappings.expire_batch(idle, limit=batch_size))
    )
