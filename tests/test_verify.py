"""`trailkeeper verify`: a log tampered with by hand, in SQL, is caught, and the report names
the first bad seq and what is wrong there."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from trailkeeper import AuditLog, InvalidArgument, merkle
from trailkeeper.notes import generate_signing_key
from trailkeeper.store.base import Store
from trailkeeper.store.sql import index_columns, time_us
from trailkeeper.tiles import TILE_WIDTH, build_tiles, tile_root
from trailkeeper.verify import (
    Finding,
    Findings,
    Frontier,
    Problem,
    TileCheck,
    VerifyReport,
    verify_all,
    verify_store,
)
from trailkeeper.verify.chunks import Chunk, _chunks, check_chunk
from trailkeeper.verify.parallel import HELPER_COMMAND
from trailkeeper.verify.rows import RowCheck, body_columns

TENANT = "acme"
BATCHES = 4
BATCH_SIZE = 150
SIZE = BATCHES * BATCH_SIZE  # two full tiles of leaves and a partial one


def event(i: int) -> dict[str, Any]:
    """A varied event: some with an integration, a workflow run, an IP, none with all."""
    recorded: dict[str, Any] = {
        "id": f"evt-{i:04d}",
        "occurred_at": f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z",
        "category": "integration",
        "action": "crm.task.created",
        "actor": {"type": "user", "id": f"u_{i % 7}", "name": "Jane Roe"},
        "targets": [{"type": "task", "id": f"task-{i}"}],
        "description": f"task {i:04d} created",
        "metadata": {"n": i, "source": "import"},
    }
    if i % 3 == 0:
        recorded["integration"] = {"provider": "salesforce"}
    if i % 5 == 0:
        recorded["workflow"] = {"run_id": f"run-{i // 50}", "step": "create"}
    if i % 2 == 0:
        recorded["context"] = {"ip": f"10.0.0.{i % 250}"}
    return recorded


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed log of SIZE events in BATCHES batches, a checkpoint after each batch."""
    directory = tmp_path_factory.mktemp("template")
    with AuditLog.open(f"sqlite:///{directory}/audit.db") as log:
        for batch in range(BATCHES):
            log.record_many(TENANT, [event(i) for i in range(batch * BATCH_SIZE, (batch + 1) * BATCH_SIZE)])
            log.checkpoint(TENANT)
    # The search index holds every record, so that what searches read of it is checked too.
    index(directory / "audit.db")
    return directory


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template log (database and key directory) for one test to spoil."""
    for item in template.iterdir():
        if item.is_dir():
            shutil.copytree(item, tmp_path / item.name)
        else:
            shutil.copy2(item, tmp_path / item.name)
    return tmp_path / "audit.db"


def verify(db: Path) -> VerifyReport:
    with AuditLog.open(f"sqlite:///{db}") as log:
        return verify_store(log, TENANT)


def index(db: Path) -> None:
    """Bring the log's search index up to date, as its background thread would."""
    with AuditLog.open(f"sqlite:///{db}") as log:
        log.store.search_index.pause()  # type: ignore[attr-defined]
        log.store.search_index.catch_up()  # type: ignore[attr-defined]


def execute(db: Path, sql: str, *params: Any) -> None:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(sql, params)
        conn.commit()


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def body_at(db: Path, seq: int) -> bytes:
    rows = query(db, "SELECT body FROM events WHERE tenant = ? AND seq = ?", TENANT, seq)
    body: bytes = rows[0][0]
    return body


