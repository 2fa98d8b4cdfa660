"""Approval-lifecycle messages (seed 004), their transition history, and the move rule.

A message lives in exactly one row, in exactly one status, per (tenant, client, message id).
`move` is one compare-and-set statement (`UPDATE … SET status = :to … WHERE … AND status = :from`)
followed, only if it matched, by the history row and the statistics increment, all in the unit of
work's transaction: of any number of racing movers (threads or processes) exactly one matches, and
a statistic can never count a move that did not happen. The transition table and the
`human_in_the_loop` guard come from `wastate.domain.lifecycle`; nothing here restates them.

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
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from wastate.db.tables import ApprovalMessage, ApprovalTransition
from wastate.domain.lifecycle import (
    BYPASSES_APPROVAL,
    ApprovalRecord,
    ApprovalStatus,
    approval_message,
    check_transition,
    normalize_message_id,
    parse_message_status,
)
from wastate.domain.maintenance import require_batch_size, require_row_limit
from wastate.domain.sessions import normalize_client_id
from wastate.domain.storable import require_text
from wastate.errors import InvalidInput
from wastate.repositories.base import Database, atomic
from wastate.repositories.config import ConfigRepository
from wastate.repositories.statistics import StatisticsRepository
from wastate.repositories.upserts import precompiled

__all__ = ["HUMAN_IN_THE_LOOP", "ApprovalRepository", "Transition"]

HUMAN_IN_THE_LOOP = "human_in_the_loop"
"""The config key of the approval guard (unset means false, as in the seed's examples)."""

EXPORT_BATCH_SIZE = 1000
IMPORT_BATCH_SIZE = 1000

_m = cast(Table, ApprovalMessage.__table__)
_mc = _m.c
_h = cast(Table, ApprovalTransition.__table__)
_hc = _h.c
_CLIENT = (_mc.tenant_id == bindparam("tenant_id"), _mc.client_id == bindparam("client_id"))
_COLUMNS = (_mc.message_id, _mc.status, _mc.payload, _mc.created_at, _mc.status_changed_at)

_ADD = {
    name: precompiled(
        dialect_insert(_m)
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
        .returning(_mc.id),
        name,
        _mc.id,
    )
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
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

MAX_REASON_LENGTH = 1000


def _reason(value: object) -> str | None:
    """A move's reason (e.g. why a reply was rejected): trimmed text, None when blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("reason", f"must be a string, got {type(value).__name__}")
    text = require_text(value.strip(), field="reason", max_length=MAX_REASON_LENGTH)
    return text or None


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
    """Lifecycle messages of one tenant's clients."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._add = _ADD[db.dialect_name]
        self._statistics = StatisticsRepository(db)
        self._config = ConfigRepository(db)

    def _key(self, client_id: str) -> dict[str, Any]:
        return {"tenant_id": self._db.tenant_id, "client_id": normalize_client_id(client_id)}

    @atomic
    def add(self, client_id: str, message_data: object, status: ApprovalStatus | str) -> bool:
        """Add the caller's message dict in `status`, counting one entry into it.

        Returns False, and changes nothing, when the message id already exists for this client
        (whatever its status): adding is idempotent, so a retried delivery is counted once.
        """
        key = self._key(client_id)
        status = parse_message_status(status)
        message_id, payload = approval_message(message_data)
        now = self._db.now()
        params = {
            **key,
            "message_id": message_id,
            "status": status.value,
            "payload": payload,
            "created_at": now,
            "status_changed_at": now,
        }
        row = self._db.write(self._add, params).first()
        if row is None:
            return False
        self._record_move(row[0], None, status, now)
        self._statistics.record_entry(key["client_id"], status, now)
        return True

    @atomic
    def move(
        self,
        client_id: str,
        message_id: str,
        from_status: ApprovalStatus | str,
        to_status: ApprovalStatus | str,
        *,
        human_in_the_loop: bool | None = None,
        reason: str | None = None,
    ) -> bool:
        """Move a message from `from_status` to `to_status` if it is in `from_status` now.

        Raises `InvalidTransition` (changing nothing) when the transition table or the approval
        guard forbid the move; `human_in_the_loop` None reads it from the client's config. Returns
        False, changing nothing, when the message is not (or no longer) in `from_status`.
        `reason` (why it was rejected, say) is kept with the move in the history.
        """
        client_id = self._key(client_id)["client_id"]
        source = parse_message_status(from_status, field="from_status")
        target = parse_message_status(to_status, field="to_status")
        message_id = normalize_message_id(message_id)
        why = _reason(reason)
        if human_in_the_loop is not None and not isinstance(human_in_the_loop, bool):
            raise InvalidInput("human_in_the_loop", "must be True, False or None")
        if human_in_the_loop is None:
            human_in_the_loop = (source, target) in BYPASSES_APPROVAL and self._guard_on(client_id)
        check_transition(source, target, human_in_the_loop=human_in_the_loop)
        now = self._db.now()
        params = {
            "w_tenant_id": self._db.tenant_id,
            "w_client_id": client_id,
            "m_id": message_id,
            "from_status": source.value,
            "to_status": target.value,
            "at": now,
        }
        row = self._db.write(_MOVE, params).first()
        if row is None:
            return False
        self._record_move(row[0], source, target, now, why)
        self._statistics.record_entry(client_id, target, now)
        return True

    def _guard_on(self, client_id: str) -> bool:
        # Read and held in the move's transaction: turning the guard on cannot slip between
        # this check and the move.
        return self._config.get_for_write(client_id, HUMAN_IN_THE_LOOP, False) is True

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
        after `open_snapshot()` for a consistent view across batches."""
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

    def open_snapshot(self) -> None:
        """Start the unit of work's transaction as one consistent view for a multi-statement
        read (export). PostgreSQL: a REPEATABLE READ, READ ONLY snapshot that blocks no one.
        SQLite: the write lock (`BEGIN IMMEDIATE`), so writers wait until the unit of work ends."""
        if self._db.in_transaction:
            raise InvalidInput("unit_of_work", "open_snapshot() must come before any write")
        if self._db.dialect_name == "postgresql":
            self._db.write(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        else:
            self._db.write(text("SELECT 1"))
