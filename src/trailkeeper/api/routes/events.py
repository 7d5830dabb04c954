"""The investigation endpoints: search, one event, a workflow run, counts."""

# No `from __future__ import annotations`: FastAPI reads the parameter annotations of these
# routes at runtime, and they name objects local to routes().

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from trailkeeper.api.auth import Caller
from trailkeeper.api.encoding import JsonResponse
from trailkeeper.api.routes.params import SearchParams, StatsParams
from trailkeeper.api.schemas import (
    AUTHENTICATED,
    EventPage,
    Stats,
    StoredRecord,
    WorkflowRun,
    error_responses,
)
from trailkeeper.api.service import Service
from trailkeeper.auditlog import Page
from trailkeeper.errors import NotFound
from trailkeeper.store.base import Record


def _quoted(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["investigation"])
    log = service.log
    Reader = Annotated[Caller, Depends(service.reader)]

    @router.get(
        "/v1/events",
        response_model=EventPage,
        responses=error_responses(*AUTHENTICATED, 404),
        summary="Search events",
    )
    async def search_events(params: Annotated[SearchParams, Query()], caller: Reader) -> Response:
        """Events matching every filter and `q`, newest first unless `order=asc`, a page at a
        time. Paging with `next_cursor` never skips or repeats an event, even while new ones
        arrive: a walk sees the log as it was at its first page. A cursor of another tenant
        is 404."""

        def search() -> Page:
            return log.search(
                caller.tenant,
                params.q or "",
                limit=params.limit,
                cursor=params.cursor,
                order=params.order,
                since=params.since,
                until=params.until,
                **params.filters(),
            )

        page = await service.audited_read(
            caller, "GET /v1/events", params.given(), search, lambda page: len(page.events)
        )
        return JsonResponse(page.to_json())

    @router.get(
        "/v1/events/{id}",
        response_model=StoredRecord,
        responses=error_responses(*AUTHENTICATED, 404),
        summary="One event",
    )
    async def get_event(event_id: Annotated[str, Path(alias="id")], caller: Reader) -> Response:
        """The stored record of one event of the key's tenant, by its `id`."""

        def get() -> Record:
            record = log.get(caller.tenant, event_id)
            if record is None:
                raise NotFound(f"no event {_quoted(event_id)}")
            return record

        record = await service.audited_read(
            caller, "GET /v1/events/{id}", {"id": event_id}, get, lambda _: 1, target=("event", event_id)
        )
        return JsonResponse(record)

    @router.get(
        # A run id is any string, "/" included: the path converter keeps it whole.
        "/v1/workflow-runs/{run_id:path}",
        response_model=WorkflowRun,
        responses=error_responses(*AUTHENTICATED, 404),
        summary="One workflow run",
    )
    async def get_workflow_run(run_id: str, caller: Reader) -> Response:
        """Every event of a workflow run, oldest first, and its summary: trigger, start, end,
        outcome, counts by action and failures."""
        run = await service.audited_read(
            caller,
            "GET /v1/workflow-runs/{run_id}",
            {"run_id": run_id},
            lambda: log.workflow_run(caller.tenant, run_id),
            lambda run: len(run["events"]),
            target=("workflow_run", run_id),
        )
        return JsonResponse(run)

    @router.get(
        "/v1/stats",
        response_model=Stats,
        responses=error_responses(*AUTHENTICATED),
        summary="Count events",
    )
    async def stats(params: Annotated[StatsParams, Query()], caller: Reader) -> Response:
        """Counts of the matching events per group."""
        counts = await service.audited_read(
            caller,
            "GET /v1/stats",
            params.given(),
            lambda: log.stats(
                caller.tenant,
                params.q or "",
                group_by=params.group_by,
                since=params.since,
                until=params.until,
                **params.filters(),
            ),
            lambda counts: int(counts["total"]),
        )
        return JsonResponse(counts)

    return router
