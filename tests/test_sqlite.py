"""What is particular to the SQLite store: its file, its migrations, its query plans."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trailkeeper import AuditLog
from trailkeeper.events import time_us
from trailkeeper.query import parse_query
from trailkeeper.store.base import PageQuery, Position
from trailkeeper.store.migrations import LATEST, SQLITE_MIGRATIONS

LOGIN = {"category": "authentication", "action": "auth.login.succeeded", "actor": {"type": "user", "id": "u"}}


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.record("acme", **LOGIN)
    assert sqlite3.connect(tmp_path / "a.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_file_has_pages_of_16_kib_and_an_older_one_keeps_its_own(tmp_path: Path) -> None:
    older = sqlite3.connect(tmp_path / "old.db")
    older.execute("PRAGMA page_size = 4096")
    older.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    older.close()
    for name, page_size in (("new.db", 16384), ("old.db", 4096)):
        with AuditLog.open(f"sqlite:///{tmp_path}/{name}") as log:
            log.record("acme", **LOGIN)
            writer = log.store._writer  # type: ignore[attr-defined]
            # The WAL is copied into the file every 32 MiB, whatever the size of a page.
            assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] * page_size == 32 * 1024 * 1024
        assert sqlite3.connect(tmp_path / name).execute("PRAGMA page_size").fetchone()[0] == page_size


def test_options_in_the_url_name_no_file(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db?index=inline") as log:
        log.record("acme", **LOGIN)
        log.checkpoint("acme")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        "a.db",
        "a.db.index",
        "a.db.keys",
    ]


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
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db?index=inline") as log:
        log.record("acme", **LOGIN)
        page = PageQuery("acme", parse_query(query), "desc", 100, Position(2**60, 0), 10)
        [steps] = log.store.explain(page)  # type: ignore[attr-defined]
    assert not any(step == "SCAN e" or step.startswith("SCAN e ") for step in steps), steps
    # The rows are found through the filter itself, not by walking the whole tenant.
    for time_index in ("events_time", "search_time"):
        assert f"SEARCH e USING INDEX {time_index} (tenant=?)" not in steps, steps
        assert not any(
            step.startswith(f"SEARCH e USING INDEX {time_index} (tenant=? AND (occurred_us") for step in steps
        ) or ("after:" in query), steps
    # A record found through the search index is read from the events table by its place.
    assert not any(step.startswith("SCAN m") for step in steps), steps


def test_records_not_indexed_yet_are_read_from_the_newest_on(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        index = log.store.search_index  # type: ignore[attr-defined]
        index.pause()
        log.record_many("acme", [LOGIN] * 300)
        index.catch_up()
        log.record_many("acme", [LOGIN] * 5)
        page = PageQuery("acme", parse_query("actor:u renewal"), "desc", 100, None, None)
        indexed, unindexed = log.store.explain(page)  # type: ignore[attr-defined]
        assert [r["seq"] for r in log.search("acme", "actor:u", limit=7).events] == list(range(304, 297, -1))
        # Counts add the indexed records and the newer ones up.
        assert log.stats("acme", "actor:u", group_by="actor")["counts"] == [{"key": "u", "count": 305}]
    assert any(step.startswith("SEARCH e USING") for step in indexed), indexed
    assert not any(step == "SCAN e" or step.startswith("SCAN e ") for step in unindexed), unindexed
    assert any("events_seq (tenant=? AND seq>?)" in step for step in unindexed), unindexed
    # Their text is matched among their own words alone, the index's words among the
    # indexed records'.
    assert any("tail_fts" in step for step in unindexed), unindexed
    assert not any("events_fts" in step for step in unindexed), unindexed
    assert any("events_fts" in step for step in indexed), indexed


def test_text_searches_of_unindexed_records_stay_right_as_records_arrive_and_get_indexed(
    tmp_path: Path,
) -> None:
    # The words of the unindexed records are kept from one search to the next and only the
    # newer records tokenized: whatever happens in between, a search finds what it should.
    def found(log: AuditLog, tenant: str, query: str) -> list[int]:
        return [r["seq"] for r in log.search(tenant, query, order="asc").events]

    renewal = {**LOGIN, "description": "renewal call"}
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        index = log.store.search_index  # type: ignore[attr-defined]
        index.pause()
        log.record_many("acme", [renewal, LOGIN, renewal])
        assert found(log, "acme", "renewal") == [0, 2]
        log.record_many("acme", [LOGIN, renewal])
        assert found(log, "acme", "renewal") == [0, 2, 4]
        log.record_many("beta", [renewal])
        assert found(log, "beta", "renewal") == [0]
        assert found(log, "acme", "renewal") == [0, 2, 4]
        index.catch_up()  # the watermark passes every record
        log.record_many("acme", [renewal])
        assert found(log, "acme", "renewal") == [0, 2, 4, 5]
        assert found(log, "acme", '"renewal call"') == [0, 2, 4, 5]
        log.store.purge("acme", time_us("2100-01-01T00:00:00Z"))  # type: ignore[attr-defined]
        log.record_many("acme", [{**renewal, "occurred_at": "2100-02-01T00:00:00Z"}])
        # Purged words match nothing, though the tail table may still hold some.
        assert found(log, "acme", "renewal") == [6]


def test_a_file_of_schema_4_gets_its_search_index_built_from_its_events(tmp_path: Path) -> None:
    """Version 5 moved the value-keyed indexes and the targets to the derived index file,
    version 6 the full-text index (the records keep their search text beside them)."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, statements in SQLITE_MIGRATIONS[:4]:
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.close()
    with AuditLog.open(f"sqlite:///{tmp_path}/new.db") as log:
        record = log.record(
            "acme", targets=[{"type": "deal", "id": "deal-9"}], description="Quarterly renewal", **LOGIN
        )
    # The new file's record, put into the old file as version 4 kept it.
    new = sqlite3.connect(tmp_path / "new.db")
    row = new.execute("SELECT * FROM events").fetchone()[:-1]  # all but the search text
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"INSERT INTO events VALUES ({', '.join('?' * len(row))})", row)
    conn.execute("INSERT INTO events_fts (rowid, text) VALUES (?, 'Quarterly renewal')", (row[0],))
    conn.execute("INSERT INTO event_targets VALUES ('acme', 'deal-9', 0, 'deal')")
    for table in ("heads", "tiles"):
        for values in new.execute(f"SELECT * FROM {table}"):
            conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values))})", values)
    conn.close()

    with AuditLog.open(f"sqlite:///{path}?index=inline") as log:
        assert log.store.schema_version() == LATEST
        log.store.search_index.catch_up()  # type: ignore[attr-defined]
        assert log.store.indexed_below("acme") == 1  # type: ignore[attr-defined]
        assert [r["id"] for r in log.search("acme", "target:deal-9 actor:u").events] == [record["id"]]
        assert [r["id"] for r in log.search("acme", "renewal").events] == [record["id"]]
        assert log.verify("acme").intact
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "event_targets" not in tables
    assert "events_actor" not in tables
    assert "events_fts" not in tables


