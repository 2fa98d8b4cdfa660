"""Ingest planning: a validated webhook body turned into everything `ingest` will write — the
users to link (with their profile names), the messages to track, the status events to apply, the
changes to ignore and WhatsApp's own errors — checked whole before anything is written, each
problem named by its JSON path.

What does not live here: the body's shape (`wastate.webhooks.payload`), the writing
(`wastate.webhooks.ingest`, in the caller's unit of work).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from wastate.domain.ids import normalize_wa_id, require_external_id
from wastate.domain.mappings import normalize_contact_name
from wastate.domain.messages import (
    DeliveryStatus,
    Direction,
    MessageError,
    MessageType,
    NewMessage,
    StatusEvent,
    invalid_input_from,
)
from wastate.errors import InvalidInput
from wastate.webhooks.payload import Contact, Media, MessageBase, StatusUpdate, WebhookPayload

__all__ = ["MESSAGE_FIELDS", "Plan", "plan_body"]

# Ingest's one logger, as before the package split: operators configure `wastate.webhooks`.
log = logging.getLogger("wastate.webhooks")

MESSAGE_FIELDS = frozenset({"messages", "smb_message_echoes"})
"""The `changes[].field` values ingest reads; other fields are counted as ignored."""

_KNOWN_TYPES = frozenset(member.value for member in MessageType)
_KNOWN_STATUSES = frozenset(member.value for member in DeliveryStatus)


class Plan:
    """Everything ingest will write, computed (and validated) before anything is written."""

    def __init__(self) -> None:
        self.users: dict[str, str | None] = {}  # wa_id -> contact name
        self.messages: list[tuple[str | None, NewMessage]] = []  # (wa_id to link, message)
        self.statuses: list[StatusEvent] = []
        self.ignored = 0
        self.errors: list[MessageError] = []


def _user_key(phone: str | None, user_id: str | None, path: str) -> str:
    """The mapping key: the phone number, else the business-scoped user id."""
    if phone is not None:
        return normalize_wa_id(phone, field=f"{path}")
    if user_id is not None:
        return normalize_wa_id(user_id, field=f"{path}_user_id")
    raise InvalidInput(path, "no user id: neither a phone number nor a business-scoped user id")


def _best_effort_key(phone: str | None, user_id: str | None) -> str | None:
    for candidate in (phone, user_id):
        if candidate is None:
            continue
        try:
            return normalize_wa_id(candidate)
        except InvalidInput:
            continue
    return None


def _contact_name(contacts: list[Contact], phone: str | None, user_id: str | None) -> str | None:
    for contact in contacts:
        if (phone is not None and contact.wa_id == phone) or (
            user_id is not None and contact.user_id == user_id
        ):
            return contact.profile.name if contact.profile is not None else None
    if len(contacts) == 1 and contacts[0].profile is not None:
        return contacts[0].profile.name
    return None


def _new_message(
    message: MessageBase, direction: Direction, wa_id: str | None, path: str
) -> NewMessage:
    require_external_id(message.id, field=f"{path}.id")
    media = message.media()
    media_type = None
    if media is not None:
        media_type = "voice" if message.type == "audio" and media.voice else message.type
    try:
        return _build_message(message, direction, wa_id, media, media_type)
    except ValidationError as exc:
        problem = invalid_input_from(exc)
        field = _webhook_field(problem.field, message.type)
        raise InvalidInput(f"{path}.{field}", problem.message) from exc


_WEBHOOK_NAMES = {
    "meta_message_id": "id",
    "message_type": "type",
    "media_type": "type",
    "occurred_at": "timestamp",
    "error": "errors[0]",
}


def _webhook_field(field: str, message_type: str) -> str:
    """A `NewMessage` field named as the webhook body holds it (`media_caption` →
    `image.caption`), so that an error names what the sender wrote."""
    name, dot, rest = field.partition(".")
    if name in _WEBHOOK_NAMES:
        name = _WEBHOOK_NAMES[name]
    elif name.startswith("media_"):
        name = f"{message_type}.{name.removeprefix('media_')}"
    return f"{name}{dot}{rest}"


def _build_message(
    message: MessageBase,
    direction: Direction,
    wa_id: str | None,
    media: Media | None,
    media_type: str | None,
) -> NewMessage:
    return NewMessage(
        meta_message_id=message.id,
        direction=direction,
        status=DeliveryStatus.SENT,
        message_type=MessageType(message.type if message.type in _KNOWN_TYPES else "unknown"),
        wa_id=wa_id,
        media_type=media_type,
        media_url=media.url if media else None,
        media_id=media.id if media else None,
        media_mime_type=media.mime_type if media else None,
        media_sha256=media.sha256 if media else None,
        media_filename=media.filename if media else None,
        media_caption=media.caption if media else None,
        error=message.errors[0].to_domain() if message.errors else None,
        occurred_at=message.timestamp,
    )


def plan_body(body: WebhookPayload) -> Plan:
    """What ingesting `body` will write, or `InvalidInput` naming the JSON path of a problem."""
    plan = Plan()
    for e, entry in enumerate(body.entry):
        for c, change in enumerate(entry.changes):
            if change.field not in MESSAGE_FIELDS:
                plan.ignored += 1
                continue
            path = f"entry[{e}].changes[{c}].value"
            value = change.value
            try:
                plan.errors.extend(error.to_domain() for error in value.errors)
            except ValidationError as exc:
                raise invalid_input_from(exc, prefix=f"{path}.errors") from exc
            for m, inbound in enumerate(value.messages):
                where = f"{path}.messages[{m}]"
                wa_id = _user_key(inbound.from_, inbound.from_user_id, f"{where}.from")
                name = normalize_contact_name(
                    _contact_name(value.contacts, inbound.from_, inbound.from_user_id),
                    field=f"{path}.contacts",
                )
                if name is not None or wa_id not in plan.users:
                    plan.users[wa_id] = name or plan.users.get(wa_id)
                message = _new_message(inbound, Direction.INBOUND, wa_id, where)
                plan.messages.append((wa_id, message))
            for m, echo in enumerate(value.message_echoes):
                where = f"{path}.message_echoes[{m}]"
                # The business's own app wrote `to`; a recipient we cannot key (a group, a
                # placeholder) leaves the echo tracked but unlinked rather than refused.
                recipient = _best_effort_key(echo.to, echo.to_user_id)
                if recipient is not None and recipient not in plan.users:
                    plan.users[recipient] = None
                echoed = _new_message(echo, Direction.OUTBOUND, recipient, where)
                plan.messages.append((recipient, echoed))
            for s, status in enumerate(value.statuses):
                where = f"{path}.statuses[{s}]"
                require_external_id(status.id, field=f"{where}.id")
                if status.status.lower() not in _KNOWN_STATUSES:
                    log.info("ignoring status %r of %s", status.status, status.id)
                    plan.ignored += 1
                    continue
                plan.statuses.append(_status_event(status, where))
    return plan


def _status_event(status: StatusUpdate, path: str) -> StatusEvent:
    try:
        return StatusEvent(
            message_id=status.id,
            status=DeliveryStatus(status.status.lower()),
            at=status.timestamp,
            error=status.errors[0].to_domain() if status.errors else None,
            pricing=status.pricing,
            conversation=status.conversation,
            biz_opaque_callback_data=status.biz_opaque_callback_data,
            recipient_id=status.recipient_id,
            recipient_user_id=status.recipient_user_id,
        )
    except ValidationError as exc:  # e.g. text or JSON neither database could store alike
        raise invalid_input_from(exc, prefix=path) from exc
