"""The `wastate` command: migrations, the HTTP service, and an operator's day-to-day jobs.

Global options (`--tenant`, `--client`, `--database-url`, `--cache-url`, `--json`) come before the
command. Option values are checked by their click types before anything runs (a bad one is a
usage error, exit 2, naming the option). Every failure after that ends in one error boundary, the
root group's `invoke`: one line on stderr and exit 1 (128 + N for signal N) — never a traceback.
Long work (export, import, purge, expire) shows progress on stderr, so stdout stays clean for
`--json`; SIGTERM and SIGHUP interrupt it like Ctrl-C, so its cleanup (an export's temp file) runs.

What does not live here: any SQL (the repositories), the use-cases (`wastate.services`: approve
and reject, purge and expire with their dry run, schema bootstrap), the seed-004 API
(`wastate.StateManager`), the HTTP routes (`wastate.http`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from wastate.domain.ids import normalize_tenant_id
from wastate.domain.sessions import normalize_client_id
from wastate.errors import InvalidInput, WastateError, one_line
from wastate.services import maintenance
from wastate.services.schema import ensure_schema
from wastate.settings import Settings, load_settings

if TYPE_CHECKING:
    from wastate.cache.mappings import MappingCache
    from wastate.services.approvals import Decision
    from wastate.store import Store

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

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"([0-9]+)([wdhms])")  # ASCII digits: int() would take others too
_DEFAULT_BATCH = 1000

MAX_DURATION = timedelta(days=36_500)
"""The longest age a maintenance command takes (100 years): `now - age` stays a real date."""

MAX_BATCH_SIZE = 1_000_000
"""The largest `--batch-size`: a batch is one transaction, and bigger ones defeat batching."""

_MAX_LIMIT = 2**63 - 1  # the largest integer both databases store (a LIMIT is a BIGINT)


def parse_duration(text: str) -> timedelta:
    """`90d`, `24h`, `1d12h`, `30m`, `2w`, `45s` → a positive `timedelta` of at most
    `MAX_DURATION`; else `ValueError`."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise ValueError(f"{text!r} is not a duration (examples: 90d, 24h, 1d12h, 30m)")
    # Whole seconds in Python ints, compared before a timedelta exists: a huge count would
    # overflow timedelta (or the date arithmetic after it) instead of being refused.
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"{text!r} is too long: at most {format_duration(MAX_DURATION)} (100 years)"
        )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A `timedelta` in the notation `parse_duration` reads: `90d`, `1d12h`, `30m`."""
    seconds, parts = int(value.total_seconds()), []
    for unit, size in _UNITS.items():
        if unit == "w":  # 90d reads better than 12w6d
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _duration(_ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """Click callback: a duration option's text as a `timedelta`, or a usage error."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _tenant(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: `--tenant` as given (never an empty string acting as `default`)."""
    return None if value is None else _checked(normalize_tenant_id, value, param)


