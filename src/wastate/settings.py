"""Settings: the `WASTATE_*` environment variables, and the seed's `DB_*`/`REDIS_*` ones.

`Settings()` reads the environment; a malformed value fails at construction with a
`ConfigurationError` naming the variable. The seed's variables are honoured only when the
matching `WASTATE_*` variable is unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from wastate.domain.ids import normalize_tenant_id
from wastate.domain.storable import text_problem
from wastate.errors import ConfigurationError, InvalidInput

__all__ = [
    "DEFAULT_CACHE_URL",
    "DEFAULT_DATABASE_URL",
    "HttpSettings",
    "Settings",
    "check_webhook_tenants",
    "configuration_error",
    "load_settings",
    "parse_webhook_tenants",
]

DEFAULT_DATABASE_URL = "sqlite:///./wastate.db"
DEFAULT_CACHE_URL = "memory://"
# Upper bounds: what PostgreSQL's settings and the standard library's timers accept, so an absurd
# value is a ConfigurationError at start-up, not an OverflowError in a background thread later.
_INT32_MAX = 2**31 - 1
_YEAR = 365 * 86_400.0
# The SQL is written for these two databases, and the PostgreSQL fast path for psycopg 3.
_DATABASE_DRIVERS = {"postgresql": "psycopg", "postgres": "psycopg", "sqlite": "pysqlite"}


def _check_text(value: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)


_META_ID = re.compile(r"[0-9]{1,32}")


def check_webhook_tenants(bindings: Mapping[str, str]) -> dict[str, str]:
    """Webhook account bindings, checked: Meta id (digits) → valid tenant id. Else `ValueError`.

    The ids are those Meta puts in every signed webhook body: the business account
    (`entry[].id`) and the business phone number (`…value.metadata.phone_number_id`).
    """
    checked: dict[str, str] = {}
    for account, tenant in bindings.items():
        if not isinstance(account, str) or not _META_ID.fullmatch(account):
            raise ValueError(f"{account!r} is not a Meta account or phone number id (digits)")
        try:
            checked[account] = normalize_tenant_id(tenant, field="tenant")
        except InvalidInput as exc:
            raise ValueError(f"{account}={tenant!r}: the tenant {exc.message}") from exc
    return checked


def parse_webhook_tenants(text: str) -> dict[str, str]:
    """`WASTATE_WEBHOOK_TENANTS`: `<id>=<tenant>` pairs separated by commas or whitespace,
    e.g. `106540352242922=acme,102290129340398=acme`. Else `ValueError` naming the bad pair."""
    pairs: dict[str, str] = {}
    for item in text.replace(",", " ").split():
        account, sep, tenant = item.partition("=")
        if not sep or not account or not tenant:
            raise ValueError(f"{item!r} is not <phone_number_id or WABA id>=<tenant>")
        if account in pairs:
            raise ValueError(f"{account} is bound twice")
        pairs[account] = tenant
    if not pairs:
        raise ValueError("is empty: unset it, or bind <phone_number_id or WABA id>=<tenant>")
    return check_webhook_tenants(pairs)


class HttpSettings(BaseModel):
    """The HTTP service's part of `Settings` (`WASTATE_DEFAULT_TENANT`, `WASTATE_REQUIRE_API_KEY`,
    …): each rule is written here once, for the environment and for a hand-built
    `wastate.http.HttpConfig` alike (validating this model reads no environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_tenant: str | None = Field(None, description="HTTP: tenant of requests naming none")
    require_api_key: bool = Field(False, description="HTTP: every route needs a per-tenant key")
    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=_YEAR,
        description="HTTP: how long a verified key is trusted (the revocation delay)",
    )
    webhook_app_secret: str | None = Field(
        None, description="HTTP: Meta app secret; webhook posts need X-Hub-Signature-256"
    )
    webhook_tenants: str | None = Field(
        None,
        description="HTTP: `<phone_number_id or WABA id>=<tenant>,…`, the tenant of a webhook",
    )
    webhook_verify_token: str | None = Field(
        None, description="HTTP: the hub.verify_token of the webhook handshake"
    )

    @field_validator("default_tenant")
    @classmethod
    def _check_default_tenant(cls, value: str | None) -> str | None:
        if value:  # empty: unset (requests naming no tenant are refused)
            try:
                normalize_tenant_id(value)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("webhook_app_secret")
    @classmethod
    def _check_app_secret(cls, value: str | None) -> str | None:
        # Set but empty is a deployment mistake (a missing secret in a template), not a wish to
        # accept unsigned webhooks: refuse it rather than turn the signature check off.
        if value is not None and not value.strip():
            raise ValueError("must not be empty (unset it to accept unsigned webhooks)")
        return value

    @field_validator("webhook_tenants")
    @classmethod
    def _check_webhook_tenants(cls, value: str | None) -> str | None:
        if value is not None:
            parse_webhook_tenants(value)
        return value


