"""The status rule as a property: any set of events for one message, in any order, with any
duplicates, one by one or in batches, through one or several concurrent connections — and with
the `track` anywhere among them (events before it are parked, then adopted) — gives the record
and the history a plain-Python model of the rule predicts. So every such run gives the same."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wastate
from wastate.domain.messages import STATUS_RANK, DeliveryStatus, MessageError, StatusEvent

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
PRICING = {"billable": True, "pricing_model": "PMP", "category": "utility"}
CONVERSATION = {"id": "c0nv", "origin": {"type": "utility"}}


@dataclass(frozen=True)
class Event:
    """One status event. Everything it carries is a function of (status, minute): a re-sent
    event is a true duplicate, as WhatsApp's retries are."""

    status: DeliveryStatus
    minute: int

    @property
    def at(self) -> datetime:
        return T0 + timedelta(minutes=self.minute)

    @property
    def error(self) -> MessageError | None:
        if self.status is not DeliveryStatus.FAILED:
            return None
        return MessageError(code=130000 + self.minute, title=f"failure {self.minute}")

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if (self.minute + STATUS_RANK[self.status]) % 2 == 0:
            payload["pricing"] = PRICING
        if self.minute % 3 == 0:
            payload["conversation"] = CONVERSATION
        if self.minute == 4:
            payload["biz_opaque_callback_data"] = "campaign-4"
        return payload

    def as_status_event(self, message_id: str) -> StatusEvent:
        return StatusEvent(
            message_id=message_id, status=self.status, at=self.at, error=self.error, **self.payload
        )


@dataclass(frozen=True)
class Track:
    """The `track` of the message; its time is off the minute grid, so it ties with no event."""

    status: DeliveryStatus
    minute: int

    @property
    def at(self) -> datetime:
        return T0 + timedelta(minutes=self.minute, seconds=30)

    @property
    def error(self) -> MessageError | None:
        if self.status is not DeliveryStatus.FAILED:
            return None
        return MessageError(code=470, title="send failed")

    payload: dict[str, Any] | None = None

    def new_message(self, message_id: str) -> wastate.NewMessage:
        return wastate.NewMessage(
            meta_message_id=message_id,
            conversation_id="conv-p",
            direction="outbound",
            status=self.status,
            occurred_at=self.at,
            error=self.error,
        )


Step = Event | Track | list[Event]
"""An event applied alone, the track, or a batch of events (`apply_status_events`)."""

statuses = st.sampled_from(list(DeliveryStatus))
events = st.builds(Event, statuses, st.integers(0, 5))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, list[list[Step]], list[Event | Track]]:
    """(mode, the steps of each connection, every event including the track)."""
    distinct = draw(st.lists(events, min_size=1, max_size=6, unique=True))
    repeated = [e for e in distinct for _ in range(draw(st.integers(1, 3)))]
    track = Track(draw(statuses), draw(st.integers(0, 5)))
    order: list[Event | Track] = draw(st.permutations([*repeated, track]))
    mode = draw(st.sampled_from(["one by one", "batched", "concurrent"]))
    steps: list[Step] = []
    if mode == "one by one":
        steps = list(order)
    else:
        batch: list[Event] = []
        for item in order:
            if isinstance(item, Track):
                steps.extend([batch, item] if batch else [item])
                batch = []
                continue
            batch.append(item)
            if draw(st.booleans()):
                steps.append(batch)
                batch = []
        if batch:
            steps.append(batch)
    if mode != "concurrent":
        return mode, [steps], [*distinct, track]
    lanes: list[list[Step]] = [[], [], []]
    for step in steps:
        lanes[draw(st.integers(0, 2))].append(step)
    return mode, lanes, [*distinct, track]


def expected(every: list[Event | Track]) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The record fields and history the rule predicts, computed in plain Python."""
    top = max(every, key=lambda e: STATUS_RANK[e.status])
    record: dict[str, Any] = {"status": top.status}
    history = []
    for status in DeliveryStatus:
        seen = [e for e in every if e.status is status]
        first = min(seen, key=lambda e: e.at) if seen else None
        record[status.timestamp_field] = first.at if first else None
        # The history holds status events; the track's own status is on the record only.
        seen = [e for e in seen if isinstance(e, Event)]
        first = min(seen, key=lambda e: e.at) if seen else None
        if first is not None:
            # Each payload key comes from the earliest event of the status that carries it.
            merged: dict[str, Any] = {}
            for event in sorted(seen, key=lambda e: e.at, reverse=True):
                merged.update(event.payload or {})
            history.append((status, first.at, first.error, *(merged.get(k) for k in KEYS)))
    failures = [e for e in every if e.status is DeliveryStatus.FAILED]
    error = min(failures, key=lambda e: e.at).error if failures else None
    for name in ("code", "title", "message", "details"):
        record[f"error_{name}"] = getattr(error, name) if error else None
    payloads = [e.payload or {} for e in every]
    record["pricing"] = PRICING if any("pricing" in p for p in payloads) else None
    record["conversation_info"] = (
        CONVERSATION if any("conversation" in p for p in payloads) else None
    )
    record["biz_opaque_callback_data"] = (
        "campaign-4" if any("biz_opaque_callback_data" in p for p in payloads) else None
    )
    history.sort(key=lambda row: (row[1], STATUS_RANK[row[0]]))
    return record, history


KEYS = ("pricing", "conversation", "biz_opaque_callback_data")


def run(store: wastate.Store, tenant: str, message_id: str, steps: list[Step]) -> None:
    for step in steps:
        with store.unit_of_work(tenant) as uow:
            if isinstance(step, Track):
                uow.messages.track(step.new_message(message_id))
            elif isinstance(step, list):
                uow.messages.apply_status_events([e.as_status_event(message_id) for e in step])
            elif step.payload:  # update_status takes no pricing: a batch of one instead
                uow.messages.apply_status_events([step.as_status_event(message_id)])
            else:
                uow.messages.update_status(message_id, step.status, at=step.at, error=step.error)


@pytest.fixture
def pool_store(make_store: Callable[..., wastate.Store], database_url: str) -> wastate.Store:
    """A store with a few connections, shared by all examples of one test."""
    return make_store(database_url, pool_size=4)


@pytest.mark.slow
@given(scenario=scenarios())
def test_any_order_grouping_and_concurrency_gives_the_same_record_and_history(
    pool_store: wastate.Store, tenant: str, scenario: Any
) -> None:
    """Permutations, duplicates, batches and racing connections all end in the model's state."""
    mode, lanes, every = scenario
    store = pool_store
    message_id = f"wamid.p{uuid.uuid4().hex[:12]}"
    if mode == "concurrent":
        barrier = threading.Barrier(len(lanes))
        failures: list[BaseException] = []

        def lane(steps: list[Step]) -> None:
            try:
                barrier.wait()
                run(store, tenant, message_id, steps)
            except BaseException as exc:  # surfaced below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=lane, args=(steps,)) for steps in lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
    else:
        run(store, tenant, message_id, lanes[0])

    want_record, want_history = expected(every)
    with store.unit_of_work(tenant) as uow:
        record = uow.messages.get(message_id)
        history = uow.messages.history(message_id)
        parked = uow.messages.pending(message_id)
    assert record is not None
    assert {key: getattr(record, key) for key in want_record} == want_record
    assert [
        (e.status, e.at, e.error, *(getattr(e, key) for key in KEYS)) for e in history
    ] == want_history
    assert parked == []
