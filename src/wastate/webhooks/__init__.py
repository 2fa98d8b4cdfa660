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

The package: `payload` (the body's pydantic models and `parse_payload`), `planning` (the body
turned into what ingest will write, validated whole), and here `ingest` and its `IngestReport`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from wastate.domain.messages import MessageError
from wastate.webhooks import planning
from wastate.webhooks.payload import (
    Change,
    ChangeValue,
    Contact,
    Entry,
    InboundMessage,
    MessageEcho,
    StatusUpdate,
    WebhookError,
    WebhookPayload,
    parse_payload,
)

# Importable from here as before the package split, though not in `__all__`.
from wastate.webhooks.payload import ErrorData as ErrorData
from wastate.webhooks.payload import Media as Media
from wastate.webhooks.payload import Metadata as Metadata
from wastate.webhooks.payload import Profile as Profile
from wastate.webhooks.planning import MESSAGE_FIELDS as MESSAGE_FIELDS

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


def ingest(
    uow: UnitOfWork, payload: WebhookPayload | Mapping[str, Any] | str | bytes
) -> IngestReport:
    """Track the messages and apply the statuses of one WhatsApp webhook body.

    Idempotent: ingesting the same body again (WhatsApp retries) changes nothing and reports the
    messages as duplicates. Raises `InvalidInput` naming the JSON path for a malformed body,
    before writing anything.
    """
    plan = planning.plan_body(parse_payload(payload))
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
