"""The `wastate` command: migrations, the HTTP service, and an operator's day-to-day jobs.

Global options (`--tenant`, `--client`, `--database-url`, `--cache-url`, `--json`) come before the
command. Option values are checked by their click types before anything runs (a bad one is a
usage error, exit 2, naming the option). Every failure after that ends in one error boundary, the
root group's `invoke` (here): one line on stderr and exit 1 (128 + N for signal N) — never a
traceback. Long work (export, import, purge, expire) shows progress on stderr, so stdout stays
clean for `--json`; SIGTERM and SIGHUP interrupt it like Ctrl-C, so its cleanup (an export's temp
file) runs.

Here: the root group, its error boundary and `main`. The commands live one family per module:
`serve` (migrate, serve), `lifecycle` (session, messages, approve, reject, stats), `files`
(export, import, backup), `maintenance` (purge, expire), `keys` (apikey); what they share is in
`context` (global options, store, output), `params` (parameter types) and `progress` (progress
bars, signals).

What does not live here: any SQL (the repositories), the use-cases (`wastate.services`: approve
and reject, purge and expire with their dry run, schema bootstrap), the seed-004 API
(`wastate.StateManager`), the HTTP routes (`wastate.http`).
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from wastate.cli import files, keys, lifecycle, maintenance, serve
from wastate.cli.context import Context
from wastate.cli.params import (
    MAX_BATCH_SIZE,
    MAX_DURATION,
    client_id,
    format_duration,
    parse_duration,
    tenant_id,
)
from wastate.cli.progress import Interrupted
from wastate.cli.serve import worker_cache_overrides
from wastate.errors import WastateError, one_line

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_DURATION",
    "cli",
    "format_duration",
    "main",
    "parse_duration",
    "worker_cache_overrides",
]

log = logging.getLogger(__name__)


def _one_line(exc: BaseException) -> str:
    """An exception as one readable line (database errors without their SQL and parameters)."""
    if isinstance(exc, SQLAlchemyError):
        return "database error: " + one_line(exc)
    return one_line(exc)


def _as_click_error(exc: Exception) -> click.ClickException:
    """Any failure of a command as the one line click prints (`Error: …`)."""
    if isinstance(exc, WastateError | SQLAlchemyError | OSError):
        return click.ClickException(_one_line(exc))
    if isinstance(exc, ImportError):
        return click.ClickException(
            f"{_one_line(exc)} (the HTTP service needs: pip install 'wastate[http]')"
            if "fastapi" in str(exc) or "uvicorn" in str(exc)
            else _one_line(exc)
        )
    # Last resort, for a bug: one line all the same; the traceback goes to the log (debug level,
    # so an unconfigured logger does not print it).
    log.debug("unexpected error in the wastate command", exc_info=exc)
    return click.ClickException(
        f"unexpected {type(exc).__name__}: {_one_line(exc)} (a wastate bug: please report it)"
    )


class _Group(click.Group):
    """The root group: the one error boundary of the command line.

    Every command (and every nested group) runs inside its `invoke`; whatever a command raises
    leaves as one line on stderr. Click's own errors (usage, `ClickException`) pass unchanged.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                # Closed here, inside the boundary, so a failing close is one line too.
                if isinstance(ctx.obj, Context):
                    ctx.obj.close()
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: see _as_click_error
            raise _as_click_error(exc) from None
        except KeyboardInterrupt as exc:
            # ^C, SIGTERM, SIGHUP: one line and the shell's status for death by that signal.
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            click.echo(f"Error: interrupted by {signal.Signals(signum).name}", err=True)
            raise click.exceptions.Exit(128 + signum) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--tenant",
    metavar="ID",
    callback=tenant_id,
    help="Tenant to act for [default: WASTATE_DEFAULT_TENANT or 'default'].",
)
@click.option(
    "--client",
    default="default",
    show_default=True,
    metavar="ID",
    callback=client_id,
    help="Client id of the session / approval commands.",
)
@click.option("--database-url", metavar="URL", help="Overrides WASTATE_DATABASE_URL.")
@click.option("--cache-url", metavar="URL", help="Overrides WASTATE_CACHE_URL.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.version_option(package_name="wastate")
@click.pass_context
def cli(
    ctx: click.Context,
    tenant: str | None,
    client: str,
    database_url: str | None,
    cache_url: str | None,
    as_json: bool,
) -> None:
    """wastate: conversation mappings, message tracking and approval state for WhatsApp."""
    ctx.obj = Context(tenant, client, database_url, cache_url, as_json)


for _command in (
    serve.migrate,
    serve.serve,
    lifecycle.session,
    lifecycle.messages,
    lifecycle.approve,
    lifecycle.reject,
    lifecycle.stats,
    files.export_,
    files.import_,
    files.backup,
    maintenance.purge,
    maintenance.expire,
    keys.apikey,
):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> NoReturn:
    """The console entry point (`wastate = "wastate.cli:main"`); exits with the command's status."""
    cli.main(args=argv, prog_name="wastate")
    sys.exit(0)
