"""``/openapi.json`` documents every route of CONTRACT section 4, with its parameters."""

from __future__ import annotations

from typing import Any

import pytest
from tests.api.helpers import Api

FILTERS = {"q", "category", "action", "actor", "actor_type", "target", "target_type", "outcome"}
FILTERS |= {"integration", "workflow_run", "ip", "since", "until"}

ROUTES = {
    ("post", "/v1/events"): set(),
    ("get", "/v1/events"): FILTERS | {"order", "limit", "cursor"},
    ("get", "/v1/events/{id}"): {"id"},
    ("get", "/v1/workflow-runs/{run_id}"): {"run_id"},
    ("get", "/v1/stats"): FILTERS | {"group_by"},
    ("get", "/v1/export"): FILTERS | {"format", "order"},
    ("get", "/v1/checkpoint"): set(),
    ("get", "/v1/proofs/inclusion"): {"seq", "tree_size"},
    ("get", "/v1/proofs/consistency"): {"from", "to"},
    ("get", "/v1/public-key"): set(),
    ("get", "/healthz"): set(),
    ("get", "/metrics"): set(),
}


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    response = api.client_with(None).get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_route_is_documented_with_exactly_its_parameters(document: dict[str, Any]) -> None:
    documented = {
        (method, path): {p["name"] for p in operation.get("parameters", [])}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }

    assert documented == ROUTES


def test_errors_are_documented_as_json_in_the_one_shape(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    (media,) = response["content"]
                    assert media == "application/json", (method, path, status)


def test_only_ingest_answers_422(document: dict[str, Any]) -> None:
    answering = {
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "422" in operation["responses"]
    }

    assert answering == {("post", "/v1/events")}


def test_ingest_body_is_one_event_a_batch_or_ndjson(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]

    assert set(body) == {"application/json", "application/x-ndjson"}
    refs = [choice["$ref"] for choice in body["application/json"]["schema"]["oneOf"]]
    assert refs == ["#/components/schemas/Event", "#/components/schemas/EventBatch"]
    event = document["components"]["schemas"]["Event"]
    assert event["additionalProperties"] is False
    assert set(event["required"]) == {"category", "action", "actor"}


def test_every_v1_route_requires_a_bearer_key(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key of one tenant: `Authorization: Bearer <key>`.",
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert ("security" in operation) == path.startswith("/v1/")
