"""Approval-lifecycle statistics (seed 004): one counter row per (tenant, client).

Counters are only ever changed by one upsert that adds 1 in the database
(`total_x = total_x + 1`), never by read-modify-write, so concurrent writers in any number of
processes cannot lose an increment. The row is created by the first increment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, delete, select

from wastate.db.dialect import Dialect, per_dialect
from wastate.db.tables import ApprovalStatistics
from wastate.domain.clock import as_utc
from wastate.domain.lifecycle import (
    STATISTIC_FIELDS,
    STATISTIC_FOR_STATUS,
    ApprovalStatus,
    LifecycleStatistics,
    parse_message_status,
)
from wastate.domain.sessions import normalize_client_id
from wastate.errors import InvalidInput
from wastate.repositories.base import Database, atomic
from wastate.repositories.upserts import precompiled, precompiled_per_dialect

__all__ = ["StatisticsRepository"]

_t = cast(Table, ApprovalStatistics.__table__)
_c = _t.c

_SELECT = select(
    *(_c[name] for name in STATISTIC_FIELDS),
    _c.last_message_received,
    _c.last_message_sent,
).where(_c.tenant_id == bindparam("tenant_id"), _c.client_id == bindparam("client_id"))

_DELETE = delete(_t).where(
    _c.tenant_id == bindparam("tenant_id"), _c.client_id == bindparam("client_id")
)


def _zero_row() -> dict[str, Any]:
    return dict.fromkeys(STATISTIC_FIELDS, 0) | {
        "last_message_received": None,
        "last_message_sent": None,
        "reset_at": None,
    }


def _upsert_increment(dialect: Dialect, status: ApprovalStatus) -> Insert:
    """`INSERT … ON CONFLICT DO UPDATE SET total_x = total_x + 1` for one status."""
    field = STATISTIC_FOR_STATUS[status]
    values: dict[str, Any] = {
        "tenant_id": bindparam("tenant_id"),
        "client_id": bindparam("client_id"),
        **{name: (1 if name == field else 0) for name in STATISTIC_FIELDS},
    }
    updates: dict[str, Any] = {field: _c[field] + 1}
    if status is ApprovalStatus.INCOMING:
        values["last_message_received"] = bindparam("at")
        updates["last_message_received"] = bindparam("at")
    if status is ApprovalStatus.SENT:
        values["last_message_sent"] = bindparam("at")
        updates["last_message_sent"] = bindparam("at")
    statement = dialect.insert(_t).values(**values)
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.client_id], set_=updates
    )
    return upsert


def _upsert_replace(dialect: Dialect) -> Insert:
    """Set every counter at once (reset, import), creating the row if needed."""
    names = [*STATISTIC_FIELDS, "last_message_received", "last_message_sent", "reset_at"]
    statement = dialect.insert(_t).values(
        tenant_id=bindparam("tenant_id"),
        client_id=bindparam("client_id"),
        **{name: bindparam(name) for name in names},
    )
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.client_id],
        set_={name: statement.excluded[name] for name in names},
    )
    return upsert


_INCREMENT = per_dialect(
    lambda dialect: {
        status: precompiled(_upsert_increment(dialect, status), dialect)
        for status in ApprovalStatus
    }
)
_REPLACE = precompiled_per_dialect(_upsert_replace)


class StatisticsRepository:
    """Lifecycle statistics of one tenant's clients."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._increment = _INCREMENT[db.dialect]
        self._replace = _REPLACE[db.dialect]

    def _key(self, client_id: str) -> dict[str, Any]:
        return {"tenant_id": self._db.tenant_id, "client_id": normalize_client_id(client_id)}

    def get(self, client_id: str) -> LifecycleStatistics:
        """The counters of `client_id` (all zero when nothing was ever counted)."""
        row = self._db.read(_SELECT, self._key(client_id)).mappings().first()
        if row is None:
            return LifecycleStatistics()
        return LifecycleStatistics.model_validate(dict(row))

    @atomic
    def record_entry(self, client_id: str, status: ApprovalStatus, at: datetime) -> None:
        """Count one entry into `status` (and stamp last received/sent), atomically."""
        statement = self._increment[parse_message_status(status)]
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise InvalidInput("at", "must be a timezone-aware datetime")
        self._db.write(statement, {**self._key(client_id), "at": as_utc(at)})

    @atomic
    def reset(self, client_id: str) -> None:
        """Set every counter to zero and forget the last received/sent times."""
        row = _zero_row() | {"reset_at": self._db.now()}
        self._db.write(self._replace, {**self._key(client_id), **row})

    @atomic
    def replace(self, client_id: str, statistics: LifecycleStatistics) -> None:
        """Set the counters to `statistics` (import)."""
        if not isinstance(statistics, LifecycleStatistics):
            raise InvalidInput(
                "statistics", f"must be LifecycleStatistics, got {type(statistics).__name__}"
            )
        row = statistics.model_dump() | {"reset_at": None}
        self._db.write(self._replace, {**self._key(client_id), **row})

    @atomic
    def delete(self, client_id: str) -> None:
        """Remove the counter row of `client_id`."""
        self._db.write(_DELETE, self._key(client_id))
