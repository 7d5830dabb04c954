"""Query parameters shared by ``/v1/events``, ``/v1/stats`` and ``/v1/export``.

Unknown parameters are refused (400): a misspelt filter (``?categroy=...``) would otherwise
be ignored and the answer would silently cover everything.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trailkeeper.auditlog import MAX_LIMIT
from trailkeeper.query import FIELDS

_EXACT_OR_PREFIX = "Exact, or a prefix with a trailing `*`"

# Spelt out for the OpenAPI document; a test holds them equal to FORMATS and GROUP_BY.
Order = Literal["desc", "asc"]
ExportFormat = Literal["ndjson", "csv", "ocsf", "cef", "syslog"]
GroupBy = Literal["category", "action", "actor", "outcome", "integration", "hour", "day"]


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        None, description="Search query: `field:value`, `-field:value`, words, `after:`/`before:`"
    )
    category: str | None = Field(
        None, description="authentication, user_activity, integration, workflow or system"
    )
    action: str | None = Field(None, description=f"{_EXACT_OR_PREFIX}, e.g. `auth.*`")
    actor: str | None = Field(None, description=f"Actor id. {_EXACT_OR_PREFIX}")
    actor_type: str | None = Field(None, description="user, agent, integration, service or system")
    target: str | None = Field(None, description=f"Target id. {_EXACT_OR_PREFIX}")
    target_type: str | None = Field(None, description=_EXACT_OR_PREFIX)
    outcome: str | None = Field(None, description="success, failure, pending or unknown")
    integration: str | None = Field(None, description=f"Integration provider. {_EXACT_OR_PREFIX}")
    workflow_run: str | None = Field(None, description=f"Workflow run id. {_EXACT_OR_PREFIX}")
    ip: str | None = Field(None, description="Context IP address")
    since: str | None = Field(None, description="occurred_at >= this; RFC 3339 or YYYY-MM-DD (midnight UTC)")
    until: str | None = Field(None, description="occurred_at < this; RFC 3339 or YYYY-MM-DD (midnight UTC)")

    def filters(self) -> dict[str, str | None]:
        """The field filters, as the facade's keyword arguments."""
        return self.model_dump(include=set(FIELDS))

    def given(self) -> dict[str, object]:
        """Every parameter the client sent, for the record of the read."""
        return self.model_dump(exclude_unset=True)


class SearchParams(FilterParams):
    order: Order = Field("desc", description="By occurred_at then seq: newest first unless `asc`")
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="Events per page")
    cursor: str | None = Field(None, description="The `next_cursor` of the previous page")


class StatsParams(FilterParams):
    group_by: GroupBy = Field("category", description="What to count by")


class ExportParams(FilterParams):
    format: ExportFormat = Field("ndjson", description="ndjson (stored records), csv, ocsf, cef or syslog")
    order: Order = Field("desc", description="By occurred_at then seq: newest first unless `asc`")
