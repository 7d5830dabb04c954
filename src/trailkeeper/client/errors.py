"""What the client reports: errors of its own, so that it depends on nothing server-side.

Errors raised to the caller of :meth:`Client.record` are about the call (the event cannot
be queued). Errors of delivery happen later, on the sending thread; they reach the
application through the ``on_error`` callback and :attr:`Client.last_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ClientError(Exception):
    """Base of every error the client raises or reports."""


class ClientClosed(ClientError):
    """``record`` after ``close``."""


class QueueFull(ClientError):
    """The in-memory queue (no spool directory) holds as many events as it may."""


class SpoolLocked(ClientError):
    """Another live client, in this process or another, already uses the spool directory."""


class DeliveryError(ClientError):
    """A batch did not get through. ``status`` is the HTTP status, ``None`` when there was
    no response (connection refused, timeout)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServerUnavailable(DeliveryError):
    """A failure that passes: no connection, a timeout, 429 or 5xx. The batch is retried
    after ``retry_in`` seconds."""

    def __init__(self, message: str, status: int | None, retry_in: float) -> None:
        super().__init__(message, status)
        self.retry_in = retry_in


class SendingStopped(DeliveryError):
    """The server refuses this client (401, 403, or another status a retry cannot change).
    Nothing more is sent; the events stay in the spool for a client with a working key."""


@dataclass(frozen=True)
class RejectedEvent:
    """An event the server found invalid (422): set aside in the dead letter, not sent again.
    ``errors`` are the server's ``{field, message}`` for it; ``event`` is ``None`` when the
    spool line itself could not be read."""

    event: dict[str, Any] | None
    errors: tuple[dict[str, Any], ...]
    raw: bytes


class EventsRejected(DeliveryError):
    """Events refused as invalid and moved to the dead letter; the rest of the batch is sent."""

    def __init__(self, rejected: list[RejectedEvent], status: int | None) -> None:
        first = rejected[0].errors[0] if rejected and rejected[0].errors else {}
        reason = f"{first.get('field') or 'event'}: {first.get('message', 'invalid')}"
        super().__init__(f"{len(rejected)} event(s) rejected and set aside; first: {reason}", status)
        self.rejected = rejected
