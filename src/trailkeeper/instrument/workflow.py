"""Workflow runs: ``workflow.started``, then ``workflow.completed`` or ``workflow.failed``,
and the run stamped on every event recorded in between.

    with workflow_run(audit, name="Stalled deal follow-up", trigger="signal:deal_stalled_14_days",
                      actor={"type": "agent", "id": "agt_pipeline"}) as run:
        with step("create_tasks"):
            audit.record(category="workflow", action="crm.task.created", ...)

``async with`` works the same, recording off the event loop. Inside the block every event
gets ``workflow: {run_id, name, trigger, id, step}`` (fields it gives itself win), also in the
asyncio tasks it starts and in threads running a function wrapped by ``in_context``.
An exception that leaves the block is recorded as ``workflow.failed`` (with the step it left,
when known, and the error's type and message) and raised again, unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from trailkeeper.errors import InvalidArgument
from trailkeeper.instrument.auditor import Auditor
from trailkeeper.instrument.context import reset_stamps, set_stamps

__all__ = ["WorkflowRun", "current_run", "step", "workflow_run"]

# The catalogue's actions (trailkeeper.catalogue), written out so that the helpers load none of
# the server side and stay as light as the remote client; a test keeps them equal.
WORKFLOW_STARTED = "workflow.started"
WORKFLOW_COMPLETED = "workflow.completed"
WORKFLOW_FAILED = "workflow.failed"

# The event schema bounds (CONTRACT section 2): a description, and what an error may take of it.
MAX_DESCRIPTION = 1000
MAX_ERROR_TEXT = 900

_current_run: contextvars.ContextVar[WorkflowRun | None] = contextvars.ContextVar(
    "trailkeeper_workflow_run", default=None
)


def current_run() -> WorkflowRun | None:
    """The run whose block this code is in, if any."""
    return _current_run.get()


class WorkflowRun:
    """One run of a workflow, recorded as it goes. Enter it once, with ``with`` or ``async with``."""

    def __init__(
        self,
        audit: Auditor[Any],
        *,
        name: str,
        trigger: str,
        actor: Mapping[str, str],
        run_id: str | None = None,
        workflow_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.audit = audit
        self.name = name
        self.trigger = trigger
        self.actor = dict(actor)
        self.run_id = run_id if run_id is not None else f"run_{uuid.uuid4().hex}"
        self.workflow_id = workflow_id
        self.metadata = dict(metadata or {})
        self.failed_step: str | None = None  # the innermost step an exception left
        self.outcome: str | None = None  # "success" or "failure" once the block has ended
        self._started = 0.0
        self._entered = False
        self._tokens: tuple[contextvars.Token[Any], ...] = ()

    @property
    def workflow(self) -> dict[str, str]:
        """The ``workflow`` object stamped on the run's events."""
        fields = {"run_id": self.run_id, "name": self.name, "trigger": self.trigger}
        if self.workflow_id is not None:
            fields["id"] = self.workflow_id
        return fields

    # -- the events ------------------------------------------------------------------------
    def started_event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "category": "workflow",
            "action": WORKFLOW_STARTED,
            "actor": self.actor,
            "description": _clip(f"{self.name} started: {self.trigger}"),
        }
        if self.metadata:
            event["metadata"] = self.metadata
        return event

    def ended_event(self, error: BaseException | None) -> dict[str, Any]:
        duration_ms = int((time.monotonic() - self._started) * 1000)
        if error is None:
            return {
                "category": "workflow",
                "action": WORKFLOW_COMPLETED,
                "actor": self.actor,
                "description": _clip(f"{self.name} completed"),
                "metadata": {"duration_ms": duration_ms},
            }
        text = _clip(_error_text(error), MAX_ERROR_TEXT)
        where = f" at step {self.failed_step}" if self.failed_step else ""
        event: dict[str, Any] = {
            "category": "workflow",
            "action": WORKFLOW_FAILED,
            "outcome": "failure",
            "actor": self.actor,
            "description": _clip(f"{self.name} failed{where}: {text}"),
            "metadata": {
                "error": text,
                "error_type": _qualified_name(type(error)),
                "duration_ms": duration_ms,
            },
        }
        if self.failed_step:
            # The step's own stamp is gone by now: the exception has left its block.
            event["workflow"] = {**self.workflow, "step": self.failed_step}
        return event

    # -- entering and leaving --------------------------------------------------------------
    def _enter(self) -> None:
        if self._entered:
            raise InvalidArgument("workflow_run", f"run {self.run_id} has already been entered")
        self._entered = True
        self._started = time.monotonic()
        self._tokens = (set_stamps(workflow=self.workflow, new_run=True), _current_run.set(self))

    def _leave(self) -> None:
        stamps, run = self._tokens
        _current_run.reset(run)
        reset_stamps(stamps)

    def _ended(self, error: BaseException | None) -> dict[str, Any]:
        self.outcome = "success" if error is None else "failure"
        return self.ended_event(error)

    def __enter__(self) -> WorkflowRun:
        self._enter()
        try:
            self.audit.record(**self.started_event())
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if error is None:
                self.audit.record(**self._ended(None))
            else:
                _record_failure(lambda: self.audit.record(**self._ended(error)), error)
        finally:
            self._leave()

    async def __aenter__(self) -> WorkflowRun:
        self._enter()
        try:
            await self.audit.arecord(**self.started_event())
        except BaseException:
            self._leave()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if error is None:
                await self.audit.arecord(**self._ended(None))
            else:
                event = self._ended(error)
                try:
                    # Shielded: a run being cancelled still gets its workflow.failed.
                    await asyncio.shield(self.audit.arecord(**event))
                except Exception as problem:  # noqa: BLE001 (the caller's exception wins; see _note)
                    _note(error, problem)
        finally:
            self._leave()

    def __repr__(self) -> str:
        return f"<WorkflowRun {self.run_id} {self.name!r} outcome={self.outcome}>"


