"""The FastAPI application: `create_app(store)` for a store you own, `app_factory()` for uvicorn.

`create_app` wires the routes, the tenant resolver, the health checker and the error handlers to
one store. `app_factory` (uvicorn's `--factory` mode, one call per worker process) builds a store
from the environment, makes sure its schema is ready, and closes it at shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from wastate.http.config import HttpConfig
from wastate.http.errors import install_error_handlers
from wastate.http.health import HealthChecker
from wastate.http.routes import build_router
from wastate.http.tenancy import TenantResolver
from wastate.services.schema import ensure_schema
from wastate.settings import load_settings
from wastate.store import Store

__all__ = ["app_factory", "create_app", "prepare_schema"]

_DESCRIPTION = """\
The seed-000 state-manager service on wastate: conversation mappings (WhatsApp user ⇄
contact-center conversation) and message tracking, per tenant.

Every route is tenant-scoped. The tenant comes from, in order: the API key (`X-API-Key` or
`Authorization: Bearer`), the `X-Tenant-ID` header, the body's `tenantId` (`POST /state/message`),
or the configured default tenant. None of them → 400; two that disagree → 400. A webhook's tenant
comes from the API key or from the binding of the signed body's business account
(`WASTATE_WEBHOOK_TENANTS`). Errors are JSON: `{"error": "…", "field": "…"}`.
"""


def create_app(
    store: Store, *, config: HttpConfig | None = None, owns_store: bool = False
) -> FastAPI:
    """The HTTP service over `store`. With `owns_store`, the store is closed at shutdown."""
    from wastate import __version__

    config = config if config is not None else HttpConfig.from_environment(store.settings)
    health = HealthChecker(store)
    resolver = TenantResolver(store, config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            health.close()
            if owns_store:
                store.close()

    app = FastAPI(
        title="wastate state manager",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.http_config = config
    install_error_handlers(app)
    app.include_router(build_router(store, resolver, config, health))
    return app


prepare_schema = ensure_schema
"""The schema bootstrap policy (`wastate.services.schema.ensure_schema`), under the name this
module has always exported: SQLite is migrated; an unmigrated PostgreSQL raises `SchemaNotReady`."""


def app_factory() -> FastAPI:
    """A ready application on the store the environment names (uvicorn `--factory`)."""
    store = Store(load_settings())
    try:
        ensure_schema(store)
        config = HttpConfig.from_environment(store.settings)
    except BaseException:
        store.close()
        raise
    return create_app(store, config=config, owns_store=True)
