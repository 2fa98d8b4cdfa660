"""What a value must be for PostgreSQL and SQLite to store it alike: one rule per kind, here.

SQLite stores almost anything; PostgreSQL refuses some of it. A value one database keeps and the
other refuses would make the same call succeed on one and fail on the other — or worse, succeed on
SQLite and then break every later export or HTTP read of that record. So every value is held to
what *both* can store, before any statement runs:

- **text** (`check_text`, `StorableStr`): no NUL character (PostgreSQL text and JSONB cannot hold
  one) and no lone surrogate (`"\\ud83d"`: not encodable as UTF-8, which every driver and every
  JSON answer needs);
- **JSON** (`json_value`, `StorableJSONObject`): what `json` encodes and gives back equal — string
  keys, finite numbers, no tuples, strings and keys by the text rule — nested at most
  `MAX_JSON_DEPTH` deep;
- **integers** (`require_int`, `Int32`): inside the range of the PostgreSQL column type (`integer`
  or `bigint`), the tighter of the two databases;
- **times** (`UtcTime`): expressible in UTC (year 1 with a positive offset is not); naive values
  are taken as UTC.

Each raises `InvalidInput` naming the field; the pydantic types raise `ValueError`, which
`invalid_input_from` turns into `InvalidInput` naming the path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field, ValidationError
from pydantic_core import ErrorDetails

from wastate.domain.clock import as_utc
from wastate.errors import InvalidInput

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_JSON_DEPTH",
    "AwareUtcTime",
    "Int32",
    "StorableJSONObject",
    "StorableStr",
    "UtcTime",
    "check_text",
    "field_path",
    "invalid_input_from",
    "json_value",
    "problem_text",
    "require_int",
    "require_text",
    "text_problem",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
"""PostgreSQL `integer`."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""PostgreSQL `bigint`, and SQLite's INTEGER (beyond it SQLite's driver raises OverflowError)."""

MAX_JSON_DEPTH = 64
"""How deep JSON may nest: deeper structures are no real payload, and would exhaust the stack."""

_MAX_JSON_INT_BITS = 14_000  # about 4200 decimal digits
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored alike on both databases, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters"
    return "must not contain lone surrogates (text that is not valid Unicode)"


def check_text(value: str, *, field: str) -> str:
    """`value` (a str) unchanged, or `InvalidInput` naming `field` when the text rule refuses it."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(field, problem)
    return value


def require_text(
    value: object, *, field: str, max_length: int | None = None, optional: bool = False
) -> str | None:
    """`value` as storable text of at most `max_length` characters (None allowed if `optional`)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(field, f"is longer than {max_length} characters")
    return check_text(value, field=field)


def require_int(value: object, *, field: str, minimum: int, maximum: int) -> int:
    """`value` as an int from `minimum` to `maximum` (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum)
        if kind is None:
            raise InvalidInput(field, f"must be an integer from {minimum} to {maximum}")
        raise InvalidInput(field, f"must be {kind} no larger than {maximum}")
    return value


def json_value(value: Any, *, field: str) -> Any:
    """A deep copy of `value` that JSON stores and gives back equal, or `InvalidInput`.

    Refused: anything `json` cannot encode, NaN/infinity, non-string keys and tuples (JSON would
    silently turn them into something else, so an export would not give back what was stored),
    text the text rule refuses (in keys and values, at any depth), and nesting deeper than
    `MAX_JSON_DEPTH`.
    """
    _check_json(value, field, 0)
    return json.loads(json.dumps(value, allow_nan=False))


def _check_json(value: Any, path: str, depth: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        # Python refuses to print an int of more than 4300 digits (and so to encode it as JSON).
        if value.bit_length() > _MAX_JSON_INT_BITS:
            raise InvalidInput(path, "is too large a number for JSON")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(path, f"{value!r} is not a JSON number")
        return
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise InvalidInput(path, f"strings {problem}")
        return
    if depth >= MAX_JSON_DEPTH and isinstance(value, list | dict):
        raise InvalidInput(path, f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(path, f"JSON object keys must be strings, got {key!r}")
            problem = text_problem(key)
            if problem is not None:  # checked before the key goes into a field path
                raise InvalidInput(path, f"keys {problem}")
            _check_json(item, f"{path}.{key}", depth + 1)
        return
    raise InvalidInput(path, f"is not JSON-serialisable ({type(value).__name__})")


# -- the same rules as pydantic types (models raise ValueError; the path comes from pydantic) --


def _storable_str(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    # Checked, not copied: models hold what they were given (json_value copies where it must).
    try:
        _check_json(value, "value", 0)
    except InvalidInput as exc:
        raise ValueError(f"{exc.field}: {exc.message}") from None
    return value


def _utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


StorableStr = Annotated[str, AfterValidator(_storable_str)]
"""A str both databases store alike (see `text_problem`)."""

StorableJSONObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
"""A JSON object both databases store alike (see `json_value`)."""

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
"""An int a PostgreSQL `integer` column holds."""

UtcTime = Annotated[datetime, AfterValidator(_utc)]
"""A datetime expressible in UTC, handed on as aware UTC (naive values are taken as UTC)."""

AwareUtcTime = Annotated[AwareDatetime, AfterValidator(_utc)]
"""A timezone-aware datetime expressible in UTC, handed on as aware UTC."""


def field_path(loc: Sequence[int | str], *, prefix: str = "") -> str:
    """A pydantic error location as a JSON path after `prefix`: `("entry", 0, "id")` →
    `entry[0].id`; names are kept as they are. The one reader of `loc` (the HTTP errors too)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def invalid_input_from(exc: ValidationError, *, prefix: str = "") -> InvalidInput:
    """The first problem of a pydantic `ValidationError` as `InvalidInput` naming its path.

    Paths read like JSON paths: `entry[0].changes[0].value.statuses[1].timestamp`.
    """
    error = exc.errors(include_url=False)[0]
    return InvalidInput(field_path(error["loc"], prefix=prefix) or "value", problem_text(error))


def problem_text(error: ErrorDetails) -> str:
    """What a pydantic error says, without pydantic's `Value error, ` prefix, and without the
    field name an `InvalidInput` raised inside a validator carries (the path names it)."""
    raised = error.get("ctx", {}).get("error")
    if isinstance(raised, InvalidInput):
        return raised.message
    return str(error["msg"]).removeprefix("Value error, ")
