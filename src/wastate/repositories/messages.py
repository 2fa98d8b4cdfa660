"""Message tracking: tracked messages, their delivery status, its history, and parked events.

All SQL of the message-tracking family lives here. The status rule (`wastate.domain.messages`:
the stored status is the highest-ranked one seen, each status's time the earliest seen) is applied
by the database in one statement per update or per batch, so concurrent updates of one message
serialise on its row and none is lost: there is no read-modify-write in Python. The rank
comparison is a `CASE` generated once, at import, from `STATUS_RANK`.

PostgreSQL runs each batch as one statement over one JSONB document: the events are matched to
their messages, aggregated per message, applied with one `UPDATE … FROM`, and appended to the
history with `INSERT … ON CONFLICT` that keeps the earliest event per (message, status) and
merges the payloads of its events. A single `update_status` has its own, leaner statement with
the same rule, one per status. The hot statements (single and batch track, update, apply) run
prepared on the driver (`Database.write_first`), answering with one row. SQLite (one writer at a
time: its transaction takes the write lock first) runs the same rules as Core statements, one
`executemany` per step.

The history holds status events (`update_status`, `apply_status_events`, webhooks, adopted
parked events). Tracking is not one: the status a message is tracked with is on its record.

Status events for a message that is not tracked yet (a webhook that overtakes its sender) are
parked in `pending_status_events` and adopted by `track`. On PostgreSQL the two cannot miss each
other: before parking, the updater inserts a transient probe row holding the unknown id in the
message table's unique indexes, so a concurrent `track` of that id either commits first (and the
updater applies the events to it) or waits for the parked events to commit (and adopts them in a
statement that starts after the wait). The probe is deleted in the same transaction; no one else
ever sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from sqlalchemy import (
    BigInteger,
    Delete,
    Row,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.sql.elements import BindParameter, ColumnElement, TextClause

from wastate.db.base import UTCDateTime, table_of
from wastate.db.prepared import Prepared
from wastate.db.tables import (
    MessageJSON,
    MessageStatusEvent,
    MessageTrackingRow,
    PendingStatusEvent,
)
from wastate.domain.clock import as_utc
from wastate.domain.ids import normalize_wa_id, require_external_id
from wastate.domain.maintenance import BATCH_SIZE, cutoff_before, drain, require_batch_size
from wastate.domain.mappings import validate_conversation_id
from wastate.domain.messages import (
    STATUS_RANK,
    DeliveryStatus,
    MessageError,
    NewMessage,
    StatusEvent,
    TrackedMessage,
    invalid_input_from,
    parse_delivery_status,
)
from wastate.errors import Conflict, InvalidInput
from wastate.repositories.base import Database, atomic

__all__ = ["MessageRepository", "StatusBatchResult", "TrackBatchResult"]

_T = table_of(MessageTrackingRow)
_H = table_of(MessageStatusEvent)
_P = table_of(PendingStatusEvent)
_FAILED = DeliveryStatus.FAILED.value
_AT_COLUMNS = [status.timestamp_field for status in DeliveryStatus]
_ERROR_FIELDS = ("code", "title", "message", "details")
_CALLBACK = "biz_opaque_callback_data"
_PAYLOAD_KEYS = (
    "pricing",
    "conversation",
    "biz_opaque_callback_data",
    "recipient_id",
    "recipient_user_id",
)
_MODEL_COLUMNS = [column.name for column in _T.columns if column.name != "id"]
_MAX_PAGE = 1000
_PARK_ATTEMPTS = 5


class StatusBatchResult(BaseModel):
    """What `apply_status_events` did. Counts and ids only, so a burst stays cheap; `get` a
    record when you need it."""

    model_config = ConfigDict(frozen=True)

    applied: int
    """Events matched to a tracked message (re-sent ones included: they change nothing)."""
    pending: list[str]
    """External ids no tracked message has; their events were parked for `track` to adopt."""
    updated: list[str]
    """The id (WhatsApp id, else contact-center id) of each message the batch touched, once,
    in the order of its first event."""


class TrackBatchResult(BaseModel):
    """What `track_batch` did. Counts and input positions only, so a burst stays cheap (no
    record is built); `get` a record when you need it."""

    model_config = ConfigDict(frozen=True)

    new: int
    """Messages the batch started tracking."""
    duplicates: list[int]
    """Positions (in the input) of the messages that were tracked already, or repeated an
    earlier input's id: they wrote nothing."""


class _Touched(NamedTuple):
    """A message a batch touched, as the batch statement reports it."""

    id: int
    meta_message_id: str | None
    genesys_message_id: str | None


class _Event(NamedTuple):
    """A validated status event, ready to bind (a tuple: a batch makes a thousand)."""

    ext: str
    status: DeliveryStatus
    at: datetime
    error: MessageError | None
    payload: dict[str, Any] | None

    def error_field(self, name: str) -> Any:
        return None if self.error is None else getattr(self.error, name)


# --------------------------------------------------------------------------- PostgreSQL SQL


