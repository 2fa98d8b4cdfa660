"""Approval-lifecycle messages (seed 004) and their transition history: the SQL.

A message lives in exactly one row, in exactly one status, per (tenant, client, message id).
A move is one compare-and-set statement (`UPDATE … SET status = :to … WHERE … AND status =
:from`): of any number of racing movers (threads or processes) exactly one matches. What a move
means — the transition table, the `human_in_the_loop` guard, the history row and the statistics
increment that follow a matching move in the same transaction — is the use-case
`wastate.services.approvals.ApprovalLifecycle` (what `uow.approvals` is).

Buckets list messages in the order they entered their status (`status_changed_at`, then id), as
the seed's lists, which append on every move; the index serves both that order and its reverse.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Row,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)

from wastate.db.dialect import Dialect
from wastate.db.tables import ApprovalMessage, ApprovalTransition
from wastate.domain.lifecycle import (
    ApprovalRecord,
    ApprovalStatus,
    normalize_message_id,
    parse_message_status,
)
from wastate.domain.maintenance import require_batch_size, require_row_limit
from wastate.domain.sessions import normalize_client_id
from wastate.errors import InvalidInput
from wastate.repositories.base import Database, atomic
from wastate.repositories.upserts import precompiled_per_dialect

__all__ = ["ApprovalRepository", "Transition"]

EXPORT_BATCH_SIZE = 1000
IMPORT_BATCH_SIZE = 1000

_m = cast(Table, ApprovalMessage.__table__)
_mc = _m.c
_h = cast(Table, ApprovalTransition.__table__)
_hc = _h.c
_CLIENT = (_mc.tenant_id == bindparam("tenant_id"), _mc.client_id == bindparam("client_id"))
_COLUMNS = (_mc.message_id, _mc.status, _mc.payload, _mc.created_at, _mc.status_changed_at)


def _add(dialect: Dialect) -> Any:
    return (
        dialect.insert(_m)
        .values(
            tenant_id=bindparam("tenant_id"),
            client_id=bindparam("client_id"),
            message_id=bindparam("message_id"),
            status=bindparam("status"),
            payload=bindparam("payload", type_=_mc.payload.type),
            created_at=bindparam("created_at", type_=_mc.created_at.type),
            status_changed_at=bindparam("status_changed_at", type_=_mc.status_changed_at.type),
        )
        .on_conflict_do_nothing(index_elements=[_mc.tenant_id, _mc.client_id, _mc.message_id])
        .returning(_mc.id)
    )


_ADD = precompiled_per_dialect(_add, _mc.id)
_IMPORT = insert(_m)
_RECORD_TRANSITION = insert(_h)

_MOVE = (
    update(_m)
    .where(
        # An UPDATE reserves bind names equal to column names, hence w_*.
        _mc.tenant_id == bindparam("w_tenant_id"),
        _mc.client_id == bindparam("w_client_id"),
        _mc.message_id == bindparam("m_id"),
        _mc.status == bindparam("from_status"),
    )
    .values(status=bindparam("to_status"), status_changed_at=bindparam("at"))
    .returning(_mc.id)
)

_GET = select(*_COLUMNS).where(*_CLIENT, _mc.message_id == bindparam("m_id"))
_BUCKET = (
    select(*_COLUMNS)
    .where(*_CLIENT, _mc.status == bindparam("bucket"))
    .order_by(_mc.status_changed_at, _mc.id)
)
_BUCKET_NEWEST = (
    select(*_COLUMNS)
    .where(*_CLIENT, _mc.status == bindparam("bucket"))
    .order_by(_mc.status_changed_at.desc(), _mc.id.desc())
    .limit(bindparam("limit"))
)
_BUCKET_FIRST_PAGE = (
    select(*_COLUMNS, _mc.id)
    .where(*_CLIENT, _mc.status == bindparam("bucket"))
    .order_by(_mc.status_changed_at, _mc.id)
    .limit(bindparam("limit"))
)
_BUCKET_AFTER = (
    select(*_COLUMNS, _mc.id)
    .where(
        *_CLIENT,
        _mc.status == bindparam("bucket"),
        # Keyset pagination as a row-value comparison, which both databases answer with a range
        # scan of the bucket index (an OR of two conditions would rescan from the bucket start).
        tuple_(_mc.status_changed_at, _mc.id)
        > tuple_(
            bindparam("after_at", type_=_mc.status_changed_at.type),
            bindparam("after_id", type_=_mc.id.type),
        ),
    )
    .order_by(_mc.status_changed_at, _mc.id)
    .limit(bindparam("limit"))
)
_COUNTS = select(_mc.status, func.count()).where(*_CLIENT).group_by(_mc.status)
_CLEAR_BUCKET = delete(_m).where(*_CLIENT, _mc.status == bindparam("bucket"))
_CLEAR_ALL = delete(_m).where(*_CLIENT)
_HISTORY = (
    select(_hc.from_status, _hc.to_status, _hc.at, _hc.reason)
    .join(_m, _mc.id == _hc.approval_message_id)
    .where(*_CLIENT, _mc.message_id == bindparam("m_id"), _hc.tenant_id == bindparam("tenant_id"))
    .order_by(_hc.id)
)

Transition = tuple[ApprovalStatus | None, ApprovalStatus, datetime, str | None]
"""One history entry: (from status — None for the add —, to status, when, the reason given)."""


def _record(row: Row[Any]) -> ApprovalRecord:
    # Rows were validated on the way in; skipping validation on the way out halves export time.
    return ApprovalRecord.model_construct(
        message_id=row[0],
        status=ApprovalStatus(row[1]),
        payload=row[2],
        added_at=row[3],
        status_changed_at=row[4],
    )


class ApprovalRepository:
    """The SQL of one tenant's lifecycle messages and their history.

    What a move means — the transition table, the `human_in_the_loop` guard, the statistics it
    counts — is `wastate.services.approvals.ApprovalLifecycle`, the subclass a unit of work hands
    out as `uow.approvals`; the protected writers here take values it has already checked.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._add = _ADD[db.dialect]

    def _key(self, client_id: str) -> dict[str, Any]:
        return {"tenant_id": self._db.tenant_id, "client_id": normalize_client_id(client_id)}

    def _insert(
        self,
        key: dict[str, Any],
        message_id: str,
        status: ApprovalStatus,
        payload: Any,
        at: datetime,
    ) -> int | None:
        """Insert a message unless its id exists for the client: the new row's id, or None."""
        params = {
            **key,
            "message_id": message_id,
            "status": status.value,
            "payload": payload,
            "created_at": at,
            "status_changed_at": at,
        }
        row = self._db.write(self._add, params).first()
        return None if row is None else int(row[0])

    def _compare_and_set(
        self,
        client_id: str,
        message_id: str,
        source: ApprovalStatus,
        target: ApprovalStatus,
        at: datetime,
    ) -> int | None:
        """Move the message if it is in `source` now: the moved row's id, or None."""
        params = {
            "w_tenant_id": self._db.tenant_id,
            "w_client_id": client_id,
            "m_id": message_id,
            "from_status": source.value,
            "to_status": target.value,
            "at": at,
        }
        row = self._db.write(_MOVE, params).first()
        return None if row is None else int(row[0])

    def _record_move(
        self,
        row_id: int,
        source: ApprovalStatus | None,
        target: ApprovalStatus,
        at: datetime,
        reason: str | None = None,
    ) -> None:
        self._db.write(
            _RECORD_TRANSITION,
            {
                "tenant_id": self._db.tenant_id,
                "approval_message_id": row_id,
                "from_status": None if source is None else source.value,
                "to_status": target.value,
                "at": at,
                "reason": reason,
            },
        )

    def get(self, client_id: str, message_id: str) -> ApprovalRecord | None:
        """One message, or None."""
        params = {**self._key(client_id), "m_id": normalize_message_id(message_id)}
        row = self._db.read(_GET, params).first()
        return None if row is None else _record(row)

    def in_status(
        self, client_id: str, status: ApprovalStatus | str, limit: int | None = None
    ) -> list[ApprovalRecord]:
        """The messages in `status`, in the order they entered it; `limit` keeps the newest."""
        params = {**self._key(client_id), "bucket": parse_message_status(status).value}
        limit = require_row_limit(limit)
        if limit is None:
            return [_record(row) for row in self._db.read(_BUCKET, params)]
        rows = self._db.read(_BUCKET_NEWEST, {**params, "limit": limit}).all()
        return [_record(row) for row in reversed(rows)]

    def iter_bucket(
        self, client_id: str, status: ApprovalStatus | str, *, batch_size: int | None = None
    ) -> Iterator[ApprovalRecord]:
        """The messages in `status` in bucket order, fetched `batch_size` at a time (keyset
        pagination on the bucket index), so memory stays flat however long the history. Run it
        after `uow.open_snapshot()` for a consistent view across batches."""
        bucket = parse_message_status(status).value
        size = (
            EXPORT_BATCH_SIZE
            if batch_size is None
            else require_batch_size(batch_size, field="batch_size")
        )
        params = {**self._key(client_id), "bucket": bucket, "limit": size}
        batch = self._db.read(_BUCKET_FIRST_PAGE, params).all()
        while batch:
            for row in batch:
                yield _record(row)
            if len(batch) < size:
                return
            last = batch[-1]
            cursor = {"after_at": last[4], "after_id": last[5]}
            batch = self._db.read(_BUCKET_AFTER, {**params, **cursor}).all()

    def counts(self, client_id: str) -> dict[ApprovalStatus, int]:
        """How many messages are in each status now."""
        found = {
            ApprovalStatus(status): int(count)
            for status, count in self._db.read(_COUNTS, self._key(client_id))
        }
        return {status: found.get(status, 0) for status in ApprovalStatus}

    def history(self, client_id: str, message_id: str) -> list[Transition]:
        """Every move of a message, oldest first (the add is the first, from None)."""
        params = {**self._key(client_id), "m_id": normalize_message_id(message_id)}
        rows = self._db.read(_HISTORY, params)
        return [
            (None if source is None else ApprovalStatus(source), ApprovalStatus(target), at, why)
            for source, target, at, why in rows
        ]

    @atomic
    def clear(self, client_id: str, status: ApprovalStatus | str | None = None) -> int:
        """Delete the messages in `status` (every status when None) with their history;
        statistics are kept. Returns how many were deleted."""
        key = self._key(client_id)
        if status is None:
            result = self._db.write(_CLEAR_ALL, key)
        else:
            bucket = parse_message_status(status)
            result = self._db.write(_CLEAR_BUCKET, {**key, "bucket": bucket.value})
        return int(result.rowcount)

    @atomic
    def replace_all(self, client_id: str, records: Iterable[ApprovalRecord]) -> int:
        """Make the messages of `client_id` exactly `records` (import), inserted in batches and
        in the given order. Counts no statistics and records no history: an import restores
        state, it does not replay it. Returns how many were inserted."""
        key = self._key(client_id)
        if isinstance(records, str | bytes) or not isinstance(records, Iterable):
            raise InvalidInput("records", f"must be a list, got {type(records).__name__}")
        records = list(records)  # all checked before the clear: a bad one must change nothing
        for index, record in enumerate(records):
            if not isinstance(record, ApprovalRecord):
                raise InvalidInput(
                    f"records[{index}]", f"must be an ApprovalRecord, got {type(record).__name__}"
                )
        self.clear(key["client_id"])
        batch: list[dict[str, Any]] = []
        inserted = 0
        for record in records:
            batch.append(
                {
                    **key,
                    "message_id": record.message_id,
                    "status": record.status.value,
                    "payload": record.payload,
                    "created_at": record.added_at,
                    "status_changed_at": record.status_changed_at,
                }
            )
            if len(batch) >= IMPORT_BATCH_SIZE:
                self._db.write(_IMPORT, batch)
                inserted += len(batch)
                batch = []
        if batch:
            self._db.write(_IMPORT, batch)
            inserted += len(batch)
        return inserted
