"""A webhook delivery's tenant comes from something authenticated: the API key, or the binding
(`WASTATE_WEBHOOK_TENANTS`) of the business account / phone number ids Meta signs into the body
— never from an `X-Tenant-ID` header alone. On PostgreSQL and SQLite, in-process, and once
through a real `wastate serve` process.

The attack this closes: keys required, an app secret set, one validly signed body posted with
`X-Tenant-ID` naming each tenant in turn was accepted by every one of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import WASTATE, clean_environment, serving

import wastate
from wastate.errors import ConfigurationError
from wastate.http import HttpConfig, create_app
from wastate.settings import load_settings

SECRET = "app-secret"
WABA = "102290129340398"
PHONE = "106540352242922"
WA = "+919876543210"


def delivery(
    message_id: str = "wamid.bound", *, waba: str = WABA, phone: str | None = PHONE
) -> bytes:
    """A webhook body as Meta sends it: one inbound message to business number `phone` of
    business account `waba`."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "919876543210"}],
        "messages": [
            {
                "from": "919876543210",
                "id": message_id,
                "timestamp": "1749416383",
                "type": "text",
                "text": {"body": "hello"},
            }
        ],
    }
    if phone is not None:
        value["metadata"] = {"display_phone_number": "15550783881", "phone_number_id": phone}
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


def signed(body: bytes, **headers: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", **headers}


@pytest.fixture
def store(make_store: Callable[..., wastate.Store], database_url: str) -> wastate.Store:
    return make_store(database_url)


@pytest.fixture
def make_client(store: wastate.Store) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**config: Any) -> TestClient:
        settings: dict[str, Any] = {"require_api_key": True, "webhook_app_secret": SECRET}
        app = create_app(store, config=HttpConfig(**{**settings, **config}))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def written(store: wastate.Store, tenant: str, message_id: str = "wamid.bound") -> bool:
    """Whether the delivery left anything in `tenant`: its message or the user's mapping."""
    with store.unit_of_work(tenant) as uow:
        return uow.messages.get(message_id) is not None or uow.mappings.by_wa_id(WA) is not None


def key_of(store: wastate.Store, tenant: str) -> str:
    with store.unit_of_work(tenant) as uow:
        return uow.api_keys.create(label="webhook").token


