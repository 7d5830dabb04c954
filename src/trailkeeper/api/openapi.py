"""``/openapi.json``: FastAPI's document, completed with what it cannot know.

The ingest body is read by hand (it may be one event, a batch or NDJSON), so its three forms
are described here, from the same TypedDicts :mod:`trailkeeper.events` validates with. And
FastAPI documents a 422 for every route with parameters, while this API answers a bad
parameter with 400; those 422s are removed, so that the document says only what happens.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from trailkeeper.api.schemas import ERROR_MODELS
from trailkeeper.events import MAX_BATCH, Event

_REF = "#/components/schemas/{model}"
_VALIDATION_REF = "#/components/schemas/HTTPValidationError"

# What the server adds to every stored record (CONTRACT section 2).
_SERVER_FIELDS: dict[str, Any] = {
    "tenant": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
    "seq": {"type": "integer", "minimum": 0, "description": "0-based position in the tenant's log"},
    "received_at": {"type": "string", "description": "UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ"},
    "leaf_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "RFC 9162 leaf hash, hex"},
}
_ALWAYS_STORED = ["id", "occurred_at", "outcome", *_SERVER_FIELDS]


def event_schemas() -> dict[str, Any]:
    """Component schemas of the event as sent (``Event``, ``EventBatch``) and as stored
    (``Record``), and of the objects inside them."""
    event = TypeAdapter(Event).json_schema(ref_template=_REF)
    components: dict[str, Any] = event.pop("$defs", {})
    event["title"] = "Event"
    components["Event"] = event
    components["EventBatch"] = {
        "title": "EventBatch",
        "type": "object",
        "properties": {
            "events": {"type": "array", "items": {"$ref": _REF.format(model="Event")}, "maxItems": MAX_BATCH}
        },
        "required": ["events"],
        "additionalProperties": False,
    }
    record = copy.deepcopy(event)
    record["title"] = "Record"
    record["description"] = "A stored event: what was sent, normalised, and what the server added"
    record["properties"].update(_SERVER_FIELDS)
    record["required"] = sorted(set(record.get("required", [])) | set(_ALWAYS_STORED))
    components["Record"] = record
    return components


INGEST_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        f'One event, a batch `{{"events": [...]}}` of at most {MAX_BATCH}, or NDJSON (one event a line). '
        "At most 5 MiB. All or nothing."
    ),
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [{"$ref": _REF.format(model="Event")}, {"$ref": _REF.format(model="EventBatch")}]
            }
        },
        "application/x-ndjson": {"schema": {"type": "string", "description": "One event per line"}},
    },
}


def _drop_implicit_422(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            implicit = responses.get("422", {}).get("content", {}).get("application/json", {})
            if implicit.get("schema", {}).get("$ref") == _VALIDATION_REF:
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def _plain_parameters(document: dict[str, Any]) -> None:
    # An optional parameter is documented by pydantic as "string or null"; a query string
    # has no null, only absence, which "required": false already says.
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                choices = schema.get("anyOf", [])
                if len(choices) == 2 and {"type": "null"} in choices:
                    (kept,) = [choice for choice in choices if choice != {"type": "null"}]
                    del schema["anyOf"]
                    schema.update(kept)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    _drop_implicit_422(document)
    _plain_parameters(document)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(event_schemas())
    for model in ERROR_MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi`'s document, built once, at ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
