"""`MessageRepository`: the reads (`MessageReader`) and the writer of its database's dialect,
chosen once, at construction (`PostgresWriter` or `SqliteWriter`), behind one public API.

The status rule (`wastate.domain.messages`: the stored status is the highest-ranked one seen,
each status's time the earliest seen) is applied by the database in one statement per update or
per batch (`rule`), so concurrent updates of one message serialise on its row and none is lost:
there is no read-modify-write in Python. The history holds status events (`update_status`,
`apply_status_events`, webhooks, adopted parked events). Tracking is not one: the status a
message is tracked with is on its record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Delete, Row, Table, bindparam, delete, select

from wastate.db.base import UTCDateTime
from wastate.domain.maintenance import BATCH_SIZE, cutoff_before, drain, require_batch_size
from wastate.domain.messages import (
    DeliveryStatus,
    MessageError,
    NewMessage,
    StatusEvent,
    TrackedMessage,
)
from wastate.errors import Conflict
from wastate.repositories.base import Database, atomic
from wastate.repositories.messages.inputs import new_message, one_event, sequence, status_event
from wastate.repositories.messages.postgres import PostgresWriter
from wastate.repositories.messages.reads import ROWS_BY_IDS, TENANT, MessageReader
from wastate.repositories.messages.results import StatusBatchResult, TrackBatchResult
from wastate.repositories.messages.rows import (
    PARKED,
    TRACKED,
    Event,
    by_external,
    ids_of,
    keys_of,
    new_record,
    new_records,
    to_record,
)
from wastate.repositories.messages.sqlite import SqliteWriter

_Adopted = dict[tuple[str, str], Row[Any]]


class MessageWriter(Protocol):
    """The writes whose SQL differs by dialect."""

    def insert(self, items: list[NewMessage], now: datetime) -> set[int]:
        """Insert what is new of `items`; the indexes of the items it inserted."""
        ...

    def adopt(self, ids: list[str], now: datetime) -> list[Row[Any]]:
        """Take the events parked for these just-tracked ids and apply them; changed rows."""
        ...

    def update_tracked(self, event: Event, now: datetime) -> TrackedMessage | None:
        """Apply one event to a tracked message in one round trip, if the dialect has such a
        path: the record after it. None otherwise (no path, or no such message)."""
        ...

    def apply(
        self, batch: list[Event], now: datetime, *, full: bool
    ) -> tuple[list[Any], list[Event]]:
        """Apply `batch`, parking what no message has; touched rows (whole rows if `full`, else
        rows with `id`, `meta_message_id`, `genesys_message_id`) and the parked events."""
        ...


def _writer_for(db: Database) -> MessageWriter:
    """The dialect's writer, picked once per repository: prepared driver statements and the
    park-probe race closure on PostgreSQL; the single-writer SQLite form elsewhere."""
    return PostgresWriter(db) if db.dialect.prepared_statements else SqliteWriter(db)


def _purge_oldest(table: Table, time_column: str) -> Delete:
    """Delete the tenant's rows whose `time_column` is before :cutoff, oldest first, :limit."""
    moment = table.c[time_column]
    oldest = (
        select(table.c.id)
        .where(table.c.tenant_id == TENANT, moment < bindparam("cutoff", type_=UTCDateTime()))
        .order_by(moment)
        .limit(bindparam("limit"))
        .scalar_subquery()
    )
    return delete(table).where(table.c.tenant_id == TENANT, table.c.id.in_(oldest))


PURGE_PENDING = _purge_oldest(PARKED, "recorded_at")
# The status history goes with its message (ON DELETE CASCADE).
PURGE = _purge_oldest(TRACKED, "created_at")


def _check_same_message(item: NewMessage, record: TrackedMessage, index: int) -> None:
    """A duplicate must not contradict the stored ids (one id naming two messages)."""
    for name in ("meta_message_id", "genesys_message_id"):
        given, stored = getattr(item, name), getattr(record, name)
        if given is not None and stored is not None and given != stored:
            raise Conflict(
                f"messages[{index}]: {name} {given!r} differs from the tracked message's"
                f" {stored!r}, which shares its other id",
                constraint=f"uq_message_tracking_tenant_id_{name}",
            )


