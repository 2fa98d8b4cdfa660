"""Rows and records of the message-tracking family: the tables, their column lists (one per
purpose), a new message as the row `track` inserts (`given_values`, in the shapes the writers
bind) and as the record it answers with, and stored rows back as `TrackedMessage` /
`StatusEvent` records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import TypeAdapter
from sqlalchemy import Row

from wastate.db.base import table_of
from wastate.db.tables import MessageStatusEvent, MessageTrackingRow, PendingStatusEvent
from wastate.domain.clock import as_utc
from wastate.domain.messages import (
    DeliveryStatus,
    MessageError,
    NewMessage,
    StatusEvent,
    TrackedMessage,
)

TRACKED = table_of(MessageTrackingRow)
HISTORY = table_of(MessageStatusEvent)
PARKED = table_of(PendingStatusEvent)

# ------------------------------------------------------------------ column lists, one per purpose

ROW_COLUMNS = [column.name for column in TRACKED.columns]
"""A whole tracked row, in table order: what `SELECT *` and `RETURNING t.*` answer."""
STORED_COLUMNS = [name for name in ROW_COLUMNS if name != "id"]
"""What `track` inserts, and the fields of a `TrackedMessage` (the id is a sequence's)."""
GIVEN_COLUMNS = (
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
)
"""What a `NewMessage` gives, in the order of `given_values`."""
AT_COLUMNS = [status.timestamp_field for status in DeliveryStatus]
"""The time of each status, in `DeliveryStatus` order."""
ERROR_FIELDS = ("code", "title", "message", "details")
ERROR_COLUMNS = [f"error_{name}" for name in ERROR_FIELDS]
CALLBACK = "biz_opaque_callback_data"
PAYLOAD_KEYS = ("pricing", "conversation", CALLBACK, "recipient_id", "recipient_user_id")
"""What a status event carries besides status, time and error (history and parked rows keep
them as one JSON payload)."""

NO_ERROR = (None, None, None, None)
# Record fields without a default: given even when None.
_REQUIRED = frozenset(
    name for name, field in TrackedMessage.model_fields.items() if field.is_required()
)


class Event(NamedTuple):
    """A validated status event, ready to bind (a tuple: a batch makes a thousand)."""

    ext: str
    status: DeliveryStatus
    at: datetime
    error: MessageError | None
    payload: dict[str, Any] | None

    def error_values(self) -> tuple[Any, ...]:
        return NO_ERROR if self.error is None else error_values(self.error)


class Touched(NamedTuple):
    """A message a batch touched, as the batch statement reports it."""

    id: int
    meta_message_id: str | None
    genesys_message_id: str | None


def error_values(error: MessageError) -> tuple[Any, ...]:
    return (error.code, error.title, error.message, error.details)


# ------------------------------------------------------------------ a new message as a row

AT_FIELD = {status: status.timestamp_field for status in DeliveryStatus}
# The given columns that are often NULL: left out of a new record when they are.
_OPTIONAL = tuple(
    name for name in GIVEN_COLUMNS if name not in _REQUIRED and name not in ERROR_COLUMNS
)
_ENUMS = ("direction", "status", "message_type")


def first_at(item: NewMessage, now: datetime) -> datetime:
    """The time of the status a message is tracked with."""
    return now if item.occurred_at is None else as_utc(item.occurred_at)


def given_values(item: NewMessage) -> tuple[Any, ...]:
    """A new message as a row: its `GIVEN_COLUMNS` values, in order, enums as members (a `str`:
    `json` writes its value). `new_row` and `given_array` are this tuple in the shape their
    statement binds."""
    error = item.error
    return (
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
        *(NO_ERROR if error is None else error_values(error)),
        item.biz_opaque_callback_data,
    )


def new_row(item: NewMessage, tenant: str, now: datetime) -> dict[str, Any]:
    """The `message_tracking` row `track` inserts for `item`: every `STORED_COLUMNS` value,
    enums as their stored strings (one `track` on PostgreSQL; SQLite's `executemany`)."""
    row: dict[str, Any] = dict.fromkeys(STORED_COLUMNS)
    row.update(zip(GIVEN_COLUMNS, given_values(item), strict=True))
    for name in _ENUMS:
        row[name] = row[name].value
    row[AT_FIELD[item.status]] = first_at(item, now)
    row["tenant_id"] = tenant
    row["created_at"] = row["updated_at"] = now
    return row


def given_array(item: NewMessage, now: datetime) -> list[Any]:
    """`item` as the JSON array the PostgreSQL batch insert unpacks: `given_values`, then the
    first status's time."""
    return [*given_values(item), first_at(item, now).isoformat()]


_RECORDS = TypeAdapter(list[TrackedMessage])


def _record_data(item: NewMessage, tenant: str, now: datetime) -> dict[str, Any]:
    """The `TrackedMessage` fields of `item` just inserted: the second encoding of a new
    message, and the only other one. It reads `item` itself rather than `given_values`: only
    the fields that have a value (or no default) are given, so the others take the model's
    default (None) unvalidated, which halves the cost of a batch's records; filtering the row
    tuple instead doubles the cost of building it (2.0 against 0.9 µs a message, measured)."""
    data: dict[str, Any] = {
        "tenant_id": tenant,
        "meta_message_id": item.meta_message_id,
        "genesys_message_id": item.genesys_message_id,
        "conversation_id": item.conversation_id,
        "direction": item.direction,
        "status": item.status,
        "message_type": item.message_type,
        AT_FIELD[item.status]: first_at(item, now),
        "created_at": now,
        "updated_at": now,
        "created": True,
    }
    for name in _OPTIONAL:
        value = getattr(item, name)
        if value is not None:
            data[name] = value
    error = item.error
    if error is not None:
        data.update(zip(ERROR_COLUMNS, error_values(error), strict=True))
    return data


def new_record(item: NewMessage, tenant: str, now: datetime) -> TrackedMessage:
    """The record `track` just inserted for `item`, without reading it back."""
    return TrackedMessage.model_validate(_record_data(item, tenant, now))


def new_records(items: list[NewMessage], tenant: str, now: datetime) -> list[TrackedMessage]:
    """`new_record` for a batch, validated in one call (a fifth cheaper than one by one)."""
    return _RECORDS.validate_python([_record_data(item, tenant, now) for item in items])


# ------------------------------------------------------------------ stored rows as records


def to_record(row: Row[Any], *, created: bool = False) -> TrackedMessage:
    """A stored row as a `TrackedMessage`."""
    values = row._mapping
    data = {name: values[name] for name in STORED_COLUMNS}
    data["created"] = created
    return TrackedMessage.model_validate(data)


def tuple_to_record(row: Sequence[Any]) -> TrackedMessage:
    """A whole row from the driver (a tuple in `ROW_COLUMNS` order) as a `TrackedMessage`."""
    data = dict(zip(ROW_COLUMNS, row, strict=True))
    del data["id"]
    return TrackedMessage.model_validate(data)


def _row_error(values: Mapping[Any, Any]) -> MessageError | None:
    if all(values[column] is None for column in ERROR_COLUMNS):
        return None
    return MessageError(**{name: values[f"error_{name}"] for name in ERROR_FIELDS})


def status_entry(values: Mapping[Any, Any], message_id: str) -> StatusEvent:
    """A history or parked-event row as the `StatusEvent` it records."""
    payload = values["payload"] or {}
    return StatusEvent(
        message_id=message_id,
        status=DeliveryStatus(values["status"]),
        at=as_utc(values["occurred_at"]),
        error=_row_error(values),
        **{key: payload.get(key) for key in PAYLOAD_KEYS},
    )


def parked_event(row: Row[Any]) -> Event:
    """A parked-event row as the event to apply."""
    return Event(
        ext=row.external_id,
        status=DeliveryStatus(row.status),
        at=as_utc(row.occurred_at),
        error=_row_error(row._mapping),
        payload=row.payload,
    )


# ------------------------------------------------------------------ ids


def ids_of(item: NewMessage | Row[Any] | Touched) -> list[str]:
    return [x for x in (item.meta_message_id, item.genesys_message_id) if x is not None]


def keys_of(item: NewMessage | Row[Any] | TrackedMessage) -> list[tuple[str, str]]:
    """The unique keys a message claims: its WhatsApp id and its contact-center id, each in its
    own namespace (as the two unique constraints have it)."""
    keys = []
    if item.meta_message_id is not None:
        keys.append(("meta", item.meta_message_id))
    if item.genesys_message_id is not None:
        keys.append(("genesys", item.genesys_message_id))
    return keys


def by_external(rows: Iterable[Any]) -> dict[str, Any]:
    """External id -> row. Where one id is a WhatsApp id of one message and the contact-center
    id of another, the WhatsApp id's message wins (as in `get`)."""
    listed = list(rows)
    found = {row.genesys_message_id: row for row in listed if row.genesys_message_id}
    found.update((row.meta_message_id, row) for row in listed if row.meta_message_id)
    return found
