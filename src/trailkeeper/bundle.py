"""Offline bundles: a tenant's records with the checkpoint and key that prove them.

``trailkeeper export --bundle DIR`` writes one, ``trailkeeper verify --bundle DIR`` checks it
on a machine with no database (issue 3, point 6). A bundle is a directory:

``events.ndjson``
    The records, in seq order, one per line: each stored record with its ``leaf_hash``, as
    RFC 8785 canonical JSON. A purged record is ``{"leaf_hash", "purged": true, "seq",
    "tenant"}``. Canonical lines mean that every byte counts: a changed byte changes either
    a record, and so its leaf hash, or its canonical form, and both are caught.
``checkpoint``
    The signed checkpoint (C2SP ``tlog-checkpoint``) the records are checked against.
``public-key``
    The tenant's verifier key (C2SP ``signed-note``). It travels with the bundle for
    convenience only: a verifier should compare it with the key the tenant published.
``proofs.ndjson``
    Only in a bundle of some of the records (an export with a query): line by line, the
    RFC 9162 inclusion proof of each record in the checkpoint's tree, as ``GET
    /v1/proofs/inclusion`` returns it.
``README``
    One line naming the format.

The checkpoint is taken before the records are read, and the bundle holds exactly the
records it covers: seqs 0 to its size - 1 (those of them that match, in a subset). Records
that arrive meanwhile are left out, so that every line of a bundle is vouched for.

A whole bundle proves that its records are the tenant's log, complete and in order, up to
the checkpoint. A subset proves that each of its records is in the log, unchanged; it cannot
show that no other record matched the query.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from trailkeeper import merkle
from trailkeeper.canonical import canonical_json, has_float
from trailkeeper.errors import IntegrityError, InvalidArgument, VerificationError
from trailkeeper.events import check_tenant
from trailkeeper.notes import Checkpoint, VerifierKey, open_checkpoint, parse_checkpoint_body, parse_note
from trailkeeper.query import Filter
from trailkeeper.store.base import StoredLeaf, close_rows, with_leaf_hash
from trailkeeper.verify import Finding, Findings, Frontier, Problem, Progress, VerifyReport, report_of

if TYPE_CHECKING:
    from trailkeeper.auditlog import AuditLog

FORMAT = "trailkeeper-bundle/1"
EVENTS = "events.ndjson"
PROOFS = "proofs.ndjson"
CHECKPOINT = "checkpoint"
PUBLIC_KEY = "public-key"
README = "README"

_README_TEXT = (
    f"{FORMAT}: {EVENTS} (stored records, RFC 8785 canonical JSON, seq order), {CHECKPOINT} "
    f"(C2SP tlog-checkpoint), {PUBLIC_KEY} (C2SP signed-note verifier key), {PROOFS} (RFC 9162 "
    "inclusion proofs, subsets only); check with: trailkeeper verify --bundle <this directory>\n"
)
_LEAF_HASH_HEX = re.compile(r"[0-9a-f]{64}")
_PURGED_KEYS = frozenset(("tenant", "seq", "leaf_hash", "purged"))
_decode_json = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`write_bundle` wrote."""

    directory: Path
    tenant: str
    tree_size: int
    records: int
    purged: int
    subset: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "tenant": self.tenant,
            "tree_size": self.tree_size,
            "records": self.records,
            "purged": self.purged,
            "subset": self.subset,
        }


# --- writing ----------------------------------------------------------------------------------


def write_bundle(
    log: AuditLog, tenant: str, directory: Path, query_filter: Filter | None = None
) -> BundleInfo:
    """Write a bundle of the tenant's log, or of the records matching ``query_filter``, into
    ``directory`` (made if absent; it must be empty)."""
    check_tenant(tenant)
    _empty_directory(directory)
    note = log.checkpoint(tenant)
    key_text = log.public_key(tenant)
    try:
        checkpoint = open_checkpoint(note, VerifierKey.parse(key_text), origin=log.origin(tenant))
    except VerificationError as error:
        raise IntegrityError(
            f"the latest checkpoint of {tenant!r} does not check out under its recorded key ({error}); "
            "run trailkeeper verify"
        ) from error
    size = checkpoint.tree_size
    with (directory / EVENTS).open("wb") as events:
        if query_filter is None:
            records, purged = _write_all(log, tenant, size, events)
        else:
            with (directory / PROOFS).open("wb") as proofs:
                records, purged = _write_matches(log, tenant, size, query_filter, events, proofs)
    (directory / PUBLIC_KEY).write_text(key_text.strip() + "\n", encoding="utf-8")
    (directory / README).write_text(_README_TEXT, encoding="utf-8")
    # Last: a bundle cut short by a crash has no checkpoint and cannot pass for a whole one.
    (directory / CHECKPOINT).write_text(note, encoding="utf-8")
    return BundleInfo(directory, tenant, size, records, purged, query_filter is not None)


