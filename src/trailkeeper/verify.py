"""``trailkeeper verify``: recompute a tenant's log from its stored rows and check it all.

Every row's leaf hash is recomputed from its body (CONTRACT section 3) and its searchable
columns are read back from the body; the tree is rebuilt from those leaf hashes and every
stored tile is compared with it; every checkpoint's signature is checked, and its root
against the rebuilt root at its size. The report names the first ``seq`` that can no longer
be trusted and what is wrong there.

One pass over the rows, in seq order, with memory bounded by one tile per level: a frontier
of complete subtrees rebuilds the tree as the leaf hashes stream past (RFC 9162 section
2.1.1), each tile is compared with the stored one as soon as it is full, and each checkpoint
as soon as the tree reaches its size.

Rows beyond the latest checkpoint but within the head are checked against the stored tree
and counted in ``signed_size``, not reported: a running server signs them within a second.

Reading order matters on a live log: the checkpoints are read first, then the rows, then the
head. A log only grows, so every checkpoint read is within the head read later, and a row
beyond the head read after the rows began can only be one that was put there by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import chain
from typing import TYPE_CHECKING, Any

import msgspec

from trailkeeper import merkle
from trailkeeper.errors import VerificationError
from trailkeeper.notes import Checkpoint, VerifierKey, open_checkpoint
from trailkeeper.store.base import StoredCheckpoint, StoredLeaf
from trailkeeper.store.sql import INDEX_COLUMN_NAMES
from trailkeeper.tiles import TILE_HEIGHT, TILE_WIDTH, TileFetch

if TYPE_CHECKING:
    from trailkeeper.auditlog import AuditLog

Progress = Callable[[int, int], None]
"""``progress(done, total)``: how many of a tenant's records have been checked."""

PROGRESS_EVERY = 4096
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


class _Actor(msgspec.Struct):
    type: str
    id: str


class _Integration(msgspec.Struct):
    provider: str


class _Workflow(msgspec.Struct):
    run_id: str


class _Context(msgspec.Struct):
    ip: str | None = None


