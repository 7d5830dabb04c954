"""Verification runs started from the integrity page: one background thread per tenant.

A run recomputes every leaf and root of the tenant's log and checks every checkpoint
(:meth:`AuditLog.verify`); the page polls its progress. Starting a run while one is going
shows that one instead of starting a second, so a tenant's log is never read twice at once
however often the button is pressed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trailkeeper.auditlog import AuditLog
from trailkeeper.errors import TrailkeeperError
from trailkeeper.events import now_text

if TYPE_CHECKING:
    from trailkeeper.verify import VerifyReport

log = logging.getLogger("trailkeeper.web")


@dataclass(frozen=True)
class Outcome:
    """What a finished run found (the fields of the verify report the page shows)."""

    intact: bool
    tree_size: int
    leaves_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None
    problem: str | None
    message: str | None


@dataclass(frozen=True)
class RunState:
    """A snapshot of one tenant's latest run, safe to hand to a template."""

    started_at: str
    done: int
    total: int
    finished_at: str | None
    seconds: float | None
    outcome: Outcome | None
    error: str | None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def percent(self) -> int:
        if self.total <= 0:
            return 0 if self.running else 100
        return min(100, self.done * 100 // self.total)


class _Run:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started_at = now_text()
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self.finished_at: str | None = None
        self.seconds: float | None = None
        self.outcome: Outcome | None = None
        self.error: str | None = None

    def advance(self, done: int, total: int) -> None:
        with self.lock:
            self.done, self.total = done, total

    def finish(self, outcome: Outcome | None, error: str | None) -> None:
        with self.lock:
            self.outcome, self.error = outcome, error
            if outcome is not None:
                self.done = self.total = outcome.leaves_checked
            self.seconds = time.monotonic() - self.started
            self.finished_at = now_text()

    def state(self) -> RunState:
        with self.lock:
            return RunState(
                self.started_at,
                self.done,
                self.total,
                self.finished_at,
                self.seconds,
                self.outcome,
                self.error,
            )


def outcome_of(report: VerifyReport) -> Outcome:
    """The fields of a verify report the page shows."""
    return Outcome(
        intact=report.intact,
        tree_size=report.tree_size,
        leaves_checked=report.leaves_checked,
        checkpoints_checked=report.checkpoints_checked,
        first_bad_seq=report.first_bad_seq,
        problem=None if report.problem is None else str(report.problem),
        message=report.message,
    )


class Verifications:
    """The latest verification run of each tenant, started on request."""

    def __init__(self, audit_log: AuditLog) -> None:
        self._log = audit_log
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def start(self, tenant: str) -> RunState:
        """Start a run of ``tenant``'s log, unless one is going; the state of the run."""
        with self._lock:
            current = self._runs.get(tenant)
            if current is not None and current.finished_at is None:
                return current.state()
            run = _Run()
            self._runs[tenant] = run
        thread = threading.Thread(
            target=self._verify, args=(tenant, run), name=f"verify-{tenant}", daemon=True
        )
        thread.start()
        return run.state()

    def latest(self, tenant: str) -> RunState | None:
        with self._lock:
            run = self._runs.get(tenant)
        return None if run is None else run.state()

    def _verify(self, tenant: str, run: _Run) -> None:
        try:
            report = self._log.verify(tenant, progress=run.advance)
            run.finish(outcome_of(report), None)
        except TrailkeeperError as exc:
            run.finish(None, exc.message)
        except Exception as exc:
            log.exception("verification of %s stopped", tenant)
            run.finish(None, f"verification stopped: {exc}")
