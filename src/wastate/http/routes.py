"""The routes: the seed's four state endpoints and `/health`, plus what a user needs next
(correlate, close, a conversation's messages, a message's history, the WhatsApp webhook).

Handlers are plain `def` (FastAPI runs them in its thread pool) over the synchronous store, one
unit of work per request. The hot lookups return ready-made JSON responses: the models in
`wastate.http.schemas` document them, and the schemathesis test holds the two together.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, is_dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from wastate import webhooks
from wastate.domain.ids import MAX_WA_ID_LENGTH, require_external_id
from wastate.domain.mappings import MAX_CONVERSATION_ID_LENGTH
from wastate.domain.storable import problem_text
from wastate.errors import InvalidInput
from wastate.http.config import HttpConfig
from wastate.http.errors import (
    ApiError,
    ErrorBody,
    api_field,
    error_response,
    json_path,
)
from wastate.http.health import HealthChecker
from wastate.http.schemas import (
    CorrelateRequest,
    HealthBody,
    MappingBody,
    MessageBody,
    MessageHistoryBody,
    MessagePage,
    StatusUpdateBody,
    StatusUpdateRequest,
    TrackedBody,
    TrackMessageRequest,
    WebhookAck,
    camelize,
    mapping_body,
    message_body,
    status_event_body,
)
from wastate.http.tenancy import TenantResolver
from wastate.http.webhook import accounts_of, check_signature, decode_body, read_body
from wastate.store import Store

__all__ = ["build_router"]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


# Every route may answer these: bad tenant/header (400), key (401), validation (422), database
# down (503). Declaring 422 here also replaces FastAPI's default validation-error schema.
_COMMON = _errors(400, 401, 422, 503)

WaIdPath = Annotated[
    str,
    Path(
        alias="waId",
        min_length=1,
        max_length=MAX_WA_ID_LENGTH,
        description="`+919876543210`, `919876543210@c.us`, … or a business-scoped id",
    ),
]
ConversationIdPath = Annotated[
    str, Path(alias="conversationId", min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH)
]
MessageIdPath = Annotated[
    str, Path(alias="messageId", min_length=1, max_length=256, description="either message id")
]


def _plain(value: Any) -> Any:
    """A repository result (pydantic model, dataclass, mapping) as JSON-ready camelCase data."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return camelize(value)


