"""What the tests of the instrumentation helpers share: a tenant, an agent, valid events."""

from __future__ import annotations

from typing import Any

from trailkeeper import AuditLog
from trailkeeper.testing import recorded

TENANT = "acme"
AGENT = {"type": "agent", "id": "agt_pipeline", "name": "Pipeline Agent"}
# The keyword arguments of workflow_run for the demo's stalled-deal workflow.
STALLED: dict[str, Any] = {
    "name": "Stalled deal follow-up",
    "trigger": "signal:deal_stalled_14_days",
    "actor": AGENT,
}


def task_event(title: str = "Call back", **fields: Any) -> dict[str, Any]:
    """A valid event of a workflow step; ``fields`` override or add to it."""
    event: dict[str, Any] = {
        "category": "workflow",
        "action": "crm.task.created",
        "actor": AGENT,
        "targets": [{"type": "task", "id": "task-" + title.replace(" ", "-").lower(), "name": title}],
        "integration": {"provider": "salesforce"},
    }
    event.update(fields)
    return event


def events_of(log: AuditLog, query: str = "") -> list[dict[str, Any]]:
    """The tenant's events matching a query, oldest first."""
    return recorded(log, TENANT, query)


def actions(events: list[dict[str, Any]]) -> list[str]:
    return [event["action"] for event in events]
