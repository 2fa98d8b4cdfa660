"""Time: every timestamp wastate writes is timezone-aware UTC, from an injectable clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from wastate.errors import InvalidInput

__all__ = ["Clock", "Monotonic", "as_utc", "isoformat", "utcnow"]

Clock = Callable[[], datetime]
"""A zero-argument callable returning an aware UTC datetime (tests inject a fake one)."""

Monotonic = Callable[[], float]
"""A zero-argument callable returning monotonic seconds, like `time.monotonic` (the default):
what the cache layers time their entries and the circuit breaker its probes by. Tests inject a
fake one to check each bound exactly."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime, *, field: str = "at") -> datetime:
    """`value` as aware UTC; naive values (SQLite hands those back) are taken to be UTC.

    A time that cannot be expressed in UTC (year 1 with a positive offset, say) is
    `InvalidInput` naming `field`.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(field, "is out of the representable range in UTC") from exc


def isoformat(value: datetime | None, *, zulu: bool = False) -> str | None:
    """`value` as ISO 8601 text, None as None: the one formatter of every time wastate writes out.

    `zulu` writes UTC's `+00:00` as `Z` (the HTTP answers); the seed's documents keep `+00:00`.
    """
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if zulu and text.endswith("+00:00") else text
