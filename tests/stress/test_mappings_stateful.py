"""A hypothesis state machine over the mapping repository: the same operations run in four
lanes — no cache, memory cache with L1, Redis with L1, Redis without L1 — against a plain-Python
model, with commits, rollbacks, FLUSHDB, a paused (unreachable) Redis, caught conflicts (the unit
of work goes on and commits later) and, on PostgreSQL, connections killed at COMMIT (the outcome
is unknown to the caller) mixed in.

Checked after every step: each lane answers exactly what the model says (identity fields:
conversation id, wa_id, status, contact name, communication id), so all lanes agree; forward and
reverse lookups agree; at most one active mapping per wa_id; and no cache layer holds anything
but committed truth (never a rolled-back mapping).
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import FakeClock, RedisServer
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import wastate
from wastate.domain.mappings import ConversationMapping
from wastate.errors import Conflict, ServiceUnavailable
from wastate.migrations import migrate

pytestmark = pytest.mark.slow

# Three users, several spellings each, and a business-scoped id.
USERS = {
    "+919876543210": ["+919876543210", "919876543210", "919876543210@c.us"],
    "+15550001111": ["+15550001111", "15550001111@s.whatsapp.net"],
    "US.13491208655302741918": ["US.13491208655302741918"],
}
SPELLINGS = [spelling for spellings in USERS.values() for spelling in spellings]
CANONICAL = {s: key for key, spellings in USERS.items() for s in spellings}
NAMES = [None, "Asha", "  Asha ", "Ravi Kumar"]
CORRELATED_IDS = ["conv-A", "conv-B", "conv-C"]
COMMUNICATION_IDS = [None, "comm-1", "comm-2"]


@dataclasses.dataclass
class Record:
    """The model's mapping: identity fields and the times expiry depends on."""

    wa_id: str
    conversation: str  # a symbol: "g<n>" for generated ids, the id itself when correlated
    status: str
    contact_name: str | None
    communication_id: str | None
    correlated: bool
    created_at: datetime
    closed_at: datetime | None = None

    def identity(self) -> tuple[Any, ...]:
        return (
            self.wa_id,
            self.conversation,
            self.status,
            self.contact_name,
            self.communication_id,
        )


@dataclasses.dataclass
class Lane:
    name: str
    store: wastate.Store
    tenant: str = ""
    uow: Any = None
    symbols: dict[str, str] = dataclasses.field(default_factory=dict)  # real id -> symbol
    reals: dict[str, str] = dataclasses.field(default_factory=dict)  # symbol -> real id


def _normalise(name: str | None) -> str | None:
    return None if name is None else (" ".join(name.split()) or None)