def leaf_of(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def checkpoint_sizes(db: Path) -> list[int]:
    return [size for (size,) in query(db, "SELECT tree_size FROM checkpoints ORDER BY tree_size")]


def assert_finding(report: VerifyReport, problem: Problem, seq: int) -> None:
    assert not report.intact
    assert (report.problem, report.first_bad_seq) == (problem, seq), report.message
    assert report.message


# --- an untouched log ---------------------------------------------------------------------------


def test_untouched_log_is_intact(db: Path) -> None:
    report = verify(db)
    assert report.intact, report.message
    assert report.tree_size == report.leaves_checked == report.signed_size == SIZE
    assert report.checkpoints_checked == len(checkpoint_sizes(db)) >= BATCHES
    assert (report.first_bad_seq, report.problem, report.message) == (None, None, None)


def test_the_fixture_has_a_checkpoint_after_every_batch(db: Path) -> None:
    assert {BATCH_SIZE * (n + 1) for n in range(BATCHES)} <= set(checkpoint_sizes(db))


def test_facade_verify_gives_the_same_report(db: Path) -> None:
    with AuditLog.open(f"sqlite:///{db}") as log:
        assert log.verify(TENANT) == verify_store(log, TENANT)


def test_report_converts_to_json(db: Path) -> None:
    report = verify(db)
    assert json.loads(json.dumps(report.to_json())) == {
        "tenant": TENANT,
        "intact": True,
        "tree_size": SIZE,
        "signed_size": SIZE,
        "leaves_checked": SIZE,
        "checkpoints_checked": report.checkpoints_checked,
        "first_bad_seq": None,
        "problem": None,
        "message": None,
    }


def test_progress_is_reported_up_to_the_tree_size(db: Path) -> None:
    seen: list[tuple[int, int]] = []
    with AuditLog.open(f"sqlite:///{db}") as log:
        verify_store(log, TENANT, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (SIZE, SIZE)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_log_copied_without_its_keys_is_checked_with_the_recorded_key(db: Path) -> None:
    shutil.rmtree(db.parent / "audit.db.keys")
    assert verify(db).intact
    assert not (db.parent / "audit.db.keys" / f"{TENANT}.key").exists()


def test_records_after_the_latest_checkpoint_are_reported_unsigned(db: Path) -> None:
    # What a log looks like in the second between a commit and its checkpoint.
    execute(db, "DELETE FROM checkpoints WHERE tenant = ? AND tree_size = ?", TENANT, SIZE)
    report = verify(db)
    assert report.intact
    assert (report.signed_size, report.tree_size) == (SIZE - BATCH_SIZE, SIZE)
    assert report.message == f"{BATCH_SIZE} records after the latest checkpoint are not signed yet"


def test_verify_all_reports_every_tenant(db: Path) -> None:
    with AuditLog.open(f"sqlite:///{db}") as log:
        log.record(
            "other", category="system", action="audit.service.started", actor={"type": "system", "id": "s"}
        )
        log.checkpoint("other")
        seen: set[str] = set()
        reports = verify_all(log, progress=lambda tenant, done, total: seen.add(tenant))
    assert [(r.tenant, r.intact) for r in reports] == [(TENANT, True), ("other", True)]
    assert seen == {TENANT, "other"}


# --- records ------------------------------------------------------------------------------------


def test_changed_digit_in_a_body_is_a_changed_record(db: Path) -> None:
    body = body_at(db, 321)
    changed = body.replace(b"task 0321 created", b"task 0322 created")
    assert changed != body
    execute(db, "UPDATE events SET body = ? WHERE tenant = ? AND seq = ?", changed, TENANT, 321)
    assert_finding(verify(db), Problem.CHANGED_RECORD, 321)


def test_body_edited_as_text_is_a_changed_record(db: Path) -> None:
    # SQL's replace() turns the BLOB into TEXT; the change must be caught all the same.
    execute(db, "UPDATE events SET body = replace(body, 'task 0042', 'task 0043') WHERE seq = 42")
    assert_finding(verify(db), Problem.CHANGED_RECORD, 42)


def test_body_changed_with_its_leaf_hash_is_a_bad_node(db: Path) -> None:
    changed = body_at(db, 321).replace(b"task 0321 created", b"task 0321 deleted")
    execute(
        db,
        "UPDATE events SET body = ?, leaf_hash = ? WHERE tenant = ? AND seq = ?",
        changed,
        leaf_of(changed),
        TENANT,
        321,
    )
    assert_finding(verify(db), Problem.BAD_NODE, 321)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "crm.task.deleted"),
        ("actor_id", "u_mallory"),
        ("outcome", "failure"),
        ("occurred_us", 0),
        ("integration", "hubspot"),
        ("ip", "192.0.2.1"),
    ],
)
def test_changed_searchable_column_alone_is_a_changed_record(db: Path, column: str, value: object) -> None:
    execute(db, f"UPDATE events SET {column} = ? WHERE tenant = ? AND seq = ?", value, TENANT, 303)
    report = verify(db)
    assert_finding(report, Problem.CHANGED_RECORD, 303)
    assert column in (report.message or "")


