"""The log records what is done to it (CONTRACT section 4): every read by a key, through the
API or the console, goes into the key's tenant's own log as ``audit.log.read`` or
``audit.log.exported``, with the key as the actor.

The record is queued, not awaited: a reader never waits for a commit, and the record still
lands in the next group commit. Paging is not disturbed, since a cursor only ever shows the
log as it was when the walk began.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from starlette.requests import HTTPConnection

from trailkeeper.auditlog import AuditLog
from trailkeeper.canonical import MAX_SAFE_INTEGER
from trailkeeper.errors import TrailkeeperError
from trailkeeper.store.base import ApiKey, Appended

READ = "audit.log.read"
EXPORTED = "audit.log.exported"
# The user agent a read records is kept up to this length.
_MAX_AGENT = 2048

log = logging.getLogger("trailkeeper.reads")

# A parameter value is kept whole up to this length: enough for any real query, and far
# below the 16 KiB an event's metadata may hold.
_MAX_VALUE = 512
_MAX_ID = 256


def _shown(value: object) -> object:
    if isinstance(value, str) and len(value) > _MAX_VALUE:
        return value[:_MAX_VALUE] + "…"
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    ):
        # Metadata keeps to the integers every JSON reader agrees on (RFC 7493 section 2.2);
        # a larger one, as asked, is kept as its digits.
        return str(value)
    return value


def read_event(
    key: ApiKey,
    *,
    ip: str | None,
    user_agent: str | None,
    action: str,
    endpoint: str,
    params: Mapping[str, object],
    results: int,
    via: str | None = None,
    error: str | None = None,
    target: tuple[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """The event that says ``key`` read the log: what it asked, what it got, from where.
    ``via`` names the way in when it is not the API (the console)."""
    metadata: dict[str, Any] = {"endpoint": endpoint}
    if via is not None:
        metadata["via"] = via
    metadata["params"] = {name: _shown(value) for name, value in params.items() if value not in (None, "")}
    metadata["results"] = results
    metadata.update(extra or {})
    if error is not None:
        metadata["error"] = error
    actor = {"type": "service", "id": key.id}
    if key.name:
        actor["name"] = key.name[:_MAX_ID]
    where = f"{via} " if via else ""
    event: dict[str, Any] = {
        "category": "system",
        "action": action,
        "outcome": "failure" if error else "success",
        "actor": actor,
        "description": f"{where}{endpoint} by {key.id}: {results} result{'s' if results != 1 else ''}",
        "metadata": metadata,
    }
    if target is not None and 0 < len(target[1]) <= _MAX_ID:
        event["targets"] = [{"type": target[0], "id": target[1]}]
    context = {"ip": ip, "user_agent": user_agent}
    if any(context.values()):
        event["context"] = {name: value for name, value in context.items() if value}
    return event


def record_read(audit_log: AuditLog, key: ApiKey, **read: Any) -> None:
    """Queue the record of one read. Never raises: a read already answered must not fail
    because its record could not be made; the failure goes to the server log instead."""
    try:
        future = audit_log.record_later(key.tenant, [read_event(key, **read)])
    except TrailkeeperError as exc:
        log.error("cannot record a read by %s: %s", key.id, exc.message)
        return
    future.add_done_callback(_report_failure)


def _report_failure(future: Future[list[Appended]]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("the record of a read was not stored: %s", exc)


def reader_address(connection: HTTPConnection) -> tuple[str | None, str | None]:
    """Where a read came from, as the events recording it say: the peer's IP address, when
    the peer is one (it can be a name, from a test client, or a Unix socket: an event's
    ``context.ip`` must be an address), and its user agent, clipped."""
    host = connection.client.host if connection.client else None
    try:
        ip = str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        ip = None
    agent = connection.headers.get("user-agent")
    return ip, agent[:_MAX_AGENT] if agent else None
