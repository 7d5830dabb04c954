"""``trailkeeper verify``: recompute a tenant's log from its stored rows and check it all.

Every row's leaf hash is recomputed from its body (CONTRACT section 3) and its searchable
columns are read back from the body; the tree is rebuilt from those leaf hashes and every
stored tile is compared with it; every checkpoint's signature is checked, and its root
against the rebuilt root at its size. The report names the first ``seq`` that can no longer
be trusted and what is wrong there.

The work is split by what it checks: :mod:`~trailkeeper.verify.rows` the rows,
:mod:`~trailkeeper.verify.tree` the tree and its stored tiles,
:mod:`~trailkeeper.verify.checkpoints` the checkpoints and the key,
:mod:`~trailkeeper.verify.chunks` the chunks the log is checked in, shared out by
:mod:`~trailkeeper.verify.parallel`; :mod:`~trailkeeper.verify.report` collects what they find.

Reading order matters on a live log: the checkpoints are read first, then the head, then the
rows beyond that head, then the head again. A log only grows, its head with its rows, so a row
beyond the second head in a read made before it can only have been put there by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trailkeeper.errors import InvalidArgument
from trailkeeper.store.base import Store, close_rows
from trailkeeper.tiles import TILE_WIDTH
from trailkeeper.verify.checkpoints import CheckpointCheck, _verifier
from trailkeeper.verify.chunks import Rebuild, _chunks
from trailkeeper.verify.parallel import chunk_checks, default_jobs
from trailkeeper.verify.report import Finding, Findings, Problem, VerifyReport, report_of
from trailkeeper.verify.tree import Frontier, TileCheck, tile_fetch

if TYPE_CHECKING:
    from trailkeeper.auditlog import AuditLog


Progress = Callable[[int, int], None]
"""``progress(done, total)``: how many of a tenant's records have been checked."""

CHUNK = 1 << 15
"""Leaves per chunk: a few tenths of a second of work, a whole number of level-0 tiles."""
PARALLEL_FROM = 1 << 18
"""The smallest log whose chunks are shared out with helper processes: below it, the time a
helper takes to start (its interpreter and imports) outweighs what it would do."""


# --- entry points ---------------------------------------------------------------------------


def verify_store(
    log: AuditLog,
    tenant: str,
    progress: Progress | None = None,
    *,
    jobs: int | None = None,
    chunk: int = CHUNK,
    parallel_from: int = PARALLEL_FROM,
) -> VerifyReport:
    """Verify one tenant's log in its store: every record, node, root, checkpoint and key.

    ``jobs``: how many processes share the work (by default, one per CPU), when the log has
    at least ``parallel_from`` records and its store can be reached from another process.
    ``chunk``: how many records make one share at most, a multiple of 256 (the width of a
    tile); the last shares are smaller (see ``_chunks``).
    """
    if chunk <= 0 or chunk % TILE_WIDTH:
        raise InvalidArgument("chunk", f"must be a positive multiple of {TILE_WIDTH}, got {chunk}")
    if jobs is not None and jobs < 1:
        raise InvalidArgument("jobs", f"must be at least 1, got {jobs}")
    store = log.store
    findings = Findings()
    verifier = _verifier(log, tenant, findings)
    checkpoints = CheckpointCheck(store.checkpoints(tenant), verifier, log.origin(tenant), findings)
    tree_size = _head(store, tenant, findings)
    chunks = _chunks(tree_size, chunk, checkpoints.sizes)
    jobs = default_jobs() if jobs is None else jobs
    helpers = jobs - 1 if tree_size >= parallel_from else 0
    tree = Rebuild(TileCheck(tile_fetch(store, tenant), findings, level=1), checkpoints)
    checked = 0
    for part, check in zip(chunks, chunk_checks(store, tenant, chunks, helpers), strict=True):
        if check.finding is not None:
            findings.add(check.finding)
        tree.add(check)
        checked += check.rows
        if progress is not None:
            progress(part.end, tree_size)
    tree.finish(tree_size)
    checkpoints.finish(tree_size)
    if progress is not None and not chunks:
        progress(0, 0)
    return report_of(
        tenant,
        findings,
        tree_size=tree_size,
        leaves_checked=checked,
        checkpoints_checked=checkpoints.count,
        signed_size=min(checkpoints.latest_size, tree_size),
    )


def _head(store: Store, tenant: str, findings: Findings) -> int:
    """The tree size, and a finding for a row beyond it: one that a read of the rows beyond
    the head, made before the head is read again, finds beyond the second (see above)."""
    beyond = store.leaves(tenant, store.tree_size(tenant))
    try:
        row = next(beyond, None)
        tree_size = store.tree_size(tenant)
        while row is not None and row.seq < tree_size:  # appended between the two reads
            row = next(beyond, None)
    finally:
        close_rows(beyond)
    if row is not None:
        message = f"record {row.seq} is beyond the tree, whose size is {tree_size}"
        findings.add(Finding(row.seq, Problem.EXTRA_RECORD, message))
    return tree_size


def verify_all(
    log: AuditLog, progress: Callable[[str, int, int], None] | None = None, *, jobs: int | None = None
) -> list[VerifyReport]:
    """Verify every tenant's log; ``progress(tenant, done, total)`` as each goes."""
    return [
        verify_store(log, tenant, None if progress is None else _progress_of(tenant, progress), jobs=jobs)
        for tenant in log.store.tenants()
    ]


def _progress_of(tenant: str, progress: Callable[[str, int, int], None]) -> Progress:
    def tenant_progress(done: int, total: int) -> None:
        progress(tenant, done, total)

    return tenant_progress


__all__ = [
    "CHUNK",
    "PARALLEL_FROM",
    "CheckpointCheck",
    "Finding",
    "Findings",
    "Frontier",
    "Problem",
    "Progress",
    "TileCheck",
    "VerifyReport",
    "report_of",
    "verify_all",
    "verify_store",
]
