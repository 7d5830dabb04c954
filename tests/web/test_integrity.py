"""Verification runs in the background, one per tenant."""

from __future__ import annotations

from tests.web.conftest import wait_for

from trailkeeper import AuditLog
from trailkeeper.web.integrity import Verifications


def test_a_run_reports_an_intact_log_with_its_progress(log: AuditLog) -> None:
    log.record_many(
        "acme", [{"category": "system", "action": "x.y", "actor": {"type": "user", "id": "u"}}] * 5
    )
    runs = Verifications(log)
    assert runs.latest("acme") is None
    runs.start("acme")
    state = wait_for(lambda: (s := runs.latest("acme")) is not None and not s.running and s)
    assert state.outcome is not None
    assert state.outcome.intact
    assert state.outcome.leaves_checked == 5
    assert state.percent == 100
    assert state.error is None


def test_a_tenant_without_a_log_is_reported_not_raised(log: AuditLog) -> None:
    runs = Verifications(log)
    runs.start("nobody")
    state = wait_for(lambda: (s := runs.latest("nobody")) is not None and not s.running and s)
    assert state.error is not None or state.outcome is not None
