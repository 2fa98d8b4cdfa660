"""Conversation mappings: the repository protocol, its SQL implementation, and the coalesced
activity writer. All SQL of the mapping family lives here.

Race safety comes from the database, not from locks: `get_or_create` reads first (the common
case: the user already has a conversation, one SELECT, no transaction); on a miss it runs
`INSERT … ON CONFLICT DO NOTHING` against the partial unique index "one active mapping per
(tenant, wa_id)", then reads whichever row won. Any number of processes racing on a new wa_id end
with one mapping, and all of them return it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from wastate.db.base import table_of
from wastate.db.errors import translate_db_error
from wastate.db.prepared import Prepared
from wastate.db.tables import ACTIVE_ONLY, ConversationMappingRow
from wastate.domain.clock import Clock, as_utc
from wastate.domain.ids import normalize_wa_id
from wastate.domain.maintenance import (
    BATCH_SIZE as _BATCH_SIZE,
)
from wastate.domain.maintenance import (
    cutoff_before,
    drain,
    require_batch_size,
)
from wastate.domain.mappings import (
    ConversationMapping,
    MappingStatus,
    adds_communication_id,
    normalize_contact_name,
    validate_communication_id,
    validate_conversation_id,
)
from wastate.errors import Conflict, InvalidInput
from wastate.repositories.base import Database, atomic
from wastate.repositories.upserts import precompiled

__all__ = [
    "ActivityWriter",
    "BatchedMaintenance",
    "MappingRepository",
    "SqlMappingRepository",
]

log = logging.getLogger(__name__)

_T = table_of(ConversationMappingRow)
_C = _T.c
_ACTIVE = MappingStatus.ACTIVE.value
_COLUMNS = [column for column in _T.columns if column.name != "id"]
_CREATE_ATTEMPTS = 5


class MappingRepository(Protocol):
    """What `uow.mappings` offers; the SQL repository and the caching decorator both provide it."""

    def get_or_create(self, wa_id: str, *, contact_name: str | None = None) -> ConversationMapping:
        """The user's active mapping, created (with a new conversation id) if there is none.

        A `contact_name` different from the stored one replaces it.
        """
        ...

    def by_wa_id(self, wa_id: str) -> ConversationMapping | None:
        """The user's active mapping, or None. Never creates."""
        ...

    def by_conversation(self, conversation_id: str) -> ConversationMapping | None:
        """The mapping (in any status) of a conversation id: the reverse lookup."""
        ...

    def correlate(
        self, wa_id: str, conversation_id: str, communication_id: str | None = None
    ) -> ConversationMapping:
        """Give the user's active mapping the contact center's conversation id, once.

        Idempotent for the same id; a different second id raises `Conflict`. With no active
        mapping (the contact center starts the conversation), one is created with that id.
        """
        ...

    def close(self, wa_id: str) -> ConversationMapping | None:
        """Close the user's active mapping (the next message starts a new conversation)."""
        ...

    def touch(self, refreshes: Sequence[tuple[str, datetime]]) -> None:
        """Move `last_activity_at` of the users' active mappings forward to the given times
        (never backwards); (wa_id, time) pairs, wa_ids already normalised."""
        ...

    def expire_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Expire up to `limit` active mappings idle for longer than `older_than`."""
        ...

    def expire_idle(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Expire active mappings idle for longer than `older_than`, in batches; how many."""
        ...

    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Delete up to `limit` closed/expired mappings closed more than `older_than` ago."""
        ...

    def purge(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Delete closed/expired mappings closed more than `older_than` ago; how many."""
        ...


