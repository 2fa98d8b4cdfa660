"""Every public entry point, thrown generated junk, on PostgreSQL and SQLite side by side.

Each generated call runs on both databases, in a unit of work whose caller catches the error and
leaves the block normally (what a service does). The properties:

- only `WastateError`s come out (a bad argument: `InvalidInput`), never `TypeError`,
  `OverflowError`, `UnicodeEncodeError`, a driver error, …;
- a refused call wrote nothing: the tenant's rows in every table are the same before and after;
- both databases accept or refuse the same call, with the same error;
- whatever was accepted can be read back and encoded as UTF-8 JSON (no NUL, no lone surrogate).

`CALLS` counts the generated calls of the run (each runs once per database); the session prints
it, and `test_the_fuzz_run_made_calls_and_found_no_strangers` (last in this file) checks it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Table, select

import wastate
from wastate import webhooks
from wastate.db.base import Base
from wastate.errors import (
    ConfigurationError,
    InvalidInput,
    SchemaNotReady,
    ServiceUnavailable,
    WastateError,
)
from wastate.state_manager import StateManager

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CALLS: Counter[str] = Counter()
"""Generated calls by entry point (each ran on both databases)."""
STRANGERS: list[str] = []
"""Exceptions that were not `WastateError`s: must stay empty."""


def fixed_clock() -> datetime:
    return NOW


# -- junk -------------------------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud83d", "a\udc00b", "\udfff", "ok\ud800"])
NASTY_CHARS = st.characters(
    codec=None, categories=["Cc", "Cs", "Zs", "Lu", "Nd", "So"], min_codepoint=0
)
NASTY_TEXT = st.one_of(
    st.text(NASTY_CHARS, max_size=12),
    SURROGATES,
    st.sampled_from(["", " ", "\x00", "a\x00b", "\n\t", "\u200b", "💬", "+91\x00980000001"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "9"]), st.integers(129, 5000)),
)
HUGE_INTS = st.one_of(
    st.sampled_from([2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -1, 0]),
    st.integers(),
)
EXTREME_TIMES = st.one_of(
    st.sampled_from(
        [
            datetime.min,
            datetime.max,
            datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))),
            datetime.max.replace(tzinfo=UTC),
            datetime(2026, 1, 1),  # naive
        ]
    ),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=14))])),
)
EXTREME_DURATIONS = st.one_of(
    st.sampled_from(
        [timedelta.max, timedelta.min, timedelta(days=10**6), timedelta(0), timedelta(-1)]
    ),
    st.timedeltas(),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    HUGE_INTS,
    st.floats(),
    NASTY_TEXT,
    st.binary(max_size=8),
    EXTREME_TIMES,
    EXTREME_DURATIONS,
    st.builds(object),
    st.frozensets(st.integers(), max_size=2),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(NASTY_TEXT, st.integers(), st.none()), inner, max_size=3),
        st.sets(st.integers(), max_size=2),
    ),
    max_leaves=8,
)


def deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": [value]}
    return value


_JUNK = st.one_of(
    SCALARS,
    NESTED,
    st.builds(deep, st.sampled_from([40, 400])),
    st.sampled_from([[[]] * 3, {(): 1}]),
)
JUNK = st.deferred(lambda: _JUNK)  # deferred: keeps the strategies' reprs (in reports) short


def arg(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An argument's values: mostly plausible, often junk."""
    return st.one_of(valid, valid, JUNK)


