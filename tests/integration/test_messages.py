"""Message tracking on PostgreSQL and SQLite: idempotent tracking, the forward-only status rule,
history, parked events, pagination, bad input and tenant isolation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import wastate
from wastate.db.tables import MessageStatusEvent, MessageTrackingRow, PendingStatusEvent
from wastate.domain.messages import DeliveryStatus, MessageError, StatusEvent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def outbound(meta: str | None = "wamid.1", **fields: Any) -> wastate.NewMessage:
    values: dict[str, Any] = {
        "meta_message_id": meta,
        "conversation_id": "conv-1",
        "direction": "outbound",
        "status": "sent",
        "occurred_at": T0,
    }
    values.update(fields)
    return wastate.NewMessage(**values)


def count(store: wastate.Store, model: Any, tenant: str) -> int:
    table = model.__table__
    statement = select(func.count()).select_from(table).where(table.c.tenant_id == tenant)
    with store.engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def counts(store: wastate.Store, tenant: str) -> tuple[int, int, int]:
    """(tracked messages, history rows, parked events) of a tenant."""
    return (
        count(store, MessageTrackingRow, tenant),
        count(store, MessageStatusEvent, tenant),
        count(store, PendingStatusEvent, tenant),
    )


# --------------------------------------------------------------------------- tracking


def test_track_stores_the_message_with_its_first_status_time(
    store: wastate.Store, tenant: str
) -> None:
    """The contract's example: a tracked message comes back whole, with `created=True`."""
    with store.unit_of_work(tenant) as uow:
        message = uow.messages.track(
            wastate.NewMessage(
                conversation_id="conv-1",
                meta_message_id="wamid.test123",
                direction="inbound",
                status="sent",
                message_type="text",
                occurred_at=T0,
            )
        )
    assert message.created is True
    assert message.tenant_id == tenant
    assert message.meta_message_id == "wamid.test123"
    assert message.conversation_id == "conv-1"
    assert message.direction is wastate.Direction.INBOUND
    assert message.status is DeliveryStatus.SENT
    assert message.sent_at == T0
    assert message.delivered_at is None
    assert message.created_at.utcoffset() == timedelta(0)
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.get("wamid.test123") == message.model_copy(update={"created": False})
        # Tracking is not a status event: the first status lives on the record only.
        assert uow.messages.history("wamid.test123") == []


@pytest.mark.parametrize("by", ["meta", "genesys"])
def test_a_duplicate_by_either_id_returns_the_stored_record_and_writes_nothing(
    store: wastate.Store, tenant: str, by: str
) -> None:
    """Tracking again (a retried webhook) returns the first record, `created=False`."""
    with store.unit_of_work(tenant) as uow:
        first = uow.messages.track(outbound("wamid.1", genesys_message_id="gen-1"))
    before = counts(store, tenant)
    again_ids = {"meta_message_id": "wamid.1"} if by == "meta" else {"genesys_message_id": "gen-1"}
    if by == "genesys":
        again_ids["meta_message_id"] = None
    with store.unit_of_work(tenant) as uow:
        again = uow.messages.track(outbound(**again_ids, status="read", occurred_at=minutes(9)))
    assert again.created is False
    assert again == first.model_copy(update={"created": False})
    assert counts(store, tenant) == before


def test_ids_contradicting_the_stored_record_are_a_conflict(
    store: wastate.Store, tenant: str
) -> None:
    """One WhatsApp id cannot name a message with two different contact-center ids."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound("wamid.1", genesys_message_id="gen-1"))
    with pytest.raises(wastate.Conflict), store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound("wamid.1", genesys_message_id="gen-2"))
    assert counts(store, tenant)[0] == 1


def test_the_two_ids_are_separate_namespaces_and_lookups_prefer_the_whatsapp_id(
    store: wastate.Store, tenant: str
) -> None:
    """One string as one message's WhatsApp id and another's contact-center id: two messages;
    a lookup by that string finds the WhatsApp id's, on every database alike."""
    with store.unit_of_work(tenant) as uow:
        first = uow.messages.track(outbound("x-1"))
        second = uow.messages.track(outbound("wamid.2", genesys_message_id="x-1"))
        updated = uow.messages.update_status("x-1", "read", at=minutes(1))
        fetched = uow.messages.get("x-1")
    assert first.created is True
    assert second.created is True
    assert updated is not None
    assert fetched is not None
    assert updated.meta_message_id == fetched.meta_message_id == "x-1"
    assert counts(store, tenant)[0] == 2


