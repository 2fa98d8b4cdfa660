"""What the batch writes of the message-tracking family answer: counts and ids, no records."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