def rare(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field deep inside an argument: plausible, now and then junk (so that a body is often
    valid but for one field, the case a store must not half-accept)."""
    return st.one_of(valid, valid, valid, valid, valid, JUNK)


# -- plausible values -------------------------------------------------------------------------

WA_IDS = st.sampled_from(["+919800000001", "919800000002", "919800000001@c.us", "US.13491208655"])
CONVERSATIONS = st.sampled_from(["conv-a", "conv-b", "c" * 128])
CLIENTS = st.sampled_from(["default", "bot-2"])
NAMES = st.one_of(st.none(), st.sampled_from(["Asha", "  Ravi \n K ", "名前"]), NASTY_TEXT)
WAMIDS = st.sampled_from(["wamid.A1", "wamid.B2", "gen-7"])
DELIVERY = st.sampled_from(["queued", "sent", "failed", "delivered", "read", "played", "READ"])
LIFECYCLE = st.sampled_from(
    ["incoming", "pending_approval", "approved", "rejected", "sent", "failed"]
)
DURATIONS = st.sampled_from([timedelta(seconds=1), timedelta(days=1), timedelta(days=3650)])
LIMITS = st.sampled_from([1, 5, 1000])
AWARE = st.sampled_from([NOW - timedelta(hours=1), NOW.astimezone(timezone(timedelta(hours=5)))])
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_ERRORS = st.fixed_dictionaries(
    {},
    optional={
        "code": rare(st.sampled_from([131026, 470])),
        "title": rare(st.just("Message undeliverable")),
        "message": rare(st.just("failed")),
        "details": rare(st.just("detail")),
    },
)
ERRORS = st.deferred(lambda: _ERRORS)
_NEW_MESSAGE = st.fixed_dictionaries(
    {"meta_message_id": rare(WAMIDS), "direction": rare(st.sampled_from(["inbound", "outbound"]))},
    optional={
        "genesys_message_id": rare(WAMIDS),
        "conversation_id": rare(CONVERSATIONS),
        "status": rare(DELIVERY),
        "wa_id": rare(WA_IDS),
        "media_caption": rare(st.just("a caption")),
        "media_url": rare(st.just("https://example.com/x.jpg")),
        "error": rare(ERRORS),
        "occurred_at": rare(AWARE),
    },
)
NEW_MESSAGE = st.deferred(lambda: _NEW_MESSAGE)
_STATUS_EVENT = st.fixed_dictionaries(
    {"message_id": rare(WAMIDS), "status": rare(DELIVERY)},
    optional={
        "at": rare(AWARE),
        "error": rare(ERRORS),
        "pricing": rare(st.just({"billable": True, "category": "service"})),
        "conversation": rare(JSONISH),
        "biz_opaque_callback_data": rare(st.just("cb")),
        "recipient_id": rare(st.just("919800000001")),
    },
)
STATUS_EVENT = st.deferred(lambda: _STATUS_EVENT)
_APPROVAL_MESSAGE = st.fixed_dictionaries(
    {"id": rare(st.sampled_from(["m1", "m2", 7]))},
    optional={"body": rare(st.just("hello")), "meta": rare(JSONISH), "status": JUNK},
)
APPROVAL_MESSAGE = st.deferred(lambda: _APPROVAL_MESSAGE)


def call(
    name: str,
    *args: st.SearchStrategy[Any],
    required: dict[str, st.SearchStrategy[Any]] | None = None,
    **kwargs: st.SearchStrategy[Any],
) -> Any:
    """A strategy of one call: (name, args, kwargs); optional keyword arguments are sometimes
    left out (a missing required one is Python's TypeError, not a value wastate could check)."""
    return st.tuples(
        st.just(name),
        st.tuples(*args),
        st.fixed_dictionaries(required or {}, optional=kwargs),
    )


UOW_CALLS = st.one_of(
    call("mappings.get_or_create", arg(WA_IDS), contact_name=NAMES),
    call("mappings.by_wa_id", arg(WA_IDS)),
    call("mappings.by_conversation", arg(CONVERSATIONS)),
    call("mappings.correlate", arg(WA_IDS), arg(CONVERSATIONS), arg(st.none() | CONVERSATIONS)),
    call("mappings.close", arg(WA_IDS)),
    call("mappings.touch", arg(st.lists(st.tuples(WA_IDS, AWARE), max_size=2))),
    call("mappings.expire_batch", arg(DURATIONS), required={"limit": arg(LIMITS)}),
    call("mappings.purge_batch", arg(DURATIONS), required={"limit": arg(LIMITS)}),
    call("mappings.expire_idle", arg(DURATIONS), limit=arg(st.none() | LIMITS)),
    call("mappings.purge", arg(DURATIONS), limit=arg(st.none() | LIMITS)),
    call("messages.track", arg(NEW_MESSAGE)),
    call("messages.track_many", arg(st.lists(arg(NEW_MESSAGE), max_size=3))),
    call("messages.track_batch", arg(st.lists(arg(NEW_MESSAGE), max_size=3))),
    call("messages.update_status", arg(WAMIDS), arg(DELIVERY), at=arg(AWARE), error=arg(ERRORS)),
    call("messages.apply_status_events", arg(st.lists(arg(STATUS_EVENT), max_size=3))),
    call("messages.get", arg(WAMIDS)),
    call("messages.for_conversation", arg(CONVERSATIONS), limit=arg(LIMITS), before=arg(WAMIDS)),
    call("messages.history", arg(WAMIDS)),
    call("messages.pending", arg(WAMIDS)),
    call("messages.purge", arg(DURATIONS), limit=arg(LIMITS)),
    call("messages.purge_pending", arg(DURATIONS), limit=arg(LIMITS)),
    call("sessions.get", arg(CLIENTS)),
    call("sessions.get_or_default", arg(CLIENTS)),
    call(
        "sessions.record_authentication",
        arg(CLIENTS),
        required={"authenticated": arg(st.booleans())},
        account_info=arg(st.none() | st.just({"number": "+1555", "name": "Bot"})),
    ),
    call("sessions.mark_invalid", arg(CLIENTS), arg(st.none() | st.just("logged out"))),
    call("sessions.set_validation_interval", arg(CLIENTS), arg(st.sampled_from([1, 30]))),
    call("sessions.delete", arg(CLIENTS)),
    call("approvals.add", arg(CLIENTS), arg(APPROVAL_MESSAGE), arg(LIFECYCLE)),
    call(
        "approvals.move",
        arg(CLIENTS),
        arg(st.sampled_from(["m1", "m2"])),
        arg(LIFECYCLE),
        arg(LIFECYCLE),
        human_in_the_loop=arg(st.none() | st.booleans()),
        reason=arg(st.none() | st.just("too rude")),
    ),
    call("approvals.get", arg(CLIENTS), arg(st.sampled_from(["m1", "m2"]))),
    call("approvals.in_status", arg(CLIENTS), arg(LIFECYCLE), arg(st.none() | LIMITS)),
    call("approvals.counts", arg(CLIENTS)),
    call("approvals.history", arg(CLIENTS), arg(st.sampled_from(["m1", "m2"]))),
    call("approvals.clear", arg(CLIENTS), arg(st.none() | LIFECYCLE)),
    call("approvals.replace_all", arg(CLIENTS), arg(st.lists(JUNK, max_size=2))),
    call("approvals.iter_bucket", arg(CLIENTS), arg(LIFECYCLE), batch_size=arg(LIMITS)),
    call("statistics.get", arg(CLIENTS)),
    call("statistics.record_entry", arg(CLIENTS), arg(LIFECYCLE), arg(AWARE)),
    call("statistics.reset", arg(CLIENTS)),
    call("statistics.replace", arg(CLIENTS), JUNK),
    call("statistics.delete", arg(CLIENTS)),
    call("config.get", arg(CLIENTS), arg(st.sampled_from(["k", "human_in_the_loop"])), JUNK),
    call("config.get_for_write", arg(CLIENTS), arg(st.just("k"))),
    call("config.all", arg(CLIENTS)),
    call("config.set", arg(CLIENTS), arg(st.sampled_from(["k", "human_in_the_loop"])), JUNK),
    call("config.update", arg(CLIENTS), arg(st.dictionaries(st.just("k"), JSONISH))),
    call("config.delete", arg(CLIENTS), arg(st.just("k"))),
    call("config.replace_all", arg(CLIENTS), arg(st.dictionaries(st.just("k"), JSONISH))),
    call("api_keys.create", label=arg(st.none() | st.just("ci"))),
    call("api_keys.get", arg(st.just("0123456789abcdef"))),
    call("api_keys.all"),
    call("api_keys.revoke", arg(st.just("0123456789abcdef"))),
    call("api_keys.verify", arg(st.just("0123456789abcdef")), arg(st.just("00" * 24))),
)

FILES = Path(tempfile.mkdtemp(prefix="wastate-fuzz-"))
EXPORT_FILE = str(FILES / "state.json")
FOREIGN_FILE = FILES / "foreign.json"
FOREIGN_FILE.write_text('{"session": {"validation_interval_minutes": 99999999999}, "messages": {}}')

MANAGER_CALLS = st.one_of(
    call("is_session_valid"),
    call("update_session_status", arg(st.booleans()), arg(st.none() | st.just({"name": "Bot"}))),
    call("mark_session_invalid", arg(st.none() | st.just("logged out"))),
    call("requires_qr_scan"),
    call("get_session_info"),
    call("set_validation_interval", arg(st.sampled_from([1, 30]))),
    call("add_message", arg(APPROVAL_MESSAGE), arg(LIFECYCLE)),
    call("get_messages", arg(LIFECYCLE), arg(st.none() | LIMITS)),
    call("get_message", arg(st.sampled_from(["m1", "m2"]))),
    call("get_message_history", arg(st.sampled_from(["m1", "m2"]))),
    call(
        "move_message",
        arg(st.sampled_from(["m1", "m2"])),
        arg(LIFECYCLE),
        arg(LIFECYCLE),
        reason=arg(st.none() | st.just("ok")),
    ),
    call("clear_messages", arg(st.none() | LIFECYCLE)),
    call("get_statistics"),
    call("reset_statistics"),
    call("get_config", arg(st.just("k")), JUNK),
    call("set_config", arg(st.sampled_from(["k", "human_in_the_loop"])), JUNK),
    call("update_config", arg(st.dictionaries(st.just("k"), JSONISH))),
    call("get_full_state"),
    call("export_state", arg(st.just(EXPORT_FILE)), progress=arg(st.just(lambda n: None))),
    call("backup_state"),
    call("import_state", arg(st.sampled_from([EXPORT_FILE, FOREIGN_FILE, "/nonexistent/x"]))),
)

_WEBHOOK_MESSAGE = st.fixed_dictionaries(
    {
        "from": rare(WA_IDS),
        "id": rare(WAMIDS),
        "timestamp": rare(st.sampled_from(["1763800000", 1763800000, "99999999999999999999"])),
        "type": rare(st.sampled_from(["text", "image", "weird"])),
    },
    optional={
        "text": rare(st.just({"body": "hi"})),
        "image": rare(st.just({"id": "media-1", "caption": "c"})),
        "errors": rare(st.lists(ERRORS, max_size=1)),
    },
)
WEBHOOK_MESSAGE = st.deferred(lambda: _WEBHOOK_MESSAGE)
_WEBHOOK_STATUS = st.fixed_dictionaries(
    {
        "id": rare(WAMIDS),
        "status": rare(DELIVERY),
        "timestamp": rare(st.just("1763800001")),
        "recipient_id": rare(st.just("919800000001")),
    },
    optional={
        "errors": rare(st.lists(ERRORS, max_size=1)),
        "pricing": rare(JSONISH),
        "conversation": rare(st.just({"id": "c1"})),
    },
)
WEBHOOK_STATUS = st.deferred(lambda: _WEBHOOK_STATUS)
_WEBHOOK = st.fixed_dictionaries(
    {
        "object": rare(st.just("whatsapp_business_account")),
        "entry": rare(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": rare(st.just("WABA")),
                        "changes": rare(
                            st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "field": rare(st.just("messages")),
                                        "value": rare(
                                            st.fixed_dictionaries(
                                                {},
                                                optional={
                                                    "contacts": rare(
                                                        st.lists(
                                                            st.fixed_dictionaries(
                                                                {
                                                                    "wa_id": rare(WA_IDS),
                                                                    "profile": rare(
                                                                        st.fixed_dictionaries(
                                                                            {"name": rare(NAMES)}
                                                                        )
                                                                    ),
                                                                }
                                                            ),
                                                            max_size=1,
                                                        )
                                                    ),
                                                    "messages": rare(
                                                        st.lists(WEBHOOK_MESSAGE, max_size=2)
                                                    ),
                                                    "statuses": rare(
                                                        st.lists(WEBHOOK_STATUS, max_size=2)
                                                    ),
                                                    "errors": rare(st.lists(ERRORS, max_size=1)),
                                                },
                                            )
                                        ),
                                    }
                                ),
                                max_size=2,
                            )
                        ),
                    }
                ),
                max_size=2,
            )
        ),
    }
)
WEBHOOK = st.deferred(lambda: _WEBHOOK)
WEBHOOK_BODIES = st.one_of(
    WEBHOOK, WEBHOOK.map(lambda body: json.dumps(body, default=repr, skipkeys=True)), JUNK
)

