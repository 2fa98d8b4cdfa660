"""Rules for housekeeping arguments (expire, purge): how old, and how many at a time."""

from __future__ import annotations

from datetime import timedelta

from wastate.errors import InvalidInput

__all__ = ["require_batch_size", "require_positive_age"]


def require_positive_age(older_than: object) -> timedelta:
    """A maintenance age: a positive `timedelta` (zero would mean "everything")."""
    if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
        raise InvalidInput("older_than", "must be a positive duration")
    return older_than


def require_batch_size(limit: object) -> int:
    """How many rows one maintenance batch may touch: a positive integer."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput("limit", "must be a positive integer")
    return limit
