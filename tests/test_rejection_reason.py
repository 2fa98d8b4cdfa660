"""A move's reason (why a reply was rejected) is kept in the message's history."""

from __future__ import annotations

from collections.abc import Iterator
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
