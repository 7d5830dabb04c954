"""``POST /v1/events``: one event, a batch, or NDJSON; all or nothing; 201 once durable."""

# No `from __future__ import annotations`: FastAPI reads the parameter annotations of these
# routes at runtime, and they name objects local to routes().

import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trailkeeper.api.auth import Caller
from trailkeeper.api.encoding import JsonResponse, decode
from trailkeeper.api.errors import InvalidBody, PayloadTooLarge
from trailkeeper.api.openapi import INGEST_BODY
from trailkeeper.api.schemas import AUTHENTICATED, IngestResponse, error_responses
from trailkeeper.api.service import Service
from trailkeeper.errors import FieldError, InvalidEvent

NDJSON = "application/x-ndjson"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``: from its
    declared length when there is one, else while it arrives (chunked bodies declare none)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    return bytes(body)


def _ndjson_events(body: bytes) -> list[Any]:
    events: list[Any] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            events.append(decode(line))
        except ValueError as exc:
            message = f"line {number} of the NDJSON body is not JSON: {exc}"
            raise InvalidBody(message, {"line": number}) from None
    return events


def events_of(body: bytes, content_type: str) -> Sequence[Any]:
    """The events a body holds. Any media type but NDJSON is read as JSON, so that a plain
    ``curl -d`` works."""
    if content_type.split(";", 1)[0].strip().lower() == NDJSON:
        return _ndjson_events(body)
    if not body.strip():
        raise InvalidBody('the body is empty: send an event, {"events": [...]} or NDJSON')
    try:
        value = decode(body)
    except ValueError as exc:
        raise InvalidBody(f"the body is not JSON: {exc}") from None
    # An event never has a field named "events" (unknown fields are refused), so a body
    # whose only field it is can only be a batch.
    if isinstance(value, dict) and value.keys() == {"events"}:
        batch = value["events"]
        if not isinstance(batch, list):
            raise InvalidEvent([FieldError(0, "events", "must be a list of events")])
        return batch
    return [value]


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["ingest"])

    def ingest(tenant: str, body: bytes, content_type: str) -> list[tuple[str, int]]:
        events = events_of(body, content_type)
        started = time.perf_counter()
        acknowledged = service.log.append_ids(tenant, events)
        service.metrics.observe_commit(tenant, len(acknowledged), time.perf_counter() - started)
        return acknowledged

    @router.post(
        "/v1/events",
        status_code=201,
        response_model=IngestResponse,
        responses=error_responses(*AUTHENTICATED, 413, 422),
        openapi_extra={"requestBody": INGEST_BODY},
        summary="Record events",
    )
    async def record_events(request: Request, caller: Annotated[Caller, Depends(service.writer)]) -> Response:
        """Append one event, a batch or NDJSON, all or nothing. Acknowledged means durable: the
        201 is sent after the commit. An event whose `id` the tenant holds is not stored again;
        its first `seq` is returned."""
        body = await read_body(request, service.max_body_bytes)
        content_type = request.headers.get("content-type", "application/json")
        # Parsing a large body and committing both block: neither may hold up the event loop.
        acknowledged = await run_in_threadpool(ingest, caller.tenant, body, content_type)
        return JsonResponse(
            {"accepted": len(acknowledged), "events": [{"id": i, "seq": seq} for i, seq in acknowledged]},
            status_code=201,
        )

    return router