def workflow_run(
    audit: Auditor[Any],
    *,
    name: str,
    trigger: str,
    actor: Mapping[str, str],
    run_id: str | None = None,
    workflow_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> WorkflowRun:
    """A run of the workflow ``name``, started by ``trigger`` (``signal:deal_stalled_14_days``,
    ``schedule:daily``, ``manual``...), recorded under ``actor``. ``run_id`` is made when not
    given; ``metadata`` goes on ``workflow.started``."""
    return WorkflowRun(
        audit,
        name=name,
        trigger=trigger,
        actor=actor,
        run_id=run_id,
        workflow_id=workflow_id,
        metadata=metadata,
    )


class step:  # lower case: a context manager, named like contextlib's
    """``with step("create_tasks"):`` stamps ``workflow.step`` on the events inside, and tells
    the run which step an exception left. Only inside a :func:`workflow_run` block."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._run: WorkflowRun | None = None
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> step:
        self._run = _current_run.get()
        if self._run is None:
            raise InvalidArgument("step", f"step {self.name!r} is outside any workflow_run block")
        self._token = set_stamps(workflow={"step": self.name})
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and self._run is not None and self._run.failed_step is None:
            self._run.failed_step = self.name  # the innermost step exits first
        if self._token is not None:
            reset_stamps(self._token)
            self._token = None


def _record_failure(record: Callable[[], object], error: BaseException) -> None:
    """Record the failure; if that fails too, the caller's exception still wins, with a note."""
    try:
        record()
    except Exception as problem:  # noqa: BLE001 (whatever the sink raised, it goes in the note)
        _note(error, problem)


def _note(error: BaseException, problem: Exception) -> None:
    error.add_note(f"trailkeeper: recording workflow.failed failed as well: {_error_text(problem)}")


def _error_text(error: BaseException) -> str:
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _qualified_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _clip(text: str, limit: int = MAX_DESCRIPTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
