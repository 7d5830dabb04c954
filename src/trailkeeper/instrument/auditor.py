"""Auditor: one way to record, into an embedded ``AuditLog`` or through a remote ``Client``.

    audit = Auditor(log, tenant="acme")     # embedded: AuditLog.record(tenant, **event)
    audit = Auditor(client)                 # remote: Client.record(**event), the key's tenant
    audit.record(category="workflow", action="alert.sent", actor={"type": "agent", "id": "a1"})

Every event goes out with the stamps in force (:mod:`trailkeeper.instrument.context`). The
two kinds of sink are told apart by the shape of their ``record``: one that takes a tenant
first needs ``tenant=``, one that does not refuses it, so that a mix-up fails at once rather
than at the first event.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from trailkeeper.errors import InvalidArgument
from trailkeeper.instrument.context import stamped

__all__ = ["Auditor", "EmbeddedSink", "RemoteSink"]

_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)


class EmbeddedSink(Protocol[_R_co]):
    """What ``AuditLog`` offers: records into any tenant, named first."""

    def record(self, tenant: str, **event: Any) -> _R_co: ...


class RemoteSink(Protocol[_R_co]):
    """What ``Client`` offers: records into the tenant of its API key."""

    def record(self, **event: Any) -> _R_co: ...


class Auditor(Generic[_R]):
    """Records events with the stamps in force. ``record`` returns what the sink returns:
    the stored record of an ``AuditLog``, the event id a ``Client`` queued."""

    @overload
    def __init__(self: Auditor[_R], sink: EmbeddedSink[_R], *, tenant: str) -> None: ...

    @overload
    def __init__(self: Auditor[_R], sink: RemoteSink[_R], *, tenant: None = None) -> None: ...

    def __init__(self, sink: EmbeddedSink[_R] | RemoteSink[_R], *, tenant: str | None = None) -> None:
        record = getattr(sink, "record", None)
        if not callable(record):
            raise InvalidArgument("sink", f"{type(sink).__name__} has no record method")
        takes_tenant = _takes_tenant(record)
        if takes_tenant and tenant is None:
            raise InvalidArgument("tenant", f"is required to record into {type(sink).__name__}")
        if not takes_tenant and tenant is not None:
            raise InvalidArgument(
                "tenant", f"{type(sink).__name__} records into the tenant of its API key; give none"
            )
        self.sink = sink
        self.tenant = tenant
        self._record = cast(
            "Callable[..., _R]", functools.partial(record, tenant) if takes_tenant else record
        )

    def record(self, **event: Any) -> _R:
        """Record one event (the fields of CONTRACT section 2), stamps filled in."""
        return self._record(**stamped(event))

    async def arecord(self, **event: Any) -> _R:
        """As :meth:`record`, on a worker thread, so that an embedded log's commit never
        holds up the event loop. The stamps go along: ``to_thread`` copies the context."""
        return await asyncio.to_thread(self.record, **event)

    def __repr__(self) -> str:
        into = f" tenant={self.tenant!r}" if self.tenant is not None else ""
        return f"<Auditor {type(self.sink).__name__}{into}>"


def _takes_tenant(record: Callable[..., object]) -> bool:
    """Whether a bound ``record`` needs a positional argument (the tenant) before the event."""
    try:
        parameters = inspect.signature(record).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: take it as keyword-only
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional and p.default is inspect.Parameter.empty for p in parameters)