class Settings(BaseSettings, HttpSettings):
    """Runtime configuration. Field `x` is read from `WASTATE_X` (the HTTP fields are
    `HttpSettings`')."""

    model_config = SettingsConfigDict(env_prefix="WASTATE_", extra="forbid", frozen=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, description="any SQLAlchemy URL")
    cache_url: str = Field(DEFAULT_CACHE_URL, description="redis://…, memory://, none://")
    mapping_ttl_seconds: int = Field(3600, ge=1, le=_INT32_MAX, description="cache TTL of mappings")
    cache_prefix: str = Field(
        "wastate", min_length=1, max_length=64, description="first part of every cache key"
    )
    near_cache: bool = Field(True, description="in-process L1 in front of a shared cache")
    near_cache_ttl_seconds: float = Field(
        5.0,
        gt=0,
        le=_YEAR,
        description="L1 lifetime: the staleness bound if an invalidation is lost",
    )
    near_cache_size: int = Field(
        100_000, ge=0, le=_INT32_MAX, description="L1 entries kept at most"
    )
    cache_timeout_seconds: float = Field(
        0.25, gt=0, le=_YEAR, description="socket timeout for the cache"
    )
    activity_flush_seconds: float = Field(
        30.0, gt=0, le=_YEAR, description="how often coalesced last_activity_at updates are written"
    )
    pool_size: int = Field(10, ge=1, le=10_000)
    pool_timeout_seconds: float = Field(5.0, gt=0, le=_YEAR)
    statement_timeout_ms: int = Field(
        15_000, ge=0, le=_INT32_MAX, description="PostgreSQL statement_timeout"
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        _check_text(value)
        try:
            url = make_url(value)
            port = url.port  # parsed lazily: "host:abc" fails only here
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        backend, _, driver = url.drivername.partition("+")
        if backend not in _DATABASE_DRIVERS:
            raise ValueError(
                f"unsupported database {backend!r} in {value!r}: use postgresql://… or sqlite:///…"
            )
        if driver and driver != _DATABASE_DRIVERS[backend]:
            raise ValueError(
                f"unsupported driver {driver!r} for {backend}: wastate uses"
                f" {_DATABASE_DRIVERS[backend]} (leave the driver out of the URL)"
            )
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
        return value

    @field_validator("cache_url")
    @classmethod
    def _check_cache_url(cls, value: str) -> str:
        _check_text(value)
        scheme, sep, _ = value.partition("://")
        if not sep or not scheme:
            raise ValueError(f"not a cache URL: {value!r} (try memory://, none:// or redis://…)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _seed_variables(cls, data: Any) -> Any:
        """Fill unset URLs from the seed's DB_*/REDIS_* variables."""
        if not isinstance(data, dict):
            return data
        env = os.environ
        if "database_url" not in data and "WASTATE_DATABASE_URL" not in env and "DB_HOST" in env:
            user = quote(env.get("DB_USER", "postgres"), safe="")
            password = env.get("DB_PASSWORD")
            auth = f"{user}:{quote(password, safe='')}" if password else user
            data["database_url"] = (
                f"postgresql+psycopg://{auth}@{env['DB_HOST']}:{env.get('DB_PORT', '5432')}"
                f"/{env.get('DB_NAME', 'waba_mvp')}"
            )
        if "cache_url" not in data and "WASTATE_CACHE_URL" not in env and "REDIS_HOST" in env:
            data["cache_url"] = f"redis://{env['REDIS_HOST']}:{env.get('REDIS_PORT', '6379')}/0"
        return data


def load_settings(**overrides: Any) -> Settings:
    """Build `Settings` from the environment plus overrides; errors name the variable."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise configuration_error(exc) from exc


def configuration_error(exc: ValidationError) -> ConfigurationError:
    """A settings `ValidationError` as one `ConfigurationError` naming each variable."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        problems.append(f"WASTATE_{field.upper()}: {error['msg']}")
    return ConfigurationError("; ".join(problems))
