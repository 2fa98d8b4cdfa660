"""The HTTP service's settings as it reads them: a view of `Settings`' HTTP part.

The settings and their rules live in `wastate.settings.HttpSettings` (part of `Settings`:
`WASTATE_DEFAULT_TENANT`, `WASTATE_REQUIRE_API_KEY`, `WASTATE_WEBHOOK_APP_SECRET`,
`WASTATE_WEBHOOK_VERIFY_TOKEN`, `WASTATE_WEBHOOK_TENANTS`, `WASTATE_API_KEY_CACHE_SECONDS`).
`HttpConfig.from_environment()` takes them from the store's `Settings`; `create_app(store,
config=…)` takes a hand-built one (tests, embedders), checked by the same rules. The view only
adds the parsed form of the webhook bindings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from wastate.errors import ConfigurationError
from wastate.settings import (
    HttpSettings,
    Settings,
    check_webhook_tenants,
    configuration_error,
    parse_webhook_tenants,
)

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
        # A hand-built config is held to the settings' own rules (one place: HttpSettings).
        try:
            HttpSettings(
                default_tenant=self.default_tenant,
                require_api_key=self.require_api_key,
                api_key_cache_seconds=self.api_key_cache_seconds,
                webhook_app_secret=self.webhook_app_secret,
                webhook_verify_token=self.webhook_verify_token,
            )
        except ValidationError as exc:
            raise configuration_error(exc) from exc
        try:
            bindings = check_webhook_tenants(self.webhook_tenants)
        except ValueError as exc:
            raise ConfigurationError(f"WASTATE_WEBHOOK_TENANTS: {exc}") from exc
        # Normalised tenant ids, and a private copy the caller cannot change afterwards.
        object.__setattr__(self, "webhook_tenants", bindings)

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
