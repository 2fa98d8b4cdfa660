"""Housekeeping from the command line: `wastate purge` (old closed mappings, tracking rows and
parked status events) and `wastate expire` (idle conversations), in batches, with progress.

What does not live here: what is deleted or expired, and the batching and dry run
(`wastate.services.maintenance`).
"""

from __future__ import annotations

from datetime import timedelta

import click

from wastate.cli.context import Context, pass_context
from wastate.cli.params import batch_size_option, duration, format_duration
from wastate.cli.progress import drain
from wastate.services import maintenance

__all__ = ["expire", "purge"]

_PURGE_LABELS = {
    "mappings": "closed/expired mappings",
    "trackingRows": "tracking rows",
    "parkedStatusEvents": "parked status events",
}


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    callback=duration,
    metavar="AGE",
    help="e.g. 90d: what closed, was created or was parked longer ago than this.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@batch_size_option
@pass_context
def purge(ctx: Context, older_than: timedelta, dry_run: bool, batch_size: int) -> None:
    """Delete closed/expired mappings, old tracking rows and stale parked events, in batches.

    Each batch is its own transaction, so a large purge never holds long locks; --dry-run does
    the same work in one transaction and rolls it back, so its counts are exact.
    """
    steps = maintenance.purge_batches(
        ctx.store(), ctx.tenant_id, older_than, batch_size=batch_size, dry_run=dry_run
    )
    counts = {kind: drain(_PURGE_LABELS[kind], batches) for kind, batches in steps.items()}
    verb = "would delete" if dry_run else "deleted"
    age = format_duration(older_than)

    def human() -> str:
        lines = [f"{verb} {count} {_PURGE_LABELS[kind]}" for kind, count in counts.items()]
        return "\n".join(lines) + f"\n(older than {age}, tenant {ctx.tenant_id})"

    ctx.emit({"tenant": ctx.tenant_id, "dryRun": dry_run, "olderThan": age, **counts}, human)


@click.command()
@click.option(
    "--idle",
    required=True,
    callback=duration,
    metavar="AGE",
    help="e.g. 24h: expire active mappings idle for longer than this.",
)
@batch_size_option
@pass_context
def expire(ctx: Context, idle: timedelta, batch_size: int) -> None:
    """Expire idle conversations (their users' next message starts a new one)."""
    total = drain(
        "expiring",
        maintenance.expire_batches(ctx.store(), ctx.tenant_id, idle, batch_size=batch_size),
    )
    ctx.emit(
        {"tenant": ctx.tenant_id, "expired": total},
        f"expired {total} mappings idle > {format_duration(idle)}",
    )