def _empty_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise InvalidArgument("bundle", f"{directory} is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        # Files of an older bundle beside the new one could be taken for part of it.
        raise InvalidArgument("bundle", f"{directory} is not empty")


def _stored_line(tenant: str, leaf: StoredLeaf) -> bytes:
    if leaf.body is None:
        record: dict[str, Any] = {
            "tenant": tenant,
            "seq": leaf.seq,
            "leaf_hash": bytes(leaf.leaf_hash).hex(),
            "purged": True,
        }
    else:
        record = with_leaf_hash(bytes(leaf.body), bytes(leaf.leaf_hash))
    return canonical_json(record) + b"\n"


def _write_all(log: AuditLog, tenant: str, size: int, events: IO[bytes]) -> tuple[int, int]:
    records = purged = 0
    rows = log.store.leaves(tenant, 0)
    try:
        for leaf in rows:
            if leaf.seq >= size:
                break
            events.write(_stored_line(tenant, leaf))
            records += 1
            purged += leaf.body is None
    finally:
        close_rows(rows)
    return records, purged


def _write_matches(
    log: AuditLog,
    tenant: str,
    size: int,
    query_filter: Filter,
    events: IO[bytes],
    proofs: IO[bytes],
) -> tuple[int, int]:
    # Search returns time order and a bundle is in seq order: only the seqs are kept while
    # sorting, and the records are read again one by one.
    seqs = sorted(record["seq"] for record in log.iter_search(tenant, query_filter, order="asc"))
    records = 0
    for seq in seqs:
        if seq >= size:
            break
        record = log.store.get_by_seq(tenant, seq)
        if record is None:  # purged since the search
            continue
        events.write(canonical_json(record) + b"\n")
        proofs.write(canonical_json(log.inclusion_proof(tenant, seq, size)) + b"\n")
        records += 1
    return records, 0


# --- checking -----------------------------------------------------------------------------------


class _BadLine(Exception):
    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


def _read_line(line: bytes, tenant: str) -> tuple[int, bytes]:
    """The seq and recomputed leaf hash of one line of ``events.ndjson``.

    Raises :class:`_BadLine` unless the line is the canonical JSON of a record of the tenant
    whose ``leaf_hash`` is that of its leaf bytes (CONTRACT section 3).
    """
    if not line.endswith(b"\n"):
        raise _BadLine(Problem.CHANGED_RECORD, "the last line does not end with a newline")
    text = line[:-1]
    try:
        record = _decode_json(text)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise _BadLine(Problem.CHANGED_RECORD, f"a line is not JSON: {error}") from None
    if not isinstance(record, dict):
        raise _BadLine(Problem.CHANGED_RECORD, "a line is not a JSON object")
    seq = record.get("seq")
    if type(seq) is not int or seq < 0:
        raise _BadLine(Problem.CHANGED_RECORD, f"a line has no valid seq: {seq!r}")
    # One walk to learn whether the record holds non-integer numbers serves both encodings.
    floats = has_float(record)
    try:
        canonical = canonical_json(record, floats=floats)
    except (TypeError, ValueError, UnicodeEncodeError) as error:
        raise _BadLine(Problem.CHANGED_RECORD, f"record {seq} cannot be canonicalised: {error}") from None
    if canonical != text:
        raise _BadLine(Problem.CHANGED_RECORD, f"record {seq} is not in its canonical form (RFC 8785)")
    if record.get("tenant") != tenant:
        raise _BadLine(Problem.WRONG_ORDER, f"record {seq} belongs to tenant {record.get('tenant')!r}")
    written = record.get("leaf_hash")
    if not isinstance(written, str) or _LEAF_HASH_HEX.fullmatch(written) is None:
        raise _BadLine(Problem.CHANGED_RECORD, f"record {seq} has no valid leaf_hash")
    if record.get("purged") is True:
        if set(record) != _PURGED_KEYS:
            raise _BadLine(Problem.CHANGED_RECORD, f"purged record {seq} holds more than its place")
        return seq, bytes.fromhex(written)
    del record["leaf_hash"]
    # CONTRACT section 3: the leaf bytes are the canonical JSON of the record without leaf_hash.
    leaf = merkle.leaf_hash(canonical_json(record, floats=floats))
    if leaf.hex() != written:
        raise _BadLine(
            Problem.CHANGED_RECORD, f"record {seq} hashes to {leaf.hex()}, its leaf_hash says {written}"
        )
    return seq, leaf


@dataclass(frozen=True)
class _Bundle:
    directory: Path
    checkpoint: Checkpoint
    tenant: str


def verify_bundle(
    directory: Path, *, public_key: str | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Check a bundle with no database: every line against its leaf hash, the signature of
    the checkpoint, and the records against the checkpoint's root (the whole log) or each
    record's inclusion proof (a subset).

    ``public_key`` is the tenant's verifier key as obtained independently (``GET
    /v1/public-key``); the bundle's own ``public-key`` must then be the same. ``progress``
    gets (bytes of ``events.ndjson`` read, its size).
    """
    key_text = _read_text(directory, PUBLIC_KEY)
    note = _read_text(directory, CHECKPOINT)
    if not (directory / EVENTS).is_file():
        raise InvalidArgument("bundle", f"{directory} is not a bundle: it has no {EVENTS}")
    findings = Findings()
    tenant = _tenant_of(note)
    try:
        verifier = VerifierKey.parse(key_text)
        if public_key is not None:
            trusted = VerifierKey.parse(public_key)
            if trusted != verifier:
                message = f"the bundle's key {verifier.key_id} is not the key given, {trusted.key_id}"
                findings.add(Finding(0, Problem.KEY_MISMATCH, message))
            verifier = trusted
        checkpoint = open_checkpoint(note, verifier)
    except VerificationError as error:
        findings.add(Finding(0, Problem.BAD_SIGNATURE, f"the bundle's checkpoint: {error}"))
        return report_of(
            tenant, findings, tree_size=0, leaves_checked=0, checkpoints_checked=1, signed_size=0
        )
    bundle = _Bundle(directory, checkpoint, tenant)
    if (directory / PROOFS).exists():
        checked = _check_subset(bundle, findings, progress)
    else:
        checked = _check_whole(bundle, findings, progress)
    size = checkpoint.tree_size
    return report_of(
        tenant, findings, tree_size=size, leaves_checked=checked, checkpoints_checked=1, signed_size=size
    )


def _read_text(directory: Path, name: str) -> str:
    path = directory / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgument("bundle", f"{directory} is not a bundle: it has no {name}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidArgument("bundle", f"cannot read {path}: {error}") from None


def _tenant_of(note: str) -> str:
    """The tenant a checkpoint is for, read before its signature is checked, for the report.

    CONTRACT section 3: the origin is ``<server name>/<tenant>``.
    """
    try:
        text, _ = parse_note(note)
        return parse_checkpoint_body(text).origin.rsplit("/", 1)[-1]
    except VerificationError:
        return ""


def _lines(directory: Path, name: str, progress: Progress | None) -> Iterator[bytes]:
    path = directory / name
    total = path.stat().st_size
    done = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            yield line
            done += len(line)
            if progress is not None and not number % 4096:
                progress(done, total)
    if progress is not None:
        progress(total, total)


def _check_whole(bundle: _Bundle, findings: Findings, progress: Progress | None) -> int:
    """Every record from seq 0 to the checkpoint's size, once, in order, and their root."""
    size = bundle.checkpoint.tree_size
    seen = bytearray((size + 7) // 8)
    tree = Frontier()
    checked = 0
    last = -1  # the highest seq so far
    for line in _lines(bundle.directory, EVENTS, progress):
        try:
            seq, leaf = _read_line(line, bundle.tenant)
        except _BadLine as bad:
            findings.add(Finding(last + 1, bad.problem, bad.message))
            continue
        checked += 1
        if seq >= size:
            message = f"record {seq} is beyond the checkpoint, whose size is {size}"
            findings.add(Finding(seq, Problem.EXTRA_RECORD, message))
            continue
        if seen[seq >> 3] & (1 << (seq & 7)):
            findings.add(Finding(seq, Problem.EXTRA_RECORD, f"record {seq} appears twice"))
            continue
        seen[seq >> 3] |= 1 << (seq & 7)
        if seq < last:
            findings.add(Finding(seq, Problem.WRONG_ORDER, f"record {seq} comes after record {last}"))
        last = max(last, seq)
        tree.append(leaf)
    missing = _first_unseen(seen, size)
    if missing is not None:
        findings.add(Finding(missing, Problem.MISSING_RECORD, f"record {missing} is not in the bundle"))
    root = tree.root()
    if root != bundle.checkpoint.root_hash:
        message = (
            f"the checkpoint of size {size} signs root {bundle.checkpoint.root_hash.hex()}, "
            f"the records give {root.hex()}"
        )
        findings.add_root_mismatch(Finding(0, Problem.CHECKPOINT_MISMATCH, message, covers=size))
    return checked


def _first_unseen(seen: bytearray, size: int) -> int | None:
    for index, byte in enumerate(seen):
        if byte != 0xFF:
            for bit in range(8):
                seq = index * 8 + bit
                if seq < size and not byte & (1 << bit):
                    return seq
    return None


@dataclass(frozen=True)
class _Proof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]


def _read_proof(line: bytes) -> _Proof:
    try:
        proof = _decode_json(line)
        hashes = [base64.b64decode(h, validate=True) for h in proof["hashes"]]
        leaf_index, tree_size = proof["leaf_index"], proof["tree_size"]
        if type(leaf_index) is not int or type(tree_size) is not int:
            raise TypeError("leaf_index and tree_size must be integers")
        return _Proof(leaf_index, tree_size, base64.b64decode(proof["leaf_hash"], validate=True), hashes)
    except (msgspec.DecodeError, UnicodeDecodeError, KeyError, TypeError, binascii.Error) as error:
        raise VerificationError(f"a line of {PROOFS} is not an inclusion proof: {error}") from None


def _check_subset(bundle: _Bundle, findings: Findings, progress: Progress | None) -> int:
    """Each record, in seq order, with the inclusion proof of the same line of proofs.ndjson.

    The two files are joined on seq, so that a line left out or added on one side is named
    as such rather than making every line after it look wrong.
    """
    checkpoint = bundle.checkpoint
    proofs = iter(_lines(bundle.directory, PROOFS, None))
    proof: _Proof | None = None
    checked = 0
    last = -1
    for line in _lines(bundle.directory, EVENTS, progress):
        proof = proof or _next_proof(proofs, findings, last + 1)
        try:
            seq, leaf = _read_line(line, bundle.tenant)
        except _BadLine as bad:
            # A line that cannot be read has no seq to go by: its proof, on the same line of
            # proofs.ndjson, names it.
            at = last + 1 if proof is None else proof.leaf_index
            findings.add(Finding(at, bad.problem, bad.message))
            proof = None
            continue
        checked += 1
        if seq <= last:
            findings.add(Finding(seq, Problem.WRONG_ORDER, f"record {seq} comes after record {last}"))
            continue
        last = seq
        while proof is not None and proof.leaf_index < seq:
            message = f"record {proof.leaf_index} has a proof in the bundle but no line"
            findings.add(Finding(proof.leaf_index, Problem.MISSING_RECORD, message))
            proof = _next_proof(proofs, findings, seq)
        if proof is None or proof.leaf_index > seq:
            findings.add(Finding(seq, Problem.EXTRA_RECORD, f"record {seq} has no inclusion proof"))
            continue
        _check_inclusion(seq, leaf, proof, checkpoint, findings)
        proof = None
    for rest in _remaining_proofs(proof, proofs, findings, last + 1):
        message = f"record {rest.leaf_index} has a proof in the bundle but no line"
        findings.add(Finding(rest.leaf_index, Problem.MISSING_RECORD, message))
    return checked


def _next_proof(proofs: Iterator[bytes], findings: Findings, at: int) -> _Proof | None:
    for line in proofs:
        try:
            return _read_proof(line)
        except VerificationError as error:
            findings.add(Finding(at, Problem.CHANGED_RECORD, str(error)))
    return None


def _remaining_proofs(
    pending: _Proof | None, proofs: Iterator[bytes], findings: Findings, at: int
) -> Iterator[_Proof]:
    if pending is not None:
        yield pending
    while (proof := _next_proof(proofs, findings, at)) is not None:
        yield proof


def _check_inclusion(
    seq: int, leaf: bytes, proof: _Proof, checkpoint: Checkpoint, findings: Findings
) -> None:
    """RFC 9162 section 2.1.3.2: the record's leaf, at its seq, leads to the signed root."""
    try:
        if proof.tree_size != checkpoint.tree_size:
            raise VerificationError(
                f"its proof is for tree size {proof.tree_size}, the checkpoint's is {checkpoint.tree_size}"
            )
        if proof.leaf_hash != leaf:
            raise VerificationError("its proof is for another leaf hash")
        merkle.verify_inclusion(leaf, seq, checkpoint.tree_size, proof.hashes, checkpoint.root_hash)
    except VerificationError as error:
        findings.add(Finding(seq, Problem.CHANGED_RECORD, f"record {seq} is not in the signed tree: {error}"))


__all__ = ["FORMAT", "BundleInfo", "verify_bundle", "write_bundle"]
