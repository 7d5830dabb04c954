"""trailkeeper: a verifiable audit log.

Every tenant's events form an RFC 9162 Merkle log with signed checkpoints, so that any
change, removal or reordering of a stored event is detectable and provable offline.
"""

from __future__ import annotations

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
