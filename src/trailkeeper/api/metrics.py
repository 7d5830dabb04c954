"""Prometheus metrics of one app, in a registry of its own (so that two apps in one process,
as in the tests, never share a series)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trailkeeper.auditlog import AuditLog

UNMATCHED = "unmatched"
# Any other method a client invents is counted as one, so it cannot add series at will.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# From a lone fsync on a fast disk to a group commit under heavy load.
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _TreeSizes(Collector):
    """Each tenant's tree size, read from the store when scraped, so that it is never stale."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("trailkeeper_tree_size", "Events in the tenant's log", labels=["tenant"])
        for tenant in self._log.store.tenants():
            gauge.add_metric([tenant], self._log.store.tree_size(tenant))
        yield gauge


class Metrics:
    def __init__(self, log: AuditLog) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "trailkeeper_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "trailkeeper_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.ingested = Counter(
            "trailkeeper_events_ingested",
            "Events acknowledged by POST /v1/events (repeated ids included)",
            ["tenant"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "trailkeeper_commit_seconds",
            "Time from handing a batch to the writer to its durable commit",
            buckets=_COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_TreeSizes(log))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_commit(self, tenant: str, events: int, seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        self.ingested.labels(tenant).inc(events)

    def exposition(self) -> bytes:
        """The Prometheus text format; blocking, since the tree sizes are read from the store."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (``/v1/events/{id}``, never the id
    itself, which would make a series per event)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before answering

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.observe_request(method, route, status, time.perf_counter() - started)
