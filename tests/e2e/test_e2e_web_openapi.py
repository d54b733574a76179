"""The REST API against its own OpenAPI document, with schemathesis, over HTTP to the app
served by uvicorn: no server errors, and every answer matches the documented status codes,
content types and schemas. A bounded number of examples per operation keeps it fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from web_harness import running_app

EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    with running_app(tmp_path_factory.mktemp("api"), template=sqlite_template, records=120) as it:
        yield it


def test_openapi_document_is_valid_and_complete(served: tuple[str, Any]) -> None:
    """The document loads as OpenAPI 3 and names every API route, with bearer auth described."""
    base, _ = served
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    labels = {r.ok().label for r in schema.get_all_operations()}
    assert {"GET /api/v1/disposals", "POST /api/v1/disposals/approve", "GET /api/v1/records/{record_id}",
            "POST /api/v1/holds", "POST /api/v1/holds/{hold_id}/lift", "GET /api/v1/dashboard",
            "POST /api/v1/policy/preview", "GET /api/v1/audit", "GET /api/v1/filters",
            "GET /api/v1/filters/{filter_id}", "POST /api/v1/filters",
            "DELETE /api/v1/filters/{filter_id}", "GET /api/v1/tokens", "POST /api/v1/tokens",
            "POST /api/v1/tokens/{token_id}/revoke"} <= labels


def _exercise(operation: Any, base: str, headers: dict[str, str]) -> None:
    """Run the bounded examples of one operation; raise on the first failing check."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


def test_every_operation_conforms(served: tuple[str, Any]) -> None:
    """Generated requests to every operation get conforming answers and never a 5xx."""
    base, estate = served
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # Revoking tokens last: an example may revoke the caller's own token, after which every
    # answer would be 401.
    operations.sort(key=lambda op: op.path.startswith("/api/v1/tokens/"))
    for operation in operations:
        who = "approver1" if operation.path.endswith("/approve") else "officer"
        try:
            _exercise(operation, base, {"Authorization": f"Bearer {estate.tokens[who]}"})
        except Exception as exc:  # collect them all, then fail once with every operation named
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert not failures, "\n\n".join(failures)
