"""The FastAPI app of CONTRACT section 4, over one :class:`~trailkeeper.auditlog.AuditLog`.

The app owns no state of its own beyond counters and rate-limit buckets: the caller opens
and closes the log (see :func:`trailkeeper.api.server.serve`).
"""

from __future__ import annotations

from fastapi import FastAPI

from trailkeeper import __version__
from trailkeeper.api.auth import TOUCH_INTERVAL, Authenticator
from trailkeeper.api.errors import install_error_handlers
from trailkeeper.api.metrics import Metrics, MetricsMiddleware
from trailkeeper.api.openapi import install_openapi
from trailkeeper.api.ratelimit import DEFAULT_BURST, DEFAULT_RATE, RateLimiter
from trailkeeper.api.routes import events, export, ingest, ops, proofs
from trailkeeper.api.service import MAX_BODY_BYTES, Service
from trailkeeper.auditlog import AuditLog

DESCRIPTION = """\
A verifiable audit log: every tenant's events form an RFC 9162 Merkle log with signed
checkpoints. Every endpoint under `/v1` takes `Authorization: Bearer <api key>`; the key's
tenant is the only one it sees. Errors are `{"error": {"code", "message", "details"}}`.
"""


def create_app(
    log: AuditLog,
    *,
    rate_limit: float | None = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    max_body_bytes: int = MAX_BODY_BYTES,
    touch_interval: float = TOUCH_INTERVAL,
) -> FastAPI:
    """The HTTP API over ``log``.

    ``rate_limit`` is each key's sustained requests per second (``None``: unlimited), with
    bursts of up to ``burst`` requests; ``touch_interval`` is how often, at most, a key's
    last use is written.
    """
    limiter = RateLimiter(rate_limit, burst) if rate_limit is not None else None
    service = Service(
        log=log,
        auth=Authenticator(log, limiter, touch_interval=touch_interval),
        metrics=Metrics(log),
        max_body_bytes=max_body_bytes,
    )
    app = FastAPI(
        title="trailkeeper",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        # An API answers the path it was asked, or 404: a redirect is one more status for
        # every client to handle, and `/v1/events/%2F` would bounce twice.
        redirect_slashes=False,
    )
    app.state.service = service
    for module in (ingest, events, export, proofs, ops):
        app.include_router(module.routes(service))
    install_error_handlers(app)
    install_openapi(app)
    # Added last, so outermost: it counts the 500s of the last-resort handler too.
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app
