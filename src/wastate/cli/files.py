"""State files from the command line: `wastate export`, `wastate import` and `wastate backup`, in
the seed's state-file format, with progress on stderr and ^C/SIGTERM/SIGHUP cleaning up.

What does not live here: reading and writing the format (`wastate.StateManager`), the progress
bar and signal handling (`wastate.cli.progress`).
"""

from __future__ import annotations

import os

import click

from wastate.cli.context import Context, pass_context
from wastate.cli.progress import with_progress

__all__ = ["backup", "export_", "import_"]


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@pass_context
def export_(ctx: Context, file: str) -> None:
    """Write the tenant/client state to FILE in the seed's state-file format (atomically)."""
    result = with_progress("exporting", ctx.manager().export_state, file)
    path = str(result) if isinstance(result, str | os.PathLike) else file
    ctx.emit({"exported": path}, f"exported to {path}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@pass_context
def import_(ctx: Context, file: str) -> None:
    """Load a seed-format state file (idempotent: importing twice changes nothing)."""
    count = with_progress("importing", ctx.manager().import_state, file)
    ctx.emit({"imported": file, "messages": count}, f"imported {file}: {count} messages")


@click.command()
@click.option("--dir", "backup_dir", type=click.Path(file_okay=False), help="Backup folder.")
@pass_context
def backup(ctx: Context, backup_dir: str | None) -> None:
    """Write a timestamped backup (whatsapp_state_backup_YYYYMMDD_HHMMSS.json)."""
    options = {"backup_dir": backup_dir} if backup_dir else {}
    path = str(with_progress("backing up", ctx.manager(**options).backup_state))
    ctx.emit({"backup": path}, f"backup written: {path}")
