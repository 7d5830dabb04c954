"""Workflow runs: the events of one run, from its signal or a person to completed or failed,
and the ids runs are known by.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from trailkeeper.catalogue import (
    AGENT_ACTION_TAKEN,
    ALERT_SENT,
    CRM_TASK_CREATED,
    INTEGRATION_DATA_RETRIEVED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    WORKFLOW_TRIGGERED,
)
from trailkeeper.demo.beats import _FINISH, _START, _TRIGGER, Event, _Beat, _event, _Step
from trailkeeper.demo.chance import _MASK64, _Dice, _pick
from trailkeeper.demo.clock import DAY, HOUR, _timestamp
from trailkeeper.demo.connections import _TITLES
from trailkeeper.demo.organisation import _Deal, _Org
from trailkeeper.demo.people import _FIRST_NAMES, _LAST_NAMES, _Person
from trailkeeper.demo.workflows import _AGENT_SAYS, _STALLED_DEAL, _STEP_ERRORS, _TASK_TITLES, _Workflow


@dataclass(frozen=True, slots=True)
class _Run:
    """One workflow run: started by a signal or by a person, ending completed or failed."""

    start: int
    seed: int
    run_id: str
    workflow: _Workflow
    deal: _Deal
    requested_by: _Person | None = None  # a person pressed "run now"
    fail_step: str | None = None
    tasks: int = 1
    error: str | None = None  # chosen by the plan, else drawn for the failing step

    @property
    def trigger(self) -> str:
        return "manual" if self.requested_by else self.workflow.trigger

    def beats(self, dice: _Dice) -> list[_Beat]:
        t = self.start
        out: list[_Beat] = []
        if self.requested_by:
            out.append((t, WORKFLOW_TRIGGERED, "success", _TRIGGER, None))
            t += dice.pause(0.3, 2)
        out.append((t, WORKFLOW_STARTED, "success", _START, None))
        for step in self.workflow.steps:
            for _ in range(self.tasks if step.action == CRM_TASK_CREATED else 1):
                t += dice.pause(0.2, 6)
                if step.name == self.fail_step:
                    out.append((t, step.action, "failure", step, step.provider))
                    t += dice.pause(0.05, 1.5)
                    out.append((t, WORKFLOW_FAILED, "failure", step, None))
                    return out
                out.append((t, step.action, "success", step, step.provider))
        t += dice.pause(0.05, 1)
        out.append((t, WORKFLOW_COMPLETED, "success", _FINISH, None))
        return out

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        wf, deal, owner = self.workflow, self.deal, self.deal.owner
        failing = next(((b[1], b[4]) for b in beats if b[2] == "failure"), None)
        error = self.error or (_pick(rng, _STEP_ERRORS[failing]) if failing else "")
        subject = deal.target()
        if wf.subject == "lead":
            lead = f"{_pick(rng, _FIRST_NAMES)} {_pick(rng, _LAST_NAMES)} ({deal.account})"
            subject = {"type": "lead", "id": f"00Q{rng.getrandbits(48):012X}", "name": lead}
        name = subject["name"]
        trace_id = f"{rng.getrandbits(128):032x}"
        task = int(rng.random() * len(_TASK_TITLES))
        events = []
        for at, action, outcome, detail, provider in beats:
            step = detail if isinstance(detail, _Step) else _START
            actor = wf.agent.actor()
            targets = [subject]
            context = {"request_id": f"req_{rng.getrandbits(64):016x}", "trace_id": trace_id}
            metadata: dict[str, Any]
            if action == WORKFLOW_TRIGGERED:
                person = self.requested_by or owner
                actor = person.actor()
                targets = [{"type": "workflow", "id": wf.id, "name": wf.name}, subject]
                context |= {
                    "ip": person.ip,
                    "user_agent": person.user_agent,
                    "location": person.office.location,
                }
                said, metadata = f"{person.name} ran {wf.name} for {name}", {"source": "console"}
            elif action == WORKFLOW_STARTED:
                said, metadata = self._started(name, rng)
            elif action == WORKFLOW_COMPLETED:
                said = f"{wf.name} completed for {name}"
                metadata = {"duration_ms": (at - beats[0][0]) // 1000, "events": len(beats)}
            elif action == WORKFLOW_FAILED:
                said = f"{wf.name} failed at step {step.name}: {error}"
                metadata = {"signal": wf.signal, "step": step.name, "error": error}
            else:
                said, targets, metadata = _step_content(step, at, subject, owner, task, rng)
                task += action == CRM_TASK_CREATED
                if outcome == "failure":
                    said, metadata["error"] = f"{said}: failed, {error}", error
            parts: Event = {"targets": targets}
            if provider:
                parts["integration"] = org.connections[provider].integration()
            parts["workflow"] = {
                "run_id": self.run_id,
                "id": wf.id,
                "name": wf.name,
                "trigger": self.trigger,
                "step": step.name,
            }
            parts["context"] = context
            parts["metadata"] = metadata
            events.append(_event(at, action, outcome, actor, said, parts))
        return events

    def _started(self, name: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
        wf, deal = self.workflow, self.deal
        metadata: dict[str, Any] = {"stage": deal.stage, "amount": deal.amount}
        if self.requested_by:
            metadata["requested_by"] = self.requested_by.id
            return f"{wf.name} started for {name}: requested by {self.requested_by.name}", metadata
        metadata["signal"] = wf.signal
        if wf is _STALLED_DEAL:
            metadata["days_stalled"] = 14 + int(rng.random() * 12)
        return f"{wf.name} started for {name}: signal {wf.signal!r}", metadata


def _step_content(
    step: _Step, at: int, subject: dict[str, str], owner: _Person, task: int, rng: random.Random
) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    """The description, targets and metadata of one step's event (``task`` numbers the
    run's tasks, so that two of them never have the same title)."""
    action, name = step.action, subject["name"]
    if action == INTEGRATION_DATA_RETRIEVED:
        count = 1 + int(rng.random() * 12) if step.object_type == "Thread" else 1
        source = _TITLES[str(step.provider)]
        metadata: dict[str, Any] = {"provider": step.provider, "object_type": step.object_type}
        metadata["record_count"] = count
        return f"Read {count} {step.object_type} record(s) from {source} for {name}", [subject], metadata
    if action == CRM_TASK_CREATED:
        title = _TASK_TITLES[task % len(_TASK_TITLES)].format(owner=owner.name.split()[0])
        created = {"type": "task", "id": f"00T{rng.getrandbits(48):012X}", "name": title}
        metadata = {"owner_id": owner.id, "due_date": _timestamp(at + 2 * DAY)[:10]}
        return f"Created task {title!r} on {name} for {owner.name}", [created, subject], metadata
    if action == ALERT_SENT:
        channel = "email" if step.destination == "owner_email" else "slack"
        to = step.destination
        if to == "owner_email":
            to = owner.email
        elif to == "owner_dm":
            to = "@" + owner.email.partition("@")[0]
        metadata = {"channel": channel, "destination": to}
        return f"Alerted {to} by {channel} about {name}", [owner.target(), subject], metadata
    if action == AGENT_ACTION_TAKEN:
        said = _AGENT_SAYS[step.tool].format(subject=name, owner=owner.name)
        return said, [subject], {"tool": step.tool, "decision": step.name}
    # MEETING_SCHEDULED: two to four days ahead, in the afternoon (UTC)
    starts = (at // DAY + 2 + int(rng.random() * 3)) * DAY + (15 + int(rng.random() * 5)) * HOUR
    title = f"{name}: next steps"
    meeting = {"type": "meeting", "id": f"evt_{rng.getrandbits(64):016x}", "name": title}
    metadata = {
        "starts_at": _timestamp(starts),
        "duration_minutes": 30,
        "attendees": 2 + int(rng.random() * 4),
    }
    return f"Scheduled {title!r} with {owner.name}", [meeting, subject], metadata


class _RunIds:
    """Run ids that look random and never repeat: a counter through a bijection of 64 bits
    (multiplying by an odd number modulo 2**64 can be undone, and so can xor)."""

    def __init__(self, rng: random.Random) -> None:
        self._salt = rng.getrandbits(64)
        self._next = itertools.count(1)

    def __call__(self) -> str:
        scrambled = ((next(self._next) * 0x9E3779B97F4A7C15) & _MASK64) ^ self._salt
        return f"run_{scrambled:016x}"
