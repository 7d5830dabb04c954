"""Helpers for applications' own tests: an ephemeral audit log to assert on.

    from trailkeeper.testing import memory_log, recorded

    def test_login_is_audited():
        with memory_log() as audit:
            app = make_app(audit)                 # the application records into it
            app.login("u_42", password="wrong")
            [event] = recorded(audit, "acme", "action:auth.login.failed")
            assert event["actor"]["id"] == "u_42"

The log is a real one (the SQLite store, hashing, checkpoints), in a private temporary
directory removed on close, so what a test asserts is what production would have stored.
"""

from __future__ import annotations

from typing import Any

from trailkeeper.auditlog import AuditLog

MEMORY_URL = "sqlite:///:memory:"


def memory_log() -> AuditLog:
    """A fresh, ephemeral audit log."""
    return AuditLog.open(MEMORY_URL)


def recorded(log: AuditLog, tenant: str, query: str = "", **filters: str | None) -> list[dict[str, Any]]:
    """Every stored record of a tenant matching a query, oldest first."""
    return list(log.iter_search(tenant, log.filter(query, **filters), order="asc"))


__all__ = ["MEMORY_URL", "memory_log", "recorded"]