@pytest.mark.parametrize(("column", "value"), [("actor_id", "u_mallory"), ("workflow_run", None)])
def test_a_search_index_row_that_differs_from_the_log_is_a_changed_record(
    db: Path, column: str, value: object
) -> None:
    """A record hidden from (or planted in) searches through the derived index is caught."""
    execute(
        Path(f"{db}.index"),
        f"UPDATE search_rows SET {column} = ? WHERE tenant = ? AND seq = ?",
        value,
        TENANT,
        300,
    )
    report = verify(db)
    assert_finding(report, Problem.CHANGED_RECORD, 300)
    assert f"column {column} of record 300" in (report.message or "")
    assert "search index" in (report.message or "")


def test_a_record_missing_from_the_search_index_is_a_changed_record(db: Path) -> None:
    execute(Path(f"{db}.index"), "DELETE FROM search_rows WHERE tenant = ? AND seq = ?", TENANT, 17)
    report = verify(db)
    assert_finding(report, Problem.CHANGED_RECORD, 17)
    assert "missing from the search index" in (report.message or "")


def test_a_deleted_search_index_is_rebuilt_and_the_log_stays_intact(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}.index{suffix}").unlink(missing_ok=True)
    index(db)
    assert query(Path(f"{db}.index"), "SELECT next_seq FROM watermarks") == [(SIZE,)]
    assert verify(db).intact


def test_deleted_row_is_a_missing_record(db: Path) -> None:
    execute(db, "DELETE FROM events WHERE tenant = ? AND seq = ?", TENANT, 200)
    assert_finding(verify(db), Problem.MISSING_RECORD, 200)


def test_deleted_last_rows_are_missing_records(db: Path) -> None:
    execute(db, "DELETE FROM events WHERE tenant = ? AND seq >= ?", TENANT, 590)
    assert_finding(verify(db), Problem.MISSING_RECORD, 590)


def test_log_cut_short_with_its_head_is_caught_by_the_checkpoint(db: Path) -> None:
    # Rows and head agree, and the stored partial tile still starts right: only the
    # checkpoint of size 600 knows that records 550 to 599 were there.
    execute(db, "DELETE FROM events WHERE tenant = ? AND seq >= ?", TENANT, 550)
    execute(db, "UPDATE heads SET tree_size = 550 WHERE tenant = ?", TENANT)
    assert_finding(verify(db), Problem.MISSING_RECORD, 550)


def test_inserted_row_is_an_extra_record(db: Path) -> None:
    body = body_at(db, SIZE - 1).replace(b'"seq":599', b'"seq":600').replace(b"evt-0599", b"evt-9999")
    execute(
        db,
        "INSERT INTO events (tenant, seq, id, leaf_hash, body, occurred_us, category, action, outcome, "
        "actor_type, actor_id, integration, workflow_run, ip) "
        "SELECT tenant, 600, 'evt-9999', ?, ?, occurred_us, category, action, outcome, actor_type, "
        "actor_id, integration, workflow_run, ip FROM events WHERE tenant = ? AND seq = 599",
        leaf_of(body),
        body,
        TENANT,
    )
    assert_finding(verify(db), Problem.EXTRA_RECORD, SIZE)


def test_swapped_bodies_are_in_the_wrong_order(db: Path) -> None:
    first, second = body_at(db, 10), body_at(db, 11)
    execute(db, "UPDATE events SET body = ? WHERE tenant = ? AND seq = 10", second, TENANT)
    execute(db, "UPDATE events SET body = ? WHERE tenant = ? AND seq = 11", first, TENANT)
    assert_finding(verify(db), Problem.WRONG_ORDER, 10)


def test_body_of_another_tenant_is_in_the_wrong_order(db: Path) -> None:
    moved = body_at(db, 12).replace(b'"tenant":"acme"', b'"tenant":"acne"')
    execute(db, "UPDATE events SET body = ? WHERE tenant = ? AND seq = 12", moved, TENANT)
    assert_finding(verify(db), Problem.WRONG_ORDER, 12)


