"""Stored tree nodes, in the style of C2SP tlog-tiles, so that a proof costs O(log n) reads.

A tile at level L and index N holds the hashes of the complete nodes at height 8 * L with
node indices N * 256 .. N * 256 + 255, concatenated (level 0 holds the leaf hashes). For a
tree of size s there are s >> h complete nodes at height h, so every level ends in at most
one partial tile, which grows as the log does and is rewritten whole each time. Nodes of
heights between two levels are not stored: they are hashed from at most 128 entries of the
one tile below them.

Pure functions and a reader over a ``fetch`` callable: no I/O of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from trailkeeper.errors import IntegrityError
from trailkeeper.merkle import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX, node_hash, parent_level, root_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
_TILE_BYTES = TILE_WIDTH * HASH_SIZE

Levels = list[list[bytes]]
TileFetch = Callable[[int, int], bytes | None]
"""``fetch(level, index)``: the stored hashes of that tile, or None when there is none."""


@dataclass(frozen=True)
class Tile:
    """The concatenated hashes of one tile, full (256 hashes) or partial."""

    level: int
    index: int
    hashes: bytes

    @property
    def width(self) -> int:
        """How many hashes the tile holds."""
        return len(self.hashes) // HASH_SIZE


def _split_hashes(hashes: bytes) -> list[bytes]:
    return [hashes[offset : offset + HASH_SIZE] for offset in range(0, len(hashes), HASH_SIZE)]


# SHA-256 already fed the node prefix: copying its state and feeding it a pair of adjacent
# hashes, sliced from one bytes object, costs half of hashing a fresh concatenation.
_NODE_STATE = hashlib.sha256(NODE_PREFIX)


def tile_levels(hashes: bytes) -> list[bytes]:
    """Every node inside a full tile, by height: its 256 entries (concatenated) first, then
    128 hashes, and so on up to its root alone (RFC 9162 section 2.1.1, pairing adjacent
    nodes)."""
    levels = [hashes]
    pair = 2 * HASH_SIZE
    while len(hashes) > HASH_SIZE:
        parents = []
        for offset in range(0, len(hashes), pair):
            node = _NODE_STATE.copy()
            node.update(hashes[offset : offset + pair])
            parents.append(node.digest())
        hashes = b"".join(parents)
        levels.append(hashes)
    return levels


def tile_root(hashes: bytes) -> bytes:
    """MTH of a full tile's 256 entries: the node one level up."""
    return tile_levels(hashes)[-1]


def _nodes_at_level(tree_size: int, level: int) -> int:
    """How many complete nodes of height 8 * level a tree of that size has."""
    return tree_size >> (TILE_HEIGHT * level)


def tile_width(tree_size: int, level: int, index: int) -> int:
    """How many hashes tile (level, index) holds when the tree has ``tree_size`` leaves."""
    remaining = _nodes_at_level(tree_size, level) - index * TILE_WIDTH
    return max(0, min(TILE_WIDTH, remaining))


