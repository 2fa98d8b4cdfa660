"""WhatsApp Cloud API webhooks: pydantic models of the body, and `ingest` into message tracking.

`ingest(uow, payload)` reads a webhook body (`object`, `entry[].changes[].value` with `metadata`,
`contacts`, `messages`, `statuses`, `message_echoes`, `errors`) and, in the caller's unit of work:

1. validates all of it first — a malformed body raises `InvalidInput` naming the JSON path
   (`entry[0].changes[0].value.statuses[1].timestamp`) and writes nothing; unknown fields are
   tolerated, as WhatsApp adds them without notice;
2. links each user who sent (or, for echoes, received) a message to their active conversation,
   `uow.mappings.get_or_create(wa_id, contact_name=…)`, with the profile name from `contacts`;
3. tracks every inbound message and message echo (`track_batch`: a retried webhook is a
   duplicate, not a second record), then applies every status of every entry and change
   (`apply_status_events`: one batch, any order).

Users are keyed by phone number when WhatsApp sends one (`from`, `to`, `recipient_id`), else by
business-scoped user id (`from_user_id`, `to_user_id`, `recipient_user_id`, `CC.…`). Changes of
other fields (`account_update`, templates, …) and statuses WhatsApp may add later are counted as
ignored, never an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

if TYPE_CHECKING:
    from wastate.uow import UnitOfWork

__all__ = [
    "Change",
    "ChangeValue",
    "Contact",
    "Entry",
    "InboundMessage",
    "IngestReport",
    "MessageEcho",
    "StatusUpdate",
    "WebhookError",
    "WebhookPayload",
    "ingest",
    "parse_payload",
]

log = logging.getLogger(__name__)

MESSAGE_FIELDS = frozenset({"messages", "smb_message_echoes"})
"""The `changes[].field` values ingest reads; other fields are counted as ignored."""

_MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
_KNOWN_TYPES = frozenset(member.value for member in MessageType)
_KNOWN_STATUSES = frozenset(member.value for member in DeliveryStatus)


class _Model(BaseModel):
    """Webhook objects: frozen, and tolerant of fields WhatsApp adds later."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


def _unix_time(value: object) -> datetime:
    """WhatsApp's timestamps: Unix seconds, as a string of digits (or a number)."""
    if isinstance(value, bool):
        raise ValueError("must be Unix seconds")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        seconds = int(value)
    else:
        raise ValueError("must be Unix seconds (a string of digits)")
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError("is out of range") from exc


class Profile(_Model):
    """A contact's WhatsApp profile (may be missing)."""

    name: str | None = None


class Contact(_Model):
    """`value.contacts[]`: who the messages are from, with the profile name when shared."""

    wa_id: str | None = None
    user_id: str | None = None
    profile: Profile | None = None


class Metadata(_Model):
    """`value.metadata`: the business phone number the webhook is about."""

    display_phone_number: str | None = None
    phone_number_id: str | None = None


class ErrorData(_Model):
    """`errors[].error_data`."""

    details: str | None = None


class WebhookError(_Model):
    """An error object, at the value level, on an inbound message, or on a failed status."""

    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None

    def to_domain(self) -> MessageError:
        """As stored on a tracked message (`details` from `error_data.details`)."""
        details = self.error_data.details if self.error_data is not None else None
        return MessageError(code=self.code, title=self.title, message=self.message, details=details)


class Media(_Model):
    """The media object of an image/video/audio/document/sticker message."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    filename: str | None = None
    caption: str | None = None
    url: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class _MessageBase(_Model):
    id: str = Field(min_length=1)
    timestamp: datetime
    type: str = Field(min_length=1)
    errors: list[WebhookError] = Field(default_factory=list)
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None

    _timestamp = field_validator("timestamp", mode="before")(_unix_time)

    def media(self) -> Media | None:
        """The media object of this message's type, if it has one."""
        if self.type not in _MEDIA_TYPES:
            return None
        media = getattr(self, self.type)
        return media if isinstance(media, Media) else None


class InboundMessage(_MessageBase):
    """`value.messages[]`: a message a WhatsApp user sent to the business."""

    from_: str | None = Field(None, alias="from")
    from_user_id: str | None = None


class MessageEcho(_MessageBase):
    """`value.message_echoes[]`: a message the business sent from the WhatsApp Business app."""

    from_: str | None = Field(None, alias="from")
    to: str | None = None
    to_user_id: str | None = None


