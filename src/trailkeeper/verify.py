"""``trailkeeper verify``: recompute a tenant's log from its stored rows and check it all.

Every row's leaf hash is recomputed from its body (CONTRACT section 3) and its searchable
columns are read back from the body; the tree is rebuilt from those leaf hashes and every
stored tile is compared with it; every checkpoint's signature is checked, and its root
against the rebuilt root at its size. The report names the first ``seq`` that can no longer
be trusted and what is wrong there.

The rows are checked in chunks of consecutive seqs, each a whole number of level-0 tiles. A
chunk is checked on its own: its rows, its level-0 tiles, and the root of each of those
tiles, the node of height 8 over its 256 leaves (RFC 9162 section 2.1.1). From those roots,
in seq order, the rest is rebuilt: the tiles of level 1 and up, and the root at each
checkpoint's size. Memory is bounded by one chunk and one tile per level, and the chunks of a
large log are shared out between this process and helper processes.

Per row, the work is one SHA-256 and one partial decode of the body; no Python object is made
per column. The store hands over each row's place and searchable columns as one JSON text
(:meth:`Store.verify_rows`), the same text is encoded from a batch of bodies at once, and one
comparison of bytes checks the batch. A batch in any doubt is checked again row by row, which
says what is wrong.

Reading order matters on a live log: the checkpoints are read first, then the head, then the
rows beyond that head, then the head again. A log only grows, its head with its rows, so a row
beyond the second head in a read made before it can only have been put there by hand.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec

from trailkeeper import merkle
from trailkeeper.errors import InvalidArgument, VerificationError
from trailkeeper.notes import Checkpoint, VerifierKey, open_checkpoint
from trailkeeper.store.base import Store, StoredCheckpoint, VerifyRow
from trailkeeper.store.sql import INDEX_COLUMN_NAMES
from trailkeeper.tiles import TILE_HEIGHT, TILE_WIDTH, TileFetch, tile_root

if TYPE_CHECKING:
    from trailkeeper.auditlog import AuditLog

Progress = Callable[[int, int], None]
"""``progress(done, total)``: how many of a tenant's records have been checked."""

CHUNK = 1 << 15
"""Leaves per chunk: a few tenths of a second of work, a whole number of level-0 tiles."""
PARALLEL_FROM = 1 << 18
"""The smallest log whose chunks are shared out with helper processes: below it, the time a
helper takes to start (its interpreter and imports) outweighs what it would do."""

_TILE_BYTES = TILE_WIDTH * merkle.HASH_SIZE
# Stands in for a record missing from the store, so that the tiles after it still line up
# with their seqs and only the tile that covers the gap is reported.
_ABSENT = bytes(merkle.HASH_SIZE)


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


# --- the searchable columns of a body --------------------------------------------------------

# Structs without cycles need no garbage collector's attention: gc=False spares it a million.


class _Actor(msgspec.Struct, gc=False):
    type: str
    id: str


class _Integration(msgspec.Struct, gc=False):
    provider: str


class _Workflow(msgspec.Struct, gc=False):
    run_id: str


class _Context(msgspec.Struct, gc=False):
    ip: str | None = None


class _Indexed(msgspec.Struct, gc=False):
    """The fields of a stored record that verify reads: its place and what search indexes.

    Decoding only these (msgspec skips the rest without building it) is several times faster
    than decoding the whole record, which matters at a million rows.
    """

    seq: int
    tenant: str
    occurred_at: datetime
    category: str
    action: str
    outcome: str
    actor: _Actor
    integration: _Integration | None = None
    workflow: _Workflow | None = None
    context: _Context | None = None


_decode_indexed = msgspec.json.Decoder(_Indexed).decode
_encode = msgspec.json.Encoder().encode
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def indexed_columns(fields: _Indexed) -> tuple[Any, ...]:
    """The columns of ``INDEX_COLUMN_NAMES`` as ``store.sql.index_columns`` derives them."""
    return _place_and_columns(fields)[2:]


def _place_and_columns(fields: _Indexed) -> tuple[Any, ...]:
    """What ``Store.verify_rows`` gives as a row's columns, as its body says: ``[seq, tenant,
    *INDEX_COLUMN_NAMES]``. Encoded compactly, it is the same text when the two agree.

    Made once per row, in one expression: the cost of each call and attribute shows here.
    """
    actor, integration, workflow, context = fields.actor, fields.integration, fields.workflow, fields.context
    return (
        fields.seq,
        fields.tenant,
        (fields.occurred_at - _EPOCH) // _MICROSECOND,
        fields.category,
        fields.action,
        fields.outcome,
        actor.type,
        actor.id,
        None if integration is None else integration.provider,
        None if workflow is None else workflow.run_id,
        None if context is None else context.ip,
    )