def _client(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Click callback: `--client` as a valid client id."""
    return _checked(normalize_client_id, value, param)


def _checked(rule: Callable[..., str], value: str, param: click.Parameter) -> str:
    try:
        return rule(value, field=param.opts[-1])
    except InvalidInput as exc:
        raise click.BadParameter(exc.message, param=param) from None


class _Text(click.ParamType[str]):
    """Free text from the command line: refused if it holds bytes that are not UTF-8.

    Python hands undecodable argv bytes over as lone surrogates (`surrogateescape`); no database
    stores those, so they are refused here, naming the option, before anything runs.
    """

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("is not valid UTF-8 text (the argument holds undecodable bytes)", param, ctx)
        return text


TEXT = _Text()


def _one_line(exc: BaseException) -> str:
    """An exception as one readable line (database errors without their SQL and parameters)."""
    if isinstance(exc, SQLAlchemyError):
        return "database error: " + one_line(exc)
    return one_line(exc)


def _safe_url(url: str) -> str:
    """A database URL fit to print: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by Settings, not here
        return url


@dataclass
class Context:
    """What every command shares: the global options and the lazily opened store/manager."""

    tenant: str | None
    client: str
    database_url: str | None
    cache_url: str | None
    as_json: bool
    _settings: Settings | None = None
    _store: Store | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        """The settings: the global options over the environment."""
        if self._settings is None:
            self._settings = load_settings(database_url=self.database_url, cache_url=self.cache_url)
        return self._settings

    @property
    def tenant_id(self) -> str:
        """`--tenant`, else `WASTATE_DEFAULT_TENANT`, else `default` (StateManager's default)."""
        if self.tenant is not None:
            return self.tenant
        return self.settings.default_tenant or "default"

    def store(self) -> Store:
        """The store, opened on first use and closed when the command ends."""
        if self._store is None:
            from wastate.store import Store

            self._store = Store(self.settings)
            self._closers.append(self._store.close)
        return self._store

    def manager(self, **options: Any) -> Any:
        """A `wastate.StateManager` for this tenant and client (the seed-004 API)."""
        from wastate.state_manager import StateManager

        manager = StateManager(
            self.settings.database_url,
            self.settings.cache_url,
            tenant_id=self.tenant_id,
            client_id=self.client,
            **options,
        )
        close = getattr(manager, "close", None)
        if callable(close):
            self._closers.append(close)
        return manager

    def close(self) -> None:
        """Close whatever the command opened, newest first."""
        while self._closers:
            self._closers.pop()()

    def emit(self, data: Any, human: str | Callable[[], str]) -> None:
        """Print `data` as JSON under `--json`, else the human form."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
        else:
            click.echo(human() if callable(human) else human)


pass_context = click.make_pass_decorator(Context)


class _Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so cleanup (`finally`) runs as for ^C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise _Interrupted(signum)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Make SIGTERM and SIGHUP interrupt the command like ^C while it runs (then restore).

    Their default ends the process on the spot, leaving an export's temp file behind. A signal
    the parent set to be ignored (`nohup`) stays ignored; handlers can only be set from the main
    thread, so elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
            signum = exc.signum if isinstance(exc, _Interrupted) else signal.SIGINT
            click.echo(f"Error: interrupted by {signal.Signals(signum).name}", err=True)
            raise click.exceptions.Exit(128 + signum) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--tenant",
    metavar="ID",
    callback=_tenant,
    help="Tenant to act for [default: WASTATE_DEFAULT_TENANT or 'default'].",
)
@click.option(
    "--client",
    default="default",
    show_default=True,
    metavar="ID",
    callback=_client,
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


# --- schema -----------------------------------------------------------------------------------


@cli.command()
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
        {"database": _safe_url(url), "revision": migrations.head_revision()},
        f"migrated {_safe_url(url)} to {revision}",
    )


# --- HTTP service -----------------------------------------------------------------------------


@cli.command()
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
        overrides, why = worker_cache_overrides(store.mapping_cache, settings.cache_url)
        os.environ.update(overrides)
        cache_url = overrides.get("WASTATE_CACHE_URL", cache_url)
        if why:
            click.echo(why, err=True)
    click.echo(
        f"wastate: serving http://{host}:{port} (database {_safe_url(settings.database_url)}, "
        f"cache {_safe_url(cache_url)}, {workers} worker{'s' if workers > 1 else ''})",
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


def worker_cache_overrides(cache: MappingCache, url: str) -> tuple[dict[str, str], str | None]:
    """The settings (environment variables) that worker processes of `serve` need so none serves
    a mapping another worker changed, with the one line that says why (None when the cache at
    `url` already reaches every worker).

    An invalidation reaches other processes only through a shared backend (`Cache.shared`), and
    near caches only through its pub/sub: a process-local backend is replaced by `none://`, and
    the near cache is turned off over a shared backend that cannot announce invalidations.
    """
    url = _safe_url(url)
    if cache.backend.enabled and not cache.backend.shared:
        return {"WASTATE_CACHE_URL": "none://"}, (
            f"wastate: cache {url} is private to each worker process, so workers would serve "
            "conversations another worker changed: caching is off (none://); for a cache all "
            "workers share, use --cache-url redis://HOST:6379/0"
        )
    if cache.near is not None and cache.subscription is None:
        return {"WASTATE_NEAR_CACHE": "false"}, (
            f"wastate: cache {url} cannot announce invalidations to other workers (no pub/sub): "
            "the near cache is off (WASTATE_NEAR_CACHE=false)"
        )
    return {}, None


# --- sessions and the approval lifecycle (seed 004, through StateManager) -----------------------


@cli.group()
def session() -> None:
    """The client's WhatsApp Web session record."""


def _lines(data: dict[str, Any]) -> str:
    width = max((len(str(key)) for key in data), default=0)
    return "\n".join(f"{key:<{width}}  {_scalar(value)}" for key, value in data.items())


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return "-" if value is None else str(value)


@session.command("show")
@pass_context
def session_show(ctx: Context) -> None:
    """Show the session: authenticated, valid, QR needed, last validation, account."""
    manager = ctx.manager()
    info = dict(manager.get_session_info())
    info.setdefault("is_valid", manager.is_session_valid())
    info.setdefault("requires_qr_scan", manager.requires_qr_scan())
    ctx.emit(info, lambda: _lines(info))


@session.command("invalidate")
@click.option("--reason", default="invalidated by operator", show_default=True, type=TEXT)
@pass_context
def session_invalidate(ctx: Context, reason: str) -> None:
    """Mark the session invalid (the client must re-authenticate)."""
    manager = ctx.manager()
    manager.mark_session_invalid(reason)
    ctx.emit({"invalidated": True, "reason": reason}, f"session invalidated: {reason}")


@cli.group()
def messages() -> None:
    """Approval-lifecycle messages."""


def _status(value: str) -> Any:
    from wastate.domain.lifecycle import MessageStatus

    return MessageStatus(value)


_STATUS_NAMES = ["incoming", "pending_approval", "approved", "rejected", "sent", "failed"]


def _message_line(message: dict[str, Any]) -> str:
    sender = message.get("from") or message.get("recipient") or "-"
    body = str(message.get("body", "")).replace("\n", " ")
    if len(body) > 60:
        body = body[:59] + "…"
    return f"{message.get('id', '-')}\t{sender}\t{body}"


@messages.command("list")
@click.option("--status", "status_name", required=True, type=click.Choice(_STATUS_NAMES))
@click.option("--limit", type=click.IntRange(1, _MAX_LIMIT), help="Only the newest N.")
@pass_context
def messages_list(ctx: Context, status_name: str, limit: int | None) -> None:
    """List the messages in one status, oldest first."""
    found = list(ctx.manager().get_messages(_status(status_name), limit))
    ctx.emit(
        found,
        lambda: "\n".join(_message_line(m) for m in found) or f"no {status_name} messages",
    )


def _decide(ctx: Context, message_id: str, to: Decision, reason: str | None) -> None:
    store = ctx.store()
    ensure_schema(store)  # as StateManager() does: these commands work on a new SQLite file
    with store.unit_of_work(ctx.tenant_id) as uow:
        moved = uow.approvals.decide(ctx.client, message_id, to, reason=reason)
    if not moved:
        raise click.ClickException(f"message {message_id!r} is not pending approval")
    data = {"id": message_id, "status": to, "reason": reason}
    ctx.emit(data, f"{message_id}: {to}" + (f" ({reason})" if reason else ""))


@cli.command()
@click.argument("message_id", type=TEXT)
@pass_context
def approve(ctx: Context, message_id: str) -> None:
    """Approve a message pending approval (pending_approval → approved)."""
    _decide(ctx, message_id, "approved", None)


@cli.command()
@click.argument("message_id", type=TEXT)
@click.option(
    "--reason", type=TEXT, help="Why (kept with the message where the store supports it)."
)
@pass_context
def reject(ctx: Context, message_id: str, reason: str | None) -> None:
    """Reject a message pending approval (pending_approval → rejected)."""
    _decide(ctx, message_id, "rejected", reason)


@cli.command()
@pass_context
def stats(ctx: Context) -> None:
    """Show the approval statistics (entries into each status since the last reset)."""
    data = dict(ctx.manager().get_statistics())
    ctx.emit(data, lambda: _lines(data))


# --- export / import / backup -----------------------------------------------------------------


def _interactive() -> bool:
    """Progress bars only for a person at a terminal: elsewhere (cron, CI, pipes) a failure
    leaves stderr with its one error line and nothing else."""
    return sys.stderr.isatty()


def _with_progress(label: str, call: Callable[..., Any], *args: Any) -> Any:
    """Run `call(*args, progress=…)` with a bar on stderr counting the messages it reports."""
    with click.progressbar(
        length=0,
        label=label,
        file=sys.stderr,
        show_pos=True,
        show_percent=False,
        hidden=not _interactive(),
    ) as bar:

        def progress(done: int) -> None:
            bar.update(max(0, done - bar.pos))

        with _signals_interrupt():
            return call(*args, progress=progress)


@cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@pass_context
def export_(ctx: Context, file: str) -> None:
    """Write the tenant/client state to FILE in the seed's state-file format (atomically)."""
    result = _with_progress("exporting", ctx.manager().export_state, file)
    path = str(result) if isinstance(result, str | os.PathLike) else file
    ctx.emit({"exported": path}, f"exported to {path}")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@pass_context
def import_(ctx: Context, file: str) -> None:
    """Load a seed-format state file (idempotent: importing twice changes nothing)."""
    count = _with_progress("importing", ctx.manager().import_state, file)
    ctx.emit({"imported": file, "messages": count}, f"imported {file}: {count} messages")


@cli.command()
@click.option("--dir", "backup_dir", type=click.Path(file_okay=False), help="Backup folder.")
@pass_context
def backup(ctx: Context, backup_dir: str | None) -> None:
    """Write a timestamped backup (whatsapp_state_backup_YYYYMMDD_HHMMSS.json)."""
    options = {"backup_dir": backup_dir} if backup_dir else {}
    path = str(_with_progress("backing up", ctx.manager(**options).backup_state))
    ctx.emit({"backup": path}, f"backup written: {path}")


# --- maintenance ------------------------------------------------------------------------------


def _drain(ctx: Context, label: str, batches: Iterator[int]) -> int:
    total = 0
    with (
        click.progressbar(
            batches,
            label=label,
            file=sys.stderr,
            item_show_func=lambda n: f"{total} rows" if n is not None else None,
            hidden=not _interactive(),
        ) as bar,
        _signals_interrupt(),
    ):
        for count in bar:
            total += count
    return total


_PURGE_LABELS = {
    "mappings": "closed/expired mappings",
    "trackingRows": "tracking rows",
    "parkedStatusEvents": "parked status events",
}


@cli.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    callback=_duration,
    metavar="AGE",
    help="e.g. 90d: what closed, was created or was parked longer ago than this.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option(
    "--batch-size",
    default=_DEFAULT_BATCH,
    show_default=True,
    type=click.IntRange(1, MAX_BATCH_SIZE),
)
@pass_context
def purge(ctx: Context, older_than: timedelta, dry_run: bool, batch_size: int) -> None:
    """Delete closed/expired mappings, old tracking rows and stale parked events, in batches.

    Each batch is its own transaction, so a large purge never holds long locks; --dry-run does
    the same work in one transaction and rolls it back, so its counts are exact.
    """
    steps = maintenance.purge_batches(
        ctx.store(), ctx.tenant_id, older_than, batch_size=batch_size, dry_run=dry_run
    )
    counts = {kind: _drain(ctx, _PURGE_LABELS[kind], batches) for kind, batches in steps.items()}
    verb = "would delete" if dry_run else "deleted"
    age = format_duration(older_than)

    def human() -> str:
        lines = [f"{verb} {count} {_PURGE_LABELS[kind]}" for kind, count in counts.items()]
        return "\n".join(lines) + f"\n(older than {age}, tenant {ctx.tenant_id})"

    ctx.emit({"tenant": ctx.tenant_id, "dryRun": dry_run, "olderThan": age, **counts}, human)


