"""Conversation mappings: the SQL implementation of the repository contract
(`repositories/mapping_contract.py`, re-exported here). All SQL of the mapping family lives
here, including the activity refresh that the store's background writer (`wastate.activity`)
runs.

Race safety comes from the database, not from locks: `get_or_create` reads first (the common
case: the user already has a conversation, one SELECT, no transaction); on a miss it runs
`INSERT … ON CONFLICT DO NOTHING` against the partial unique index "one active mapping per
(tenant, wa_id)", then reads whichever row won. Any number of processes racing on a new wa_id end
with one mapping, and all of them return it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Executable, Select, and_, bindparam, delete, func, select, update

from wastate.db.base import table_of
from wastate.db.dialect import Dialect, per_dialect
from wastate.db.prepared import Prepared
from wastate.db.tables import ACTIVE_ONLY, ConversationMappingRow
from wastate.domain.ids import normalize_wa_id
from wastate.domain.maintenance import (
    cutoff_before,
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
from wastate.errors import Conflict
from wastate.repositories.base import Database, atomic
from wastate.repositories.mapping_contract import (
    BatchedMaintenance,
    MappingRepository,
    check_refreshes,
)
from wastate.repositories.upserts import precompiled

__all__ = [
    "TOUCH_ACTIVITY",
    "BatchedMaintenance",
    "MappingRepository",
    "SqlMappingRepository",
    "touch_row",
]

_T = table_of(ConversationMappingRow)
_C = _T.c
_ACTIVE = MappingStatus.ACTIVE.value
_COLUMNS = [column for column in _T.columns if column.name != "id"]
_CREATE_ATTEMPTS = 5


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


@dataclass(frozen=True, slots=True)
class _DialectStatements:
    """The statements of the family that differ by dialect; a repository picks its set once."""

    insert: Prepared
    expire: Executable
    purge: Executable


def _insert_statement(dialect: Dialect) -> Prepared:
    statement = (
        dialect.insert(_T)
        .values({column.name: bindparam(f"v_{column.name}") for column in _COLUMNS})
        .on_conflict_do_nothing(index_elements=[_C.tenant_id, _C.wa_id], index_where=ACTIVE_ONLY)
        .returning(*_COLUMNS)
    )
    # Dialect inserts have no cache key: with prepared statements it runs prepared on the
    # driver; otherwise it becomes an equivalent cacheable text(): neither compiles it per call.
    if dialect.prepared_statements:
        return Prepared(statement)
    return Prepared(precompiled(statement, dialect, *_COLUMNS))


def _in_batch(dialect: Dialect, statement: Any, ids: Select[Any]) -> Executable:
    """`statement` restricted to the rows `ids` picks, picked once.

    Where rows can be locked, concurrent maintenance jobs take disjoint batches (SQLite's writers
    take turns on the write lock instead). The pick is a MATERIALIZED CTE: as a plain
    `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` PostgreSQL may re-run the subquery per row,
    and each run (seeing the rows already changed) picks further ones — more than `limit`.
    """
    if dialect.row_locks:
        picked = ids.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
    else:
        picked = ids.cte("picked")
    restricted = statement.add_cte(picked).where(_C.id.in_(select(picked.c.id)))
    return restricted.returning(*_COLUMNS)  # type: ignore[no-any-return]


_STATEMENTS = per_dialect(
    lambda dialect: _DialectStatements(
        insert=_insert_statement(dialect),
        expire=_in_batch(dialect, _EXPIRE, _IDLE_IDS),
        purge=_in_batch(dialect, _PURGE, _CLOSED_IDS),
    )
)


class SqlMappingRepository(BatchedMaintenance):
    """The mapping repository on the unit of work's connection. Knows nothing of caches."""

    __slots__ = ("_db", "_sql")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = _STATEMENTS[db.dialect]

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
        rows = [touch_row(self._db.tenant_id, w, at) for w, at in check_refreshes(refreshes)]
        if rows:
            self._db.write(TOUCH_ACTIVITY, rows)

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
        return [to_mapping(row) for row in self._db.write(self._sql.expire, params)]

    @atomic
    def purge_batch(self, older_than: timedelta, *, limit: int) -> list[ConversationMapping]:
        """Delete up to `limit` closed/expired mappings closed more than `older_than` ago."""
        params = {
            "p_tenant_id": self._db.tenant_id,
            "cutoff": cutoff_before(self._db.now(), older_than),
            "limit": require_batch_size(limit),
        }
        return [to_mapping(row) for row in self._db.write(self._sql.purge, params)]

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
        row = self._db.write_first(self._sql.insert, values)
        if row is not None:
            return to_mapping(row)
        return self._active(key)

    def _rename(self, key: str, name: str) -> ConversationMapping | None:
        params = {"p_tenant_id": self._db.tenant_id, "p_wa_id": key, "p_contact_name": name}
        row = self._db.write(_RENAME.returning(*_COLUMNS), params).first()
        return None if row is None else to_mapping(row)


# Refresh `last_activity_at` of active mappings, never moving it backwards: what the store's
# `wastate.activity.ActivityWriter` flushes in batches, and what a unit of work writes before
# it expires idle mappings (`write_activity`).
TOUCH_ACTIVITY = (
    update(_T)
    .where(
        _C.tenant_id == bindparam("b_tenant_id"),
        _C.wa_id == bindparam("b_wa_id"),
        _C.status == _ACTIVE,
        _C.last_activity_at < bindparam("b_at"),
    )
    .values(last_activity_at=bindparam("b_at"))
)


def touch_row(tenant_id: str, wa_id: str, at: datetime) -> dict[str, Any]:
    """The parameters of `TOUCH_ACTIVITY` for one refresh."""
    return {"b_tenant_id": tenant_id, "b_wa_id": wa_id, "b_at": at}