class _Indexed(msgspec.Struct):
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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def indexed_columns(fields: _Indexed) -> tuple[Any, ...]:
    """The columns of ``INDEX_COLUMN_NAMES`` as ``store.sql.index_columns`` derives them."""
    return (
        (fields.occurred_at - _EPOCH) // _MICROSECOND,
        fields.category,
        fields.action,
        fields.outcome,
        fields.actor.type,
        fields.actor.id,
        None if fields.integration is None else fields.integration.provider,
        None if fields.workflow is None else fields.workflow.run_id,
        None if fields.context is None else fields.context.ip,
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
    """A Merkle tree built leaf by leaf: the roots of its complete subtrees on the right edge,
    one per set bit of its size (RFC 9162 section 2.1.1: MTH splits off the largest complete
    subtree first). O(log n) memory, one node hash per leaf on average, and the root of the
    tree so far in O(log n) at any time.

    ``on_tile(level, node)`` is told of every node of height ``8 * level`` as it is made: the
    root of the tile at ``level - 1`` that has just filled up.
    """

    def __init__(self, on_tile: Callable[[int, bytes], None] | None = None) -> None:
        self.size = 0
        self._edge: list[bytes] = []  # _edge[h]: the subtree of height h, if bit h of size is set
        self._on_tile = on_tile

    def append(self, leaf: bytes) -> None:
        sha256, prefix, edge = hashlib.sha256, merkle.NODE_PREFIX, self._edge
        size, node, height = self.size, leaf, 0
        while size & 1:
            node = sha256(prefix + edge[height] + node).digest()
            size >>= 1
            height += 1
            if not height % TILE_HEIGHT and self._on_tile is not None:
                self._on_tile(height // TILE_HEIGHT, node)
        if height == len(edge):
            edge.append(node)
        else:
            edge[height] = node
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves so far: the complete subtrees folded from the right."""
        root: bytes | None = None
        for height, node in enumerate(self._edge):
            if self.size >> height & 1:
                root = node if root is None else merkle.node_hash(node, root)
        return merkle.EMPTY_ROOT if root is None else root


def tile_root(hashes: bytes) -> bytes:
    """MTH of a full tile's 256 hashes: the node one level up (RFC 9162 section 2.1.1)."""
    size = merkle.HASH_SIZE
    return merkle.root_hash([hashes[offset : offset + size] for offset in range(0, len(hashes), size)])


class TileCheck:
    """Compares every stored tile with the tile rebuilt from the leaf hashes, as each fills.
    Memory: one tile per level.

    A tile at level L holds the nodes at height 8L (see :mod:`trailkeeper.tiles`). Leaf hashes
    go into :attr:`leaves`; a :class:`Frontier` over the same leaves hands over each node of
    height 8(L + 1) through :meth:`tile_done` once the tile at level L below it is full. When a
    stored tile is not the rebuilt one, only the level above can tell which of the two its
    parent was made from, so the level above accepts the root of either: a bad node is then
    reported once, where it is, and neither again in every tile above it nor as a good tile
    above a bad one.
    """

    def __init__(self, fetch: TileFetch, findings: Findings) -> None:
        self._fetch = fetch
        self._findings = findings
        self._pending: list[list[bytes]] = [[]]
        # Per level, by entry of the tile being filled: the root of a stored tile below that
        # differs from the rebuilt one.
        self._alternates: list[dict[int, bytes]] = [{}]
        self._next_index: list[int] = [0]

    @property
    def leaves(self) -> list[bytes]:
        """Where leaf hashes go, before the frontier hears of them."""
        return self._pending[0]

    def tile_done(self, level_above: int, root: bytes) -> None:
        """The tile below ``level_above`` is full and ``root`` is the rebuilt node over it."""
        level = level_above - 1
        expected = b"".join(self._pending[level])
        alternates = self._alternates[level]
        self._pending[level].clear()  # the same list: the hot loop holds level 0
        self._alternates[level] = {}
        index = self._next_index[level]
        self._next_index[level] = index + 1
        stored = self._compare(level, index, expected, alternates, partial=False)
        if level_above == len(self._pending):
            self._pending.append([])
            self._alternates.append({})
            self._next_index.append(0)
        above = self._pending[level_above]
        if stored is not None and stored != expected and len(stored) == _TILE_BYTES:
            self._alternates[level_above][len(above)] = tile_root(stored)
        above.append(root)

    def finish(self) -> None:
        """Compare the partial tile of every level, once every leaf hash is in."""
        for level, pending in enumerate(self._pending):
            if pending:
                expected = b"".join(pending)
                self._compare(level, self._next_index[level], expected, self._alternates[level], partial=True)

    def _compare(
        self, level: int, index: int, expected: bytes, alternates: dict[int, bytes], *, partial: bool
    ) -> bytes | None:
        stored = self._fetch(level, index)
        if stored is None:
            self._bad_node(level, index, 0, "is missing")
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
            self._bad_node(level, index, entry, f"holds {width:g} hashes, expected {expected_width}")
        elif entry is not None:
            self._bad_node(level, index, entry, f"holds a wrong hash at entry {entry}")
        return stored

    def _bad_node(self, level: int, index: int, entry: int, what: str) -> None:
        node = index * TILE_WIDTH + entry
        first_seq = node << (TILE_HEIGHT * level)
        self._findings.add(
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


# --- the rows ------------------------------------------------------------------------------


def _check_leaves(
    tenant: str,
    rows: Iterator[StoredLeaf],
    tree_size: int,
    tiles: TileCheck,
    checkpoints: CheckpointCheck,
    findings: Findings,
    progress: Progress | None,
) -> int:
    """Check every row in seq order and rebuild the tree from their leaf hashes, checking
    every tile and checkpoint as the tree passes them; return the rows checked.

    The hot loop of verification: per row one SHA-256, one partial decode, a few comparisons
    and on average one node hash, with everything it calls bound to locals.
    """
    sha256 = hashlib.sha256
    decode = _decode_indexed
    leaf_prefix = merkle.LEAF_PREFIX
    pending = tiles.leaves
    frontier = Frontier(tiles.tile_done)
    append, root = frontier.append, frontier.root
    next_size = checkpoints.reached(0, merkle.EMPTY_ROOT)
    expected = 0  # the seq the next row must have: the size of the tree so far
    checked = 0
    stopped_at: StoredLeaf | None = None
    for row in rows:
        seq = row.seq
        if seq != expected or seq >= tree_size:
            if seq < expected or seq >= tree_size:
                stopped_at = row
                break
            findings.add(Finding(expected, Problem.MISSING_RECORD, f"record {expected} is not in the store"))
            next_size = _append_absent(seq - expected, pending, frontier, checkpoints, next_size)
            expected = seq
        body = row.body
        if body is None:
            # Retention purged the body and kept its leaf hash: the tiles still check it.
            leaf = row.leaf_hash
        else:
            if type(body) is not bytes:
                body = _as_bytes(body)
            leaf = sha256(leaf_prefix + body).digest()
            # The fast path, taken by every sound row; any doubt goes to _row_problem, which
            # checks again field by field and says what is wrong.
            try:
                fields = decode(body)
                sound = (
                    leaf == row.leaf_hash
                    and fields.seq == seq
                    and fields.tenant == tenant
                    and tuple(row.columns.values()) == indexed_columns(fields)
                )
            except (msgspec.DecodeError, TypeError):
                sound = False
            if not sound:
                problem = _row_problem(tenant, row, body, leaf)
                if problem is not None:
                    findings.add(Finding(seq, problem[0], problem[1]))
        pending.append(leaf)
        append(leaf)
        expected += 1
        checked += 1
        if expected == next_size:
            next_size = checkpoints.reached(expected, root())
        if progress is not None and not expected % PROGRESS_EVERY:
            progress(expected, tree_size)
    if stopped_at is not None:
        _out_of_place(stopped_at, expected, tree_size, findings)
    if expected < tree_size:
        findings.add(Finding(expected, Problem.MISSING_RECORD, f"record {expected} is not in the store"))
        _append_absent(tree_size - expected, pending, frontier, checkpoints, next_size)
    tiles.finish()
    if progress is not None:
        progress(tree_size, tree_size)
    return checked


def _append_absent(
    count: int, pending: list[bytes], frontier: Frontier, checkpoints: CheckpointCheck, next_size: int
) -> int:
    """Stand-ins for missing records, so that the tiles after them keep their places."""
    for _ in range(count):
        pending.append(_ABSENT)
        frontier.append(_ABSENT)
        if frontier.size == next_size:
            next_size = checkpoints.reached(next_size, frontier.root())
    return next_size


def _as_bytes(body: object) -> bytes:
    # SQL functions applied to a BLOB by hand give TEXT back; a driver may give a memoryview.
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"a stored body is {type(body).__name__}, not bytes")


def _out_of_place(row: StoredLeaf, expected: int, tree_size: int, findings: Findings) -> None:
    """A row that stopped the pass: beyond the tree, or out of seq order."""
    if row.seq >= tree_size:
        findings.add(
            Finding(
                row.seq,
                Problem.EXTRA_RECORD,
                f"record {row.seq} is beyond the tree, whose size is {tree_size}",
            )
        )
    else:
        findings.add(
            Finding(row.seq, Problem.WRONG_ORDER, f"record {row.seq} comes after record {expected - 1}")
        )


def _row_problem(tenant: str, row: StoredLeaf, body: bytes, leaf: bytes) -> tuple[Problem, str] | None:
    """What is wrong with one stored row, or None: its body must be the record of its own
    place, hash to its leaf hash, and agree with its searchable columns."""
    seq = row.seq
    try:
        own_seq, own_tenant, columns = body_columns(body)
    except ValueError as error:
        return Problem.CHANGED_RECORD, f"record {seq} is not a valid record: {error}"
    if own_seq != seq or own_tenant != tenant:
        return Problem.WRONG_ORDER, (
            f"the body stored at seq {seq} of {tenant!r} is record {own_seq} of {own_tenant!r}"
        )
    if leaf != row.leaf_hash:
        return Problem.CHANGED_RECORD, (
            f"record {seq} hashes to {leaf.hex()}, its stored leaf hash is {bytes(row.leaf_hash).hex()}"
        )
    stored = row.columns
    for name, value in zip(INDEX_COLUMN_NAMES, columns, strict=True):
        if stored.get(name) != value:
            return Problem.CHANGED_RECORD, (
                f"column {name} of record {seq} is {stored.get(name)!r}, its body says {value!r}"
            )
    return None


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


# --- entry points ---------------------------------------------------------------------------


def verify_store(log: AuditLog, tenant: str, progress: Progress | None = None) -> VerifyReport:
    """Verify one tenant's log in its store: every record, node, root, checkpoint and key."""
    store = log.store
    findings = Findings()
    verifier = _verifier(log, tenant, findings)
    checkpoints = CheckpointCheck(store.checkpoints(tenant), verifier, log.origin(tenant), findings)
    rows = store.leaves(tenant, 0)
    first = next(rows, None)
    tree_size = store.tree_size(tenant)
    tiles = TileCheck(lambda level, index: store.tile(tenant, level, index), findings)
    stream = rows if first is None else chain((first,), rows)
    try:
        checked = _check_leaves(tenant, stream, tree_size, tiles, checkpoints, findings, progress)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    checkpoints.finish(tree_size)
    return report_of(
        tenant,
        findings,
        tree_size=tree_size,
        leaves_checked=checked,
        checkpoints_checked=checkpoints.count,
        signed_size=min(checkpoints.latest_size, tree_size),
    )


def verify_all(log: AuditLog, progress: Callable[[str, int, int], None] | None = None) -> list[VerifyReport]:
    """Verify every tenant's log; ``progress(tenant, done, total)`` as each goes."""
    return [
        verify_store(log, tenant, None if progress is None else _progress_of(tenant, progress))
        for tenant in log.store.tenants()
    ]


def _progress_of(tenant: str, progress: Callable[[str, int, int], None]) -> Progress:
    def tenant_progress(done: int, total: int) -> None:
        progress(tenant, done, total)

    return tenant_progress


__all__ = [
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
