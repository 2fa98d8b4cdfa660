"""The PostgreSQL statements of the message-tracking family, built once at import.

A batch runs as one statement over one JSONB document: the events are matched to their messages,
aggregated per message, applied with one `UPDATE … FROM` (`rule.aggregate_sets`), and appended to
the history with `INSERT … ON CONFLICT` that keeps the earliest event per (message, status) and
merges the payloads of its events. A single `update_status` has its own, leaner statement with the
same rule, one per status (`rule.one_status_sets`). The hot statements (single and batch track,
update, apply) run prepared on the driver (`Database.write_first`), answering with one row.
`tests/snapshots/sql/postgresql/` holds each as rendered, so a change to one shows in a diff.
"""

from __future__ import annotations

from sqlalchemy import bindparam, text

from wastate.db.prepared import Prepared
from wastate.domain.messages import DeliveryStatus
from wastate.repositories.messages.rows import (
    AT_COLUMNS,
    CALLBACK,
    ERROR_COLUMNS,
    GIVEN_COLUMNS,
    ROW_COLUMNS,
    STORED_COLUMNS,
    TRACKED,
)
from wastate.repositories.messages.rule import (
    aggregate_sets,
    one_status_sets,
    pg_keep_earliest,
    sql_rank,
)

# Built from constants and DeliveryStatus values only: no input reaches this SQL.

_ROW = ", ".join(ROW_COLUMNS)
_ERRORS = ", ".join(ERROR_COLUMNS)
_FAILED = DeliveryStatus.FAILED.value

# Batches travel as one JSON document (json.dumps runs in C; a dozen Python-dumped arrays of a
# thousand elements each do not), unpacked by the server in the statement itself. An event is
# [ext, status, at, error_code, error_title, error_message, error_details, payload].
JSON_EVENTS = """
    SELECT x ->> 0 AS ext, x ->> 1 AS status, CAST(x ->> 2 AS timestamptz) AS at,
        CAST(x ->> 3 AS int) AS error_code, x ->> 4 AS error_title, x ->> 5 AS error_message,
        x ->> 6 AS error_details,
        CASE WHEN jsonb_typeof(x -> 7) = 'object' THEN x -> 7 END AS payload,
        ord
    FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e(x, ord)
"""


def _merged_payloads(source: str, key: str) -> str:
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


def _first_events(source: str, key: str) -> str:
    """Per (`key`, status) of `source`: the earliest event, with the payloads of all merged."""
    return f"""
    SELECT f.*, m.payload FROM (
        SELECT DISTINCT ON ({key}, status) {key}, status, at, {_ERRORS}
        FROM {source} ORDER BY {key}, status, at, ord
    ) f LEFT JOIN ({_merged_payloads(source, key)}) m USING ({key}, status)
    """  # noqa: S608


def _apply_sql(events: str, returning: str, final: str) -> str:
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
        f"max({c}) FILTER (WHERE status = '{_FAILED}') AS {c}" for c in ERROR_COLUMNS
    )
    kept_keys = ", ".join(f"'{key}'" for key in ("pricing", "conversation", CALLBACK))
    return f"""
WITH ev AS ({events}),
hit AS (
    SELECT ev.*, {sql_rank("ev.status")} AS rank, m.id AS message_id
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
    SELECT DISTINCT ON (message_id, status) message_id, status, rank, at, {_ERRORS}
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
    SELECT f.message_id, f.top_rank, f.{", f.".join(AT_COLUMNS)},
        f.{", f.".join(ERROR_COLUMNS)},
        k.kept -> 'pricing' AS pricing, k.kept -> 'conversation' AS conversation,
        k.kept ->> '{CALLBACK}' AS callback
    FROM (
        SELECT message_id, max(rank) AS top_rank, {per_status}, {first_error}
        FROM firsts GROUP BY message_id
    ) f LEFT JOIN kept k USING (message_id)
    -- Fed to the UPDATE in id order, so concurrent batches normally lock rows in one order.
    ORDER BY f.message_id
),
upd AS (
    UPDATE message_tracking t SET
        {aggregate_sets()}
    FROM agg a
    -- By primary key only: `hit` found these ids within the tenant, and a tenant predicate here
    -- invites the planner to scan the tenant's rows instead.
    WHERE t.id = a.message_id
    RETURNING {returning}
),
history AS (
    INSERT INTO message_status_events AS h
        (tenant_id, message_id, status, occurred_at, recorded_at, {_ERRORS}, payload)
    SELECT :tenant, f.message_id, f.status, f.at, :now, {_ERRORS}, m.payload
    FROM firsts f LEFT JOIN ({_merged_payloads("hit", "message_id")}) m
        USING (message_id, status)
    ON CONFLICT (tenant_id, message_id, status) {pg_keep_earliest("h")}
)
{final}
"""  # noqa: S608


