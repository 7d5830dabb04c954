"""``POST /v1/events``: one event, a batch, or NDJSON; all or nothing; 201 once durable."""

# No `from __future__ import annotations`: FastAPI reads the parameter annotations of these
# routes at runtime, and they name objects local to routes().

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from trailkeeper.api.auth import Caller
from trailkeeper.api.encoding import JsonResponse, decode
from trailkeeper.api.errors import InvalidBody, PayloadTooLarge
from trailkeeper.api.openapi import INGEST_BODY
from trailkeeper.api.schemas import AUTHENTICATED, IngestResponse, error_responses
from trailkeeper.api.service import Service
from trailkeeper.errors import FieldError, InvalidEvent
from trailkeeper.store.base import Appended

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


# Bodies parsed and validated at once. Validation is Python, and so is much of the writer's
# work, so they take turns at the GIL whatever the number of threads: one thread validating
# keeps the writer fed (it validates several times faster than the writer appends), while
# sixteen (one per request in flight) only make the writer wait longer for the GIL after
# each of its SQLite calls. Measured with 16 requests in flight: 1 thread 24,054-25,707
# events/s, 2 threads 20,961-24,787, one per request 19,847-20,232.
VALIDATORS = 1


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["ingest"])
    validators = anyio.CapacityLimiter(VALIDATORS)

    def submit(tenant: str, body: bytes, content_type: str) -> Future[list[Appended]] | None:
        """Parse and validate a body and queue it for the writer (None: nothing to append)."""
        events = events_of(body, content_type)
        return service.log.record_later(tenant, events) if events else None

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
        # Parsing a large body blocks: it may not hold up the event loop. The commit is
        # awaited here, holding no thread.
        pending = await anyio.to_thread.run_sync(
            submit, caller.tenant, body, content_type, limiter=validators
        )
        acknowledged: list[tuple[str, int]] = []
        if pending is not None:
            started = time.perf_counter()
            appended = await asyncio.wrap_future(pending)
            acknowledged = [(item.id, item.seq) for item in appended]
            service.metrics.observe_commit(caller.tenant, len(acknowledged), time.perf_counter() - started)
        return JsonResponse(
            {"accepted": len(acknowledged), "events": [{"id": i, "seq": seq} for i, seq in acknowledged]},
            status_code=201,
        )

    return router