def test_track_many_keeps_input_order_and_marks_repeats_as_duplicates(
    store: wastate.Store, tenant: str
) -> None:
    """A batch returns one record per input; a repeated id is the earlier one's duplicate."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound("wamid.old"))
    batch = [outbound("wamid.b"), outbound("wamid.old"), outbound("wamid.a"), outbound("wamid.b")]
    with store.unit_of_work(tenant) as uow:
        records = uow.messages.track_many(batch)
    assert [r.meta_message_id for r in records] == ["wamid.b", "wamid.old", "wamid.a", "wamid.b"]
    assert [r.created for r in records] == [True, False, True, False]
    assert counts(store, tenant)[:2] == (3, 0)


def test_track_batch_counts_new_messages_and_names_the_duplicates(
    store: wastate.Store, tenant: str
) -> None:
    """The record-free batch writes what `track_many` writes and reports duplicates by position."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound("wamid.old"))
    batch = [outbound("wamid.b"), outbound("wamid.old"), outbound("wamid.a"), outbound("wamid.b")]
    with store.unit_of_work(tenant) as uow:
        result = uow.messages.track_batch(batch)
    assert (result.new, result.duplicates) == (2, [1, 3])
    with store.unit_of_work(tenant) as uow:
        stored = uow.messages.get("wamid.a")
        again = uow.messages.track_batch(batch)
    assert stored is not None
    assert (stored.status, stored.sent_at) == (DeliveryStatus.SENT, T0)
    assert (again.new, again.duplicates) == (0, [0, 1, 2, 3])
    assert counts(store, tenant)[:2] == (3, 0)


def test_track_batch_refuses_a_duplicate_contradicting_the_stored_ids(
    store: wastate.Store, tenant: str
) -> None:
    """No records built does not mean no check: contradicting ids are a conflict, as in `track`."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound("wamid.1", genesys_message_id="gen-1"))
    batch = [outbound("wamid.new"), outbound("wamid.1", genesys_message_id="gen-2")]
    with pytest.raises(wastate.Conflict), store.unit_of_work(tenant) as uow:
        uow.messages.track_batch(batch)
    assert counts(store, tenant)[0] == 1


@pytest.mark.parametrize("ids", ["whatsapp", "contact center", "both"])
def test_a_batch_adopts_the_events_parked_for_its_messages(
    store: wastate.Store, tenant: str, ids: str
) -> None:
    """Whichever ids a batch carries, the events parked for them are applied, once."""

    def message(n: int) -> wastate.NewMessage:
        meta = None if ids == "contact center" else f"wamid.{n}"
        genesys = None if ids == "whatsapp" else f"gen-{n}"
        return outbound(meta, genesys_message_id=genesys)

    parked_for = "gen-2" if ids == "contact center" else "wamid.2"
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.update_status(parked_for, "read", at=minutes(3)) is None
    with store.unit_of_work(tenant) as uow:
        records = uow.messages.track_many([message(n) for n in range(4)])
        result = uow.messages.track_batch([message(n) for n in range(4, 8)])
    assert [r.created for r in records] == [True] * 4
    assert [r.status for r in records] == [DeliveryStatus.SENT] * 2 + [DeliveryStatus.READ] + [
        DeliveryStatus.SENT
    ]
    assert records[2].read_at == minutes(3)
    assert (result.new, result.duplicates) == (4, [])
    assert counts(store, tenant) == (8, 1, 0)


# --------------------------------------------------------------------------- the status rule


def test_status_moves_only_forward_and_keeps_each_earliest_time(
    store: wastate.Store, tenant: str
) -> None:
    """A late `delivered` never turns `read` back (the seed's bug); every time is kept."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound())
        read = uow.messages.update_status("wamid.1", "read", at=minutes(3))
        late = uow.messages.update_status("wamid.1", "delivered", at=minutes(2))
        again = uow.messages.update_status("wamid.1", "read", at=minutes(5))
    assert read is not None
    assert late is not None
    assert again is not None
    assert read.status is late.status is again.status is DeliveryStatus.READ
    assert again.sent_at == T0
    assert again.delivered_at == minutes(2)
    assert again.read_at == minutes(3)


def test_delivered_may_be_skipped(store: wastate.Store, tenant: str) -> None:
    """sent → read is legal; delivered_at stays empty."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound())
        record = uow.messages.update_status("wamid.1", DeliveryStatus.READ, at=minutes(1))
    assert record is not None
    assert record.status is DeliveryStatus.READ
    assert record.delivered_at is None


def test_failed_outranks_sent_but_not_a_delivery(store: wastate.Store, tenant: str) -> None:
    """queued < sent < failed < delivered: a failure report loses to proof of delivery."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound("wamid.f", status="queued"))
        failed = uow.messages.update_status("wamid.f", "failed", at=minutes(1))
        late_sent = uow.messages.update_status("wamid.f", "sent", at=minutes(0.5))
        delivered = uow.messages.update_status("wamid.f", "delivered", at=minutes(2))
    assert failed is not None
    assert late_sent is not None
    assert delivered is not None
    assert failed.status is late_sent.status is DeliveryStatus.FAILED
    assert delivered.status is DeliveryStatus.DELIVERED
    assert delivered.failed_at == minutes(1)
    assert [e.status for e in _history(store, tenant, "wamid.f")] == [
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.DELIVERED,
    ]


def test_failed_keeps_the_error_of_the_earliest_failure(store: wastate.Store, tenant: str) -> None:
    """Code, title, message and details of WhatsApp's error survive, from the first failure."""
    first = MessageError(code=131026, title="Undeliverable", message="m", details="d")
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound())
        uow.messages.update_status(
            "wamid.1", "failed", at=minutes(5), error={"code": 1, "title": "later"}
        )
        record = uow.messages.update_status("wamid.1", "failed", at=minutes(4), error=first)
        history = uow.messages.history("wamid.1")
    assert record is not None
    assert (record.error_code, record.error_title, record.error_message, record.error_details) == (
        131026,
        "Undeliverable",
        "m",
        "d",
    )
    assert record.failed_at == minutes(4)
    assert [(e.status, e.at, e.error) for e in history][-1] == (
        DeliveryStatus.FAILED,
        minutes(4),
        first,
    )


