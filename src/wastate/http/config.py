"""The HTTP service's own settings: default tenant, API-key enforcement, webhook secrets.

`HttpConfig.from_environment()` reads them; `create_app(store, config=…)` takes them explicitly
(tests and embedders build one by hand). The default tenant comes from the store's settings
(`WASTATE_DEFAULT_TENANT`); the other three are read from the environment here until they join
`wastate.settings.Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from wastate.domain.ids import normalize_tenant_id
from wastate.errors import ConfigurationError, InvalidInput
from wastate.settings import Settings

__all__ = ["HttpConfig"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{name}: expected true or false, got {raw!r}")


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
    def from_environment(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> HttpConfig:
        """The configuration named by `settings` and the `WASTATE_*` HTTP variables."""
        env = os.environ if env is None else env
        return cls(
            default_tenant=settings.default_tenant or None,
            require_api_key=_flag(env, "WASTATE_REQUIRE_API_KEY"),
            webhook_app_secret=env.get("WASTATE_WEBHOOK_APP_SECRET") or None,
            webhook_verify_token=env.get("WASTATE_WEBHOOK_VERIFY_TOKEN") or None,
        )
