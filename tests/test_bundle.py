"""Offline bundles: written from a log, checked with no database, and refused when one byte
of their records changes."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from trailkeeper import AuditLog, merkle
from trailkeeper.bundle import (
    CHECKPOINT,
    EVENTS,
    FORMAT,
    PROOFS,
    PUBLIC_KEY,
    README,
    verify_bundle,
    write_bundle,
)
from trailkeeper.canonical import canonical_json
from trailkeeper.errors import InvalidArgument
from trailkeeper.events import leaf_bytes
from trailkeeper.notes import generate_signing_key
from trailkeeper.store.sql import time_us
from trailkeeper.verify import Problem, VerifyReport

TENANT = "acme"
SIZE = 40
PURGED = 4  # the first records are old enough for retention to purge them
# A bundle small enough to be checked once for every byte of a line changed.
SHORT_TENANT = "beta"
SHORT = 6


def event(i: int) -> dict[str, Any]:
    minute = 0 if i < PURGED else 30
    recorded: dict[str, Any] = {
        "id": f"evt-{i:03d}",
        "occurred_at": f"2026-03-01T10:{minute:02d}:{i:02d}.000000Z",
        "category": "integration",
        "action": "crm.deal.updated",
        "actor": {"type": "user", "id": f"u_{i % 3}", "email": "jane@example.com"},
        "description": f"deal {i:03d} moved to stage 4",
        "metadata": {"amount": 1000 + i, "note": 'tab\there, accent é, quote " and \\'},
    }
    if i % 4 == 1:
        recorded["integration"] = {"provider": "salesforce"}
    return recorded


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A whole bundle and a bundle of the salesforce records, of one log, written once."""
    root = tmp_path_factory.mktemp("bundles")
    with AuditLog.open(f"sqlite:///{root}/audit.db") as log:
        for start in range(0, SIZE, 10):
            log.record_many(TENANT, [event(i) for i in range(start, start + 10)])
            log.checkpoint(TENANT)
        assert log.store.purge(TENANT, time_us("2026-03-01T10:01:00.000000Z")) == PURGED
        log.record_many(SHORT_TENANT, [event(i) for i in range(SHORT)])
        assert log.store.purge(SHORT_TENANT, time_us("2026-03-01T10:01:00.000000Z")) == PURGED
        write_bundle(log, SHORT_TENANT, root / "short")
        write_bundle(log, "nobody", root / "empty")
        whole = write_bundle(log, TENANT, root / "whole")
        subset = write_bundle(log, TENANT, root / "subset", log.filter("integration:salesforce"))
        (root / "checkpoint.txt").write_text(log.checkpoint(TENANT))
        (root / "key.txt").write_text(log.public_key(TENANT))
    assert (whole.records, whole.purged, whole.tree_size, whole.subset) == (SIZE, PURGED, SIZE, False)
    assert (subset.records, subset.subset) == (SIZE // 4 - 1, True)  # seq 1 was purged
    return {
        "whole": root / "whole",
        "subset": root / "subset",
        "short": root / "short",
        "empty": root / "empty",
        "root": root,
    }


@pytest.fixture
def whole(bundles: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundles["whole"], tmp_path / "whole"))


@pytest.fixture
def short(bundles: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundles["short"], tmp_path / "short"))


@pytest.fixture
def subset(bundles: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundles["subset"], tmp_path / "subset"))


def lines(bundle: Path, name: str = EVENTS) -> list[bytes]:
    return (bundle / name).read_bytes().splitlines(keepends=True)


def write_lines(bundle: Path, content: list[bytes], name: str = EVENTS) -> None:
    (bundle / name).write_bytes(b"".join(content))


def line_of(bundle: Path, seq: int) -> int:
    """The line number of a record in a bundle."""
    return next(n for n, line in enumerate(lines(bundle)) if json.loads(line)["seq"] == seq)


def assert_finding(report: VerifyReport, problem: Problem, seq: int) -> None:
    assert not report.intact
    assert (report.problem, report.first_bad_seq) == (problem, seq), report.message


# --- writing ------------------------------------------------------------------------------------


def test_whole_bundle_is_intact(whole: Path) -> None:
    report = verify_bundle(whole)
    assert report.intact, report.message
    assert (report.tenant, report.tree_size, report.leaves_checked) == (TENANT, SIZE, SIZE)


def test_bundle_of_an_empty_log_is_intact(bundles: dict[str, Path]) -> None:
    report = verify_bundle(bundles["empty"])
    assert (report.intact, report.tenant, report.tree_size) == (True, "nobody", 0), report.message
    assert (bundles["empty"] / EVENTS).read_bytes() == b""


def test_bundle_holds_the_checkpoint_the_key_and_a_readme(whole: Path, bundles: dict[str, Path]) -> None:
    assert (whole / CHECKPOINT).read_text() == (bundles["root"] / "checkpoint.txt").read_text()
    assert (whole / PUBLIC_KEY).read_text().strip() == (bundles["root"] / "key.txt").read_text().strip()
    assert (whole / README).read_text().startswith(FORMAT)
    assert not (whole / PROOFS).exists()


