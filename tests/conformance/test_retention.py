"""Retention: old bodies are archived, then purged; seqs, leaf hashes and proofs stay."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from trailkeeper import AuditLog, merkle
from trailkeeper.notes import VerifierKey, open_checkpoint
from trailkeeper.retention import apply_retention, set_retention


def event(day: int) -> dict[str, object]:
    return {
        "category": "user_activity",
        "action": "assistant.query.submitted",
        "occurred_at": f"2026-11-{day:02d}T12:00:00Z",
        "actor": {"type": "user", "id": "u"},
        "description": f"pipeline question of day {day}",
    }


def test_retention_archives_then_purges_and_keeps_the_tree(log: AuditLog, tmp_path: Path) -> None:
    records = log.record_many("acme", [event(day) for day in range(1, 21)])
    note = log.checkpoint("acme")
    set_retention(log, "acme", 10)
    lines = list(apply_retention(log, tmp_path / "archive", now=datetime(2026, 11, 21, tzinfo=UTC)))
    assert lines[0].startswith("acme: purged 10 event bodies")

    [archive] = (tmp_path / "archive" / "acme").iterdir()
    archived = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [r["seq"] for r in archived] == list(range(10))

    # Search, get and stats no longer see the purged bodies ...
    visible = [r["seq"] for r in log.iter_search("acme", log.filter("action:assistant.*"), order="asc")]
    assert visible == list(range(10, 20))
    assert log.get("acme", records[3]["id"]) is None
    assert log.stats("acme", "pipeline", group_by="day")["total"] == 10
    # ... but the purge itself is on the record, and the old proofs still hold.
    assert log.search("acme", "action:audit.log.purged").events[0]["metadata"]["purged"] == 10
    checkpoint = open_checkpoint(note, VerifierKey.parse(log.public_key("acme")))
    proof = log.inclusion_proof("acme", 3, checkpoint.tree_size)
    merkle.verify_inclusion(
        bytes.fromhex(records[3]["leaf_hash"]),
        3,
        checkpoint.tree_size,
        [base64.b64decode(h) for h in proof["hashes"]],
        checkpoint.root_hash,
    )
    assert log.verify("acme").intact


def test_a_tenant_without_retention_is_untouched(log: AuditLog, tmp_path: Path) -> None:
    log.record_many("acme", [event(day) for day in range(1, 5)])
    assert list(apply_retention(log, tmp_path / "archive", now=datetime(2027, 1, 1, tzinfo=UTC))) == []
    assert len(log.search("acme").events) == 4
