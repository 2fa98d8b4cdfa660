"""The HTTP service's per-tenant API keys from the command line: `wastate apikey create | revoke
| list` (the token is printed once; only its hash is stored).

What does not live here: issuing, hashing and revoking keys (the API key repository, through a
unit of work), checking them on a request (`wastate.http.tenancy`).
"""

from __future__ import annotations

from typing import Any

import click

from wastate.cli.context import Context, pass_context
from wastate.cli.params import TEXT

__all__ = ["apikey"]


@click.group()
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
