"""Caller input of the message-tracking family, validated: new messages, status events, their
errors and times. Anything invalid raises `InvalidInput` naming its field, before any write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from wastate.domain.clock import as_utc
from wastate.domain.ids import normalize_wa_id, require_external_id
from wastate.domain.messages import (
    DeliveryStatus,
    MessageError,
    NewMessage,
    StatusEvent,
    invalid_input_from,
    parse_delivery_status,
)
from wastate.errors import InvalidInput
from wastate.repositories.messages.rows import PAYLOAD_KEYS, Event


def sequence(values: object, field: str) -> list[Any]:
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


def _message_error(value: MessageError | Mapping[str, Any] | None) -> MessageError | None:
    if value is None or isinstance(value, MessageError):
        return value
    if isinstance(value, Mapping):
        try:
            return MessageError.model_validate(value)
        except ValidationError as exc:
            raise invalid_input_from(exc, prefix="error") from exc
    raise InvalidInput("error", f"must be a MessageError, got {type(value).__name__}")


def new_message(value: NewMessage | Mapping[str, Any], field: str) -> NewMessage:
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


def one_event(
    message_id: str,
    status: DeliveryStatus | str,
    at: datetime | None,
    error: MessageError | Mapping[str, Any] | None,
    now: datetime,
) -> Event:
    """The arguments of `update_status`, validated."""
    return Event(
        ext=require_external_id(message_id, field="message_id"),
        status=parse_delivery_status(status),
        at=now if at is None else _require_aware(at, "at"),
        error=_message_error(error),
        payload=None,
    )


def _event_payload(event: StatusEvent) -> dict[str, Any] | None:
    payload = None
    for key in PAYLOAD_KEYS:
        value = getattr(event, key)
        if value is not None:
            if payload is None:
                payload = {}
            payload[key] = value
    return payload


def status_event(value: StatusEvent | Mapping[str, Any], index: int, now: datetime) -> Event:
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
    return Event(ext, event.status, at, event.error, _event_payload(event))