def test_purged_records_stay_checkable(db: Path) -> None:
    with AuditLog.open(f"sqlite:///{db}") as log:
        purged = log.store.purge(TENANT, time_us("2026-03-01T10:02:00.000000Z"))
        report = verify_store(log, TENANT)
    assert purged == 120
    assert report.intact, report.message
    assert report.leaves_checked == SIZE


def test_purged_record_with_another_leaf_hash_is_a_bad_node(db: Path) -> None:
    with AuditLog.open(f"sqlite:///{db}") as log:
        log.store.purge(TENANT, time_us("2026-03-01T10:02:00.000000Z"))
    execute(db, "UPDATE events SET leaf_hash = ? WHERE tenant = ? AND seq = 5", bytes(32), TENANT)
    assert_finding(verify(db), Problem.BAD_NODE, 5)


@pytest.mark.parametrize(
    "tampering",
    [
        "UPDATE event_targets SET id = 'task-999' WHERE tenant = ? AND seq = 9",
        "DELETE FROM event_targets WHERE tenant = ? AND seq = 9",
        "INSERT INTO event_targets (tenant, id, seq, type) VALUES (?, 'deal-1', 9, 'deal')",
    ],
    ids=["changed", "removed", "added"],
)
def test_a_target_row_that_is_not_what_the_body_names_is_a_changed_record(db: Path, tampering: str) -> None:
    """What `target:` searches read is checked against the bodies, as the columns are."""
    index(db)
    execute(Path(f"{db}.index"), tampering, TENANT)
    report = verify(db)
    assert_finding(report, Problem.CHANGED_RECORD, 9)
    assert "the targets stored for record 9" in (report.message or "")


def test_a_body_removed_by_hand_is_a_missing_record(db: Path) -> None:
    """Retention removes bodies only before its mark: a body gone after it, or with no
    purge at all, is a record removed, though its leaf hash still fits the tree."""
    execute(db, "UPDATE events SET body = NULL WHERE tenant = ? AND seq = 7", TENANT)
    report = verify(db)
    assert_finding(report, Problem.MISSING_RECORD, 7)
    assert "retention has purged nothing" in (report.message or "")

    with AuditLog.open(f"sqlite:///{db}") as log:
        log.store.purge(TENANT, time_us("2026-03-01T10:00:05.000000Z"))  # seqs 0-4
    report = verify(db)
    assert_finding(report, Problem.MISSING_RECORD, 7)
    assert "purged only what occurred before 2026-03-01T10:00:05.000000Z" in (report.message or "")

    with AuditLog.open(f"sqlite:///{db}") as log:
        log.store.purge(TENANT, time_us("2026-03-01T10:00:08.000000Z"))  # now seq 7 too
    assert verify(db).intact


# --- nodes, checkpoints and keys ------------------------------------------------------------------


def flip_tile_byte(db: Path, level: int, index: int, offset: int) -> None:
    where = "tenant = ? AND level = ? AND idx = ?"
    (hashes,) = query(db, f"SELECT hashes FROM tiles WHERE {where}", TENANT, level, index)[0]
    spoiled = bytearray(hashes)
    spoiled[offset] ^= 0x01
    execute(db, f"UPDATE tiles SET hashes = ? WHERE {where}", bytes(spoiled), TENANT, level, index)


def test_corrupted_leaf_tile_is_a_bad_node_at_its_entry(db: Path) -> None:
    flip_tile_byte(db, 0, 1, 5 * merkle.HASH_SIZE + 7)
    report = verify(db)
    assert_finding(report, Problem.BAD_NODE, TILE_WIDTH + 5)
    assert "tile 0/1" in (report.message or "")


def test_corrupted_upper_tile_is_a_bad_node_over_its_records(db: Path) -> None:
    # Entry 1 of tile 1/0 is the root of leaves 256..511.
    flip_tile_byte(db, 1, 0, merkle.HASH_SIZE + 3)
    assert_finding(verify(db), Problem.BAD_NODE, TILE_WIDTH)