def make_machine(
    lanes: list[Lane],
    clock: FakeClock,
    server: RedisServer,
    kill: Callable[[int], None] | None = None,
) -> type[RuleBasedStateMachine]:
    admin = server.client()

    class MappingMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.committed: list[Record] = []
            self.pending: list[Record] = []
            self.generated = 0
            self.paused = False
            clock.now += timedelta(days=1)
            for lane in lanes:
                lane.tenant = f"sm-{uuid.uuid4().hex[:12]}"
                lane.uow = lane.store.unit_of_work(lane.tenant)
                lane.symbols.clear()
                lane.reals.clear()

        # -- model helpers ----------------------------------------------------------------------

        def active(self, wa_id: str) -> Record | None:
            found = [r for r in self.pending if r.wa_id == wa_id and r.status == "active"]
            assert len(found) <= 1, "the model itself broke one-active-per-wa_id"
            return found[0] if found else None

        def by_symbol(self, symbol: str) -> Record | None:
            return next((r for r in self.pending if r.conversation == symbol), None)

        def write(self) -> None:
            # Copy-on-write: records in `committed` are never mutated in place.
            self.pending = [dataclasses.replace(r) for r in self.pending]

        def seen(self, lane: Lane, mapping: ConversationMapping | None) -> tuple[Any, ...] | None:
            if mapping is None:
                return None
            assert mapping.tenant_id == lane.tenant
            symbol = lane.symbols.get(mapping.conversation_id, mapping.conversation_id)
            return (
                mapping.wa_id,
                symbol,
                mapping.status.value,
                mapping.contact_name,
                mapping.communication_id,
            )

        def learn(self, lane: Lane, mapping: ConversationMapping, symbol: str) -> None:
            real = mapping.conversation_id
            if symbol.startswith("g"):
                assert real not in lane.symbols, "a generated conversation id was reused"
                lane.symbols[real] = symbol
            lane.reals[symbol] = real

        def each(self, call: Callable[[Lane], Any]) -> list[tuple[Lane, Any]]:
            """Run `call` in every lane; all must raise Conflict, or none."""
            outcomes: list[tuple[Lane, Any]] = []
            for lane in lanes:
                try:
                    outcomes.append((lane, call(lane)))
                except Conflict as exc:
                    outcomes.append((lane, exc))
            conflicts = {isinstance(result, Conflict) for _, result in outcomes}
            assert len(conflicts) == 1, f"lanes disagree about a conflict: {outcomes}"
            return outcomes

        def conflicted(self, outcomes: list[tuple[Lane, Any]]) -> bool:
            # A caught Conflict changes nothing and leaves the unit of work usable: the model's
            # pending writes stay, to be committed or rolled back by later steps.
            return isinstance(outcomes[0][1], Conflict)

        # -- rules ------------------------------------------------------------------------------

        @rule(spelling=st.sampled_from(SPELLINGS), name=st.sampled_from(NAMES))
        def get_or_create(self, spelling: str, name: str | None) -> None:
            key = CANONICAL[spelling]
            outcomes = self.each(
                lambda lane: lane.uow.mappings.get_or_create(spelling, contact_name=name)
            )
            current = self.active(key)
            if current is None:
                self.write()
                self.generated += 1
                current = Record(
                    key, f"g{self.generated}", "active", _normalise(name), None, False, clock.now
                )
                self.pending.append(current)
                for lane, mapping in outcomes:
                    self.learn(lane, mapping, current.conversation)
            elif _normalise(name) is not None and current.contact_name != _normalise(name):
                self.write()
                current = self.active(key)
                assert current is not None
                current.contact_name = _normalise(name)
            for lane, mapping in outcomes:
                assert self.seen(lane, mapping) == current.identity(), lane.name

        @rule(spelling=st.sampled_from(SPELLINGS))
        def by_wa_id(self, spelling: str) -> None:
            expected = self.active(CANONICAL[spelling])
            for lane in lanes:
                found = lane.uow.mappings.by_wa_id(spelling)
                assert self.seen(lane, found) == (expected and expected.identity()), lane.name
                if found is not None:  # forward and reverse agree
                    back = lane.uow.mappings.by_conversation(found.conversation_id)
                    assert self.seen(lane, back) == self.seen(lane, found), lane.name

        @rule(symbol=st.sampled_from(["g1", "g2", "g3", "g4", *CORRELATED_IDS, "unknown"]))
        def by_conversation(self, symbol: str) -> None:
            expected = self.by_symbol(symbol)
            for lane in lanes:
                real = lane.reals.get(symbol, symbol)
                found = lane.uow.mappings.by_conversation(real)
                assert self.seen(lane, found) == (expected and expected.identity()), lane.name
                if found is not None and found.status.value == "active":
                    forward = lane.uow.mappings.by_wa_id(found.wa_id)
                    assert self.seen(lane, forward) == self.seen(lane, found), lane.name

        @rule(
            spelling=st.sampled_from(SPELLINGS),
            conversation=st.sampled_from(CORRELATED_IDS),
            communication=st.sampled_from(COMMUNICATION_IDS),
        )
        def correlate(self, spelling: str, conversation: str, communication: str | None) -> None:
            key = CANONICAL[spelling]
            outcomes = self.each(
                lambda lane: lane.uow.mappings.correlate(spelling, conversation, communication)
            )
            current = self.active(key)
            owner = self.by_symbol(conversation)
            expect_conflict = False
            if current is None:
                expect_conflict = owner is not None
            elif not current.correlated:
                expect_conflict = owner is not None and owner is not current
            elif current.conversation != conversation or (
                communication is not None
                and current.communication_id
                not in (
                    None,
                    communication,
                )
            ):
                expect_conflict = True
            assert isinstance(outcomes[0][1], Conflict) == expect_conflict
            if self.conflicted(outcomes):
                return
            self.write()
            current = self.active(key)
            if current is None:
                current = Record(key, conversation, "active", None, communication, True, clock.now)
                self.pending.append(current)
            elif not current.correlated:
                current.conversation = conversation
                current.communication_id = communication or current.communication_id
                current.correlated = True
            elif communication is not None:
                current.communication_id = communication
            for lane, mapping in outcomes:
                self.learn(lane, mapping, conversation)
                assert self.seen(lane, mapping) == current.identity(), lane.name

        @rule(spelling=st.sampled_from(SPELLINGS))
        def close(self, spelling: str) -> None:
            outcomes = self.each(lambda lane: lane.uow.mappings.close(spelling))
            current = self.active(CANONICAL[spelling])
            if current is not None:
                self.write()
                current = self.active(CANONICAL[spelling])
                assert current is not None
                current.status, current.closed_at = "closed", clock.now
            for lane, mapping in outcomes:
                assert self.seen(lane, mapping) == (current and current.identity()), lane.name

        @rule(hours=st.sampled_from([1, 3]))
        def expire(self, hours: int) -> None:
            outcomes = self.each(lambda lane: lane.uow.mappings.expire_idle(timedelta(hours=hours)))
            cutoff = clock.now - timedelta(hours=hours)
            idle = [r for r in self.pending if r.status == "active" and r.created_at < cutoff]
            if idle:
                self.write()
                for record in self.pending:
                    if record.status == "active" and record.created_at < cutoff:
                        record.status, record.closed_at = "expired", clock.now
            for lane, count in outcomes:
                assert count == len(idle), lane.name

        @rule(hours=st.sampled_from([1, 2]))
        def purge(self, hours: int) -> None:
            outcomes = self.each(lambda lane: lane.uow.mappings.purge(timedelta(hours=hours)))
            cutoff = clock.now - timedelta(hours=hours)
            doomed = [r for r in self.pending if r.closed_at is not None and r.closed_at < cutoff]
            if doomed:
                self.write()
                self.pending = [
                    r
                    for r in self.pending
                    if not (r.closed_at is not None and r.closed_at < cutoff)
                ]
            for lane, count in outcomes:
                assert count == len(doomed), lane.name

        @rule(hours=st.sampled_from([1, 2]))
        def advance_clock(self, hours: int) -> None:
            clock.now += timedelta(hours=hours)

        @rule()
        def commit(self) -> None:
            for lane in lanes:
                lane.uow.commit()
            self.committed = self.pending
            self.write()

        @precondition(lambda self: kill is not None)
        @rule()
        def connection_dies_at_commit(self) -> None:
            """The server goes away just before COMMIT: the caller cannot know the outcome
            (here: not committed), so nothing the unit of work touched may stay cached."""
            assert kill is not None
            for lane in lanes:
                if not lane.uow.in_transaction:
                    lane.uow.commit()  # nothing written: nothing to lose
                    continue
                kill(lane.uow._db._driver().info.backend_pid)
                with pytest.raises(ServiceUnavailable):
                    lane.uow.commit()
            self.pending = [dataclasses.replace(r) for r in self.committed]

        @rule()
        def rollback(self) -> None:
            for lane in lanes:
                lane.uow.rollback()
            self.pending = [dataclasses.replace(r) for r in self.committed]

        @precondition(lambda self: not self.paused)
        @rule()
        def flush_redis(self) -> None:
            admin.flushdb()

        @precondition(lambda self: not self.paused)
        @rule()
        def redis_goes_away(self) -> None:
            server.pause()
            self.paused = True

        @precondition(lambda self: self.paused)
        @rule()
        def redis_comes_back(self) -> None:
            server.resume()
            self.paused = False

        # -- invariants -------------------------------------------------------------------------

        @invariant()
        def one_active_mapping_per_user(self) -> None:
            for key in USERS:
                self.active(key)

        @invariant()
        def caches_hold_committed_truth_only(self) -> None:
            committed_forward = {r.wa_id: r for r in self.committed if r.status == "active"}
            committed_reverse = {r.conversation: r for r in self.committed}
            for lane in lanes:
                cache = lane.store._mapping_cache
                prefix = cache.keys.tenant_prefix(lane.tenant)
                entries: dict[str, ConversationMapping] = {}
                if cache.near is not None:
                    for key, (mapping, _) in list(cache.near._data.items()):
                        if key.startswith(prefix):
                            entries[key] = mapping
                remote_readable = (
                    cache.enabled
                    and not cache.remote.is_open
                    and (not cache.backend.shared or not self.paused)
                )
                if remote_readable:
                    cache.settle()  # fills in flight count too (a failure opens the breaker)
                if remote_readable and not cache.remote.is_open and cache.remote.pending == 0:
                    if cache.backend.shared:
                        keys = [k.decode() for k in admin.scan_iter(match=prefix + "*")]
                    else:
                        keys = [k for k in list(cache.backend._data) if k.startswith(prefix)]
                    for key in keys:
                        raw = cache.backend.get(key)
                        parsed = cache.parse(raw) if raw else None
                        if parsed is not None:
                            entries["L2 " + key] = parsed
                for key, mapping in entries.items():
                    seen = self.seen(lane, mapping)
                    assert seen is not None
                    truth = (
                        committed_forward.get(mapping.wa_id)
                        if ":map:wa:" in key
                        else committed_reverse.get(seen[1])
                    )
                    assert truth is not None, f"{lane.name} caches {key} that is not committed"
                    assert seen == truth.identity(), f"{lane.name} caches a stale {key}"

        def teardown(self) -> None:
            if self.paused:
                server.resume()
            for lane in lanes:
                lane.uow.close()

    return MappingMachine


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lane_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], list[str]]:
    """Per database kind, one URL per lane: PostgreSQL lanes share a database (they use
    different tenants); SQLite lanes need their own files (one writer per file at a time)."""

    def urls(kind: str) -> list[str]:
        if kind == "postgresql":
            return [request.getfixturevalue("postgres_url")] * 4
        made = []
        for index in range(4):
            path: Path = tmp_path_factory.mktemp("lanes") / f"lane{index}.db"
            migrate(f"sqlite:///{path}")
            made.append(f"sqlite:///{path}")
        return made

    return urls


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_mappings_agree_with_the_model_with_the_cache_on_off_flushed_or_down(
    kind: str,
    lane_databases: Callable[[str], list[str]],
    redis_server: RedisServer,
    make_store: Callable[..., wastate.Store],
    request: pytest.FixtureRequest,
) -> None:
    """Every lane answers what the model says, whatever the cache does; caches hold no lie."""
    clock = FakeClock()
    urls = lane_databases(kind)
    common: dict[str, Any] = {
        "clock": clock,
        "cache_timeout_seconds": 0.05,
        "activity_flush_seconds": 10_000_000,  # expiry here is by creation time only
    }
    lanes = [
        Lane("none", make_store(urls[0], "none://", **common)),
        Lane("memory+L1", make_store(urls[1], "memory://", **common)),
        Lane("redis+L1", make_store(urls[2], redis_server.url, **common)),
        Lane("redis", make_store(urls[3], redis_server.url, near_cache=False, **common)),
    ]
    for lane in lanes:
        lane.store._mapping_cache.remote.retry_seconds = 0.05
    kill = None
    if kind == "postgresql":
        admin: Callable[[str], None] = request.getfixturevalue("postgres_admin")
        kill = lambda pid: admin(f"SELECT pg_terminate_backend({int(pid)})")  # noqa: E731
    machine = make_machine(lanes, clock, redis_server, kill)
    examples = int(os.environ.get("SM_EXAMPLES", "60"))  # bounded: a shared 2-core machine
    run_state_machine_as_test(
        machine, settings=settings(max_examples=examples, stateful_step_count=40, deadline=None)
    )
    redis.Redis.from_url(redis_server.url).flushdb()
