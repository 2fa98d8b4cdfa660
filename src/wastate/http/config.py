"""The HTTP service's own settings: default tenant, API-key enforcement, webhook secrets.

`HttpConfig.from_environment()` takes them from the store's `Settings` (`WASTATE_DEFAULT_TENANT`,
`WASTATE_REQUIRE_API_KEY`, `WASTATE_WEBHOOK_APP_SECRET`, `WASTATE_WEBHOOK_VERIFY_TOKEN`,
`WASTATE_WEBHOOK_TENANTS`, `WASTATE_API_KEY_CACHE_SECONDS`); `create_app(store, config=…)` takes
them explicitly (tests and embedders build one by hand).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wastate.domain.ids import normalize_tenant_id
from wastate.errors import ConfigurationError, InvalidInput
from wastate.settings import Settings, check_webhook_tenants, parse_webhook_tenants

__all__ = ["HttpConfig"]


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """How the HTTP service resolves tenants, authenticates callers and checks webhooks."""

    default_tenant: str | None = None
    """Tenant of requests that name none (single-tenant deployments); None: such requests → 400."""
    require_api_key: bool = False
    """When true every route except `/health` and the docs needs a valid per-tenant API key."""
    webhook_app_secret: str | None = None
    """The Meta app secret; when set, webhook posts need a valid X-Hub-Signature-256."""
    webhook_verify_token: str | None = None
    """The token Meta sends in the `hub.verify_token` handshake; unset: handshakes fail."""
    webhook_tenants: Mapping[str, str] = field(default_factory=dict)
    """Meta business account / phone number id → tenant: the tenant of a webhook delivery that
    carries no API key (the ids are inside the signed body, so the binding is authenticated)."""
    api_key_cache_seconds: float = 5.0
    """How long a verified key is trusted without asking the database (the revocation delay)."""

    def __post_init__(self) -> None:
        if self.default_tenant is not None:
            try:
                normalize_tenant_id(self.default_tenant)
            except InvalidInput as exc:
                raise ConfigurationError(f"WASTATE_DEFAULT_TENANT: {exc.message}") from exc
        if self.webhook_app_secret is not None and not self.webhook_app_secret.strip():
            raise ConfigurationError(
                "WASTATE_WEBHOOK_APP_SECRET: must not be empty (unset it to accept unsigned "
                "webhooks)"
            )
        try:
            bindings = check_webhook_tenants(self.webhook_tenants)
        except ValueError as exc:
            raise ConfigurationError(f"WASTATE_WEBHOOK_TENANTS: {exc}") from exc
        # Normalised tenant ids, and a private copy the caller cannot change afterwards.
        object.__setattr__(self, "webhook_tenants", bindings)
        if self.api_key_cache_seconds < 0:
            raise ConfigurationError("api_key_cache_seconds must not be negative")

    @classmethod
    def from_environment(cls, settings: Settings) -> HttpConfig:
        """The HTTP configuration named by `settings` (the `WASTATE_*` variables)."""
        return cls(
            default_tenant=settings.default_tenant or None,
            require_api_key=settings.require_api_key,
            webhook_app_secret=settings.webhook_app_secret,
            webhook_verify_token=settings.webhook_verify_token or None,
            webhook_tenants=parse_webhook_tenants(settings.webhook_tenants)
            if settings.webhook_tenants is not None
            else {},
            api_key_cache_seconds=settings.api_key_cache_seconds,
        )
