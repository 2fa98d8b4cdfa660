"""Which tenant a request acts for, and whether its caller may: API keys and the tenant rules.

The order (DESIGN.md, "HTTP service"): the API key's tenant, then the `X-Tenant-ID` header, then
the body's `tenantId` (only `POST /state/message` has one), then the configured default tenant.
None of them → 400 naming the header; two of them that disagree → 400. When keys are required,
a request without a valid key is 401, and a key opens only the tenant it was issued for.

A header that decides who the caller is (`X-Tenant-ID`, `X-API-Key`, `Authorization`) given
twice is a 400: picking one of the two would let whoever added the second choose.

Webhooks (`webhook_tenant`) come from Meta, which sends no key and no tenant. Their tenant comes
from something authenticated: the API key, else `WASTATE_WEBHOOK_TENANTS`, which binds the
business account and phone number ids inside the (signed) body to a tenant. With keys required,
a webhook with neither is a 401; an `X-Tenant-ID` that names another tenant is a 400.

A verified key is remembered for `api_key_cache_seconds` (by the hash of the whole token, never
the token itself) so the hot lookup routes pay no extra query per request; a revocation is
therefore seen within that many seconds.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request

from wastate.domain.ids import normalize_tenant_id
from wastate.errors import InvalidInput
from wastate.http.config import HttpConfig
from wastate.http.errors import ApiError
from wastate.repositories.api_keys import parse_token
from wastate.store import Store

__all__ = [
    "API_KEY_HEADER",
    "TENANT_HEADER",
    "WEBHOOK_TENANTS",
    "Account",
    "Caller",
    "TenantResolver",
]

TENANT_HEADER = "X-Tenant-ID"
API_KEY_HEADER = "X-API-Key"
WEBHOOK_TENANTS = "WASTATE_WEBHOOK_TENANTS"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="wastate"'}
_MEMO_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    """What a request said about its tenant, before the body (if any) is consulted."""

    key_tenant: str | None
    header_tenant: str | None


@dataclass(frozen=True, slots=True)
class Account:
    """A Meta id a webhook body names: the business account or a business phone number."""

    path: str
    """Where the body names it: `entry[0].id`, `entry[0].changes[0].value.metadata.…`."""
    id: str


def _single_header(request: Request, name: str) -> str | None:
    """The one value of header `name`, None if absent; given more than once → 400."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise ApiError(400, f"the {name} header is given {len(values)} times", field=name)
    return values[0] if values else None


def _presented_token(request: Request) -> str | None:
    token = (_single_header(request, API_KEY_HEADER) or "").strip()
    bearer = ""
    scheme, _, credentials = (_single_header(request, "Authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        bearer = credentials.strip()
    if token and bearer and token != bearer:
        raise ApiError(
            400, f"{API_KEY_HEADER} and Authorization name different keys", field=API_KEY_HEADER
        )
    return token or bearer or None


class TenantResolver:
    """Applies the tenant rules and checks API keys against one store."""

    def __init__(self, store: Store, config: HttpConfig) -> None:
        self._store = store
        self._config = config
        self._verified: dict[str, float] = {}
        self._lock = threading.Lock()

    def caller(self, request: Request) -> Caller:
        """Authenticate the request and read its header tenant; raise `ApiError` on failure."""
        token = _presented_token(request)
        key_tenant = self._authenticate(token) if token is not None else None
        if key_tenant is None and self._config.require_api_key:
            raise ApiError(
                401,
                f"an API key is required ({API_KEY_HEADER} or Authorization: Bearer)",
                field=API_KEY_HEADER,
                headers=_CHALLENGE,
            )
        return Caller(key_tenant=key_tenant, header_tenant=self._header_tenant(request))

    def webhook_tenant(
        self, request: Request, entries: Sequence[Sequence[Account]], *, signed: bool
    ) -> str:
        """The tenant of a webhook delivery, from something authenticated (module docstring).

        `entries` lists, per `entry[]` of the body, the account ids it names; `signed` says the
        body carried a valid `X-Hub-Signature-256`.
        """
        token = _presented_token(request)
        header_tenant = self._header_tenant(request)
        bindings = self._config.webhook_tenants
        if token is not None:
            tenant, source = self._authenticate(token), "the API key"
            for account in (account for entry in entries for account in entry):
                bound = bindings.get(account.id)
                if bound is not None and bound != tenant:
                    raise ApiError(
                        400,
                        f"{account.path} {account.id} is bound to tenant {bound!r}, "
                        f"the API key opens {tenant!r}",
                        field=account.path,
                    )
        elif bindings and (signed or not self._config.require_api_key):
            tenant, source = self._bound_tenant(entries), WEBHOOK_TENANTS
        elif self._config.require_api_key:
            raise ApiError(
                401,
                f"an API key is required ({API_KEY_HEADER} or Authorization: Bearer), or a signed "
                f"body whose account {WEBHOOK_TENANTS} binds to a tenant",
                field=API_KEY_HEADER,
                headers=_CHALLENGE,
            )
        else:
            # Nothing authenticates anyone here (no keys, no bindings): the usual rules.
            return self.tenant(Caller(key_tenant=None, header_tenant=header_tenant))
        if header_tenant is not None and header_tenant != tenant:
            raise ApiError(
                400,
                f"{TENANT_HEADER} names tenant {header_tenant!r} but {source} names {tenant!r}",
                field=TENANT_HEADER,
            )
        return tenant

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

    def _bound_tenant(self, entries: Sequence[Sequence[Account]]) -> str:
        """The one tenant every entry of the body is bound to; 403 if one is bound to none,
        400 if they are bound to two (a delivery is one unit of work, for one tenant)."""
        bindings = self._config.webhook_tenants
        tenant: str | None = None
        first: Account | None = None
        for index, entry in enumerate(entries):
            bound = [(account, bindings[account.id]) for account in entry if account.id in bindings]
            if not bound:
                raise ApiError(
                    403,
                    f"entry[{index}] names no business account or phone number id that "
                    f"{WEBHOOK_TENANTS} binds to a tenant",
                    field=f"entry[{index}].id",
                )
            for account, bound_tenant in bound:
                if tenant is None or first is None:
                    tenant, first = bound_tenant, account
                elif bound_tenant != tenant:
                    raise ApiError(
                        400,
                        f"{account.path} {account.id} is bound to tenant {bound_tenant!r} but "
                        f"{first.path} {first.id} to {tenant!r}: one delivery, one tenant",
                        field=account.path,
                    )
        if tenant is None:
            raise ApiError(
                403,
                f"the body names no business account that {WEBHOOK_TENANTS} binds to a tenant",
                field="entry",
            )
        return tenant

    def _header_tenant(self, request: Request) -> str | None:
        raw = _single_header(request, TENANT_HEADER)
        return None if raw is None else self._checked(raw, TENANT_HEADER)

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
