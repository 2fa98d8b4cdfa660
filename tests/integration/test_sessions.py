"""Session records: the validity rule at an injected clock, QR only when really needed, and the
seed's session/account documents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from helpers import FakeClock

from wastate.domain.sessions import ClientSessionState, requires_qr_scan, session_is_valid
from wastate.errors import InvalidInput
from wastate.state_manager import StateManager

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at T0."""
    return FakeClock(T0)


@pytest.fixture
def manager(database_url: str, tenant: str, clock: FakeClock) -> Iterator[StateManager]:
    """A StateManager on each test database, in a fresh tenant, on the fake clock."""
    with StateManager(database_url, "none://", tenant_id=tenant, clock=clock) as manager:
        yield manager


# -- the rule -------------------------------------------------------------------------------


def _session(**fields: object) -> ClientSessionState:
    return ClientSessionState.model_validate({"client_id": "c", **fields})


def test_no_record_is_an_unauthenticated_session() -> None:
    """A client that never authenticated is not valid and needs a QR scan."""
    assert session_is_valid(None, T0) is False
    assert requires_qr_scan(None) is True


@pytest.mark.parametrize(
    ("fields", "age_minutes", "valid", "qr"),
    [
        ({"authenticated": True, "session_valid": True}, 0, True, False),
        ({"authenticated": True, "session_valid": True}, 29.99, True, False),
        ({"authenticated": True, "session_valid": True}, 30, False, False),
        ({"authenticated": True, "session_valid": False}, 0, False, True),
        ({"authenticated": False, "session_valid": True}, 0, False, True),
        ({"authenticated": False, "session_valid": False}, 0, False, True),
        (
            {"authenticated": True, "session_valid": True, "validation_interval_minutes": 5},
            6,
            False,
            False,
        ),
    ],
)
def test_validity_and_qr_follow_the_rule(
    fields: dict[str, object], age_minutes: float, valid: bool, qr: bool
) -> None:
    """Valid iff authenticated, not invalid, validated within the interval; QR iff not
    authenticated or invalid — a stale validation needs a re-check, not a QR scan."""
    session = _session(last_validation=T0, **fields)
    now = T0 + timedelta(minutes=age_minutes)
    assert session_is_valid(session, now) is valid
    assert requires_qr_scan(session) is qr


def test_an_authenticated_session_never_validated_is_not_valid() -> None:
    """Without a validation time there is nothing to be recent."""
    assert not session_is_valid(_session(authenticated=True, session_valid=True), T0)


# -- the manager ----------------------------------------------------------------------------


def test_a_new_client_needs_a_qr_scan(manager: StateManager) -> None:
    """Before any authentication: not valid, QR required, the seed's default documents."""
    assert manager.is_session_valid() is False
    assert manager.requires_qr_scan() is True
    info = manager.get_session_info()
    assert info == {
        "authenticated": False,
        "last_authenticated": None,
        "session_valid": False,
        "session_path": ".wwebjs_auth",
        "requires_qr": True,
        "last_validation": None,
        "validation_interval_minutes": 30,
        "invalid_reason": None,
        "invalidated_at": None,
    }
    assert manager.get_full_state()["account_info"] == {
        "number": None,
        "name": None,
        "platform": None,
        "last_updated": None,
    }


def test_authentication_makes_the_session_valid_until_the_interval_passes(
    manager: StateManager, clock: FakeClock
) -> None:
    """Valid right after authenticating; stale after 30 minutes (a re-check, not a QR);
    valid again after the next update_session_status."""
    manager.update_session_status(
        authenticated=True,
        account_info={"number": "923332455342", "name": "Mahnoor", "platform": "iphone"},
    )
    assert manager.is_session_valid()
    assert not manager.requires_qr_scan()
    info = manager.get_session_info()
    assert info["last_authenticated"] == info["last_validation"] == T0.isoformat()
    assert manager.get_full_state()["account_info"] == {
        "number": "923332455342",
        "name": "Mahnoor",
        "platform": "iphone",
        "last_updated": T0.isoformat(),
    }
    clock.advance(minutes=29)
    assert manager.is_session_valid()
    clock.advance(minutes=1)
    assert not manager.is_session_valid()
    assert not manager.requires_qr_scan()
    manager.update_session_status(authenticated=True)
    assert manager.is_session_valid()
    info = manager.get_session_info()
    assert info["last_validation"] == clock.now.isoformat()
    assert info["last_authenticated"] == clock.now.isoformat()
    # No new account info: the stored one (and its time) stays.
    assert manager.get_full_state()["account_info"]["last_updated"] == T0.isoformat()


def test_marking_invalid_forces_a_qr_scan_until_reauthentication(
    manager: StateManager, clock: FakeClock
) -> None:
    """mark_session_invalid: not valid, QR required, reason kept; authentication clears it."""
    manager.update_session_status(True, {"number": "1"})
    clock.advance(seconds=5)
    manager.mark_session_invalid(reason="Connection lost")
    assert not manager.is_session_valid()
    assert manager.requires_qr_scan()
    info = manager.get_session_info()
    assert info["session_valid"] is False
    assert info["authenticated"] is True
    assert info["invalid_reason"] == "Connection lost"
    assert info["invalidated_at"] == clock.now.isoformat()
    manager.update_session_status(True)
    assert manager.is_session_valid()
    assert manager.get_session_info()["invalid_reason"] is None


def test_an_unauthenticated_report_keeps_the_last_authentication_time(
    manager: StateManager, clock: FakeClock
) -> None:
    """update_session_status(False): QR required; last_authenticated stays the real one."""
    manager.update_session_status(True)
    clock.advance(minutes=1)
    manager.update_session_status(False)
    assert manager.requires_qr_scan()
    assert not manager.is_session_valid()
    assert manager.get_session_info()["last_authenticated"] == T0.isoformat()


def test_the_validation_interval_is_per_client(manager: StateManager, clock: FakeClock) -> None:
    """A shorter interval makes the same validation stale sooner."""
    manager.update_session_status(True)
    manager.set_validation_interval(5)
    clock.advance(minutes=5)
    assert not manager.is_session_valid()
    with pytest.raises(InvalidInput, match="positive integer"):
        manager.set_validation_interval(0)


def test_a_session_survives_a_restart(database_url: str, tenant: str, clock: FakeClock) -> None:
    """A new manager (a restarted process) sees the stored session: no QR scan needed."""
    with StateManager(database_url, "none://", tenant_id=tenant, clock=clock) as first:
        first.update_session_status(True)
    with StateManager(database_url, "none://", tenant_id=tenant, clock=clock) as second:
        assert second.is_session_valid()
        assert not second.requires_qr_scan()


def test_sessions_are_per_client(database_url: str, tenant: str, clock: FakeClock) -> None:
    """One tenant, two clients: authenticating one does not authenticate the other."""
    with (
        StateManager(database_url, "none://", tenant_id=tenant, client_id="a", clock=clock) as a,
        StateManager(database_url, "none://", tenant_id=tenant, client_id="b", clock=clock) as b,
    ):
        a.update_session_status(True)
        assert a.is_session_valid()
        assert not b.is_session_valid()
        b.mark_session_invalid("x")
        assert a.is_session_valid()
