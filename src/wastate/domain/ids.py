"""Identifier rules: tenant ids, WhatsApp user ids (`wa_id`) and external message ids.

One user, one key: `+919876543210`, `919876543210`, `919876543210@c.us` and
`919876543210@s.whatsapp.net` all normalise to `+919876543210` (E.164 with its plus sign, as the
seed's service answers). WhatsApp business-scoped user ids (`CC.` + up to 128 letters/digits, e.g.
`US.13491208655302741918`) are kept as they are. Anything else is `InvalidInput`.
"""

from __future__ import annotations

import re

from wastate.errors import InvalidInput

__all__ = [
    "MAX_EXTERNAL_ID_LENGTH",
    "MAX_TENANT_ID_LENGTH",
    "MAX_WA_ID_LENGTH",
    "normalize_tenant_id",
    "normalize_wa_id",
    "require_bounded_str",
    "require_external_id",
]

MAX_TENANT_ID_LENGTH = 64
MAX_WA_ID_LENGTH = 140
"""The one length limit of a WhatsApp user id: the rule, the models, the HTTP schemas and the
table columns all use it."""
MAX_EXTERNAL_ID_LENGTH = 256

# E.164 allows at most 15 digits; the shortest real numbers have 7 (some small countries).
_PHONE = re.compile(r"\+?([1-9][0-9]{6,14})(?:@c\.us|@s\.whatsapp\.net)?")
_BUSINESS_SCOPED = re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def normalize_wa_id(value: object, *, field: str = "wa_id") -> str:
    """The canonical key of a WhatsApp user id, or `InvalidInput` naming `field`."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise InvalidInput(field, "must not be empty")
    if len(text) > MAX_WA_ID_LENGTH:
        raise InvalidInput(field, f"is longer than {MAX_WA_ID_LENGTH} characters")
    phone = _PHONE.fullmatch(text)
    if phone is not None:
        return "+" + phone.group(1)
    if _BUSINESS_SCOPED.fullmatch(text):
        return text
    raise InvalidInput(
        field,
        f"{value!r} is neither a phone number (7-15 digits, optional + or @c.us/@s.whatsapp.net)"
        " nor a business-scoped user id (CC.<letters and digits>)",
    )


def require_bounded_str(value: object, *, field: str, max_length: int) -> str:
    """`value` as a non-empty string of at most `max_length` characters: the shape every id and
    key shares (the caller then checks its characters)."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidInput(field, f"is longer than {max_length} characters")
    return value


def normalize_tenant_id(value: object, *, field: str = "tenant_id") -> str:
    """A tenant id: 1-64 characters of letters, digits and `._:@-`, starting alphanumeric."""
    value = require_bounded_str(value, field=field, max_length=MAX_TENANT_ID_LENGTH)
    if not _TENANT.fullmatch(value):
        raise InvalidInput(
            field, f"{value!r} may hold only letters, digits and . _ : @ - (starting alphanumeric)"
        )
    return value


def require_external_id(value: object, *, field: str) -> str:
    """An opaque external id (a `wamid…`, a contact-center id): printable, no spaces, ≤ 256."""
    value = require_bounded_str(value, field=field, max_length=MAX_EXTERNAL_ID_LENGTH)
    if not _PRINTABLE.fullmatch(value):
        raise InvalidInput(field, "may hold only printable ASCII characters without spaces")
    return value