def build_router(
    store: Store, resolver: TenantResolver, config: HttpConfig, health: HealthChecker
) -> APIRouter:
    """The service's routes over `store`."""
    router = APIRouter()
    unit_of_work = store.unit_of_work

    # --- mappings -----------------------------------------------------------------------------

    @router.get(
        "/state/mapping/{waId}",
        tags=["mappings"],
        summary="The user's active conversation, created if there is none (forward lookup)",
        response_model=MappingBody,
        responses=_COMMON,
    )
    def get_or_create_mapping(request: Request, wa_id: WaIdPath) -> JSONResponse:
        tenant = resolver.resolve(request)
        with unit_of_work(tenant) as uow:
            mapping = uow.mappings.get_or_create(wa_id)
        return JSONResponse(mapping_body(mapping))

    @router.get(
        "/state/conversation/{conversationId}",
        tags=["mappings"],
        summary="The WhatsApp user of a conversation (reverse lookup)",
        response_model=MappingBody,
        responses={**_COMMON, **_errors(404)},
    )
    def get_conversation(request: Request, conversation_id: ConversationIdPath) -> JSONResponse:
        tenant = resolver.resolve(request)
        with unit_of_work(tenant) as uow:
            mapping = uow.mappings.by_conversation(conversation_id)
        if mapping is None:
            return error_response(404, "Conversation mapping not found", field="conversationId")
        return JSONResponse(mapping_body(mapping))

    @router.post(
        "/state/mapping/{waId}/correlate",
        tags=["mappings"],
        summary="Set the contact center's conversation (and communication) id, once",
        response_model=MappingBody,
        responses={**_COMMON, **_errors(409)},
    )
    def correlate(request: Request, wa_id: WaIdPath, body: CorrelateRequest) -> JSONResponse:
        tenant = resolver.resolve(request)
        with unit_of_work(tenant) as uow:
            mapping = uow.mappings.correlate(wa_id, body.conversation_id, body.communication_id)
        return JSONResponse(mapping_body(mapping))

    @router.post(
        "/state/mapping/{waId}/close",
        tags=["mappings"],
        summary="Close the user's active conversation; the next message starts a new one",
        response_model=MappingBody,
        responses={**_COMMON, **_errors(404)},
    )
    def close_mapping(request: Request, wa_id: WaIdPath) -> JSONResponse:
        tenant = resolver.resolve(request)
        with unit_of_work(tenant) as uow:
            mapping = uow.mappings.close(wa_id)
        if mapping is None:
            return error_response(404, "no active conversation for this waId", field="waId")
        return JSONResponse(mapping_body(mapping))

    # --- messages -----------------------------------------------------------------------------

    @router.post(
        "/state/message",
        tags=["messages"],
        summary="Track a message (idempotent: a duplicate answers 200 and writes nothing)",
        status_code=201,
        response_model=TrackedBody,
        responses={**_COMMON, 200: {"model": TrackedBody, "description": "already tracked"}},
    )
    def track_message(request: Request, body: TrackMessageRequest) -> JSONResponse:
        tenant = resolver.resolve(request, body.tenant_id)
        if body.meta_message_id is None and body.genesys_message_id is None:
            raise ApiError(
                422, "metaMessageId or genesysMessageId is required", field="metaMessageId"
            )
        try:
            new = body.to_new_message()
        except ValidationError as exc:
            raise _as_api_error(exc) from exc
        try:
            with unit_of_work(tenant) as uow:
                tracked = uow.messages.track(new)
        except InvalidInput as exc:
            # `track` is the batch of one: it names the fields `messages[0].…`, while the client
            # sent them at the top of the body.
            field = exc.field.removeprefix("messages[0]").removeprefix(".") or "body"
            raise InvalidInput(field, exc.message) from exc
        created = tracked.created
        answer = {
            "message": "Message tracked successfully" if created else "Message already tracked",
            "created": created,
            "trackedMessage": message_body(tracked),
        }
        return JSONResponse(answer, status_code=201 if created else 200)

    @router.patch(
        "/state/message/{messageId}",
        tags=["messages"],
        summary="Apply a delivery-status event (status only moves forward)",
        response_model=StatusUpdateBody,
        responses={**_COMMON, **_errors(404)},
    )
    def update_message_status(
        request: Request, message_id: MessageIdPath, body: StatusUpdateRequest
    ) -> JSONResponse:
        tenant = resolver.resolve(request)
        with unit_of_work(tenant) as uow:
            tracked = uow.messages.update_status(
                message_id, body.status, at=body.timestamp, error=body.domain_error()
            )
        if tracked is None:
            # Webhooks race the sender: the event is parked and applies when the id is tracked.
            return error_response(
                404,
                "Message not found (the status was kept and applies when the message is tracked)",
                field="messageId",
            )
        return JSONResponse(
            {"message": "Status updated successfully", "trackedMessage": message_body(tracked)}
        )

    @router.get(
        "/state/message/{messageId}",
        tags=["messages"],
        summary="A tracked message, by its WhatsApp or contact-center id",
        response_model=MessageBody,
        responses={**_COMMON, **_errors(404)},
    )
    def get_message(request: Request, message_id: MessageIdPath) -> JSONResponse:
        tenant = resolver.resolve(request)
        with unit_of_work(tenant) as uow:
            tracked = uow.messages.get(message_id)
        if tracked is None:
            return error_response(404, "Message not found", field="messageId")
        return JSONResponse(message_body(tracked))

    @router.get(
        "/state/message/{messageId}/history",
        tags=["messages"],
        summary="Every delivery-status event recorded for a message",
        response_model=MessageHistoryBody,
        responses={**_COMMON, **_errors(404)},
    )
    def message_history(request: Request, message_id: MessageIdPath) -> JSONResponse:
        tenant = resolver.resolve(request)
        with unit_of_work(tenant) as uow:
            if uow.messages.get(message_id) is None:
                return error_response(404, "Message not found", field="messageId")
            events = uow.messages.history(message_id)
        return JSONResponse(
            {"messageId": message_id, "events": [status_event_body(event) for event in events]}
        )

    @router.get(
        "/state/conversation/{conversationId}/messages",
        tags=["messages"],
        summary="A conversation's tracked messages, newest first, a page at a time",
        response_model=MessagePage,
        responses=_COMMON,
    )
    def conversation_messages(
        request: Request,
        conversation_id: ConversationIdPath,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=256,
                description="a message id: the page after it (the previous page's `nextBefore`)",
            ),
        ] = None,
    ) -> JSONResponse:
        tenant = resolver.resolve(request)
        require_external_id(conversation_id, field="conversationId")
        with unit_of_work(tenant) as uow:
            messages = uow.messages.for_conversation(conversation_id, limit=limit, before=before)
        last = messages[-1] if len(messages) == limit else None
        return JSONResponse(
            {
                "conversationId": conversation_id,
                "messages": [message_body(message) for message in messages],
                "nextBefore": None
                if last is None
                else (last.meta_message_id or last.genesys_message_id),
            }
        )

    # --- webhooks -----------------------------------------------------------------------------

    @router.get(
        "/webhooks/whatsapp",
        tags=["webhooks"],
        summary="Meta's subscription handshake: echoes hub.challenge for the right verify token",
        response_model=None,
        responses={
            200: {
                "description": "the challenge, echoed",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **_errors(403, 422),
        },
    )
    def webhook_handshake(
        mode: Annotated[str, Query(alias="hub.mode", max_length=64)],
        token: Annotated[str, Query(alias="hub.verify_token", max_length=1024)],
        challenge: Annotated[str, Query(alias="hub.challenge", max_length=1024)],
    ) -> PlainTextResponse:
        expected = config.webhook_verify_token
        if (
            mode != "subscribe"
            or expected is None
            or not hmac.compare_digest(token.encode(), expected.encode())
        ):
            raise ApiError(403, "webhook verification failed", field="hub.verify_token")
        return PlainTextResponse(challenge)

    @router.post(
        "/webhooks/whatsapp",
        tags=["webhooks"],
        summary="Receive a WhatsApp Cloud API webhook (messages and statuses)",
        response_model=WebhookAck,
        responses={**_COMMON, **_errors(403, 413)},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def receive_webhook(request: Request) -> JSONResponse:
        raw = await read_body(request)
        secret = config.webhook_app_secret
        if secret is not None:
            check_signature(request, secret, raw)
        payload = decode_body(raw)
        return await run_in_threadpool(_ingest, request, payload, secret is not None)

    def _ingest(request: Request, payload: dict[str, Any], signed: bool) -> JSONResponse:
        try:
            parsed = webhooks.parse_payload(payload)
        except InvalidInput as exc:
            raise _webhook_error(exc) from exc
        # The tenant comes from the key or from the accounts signed into the body, never from
        # a header alone: the signature proves Meta sent the body, not for which tenant.
        tenant = resolver.webhook_tenant(request, accounts_of(parsed), signed=signed)
        try:
            with unit_of_work(tenant) as uow:
                report = webhooks.ingest(uow, parsed)
        except InvalidInput as exc:
            raise _webhook_error(exc) from exc
        return JSONResponse({"received": True, "report": _plain(report)})

    # --- health -------------------------------------------------------------------------------

    @router.get(
        "/health",
        tags=["health"],
        summary="Database and cache checks with latency (503 when the database is down)",
        response_model=HealthBody,
        responses={503: {"model": HealthBody, "description": "the database is down"}},
    )
    def get_health() -> JSONResponse:
        code, body = health.report()
        return JSONResponse(body, status_code=code)

    return router


def _as_api_error(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False)
    if not errors:
        return ApiError(422, "body: invalid", field="body")
    first = errors[0]
    field = api_field(json_path(first["loc"]))
    # A domain rule (an InvalidInput raised inside a model) answers as it does on every route.
    ruled = isinstance(first.get("ctx", {}).get("error"), InvalidInput)
    return ApiError(400 if ruled else 422, f"{field}: {problem_text(first)}", field=field)


def _webhook_error(exc: InvalidInput) -> ApiError:
    """A malformed webhook body: 400 naming the JSON path as Meta wrote it (snake_case, so not
    camelized like the seed routes' fields)."""
    return ApiError(400, str(exc), field=exc.field)
