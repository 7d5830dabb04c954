"""Checkpoints and proofs: what an outside verifier checks, with only the public key."""

from __future__ import annotations

import base64

import pytest

from trailkeeper import AuditLog, InvalidArgument, merkle
from trailkeeper.notes import VerifierKey, open_checkpoint

LOGIN = {"category": "authentication", "action": "auth.login.succeeded", "actor": {"type": "user", "id": "u"}}


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_checkpoint_covers_every_committed_event_and_verifies(log: AuditLog) -> None:
    log.record_many("acme", [LOGIN] * 300)
    checkpoint = open_checkpoint(log.checkpoint("acme"), VerifierKey.parse(log.public_key("acme")))
    assert checkpoint.origin == "trailkeeper/acme"
    assert checkpoint.tree_size == 300


def test_every_inclusion_proof_verifies_against_the_checkpoint(log: AuditLog) -> None:
    records = log.record_many("acme", [LOGIN] * 600)
    checkpoint = open_checkpoint(log.checkpoint("acme"), VerifierKey.parse(log.public_key("acme")))
    for record in [*records[::37], records[-1]]:
        proof = log.inclusion_proof("acme", record["seq"], checkpoint.tree_size)
        assert proof["leaf_hash"] == base64.b64encode(bytes.fromhex(record["leaf_hash"])).decode()
        merkle.verify_inclusion(
            b64(proof["leaf_hash"]),
            proof["leaf_index"],
            proof["tree_size"],
            [b64(h) for h in proof["hashes"]],
            checkpoint.root_hash,
        )


def test_leaf_hash_is_sha256_of_the_canonical_record(log: AuditLog) -> None:
    from trailkeeper.events import leaf_bytes

    record = log.record("acme", **LOGIN, description="é \u2028 \x01", metadata={"z": 1, "a": [0.5, 1e21]})
    assert merkle.leaf_hash(leaf_bytes(record)).hex() == record["leaf_hash"]


def test_consistency_proofs_link_old_and_new_checkpoints(log: AuditLog) -> None:
    verifier = VerifierKey.parse(log.public_key("acme"))
    log.record_many("acme", [LOGIN] * 5)
    old = open_checkpoint(log.checkpoint("acme"), verifier)
    log.record_many("acme", [LOGIN] * 700)
    new = open_checkpoint(log.checkpoint("acme"), verifier)
    proof = log.consistency_proof("acme", old.tree_size, new.tree_size)
    merkle.verify_consistency(
        old.tree_size, new.tree_size, [b64(h) for h in proof["hashes"]], old.root_hash, new.root_hash
    )
    assert [c.tree_size for c in log.checkpoints("acme")] == [5, 705]


def test_proofs_beyond_the_tree_are_refused(log: AuditLog) -> None:
    log.record_many("acme", [LOGIN] * 3)
    with pytest.raises(InvalidArgument, match="tree_size"):
        log.inclusion_proof("acme", 0, 4)
    with pytest.raises(InvalidArgument, match="seq"):
        log.inclusion_proof("acme", 3, 3)
    with pytest.raises(InvalidArgument, match="from"):
        log.consistency_proof("acme", 0, 3)


def test_public_key_is_stable_across_reopening(store_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with AuditLog.open(store_url, key_dir=tmp_path / "keys") as log:
        log.record("acme", **LOGIN)
        first = log.public_key("acme")
        note = log.checkpoint("acme")
    with AuditLog.open(store_url, key_dir=tmp_path / "keys") as log:
        assert log.public_key("acme") == first
        open_checkpoint(note, VerifierKey.parse(log.public_key("acme")))
