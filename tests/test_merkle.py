"""The Merkle tree, proofs and verifiers of RFC 9162 section 2.1."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trailkeeper import merkle
from trailkeeper.errors import InvalidArgument, VerificationError

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "rfc6962"
VECTORS = TESTDATA / "testdata"


def _vector_files(kind: str) -> list[Path]:
    # Collected at import, so a missing directory fails the run instead of emptying it.
    if not VECTORS.is_dir():
        raise FileNotFoundError(f"RFC 6962 test vectors not found at {VECTORS}")
    return sorted((VECTORS / kind).rglob("*.json"))


INCLUSION_FILES = _vector_files("inclusion")
CONSISTENCY_FILES = _vector_files("consistency")


def _case_id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def _hash(value: str | None) -> bytes:
    """A base64 hash of the vectors; empty strings and null stand for an absent value."""
    return base64.b64decode(value or "", validate=True)


def _proof(values: list[str] | None) -> list[bytes]:
    return [_hash(value) for value in values or []]


def _reference_leaves() -> list[bytes]:
    roots = json.loads((TESTDATA / "roots.json").read_text())
    return [merkle.leaf_hash(bytes.fromhex(leaf)) for leaf in roots["leaf_inputs_hex"]]


def test_every_vector_file_is_collected() -> None:
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_case_id)
def test_inclusion_vector(path: Path) -> None:
    case = _load(path)
    arguments = (
        _hash(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _proof(case["proof"]),
        _hash(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*arguments)
    else:
        merkle.verify_inclusion(*arguments)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_case_id)
def test_consistency_vector(path: Path) -> None:
    case = _load(path)
    arguments = (
        case["size1"],
        case["size2"],
        _proof(case["proof"]),
        _hash(case["root1"]),
        _hash(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*arguments)
    else:
        merkle.verify_consistency(*arguments)


def test_root_of_every_reference_size() -> None:
    roots = json.loads((TESTDATA / "roots.json").read_text())
    leaves = _reference_leaves()
    expected = roots["root_hashes_hex_by_size"]
    assert len(expected) == 9
    assert [merkle.root_hash(leaves[:size]).hex() for size in range(9)] == expected


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert merkle.root_hash([]) == hashlib.sha256(b"").digest()


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert merkle.node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()


@pytest.mark.parametrize(
    "path",
    [path for path in INCLUSION_FILES + CONSISTENCY_FILES if path.name == "happy-path.json"],
    ids=_case_id,
)
def test_proofs_equal_the_reference_proofs(path: Path) -> None:
    # The vectors are proofs over the eight leaves of roots.json.
    case = _load(path)
    subtree = merkle.leaves_subtree(_reference_leaves())
    if "leafIdx" in case:
        proof = merkle.inclusion_proof(case["leafIdx"], case["treeSize"], subtree)
    else:
        proof = merkle.consistency_proof(case["size1"], case["size2"], subtree)
    assert proof == _proof(case["proof"])


# Properties over logs of up to a few thousand leaves. Leaves are the same for every size
# (a log only grows), so they are built once and sliced.
MAX_SIZE = 3000
LEAVES = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(MAX_SIZE)]
PROPERTIES = settings(max_examples=60, deadline=None)


@cache
def _root(size: int) -> bytes:
    return merkle.root_hash(LEAVES[:size])


def _subtree(size: int) -> merkle.Subtree:
    return merkle.leaves_subtree(LEAVES[:size])


def _mth(leaves: Sequence[bytes]) -> bytes:
    """MTH exactly as RFC 9162 section 2.1.1 defines it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


@st.composite
def leaf_positions(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def size_pairs(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, size2)), size2


def _flip_bit(proof: list[bytes], data: st.DataObject) -> list[bytes]:
    position = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 8 * merkle.HASH_SIZE - 1))
    flipped = bytearray(proof[position])
    flipped[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:position], bytes(flipped), *proof[position + 1 :]]


@given(st.integers(0, 300))
@settings(max_examples=40)
def test_root_hash_is_the_mth_of_the_rfc(size: int) -> None:
    assert merkle.root_hash(LEAVES[:size]) == _mth(LEAVES[:size])


