"""A workflow run as a timeline: from the signal that triggered it, through each retrieval,
task, alert and meeting, to how it ended, with the time between steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from trailkeeper.query import DAY_US, HOUR_US, MINUTE_US, SECOND_US, parse_time
from trailkeeper.store.base import Record


@dataclass(frozen=True)
class Kind:
    """What a step of a run is, for its marker and its label."""

    name: str
    label: str


TRIGGER = Kind("trigger", "Triggered")
START = Kind("start", "Started")
RETRIEVAL = Kind("retrieval", "Data retrieved")
TASK = Kind("task", "Task")
ALERT = Kind("alert", "Alert sent")
MEETING = Kind("meeting", "Meeting")
AGENT = Kind("agent", "Agent action")
FINISH = Kind("finish", "Completed")
FAILED = Kind("failed", "Failed")
STEP = Kind("step", "Step")

_EXACT: Final = {
    "workflow.triggered": TRIGGER,
    "workflow.started": START,
    "workflow.completed": FINISH,
    "workflow.failed": FAILED,
}
# Actions outside the catalogue still find their kind by their first word.
_BY_PREFIX: Final = (
    ("integration.data.", RETRIEVAL),
    ("crm.task.", TASK),
    ("task.", TASK),
    ("alert.", ALERT),
    ("meeting.", MEETING),
    ("agent.", AGENT),
)


def kind_of(action: str) -> Kind:
    exact = _EXACT.get(action)
    if exact is not None:
        return exact
    for prefix, kind in _BY_PREFIX:
        if action.startswith(prefix):
            return kind
    return STEP


@dataclass(frozen=True)
class Step:
    """One event of a run, placed in time."""

    record: Record
    kind: Kind
    at_us: int
    since_start_us: int
    since_previous_us: int | None

    @property
    def failed(self) -> bool:
        return self.record.get("outcome") == "failure" or self.kind is FAILED


def timeline(events: Sequence[Record]) -> list[Step]:
    """The events of a run (oldest first, as ``workflow_run`` returns them) as steps."""
    steps: list[Step] = []
    start: int | None = None
    previous: int | None = None
    for record in events:
        at = parse_time(record["occurred_at"], "occurred_at")
        start = at if start is None else start
        steps.append(
            Step(
                record, kind_of(record["action"]), at, at - start, None if previous is None else at - previous
            )
        )
        previous = at
    return steps


def duration_text(us: int | None) -> str:
    """A duration as people read it: ``850 ms``, ``4.4 s``, ``2 min 05 s``, ``3 h 12 min``."""
    if us is None:
        return ""
    if us < 0:
        return "-" + duration_text(-us)
    if us < SECOND_US:
        return f"{us // 1000} ms"
    if us < MINUTE_US:
        return f"{us / SECOND_US:.1f} s"
    if us < HOUR_US:
        minutes, seconds = divmod(us // SECOND_US, 60)
        return f"{minutes} min {seconds:02d} s"
    if us < DAY_US:
        hours, minutes = divmod(us // MINUTE_US, 60)
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(us // HOUR_US, 24)
    return f"{days} d {hours} h"


def run_duration(summary: dict[str, object]) -> int | None:
    """From the first event to the completion or failure, when the run has ended."""
    started, ended = summary.get("started_at"), summary.get("ended_at")
    if not isinstance(started, str) or not isinstance(ended, str):
        return None
    return parse_time(ended, "ended_at") - parse_time(started, "started_at")