CONNECT_CALLS = call(
    "connect",
    arg(
        st.sampled_from(
            [
                "sqlite://",
                "postgresql://u@127.0.0.1:1/x",
                "bogus://x",
                "mysql://h/d",
                "postgresql+asyncpg://h/d",
                "postgresql://h:notaport/d",
                "sqlite:///\ud83d.db",
                "",
            ]
        )
    ),
    arg(st.sampled_from(["none://", "memory://", "bogus://x"])),
    clock=arg(st.just(fixed_clock)),
    mapping_ttl_seconds=JUNK,
    activity_flush_seconds=JUNK,
    statement_timeout_ms=JUNK,
    cache_prefix=JUNK,
    bogus_setting=JUNK,
)


# -- running calls on both databases -----------------------------------------------------------

TENANT_TABLES: list[Table] = [
    table  # type: ignore[misc]
    for table in Base.metadata.sorted_tables
    if "tenant_id" in table.c
]


def snapshot(store: wastate.Store, tenant: str) -> list[list[tuple[Any, ...]]]:
    """Every row of `tenant` in every table, in a stable order."""
    with store.engine.connect() as connection:
        return [
            sorted(
                (
                    tuple(row)
                    for row in connection.execute(select(t).where(t.c.tenant_id == tenant))
                ),
                key=repr,
            )
            for t in TENANT_TABLES
        ]