class BatchedMaintenance:
    """`expire_idle` and `purge` as loops over the batch methods, shared by every implementation."""

    BATCH_SIZE = _BATCH_SIZE

    def expire_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        raise NotImplementedError

    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        raise NotImplementedError

    def expire_idle(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Expire active mappings idle for longer than `older_than`, in batches; how many."""
        return drain(self.expire_batch, older_than, limit=limit, batch_size=self.BATCH_SIZE)

    def purge(self, older_than: timedelta, *, limit: int | None = None) -> int:
        """Delete closed/expired mappings closed more than `older_than` ago; how many."""
        return drain(self.purge_batch, older_than, limit=limit, batch_size=self.BATCH_SIZE)


def check_refreshes(refreshes: object) -> list[tuple[str, datetime]]:
    """`touch`'s argument checked: (wa_id, aware time) pairs, wa_ids normalised, times in UTC."""
    if isinstance(refreshes, str | bytes) or not isinstance(refreshes, Sequence):
        raise InvalidInput("refreshes", f"must be a list of pairs, got {type(refreshes).__name__}")
    checked = []
    for index, pair in enumerate(refreshes):
        field = f"refreshes[{index}]"
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise InvalidInput(field, "must be a (wa_id, time) pair")
        wa_id, at = pair
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise InvalidInput(f"{field}[1]", "must be a timezone-aware datetime")
        checked.append((normalize_wa_id(wa_id, field=f"{field}[0]"), as_utc(at, field=field)))
    return checked


def to_mapping(row: Sequence[Any]) -> ConversationMapping:
    """A mapping model from a row in `_COLUMNS` order (trusted: the schema's CHECKs hold)."""
    (tenant_id, wa_id, conversation_id, status, contact_name, communication_id,
     last_message_id, correlated_at, created_at, last_activity_at, closed_at) = row  # fmt: skip
    return ConversationMapping.model_construct(
        tenant_id=tenant_id,
        wa_id=wa_id,
        conversation_id=conversation_id,
        status=MappingStatus(status),
        contact_name=contact_name,
        communication_id=communication_id,
        last_message_id=last_message_id,
        correlated_at=correlated_at,
        created_at=created_at,
        last_activity_at=last_activity_at,
        closed_at=closed_at,
    )


# Statements, built once. Every one is scoped by tenant_id.
_BY_WA_ID = Prepared(
    select(*_COLUMNS).where(
        _C.tenant_id == bindparam("p_tenant_id"),
        _C.wa_id == bindparam("p_wa_id"),
        _C.status == _ACTIVE,
    )
)
_BY_CONVERSATION = Prepared(
    select(*_COLUMNS).where(
        _C.tenant_id == bindparam("p_tenant_id"),
        _C.conversation_id == bindparam("p_conversation_id"),
    )
)
_ACTIVE_MATCH = and_(
    _C.tenant_id == bindparam("p_tenant_id"), _C.wa_id == bindparam("p_wa_id"), _C.status == _ACTIVE
)
_RENAME = update(_T).where(_ACTIVE_MATCH).values(contact_name=bindparam("p_contact_name"))
_CORRELATE = (
    update(_T)
    .where(_ACTIVE_MATCH, _C.correlated_at.is_(None))
    .values(
        conversation_id=bindparam("p_conversation_id"),
        communication_id=func.coalesce(bindparam("p_communication_id"), _C.communication_id),
        correlated_at=bindparam("p_now"),
    )
)
_ADD_COMMUNICATION_ID = (
    update(_T)
    .where(_ACTIVE_MATCH, _C.communication_id.is_(None))
    .values(communication_id=bindparam("p_communication_id"))
)
_CLOSE = (
    update(_T)
    .where(_ACTIVE_MATCH)
    .values(status=MappingStatus.CLOSED.value, closed_at=bindparam("p_now"))
)
_IDLE_IDS = (
    select(_C.id)
    .where(
        _C.tenant_id == bindparam("p_tenant_id"),
        _C.status == _ACTIVE,
        _C.last_activity_at < bindparam("cutoff"),
    )
    .order_by(_C.last_activity_at)
    .limit(bindparam("limit"))
)
_EXPIRE = (
    update(_T)
    .where(_C.tenant_id == bindparam("p_tenant_id"), _C.status == _ACTIVE)
    .values(status=MappingStatus.EXPIRED.value, closed_at=bindparam("p_now"))
)
_CLOSED_IDS = (
    select(_C.id)
    .where(
        _C.tenant_id == bindparam("p_tenant_id"),
        _C.status != _ACTIVE,
        _C.closed_at < bindparam("cutoff"),
    )
    .order_by(_C.closed_at)
    .limit(bindparam("limit"))
)
_PURGE = delete(_T).where(_C.tenant_id == bindparam("p_tenant_id"))


def _insert_statement(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_T)
        .values({column.name: bindparam(f"v_{column.name}") for column in _COLUMNS})
        .on_conflict_do_nothing(index_elements=[_C.tenant_id, _C.wa_id], index_where=ACTIVE_ONLY)
        .returning(*_COLUMNS)
    )


