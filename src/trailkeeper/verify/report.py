"""What a verification finds, and the report it gives: the first ``seq`` that can no longer be
trusted and what is wrong there."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Problem(StrEnum):
    """What is wrong at the first bad seq."""

    CHANGED_RECORD = "changed record"
    MISSING_RECORD = "missing record"
    EXTRA_RECORD = "extra record"
    WRONG_ORDER = "wrong order"
    BAD_NODE = "bad node"
    BAD_SIGNATURE = "bad signature"
    CHECKPOINT_MISMATCH = "checkpoint mismatch"
    KEY_MISMATCH = "key mismatch"


# When two findings name the same seq, the one that says more about the cause is reported: a
# replaced key explains bad signatures, a changed record explains the bad node above it.
# A record that turns up out of place is reported as such, not as missing where it was due.
_RANK = {
    Problem.KEY_MISMATCH: 0,
    Problem.WRONG_ORDER: 1,
    Problem.CHANGED_RECORD: 2,
    Problem.MISSING_RECORD: 2,
    Problem.EXTRA_RECORD: 2,
    Problem.BAD_NODE: 3,
    Problem.BAD_SIGNATURE: 4,
    Problem.CHECKPOINT_MISMATCH: 5,
}


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of verifying one tenant's log, in a database or in a bundle.

    ``signed_size`` is the size of the latest checkpoint: records from there up to
    ``tree_size`` were checked against the stored tree, but no signature vouches for them yet
    (a running server signs them within a second of their commit).
    """

    tenant: str
    intact: bool
    tree_size: int
    leaves_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    problem: Problem | None = None
    message: str | None = None
    signed_size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "intact": self.intact,
            "tree_size": self.tree_size,
            "signed_size": self.signed_size,
            "leaves_checked": self.leaves_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": None if self.problem is None else str(self.problem),
            "message": self.message,
        }


@dataclass(frozen=True)
class Finding:
    """One thing found wrong. ``covers`` is, for a checkpoint whose root disagrees, its tree
    size: a changed record below it already explains the disagreement."""

    seq: int
    problem: Problem
    message: str
    covers: int | None = None

    @property
    def order(self) -> tuple[int, int]:
        return self.seq, _RANK[self.problem]


class Findings:
    """Collects what a verification finds and picks the finding to report.

    Only the best finding of each kind is kept, so memory does not grow with the damage.
    """

    def __init__(self) -> None:
        self._located: Finding | None = None
        self._checkpoint: Finding | None = None
        self._root: Finding | None = None

    def add(self, finding: Finding) -> None:
        """A finding about a record, a node, a key or a signature."""
        if finding.problem in (Problem.BAD_SIGNATURE, Problem.CHECKPOINT_MISMATCH):
            self._checkpoint = _better(self._checkpoint, finding)
        else:
            self._located = _better(self._located, finding)

    def add_root_mismatch(self, finding: Finding) -> None:
        """A checkpoint whose root the stored tree no longer reaches."""
        self._root = _better(self._root, finding)

    def first(self) -> Finding | None:
        candidates = [f for f in (self._located, self._checkpoint) if f is not None]
        root = self._root
        if root is not None and not (
            self._located is not None and root.covers is not None and self._located.seq < root.covers
        ):
            candidates.append(root)
        return min(candidates, key=lambda f: f.order, default=None)


def _better(kept: Finding | None, new: Finding) -> Finding:
    return new if kept is None or new.order < kept.order else kept


def report_of(
    tenant: str,
    findings: Findings,
    *,
    tree_size: int,
    leaves_checked: int,
    checkpoints_checked: int,
    signed_size: int,
) -> VerifyReport:
    first = findings.first()
    message = None
    if first is None and signed_size < tree_size:
        message = f"{tree_size - signed_size} records after the latest checkpoint are not signed yet"
    return VerifyReport(
        tenant=tenant,
        intact=first is None,
        tree_size=tree_size,
        leaves_checked=leaves_checked,
        checkpoints_checked=checkpoints_checked,
        first_bad_seq=None if first is None else first.seq,
        problem=None if first is None else first.problem,
        message=message if first is None else first.message,
        signed_size=signed_size,
    )
