"""The exceptions of trailkeeper.

Every expected failure is a :class:`TrailkeeperError`. Its message is one line meant for a
person; the HTTP API turns it into ``{"error": {"code", "message", "details"}}`` with the
status named here, and the CLI prints it on stderr and exits 2 (or 1 for a finding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TrailkeeperError(Exception):
    """Base of every error trailkeeper raises on purpose."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of one event of a batch."""

    index: int
    field: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class InvalidEvent(TrailkeeperError):
    """One or more events break the schema; the whole batch is refused."""

    status = 422
    code = "invalid_event"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        shown = "; ".join(
            f"events[{e.index}].{e.field}: {e.message}" if e.field else f"events[{e.index}]: {e.message}"
            for e in errors[:10]
        )
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"invalid event: {shown}{more}", [e.to_json() for e in errors])


class InvalidArgument(TrailkeeperError):
    """A parameter (tenant name, limit, time bound, cursor...) is not acceptable."""

    status = 400
    code = "invalid_argument"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", {"field": field})


class QueryError(TrailkeeperError):
    """A search query is malformed; ``position`` is the 0-based offset of the fault."""

    status = 400
    code = "invalid_query"

    def __init__(self, message: str, query: str, position: int) -> None:
        self.query = query
        self.position = position
        super().__init__(
            f"query error at position {position}: {message}",
            {"position": position, "query": query},
        )


class NotFound(TrailkeeperError):
    status = 404
    code = "not_found"


class Conflict(TrailkeeperError):
    status = 409
    code = "conflict"


class IntegrityError(TrailkeeperError):
    """The stored log does not match what was signed: tampering or corruption."""

    status = 500
    code = "integrity"


class VerificationError(TrailkeeperError):
    """A proof, a root or a signature does not check out."""

    status = 400
    code = "verification_failed"


class Unavailable(TrailkeeperError):
    status = 503
    code = "unavailable"
