"""Record a revenue platform's events with a line of code (issue 7, point 2).

    from trailkeeper.instrument import Auditor, AuditContextMiddleware, AuditHandler, step, workflow_run

    audit = Auditor(log, tenant="acme")         # an embedded AuditLog, or Auditor(client)
    app.add_middleware(AuditContextMiddleware)  # request_id, ip, user_agent, trace_id
    with workflow_run(audit, name="Stalled deal follow-up",
                      trigger="signal:deal_stalled_14_days", actor=agent) as run:
        with step("create_tasks"):
            audit.record(category="workflow", action="crm.task.created", ...)

Stamps (the request, the run, the step) live in context variables, so they follow asyncio
tasks on their own and threads through :func:`in_context`. Nothing here imports the server
side: with the remote client, the helpers are as light as it is.
"""

from __future__ import annotations

from trailkeeper.instrument.asgi import AuditContextMiddleware, parse_traceparent
from trailkeeper.instrument.auditor import Auditor, EmbeddedSink, RemoteSink
from trailkeeper.instrument.context import current_stamps, in_context, stamp
from trailkeeper.instrument.log_handler import AuditHandler
from trailkeeper.instrument.workflow import WorkflowRun, current_run, step, workflow_run

__all__ = [
    "AuditContextMiddleware",
    "AuditHandler",
    "Auditor",
    "EmbeddedSink",
    "RemoteSink",
    "WorkflowRun",
    "current_run",
    "current_stamps",
    "in_context",
    "parse_traceparent",
    "stamp",
    "step",
    "workflow_run",
]