# Dialect inserts have no cache key: PostgreSQL runs this one prepared on the driver; SQLite gets
# an equivalent cacheable text(), so neither compiles it per call.
_INSERTS = {
    "postgresql": Prepared(_insert_statement("postgresql")),
    "sqlite": Prepared(precompiled(_insert_statement("sqlite"), "sqlite", *_COLUMNS)),
}


def _locked_ids(dialect: str, ids: Any) -> Any:
    # PostgreSQL: let concurrent maintenance jobs take disjoint batches.
    return ids.with_for_update(skip_locked=True) if dialect == "postgresql" else ids


class SqlMappingRepository(BatchedMaintenance):
    """The mapping repository on the unit of work's connection. Knows nothing of caches."""

    __slots__ = ("_db", "_insert")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = _INSERTS[db.dialect_name]

    @atomic
    def get_or_create(self, wa_id: str, *, contact_name: str | None = None) -> ConversationMapping:
        """The user's active mapping, created (with a new conversation id) if there is none."""
        key = normalize_wa_id(wa_id)
        name = normalize_contact_name(contact_name)
        for _ in range(_CREATE_ATTEMPTS):
            found = self._active(key)
            if found is None:
                found = self._insert_active(key, str(uuid.uuid4()), name, correlated=False)
            if found is not None:
                if name is not None and found.contact_name != name:
                    found = self._rename(key, name) or found
                return found
        # Only reachable if the mapping is closed by someone else between insert and read,
        # again and again: report it rather than spin.
        raise Conflict(f"wa_id {key}: the active mapping kept changing; try again")

    def by_wa_id(self, wa_id: str) -> ConversationMapping | None:
        """The user's active mapping, or None. Never creates."""
        return self._active(normalize_wa_id(wa_id))

    def by_conversation(self, conversation_id: str) -> ConversationMapping | None:
        """The mapping (in any status) of a conversation id: the reverse lookup."""
        params = {
            "p_tenant_id": self._db.tenant_id,
            "p_conversation_id": validate_conversation_id(conversation_id),
        }
        row = self._db.first(_BY_CONVERSATION, params)
        return None if row is None else to_mapping(row)

    @atomic
    def correlate(
        self, wa_id: str, conversation_id: str, communication_id: str | None = None
    ) -> ConversationMapping:
        """Set the contact center's conversation id on the active mapping, once."""
        key = normalize_wa_id(wa_id)
        wanted = validate_conversation_id(conversation_id)
        communication = validate_communication_id(communication_id)
        params = {
            "p_tenant_id": self._db.tenant_id,
            "p_wa_id": key,
            "p_conversation_id": wanted,
            "p_communication_id": communication,
            "p_now": self._db.now(),
        }
        for _ in range(_CREATE_ATTEMPTS):
            row = self._db.write(_CORRELATE.returning(*_COLUMNS), params).first()
            if row is not None:
                return to_mapping(row)
            current = self._active(key)
            if current is None:
                created = self._insert_active(key, wanted, None, correlated=True, extra=params)
                if created is not None:
                    return created
                continue
            if not adds_communication_id(current, wanted, communication):
                return current
            updated = self._db.write(_ADD_COMMUNICATION_ID.returning(*_COLUMNS), params).first()
            if updated is not None:
                return to_mapping(updated)
        raise Conflict(f"wa_id {key}: the active mapping kept changing; try again")

    @atomic
    def close(self, wa_id: str) -> ConversationMapping | None:
        """Close the user's active mapping; None if there was none."""
        params = {
            "p_tenant_id": self._db.tenant_id,
            "p_wa_id": normalize_wa_id(wa_id),
            "p_now": self._db.now(),
        }
        row = self._db.write(_CLOSE.returning(*_COLUMNS), params).first()
        return None if row is None else to_mapping(row)

    @atomic
    def touch(self, refreshes: Sequence[tuple[str, datetime]]) -> None:
        """Move `last_activity_at` of the users' active mappings forward (never backwards)."""
        rows = [_touch_row(self._db.tenant_id, w, at) for w, at in check_refreshes(refreshes)]
        if rows:
            self._db.write(_TOUCH, rows)

    @atomic
    def expire_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Expire up to `limit` active mappings idle for longer than `older_than`."""
        now = self._db.now()
        params = {
            "p_tenant_id": self._db.tenant_id,
            "cutoff": cutoff_before(now, older_than),
            "limit": require_batch_size(limit),
            "p_now": now,
        }
        ids = _locked_ids(self._db.dialect_name, _IDLE_IDS).scalar_subquery()
        statement = _EXPIRE.where(_C.id.in_(ids)).returning(*_COLUMNS)
        return [to_mapping(row) for row in self._db.write(statement, params)]

    @atomic
    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Delete up to `limit` closed/expired mappings closed more than `older_than` ago."""
        params = {
            "p_tenant_id": self._db.tenant_id,
            "cutoff": cutoff_before(self._db.now(), older_than),
            "limit": require_batch_size(limit),
        }
        ids = _locked_ids(self._db.dialect_name, _CLOSED_IDS).scalar_subquery()
        statement = _PURGE.where(_C.id.in_(ids)).returning(*_COLUMNS)
        return [to_mapping(row) for row in self._db.write(statement, params)]

    def _active(self, key: str) -> ConversationMapping | None:
        row = self._db.first(_BY_WA_ID, {"p_tenant_id": self._db.tenant_id, "p_wa_id": key})
        return None if row is None else to_mapping(row)

    def _insert_active(
        self,
        key: str,
        conversation_id: str,
        contact_name: str | None,
        *,
        correlated: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> ConversationMapping | None:
        """Insert an active mapping; None if another one won the race (then re-read)."""
        now = self._db.now()
        values = {
            "v_tenant_id": self._db.tenant_id,
            "v_wa_id": key,
            "v_conversation_id": conversation_id,
            "v_status": _ACTIVE,
            "v_contact_name": contact_name,
            "v_communication_id": (extra or {}).get("p_communication_id"),
            "v_last_message_id": None,
            "v_correlated_at": now if correlated else None,
            "v_created_at": now,
            "v_last_activity_at": now,
            "v_closed_at": None,
        }
        row = self._db.write_first(self._insert, values)
        if row is not None:
            return to_mapping(row)
        return self._active(key)

    def _rename(self, key: str, name: str) -> ConversationMapping | None:
        params = {"p_tenant_id": self._db.tenant_id, "p_wa_id": key, "p_contact_name": name}
        row = self._db.write(_RENAME.returning(*_COLUMNS), params).first()
        return None if row is None else to_mapping(row)


_TOUCH = (
    update(_T)
    .where(
        _C.tenant_id == bindparam("b_tenant_id"),
        _C.wa_id == bindparam("b_wa_id"),
        _C.status == _ACTIVE,
        _C.last_activity_at < bindparam("b_at"),
    )
    .values(last_activity_at=bindparam("b_at"))
)


def _touch_row(tenant_id: str, wa_id: str, at: datetime) -> dict[str, Any]:
    return {"b_tenant_id": tenant_id, "b_wa_id": wa_id, "b_at": at}


class ActivityWriter:
    """Coalesces `last_activity_at` refreshes: a lookup costs a dict write, not a database write.

    `record` keeps the newest time per user (tenant, wa_id: the key that survives a `correlate`)
    and skips mappings refreshed within the last `interval` seconds; a background thread writes
    everything pending every `interval` seconds in one batched statement (never moving a time
    backwards). `take(tenant)` hands a tenant's pending refreshes to a unit of work, which writes
    them in its own transaction before expiring idle mappings. `close()` (from `Store.close()`)
    writes what is left. Worst-case staleness of `last_activity_at` in the database: about two
    intervals (one of throttling, one of waiting for the flush); a crashed process loses at most
    the last interval's refreshes.
    """

    def __init__(self, engine: Engine, *, interval: float, clock: Clock) -> None:
        self._engine = engine
        self._interval = interval
        self._throttle = timedelta(seconds=interval)
        self._clock = clock
        self._pending: dict[tuple[str, str], datetime] = {}
        self._in_flight: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()
        # One flush at a time: a flush that finds nothing pending must not return while another
        # is still writing what it took.
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._begin = "BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else "BEGIN"

    def record(self, mapping: ConversationMapping) -> None:
        """Note that `mapping` was used now (cheap; written later in a batch)."""
        now = self._clock()
        if now - mapping.last_activity_at < self._throttle or self._closed:
            return
        key = (mapping.tenant_id, mapping.wa_id)
        with self._lock:
            self._pending[key] = now
            if self._thread is None:
                self._start()

    def pending(self) -> int:
        """How many mappings wait for their activity to be written."""
        with self._lock:
            return len(self._pending)

    def take(self, tenant_id: str) -> list[tuple[str, datetime]]:
        """Remove and return one tenant's pending refreshes as (wa_id, time) pairs.

        Refreshes a background flush is writing right now are included too (writing one twice
        is harmless): the caller never waits for that flush, which may itself be waiting for
        the caller's transaction.
        """
        with self._lock:
            mine = {key[1]: at for key, at in self._in_flight.items() if key[0] == tenant_id}
            for key in [key for key in self._pending if key[0] == tenant_id]:
                mine[key[1]] = self._pending.pop(key)
            return list(mine.items())

    def flush(self) -> int:
        """Write every pending refresh now; returns how many mappings were written."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._in_flight = batch
        if not batch:
            return 0
        try:
            return self._write(batch)
        finally:
            with self._lock:
                self._in_flight = {}

    def _write(self, batch: dict[tuple[str, str], datetime]) -> int:
        rows = [_touch_row(tenant, wa_id, at) for (tenant, wa_id), at in batch.items()]
        try:
            with self._engine.connect() as connection:
                connection.exec_driver_sql(self._begin)
                try:
                    connection.execute(_TOUCH, rows)
                except BaseException:
                    connection.exec_driver_sql("ROLLBACK")
                    raise
                connection.exec_driver_sql("COMMIT")
        except DBAPIError as exc:
            with self._lock:  # keep them for the next attempt, newest time wins
                for key, at in batch.items():
                    if self._pending.get(key, at) <= at:
                        self._pending[key] = at
            log.warning("activity flush failed; will retry: %s", translate_db_error(exc) or exc)
            return 0
        return len(rows)

    def close(self) -> None:
        """Stop the background writer and write what is pending."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wastate-activity", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self._interval):
            try:
                self.flush()
            except Exception:  # the writer must outlive any one failure
                log.exception("activity flush crashed")

    def __repr__(self) -> str:
        return f"ActivityWriter(interval={self._interval}, pending={self.pending()})"
