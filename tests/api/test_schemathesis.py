"""The live ``/openapi.json`` is the truth: a bounded schemathesis run against the real server
finds no server error, no undocumented status or media type, and no response that breaks
its schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.api.helpers import Api, event, record

TENANT = "schema-run"


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    # The document describes an NDJSON body as a string; anything else is sent as one line.
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else json.dumps(value).encode()


@pytest.fixture(scope="module")
def headers(api: Api) -> dict[str, str]:
    client = api.client(TENANT)
    run = {"run_id": "run-1", "trigger": "schedule"}
    record(
        client,
        event(id="known", context={"ip": "10.1.2.3"}, targets=[{"type": "user", "id": "u_9"}]),
        event("workflow.started", category="workflow", workflow=run),
        event("workflow.completed", category="workflow", workflow=run),
    )
    return {"Authorization": str(client.headers["Authorization"])}


def test_every_response_is_what_the_document_says(api: Api, headers: dict[str, str]) -> None:
    document = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    cases = document.as_strategy(GenerationMode.POSITIVE) | document.as_strategy(GenerationMode.NEGATIVE)

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(
            headers=headers,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ],
        )

    check()
