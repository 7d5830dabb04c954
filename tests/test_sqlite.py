"""What is particular to the SQLite store: its file, its migrations, its query plans."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trailkeeper import AuditLog
from trailkeeper.query import parse_query
from trailkeeper.store.base import PageQuery, Position
from trailkeeper.store.migrations import LATEST, SQLITE_MIGRATIONS
from trailkeeper.store.sql import page_sql
from trailkeeper.store.sqlite import DIALECT

LOGIN = {"category": "authentication", "action": "auth.login.succeeded", "actor": {"type": "user", "id": "u"}}


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.record("acme", **LOGIN)
    assert sqlite3.connect(tmp_path / "a.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_signing_keys_live_beside_the_database_with_mode_0600(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.record("acme", **LOGIN)
        log.checkpoint("acme")
    key = tmp_path / "a.db.keys" / "acme.key"
    assert key.stat().st_mode & 0o777 == 0o600
    database = (tmp_path / "a.db").read_bytes()
    assert b"PRIVATE KEY" not in database


def test_an_older_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    version, statements = SQLITE_MIGRATIONS[0]
    for statement in statements:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.close()
    assert version < LATEST

    with AuditLog.open(f"sqlite:///{path}", key_dir=tmp_path / "keys") as log:
        record = log.record("acme", **LOGIN)
        key, _ = log.create_key("acme", ["events:read"])  # a table the old schema lacked
        assert log.store.schema_version() == LATEST
        assert log.get("acme", record["id"]) == record
        assert [k.id for k in log.keys("acme")] == [key.id]
    versions = [row[0] for row in sqlite3.connect(path).execute("SELECT version FROM schema_version")]
    assert versions == [v for v, _ in SQLITE_MIGRATIONS]


@pytest.mark.parametrize(
    "query",
    [
        "actor:u_42",
        "action:auth.login.failed",
        "action:auth.*",
        "category:workflow",
        "outcome:failure",
        "actor_type:service",
        "integration:salesforce",
        "workflow_run:run-1",
        "ip:203.0.113.9",
        "target:deal-9",
        "target_type:deal",
        "renewal",
        "after:2026-11-01 before:2026-11-02",
    ],
)
def test_every_filter_is_served_by_an_index(tmp_path: Path, query: str) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.record("acme", **LOGIN)
        store = log.store
        page = PageQuery("acme", parse_query(query), "desc", 100, Position(2**60, 0), 10)
        driver = store._few_candidates(page)  # type: ignore[attr-defined]
        sql, params = page_sql(page, DIALECT, sort_after=driver is not None, drive_by_text=driver == "text")
        plan = store._reader().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()  # type: ignore[attr-defined]
    steps = [row[3] for row in plan]
    assert not any(step == "SCAN e" or step.startswith("SCAN e ") for step in steps), steps
    # The rows are found through the filter itself, not by walking the whole tenant.
    assert "SEARCH e USING INDEX events_time (tenant=?)" not in steps, steps
    assert not any(
        step.startswith("SEARCH e USING INDEX events_time (tenant=? AND (occurred_us") for step in steps
    ) or ("after:" in query), steps


def test_a_checkpoint_follows_every_commit_without_being_asked(tmp_path: Path) -> None:
    import time

    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.record_many("acme", [LOGIN] * 10)
        deadline = time.monotonic() + 10
        while not log.checkpoints("acme") and time.monotonic() < deadline:
            time.sleep(0.05)
        # The writer signed on its own (checkpoint() was never called).
        assert [c.tree_size for c in log.checkpoints("acme")] == [10]


def test_the_signer_refuses_a_tree_inconsistent_with_its_last_checkpoint(tmp_path: Path) -> None:
    from trailkeeper import IntegrityError

    url = f"sqlite:///{tmp_path}/a.db"
    with AuditLog.open(url) as log:
        log.record_many("acme", [LOGIN] * 300)
        assert "\n300\n" in log.checkpoint("acme")
    # Rewrite history below the signed size: the stored root of the first 256 leaves (the
    # first entry of the level-1 tile), on which every later root is built.
    conn = sqlite3.connect(tmp_path / "a.db")
    hashes = conn.execute(
        "SELECT hashes FROM tiles WHERE tenant = 'acme' AND level = 1 AND idx = 0"
    ).fetchone()[0]
    conn.execute(
        "UPDATE tiles SET hashes = ? WHERE tenant = 'acme' AND level = 1 AND idx = 0",
        (bytes(32) + hashes[32:],),
    )
    conn.commit()
    conn.close()
    with AuditLog.open(url) as log:
        log.record("acme", **LOGIN)
        with pytest.raises(IntegrityError, match="refusing to sign size 301"):
            log.checkpoint("acme")
        assert [c.tree_size for c in log.checkpoints("acme")] == [300]


def test_a_body_removed_by_hand_leaves_a_gap_in_search_not_an_error(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.record_many("acme", [LOGIN] * 5)
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    conn.execute("UPDATE events SET body = NULL WHERE seq = 2")
    conn.close()
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        assert [r["seq"] for r in log.search("acme", order="asc").events] == [0, 1, 3, 4]
        assert not log.verify("acme").intact
