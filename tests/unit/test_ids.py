"""Identifier rules: one key per WhatsApp user, whatever the spelling; malformed ids refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wastate.domain.ids import normalize_tenant_id, normalize_wa_id, require_external_id
from wastate.errors import InvalidInput

digits = st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True)


@given(digits)
def test_every_phone_spelling_maps_to_one_key(number: str) -> None:
    """+N, N, N@c.us and N@s.whatsapp.net are the same user."""
    spellings = [f"+{number}", number, f"{number}@c.us", f"{number}@s.whatsapp.net", f" {number} "]
    assert {normalize_wa_id(s) for s in spellings} == {f"+{number}"}


@given(st.from_regex(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}", fullmatch=True))
def test_business_scoped_ids_are_kept_verbatim(bsuid: str) -> None:
    """Business-scoped user ids are accepted and not forced into E.164."""
    assert normalize_wa_id(bsuid) == bsuid


@given(st.text(max_size=300))
def test_normalisation_either_refuses_or_returns_a_fixed_point(text: str) -> None:
    """Any string is refused with InvalidInput or normalised to a key that normalises to itself."""
    try:
        key = normalize_wa_id(text)
    except InvalidInput as exc:
        field = exc.field
        key = None
    else:
        field = None
    if key is None:
        assert field == "wa_id"
    else:
        assert normalize_wa_id(key) == key
        assert len(key) <= 140


@pytest.mark.parametrize(
    "bad", [None, 919876543210, "", "+", "123456", "1" * 16, "us.abc", "AB.", "AB.a-b"]
)
def test_malformed_wa_ids_name_the_field(bad: object) -> None:
    """Wrong types, empty, too short, too long and malformed ids raise InvalidInput(wa_id)."""
    with pytest.raises(InvalidInput) as caught:
        normalize_wa_id(bad)
    assert caught.value.field == "wa_id"


def test_tenant_ids_are_checked() -> None:
    """Tenants are short, printable identifiers."""
    assert normalize_tenant_id("demo-tenant-001") == "demo-tenant-001"
    for bad in ["", "-lead", "a b", "x" * 65, "a}b"]:
        with pytest.raises(InvalidInput):
            normalize_tenant_id(bad)


def test_external_ids_are_printable_and_bounded() -> None:
    """wamid ids pass; spaces, control characters and over-long ids do not."""
    assert require_external_id("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI=", field="id").startswith("wamid")
    for bad in ["", "a b", "a\nb", "x" * 257]:
        with pytest.raises(InvalidInput):
            require_external_id(bad, field="id")
