"""The HTTP service in-process, on PostgreSQL and SQLite: the seed's endpoints and shapes, the
tenant rules, API keys, webhooks, errors and health."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import wastate
from wastate.http import HttpConfig, create_app

WA = "+919876543210"


@pytest.fixture
def make_client(
    make_store: Callable[..., wastate.Store], database_url: str
) -> Iterator[Callable[..., TestClient]]:
    """A factory of test clients on each test database, configured as asked."""
    clients: list[TestClient] = []

    def make(store: wastate.Store | None = None, **config: Any) -> TestClient:
        app = create_app(store or make_store(database_url), config=HttpConfig(**config))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A client of the service with no default tenant and no API keys."""
    return make_client()


def scoped(tenant: str) -> dict[str, str]:
    return {"X-Tenant-ID": tenant}


def track(client: TestClient, tenant: str, conversation_id: str, message_id: str) -> Any:
    body = {
        "metaMessageId": message_id,
        "conversationId": conversation_id,
        "tenantId": tenant,
        "direction": "inbound",
        "status": "sent",
        "messageType": "text",
    }
    return client.post("/state/message", json=body)


# --- mappings ---------------------------------------------------------------------------------


def test_forward_lookup_answers_the_seed_shape_and_the_same_conversation_twice(
    client: TestClient, tenant: str
) -> None:
    """GET /state/mapping/{waId} creates a conversation once and answers it in camelCase."""
    first = client.get(f"/state/mapping/{WA}", headers=scoped(tenant))
    second = client.get(f"/state/mapping/{WA}", headers=scoped(tenant))
    assert first.status_code == second.status_code == 200
    body = first.json()
    assert {"conversationId", "waId", "tenantId", "contactName"} <= body.keys()
    assert body["waId"] == WA
    assert body["tenantId"] == tenant
    assert body["status"] == "active"
    assert second.json()["conversationId"] == body["conversationId"]


def test_every_spelling_of_a_number_reaches_one_conversation(
    client: TestClient, tenant: str
) -> None:
    """`+91…`, `91…` and `91…@c.us` in the path are one WhatsApp user."""
    ids = {
        client.get(f"/state/mapping/{spelling}", headers=scoped(tenant)).json()["conversationId"]
        for spelling in (WA, WA[1:], f"{WA[1:]}@c.us")
    }
    assert len(ids) == 1


def test_reverse_lookup_finds_the_user_and_unknown_conversations_are_404(
    client: TestClient, tenant: str
) -> None:
    """GET /state/conversation/{id} answers the mapping, or 404 with an `error`."""
    conversation = client.get(f"/state/mapping/{WA}", headers=scoped(tenant)).json()
    found = client.get(
        f"/state/conversation/{conversation['conversationId']}", headers=scoped(tenant)
    )
    missing = client.get("/state/conversation/no-such-conversation", headers=scoped(tenant))
    assert found.status_code == 200
    assert found.json()["waId"] == WA
    assert missing.status_code == 404
    assert missing.json()["error"] == "Conversation mapping not found"


def test_tenants_never_see_each_others_conversations(client: TestClient, tenant: str) -> None:
    """One wa_id in two tenants: two conversations, and no reverse lookup across tenants."""
    other = f"{tenant}-b"
    mine = client.get(f"/state/mapping/{WA}", headers=scoped(tenant)).json()["conversationId"]
    theirs = client.get(f"/state/mapping/{WA}", headers=scoped(other)).json()["conversationId"]
    assert mine != theirs
    crossed = client.get(f"/state/conversation/{mine}", headers=scoped(other))
    assert crossed.status_code == 404


def test_a_malformed_wa_id_is_400_naming_the_field(client: TestClient, tenant: str) -> None:
    """A wa_id that is neither a phone number nor a business-scoped id is refused, field named."""
    answer = client.get("/state/mapping/not-a-number", headers=scoped(tenant))
    assert answer.status_code == 400
    assert answer.json()["field"] == "waId"


def test_correlate_sets_the_contact_center_id_once(client: TestClient, tenant: str) -> None:
    """Correlating is idempotent for one id; a different second id is a 409 conflict."""
    url = f"/state/mapping/{WA}/correlate"
    first = client.post(url, json={"conversationId": "gc-1"}, headers=scoped(tenant))
    again = client.post(url, json={"conversationId": "gc-1"}, headers=scoped(tenant))
    clash = client.post(url, json={"conversationId": "gc-2"}, headers=scoped(tenant))
    assert first.status_code == again.status_code == 200
    assert first.json()["conversationId"] == "gc-1"
    assert clash.status_code == 409
    assert "error" in clash.json()
    reverse = client.get("/state/conversation/gc-1", headers=scoped(tenant))
    assert reverse.json()["waId"] == WA


