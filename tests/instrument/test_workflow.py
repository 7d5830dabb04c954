"""workflow_run and step: a run's start, its end or failure, and the run stamped on every
event recorded inside it, in its tasks and in its wrapped threads."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.instrument.helpers import AGENT, STALLED, TENANT, actions, events_of, task_event

from trailkeeper import AuditLog, InvalidArgument
from trailkeeper.instrument import Auditor, current_run, current_stamps, in_context, step, workflow_run

Audit = Auditor[dict[str, Any]]


class DealLocked(Exception):
    """What a CRM step might raise."""


def test_run_records_started_then_completed_around_its_events(log: AuditLog, audit: Audit) -> None:
    with workflow_run(audit, **STALLED, metadata={"signal": "deal stalled 14 days"}) as run:
        audit.record(**task_event())
    events = events_of(log)
    assert actions(events) == ["workflow.started", "crm.task.created", "workflow.completed"]
    assert {e["workflow"]["run_id"] for e in events} == {run.run_id}
    started, _, completed = events
    assert started["workflow"] == {
        "run_id": run.run_id,
        "name": STALLED["name"],
        "trigger": STALLED["trigger"],
    }
    assert started["metadata"] == {"signal": "deal stalled 14 days"}
    assert started["actor"] == AGENT
    assert completed["outcome"] == "success"
    assert isinstance(completed["metadata"]["duration_ms"], int)
    assert run.outcome == "success"


def test_run_summary_of_the_log_reads_the_run_as_recorded(log: AuditLog, audit: Audit) -> None:
    with workflow_run(audit, **STALLED) as run, step("create_tasks"):
        audit.record(**task_event("one"))
        audit.record(**task_event("two"))
    summary = log.workflow_run(TENANT, run.run_id)["summary"]
    assert summary["trigger"] == STALLED["trigger"]
    assert summary["outcome"] == "success"
    assert summary["counts"] == {"workflow.started": 1, "crm.task.created": 2, "workflow.completed": 1}


def test_run_id_is_made_when_not_given_and_kept_when_given(audit: Audit) -> None:
    with workflow_run(audit, **STALLED) as made, workflow_run(audit, **STALLED, run_id="run_given") as given:
        pass
    assert re.fullmatch(r"run_[0-9a-f]{32}", made.run_id)
    assert given.run_id == "run_given"


def test_failure_is_recorded_with_step_and_error_and_raised_unchanged(log: AuditLog, audit: Audit) -> None:
    raised = DealLocked("UNABLE_TO_LOCK_ROW: unable to obtain exclusive access")
    run = workflow_run(audit, **STALLED)

    def follow_up() -> None:
        with run:
            with step("load_deal"):
                audit.record(**task_event("loaded"))
            with step("create_tasks"):
                raise raised

    with pytest.raises(DealLocked) as caught:
        follow_up()
    assert caught.value is raised
    failed = events_of(log)[-1]
    assert failed["action"] == "workflow.failed"
    assert failed["outcome"] == "failure"
    assert failed["workflow"] == {
        "run_id": run.run_id,
        "name": STALLED["name"],
        "trigger": STALLED["trigger"],
        "step": "create_tasks",
    }
    assert failed["metadata"]["error"] == "DealLocked: UNABLE_TO_LOCK_ROW: unable to obtain exclusive access"
    assert failed["metadata"]["error_type"].endswith("DealLocked")
    assert "failed at step create_tasks" in failed["description"]
    assert run.outcome == "failure"
    assert log.workflow_run(TENANT, run.run_id)["summary"]["outcome"] == "failure"


def test_failure_outside_any_step_names_no_step(log: AuditLog, audit: Audit) -> None:
    with pytest.raises(KeyError), workflow_run(audit, **STALLED):
        raise KeyError("deal")
    failed = events_of(log)[-1]
    assert "step" not in failed["workflow"]
    assert failed["metadata"]["error"] == "KeyError: 'deal'"


def test_innermost_step_is_the_one_named_in_the_failure(log: AuditLog, audit: Audit) -> None:
    with pytest.raises(DealLocked), workflow_run(audit, **STALLED), step("alerts"), step("alert_email"):
        raise DealLocked("429 rateLimitExceeded")
    assert events_of(log)[-1]["workflow"]["step"] == "alert_email"


def test_failure_that_cannot_be_recorded_leaves_the_callers_exception_with_a_note(
    log: AuditLog, audit: Audit
) -> None:
    def follow_up() -> None:
        with workflow_run(audit, **STALLED):
            log.close()
            raise DealLocked("boom")

    with pytest.raises(DealLocked) as caught:
        follow_up()
    assert any("recording workflow.failed failed as well" in note for note in caught.value.__notes__)


def test_steps_stamp_the_events_inside_them_and_unwind(log: AuditLog, audit: Audit) -> None:
    with workflow_run(audit, **STALLED):
        with step("create_tasks"):
            audit.record(**task_event("in step"))
        audit.record(**task_event("between steps"))
    in_step, between = events_of(log, "action:crm.task.created")
    assert in_step["workflow"]["step"] == "create_tasks"
    assert "step" not in between["workflow"]


def test_explicit_workflow_fields_win_over_the_run(log: AuditLog, audit: Audit) -> None:
    with workflow_run(audit, **STALLED, workflow_id="wf_stalled_deal") as run, step("create_tasks"):
        audit.record(**task_event(workflow={"run_id": run.run_id, "step": "retry_tasks"}))
    [event] = events_of(log, "action:crm.task.created")
    assert event["workflow"] == {
        "run_id": run.run_id,
        "id": "wf_stalled_deal",
        "name": STALLED["name"],
        "trigger": STALLED["trigger"],
        "step": "retry_tasks",
    }


def test_nested_run_stamps_only_itself(log: AuditLog, audit: Audit) -> None:
    with workflow_run(audit, **STALLED) as outer, step("schedule_meeting"):
        with workflow_run(audit, name="Meeting prep brief", trigger="parent", actor=AGENT) as inner:
            audit.record(**task_event("inner"))
        audit.record(**task_event("outer"))
    inner_task, outer_task = events_of(log, "action:crm.task.created")
    assert inner_task["workflow"] == {
        "run_id": inner.run_id,
        "name": "Meeting prep brief",
        "trigger": "parent",
    }
    assert outer_task["workflow"]["run_id"] == outer.run_id
    assert outer_task["workflow"]["step"] == "schedule_meeting"


def test_nothing_is_stamped_after_the_run(log: AuditLog, audit: Audit) -> None:
    with workflow_run(audit, **STALLED):
        pass
    audit.record(**task_event("after"))
    assert "workflow" not in events_of(log)[-1]
    assert current_stamps() == {}
    assert current_run() is None


def test_step_outside_a_run_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="outside any workflow_run"), step("create_tasks"):
        pass


def test_a_run_is_entered_once(audit: Audit) -> None:
    run = workflow_run(audit, **STALLED)
    with run:
        pass
    with pytest.raises(InvalidArgument, match="already been entered"), run:
        pass


def test_run_reaches_threads_through_in_context(log: AuditLog, audit: Audit) -> None:
    with workflow_run(audit, **STALLED) as run, step("create_tasks"), ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(in_context(audit.record), **task_event(f"task {n}")) for n in range(3)]
        for future in futures:
            future.result()
    tasks = events_of(log, "action:crm.task.created")
    assert len(tasks) == 3
    assert {(e["workflow"]["run_id"], e["workflow"]["step"]) for e in tasks} == {(run.run_id, "create_tasks")}


# --- async ----------------------------------------------------------------------------------


def test_async_run_stamps_the_tasks_it_starts(log: AuditLog, audit: Audit) -> None:
    async def alert(channel: str) -> None:
        with step(f"alert_{channel}"):
            await asyncio.sleep(0.01 if channel == "slack" else 0)
            await audit.arecord(**task_event(channel))

    async def main() -> str:
        async with workflow_run(audit, **STALLED) as run:
            await asyncio.gather(alert("slack"), alert("email"))
        return run.run_id

    run_id = asyncio.run(main())
    events = events_of(log)
    assert actions(events)[0] == "workflow.started"
    assert actions(events)[-1] == "workflow.completed"
    steps = {
        e["targets"][0]["name"]: e["workflow"]["step"] for e in events if e["action"] == "crm.task.created"
    }
    assert steps == {"slack": "alert_slack", "email": "alert_email"}
    assert {e["workflow"]["run_id"] for e in events} == {run_id}


def test_async_failure_is_recorded_and_raised(log: AuditLog, audit: Audit) -> None:
    async def main() -> None:
        async with workflow_run(audit, **STALLED):
            with step("schedule_meeting"):
                raise DealLocked("no common free slot in the next 5 business days")

    with pytest.raises(DealLocked):
        asyncio.run(main())
    failed = events_of(log)[-1]
    assert failed["action"] == "workflow.failed"
    assert failed["workflow"]["step"] == "schedule_meeting"


def test_cancelled_async_run_is_recorded_as_failed(log: AuditLog, audit: Audit) -> None:
    async def main() -> None:
        entered = asyncio.Event()

        async def run() -> None:
            async with workflow_run(audit, **STALLED):
                entered.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(run())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    failed = events_of(log)[-1]
    assert failed["action"] == "workflow.failed"
    assert failed["metadata"]["error_type"] == "asyncio.exceptions.CancelledError"
