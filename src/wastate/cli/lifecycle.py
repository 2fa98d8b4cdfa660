"""The seed-004 session and approval lifecycle from the command line: `wastate session show |
invalidate`, `wastate messages list`, `wastate approve`, `wastate reject`, `wastate stats`.

What does not live here: the lifecycle's rules (`wastate.services.approvals`, `uow.approvals`),
the seed-004 API these commands call (`wastate.StateManager`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from wastate.cli.context import Context, pass_context
from wastate.cli.params import MAX_LIMIT, TEXT
from wastate.services.schema import ensure_schema

if TYPE_CHECKING:
    from wastate.services.approvals import Decision

__all__ = ["approve", "messages", "reject", "session", "stats"]


@click.group()
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


@click.group()
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
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), help="Only the newest N.")
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


@click.command()
@click.argument("message_id", type=TEXT)
@pass_context
def approve(ctx: Context, message_id: str) -> None:
    """Approve a message pending approval (pending_approval → approved)."""
    _decide(ctx, message_id, "approved", None)


@click.command()
@click.argument("message_id", type=TEXT)
@click.option(
    "--reason", type=TEXT, help="Why (kept with the message where the store supports it)."
)
@pass_context
def reject(ctx: Context, message_id: str, reason: str | None) -> None:
    """Reject a message pending approval (pending_approval → rejected)."""
    _decide(ctx, message_id, "rejected", reason)


@click.command()
@pass_context
def stats(ctx: Context) -> None:
    """Show the approval statistics (entries into each status since the last reset)."""
    data = dict(ctx.manager().get_statistics())
    ctx.emit(data, lambda: _lines(data))
