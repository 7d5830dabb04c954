"""trailkeeper: a verifiable audit log.

Every tenant's events form an RFC 9162 Merkle log with signed checkpoints, so that any
change, removal or reordering of a stored event is detectable and provable offline.

The server side (``AuditLog`` and the stores) loads on first use, so that a program that
only imports the remote client (``trailkeeper.client``) pulls in none of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trailkeeper.auditlog import AuditLog, Page
    from trailkeeper.errors import (
        Conflict,
        FieldError,
        IntegrityError,
        InvalidArgument,
        InvalidEvent,
        NotFound,
        QueryError,
        TrailkeeperError,
        VerificationError,
    )

__version__ = "0.1.0"

_EXPORTS = {
    "AuditLog": "trailkeeper.auditlog",
    "Page": "trailkeeper.auditlog",
    "Conflict": "trailkeeper.errors",
    "FieldError": "trailkeeper.errors",
    "IntegrityError": "trailkeeper.errors",
    "InvalidArgument": "trailkeeper.errors",
    "InvalidEvent": "trailkeeper.errors",
    "NotFound": "trailkeeper.errors",
    "QueryError": "trailkeeper.errors",
    "TrailkeeperError": "trailkeeper.errors",
    "VerificationError": "trailkeeper.errors",
}

__all__ = [
    "AuditLog",
    "Conflict",
    "FieldError",
    "IntegrityError",
    "InvalidArgument",
    "InvalidEvent",
    "NotFound",
    "Page",
    "QueryError",
    "TrailkeeperError",
    "VerificationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trailkeeper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
