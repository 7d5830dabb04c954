"""The SQLite writer's statement thread: order, failures, and the all-or-nothing append."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trailkeeper import AuditLog
from trailkeeper.store.overlap import Overlapped


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    return conn


def test_statements_run_in_the_order_handed_over(conn: sqlite3.Connection) -> None:
    statements = Overlapped(conn, "test-statements")
    try:
        for k in range(50):
            statements.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, f"v{k}"))
        statements.execute("UPDATE t SET v = 'last' WHERE k = ?", (49,))
        statements.execute("INSERT INTO t (k, v) VALUES (?, ?)", [(100, "a"), (101, "b")], many=True)
        statements.drain()
    finally:
        statements.close()
    rows = conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()
    assert [k for k, _ in rows] == [*range(50), 100, 101]
    assert rows[49] == (49, "last")


def test_a_failure_skips_the_rest_and_is_raised_once(conn: sqlite3.Connection) -> None:
    statements = Overlapped(conn, "test-statements")
    try:
        conn.execute("BEGIN")
        statements.execute("INSERT INTO t (k, v) VALUES (1, 'a')", ())
        statements.execute("INSERT INTO t (k, v) VALUES (1, 'again')", ())  # the key is taken
        statements.execute("INSERT INTO t (k, v) VALUES (2, 'after')", ())
        with pytest.raises(sqlite3.IntegrityError):
            statements.drain()
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
        # Reported once: the thread runs the next transaction's statements.
        statements.execute("INSERT INTO t (k, v) VALUES (3, 'next')", ())
        statements.drain()
    finally:
        statements.close()
    assert conn.execute("SELECT k FROM t").fetchall() == [(3,)]


def test_closed_refuses_statements(conn: sqlite3.Connection) -> None:
    statements = Overlapped(conn, "test-statements")
    statements.close()
    with pytest.raises(RuntimeError):
        statements.execute("INSERT INTO t (k, v) VALUES (1, 'a')", ())


def test_an_append_whose_insert_fails_leaves_nothing(tmp_path: Path) -> None:
    """A batch larger than one statement, whose last statement fails: no record of it stays,
    and the next batch takes the seqs it would have had."""
    with AuditLog.open(f"sqlite:///{tmp_path / 'log.db'}", key_dir=tmp_path / "keys") as log:
        log.record("acme", action="auth.login", category="authentication", actor={"type": "user", "id": "u"})
        store = log.store
        # A row the writer does not know of, in the way of the batch's last rows.
        row = store._writer.execute("SELECT max(row) FROM events").fetchone()[0]  # type: ignore[attr-defined]
        store._writer.execute(  # type: ignore[attr-defined]
            "INSERT INTO events (row, tenant, seq, id, leaf_hash, occurred_us, category, action, "
            "outcome, actor_type, actor_id) "
            "VALUES (?, 'other', 0, 'x', x'00', 0, 'system', 'a.b', 'success', 'user', 'u')",
            (row + 450,),
        )
        events = [
            {"action": "auth.login", "category": "authentication", "actor": {"type": "user", "id": f"u{i}"}}
            for i in range(500)
        ]
        with pytest.raises(sqlite3.IntegrityError):
            log.record_many("acme", events)
        assert log.store.tree_size("acme") == 1
        assert log.store.get_by_seq("acme", 1) is None
        store._writer.execute("DELETE FROM events WHERE tenant = 'other'")  # type: ignore[attr-defined]
        records = log.record_many("acme", events[:3])
        assert [r["seq"] for r in records] == [1, 2, 3]
        assert [r["actor"]["id"] for r in log.search("acme", "action:auth.login", order="asc").events] == [
            "u",
            "u0",
            "u1",
            "u2",
        ]
        assert log.verify("acme").intact
