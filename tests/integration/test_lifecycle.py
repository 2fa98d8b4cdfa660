"""The approval lifecycle: the transition table, the approval guard, compare-and-set moves,
statistics and history in one transaction, and bad input refused before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import product
from typing import Any

import pytest

import wastate
from wastate.domain.lifecycle import (
    BYPASSES_APPROVAL,
    TRANSITIONS,
    MessageStatus,
    approval_message,
    check_transition,
    is_allowed,
    json_value,
    parse_message_status,
)
from wastate.errors import InvalidInput, InvalidTransition
from wastate.state_manager import StateManager

S = MessageStatus
CLIENT = "default"


@pytest.fixture
def manager(database_url: str, tenant: str) -> Iterator[StateManager]:
    """A StateManager on each test database, in a fresh tenant."""
    with StateManager(database_url, "none://", tenant_id=tenant) as manager:
        yield manager


def _state_of(manager: StateManager) -> dict[str, Any]:
    return manager.get_full_state()


# -- the rule, without a database -----------------------------------------------------------


# DESIGN.md, "Approval lifecycle", written out by hand for each value of the guard (not derived
# from `TRANSITIONS`): every move allowed; any (from, to) pair not listed must be refused.
STATUS_NAMES = ["incoming", "pending_approval", "approved", "rejected", "sent", "failed"]
ALLOWED = {
    False: {  # human_in_the_loop off: the whole table
        ("incoming", "pending_approval"),
        ("pending_approval", "approved"),
        ("pending_approval", "rejected"),
        ("pending_approval", "sent"),
        ("pending_approval", "failed"),
        ("approved", "sent"),
        ("approved", "failed"),
        ("failed", "approved"),  # retry
    },
    True: {  # human_in_the_loop on: pending_approval -> sent/failed would bypass approval
        ("incoming", "pending_approval"),
        ("pending_approval", "approved"),
        ("pending_approval", "rejected"),
        ("approved", "sent"),
        ("approved", "failed"),
        ("failed", "approved"),
    },
}


def test_the_table_is_the_one_in_the_design() -> None:
    """The transition table and the moves the approval guard refuses are exactly DESIGN.md's,
    over every status there is (a new status would need a decision in the design first)."""
    assert sorted(STATUS_NAMES) == sorted(status.value for status in S)
    table = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED[False]
    assert {(a.value, b.value) for a, b in BYPASSES_APPROVAL} == ALLOWED[False] - ALLOWED[True]


@pytest.mark.parametrize(("source", "target"), list(product(STATUS_NAMES, STATUS_NAMES)))
@pytest.mark.parametrize("human", [False, True])
def test_check_transition_agrees_with_the_table_and_the_guard(
    source: str, target: str, human: bool
) -> None:
    """Every (from, to, human_in_the_loop) triple against the hand-written DESIGN.md table:
    allowed iff listed; anything else is `InvalidTransition` naming both statuses."""
    allowed = (source, target) in ALLOWED[human]
    assert is_allowed(S(source), S(target), human_in_the_loop=human) is allowed
    if allowed:
        check_transition(S(source), S(target), human_in_the_loop=human)
    else:
        with pytest.raises(InvalidTransition, match=f"from {source} to {target}"):
            check_transition(S(source), S(target), human_in_the_loop=human)


def test_unknown_status_names_are_refused_with_the_known_ones_listed() -> None:
    """A misspelt status is InvalidInput naming the field and the allowed values."""
    assert parse_message_status("APPROVED") is S.APPROVED
    with pytest.raises(InvalidInput, match="expected one of incoming, pending_approval") as info:
        parse_message_status("aproved", field="to_status")
    assert info.value.field == "to_status"


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ({"a": float("nan")}, "not a JSON number"),
        ({"a": {1, 2}}, "not JSON-serialisable"),
        ({"a": (1, 2)}, "not JSON-serialisable"),
        ({1: "x"}, "keys must be strings"),
        ({"a": "nul\x00"}, "NUL"),
        ({"a": object()}, "not JSON-serialisable"),
    ],
)
def test_values_json_would_not_give_back_are_refused(value: Any, complaint: str) -> None:
    """Only values that survive a JSON round trip unchanged are stored."""
    with pytest.raises(InvalidInput, match=complaint):
        json_value(value, field="message_data")


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ({"body": "no id"}, "needs an 'id'"),
        ({"id": ""}, "must not be empty"),
        ({"id": None}, "must be a non-empty string"),
        ({"id": True}, "must be a non-empty string"),
        ({"id": "x" * 257}, "longer than 256"),
        ("not a dict", "must be a dict"),
    ],
)
def test_a_message_needs_a_usable_id(message: Any, complaint: str) -> None:
    """A message without a proper `id` is InvalidInput naming `message_data`."""
    with pytest.raises(InvalidInput, match=complaint) as info:
        approval_message(message)
    assert info.value.field.startswith("message_data")


def test_reserved_keys_are_dropped_so_a_read_message_can_be_added_again() -> None:
    """`status`, `added_at` and `status_changed_at` belong to wastate, not to the payload."""
    message_id, payload = approval_message(
        {"id": 7, "body": "x", "status": "sent", "added_at": "t", "status_changed_at": "t"}
    )
    assert (message_id, payload) == ("7", {"id": 7, "body": "x"})


# -- on the databases -----------------------------------------------------------------------


def test_a_full_lifecycle_counts_every_entry_and_keeps_the_history(manager: StateManager) -> None:
    """add + three moves: one entry counted per status entered, four history rows."""
    assert manager.add_message({"id": "m1", "body": "hi"}, S.INCOMING) is True
    assert manager.move_message("m1", S.INCOMING, S.PENDING_APPROVAL) is True
    assert manager.move_message("m1", S.PENDING_APPROVAL, S.APPROVED) is True
    assert manager.move_message("m1", S.APPROVED, S.SENT) is True
    stats = manager.get_statistics()
    assert [stats[k] for k in ("total_incoming", "total_pending_approval", "total_approved")] == [
        1,
        1,
        1,
    ]
    assert stats["total_sent"] == 1
    assert stats["total_rejected"] == stats["total_failed"] == 0
    assert stats["last_message_received"] is not None
    assert stats["last_message_sent"] is not None
    moves = [(h["from"], h["to"]) for h in manager.get_message_history("m1")]
    assert moves == [
        (None, "incoming"),
        ("incoming", "pending_approval"),
        ("pending_approval", "approved"),
        ("approved", "sent"),
    ]
    assert manager.get_messages(S.SENT) == [manager.get_message("m1")]
    assert manager.get_messages(S.SENT)[0]["body"] == "hi"


def test_a_wrong_from_moves_nothing(manager: StateManager) -> None:
    """Compare-and-set: a move from a status the message is not in returns False, writes
    nothing — no status change, no statistic, no history row."""
    manager.add_message({"id": "m1"}, S.PENDING_APPROVAL)
    before = _state_of(manager)
    assert manager.move_message("m1", S.APPROVED, S.SENT) is False
    assert manager.move_message("absent", S.PENDING_APPROVAL, S.APPROVED) is False
    assert _state_of(manager) == before
    assert len(manager.get_message_history("m1")) == 1


@pytest.mark.parametrize(
    ("source", "target"),
    [(S.INCOMING, S.APPROVED), (S.SENT, S.FAILED), (S.REJECTED, S.APPROVED), (S.INCOMING, S.SENT)],
)
def test_an_illegal_transition_raises_and_changes_nothing(
    manager: StateManager, source: MessageStatus, target: MessageStatus
) -> None:
    """A move the table forbids raises InvalidTransition, even when the message is there."""
    manager.add_message({"id": "m1"}, source)
    before = _state_of(manager)
    with pytest.raises(InvalidTransition):
        manager.move_message("m1", source, target)
    assert _state_of(manager) == before


@pytest.mark.parametrize("target", [S.SENT, S.FAILED])
def test_human_in_the_loop_refuses_skipping_approval(
    manager: StateManager, target: MessageStatus
) -> None:
    """With human_in_the_loop on, pending_approval → sent/failed is refused; off, allowed."""
    manager.add_message({"id": "m1"}, S.PENDING_APPROVAL)
    manager.set_config("human_in_the_loop", True)
    before = _state_of(manager)
    with pytest.raises(InvalidTransition, match="human_in_the_loop"):
        manager.move_message("m1", S.PENDING_APPROVAL, target)
    assert _state_of(manager) == before
    assert manager.move_message("m1", S.PENDING_APPROVAL, S.APPROVED) is True
    assert manager.move_message("m1", S.APPROVED, target) is True
    manager.add_message({"id": "m2"}, S.PENDING_APPROVAL)
    manager.set_config("human_in_the_loop", False)
    assert manager.move_message("m2", S.PENDING_APPROVAL, target) is True


def test_a_failed_message_can_be_retried(manager: StateManager) -> None:
    """failed → approved → sent: the retry is counted as a second approval."""
    manager.add_message({"id": "m1"}, S.APPROVED)
    assert manager.move_message("m1", S.APPROVED, S.FAILED)
    assert manager.move_message("m1", S.FAILED, S.APPROVED)
    assert manager.move_message("m1", S.APPROVED, S.SENT)
    stats = manager.get_statistics()
    assert (stats["total_approved"], stats["total_failed"], stats["total_sent"]) == (2, 1, 1)


def test_adding_an_existing_id_is_an_idempotent_no_op(manager: StateManager) -> None:
    """The same id again — in any status — returns False and changes nothing (a retried
    delivery is counted once)."""
    assert manager.add_message({"id": "m1", "body": "first"}, S.INCOMING) is True
    before = _state_of(manager)
    assert manager.add_message({"id": "m1", "body": "second"}, S.INCOMING) is False
    assert manager.add_message({"id": "m1"}, S.PENDING_APPROVAL) is False
    assert _state_of(manager) == before
    assert manager.get_message("m1")["body"] == "first"  # type: ignore[index]


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.add_message({"body": "no id"}, S.INCOMING),
        lambda m: m.add_message({"id": "x", "when": object()}, S.INCOMING),
        lambda m: m.add_message({"id": "x", "n": float("inf")}, S.INCOMING),
        lambda m: m.add_message({"id": "x"}, "arrived"),
        lambda m: m.move_message("m1", "incoming", "aproved"),
        lambda m: m.move_message("m1", "nowhere", S.APPROVED),
        lambda m: m.get_messages("sending"),
        lambda m: m.get_messages(S.SENT, limit=-1),
        lambda m: m.clear_messages("all"),
        lambda m: m.set_config("", 1),
        lambda m: m.set_config("k", {1, 2}),
        lambda m: m.update_config({"ok": 1, "bad": object()}),
        lambda m: m.update_session_status(True, {"number": object()}),
        lambda m: m.update_session_status("yes"),
    ],
)
def test_bad_input_is_invalid_input_and_writes_nothing(
    manager: StateManager, call: Callable[[StateManager], object]
) -> None:
    """Unknown statuses, missing ids, non-JSON payloads: InvalidInput, state unchanged."""
    manager.add_message({"id": "m1"}, S.INCOMING)
    before = _state_of(manager)
    with pytest.raises(InvalidInput) as info:
        call(manager)
    assert str(info.value)
    assert _state_of(manager) == before


def test_clear_removes_a_bucket_and_keeps_the_statistics(manager: StateManager) -> None:
    """clear_messages(status) empties one bucket; the counters keep what happened."""
    for index in range(3):
        manager.add_message({"id": f"s{index}"}, S.INCOMING)
    manager.add_message({"id": "p"}, S.PENDING_APPROVAL)
    assert manager.clear_messages(S.INCOMING) == 3
    assert manager.get_messages(S.INCOMING) == []
    assert [m["id"] for m in manager.get_messages(S.PENDING_APPROVAL)] == ["p"]
    assert manager.get_statistics()["total_incoming"] == 3
    assert manager.clear_messages() == 1
    assert manager.add_message({"id": "s0"}, S.INCOMING) is True  # the id is free again


def test_reset_statistics_zeroes_every_counter(manager: StateManager) -> None:
    """After a reset the counters count only what happens next."""
    manager.add_message({"id": "m1"}, S.INCOMING)
    manager.move_message("m1", S.INCOMING, S.PENDING_APPROVAL)
    manager.reset_statistics()
    assert manager.get_statistics() == {
        "total_incoming": 0,
        "total_sent": 0,
        "total_failed": 0,
        "total_approved": 0,
        "total_rejected": 0,
        "total_pending_approval": 0,
        "last_message_received": None,
        "last_message_sent": None,
    }
    manager.move_message("m1", S.PENDING_APPROVAL, S.REJECTED)
    assert manager.get_statistics()["total_rejected"] == 1


def test_a_move_is_one_transaction_with_its_statistic(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Rolled back, a move leaves neither the status change nor the statistic behind."""
    store = make_store(database_url)
    with store.unit_of_work(tenant) as uow:
        uow.approvals.add(CLIENT, {"id": "m1"}, S.PENDING_APPROVAL)
    with pytest.raises(RuntimeError), store.unit_of_work(tenant) as uow:
        assert uow.approvals.move(CLIENT, "m1", S.PENDING_APPROVAL, S.APPROVED)
        raise RuntimeError("crash after the move, before the commit")
    with store.unit_of_work(tenant) as uow:
        assert uow.approvals.get(CLIENT, "m1").status is S.PENDING_APPROVAL  # type: ignore[union-attr]
        assert uow.statistics.get(CLIENT).total_approved == 0
        assert len(uow.approvals.history(CLIENT, "m1")) == 1