def test_the_attack_fails_on_every_tenant_but_the_bound_one(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """One signed body, X-Tenant-ID naming each tenant: only the bound tenant accepts it (and
    without the header it goes there too); the others are 400 and get nothing."""
    bound, others = tenant, [f"{tenant}-b", f"{tenant}-c"]
    client = make_client(webhook_tenants={PHONE: bound})
    body = delivery()
    for other in others:
        answer = client.post(
            "/webhooks/whatsapp", content=body, headers=signed(body, **{"X-Tenant-ID": other})
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "X-Tenant-ID"
        assert not written(store, other)
    assert not written(store, bound)
    ok = client.post(
        "/webhooks/whatsapp", content=body, headers=signed(body, **{"X-Tenant-ID": bound})
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["report"]["new"] == 1
    again = client.post("/webhooks/whatsapp", content=body, headers=signed(body))
    assert again.status_code == 200
    assert again.json()["report"]["duplicate"] == 1
    assert written(store, bound)
    assert not any(written(store, other) for other in others)


@pytest.mark.parametrize("bound_by", ["phone_number_id", "waba"])
def test_either_id_binds_and_a_body_bound_to_no_tenant_is_403(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str, bound_by: str
) -> None:
    """The phone number id or the business account id binds a delivery; a signed body whose
    ids are bound to nothing is refused whatever X-Tenant-ID says, and writes nothing."""
    account = PHONE if bound_by == "phone_number_id" else WABA
    client = make_client(webhook_tenants={account: tenant})
    body = delivery()
    assert client.post("/webhooks/whatsapp", content=body, headers=signed(body)).status_code == 200
    stray = delivery("wamid.stray", waba="999", phone="998")
    for headers in (signed(stray), signed(stray, **{"X-Tenant-ID": tenant})):
        answer = client.post("/webhooks/whatsapp", content=stray, headers=headers)
        assert answer.status_code == 403, answer.text
        assert answer.json()["field"] == "entry[0].id"
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.get("wamid.stray") is None


def test_a_body_bound_to_two_tenants_is_400_and_writes_nothing(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """Business account bound to one tenant, its phone number to another: one delivery cannot
    be both, so it is refused."""
    other = f"{tenant}-b"
    client = make_client(webhook_tenants={WABA: tenant, PHONE: other})
    body = delivery()
    answer = client.post("/webhooks/whatsapp", content=body, headers=signed(body))
    assert answer.status_code == 400, answer.text
    assert "one delivery, one tenant" in answer.json()["error"]
    assert not written(store, tenant)
    assert not written(store, other)


def test_without_a_binding_a_signed_webhook_needs_a_key(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """Keys required, no binding: the signature no longer waives the key (401 for every
    tenant header); with a key, the key's tenant is used and a disagreeing header is 400."""
    client = make_client()
    body = delivery()
    for named in (tenant, f"{tenant}-b"):
        answer = client.post(
            "/webhooks/whatsapp", content=body, headers=signed(body, **{"X-Tenant-ID": named})
        )
        assert answer.status_code == 401, answer.text
        assert not written(store, named)
    token = key_of(store, tenant)
    wrong = client.post(
        "/webhooks/whatsapp",
        content=body,
        headers=signed(body, **{"X-API-Key": token, "X-Tenant-ID": f"{tenant}-b"}),
    )
    assert wrong.status_code == 400
    assert not written(store, f"{tenant}-b")
    keyed = client.post(
        "/webhooks/whatsapp", content=body, headers=signed(body, **{"X-API-Key": token})
    )
    assert keyed.status_code == 200, keyed.text
    assert written(store, tenant)


def test_with_a_key_the_keys_tenant_is_used_and_a_binding_elsewhere_is_400(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """A key opens its own tenant; a body whose ids are bound to another tenant is refused
    (the key does not let a delivery cross a binding), an unbound body is the key's."""
    other = f"{tenant}-b"
    client = make_client(webhook_tenants={PHONE: other})
    token = key_of(store, tenant)
    body = delivery()
    crossing = client.post(
        "/webhooks/whatsapp",
        content=body,
        headers=signed(body, Authorization=f"Bearer {token}"),
    )
    assert crossing.status_code == 400, crossing.text
    assert crossing.json()["field"] == "entry[0].changes[0].value.metadata.phone_number_id"
    assert not written(store, tenant)
    assert not written(store, other)
    unbound = delivery(waba="555", phone="556")
    answer = client.post(
        "/webhooks/whatsapp",
        content=unbound,
        headers=signed(unbound, Authorization=f"Bearer {token}"),
    )
    assert answer.status_code == 200, answer.text
    assert written(store, tenant)


def test_an_unsigned_body_with_a_binding_still_needs_the_signature(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """The binding authenticates only because the body is signed: unsigned is 401."""
    client = make_client(webhook_tenants={PHONE: tenant})
    body = delivery()
    assert client.post("/webhooks/whatsapp", content=body).status_code == 401
    assert not written(store, tenant)


def test_without_keys_the_binding_still_decides_the_tenant(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """Keys not required, a binding configured: the binding wins over the header."""
    client = make_client(require_api_key=False, webhook_tenants={PHONE: tenant})
    body = delivery()
    answer = client.post(
        "/webhooks/whatsapp", content=body, headers=signed(body, **{"X-Tenant-ID": f"{tenant}-b"})
    )
    assert answer.status_code == 400
    assert client.post("/webhooks/whatsapp", content=body, headers=signed(body)).status_code == 200
    assert written(store, tenant)
    assert not written(store, f"{tenant}-b")


# --- configuration ------------------------------------------------------------------------------


def test_webhook_tenants_are_parsed_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`<id>=<tenant>` pairs, commas or spaces between them, become the config's bindings."""
    monkeypatch.setenv("WASTATE_WEBHOOK_TENANTS", f"{PHONE}=acme, {WABA}=acme 42=Other-Co")
    config = HttpConfig.from_environment(load_settings())
    assert config.webhook_tenants == {PHONE: "acme", WABA: "acme", "42": "Other-Co"}


@pytest.mark.parametrize(
    "value",
    ["", " , ", "106540352242922", "=acme", "abc=acme", "1=", "1=bad tenant!", "1=a,1=b"],
    ids=[
        "empty",
        "only-commas",
        "no-tenant",
        "no-id",
        "not-digits",
        "empty-tenant",
        "bad-tenant",
        "bound-twice",
    ],
)
def test_a_malformed_binding_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WASTATE_WEBHOOK_TENANTS", value)
    with pytest.raises(ConfigurationError, match="WASTATE_WEBHOOK_TENANTS"):
        load_settings()


def test_a_binding_given_by_hand_is_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="WASTATE_WEBHOOK_TENANTS"):
        HttpConfig(webhook_tenants={"not-an-id": "acme"})
    with pytest.raises(ConfigurationError, match="WASTATE_WEBHOOK_TENANTS"):
        HttpConfig(webhook_tenants={PHONE: ""})


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_app_secret_is_a_configuration_error_not_checks_off(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Set but empty is a deployment mistake: refused, never read as "accept unsigned"."""
    monkeypatch.setenv("WASTATE_WEBHOOK_APP_SECRET", value)
    with pytest.raises(ConfigurationError, match="WASTATE_WEBHOOK_APP_SECRET"):
        load_settings()
    with pytest.raises(ConfigurationError, match="WASTATE_WEBHOOK_APP_SECRET"):
        HttpConfig(webhook_app_secret=value)


# --- a real server --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_server_refuses_the_attack_and_a_bad_configuration(tmp_path: Path) -> None:
    """`wastate serve` with keys required, an app secret and a binding: the signed body lands in
    the bound tenant only. An empty secret stops the server at start, in one line."""
    env = clean_environment(
        WASTATE_REQUIRE_API_KEY="true",
        WASTATE_WEBHOOK_APP_SECRET=SECRET,
        WASTATE_WEBHOOK_TENANTS=f"{PHONE}=bound-tenant",
    )
    body = delivery()
    with serving(tmp_path, env) as server:
        url = f"{server.base}/webhooks/whatsapp"
        statuses = {
            named: httpx.post(
                url, content=body, headers=signed(body, **{"X-Tenant-ID": named}), timeout=30
            ).status_code
            for named in ("victim-a", "victim-b", "bound-tenant")
        }
        assert statuses == {"victim-a": 400, "victim-b": 400, "bound-tenant": 200}
        assert (
            httpx.post(url, content=body, headers=signed(body), timeout=30).json()["report"][
                "duplicate"
            ]
            == 1
        )
    broken = clean_environment(WASTATE_WEBHOOK_APP_SECRET="")
    done = subprocess.run(
        [str(WASTATE), "serve", "--port", "1"],
        cwd=tmp_path,
        env=broken,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "WASTATE_WEBHOOK_APP_SECRET" in done.stderr
    assert "Traceback" not in done.stderr
