"""The Merkle tree rebuilt from the leaf hashes, and the stored tiles compared with it."""

from __future__ import annotations

import hashlib

from trailkeeper import merkle
from trailkeeper.store.base import Store
from trailkeeper.tiles import TILE_HEIGHT, TILE_WIDTH, TileFetch, tile_root
from trailkeeper.verify.report import Finding, Findings, Problem

TILE_BYTES = TILE_WIDTH * merkle.HASH_SIZE


# --- the tree -------------------------------------------------------------------------------------


class Frontier:
    """A Merkle tree built node by node: the roots of its complete subtrees on the right edge,
    one per set bit of its size (RFC 9162 section 2.1.1: MTH splits off the largest complete
    subtree first). O(log n) memory, one node hash per append on average, and the root of the
    tree so far in O(log n) at any time.

    What it is fed are leaf hashes, or equally the roots of equal complete subtrees (the roots
    of full tiles): the tree over those is the tree over the leaves beneath them.
    """

    def __init__(self) -> None:
        self.size = 0
        self._edge: list[bytes] = []  # _edge[h]: the subtree of height h, if bit h of size is set

    def append(self, leaf: bytes) -> None:
        sha256, prefix, edge = hashlib.sha256, merkle.NODE_PREFIX, self._edge
        size, node, height = self.size, leaf, 0
        while size & 1:
            node = sha256(prefix + edge[height] + node).digest()
            size >>= 1
            height += 1
        if height == len(edge):
            edge.append(node)
        else:
            edge[height] = node
        self.size += 1

    def root(self, right: bytes | None = None) -> bytes:
        """MTH of the leaves so far: the complete subtrees folded from the right. With
        ``right``, the MTH of a smaller subtree that follows them (the leaves of a partial
        tile, when the frontier holds roots of full tiles): the subtrees of a tree's right
        edge fold the same whether or not that last one was folded first."""
        root = right
        for height, node in enumerate(self._edge):
            if self.size >> height & 1:
                root = node if root is None else merkle.node_hash(node, root)
        return merkle.EMPTY_ROOT if root is None else root


def _stored_root(stored: bytes | None, rebuilt: bytes) -> bytes | None:
    """The root of a stored full tile that differs from the rebuilt one: the node above may
    have been made from it."""
    if stored is None or stored == rebuilt or len(stored) != TILE_BYTES:
        return None
    return tile_root(stored)


def compare_tile(
    fetch: TileFetch,
    findings: Findings,
    level: int,
    index: int,
    expected: bytes,
    alternates: dict[int, bytes],
    *,
    partial: bool,
) -> bytes | None:
    """Compare a stored tile with the rebuilt one, report where it first differs, and return
    it. ``alternates`` are, by entry, roots of stored tiles below that differ from the rebuilt
    ones (and were reported there): an entry made from one of them is not reported again."""
    stored = fetch(level, index)
    if stored is None:
        _bad_node(findings, level, index, 0, "is missing")
        return None
    # A partial tile read after a later append holds more hashes: only its beginning is
    # this tree's. A full tile never changes.
    found = stored[: len(expected)] if partial else stored
    if found == expected:
        return stored
    entry = _first_unexplained(expected, found, alternates)
    if len(found) != len(expected) or len(stored) % merkle.HASH_SIZE:
        width = len(stored) / merkle.HASH_SIZE
        expected_width = len(expected) // merkle.HASH_SIZE
        if entry is None:  # the hashes both hold agree: the first one missing is bad
            entry = min(len(found) // merkle.HASH_SIZE, expected_width)
        _bad_node(findings, level, index, entry, f"holds {width:g} hashes, expected {expected_width}")
    elif entry is not None:
        _bad_node(findings, level, index, entry, f"holds a wrong hash at entry {entry}")
    return stored


def _bad_node(findings: Findings, level: int, index: int, entry: int, what: str) -> None:
    node = index * TILE_WIDTH + entry
    first_seq = node << (TILE_HEIGHT * level)
    findings.add(
        Finding(
            first_seq,
            Problem.BAD_NODE,
            f"stored tile {level}/{index} {what} (the node over the records from seq {first_seq})",
        )
    )


def _first_unexplained(expected: bytes, found: bytes, alternates: dict[int, bytes]) -> int | None:
    """The first entry where a stored tile differs from the rebuilt one, other than one made
    from a stored tile below that was itself found to differ (and reported there)."""
    size = merkle.HASH_SIZE
    for entry in range(min(len(expected), len(found)) // size):
        stored = found[entry * size : (entry + 1) * size]
        if stored != expected[entry * size : (entry + 1) * size] and stored != alternates.get(entry):
            return entry
    return None


class TileCheck:
    """Compares every stored tile from ``level`` up with the tile rebuilt from the nodes fed
    to it (the nodes of height ``8 * level``, in order), as each fills. Memory: one tile per
    level.

    A tile at level L holds the nodes at height 8L (see :mod:`trailkeeper.tiles`); the root of
    a full one is the next entry of level L + 1. When a stored tile is not the rebuilt one,
    only the level above can tell which of the two its parent was made from, so the level
    above accepts the root of either: a bad node is then reported once, where it is, and
    neither again in every tile above it nor as a good tile above a bad one.
    """

    def __init__(self, fetch: TileFetch, findings: Findings, level: int = 0) -> None:
        self._fetch = fetch
        self._findings = findings
        self._level = level
        # Per level from ``level`` up: the nodes of the tile being filled, the roots of stored
        # tiles below that differ from the rebuilt ones (by entry), and the tile's index.
        self._pending: list[list[bytes]] = []
        self._alternates: list[dict[int, bytes]] = []
        self._next_index: list[int] = []

    def append(self, node: bytes, stored_node: bytes | None = None) -> None:
        """The next node of the lowest level. ``stored_node``: where the stored tile below
        that node differs from the rebuilt one, the root of the stored tile."""
        self._add(0, node, stored_node)

    def _add(self, depth: int, node: bytes, alternate: bytes | None) -> None:
        if depth == len(self._pending):
            self._pending.append([])
            self._alternates.append({})
            self._next_index.append(0)
        pending = self._pending[depth]
        if alternate is not None:
            self._alternates[depth][len(pending)] = alternate
        pending.append(node)
        if len(pending) < TILE_WIDTH:
            return
        rebuilt = b"".join(pending)
        alternates = self._alternates[depth]
        pending.clear()
        self._alternates[depth] = {}
        index = self._next_index[depth]
        self._next_index[depth] = index + 1
        level = self._level + depth
        stored = compare_tile(self._fetch, self._findings, level, index, rebuilt, alternates, partial=False)
        self._add(depth + 1, tile_root(rebuilt), _stored_root(stored, rebuilt))

    def finish(self) -> None:
        """Compare the partial tile of every level, once every node is in."""
        for depth, pending in enumerate(self._pending):
            if pending:
                level, index = self._level + depth, self._next_index[depth]
                rebuilt = b"".join(pending)
                compare_tile(
                    self._fetch, self._findings, level, index, rebuilt, self._alternates[depth], partial=True
                )


def tile_fetch(store: Store, tenant: str) -> TileFetch:
    def fetch(level: int, index: int) -> bytes | None:
        return store.tile(tenant, level, index)

    return fetch
