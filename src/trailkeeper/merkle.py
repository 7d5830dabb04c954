"""The Merkle tree of a tenant's log: RFC 9162 section 2.1 (the same tree as RFC 6962).

Pure functions, no I/O. The proof builders never see the log itself: they ask a
:data:`Subtree` function for the hash of a range of leaves, and only ever for a complete
subtree ``[k * 2**h, (k + 1) * 2**h)`` or for the right edge of the tree
``[k * 2**h, size)`` with ``size - k * 2**h < 2**h``. A store that keeps its interior nodes
(see :mod:`trailkeeper.tiles`) answers each such call with O(log n) reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from trailkeeper.errors import InvalidArgument, VerificationError

# RFC 9162 section 2.1.1: domain separation between leaves and interior nodes, so that a
# leaf can never be passed off as a node (second-preimage resistance).
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256(), the root of the empty tree (RFC 9162 section 2.1.1)."""

Subtree = Callable[[int, int], bytes]
"""``subtree(start, end)`` returns MTH(D[start:end]) of the log being proven."""


def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0)), RFC 9162 section 2.1.1."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), an interior node (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of a list of leaf hashes, RFC 9162 section 2.1.1.

    The RFC splits at the largest power of two below n. Pairing the nodes of each level and
    carrying an unpaired last node up unchanged builds the same tree, bottom up, with n - 1
    hashes and no recursion.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = parent_level(level)
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def parent_level(nodes: Sequence[bytes]) -> list[bytes]:
    """The nodes one height up from adjacent, aligned nodes (RFC 9162 section 2.1.1).

    Each pair (nodes[2i], nodes[2i + 1]) becomes one node; an unpaired last node has no
    complete parent and is left out.
    """
    # node_hash, inlined: this loop is the hot path of building tiles, proofs and verify.
    sha256 = hashlib.sha256
    return [
        sha256(b"\x01" + left + right).digest() for left, right in zip(nodes[0::2], nodes[1::2], strict=False)
    ]


def leaves_subtree(leaf_hashes: Sequence[bytes]) -> Subtree:
    """A :data:`Subtree` over leaf hashes held in memory (RFC 9162 section 2.1.1 MTH)."""

    def subtree(start: int, end: int) -> bytes:
        return root_hash(leaf_hashes[start:end])

    return subtree


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162 section 2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH form PATH(index, D[size]), in proof order.

    RFC 9162 section 2.1.3.1: PATH(m, D[n]) for n > 1 is PATH(m, D[0:k]) : MTH(D[k:n]) when
    m < k, and PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise. Walking from the root down yields
    the siblings top first; the proof lists them from the leaf up.
    """
    if size < 1:
        raise InvalidArgument("tree_size", f"must be at least 1 to prove inclusion, got {size}")
    if not 0 <= index < size:
        raise InvalidArgument("seq", f"must be in [0, {size}) for tree size {size}, got {index}")
    siblings: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _largest_power_of_two_below(end - start)
        if index < middle:
            siblings.append((middle, end))
            end = middle
        else:
            siblings.append((start, middle))
            start = middle
    siblings.reverse()
    return siblings


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH form PROOF(size1, D[size2]), in proof order.

    RFC 9162 section 2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true), where
    SUBPROOF(m, D[m], true) = {}, SUBPROOF(m, D[m], false) = {MTH(D[m])}, and for m < n
    SUBPROOF(m, D[n], b) is SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) when m <= k, else
    SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]). Equal sizes give the empty proof.
    """
    if size1 < 1:
        raise InvalidArgument("from", f"must be at least 1, got {size1}")
    if size2 < size1:
        raise InvalidArgument("to", f"must be at least from ({size1}), got {size2}")
    appended: list[tuple[int, int]] = []
    start, end = 0, size2
    whole_old_tree = True  # the b of SUBPROOF: does [start, end) still start at leaf 0?
    while end != size1:
        middle = start + _largest_power_of_two_below(end - start)
        if size1 <= middle:
            appended.append((middle, end))
            end = middle
        else:
            appended.append((start, middle))
            start = middle
            whole_old_tree = False
    appended.reverse()
    if whole_old_tree:
        return appended
    # The old tree's root is not a node of the new tree: its last complete subtree is
    # the first proof element, so the verifier can rebuild both roots.
    return [(start, end), *appended]


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(index, D[size]), the inclusion proof of RFC 9162 section 2.1.3.1."""
    return [subtree(start, end) for start, end in inclusion_ranges(index, size)]


def consistency_proof(size1: int, size2: int, subtree: Subtree) -> list[bytes]:
    """PROOF(size1, D[size2]), the consistency proof of RFC 9162 section 2.1.4.1."""
    return [subtree(start, end) for start, end in consistency_ranges(size1, size2)]


def _require_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} must be {HASH_SIZE} bytes, found {len(value)} bytes")


def _require_proof_hashes(proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        _require_hash(f"proof hash {position}", value)


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that an inclusion proof leads to, RFC 9162 section 2.1.3.2 steps 1 to 4.

    Raises :class:`VerificationError` when the proof cannot be one for that index and size.
    """
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    _require_hash("leaf hash", leaf_hash)
    _require_proof_hashes(proof)
    fn, sn = index, size - 1
    computed = leaf_hash
    for sibling in proof:
        if sn == 0:
            raise _wrong_inclusion_length(index, size, proof)
        if fn & 1 or fn == sn:
            computed = node_hash(sibling, computed)
            # A right-edge node without a right sibling is carried up unchanged.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            computed = node_hash(computed, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _wrong_inclusion_length(index, size, proof)
    return computed