def test_closing_a_mapping_makes_the_next_lookup_start_a_new_conversation(
    client: TestClient, tenant: str
) -> None:
    """POST …/close answers the closed mapping; the next forward lookup is a new conversation."""
    before = client.get(f"/state/mapping/{WA}", headers=scoped(tenant)).json()
    closed = client.post(f"/state/mapping/{WA}/close", headers=scoped(tenant))
    again = client.post(f"/state/mapping/{WA}/close", headers=scoped(tenant))
    after = client.get(f"/state/mapping/{WA}", headers=scoped(tenant)).json()
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert closed.json()["closedAt"] is not None
    assert again.status_code == 404
    assert after["conversationId"] != before["conversationId"]


# --- tenant resolution ------------------------------------------------------------------------


def test_no_tenant_anywhere_is_400_naming_the_header(client: TestClient) -> None:
    """Without X-Tenant-ID, a key or a default tenant the answer is the seed's 400."""
    answer = client.get(f"/state/mapping/{WA}")
    assert answer.status_code == 400
    assert answer.json() == {"error": "X-Tenant-ID header required", "field": "X-Tenant-ID"}


def test_the_default_tenant_serves_requests_that_name_none(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """With a default tenant configured, unscoped requests act for it."""
    client = make_client(default_tenant=tenant)
    answer = client.get(f"/state/mapping/{WA}")
    assert answer.status_code == 200
    assert answer.json()["tenantId"] == tenant


def test_a_header_overrides_the_default_tenant(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """X-Tenant-ID comes before the default tenant."""
    client = make_client(default_tenant="somebody-else")
    answer = client.get(f"/state/mapping/{WA}", headers=scoped(tenant))
    assert answer.json()["tenantId"] == tenant


def test_a_malformed_tenant_header_is_400(client: TestClient) -> None:
    """A tenant id with forbidden characters is refused, naming the header."""
    answer = client.get(f"/state/mapping/{WA}", headers={"X-Tenant-ID": "bad tenant!"})
    assert answer.status_code == 400
    assert answer.json()["field"] == "X-Tenant-ID"


def test_header_and_body_tenants_that_disagree_are_400(client: TestClient, tenant: str) -> None:
    """X-Tenant-ID and the body's tenantId naming different tenants is refused; nothing written."""
    body = {"metaMessageId": "wamid.disagree", "tenantId": "other", "direction": "inbound"}
    answer = client.post("/state/message", json=body, headers=scoped(tenant))
    assert answer.status_code == 400
    assert answer.json()["field"] == "tenantId"
    assert client.get("/state/message/wamid.disagree", headers=scoped(tenant)).status_code == 404


# --- messages ---------------------------------------------------------------------------------


def test_tracking_is_201_then_a_duplicate_is_200_and_writes_nothing(
    client: TestClient, tenant: str
) -> None:
    """POST /state/message (seed body, tenant in the body) is 201; a duplicate is 200, not new."""
    conversation = client.get(f"/state/mapping/{WA}", headers=scoped(tenant)).json()
    first = track(client, tenant, conversation["conversationId"], "wamid.test123")
    second = track(client, tenant, conversation["conversationId"], "wamid.test123")
    assert first.status_code == 201
    assert first.json()["created"] is True
    assert first.json()["trackedMessage"]["metaMessageId"] == "wamid.test123"
    assert first.json()["trackedMessage"]["tenantId"] == tenant
    assert second.status_code == 200
    assert second.json()["created"] is False


def test_status_updates_move_forward_only(client: TestClient, tenant: str) -> None:
    """PATCH delivered, then read, then a late delivered: the message stays read."""
    track(client, tenant, "conv-1", "wamid.forward")
    url = "/state/message/wamid.forward"
    delivered = client.patch(url, json={"status": "delivered"}, headers=scoped(tenant))
    read = client.patch(url, json={"status": "read"}, headers=scoped(tenant))
    late = client.patch(url, json={"status": "delivered"}, headers=scoped(tenant))
    assert delivered.status_code == read.status_code == late.status_code == 200
    assert delivered.json()["message"] == "Status updated successfully"
    record = late.json()["trackedMessage"]
    assert record["status"] == "read"
    assert record["deliveredAt"] is not None
    assert record["readAt"] is not None


def test_patching_an_unknown_message_is_404(client: TestClient, tenant: str) -> None:
    """PATCH of a message id nobody tracked answers 404; the status applies once it is tracked."""
    answer = client.patch(
        "/state/message/wamid.nobody", json={"status": "delivered"}, headers=scoped(tenant)
    )
    assert answer.status_code == 404
    assert answer.json()["error"].startswith("Message not found")
    body = {"metaMessageId": "wamid.nobody", "direction": "outbound", "status": "sent"}
    assert client.post("/state/message", json=body, headers=scoped(tenant)).status_code == 201
    tracked = client.get("/state/message/wamid.nobody", headers=scoped(tenant)).json()
    assert tracked["status"] == "delivered"


def test_patching_another_tenants_message_is_404_and_changes_nothing(
    client: TestClient, tenant: str
) -> None:
    """The seed's cross-tenant update bug is gone: another tenant cannot touch the message."""
    track(client, tenant, "conv-1", "wamid.mine")
    crossed = client.patch(
        "/state/message/wamid.mine", json={"status": "read"}, headers=scoped(f"{tenant}-x")
    )
    mine = client.get("/state/message/wamid.mine", headers=scoped(tenant)).json()
    assert crossed.status_code == 404
    assert mine["status"] == "sent"


def test_an_unknown_status_is_422_naming_the_field(client: TestClient, tenant: str) -> None:
    """A status outside the delivery statuses is refused with the field named."""
    track(client, tenant, "conv-1", "wamid.badstatus")
    answer = client.patch(
        "/state/message/wamid.badstatus", json={"status": "teleported"}, headers=scoped(tenant)
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "body.status"


def test_a_message_without_any_id_is_refused(client: TestClient, tenant: str) -> None:
    """Tracking needs metaMessageId or genesysMessageId."""
    answer = client.post("/state/message", json={"direction": "inbound", "tenantId": tenant})
    assert answer.status_code == 422
    assert answer.json()["field"] == "metaMessageId"


def test_a_malformed_json_body_is_a_4xx_not_a_500(client: TestClient, tenant: str) -> None:
    """Garbage bodies are the caller's error."""
    answer = client.post(
        "/state/message",
        content=b"{not json",
        headers={**scoped(tenant), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert "error" in answer.json()


def test_history_and_conversation_listing(client: TestClient, tenant: str) -> None:
    """A message's status events and a conversation's messages are served, newest first."""
    track(client, tenant, "conv-list", "wamid.a")
    track(client, tenant, "conv-list", "wamid.b")
    client.patch("/state/message/wamid.a", json={"status": "read"}, headers=scoped(tenant))
    history = client.get("/state/message/wamid.a/history", headers=scoped(tenant))
    listing = client.get(
        "/state/conversation/conv-list/messages", params={"limit": 1}, headers=scoped(tenant)
    )
    assert history.status_code == 200
    read = [event for event in history.json()["events"] if event["status"] == "read"]
    assert len(read) == 1
    assert read[0]["at"] is not None
    assert listing.status_code == 200
    page = listing.json()
    assert len(page["messages"]) == 1
    assert page["nextBefore"] is not None
    assert client.get("/state/message/wamid.zzz/history", headers=scoped(tenant)).status_code == 404


# --- API keys ---------------------------------------------------------------------------------


def issue_key(store: wastate.Store, tenant: str) -> tuple[str, str]:
    with store.unit_of_work(tenant) as uow:
        issued = uow.api_keys.create(label="test")
    return issued.token, issued.record.key_id


@pytest.fixture
def keyed(
    make_client: Callable[..., TestClient],
    make_store: Callable[..., wastate.Store],
    database_url: str,
) -> tuple[TestClient, wastate.Store]:
    """A client of a service that requires API keys (no memo: revocations count at once)."""
    store = make_store(database_url)
    return make_client(store, require_api_key=True, api_key_cache_seconds=0), store


def test_with_keys_required_a_request_without_a_key_is_401(
    keyed: tuple[TestClient, wastate.Store], tenant: str
) -> None:
    """No key → 401 with a Bearer challenge, even with X-Tenant-ID."""
    client, _ = keyed
    answer = client.get(f"/state/mapping/{WA}", headers=scoped(tenant))
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_opens_its_own_tenant_by_either_header(
    keyed: tuple[TestClient, wastate.Store], tenant: str
) -> None:
    """X-API-Key or Authorization: Bearer; the key alone names the tenant."""
    client, store = keyed
    token, _ = issue_key(store, tenant)
    by_header = client.get(f"/state/mapping/{WA}", headers={"X-API-Key": token})
    by_bearer = client.get(f"/state/mapping/{WA}", headers={"Authorization": f"Bearer {token}"})
    assert by_header.status_code == by_bearer.status_code == 200
    assert by_header.json()["tenantId"] == tenant


def test_a_key_never_opens_another_tenant(
    keyed: tuple[TestClient, wastate.Store], tenant: str
) -> None:
    """A key with an X-Tenant-ID of another tenant is refused."""
    client, store = keyed
    token, _ = issue_key(store, tenant)
    answer = client.get(
        f"/state/mapping/{WA}", headers={"X-API-Key": token, "X-Tenant-ID": f"{tenant}-x"}
    )
    assert answer.status_code == 400
    assert answer.json()["field"] == "X-Tenant-ID"


def test_forged_and_revoked_keys_are_401(
    keyed: tuple[TestClient, wastate.Store], tenant: str
) -> None:
    """A wrong secret, a garbage token, and a revoked key are all refused."""
    client, store = keyed
    token, key_id = issue_key(store, tenant)
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert client.get(f"/state/mapping/{WA}", headers={"X-API-Key": forged}).status_code == 401
    assert client.get(f"/state/mapping/{WA}", headers={"X-API-Key": "nonsense"}).status_code == 401
    with store.unit_of_work(tenant) as uow:
        uow.api_keys.revoke(key_id)
    assert client.get(f"/state/mapping/{WA}", headers={"X-API-Key": token}).status_code == 401


def test_health_is_open_without_a_key(keyed: tuple[TestClient, wastate.Store]) -> None:
    """/health answers without credentials."""
    client, _ = keyed
    assert client.get("/health").status_code == 200


# --- webhooks ---------------------------------------------------------------------------------

STATUS_PAYLOAD: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "919876543210"}],
                        "messages": [
                            {
                                "from": "919876543210",
                                "id": "wamid.webhook-inbound",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "hello"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_webhook_handshake_echoes_the_challenge_for_the_right_token(
    make_client: Callable[..., TestClient],
) -> None:
    """hub.challenge comes back only with hub.mode=subscribe and the configured verify token."""
    client = make_client(webhook_verify_token="let-me-in")
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": "let-me-in",
        "hub.challenge": "1158201444",
    }
    ok = client.get("/webhooks/whatsapp", params=params)
    wrong = client.get("/webhooks/whatsapp", params={**params, "hub.verify_token": "nope"})
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert wrong.status_code == 403


def test_signed_webhooks_are_ingested_and_unsigned_ones_refused(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """With an app secret, only a valid X-Hub-Signature-256 gets the body ingested."""
    client = make_client(webhook_app_secret="app-secret", default_tenant=tenant)
    body = json.dumps(STATUS_PAYLOAD).encode()
    headers = {"Content-Type": "application/json"}
    unsigned = client.post("/webhooks/whatsapp", content=body, headers=headers)
    forged = client.post(
        "/webhooks/whatsapp",
        content=body,
        headers={**headers, "X-Hub-Signature-256": sign("wrong", body)},
    )
    signed = client.post(
        "/webhooks/whatsapp",
        content=body,
        headers={**headers, "X-Hub-Signature-256": sign("app-secret", body)},
    )
    assert unsigned.status_code == forged.status_code == 401
    assert signed.status_code == 200
    assert signed.json()["received"] is True
    tracked = client.get("/state/message/wamid.webhook-inbound")
    assert tracked.status_code == 200
    assert tracked.json()["waId"] in (WA, "919876543210")


def test_a_webhook_body_that_is_not_json_is_400(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """Unparsable webhook bodies are refused without a 500."""
    client = make_client(default_tenant=tenant)
    answer = client.post("/webhooks/whatsapp", content=b"\xff\xfe not json")
    assert answer.status_code == 400
    assert answer.json()["field"] == "body"


# --- health -----------------------------------------------------------------------------------


def test_health_reports_both_checks_with_latency(client: TestClient) -> None:
    """/health is the seed's shape plus database and cache checks."""
    answer = client.get("/health")
    body = answer.json()
    assert answer.status_code == 200
    assert body["status"] == "healthy"
    assert body["service"] == "state-manager"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["database"]["latencyMs"] >= 0
    assert body["checks"]["cache"]["status"] == "up"


def test_health_is_503_naming_the_database_when_it_is_down(
    make_client: Callable[..., TestClient], make_store: Callable[..., wastate.Store]
) -> None:
    """A database that cannot be reached makes the service unhealthy."""
    store = make_store("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    answer = make_client(store).get("/health")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unhealthy"
    assert answer.json()["checks"]["database"]["status"] == "down"
    assert answer.json()["checks"]["database"]["error"]


def test_routes_answer_503_not_500_when_the_database_is_down(
    make_client: Callable[..., TestClient], make_store: Callable[..., wastate.Store], tenant: str
) -> None:
    """A lookup against an unreachable database is a 503 with an error, never a 500."""
    store = make_store("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    answer = make_client(store).get(f"/state/mapping/{WA}", headers=scoped(tenant))
    assert answer.status_code == 503
    assert "error" in answer.json()


def test_health_is_degraded_but_200_when_only_redis_is_down(
    make_client: Callable[..., TestClient],
    make_store: Callable[..., wastate.Store],
    database_url: str,
) -> None:
    """The cache is optional: Redis down is a 200 'degraded', with the cache check down."""
    store = make_store(database_url, "redis://127.0.0.1:1/0")
    answer = make_client(store).get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "degraded"
    assert answer.json()["checks"]["database"]["status"] == "up"
    assert answer.json()["checks"]["cache"]["status"] == "down"


def test_health_is_healthy_with_a_live_redis(
    make_client: Callable[..., TestClient],
    make_store: Callable[..., wastate.Store],
    database_url: str,
    redis_url: str,
) -> None:
    """With Redis up, the cache check is up and names the backend."""
    store = make_store(database_url, redis_url)
    body = make_client(store).get("/health").json()
    assert body["status"] == "healthy"
    assert body["checks"]["cache"] == {
        **body["checks"]["cache"],
        "status": "up",
        "backend": "redis",
    }


def test_the_openapi_schema_is_served_with_every_route(client: TestClient) -> None:
    """/openapi.json documents the seed's routes and the additions."""
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/state/mapping/{waId}",
        "/state/conversation/{conversationId}",
        "/state/message",
        "/state/message/{messageId}",
        "/health",
        "/webhooks/whatsapp",
    } <= paths.keys()


def test_lookups_still_answer_when_redis_is_down(
    make_client: Callable[..., TestClient],
    make_store: Callable[..., wastate.Store],
    database_url: str,
    tenant: str,
) -> None:
    """The seed failed every lookup in a Redis outage; here they answer from the database."""
    client = make_client(make_store(database_url, "redis://127.0.0.1:1/0"))
    first = client.get(f"/state/mapping/{WA}", headers=scoped(tenant))
    second = client.get(f"/state/mapping/{WA}", headers=scoped(tenant))
    assert first.status_code == second.status_code == 200
    assert first.json()["conversationId"] == second.json()["conversationId"]


def test_the_multi_worker_listener_is_marked_tcp_so_answers_are_not_delayed() -> None:
    """uvicorn's supervisor socket loses TCP_NODELAY (uvicorn#3149); ours says IPPROTO_TCP."""
    import socket

    from wastate.http.serving import NoDelayConfig

    config = NoDelayConfig("wastate.http:app_factory", factory=True, host="127.0.0.1", port=0)
    sock = config.bind_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


WEBHOOK_WITH = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "1", "changes": [{"field": "messages", "value": {}}]}],
}


def webhook_with(value: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(json.dumps(WEBHOOK_WITH))
    body["entry"][0]["changes"][0]["value"] = {"messaging_product": "whatsapp", **value}
    return body


HOSTILE: list[tuple[str, str, str, Any]] = [
    (
        "PATCH",
        "/state/message/wamid.h",
        "timestamp far future",
        {"status": "read", "timestamp": "9999-12-31T23:59:59-14:00"},
    ),
    (
        "PATCH",
        "/state/message/wamid.h",
        "timestamp year 1",
        {"status": "read", "timestamp": "0001-01-01T00:00:00+14:00"},
    ),
    (
        "PATCH",
        "/state/message/wamid.h",
        "naive timestamp",
        {"status": "read", "timestamp": "2026-01-01T00:00:00"},
    ),
    (
        "PATCH",
        "/state/message/wamid.h",
        "huge error code",
        {"status": "failed", "error": {"code": 10**30}},
    ),
    ("PATCH", "/state/message/wamid.h", "status of wrong type", {"status": 7}),
    (
        "POST",
        "/state/message",
        "NUL in an id",
        {"metaMessageId": "wamid.\u0000", "direction": "inbound"},
    ),
    (
        "POST",
        "/state/message",
        "NUL in a caption",
        {"metaMessageId": "wamid.n", "direction": "inbound", "mediaCaption": "a\u0000b"},
    ),
    (
        "POST",
        "/state/message",
        "NUL in a conversation id",
        {"metaMessageId": "wamid.n", "direction": "inbound", "conversationId": "a\u0000"},
    ),
    (
        "POST",
        "/state/message",
        "far occurredAt",
        {
            "metaMessageId": "wamid.n",
            "direction": "inbound",
            "occurredAt": "9999-12-31T23:59:59-14:00",
        },
    ),
    (
        "POST",
        "/state/message",
        "unknown field",
        {"metaMessageId": "wamid.n", "direction": "inbound", "colour": "red"},
    ),
    ("POST", "/state/message", "a list body", [1, 2, 3]),
    ("GET", "/state/conversation/a%00b", "NUL in a path", None),
    ("GET", "/state/conversation/a%00b/messages", "NUL in a listed conversation", None),
    ("GET", "/state/conversation/x/messages?before=nowhere", "unknown page cursor", None),
    ("GET", "/state/conversation/x/messages?limit=0", "limit zero", None),
    ("GET", "/state/message/a%20b", "a space in a message id", None),
    ("GET", "/state/mapping/%E2%80%8F919876543210", "an invisible character in a waId", None),
    ("GET", "/state/mapping/" + "9" * 200, "an over-long waId", None),
    (
        "POST",
        "/state/mapping/+919876543210/correlate",
        "NUL in a correlation",
        {"conversationId": "a\u0000"},
    ),
    (
        "POST",
        "/webhooks/whatsapp",
        "a timestamp beyond year 9999",
        webhook_with(
            {
                "statuses": [
                    {
                        "id": "wamid.w",
                        "status": "read",
                        "timestamp": "99999999999999",
                        "recipient_id": "919876543210",
                    }
                ]
            }
        ),
    ),
    ("POST", "/webhooks/whatsapp", "an empty object", {}),
]


@pytest.mark.parametrize(
    ("method", "url", "what", "body"), HOSTILE, ids=[case[2] for case in HOSTILE]
)
def test_hostile_input_is_a_4xx_naming_the_problem_never_a_500(
    make_client: Callable[..., TestClient],
    tenant: str,
    method: str,
    url: str,
    what: str,
    body: Any,
) -> None:
    """Unstorable values, out-of-range times and malformed ids are the caller's 4xx."""
    client = make_client(default_tenant=tenant)
    track(client, tenant, "conv-h", "wamid.h")
    answer = client.request(method, url, json=body)
    assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text)
    assert answer.json()["error"]


def test_a_webhook_contact_name_with_nul_is_never_a_500(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """SQLite stores a NUL, PostgreSQL cannot: either way the answer is not a server error."""
    client = make_client(default_tenant=tenant)
    body = webhook_with(
        {
            "contacts": [{"wa_id": "919876543210", "profile": {"name": "a\u0000b"}}],
            "messages": [
                {"from": "919876543210", "id": "wamid.w", "timestamp": "1", "type": "text"}
            ],
        }
    )
    answer = client.post("/webhooks/whatsapp", json=body)
    assert answer.status_code in (200, 400, 422), answer.text


def test_a_hot_lookup_never_touches_the_database(
    make_client: Callable[..., TestClient],
    make_store: Callable[..., wastate.Store],
    database_url: str,
    tenant: str,
) -> None:
    """After the first lookup, GET /state/mapping/{waId} is answered from the cache: no
    connection is even checked out of the pool."""
    from sqlalchemy import event

    store = make_store(database_url, "memory://")
    client = make_client(store)
    checkouts: list[object] = []
    event.listen(store.engine, "checkout", lambda *args: checkouts.append(args))
    first = client.get(f"/state/mapping/{WA}", headers=scoped(tenant))
    after_first = len(checkouts)
    answers = [client.get(f"/state/mapping/{WA}", headers=scoped(tenant)) for _ in range(5)]
    assert after_first >= 1
    assert len(checkouts) == after_first
    assert {a.json()["conversationId"] for a in answers} == {first.json()["conversationId"]}