def test_each_line_is_a_stored_record_in_canonical_form_in_seq_order(whole: Path) -> None:
    records = [json.loads(line) for line in lines(whole)]
    assert [r["seq"] for r in records] == list(range(SIZE))
    for line, record in zip(lines(whole), records, strict=True):
        assert line == canonical_json(record) + b"\n"
        if not record.get("purged"):
            assert record["leaf_hash"] == merkle.leaf_hash(leaf_bytes(record)).hex()
            assert record["id"] == f"evt-{record['seq']:03d}"


def test_purged_record_keeps_only_its_place(whole: Path) -> None:
    assert set(json.loads(lines(whole)[0])) == {"tenant", "seq", "leaf_hash", "purged"}


def test_bundle_is_written_only_into_an_empty_directory(bundles: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "old-file").write_text("something else")
    with AuditLog.open(f"sqlite:///{bundles['root']}/audit.db") as log, pytest.raises(InvalidArgument):
        write_bundle(log, TENANT, tmp_path)


def test_directory_without_a_checkpoint_is_not_a_bundle(whole: Path) -> None:
    (whole / CHECKPOINT).unlink()
    with pytest.raises(InvalidArgument, match="checkpoint"):
        verify_bundle(whole)


def test_directory_without_records_is_not_a_bundle(whole: Path) -> None:
    (whole / EVENTS).unlink()
    with pytest.raises(InvalidArgument, match=EVENTS):
        verify_bundle(whole)


def test_progress_counts_the_bytes_of_the_records(whole: Path) -> None:
    seen: list[tuple[int, int]] = []
    verify_bundle(whole, progress=lambda done, total: seen.append((done, total)))
    size = (whole / EVENTS).stat().st_size
    assert seen[-1] == (size, size)


# --- one changed byte ---------------------------------------------------------------------------


def test_changed_digit_in_a_description_is_a_changed_record(whole: Path) -> None:
    content = lines(whole)
    content[17] = content[17].replace(b"deal 017 moved to stage 4", b"deal 017 moved to stage 5")
    write_lines(whole, content)
    assert_finding(verify_bundle(whole), Problem.CHANGED_RECORD, 17)


def spoiled_copies(original: bytes, start: int, end: int) -> list[tuple[int, bytes]]:
    """Every way of changing one byte in [start, end): a low bit flipped, and a letter's case."""
    copies = []
    for offset in range(start, end):
        masks = [0x01, 0x20] if chr(original[offset]).isalpha() else [0x01]
        for mask in masks:
            spoiled = bytearray(original)
            spoiled[offset] ^= mask
            copies.append((offset, bytes(spoiled)))
    return copies


def test_every_single_byte_change_of_a_record_line_is_caught(short: Path) -> None:
    original = (short / EVENTS).read_bytes()
    start = original.index(b'{"action"')  # the first record that was not purged
    end = original.index(b"\n", start) + 1
    for offset, spoiled in spoiled_copies(original, start, end):
        (short / EVENTS).write_bytes(spoiled)
        report = verify_bundle(short)
        assert not report.intact, f"byte {offset - start} of the line, {original[offset : offset + 1]!r}"


def test_every_single_byte_change_of_a_purged_line_is_caught(short: Path) -> None:
    original = (short / EVENTS).read_bytes()
    for offset, spoiled in spoiled_copies(original, 0, original.index(b"\n") + 1):
        (short / EVENTS).write_bytes(spoiled)
        assert not verify_bundle(short).intact, f"byte {offset}"


def test_line_rewritten_with_its_leaf_hash_is_a_checkpoint_mismatch(whole: Path) -> None:
    content = lines(whole)
    record = json.loads(content[20])
    record["description"] = "deal 020 moved to stage 5"
    record["leaf_hash"] = merkle.leaf_hash(leaf_bytes(record)).hex()
    content[20] = canonical_json(record) + b"\n"
    write_lines(whole, content)
    assert_finding(verify_bundle(whole), Problem.CHECKPOINT_MISMATCH, 0)


def test_reordered_lines_are_in_the_wrong_order(whole: Path) -> None:
    content = lines(whole)
    content[5], content[6] = content[6], content[5]
    write_lines(whole, content)
    assert_finding(verify_bundle(whole), Problem.WRONG_ORDER, 5)


def test_dropped_line_is_a_missing_record(whole: Path) -> None:
    content = lines(whole)
    del content[7]
    write_lines(whole, content)
    assert_finding(verify_bundle(whole), Problem.MISSING_RECORD, 7)


def test_dropped_last_line_is_a_missing_record(whole: Path) -> None:
    write_lines(whole, lines(whole)[:-1])
    assert_finding(verify_bundle(whole), Problem.MISSING_RECORD, SIZE - 1)


