"""The PostgreSQL writer of the message-tracking family: inserts, status updates, parking and
adoption, each one prepared statement on the driver (`postgres_sql`).

Status events for a message that is not tracked yet (a webhook that overtakes its sender) are
parked in `pending_status_events` and adopted by `track`. The two cannot miss each other: before
parking, the updater inserts a transient probe row holding the unknown id in the message table's
unique indexes, so a concurrent `track` of that id either commits first (and the updater applies
the events to it) or waits for the parked events to commit (and adopts them in a statement that
starts after the wait). The probe is deleted in the same transaction; no one else ever sees it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from wastate.domain.messages import NewMessage, TrackedMessage
from wastate.errors import Conflict
from wastate.repositories.base import Database
from wastate.repositories.messages import postgres_sql as sql
from wastate.repositories.messages.reads import ROWS_BY_PKS
from wastate.repositories.messages.rows import (
    ERROR_COLUMNS,
    Event,
    Touched,
    given_array,
    ids_of,
    new_row,
    tuple_to_record,
)

_PARK_ATTEMPTS = 5


def _event_params(batch: Sequence[Event], tenant: str, now: datetime) -> dict[str, Any]:
    """The events as the JSON document `JSON_EVENTS` unpacks (a status enum is a `str`: `json`
    writes its value)."""
    events = [[e.ext, e.status, e.at.isoformat(), *e.error_values(), e.payload] for e in batch]
    return {"tenant": tenant, "now": now, "events": json.dumps(events, separators=(",", ":"))}


def _sort_key(item: NewMessage) -> tuple[str, str]:
    """The order batches insert in, the same in every process (so they lock in one order)."""
    return (item.meta_message_id or "", item.genesys_message_id or "")


def _unmatched(batch: Sequence[Event], rows: Sequence[Any]) -> list[Event]:
    seen = {x for row in rows for x in ids_of(row)}
    return [event for event in batch if event.ext not in seen]


def _merge_rows(first: list[Any], later: list[Any]) -> list[Any]:
    merged = {row.id: row for row in first}
    merged.update((row.id, row) for row in later)
    return list(merged.values())


class PostgresWriter:
    """Writes of one tenant's messages on PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, items: list[NewMessage], now: datetime) -> set[int]:
        """Insert the new items in one statement; the indexes of the items it inserted."""
        tenant = self._db.tenant_id
        if len(items) == 1:  # the latency path: plain parameters, no document to unpack
            values = new_row(items[0], tenant, now)
            return {0} if self._db.write_first(sql.INSERT_ONE, values) is not None else set()
        # Sorted by id so concurrent batches take the unique-index locks in one order.
        order = sorted(range(len(items)), key=lambda i: _sort_key(items[i]))
        rows = json.dumps([given_array(items[i], now) for i in order], separators=(",", ":"))
        has_meta = any(item.meta_message_id is not None for item in items)
        has_genesys = any(item.genesys_message_id is not None for item in items)
        statement = sql.INSERT[has_meta, has_genesys]
        params = {"rows": rows, "tenant": tenant, "now": now, "n": len(items)}
        found = self._db.write_first(statement, params)
        count, metas, genesys = found if found is not None else (0, None, None)
        if count == len(items):  # every item a new row: none was a duplicate
            return set(range(len(items)))
        inserted = set(zip(metas or [], genesys or [], strict=True))
        created: set[int] = set()
        for index in order:
            key = (items[index].meta_message_id, items[index].genesys_message_id)
            if key in inserted:
                inserted.discard(key)  # a repeat of the same ids is a duplicate of the first
                created.add(index)
        return created

    def adopt(self, ids: list[str], now: datetime) -> list[Row[Any]]:
        """Take the events parked for these (just tracked) ids and apply them; changed rows.

        Its own statements, after the insert: events parked while the insert waited on a probe
        row are visible only to a statement that starts after the wait.
        """
        tenant = self._db.tenant_id
        # The ids as one space-separated string (they hold no spaces: `require_external_id`):
        # joined in C, where psycopg would dump a list of a thousand in Python.
        params = {"tenant": tenant, "ids": " ".join(ids)}
        parked_exist = self._db.first(sql.PARKED_EXIST, params)
        if parked_exist is None or not parked_exist[0]:  # the common case
            return []
        found = self._db.write_first(sql.ADOPT, {**params, "now": now})
        changed = None if found is None else found[0]
        if not changed:
            return []
        return list(self._db.read(ROWS_BY_PKS, {"tenant": tenant, "ids": sorted(changed)}))

    def update_tracked(self, event: Event, now: datetime) -> TrackedMessage | None:
        """Apply `event` to its message in one round trip; None if no message has its id."""
        params = {
            "tenant": self._db.tenant_id,
            "ext": event.ext,
            "at": event.at,
            "now": now,
            **dict(zip(ERROR_COLUMNS, event.error_values(), strict=True)),
        }
        row = self._db.write_first(sql.APPLY_ONE[event.status], params)
        return None if row is None else tuple_to_record(row)

    def apply(
        self, batch: list[Event], now: datetime, *, full: bool
    ) -> tuple[list[Any], list[Event]]:
        """Apply `batch`, parking the events no message has; the touched rows (whole if `full`,
        else `Touched`) and the parked events."""
        tenant = self._db.tenant_id
        rows = self._apply_once(batch, now, full=full)
        missed = _unmatched(batch, rows)
        parked: list[Event] = []
        for _attempt in range(_PARK_ATTEMPTS):
            if not missed:
                return rows, parked
            ids = sorted({event.ext for event in missed})
            probes = list(self._db.write(sql.PROBE, {"tenant": tenant, "ids": ids, "now": now}))
            probed = {row.meta_message_id for row in probes}
            park = [event for event in missed if event.ext in probed]
            if park:
                params = _event_params(park, tenant, now)
                params["probe_ids"] = [row.id for row in probes]
                self._db.write(sql.PARK, params)
                parked.extend(park)
            # A probe that hit an existing row: the id was tracked and committed meanwhile.
            retry = [event for event in missed if event.ext not in probed]
            if not retry:
                return rows, parked
            again = self._apply_once(retry, now, full=full)
            rows = _merge_rows(rows, again)
            missed = _unmatched(retry, again)
        raise Conflict(  # pragma: no cover - needs ids tracked and deleted again, repeatedly
            f"message ids {sorted({e.ext for e in missed})} appear and vanish concurrently"
        )

    def _apply_once(self, batch: list[Event], now: datetime, *, full: bool) -> list[Any]:
        """One run of the batch statement; the rows it touched."""
        params = _event_params(batch, self._db.tenant_id, now)
        if full:
            return list(self._db.write(sql.APPLY_ROWS, params))
        found = self._db.write_first(sql.APPLY, params)
        if found is None or found[0] is None:  # no event matched a message
            return []
        return [Touched(*ids) for ids in zip(*found, strict=True)]
