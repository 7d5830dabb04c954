"""Stored tiles of tree nodes: appending, reading nodes back, and proving from them."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper import merkle
from trailkeeper.errors import IntegrityError
from trailkeeper.tiles import (
    TILE_WIDTH,
    Tile,
    TileReader,
    append_leaves,
    build_tiles,
    edge_tiles,
    tile_levels,
    tile_root,
)

Tiles = dict[tuple[int, int], bytes]

# One more leaf than 256 * 256: the first node of level 2 exists, and every level ends in
# a partial tile.
LARGE_SIZE = TILE_WIDTH * TILE_WIDTH + 1
LEAVES = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(LARGE_SIZE)]


def _append_in_batches(batch_sizes: list[int]) -> tuple[Tiles, dict[int, bytes], int]:
    """Append LEAVES in batches as a single writer would: the store and its edge cache."""
    store: Tiles = {}
    edge: dict[int, bytes] = {}
    size = 0
    for batch in batch_sizes:
        edge, changed = append_leaves(size, edge, LEAVES[size : size + batch])
        store.update({(tile.level, tile.index): tile.hashes for tile in changed})
        size += batch
    return store, edge, size


def _reader(tiles: Tiles, tree_size: int) -> TileReader:
    return TileReader(lambda level, index: tiles.get((level, index)), tree_size)


@pytest.fixture(scope="module")
def large_tiles() -> Tiles:
    return build_tiles(LEAVES)


def test_tiles_appended_in_batches_equal_tiles_built_at_once(large_tiles: Tiles) -> None:
    batches = [1, 7, 255, 256, 257, 1000, 1, 65_536 - 1777, 1]
    store, _, size = _append_in_batches(batches)
    assert size == LARGE_SIZE
    assert store == large_tiles


@given(st.lists(st.integers(0, 700), max_size=6))
@settings(max_examples=40, deadline=None)
def test_any_batching_gives_the_tiles_of_the_whole_log(batch_sizes: list[int]) -> None:
    store, edge, size = _append_in_batches(batch_sizes)
    assert store == build_tiles(LEAVES[:size])
    # The edge handed back is what a fresh writer would read at edge_tiles.
    assert edge == {level: store[(level, index)] for level, index in edge_tiles(size)}


def test_appending_one_leaf_rewrites_only_the_tiles_it_changes() -> None:
    store = build_tiles(LEAVES[: 3 * TILE_WIDTH + 5])
    edge = {level: store[(level, index)] for level, index in edge_tiles(3 * TILE_WIDTH + 5)}
    _, changed = append_leaves(3 * TILE_WIDTH + 5, edge, [LEAVES[3 * TILE_WIDTH + 5]])
    assert [(tile.level, tile.index, tile.width) for tile in changed] == [(0, 3, 6)]


def test_filling_a_tile_adds_its_root_to_the_level_above() -> None:
    size = TILE_WIDTH - 1
    edge = {0: b"".join(LEAVES[:size])}
    new_edge, changed = append_leaves(size, edge, [LEAVES[size]])
    full_root = merkle.root_hash(LEAVES[:TILE_WIDTH])
    assert changed == [Tile(0, 0, b"".join(LEAVES[:TILE_WIDTH])), Tile(1, 0, full_root)]
    assert new_edge == {1: full_root}


def test_edge_tiles_name_the_partial_tile_of_each_level() -> None:
    assert edge_tiles(0) == []
    assert edge_tiles(5) == [(0, 0)]
    assert edge_tiles(TILE_WIDTH) == [(1, 0)]
    assert edge_tiles(TILE_WIDTH * 3 + 1) == [(0, 3), (1, 0)]
    assert edge_tiles(LARGE_SIZE) == [(0, 256), (2, 0)]


def test_edge_tile_of_the_wrong_length_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="must hold 5 hashes, found 4"):
        append_leaves(5, {0: b"".join(LEAVES[:4])}, [LEAVES[5]])
    with pytest.raises(IntegrityError, match="must hold 5 hashes, found 0"):
        append_leaves(5, {}, [LEAVES[5]])


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 257, 511, 512, 1000, 4097])
def test_reader_root_equals_root_hash(size: int) -> None:
    tiles = build_tiles(LEAVES[:size])
    assert _reader(tiles, size).root() == merkle.root_hash(LEAVES[:size])


@given(st.integers(1, 1100), st.data())
@settings(max_examples=40, deadline=None)
def test_reader_subtree_equals_the_mth_of_its_leaves(size: int, data: st.DataObject) -> None:
    reader = _reader(build_tiles(LEAVES[:size]), size)
    height = data.draw(st.integers(0, size.bit_length()))
    start = data.draw(st.integers(0, (size - 1) >> height)) << height
    end = min(start + (1 << height), size)
    assert reader.subtree(start, end) == merkle.root_hash(LEAVES[start:end])


@given(st.integers(1, 1100), st.data())
@settings(max_examples=40, deadline=None)
def test_proofs_through_tiles_equal_proofs_from_leaves(size: int, data: st.DataObject) -> None:
    reader = _reader(build_tiles(LEAVES[:size]), size)
    in_memory = merkle.leaves_subtree(LEAVES[:size])
    index = data.draw(st.integers(0, size - 1))
    old_size = data.draw(st.integers(1, size))
    proof = merkle.inclusion_proof(index, size, reader.subtree)
    assert proof == merkle.inclusion_proof(index, size, in_memory)
    merkle.verify_inclusion(LEAVES[index], index, size, proof, reader.root())
    proof = merkle.consistency_proof(old_size, size, reader.subtree)
    assert proof == merkle.consistency_proof(old_size, size, in_memory)
    old_root = merkle.root_hash(LEAVES[:old_size])
    merkle.verify_consistency(old_size, size, proof, old_root, reader.root())


@pytest.mark.parametrize("size", [LARGE_SIZE, LARGE_SIZE - 1, 65_280, 65_279, 40_000])
def test_tiles_of_a_grown_log_serve_every_earlier_size(large_tiles: Tiles, size: int) -> None:
    # Partial tiles only grow at their end, so today's tiles prove yesterday's tree.
    reader = _reader(large_tiles, size)
    assert reader.root() == merkle.root_hash(LEAVES[:size])
    in_memory = merkle.leaves_subtree(LEAVES[:size])
    for index in [0, size - 1, *random.Random(size).sample(range(size), 3)]:
        proof = merkle.inclusion_proof(index, size, reader.subtree)
        assert proof == merkle.inclusion_proof(index, size, in_memory)
        merkle.verify_inclusion(LEAVES[index], index, size, proof, reader.root())


@pytest.mark.parametrize("old_size", [1, 255, 256, 65_535, 65_536])
def test_consistency_across_the_level_two_boundary(large_tiles: Tiles, old_size: int) -> None:
    reader = _reader(large_tiles, LARGE_SIZE)
    proof = merkle.consistency_proof(old_size, LARGE_SIZE, reader.subtree)
    assert proof == merkle.consistency_proof(old_size, LARGE_SIZE, merkle.leaves_subtree(LEAVES))
    old_root = _reader(large_tiles, old_size).root()
    merkle.verify_consistency(old_size, LARGE_SIZE, proof, old_root, reader.root())


def test_node_at_a_stored_height_is_the_tile_entry(large_tiles: Tiles) -> None:
    reader = _reader(large_tiles, LARGE_SIZE)
    assert reader.node(16, 0) == large_tiles[(2, 0)]
    assert reader.node(8, 255) == merkle.root_hash(LEAVES[255 * 256 : 256 * 256])
    assert reader.node(11, 3) == merkle.root_hash(LEAVES[3 * 2048 : 4 * 2048])


def test_missing_tile_is_an_integrity_error() -> None:
    tiles = build_tiles(LEAVES[:1000])
    del tiles[(0, 2)]
    reader = _reader(tiles, 1000)
    reader.root()  # the root needs only the tiles above leaves 512..767, not their leaves
    with pytest.raises(IntegrityError, match="tile 0/2 is missing"):
        merkle.inclusion_proof(600, 1000, reader.subtree)


def test_short_tile_is_an_integrity_error() -> None:
    tiles = build_tiles(LEAVES[:1000])
    tiles[(0, 3)] = tiles[(0, 3)][:-32]
    with pytest.raises(IntegrityError, match="tile 0/3 holds 231 hashes"):
        _reader(tiles, 1000).root()


def test_reader_reads_each_tile_once() -> None:
    tiles = build_tiles(LEAVES[:1000])
    reads: list[tuple[int, int]] = []

    def fetch(level: int, index: int) -> bytes | None:
        reads.append((level, index))
        return tiles.get((level, index))

    reader = TileReader(fetch, 1000)
    for index in range(0, 1000, 97):
        merkle.inclusion_proof(index, 1000, reader.subtree)
    assert sorted(reads) == sorted(set(reads))


def test_subtree_that_is_not_aligned_is_refused() -> None:
    reader = _reader(build_tiles(LEAVES[:8]), 8)
    with pytest.raises(ValueError, match="not a subtree"):
        reader.subtree(1, 4)


@given(st.integers(1, LARGE_SIZE), st.data())
@settings(max_examples=40, deadline=None)
def test_cached_inner_nodes_of_full_tiles_give_the_same_proofs(
    large_tiles: Tiles, size: int, data: st.DataObject
) -> None:
    cache: dict[tuple[int, int], list[list[bytes]]] = {}
    index = data.draw(st.integers(0, size - 1))
    cached = TileReader(lambda level, i: large_tiles.get((level, i)), size, cache)
    for _ in range(2):  # the second pass answers from the cache
        assert merkle.inclusion_proof(index, size, cached.subtree) == merkle.inclusion_proof(
            index, size, merkle.leaves_subtree(LEAVES[:size])
        )
    # Only full tiles are kept: a partial one still grows.
    assert all(len(levels[0]) == 256 for levels in cache.values())


def test_edge_nodes_kept_from_a_smaller_tree_serve_the_grown_one() -> None:
    """A complete node hashed from a partial tile is kept by (height, index); the tile
    grows, the node does not, and proofs of every later size stay right."""
    nodes: dict[tuple[int, int], bytes] = {}
    store: Tiles = {}
    edge: dict[int, bytes] = {}
    size = 0
    rng = random.Random(3)
    while size < 3 * TILE_WIDTH * 4:
        batch = rng.randrange(1, 200)
        edge, changed = append_leaves(size, edge, LEAVES[size : size + batch])
        store.update({(tile.level, tile.index): tile.hashes for tile in changed})
        size += batch
        reader = TileReader(lambda level, i: store.get((level, i)), size, {}, nodes)
        for index in (0, size // 2, size - 1):
            assert merkle.inclusion_proof(index, size, reader.subtree) == merkle.inclusion_proof(
                index, size, merkle.leaves_subtree(LEAVES[:size])
            )
        old = rng.randrange(1, size + 1)
        assert merkle.consistency_proof(old, size, reader.subtree) == merkle.consistency_proof(
            old, size, merkle.leaves_subtree(LEAVES[:size])
        )
    assert nodes  # the edge was crossed, and its nodes kept


@given(st.binary(min_size=TILE_WIDTH * 32, max_size=TILE_WIDTH * 32))
def test_tile_levels_are_the_heights_of_the_tile(hashes: bytes) -> None:
    entries = [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
    levels = tile_levels(hashes)
    assert len(levels) == 9
    assert tile_root(hashes) == levels[-1] == merkle.root_hash(entries)
    assert levels[1] == b"".join(merkle.parent_level(entries))
