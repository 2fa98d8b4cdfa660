"""The WhatsApp webhook's HTTP concerns: a bounded body, its signature, strict JSON, and the
account ids that bind a delivery to a tenant.

Everything here answers a hostile body with a 4xx `ApiError`, before anything is written:

- the body is read chunk by chunk and refused (413) as soon as it passes `MAX_WEBHOOK_BYTES`
  (or at once when its `Content-Length` says it will), so an oversized post costs no memory;
- `X-Hub-Signature-256` is compared as bytes: a header with non-ASCII characters is simply a
  wrong signature (401), given twice it is refused (401) before anything else is looked at;
- the JSON must be I-JSON (RFC 7493): no lone surrogates (`"\\ud83d"`, which no UTF-8 text,
  database or log can hold), no `NaN`/`Infinity`; and it is nested at most `MAX_WEBHOOK_DEPTH`
  levels deep (Meta's bodies use about eight; a deeper one would exhaust the interpreter's
  recursion while being parsed, validated or stored).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import Any, NoReturn

from starlette.requests import Request

from wastate.http.errors import ApiError
from wastate.http.tenancy import Account
from wastate.webhooks import WebhookPayload

__all__ = [
    "MAX_WEBHOOK_BYTES",
    "MAX_WEBHOOK_DEPTH",
    "SIGNATURE_HEADER",
    "accounts_of",
    "check_signature",
    "decode_body",
    "read_body",
]

MAX_WEBHOOK_BYTES = 1 << 20  # WhatsApp batches stay far below 1 MiB
MAX_WEBHOOK_DEPTH = 64
SIGNATURE_HEADER = "X-Hub-Signature-256"


def _too_large() -> NoReturn:
    raise ApiError(413, f"webhook body larger than {MAX_WEBHOOK_BYTES} bytes", field="body")


async def read_body(request: Request, limit: int = MAX_WEBHOOK_BYTES) -> bytes:
    """The request body, at most `limit` bytes; 413 as soon as it is known to be longer."""
    declared = request.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            _too_large()
    return bytes(body)


def check_signature(request: Request, secret: str, body: bytes) -> None:
    """401 unless the request carries exactly one valid `X-Hub-Signature-256` for `body`."""
    values = request.headers.getlist(SIGNATURE_HEADER)
    header = values[0] if len(values) == 1 else ""
    # Headers arrive as latin-1 text; as bytes, any character compares (unequal) without error.
    presented = header.strip().encode("latin-1", errors="replace")
    if presented[:7].lower() == b"sha256=":
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        if hmac.compare_digest(expected, presented[7:].strip().lower()):
            return
    raise ApiError(401, f"missing or invalid {SIGNATURE_HEADER}", field=SIGNATURE_HEADER)


def _not_a_number(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON number")


def decode_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, refused (400, field `body` or the JSON path) unless it is UTF-8
    I-JSON nested at most `MAX_WEBHOOK_DEPTH` deep."""
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_not_a_number)
    except RecursionError:
        _too_deep()
    except (UnicodeDecodeError, ValueError) as exc:
        # JSONDecodeError is a ValueError, as are NaN and integers longer than Python converts.
        raise ApiError(400, f"body is not JSON: {exc}", field="body") from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "body must be a JSON object", field="body")
    # UTF-8 cannot encode a surrogate, so one can only come from a `\\uD8xx`-`\\uDFxx` escape.
    _check_tree(payload, surrogates=_SURROGATE_ESCAPE.search(body) is not None)
    return payload


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _too_deep() -> NoReturn:
    raise ApiError(400, f"body is nested deeper than {MAX_WEBHOOK_DEPTH} levels", field="body")


def _check_tree(payload: dict[str, Any], *, surrogates: bool) -> None:
    """Refuse nesting past the limit and, if the body may hold one, a lone surrogate anywhere
    (keys included). Iterative, so that checking a deep tree cannot itself run out of stack; the
    path of a surrogate is worked out only once one is found (building every path costs more
    than the check itself)."""
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(payload, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > MAX_WEBHOOK_DEPTH:
            _too_deep()
        if isinstance(container, dict):
            if surrogates and not all(map(_is_text, container)):
                _lone_surrogate(_surrogate_path(payload))
            values: Iterable[Any] = container.values()
        else:
            values = container
        for item in values:
            if isinstance(item, dict | list):
                pending.append((item, depth + 1))
            elif surrogates and isinstance(item, str) and not _is_text(item):
                _lone_surrogate(_surrogate_path(payload))


def _surrogate_path(payload: dict[str, Any]) -> str:
    """The JSON path of the first lone surrogate in `payload` (a key's is its parent's path)."""
    pending: list[tuple[Any, str]] = [(payload, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not _is_text(key):
                    return path or "body"
                pending.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{index}]") for index, item in enumerate(value))
        elif isinstance(value, str) and not _is_text(value):
            return path
    return "body"


def _is_text(value: str) -> bool:
    """True unless `value` holds a lone surrogate (it then has no UTF-8 form)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _lone_surrogate(path: str) -> NoReturn:
    # The path is built from the body's own keys; a key with a lone surrogate is reported as
    # its parent's path, so that the answer itself is always valid UTF-8.
    raise ApiError(
        400, f"{path}: holds a lone UTF-16 surrogate, which is not text (RFC 7493)", field=path
    )


def accounts_of(payload: WebhookPayload) -> list[list[Account]]:
    """Per `entry[]`, the ids Meta signs into the body: the business account (`entry[].id`) and
    the business phone number of each change (`….value.metadata.phone_number_id`)."""
    entries: list[list[Account]] = []
    for e, entry in enumerate(payload.entry):
        accounts = [] if entry.id is None else [Account(f"entry[{e}].id", entry.id)]
        for c, change in enumerate(entry.changes):
            metadata = change.value.metadata
            if metadata is not None and metadata.phone_number_id is not None:
                path = f"entry[{e}].changes[{c}].value.metadata.phone_number_id"
                accounts.append(Account(path, metadata.phone_number_id))
        entries.append(accounts)
    return entries
