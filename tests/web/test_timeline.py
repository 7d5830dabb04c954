"""A workflow run laid out in time."""

from __future__ import annotations

from trailkeeper.web.timeline import (
    ALERT,
    FAILED,
    MEETING,
    RETRIEVAL,
    START,
    STEP,
    TASK,
    duration_text,
    kind_of,
    timeline,
)


def test_durations_read_in_the_unit_that_fits() -> None:
    assert duration_text(850_000) == "850 ms"
    assert duration_text(4_400_000) == "4.4 s"
    assert duration_text(125_000_000) == "2 min 05 s"
    assert duration_text(3 * 3600_000_000 + 12 * 60_000_000) == "3 h 12 min"
    assert duration_text(50 * 3600_000_000) == "2 d 2 h"
    assert duration_text(None) == ""


def test_actions_find_their_kind() -> None:
    assert kind_of("workflow.started") is START
    assert kind_of("integration.data.retrieved") is RETRIEVAL
    assert kind_of("crm.task.created") is TASK
    assert kind_of("alert.sent") is ALERT
    assert kind_of("meeting.scheduled") is MEETING
    assert kind_of("workflow.failed") is FAILED
    assert kind_of("something.else") is STEP


def test_steps_carry_the_time_since_the_start_and_the_step_before() -> None:
    events = [
        {"action": "workflow.started", "occurred_at": "2026-11-02T10:00:00.000000Z"},
        {"action": "crm.task.created", "occurred_at": "2026-11-02T10:00:04.500000Z"},
        {"action": "alert.sent", "occurred_at": "2026-11-02T10:00:05.000000Z", "outcome": "failure"},
    ]
    steps = timeline(events)
    assert [s.since_previous_us for s in steps] == [None, 4_500_000, 500_000]
    assert [s.since_start_us for s in steps] == [0, 4_500_000, 5_000_000]
    assert [s.failed for s in steps] == [False, False, True]