def _sql_rank(expression: str) -> str:
    """`CASE` giving the rank (`STATUS_RANK`) of a status expression; any SQL dialect."""
    whens = " ".join(f"WHEN '{status.value}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"(CASE {expression} {whens} END)"


def _sql_status(expression: str) -> str:
    """`CASE` giving the status of a rank expression: the inverse of `_sql_rank`."""
    whens = " ".join(f"WHEN {rank} THEN '{status.value}'" for status, rank in STATUS_RANK.items())
    return f"(CASE {expression} {whens} END)"


_PG_ROW = ", ".join(column.name for column in _T.columns)
_PG_ERROR_COLUMNS = ", ".join(f"error_{name}" for name in _ERROR_FIELDS)

# Batches travel as one JSON document (json.dumps runs in C; a dozen Python-dumped arrays of a
# thousand elements each do not), unpacked by the server in the statement itself.
_PG_JSON_EVENTS = """
    SELECT x ->> 0 AS ext, x ->> 1 AS status, CAST(x ->> 2 AS timestamptz) AS at,
        CAST(x ->> 3 AS int) AS error_code, x ->> 4 AS error_title, x ->> 5 AS error_message,
        x ->> 6 AS error_details,
        CASE WHEN jsonb_typeof(x -> 7) = 'object' THEN x -> 7 END AS payload,
        ord
    FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e(x, ord)
"""


def _pg_merged_payloads(source: str, key: str) -> str:
    """Per (`key`, status) of `source` events: their payloads merged, each key's value from the
    earliest event carrying it, so a later event of a status still contributes what the
    earliest one lacked."""
    return f"""
    SELECT {key}, status, jsonb_object_agg(k, v) AS payload FROM (
        SELECT DISTINCT ON ({key}, status, j.k) {key}, status, j.k, j.v
        FROM {source}, jsonb_each({source}.payload) AS j(k, v)
        ORDER BY {key}, status, j.k, at, ord
    ) keyed GROUP BY {key}, status
    """  # noqa: S608


def _pg_first_events(source: str, key: str) -> str:
    """Per (`key`, status) of `source`: the earliest event, with the payloads of all merged."""
    return f"""
    SELECT f.*, m.payload FROM (
        SELECT DISTINCT ON ({key}, status) {key}, status, at, {_PG_ERROR_COLUMNS}
        FROM {source} ORDER BY {key}, status, at, ord
    ) f LEFT JOIN ({_pg_merged_payloads(source, key)}) m USING ({key}, status)
    """  # noqa: S608


def _pg_keep_earliest(alias: str) -> str:
    """The ON CONFLICT action of history and parked events: earliest time and error win,
    payloads merge (the earlier row's values first); an event that adds nothing writes nothing.
    """
    earlier = f"excluded.occurred_at < {alias}.occurred_at"
    old = f"COALESCE({alias}.payload, '{{}}'::jsonb)"
    new = "COALESCE(excluded.payload, '{}'::jsonb)"
    errors = ",\n".join(
        f"error_{n} = CASE WHEN {earlier} THEN excluded.error_{n} ELSE {alias}.error_{n} END"
        for n in _ERROR_FIELDS
    )
    return f"""DO UPDATE SET
        occurred_at = LEAST({alias}.occurred_at, excluded.occurred_at),
        {errors},
        payload = NULLIF(CASE WHEN {earlier} THEN {old} || {new} ELSE {new} || {old} END,
                         '{{}}'::jsonb)
    WHERE {earlier} OR NOT ({old} @> {new})"""


def _pg_apply_sql(events: str, returning: str, final: str) -> str:
    """One statement: match `events` to messages, apply the rule per message, append history;
    the updated rows are `upd`, with the `returning` columns, and `final` is the closing SELECT.

    Every "earliest" is taken once, by `DISTINCT ON` over one sort (`firsts`: the earliest
    event per message and status, which is also the history row), and the per-message values
    are plain aggregates over those: no ordered aggregate, which would sort once per message
    and aggregate.
    """
    per_status = ",\n".join(
        f"min(at) FILTER (WHERE status = '{s.value}') AS {s.timestamp_field}"
        for s in DeliveryStatus
    )
    # `firsts` has one row per (message, status): the earliest failure's error is the value
    # of the message's one `failed` row.
    first_error = ",\n".join(
        f"max(error_{name}) FILTER (WHERE status = '{_FAILED}') AS error_{name}"
        for name in _ERROR_FIELDS
    )
    earlier_failure = (
        "a.failed_at IS NOT NULL AND (t.failed_at IS NULL OR a.failed_at < t.failed_at)"
    )
    set_times = ",\n".join(f"{c} = LEAST(t.{c}, a.{c})" for c in _AT_COLUMNS)
    set_errors = ",\n".join(
        f"error_{name} = CASE WHEN {earlier_failure} THEN a.error_{name} ELSE t.error_{name} END"
        for name in _ERROR_FIELDS
    )
    changed = " OR ".join(
        [f"a.top_rank > {_sql_rank('t.status')}"]
        + [f"a.{c} < COALESCE(t.{c}, 'infinity')" for c in _AT_COLUMNS]
        + [
            "(t.pricing IS NULL AND a.pricing IS NOT NULL)",
            "(t.conversation_info IS NULL AND a.conversation IS NOT NULL)",
            "(t.biz_opaque_callback_data IS NULL AND a.callback IS NOT NULL)",
        ]
    )
    kept_keys = ", ".join(f"'{key}'" for key in ("pricing", "conversation", _CALLBACK))
    # Built from this module's constants and DeliveryStatus values only: no input reaches it.
    return f"""
WITH ev AS ({events}),
hit AS (
    SELECT ev.*, {_sql_rank("ev.status")} AS rank, m.id AS message_id
    FROM ev CROSS JOIN LATERAL (
        -- Two probes, each an equality on a whole unique key (the WhatsApp id first), rather
        -- than an OR the planner may answer by scanning the tenant's rows.
        (SELECT t.id FROM message_tracking t
         WHERE t.tenant_id = :tenant AND t.meta_message_id = ev.ext)
        UNION ALL
        (SELECT t.id FROM message_tracking t
         WHERE t.tenant_id = :tenant AND t.genesys_message_id = ev.ext)
        LIMIT 1
    ) m
),
firsts AS (
    SELECT DISTINCT ON (message_id, status) message_id, status, rank, at, {_PG_ERROR_COLUMNS}
    FROM hit ORDER BY message_id, status, at, ord
),
-- The record keeps each payload key of the earliest event (time, then rank) carrying it.
kept AS (
    SELECT message_id, jsonb_object_agg(k, v) AS kept FROM (
        SELECT DISTINCT ON (message_id, j.k) message_id, j.k, j.v
        FROM hit, jsonb_each(hit.payload) AS j(k, v)
        WHERE j.k IN ({kept_keys})
        ORDER BY message_id, j.k, at, rank, ord
    ) keyed GROUP BY message_id
),
agg AS (
    SELECT f.message_id, f.top_rank, f.{", f.".join(_AT_COLUMNS)},
        f.{", f.".join(f"error_{name}" for name in _ERROR_FIELDS)},
        k.kept -> 'pricing' AS pricing, k.kept -> 'conversation' AS conversation,
        k.kept ->> '{_CALLBACK}' AS callback
    FROM (
        SELECT message_id, max(rank) AS top_rank, {per_status}, {first_error}
        FROM firsts GROUP BY message_id
    ) f LEFT JOIN kept k USING (message_id)
    -- Fed to the UPDATE in id order, so concurrent batches normally lock rows in one order.
    ORDER BY f.message_id
),
upd AS (
    UPDATE message_tracking t SET
        status = CASE WHEN a.top_rank > {_sql_rank("t.status")} THEN {_sql_status("a.top_rank")}
                      ELSE t.status END,
        {set_times},
        {set_errors},
        pricing = COALESCE(t.pricing, a.pricing),
        conversation_info = COALESCE(t.conversation_info, a.conversation),
        biz_opaque_callback_data = COALESCE(t.biz_opaque_callback_data, a.callback),
        updated_at = CASE WHEN {changed} THEN :now ELSE t.updated_at END
    FROM agg a
    -- By primary key only: `hit` found these ids within the tenant, and a tenant predicate here
    -- invites the planner to scan the tenant's rows instead.
    WHERE t.id = a.message_id
    RETURNING {returning}
),
history AS (
    INSERT INTO message_status_events AS h
        (tenant_id, message_id, status, occurred_at, recorded_at, {_PG_ERROR_COLUMNS}, payload)
    SELECT :tenant, f.message_id, f.status, f.at, :now, {_PG_ERROR_COLUMNS}, m.payload
    FROM firsts f LEFT JOIN ({_pg_merged_payloads("hit", "message_id")}) m
        USING (message_id, status)
    ON CONFLICT (tenant_id, message_id, status) {_pg_keep_earliest("h")}
)
{final}
"""  # noqa: S608


def _one_event_sets(t: str) -> str:
    """The SET list applying one event — the columns of `e`: status, at, now, error_*, pricing,
    conversation, callback — to the row `t`. PostgreSQL's `update_status` and SQLite share it."""
    rises = f"{_sql_rank('e.status')} > {_sql_rank(f'{t}.status')}"
    newly = {
        s: f"(e.status = '{s.value}' AND ({t}.{s.timestamp_field} IS NULL"
        f" OR e.at < {t}.{s.timestamp_field}))"
        for s in DeliveryStatus
    }
    first_failure = newly[DeliveryStatus.FAILED]
    kept = {"pricing": "pricing", "conversation_info": "conversation"}
    kept["biz_opaque_callback_data"] = "callback"
    changed = " OR ".join(
        [rises, *newly.values()]
        + [f"({t}.{column} IS NULL AND e.{field} IS NOT NULL)" for column, field in kept.items()]
    )
    return ",\n        ".join(
        [f"status = CASE WHEN {rises} THEN e.status ELSE {t}.status END"]
        + [
            f"{s.timestamp_field} = CASE WHEN {newly[s]} THEN e.at ELSE {t}.{s.timestamp_field} END"
            for s in DeliveryStatus
        ]
        + [
            f"error_{n} = CASE WHEN {first_failure} THEN e.error_{n} ELSE {t}.error_{n} END"
            for n in _ERROR_FIELDS
        ]
        + [f"{column} = COALESCE({t}.{column}, e.{field})" for column, field in kept.items()]
        + [f"updated_at = CASE WHEN {changed} THEN e.now ELSE {t}.updated_at END"]
    )


def _pg_apply_one_sql(status: DeliveryStatus) -> str:
    """One event of `status` given as scalars (`update_status`): find, update, append history.

    The rule without the batch's aggregation, for the latency of a single webhook, written for
    one status: its rank is a constant, and only its own timestamp (and, for `failed`, the
    error) can change. Short enough for psycopg to cache its parsing, too (4 kB at most).
    """
    at = status.timestamp_field
    below = [f"'{s.value}'" for s, rank in STATUS_RANK.items() if rank < status.rank]
    rises = f"t.status IN ({', '.join(below)})" if below else "FALSE"
    newly = f"(t.{at} IS NULL OR CAST(:at AS timestamptz) < t.{at})"
    sets = [
        f"status = CASE WHEN {rises} THEN '{status.value}' ELSE t.status END",
        f"{at} = LEAST(t.{at}, CAST(:at AS timestamptz))",  # LEAST skips NULL
    ]
    if status is DeliveryStatus.FAILED:
        sets += [
            f"error_{n} = CASE WHEN {newly} THEN :error_{n} ELSE t.error_{n} END"
            for n in _ERROR_FIELDS
        ]
    sets.append(f"updated_at = CASE WHEN {rises} OR {newly} THEN :now ELSE t.updated_at END")
    set_list = ",\n        ".join(sets)
    return f"""
WITH target AS (
    (SELECT id FROM message_tracking WHERE tenant_id = :tenant AND meta_message_id = :ext)
    UNION ALL
    (SELECT id FROM message_tracking WHERE tenant_id = :tenant AND genesys_message_id = :ext)
    LIMIT 1
),
upd AS (
    UPDATE message_tracking t SET
        {set_list}
    FROM target WHERE t.id = target.id
    RETURNING t.*
),
history AS (
    INSERT INTO message_status_events AS h
        (tenant_id, message_id, status, occurred_at, recorded_at, {_PG_ERROR_COLUMNS}, payload)
    SELECT :tenant, upd.id, '{status.value}', :at, :now,
        CAST(:error_code AS int), :error_title, :error_message, :error_details, NULL
    FROM upd
    ON CONFLICT (tenant_id, message_id, status) {_pg_keep_earliest("h")}
)
SELECT {_PG_ROW} FROM upd
"""  # noqa: S608


# A batch answers with one row of three arrays (the touched messages' ids), so it runs as a
# prepared statement on the driver, pipelined with its transaction's BEGIN.
_PG_APPLY = Prepared(
    text(
        _pg_apply_sql(
            _PG_JSON_EVENTS,
            "t.id, t.meta_message_id, t.genesys_message_id",
            "SELECT array_agg(id), array_agg(meta_message_id), array_agg(genesys_message_id)"
            " FROM upd",
        )
    )
)
_PG_SELECT_ROWS = f"SELECT {_PG_ROW} FROM upd"  # noqa: S608
_PG_APPLY_ROWS = text(_pg_apply_sql(_PG_JSON_EVENTS, "t.*", _PG_SELECT_ROWS)).columns(*_T.columns)
_PG_APPLY_ONE = {
    status: Prepared(text(_pg_apply_one_sql(status)).columns(*_T.columns))
    for status in DeliveryStatus
}

# Adoption (after `track` inserted messages) must run in statements of its own, after the
# insert: events parked while the insert waited on a probe row are visible only to a statement
# that starts after the wait. First a cheap look (planned in microseconds; the apply statement
# takes a third of a millisecond to plan, for nothing in the common case), then, only if events
# are parked, one statement taking and applying them, answering with one row: the ids of the
# messages it changed. Every event it takes resolves to a message: its id was just tracked.
# No event can be parked for these ids after the look: a parker's probe row would conflict
# with the uncommitted insert and wait for it, then find the message tracked.
_PG_PARKED_EXIST = Prepared(
    text(
        "SELECT EXISTS (SELECT FROM pending_status_events"
        " WHERE tenant_id = :tenant AND external_id = ANY(string_to_array(:ids, ' ')))"
    )
)
_PG_TAKE_PARKED = f"""
    DELETE FROM pending_status_events
    WHERE tenant_id = :tenant AND external_id = ANY(string_to_array(:ids, ' '))
    RETURNING external_id AS ext, status, occurred_at AS at, {_PG_ERROR_COLUMNS}, payload,
        id AS ord
"""  # noqa: S608
_PG_ADOPT = Prepared(text(_pg_apply_sql(_PG_TAKE_PARKED, "t.id", "SELECT array_agg(id) FROM upd")))

_PG_PROBE = text(
    """
INSERT INTO message_tracking
    (tenant_id, meta_message_id, genesys_message_id, direction, status, message_type,
     created_at, updated_at)
SELECT :tenant, x, x, 'outbound', 'queued', 'unknown', :now, :now
FROM unnest(CAST(:ids AS text[])) AS x ORDER BY x
ON CONFLICT DO NOTHING
RETURNING id, meta_message_id
"""
)

_PG_PARK = text(
    f"""
WITH ev AS ({_PG_JSON_EVENTS}),
probes_gone AS (
    DELETE FROM message_tracking
    WHERE tenant_id = :tenant AND id = ANY(CAST(:probe_ids AS bigint[]))
)
INSERT INTO pending_status_events AS p
    (tenant_id, external_id, status, occurred_at, recorded_at, {_PG_ERROR_COLUMNS}, payload)
SELECT :tenant, ext, status, at, :now, {_PG_ERROR_COLUMNS}, payload
FROM ({_pg_first_events("ev", "ext")}) firsts
ON CONFLICT (tenant_id, external_id, status) {_pg_keep_earliest("p")}
"""  # noqa: S608
)

_INSERT_COLUMNS = [
    "meta_message_id",
    "genesys_message_id",
    "conversation_id",
    "wa_id",
    "direction",
    "status",
    "message_type",
    "media_type",
    "media_url",
    "media_id",
    "media_mime_type",
    "media_sha256",
    "media_filename",
    "media_caption",
    "error_code",
    "error_title",
    "error_message",
    "error_details",
    "biz_opaque_callback_data",
]
_INSERT_CASTS = {"error_code": "int"}
_INSERT_FIELDS = ",\n        ".join(
    f"CAST(x ->> {i} AS {_INSERT_CASTS[c]}) AS {c}" if c in _INSERT_CASTS else f"x ->> {i} AS {c}"
    for i, c in enumerate(_INSERT_COLUMNS)
)


def _pg_insert_sql(arbiter: str) -> str:
    """The batch insert, answering with one row: how many rows it inserted (and which, if
    not all)."""
    return f"""
WITH r AS (
    SELECT {_INSERT_FIELDS},
        CAST(x ->> {len(_INSERT_COLUMNS)} AS timestamptz) AS at, ord
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS e(x, ord)
),
ins AS (
    INSERT INTO message_tracking
        (tenant_id, {", ".join(_INSERT_COLUMNS)}, {", ".join(_AT_COLUMNS)}, created_at, updated_at)
    SELECT :tenant, {", ".join(f"r.{c}" for c in _INSERT_COLUMNS)},
        {", ".join(f"CASE WHEN r.status = '{s.value}' THEN r.at END" for s in DeliveryStatus)},
        :now, :now
    FROM r ORDER BY r.ord
    ON CONFLICT {arbiter} DO NOTHING
    RETURNING meta_message_id, genesys_message_id
)
-- The ids only when some input was a duplicate: otherwise every input is new.
SELECT count(*),
    CASE WHEN count(*) < :n THEN array_agg(meta_message_id) END,
    CASE WHEN count(*) < :n THEN array_agg(genesys_message_id) END
FROM ins
"""  # noqa: S608


# Keyed by which ids the batch has. A unique index whose column is NULL in every row cannot
# conflict (NULLs are distinct), nor can the primary key (a sequence): naming the one index
# that can saves checking the others for every row. Both ids present: every unique index.
_PG_INSERT = {
    (True, False): Prepared(text(_pg_insert_sql("(tenant_id, meta_message_id)"))),
    (False, True): Prepared(text(_pg_insert_sql("(tenant_id, genesys_message_id)"))),
    (True, True): Prepared(text(_pg_insert_sql(""))),
}

# One message (`track`): plain parameters, no document to unpack. Text, because SQLAlchemy
# does not cache the compiled form of a dialect `insert()` and would compile it on every call.
_ROW_COLUMNS = [column for column in _T.columns if column.name != "id"]
_PG_INSERT_ONE = Prepared(
    text(
        f"""
INSERT INTO message_tracking ({", ".join(c.name for c in _ROW_COLUMNS)})
VALUES ({", ".join(f":{c.name}" for c in _ROW_COLUMNS)})
ON CONFLICT DO NOTHING
RETURNING id
"""  # noqa: S608
    ).bindparams(*(bindparam(c.name, type_=c.type) for c in _ROW_COLUMNS))
)

# --------------------------------------------------------------------------- SQLite statements


def _rank(expression: ColumnElement[Any]) -> ColumnElement[int]:
    return case({status.value: rank for status, rank in STATUS_RANK.items()}, value=expression)


# Text with each parameter written once: SQLite's positional parameters would otherwise repeat
# (and re-process) the event's time for every CASE, and SQLAlchemy does not cache the compiled
# form of a dialect `insert()`.
_LITE_APPLY_ONE = text(
    f"""
UPDATE message_tracking AS t SET
        {_one_event_sets("t")}
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


def _lite_keep_earliest(table: Table, key: str) -> TextClause:
    """SQLite's version of `_pg_keep_earliest`: an upsert into `table` keyed by
    (tenant_id, `key`, status)."""
    name = table.name
    earlier = f"excluded.occurred_at < {name}.occurred_at"
    old, new = f"COALESCE({name}.payload, '{{}}')", "COALESCE(excluded.payload, '{}')"
    errors = ",\n    ".join(
        f"error_{n} = CASE WHEN {earlier} THEN excluded.error_{n} ELSE {name}.error_{n} END"
        for n in _ERROR_FIELDS
    )
    columns = ["tenant_id", key, "status", "occurred_at", "recorded_at"]
    columns += [f"error_{n}" for n in _ERROR_FIELDS] + ["payload"]
    return text(
        f"""
INSERT INTO {name} ({", ".join(columns)}) VALUES ({", ".join(f":{c}" for c in columns)})
ON CONFLICT (tenant_id, {key}, status) DO UPDATE SET
    occurred_at = CASE WHEN {earlier} THEN excluded.occurred_at ELSE {name}.occurred_at END,
    {errors},
    payload = NULLIF(CASE WHEN {earlier} THEN json_patch({old}, {new})
                          ELSE json_patch({new}, {old}) END, '{{}}')
WHERE {earlier} OR excluded.payload IS NOT NULL
"""  # noqa: S608
    ).bindparams(
        bindparam("occurred_at", type_=UTCDateTime()),
        bindparam("recorded_at", type_=UTCDateTime()),
        bindparam("payload", type_=MessageJSON),
    )


_LITE_HISTORY = _lite_keep_earliest(_H, "message_id")
_LITE_PARK = _lite_keep_earliest(_P, "external_id")
_LITE_INSERT = _T.insert()

# --------------------------------------------------------------------------- shared reads

_tenant = bindparam("tenant", type_=String())
_ids: BindParameter[Any] = bindparam("ids", expanding=True)
_one_id = bindparam("message_id", type_=String())

_ROWS_BY_IDS = select(_T).where(
    _T.c.tenant_id == _tenant,
    or_(_T.c.meta_message_id.in_(_ids), _T.c.genesys_message_id.in_(_ids)),
)
_ROWS_BY_PKS = select(_T).where(_T.c.tenant_id == _tenant, _T.c.id.in_(_ids))


def _resolve_one() -> Any:
    """The row a message id names: its WhatsApp id first, else its contact-center id (two
    probes, each an equality on a whole unique key)."""
    by_meta = select(_T.c.id).where(_T.c.tenant_id == _tenant, _T.c.meta_message_id == _one_id)
    by_genesys = select(_T.c.id).where(
        _T.c.tenant_id == _tenant, _T.c.genesys_message_id == _one_id
    )
    return union_all(by_meta, by_genesys).limit(1).scalar_subquery()


_GET = select(_T).where(_T.c.tenant_id == _tenant, _T.c.id == _resolve_one())

_HISTORY = (
    select(_H, _T.c.meta_message_id, _T.c.genesys_message_id)
    .join(_T, _T.c.id == _H.c.message_id)
    .where(_H.c.tenant_id == _tenant, _H.c.message_id == _resolve_one())
    .order_by(_H.c.occurred_at, _rank(_H.c.status))
)

_PENDING = (
    select(_P)
    .where(_P.c.tenant_id == _tenant, _P.c.external_id == _one_id)
    .order_by(_P.c.occurred_at, _rank(_P.c.status))
)
_TAKE_PARKED = (
    delete(_P).where(_P.c.tenant_id == _tenant, _P.c.external_id.in_(_ids)).returning(*_P.columns)
)

_cursor_created = bindparam("cursor_created", type_=UTCDateTime())
_cursor_pk = bindparam("cursor_pk", type_=BigInteger())
_PAGE = (
    select(_T)
    .where(_T.c.tenant_id == _tenant, _T.c.conversation_id == bindparam("conversation_id"))
    .order_by(_T.c.created_at.desc(), _T.c.id.desc())
    .limit(bindparam("limit"))
)
_PAGE_BEFORE = _PAGE.where(
    or_(
        _T.c.created_at < _cursor_created,
        and_(_T.c.created_at == _cursor_created, _T.c.id < _cursor_pk),
    )
)
_CURSOR = select(_T.c.created_at, _T.c.id).where(
    _T.c.tenant_id == _tenant, _T.c.id == _resolve_one()
)


def _purge_oldest(table: Table, time_column: str) -> Delete:
    """Delete the tenant's rows whose `time_column` is before :cutoff, oldest first, :limit."""
    moment = table.c[time_column]
    oldest = (
        select(table.c.id)
        .where(table.c.tenant_id == _tenant, moment < bindparam("cutoff", type_=UTCDateTime()))
        .order_by(moment)
        .limit(bindparam("limit"))
        .scalar_subquery()
    )
    return delete(table).where(table.c.tenant_id == _tenant, table.c.id.in_(oldest))


_PURGE_PENDING = _purge_oldest(_P, "recorded_at")
# The status history goes with its message (ON DELETE CASCADE).
_PURGE = _purge_oldest(_T, "created_at")


# --------------------------------------------------------------------------- conversions


def _to_model(row: Row[Any], *, created: bool = False) -> TrackedMessage:
    """A stored row as a `TrackedMessage`."""
    values = row._mapping
    data = {name: values[name] for name in _MODEL_COLUMNS}
    data["created"] = created
    return TrackedMessage.model_validate(data)


_ROW_NAMES = [column.name for column in _T.columns]


def _tuple_to_model(row: Sequence[Any]) -> TrackedMessage:
    """A whole row from the driver (a tuple in `_T.columns` order) as a `TrackedMessage`."""
    data = dict(zip(_ROW_NAMES, row, strict=True))
    del data["id"]
    return TrackedMessage.model_validate(data)


def _row_values(item: NewMessage, tenant: str, now: datetime) -> dict[str, Any]:
    """The `message_tracking` row `track` inserts for `item` (without its id)."""
    data = _insert_values(item, now)
    at = data.pop("at")
    data.update(dict.fromkeys(_AT_COLUMNS), pricing=None, conversation_info=None)
    data[item.status.timestamp_field] = at
    data.update(tenant_id=tenant, created_at=now, updated_at=now)
    return data


_OPTIONAL_FIELDS = (
    "wa_id",
    "media_type",
    "media_url",
    "media_id",
    "media_mime_type",
    "media_sha256",
    "media_filename",
    "media_caption",
    "biz_opaque_callback_data",
)
_AT_FIELD = {status: status.timestamp_field for status in DeliveryStatus}


def _as_inserted(item: NewMessage, tenant: str, now: datetime) -> TrackedMessage:
    """The record `track` just inserted for `item`, without reading it back."""
    return TrackedMessage.model_validate(_inserted_data(item, tenant, now))


_RECORDS = TypeAdapter(list[TrackedMessage])


def _all_inserted(items: list[NewMessage], tenant: str, now: datetime) -> list[TrackedMessage]:
    """`_as_inserted` for a batch, validated in one call (a fifth cheaper than one by one)."""
    return _RECORDS.validate_python([_inserted_data(item, tenant, now) for item in items])


def _inserted_data(item: NewMessage, tenant: str, now: datetime) -> dict[str, Any]:
    """The `TrackedMessage` fields of `item` just inserted.

    Only the fields that have a value are given: the others take the model's default (None)
    unvalidated, which halves the cost of a batch's records.
    """
    data: dict[str, Any] = {
        "tenant_id": tenant,
        "meta_message_id": item.meta_message_id,
        "genesys_message_id": item.genesys_message_id,
        "conversation_id": item.conversation_id,
        "direction": item.direction,
        "status": item.status,
        "message_type": item.message_type,
        _AT_FIELD[item.status]: now if item.occurred_at is None else as_utc(item.occurred_at),
        "created_at": now,
        "updated_at": now,
        "created": True,
    }
    for name in _OPTIONAL_FIELDS:
        value = getattr(item, name)
        if value is not None:
            data[name] = value
    error = item.error
    if error is not None:
        for name in _ERROR_FIELDS:
            data[f"error_{name}"] = getattr(error, name)
    return data


def _event_payload(event: StatusEvent) -> dict[str, Any] | None:
    payload = None
    for key in _PAYLOAD_KEYS:
        value = getattr(event, key)
        if value is not None:
            if payload is None:
                payload = {}
            payload[key] = value
    return payload


def _status_entry(values: Mapping[Any, Any], message_id: str) -> StatusEvent:
    """A history or parked-event row as the `StatusEvent` it records."""
    payload = values["payload"] or {}
    error = None
    if any(values[f"error_{name}"] is not None for name in _ERROR_FIELDS):
        error = MessageError(**{name: values[f"error_{name}"] for name in _ERROR_FIELDS})
    return StatusEvent(
        message_id=message_id,
        status=DeliveryStatus(values["status"]),
        at=as_utc(values["occurred_at"]),
        error=error,
        **{key: payload.get(key) for key in _PAYLOAD_KEYS},
    )


def _sequence(values: object, field: str) -> list[Any]:
    """A batch argument as a list: any iterable of items, but not a str or a single mapping."""
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise InvalidInput(field, f"must be a list, got {type(values).__name__}")
    return list(values)


def _require_aware(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "must be timezone-aware")
    return as_utc(value)


def _new_message(value: NewMessage | Mapping[str, Any], field: str) -> NewMessage:
    """A validated `NewMessage`; ids checked, `wa_id` normalised. Else `InvalidInput`."""
    if isinstance(value, NewMessage):
        message = value
    elif isinstance(value, Mapping):
        try:
            message = NewMessage.model_validate(value)
        except ValidationError as exc:
            raise invalid_input_from(exc, prefix=field) from exc
    else:
        raise InvalidInput(field, f"must be a NewMessage, got {type(value).__name__}")
    for name in ("meta_message_id", "genesys_message_id"):
        external = getattr(message, name)
        if external is not None:
            require_external_id(external, field=f"{field}.{name}")
    if message.wa_id is not None:
        wa_id = normalize_wa_id(message.wa_id, field=f"{field}.wa_id")
        if wa_id != message.wa_id:
            message = message.model_copy(update={"wa_id": wa_id})
    return message


def _status_event(value: StatusEvent | Mapping[str, Any], index: int, now: datetime) -> _Event:
    """`events[index]` validated; `InvalidInput` naming its path if it is not valid."""
    if isinstance(value, StatusEvent):
        event = value
    elif isinstance(value, Mapping):
        try:
            event = StatusEvent.model_validate(value)
        except ValidationError as exc:
            raise invalid_input_from(exc, prefix=f"events[{index}]") from exc
    else:
        raise InvalidInput(f"events[{index}]", f"must be a StatusEvent, got {type(value).__name__}")
    try:
        ext = require_external_id(event.message_id, field="message_id")
    except InvalidInput:  # named with its path, a string built only for a bad id
        require_external_id(event.message_id, field=f"events[{index}].message_id")
        raise
    at = now if event.at is None else as_utc(event.at)
    return _Event(ext, event.status, at, event.error, _event_payload(event))


def _sort_key(item: NewMessage) -> tuple[str, str]:
    """The order batches insert in, the same in every process (so they lock in one order)."""
    return (item.meta_message_id or "", item.genesys_message_id or "")


def _ids_of(item: NewMessage | Row[Any] | _Touched) -> list[str]:
    return [x for x in (item.meta_message_id, item.genesys_message_id) if x is not None]


def _keys_of(item: NewMessage | Row[Any] | TrackedMessage) -> list[tuple[str, str]]:
    """The unique keys a message claims: its WhatsApp id and its contact-center id, each in its
    own namespace (as the two unique constraints have it)."""
    keys = []
    if item.meta_message_id is not None:
        keys.append(("meta", item.meta_message_id))
    if item.genesys_message_id is not None:
        keys.append(("genesys", item.genesys_message_id))
    return keys


# --------------------------------------------------------------------------- the repository


class MessageRepository:
    """Tracked WhatsApp messages of one tenant, by WhatsApp id (`wamid…`) or contact-center id.

    Every method accepts either external id. Writes run in the unit of work's transaction.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._postgres = db.dialect_name == "postgresql"

    # ----------------------------------------------------------------- tracking

    @atomic
    def track(self, message: NewMessage | Mapping[str, Any]) -> TrackedMessage:
        """Start tracking `message`; idempotent on either external id within the tenant.

        A duplicate (either id already tracked) returns the stored record with `created=False`
        and writes nothing; ids that contradict the stored record's raise `Conflict`. A new
        record adopts any status events parked for its ids (see `update_status`). The status
        given here is the record's first (with its time); the history holds status events.
        """
        if self._postgres:  # the latency path: no batch bookkeeping for a new message
            item = _new_message(message, "messages[0]")
            now = self._db.now()
            tenant = self._db.tenant_id
            if self._db.write_first(_PG_INSERT_ONE, _row_values(item, tenant, now)) is not None:
                ids = (item.meta_message_id, item.genesys_message_id)
                for row in self._adopt(_ids_of(item), now):
                    # (An id parked for may also be another message's other id, which it names
                    # first: that message's row comes back too.)
                    if (row.meta_message_id, row.genesys_message_id) == ids:
                        return _to_model(row, created=True)
                return _as_inserted(item, tenant, now)
            return self._results([item], set(), {}, now)[0]
        return self.track_many([message])[0]

    @atomic
    def track_many(
        self, messages: Iterable[NewMessage | Mapping[str, Any]]
    ) -> list[TrackedMessage]:
        """`track` for a batch: one INSERT (PostgreSQL) or one `executemany` (SQLite), then one
        look for parked events to adopt.

        Returns one record per input, in input order; an input repeating an earlier one's id is
        a duplicate of it. For bursts whose records you do not need, `track_batch` is faster.
        """
        items, created, adopted, now = self._track(messages)
        return self._results(items, created, adopted, now) if items else []

    @atomic
    def track_batch(self, messages: Iterable[NewMessage | Mapping[str, Any]]) -> TrackBatchResult:
        """`track_many` without the records: the same writes and checks (a duplicate whose ids
        contradict the stored message's raises `Conflict`), answering with counts only.

        Building a thousand records costs as much as a fifth of inserting them; a webhook
        burst rarely needs them.
        """
        items, created, adopted, now = self._track(messages)
        duplicates = [index for index in range(len(items)) if index not in created]
        if duplicates:  # a retried burst: check them against what is stored
            self._results(items, created, adopted, now)
        return TrackBatchResult(new=len(created), duplicates=duplicates)

    def _track(
        self, messages: Iterable[NewMessage | Mapping[str, Any]]
    ) -> tuple[list[NewMessage], set[int], dict[tuple[str, str], Row[Any]], datetime]:
        """Validate, insert what is new, adopt parked events: (items, the indexes inserted,
        the adopted rows by key, the time)."""
        items = [
            _new_message(value, f"messages[{index}]")
            for index, value in enumerate(_sequence(messages, "messages"))
        ]
        now = self._db.now()
        if not items:
            return items, set(), {}, now
        insert = self._pg_insert if self._postgres else self._lite_insert
        created = insert(items, now)
        adopted: dict[tuple[str, str], Row[Any]] = {}
        if created:
            ids = list({x for index in created for x in _ids_of(items[index])})
            for row in self._adopt(ids, now):
                for key in _keys_of(row):
                    adopted[key] = row
        return items, created, adopted, now

    def _results(
        self,
        items: list[NewMessage],
        created: set[int],
        adopted: dict[tuple[str, str], Row[Any]],
        now: datetime,
    ) -> list[TrackedMessage]:
        """One record per input: what it inserted (created), or the stored one (duplicate)."""
        tenant = self._db.tenant_id
        if not adopted and len(created) == len(items):  # all new, nothing parked: the usual
            return _all_inserted(items, tenant, now)
        results: list[TrackedMessage | None] = [None] * len(items)
        records: dict[tuple[str, str], TrackedMessage] = {}  # by key: created, then stored
        for index in sorted(created):
            item = items[index]
            row = next((adopted[k] for k in _keys_of(item) if k in adopted), None)
            record = (
                _as_inserted(item, tenant, now) if row is None else _to_model(row, created=True)
            )
            results[index] = record
            for key in _keys_of(item):
                records[key] = record
        missing = sorted(
            {k for i, item in enumerate(items) if i not in created for k in _keys_of(item)}
            - records.keys()
        )
        if missing:
            ids = sorted({external for _, external in missing})
            for row in self._db.read(_ROWS_BY_IDS, {"tenant": tenant, "ids": ids}):
                record = _to_model(row)
                for key in _keys_of(row):
                    records.setdefault(key, record)
        for index, item in enumerate(items):
            if results[index] is not None:
                continue
            found = next((records[k] for k in _keys_of(item) if k in records), None)
            if found is None:  # pragma: no cover - deleted between the insert and the read
                raise Conflict(f"messages[{index}]: tracked concurrently and deleted again")
            _check_same_message(item, found, index)
            results[index] = found.model_copy(update={"created": False}) if found.created else found
        return [record for record in results if record is not None]

    def _pg_insert(self, items: list[NewMessage], now: datetime) -> set[int]:
        """Insert the new items in one statement; the indexes of the items it inserted."""
        tenant = self._db.tenant_id
        if len(items) == 1:
            values = _row_values(items[0], tenant, now)
            return {0} if self._db.write_first(_PG_INSERT_ONE, values) is not None else set()
        # Sorted by id so concurrent batches take the unique-index locks in one order.
        order = sorted(range(len(items)), key=lambda i: _sort_key(items[i]))
        rows = json.dumps([_insert_row(items[i], now) for i in order], separators=(",", ":"))
        has_meta = any(item.meta_message_id is not None for item in items)
        has_genesys = any(item.genesys_message_id is not None for item in items)
        statement = _PG_INSERT[has_meta, has_genesys]
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

    def _lite_insert(self, items: list[NewMessage], now: datetime) -> set[int]:
        tenant = self._db.tenant_id
        ids = sorted({x for item in items for x in _ids_of(item)})
        # A write first: the transaction holds SQLite's write lock from the check on, so nothing
        # can be tracked between it and the insert.
        taken = {
            key
            for row in self._db.write(_ROWS_BY_IDS, {"tenant": tenant, "ids": ids})
            for key in _keys_of(row)
        }
        created: set[int] = set()
        fresh: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            mine = _keys_of(item)
            if any(key in taken for key in mine):
                continue
            taken.update(mine)
            created.add(index)
            fresh.append(_row_values(item, tenant, now))
        if fresh:
            self._db.write(_LITE_INSERT, fresh)
        return created

    def _adopt(self, ids: list[str], now: datetime) -> list[Row[Any]]:
        """Take the events parked for these (just tracked) ids and apply them; changed rows.

        Its own statements, after the insert: on PostgreSQL, events parked while the insert
        waited on a probe row are visible only to a statement that starts after the wait.
        """
        tenant = self._db.tenant_id
        if self._postgres:
            # The ids as one space-separated string (they hold no spaces: `require_external_id`):
            # joined in C, where psycopg would dump a list of a thousand in Python.
            params = {"tenant": tenant, "ids": " ".join(ids)}
            parked_exist = self._db.first(_PG_PARKED_EXIST, params)
            if parked_exist is None or not parked_exist[0]:  # the common case
                return []
            found = self._db.write_first(_PG_ADOPT, {**params, "now": now})
            changed = None if found is None else found[0]
            if not changed:
                return []
            return list(self._db.read(_ROWS_BY_PKS, {"tenant": tenant, "ids": sorted(changed)}))
        parked = self._db.write(_TAKE_PARKED, {"tenant": tenant, "ids": ids})
        events = [_parked_event(row) for row in parked]
        if not events:
            return []
        rows, _ = self._apply(events, now, full=True)
        return rows

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
        event = _Event(
            ext=require_external_id(message_id, field="message_id"),
            status=parse_delivery_status(status),
            at=now if at is None else _require_aware(at, "at"),
            error=_message_error(error),
            payload=None,
        )
        if self._postgres:
            params = {
                "tenant": self._db.tenant_id,
                "ext": event.ext,
                "at": event.at,
                "now": now,
                **{f"error_{n}": event.error_field(n) for n in _ERROR_FIELDS},
            }
            row = self._db.write_first(_PG_APPLY_ONE[event.status], params)
            if row is not None:
                return _tuple_to_model(row)
        # Unknown id (or SQLite): the batch path parks the event, or finds the message tracked
        # in the meantime.
        rows, _ = self._apply([event], now, full=True)
        return _to_model(rows[0]) if rows else None

    @atomic
    def apply_status_events(
        self, events: Iterable[StatusEvent | Mapping[str, Any]]
    ) -> StatusBatchResult:
        """Apply a batch of status events (any order, duplicates welcome) in one statement.

        The outcome does not depend on the order or grouping of the events. Events whose id no
        tracked message has are parked (`pending`), never an error.
        """
        now = self._db.now()
        batch = [
            _status_event(value, index, now)
            for index, value in enumerate(_sequence(events, "events"))
        ]
        if not batch:
            return StatusBatchResult(applied=0, pending=[], updated=[])
        rows, parked = self._apply(batch, now, full=False)
        by_id = _by_external(rows)
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

    def _apply(
        self, batch: list[_Event], now: datetime, *, full: bool
    ) -> tuple[list[Any], list[_Event]]:
        """Apply `batch`; the touched rows (whole if `full`, else `_Touched`) and the parked
        events."""
        if self._postgres:
            return self._pg_apply(batch, now, full=full)
        rows, missed = self._lite_apply(batch, now, full=full)
        if missed:
            self._lite_park(missed, now)
        return rows, missed

    def _pg_apply_once(self, batch: list[_Event], now: datetime, *, full: bool) -> list[Any]:
        """One run of the batch statement; the rows it touched."""
        params = _pg_event_params(batch, self._db.tenant_id, now)
        if full:
            return list(self._db.write(_PG_APPLY_ROWS, params))
        found = self._db.write_first(_PG_APPLY, params)
        if found is None or found[0] is None:  # no event matched a message
            return []
        return [_Touched(*ids) for ids in zip(*found, strict=True)]

    def _pg_apply(
        self, batch: list[_Event], now: datetime, *, full: bool
    ) -> tuple[list[Any], list[_Event]]:
        tenant = self._db.tenant_id
        rows = self._pg_apply_once(batch, now, full=full)
        missed = _unmatched(batch, rows)
        parked: list[_Event] = []
        for _attempt in range(_PARK_ATTEMPTS):
            if not missed:
                return rows, parked
            ids = sorted({event.ext for event in missed})
            probes = list(self._db.write(_PG_PROBE, {"tenant": tenant, "ids": ids, "now": now}))
            probed = {row.meta_message_id for row in probes}
            park = [event for event in missed if event.ext in probed]
            if park:
                params = _pg_event_params(park, tenant, now)
                params["probe_ids"] = [row.id for row in probes]
                self._db.write(_PG_PARK, params)
                parked.extend(park)
            # A probe that hit an existing row: the id was tracked and committed meanwhile.
            retry = [event for event in missed if event.ext not in probed]
            if not retry:
                return rows, parked
            again = self._pg_apply_once(retry, now, full=full)
            rows = _merge_rows(rows, again)
            missed = _unmatched(retry, again)
        raise Conflict(  # pragma: no cover - needs ids tracked and deleted again, repeatedly
            f"message ids {sorted({e.ext for e in missed})} appear and vanish concurrently"
        )

    def _lite_apply(
        self, batch: list[_Event], now: datetime, *, full: bool
    ) -> tuple[list[Row[Any]], list[_Event]]:
        """SQLite: resolve the ids (under the write lock), then one `executemany` per step."""
        tenant = self._db.tenant_id
        ids = sorted({event.ext for event in batch})
        # A write first: the transaction holds SQLite's write lock from the lookup on.
        targets = _by_external(self._db.write(_ROWS_BY_IDS, {"tenant": tenant, "ids": ids}))
        known = [(targets[e.ext].id, e) for e in batch if e.ext in targets]
        missed = [e for e in batch if e.ext not in targets]
        if not known:
            return [], missed
        self._db.write(_LITE_APPLY_ONE, [_lite_event_params(pk, e, now) for pk, e in known])
        self._db.write(
            _LITE_HISTORY,
            [
                {"tenant_id": tenant, "message_id": pk, **_lite_row_params(e, now)}
                for pk, e in known
            ],
        )
        touched = {targets[e.ext].id: targets[e.ext] for _, e in known}
        if not full:
            return list(touched.values()), missed
        rows = self._db.write(_ROWS_BY_PKS, {"tenant": tenant, "ids": sorted(touched)})
        return list(rows), missed

    def _lite_park(self, missed: list[_Event], now: datetime) -> None:
        tenant = self._db.tenant_id
        self._db.write(
            _LITE_PARK,
            [
                {"tenant_id": tenant, "external_id": e.ext, **_lite_row_params(e, now)}
                for e in missed
            ],
        )

    # ----------------------------------------------------------------- reads

    def get(self, message_id: str) -> TrackedMessage | None:
        """The record with this WhatsApp id (first) or contact-center id, or None."""
        external = require_external_id(message_id, field="message_id")
        row = self._db.read(_GET, {"tenant": self._db.tenant_id, "message_id": external}).first()
        return None if row is None else _to_model(row)

    def for_conversation(
        self, conversation_id: str, *, limit: int = 50, before: str | None = None
    ) -> list[TrackedMessage]:
        """A conversation's messages, newest first, `limit` at most (keyset pagination).

        Pass the last message id of a page as `before` for the next page; an unknown `before`
        raises `InvalidInput`.
        """
        conversation_id = validate_conversation_id(conversation_id)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= _MAX_PAGE:
            raise InvalidInput("limit", f"must be an integer from 1 to {_MAX_PAGE}")
        params: dict[str, Any] = {
            "tenant": self._db.tenant_id,
            "conversation_id": conversation_id,
            "limit": limit,
        }
        statement = _PAGE
        if before is not None:
            cursor_id = require_external_id(before, field="before")
            cursor = self._db.read(
                _CURSOR, {"tenant": self._db.tenant_id, "message_id": cursor_id}
            ).first()
            if cursor is None:
                raise InvalidInput("before", f"no message {cursor_id!r} in this tenant")
            params.update(cursor_created=cursor.created_at, cursor_pk=cursor.id)
            statement = _PAGE_BEFORE
        return [_to_model(row) for row in self._db.read(statement, params)]

    def history(self, message_id: str) -> list[StatusEvent]:
        """The message's status events, one per status (the earliest), oldest first."""
        external = require_external_id(message_id, field="message_id")
        rows = self._db.read(_HISTORY, {"tenant": self._db.tenant_id, "message_id": external})
        return [
            _status_entry(row._mapping, row.meta_message_id or row.genesys_message_id)
            for row in rows
        ]

    def pending(self, message_id: str) -> list[StatusEvent]:
        """Status events parked for an id no tracked message has (yet), oldest first."""
        external = require_external_id(message_id, field="message_id")
        rows = self._db.read(_PENDING, {"tenant": self._db.tenant_id, "message_id": external})
        return [_status_entry(row._mapping, row.external_id) for row in rows]

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
            _PURGE,
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
        result = self._db.write(_PURGE_PENDING, params)
        return int(result.rowcount)


# --------------------------------------------------------------------------- helpers


def _insert_values(item: NewMessage, now: datetime) -> dict[str, Any]:
    error = item.error
    return {
        "meta_message_id": item.meta_message_id,
        "genesys_message_id": item.genesys_message_id,
        "conversation_id": item.conversation_id,
        "wa_id": item.wa_id,
        "direction": item.direction.value,
        "status": item.status.value,
        "message_type": item.message_type.value,
        "media_type": item.media_type,
        "media_url": item.media_url,
        "media_id": item.media_id,
        "media_mime_type": item.media_mime_type,
        "media_sha256": item.media_sha256,
        "media_filename": item.media_filename,
        "media_caption": item.media_caption,
        "error_code": None if error is None else error.code,
        "error_title": None if error is None else error.title,
        "error_message": None if error is None else error.message,
        "error_details": None if error is None else error.details,
        "biz_opaque_callback_data": item.biz_opaque_callback_data,
        "at": now if item.occurred_at is None else as_utc(item.occurred_at),
    }


def _insert_row(item: NewMessage, now: datetime) -> list[Any]:
    """`_insert_values` as the JSON array row `_PG_INSERT` unpacks (same column order).

    The enums go in as they are: they are `str` subclasses, which `json` writes as their value.
    """
    error = item.error
    at = now if item.occurred_at is None else item.occurred_at
    return [
        item.meta_message_id,
        item.genesys_message_id,
        item.conversation_id,
        item.wa_id,
        item.direction,
        item.status,
        item.message_type,
        item.media_type,
        item.media_url,
        item.media_id,
        item.media_mime_type,
        item.media_sha256,
        item.media_filename,
        item.media_caption,
        *((None, None, None, None) if error is None else _error_values(error)),
        item.biz_opaque_callback_data,
        at.isoformat(),
    ]


def _error_values(error: MessageError) -> tuple[Any, ...]:
    return (error.code, error.title, error.message, error.details)


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


def _message_error(value: MessageError | Mapping[str, Any] | None) -> MessageError | None:
    if value is None or isinstance(value, MessageError):
        return value
    if isinstance(value, Mapping):
        try:
            return MessageError.model_validate(value)
        except ValidationError as exc:
            raise invalid_input_from(exc, prefix="error") from exc
    raise InvalidInput("error", f"must be a MessageError, got {type(value).__name__}")


def _row_error(row: Row[Any]) -> MessageError | None:
    values = row._mapping
    if all(values[f"error_{name}"] is None for name in _ERROR_FIELDS):
        return None
    return MessageError(**{name: values[f"error_{name}"] for name in _ERROR_FIELDS})


def _parked_event(row: Row[Any]) -> _Event:
    return _Event(
        ext=row.external_id,
        status=DeliveryStatus(row.status),
        at=as_utc(row.occurred_at),
        error=_row_error(row),
        payload=row.payload,
    )


def _by_external(rows: Iterable[Any]) -> dict[str, Any]:
    """External id -> row. Where one id is a WhatsApp id of one message and the contact-center
    id of another, the WhatsApp id's message wins (as in `get`)."""
    listed = list(rows)
    found = {row.genesys_message_id: row for row in listed if row.genesys_message_id}
    found.update((row.meta_message_id, row) for row in listed if row.meta_message_id)
    return found


_NO_ERROR = (None, None, None, None)


def _pg_event_params(batch: Sequence[_Event], tenant: str, now: datetime) -> dict[str, Any]:
    """The events as the JSON document `_PG_JSON_EVENTS` unpacks (a status enum is a `str`:
    `json` writes its value)."""
    events = [
        [
            e.ext,
            e.status,
            e.at.isoformat(),
            *(_NO_ERROR if e.error is None else _error_values(e.error)),
            e.payload,
        ]
        for e in batch
    ]
    return {"tenant": tenant, "now": now, "events": json.dumps(events, separators=(",", ":"))}


def _lite_row_params(e: _Event, now: datetime) -> dict[str, Any]:
    """The history/parked-event columns of one event (SQLite)."""
    return {
        "status": e.status.value,
        "occurred_at": e.at,
        "recorded_at": now,
        **{f"error_{n}": e.error_field(n) for n in _ERROR_FIELDS},
        "payload": e.payload,
    }


def _lite_event_params(pk: int, e: _Event, now: datetime) -> dict[str, Any]:
    """The parameters of `_LITE_APPLY_ONE` for one event (SQLite)."""
    payload = e.payload or {}
    return {
        "e_pk": pk,
        "e_status": e.status.value,
        "e_at": e.at,
        "e_now": now,
        "e_pricing": payload.get("pricing"),
        "e_conversation": payload.get("conversation"),
        "e_callback": payload.get("biz_opaque_callback_data"),
        **{f"e_error_{n}": e.error_field(n) for n in _ERROR_FIELDS},
    }


def _unmatched(batch: Sequence[_Event], rows: Sequence[Any]) -> list[_Event]:
    seen = {x for row in rows for x in _ids_of(row)}
    return [event for event in batch if event.ext not in seen]


def _merge_rows(first: list[Any], later: list[Any]) -> list[Any]:
    merged = {row.id: row for row in first}
    merged.update((row.id, row) for row in later)
    return list(merged.values())