def test_deleted_tile_is_a_bad_node(db: Path) -> None:
    execute(db, "DELETE FROM tiles WHERE tenant = ? AND level = 0 AND idx = 2", TENANT)
    assert_finding(verify(db), Problem.BAD_NODE, 2 * TILE_WIDTH)


def test_corrupted_checkpoint_signature_is_a_bad_signature(db: Path) -> None:
    (note,) = query(db, "SELECT note FROM checkpoints WHERE tenant = ? AND tree_size = 450", TENANT)[0]
    signature_line = note.rstrip("\n").rsplit("\n", 1)[1]
    blob = signature_line.rsplit(" ", 1)[1]
    spoiled_blob = blob[:20] + ("A" if blob[20] != "A" else "B") + blob[21:]
    execute(
        db,
        "UPDATE checkpoints SET note = ? WHERE tenant = ? AND tree_size = 450",
        note.replace(blob, spoiled_blob),
        TENANT,
    )
    report = verify(db)
    # Records up to the last checkpoint that verifies (size 300) are still vouched for.
    assert_finding(report, Problem.BAD_SIGNATURE, 300)


def rewrite_consistently(db: Path, seq: int, old: bytes, new: bytes) -> None:
    """Change one record and rebuild its leaf hash, every tile and the head from it: what an
    insider who knows the format but not the signing key can do."""
    changed = body_at(db, seq).replace(old, new)
    assert changed != body_at(db, seq)
    execute(
        db,
        "UPDATE events SET body = ?, leaf_hash = ? WHERE tenant = ? AND seq = ?",
        changed,
        leaf_of(changed),
        TENANT,
        seq,
    )
    leaves = [
        bytes(h) for (h,) in query(db, "SELECT leaf_hash FROM events WHERE tenant = ? ORDER BY seq", TENANT)
    ]
    with closing(sqlite3.connect(db)) as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO tiles (tenant, level, idx, hashes) VALUES (?, ?, ?, ?)",
            [(TENANT, level, index, hashes) for (level, index), hashes in build_tiles(leaves).items()],
        )
        conn.execute("UPDATE heads SET root_hash = ? WHERE tenant = ?", (merkle.root_hash(leaves), TENANT))
        conn.commit()


def test_consistent_rewrite_is_a_checkpoint_mismatch(db: Path) -> None:
    rewrite_consistently(db, 321, b"task 0321 created", b"task 0321 deleted")
    # 321 lies between the checkpoints of sizes 300 and 450: 300 is the last that holds.
    assert_finding(verify(db), Problem.CHECKPOINT_MISMATCH, 300)


def test_consistent_rewrite_of_the_first_batch_names_seq_zero(db: Path) -> None:
    rewrite_consistently(db, 3, b"task 0003 created", b"task 0003 deleted")
    assert_finding(verify(db), Problem.CHECKPOINT_MISMATCH, 0)


def test_replaced_recorded_key_is_a_key_mismatch(db: Path) -> None:
    impostor = generate_signing_key(f"trailkeeper/{TENANT}").verifier_key
    execute(db, "UPDATE tenant_keys SET verifier_key = ? WHERE tenant = ?", impostor, TENANT)
    assert_finding(verify(db), Problem.KEY_MISMATCH, 0)


def test_checkpoints_without_any_key_are_bad_signatures(db: Path) -> None:
    shutil.rmtree(db.parent / "audit.db.keys")
    execute(db, "DELETE FROM tenant_keys")
    report = verify(db)
    assert_finding(report, Problem.BAD_SIGNATURE, 0)
    assert "no verifier key" in (report.message or "")


def test_checkpoint_stored_beside_another_note_is_a_checkpoint_mismatch(db: Path) -> None:
    execute(
        db, "UPDATE checkpoints SET root_hash = ? WHERE tenant = ? AND tree_size = 300", bytes(32), TENANT
    )
    assert_finding(verify(db), Problem.CHECKPOINT_MISMATCH, 150)


# --- the parts ----------------------------------------------------------------------------------


def test_body_columns_agree_with_the_store_s_index_columns(db: Path) -> None:
    bodies = [bytes(b) for (b,) in query(db, "SELECT body FROM events WHERE tenant = ? ORDER BY seq", TENANT)]
    for seq, body in enumerate(bodies):
        record = json.loads(body)
        assert body_columns(body) == (seq, TENANT, index_columns(record, time_us(record["occurred_at"])))


