"""An event's place in its tenant's log, checked the way an outside verifier would.

The event page does not take the store's word for it. It recomputes the leaf hash from the
record shown (CONTRACT section 3: SHA-256 of 0x00 and the JCS bytes of the record without
``leaf_hash``), opens the latest checkpoint with the tenant's verifier key (C2SP signed-note),
and checks the inclusion proof from that leaf to the checkpoint's root (RFC 9162 section
2.1.3.2). Any step that fails is the reason shown.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace

from trailkeeper import merkle
from trailkeeper.auditlog import AuditLog
from trailkeeper.canonical import canonical_json
from trailkeeper.errors import TrailkeeperError
from trailkeeper.notes import VerifierKey, open_checkpoint
from trailkeeper.store.base import Record


@dataclass(frozen=True)
class InclusionCheck:
    """What the event page says about an event's proof: verified, or why not."""

    verified: bool
    reason: str
    leaf_hash: str = ""
    tree_size: int | None = None
    root_hash: str = ""
    key_id: str = ""
    checkpoint: str = ""
    proof: tuple[str, ...] = field(default=())


def leaf_hash_of(record: Record) -> bytes:
    """The leaf hash of a stored record, recomputed from its fields."""
    body = {name: value for name, value in record.items() if name != "leaf_hash"}
    return merkle.leaf_hash(canonical_json(body))


def check_inclusion(log: AuditLog, tenant: str, record: Record) -> InclusionCheck:
    """Check that ``record``, as shown, is in the tree the latest checkpoint signs."""
    seq = record["seq"]
    computed = leaf_hash_of(record)
    if computed.hex() != record.get("leaf_hash"):
        return InclusionCheck(
            False,
            f"the record's fields hash to {computed.hex()}, not to its stored leaf hash",
            leaf_hash=computed.hex(),
        )
    try:
        note = log.checkpoint(tenant)
        verifier = VerifierKey.parse(log.public_key(tenant))
        checkpoint = open_checkpoint(note, verifier, origin=log.origin(tenant))
    except TrailkeeperError as exc:
        return InclusionCheck(
            False, f"the latest checkpoint does not check out: {exc.message}", computed.hex()
        )
    found = InclusionCheck(
        False,
        "",
        leaf_hash=computed.hex(),
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash.hex(),
        key_id=verifier.key_id,
        checkpoint=note,
    )
    if seq >= checkpoint.tree_size:
        return replace(
            found, reason=f"no checkpoint covers seq {seq} yet (latest size {checkpoint.tree_size})"
        )
    try:
        proof = log.inclusion_proof(tenant, seq, checkpoint.tree_size)
        hashes = [base64.b64decode(h, validate=True) for h in proof["hashes"]]
        found = replace(found, proof=tuple(h.hex() for h in hashes))
        merkle.verify_inclusion(computed, seq, checkpoint.tree_size, hashes, checkpoint.root_hash)
    except TrailkeeperError as exc:
        return replace(found, reason=exc.message)
    except ValueError as exc:
        return replace(found, reason=f"the proof is not base64: {exc}")
    return replace(
        found,
        verified=True,
        reason=f"leaf {seq} is in the tree of {checkpoint.tree_size:,} leaves signed by {verifier.key_id}",
    )
