"""The WhatsApp Cloud API webhook body as pydantic models, and `parse_payload`, which validates
one whole: frozen objects, tolerant of fields WhatsApp adds later, with Unix-second timestamps as
aware datetimes. A malformed body is `InvalidInput` naming its JSON path.

What does not live here: what a body means for wastate (`wastate.webhooks.planning`), writing it
(`wastate.webhooks.ingest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wastate.domain.messages import MessageError, invalid_input_from

__all__ = [
    "Change",
    "ChangeValue",
    "Contact",
    "Entry",
    "ErrorData",
    "InboundMessage",
    "Media",
    "MessageBase",
    "MessageEcho",
    "Metadata",
    "Profile",
    "StatusUpdate",
    "WebhookError",
    "WebhookPayload",
    "parse_payload",
]

_MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


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


class MessageBase(_Model):
    """What an inbound message and a message echo share: id, time, type, errors, media."""

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


class InboundMessage(MessageBase):
    """`value.messages[]`: a message a WhatsApp user sent to the business."""

    from_: str | None = Field(None, alias="from")
    from_user_id: str | None = None


class MessageEcho(MessageBase):
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
