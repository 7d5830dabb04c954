"""The rows of a log, checked in seq order: each row's leaf hash is recomputed from its body
(CONTRACT section 3) and its searchable columns are read back from the body.

Per row, the work is one SHA-256 and one partial decode of the body; no Python object is made
per column. The store hands over each row's place and searchable columns as one JSON text
(:meth:`Store.verify_rows`), the same text is encoded from a batch of bodies at once, and one
comparison of bytes checks the batch. A batch in any doubt is checked again row by row, which
says what is wrong.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from trailkeeper import merkle
from trailkeeper.query import format_time
from trailkeeper.store.base import VerifyRow
from trailkeeper.store.sql import INDEX_COLUMN_NAMES
from trailkeeper.verify.report import Finding, Findings, Problem

# Stands in for a record missing from the store, so that the tiles after it still line up
# with their seqs and only the tile that covers the gap is reported.
_ABSENT = bytes(merkle.HASH_SIZE)


# SHA-256 already fed the leaf prefix: copying it is cheaper than starting a hash per leaf
# and joining the prefix to the body.
_LEAF_HASH = hashlib.sha256(merkle.LEAF_PREFIX)


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


class _Target(msgspec.Struct, gc=False):
    type: str
    id: str


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
    targets: list[_Target] | None = None


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


class RowCheck:
    """Checks the rows of one chunk in seq order, a batch at a time, and keeps their leaf
    hashes (a stand-in for each row that is missing)."""

    def __init__(self, tenant: str, start: int, findings: Findings) -> None:
        self.leaves: list[bytes] = []
        self.read = 0
        self._tenant = tenant
        self._expected = start  # the seq the next row must have
        self._findings = findings
        # (seq, occurred_us) of each row without a body, for judge_bodiless: a body only
        # retention may remove, and only of what occurred before its mark.
        self._bodiless: list[tuple[int, int | None]] = []
        # (seq, type, id) of every target the bodies read name, for judge_targets.
        self._targets: set[tuple[int, str, str]] = set()
        self._wrong: set[int] = set()  # seqs of rows found wrong already
        # The seq and the columns text of every row read, for judge_index.
        self._seqs: list[int] = []
        self._columns: list[bytes | None] = []

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
            decoded = [_decode_indexed(body) for body in bodies]
            own_columns = _encode([_place_and_columns(fields) for fields in decoded])
        except (TypeError, msgspec.DecodeError):  # a body stored as text; no record; no offset
            return False
        if own_columns != b"".join((b"[", b",".join(columns), b"]")):
            return False
        for fields in decoded:
            if fields.targets:
                self._targets.update((fields.seq, t.type, t.id) for t in fields.targets)
        self.leaves += leaves
        self._seqs += seqs
        self._columns += columns
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
        self._seqs.append(seq)
        self._columns.append(columns)
        if body is None:
            # Retention purged the body and kept its leaf hash: the tiles still check it.
            # Whether retention may have done so is judged once the purge mark is known.
            leaf = _as_bytes(stored_leaf)
            stored = _read_columns(columns)
            occurred = stored.get("occurred_us") if stored is not None else None
            self._bodiless.append((seq, occurred if isinstance(occurred, int) else None))
        else:
            body = _as_bytes(body)
            leaf = merkle.leaf_hash(body)
            problem = _row_problem(self._tenant, seq, body, leaf, stored_leaf, columns)
            if problem is not None:
                self._findings.add(Finding(seq, problem[0], problem[1]))
                self._wrong.add(seq)
            else:
                targets = _decode_indexed(body).targets
                if targets:
                    self._targets.update((seq, t.type, t.id) for t in targets)
        self.leaves.append(leaf)
        self._expected = seq + 1
        self.read += 1

    def judge_bodiless(self, purged_before: int | None) -> None:
        """Report the first row without a body that retention did not remove: one that
        occurred at or after ``purged_before`` (``Store.removed_before``, read after the rows:
        retention moves its mark in the transaction that removes the bodies), or any, when
        retention removed nothing."""
        for seq, occurred_us in self._bodiless:
            if purged_before is None or occurred_us is None or occurred_us >= purged_before:
                since = (
                    "retention has purged nothing"
                    if purged_before is None
                    else (f"retention purged only what occurred before {format_time(purged_before)}")
                )
                message = f"record {seq} has lost its body, and {since}"
                self._findings.add(Finding(seq, Problem.MISSING_RECORD, message))
                return

    def judge_targets(self, stored: list[tuple[int, str, str]], stored_below: int | None = None) -> None:
        """Compare the target rows of the chunk's records (what ``target:`` searches read)
        with the targets their bodies name; report the first record where they differ.
        Records without a body, records found wrong already, and records at or above
        ``stored_below`` (whose targets searches read from the body) are left out."""
        skip = {seq for seq, _ in self._bodiless} | self._wrong
        differ = {
            row
            for row in self._targets.symmetric_difference(stored)
            if row[0] not in skip and (stored_below is None or row[0] < stored_below)
        }
        if not differ:
            return
        seq = min(row[0] for row in differ)
        table = sorted((kind, ident) for s, kind, ident in stored if s == seq)
        named = sorted((kind, ident) for s, kind, ident in self._targets if s == seq)
        message = f"the targets stored for record {seq} are {table}, its body names {named}"
        self._findings.add(Finding(seq, Problem.CHANGED_RECORD, message))

    def judge_index(
        self,
        indexed: tuple[int, list[bytes | None]] | None,
        difference: Callable[[int], tuple[int, str] | None],
    ) -> None:
        """Compare a derived search index's copy of the columns (``Store.indexed_columns``)
        with the columns read, up to where it holds every record; where they differ, report
        the first record that does (``difference(stop)``, the store's own comparison)."""
        if indexed is None:
            return
        stop, copied = indexed
        read = self._columns[: bisect.bisect_left(self._seqs, stop)]
        if read == copied:
            return
        found = difference(stop)
        if found is not None and found[0] not in self._wrong:
            self._findings.add(Finding(found[0], Problem.CHANGED_RECORD, found[1]))

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