def storable(rows: object) -> None:
    """What was stored encodes as UTF-8 JSON without NUL: what export and HTTP need."""
    text = json.dumps(rows, default=str, ensure_ascii=False)
    text.encode("utf-8")  # a lone surrogate raises here
    assert "\\u0000" not in text, "a NUL character was stored"


def outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, InvalidInput):
        return f"InvalidInput({exc.field})"
    return type(exc).__name__


def note_stranger(where: str, name: str, exc: BaseException | None) -> None:
    """Fail the example on an exception outside the family (and count it for the tally)."""
    if exc is not None and not isinstance(exc, WastateError):
        STRANGERS.append(f"{where} {name}: {type(exc).__name__}: {exc!r}"[:300])
        raise AssertionError(f"{where} {name} raised {type(exc).__name__}: {exc!r}") from exc


def run_uow_call(store: wastate.Store, tenant: str, name: str, args: Any, kwargs: Any) -> str:
    """Run one call in a unit of work that catches its error and commits; check what changed."""
    before = snapshot(store, tenant)
    error: BaseException | None = None
    try:
        with store.unit_of_work(tenant) as uow:
            repository, method = name.split(".")
            try:
                result = getattr(getattr(uow, repository), method)(*args, **kwargs)
                if isinstance(result, Iterator):
                    result = list(result)
            except Exception as exc:
                error = exc
    except Exception as exc:
        note_stranger(store.engine.dialect.name, f"{name} (leaving the unit of work)", exc)
    note_stranger(store.engine.dialect.name, name, error)
    after = snapshot(store, tenant)
    if error is not None:
        assert after == before, f"{name} was refused ({error!r}) but wrote"
    storable(after)
    return outcome(error)


