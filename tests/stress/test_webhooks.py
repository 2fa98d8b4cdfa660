"""WhatsApp webhook ingest on PostgreSQL and SQLite: every real sample, malformed bodies, user
ids, and the same body delivered by eight processes at once."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import ROOT, TESTS
from sqlalchemy import func, select

import wastate
from wastate.db.tables import (
    ConversationMappingRow,
    MessageStatusEvent,
    MessageTrackingRow,
    PendingStatusEvent,
)
from wastate.domain.messages import DeliveryStatus, MessageError
from wastate.webhooks import IngestReport, ingest

SAMPLES = TESTS / "data" / "whatsapp"
SHARED_SAMPLES = ROOT.parent / "shared" / "fixtures" / "whatsapp"
USER = "+972987654321"


def load(name: str) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((SAMPLES / name).read_text())
    return data


INBOUND = load("pywa_message.json")
STATUSES = load("pywa_message_status.json")
ECHOES = load("pywa_outgoing_message.json")


def value_of(body: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = body["entry"][0]["changes"][0]["value"]
    return value


def at(timestamp: str) -> datetime:
    return datetime.fromtimestamp(int(timestamp), tz=UTC)


def rows(store: wastate.Store, model: Any, tenant: str) -> int:
    table = model.__table__
    statement = select(func.count()).select_from(table).where(table.c.tenant_id == tenant)
    with store.engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def footprint(store: wastate.Store, tenant: str) -> tuple[int, ...]:
    """(mappings, messages, history rows, parked events) of a tenant."""
    models = (ConversationMappingRow, MessageTrackingRow, MessageStatusEvent, PendingStatusEvent)
    return tuple(rows(store, model, tenant) for model in models)


def test_the_bundled_samples_are_the_shared_ones() -> None:
    """The copies under tests/data match ../shared/fixtures/whatsapp where that exists."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip("no ../shared/fixtures/whatsapp beside this checkout")
    for shared in SHARED_SAMPLES.iterdir():
        assert (SAMPLES / shared.name).read_bytes() == shared.read_bytes(), shared.name


# --------------------------------------------------------------------------- inbound messages


@pytest.mark.parametrize("sample", sorted(INBOUND))
def test_every_inbound_sample_is_tracked_and_linked_to_the_users_conversation(
    store: wastate.Store, tenant: str, sample: str
) -> None:
    """Each sample message becomes one inbound record in the sender's active conversation."""
    body = INBOUND[sample]
    sent = value_of(body)["messages"][0]
    with store.unit_of_work(tenant) as uow:
        report = ingest(uow, body)
        record = uow.messages.get(sent["id"])
        mapping = uow.mappings.by_wa_id(USER)
        history = uow.messages.history(sent["id"])
    assert report.new == 1
    assert report.duplicate == 0
    assert record is not None
    assert mapping is not None
    assert mapping.contact_name == "Test Name"
    assert report.conversations == [mapping.conversation_id]
    assert record.conversation_id == mapping.conversation_id
    assert record.wa_id == USER
    assert record.direction is wastate.Direction.INBOUND
    assert record.status is DeliveryStatus.SENT
    assert record.sent_at == at(sent["timestamp"])
    assert record.message_type.value == sent["type"]
    media = (
        sent.get(sent["type"])
        if sent["type"] in {"image", "video", "audio", "document", "sticker"}
        else None
    )
    if media is not None:
        assert record.media_id == media["id"]
        assert record.media_mime_type == media["mime_type"]
        assert record.media_sha256 == media["sha256"]
        assert record.media_url == media.get("url")
        assert record.media_caption == media.get("caption")
        assert record.media_filename == media.get("filename")
    else:
        assert record.media_id is None
    assert history == []  # a received message is tracked, not a status event


def ingest_alone(store: wastate.Store, body: dict[str, Any]) -> tuple[IngestReport, Any]:
    """Ingest into a fresh tenant (the samples share one message id); the report and record."""
    with store.unit_of_work(f"t-{uuid.uuid4().hex[:12]}") as uow:
        report = ingest(uow, body)
        return report, uow.messages.get(value_of(body)["messages"][0]["id"])


