"""StateManager as a drop-in for the seed: its documents, bucket order, export/backup/import,
the embedded default, and refusing an unmigrated server database."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import wastate
import wastate.repositories.approvals as approvals_module
from wastate.errors import ConfigurationError, InvalidInput, SchemaNotReady
from wastate.state_manager import MessageStatus, StateManager

S = MessageStatus
T0 = datetime(2026, 2, 16, 17, 30, tzinfo=UTC)
BUCKETS = ["incoming", "pending_approval", "approved", "rejected", "sent", "failed"]


class StepClock:
    """A clock that stands still unless the test moves it (ties test the id tie-break)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(seconds=1)


@pytest.fixture
def clock() -> StepClock:
    """A hand-moved clock at T0."""
    return StepClock()


@pytest.fixture
def make_manager(
    database_url: str, tenant: str, clock: StepClock, tmp_path: Path
) -> Iterator[Callable[..., StateManager]]:
    """A factory of managers on each test database, in a fresh tenant, on the step clock."""
    managers: list[StateManager] = []

    def make(**options: Any) -> StateManager:
        options.setdefault("tenant_id", tenant)
        options.setdefault("state_file", tmp_path / "whatsapp_state.json")
        manager = StateManager(database_url, "none://", clock=clock, **options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


@pytest.fixture
def manager(make_manager: Callable[..., StateManager]) -> StateManager:
    """One manager from `make_manager`."""
    return make_manager()


def _populate(manager: StateManager, clock: StepClock) -> None:
    manager.update_session_status(True, {"number": "923332455342", "name": "Mahnoor"})
    manager.update_config({"human_in_the_loop": False, "watcher": {"poll": 10, "on": True}})
    for index in range(5):
        manager.add_message({"id": f"in{index}", "body": f"hello {index}"}, S.INCOMING)
    clock.tick()
    manager.add_message({"id": "r1", "recipient": "1", "body": "ünïcode ✓"}, S.PENDING_APPROVAL)
    manager.move_message("in0", S.INCOMING, S.PENDING_APPROVAL)
    manager.move_message("in1", S.INCOMING, S.PENDING_APPROVAL)
    clock.tick()
    manager.move_message("in1", S.PENDING_APPROVAL, S.APPROVED)
    manager.move_message("r1", S.PENDING_APPROVAL, S.REJECTED)
    manager.add_message({"id": "x", "nested": {"a": [1, 2, {"b": None}]}}, S.APPROVED)
    manager.move_message("x", S.APPROVED, S.FAILED)
    manager.move_message("in1", S.APPROVED, S.SENT)


# -- documents ------------------------------------------------------------------------------


def test_get_full_state_is_the_seed_document(manager: StateManager, clock: StepClock) -> None:
    """session, account_info, messages (six buckets), statistics and config, seed-shaped."""
    _populate(manager, clock)
    state = manager.get_full_state()
    assert list(state) == ["session", "account_info", "messages", "statistics", "config"]
    assert list(state["messages"]) == BUCKETS
    assert set(state["session"]) >= {
        "authenticated",
        "last_authenticated",
        "session_valid",
        "session_path",
        "requires_qr",
        "last_validation",
        "validation_interval_minutes",
    }
    assert set(state["statistics"]) >= {
        "total_incoming",
        "total_sent",
        "total_failed",
        "total_approved",
        "total_rejected",
        "last_message_received",
        "last_message_sent",
    }
    assert state["account_info"]["name"] == "Mahnoor"
    assert state["config"] == {"human_in_the_loop": False, "watcher": {"poll": 10, "on": True}}
    ids = {bucket: [m["id"] for m in state["messages"][bucket]] for bucket in BUCKETS}
    assert ids == {
        "incoming": ["in2", "in3", "in4"],
        "pending_approval": ["in0"],
        "approved": [],
        "rejected": ["r1"],
        "sent": ["in1"],
        "failed": ["x"],
    }
    sent = state["messages"]["sent"][0]
    assert sent == {
        "id": "in1",
        "body": "hello 1",
        "status": "sent",
        "added_at": T0.isoformat(),
        "status_changed_at": (T0 + timedelta(seconds=2)).isoformat(),
    }
    assert state["statistics"]["total_incoming"] == 5
    assert json.loads(json.dumps(state)) == state


def test_buckets_are_in_order_of_entry_and_limit_keeps_the_newest(
    manager: StateManager, clock: StepClock
) -> None:
    """A message moved into a bucket goes to its end, as in the seed's lists; `limit=n` gives
    the newest n, still oldest first."""
    for index in range(4):
        manager.add_message({"id": f"m{index}"}, S.PENDING_APPROVAL)
    clock.tick()
    manager.move_message("m0", S.PENDING_APPROVAL, S.APPROVED)
    manager.add_message({"id": "late"}, S.APPROVED)
    clock.tick()
    manager.move_message("m2", S.PENDING_APPROVAL, S.APPROVED)
    assert [m["id"] for m in manager.get_messages(S.APPROVED)] == ["m0", "late", "m2"]
    assert [m["id"] for m in manager.get_messages(S.APPROVED, limit=2)] == ["late", "m2"]
    assert [m["id"] for m in manager.get_messages("pending_approval", 10)] == ["m1", "m3"]
    assert manager.get_messages(S.APPROVED, limit=0) == []


# -- export, backup, import -----------------------------------------------------------------


def test_export_import_export_is_lossless(
    make_manager: Callable[..., StateManager], clock: StepClock, tmp_path: Path
) -> None:
    """Exported, imported into another client, exported again: the same bytes, the same state."""
    source = make_manager(client_id="source")
    _populate(source, clock)
    first = Path(source.export_state(tmp_path / "one.json"))
    target = make_manager(client_id="target")
    assert target.import_state(first) == 7
    second = Path(target.export_state(tmp_path / "two.json"))
    assert first.read_bytes() == second.read_bytes()
    assert target.get_full_state() == source.get_full_state()
    assert json.loads(first.read_text("utf-8")) == source.get_full_state()


def test_import_is_idempotent_and_replaces_the_state(
    make_manager: Callable[..., StateManager], clock: StepClock, tmp_path: Path
) -> None:
    """Importing twice is importing once; whatever the client held before is replaced."""
    source = make_manager(client_id="source")
    _populate(source, clock)
    path = source.export_state(tmp_path / "state.json")
    target = make_manager(client_id="target")
    target.add_message({"id": "stale"}, S.INCOMING)
    target.set_config("stale", 1)
    target.import_state(path)
    once = target.get_full_state()
    target.import_state(path)
    assert target.get_full_state() == once == source.get_full_state()
    assert target.get_message("stale") is None


def test_export_streams_in_batches_across_ties(
    manager: StateManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With batches of 3 and 10 messages entering at the same instant, keyset pagination still
    exports each message exactly once, in order."""
    monkeypatch.setattr(approvals_module, "EXPORT_BATCH_SIZE", 3)
    for index in range(10):
        manager.add_message({"id": f"m{index:02d}"}, S.INCOMING)
    document = json.loads(Path(manager.export_state(tmp_path / "s.json")).read_text("utf-8"))
    assert [m["id"] for m in document["messages"]["incoming"]] == [f"m{i:02d}" for i in range(10)]


def test_the_default_export_path_is_the_state_file(manager: StateManager, tmp_path: Path) -> None:
    """export_state() with no path writes state_file."""
    assert manager.export_state() == str(tmp_path / "whatsapp_state.json")
    assert json.loads((tmp_path / "whatsapp_state.json").read_text("utf-8"))["messages"]


def test_a_crash_during_export_leaves_the_old_file_whole(
    manager: StateManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The file is replaced only when the new one is complete; no temp file is left behind."""
    target = tmp_path / "state.json"
    manager.add_message({"id": "m1"}, S.INCOMING)
    manager.export_state(target)
    old = target.read_bytes()
    manager.add_message({"id": "m2"}, S.INCOMING)

    def crash(*_args: object, **_kwargs: object) -> Iterator[Any]:
        yield from ()
        raise OSError("disk full")

    monkeypatch.setattr(approvals_module.ApprovalRepository, "iter_bucket", crash)
    with pytest.raises(OSError, match="disk full"):
        manager.export_state(target)
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_backups_are_named_like_the_seeds_and_never_overwrite(
    make_manager: Callable[..., StateManager], tmp_path: Path
) -> None:
    """whatsapp_state_backup_YYYYMMDD_HHMMSS.json in backup_dir; a second one in the same
    second gets its own name."""
    manager = make_manager(backup_dir=tmp_path / "backups")
    manager.add_message({"id": "m1"}, S.INCOMING)
    first = Path(manager.backup_state())
    second = Path(manager.backup_state())
    assert first.name == "whatsapp_state_backup_20260216_173000.json"
    assert first.parent == tmp_path / "backups"
    assert second != first
    assert re.fullmatch(r"whatsapp_state_backup_20260216_173000_2\.json", second.name)
    assert json.loads(first.read_text("utf-8")) == json.loads(second.read_text("utf-8"))


def test_a_seed_state_file_imports(manager: StateManager, tmp_path: Path) -> None:
    """The seed's own file (naive local times, no config, no wastate keys) loads as written."""
    seed = {
        "session": {
            "authenticated": True,
            "last_authenticated": "2024-02-16T17:30:00",
            "session_valid": True,
            "session_path": ".wwebjs_auth",
            "requires_qr": False,
            "last_validation": "2024-02-16T17:30:00",
            "validation_interval_minutes": 30,
        },
        "account_info": {
            "number": "923332455342",
            "name": "Mahnoor",
            "platform": "iphone",
            "last_updated": "2024-02-16T17:30:00",
        },
        "messages": {
            "incoming": [{"id": "msg123", "from": "1234567890@c.us", "body": "Hello!"}],
            "pending_approval": [{"id": "msg456", "recipient": "92", "body": "Hi"}],
            "approved": [],
            "rejected": [],
            "sent": [],
            "failed": [],
        },
        "statistics": {
            "total_incoming": 1,
            "total_sent": 0,
            "total_failed": 0,
            "total_approved": 0,
            "total_rejected": 0,
            "last_message_received": None,
            "last_message_sent": None,
        },
    }
    path = tmp_path / "whatsapp_state.json"
    path.write_text(json.dumps(seed), "utf-8")
    assert manager.import_state(path) == 2
    info = manager.get_session_info()
    assert info["last_validation"] == "2024-02-16T17:30:00+00:00"
    assert info["authenticated"] is True
    assert manager.get_statistics()["total_incoming"] == 1
    assert manager.get_messages(S.INCOMING)[0]["body"] == "Hello!"
    assert manager.move_message("msg456", S.PENDING_APPROVAL, S.APPROVED)
    assert manager.get_full_state()["account_info"]["platform"] == "iphone"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        ('["a", "list"]', "not a state file"),
        ('{"name": "package.json", "version": "1.0"}', "not a state file"),
        ('{"session": {}, "messages": {"archived": []}}', "unknown message status 'archived'"),
        ('{"session": {}, "messages": {"incoming": [{"body": "x"}]}}', "needs an 'id'"),
        ('{"session": {}, "messages": {"incoming": {"id": "x"}}}', "must be a list"),
        (
            '{"session": {}, "messages": {"incoming": [{"id": "a"}], "sent": [{"id": "a"}]}}',
            "appears twice",
        ),
        ('{"session": {}, "messages": {"incoming": [{"id": "a", "v": NaN}]}}', "JSON number"),
        ('{"session": {"authenticated": "yes"}, "messages": {}}', "true or false"),
        ('{"session": {"last_validation": "yesterday"}, "messages": {}}', "ISO 8601"),
        ('{"session": {}, "messages": {}, "statistics": {"total_sent": -1}}', "non-negative"),
        ('{"session": {}, "messages": {}, "config": []}', "JSON object"),
        ('{"session": {"validation_interval_minutes": 0}, "messages": {}}', "positive"),
    ],
)
def test_a_corrupt_or_foreign_file_is_refused_and_nothing_is_written(
    manager: StateManager, tmp_path: Path, content: str | bytes, complaint: str
) -> None:
    """InvalidInput names what is wrong; the client's state is untouched."""
    manager.add_message({"id": "keep"}, S.INCOMING)
    manager.set_config("keep", True)
    before = manager.get_full_state()
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    with pytest.raises(InvalidInput, match=complaint):
        manager.import_state(path)
    assert manager.get_full_state() == before