def test_an_index_file_of_an_older_layout_is_laid_out_anew_and_refilled(tmp_path: Path) -> None:
    """The index is derived: a file of another version is emptied and rebuilt from the log
    (version 3 keeps no word counts in its full-text index)."""
    from trailkeeper.store.search_index import INDEX_VERSION, index_path

    url = f"sqlite:///{tmp_path}/a.db?index=inline"
    with AuditLog.open(url) as log:
        record = log.record(
            "acme", targets=[{"type": "deal", "id": "deal-9"}], description="renewal", **LOGIN
        )
    index = sqlite3.connect(index_path(str(tmp_path / "a.db")), isolation_level=None)
    index.execute("UPDATE meta SET version = ?", (INDEX_VERSION - 1,))
    index.execute("DELETE FROM event_targets")  # a stale index: what the rebuild must restore
    index.close()
    with AuditLog.open(url) as log:
        log.store.search_index.catch_up()  # type: ignore[attr-defined]
        assert [r["id"] for r in log.search("acme", "renewal target:deal-9").events] == [record["id"]]
        assert log.verify("acme").intact
    index = sqlite3.connect(index_path(str(tmp_path / "a.db")))
    assert index.execute("SELECT version FROM meta").fetchall() == [(INDEX_VERSION,)]
    [(fts,)] = index.execute("SELECT sql FROM sqlite_master WHERE name = 'events_fts'").fetchall()
    assert "columnsize=0" in fts


def test_the_background_thread_indexes_what_was_committed(tmp_path: Path) -> None:
    import time

    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.record_many(
            "acme", [dict(LOGIN, targets=[{"type": "deal", "id": f"deal-{i}"}]) for i in range(40)]
        )
        deadline = time.monotonic() + 30
        while log.store.indexed_below("acme") < 40 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert log.store.indexed_below("acme") == 40  # type: ignore[attr-defined]
        page = PageQuery("acme", parse_query("target:deal-7"), "desc", 10, None, None)
        [statement] = log.store.explain(page)  # type: ignore[attr-defined]
        assert any(step.startswith("SEARCH t USING PRIMARY KEY") for step in statement), statement
        assert [r["seq"] for r in log.search("acme", "target:deal-7").events] == [7]


AWKWARD_IDS = ["a\x00b", "x\x1fy", "é😀", 'q"uo\\te', "\u2028", "back\\u0000slash"]


@pytest.mark.parametrize("index", ["inline", "never"])
def test_target_ids_of_any_text_are_indexed_and_found_as_written(tmp_path: Path, index: str) -> None:
    """SQLite's JSON functions end a string at an escaped NUL; the index must not."""
    url = f"sqlite:///{tmp_path}/a.db" + ("?index=inline" if index == "inline" else "")
    with AuditLog.open(url) as log:
        if index == "never":
            log.store.search_index.pause()  # type: ignore[attr-defined]
        for target in AWKWARD_IDS:
            log.record("acme", targets=[{"type": "deal", "id": target}], **LOGIN)
        if index == "inline":
            stored = log.store.stored_targets("acme", 0, len(AWKWARD_IDS))
            assert sorted(stored) == [(seq, "deal", target) for seq, target in enumerate(AWKWARD_IDS)]
        assert log.verify("acme").intact
        # A search names no control character; every other id is found, indexed or not.
        for seq, target in enumerate(AWKWARD_IDS[2:], start=2):
            assert [r["seq"] for r in log.search("acme", target=target).events] == [seq]


