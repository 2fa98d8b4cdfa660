"""Long work on the command line (export, import, backup, purge, expire): a progress bar on stderr
for a person at a terminal, so stdout stays clean for `--json`; and SIGTERM and SIGHUP turned into
an interrupt like Ctrl-C while it runs, so its cleanup (an export's temp file) happens.

What does not live here: the work itself (`StateManager`, `wastate.services.maintenance`), how an
interrupt is reported (the error boundary in `wastate.cli`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import click

__all__ = ["Interrupted", "drain", "signals_interrupt", "with_progress"]


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so cleanup (`finally`) runs as for ^C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
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


def _interactive() -> bool:
    """Progress bars only for a person at a terminal: elsewhere (cron, CI, pipes) a failure
    leaves stderr with its one error line and nothing else."""
    return sys.stderr.isatty()


def with_progress(label: str, call: Callable[..., Any], *args: Any) -> Any:
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

        with signals_interrupt():
            return call(*args, progress=progress)


def drain(label: str, batches: Iterator[int]) -> int:
    """Run `batches` to the end with a bar on stderr; the sum of the rows they report."""
    total = 0
    with (
        click.progressbar(
            batches,
            label=label,
            file=sys.stderr,
            item_show_func=lambda n: f"{total} rows" if n is not None else None,
            hidden=not _interactive(),
        ) as bar,
        signals_interrupt(),
    ):
        for count in bar:
            total += count
    return total