def body_columns(body: bytes) -> tuple[int, str, tuple[Any, ...]]:
    """A body's own seq, tenant and searchable columns; ValueError when it is no record."""
    try:
        fields = _decode_indexed(body)
    except msgspec.DecodeError as error:  # ValidationError is a DecodeError
        raise ValueError(str(error)) from None
    if fields.occurred_at.tzinfo is None:
        raise ValueError("occurred_at has no offset")
    return fields.seq, fields.tenant, indexed_columns(fields)


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


# SHA-256 already fed the leaf prefix: copying it is cheaper than starting a hash per leaf
# and joining the prefix to the body.
_LEAF_HASH = hashlib.sha256(merkle.LEAF_PREFIX)


def _stored_root(stored: bytes | None, rebuilt: bytes) -> bytes | None:
    """The root of a stored full tile that differs from the rebuilt one: the node above may
    have been made from it."""
    if stored is None or stored == rebuilt or len(stored) != _TILE_BYTES:
        return None
    return tile_root(stored)


def _compare_tile(
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
        stored = _compare_tile(self._fetch, self._findings, level, index, rebuilt, alternates, partial=False)
        self._add(depth + 1, tile_root(rebuilt), _stored_root(stored, rebuilt))

    def finish(self) -> None:
        """Compare the partial tile of every level, once every node is in."""
        for depth, pending in enumerate(self._pending):
            if pending:
                level, index = self._level + depth, self._next_index[depth]
                rebuilt = b"".join(pending)
                _compare_tile(
                    self._fetch, self._findings, level, index, rebuilt, self._alternates[depth], partial=True
                )


# --- the rows of a chunk ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    """Consecutive seqs ``[start, end)`` to check on their own; ``start`` is a multiple of
    TILE_WIDTH. ``cuts``: the checkpoint sizes in ``(start, end]`` that fall inside a tile,
    whose roots need the MTH of that tile's first leaves."""

    start: int
    end: int
    cuts: tuple[int, ...] = ()


@dataclass(frozen=True)
class _ChunkCheck:
    """What checking a chunk gave: the root of each of its full level-0 tiles (a node of
    height 8), where a stored tile differs the root of the stored one (by position), the MTH
    of the leaves before each cut, the first finding, and how many rows were read."""

    nodes: list[bytes]
    stored_nodes: dict[int, bytes]
    cut_roots: dict[int, bytes]
    finding: Finding | None
    rows: int


def _check_chunk(store: Store, tenant: str, chunk: _Chunk) -> _ChunkCheck:
    """Check every row of a chunk and every level-0 tile it covers."""
    findings = Findings()
    rows = _RowCheck(tenant, chunk.start, findings)
    batches = store.verify_rows(tenant, chunk.start, chunk.end)
    try:
        for batch in batches:
            rows.check(batch)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    rows.missing_until(chunk.end)
    leaves = rows.leaves
    nodes: list[bytes] = []
    stored_nodes: dict[int, bytes] = {}
    first_tile = chunk.start // TILE_WIDTH
    fetch = _tile_fetch(store, tenant)
    for offset in range(0, len(leaves), TILE_WIDTH):
        rebuilt = b"".join(leaves[offset : offset + TILE_WIDTH])
        full = len(rebuilt) == _TILE_BYTES
        index = first_tile + offset // TILE_WIDTH
        stored = _compare_tile(fetch, findings, 0, index, rebuilt, {}, partial=not full)
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
    return _ChunkCheck(nodes, stored_nodes, cut_roots, findings.first(), rows.read)


def _tile_fetch(store: Store, tenant: str) -> TileFetch:
    def fetch(level: int, index: int) -> bytes | None:
        return store.tile(tenant, level, index)

    return fetch


class _RowCheck:
    """Checks the rows of one chunk in seq order, a batch at a time, and keeps their leaf
    hashes (a stand-in for each row that is missing)."""

    def __init__(self, tenant: str, start: int, findings: Findings) -> None:
        self.leaves: list[bytes] = []
        self.read = 0
        self._tenant = tenant
        self._expected = start  # the seq the next row must have
        self._findings = findings

    def check(self, batch: list[VerifyRow]) -> None:
        if not self._sound(batch):
            for row in batch:
                self._check_row(row)

    def _sound(self, batch: list[VerifyRow]) -> bool:
        """The fast path, taken by a batch of sound rows: every row in its place, hashing to
        its leaf hash, and with the columns its body says, each checked for the whole batch
        at once. Anything else (a gap, a purged body, a body stored as text, one that is no
        record, a disagreement) sends the batch to the row by row check.

        Written for speed, as it runs for every row of the log: the rows are taken apart in
        one call, and each leaf hash copies a hash already fed the leaf prefix (cheaper than
        joining the prefix to the body).
        """
        if not batch:
            return True
        first = self._expected
        seqs, bodies, stored_leaves, columns = zip(*batch, strict=True)
        if seqs != tuple(range(first, first + len(seqs))) or None in bodies or None in columns:
            return False  # a gap or a row out of place; a purged body; a column JSON cannot hold
        leaves: list[bytes] = []
        append, leaf_hash = leaves.append, _LEAF_HASH.copy
        try:
            for body in bodies:
                hashed = leaf_hash()
                hashed.update(body)
                append(hashed.digest())
            if b"".join(leaves) != b"".join(stored_leaves):
                return False
            own_columns = _encode([_place_and_columns(_decode_indexed(body)) for body in bodies])
        except (TypeError, msgspec.DecodeError):  # a body stored as text; no record; no offset
            return False
        if own_columns != b"".join((b"[", b",".join(columns), b"]")):
            return False
        self.leaves += leaves
        self._expected += len(batch)
        self.read += len(batch)
        return True

    def _check_row(self, row: VerifyRow) -> None:
        seq, body, stored_leaf, columns = row
        if seq < self._expected:  # the store gave this seq already, or out of order
            message = f"record {seq} comes after record {self._expected - 1}"
            self._findings.add(Finding(seq, Problem.WRONG_ORDER, message))
            return
        self.missing_until(seq)
        if body is None:
            # Retention purged the body and kept its leaf hash: the tiles still check it.
            leaf = _as_bytes(stored_leaf)
        else:
            body = _as_bytes(body)
            leaf = hashlib.sha256(merkle.LEAF_PREFIX + body).digest()
            problem = _row_problem(self._tenant, seq, body, leaf, stored_leaf, columns)
            if problem is not None:
                self._findings.add(Finding(seq, problem[0], problem[1]))
        self.leaves.append(leaf)
        self._expected = seq + 1
        self.read += 1

    def missing_until(self, seq: int) -> None:
        """The records from the expected seq up to ``seq`` are not in the store: report the
        first, and stand in for each, so that the tiles after them keep their places."""
        if seq > self._expected:
            message = f"record {self._expected} is not in the store"
            self._findings.add(Finding(self._expected, Problem.MISSING_RECORD, message))
            self.leaves += [_ABSENT] * (seq - self._expected)
            self._expected = seq


def _as_bytes(value: object) -> bytes:
    # SQL functions applied to a BLOB by hand give TEXT back; a driver may give a memoryview.
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a stored body or hash is {type(value).__name__}, not bytes")


def _row_problem(
    tenant: str, seq: int, body: bytes, leaf: bytes, stored_leaf: object, stored_columns: bytes | None
) -> tuple[Problem, str] | None:
    """What is wrong with one stored row, or None: its body must be the record of its own
    place, hash to its leaf hash, and agree with its searchable columns."""
    try:
        own_seq, own_tenant, columns = body_columns(body)
    except ValueError as error:
        return Problem.CHANGED_RECORD, f"record {seq} is not a valid record: {error}"
    if own_seq != seq or own_tenant != tenant:
        return Problem.WRONG_ORDER, (
            f"the body stored at seq {seq} of {tenant!r} is record {own_seq} of {own_tenant!r}"
        )
    if leaf != stored_leaf:
        return Problem.CHANGED_RECORD, (
            f"record {seq} hashes to {leaf.hex()}, its stored leaf hash is {_as_bytes(stored_leaf).hex()}"
        )
    stored = _read_columns(stored_columns)
    if stored is None:
        return Problem.CHANGED_RECORD, f"a searchable column of record {seq} holds neither text nor a number"
    for name, value in zip(INDEX_COLUMN_NAMES, columns, strict=True):
        if stored[name] != value:
            return Problem.CHANGED_RECORD, (
                f"column {name} of record {seq} is {stored[name]!r}, its body says {value!r}"
            )
    return None


def _read_columns(text: bytes | None) -> dict[str, Any] | None:
    """The searchable columns of a row, by name, from the JSON text of ``Store.verify_rows``."""
    if text is None:
        return None
    try:
        values = json.loads(text)
    except ValueError:
        return None
    if not isinstance(values, list) or len(values) != 2 + len(INDEX_COLUMN_NAMES):
        return None
    return dict(zip(INDEX_COLUMN_NAMES, values[2:], strict=True))


# --- the tree above the chunks ------------------------------------------------------------------


class _Rebuild:
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

    def add(self, chunk: _ChunkCheck) -> None:
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


def _chunks(tree_size: int, chunk_size: int, checkpoint_sizes: list[int]) -> list[_Chunk]:
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
        chunks.append(_Chunk(start, end, tuple(size for size in within if size % TILE_WIDTH)))
        start = end
    return chunks


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


# --- sharing the chunks out -------------------------------------------------------------------

# A helper is a plain interpreter started on this module, fed chunks as pickles on its stdin
# and answering on its stdout. Unlike multiprocessing's spawn, it never imports the caller's
# __main__ (which a script without a main guard would run again), and unlike fork it inherits
# no threads or locks. Pickles only ever pass between this process and the helpers it started.
_HELPER_COMMAND = "from trailkeeper.verify import _serve_chunks; _serve_chunks()"


def _serve_chunks() -> None:
    """A helper process: read the store's URL and the tenant, then check each chunk it is
    given, until its input ends."""
    from trailkeeper.store import open_store

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    url, tenant = pickle.load(requests)  # noqa: S301 - written by the process that started this one
    store = open_store(url)
    try:
        while True:
            try:
                chunk = pickle.load(requests)  # noqa: S301 - as above
            except EOFError:
                return
            pickle.dump(_check_chunk(store, tenant, chunk), answers)
            answers.flush()
    finally:
        store.close()


class _Work:
    """The chunks, handed out in order to whoever is free (this process or a helper), and the
    checks of those done, kept until they are taken in order."""

    def __init__(self, chunks: list[_Chunk]) -> None:
        self.chunks = chunks
        self._next = 0
        self._returned: list[int] = []  # chunks a failed helper gave back
        self._done: dict[int, _ChunkCheck] = {}
        self._changed = threading.Condition()
        self._stopped = False

    def take(self) -> int | None:
        """The next chunk to check, or None when none is left (or the work stopped)."""
        with self._changed:
            if self._stopped:
                return None
            if self._returned:
                return self._returned.pop()
            if self._next == len(self.chunks):
                return None
            self._next += 1
            return self._next - 1

    def done(self, index: int, check: _ChunkCheck) -> None:
        with self._changed:
            self._done[index] = check
            self._changed.notify_all()

    def give_back(self, index: int) -> None:
        with self._changed:
            self._returned.append(index)
            self._changed.notify_all()

    def result(self, index: int, *, wait: bool) -> _ChunkCheck | None:
        """The check of a chunk once it is done; with ``wait``, wait until it is, or until a
        chunk is given back, for the caller to take."""
        with self._changed:
            if wait:
                self._changed.wait_for(lambda: index in self._done or bool(self._returned))
            return self._done.pop(index, None)

    def stop(self) -> None:
        with self._changed:
            self._stopped = True


def _helper(url: str, tenant: str, work: _Work) -> None:
    """A helper's thread: start the helper process and keep it fed. A helper that fails only
    means less help: its chunk goes back for another to take."""
    try:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, on a fixed command
            [sys.executable, "-c", _HELPER_COMMAND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # The helper imports what this process imports, from where this process does.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)},
        )
    except OSError:
        return
    requests, answers = process.stdin, process.stdout
    assert requests is not None
    assert answers is not None
    index: int | None = None
    try:
        pickle.dump((url, tenant), requests)
        while (index := work.take()) is not None:
            pickle.dump(work.chunks[index], requests)
            requests.flush()
            work.done(index, pickle.load(answers))  # noqa: S301 - from the helper this thread started
    except Exception:  # noqa: BLE001 - any failure of a helper is met the same way
        if index is not None:
            work.give_back(index)
    finally:
        process.kill()  # idle once its last chunk is done, or failed
        process.wait()
        with suppress(OSError):
            requests.close()
        answers.close()


def _chunk_checks(store: Store, tenant: str, chunks: list[_Chunk], helpers: int) -> Iterator[_ChunkCheck]:
    """The check of every chunk, in order. With helpers, this process checks chunks too, so
    that none waits for a helper to start: whenever the chunk it needs next is not done, it
    takes the next one free, and waits only when none is."""
    url = store.shared_url() if helpers > 0 and len(chunks) > 1 else None
    if url is None:
        for chunk in chunks:
            yield _check_chunk(store, tenant, chunk)
        return
    work = _Work(chunks)
    threads = [
        threading.Thread(target=_helper, args=(url, tenant, work), name="verify-helper", daemon=True)
        for _ in range(min(helpers, len(chunks) - 1))
    ]
    for thread in threads:
        thread.start()
    try:
        for index in range(len(chunks)):
            check = work.result(index, wait=False)
            while check is None:
                mine = work.take()
                if mine is not None:
                    work.done(mine, _check_chunk(store, tenant, chunks[mine]))
                check = work.result(index, wait=mine is None)
            yield check
    finally:
        work.stop()
        for thread in threads:
            thread.join()


def _default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


# --- entry points ---------------------------------------------------------------------------


def verify_store(
    log: AuditLog,
    tenant: str,
    progress: Progress | None = None,
    *,
    jobs: int | None = None,
    chunk: int = CHUNK,
    parallel_from: int = PARALLEL_FROM,
) -> VerifyReport:
    """Verify one tenant's log in its store: every record, node, root, checkpoint and key.

    ``jobs``: how many processes share the work (by default, one per CPU), when the log has
    at least ``parallel_from`` records and its store can be reached from another process.
    ``chunk``: how many records make one share at most, a multiple of 256 (the width of a
    tile); the last shares are smaller (see ``_chunks``).
    """
    if chunk <= 0 or chunk % TILE_WIDTH:
        raise InvalidArgument("chunk", f"must be a positive multiple of {TILE_WIDTH}, got {chunk}")
    if jobs is not None and jobs < 1:
        raise InvalidArgument("jobs", f"must be at least 1, got {jobs}")
    store = log.store
    findings = Findings()
    verifier = _verifier(log, tenant, findings)
    checkpoints = CheckpointCheck(store.checkpoints(tenant), verifier, log.origin(tenant), findings)
    tree_size = _head(store, tenant, findings)
    chunks = _chunks(tree_size, chunk, checkpoints.sizes)
    jobs = _default_jobs() if jobs is None else jobs
    helpers = jobs - 1 if tree_size >= parallel_from else 0
    tree = _Rebuild(TileCheck(_tile_fetch(store, tenant), findings, level=1), checkpoints)
    checked = 0
    for part, check in zip(chunks, _chunk_checks(store, tenant, chunks, helpers), strict=True):
        if check.finding is not None:
            findings.add(check.finding)
        tree.add(check)
        checked += check.rows
        if progress is not None:
            progress(part.end, tree_size)
    tree.finish(tree_size)
    checkpoints.finish(tree_size)
    if progress is not None and not chunks:
        progress(0, 0)
    return report_of(
        tenant,
        findings,
        tree_size=tree_size,
        leaves_checked=checked,
        checkpoints_checked=checkpoints.count,
        signed_size=min(checkpoints.latest_size, tree_size),
    )


def _head(store: Store, tenant: str, findings: Findings) -> int:
    """The tree size, and a finding for a row beyond it: one that a read of the rows beyond
    the head, made before the head is read again, finds beyond the second (see above)."""
    beyond = store.leaves(tenant, store.tree_size(tenant))
    try:
        row = next(beyond, None)
        tree_size = store.tree_size(tenant)
        while row is not None and row.seq < tree_size:  # appended between the two reads
            row = next(beyond, None)
    finally:
        close = getattr(beyond, "close", None)
        if close is not None:
            close()
    if row is not None:
        message = f"record {row.seq} is beyond the tree, whose size is {tree_size}"
        findings.add(Finding(row.seq, Problem.EXTRA_RECORD, message))
    return tree_size


def verify_all(
    log: AuditLog, progress: Callable[[str, int, int], None] | None = None, *, jobs: int | None = None
) -> list[VerifyReport]:
    """Verify every tenant's log; ``progress(tenant, done, total)`` as each goes."""
    return [
        verify_store(log, tenant, None if progress is None else _progress_of(tenant, progress), jobs=jobs)
        for tenant in log.store.tenants()
    ]


def _progress_of(tenant: str, progress: Callable[[str, int, int], None]) -> Progress:
    def tenant_progress(done: int, total: int) -> None:
        progress(tenant, done, total)

    return tenant_progress


__all__ = [
    "CHUNK",
    "PARALLEL_FROM",
    "CheckpointCheck",
    "Finding",
    "Findings",
    "Frontier",
    "Problem",
    "Progress",
    "TileCheck",
    "VerifyReport",
    "report_of",
    "verify_all",
    "verify_store",
]