def _apply_one_sql(status: DeliveryStatus) -> str:
    """One event of `status` given as scalars (`update_status`): find, update, append history.

    The rule without the batch's aggregation, for the latency of a single webhook. Short enough
    for psycopg to cache its parsing, too (4 kB at most).
    """
    return f"""
WITH target AS (
    (SELECT id FROM message_tracking WHERE tenant_id = :tenant AND meta_message_id = :ext)
    UNION ALL
    (SELECT id FROM message_tracking WHERE tenant_id = :tenant AND genesys_message_id = :ext)
    LIMIT 1
),
upd AS (
    UPDATE message_tracking t SET
        {one_status_sets(status)}
    FROM target WHERE t.id = target.id
    RETURNING t.*
),
history AS (
    INSERT INTO message_status_events AS h
        (tenant_id, message_id, status, occurred_at, recorded_at, {_ERRORS}, payload)
    SELECT :tenant, upd.id, '{status.value}', :at, :now,
        CAST(:error_code AS int), :error_title, :error_message, :error_details, NULL
    FROM upd
    ON CONFLICT (tenant_id, message_id, status) {pg_keep_earliest("h")}
)
SELECT {_ROW} FROM upd
"""  # noqa: S608


# A batch answers with one row of three arrays (the touched messages' ids), so it runs as a
# prepared statement on the driver, pipelined with its transaction's BEGIN.
APPLY = Prepared(
    text(
        _apply_sql(
            JSON_EVENTS,
            "t.id, t.meta_message_id, t.genesys_message_id",
            "SELECT array_agg(id), array_agg(meta_message_id), array_agg(genesys_message_id)"
            " FROM upd",
        )
    )
)
APPLY_ROWS = text(_apply_sql(JSON_EVENTS, "t.*", f"SELECT {_ROW} FROM upd")).columns(  # noqa: S608
    *TRACKED.columns
)
APPLY_ONE = {
    status: Prepared(text(_apply_one_sql(status)).columns(*TRACKED.columns))
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
PARKED_EXIST = Prepared(
    text(
        "SELECT EXISTS (SELECT FROM pending_status_events"
        " WHERE tenant_id = :tenant AND external_id = ANY(string_to_array(:ids, ' ')))"
    )
)
_TAKE_PARKED = f"""
    DELETE FROM pending_status_events
    WHERE tenant_id = :tenant AND external_id = ANY(string_to_array(:ids, ' '))
    RETURNING external_id AS ext, status, occurred_at AS at, {_ERRORS}, payload,
        id AS ord
"""  # noqa: S608
ADOPT = Prepared(text(_apply_sql(_TAKE_PARKED, "t.id", "SELECT array_agg(id) FROM upd")))

PROBE = text(
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

PARK = text(
    f"""
WITH ev AS ({JSON_EVENTS}),
probes_gone AS (
    DELETE FROM message_tracking
    WHERE tenant_id = :tenant AND id = ANY(CAST(:probe_ids AS bigint[]))
)
INSERT INTO pending_status_events AS p
    (tenant_id, external_id, status, occurred_at, recorded_at, {_ERRORS}, payload)
SELECT :tenant, ext, status, at, :now, {_ERRORS}, payload
FROM ({_first_events("ev", "ext")}) firsts
ON CONFLICT (tenant_id, external_id, status) {pg_keep_earliest("p")}
"""  # noqa: S608
)

# A batch of new messages: `rows.given_array` each, unpacked in `GIVEN_COLUMNS` order.
_CASTS = {"error_code": "int"}
_GIVEN_FIELDS = ",\n        ".join(
    f"CAST(x ->> {i} AS {_CASTS[c]}) AS {c}" if c in _CASTS else f"x ->> {i} AS {c}"
    for i, c in enumerate(GIVEN_COLUMNS)
)


def _insert_sql(arbiter: str) -> str:
    """The batch insert, answering with one row: how many rows it inserted (and which, if
    not all)."""
    return f"""
WITH r AS (
    SELECT {_GIVEN_FIELDS},
        CAST(x ->> {len(GIVEN_COLUMNS)} AS timestamptz) AS at, ord
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS e(x, ord)
),
ins AS (
    INSERT INTO message_tracking
        (tenant_id, {", ".join(GIVEN_COLUMNS)}, {", ".join(AT_COLUMNS)}, created_at, updated_at)
    SELECT :tenant, {", ".join(f"r.{c}" for c in GIVEN_COLUMNS)},
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
INSERT = {
    (True, False): Prepared(text(_insert_sql("(tenant_id, meta_message_id)"))),
    (False, True): Prepared(text(_insert_sql("(tenant_id, genesys_message_id)"))),
    (True, True): Prepared(text(_insert_sql(""))),
}

# One message (`track`): `rows.new_row` as plain parameters, no document to unpack. Text,
# because SQLAlchemy does not cache the compiled form of a dialect `insert()` and would compile
# it on every call.
INSERT_ONE = Prepared(
    text(
        f"""
INSERT INTO message_tracking ({", ".join(STORED_COLUMNS)})
VALUES ({", ".join(f":{c}" for c in STORED_COLUMNS)})
ON CONFLICT DO NOTHING
RETURNING id
"""  # noqa: S608
    ).bindparams(*(bindparam(c, type_=TRACKED.c[c].type) for c in STORED_COLUMNS))
)