class MessageRepository(MessageReader):
    """Tracked WhatsApp messages of one tenant, by WhatsApp id (`wamid…`) or contact-center id.

    Every method accepts either external id. Writes run in the unit of work's transaction.
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._writer: MessageWriter = _writer_for(db)

    # ----------------------------------------------------------------- tracking

    @atomic
    def track(self, message: NewMessage | Mapping[str, Any]) -> TrackedMessage:
        """Start tracking `message`; idempotent on either external id within the tenant.

        A duplicate (either id already tracked) returns the stored record with `created=False`
        and writes nothing; ids that contradict the stored record's raise `Conflict`. A new
        record adopts any status events parked for its ids (see `update_status`). The status
        given here is the record's first (with its time); the history holds status events.
        """
        items = [new_message(message, "messages[0]")]
        return self._results(items, *self._write(items))[0]

    @atomic
    def track_many(
        self, messages: Iterable[NewMessage | Mapping[str, Any]]
    ) -> list[TrackedMessage]:
        """`track` for a batch: one INSERT (PostgreSQL) or one `executemany` (SQLite), then one
        look for parked events to adopt.

        Returns one record per input, in input order; an input repeating an earlier one's id is
        a duplicate of it. For bursts whose records you do not need, `track_batch` is faster.
        """
        items = self._new_messages(messages)
        return self._results(items, *self._write(items)) if items else []

    @atomic
    def track_batch(self, messages: Iterable[NewMessage | Mapping[str, Any]]) -> TrackBatchResult:
        """`track_many` without the records: the same writes and checks (a duplicate whose ids
        contradict the stored message's raises `Conflict`), answering with counts only.

        Building a thousand records costs as much as a fifth of inserting them; a webhook
        burst rarely needs them.
        """
        items = self._new_messages(messages)
        if not items:
            return TrackBatchResult(new=0, duplicates=[])
        created, adopted, now = self._write(items)
        duplicates = [index for index in range(len(items)) if index not in created]
        if duplicates:  # a retried burst: check them against what is stored
            self._results(items, created, adopted, now)
        return TrackBatchResult(new=len(created), duplicates=duplicates)

    @staticmethod
    def _new_messages(messages: Iterable[NewMessage | Mapping[str, Any]]) -> list[NewMessage]:
        return [
            new_message(value, f"messages[{index}]")
            for index, value in enumerate(sequence(messages, "messages"))
        ]

    def _write(self, items: list[NewMessage]) -> tuple[set[int], _Adopted, datetime]:
        """Insert what is new of `items`, adopt parked events: (the indexes inserted, the
        adopted rows by key, the time)."""
        now = self._db.now()
        created = self._writer.insert(items, now)
        adopted: _Adopted = {}
        if created:
            ids = list({x for index in created for x in ids_of(items[index])})
            for row in self._writer.adopt(ids, now):
                for key in keys_of(row):
                    adopted[key] = row
        return created, adopted, now

    def _results(
        self, items: list[NewMessage], created: set[int], adopted: _Adopted, now: datetime
    ) -> list[TrackedMessage]:
        """One record per input: what it inserted (created), or the stored one (duplicate)."""
        tenant = self._db.tenant_id
        if not adopted and len(created) == len(items):  # all new, nothing parked: the usual
            return new_records(items, tenant, now)
        results: list[TrackedMessage | None] = [None] * len(items)
        records: dict[tuple[str, str], TrackedMessage] = {}  # by key: created, then stored
        for index in sorted(created):
            item = items[index]
            row = next((adopted[k] for k in keys_of(item) if k in adopted), None)
            record = new_record(item, tenant, now) if row is None else to_record(row, created=True)
            results[index] = record
            for key in keys_of(item):
                records[key] = record
        self._stored(items, created, records)
        for index, item in enumerate(items):
            if results[index] is not None:
                continue
            found = next((records[k] for k in keys_of(item) if k in records), None)
            if found is None:  # pragma: no cover - deleted between the insert and the read
                raise Conflict(f"messages[{index}]: tracked concurrently and deleted again")
            _check_same_message(item, found, index)
            results[index] = found.model_copy(update={"created": False}) if found.created else found
        return [record for record in results if record is not None]

    def _stored(
        self,
        items: list[NewMessage],
        created: set[int],
        records: dict[tuple[str, str], TrackedMessage],
    ) -> None:
        """Add to `records` the stored records of the duplicates' keys it lacks."""
        missing = sorted(
            {k for i, item in enumerate(items) if i not in created for k in keys_of(item)}
            - records.keys()
        )
        if missing:
            ids = sorted({external for _, external in missing})
            for row in self._db.read(ROWS_BY_IDS, {"tenant": self._db.tenant_id, "ids": ids}):
                record = to_record(row)
                for key in keys_of(row):
                    records.setdefault(key, record)

    # ----------------------------------------------------------------- status updates

    @atomic
    def update_status(
        self,
        message_id: str,
        status: DeliveryStatus | str,
        *,
        at: datetime | None = None,
        error: MessageError | Mapping[str, Any] | None = None,
    ) -> TrackedMessage | None:
        """Apply one status event to the message with this WhatsApp or contact-center id.

        The status moves only forward (`STATUS_RANK`), the status's time is the earliest seen,
        `failed` keeps its error. Returns the record after the update, or None when no message
        has this id in the tenant: the event is then parked and applied when `track` sees the id.
        """
        now = self._db.now()
        event = one_event(message_id, status, at, error, now)
        record = self._writer.update_tracked(event, now)
        if record is not None:
            return record
        # Unknown id (or no single-event path): the batch path parks the event, or finds the
        # message tracked in the meantime.
        rows, _ = self._writer.apply([event], now, full=True)
        return to_record(rows[0]) if rows else None

    @atomic
    def apply_status_events(
        self, events: Iterable[StatusEvent | Mapping[str, Any]]
    ) -> StatusBatchResult:
        """Apply a batch of status events (any order, duplicates welcome) in one statement.

        The outcome does not depend on the order or grouping of the events. Events whose id no
        tracked message has are parked (`pending`), never an error.
        """
        now = self._db.now()
        values = sequence(events, "events")
        batch = [status_event(value, index, now) for index, value in enumerate(values)]
        if not batch:
            return StatusBatchResult(applied=0, pending=[], updated=[])
        rows, parked = self._writer.apply(batch, now, full=False)
        by_id = by_external(rows)
        updated: dict[int, str] = {}
        for event in batch:
            row = by_id.get(event.ext)
            if row is not None and row.id not in updated:
                updated[row.id] = row.meta_message_id or row.genesys_message_id
        return StatusBatchResult(
            applied=len(batch) - len(parked),
            pending=sorted({event.ext for event in parked}),
            updated=list(updated.values()),
        )

    # ----------------------------------------------------------------- housekeeping

    @atomic
    def purge(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Delete the tracked messages created more than `older_than` ago, with their status
        history, oldest first, in batches of 1,000 — all of them, or at most `limit`; how many.
        The same meaning as `mappings.purge`; `purge_batch` is one batch."""
        return drain(self.purge_batch, older_than, limit=limit)

    @atomic
    def purge_batch(self, older_than: timedelta, *, limit: int = BATCH_SIZE) -> int:
        """Delete up to `limit` tracked messages created more than `older_than` ago, oldest
        first, with their status history, in one statement; how many."""
        cutoff = cutoff_before(self._db.now(), older_than)
        result = self._db.write(
            PURGE,
            {"tenant": self._db.tenant_id, "cutoff": cutoff, "limit": require_batch_size(limit)},
        )
        return int(result.rowcount)

    @atomic
    def purge_pending(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Delete the parked events recorded more than `older_than` ago (zero: all of them), in
        batches of 1,000 — all, or at most `limit`; how many. `purge_pending_batch` is one batch."""
        return drain(self.purge_pending_batch, older_than, limit=limit, allow_zero=True)

    @atomic
    def purge_pending_batch(self, older_than: timedelta, *, limit: int = BATCH_SIZE) -> int:
        """Delete up to `limit` parked events recorded more than `older_than` ago, in one
        statement; how many."""
        cutoff = cutoff_before(self._db.now(), older_than, allow_zero=True)
        params = {
            "tenant": self._db.tenant_id,
            "cutoff": cutoff,
            "limit": require_batch_size(limit),
        }
        result = self._db.write(PURGE_PENDING, params)
        return int(result.rowcount)