@pytest.mark.parametrize("body", ["not json", '{"targets": {"a": "b"}}', '{"targets": ["x", 1]}'])
def test_a_body_changed_by_hand_does_not_fail_a_search_of_unindexed_records(
    tmp_path: Path, body: str
) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db") as log:
        log.store.search_index.pause()  # type: ignore[attr-defined]
        log.record_many("acme", [dict(LOGIN, targets=[{"type": "deal", "id": "deal-1"}])] * 3)
        conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
        conn.execute("UPDATE events SET body = CAST(? AS BLOB) WHERE seq = 1", (body,))
        conn.close()
        assert [r["seq"] for r in log.search("acme", "target:deal-1").events] == [2, 0]
        assert log.stats("acme", "-target:deal-1", group_by="actor")["total"] == 1


def test_verify_reads_each_index_row_by_its_place(tmp_path: Path) -> None:
    """The search index's row of a record is found by (tenant, seq), not by a scan."""
    from trailkeeper.store.sqlite import _INDEX_DIFFERENCE

    with AuditLog.open(f"sqlite:///{tmp_path}/a.db?index=inline") as log:
        log.record("acme", **LOGIN)
        reader = log.store._reader()  # type: ignore[attr-defined]
        plan = [row[3] for row in reader.execute("EXPLAIN QUERY PLAN " + _INDEX_DIFFERENCE, ("acme", 0, 1))]
    assert "SEARCH x USING PRIMARY KEY (tenant=? AND seq=?) LEFT-JOIN" in plan, plan


@pytest.mark.parametrize("option", ["index=sometimes", "cache=big", "index"])
def test_a_sqlite_url_with_an_unknown_option_is_refused(tmp_path: Path, option: str) -> None:
    from trailkeeper import InvalidArgument

    with pytest.raises(InvalidArgument, match="index=inline"):
        AuditLog.open(f"sqlite:///{tmp_path}/a.db?{option}")
    assert not (tmp_path / "a.db").exists()


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


def test_purged_records_leave_no_words_in_either_file(tmp_path: Path) -> None:
    """Retention removes a record's text with its body: from the log's row, and from the
    search index's full-text table on the index's next pass."""
    old = dict(LOGIN, occurred_at="2026-01-01T00:00:00Z", description="confidential renewal")
    new = dict(LOGIN, occurred_at="2026-03-01T00:00:00Z", description="public renewal")
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db?index=inline") as log:
        log.record_many("acme", [old, new])
        assert log.store.purge("acme", 1_770_000_000_000_000) == 1  # 2026-02-02
        assert [r["description"] for r in log.search("acme", "renewal").events] == ["public renewal"]
    log_file = sqlite3.connect(tmp_path / "a.db")
    assert log_file.execute("SELECT count(*) FROM events WHERE text IS NOT NULL").fetchone() == (1,)
    index = sqlite3.connect(tmp_path / "a.db.index")
    assert index.execute("SELECT text FROM events_fts").fetchall() == [("public renewal",)]
    for name, count in (("confidential", 0), ("renewal", 1)):
        found = index.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH ?", (name,)).fetchone()
        assert found == (count,)


@pytest.mark.parametrize(
    "query", ["renewal", '"renewal risk"', "actor:u renewal", "renewal after:2026-01-01"]
)
def test_a_common_word_filters_the_rows_walked_in_order(tmp_path: Path, query: str) -> None:
    """Unless the text's matches are few enough to start from, they are a filter on the
    rows an ordered index walks: never a list each row is looked up against (SQLite would
    otherwise fold the list into the events lookup and try every match for every row)."""
    with AuditLog.open(f"sqlite:///{tmp_path}/a.db?index=inline") as log:
        for _ in range(3):
            log.record_many("acme", [dict(LOGIN, description="renewal risk")] * 1000)
        page = PageQuery("acme", parse_query(query), "desc", 50, None, None)
        [steps] = log.store.explain(page)  # type: ignore[attr-defined]
    assert "SEARCH m USING INDEX events_seq (tenant=? AND seq=?)" in steps, steps
    assert not any("rowid=?" in step for step in steps), steps


def test_an_adapter_the_application_registered_is_left_in_place() -> None:
    """The store registers identity adapters for bytes and None (binding is quicker through
    the registry), but never over one the application registered before importing it."""
    import subprocess
    import sys

    program = (
        "import sqlite3\n"
        "mine = lambda value: value\n"
        "sqlite3.register_adapter(bytes, mine)\n"
        "import trailkeeper.store.sqlite\n"
        "assert sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)] is mine\n"
        "assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True)
