"""Moves keep their reason (why a reply was rejected), and cannot race the approval guard."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import wastate
from wastate import MessageStatus


@pytest.fixture
def manager(database_url: str, tenant: str, tmp_path: Path) -> Iterator[wastate.StateManager]:
    with wastate.StateManager(
        database_url, "none://", tenant_id=tenant, backup_dir=str(tmp_path)
    ) as manager:
        yield manager


def test_a_rejection_keeps_its_reason(manager: wastate.StateManager) -> None:
    """The reason is stored with the move, trimmed; moves without one have None."""
    manager.add_message({"id": "r1", "body": "reply"}, MessageStatus.PENDING_APPROVAL)
    moved = manager.move_message(
        "r1", MessageStatus.PENDING_APPROVAL, MessageStatus.REJECTED, reason="  off-topic  "
    )
    assert moved is True
    history = manager.get_message_history("r1")
    assert [(h["from"], h["to"], h["reason"]) for h in history] == [
        (None, "pending_approval", None),
        ("pending_approval", "rejected", "off-topic"),
    ]


@pytest.mark.parametrize("bad", [42, "x" * 1001, "nul\x00byte"])
def test_a_bad_reason_is_refused_and_nothing_moves(
    manager: wastate.StateManager, bad: object
) -> None:
    """A reason that is not text, too long or holds NUL is InvalidInput; the message stays."""
    manager.add_message({"id": "r2", "body": "reply"}, MessageStatus.PENDING_APPROVAL)
    with pytest.raises(wastate.InvalidInput) as caught:
        manager.move_message(
            "r2",
            MessageStatus.PENDING_APPROVAL,
            MessageStatus.REJECTED,
            reason=bad,  # type: ignore[arg-type]
        )
    assert caught.value.field == "reason"
    assert [m["id"] for m in manager.get_messages(MessageStatus.PENDING_APPROVAL)] == ["r2"]
    assert manager.get_statistics()["total_rejected"] == 0


def test_turning_the_guard_on_waits_for_a_bypassing_move_in_flight(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """A `pending_approval → sent` move holds the guard's config entry until it commits, so a
    concurrent `human_in_the_loop = true` lands after it, never between check and move."""
    store = make_store(database_url)
    with store.unit_of_work(tenant) as uow:
        uow.config.set("default", "human_in_the_loop", False)
        uow.approvals.add("default", {"id": "g1"}, MessageStatus.PENDING_APPROVAL)
    mover = store.unit_of_work(tenant)
    assert mover.approvals.move("default", "g1", "pending_approval", "sent") is True
    turned_on = threading.Event()

    def turn_guard_on() -> None:
        with store.unit_of_work(tenant) as uow:
            uow.config.set("default", "human_in_the_loop", True)
        turned_on.set()

    thread = threading.Thread(target=turn_guard_on)
    thread.start()
    try:
        assert not turned_on.wait(0.5)  # blocked behind the move's transaction
    finally:
        mover.commit()
        mover.close()
    thread.join(timeout=30)
    assert turned_on.is_set()
    with store.unit_of_work(tenant) as uow:
        assert uow.approvals.get("default", "g1").status is MessageStatus.SENT  # type: ignore[union-attr]
        assert uow.config.get("default", "human_in_the_loop") is True


def test_export_and_import_report_progress(manager: wastate.StateManager, tmp_path: Path) -> None:
    """Export reports messages written every thousand and at the end; import, at the end."""
    for n in range(2500):
        manager.add_message({"id": f"p{n}"}, MessageStatus.INCOMING)
    heard: list[int] = []
    path = manager.export_state(tmp_path / "state.json", progress=heard.append)
    assert heard == [1000, 2000, 2500]
    heard.clear()
    assert manager.import_state(path, progress=heard.append) == 2500
    assert heard == [2500]
