"""The API-key repository on PostgreSQL and SQLite: tokens name their tenant, only hashes are
stored, a key verifies only in its own tenant, revocation is final."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import wastate
from wastate.db.tables import ApiKey
from wastate.repositories.api_keys import hash_secret, parse_token


def test_a_token_names_its_tenant_and_key_and_verifies(store: wastate.Store, tenant: str) -> None:
    """create → a token whose parts parse back; the secret verifies, a wrong one does not."""
    with store.unit_of_work(tenant) as uow:
        issued = uow.api_keys.create(label="crm")
    parsed = parse_token(issued.token)
    assert parsed is not None
    assert (parsed.tenant_id, parsed.key_id) == (tenant, issued.record.key_id)
    with store.unit_of_work(tenant) as uow:
        keys = uow.api_keys
        assert keys.verify(parsed.key_id, parsed.secret)
        assert not keys.verify(parsed.key_id, "0" * len(parsed.secret))


def test_only_a_hash_of_the_secret_is_stored(store: wastate.Store, tenant: str) -> None:
    """The row holds sha256 over tenant, key id and secret — never the secret or the token."""
    with store.unit_of_work(tenant) as uow:
        issued = uow.api_keys.create()
    parsed = parse_token(issued.token)
    assert parsed is not None
    table = ApiKey.__table__
    with store.engine.connect() as connection:
        stored = connection.execute(
            select(table.c.secret_hash).where(table.c.tenant_id == tenant)
        ).scalar_one()
    assert parsed.secret not in stored
    assert stored == hash_secret(tenant, parsed.key_id, parsed.secret)


def test_a_key_does_not_verify_in_another_tenant(store: wastate.Store, tenant: str) -> None:
    """The same key id and secret presented to another tenant's unit of work fail."""
    with store.unit_of_work(tenant) as uow:
        issued = uow.api_keys.create()
    parsed = parse_token(issued.token)
    assert parsed is not None
    with store.unit_of_work(f"{tenant}-other") as uow:
        assert not uow.api_keys.verify(parsed.key_id, parsed.secret)
        assert uow.api_keys.all() == []


def test_revocation_is_final_and_idempotent(store: wastate.Store, tenant: str) -> None:
    """A revoked key stops verifying; revoking again keeps the first revocation time."""
    with store.unit_of_work(tenant) as uow:
        issued = uow.api_keys.create()
    parsed = parse_token(issued.token)
    assert parsed is not None
    with store.unit_of_work(tenant) as uow:
        first = uow.api_keys.revoke(parsed.key_id)
    with store.unit_of_work(tenant) as uow:
        second = uow.api_keys.revoke(parsed.key_id)
        assert not uow.api_keys.verify(parsed.key_id, parsed.secret)
        assert uow.api_keys.revoke("0123456789abcdef") is None
    assert first is not None
    assert second is not None
    assert first.revoked_at == second.revoked_at
    assert not second.active


def test_keys_are_listed_oldest_first_with_their_labels(store: wastate.Store, tenant: str) -> None:
    """`all()` answers every key of the tenant, revoked ones included, in creation order."""
    with store.unit_of_work(tenant) as uow:
        ids = [uow.api_keys.create(label=f"k{n}").record.key_id for n in range(3)]
        uow.api_keys.revoke(ids[1])
    with store.unit_of_work(tenant) as uow:
        listed = uow.api_keys.all()
    assert [key.key_id for key in listed] == ids
    assert [key.label for key in listed] == ["k0", "k1", "k2"]
    assert [key.active for key in listed] == [True, False, True]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "wsk_",
        "nonsense",
        "wsk_tenant_short_secret",
        "wsk_tenant_" + "g" * 16 + "_" + "0" * 48,  # key id not hex
        "wsk_bad tenant_" + "0" * 16 + "_" + "0" * 48,  # tenant with a space
        "wsk_t_" + "0" * 16 + "_" + "0" * 47,  # secret one short
        "Bearer wsk_t_" + "0" * 16 + "_" + "0" * 48,
        "wsk_t_" + "0" * 16 + "_" + "0" * 48 + "x" * 300,
    ],
)
def test_malformed_tokens_do_not_parse(token: str) -> None:
    """Anything not shaped like `wsk_<tenant>_<16 hex>_<48 hex>` is refused before any query."""
    assert parse_token(token) is None


def test_tenants_with_underscores_parse(store: wastate.Store) -> None:
    """The tenant part may itself hold underscores."""
    with store.unit_of_work("acme_eu_1") as uow:
        issued = uow.api_keys.create()
    parsed = parse_token(issued.token)
    assert parsed is not None
    assert parsed.tenant_id == "acme_eu_1"


def test_an_over_long_label_is_refused(store: wastate.Store, tenant: str) -> None:
    """Labels longer than the column are InvalidInput naming `label`; nothing is written."""
    with store.unit_of_work(tenant) as uow, pytest.raises(wastate.InvalidInput, match="label"):
        uow.api_keys.create(label="x" * 257)
    with store.unit_of_work(tenant) as uow:
        assert uow.api_keys.all() == []