def test_body_that_is_not_a_record_is_refused() -> None:
    with pytest.raises(ValueError, match="seq"):
        body_columns(b'{"tenant": "acme"}')


def leaves_of(count: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(count)]


def check_tiles(leaves: list[bytes], stored: dict[tuple[int, int], bytes]) -> Findings:
    findings = Findings()
    check = TileCheck(lambda level, index: stored.get((level, index)), findings)
    for leaf in leaves:
        check.append(leaf)
    check.finish()
    return findings


# One leaf more than a full tile of full tiles: level 1 fills up and level 2 begins.
LARGE = leaves_of(TILE_WIDTH * TILE_WIDTH + 1)


@pytest.fixture(scope="module")
def large_tiles() -> dict[tuple[int, int], bytes]:
    return build_tiles(LARGE)


def test_tiles_of_a_three_level_tree_check_out(large_tiles: dict[tuple[int, int], bytes]) -> None:
    assert check_tiles(LARGE, large_tiles).first() is None


def test_bad_node_in_a_full_upper_tile_names_the_first_record_it_covers(
    large_tiles: dict[tuple[int, int], bytes],
) -> None:
    spoiled = dict(large_tiles)
    hashes = bytearray(spoiled[(1, 0)])
    hashes[200 * merkle.HASH_SIZE] ^= 0x80
    spoiled[(1, 0)] = bytes(hashes)
    first = check_tiles(LARGE, spoiled).first()
    assert first is not None
    assert (first.problem, first.seq) == (Problem.BAD_NODE, 200 * TILE_WIDTH)


def test_partial_tile_grown_by_a_later_append_still_checks_out() -> None:
    leaves = leaves_of(300)
    grown = build_tiles([*leaves, *leaves_of(310)[300:]])
    assert check_tiles(leaves, grown).first() is None


def test_partial_tile_cut_short_is_a_bad_node() -> None:
    leaves = leaves_of(300)
    stored = build_tiles(leaves)
    stored[(0, 1)] = stored[(0, 1)][: -merkle.HASH_SIZE]
    first = check_tiles(leaves, stored).first()
    assert first is not None
    assert (first.problem, first.seq) == (Problem.BAD_NODE, 299)


def test_root_mismatch_is_explained_by_a_changed_record_beneath_it() -> None:
    findings = Findings()
    findings.add_root_mismatch(Finding(100, Problem.CHECKPOINT_MISMATCH, "root", covers=200))
    findings.add(Finding(150, Problem.CHANGED_RECORD, "record"))
    assert findings.first() == Finding(150, Problem.CHANGED_RECORD, "record")


def test_root_mismatch_below_a_changed_record_comes_first() -> None:
    findings = Findings()
    findings.add(Finding(250, Problem.CHANGED_RECORD, "record"))
    findings.add_root_mismatch(Finding(100, Problem.CHECKPOINT_MISMATCH, "root", covers=200))
    first = findings.first()
    assert first is not None
    assert (first.seq, first.problem) == (100, Problem.CHECKPOINT_MISMATCH)


def test_bad_signature_is_never_explained_away() -> None:
    findings = Findings()
    findings.add(Finding(150, Problem.CHANGED_RECORD, "record"))
    findings.add(Finding(100, Problem.BAD_SIGNATURE, "signature"))
    first = findings.first()
    assert first is not None
    assert first.problem is Problem.BAD_SIGNATURE


def test_out_of_place_record_outranks_a_missing_one_at_the_same_seq() -> None:
    findings = Findings()
    findings.add(Finding(7, Problem.MISSING_RECORD, "missing"))
    findings.add(Finding(7, Problem.WRONG_ORDER, "moved"))
    first = findings.first()
    assert first is not None
    assert first.problem is Problem.WRONG_ORDER


@pytest.mark.parametrize("size", [0, 1, 2, 3, 255, 256, 257, 1000, TILE_WIDTH * TILE_WIDTH + 1])
def test_frontier_root_is_the_tree_hash(size: int) -> None:
    frontier = Frontier()
    for leaf in LARGE[:size]:
        frontier.append(leaf)
    assert frontier.root() == merkle.root_hash(LARGE[:size])