class StatusUpdate(_Model):
    """`value.statuses[]`: a delivery status of a message the business sent."""

    id: str = Field(min_length=1)
    status: str = Field(min_length=1)
    timestamp: datetime
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    recipient_type: str | None = None
    errors: list[WebhookError] = Field(default_factory=list)
    pricing: dict[str, Any] | None = None
    conversation: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None

    _timestamp = field_validator("timestamp", mode="before")(_unix_time)


class ChangeValue(_Model):
    """`entry[].changes[].value`."""

    messaging_product: str | None = None
    metadata: Metadata | None = None
    contacts: list[Contact] = Field(default_factory=list)
    messages: list[InboundMessage] = Field(default_factory=list)
    message_echoes: list[MessageEcho] = Field(default_factory=list)
    statuses: list[StatusUpdate] = Field(default_factory=list)
    errors: list[WebhookError] = Field(default_factory=list)


class Change(_Model):
    """`entry[].changes[]`: one field's change."""

    field: str
    value: ChangeValue


class Entry(_Model):
    """`entry[]`: the changes of one WhatsApp Business Account."""

    id: str | None = None
    changes: list[Change] = Field(default_factory=list)


class WebhookPayload(_Model):
    """A WhatsApp Cloud API webhook body."""

    object: str
    entry: list[Entry]


class IngestReport(BaseModel):
    """What `ingest` did with one webhook body."""

    model_config = ConfigDict(frozen=True)

    new: int = 0
    """Messages (inbound and echoes) tracked for the first time."""
    duplicate: int = 0
    """Messages already tracked (a retried webhook): nothing written for them."""
    statuses_applied: int = 0
    """Status events applied to a tracked message (re-sent ones included: they change nothing)."""
    statuses_pending: int = 0
    """Status events for messages not tracked yet: parked until `track` adopts them."""
    ignored: int = 0
    """Changes of other fields, and statuses of kinds wastate does not know."""
    conversations: list[str] = Field(default_factory=list)
    """The conversation ids the messages were linked to."""
    errors: list[MessageError] = Field(default_factory=list)
    """Errors WhatsApp reported at the value level (e.g. an unsupported webhook payload)."""


def parse_payload(payload: WebhookPayload | Mapping[str, Any] | str | bytes) -> WebhookPayload:
    """The body as a `WebhookPayload`, or `InvalidInput` naming the JSON path of the problem."""
    if isinstance(payload, WebhookPayload):
        return payload
    try:
        if isinstance(payload, str | bytes):
            return WebhookPayload.model_validate_json(payload)
        return WebhookPayload.model_validate(payload)
    except ValidationError as exc:
        raise invalid_input_from(exc) from exc


class _Plan:
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
    message: _MessageBase, direction: Direction, wa_id: str | None, path: str
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
    message: _MessageBase,
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


def _plan(body: WebhookPayload) -> _Plan:
    plan = _Plan()
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


def ingest(
    uow: UnitOfWork, payload: WebhookPayload | Mapping[str, Any] | str | bytes
) -> IngestReport:
    """Track the messages and apply the statuses of one WhatsApp webhook body.

    Idempotent: ingesting the same body again (WhatsApp retries) changes nothing and reports the
    messages as duplicates. Raises `InvalidInput` naming the JSON path for a malformed body,
    before writing anything.
    """
    plan = _plan(parse_payload(payload))
    conversations: dict[str, str] = {}
    for wa_id, name in sorted(plan.users.items()):  # one lock order for every ingest
        conversations[wa_id] = uow.mappings.get_or_create(wa_id, contact_name=name).conversation_id
    new = duplicate = 0
    if plan.messages:
        linked = [
            message.model_copy(update={"conversation_id": conversations[wa_id]})
            if wa_id is not None
            else message
            for wa_id, message in plan.messages
        ]
        tracked = uow.messages.track_batch(linked)
        new, duplicate = tracked.new, len(tracked.duplicates)
    applied = pending = 0
    if plan.statuses:
        result = uow.messages.apply_status_events(plan.statuses)
        applied = result.applied
        pending = len(plan.statuses) - result.applied
    for error in plan.errors:
        log.warning("WhatsApp reported a webhook error: %s", json.dumps(error.model_dump()))
    return IngestReport(
        new=new,
        duplicate=duplicate,
        statuses_applied=applied,
        statuses_pending=pending,
        ignored=plan.ignored,
        conversations=sorted(set(conversations.values())),
        errors=plan.errors,
    )