def run_on_both(
    stores: dict[str, Any], run: Callable[[Any, str, Any, Any], str], calls: list[Any]
) -> None:
    for name, args, kwargs in calls:
        CALLS[name] += 1
        results = {dialect: run(target, name, args, kwargs) for dialect, target in stores.items()}
        assert results["postgresql"] == results["sqlite"], f"{name}{args}{kwargs}: {results}"


@pytest.fixture
def both(
    make_store: Callable[..., wastate.Store], postgres_url: str, sqlite_url: str
) -> dict[str, wastate.Store]:
    return {
        "postgresql": make_store(postgres_url, clock=fixed_clock),
        "sqlite": make_store(sqlite_url, clock=fixed_clock),
    }


@given(calls=st.lists(UOW_CALLS, min_size=1, max_size=16), tenant_suffix=st.uuids())
def test_repository_methods_raise_only_wastate_errors_and_agree(
    both: dict[str, wastate.Store], calls: list[Any], tenant_suffix: Any
) -> None:
    """Junk to every `uow.*` method: WastateErrors only, nothing written when refused, and
    PostgreSQL and SQLite answer alike."""
    tenant = f"fz-{tenant_suffix.hex[:16]}"
    run_on_both(
        both,
        lambda store, name, args, kwargs: run_uow_call(store, tenant, name, args, kwargs),
        calls,
    )


def run_ingest(store: wastate.Store, tenant: str, body: Any) -> str:
    before = snapshot(store, tenant)
    error: BaseException | None = None
    try:
        with store.unit_of_work(tenant) as uow:
            try:
                webhooks.ingest(uow, body)
            except Exception as exc:
                error = exc
    except Exception as exc:
        note_stranger(store.engine.dialect.name, "ingest (leaving the unit of work)", exc)
    note_stranger(store.engine.dialect.name, "webhooks.ingest", error)
    after = snapshot(store, tenant)
    if error is not None:
        assert after == before, f"ingest was refused ({error!r}) but wrote"
    storable(after)
    return outcome(error)


