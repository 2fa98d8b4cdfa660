"""The SQLite writer of the message-tracking family.

SQLite has one writer at a time, and a wastate transaction takes the write lock first (its first
statement is a write), so nothing can be tracked or parked between a lookup and the write that
follows it: the writer resolves ids in Python and runs the rule (`rule.one_event_sets`) as one
`executemany` per step. Events for ids no message has are parked for `track` to adopt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, text

from wastate.db.base import UTCDateTime
from wastate.db.tables import MessageJSON
from wastate.domain.messages import NewMessage, TrackedMessage
from wastate.repositories.base import Database
from wastate.repositories.messages.reads import IDS, ROWS_BY_IDS, ROWS_BY_PKS, TENANT
from wastate.repositories.messages.rows import (
    ERROR_COLUMNS,
    HISTORY,
    PARKED,
    TRACKED,
    Event,
    by_external,
    ids_of,
    keys_of,
    new_row,
    parked_event,
)
from wastate.repositories.messages.rule import lite_keep_earliest, one_event_sets

# Text with each parameter written once: SQLite's positional parameters would otherwise repeat
# (and re-process) the event's time for every CASE, and SQLAlchemy does not cache the compiled
# form of a dialect `insert()`.
APPLY_ONE = text(
    f"""
UPDATE message_tracking AS t SET
        {one_event_sets("t")}
FROM (
    SELECT :e_status AS status, :e_at AS at, :e_now AS now, :e_error_code AS error_code,
        :e_error_title AS error_title, :e_error_message AS error_message,
        :e_error_details AS error_details, :e_pricing AS pricing,
        :e_conversation AS conversation, :e_callback AS callback
) AS e
WHERE t.id = :e_pk
"""  # noqa: S608
).bindparams(
    bindparam("e_at", type_=UTCDateTime()),
    bindparam("e_now", type_=UTCDateTime()),
    bindparam("e_pricing", type_=MessageJSON),
    bindparam("e_conversation", type_=MessageJSON),
)
HISTORY_UPSERT = lite_keep_earliest(HISTORY, "message_id")
PARK = lite_keep_earliest(PARKED, "external_id")
INSERT = TRACKED.insert()
TAKE_PARKED = (
    delete(PARKED)
    .where(PARKED.c.tenant_id == TENANT, PARKED.c.external_id.in_(IDS))
    .returning(*PARKED.columns)
)


def _row_params(e: Event, now: datetime) -> dict[str, Any]:
    """The history/parked-event columns of one event."""
    return {
        "status": e.status.value,
        "occurred_at": e.at,
        "recorded_at": now,
        **dict(zip(ERROR_COLUMNS, e.error_values(), strict=True)),
        "payload": e.payload,
    }


def _event_params(pk: int, e: Event, now: datetime) -> dict[str, Any]:
    """The parameters of `APPLY_ONE` for one event."""
    payload = e.payload or {}
    return {
        "e_pk": pk,
        "e_status": e.status.value,
        "e_at": e.at,
        "e_now": now,
        "e_pricing": payload.get("pricing"),
        "e_conversation": payload.get("conversation"),
        "e_callback": payload.get("biz_opaque_callback_data"),
        **{f"e_{column}": v for column, v in zip(ERROR_COLUMNS, e.error_values(), strict=True)},
    }


class SqliteWriter:
    """Writes of one tenant's messages on SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, items: list[NewMessage], now: datetime) -> set[int]:
        """Insert the new items with one `executemany`; the indexes of the items it inserted."""
        tenant = self._db.tenant_id
        ids = sorted({x for item in items for x in ids_of(item)})
        # A write first: the transaction holds SQLite's write lock from the check on, so nothing
        # can be tracked between it and the insert.
        taken = {
            key
            for row in self._db.write(ROWS_BY_IDS, {"tenant": tenant, "ids": ids})
            for key in keys_of(row)
        }
        created: set[int] = set()
        fresh: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            mine = keys_of(item)
            if any(key in taken for key in mine):
                continue
            taken.update(mine)
            created.add(index)
            fresh.append(new_row(item, tenant, now))
        if fresh:
            self._db.write(INSERT, fresh)
        return created

    def adopt(self, ids: list[str], now: datetime) -> list[Row[Any]]:
        """Take the events parked for these (just tracked) ids and apply them; changed rows."""
        parked = self._db.write(TAKE_PARKED, {"tenant": self._db.tenant_id, "ids": ids})
        events = [parked_event(row) for row in parked]
        if not events:
            return []
        rows, _ = self.apply(events, now, full=True)
        return rows

    def update_tracked(self, event: Event, now: datetime) -> TrackedMessage | None:
        """No single-event path of its own: None, so the caller runs `apply`."""
        return None

    def apply(
        self, batch: list[Event], now: datetime, *, full: bool
    ) -> tuple[list[Row[Any]], list[Event]]:
        """Apply `batch`, parking the events no message has; the touched rows (whole if `full`)
        and the parked events. Resolves the ids (under the write lock), then one `executemany`
        per step."""
        tenant = self._db.tenant_id
        ids = sorted({event.ext for event in batch})
        # A write first: the transaction holds SQLite's write lock from the lookup on.
        targets = by_external(self._db.write(ROWS_BY_IDS, {"tenant": tenant, "ids": ids}))
        known = [(targets[e.ext].id, e) for e in batch if e.ext in targets]
        missed = [e for e in batch if e.ext not in targets]
        rows: list[Row[Any]] = []
        if known:
            self._db.write(APPLY_ONE, [_event_params(pk, e, now) for pk, e in known])
            self._db.write(
                HISTORY_UPSERT,
                [{"tenant_id": tenant, "message_id": pk, **_row_params(e, now)} for pk, e in known],
            )
            touched = {pk: targets[e.ext] for pk, e in known}
            rows = list(touched.values())
            if full:
                rows = list(self._db.write(ROWS_BY_PKS, {"tenant": tenant, "ids": sorted(touched)}))
        if missed:
            self._db.write(
                PARK,
                [
                    {"tenant_id": tenant, "external_id": e.ext, **_row_params(e, now)}
                    for e in missed
                ],
            )
        return rows, missed