def test_sample_details_survive_ingest(store: wastate.Store) -> None:
    """Spot checks: a voice note, a document's name and caption, an unsupported message's
    error, and the value-level error of a broken interactive message."""
    _, voice = ingest_alone(store, INBOUND["voice"])
    _, audio = ingest_alone(store, INBOUND["audio"])
    _, document = ingest_alone(store, INBOUND["document"])
    _, unsupported = ingest_alone(store, INBOUND["unsupported"])
    broken, interactive = ingest_alone(store, INBOUND["interactive_message_with_err"])
    assert (voice.media_type, audio.media_type) == ("voice", "audio")
    assert (document.media_filename, document.media_caption) == ("filename.pdf", "caption")
    assert document.media_mime_type == "application/pdf"
    assert unsupported.message_type is wastate.MessageType.UNSUPPORTED
    assert (unsupported.error_code, unsupported.error_title, unsupported.error_details) == (
        131051,
        "Message type unknown",
        "Message type is currently not supported.",
    )
    assert interactive.message_type is wastate.MessageType.INTERACTIVE
    assert broken.errors == [
        MessageError(
            code=131000,
            title="Something went wrong",
            message="Something went wrong",
            details="Unsupported webhook payload",
        )
    ]


def test_a_retried_webhook_is_a_duplicate_and_writes_nothing(
    store: wastate.Store, tenant: str
) -> None:
    """WhatsApp delivers at least once: the second delivery changes nothing."""
    with store.unit_of_work(tenant) as uow:
        first = ingest(uow, INBOUND["image"])
    before = footprint(store, tenant)
    with store.unit_of_work(tenant) as uow:
        again = ingest(uow, json.dumps(INBOUND["image"]))
    assert (first.new, first.duplicate) == (1, 0)
    assert (again.new, again.duplicate) == (0, 1)
    assert again.conversations == first.conversations
    assert footprint(store, tenant) == before


def test_a_user_known_only_by_business_scoped_id_gets_a_conversation(
    store: wastate.Store, tenant: str
) -> None:
    """No phone number (`from`), only `from_user_id`: the BSUID keys the mapping."""
    body = json.loads(json.dumps(INBOUND["text"]))
    value = value_of(body)
    del value["messages"][0]["from"]
    value["messages"][0]["from_user_id"] = "US.13491208655302741918"
    del value["contacts"][0]["wa_id"]
    with store.unit_of_work(tenant) as uow:
        ingest(uow, body)
        mapping = uow.mappings.by_wa_id("US.13491208655302741918")
        record = uow.messages.get("wamid.xyzxyz")
    assert mapping is not None
    assert mapping.contact_name == "Test Name"
    assert record is not None
    assert record.wa_id == "US.13491208655302741918"
    assert record.conversation_id == mapping.conversation_id


def test_a_contact_without_profile_is_fine(store: wastate.Store, tenant: str) -> None:
    """`contacts[].profile` may be missing: the mapping simply has no name."""
    body = json.loads(json.dumps(INBOUND["text"]))
    del value_of(body)["contacts"][0]["profile"]
    with store.unit_of_work(tenant) as uow:
        report = ingest(uow, body)
        mapping = uow.mappings.by_wa_id(USER)
    assert report.new == 1
    assert mapping is not None
    assert mapping.contact_name is None


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("sample", sorted(STATUSES))
def test_every_status_sample_updates_its_tracked_message(
    store: wastate.Store, tenant: str, sample: str
) -> None:
    """Each status applies to the message it names, keeping pricing, conversation, tracker,
    error and recipient ids."""
    status = value_of(STATUSES[sample])["statuses"][0]
    sent_at = datetime(2023, 1, 1, tzinfo=UTC)
    with store.unit_of_work(tenant) as uow:
        uow.messages.track(
            wastate.NewMessage(
                meta_message_id=status["id"],
                direction="outbound",
                status="queued",
                occurred_at=sent_at,
            )
        )
        report = ingest(uow, STATUSES[sample])
        record = uow.messages.get(status["id"])
        history = uow.messages.history(status["id"])
    assert report == IngestReport(statuses_applied=1)
    assert record is not None
    assert record.status.value == status["status"]
    assert record.status_at(record.status) == at(status["timestamp"])
    assert record.pricing == status.get("pricing")
    assert record.conversation_info == status.get("conversation")
    assert record.biz_opaque_callback_data == status.get("biz_opaque_callback_data")
    event = history[-1]
    assert event.status is record.status
    assert event.recipient_id == status["recipient_id"]
    assert event.pricing == status.get("pricing")
    if status["status"] == "failed":
        error = status["errors"][0]
        assert (record.error_code, record.error_title, record.error_message) == (
            error["code"],
            error["title"],
            error["message"],
        )
        assert record.error_details == error["error_data"]["details"]
        assert event.error is not None
        assert event.error.code == error["code"]
    else:
        assert record.error_code is None