def test_frontier_over_tile_roots_with_a_partial_tile_gives_the_tree_hash() -> None:
    # The root at a checkpoint that cuts a tile: the roots of the full tiles before it, and
    # the MTH of the cut tile's first leaves folded onto their right edge.
    for size in (1, 255, 300, 511, 600, TILE_WIDTH * TILE_WIDTH + 1):
        full = size // TILE_WIDTH
        tree = Frontier()
        for index in range(full):
            tree.append(tile_root(b"".join(LARGE[index * TILE_WIDTH : (index + 1) * TILE_WIDTH])))
        cut = LARGE[full * TILE_WIDTH : size]
        assert tree.root(merkle.root_hash(cut) if cut else None) == merkle.root_hash(LARGE[:size]), size


# --- how the work is divided --------------------------------------------------------------------

ONE_TILE_CHUNKS: dict[str, Any] = {"chunk": TILE_WIDTH, "parallel_from": 0}
"""Chunks of one tile, so that the test log's 600 records make three and each is cut by a
checkpoint (at 150, 300 and 450): what a large log's chunks do, at the test log's size."""


def rewrite_321(db: Path) -> None:
    rewrite_consistently(db, 321, b"task 0321 created", b"task 0321 deleted")


def change_body_321(db: Path) -> None:
    changed = body_at(db, 321).replace(b"task 0321 created", b"task 0322 created")
    execute(db, "UPDATE events SET body = ? WHERE tenant = ? AND seq = 321", changed, TENANT)


def corrupt_leaf_tile(db: Path) -> None:
    flip_tile_byte(db, 0, 1, 5 * merkle.HASH_SIZE + 7)


def delete_row_530(db: Path) -> None:
    execute(db, "DELETE FROM events WHERE tenant = ? AND seq = 530", TENANT)


def leave_intact(db: Path) -> None:
    pass


@pytest.mark.parametrize(
    "spoil", [leave_intact, change_body_321, rewrite_321, corrupt_leaf_tile, delete_row_530]
)
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_log_checked_in_chunks_gives_the_report_of_one_pass(
    db: Path, spoil: Callable[[Path], None], jobs: int
) -> None:
    spoil(db)
    with AuditLog.open(f"sqlite:///{db}") as log:
        whole = verify_store(log, TENANT, jobs=1)
        seen: list[tuple[int, int]] = []
        chunked = verify_store(
            log, TENANT, lambda done, total: seen.append((done, total)), jobs=jobs, **ONE_TILE_CHUNKS
        )
    assert chunked == whole
    assert seen == [(256, SIZE), (512, SIZE), (SIZE, SIZE)]


def test_a_helper_process_checks_a_chunk_as_this_process_does(db: Path) -> None:
    change_body_321(db)
    chunk = Chunk(256, 512, cuts=(300, 450))
    with AuditLog.open(f"sqlite:///{db}") as log:
        here = check_chunk(log.store, TENANT, chunk)
        url = log.store.shared_url()
    helper = subprocess.run(
        [sys.executable, "-c", HELPER_COMMAND],
        input=pickle.dumps((url, TENANT)) + pickle.dumps(chunk),
        capture_output=True,
        check=True,
    )
    there = pickle.loads(helper.stdout)  # noqa: S301 - from the helper this test started
    assert there == here
    assert here.finding is not None
    assert (here.finding.problem, here.finding.seq) == (Problem.CHANGED_RECORD, 321)


def test_an_ephemeral_log_cannot_be_shared_with_another_process() -> None:
    with AuditLog.open("sqlite:///:memory:") as log:
        assert log.store.shared_url() is None
        log.record(TENANT, **{k: v for k, v in event(0).items() if k != "id"})
        log.checkpoint(TENANT)
        assert verify_store(log, TENANT, jobs=2, **ONE_TILE_CHUNKS).intact


