"""The records an API read leaves in the log (see :mod:`trailkeeper.reads`), made from the
caller of a request: its key, its address and its user agent."""

from __future__ import annotations

from typing import Any

from trailkeeper.api.auth import Caller
from trailkeeper.auditlog import AuditLog
from trailkeeper.reads import EXPORTED, READ
from trailkeeper.reads import read_event as _read_event
from trailkeeper.reads import record_read as _record_read

__all__ = ["EXPORTED", "READ", "read_event", "record_read"]


def read_event(caller: Caller, **read: Any) -> dict[str, Any]:
    """The event that says ``caller`` read the log: what it asked and what it got."""
    return _read_event(caller.key, ip=caller.ip, user_agent=caller.user_agent, **read)


def record_read(audit_log: AuditLog, caller: Caller, **read: Any) -> None:
    """Queue the record of one read by ``caller``; never raises."""
    _record_read(audit_log, caller.key, ip=caller.ip, user_agent=caller.user_agent, **read)