def test_status_samples_for_an_untracked_message_are_parked_then_adopted(
    store: wastate.Store, tenant: str
) -> None:
    """Statuses that overtake the send are kept, and applied when the message is tracked."""
    with store.unit_of_work(tenant) as uow:
        reports = [ingest(uow, STATUSES[name]) for name in ("read", "sent", "delivered", "read")]
        parked = uow.messages.pending("wamid.xyzxyz")
    assert [r.statuses_pending for r in reports] == [1, 1, 1, 1]
    assert [e.status for e in parked] == [
        DeliveryStatus.READ,  # the read sample's timestamp is the oldest of the three
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
    ]
    with store.unit_of_work(tenant) as uow:
        record = uow.messages.track(
            wastate.NewMessage(meta_message_id="wamid.xyzxyz", direction="outbound")
        )
        assert uow.messages.pending("wamid.xyzxyz") == []
    assert record.status is DeliveryStatus.READ
    assert record.pricing == value_of(STATUSES["sent"])["statuses"][0]["pricing"]


def test_unknown_status_kinds_and_other_fields_are_ignored(
    store: wastate.Store, tenant: str
) -> None:
    """A status kind or change field wastate does not know is counted, not an error."""
    body = json.loads(json.dumps(STATUSES["sent"]))
    value_of(body)["statuses"][0]["status"] = "deleted"
    body["entry"][0]["changes"].append({"field": "account_update", "value": {"event": "X"}})
    with store.unit_of_work(tenant) as uow:
        report = ingest(uow, body)
    assert report == IngestReport(ignored=2)
    assert footprint(store, tenant) == (0, 0, 0, 0)


# --------------------------------------------------------------------------- echoes


def test_message_echoes_are_tracked_as_outbound(store: wastate.Store, tenant: str) -> None:
    """Messages the business sent from its app are outbound records; a recipient that is a
    placeholder, not a user id, leaves the echo unlinked."""
    with store.unit_of_work(tenant) as uow:
        reports = {name: ingest(uow, body) for name, body in ECHOES.items()}
        text = uow.messages.get("<WHATSAPP_MESSAGE_ID>")
        edit = uow.messages.get("wamid.yyyyyy")
        business_side = uow.mappings.by_wa_id("+972123456789")
    assert [r.new for r in reports.values()] == [1, 1, 0]  # edit reuses the revoke echo's id
    assert text is not None
    assert text.direction is wastate.Direction.OUTBOUND
    assert text.message_type is wastate.MessageType.TEXT
    assert text.conversation_id is None
    assert text.sent_at == at("1697043223")
    assert edit is not None
    assert edit.message_type is wastate.MessageType.UNKNOWN
    assert business_side is not None
    assert edit.conversation_id == business_side.conversation_id


# --------------------------------------------------------------------------- malformed bodies


def _broken(mutate: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(INBOUND["text"]))
    body["entry"][0]["changes"].append(
        json.loads(json.dumps(STATUSES["failed"]["entry"][0]["changes"][0]))
    )
    mutate(body)
    return body


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda b: b.pop("entry"), "entry"),
        (
            lambda b: b["entry"][0]["changes"][1]["value"]["statuses"][0].update(
                timestamp="yesterday"
            ),
            "entry[0].changes[1].value.statuses[0].timestamp",
        ),
        (
            lambda b: b["entry"][0]["changes"][1]["value"]["statuses"][0].pop("id"),
            "entry[0].changes[1].value.statuses[0].id",
        ),
        (
            lambda b: b["entry"][0]["changes"][1]["value"]["statuses"][0].update(
                id="wamid with space"
            ),
            "entry[0].changes[1].value.statuses[0].id",
        ),
        (
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].update({"from": "12"}),
            "entry[0].changes[0].value.messages[0].from",
        ),
        (
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].pop("from"),
            "entry[0].changes[0].value.messages[0].from",
        ),
        (
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].update(type=None),
            "entry[0].changes[0].value.messages[0].type",
        ),
        (
            lambda b: b["entry"][0]["changes"][0]["value"].update(contacts={"wa_id": 1}),
            "entry[0].changes[0].value.contacts",
        ),
    ],
)
def test_a_malformed_body_names_the_json_path_and_writes_nothing(
    store: wastate.Store, tenant: str, mutate: Any, path: str
) -> None:
    """Validation comes first: the error names where the body is wrong; nothing is written."""
    with store.unit_of_work(tenant) as uow, pytest.raises(wastate.InvalidInput) as caught:
        ingest(uow, _broken(mutate))
    assert caught.value.field == path
    assert footprint(store, tenant) == (0, 0, 0, 0)


