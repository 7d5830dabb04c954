"""AuditHandler: log records with an ``audit`` extra become events; the handler never
raises into the application and never records what its sink logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.instrument.helpers import STALLED, TENANT, events_of

from trailkeeper import AuditLog
from trailkeeper.instrument import AuditHandler, Auditor, step, workflow_run

Audit = Auditor[dict[str, Any]]
EXPORT = {
    "category": "user_activity",
    "action": "contacts.exported",
    "actor": {"type": "user", "id": "usr_42", "name": "Ada Abara"},
}


@pytest.fixture
def logger(audit: Audit) -> Iterator[logging.Logger]:
    named = logging.getLogger("tests.instrument.app")
    handler = AuditHandler(audit)
    named.addHandler(handler)
    named.setLevel(logging.DEBUG)
    named.propagate = False
    try:
        yield named
    finally:
        named.removeHandler(handler)


def test_record_with_the_extra_becomes_an_event(log: AuditLog, logger: logging.Logger) -> None:
    before = datetime.now(UTC)
    logger.info("Exported %d contacts to %s", 120, "CSV", extra={"audit": EXPORT})
    [event] = events_of(log)
    assert event["action"] == "contacts.exported"
    assert event["actor"] == EXPORT["actor"]
    assert event["description"] == "Exported 120 contacts to CSV"
    assert event["outcome"] == "success"
    logged = datetime.fromisoformat(event["occurred_at"])
    assert before <= logged <= datetime.now(UTC)


def test_record_without_the_extra_is_ignored(log: AuditLog, logger: logging.Logger) -> None:
    logger.warning("nothing to audit here")
    logger.info("nor here", extra={"user": "usr_42"})
    assert events_of(log) == []


def test_error_level_is_a_failure_unless_the_extra_says_otherwise(
    log: AuditLog, logger: logging.Logger
) -> None:
    logger.error("export refused", extra={"audit": EXPORT})
    logger.error("export deferred", extra={"audit": {**EXPORT, "outcome": "pending"}})
    logger.warning("export slow", extra={"audit": EXPORT})
    assert [e["outcome"] for e in events_of(log)] == ["failure", "pending", "success"]


def test_exception_goes_to_metadata_not_the_description(log: AuditLog, logger: logging.Logger) -> None:
    try:
        raise PermissionError("scope crm.objects.contacts.read missing")
    except PermissionError:
        logger.exception("export failed", extra={"audit": {**EXPORT, "metadata": {"format": "csv"}}})
    [event] = events_of(log)
    assert event["description"] == "export failed"
    assert event["metadata"] == {
        "format": "csv",
        "error": "PermissionError: scope crm.objects.contacts.read missing",
    }
    assert event["outcome"] == "failure"


def test_fields_of_the_extra_win(log: AuditLog, logger: logging.Logger) -> None:
    extra = {**EXPORT, "description": "chosen words", "occurred_at": "2026-11-03T09:15:00Z"}
    logger.info("logged words", extra={"audit": extra})
    [event] = events_of(log)
    assert event["description"] == "chosen words"
    assert event["occurred_at"] == "2026-11-03T09:15:00.000000Z"


def test_long_message_is_cut_to_a_description(log: AuditLog, logger: logging.Logger) -> None:
    logger.info("x" * 3000, extra={"audit": EXPORT})
    [event] = events_of(log)
    assert len(event["description"]) == 1000


def test_logged_inside_a_run_the_event_belongs_to_the_run(
    log: AuditLog, audit: Audit, logger: logging.Logger
) -> None:
    with workflow_run(audit, **STALLED) as run, step("export"):
        logger.info("exported", extra={"audit": EXPORT})
    [event] = events_of(log, "action:contacts.exported")
    assert event["workflow"]["run_id"] == run.run_id
    assert event["workflow"]["step"] == "export"


@pytest.mark.parametrize(
    "extra",
    [
        {"action": "contacts.exported"},  # no category, no actor
        {**EXPORT, "colour": "red"},  # an unknown field
        ["not", "a", "mapping"],
    ],
)
def test_invalid_event_never_raises_into_the_application(
    log: AuditLog, logger: logging.Logger, capsys: pytest.CaptureFixture[str], extra: Any
) -> None:
    logger.info("exported", extra={"audit": extra})  # returns normally
    assert events_of(log) == []
    assert "Logging error" in capsys.readouterr().err


class LoggingSink:
    """A sink that logs, with an audit extra, each time it records: a loop waiting to happen."""

    def __init__(self, log: AuditLog, logger: logging.Logger) -> None:
        self.log = log
        self.logger = logger

    def record(self, tenant: str, **event: Any) -> dict[str, Any]:
        self.logger.info("recording %s", event["action"], extra={"audit": EXPORT})
        return self.log.record(tenant, **event)


def test_what_the_sink_logs_while_recording_is_not_recorded(log: AuditLog) -> None:
    logger = logging.getLogger("tests.instrument.loop")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = AuditHandler(Auditor(LoggingSink(log, logger), tenant=TENANT))
    logger.addHandler(handler)
    try:
        logger.info("exported", extra={"audit": EXPORT})
    finally:
        logger.removeHandler(handler)
    assert len(events_of(log)) == 1


def test_another_extra_key_can_be_chosen(log: AuditLog, audit: Audit) -> None:
    logger = logging.getLogger("tests.instrument.key")
    logger.propagate = False
    handler = AuditHandler(audit, extra_key="audit_event")
    logger.addHandler(handler)
    try:
        logger.warning("exported", extra={"audit_event": EXPORT})
        logger.warning("not this one", extra={"audit": EXPORT})
    finally:
        logger.removeHandler(handler)
    assert [e["description"] for e in events_of(log)] == ["exported"]


def test_level_of_the_handler_filters(log: AuditLog, audit: Audit) -> None:
    logger = logging.getLogger("tests.instrument.level")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = AuditHandler(audit, logging.WARNING)
    logger.addHandler(handler)
    try:
        logger.info("too quiet", extra={"audit": EXPORT})
        logger.warning("loud enough", extra={"audit": EXPORT})
    finally:
        logger.removeHandler(handler)
    assert [e["description"] for e in events_of(log)] == ["loud enough"]