@given(bodies=st.lists(WEBHOOK_BODIES, min_size=1, max_size=4), tenant_suffix=st.uuids())
def test_ingest_raises_only_wastate_errors_and_agrees(
    both: dict[str, wastate.Store], bodies: list[Any], tenant_suffix: Any
) -> None:
    """Junk webhook bodies: WastateErrors only, nothing written when refused, both alike."""
    tenant = f"fz-{tenant_suffix.hex[:16]}"
    run_on_both(
        both,
        lambda store, name, args, kwargs: run_ingest(store, tenant, args[0]),
        [("webhooks.ingest", (body,), {}) for body in bodies],
    )


@pytest.fixture
def managers(
    postgres_url: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, StateManager]]:
    monkeypatch.chdir(FILES)  # junk relative paths given to export_state land there
    tenant = f"fz-sm-{os.urandom(6).hex()}"
    made = {
        dialect: StateManager(
            url,
            "none://",
            tenant_id=tenant,
            state_file=FILES / f"{dialect}.json",
            clock=fixed_clock,
        )
        for dialect, url in (("postgresql", postgres_url), ("sqlite", sqlite_url))
    }
    yield made
    for manager in made.values():
        manager.close()


def run_manager_call(manager: StateManager, name: str, args: Any, kwargs: Any) -> str:
    store = manager.store
    before = snapshot(store, manager.tenant_id)
    error: BaseException | None = None
    try:
        getattr(manager, name)(*args, **kwargs)
    except Exception as exc:
        error = exc
    note_stranger(store.engine.dialect.name, f"StateManager.{name}", error)
    after = snapshot(store, manager.tenant_id)
    if error is not None:
        assert after == before, f"StateManager.{name} was refused ({error!r}) but wrote"
    storable(manager.get_full_state())
    return outcome(error)


@given(calls=st.lists(MANAGER_CALLS, min_size=1, max_size=10))
def test_state_manager_methods_raise_only_wastate_errors_and_agree(
    managers: dict[str, StateManager], calls: list[Any]
) -> None:
    """Junk to every `StateManager` method: WastateErrors only, nothing written when refused,
    both databases alike, and the whole state always exports."""
    run_on_both(managers, run_manager_call, calls)


MANAGER_CONSTRUCTION = call(
    "StateManager",
    arg(st.sampled_from(["bogus://x", "postgresql://u@127.0.0.1:1/x"])),
    tenant_id=arg(st.just("t1")),
    client_id=arg(st.just("c1")),
    state_file=arg(st.just(EXPORT_FILE)),
    backup_dir=arg(st.just(str(FILES))),
    clock=arg(st.just(fixed_clock)),
)


