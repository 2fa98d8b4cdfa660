"""Which tenant a request acts for, and whether its caller may: API keys and the tenant rules.

The order (DESIGN.md, "HTTP service"): the API key's tenant, then the `X-Tenant-ID` header, then
the body's `tenantId` (only `POST /state/message` has one), then the configured default tenant.
None of them → 400 naming the header; two of them that disagree → 400. When keys are required,
a request without a valid key is 401, and a key opens only the tenant it was issued for.

A verified key is remembered for `api_key_cache_seconds` (by the hash of the whole token, never
the token itself) so the hot lookup routes pay no extra query per request; a revocation is
therefore seen within that many seconds.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from starlette.requests import Request

from wastate.domain.ids import normalize_tenant_id
from wastate.errors import InvalidInput
from wastate.http.config import HttpConfig
from wastate.http.errors import ApiError
from wastate.repositories.api_keys import parse_token
from wastate.store import Store

__all__ = ["API_KEY_HEADER", "TENANT_HEADER", "Caller", "TenantResolver"]

TENANT_HEADER = "X-Tenant-ID"
API_KEY_HEADER = "X-API-Key"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="wastate"'}
_MEMO_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    """What a request said about its tenant, before the body (if any) is consulted."""

    key_tenant: str | None
    header_tenant: str | None


def _presented_token(request: Request) -> str | None:
    token = request.headers.get(API_KEY_HEADER)
    if token:
        return token.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class TenantResolver:
    """Applies the tenant rules and checks API keys against one store."""

    def __init__(self, store: Store, config: HttpConfig) -> None:
        self._store = store
        self._config = config
        self._verified: dict[str, float] = {}
        self._lock = threading.Lock()

    def caller(self, request: Request, *, key_optional: bool = False) -> Caller:
        """Authenticate the request and read its header tenant; raise `ApiError` on failure.

        `key_optional` waives the key requirement for requests authenticated otherwise (a
        webhook signed with the app secret); a key that is presented is still checked.
        """
        token = _presented_token(request)
        key_tenant = self._authenticate(token) if token is not None else None
        if key_tenant is None and self._config.require_api_key and not key_optional:
            raise ApiError(
                401,
                f"an API key is required ({API_KEY_HEADER} or Authorization: Bearer)",
                field=API_KEY_HEADER,
                headers=_CHALLENGE,
            )
        raw = request.headers.get(TENANT_HEADER)
        header_tenant = None if raw is None else self._checked(raw, TENANT_HEADER)
        return Caller(key_tenant=key_tenant, header_tenant=header_tenant)

    def tenant(self, caller: Caller, body_tenant: str | None = None) -> str:
        """The tenant the request acts for, by the rules in the module docstring."""
        named: list[tuple[str, str]] = []
        if caller.key_tenant is not None:
            named.append(("the API key", caller.key_tenant))
        if caller.header_tenant is not None:
            named.append((TENANT_HEADER, caller.header_tenant))
        if body_tenant is not None:
            named.append(("tenantId", self._checked(body_tenant, "tenantId")))
        if named:
            first_source, first = named[0]
            for source, value in named[1:]:
                if value != first:
                    field = "tenantId" if source == "tenantId" else TENANT_HEADER
                    raise ApiError(
                        400,
                        f"{source} names tenant {value!r} but {first_source} names {first!r}",
                        field=field,
                    )
            return first
        if self._config.default_tenant is not None:
            return self._config.default_tenant
        raise ApiError(400, f"{TENANT_HEADER} header required", field=TENANT_HEADER)

    def resolve(self, request: Request, body_tenant: str | None = None) -> str:
        """`caller` then `tenant`: the usual one-step form."""
        return self.tenant(self.caller(request), body_tenant)

    @staticmethod
    def _checked(value: str, field: str) -> str:
        try:
            return normalize_tenant_id(value.strip(), field=field)
        except InvalidInput as exc:
            raise ApiError(400, str(exc), field=field) from exc

    def _authenticate(self, token: str) -> str:
        """The tenant of a valid, active key; `ApiError(401)` for anything else."""
        parsed = parse_token(token)
        if parsed is None:
            raise ApiError(401, "invalid API key", field=API_KEY_HEADER, headers=_CHALLENGE)
        memo_key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            expires = self._verified.get(memo_key)
        if expires is not None and expires > now:
            return parsed.tenant_id
        with self._store.unit_of_work(parsed.tenant_id) as uow:
            valid = uow.api_keys.verify(parsed.key_id, parsed.secret)
        if not valid:
            with self._lock:
                self._verified.pop(memo_key, None)
            raise ApiError(401, "invalid API key", field=API_KEY_HEADER, headers=_CHALLENGE)
        if self._config.api_key_cache_seconds > 0:
            with self._lock:
                if len(self._verified) >= _MEMO_LIMIT:
                    self._verified.clear()
                self._verified[memo_key] = now + self._config.api_key_cache_seconds
        return parsed.tenant_id