@cli.command()
@click.option(
    "--idle",
    required=True,
    callback=_duration,
    metavar="AGE",
    help="e.g. 24h: expire active mappings idle for longer than this.",
)
@click.option(
    "--batch-size",
    default=_DEFAULT_BATCH,
    show_default=True,
    type=click.IntRange(1, MAX_BATCH_SIZE),
)
@pass_context
def expire(ctx: Context, idle: timedelta, batch_size: int) -> None:
    """Expire idle conversations (their users' next message starts a new one)."""
    total = _drain(
        ctx,
        "expiring",
        maintenance.expire_batches(ctx.store(), ctx.tenant_id, idle, batch_size=batch_size),
    )
    ctx.emit(
        {"tenant": ctx.tenant_id, "expired": total},
        f"expired {total} mappings idle > {format_duration(idle)}",
    )


# --- API keys ---------------------------------------------------------------------------------


@cli.group()
def apikey() -> None:
    """Per-tenant API keys of the HTTP service (only a hash is stored)."""


def _key_data(record: Any) -> dict[str, Any]:
    return {
        "tenant": record.tenant_id,
        "keyId": record.key_id,
        "label": record.label,
        "createdAt": record.created_at.isoformat(),
        "revokedAt": record.revoked_at.isoformat() if record.revoked_at else None,
    }


