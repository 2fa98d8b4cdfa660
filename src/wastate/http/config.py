"""The HTTP service's own settings: default tenant, API-key enforcement, webhook secrets.

`HttpConfig.from_environment()` takes them from the store's `Settings` (`WASTATE_DEFAULT_TENANT`,
`WASTATE_REQUIRE_API_KEY`, `WASTATE_WEBHOOK_APP_SECRET`, `WASTATE_WEBHOOK_VERIFY_TOKEN`,
`WASTATE_API_KEY_CACHE_SECONDS`); `create_app(store, config=…)` takes them explicitly (tests and
embedders build one by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from wastate.domain.ids import normalize_tenant_id
from wastate.errors import ConfigurationError, InvalidInput
from wastate.settings import Settings

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
    api_key_cache_seconds: float = 5.0
    """How long a verified key is trusted without asking the database (the revocation delay)."""

    def __post_init__(self) -> None:
        if self.default_tenant is not None:
            try:
                normalize_tenant_id(self.default_tenant)
            except InvalidInput as exc:
                raise ConfigurationError(f"WASTATE_DEFAULT_TENANT: {exc.message}") from exc
        if self.api_key_cache_seconds < 0:
            raise ConfigurationError("api_key_cache_seconds must not be negative")

    @classmethod
    def from_environment(cls, settings: Settings) -> HttpConfig:
        """The HTTP configuration named by `settings` (the `WASTATE_*` variables)."""
        return cls(
            default_tenant=settings.default_tenant or None,
            require_api_key=settings.require_api_key,
            webhook_app_secret=settings.webhook_app_secret or None,
            webhook_verify_token=settings.webhook_verify_token or None,
            api_key_cache_seconds=settings.api_key_cache_seconds,
        )
