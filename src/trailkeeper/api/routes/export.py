"""``GET /v1/export``: every match of the filters, streamed in one of five formats.

The export holds one page of records at a time, however many match. Everything that can be
refused (format, filters, query text) is checked, and the first chunk made, before the
status line goes out: once streaming has begun, a 200 cannot be taken back.
"""

# No `from __future__ import annotations`: FastAPI reads the parameter annotations of these
# routes at runtime, and they name objects local to routes().

import itertools
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from trailkeeper.api.auth import Caller
from trailkeeper.api.readlog import EXPORTED, record_read
from trailkeeper.api.routes.params import ExportParams
from trailkeeper.api.schemas import AUTHENTICATED, error_responses
from trailkeeper.api.service import Service
from trailkeeper.errors import TrailkeeperError
from trailkeeper.exporters import MEDIA_TYPES, Counted, attachment_name, encode_chunks, export_lines

_MEDIA = sorted({media.split(";", 1)[0] for media in MEDIA_TYPES.values()})


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["investigation"])
    log = service.log

    @router.get(
        "/v1/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "The export, streamed, as an attachment",
                "content": {media: {"schema": {"type": "string"}} for media in _MEDIA},
                "headers": {"Content-Disposition": {"schema": {"type": "string"}, "required": True}},
            },
            **error_responses(*AUTHENTICATED),
        },
        summary="Export events",
    )
    async def export(
        params: Annotated[ExportParams, Query()],
        caller: Annotated[Caller, Depends(service.reader)],
    ) -> Response:
        """Every event matching the filters: `ndjson` (the stored records), `csv`, `ocsf`
        (NDJSON of OCSF events), `cef` or `syslog` (RFC 5424 lines). Recorded in the tenant's
        log as `audit.log.exported`, with the number of events sent."""
        given = params.given()

        def record(count: int, *, complete: bool, error: str | None = None) -> None:
            record_read(
                log,
                caller,
                action=EXPORTED,
                endpoint="GET /v1/export",
                params=given,
                results=count,
                error=error,
                extra={"format": params.format, "complete": complete},
            )

        def begin() -> tuple[Iterator[bytes], Counted]:
            try:
                query_filter = log.filter(
                    params.q or "", since=params.since, until=params.until, **params.filters()
                )
                counted = Counted(log.iter_search(caller.tenant, query_filter, order=params.order))
                stream = encode_chunks(export_lines(params.format, counted))
                first = list(itertools.islice(stream, 1))
            except TrailkeeperError as exc:
                record(0, complete=False, error=exc.code)
                raise
            return itertools.chain(first, stream), counted

        def body(stream: Iterator[bytes], counted: Counted) -> Iterator[bytes]:
            complete = False
            try:
                yield from stream
                complete = True
            finally:
                # Also when the client goes away mid-stream: the record says how far it got.
                record(counted.count, complete=complete)

        stream, counted = await run_in_threadpool(begin)
        name = attachment_name(caller.tenant, params.format)
        return StreamingResponse(
            body(stream, counted),
            media_type=MEDIA_TYPES[params.format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return router
