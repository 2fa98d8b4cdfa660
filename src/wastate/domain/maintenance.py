"""Rules for housekeeping and listing arguments (expire, purge, pages): how old, how many.

Every batch `limit` of every repository (and of the cache decorator and `wastate.testing`) goes
through `require_batch_size` or `require_row_limit` before any statement: a negative or missing
limit must never reach SQL, where SQLite reads `LIMIT -1` and PostgreSQL `LIMIT NULL` as "no
limit at all".
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from datetime import datetime, timedelta

from wastate.domain.storable import INT64_MAX, require_int
from wastate.errors import InvalidInput

__all__ = [
    "BATCH_SIZE",
    "cutoff_before",
    "drain",
    "require_batch_size",
    "require_positive_age",
    "require_row_limit",
]

BATCH_SIZE = 1000
"""How many rows one housekeeping statement touches when the caller does not say."""


def require_positive_age(older_than: object, *, allow_zero: bool = False) -> timedelta:
    """A maintenance age: a positive `timedelta` (zero would mean "everything"; `allow_zero`
    where it does not, e.g. parked events)."""
    smallest = timedelta(0) if allow_zero else timedelta.resolution
    if not isinstance(older_than, timedelta) or older_than < smallest:
        wanted = "a non-negative" if allow_zero else "a positive"
        raise InvalidInput("older_than", f"must be {wanted} duration")
    return older_than


def cutoff_before(now: datetime, older_than: object, *, allow_zero: bool = False) -> datetime:
    """`now - older_than` for a valid age; an age reaching back before year 1 is `InvalidInput`."""
    age = require_positive_age(older_than, allow_zero=allow_zero)
    try:
        return now - age
    except OverflowError as exc:
        raise InvalidInput("older_than", "reaches back before year 1") from exc


def require_batch_size(limit: object, *, field: str = "limit") -> int:
    """How many rows one batch may touch: an integer from 1 to 2**63 - 1 (what both databases'
    LIMIT takes)."""
    return require_int(limit, field=field, minimum=1, maximum=INT64_MAX)


def require_row_limit(limit: object, *, field: str = "limit") -> int | None:
    """An optional cap on a listing: None (no cap), or an integer from 0 to 2**63 - 1."""
    if limit is None:
        return None
    return require_int(limit, field=field, minimum=0, maximum=INT64_MAX)


def drain(
    batch: Callable[..., Sized | int],
    older_than: timedelta,
    *,
    limit: int | None = None,
    batch_size: int = BATCH_SIZE,
    allow_zero: bool = False,
) -> int:
    """What every `purge`/`expire_idle` means: call `batch(older_than, limit=n)` (one statement
    of at most n rows, returning the rows or their count) until a batch comes back short or
    `limit` rows in all are done; how many. `limit` None drains everything."""
    require_positive_age(older_than, allow_zero=allow_zero)
    if limit is not None:
        require_batch_size(limit)
    done = 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        rows = batch(older_than, limit=size)
        count = rows if isinstance(rows, int) else len(rows)
        done += count
        if count < size:
            break
    return done