@given(leaf_positions())
@PROPERTIES
def test_every_inclusion_proof_verifies(position: tuple[int, int]) -> None:
    index, size = position
    proof = merkle.inclusion_proof(index, size, _subtree(size))
    merkle.verify_inclusion(LEAVES[index], index, size, proof, _root(size))


@given(size_pairs())
@PROPERTIES
def test_every_consistency_proof_verifies(sizes: tuple[int, int]) -> None:
    size1, size2 = sizes
    proof = merkle.consistency_proof(size1, size2, _subtree(size2))
    merkle.verify_consistency(size1, size2, proof, _root(size1), _root(size2))


def _is_stored_subtree(start: int, end: int, size: int) -> bool:
    """[start, end) is a complete subtree [k 2^h, (k+1) 2^h) or its right-edge truncation."""
    for height in range(size.bit_length() + 1):
        width = 1 << height
        if start % width == 0 and end == min(start + width, size):
            return True
    return False


@given(leaf_positions(), st.integers(1, MAX_SIZE))
@PROPERTIES
def test_proofs_ask_only_for_complete_or_right_edge_subtrees(
    position: tuple[int, int], other_size: int
) -> None:
    index, size = position
    size1, size2 = sorted((size, other_size))
    asked: list[tuple[int, int]] = []

    def subtree(start: int, end: int) -> bytes:
        asked.append((start, end))
        return b""

    merkle.inclusion_proof(index, size, subtree)
    assert all(_is_stored_subtree(start, end, size) for start, end in asked), asked
    asked.clear()
    merkle.consistency_proof(size1, size2, subtree)
    assert all(_is_stored_subtree(start, end, size2) for start, end in asked), asked


@given(leaf_positions(), st.data())
@PROPERTIES
def test_flipped_bit_in_inclusion_proof_is_rejected(position: tuple[int, int], data: st.DataObject) -> None:
    index, size = position
    assume(size > 1)  # a tree of one leaf has an empty proof, nothing to flip
    proof = merkle.inclusion_proof(index, size, _subtree(size))
    with pytest.raises(VerificationError, match="leads to root"):
        merkle.verify_inclusion(LEAVES[index], index, size, _flip_bit(proof, data), _root(size))


@given(leaf_positions(), st.integers(0, MAX_SIZE))
@PROPERTIES
def test_inclusion_proof_for_another_index_is_rejected(position: tuple[int, int], wrong_index: int) -> None:
    index, size = position
    if wrong_index == index:
        wrong_index = index + 1
    proof = merkle.inclusion_proof(index, size, _subtree(size))
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(LEAVES[index], wrong_index, size, proof, _root(size))


@given(leaf_positions(), st.integers(1, MAX_SIZE))
@PROPERTIES
def test_inclusion_proof_does_not_hold_for_another_tree_size(
    position: tuple[int, int], wrong_size: int
) -> None:
    # The size is bound through the root: a proof is checked against the root signed
    # for the size it claims.
    index, size = position
    if wrong_size == size:
        wrong_size = size + 1
    proof = merkle.inclusion_proof(index, size, _subtree(size))
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(LEAVES[index], index, wrong_size, proof, _root(wrong_size))


@given(leaf_positions(), st.data())
@PROPERTIES
def test_truncated_or_extended_inclusion_proof_is_rejected(
    position: tuple[int, int], data: st.DataObject
) -> None:
    index, size = position
    proof = merkle.inclusion_proof(index, size, _subtree(size))
    extra = data.draw(st.binary(min_size=32, max_size=32))
    tampered = [proof[:-1]] if proof else []
    tampered += [[*proof, extra], [extra, *proof]]
    for wrong_proof in tampered:
        with pytest.raises(VerificationError, match="must have"):
            merkle.verify_inclusion(LEAVES[index], index, size, wrong_proof, _root(size))


