"""The schema and the HTTP service from the command line: `wastate migrate` and `wastate serve`
(with the cache settings its worker processes need, `worker_cache_overrides`).

What does not live here: the migrations (`wastate.migrations`), schema bootstrap
(`wastate.services.schema`), the HTTP app and its server (`wastate.http`).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import click

from wastate.cli.context import Context, pass_context, safe_url
from wastate.cli.params import TEXT
from wastate.services.schema import ensure_schema
from wastate.settings import load_settings

if TYPE_CHECKING:
    from wastate.cache.layers import CacheReach

__all__ = ["migrate", "serve", "worker_cache_overrides"]


@click.command()
@click.option("--sql", is_flag=True, help="Print the DDL for a DBA instead (no database needed).")
@click.option("--revision", default="head", show_default=True, type=TEXT, help="Target revision.")
@pass_context
def migrate(ctx: Context, sql: bool, revision: str) -> None:
    """Create or upgrade the schema (`alembic upgrade head`)."""
    from wastate import migrations

    url = ctx.settings.database_url
    if sql:
        click.echo(migrations.migration_sql(url, revision), nl=False)
        return
    migrations.migrate(url, revision)
    ctx.emit(
        {"database": safe_url(url), "revision": migrations.head_revision()},
        f"migrated {safe_url(url)} to {revision}",
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, type=TEXT)
@click.option(
    "--port",
    default=3005,
    show_default=True,
    envvar=["WASTATE_PORT", "PORT"],
    type=click.IntRange(0, 65535),
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each opens its own store).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@pass_context
def serve(ctx: Context, host: str, port: int, workers: int, log_level: str) -> None:
    """Run the seed-000 HTTP service (embedded SQLite is migrated; PostgreSQL must be)."""
    from wastate.http.serving import run_server

    settings = ctx.settings
    # Worker processes build their stores from the environment: hand the overrides down.
    os.environ["WASTATE_DATABASE_URL"] = settings.database_url
    os.environ["WASTATE_CACHE_URL"] = settings.cache_url
    if ctx.tenant:
        os.environ["WASTATE_DEFAULT_TENANT"] = ctx.tenant
        settings = ctx._settings = load_settings(
            database_url=settings.database_url, cache_url=settings.cache_url
        )
    store = ctx.store()
    ensure_schema(store)
    cache_url = settings.cache_url
    if workers > 1:
        overrides, why = worker_cache_overrides(store.cache_reach(), settings.cache_url)
        os.environ.update(overrides)
        cache_url = overrides.get("WASTATE_CACHE_URL", cache_url)
        if why:
            click.echo(why, err=True)
    click.echo(
        f"wastate: serving http://{host}:{port} (database {safe_url(settings.database_url)}, "
        f"cache {safe_url(cache_url)}, {workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    if workers > 1:
        ctx.close()  # each worker opens its own store; the parent keeps none
    # uvicorn handles SIGTERM itself (and re-raises it to end the process as before); ^C is
    # how an operator stops a foreground server, not an error.
    with contextlib.suppress(KeyboardInterrupt):
        run_server(
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            store=store if workers == 1 else None,
        )


def worker_cache_overrides(reach: CacheReach, url: str) -> tuple[dict[str, str], str | None]:
    """The settings (environment variables) that worker processes of `serve` need so none serves
    a mapping another worker changed, with the one line that says why (None when the cache at
    `url` already reaches every worker).

    An invalidation reaches other processes only through a shared backend (`Cache.shared`), and
    near caches only through its pub/sub: a process-local backend is replaced by `none://`, and
    the near cache is turned off over a shared backend that cannot announce invalidations.
    """
    url = safe_url(url)
    if reach.caching and not reach.shared:
        return {"WASTATE_CACHE_URL": "none://"}, (
            f"wastate: cache {url} is private to each worker process, so workers would serve "
            "conversations another worker changed: caching is off (none://); for a cache all "
            "workers share, use --cache-url redis://HOST:6379/0"
        )
    if reach.near_cache and not reach.announced:
        return {"WASTATE_NEAR_CACHE": "false"}, (
            f"wastate: cache {url} cannot announce invalidations to other workers (no pub/sub): "
            "the near cache is off (WASTATE_NEAR_CACHE=false)"
        )
    return {}, None
