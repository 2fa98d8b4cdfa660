"""A hypothesis state machine drives StateManager against a plain-Python model of the truth.

Rules: add, move (legal, illegal, wrong from), clear, reset_statistics, config, session updates,
clock moves, bad input, export + import. After every step the invariants compare the whole
state: each message in exactly one bucket, in order of entry; statistics equal to the entries
into each status since the last reset; session validity and QR need as the rule says at the
model's clock. An illegal move must raise and change nothing; export → import must reproduce the
state exactly.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from wastate.domain.lifecycle import STATISTIC_FOR_STATUS, MessageStatus, is_allowed
from wastate.errors import InvalidInput, InvalidTransition
from wastate.state_manager import StateManager

S = MessageStatus
STATUSES = st.sampled_from(list(S))
IDS = st.sampled_from([f"m{i}" for i in range(6)])
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
NOT_JSON = st.sampled_from([float("nan"), {1, 2}, (1, 2), object(), {3: "int key"}, "nul\x00"])


class TickingClock:
    """Moves on by one microsecond per reading, so every write has its own instant (bucket
    order is order of entry); `advance` jumps whole minutes for the session rule."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)


def make_machine(database_url: str, folder: Path) -> type[RuleBasedStateMachine]:
    """The machine class, closed over the database it runs on."""

    class LifecycleMachine(RuleBasedStateMachine):
        """StateManager versus the model."""

        def __init__(self) -> None:
            super().__init__()
            self.clock = TickingClock()
            self.manager = StateManager(
                database_url,
                "none://",
                tenant_id=f"hm-{uuid.uuid4().hex[:12]}",
                clock=self.clock,
                state_file=folder / f"{uuid.uuid4().hex}.json",
            )
            self.bucket: dict[S, list[str]] = {status: [] for status in S}
            self.payload: dict[str, Any] = {}
            self.stats: Counter[S] = Counter()
            self.config: dict[str, Any] = {}
            self.authenticated = False
            self.session_valid = False
            self.minutes_since_validation: int | None = None

        def teardown(self) -> None:
            self.manager.close()

        @initialize()
        def start_empty(self) -> None:
            assert self.manager.get_messages(S.INCOMING) == []

        # -- model helpers ----------------------------------------------------------------

        def status_of(self, message_id: str) -> S | None:
            for status, ids in self.bucket.items():
                if message_id in ids:
                    return status
            return None

        @property
        def human(self) -> bool:
            return self.config.get("human_in_the_loop") is True

        # -- rules ------------------------------------------------------------------------

        @rule(message_id=IDS, status=STATUSES, body=JSON)
        def add(self, message_id: str, status: S, body: Any) -> None:
            added = self.manager.add_message({"id": message_id, "body": body}, status)
            assert added is (self.status_of(message_id) is None)
            if added:
                self.bucket[status].append(message_id)
                self.payload[message_id] = body
                self.stats[status] += 1

        # (`target` is a reserved argument of `rule`, hence `to`.)
        @rule(message_id=IDS, to=STATUSES)
        def move_from_where_it_is(self, message_id: str, to: S) -> None:
            source = self.status_of(message_id)
            if source is None:
                return
            self._move(message_id, source, to)

        @rule(message_id=IDS, source=STATUSES, to=STATUSES)
        def move_from_anywhere(self, message_id: str, source: S, to: S) -> None:
            self._move(message_id, source, to)

        def _move(self, message_id: str, source: S, target: S) -> None:
            if not is_allowed(source, target, human_in_the_loop=self.human):
                try:
                    self.manager.move_message(message_id, source, target)
                except InvalidTransition:
                    return
                raise AssertionError(f"illegal move {source} -> {target} succeeded")
            moved = self.manager.move_message(message_id, source, target)
            assert moved is (self.status_of(message_id) is source)
            if moved:
                self.bucket[source].remove(message_id)
                self.bucket[target].append(message_id)
                self.stats[target] += 1

        @rule(message_id=IDS, bad=NOT_JSON)
        def add_something_not_json(self, message_id: str, bad: Any) -> None:
            try:
                self.manager.add_message({"id": message_id, "body": bad}, S.INCOMING)
            except InvalidInput:
                return
            raise AssertionError("a non-JSON payload was accepted")

        @rule(status=st.none() | STATUSES)
        def clear(self, status: S | None) -> None:
            cleared = self.manager.clear_messages(status)
            targets = list(S) if status is None else [status]
            assert cleared == sum(len(self.bucket[s]) for s in targets)
            for s in targets:
                self.bucket[s] = []

        @rule()
        def reset_statistics(self) -> None:
            self.manager.reset_statistics()
            self.stats.clear()

        @rule(on=st.booleans())
        def set_human_in_the_loop(self, on: bool) -> None:
            self.manager.set_config("human_in_the_loop", on)
            self.config["human_in_the_loop"] = on

        @rule(updates=st.dictionaries(st.sampled_from(["a", "b", "c"]), JSON, max_size=2))
        def update_config(self, updates: dict[str, Any]) -> None:
            self.manager.update_config(updates)
            self.config.update(updates)

        @rule(authenticated=st.booleans())
        def update_session(self, authenticated: bool) -> None:
            self.manager.update_session_status(authenticated, {"name": "x"})
            self.authenticated = self.session_valid = authenticated
            self.minutes_since_validation = 0

        @rule()
        def invalidate_session(self) -> None:
            self.manager.mark_session_invalid("test")
            self.session_valid = False

        @rule(minutes=st.integers(0, 40))
        def time_passes(self, minutes: int) -> None:
            self.clock.advance(minutes)
            if self.minutes_since_validation is not None:
                self.minutes_since_validation += minutes

        @rule()
        def export_then_import(self) -> None:
            before = self.manager.get_full_state()
            path = self.manager.export_state()
            self.manager.import_state(path)
            assert self.manager.get_full_state() == before
            self.manager.import_state(path)  # idempotent
            assert self.manager.export_state(folder / "again.json")
            assert Path(path).read_bytes() == (folder / "again.json").read_bytes()

        # -- invariants -------------------------------------------------------------------

        @invariant()
        def state_matches_the_model(self) -> None:
            state = self.manager.get_full_state()
            seen: list[str] = []
            for status in S:
                messages = state["messages"][status.value]
                ids = [m["id"] for m in messages]
                assert ids == self.bucket[status], (status, ids, self.bucket[status])
                assert all(m["status"] == status.value for m in messages)
                assert [m["body"] for m in messages] == [self.payload[i] for i in ids]
                seen += ids
            assert len(seen) == len(set(seen)), "a message is in two buckets"
            for status, field in STATISTIC_FOR_STATUS.items():
                assert state["statistics"][field] == self.stats[status], field
            assert state["config"] == self.config

        @invariant()
        def session_follows_the_rule(self) -> None:
            fresh = self.minutes_since_validation is not None and self.minutes_since_validation < 30
            expected_valid = self.authenticated and self.session_valid and fresh
            assert self.manager.is_session_valid() is expected_valid
            expected_qr = not (self.authenticated and self.session_valid)
            assert self.manager.requires_qr_scan() is expected_qr

    return LifecycleMachine


@pytest.mark.slow
def test_state_manager_matches_the_model(database_url: str, tmp_path: Path) -> None:
    """Any sequence of operations leaves the database in the model's state."""
    machine = make_machine(database_url, tmp_path)
    run_state_machine_as_test(
        machine, settings=settings(max_examples=30, stateful_step_count=30, deadline=None)
    )
