"""A real embedded log per test, and an auditor over it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.instrument.helpers import TENANT

from trailkeeper import AuditLog
from trailkeeper.instrument import Auditor
from trailkeeper.testing import memory_log


@pytest.fixture
def log() -> Iterator[AuditLog]:
    with memory_log() as audit_log:
        yield audit_log


@pytest.fixture
def audit(log: AuditLog) -> Auditor[dict[str, Any]]:
    return Auditor(log, tenant=TENANT)