def edge_tiles(tree_size: int) -> list[tuple[int, int]]:
    """The (level, index) of the partial tile of each level: what an append must read first."""
    edge: list[tuple[int, int]] = []
    level = 0
    while (nodes := _nodes_at_level(tree_size, level)) > 0:
        if nodes % TILE_WIDTH:
            edge.append((level, nodes // TILE_WIDTH))
        level += 1
    return edge


def append_leaves(
    tree_size: int, edge: Mapping[int, bytes], leaf_hashes: Sequence[bytes]
) -> tuple[dict[int, bytes], list[Tile]]:
    """Add leaf hashes to a tree of ``tree_size`` leaves whose partial tiles are ``edge``.

    ``edge[level]`` is the content of that level's partial tile, as read at
    :func:`edge_tiles`; a level without one may be left out. Returns the new edge, to pass
    to the next call, and every tile whose content changed, with its whole new content.
    Each tile that fills up contributes its root, a node of height 8 * (level + 1), to the
    level above, so n new leaves cost about n node hashes.

    Raises :class:`IntegrityError` when an edge tile does not hold what the size implies.
    """
    for level in set(edge) | {level for level, _ in edge_tiles(tree_size)}:
        _check_edge_tile(tree_size, level, edge.get(level, b""))
    new_edge: dict[int, bytes] = {}
    changed: list[Tile] = []
    incoming = b"".join(leaf_hashes)
    if len(incoming) != len(leaf_hashes) * HASH_SIZE:
        raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")
    level = 0
    while incoming:
        nodes_before = _nodes_at_level(tree_size, level)
        content = edge.get(level, b"") + incoming
        first_index = nodes_before // TILE_WIDTH
        tile_roots: list[bytes] = []
        for offset in range(0, len(content), _TILE_BYTES):
            hashes = content[offset : offset + _TILE_BYTES]
            changed.append(Tile(level, first_index + offset // _TILE_BYTES, hashes))
            if len(hashes) == _TILE_BYTES:
                tile_roots.append(tile_root(hashes))
            else:
                new_edge[level] = hashes
        incoming = b"".join(tile_roots)
        level += 1
    # Levels above the last one that received a node keep their partial tile as it was.
    for upper, hashes in edge.items():
        if upper >= level and hashes:
            new_edge[upper] = hashes
    return new_edge, changed


def _check_edge_tile(tree_size: int, level: int, hashes: bytes) -> None:
    nodes = _nodes_at_level(tree_size, level)
    expected = tile_width(tree_size, level, nodes // TILE_WIDTH)
    if len(hashes) != expected * HASH_SIZE:
        raise IntegrityError(
            f"partial tile {level}/{nodes // TILE_WIDTH} of a tree of size {tree_size} "
            f"must hold {expected} hashes, found {len(hashes) / HASH_SIZE:g}"
        )


def build_tiles(leaf_hashes: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    """Every tile of a log, keyed by (level, index), recomputed from all of its leaf hashes.

    Builds each height from the one below by pairing complete nodes only (an unpaired last
    node is not complete at the next height), keeping every eighth height: O(n) hashes.
    """
    tiles: dict[tuple[int, int], bytes] = {}
    nodes = list(leaf_hashes)
    level = 0
    while nodes:
        for offset in range(0, len(nodes), TILE_WIDTH):
            tiles[(level, offset // TILE_WIDTH)] = b"".join(nodes[offset : offset + TILE_WIDTH])
        for _ in range(TILE_HEIGHT):
            nodes = parent_level(nodes)
        level += 1
    return tiles


class TileReader:
    """The nodes and subtree hashes of one tree size, read from stored tiles.

    A tile stored for a larger tree serves a smaller one too: a partial tile only ever grows
    at its end, so its first entries are those of every earlier size. Tiles are cached once
    read, since the entries a fixed tree size uses never change; the cache is unbounded, so
    a reader is meant for one request or one batch of proofs.
    """

    def __init__(
        self,
        fetch: TileFetch,
        tree_size: int,
        full_levels: MutableMapping[tuple[int, int], Levels] | None = None,
        nodes: MutableMapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        """``full_levels``, when given, keeps the inner nodes of full tiles (which never
        change) from one reader to the next: a proof then hashes only inside tiles it is
        the first to read. ``nodes`` keeps, by (height, index), the complete nodes hashed
        from partial tiles: the right edge of a growing tree, which every proof crosses.
        A complete node never changes either, though its tile still grows."""
        self._fetch = fetch
        self.tree_size = tree_size
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._full_levels = full_levels
        self._nodes = nodes

    def _tile(self, level: int, index: int) -> bytes:
        cached = self._tiles.get((level, index))
        if cached is not None:
            return cached
        width = tile_width(self.tree_size, level, index)
        stored = self._fetch(level, index)
        if stored is None:
            raise IntegrityError(f"tile {level}/{index} is missing; a tree of size {self.tree_size} needs it")
        if len(stored) < width * HASH_SIZE:
            raise IntegrityError(
                f"tile {level}/{index} holds {len(stored) / HASH_SIZE:g} hashes; a tree of "
                f"size {self.tree_size} needs {width}"
            )
        self._tiles[(level, index)] = stored
        return stored

    def node(self, height: int, index: int) -> bytes:
        """The hash of the complete node at ``height`` with that index (RFC 9162 2.1.1 MTH)."""
        if not 0 <= index < (self.tree_size >> height):
            raise ValueError(
                f"no complete node {index} at height {height} in a tree of size {self.tree_size}"
            )
        level, height_in_tile = divmod(height, TILE_HEIGHT)
        span = 1 << height_in_tile  # entries of the tile under this node
        first = index * span
        if (
            self._full_levels is not None
            and height_in_tile
            and tile_width(self.tree_size, level, first // TILE_WIDTH) == TILE_WIDTH
        ):
            levels = self._levels(level, first // TILE_WIDTH)
            return levels[height_in_tile][(first % TILE_WIDTH) >> height_in_tile]
        if span > 1 and self._nodes is not None:
            cached = self._nodes.get((height, index))
            if cached is not None:
                return cached
        hashes = self._tile(level, first // TILE_WIDTH)
        offset = (first % TILE_WIDTH) * HASH_SIZE
        entries = hashes[offset : offset + span * HASH_SIZE]
        if span == 1:
            return entries
        node = root_hash(_split_hashes(entries))
        if self._nodes is not None:
            self._nodes[(height, index)] = node
        return node

    def _levels(self, level: int, index: int) -> Levels:
        """Every node inside a full tile, level by level (entries first, root last)."""
        assert self._full_levels is not None
        levels = self._full_levels.get((level, index))
        if levels is None:
            levels = [_split_hashes(hashes) for hashes in tile_levels(self._tile(level, index))]
            self._full_levels[(level, index)] = levels
        return levels

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) (RFC 9162 section 2.1.1) for an aligned range.

        ``start`` must be a multiple of the smallest power of two at least ``end - start``:
        the complete subtrees and right-edge subtrees that :mod:`trailkeeper.merkle` asks
        for. Such a range splits into complete nodes of decreasing size, one per bit of its
        length, and its MTH is their hashes folded from the right.
        """
        length = end - start
        if length == 0 and start == 0:
            return EMPTY_ROOT
        if length < 1 or end > self.tree_size or start % (1 << (length - 1).bit_length()):
            raise ValueError(f"[{start}, {end}) is not a subtree of a tree of size {self.tree_size}")
        nodes: list[bytes] = []
        position = start
        for height in range(length.bit_length() - 1, -1, -1):
            if length >> height & 1:
                nodes.append(self.node(height, position >> height))
                position += 1 << height
        folded = nodes.pop()
        while nodes:
            folded = node_hash(nodes.pop(), folded)
        return folded

    def root(self) -> bytes:
        """MTH(D[tree_size]), the root hash of this tree size (RFC 9162 section 2.1.1)."""
        return self.subtree(0, self.tree_size)
