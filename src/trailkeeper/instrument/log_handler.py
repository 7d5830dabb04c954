"""A ``logging.Handler`` that records log records carrying an ``audit`` extra as events.

    logging.getLogger().addHandler(AuditHandler(audit))
    logger.info("Exported %d contacts", n, extra={"audit": {
        "category": "user_activity", "action": "contacts.exported",
        "actor": {"type": "user", "id": user.id}}})

The extra holds the event's fields; the handler adds what the log record knows: the
``description`` (the formatted message), ``occurred_at`` (when it was logged), outcome
``failure`` for ERROR and above, and the exception of ``logger.exception`` as
``metadata.error``; fields of the extra win. Records without the extra are ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from trailkeeper.instrument.auditor import Auditor
from trailkeeper.instrument.workflow import MAX_DESCRIPTION, MAX_ERROR_TEXT, _clip, _error_text

__all__ = ["AuditHandler", "event_from_record"]


class AuditHandler(logging.Handler):
    """Turns log records with an ``audit`` extra (or ``extra_key``) into events.

    It never raises into the application: a record that does not make a valid event, or a
    sink that fails, goes to :meth:`logging.Handler.handleError` (a report on stderr while
    ``logging.raiseExceptions`` is true). What a sink logs while recording is not recorded.
    """

    def __init__(self, audit: Auditor[Any], level: int = logging.NOTSET, *, extra_key: str = "audit") -> None:
        super().__init__(level)
        self.audit = audit
        self.extra_key = extra_key
        self._recording = threading.local()

    def handle(self, record: logging.LogRecord) -> bool:
        # Without the handler's lock: the sinks are thread-safe, and a sink's own threads
        # (the embedded log's writer, the client's sender) may log while a caller waits on
        # them, which would deadlock on a lock held by that caller.
        if self.extra_key not in record.__dict__ or getattr(self._recording, "active", False):
            return False
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._recording.active = True
        try:
            fields = record.__dict__[self.extra_key]
            if not isinstance(fields, Mapping):
                raise TypeError(f"the {self.extra_key!r} extra must be a mapping of event fields")
            self.audit.record(**event_from_record(record, fields, self._message(record)))
        except Exception:  # noqa: BLE001 (a handler must never raise into the application)
            self.handleError(record)
        finally:
            self._recording.active = False

    def _message(self, record: logging.LogRecord) -> str:
        # With no formatter of its own the handler takes the bare message: the default
        # Formatter would append the traceback, which belongs in metadata, not the description.
        return record.getMessage() if self.formatter is None else self.format(record)


def event_from_record(record: logging.LogRecord, fields: Mapping[str, Any], message: str) -> dict[str, Any]:
    """The event of a log record: the extra's fields, completed from the record."""
    event = dict(fields)
    if message:
        # A longer message than the schema allows is cut, not refused.
        event.setdefault("description", _clip(message, MAX_DESCRIPTION))
    event.setdefault("occurred_at", _stored_time(record.created))
    if record.levelno >= logging.ERROR:
        event.setdefault("outcome", "failure")
    error = record.exc_info[1] if record.exc_info else None
    metadata = event.get("metadata", {})
    if error is not None and isinstance(metadata, Mapping) and "error" not in metadata:
        event["metadata"] = {**metadata, "error": _clip(_error_text(error), MAX_ERROR_TEXT)}
    return event


def _stored_time(created: float) -> str:
    # RFC 3339 section 5.6 in UTC, in the stored form of CONTRACT section 2.
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
