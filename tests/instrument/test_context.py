"""Auditor and stamps: one way to record into an embedded log or a remote client, and the
fields stamped on events following the code across asyncio tasks and threads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.instrument.helpers import TENANT, events_of, task_event

from trailkeeper import AuditLog, InvalidArgument, catalogue
from trailkeeper.client import Client
from trailkeeper.instrument import Auditor, current_stamps, in_context, stamp, workflow
from trailkeeper.instrument.context import stamped


def test_embedded_auditor_records_into_its_tenant(log: AuditLog) -> None:
    audit = Auditor(log, tenant=TENANT)
    stored = audit.record(**task_event())
    assert stored["tenant"] == TENANT
    assert [e["id"] for e in events_of(log)] == [stored["id"]]


def test_embedded_log_without_a_tenant_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidArgument, match="tenant: is required"):
        Auditor(log)  # type: ignore[call-overload]


def test_remote_client_with_a_tenant_is_refused(tmp_path: Path) -> None:
    with (
        Client("http://127.0.0.1:9", api_key="tk_unused", spool_dir=tmp_path) as client,
        pytest.raises(InvalidArgument, match="tenant of its API key"),
    ):
        Auditor(client, tenant=TENANT)  # type: ignore[call-overload]


def test_object_without_record_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="no record method"):
        Auditor(object())  # type: ignore[call-overload]


def test_stamps_fill_in_context_and_explicit_fields_win(audit: Auditor[dict[str, Any]]) -> None:
    with stamp(context={"request_id": "req_1", "ip": "192.0.2.7"}):
        stored = audit.record(**task_event(context={"ip": "198.51.100.1", "session_id": "s1"}))
    assert stored["context"] == {"request_id": "req_1", "ip": "198.51.100.1", "session_id": "s1"}


def test_nested_stamps_merge_and_unwind() -> None:
    with stamp(context={"request_id": "outer", "ip": "192.0.2.1"}):
        with stamp(context={"request_id": "inner"}):
            assert current_stamps() == {"context": {"request_id": "inner", "ip": "192.0.2.1"}}
        assert current_stamps() == {"context": {"request_id": "outer", "ip": "192.0.2.1"}}
    assert current_stamps() == {}


def test_event_about_another_run_keeps_only_its_own_workflow_fields() -> None:
    with stamp(workflow={"run_id": "run_a", "name": "A", "step": "notify"}):
        other = stamped(task_event(workflow={"run_id": "run_b"}))
        same = stamped(task_event(workflow={"run_id": "run_a", "step": "retry"}))
    assert other["workflow"] == {"run_id": "run_b"}
    assert same["workflow"] == {"run_id": "run_a", "name": "A", "step": "retry"}


def test_stamps_do_not_change_the_callers_event() -> None:
    event = task_event(context={"ip": "192.0.2.9"})
    with stamp(context={"request_id": "req_1"}):
        stamped(event)
    assert event["context"] == {"ip": "192.0.2.9"}


def test_outside_any_stamp_an_event_is_recorded_as_given(
    log: AuditLog, audit: Auditor[dict[str, Any]]
) -> None:
    stored = audit.record(**task_event())
    assert "context" not in stored
    assert "workflow" not in stored


# --- asyncio ------------------------------------------------------------------------------


async def _record_in_task(audit: Auditor[dict[str, Any]], title: str, delay: float) -> None:
    await asyncio.sleep(delay)  # interleave the tasks, so that a shared variable would show
    await audit.arecord(**task_event(title))


def test_tasks_started_inside_a_stamp_carry_it(log: AuditLog, audit: Auditor[dict[str, Any]]) -> None:
    async def main() -> None:
        with stamp(context={"request_id": "req_parent"}):
            tasks = [asyncio.create_task(_record_in_task(audit, f"t{n}", 0.01 * (3 - n))) for n in range(3)]
        await asyncio.gather(*tasks)  # the stamp is gone here, not in the tasks

    asyncio.run(main())
    assert {e["context"]["request_id"] for e in events_of(log)} == {"req_parent"}
    assert len(events_of(log)) == 3


def test_concurrent_tasks_keep_their_own_stamps(log: AuditLog, audit: Auditor[dict[str, Any]]) -> None:
    async def request(n: int) -> None:
        with stamp(context={"request_id": f"req_{n}"}):
            await _record_in_task(audit, f"task {n}", 0.005 * (n % 3))
            await _record_in_task(audit, f"again {n}", 0.005 * (2 - n % 3))

    async def main() -> None:
        await asyncio.gather(*(request(n) for n in range(6)))

    asyncio.run(main())
    for event in events_of(log):
        n = event["targets"][0]["name"].split()[-1]
        assert event["context"]["request_id"] == f"req_{n}"


# --- threads ------------------------------------------------------------------------------


def test_thread_running_a_wrapped_function_carries_the_stamps(
    log: AuditLog, audit: Auditor[dict[str, Any]]
) -> None:
    with stamp(context={"request_id": "req_t"}):
        thread = threading.Thread(target=in_context(audit.record), kwargs=task_event("threaded"))
    thread.start()
    thread.join()
    [event] = events_of(log)
    assert event["context"] == {"request_id": "req_t"}


def test_thread_running_an_unwrapped_function_carries_no_stamps(
    log: AuditLog, audit: Auditor[dict[str, Any]]
) -> None:
    # Why in_context exists: a thread starts with an empty context.
    with stamp(context={"request_id": "req_t"}):
        thread = threading.Thread(target=audit.record, kwargs=task_event("bare"))
        thread.start()
        thread.join()
    [event] = events_of(log)
    assert "context" not in event


def test_one_wrapped_function_runs_on_many_threads_at_once(
    log: AuditLog, audit: Auditor[dict[str, Any]]
) -> None:
    barrier = threading.Barrier(4)

    def record(title: str) -> str:
        barrier.wait(timeout=5)  # all four inside the same captured context at once
        with stamp(context={"session_id": title}):
            return str(audit.record(**task_event(title))["id"])

    with stamp(context={"request_id": "req_pool"}), ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(in_context(record), ["a", "b", "c", "d"]))
    events = events_of(log)
    assert sorted(e["id"] for e in events) == sorted(ids)
    assert {(e["context"]["request_id"], e["context"]["session_id"]) for e in events} == {
        ("req_pool", title) for title in "abcd"
    }
    assert current_stamps() == {}


# --- the package ----------------------------------------------------------------------------


def test_the_helpers_load_none_of_the_server() -> None:
    code = (
        "import sys, trailkeeper.instrument; "
        "print(','.join(sorted(m for m in sys.modules if m.startswith('trailkeeper'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(loaded.stdout.strip().split(","))
    assert {m for m in modules if not m.startswith("trailkeeper.instrument")} == {
        "trailkeeper",
        "trailkeeper.errors",
    }


def test_workflow_actions_are_the_catalogues() -> None:
    assert workflow.WORKFLOW_STARTED == catalogue.WORKFLOW_STARTED
    assert workflow.WORKFLOW_COMPLETED == catalogue.WORKFLOW_COMPLETED
    assert workflow.WORKFLOW_FAILED == catalogue.WORKFLOW_FAILED
