"""What every route of one app shares: the log, the key checks, the metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from trailkeeper.api.auth import READ, WRITE, Authenticator, Caller
from trailkeeper.api.metrics import Metrics
from trailkeeper.api.readlog import READ as READ_ACTION
from trailkeeper.api.readlog import record_read
from trailkeeper.auditlog import AuditLog
from trailkeeper.errors import TrailkeeperError

T = TypeVar("T")

MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass
class Service:
    log: AuditLog
    auth: Authenticator
    metrics: Metrics
    max_body_bytes: int = MAX_BODY_BYTES
    reader: Callable[..., Awaitable[Caller]] = field(init=False)
    writer: Callable[..., Awaitable[Caller]] = field(init=False)

    def __post_init__(self) -> None:
        self.reader = self.auth.requiring(READ)
        self.writer = self.auth.requiring(WRITE)

    async def audited_read(
        self,
        caller: Caller,
        endpoint: str,
        params: Mapping[str, object],
        read: Callable[[], T],
        count: Callable[[T], int],
        *,
        target: tuple[str, str] | None = None,
        extra: Callable[[T], Mapping[str, Any]] | None = None,
    ) -> T:
        """Run ``read`` off the event loop and record it as ``audit.log.read`` in the caller's
        tenant, with what it found, or with the error it met (a probe for another tenant's
        ids is worth seeing too)."""

        def work() -> T:
            note = {"endpoint": endpoint, "params": params, "target": target}
            try:
                result = read()
            except TrailkeeperError as exc:
                record_read(self.log, caller, action=READ_ACTION, results=0, error=exc.code, **note)
                raise
            more = extra(result) if extra is not None else None
            record_read(self.log, caller, action=READ_ACTION, results=count(result), extra=more, **note)
            return result

        return await run_in_threadpool(work)


__all__ = ["MAX_BODY_BYTES", "Service"]
