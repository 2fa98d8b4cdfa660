"""The public API says what it means: every wastate type a public method returns is importable
from `wastate`, and the approval-lifecycle status is called `ApprovalStatus`."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import wastate
from wastate import webhooks


def _wastate_classes(annotation: Any) -> set[type]:
    """The wastate-defined classes named anywhere in a type annotation."""
    found: set[type] = set()
    if isinstance(annotation, type) and annotation.__module__.startswith("wastate"):
        found.add(annotation)
    for argument in typing.get_args(annotation):
        found |= _wastate_classes(argument)
    return found


def _returned_types(owner: type | types.ModuleType) -> dict[str, set[type]]:
    returned: dict[str, set[type]] = {}
    for name, member in inspect.getmembers(owner):
        if name.startswith("_"):
            continue
        if isinstance(member, property) and member.fget is not None:
            member = member.fget
        if not callable(member) or isinstance(member, type):
            continue
        if getattr(member, "__module__", "").startswith("wastate") is False:
            continue
        try:
            hints = typing.get_type_hints(member)
        except (NameError, TypeError):
            continue
        classes = _wastate_classes(hints.get("return"))
        if classes:
            returned[f"{getattr(owner, '__name__', owner)}.{name}"] = classes
    return returned


def test_every_type_a_public_method_returns_is_exported() -> None:
    """Walk the public surface (Store, UnitOfWork and each repository it hands out,
    StateManager, wastate.webhooks): each wastate class a method returns is `wastate.<Name>`."""
    owners: list[type | types.ModuleType] = [
        wastate.Store,
        wastate.UnitOfWork,
        wastate.StateManager,
        webhooks,
    ]
    for name in ("mappings", "messages", "sessions", "approvals", "statistics", "config"):
        hints = typing.get_type_hints(getattr(wastate.UnitOfWork, name).fget)
        owners.append(hints["return"])
    owners.append(typing.get_type_hints(wastate.UnitOfWork.api_keys.fget)["return"])
    missing = {
        f"{where} -> {cls.__name__}"
        for owner in owners
        for where, classes in _returned_types(owner).items()
        for cls in classes
        if getattr(wastate, cls.__name__, None) is not cls
    }
    assert missing == set()
    assert set(wastate.__all__) <= set(dir(wastate))


def test_approval_status_is_the_lifecycle_status_and_message_status_its_seed_alias() -> None:
    """`ApprovalStatus` names the lifecycle; seed-004 code using `MessageStatus` keeps working."""
    assert wastate.MessageStatus is wastate.ApprovalStatus
    assert wastate.MessageStatus.INCOMING == "incoming"
    assert {s.value for s in wastate.ApprovalStatus} == {
        "incoming",
        "pending_approval",
        "approved",
        "rejected",
        "sent",
        "failed",
    }
    assert not {s.value for s in wastate.DeliveryStatus} >= {"pending_approval"}
    assert wastate.TransactionAborted is wastate.errors.TransactionAborted
