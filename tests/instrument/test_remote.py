"""The helpers over the remote client, against a real server: the same stamps and runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.instrument.helpers import STALLED, TENANT, actions, events_of, task_event

from trailkeeper import AuditLog
from trailkeeper.api.server import running
from trailkeeper.client import Client
from trailkeeper.instrument import AuditHandler, Auditor, stamp, step, workflow_run


@pytest.fixture
def client(log: AuditLog, tmp_path: Path) -> Iterator[Client]:
    _, key = log.create_key(TENANT, ["events:write"])
    with (
        running(log, rate_limit=None) as url,
        Client(url, api_key=key, spool_dir=tmp_path / "spool") as remote,
    ):
        yield remote


def test_run_through_the_client_is_recorded_with_its_stamps(log: AuditLog, client: Client) -> None:
    audit = Auditor(client)
    with (
        stamp(context={"request_id": "req_remote"}),
        workflow_run(audit, **STALLED) as run,
        step("create_tasks"),
    ):
        event_id = audit.record(**task_event())
    assert client.flush(timeout=10)
    events = events_of(log, f"workflow_run:{run.run_id}")
    assert actions(events) == ["workflow.started", "crm.task.created", "workflow.completed"]
    assert events[1]["id"] == event_id
    assert events[1]["workflow"]["step"] == "create_tasks"
    assert {e["context"]["request_id"] for e in events} == {"req_remote"}
    assert log.workflow_run(TENANT, run.run_id)["summary"]["outcome"] == "success"


def test_failed_run_through_the_client_is_recorded(log: AuditLog, client: Client) -> None:
    audit = Auditor(client)
    with pytest.raises(TimeoutError), workflow_run(audit, **STALLED) as run, step("schedule_meeting"):
        raise TimeoutError("calendar service unavailable")
    assert client.flush(timeout=10)
    summary = log.workflow_run(TENANT, run.run_id)["summary"]
    assert summary["outcome"] == "failure"
    assert summary["failures"][0]["step"] == "schedule_meeting"


def test_log_handler_through_the_client(log: AuditLog, client: Client) -> None:
    logger = logging.getLogger("tests.instrument.remote")
    logger.propagate = False
    handler = AuditHandler(Auditor(client))
    logger.addHandler(handler)
    try:
        logger.warning(
            "Role changed to admin",
            extra={"audit": {"category": "user_activity", "action": "user.role.changed",
                             "actor": {"type": "user", "id": "usr_1"}}},
        )  # fmt: skip
    finally:
        logger.removeHandler(handler)
    assert client.flush(timeout=10)
    [event] = events_of(log, "action:user.role.changed")
    assert event["description"] == "Role changed to admin"
