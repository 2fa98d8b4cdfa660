"""The `wastate` command's parameter types: durations, tenant and client ids, bounded integers
and free text, each checked by click before any command runs (a bad value is a usage error, exit
2, naming the option).

What does not live here: the rules themselves (`wastate.domain`: what a tenant or client id is),
the commands that take these parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from wastate.domain.ids import normalize_tenant_id
from wastate.domain.sessions import normalize_client_id
from wastate.errors import InvalidInput

__all__ = [
    "DEFAULT_BATCH",
    "MAX_BATCH_SIZE",
    "MAX_DURATION",
    "MAX_LIMIT",
    "TEXT",
    "batch_size_option",
    "client_id",
    "duration",
    "format_duration",
    "parse_duration",
    "tenant_id",
]

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"([0-9]+)([wdhms])")  # ASCII digits: int() would take others too
DEFAULT_BATCH = 1000

MAX_DURATION = timedelta(days=36_500)
"""The longest age a maintenance command takes (100 years): `now - age` stays a real date."""

MAX_BATCH_SIZE = 1_000_000
"""The largest `--batch-size`: a batch is one transaction, and bigger ones defeat batching."""

MAX_LIMIT = 2**63 - 1  # the largest integer both databases store (a LIMIT is a BIGINT)


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


def duration(_ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """Click callback: a duration option's text as a `timedelta`, or a usage error."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def tenant_id(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: `--tenant` as given (never an empty string acting as `default`)."""
    return None if value is None else _checked(normalize_tenant_id, value, param)


def client_id(_ctx: click.Context, param: click.Parameter, value: str) -> str:
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

batch_size_option = click.option(
    "--batch-size",
    default=DEFAULT_BATCH,
    show_default=True,
    type=click.IntRange(1, MAX_BATCH_SIZE),
    help="Rows per batch; each batch is its own transaction.",
)
"""`--batch-size` of the commands that work in batches (purge, expire)."""