@given(leaf_positions(), st.binary(min_size=32, max_size=32))
@PROPERTIES
def test_inclusion_against_a_wrong_root_is_rejected(position: tuple[int, int], wrong_root: bytes) -> None:
    index, size = position
    proof = merkle.inclusion_proof(index, size, _subtree(size))
    with pytest.raises(VerificationError, match="leads to root"):
        merkle.verify_inclusion(LEAVES[index], index, size, proof, wrong_root)


@given(size_pairs(), st.data())
@PROPERTIES
def test_flipped_bit_in_consistency_proof_is_rejected(sizes: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = sizes
    assume(size1 < size2)  # equal sizes have an empty proof, nothing to flip
    proof = merkle.consistency_proof(size1, size2, _subtree(size2))
    with pytest.raises(VerificationError, match="leads to"):
        merkle.verify_consistency(size1, size2, _flip_bit(proof, data), _root(size1), _root(size2))


@given(size_pairs(), size_pairs())
@PROPERTIES
def test_consistency_proof_does_not_hold_for_other_sizes(
    sizes: tuple[int, int], wrong_sizes: tuple[int, int]
) -> None:
    size1, size2 = sizes
    wrong1, wrong2 = wrong_sizes
    # The empty proof between equal sizes holds for every pair of equal sizes.
    assume(size1 < size2)
    if wrong_sizes == sizes:
        # Another second size, within the leaves the roots are computed from.
        wrong2 = wrong2 + 1 if wrong2 < MAX_SIZE else wrong2 - 1
    proof = merkle.consistency_proof(size1, size2, _subtree(size2))
    with pytest.raises(VerificationError):
        merkle.verify_consistency(wrong1, wrong2, proof, _root(wrong1), _root(wrong2))


@given(size_pairs(), st.data())
@PROPERTIES
def test_truncated_or_extended_consistency_proof_is_rejected(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    size1, size2 = sizes
    proof = merkle.consistency_proof(size1, size2, _subtree(size2))
    extra = data.draw(st.binary(min_size=32, max_size=32))
    tampered = [proof[:-1]] if proof else []
    tampered += [[*proof, extra], [extra, *proof]]
    for wrong_proof in tampered:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(size1, size2, wrong_proof, _root(size1), _root(size2))


@given(size_pairs(), st.binary(min_size=32, max_size=32), st.booleans())
@PROPERTIES
def test_consistency_against_a_wrong_root_is_rejected(
    sizes: tuple[int, int], wrong_root: bytes, replace_old: bool
) -> None:
    size1, size2 = sizes
    proof = merkle.consistency_proof(size1, size2, _subtree(size2))
    root1, root2 = _root(size1), _root(size2)
    if replace_old:
        root1 = wrong_root
    else:
        root2 = wrong_root
    with pytest.raises(VerificationError):
        merkle.verify_consistency(size1, size2, proof, root1, root2)


def test_verification_error_says_what_was_expected_and_found() -> None:
    size = 5
    proof = merkle.inclusion_proof(2, size, _subtree(size))
    with pytest.raises(VerificationError) as caught:
        merkle.verify_inclusion(LEAVES[2], 2, size, proof, _root(4))
    message = str(caught.value)
    assert _root(4).hex() in message
    assert _root(size).hex() in message


def test_short_hash_in_proof_is_named() -> None:
    proof = merkle.inclusion_proof(0, 4, _subtree(4))
    proof[1] = proof[1][:31]
    with pytest.raises(VerificationError, match="proof hash 1 must be 32 bytes, found 31"):
        merkle.verify_inclusion(LEAVES[0], 0, 4, proof, _root(4))


def test_consistency_proof_between_equal_sizes_is_empty() -> None:
    assert merkle.consistency_proof(7, 7, _subtree(7)) == []


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (-1, 3)])
def test_inclusion_proof_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(InvalidArgument):
        merkle.inclusion_proof(index, size, _subtree(max(size, 0)))


@pytest.mark.parametrize(("size1", "size2"), [(0, 3), (4, 3)])
def test_consistency_proof_with_impossible_sizes_is_refused(size1: int, size2: int) -> None:
    with pytest.raises(InvalidArgument):
        merkle.consistency_proof(size1, size2, _subtree(3))