def test_a_body_that_is_not_json_is_invalid_input(store: wastate.Store, tenant: str) -> None:
    """Bytes that do not parse are InvalidInput too, not a JSON library's exception."""
    with store.unit_of_work(tenant) as uow, pytest.raises(wastate.InvalidInput):
        ingest(uow, b"{not json")


# --------------------------------------------------------------------------- the storm

STORM_MESSAGES = 6


def storm_body() -> dict[str, Any]:
    """Inbound messages from two users, statuses (with repeats) of three tracked outbound
    messages and of one that is not tracked, over two entries and three changes."""
    inbound = []
    for index in range(STORM_MESSAGES):
        message = json.loads(json.dumps(value_of(INBOUND["text"])["messages"][0]))
        message["id"] = f"wamid.in{index}"
        message["from"] = "972987654321" if index % 2 else "14155550100"
        inbound.append(message)
    contacts = [
        {"profile": {"name": "Ana"}, "wa_id": "972987654321"},
        {"profile": {"name": "Bo"}, "wa_id": "14155550100"},
    ]
    statuses = []
    for index in range(3):
        for kind, stamp in (("sent", 100), ("delivered", 200), ("read", 300), ("delivered", 250)):
            statuses.append(
                {
                    "id": f"wamid.out{index}",
                    "status": kind,
                    "timestamp": str(1700000000 + stamp),
                    "recipient_id": "14155550100",
                }
            )
    statuses.append({"id": "wamid.ghost", "status": "failed", "timestamp": "1700000000"})

    def change(**value: Any) -> dict[str, Any]:
        return {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}

    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    change(contacts=contacts, messages=inbound[:3]),
                    change(statuses=statuses[:6]),
                ],
            },
            {
                "id": "1",
                "changes": [change(contacts=contacts, messages=inbound[3:], statuses=statuses[6:])],
            },
        ],
    }


def storm_worker(url: str, tenant: str, body: dict[str, Any], barrier: Any) -> dict[str, Any]:
    """One process of the storm: its own store and connection, then one ingest."""
    store = wastate.connect(url, "none://")
    try:
        barrier.wait()
        with store.unit_of_work(tenant) as uow:
            return ingest(uow, body).model_dump()
    finally:
        store.close()


@pytest.mark.slow
def test_eight_processes_ingesting_one_body_at_once_leave_one_record_each(
    database_url: str, tenant: str, make_store: Any
) -> None:
    """The duplicate-webhook storm: one record per message, one history row per (message,
    status), one conversation per user, whatever the interleaving."""
    store = make_store(database_url)
    with store.unit_of_work(tenant) as uow:
        uow.messages.track_many(
            [
                wastate.NewMessage(
                    meta_message_id=f"wamid.out{i}", direction="outbound", status="queued"
                )
                for i in range(3)
            ]
        )
    body = storm_body()
    context = multiprocessing.get_context("spawn")
    processes = 8
    with context.Manager() as manager, context.Pool(processes) as pool:
        barrier = manager.Barrier(processes)
        reports = pool.starmap(storm_worker, [(database_url, tenant, body, barrier)] * processes)
    assert sum(r["new"] for r in reports) == STORM_MESSAGES
    assert sum(r["duplicate"] for r in reports) == STORM_MESSAGES * (processes - 1)
    assert all(r["statuses_applied"] == 12 and r["statuses_pending"] == 1 for r in reports)
    # 2 users; 6 inbound + 3 outbound messages; history: 3 x (sent, delivered, read); one
    # parked event.
    assert footprint(store, tenant) == (2, 9, 9, 1)
    with store.unit_of_work(tenant) as uow:
        outbound = uow.messages.get("wamid.out1")
        delivered = [
            e for e in uow.messages.history("wamid.out1") if e.status is DeliveryStatus.DELIVERED
        ]
    assert outbound is not None
    assert outbound.status is DeliveryStatus.READ
    assert [e.at for e in delivered] == [at("1700000200")]
