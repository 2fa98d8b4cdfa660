"""Every failure becomes one JSON shape, `{"error": …, "field": …}`, mapped in one place.

The wastate error family maps to statuses here and nowhere else: `InvalidInput` → 400,
request-validation failures → 422, `NotFound` → 404, `Conflict` and `InvalidTransition` → 409,
`ServiceUnavailable`, `SchemaNotReady`, `TransactionAborted` and `ConfigurationError` → 503.
Anything unexpected is logged with its traceback and answered with a bare 500 that leaks nothing.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException as StarletteHTTPException

from wastate.domain.storable import field_path, problem_text
from wastate.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    SchemaNotReady,
    ServiceUnavailable,
    TransactionAborted,
    WastateError,
)

__all__ = [
    "ApiError",
    "ErrorBody",
    "FieldProblem",
    "api_field",
    "error_response",
    "install_error_handlers",
    "json_path",
]

log = logging.getLogger("wastate.http")


class FieldProblem(BaseModel):
    """One problem with one part of a request."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(frozen=True)

    error: str = Field(description="what went wrong, in one sentence")
    field: str | None = Field(None, description="the request part at fault, when one is")
    details: list[FieldProblem] | None = Field(
        None, description="every problem found, when the request was invalid in several places"
    )


class ApiError(Exception):
    """An error answer raised from a route: status, message, and the field at fault."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field
        self.headers = dict(headers) if headers else None


def error_response(
    status_code: int,
    message: str,
    *,
    field: str | None = None,
    details: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON error answer in the one shape every route documents."""
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    if details:
        body["details"] = [problem.model_dump() for problem in details]
    return _AsciiJSONResponse(
        body, status_code=status_code, headers=dict(headers) if headers else None
    )


class _AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error message may quote what the client
    sent, and a lone surrogate in it (`"\\ud83d"`) cannot be encoded as UTF-8 — an error answer
    must never fail to render (the escapes are valid JSON and decode to the same text)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


_SNAKE_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def json_path(loc: Sequence[int | str]) -> str:
    """A validation error's location as a JSON path (`domain.storable.field_path`), naming the
    whole request when the location is empty."""
    return field_path(loc) or "request"


def api_field(path: str) -> str:
    """A domain field path (snake_case) as the API's client writes it (camelCase).

    `messages[0].meta_message_id` → `messages[0].metaMessageId`; indexes and names without an
    underscore are kept. Each name is turned on its own: camelizing the whole path capitalises
    every name after a dot or a bracket (`messages[0].MetaMessageId`).
    """
    return _SNAKE_NAME.sub(lambda name: to_camel(name.group()), path) or "request"


def _status_of(exc: WastateError) -> int:
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict | InvalidTransition):
        return 409
    if isinstance(
        exc, ServiceUnavailable | SchemaNotReady | TransactionAborted | ConfigurationError
    ):
        return 503  # the service cannot do its work now; the request itself was fine
    return 500


def _database_status(exc: Exception) -> tuple[int, str]:
    """The answer for a database error no repository translated."""
    original = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    if isinstance(original, psycopg.DataError | sqlite3.DataError) or isinstance(
        exc, sqlalchemy.exc.DataError
    ):
        return 400, "a value cannot be stored (out of range or not representable)"
    if isinstance(original, psycopg.OperationalError | psycopg.InterfaceError) or (
        isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    ):
        return 503, "the database is unavailable"
    return 500, "internal server error"


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the one JSON error shape."""

    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status_code, exc.message, field=exc.field, headers=exc.headers)

    async def on_wastate_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WastateError)
        status = _status_of(exc)
        if status == 500:
            log.error("unmapped wastate error", exc_info=exc)
            return error_response(500, "internal server error")
        if isinstance(exc, InvalidInput):
            # The domain names fields in snake_case; the API speaks the seed's camelCase.
            field = api_field(exc.field)
            return error_response(400, f"{field}: {exc.message}", field=field)
        if status == 503:
            log.warning("service unavailable: %s", exc)
        return error_response(status, str(exc))

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            FieldProblem(
                field=json_path(error.get("loc", ())),
                message=problem_text(error),
            )
            for error in exc.errors()
        ]
        first = problems[0] if problems else FieldProblem(field="request", message="invalid")
        return error_response(
            422, f"{first.field}: {first.message}", field=first.field, details=problems
        )

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return error_response(exc.status_code, message, headers=exc.headers)

    async def on_database_error(_request: Request, exc: Exception) -> JSONResponse:
        # The repositories translate what they expect; this is the net under the rest, so
        # that a value the database cannot store is the caller's 400 and an outage a 503.
        status, message = _database_status(exc)
        if status == 500:
            log.error("untranslated database error", exc_info=exc)
        else:
            log.warning("database error answered %d: %s", status, exc)
        return error_response(status, message)

    async def on_overflow(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("value out of range: %s", exc)
        return error_response(400, "a value is out of range")

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal server error")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(WastateError, on_wastate_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, on_database_error)
    app.add_exception_handler(psycopg.Error, on_database_error)
    app.add_exception_handler(OverflowError, on_overflow)
    app.add_exception_handler(Exception, on_unexpected)