def test_repeated_line_is_an_extra_record(whole: Path) -> None:
    content = lines(whole)
    write_lines(whole, [*content, content[9]])
    assert_finding(verify_bundle(whole), Problem.EXTRA_RECORD, 9)


def test_added_record_beyond_the_checkpoint_is_an_extra_record(whole: Path) -> None:
    content = lines(whole)
    record = json.loads(content[-1])
    record.update(seq=SIZE, id="evt-999")
    record["leaf_hash"] = merkle.leaf_hash(leaf_bytes(record)).hex()
    write_lines(whole, [*content, canonical_json(record) + b"\n"])
    assert_finding(verify_bundle(whole), Problem.EXTRA_RECORD, SIZE)


def test_missing_final_newline_is_a_changed_record(whole: Path) -> None:
    (whole / EVENTS).write_bytes((whole / EVENTS).read_bytes()[:-1])
    assert_finding(verify_bundle(whole), Problem.CHANGED_RECORD, SIZE - 1)


# --- checkpoint and key --------------------------------------------------------------------------


def test_changed_checkpoint_is_a_bad_signature(whole: Path) -> None:
    note = (whole / CHECKPOINT).read_text()
    origin, size, rest = note.split("\n", 2)
    (whole / CHECKPOINT).write_text(f"{origin}\n{int(size) - 1}\n{rest}")
    assert_finding(verify_bundle(whole), Problem.BAD_SIGNATURE, 0)


def test_bundle_re_signed_with_another_key_fails_against_the_published_key(
    whole: Path, bundles: dict[str, Path]
) -> None:
    impostor = generate_signing_key(f"trailkeeper/{TENANT}")
    note = (whole / CHECKPOINT).read_text()
    body = note[: note.index("\n\n") + 1]
    (whole / CHECKPOINT).write_text(impostor.sign_note(body))
    (whole / PUBLIC_KEY).write_text(impostor.verifier_key + "\n")
    assert verify_bundle(whole).intact  # on its own, a bundle vouches only for itself
    published = (bundles["root"] / "key.txt").read_text()
    assert_finding(verify_bundle(whole, public_key=published), Problem.KEY_MISMATCH, 0)


# --- a subset -----------------------------------------------------------------------------------


def subset_seqs(bundle: Path) -> list[int]:
    return [json.loads(line)["seq"] for line in lines(bundle)]


def test_subset_bundle_is_intact_and_proves_each_record(subset: Path) -> None:
    report = verify_bundle(subset)
    assert report.intact, report.message
    seqs = subset_seqs(subset)
    assert seqs == [s for s in range(PURGED, SIZE) if s % 4 == 1]
    proofs = [json.loads(line) for line in lines(subset, PROOFS)]
    assert [p["leaf_index"] for p in proofs] == seqs
    assert {p["tree_size"] for p in proofs} == {SIZE}
    for line, proof in zip(lines(subset), proofs, strict=True):
        record = json.loads(line)
        assert base64.b64decode(proof["leaf_hash"]).hex() == record["leaf_hash"]


def test_changed_digit_in_a_subset_is_a_changed_record(subset: Path) -> None:
    content = lines(subset)
    seq = json.loads(content[2])["seq"]
    content[2] = content[2].replace(b"stage 4", b"stage 3")
    write_lines(subset, content)
    assert_finding(verify_bundle(subset), Problem.CHANGED_RECORD, seq)


def test_subset_line_rewritten_with_its_leaf_hash_is_not_in_the_signed_tree(subset: Path) -> None:
    content = lines(subset)
    record = json.loads(content[3])
    record["description"] = "nothing happened"
    record["leaf_hash"] = merkle.leaf_hash(leaf_bytes(record)).hex()
    content[3] = canonical_json(record) + b"\n"
    write_lines(subset, content)
    report = verify_bundle(subset)
    assert_finding(report, Problem.CHANGED_RECORD, record["seq"])
    assert "signed tree" in (report.message or "")


def test_line_dropped_from_a_subset_is_a_missing_record(subset: Path) -> None:
    content = lines(subset)
    seq = json.loads(content[4])["seq"]
    del content[4]
    write_lines(subset, content)
    assert_finding(verify_bundle(subset), Problem.MISSING_RECORD, seq)


def test_subset_record_without_its_proof_is_an_extra_record(subset: Path) -> None:
    proofs = lines(subset, PROOFS)
    seq = json.loads(proofs[1])["leaf_index"]
    del proofs[1]
    write_lines(subset, proofs, PROOFS)
    assert_finding(verify_bundle(subset), Problem.EXTRA_RECORD, seq)


def test_reordered_subset_lines_are_in_the_wrong_order(subset: Path) -> None:
    content = lines(subset)
    first = json.loads(content[1])["seq"]
    content[1], content[2] = content[2], content[1]
    write_lines(subset, content)
    assert_finding(verify_bundle(subset), Problem.WRONG_ORDER, first)