@given(calls=st.lists(st.one_of(CONNECT_CALLS, MANAGER_CONSTRUCTION), min_size=1, max_size=4))
def test_connect_raises_only_configuration_errors(
    calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Junk settings to `connect()` and `StateManager()`: a `ConfigurationError` naming the
    variable (or `InvalidInput` for an id, `ServiceUnavailable` for a server not there,
    `SchemaNotReady` for a database without the schema)."""
    monkeypatch.chdir(FILES)  # a junk (None) URL means the default file, ./wastate.db
    for name, args, kwargs in calls:
        CALLS[name] += 1
        error: BaseException | None = None
        try:
            (wastate.connect if name == "connect" else StateManager)(*args, **kwargs).close()
        except Exception as exc:
            error = exc
        note_stranger("-", name, error)
        if error is not None:
            # SchemaNotReady: a reachable database without wastate's schema, rightly refused.
            allowed = ConfigurationError | InvalidInput | ServiceUnavailable | SchemaNotReady
            assert isinstance(error, allowed), error


# -- the cases the issue names, pinned ----------------------------------------------------------

PLUS_ONE = timezone(timedelta(hours=1))
MESSAGE = {"meta_message_id": "wamid.P1", "direction": "inbound"}
NAMED_CASES: list[tuple[str, Callable[[Any], Any], str]] = [
    (
        "surrogate contact name",
        lambda u: u.mappings.get_or_create(WA, contact_name="\ud83d"),
        "contact_name",
    ),
    ("surrogate wa_id", lambda u: u.mappings.get_or_create("+91\ud83d"), "wa_id"),
    ("list as wa_id", lambda u: u.mappings.get_or_create(["+919800000001"]), "wa_id"),
    (
        "NUL caption",
        lambda u: u.messages.track({**MESSAGE, "media_caption": "a\x00b"}),
        "messages[0].media_caption",
    ),
    (
        "surrogate error title",
        lambda u: u.messages.track({**MESSAGE, "error": {"title": "\ud83d"}}),
        "messages[0].error.title",
    ),
    (
        "error code past 2**63",
        lambda u: u.messages.track({**MESSAGE, "error": {"code": 2**63}}),
        "messages[0].error.code",
    ),
    (
        "error code past integer",
        lambda u: u.messages.update_status("wamid.P1", "failed", error={"code": 2**31}),
        "error.code",
    ),
    (
        "time overflowing UTC",
        lambda u: u.messages.update_status(
            "wamid.P1", "read", at=datetime.min.replace(tzinfo=PLUS_ONE)
        ),
        "at",
    ),
    (
        "NUL in JSON payload",
        lambda u: u.messages.apply_status_events(
            [{"message_id": "wamid.P1", "status": "read", "pricing": {"x": ["\x00"]}}]
        ),
        "events[0].pricing",
    ),
    ("huge age", lambda u: u.messages.purge(timedelta(days=10**6)), "older_than"),
    ("huge mapping age", lambda u: u.mappings.expire_idle(timedelta.max), "older_than"),
    ("negative batch limit", lambda u: u.mappings.expire_batch(timedelta(1), limit=-1), "limit"),
    ("no batch limit", lambda u: u.mappings.expire_batch(timedelta(1), limit=None), "limit"),
    ("limit past bigint", lambda u: u.mappings.purge_batch(timedelta(1), limit=2**63), "limit"),
    ("surrogate config key", lambda u: u.config.set("c", "\ud83d", 1), "key"),
    ("dict as config key", lambda u: u.config.set("c", {}, 1), "key"),
    ("surrogate JSON key", lambda u: u.config.set("c", "k", {"\ud83d": 1}), "config['k']"),
    ("list as client id", lambda u: u.config.get([1], "k"), "client_id"),
    ("surrogate label", lambda u: u.api_keys.create(label="\ud83d"), "label"),
    ("list as label", lambda u: u.api_keys.create(label=[1]), "label"),
    ("surrogate secret", lambda u: u.api_keys.verify("0123456789abcdef", "\udfff"), "secret"),
    (
        "surrogate message id",
        lambda u: u.approvals.add("c", {"id": "m\ud83d"}, "incoming"),
        "message_data.id",
    ),
    (
        "5000-digit message id",
        lambda u: u.approvals.add("c", {"id": 10**5000}, "incoming"),
        "message_data.id",
    ),
    ("NUL reason", lambda u: u.sessions.mark_invalid("c", "\x00"), "reason"),
    (
        "interval past integer",
        lambda u: u.sessions.set_validation_interval("c", 2**31),
        "validation_interval_minutes",
    ),
    (
        "nested 600 deep",
        lambda u: u.sessions.record_authentication("c", authenticated=True, account_info=deep(600)),
        "account_info.k[0].k[0]",
    ),
]
WA = "+919800000009"


@pytest.mark.parametrize(
    ("case", "bad_call", "field"), NAMED_CASES, ids=[case for case, _, _ in NAMED_CASES]
)
def test_each_named_bad_call_is_invalid_input_naming_its_field_and_writes_nothing(
    store: wastate.Store, tenant: str, case: str, bad_call: Callable[[Any], Any], field: str
) -> None:
    """The bad calls the issue found, on each database: InvalidInput naming the field, and a
    unit of work that caught it commits nothing of it."""
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create(WA)
    before = snapshot(store, tenant)
    with store.unit_of_work(tenant) as uow, pytest.raises(InvalidInput) as raised:
        bad_call(uow)
    assert raised.value.field.startswith(field), (case, raised.value)
    assert snapshot(store, tenant) == before


def webhook_body(name: str, caption: str, pricing: Any) -> dict[str, Any]:
    value = {
        "contacts": [{"wa_id": "919800000011", "profile": {"name": name}}],
        "messages": [
            {
                "from": "919800000011",
                "id": "wamid.W1",
                "timestamp": "1763800000",
                "type": "image",
                "image": {"id": "media-1", "caption": caption},
            }
        ],
        "statuses": [
            {"id": "wamid.W0", "status": "read", "timestamp": "1763800001", "pricing": pricing}
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (webhook_body("\ud83d", "ok", None), "entry[0].changes[0].value.contacts"),
        (
            webhook_body("Asha", "a\x00b", None),
            "entry[0].changes[0].value.messages[0].image.caption",
        ),
        (webhook_body("Asha", "ok", {"\udfff": 1}), "entry[0].changes[0].value.statuses[0]"),
    ],
    ids=["surrogate profile name", "NUL caption", "surrogate pricing key"],
)
def test_a_webhook_with_one_unstorable_string_is_refused_whole(
    store: wastate.Store, tenant: str, body: dict[str, Any], field: str
) -> None:
    """One bad string anywhere in a webhook: InvalidInput naming its path, and no mapping,
    message or parked status written (not even for the body's good parts)."""
    before = snapshot(store, tenant)
    with store.unit_of_work(tenant) as uow, pytest.raises(InvalidInput) as raised:
        webhooks.ingest(uow, body)
    assert raised.value.field.startswith(field), raised.value
    assert snapshot(store, tenant) == before


def test_state_manager_paths_and_callbacks_are_checked(database_url: str, tmp_path: Any) -> None:
    """A folder as the export file, a file as the backup folder, a NUL in a path, a progress
    that is no callable: InvalidInput naming the argument, and no file left behind."""
    (tmp_path / "a-file").write_text("x")
    with StateManager(database_url, "none://", tenant_id="fz-paths", clock=fixed_clock) as manager:
        for field, bad_call in (
            ("output_file", lambda: manager.export_state(tmp_path)),
            ("output_file", lambda: manager.export_state("a\x00b")),
            ("output_file", lambda: manager.export_state([1])),
            ("progress", lambda: manager.export_state(tmp_path / "s.json", progress=True)),
            ("path", lambda: manager.import_state(tmp_path / "missing.json")),
        ):
            with pytest.raises(InvalidInput) as raised:
                bad_call()
            assert raised.value.field == field
    backups_in_a_file = StateManager(
        database_url, "none://", tenant_id="fz-paths", backup_dir=tmp_path / "a-file"
    )
    with backups_in_a_file, pytest.raises(InvalidInput, match="backup_dir"):
        backups_in_a_file.backup_state()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_unmigrated_sqlite_file_is_schema_not_ready(tmp_path: Any) -> None:
    """SQLite's "no such table" is `SchemaNotReady`, as PostgreSQL's missing table is."""
    with wastate.connect(f"sqlite:///{tmp_path / 'empty.db'}", "none://") as store:
        for step in (
            lambda u: u.mappings.get_or_create(WA),
            lambda u: u.config.set("c", "k", 1),
            lambda u: u.messages.track(MESSAGE),
        ):
            with pytest.raises(wastate.errors.SchemaNotReady), store.unit_of_work("t") as uow:
                step(uow)


@pytest.mark.parametrize(
    ("database_url", "variable"),
    [
        ("bogus://x", "WASTATE_DATABASE_URL"),
        ("mysql://h/d", "WASTATE_DATABASE_URL"),
        ("postgresql+asyncpg://h/d", "WASTATE_DATABASE_URL"),
        ("postgresql://h:notaport/d", "WASTATE_DATABASE_URL"),
        ("sqlite:///\ud83d.db", "WASTATE_DATABASE_URL"),
    ],
)
def test_an_unusable_database_url_is_a_configuration_error(
    database_url: str, variable: str
) -> None:
    """An unknown scheme or driver, a bad port, text no driver takes: refused at `connect()`."""
    with pytest.raises(ConfigurationError, match=variable):
        wastate.connect(database_url, "none://")


def test_the_fuzz_run_made_calls_and_found_no_strangers(capsys: pytest.CaptureFixture[str]) -> None:
    """The tally: how many generated calls ran (each on both databases), and no stranger."""
    total = sum(CALLS.values())
    with capsys.disabled():
        print(
            f"\npublic API fuzz: {total} generated calls, {len(CALLS)} entry points,"
            f" {len(STRANGERS)} non-WastateError exceptions"
        )
    assert not STRANGERS, STRANGERS
    repository_calls = {name for name in CALLS if "." in name and name != "webhooks.ingest"}
    if repository_calls:  # the repository fuzz ran: it reached most entry points
        # Hypothesis favours simple examples, so a run reaches 40-60 of them; 20 leaves room.
        assert len(repository_calls) >= 20, sorted(repository_calls)
