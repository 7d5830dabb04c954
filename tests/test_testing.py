"""The testing helper: an application can assert on the audit events it recorded."""

from __future__ import annotations

import os

from trailkeeper import merkle
from trailkeeper.events import leaf_bytes
from trailkeeper.testing import memory_log, recorded


def test_memory_log_records_and_finds_events() -> None:
    with memory_log() as audit:
        audit.record(
            "acme",
            category="authentication",
            action="auth.login.failed",
            actor={"type": "user", "id": "u_42"},
            outcome="failure",
        )
        audit.record(
            "acme",
            category="authentication",
            action="auth.login.succeeded",
            actor={"type": "user", "id": "u_42"},
        )
        [failed] = recorded(audit, "acme", "action:auth.login.failed")
        assert failed["actor"]["id"] == "u_42"
        assert merkle.leaf_hash(leaf_bytes(failed)).hex() == failed["leaf_hash"]
        assert [e["seq"] for e in recorded(audit, "acme", actor="u_42")] == [0, 1]


def test_memory_log_leaves_nothing_behind() -> None:
    audit = memory_log()
    audit.record("acme", category="system", action="audit.test", actor={"type": "system", "id": "t"})
    scratch = audit.store._scratch  # type: ignore[attr-defined]
    assert scratch is not None
    assert os.path.isdir(scratch)
    audit.close()
    assert not os.path.exists(scratch)


def test_two_memory_logs_are_independent() -> None:
    with memory_log() as one, memory_log() as two:
        one.record("acme", category="system", action="audit.test", actor={"type": "system", "id": "t"})
        assert recorded(two, "acme") == []
