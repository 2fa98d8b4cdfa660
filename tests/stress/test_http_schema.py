"""Schemathesis against the served OpenAPI schema, in-process: for generated requests to every
operation — fitting the schema and deliberately not — no answer is a 500 and every answer matches
the documented statuses, content types and bodies.

Driven through `APIOperation.as_strategy` and plain hypothesis: schemathesis' lazy pytest loader
does not run under pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import wastate
from wastate.http import HttpConfig, create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25
# The operations no request can be generated for in a mode, by name: hypothesis answers
# `Unsatisfiable` for them. `GET /health` takes no parameter, header or body, so nothing about a
# request to it can break its schema: it has no negative case. Asserted exactly, so an operation
# that newly cannot be generated for fails the test instead of going untested.
UNGENERATABLE = {
    GenerationMode.POSITIVE: set[str](),
    GenerationMode.NEGATIVE: {"GET /health"},
}


CONFIGS = {
    # A default tenant, so that most requests reach the store.
    "open": HttpConfig(default_tenant="schema-tenant", webhook_verify_token="verify-me"),
    # Keys required, signed webhooks bound to a tenant: every refusal must be documented too.
    "secured": HttpConfig(
        require_api_key=True,
        webhook_app_secret="app-secret",
        webhook_tenants={"106540352242922": "schema-tenant"},
    ),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """The app on a fresh SQLite file, configured as `CONFIGS` says."""
    path: Path = tmp_path_factory.mktemp("schemathesis") / "wastate.db"
    store = wastate.connect(f"sqlite:///{path}", "memory://")
    store.migrate()
    app = create_app(store, config=CONFIGS[request.param])
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


def operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def test_the_schema_lists_every_operation(api_schema: Any) -> None:
    """The fuzzing covers the seed's routes and the additions (no silently empty run)."""
    labels = {operation.label for operation in operations(api_schema)}
    assert "GET /state/mapping/{waId}" in labels
    assert "PATCH /state/message/{messageId}" in labels
    assert len(labels) >= 11


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_500_or_breaks_its_schema(api_schema: Any, mode: Any) -> None:
    """Generated requests to every operation never get a 500 nor an undocumented answer."""
    failures: list[str] = []
    unsatisfiable: set[str] = set()
    for operation in operations(api_schema):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            exercise()
        except Unsatisfiable:
            unsatisfiable.add(operation.label)
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert unsatisfiable == UNGENERATABLE[mode], sorted(unsatisfiable)
