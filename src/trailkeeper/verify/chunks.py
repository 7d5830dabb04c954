"""The log checked in chunks of consecutive seqs, and the tree above them rebuilt in order.

The rows are checked in chunks of consecutive seqs, each a whole number of level-0 tiles. A
chunk is checked on its own: its rows, its level-0 tiles, and the root of each of those
tiles, the node of height 8 over its 256 leaves (RFC 9162 section 2.1.1). From those roots,
in seq order, the rest is rebuilt: the tiles of level 1 and up, and the root at each
checkpoint's size. Memory is bounded by one chunk and one tile per level, and the chunks of a
large log are shared out between this process and helper processes
(:mod:`trailkeeper.verify.parallel`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from trailkeeper import merkle
from trailkeeper.store.base import Store, close_rows
from trailkeeper.tiles import TILE_WIDTH, tile_root
from trailkeeper.verify.checkpoints import CheckpointCheck
from trailkeeper.verify.report import Finding, Findings
from trailkeeper.verify.rows import RowCheck
from trailkeeper.verify.tree import TILE_BYTES, Frontier, TileCheck, _stored_root, compare_tile, tile_fetch

# --- the rows of a chunk ----------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """Consecutive seqs ``[start, end)`` to check on their own; ``start`` is a multiple of
    TILE_WIDTH. ``cuts``: the checkpoint sizes in ``(start, end]`` that fall inside a tile,
    whose roots need the MTH of that tile's first leaves."""

    start: int
    end: int
    cuts: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChunkCheck:
    """What checking a chunk gave: the root of each of its full level-0 tiles (a node of
    height 8), where a stored tile differs the root of the stored one (by position), the MTH
    of the leaves before each cut, the first finding, and how many rows were read."""

    nodes: list[bytes]
    stored_nodes: dict[int, bytes]
    cut_roots: dict[int, bytes]
    finding: Finding | None
    rows: int


def check_chunk(store: Store, tenant: str, chunk: Chunk) -> ChunkCheck:
    """Check every row of a chunk and every level-0 tile it covers."""
    findings = Findings()
    rows = RowCheck(tenant, chunk.start, findings)
    batches = store.verify_rows(tenant, chunk.start, chunk.end)
    try:
        for batch in batches:
            rows.check(batch)
    finally:
        close_rows(batches)
    rows.missing_until(chunk.end)
    rows.judge_bodiless(store.removed_before(tenant))
    # A derived search index is read first: the target rows read after it hold at least
    # those of the records it held then, below its stop (when they are part of it).
    indexed = store.indexed_columns(tenant, chunk.start, chunk.end)
    stored_below = indexed[0] if indexed is not None and store.derived_targets else None
    rows.judge_targets(store.stored_targets(tenant, chunk.start, chunk.end), stored_below)
    rows.judge_index(indexed, lambda stop: store.index_difference(tenant, chunk.start, stop))
    leaves = rows.leaves
    nodes: list[bytes] = []
    stored_nodes: dict[int, bytes] = {}
    first_tile = chunk.start // TILE_WIDTH
    fetch = tile_fetch(store, tenant)
    for offset in range(0, len(leaves), TILE_WIDTH):
        rebuilt = b"".join(leaves[offset : offset + TILE_WIDTH])
        full = len(rebuilt) == TILE_BYTES
        index = first_tile + offset // TILE_WIDTH
        stored = compare_tile(fetch, findings, 0, index, rebuilt, {}, partial=not full)
        if full:
            stored_root = _stored_root(stored, rebuilt)
            if stored_root is not None:
                stored_nodes[len(nodes)] = stored_root
            nodes.append(tile_root(rebuilt))
    # The leaves of the tile a checkpoint's size cuts, up to the cut.
    cut_roots = {
        size: merkle.root_hash(leaves[size - size % TILE_WIDTH - chunk.start : size - chunk.start])
        for size in chunk.cuts
    }
    return ChunkCheck(nodes, stored_nodes, cut_roots, findings.first(), rows.read)


# --- the tree above the chunks ------------------------------------------------------------------


class Rebuild:
    """The tree over the roots of the level-0 tiles, rebuilt chunk by chunk in seq order: it
    checks the tiles of level 1 and up, and each checkpoint as the tree reaches its size.

    The root at a size inside a tile folds the MTH of that tile's first leaves (a chunk's cut
    root) onto the right edge of the full tiles before it.
    """

    def __init__(self, tiles: TileCheck, checkpoints: CheckpointCheck) -> None:
        self._tiles = tiles
        self._checkpoints = checkpoints
        self._tree = Frontier()  # over the roots of full level-0 tiles
        self._cut_roots: dict[int, bytes] = {}
        self._next_size = checkpoints.reached(0, merkle.EMPTY_ROOT)

    def add(self, chunk: ChunkCheck) -> None:
        self._cut_roots.update(chunk.cut_roots)
        for position, node in enumerate(chunk.nodes):
            self._reach(self._tree.size * TILE_WIDTH + TILE_WIDTH)
            self._tiles.append(node, chunk.stored_nodes.get(position))
            self._tree.append(node)

    def finish(self, tree_size: int) -> None:
        self._reach(tree_size + 1)
        self._tiles.finish()

    def _reach(self, below: int) -> None:
        """Check the checkpoints whose sizes lie from the tree's size up to ``below``, not
        included: the tree has the full tiles before that size, the chunk its cut root."""
        full = self._tree.size * TILE_WIDTH
        while 0 <= self._next_size < below:
            size = self._next_size
            root = self._tree.root() if size == full else self._tree.root(self._cut_roots.pop(size))
            self._next_size = self._checkpoints.reached(size, root)


def _chunks(tree_size: int, chunk_size: int, checkpoint_sizes: list[int]) -> list[Chunk]:
    """``[0, tree_size)`` in chunks, each with the checkpoint sizes that cut one of its tiles.

    The chunks shrink towards the end, each a quarter of what is left once that is less than
    four chunks, down to an eighth of a chunk (and at least a tile): when the last chunk is
    taken, the other processes then wait for a short one, not a whole chunk.
    """
    smallest = max(TILE_WIDTH, chunk_size // 8 // TILE_WIDTH * TILE_WIDTH)
    chunks = []
    start = 0
    while start < tree_size:
        length = min(chunk_size, max(smallest, (tree_size - start) // 4 // TILE_WIDTH * TILE_WIDTH))
        end = min(start + length, tree_size)
        within = checkpoint_sizes[
            bisect.bisect_right(checkpoint_sizes, start) : bisect.bisect_right(checkpoint_sizes, end)
        ]
        chunks.append(Chunk(start, end, tuple(size for size in within if size % TILE_WIDTH)))
        start = end
    return chunks