def _wrong_inclusion_length(index: int, size: int, proof: Sequence[bytes]) -> VerificationError:
    expected = len(inclusion_ranges(index, size))
    return VerificationError(
        f"inclusion proof of leaf {index} in a tree of size {size} must have "
        f"{expected} hashes, found {len(proof)}"
    )


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that a leaf is at ``index`` in the tree of ``size`` leaves with that root.

    RFC 9162 section 2.1.3.2. Raises :class:`VerificationError` saying what was expected
    and what was found.
    """
    _require_hash("root hash", root)
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise VerificationError(
            f"inclusion proof of leaf {index} in a tree of size {size} leads to root "
            f"{computed.hex()}, expected {root.hex()}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size1`` leaves is a prefix of the tree of ``size2`` leaves.

    RFC 9162 section 2.1.4.2. The empty tree is refused as an old tree: every tree extends
    it, so such a proof would say nothing. Raises :class:`VerificationError` saying what was
    expected and what was found.
    """
    if size1 < 1:
        raise VerificationError(f"old tree size must be at least 1, found {size1}")
    if size2 < size1:
        raise VerificationError(f"new tree size {size2} is smaller than old tree size {size1}")
    if size1 == size2:
        # Section 2.1.4.1: a tree is consistent with itself through the empty proof.
        if proof:
            raise VerificationError(
                f"consistency proof between equal sizes must be empty, found {len(proof)} hashes"
            )
        if root1 != root2:
            raise VerificationError(
                f"trees of equal size {size1} have different roots {root1.hex()} and {root2.hex()}"
            )
        return
    _require_hash("old root hash", root1)
    _require_hash("new root hash", root2)
    _require_proof_hashes(proof)
    old_root, new_root = _roots_from_consistency_proof(size1, size2, proof, root1)
    if old_root != root1:
        raise VerificationError(
            f"consistency proof leads to old root {old_root.hex()}, expected {root1.hex()}"
        )
    if new_root != root2:
        raise VerificationError(
            f"consistency proof leads to new root {new_root.hex()}, expected {root2.hex()}"
        )


def _roots_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """RFC 9162 section 2.1.4.2 steps 1 to 6: the old and new roots the proof leads to."""
    if not proof:
        raise _wrong_consistency_length(size1, size2, proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old root is itself a node of the new tree, so the proof leaves it out.
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_root = new_root = path[0]
    for sibling in path[1:]:
        if sn == 0:
            raise _wrong_consistency_length(size1, size2, proof)
        if fn & 1 or fn == sn:
            old_root = node_hash(sibling, old_root)
            new_root = node_hash(sibling, new_root)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_root = node_hash(new_root, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _wrong_consistency_length(size1, size2, proof)
    return old_root, new_root


def _wrong_consistency_length(size1: int, size2: int, proof: Sequence[bytes]) -> VerificationError:
    expected = len(consistency_ranges(size1, size2))
    return VerificationError(
        f"consistency proof from size {size1} to {size2} must have {expected} hashes, found {len(proof)}"
    )
