"""The checkpoints of a log and the key that signs them, checked against the rebuilt tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trailkeeper.errors import VerificationError
from trailkeeper.notes import Checkpoint, VerifierKey, open_checkpoint
from trailkeeper.store.base import StoredCheckpoint
from trailkeeper.verify.report import Finding, Findings, Problem

if TYPE_CHECKING:
    from trailkeeper.auditlog import AuditLog


# --- checkpoints and keys ---------------------------------------------------------------------


def _verifier(log: AuditLog, tenant: str, findings: Findings) -> VerifierKey | None:
    """The key to check signatures with: the tenant's own signing key where its key file is
    at hand, else the one recorded in the database. A disagreement is itself a finding: the
    recorded key is the one outside verifiers are given."""
    own = log.signing_verifier(tenant)
    recorded_text = log.store.verifier_key(tenant)
    recorded: VerifierKey | None = None
    if recorded_text is not None:
        try:
            recorded = VerifierKey.parse(recorded_text)
        except VerificationError as error:
            findings.add(
                Finding(0, Problem.KEY_MISMATCH, f"the recorded verifier key is unreadable: {error}")
            )
    if own is not None and recorded is not None and own != recorded:
        findings.add(
            Finding(
                0,
                Problem.KEY_MISMATCH,
                f"the recorded verifier key {recorded.key_id} is not that of the signing key {own.key_id}",
            )
        )
    return own or recorded


class CheckpointCheck:
    """Checks each checkpoint as the rebuilt tree reaches its size: its signature under the
    tenant's key (C2SP signed-note), that its row says what its note says, and that its root
    is the root of the rebuilt tree at that size.

    Every checkpoint's root is compared with the root of one and the same sequence of leaf
    hashes, so consecutive checkpoints that pass are consistent: that is all a consistency
    proof built from those leaves would show (RFC 9162 section 2.1.4), at the price of a
    fold of the frontier instead of a proof per pair.

    A bad checkpoint is reported at the size of the last good one before it: the records from
    there on are no longer vouched for.
    """

    def __init__(
        self,
        checkpoints: list[StoredCheckpoint],
        verifier: VerifierKey | None,
        origin: str,
        findings: Findings,
    ) -> None:
        self._checkpoints = sorted(checkpoints, key=lambda c: c.tree_size)
        self._verifier = verifier
        self._origin = origin
        self._findings = findings
        self._position = 0
        self._vouched = 0

    @property
    def count(self) -> int:
        return len(self._checkpoints)

    @property
    def sizes(self) -> list[int]:
        """The tree size of every checkpoint, in order."""
        return [checkpoint.tree_size for checkpoint in self._checkpoints]

    @property
    def latest_size(self) -> int:
        return self._checkpoints[-1].tree_size if self._checkpoints else 0

    def _next_size(self) -> int:
        if self._position < len(self._checkpoints):
            return self._checkpoints[self._position].tree_size
        return -1

    def reached(self, size: int, root: bytes) -> int:
        """The rebuilt tree has ``size`` leaves and that root: check the checkpoints of that
        size; return the size of the next one, or -1."""
        while self._next_size() == size:
            self._judge(self._checkpoints[self._position], root)
            self._position += 1
        return self._next_size()

    def finish(self, tree_size: int) -> None:
        """The checkpoints the tree never reached: they vouch for records that are gone."""
        while self._position < len(self._checkpoints):
            stored = self._checkpoints[self._position]
            self._position += 1
            if self._open(stored) is not None:
                self._findings.add(
                    Finding(
                        tree_size,
                        Problem.MISSING_RECORD,
                        f"the checkpoint of size {stored.tree_size} vouches for records up to seq "
                        f"{stored.tree_size - 1}; the log holds {tree_size}",
                    )
                )

    def _judge(self, stored: StoredCheckpoint, root: bytes) -> None:
        signed = self._open(stored)
        if signed is None:
            return
        size = stored.tree_size
        if signed.root_hash != root:
            message = (
                f"the checkpoint of size {size} signs root {signed.root_hash.hex()}, "
                f"the records give {root.hex()}"
            )
            self._findings.add_root_mismatch(
                Finding(self._vouched, Problem.CHECKPOINT_MISMATCH, message, covers=size)
            )
            return
        self._vouched = size

    def _open(self, stored: StoredCheckpoint) -> Checkpoint | None:
        """The signed checkpoint of a row, or None once what is wrong with it is reported."""
        size = stored.tree_size
        try:
            if self._verifier is None:
                raise VerificationError("no verifier key is known for the tenant")
            signed = open_checkpoint(stored.note, self._verifier, origin=self._origin)
        except VerificationError as error:
            message = f"the checkpoint of size {size}: {error}"
            self._findings.add(Finding(self._vouched, Problem.BAD_SIGNATURE, message))
            return None
        if signed.tree_size != size or signed.root_hash != bytes(stored.root_hash):
            message = (
                f"the checkpoint stored for size {size} holds a note signed for size "
                f"{signed.tree_size}, or for another root"
            )
            self._findings.add(Finding(self._vouched, Problem.CHECKPOINT_MISMATCH, message))
            return None
        return signed