def test_clients_and_tenants_do_not_see_each_other(database_url: str, tenant: str) -> None:
    """Two clients of one tenant, and one client id in two tenants, are separate states."""
    with (
        StateManager(database_url, "none://", tenant_id=tenant, client_id="a") as a,
        StateManager(database_url, "none://", tenant_id=tenant, client_id="b") as b,
        StateManager(database_url, "none://", tenant_id=tenant + "x", client_id="a") as other,
    ):
        a.add_message({"id": "m1"}, S.INCOMING)
        a.set_config("human_in_the_loop", True)
        assert b.get_messages(S.INCOMING) == other.get_messages(S.INCOMING) == []
        assert b.move_message("m1", S.INCOMING, S.PENDING_APPROVAL) is False
        assert b.get_config("human_in_the_loop") is None
        assert other.get_statistics()["total_incoming"] == 0
        assert b.add_message({"id": "m1"}, S.INCOMING) is True


def test_every_upsert_is_held_by_the_statement_cache() -> None:
    """The precompiled ON CONFLICT statements have cache keys (dialect inserts do not), so the
    hot path never recompiles them."""
    from wastate.repositories import approvals, config, sessions, statistics

    statements = [
        *approvals._ADD.values(),
        *config._UPSERT.values(),
        *statistics._REPLACE.values(),
        *(s for by_status in statistics._INCREMENT.values() for s in by_status.values()),
        *(s for by_dialect in sessions._STATEMENTS.values() for s in by_dialect.values()),
    ]
    assert len(statements) == 2 + 2 + 2 + 12 + 8
    assert all(statement._generate_cache_key() is not None for statement in statements)