@pytest.mark.parametrize(("jobs", "chunk", "field"), [(1, 300, "chunk"), (1, 0, "chunk"), (0, 256, "jobs")])
def test_a_chunk_that_is_no_multiple_of_a_tile_or_no_jobs_is_refused(
    db: Path, jobs: int, chunk: int, field: str
) -> None:
    with AuditLog.open(f"sqlite:///{db}") as log, pytest.raises(InvalidArgument, match=field):
        verify_store(log, TENANT, jobs=jobs, chunk=chunk)


def test_the_last_chunks_are_shorter_and_the_chunks_cover_the_log_once() -> None:
    # Whoever takes the last chunk keeps the others waiting until it is done: the chunks
    # shrink towards the end, down to an eighth of a chunk, each a whole number of tiles.
    sizes = [1000, 40_000, 300_500]
    chunks = _chunks(1_000_000, 32_768, sizes)
    assert chunks[0].start == 0
    assert all(a.end == b.start for a, b in pairwise(chunks))
    assert chunks[-1].end == 1_000_000
    assert all(c.start % TILE_WIDTH == 0 for c in chunks)
    lengths = [c.end - c.start for c in chunks]
    assert lengths[0] == 32_768
    assert lengths == sorted(lengths, reverse=True)
    assert lengths[-2] == 32_768 // 8
    # Each checkpoint size inside a tile is a cut of the one chunk that holds it.
    assert [(c.start, c.cuts) for c in chunks if c.cuts] == [
        (0, (1000,)),
        (32_768, (40_000,)),
        (294_912, (300_500,)),
    ]
    assert _chunks(600, 256, []) == [Chunk(0, 256), Chunk(256, 512), Chunk(512, 600)]


# --- the rows as the store gives them -----------------------------------------------------------


def test_every_batch_of_an_untouched_log_passes_the_check_of_a_whole_batch(db: Path) -> None:
    # The fast path: a sound log must never need the row by row check, or verify slows down
    # several times over without saying so.
    with AuditLog.open(f"sqlite:///{db}") as log:
        batches = list(log.store.verify_rows(TENANT, 0, SIZE))
    rows = RowCheck(TENANT, 0, Findings())
    assert all(rows._sound(batch) for batch in batches)
    assert rows.read == SIZE


def test_the_generic_rows_for_verification_are_those_of_sqlite(db: Path) -> None:
    # Store.verify_rows as every backend has it (from leaves()) and as SQLite builds it in
    # SQL: the same rows, and the columns as the same JSON text, byte for byte.
    execute(db, "UPDATE events SET ip = CAST(ip AS BLOB) WHERE tenant = ? AND seq = 4", TENANT)
    with AuditLog.open(f"sqlite:///{db}") as log:
        own = [row for batch in log.store.verify_rows(TENANT, 0, SIZE) for row in batch]
        generic = [row for batch in Store.verify_rows(log.store, TENANT, 0, SIZE) for row in batch]
    assert own == generic
    assert [row[0] for row in own] == list(range(SIZE))
    record = json.loads(body_at(db, 100))
    columns = index_columns(record, time_us(record["occurred_at"]))
    assert json.loads(own[100][3] or b"null") == [100, TENANT, *columns]
    assert own[4][3] is None  # JSON holds no BLOB


def test_blob_in_a_searchable_column_is_a_changed_record(db: Path) -> None:
    # A search for the actor compares text with text, and never finds a BLOB.
    execute(db, "UPDATE events SET actor_id = CAST(actor_id AS BLOB) WHERE tenant = ? AND seq = 303", TENANT)
    assert_finding(verify(db), Problem.CHANGED_RECORD, 303)


def test_row_repeated_by_a_store_without_its_unique_index_is_in_the_wrong_order(db: Path) -> None:
    execute(db, "DROP INDEX events_seq")
    execute(
        db,
        "INSERT INTO events (tenant, seq, id, leaf_hash, body, occurred_us, category, action, outcome, "
        "actor_type, actor_id, integration, workflow_run, ip) "
        "SELECT tenant, seq, 'evt-again', leaf_hash, body, occurred_us, category, action, outcome, "
        "actor_type, actor_id, integration, workflow_run, ip FROM events WHERE tenant = ? AND seq = 10",
        TENANT,
    )
    assert_finding(verify(db), Problem.WRONG_ORDER, 10)
