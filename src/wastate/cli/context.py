"""What every `wastate` command shares: the global options, the lazily opened store or
`StateManager` (closed when the command ends), and the one way to print an answer (`--json` or
the human form).

What does not live here: the commands, the error boundary (`wastate.cli`), parameter checks
(`wastate.cli.params`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.engine import make_url

from wastate.settings import Settings, load_settings

if TYPE_CHECKING:
    from wastate.store import Store

__all__ = ["Context", "pass_context", "safe_url"]


def safe_url(url: str) -> str:
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