def test_pricing_conversation_and_tracker_of_status_events_are_kept(
    store: wastate.Store, tenant: str
) -> None:
    """The first pricing/conversation/callback data is kept on the record and in the history."""
    pricing = {"billable": True, "pricing_model": "CBP", "category": "service"}
    conversation = {"id": "c0ffee", "origin": {"type": "service"}}
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound())
        result = uow.messages.apply_status_events(
            [
                StatusEvent(
                    message_id="wamid.1",
                    status="delivered",
                    at=minutes(1),
                    pricing=pricing,
                    conversation=conversation,
                    biz_opaque_callback_data="tracker-7",
                    recipient_id="972987654321",
                    recipient_user_id="US.134912",
                ),
                {"message_id": "wamid.1", "status": "read", "at": minutes(2)},
            ]
        )
        history = uow.messages.history("wamid.1")
        record = uow.messages.get("wamid.1")
    assert record is not None
    assert result.updated == ["wamid.1"]
    assert result.applied == 2
    assert result.pending == []
    assert record.pricing == pricing
    assert record.conversation_info == conversation
    assert record.biz_opaque_callback_data == "tracker-7"
    delivered = next(e for e in history if e.status is DeliveryStatus.DELIVERED)
    assert delivered.pricing == pricing
    assert delivered.conversation == conversation
    assert delivered.recipient_user_id == "US.134912"


def test_history_holds_one_row_per_status_with_the_earliest_time(
    store: wastate.Store, tenant: str
) -> None:
    """Re-sent events add no history rows; an earlier one replaces the recorded time."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound())
        for at in (minutes(3), minutes(1), minutes(2), minutes(1)):
            uow.messages.update_status("wamid.1", "delivered", at=at)
    history = _history(store, tenant, "wamid.1")
    assert [(e.status, e.at) for e in history] == [(DeliveryStatus.DELIVERED, minutes(1))]
    assert counts(store, tenant)[1] == 1


def test_a_status_event_without_a_time_is_stamped_with_the_store_clock(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """`at=None` means now, by the store's (injectable) clock."""
    store = make_store(database_url, clock=lambda: minutes(42))
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound())
        record = uow.messages.update_status("wamid.1", "delivered")
    assert record is not None
    assert record.delivered_at == minutes(42)
    assert record.updated_at == minutes(42)


