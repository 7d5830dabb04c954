"""Liveness and metrics, for whoever runs the service; neither needs a key.

``/metrics`` is open as Prometheus expects; it shows tenant names and sizes, so the service
listens on loopback unless told otherwise, and an exposed one belongs behind a proxy.
"""

# No `from __future__ import annotations`: FastAPI reads the parameter annotations of these
# routes at runtime, and they name objects local to routes().

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trailkeeper.api.encoding import JsonResponse
from trailkeeper.api.schemas import Health, error_responses, text_response
from trailkeeper.api.service import Service


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["operations"])

    def store_usable() -> bool:
        try:
            service.log.store.tenants()
        except Exception:  # noqa: BLE001 - whatever the store raises, it is unusable
            return False
        return True

    @router.get("/healthz", response_model=Health, responses=error_responses(503), summary="Liveness")
    async def healthz() -> Response:
        """`{"status": "ok"}` while the store answers; 503 when it does not."""
        if await run_in_threadpool(store_usable):
            return JsonResponse({"status": "ok"})
        return JsonResponse(
            {"error": {"code": "unavailable", "message": "the store does not answer", "details": None}},
            status_code=503,
        )

    @router.get(
        "/metrics",
        response_class=Response,
        responses=text_response("Prometheus text exposition format", "text/plain"),
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:
        """Requests by route template and status, events ingested, commit latency, and the
        tree size of every tenant."""
        text = await run_in_threadpool(service.metrics.exposition)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return router