def test_a_missing_import_file_is_invalid_input(manager: StateManager, tmp_path: Path) -> None:
    """A path that cannot be read is named in the error."""
    with pytest.raises(InvalidInput, match=r"nowhere\.json"):
        manager.import_state(tmp_path / "nowhere.json")


# -- construction ---------------------------------------------------------------------------


def test_with_no_arguments_it_uses_a_migrated_sqlite_file_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StateManager() works out of the box: ./wastate.db, migrated on first use, kept."""
    monkeypatch.chdir(tmp_path)
    for variable in [v for v in os.environ if v.startswith(("WASTATE_", "DB_", "REDIS_"))]:
        monkeypatch.delenv(variable)
    with StateManager() as manager:
        manager.add_message({"id": "m1"}, S.INCOMING)
    assert (tmp_path / "wastate.db").is_file()
    with StateManager() as again:
        assert [m["id"] for m in again.get_messages(S.INCOMING)] == ["m1"]


def test_an_unmigrated_postgresql_database_is_refused(
    make_postgres_database: Callable[[], str],
) -> None:
    """On a server database the operator migrates: SchemaNotReady says how."""
    url = make_postgres_database()
    with pytest.raises(SchemaNotReady, match="wastate migrate"):
        StateManager(url, "none://")


def test_bad_tenant_or_client_ids_are_refused(database_url: str) -> None:
    """tenant_id and client_id follow the id rule; the error names which one."""
    with pytest.raises(InvalidInput, match="client_id"):
        StateManager(database_url, "none://", client_id="")
    with pytest.raises(InvalidInput, match="tenant_id"):
        StateManager(database_url, "none://", tenant_id="bad tenant")


def test_close_is_idempotent_and_the_manager_is_a_context_manager(database_url: str) -> None:
    """`with StateManager(...)` closes the store; closing twice is harmless."""
    with StateManager(database_url, "none://") as manager:
        assert manager.get_statistics()["total_incoming"] >= 0
    manager.close()


def test_managers_share_one_store_and_leave_it_open(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str, tmp_path: Path
) -> None:
    """`StateManager(store=...)`: many clients, one pool and cache; closing a manager leaves
    the shared store working for the others (its owner closes it)."""
    store = make_store(database_url)
    managers = [
        StateManager(
            store=store,
            tenant_id=tenant,
            client_id=f"client-{n}",
            state_file=tmp_path / f"state-{n}.json",
        )
        for n in range(3)
    ]
    assert all(manager.store is store for manager in managers)
    for n, manager in enumerate(managers):
        manager.add_message({"id": f"m{n}", "text": "hi"}, S.INCOMING)
    managers[0].close()
    managers[0].close()  # idempotent, still not closing the shared store
    for n, manager in enumerate(managers[1:], start=1):
        assert [m["id"] for m in manager.get_messages(S.INCOMING)] == [f"m{n}"]
    with store.unit_of_work(tenant) as uow:  # the store itself is still open
        assert uow.approvals.get("client-0", "m0") is not None


@pytest.mark.parametrize(
    "extra",
    [{"database_url": "sqlite://"}, {"cache_url": "none://"}, {"clock": lambda: T0}],
)
def test_a_shared_store_refuses_its_own_database_cache_or_clock(
    make_store: Callable[..., wastate.Store], database_url: str, extra: dict[str, Any]
) -> None:
    """The shared store brings its database, cache and clock: a second one given is an error."""
    store = make_store(database_url)
    with pytest.raises(ConfigurationError, match="store"):
        StateManager(store=store, **extra)
    with store.unit_of_work("default") as uow:  # refusing did not close the shared store
        uow.sessions.get("default")
