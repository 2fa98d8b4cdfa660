"""Hostile HTTP input is a 4xx naming the problem, never a 500, and writes nothing: deep and
oversized webhook bodies, odd signature headers, lone surrogates, doubled identity headers,
control characters in a conversation id, and error fields named as the client wrote them.

In-process through FastAPI's TestClient (and the raw ASGI interface where the test needs to see
how much of a body was read), on PostgreSQL and SQLite where the route touches the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import clean_environment, serving
from hypothesis import given
from hypothesis import strategies as st

import wastate
from wastate.http import HttpConfig, create_app
from wastate.http.errors import api_field
from wastate.http.webhook import MAX_WEBHOOK_BYTES, MAX_WEBHOOK_DEPTH

WA = "+919876543210"
SECRET = "app-secret"


@pytest.fixture
def store(make_store: Callable[..., wastate.Store], database_url: str) -> wastate.Store:
    return make_store(database_url)


@pytest.fixture
def make_client(store: wastate.Store) -> Iterator[Callable[..., TestClient]]:
    """Test clients of the service on each test database, configured as asked."""
    clients: list[TestClient] = []

    def make(**config: Any) -> TestClient:
        client = TestClient(
            create_app(store, config=HttpConfig(**config)), raise_server_exceptions=False
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def inbound(*, message_id: str = "wamid.hostile", name: str = "Sheena") -> dict[str, Any]:
    """A webhook with one inbound text message (as Meta sends it)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "106540352242922"},
                            "contacts": [{"profile": {"name": name}, "wa_id": "919876543210"}],
                            "messages": [
                                {
                                    "from": "919876543210",
                                    "id": message_id,
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


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def nothing_written(store: wastate.Store, tenant: str, message_id: str) -> bool:
    with store.unit_of_work(tenant) as uow:
        return uow.messages.get(message_id) is None and uow.mappings.by_wa_id(WA) is None


# --- deep bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_WEBHOOK_DEPTH + 1, 1_000, 100_000])
def test_a_deeply_nested_webhook_body_is_400_and_writes_nothing(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str, depth: int
) -> None:
    """Nesting past the limit — inside a field ingest ignores, too — is a 400 naming the body;
    past the interpreter's recursion limit it is the same 400, not a RecursionError's 500."""
    client = make_client(default_tenant=tenant)
    body = inbound()
    text = json.dumps(body)
    # An unknown field (tolerated by ingest) holding the deep part, next to a real message.
    deep = "[" * depth + "]" * depth
    raw = text[:-1] + f', "extra": {deep}}}'
    answer = client.post("/webhooks/whatsapp", content=raw.encode())
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "body"
    assert "nested deeper" in answer.json()["error"]
    assert nothing_written(store, tenant, "wamid.hostile")


def test_a_body_nested_just_within_the_limit_is_ingested(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """The limit leaves room for anything Meta sends (about eight levels)."""
    client = make_client(default_tenant=tenant)
    body = inbound()
    nested: Any = []
    for _ in range(MAX_WEBHOOK_DEPTH - 2):
        nested = [nested]
    body["extra"] = nested  # depth: the body (1) + "extra" (MAX - 1 levels of lists)
    answer = client.post("/webhooks/whatsapp", json=body)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "url", ["/state/message", "/state/message/wamid.x", f"/state/mapping/{WA}/correlate"]
)
def test_a_deeply_nested_state_body_is_a_4xx(
    make_client: Callable[..., TestClient], tenant: str, url: str
) -> None:
    """The bodies FastAPI parses itself answer 4xx for the same nesting, never a 500."""
    client = make_client(default_tenant=tenant)
    method = "PATCH" if url.startswith("/state/message/") else "POST"
    raw = '{"status": ' + "[" * 100_000 + "]" * 100_000 + "}"
    answer = client.request(
        method, url, content=raw.encode(), headers={"Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text


# --- signatures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "sha256=é".encode("latin-1"),
        ("sha256=" + "ÿ" * 64).encode("latin-1"),
        b"\xe2\x9c\x93",
        b"sha256=",
        b"",
    ],
    ids=["latin-1", "64-non-ascii", "utf-8-bytes", "empty-digest", "empty"],
)
def test_a_non_ascii_or_empty_signature_is_401_before_anything_else(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str, header: bytes
) -> None:
    """Any header that is not the right digest is a 401, however it is spelled."""
    client = make_client(default_tenant=tenant, webhook_app_secret=SECRET)
    body = json.dumps(inbound()).encode()
    answer = client.post(
        "/webhooks/whatsapp", content=body, headers=[(b"X-Hub-Signature-256", header)]
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["field"] == "X-Hub-Signature-256"
    assert nothing_written(store, tenant, "wamid.hostile")


def test_two_signature_headers_are_401_even_if_one_is_valid(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """A valid and a forged signature together prove nothing: refused."""
    client = make_client(default_tenant=tenant, webhook_app_secret=SECRET)
    body = json.dumps(inbound()).encode()
    answer = client.post(
        "/webhooks/whatsapp",
        content=body,
        headers=[("X-Hub-Signature-256", sign(body)), ("X-Hub-Signature-256", sign(body, "x"))],
    )
    assert answer.status_code == 401
    assert nothing_written(store, tenant, "wamid.hostile")
    assert (
        client.post(
            "/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": sign(body)}
        ).status_code
        == 200
    )


# --- lone surrogates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "edit"),
    [
        ("contact name", lambda raw: raw.replace('"Sheena"', '"\\ud83d"')),
        ("message id", lambda raw: raw.replace('"wamid.hostile"', '"wamid.\\udc00"')),
        ("text body (ignored by ingest)", lambda raw: raw.replace('"hello"', '"a\\ud83db"')),
        ("a key", lambda raw: raw.replace('"text":', '"\\ud83d":')),
    ],
)
def test_lone_surrogates_in_a_webhook_are_400_and_write_nothing(
    make_client: Callable[..., TestClient],
    store: wastate.Store,
    tenant: str,
    where: str,
    edit: Callable[[str], str],
) -> None:
    """A lone surrogate is not text (no UTF-8 form): the body is refused whole, on both
    databases alike, instead of SQLite storing it and PostgreSQL failing with a 500."""
    client = make_client(default_tenant=tenant)
    raw = edit(json.dumps(inbound()))
    assert "\\ud" in raw, where
    answer = client.post("/webhooks/whatsapp", content=raw.encode())
    assert answer.status_code == 400, (where, answer.text)
    assert "surrogate" in answer.json()["error"]
    assert nothing_written(store, tenant, "wamid.hostile")  # not even the user's mapping


def test_a_surrogate_pair_is_text_and_accepted(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """An escaped pair is one real character (😀): stored and answered intact."""
    client = make_client(default_tenant=tenant)
    raw = json.dumps(inbound()).replace('"Sheena"', '"Sheena \\ud83d\\ude00"')
    assert client.post("/webhooks/whatsapp", content=raw.encode()).status_code == 200
    with store.unit_of_work(tenant) as uow:
        mapping = uow.mappings.by_wa_id(WA)
    assert mapping is not None
    assert mapping.contact_name == "Sheena \U0001f600"


@pytest.mark.parametrize(
    ("method", "url", "raw"),
    [
        (
            "POST",
            "/state/message",
            '{"metaMessageId": "wamid.s", "direction": "inbound", "mediaCaption": "\\ud83d"}',
        ),
        ("PATCH", "/state/message/wamid.s", '{"status": "failed", "error": {"title": "\\udc00"}}'),
        ("POST", f"/state/mapping/{WA}/correlate", '{"conversationId": "c\\ud83d"}'),
    ],
)
def test_lone_surrogates_in_state_bodies_are_4xx(
    make_client: Callable[..., TestClient], tenant: str, method: str, url: str, raw: str
) -> None:
    """The other JSON bodies refuse them too (422 naming the field), never a 500."""
    client = make_client(default_tenant=tenant)
    answer = client.request(
        method, url, content=raw.encode(), headers={"Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["field"]


def test_an_error_quoting_a_lone_surrogate_still_renders() -> None:
    """An error message holding a lone surrogate is answered as escaped JSON, not a 500."""
    from wastate.http.errors import error_response

    answer = error_response(400, "bad \ud83d value", field="x\udc00")
    assert json.loads(answer.body) == {"error": "bad \ud83d value", "field": "x\udc00"}


# --- body size ------------------------------------------------------------------------------------


def call_asgi(
    app: FastAPI, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]
) -> tuple[int, int]:
    """POST /webhooks/whatsapp through the raw ASGI interface; (status, body chunks read)."""
    read = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/whatsapp",
        "raw_path": b"/webhooks/whatsapp",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    asyncio.run(app(scope, receive, send))
    return status, read


def endless(chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """A body that never ends (the client would send 50 MB, or more)."""
    chunk = b" " * chunk_size
    while True:
        yield chunk


def test_an_endless_webhook_body_is_413_after_reading_just_past_the_limit(
    store: wastate.Store, tenant: str
) -> None:
    """The limit is enforced while reading: the answer comes after limit + one chunk, not after
    the whole (here: endless) body was held in memory."""
    app = create_app(store, config=HttpConfig(default_tenant=tenant))
    status, read = call_asgi(app, [], endless())
    assert status == 413
    assert read == MAX_WEBHOOK_BYTES // (64 * 1024) + 1


def test_a_declared_oversized_webhook_is_413_before_reading_anything(
    store: wastate.Store, tenant: str
) -> None:
    """A Content-Length past the limit is refused before the first byte is read."""
    app = create_app(store, config=HttpConfig(default_tenant=tenant))
    declared = str(50 * 1024 * 1024).encode()
    status, read = call_asgi(app, [(b"content-length", declared)], endless())
    assert (status, read) == (413, 0)


def test_a_webhook_at_the_limit_is_read(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """Exactly MAX_WEBHOOK_BYTES (padding with JSON whitespace) is still a body, ingested."""
    client = make_client(default_tenant=tenant)
    raw = json.dumps(inbound()).encode()
    padded = raw + b" " * (MAX_WEBHOOK_BYTES - len(raw))
    assert client.post("/webhooks/whatsapp", content=padded).status_code == 200
    assert client.post("/webhooks/whatsapp", content=padded + b" ").status_code == 413


# --- identity headers given twice -----------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-Tenant-ID", "X-API-Key", "Authorization"])
def test_an_identity_header_given_twice_is_400_and_writes_nothing(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str, header: str
) -> None:
    """Two tenant or key headers are refused, not resolved by picking one."""
    client = make_client()
    values = {
        "X-Tenant-ID": (tenant, f"{tenant}-other"),
        "X-API-Key": ("wsk_a", "wsk_b"),
        "Authorization": ("Bearer wsk_a", "Bearer wsk_b"),
    }[header]
    headers = [(header, value) for value in values]
    if header != "X-Tenant-ID":
        headers.append(("X-Tenant-ID", tenant))
    answer = client.get(f"/state/mapping/{WA}", headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == header
    for name in (tenant, f"{tenant}-other"):
        with store.unit_of_work(name) as uow:
            assert uow.mappings.by_wa_id(WA) is None


def test_the_same_tenant_header_twice_is_still_refused(
    make_client: Callable[..., TestClient], tenant: str
) -> None:
    """Even agreeing copies are refused: one rule, no guessing what a proxy meant."""
    client = make_client()
    answer = client.get(f"/state/mapping/{WA}", headers=[("X-Tenant-ID", tenant)] * 2)
    assert answer.status_code == 400


# --- one rule for conversation ids ----------------------------------------------------------------


@pytest.mark.parametrize("conversation_id", ["conv\x07bell", "conv\tid", "conv id", "conv\x7f"])
def test_a_conversation_id_with_control_characters_is_refused_by_every_route(
    make_client: Callable[..., TestClient],
    store: wastate.Store,
    tenant: str,
    conversation_id: str,
) -> None:
    """POST /state/message applies the rule the mapping routes apply: 400 naming
    conversationId, and nothing written."""
    client = make_client(default_tenant=tenant)
    tracked = client.post(
        "/state/message",
        json={
            "metaMessageId": "wamid.ctl",
            "direction": "inbound",
            "conversationId": conversation_id,
        },
    )
    correlated = client.post(
        f"/state/mapping/{WA}/correlate", json={"conversationId": conversation_id}
    )
    assert tracked.status_code == correlated.status_code == 400, (tracked.text, correlated.text)
    assert tracked.json()["field"] == correlated.json()["field"] == "conversationId"
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.get("wamid.ctl") is None


# --- field names as the client wrote them ---------------------------------------------------------


def test_api_field_camelizes_each_name_of_a_path() -> None:
    assert api_field("messages[0].meta_message_id") == "messages[0].metaMessageId"
    assert api_field("wa_id") == "waId"
    assert api_field("entry[0].changes[1].value") == "entry[0].changes[1].value"
    assert api_field("X-Tenant-ID") == "X-Tenant-ID"


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        (
            "POST",
            "/state/message",
            {"metaMessageId": "wamid 2", "direction": "inbound"},
            "metaMessageId",
        ),
        (
            "POST",
            "/state/message",
            {"genesysMessageId": "g 2", "direction": "inbound"},
            "genesysMessageId",
        ),
        (
            "POST",
            "/state/message",
            {"metaMessageId": "wamid.w", "direction": "inbound", "waId": "12"},
            "waId",
        ),
        (
            "PATCH",
            "/state/message/wamid.x",
            {"status": "failed", "error": {"code": "x"}},
            "body.error.code",
        ),
        (
            "POST",
            "/webhooks/whatsapp",
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "statuses": [
                                        {"id": "wamid.s", "status": "read", "timestamp": "soon"}
                                    ]
                                },
                            }
                        ],
                    }
                ],
            },
            "entry[0].changes[0].value.statuses[0].timestamp",
        ),
        (
            "POST",
            "/webhooks/whatsapp",
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messages": [
                                        {
                                            "from": "919876543210",
                                            "id": "wamid.c",
                                            "timestamp": "1",
                                            "type": "image",
                                            "image": {"caption": "x" * 5000},
                                        }
                                    ]
                                },
                            }
                        ],
                    }
                ],
            },
            "entry[0].changes[0].value.messages[0].image.caption",
        ),
        (
            "POST",
            "/webhooks/whatsapp",
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messages": [
                                        {
                                            "from_user_id": "?",
                                            "id": "wamid.c",
                                            "timestamp": "1",
                                            "type": "text",
                                        }
                                    ]
                                },
                            }
                        ],
                    }
                ],
            },
            "entry[0].changes[0].value.messages[0].from_user_id",
        ),
    ],
    ids=[
        "metaMessageId",
        "genesysMessageId",
        "waId",
        "nested-error",
        "webhook-timestamp",
        "webhook-caption",
        "webhook-snake-case",
    ],
)
def test_error_fields_name_the_field_as_the_client_sent_it(
    make_client: Callable[..., TestClient],
    tenant: str,
    method: str,
    url: str,
    body: Any,
    field: str,
) -> None:
    """The seed routes speak camelCase, the webhook speaks Meta's snake_case: an error names the
    field in the client's own spelling and path, never a camelized whole path."""
    client = make_client(default_tenant=tenant)
    answer = client.request(method, url, json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["field"] == field, answer.text
    assert answer.json()["error"].startswith(f"{field}: ")
    assert "Value error" not in answer.json()["error"]


# --- generated bodies -----------------------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # lone surrogates and NUL included
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(ANY_CHARACTER, max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(ANY_CHARACTER, max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Where a generated value replaces what Meta would send.
SLOTS = [
    ("entry", 0, "id"),
    ("entry", 0, "changes", 0, "field"),
    ("entry", 0, "changes", 0, "value", "metadata"),
    ("entry", 0, "changes", 0, "value", "contacts", 0, "profile", "name"),
    ("entry", 0, "changes", 0, "value", "contacts", 0, "wa_id"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "from"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "id"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "timestamp"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "type"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "text"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "errors"),
    ("entry", 0, "changes", 0, "value", "statuses"),
    ("entry", 0, "changes", 0, "value", "errors"),
]


@given(
    edits=st.lists(st.tuples(st.sampled_from(SLOTS), JSON_VALUES), min_size=1, max_size=3),
    unique=st.uuids(),
)
def test_generated_webhook_bodies_are_never_a_server_error(
    make_client: Callable[..., TestClient],
    tenant: str,
    edits: list[tuple[tuple[str | int, ...], Any]],
    unique: Any,
) -> None:
    """A real delivery with generated values (any JSON, any character: NUL, lone surrogates,
    huge integers) put in its fields is ingested or refused with a 4xx — on both databases."""
    client = make_client(default_tenant=tenant)
    body: Any = inbound(message_id=f"wamid.{unique.hex}")
    for slot, value in edits:
        target = body
        for part in slot[:-1]:
            target = target[part]
        target[slot[-1]] = value
    raw = json.dumps(body, ensure_ascii=True).encode()
    answer = client.post("/webhooks/whatsapp", content=raw)
    assert answer.status_code in (200, 400, 403, 413, 422), (answer.status_code, answer.text)
    assert answer.json()


@pytest.mark.slow
def test_a_real_server_refuses_50_mb_posts_without_holding_them(tmp_path: Path) -> None:
    """Four 50 MB webhook posts — chunked, and with a Content-Length — to a real `wastate serve`:
    each is a 413, and the server's memory stays where it was (it grew by 240 MB when the limit
    was checked after reading the whole body)."""
    body = b" " * (50 << 20)

    def chunked() -> Iterator[bytes]:
        chunk = b" " * (64 * 1024)
        for _ in range(len(body) // len(chunk)):
            yield chunk

    with serving(tmp_path, clean_environment(WASTATE_DEFAULT_TENANT="demo-tenant-001")) as server:
        url = f"{server.base}/webhooks/whatsapp"
        before = resident_megabytes(server.process.pid)
        for _ in range(4):
            assert httpx.post(url, content=chunked(), timeout=60).status_code == 413
            assert httpx.post(url, content=body, timeout=60).status_code == 413
        grown = resident_megabytes(server.process.pid) - before
        assert grown < 40, f"the server grew by {grown} MB"
        assert httpx.post(url, content=json.dumps(inbound()), timeout=60).status_code == 200


def resident_megabytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def test_two_different_keys_in_the_two_key_headers_are_400(
    make_client: Callable[..., TestClient], store: wastate.Store, tenant: str
) -> None:
    """X-API-Key and Authorization: Bearer naming different keys: refused, not first-wins."""
    with store.unit_of_work(tenant) as uow:
        token = uow.api_keys.create(label="one").token
    with store.unit_of_work(f"{tenant}-b") as uow:
        other = uow.api_keys.create(label="two").token
    client = make_client(require_api_key=True)
    answer = client.get(
        f"/state/mapping/{WA}", headers={"X-API-Key": token, "Authorization": f"Bearer {other}"}
    )
    assert answer.status_code == 400
    assert answer.json()["field"] == "X-API-Key"
    same = client.get(
        f"/state/mapping/{WA}", headers={"X-API-Key": token, "Authorization": f"Bearer {token}"}
    )
    assert same.status_code == 200
    assert same.json()["tenantId"] == tenant
