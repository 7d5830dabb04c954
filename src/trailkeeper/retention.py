"""Retention: archive, then purge the bodies of events older than a tenant's retention.

A purged record keeps its seq and leaf hash (CONTRACT section 3), so every checkpoint and
proof issued before the purge stays checkable; only the body, and what search knew of it,
goes. The archive is written and synced before anything is purged, so nothing is lost that
was not first kept elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trailkeeper.auditlog import SYSTEM_ACTOR, AuditLog
from trailkeeper.errors import InvalidArgument
from trailkeeper.events import check_tenant
from trailkeeper.exporters import export_lines
from trailkeeper.query import Filter, format_time


def set_retention(log: AuditLog, tenant: str, days: int | None) -> None:
    check_tenant(tenant)
    if days is not None and days < 1:
        raise InvalidArgument("days", "must be at least 1")
    log.store.set_retention_days(tenant, days)


def apply_retention(log: AuditLog, archive_dir: Path, *, now: datetime | None = None) -> Iterator[str]:
    """Archive and purge every tenant with a retention; yield one line per tenant."""
    moment = now or datetime.now(UTC)
    for tenant, days in log.store.retention_days().items():
        cutoff = moment - timedelta(days=days)
        cutoff_us = int(cutoff.timestamp() * 1_000_000)
        old = Filter(before_us=cutoff_us)
        archive = archive_dir / tenant / f"before-{cutoff.strftime('%Y%m%dT%H%M%SZ')}.ndjson"
        archive.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with archive.open("w", encoding="utf-8") as handle:
            for line in export_lines("ndjson", log.iter_search(tenant, old, order="asc")):
                handle.write(line)
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        purged = log.store.purge(tenant, cutoff_us) if count else 0
        if not count:
            archive.unlink()
        log.record(
            tenant,
            category="system",
            action="audit.log.purged",
            actor=dict(SYSTEM_ACTOR),
            metadata={
                "before": format_time(cutoff_us),
                "purged": purged,
                "retention_days": days,
                "archive": str(archive) if count else None,
            },
        )
        yield f"{tenant}: purged {purged} event bodies older than {format_time(cutoff_us)}" + (
            f", archived to {archive}" if count else ""
        )