def test_update_by_contact_center_id(store: wastate.Store, tenant: str) -> None:
    """The contact center's own id finds the message too."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound(None, genesys_message_id="gen-9"))
        record = uow.messages.update_status("gen-9", "delivered", at=minutes(1))
        fetched = uow.messages.get("gen-9")
    assert record is not None
    assert fetched is not None
    assert record.status is fetched.status is DeliveryStatus.DELIVERED


# --------------------------------------------------------------------------- unknown ids


def test_an_event_for_an_unknown_id_is_parked_and_adopted_by_track(
    store: wastate.Store, tenant: str
) -> None:
    """A webhook that overtakes its sender is not lost: `track` applies it."""
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.update_status("wamid.early", "delivered", at=minutes(2)) is None
        assert uow.messages.update_status("wamid.early", "delivered", at=minutes(1)) is None
        assert uow.messages.update_status("gen-early", "read", at=minutes(3)) is None
    assert counts(store, tenant) == (0, 0, 2)
    with store.unit_of_work(tenant) as uow:
        parked = uow.messages.pending("wamid.early")
        record = uow.messages.track(outbound("wamid.early", genesys_message_id="gen-early"))
    assert [(e.status, e.at) for e in parked] == [(DeliveryStatus.DELIVERED, minutes(1))]
    assert record.created is True
    assert record.status is DeliveryStatus.READ
    assert (record.sent_at, record.delivered_at, record.read_at) == (T0, minutes(1), minutes(3))
    assert counts(store, tenant) == (1, 2, 0)


def test_parked_events_are_purged_when_old(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Events for ids that never get tracked do not pile up forever."""
    clock = [T0]
    store = make_store(database_url, clock=lambda: clock[0])
    with store.unit_of_work(tenant) as uow:
        uow.messages.update_status("wamid.never", "sent")
    clock[0] = minutes(60 * 24 * 8)
    with store.unit_of_work(tenant) as uow:
        uow.messages.update_status("wamid.recent", "sent")
        assert uow.messages.purge_pending(timedelta(days=7)) == 1
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.pending("wamid.never") == []
        assert len(uow.messages.pending("wamid.recent")) == 1


