"""The use-case layer (`wastate.services`): each use-case has one implementation, the shells call
it, and the layering in docs/architecture.md holds."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import wastate
from wastate import MessageStatus
from wastate.errors import InvalidInput
from wastate.services import maintenance
from wastate.services.approvals import ApprovalLifecycle
from wastate.services.schema import ensure_schema

SRC = Path(wastate.__file__).parent
WA = "+14155550123"


def test_the_old_import_paths_still_work() -> None:
    """What moved out of a public module keeps its old import path (the same object). (Internal
    modules' moved names — `repositories.mappings.ActivityWriter`,
    `repositories.approvals.HUMAN_IN_THE_LOOP` — have no alias: it would be an import cycle.)"""
    import wastate.http

    assert wastate.http.prepare_schema is ensure_schema


def test_every_entry_point_bootstraps_the_schema_with_one_policy() -> None:
    """StateManager, `wastate serve` / the HTTP factory and the CLI name the same function."""
    import wastate.cli.lifecycle
    import wastate.cli.serve
    import wastate.http.app
    import wastate.state_manager

    assert wastate.http.app.prepare_schema is ensure_schema
    assert wastate.state_manager.ensure_schema is ensure_schema
    assert wastate.cli.serve.ensure_schema is ensure_schema
    assert wastate.cli.lifecycle.ensure_schema is ensure_schema


def _top_level_imports(path: Path) -> set[str]:
    """The modules `path` imports when it is imported (not inside functions: lazy aliases)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` counts: type-level cycles too
            nodes: list[ast.stmt] = [*node.body, *node.orelse]
        else:
            nodes = [node]
        for item in nodes:
            if isinstance(item, ast.ImportFrom) and item.module:
                found.add(item.module)
            elif isinstance(item, ast.Import):
                found.update(alias.name for alias in item.names)
    return found


@pytest.mark.parametrize("path", sorted((SRC / "repositories").glob("*.py")), ids=str)
def test_repositories_import_no_use_case_no_store_and_no_unit_of_work(path: Path) -> None:
    """Repositories hold SQL: they never reach up to the layers that call them."""
    upward = ("wastate.services", "wastate.store", "wastate.uow", "wastate.activity")
    assert not {m for m in _top_level_imports(path) if m.startswith(upward)}


@pytest.mark.parametrize("path", sorted((SRC / "services").glob("*.py")), ids=str)
def test_services_import_no_shell(path: Path) -> None:
    """Use-cases know nothing of the CLI, HTTP or StateManager that call them."""
    shells = ("wastate.cli", "wastate.http", "wastate.state_manager", "click", "fastapi")
    assert not {m for m in _top_level_imports(path) if m.startswith(shells)}


def test_the_services_package_imports_none_of_its_modules() -> None:
    """`wastate.uow` imports `services.approvals`; an eager `services/__init__` importing the
    modules that use the unit of work would make that a cycle."""
    assert _top_level_imports(SRC / "services" / "__init__.py") == set()


def test_approval_lifecycle_is_what_a_unit_of_work_hands_out(store: wastate.Store) -> None:
    """`uow.approvals` carries the lifecycle's rules; the repository under it holds SQL only."""
    from wastate.repositories.approvals import ApprovalRepository

    with store.unit_of_work("t") as uow:
        assert isinstance(uow.approvals, ApprovalLifecycle)
    public = {name for name in vars(ApprovalRepository) if not name.startswith("_")}
    assert not public & {"add", "move", "decide"}


def test_decide_approves_or_rejects_only_what_is_pending(store: wastate.Store, tenant: str) -> None:
    """approve/reject move a pending message once; a second decision finds nothing pending;
    anything but the two decisions is refused before anything is written."""
    with store.unit_of_work(tenant) as uow:
        uow.approvals.add("c", {"id": "m1"}, MessageStatus.PENDING_APPROVAL)
        uow.approvals.add("c", {"id": "m2"}, MessageStatus.PENDING_APPROVAL)
    with store.unit_of_work(tenant) as uow:
        assert uow.approvals.decide("c", "m1", "approved") is True
        assert uow.approvals.decide("c", "m2", "rejected", reason=" spam ") is True
        assert uow.approvals.decide("c", "m1", "rejected") is False
        with pytest.raises(InvalidInput) as caught:
            uow.approvals.decide("c", "m2", "sent")  # type: ignore[arg-type]
        assert caught.value.field == "decision"
    with store.unit_of_work(tenant) as uow:
        assert uow.approvals.get("c", "m1").status is MessageStatus.APPROVED  # type: ignore[union-attr]
        assert uow.approvals.history("c", "m2")[-1][3] == "spam"
        stats = uow.statistics.get("c")
        assert (stats.total_approved, stats.total_rejected) == (1, 1)


def _old_closed_mappings(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str, count: int
) -> wastate.Store:
    """`count` mappings closed 100 days ago; returns a store on today's clock."""
    long_ago = datetime.now(UTC) - timedelta(days=100)
    old = make_store(database_url, clock=lambda: long_ago)
    with old.unit_of_work(tenant) as uow:
        for n in range(count):
            uow.mappings.get_or_create(f"+1415555010{n}")
            uow.mappings.close(f"+1415555010{n}")
    return make_store(database_url)


def test_a_purge_dry_run_counts_exactly_what_the_purge_then_deletes(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Dry run: the counts the real purge then reports, per kind and batch, and nothing
    changed in between; afterwards nothing is left to purge."""
    store = _old_closed_mappings(make_store, database_url, tenant, 3)

    def run(dry_run: bool) -> dict[str, list[int]]:
        kinds = maintenance.purge_batches(
            store, tenant, timedelta(days=90), batch_size=2, dry_run=dry_run
        )
        return {kind: list(batches) for kind, batches in kinds.items()}

    dry = run(True)
    assert list(dry) == list(maintenance.PURGE_KINDS)
    assert sum(dry["mappings"]) == 3
    assert run(True) == dry  # the dry run changed nothing
    assert run(False) == dry
    assert run(False) == {kind: [] for kind in maintenance.PURGE_KINDS}


def test_a_maintenance_batch_handles_at_most_its_batch_size(
    make_store: Callable[..., wastate.Store],
    database_url: str,
    tenant: str,
    request: pytest.FixtureRequest,
) -> None:
    """Three closed (and three idle) mappings, batch size 2: two batches each, 2 + 1."""
    store = _old_closed_mappings(make_store, database_url, tenant, 3)
    _idle_mappings(make_store, database_url, tenant, 3)
    purged = maintenance.purge_batches(store, tenant, timedelta(days=90), batch_size=2)
    expired = maintenance.expire_batches(store, tenant, timedelta(hours=24), batch_size=2)
    assert (list(purged["mappings"]), list(expired)) == ([2, 1], [2, 1])


def _idle_mappings(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str, count: int
) -> wastate.Store:
    """`count` active mappings last used 2 days ago; returns a store on today's clock."""
    long_ago = datetime.now(UTC) - timedelta(days=2)
    old = make_store(database_url, clock=lambda: long_ago)
    with old.unit_of_work(tenant) as uow:
        for n in range(count):
            uow.mappings.get_or_create(f"+1415555020{n}")
    old.close()
    return make_store(database_url)


def test_expire_batches_expire_every_idle_mapping(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Three idle conversations are expired, in batches; then none is left to expire."""
    store = _idle_mappings(make_store, database_url, tenant, 3)
    assert sum(maintenance.expire_batches(store, tenant, timedelta(hours=24), batch_size=2)) == 3
    assert list(maintenance.expire_batches(store, tenant, timedelta(hours=24), batch_size=2)) == []


def test_the_full_state_and_the_export_are_one_document(
    database_url: str, tenant: str, tmp_path: Path
) -> None:
    """`get_full_state()` and the streamed export say the same thing, key for key, in order."""
    with wastate.StateManager(database_url, "none://", tenant_id=tenant) as manager:
        manager.update_session_status(True, {"name": "Ops"})
        manager.set_config("human_in_the_loop", True)
        for n in range(3):
            manager.add_message({"id": f"m{n}", "body": "é"}, MessageStatus.INCOMING)
        manager.move_message("m1", MessageStatus.INCOMING, MessageStatus.PENDING_APPROVAL)
        state = manager.get_full_state()
        path = manager.export_state(tmp_path / "state.json")
    exported = json.loads(Path(path).read_text(encoding="utf-8"))
    assert exported == state
    assert list(exported) == ["session", "account_info", "messages", "statistics", "config"]
    assert list(exported["messages"]) == [status.value for status in MessageStatus]
