"""What the API's responses look like, for ``/openapi.json``.

The routes answer with plain JSON built by the facade; these models only describe it, so that
the document is the truth a client and schemathesis can check every response against. The
event itself is described by the very TypedDicts that validate it (see :mod:`.openapi`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

# The stored record is described once, in components, from the event schema (see .openapi).
StoredRecord = Annotated[dict[str, Any], WithJsonSchema({"$ref": "#/components/schemas/Record"})]


class ErrorBody(BaseModel):
    code: str = Field(description="A stable, machine-readable name of the error")
    message: str = Field(description="One line for a person")
    details: Any = Field(description="What the error concerns, or null")


class ErrorResponse(BaseModel):
    error: ErrorBody


class FieldProblem(BaseModel):
    index: int = Field(description="0-based position of the event in the request")
    field: str = Field(description="Path of the field, e.g. `actor.type`; empty for the whole event")
    message: str


class InvalidEventBody(BaseModel):
    code: Literal["invalid_event"]
    message: str
    details: list[FieldProblem]


class InvalidEventResponse(BaseModel):
    error: InvalidEventBody


class Acknowledged(BaseModel):
    id: str
    seq: int = Field(description="Position in the tenant's log; the first one for a repeated id")


class IngestResponse(BaseModel):
    accepted: int
    events: list[Acknowledged]


class EventPage(BaseModel):
    events: list[StoredRecord]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")


class RunFailure(BaseModel):
    id: str
    seq: int
    action: str
    occurred_at: str
    step: str | None
    description: str | None


class RunSummary(BaseModel):
    trigger: str | None
    name: str | None
    started_at: str
    ended_at: str | None = Field(description="When the run completed or failed; null while it runs")
    outcome: Literal["success", "failure", "pending"]
    event_count: int
    counts: dict[str, int] = Field(description="Events per action")
    failures: list[RunFailure]


class WorkflowRun(BaseModel):
    run_id: str
    events: list[StoredRecord] = Field(description="Every event of the run, oldest first")
    summary: RunSummary


class GroupCount(BaseModel):
    key: str | None = Field(description="The group; for hour and day, the bucket's start (UTC)")
    count: int


class Stats(BaseModel):
    group_by: str
    total: int
    counts: list[GroupCount]


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    leaf_hash: str = Field(description="Standard base64")
    hashes: list[str] = Field(description="RFC 9162 section 2.1.3 audit path, standard base64")


class ConsistencyProof(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_size: int = Field(alias="from")
    to: int
    hashes: list[str] = Field(description="RFC 9162 section 2.1.4 proof, standard base64")


class Health(BaseModel):
    status: Literal["ok"]


_DESCRIPTIONS = {
    400: "A parameter or the body is malformed; the message says which and where",
    401: "No API key, or one that is unknown or revoked",
    403: "The key lacks the scope this endpoint needs",
    404: "Nothing of this tenant by that name (another tenant's data included)",
    413: "The body is over 5 MiB",
    422: "At least one event is invalid; none was stored",
    429: "Too many requests for this key",
    500: "A fault of the server, never of the request",
    503: "The store cannot be used right now",
}

_CHALLENGE = {
    "WWW-Authenticate": {
        "description": "RFC 6750 bearer challenge",
        "required": True,
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the key may send again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


# Errors are JSON whatever the route's own media type, so their content is spelt out (a
# "model" would be documented in the route's media type, text/plain for the checkpoint).
ERROR_MODELS: tuple[type[BaseModel], ...] = (ErrorResponse, InvalidEventResponse)


def _json_of(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route, each in the one error shape."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = InvalidEventResponse if status == 422 else ErrorResponse
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[status], "content": _json_of(model)}
        if status in (401, 403):
            entry["headers"] = _CHALLENGE
        if status == 429:
            entry["headers"] = _RETRY_AFTER
        documented[status] = entry
    return documented


# Every authenticated endpoint can answer these.
AUTHENTICATED = (400, 401, 403, 429, 500, 503)


def text_response(description: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {media: {"schema": {"type": "string"}} for media in media_types},
        }
    }