@pytest.mark.postgres
def test_a_track_racing_an_event_for_its_id_never_loses_the_event(
    make_store: Callable[..., wastate.Store], postgres_url: str, tenant: str
) -> None:
    """Parking and adopting cannot miss each other, whichever transaction commits first."""
    store = make_store(postgres_url, pool_size=4)
    rounds = 25
    for index in range(rounds):
        barrier = threading.Barrier(2)
        message_id = f"wamid.race{index}"

        def send(message_id: str = message_id, barrier: threading.Barrier = barrier) -> None:
            with store.unit_of_work(tenant) as uow:
                barrier.wait()
                uow.messages.track(outbound(message_id))

        def deliver(message_id: str = message_id, barrier: threading.Barrier = barrier) -> None:
            with store.unit_of_work(tenant) as uow:
                barrier.wait()
                uow.messages.update_status(message_id, "delivered", at=minutes(1))

        threads = [threading.Thread(target=send), threading.Thread(target=deliver)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with store.unit_of_work(tenant) as uow:
        statuses = [uow.messages.get(f"wamid.race{i}") for i in range(rounds)]
    assert all(s is not None and s.status is DeliveryStatus.DELIVERED for s in statuses)
    assert counts(store, tenant) == (rounds, rounds, 0)


@pytest.mark.postgres
def test_concurrent_updates_of_one_message_lose_no_event(
    make_store: Callable[..., wastate.Store], postgres_url: str, tenant: str
) -> None:
    """Eight connections updating one row at once: the outcome is the rule's, every time."""
    store = make_store(postgres_url, pool_size=8)
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound(status="queued"))
    plan = [("sent", 1), ("delivered", 2), ("read", 3), ("sent", 0.5)] * 2
    barrier = threading.Barrier(len(plan))

    def update(status: str, at: float) -> None:
        with store.unit_of_work(tenant) as uow:
            barrier.wait()
            uow.messages.update_status("wamid.1", status, at=minutes(at))

    threads = [threading.Thread(target=update, args=item) for item in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with store.unit_of_work(tenant) as uow:
        record = uow.messages.get("wamid.1")
    assert record is not None
    assert record.status is DeliveryStatus.READ
    assert (record.sent_at, record.delivered_at, record.read_at) == (
        minutes(0.5),
        minutes(2),
        minutes(3),
    )
    assert counts(store, tenant)[1] == 3


# --------------------------------------------------------------------------- reads


def test_for_conversation_pages_newest_first_with_a_keyset_cursor(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """Pages follow each other without gaps or repeats, ties in created_at included."""
    clock = [T0]
    store = make_store(database_url, clock=lambda: clock[0])
    with store.unit_of_work(tenant) as uow:
        uow.messages.track_many([outbound(f"wamid.{i}") for i in range(5)])  # one timestamp
        clock[0] = minutes(1)
        uow.messages.track_many([outbound(f"wamid.{i}") for i in range(5, 8)])
        uow.messages.track(outbound("wamid.elsewhere", conversation_id="conv-2"))
    seen: list[str] = []
    with store.unit_of_work(tenant) as uow:
        page = uow.messages.for_conversation("conv-1", limit=3)
        while page:
            seen.extend(m.meta_message_id or "" for m in page)
            page = uow.messages.for_conversation("conv-1", limit=3, before=seen[-1])
    assert len(seen) == len(set(seen)) == 8
    assert set(seen[:3]) == {"wamid.5", "wamid.6", "wamid.7"}


def test_an_unknown_cursor_is_invalid_input(store: wastate.Store, tenant: str) -> None:
    """A `before` that names no message is refused, not silently the first page."""
    with store.unit_of_work(tenant) as uow, pytest.raises(wastate.InvalidInput) as caught:
        uow.messages.for_conversation("conv-1", limit=10, before="wamid.nope")
    assert caught.value.field == "before"


def test_reads_of_unknown_ids_are_empty(store: wastate.Store, tenant: str) -> None:
    """get → None, history → [] for an id nobody tracked."""
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.get("wamid.nobody") is None
        assert uow.messages.history("wamid.nobody") == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: m.update_status("wamid.1", "bounced"), "status"),
        (lambda m: m.update_status("", "read"), "message_id"),
        (lambda m: m.update_status("wamid 1", "read"), "message_id"),
        (lambda m: m.update_status("wamid.1", "read", at=datetime(2026, 1, 1)), "at"),
        (lambda m: m.update_status("wamid.1", "failed", error={"code": "x"}), "error.code"),
        (lambda m: m.track({"direction": "outbound"}), "messages[0]"),
        (
            lambda m: m.track({"meta_message_id": "wamid.2", "direction": "up"}),
            "messages[0].direction",
        ),
        (lambda m: m.track(outbound("wamid.2", wa_id="12")), "messages[0].wa_id"),
        (lambda m: m.track(outbound("wamid 2")), "messages[0].meta_message_id"),
        (lambda m: m.apply_status_events([{"message_id": "w", "status": "x"}]), "events[0].status"),
        (
            lambda m: m.apply_status_events(
                [
                    StatusEvent(message_id="wamid.1", status="read"),
                    {"message_id": "w 2", "status": "read"},
                ]
            ),
            "events[1].message_id",
        ),
        (lambda m: m.apply_status_events(["wamid.1"]), "events[0]"),
        (lambda m: m.for_conversation("conv-1", limit=0), "limit"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    store: wastate.Store, tenant: str, call: Callable[[Any], object], field: str
) -> None:
    """Every malformed argument raises InvalidInput naming it; no row appears."""
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(outbound())
    before = counts(store, tenant)
    with store.unit_of_work(tenant) as uow, pytest.raises(wastate.InvalidInput) as caught:
        call(uow.messages)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert counts(store, tenant) == before


# --------------------------------------------------------------------------- tenants


def test_no_read_or_update_crosses_tenants_by_either_id(store: wastate.Store, tenant: str) -> None:
    """Another tenant cannot see, page, or change this tenant's message by either id."""
    other = f"{tenant}-other"
    with store.unit_of_work(tenant) as uow:
        mine = uow.messages.track(outbound("wamid.shared", genesys_message_id="gen-shared"))
    with store.unit_of_work(other) as uow:
        for message_id in ("wamid.shared", "gen-shared"):
            assert uow.messages.get(message_id) is None
            assert uow.messages.history(message_id) == []
            assert uow.messages.update_status(message_id, "read", at=minutes(1)) is None
        assert uow.messages.for_conversation("conv-1", limit=10) == []
        result = uow.messages.apply_status_events(
            [{"message_id": "wamid.shared", "status": "failed", "at": minutes(1)}]
        )
        assert result.updated == []
        assert result.pending == ["wamid.shared"]
        theirs = uow.messages.track(outbound("wamid.shared", genesys_message_id="gen-shared"))
    with store.unit_of_work(tenant) as uow:
        assert uow.messages.get("wamid.shared") == mine.model_copy(update={"created": False})
        assert uow.messages.history("gen-shared") == []
    assert theirs.created is True
    assert theirs.tenant_id == other
    assert theirs.status is DeliveryStatus.READ  # its own parked events, not ours


def _history(store: wastate.Store, tenant: str, message_id: str) -> list[StatusEvent]:
    with store.unit_of_work(tenant) as uow:
        return uow.messages.history(message_id)