@apikey.command("create")
@click.option("--label", type=TEXT, help="What the key is for.")
@pass_context
def apikey_create(ctx: Context, label: str | None) -> None:
    """Issue a key for --tenant; the token is printed once and never stored."""

    with ctx.store().unit_of_work(ctx.tenant_id) as uow:
        issued = uow.api_keys.create(label=label)
    data = {**_key_data(issued.record), "token": issued.token}
    if not ctx.as_json:
        click.echo("store this token now: it cannot be shown again", err=True)
    ctx.emit(data, issued.token)


@apikey.command("revoke")
@click.argument("key_id", type=TEXT)
@pass_context
def apikey_revoke(ctx: Context, key_id: str) -> None:
    """Revoke a key of --tenant (HTTP workers notice within seconds)."""

    with ctx.store().unit_of_work(ctx.tenant_id) as uow:
        record = uow.api_keys.revoke(key_id)
    if record is None:
        raise click.ClickException(f"tenant {ctx.tenant_id!r} has no API key {key_id!r}")
    ctx.emit(_key_data(record), f"revoked {key_id}")


@apikey.command("list")
@pass_context
def apikey_list(ctx: Context) -> None:
    """List the keys of --tenant (ids and labels; secrets are never stored)."""

    with ctx.store().unit_of_work(ctx.tenant_id) as uow:
        records = uow.api_keys.all()
    data = [_key_data(record) for record in records]

    def human() -> str:
        rows = [
            f"{d['keyId']}  {'revoked' if d['revokedAt'] else 'active '}  {d['createdAt']}  "
            f"{d['label'] or ''}".rstrip()
            for d in data
        ]
        return "\n".join(rows) or f"tenant {ctx.tenant_id!r} has no API keys"

    ctx.emit(data, human)


def main(argv: list[str] | None = None) -> NoReturn:
    """The console entry point (`wastate = "wastate.cli:main"`); exits with the command's status."""
    cli.main(args=argv, prog_name="wastate")
    sys.exit(0)
