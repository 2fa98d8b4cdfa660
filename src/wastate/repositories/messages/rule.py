"""The status rule (`wastate.domain.messages`) in SQL: every statement that changes a tracked
message's status takes its SET list from here, and every statement that appends history or parks
an event takes its conflict action from here. The rank comparison is a `CASE` generated from
`STATUS_RANK`, so there is no second copy of the order.

The rule: the stored status is the highest-ranked one seen; each status's time is the earliest
seen; the error is the earliest failure's; `pricing`, `conversation_info` and the callback data
are the first recorded; `updated_at` moves only when something changed. It comes in three shapes,
one per way events reach a row, each the leanest its statement can run:

- `aggregate_sets`: a per-message aggregate `a` of many events (PostgreSQL's batch statement,
  which aggregates before it updates, so each row is written once per batch);
- `one_event_sets`: one event `e` whose status is a value (SQLite, one `executemany` row per
  event: the status varies from row to row);
- `one_status_sets`: one event of a known status (PostgreSQL's `update_status`, one statement
  per status, where the rank is a constant and only that status's time can change).

`tests/stress/test_messages_properties.py` checks all three against a plain-Python model of
the rule.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, case, text
from sqlalchemy.sql.elements import ColumnElement, TextClause

from wastate.db.base import UTCDateTime
from wastate.db.tables import MessageJSON
from wastate.domain.messages import STATUS_RANK, DeliveryStatus
from wastate.repositories.messages.rows import AT_COLUMNS, ERROR_COLUMNS, ERROR_FIELDS

# Built from constants and DeliveryStatus values only: no input reaches this SQL.

# The record keeps these, each from the earliest event carrying it: column -> event field.
KEPT = {
    "pricing": "pricing",
    "conversation_info": "conversation",
    "biz_opaque_callback_data": "callback",
}


def sql_rank(expression: str) -> str:
    """`CASE` giving the rank (`STATUS_RANK`) of a status expression; any SQL dialect."""
    whens = " ".join(f"WHEN '{status.value}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"(CASE {expression} {whens} END)"


def sql_status(expression: str) -> str:
    """`CASE` giving the status of a rank expression: the inverse of `sql_rank`."""
    whens = " ".join(f"WHEN {rank} THEN '{status.value}'" for status, rank in STATUS_RANK.items())
    return f"(CASE {expression} {whens} END)"


def rank(expression: ColumnElement[Any]) -> ColumnElement[int]:
    """`sql_rank` as a Core expression (for ORDER BY)."""
    return case({status.value: rank for status, rank in STATUS_RANK.items()}, value=expression)


def aggregate_sets() -> str:
    """The SET list applying `a` — per message: `top_rank`, the earliest time of each status
    (`<status>_at`, NULL if none), the earliest failure's `error_*`, and the first `pricing`,
    `conversation`, `callback` — to the row `t`; `updated_at` becomes `:now` if it changed."""
    earlier_failure = (
        "a.failed_at IS NOT NULL AND (t.failed_at IS NULL OR a.failed_at < t.failed_at)"
    )
    set_times = ",\n".join(f"{c} = LEAST(t.{c}, a.{c})" for c in AT_COLUMNS)
    set_errors = ",\n".join(
        f"error_{name} = CASE WHEN {earlier_failure} THEN a.error_{name} ELSE t.error_{name} END"
        for name in ERROR_FIELDS
    )
    rises = f"a.top_rank > {sql_rank('t.status')}"
    changed = " OR ".join(
        [rises]
        + [f"a.{c} < COALESCE(t.{c}, 'infinity')" for c in AT_COLUMNS]
        + [f"(t.{column} IS NULL AND a.{field} IS NOT NULL)" for column, field in KEPT.items()]
    )
    return f"""status = CASE WHEN {rises} THEN {sql_status("a.top_rank")}
                      ELSE t.status END,
        {set_times},
        {set_errors},
        pricing = COALESCE(t.pricing, a.pricing),
        conversation_info = COALESCE(t.conversation_info, a.conversation),
        biz_opaque_callback_data = COALESCE(t.biz_opaque_callback_data, a.callback),
        updated_at = CASE WHEN {changed} THEN :now ELSE t.updated_at END"""


def one_event_sets(t: str) -> str:
    """The SET list applying one event — the columns of `e`: status, at, now, error_*, pricing,
    conversation, callback — to the row `t`."""
    rises = f"{sql_rank('e.status')} > {sql_rank(f'{t}.status')}"
    newly = {
        s: f"(e.status = '{s.value}' AND ({t}.{s.timestamp_field} IS NULL"
        f" OR e.at < {t}.{s.timestamp_field}))"
        for s in DeliveryStatus
    }
    first_failure = newly[DeliveryStatus.FAILED]
    changed = " OR ".join(
        [rises, *newly.values()]
        + [f"({t}.{column} IS NULL AND e.{field} IS NOT NULL)" for column, field in KEPT.items()]
    )
    return ",\n        ".join(
        [f"status = CASE WHEN {rises} THEN e.status ELSE {t}.status END"]
        + [
            f"{s.timestamp_field} = CASE WHEN {newly[s]} THEN e.at ELSE {t}.{s.timestamp_field} END"
            for s in DeliveryStatus
        ]
        + [
            f"error_{n} = CASE WHEN {first_failure} THEN e.error_{n} ELSE {t}.error_{n} END"
            for n in ERROR_FIELDS
        ]
        + [f"{column} = COALESCE({t}.{column}, e.{field})" for column, field in KEPT.items()]
        + [f"updated_at = CASE WHEN {changed} THEN e.now ELSE {t}.updated_at END"]
    )


def one_status_sets(status: DeliveryStatus) -> str:
    """The SET list applying one event of `status` — parameters `:at`, `:now`, `:error_*` — to
    the row `t` (PostgreSQL: `LEAST` skips NULL)."""
    at = status.timestamp_field
    below = [f"'{s.value}'" for s, rank in STATUS_RANK.items() if rank < status.rank]
    rises = f"t.status IN ({', '.join(below)})" if below else "FALSE"
    newly = f"(t.{at} IS NULL OR CAST(:at AS timestamptz) < t.{at})"
    sets = [
        f"status = CASE WHEN {rises} THEN '{status.value}' ELSE t.status END",
        f"{at} = LEAST(t.{at}, CAST(:at AS timestamptz))",
    ]
    if status is DeliveryStatus.FAILED:
        sets += [
            f"error_{n} = CASE WHEN {newly} THEN :error_{n} ELSE t.error_{n} END"
            for n in ERROR_FIELDS
        ]
    sets.append(f"updated_at = CASE WHEN {rises} OR {newly} THEN :now ELSE t.updated_at END")
    return ",\n        ".join(sets)


# ------------------------------------------------------------------ history and parked events


def pg_keep_earliest(alias: str) -> str:
    """The ON CONFLICT action of history and parked events: earliest time and error win,
    payloads merge (the earlier row's values first); an event that adds nothing writes nothing.
    """
    earlier = f"excluded.occurred_at < {alias}.occurred_at"
    old = f"COALESCE({alias}.payload, '{{}}'::jsonb)"
    new = "COALESCE(excluded.payload, '{}'::jsonb)"
    errors = ",\n".join(
        f"error_{n} = CASE WHEN {earlier} THEN excluded.error_{n} ELSE {alias}.error_{n} END"
        for n in ERROR_FIELDS
    )
    return f"""DO UPDATE SET
        occurred_at = LEAST({alias}.occurred_at, excluded.occurred_at),
        {errors},
        payload = NULLIF(CASE WHEN {earlier} THEN {old} || {new} ELSE {new} || {old} END,
                         '{{}}'::jsonb)
    WHERE {earlier} OR NOT ({old} @> {new})"""


def lite_keep_earliest(table: Table, key: str) -> TextClause:
    """SQLite's `pg_keep_earliest`: an upsert of one event into `table` keyed by
    (tenant_id, `key`, status)."""
    name = table.name
    earlier = f"excluded.occurred_at < {name}.occurred_at"
    old, new = f"COALESCE({name}.payload, '{{}}')", "COALESCE(excluded.payload, '{}')"
    errors = ",\n    ".join(
        f"error_{n} = CASE WHEN {earlier} THEN excluded.error_{n} ELSE {name}.error_{n} END"
        for n in ERROR_FIELDS
    )
    columns = ["tenant_id", key, "status", "occurred_at", "recorded_at", *ERROR_COLUMNS]
    columns.append("payload")
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
