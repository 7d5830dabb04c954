"""The PostgreSQL store beyond the conformance suite: several servers on one database, query
plans on a large table, migrations that race, retention by month, and how values are held.

Every test works in a database of its own (tests/pg.py); without the server the tests skip,
and under ``CI=true`` they fail.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pg import require_postgres, reset_database, temporary_database
from trailkeeper import AuditLog, merkle, tiles
from trailkeeper.events import prepare_batch, time_us
from trailkeeper.query import parse_query
from trailkeeper.store import postgres as pg_store
from trailkeeper.store.base import AppendRequest, PageQuery, StoredCheckpoint
from trailkeeper.store.postgres import (
    RECORD_BY_LEAF,
    RECORDS_SINCE_SEQ,
    PostgresStore,
    count_statement,
    migrate,
    page_statement,
)
from trailkeeper.verify import Problem

pytestmark = pytest.mark.postgres

LOGIN = {
    "category": "authentication",
    "action": "auth.login.succeeded",
    "actor": {"type": "user", "id": "u1"},
}


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    require_postgres()
    with temporary_database() as url:
        migrate(url)
        yield url


@pytest.fixture
def url(database: str) -> str:
    reset_database(database)
    return database


@pytest.fixture
def log(url: str, tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog.open(url, key_dir=tmp_path / "keys") as audit_log:
        yield audit_log


def _leaf_seqs(store: Any, tenant: str) -> list[int]:
    return [leaf.seq for leaf in store.leaves(tenant)]


def _stored_ids(store: Any, tenant: str) -> dict[str, int]:
    return {json.loads(leaf.body)["id"]: leaf.seq for leaf in store.leaves(tenant) if leaf.body}


# -- several servers on one database ------------------------------------------------------------
_WORKER = """
import json, sys, time
from trailkeeper import AuditLog

url, key_dir = sys.argv[1], sys.argv[2]
worker, start, batches = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
log = AuditLog.open(url, key_dir=key_dir)
time.sleep(max(0.0, start - time.time()))
for batch in range(batches):
    tenant = ("acme", "beta")[batch % 2]
    actor = {"type": "service", "id": f"server-{worker}"}
    events = [
        {"id": f"w{worker}-b{batch}-{i}", "category": "system", "action": "load.test", "actor": actor}
        for i in range(20)
    ]
    # Every server sends this one: it must be stored once, and all of them told its one seq.
    events.append({"id": f"shared-{batch}", "category": "system", "action": "load.test", "actor": actor})
    for record in log.record_many(tenant, events):
        print(json.dumps([tenant, record["id"], record["seq"]]), flush=True)
log.close()
"""


def _acknowledged(outputs: list[str]) -> dict[str, dict[str, set[int]]]:
    """tenant -> id -> every seq some server acknowledged for it."""
    acked: dict[str, dict[str, set[int]]] = {}
    for output in outputs:
        for line in output.splitlines():
            tenant, event_id, seq = json.loads(line)
            acked.setdefault(tenant, {}).setdefault(event_id, set()).add(seq)
    return acked


@pytest.mark.slow
def test_four_processes_appending_at_once_keep_every_log_gap_free_and_verifiable(
    url: str, tmp_path: Path
) -> None:
    start = time.time() + 3  # after every process has opened its log
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, str(tmp_path / "keys"), str(n), str(start), "12"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        outputs.append(out)
    acked = _acknowledged(outputs)
    with AuditLog.open(url, key_dir=tmp_path / "keys") as log:
        for tenant in ("acme", "beta"):
            ids = acked[tenant]
            assert all(len(seqs) == 1 for seqs in ids.values()), "an id was given two seqs"
            stored = _stored_ids(log.store, tenant)
            assert _leaf_seqs(log.store, tenant) == list(range(len(ids)))
            assert log.tree_size(tenant) == len(ids) == 4 * 6 * 20 + 6
            assert {i: next(iter(s)) for i, s in ids.items()} == stored
            report = log.verify(tenant)
            assert report.intact, report
            assert report.signed_size == len(ids)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(base: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not come up")


def _send_batches(base: str, secret: str, server: int, acked: list[tuple[str, int]]) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as client:
        for batch in range(8):
            events = [
                {
                    "id": f"s{server}-b{batch}-{i}",
                    "category": "system",
                    "action": "load.test",
                    "actor": {"type": "service", "id": f"sender-{server}"},
                }
                for i in range(25)
            ]
            events.append({**events[0], "id": f"shared-{batch}"})
            response = client.post("/v1/events", json={"events": events})
            assert response.status_code == 201, response.text
            acked.extend((e["id"], e["seq"]) for e in response.json()["events"])


@pytest.mark.slow
def test_four_servers_behind_one_database_keep_the_log_gap_free_and_verify_passes(
    url: str, tmp_path: Path
) -> None:
    environment = {**os.environ, "TRAILKEEPER_KEY_DIR": str(tmp_path / "keys"), "TRAILKEEPER_DB": url}
    with AuditLog.open(url, key_dir=tmp_path / "keys") as log:
        _, secret = log.create_key("acme", ["events:write"])
    trailkeeper = str(Path(sys.executable).with_name("trailkeeper"))
    ports = [_free_port() for _ in range(4)]
    servers = [
        subprocess.Popen(
            [trailkeeper, "serve", "--port", str(port)],
            env=environment,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    acked: list[tuple[str, int]] = []
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base, server in zip(bases, servers, strict=True):
            _wait_until_up(base, server)
        senders = [
            threading.Thread(target=_send_batches, args=(base, secret, n, acked))
            for n, base in enumerate(bases)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.communicate(timeout=60)
    assert all(server.returncode == 0 for server in servers)
    assert len(acked) == 4 * 8 * 26
    verify = subprocess.run(
        [trailkeeper, "verify", "--tenant", "acme"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    with AuditLog.open(url, key_dir=tmp_path / "keys") as log:
        stored = _stored_ids(log.store, "acme")
        # The servers record their own start, stop and key creation in the same log.
        assert _leaf_seqs(log.store, "acme") == list(range(log.tree_size("acme")))
        assert all(stored[event_id] == seq for event_id, seq in acked)
        assert len({event_id for event_id, _ in acked}) == 4 * 8 * 25 + 8


@contextmanager
def _store(url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(url)
    try:
        yield store
    finally:
        store.close()


def test_an_edge_remembered_by_one_server_is_not_trusted_after_another_appended(url: str) -> None:
    with _store(url) as first, _store(url) as second:
        for store, count in ((first, 300), (second, 300), (first, 10), (second, 1), (first, 257)):
            store.append([AppendRequest("acme", prepare_batch("acme", [LOGIN] * count))])
        leaves = [leaf.leaf_hash for leaf in first.leaves("acme")]
        size = first.tree_size("acme")
        assert size == len(leaves) == 868
        stored_root = tiles.TileReader(lambda level, index: second.tile("acme", level, index), size).root()
        assert stored_root == merkle.root_hash(leaves)


def test_a_checkpoint_smaller_than_one_stored_is_not_stored(url: str) -> None:
    # Servers sign on their own; the store keeps a tenant's checkpoints in the order of size.
    with _store(url) as store:
        for size in (10, 5, 12, 12):
            store.add_checkpoint(StoredCheckpoint("acme", size, bytes(32), f"note {size}", "t"))
        assert [c.tree_size for c in store.checkpoints("acme")] == [10, 12]


def test_the_first_server_to_record_a_verifier_key_wins(url: str) -> None:
    with _store(url) as first, _store(url) as second:
        assert first.set_verifier_key("acme", "key-a") == "key-a"
        assert second.set_verifier_key("acme", "key-b") == "key-a"
        assert second.verifier_key("acme") == "key-a"


# -- migrations ---------------------------------------------------------------------------------
_MIGRATE = """
import sys, time
from trailkeeper.store.postgres import migrate
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(migrate(sys.argv[1]))
"""


def test_two_servers_migrating_at_once_both_succeed_and_apply_each_version_once() -> None:
    require_postgres()
    with temporary_database() as fresh:
        start = time.time() + 1.5
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", _MIGRATE, fresh, str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [run.communicate(timeout=60) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], results
        assert [out.strip() for out, _ in results] == [str(pg_store.LATEST)] * 2
        with psycopg.connect(fresh) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == [version for version, _ in pg_store.MIGRATIONS]


def test_a_database_of_version_4_gets_the_search_rows_of_its_records_on_upgrade(tmp_path: Path) -> None:
    require_postgres()
    with temporary_database() as old:
        with AuditLog.open(old, key_dir=tmp_path / "keys") as log:
            deal = {"type": "deal", "id": "deal-7"}
            log.record_many(
                "acme",
                [{**LOGIN, "description": "quarterly renewal"}, {**LOGIN, "id": "e2", "targets": [deal]}],
            )
            log.record_many("beta", [{**LOGIN, "occurred_at": "2001-02-03T04:05:06Z"}])
        # Back to version 4: no search rows, and the value and text indexes on the events.
        version_4 = [
            statement
            for version, steps in pg_store.MIGRATIONS
            if version == 1
            for statement in steps
            if isinstance(statement, str)
            and statement.startswith(("CREATE INDEX events_", "CREATE INDEX event_"))
        ]
        with psycopg.connect(old, autocommit=True) as conn:
            conn.execute("DROP TABLE search_rows, search_targets, index_marks")
            conn.execute("ALTER TABLE events RENAME COLUMN words TO tsv")
            conn.execute("ALTER TABLE events ALTER COLUMN tsv TYPE tsvector USING tsv::tsvector")
            for statement in version_4:
                conn.execute(statement.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
            conn.execute("DELETE FROM schema_version WHERE version >= 5")
        assert migrate(old) == pg_store.LATEST
        with AuditLog.open(old, key_dir=tmp_path / "keys") as log:
            log.store.indexer.pause()  # type: ignore[attr-defined]
            # Copied by the upgrade itself: searches read them through the search rows.
            assert [log.store.indexed_below(t) for t in ("acme", "beta")] == [2, 1]  # type: ignore[attr-defined]
            assert [r["seq"] for r in log.search("acme", "renewal").events] == [0]
            assert [r["seq"] for r in log.search("beta", "actor:u1").events] == [0]
            assert [r["seq"] for r in log.search("acme", "target:deal-7").events] == [1]
            assert log.verify("acme").intact
            assert log.stats("acme", "renewal", group_by="actor")["counts"] == [{"key": "u1", "count": 1}]
        # The month that has a partition of events has one of search rows and targets too.
        events = _tables_like(old, "events%")
        assert _tables_like(old, "search_rows%") == {n.replace("events", "search_rows") for n in events}
        assert _tables_like(old, "search_targets%") == {n.replace("events", "search_targets") for n in events}


def _tables_like(url: str, pattern: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (pattern,)).fetchall()
    return {name for (name,) in rows}


def test_a_copy_of_search_rows_waits_while_partitions_are_being_made(log: AuditLog, url: str) -> None:
    # Making a month's partitions locks events, then search_rows; a copy reads the one into
    # the other. Were the copy not to wait for the partition lock, the two would deadlock.
    log.record_many("acme", [LOGIN] * 3)
    log.store.indexer.pause()  # type: ignore[attr-defined]
    copied = threading.Event()

    def copy() -> None:
        with psycopg.connect(url) as conn:
            pg_store.index_pass(conn)
        copied.set()

    with psycopg.connect(url) as ddl:
        ddl.execute("SELECT pg_advisory_xact_lock(%s, %s)", (pg_store.LOCK_CLASS, pg_store.PARTITION_LOCK))
        thread = threading.Thread(target=copy)
        thread.start()
        assert not copied.wait(1.0), "the copy did not wait for the partition lock"
        ddl.rollback()
    thread.join(30)
    assert copied.is_set()
    assert log.store.indexed_below("acme") == 3  # type: ignore[attr-defined]


def test_search_rows_emptied_by_hand_are_copied_again_and_found_meanwhile(log: AuditLog, url: str) -> None:
    log.record_many(
        "acme", [{**LOGIN, "description": "renewal call"}, {**LOGIN, "actor": {"type": "user", "id": "u2"}}]
    )
    log.store.indexer.catch_up()  # type: ignore[attr-defined]
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM search_rows")
        conn.execute("DELETE FROM index_marks")
    log.store.indexer.pause()  # type: ignore[attr-defined]
    # Every record is past the mark now: read from the events table.
    assert [r["seq"] for r in log.search("acme", "renewal").events] == [0]
    assert log.store.indexed_below("acme") == 0  # type: ignore[attr-defined]
    assert log.store.indexer.catch_up() == 2  # type: ignore[attr-defined]
    assert [r["seq"] for r in log.search("acme", "actor:u2").events] == [1]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM search_rows").fetchone() == (2,)


# -- query plans on a large table ---------------------------------------------------------------
BIG_ROWS = 200_000
BIG_MONTH = (2020, 1)
BIG_PARTITIONS = {pg_store.partition_name(table, BIG_MONTH) for table in pg_store.PARTITIONED}
# The large tables a plan must not read whole: the month's partitions, and the leaves, through
# which the records past the index mark are found by seq.
BIG_TABLES = BIG_PARTITIONS | {"leaves"}

_BIG_EVENTS = """
INSERT INTO {partition} (tenant, seq, occurred_us, leaf_hash, body, category, action, outcome,
                         actor_type, actor_id, integration, workflow_run, ip, words)
SELECT 'big', i, %(start)s::bigint + i * %(step)s::bigint, sha256(int8send(i)), convert_to('{{}}', 'UTF8'),
       (ARRAY['authentication', 'user_activity', 'integration', 'workflow', 'system'])[1 + i %% 5],
       'svc' || (i %% 50) || '.op' || (i %% 7),
       CASE WHEN i %% 25 = 0 THEN 'failure' ELSE 'success' END,
       (ARRAY['user', 'agent', 'integration', 'service', 'system'])[1 + i %% 5],
       'user-' || (i %% 2000),
       CASE WHEN i %% 3 = 0 THEN 'provider' || (i %% 20) END,
       CASE WHEN i %% 3 = 1 THEN 'run-' || (i / 10) END,
       '10.' || (i %% 200) || '.' || (i %% 97) || '.1',
       to_tsvector('simple', 'alpha w' || (i %% 1000) || ' beta')::text
FROM generate_series(0, %(last)s) AS i
"""
_BIG_TARGETS = """
INSERT INTO {partition} (tenant, seq, occurred_us, type, id)
SELECT 'big', i, %(start)s::bigint + i * %(step)s::bigint, 'deal', 'deal-' || (i %% 5000)
FROM generate_series(0, %(last)s, 4) AS i
"""
# Every record indexed, as the indexer leaves them.
_BIG_SEARCH = f"""
INSERT INTO {{partition}} ({pg_store.SEARCH_ROW_COLUMNS})
SELECT {pg_store.SEARCH_ROW_VALUES} FROM {pg_store.partition_name("events", BIG_MONTH)} e
"""
_BIG_SEARCH_TARGETS = f"""
INSERT INTO {{partition}} ({pg_store.TARGET_COLUMNS})
SELECT {pg_store.TARGET_COLUMNS} FROM {pg_store.partition_name("event_targets", BIG_MONTH)}
"""
_BIG_LEAVES = """
INSERT INTO leaves (tenant, seq, id, occurred_us, leaf_hash)
SELECT 'big', i, 'event-' || i, %(start)s::bigint + i * %(step)s::bigint, sha256(int8send(i))
FROM generate_series(0, %(last)s) AS i
"""


@pytest.fixture(scope="module")
def big_database() -> Iterator[str]:
    """200,000 rows of one tenant in one month's partition, made the quick way: filled as a
    plain table and then attached, so that PostgreSQL builds each index once, sorted; their
    search rows copied, and the tenant's index mark past them."""
    require_postgres()
    start = pg_store.month_start_us(BIG_MONTH)
    end = pg_store.month_start_us(pg_store.next_month(BIG_MONTH))
    params = {"start": start, "step": (end - start) // BIG_ROWS, "last": BIG_ROWS - 1}
    with temporary_database() as big:
        migrate(big)
        with psycopg.connect(big, autocommit=True) as conn:
            for table, fill in (
                ("events", _BIG_EVENTS),
                ("event_targets", _BIG_TARGETS),
                ("search_rows", _BIG_SEARCH),
                ("search_targets", _BIG_SEARCH_TARGETS),
            ):
                partition = pg_store.partition_name(table, BIG_MONTH)
                conn.execute(f"CREATE UNLOGGED TABLE {partition} (LIKE {table} INCLUDING DEFAULTS)")
                conn.execute(fill.format(partition=partition), params)
                conn.execute(
                    f"ALTER TABLE {table} ATTACH PARTITION {partition} FOR VALUES FROM ({start}) TO ({end})"
                )
            conn.execute(_BIG_LEAVES, params)
            conn.execute("INSERT INTO index_marks (tenant, indexed_below) VALUES ('big', %s)", (BIG_ROWS,))
            conn.execute("ANALYZE")
        yield big


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


@dataclass(frozen=True)
class _Reads:
    """How a plan reads the large partitions: scan kinds, and the conditions of its indexes."""

    scans: set[str]
    index_conditions: str


def _plan(
    conn: psycopg.Connection[Any], sql: str, params: list[Any], *, analyze: bool = False
) -> list[dict[str, Any]]:
    """Every node of the statement's plan; with ``analyze``, run, with what each node did."""
    row = conn.execute(f"EXPLAIN ({'ANALYZE, ' if analyze else ''}FORMAT JSON) {sql}", params).fetchone()
    assert row is not None
    return list(_plan_nodes(row[0][0]["Plan"]))


def _reads_of_big_partitions(conn: psycopg.Connection[Any], sql: str, params: list[Any]) -> _Reads:
    nodes = _plan(conn, sql, params)
    on_big = [node for node in nodes if node.get("Relation Name") in BIG_TABLES]
    # A bitmap index scan names its index, not its table; partition indexes start with the
    # partition's name.
    big_indexes = [
        node
        for node in nodes
        if any(str(node.get("Index Name", "")).startswith(name + "_") for name in BIG_TABLES)
    ]
    return _Reads(
        {node["Node Type"] for node in on_big}, " ".join(str(n.get("Index Cond")) for n in big_indexes)
    )


INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "order", "indexed"),
    [
        ("actor:user-42", "desc", "actor_id ="),
        ("action:svc7.op0", "desc", "action ="),
        # A prefix matching many actions is read in time order from the primary key.
        ("action:svc7.*", "desc", "tenant ="),
        ("workflow_run:run-1234", "desc", "workflow_run ="),
        ("ip:10.42.13.1", "desc", "ip ="),
        ("target:deal-42", "desc", "id ="),
        # Filters that a fifth or a quarter of the records match: read in time order, each
        # row's body looked up, until the page is full.
        ("category:authentication", "desc", "tenant ="),
        ("target_type:deal", "desc", "tenant ="),
        ("-target_type:deal", "desc", "tenant ="),
        ("after:2020-01-05 before:2020-01-06", "desc", "occurred_us >="),
        ("after:2020-01-05 before:2020-01-06", "asc", "occurred_us >="),
        ("w42", "desc", "tsv @@"),
        ('"alpha w42"', "asc", "tsv @@"),
        ("outcome:failure", "desc", "outcome ="),
        ("integration:provider3 actor:user-3", "desc", "_id ="),
    ],
)
@pytest.mark.parametrize("unindexed", [0, 2_000], ids=["all-indexed", "2000-unindexed"])
def test_main_filters_read_the_large_partition_through_their_index(
    big_database: str, query: str, order: str, indexed: str, unindexed: int
) -> None:
    page = PageQuery("big", parse_query(query), order, 101, None, BIG_ROWS)
    with psycopg.connect(big_database) as conn:
        # The indexed records through their search rows, and the newer ones by seq, in the
        # one statement a page runs: neither part scans the partitions.
        reads = _reads_of_big_partitions(conn, *page_statement(page, BIG_ROWS - unindexed))
    assert reads.scans, "the plan does not read the large partition"
    assert reads.scans <= INDEX_SCANS, reads
    assert indexed in reads.index_conditions


def _records_looked_up(conn: psycopg.Connection[Any], sql: str, params: list[Any]) -> int:
    """How many times running the statement looks a record's row up in the large month."""
    events = pg_store.partition_name("events", BIG_MONTH)
    lookups = [node for node in _plan(conn, sql, params, analyze=True) if node.get("Relation Name") == events]
    assert lookups
    return sum(int(node["Actual Loops"]) for node in lookups)


@pytest.mark.slow
@pytest.mark.parametrize("query", ["ip:10.42.*", "w42", "target:deal-42", "actor:user-4*"])
def test_a_page_looks_up_only_the_records_it_returns(big_database: str, query: str) -> None:
    # Filters whose matches (a thousand for the prefixes) are found and sorted: their search
    # rows are cut at the limit before any record's row is read, not each looked up first.
    page = PageQuery("big", parse_query(query), "desc", 101, None, BIG_ROWS)
    with psycopg.connect(big_database) as conn:
        assert _records_looked_up(conn, *page_statement(page, BIG_ROWS)) <= 101


@pytest.mark.slow
@pytest.mark.parametrize(
    "query", ["after:2020-01-05 before:2020-01-06 actor:user-42", "before:2020-01-06 w42"]
)
def test_a_page_bounded_in_time_skips_the_records_past_the_mark_outside_its_bounds(
    big_database: str, query: str
) -> None:
    # The 2,000 records past the mark are the month's last: their leaves' times rule them
    # out before their rows are looked up.
    page = PageQuery("big", parse_query(query), "desc", 101, None, BIG_ROWS)
    with psycopg.connect(big_database) as conn:
        assert _records_looked_up(conn, *page_statement(page, BIG_ROWS - 2_000)) <= 101


@pytest.mark.slow
@pytest.mark.parametrize("query", ["target:deal-42", "w42", "actor:user-42"])
def test_a_count_finds_the_records_past_the_mark_by_seq(big_database: str, query: str) -> None:
    # Under load a few records are always past the mark: a count must find them through
    # the leaves' key, not by reading every leaf of the tenant's log.
    with psycopg.connect(big_database) as conn:
        nodes = _plan(conn, *count_statement(parse_query(query), "big", "action", BIG_ROWS - 2_000))
    on_leaves = [node for node in nodes if node.get("Relation Name") == "leaves"]
    assert on_leaves
    assert {node["Node Type"] for node in on_leaves} <= INDEX_SCANS, on_leaves


@pytest.mark.slow
def test_a_record_is_read_by_id_and_by_seq_through_indexes(big_database: str) -> None:
    with psycopg.connect(big_database) as conn:
        for sql, params in (
            (RECORD_BY_LEAF + "l.id = %s", ["big", "event-123456"]),
            (RECORD_BY_LEAF + "l.seq = %s", ["big", 123456]),
            (RECORDS_SINCE_SEQ, ["big", 150000, 100]),
        ):
            assert _reads_of_big_partitions(conn, sql, params).scans <= INDEX_SCANS


# -- retention ------------------------------------------------------------------------------------
def _month_back(months: int) -> tuple[int, int]:
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 - months
    return (index // 12, index % 12 + 1)


def _in_month(months: int, day: int = 10) -> str:
    year, month = _month_back(months)
    return f"{year:04d}-{month:02d}-{day:02d}T12:00:00Z"


def _proof_hashes(proof: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(h) for h in proof["hashes"]]


def _partition_of(url: str, tenant: str, seq: int) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT tableoid::regclass::text FROM events WHERE tenant = %s AND seq = %s", (tenant, seq)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_purge_drops_bodies_and_keeps_leaves_so_earlier_proofs_still_verify(log: AuditLog, url: str) -> None:
    old = log.record_many("acme", [{**LOGIN, "occurred_at": _in_month(3), "description": "old secret"}] * 5)
    log.record_many("acme", [{**LOGIN, "occurred_at": _in_month(1)}] * 5)
    log.checkpoint("acme")
    root = log.root_hash("acme", 10)
    log.store.indexer.catch_up()  # type: ignore[attr-defined]

    cutoff = pg_store.month_start_us(_month_back(2))
    assert log.store.purge("acme", cutoff) == 5
    assert log.store.purged_before("acme") == cutoff
    # Their search rows, words included, went with them.
    with psycopg.connect(url) as conn:
        kept = conn.execute("SELECT seq FROM search_rows WHERE tenant = 'acme' ORDER BY seq").fetchall()
    assert [seq for (seq,) in kept] == list(range(5, 10))

    assert log.get("acme", old[0]["id"]) is None
    assert [r["seq"] for r in log.search("acme", order="asc").events] == list(range(5, 10))
    assert log.search("acme", '"old secret"').events == []
    assert [leaf.body is None for leaf in log.store.leaves("acme")] == [True] * 5 + [False] * 5
    proof = log.inclusion_proof("acme", 2, 10)
    merkle.verify_inclusion(bytes.fromhex(old[2]["leaf_hash"]), 2, 10, _proof_hashes(proof), root)
    assert log.verify("acme").intact
    # A late event from before the purge mark is kept, but search stops at the mark.
    late = log.record("acme", **LOGIN, occurred_at=_in_month(3))
    assert log.get("acme", late["id"]) == late
    assert late["id"] not in {r["id"] for r in log.search("acme").events}


def test_dropping_an_old_month_keeps_the_tree_and_late_events_of_it_still_land(
    log: AuditLog, url: str
) -> None:
    old = log.record_many("beta", [{**LOGIN, "occurred_at": _in_month(3)}] * 4)
    log.record_many("beta", [{**LOGIN, "occurred_at": _in_month(1)}] * 3)
    log.checkpoint("beta")
    earlier_root = log.root_hash("beta", 7)

    assert isinstance(log.store, PostgresStore)
    dropped = log.store.drop_partitions_before(pg_store.month_start_us(_month_back(2)))

    assert pg_store.partition_name("events", _month_back(3)) in dropped
    assert pg_store.partition_name("events", _month_back(1)) not in dropped
    late = log.record("beta", **LOGIN, occurred_at=_in_month(3, day=20))
    with _store(url) as other_server:
        # It finds the month without a partition and rows of it in the default partition.
        other_server.append(
            [AppendRequest("beta", prepare_batch("beta", [{**LOGIN, "occurred_at": _in_month(3)}]))]
        )
    assert log.get("beta", late["id"]) == late
    assert _partition_of(url, "beta", 8) == _partition_of(url, "beta", 7) == "events_default"
    # Oldest first: the two late ones happened before the three that were kept.
    assert [r["seq"] for r in log.search("beta", order="asc").events] == [8, 7, 4, 5, 6]
    assert [leaf.body is None for leaf in log.store.leaves("beta")] == [True] * 4 + [False] * 5
    root = log.root_hash("beta", 9)
    merkle.verify_inclusion(
        bytes.fromhex(old[1]["leaf_hash"]), 1, 9, _proof_hashes(log.inclusion_proof("beta", 1, 9)), root
    )
    consistency = _proof_hashes(log.consistency_proof("beta", 7, 9))
    merkle.verify_consistency(7, 9, consistency, earlier_root, root)
    assert log.verify("beta").intact


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_pages_are_the_same_whatever_part_of_the_log_is_copied(log: AuditLog, url: str, order: str) -> None:
    """A page reads the records below the mark through their search rows and those past it
    by seq, each side cut by the query's time bounds and the cursor: walked in small pages
    with the mark in the middle of the log, and again once every record is copied, every
    search finds the same records in the same order (times out of order, many equal)."""
    log.store.indexer.pause()  # type: ignore[attr-defined]
    rng = random.Random(7)
    log.record_many(
        "acme",
        [
            {
                **LOGIN,
                "occurred_at": _in_month(rng.randrange(3), day=1 + rng.randrange(4)),
                "actor": {"type": "user", "id": f"u{rng.randrange(3)}"},
                "description": rng.choice(["renewal", "risk", "renewal risk"]),
            }
            for _ in range(60)
        ],
    )
    queries = [
        "",
        "actor:u1",
        "renewal",
        f"after:{_in_month(1, day=2)}",
        f"actor:u2 before:{_in_month(0, day=3)}",
    ]

    def walk(query: str) -> list[int]:
        return [
            record["seq"] for record in log.iter_search("acme", log.filter(query), order=order, page_size=7)
        ]

    with psycopg.connect(url) as conn:
        pg_store.index_pass(conn, rows=25)
    assert log.store.indexed_below("acme") == 25  # type: ignore[attr-defined]
    halfway = {query: walk(query) for query in queries}
    log.store.indexer.catch_up()  # type: ignore[attr-defined]
    assert {query: walk(query) for query in queries} == halfway
    assert len(halfway[""]) == 60
    assert all(halfway[query] for query in queries)


def test_an_append_whose_rows_fail_midway_leaves_nothing(log: AuditLog, url: str) -> None:
    """The records' rows are sent while they are made: a row the server refuses halfway
    through a batch (here one planted by hand where the batch's 450th record goes) rolls the
    whole batch back, and the next batch takes the seqs it would have had."""
    log.record("acme", **LOGIN)
    when = _in_month(0, day=1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (tenant, seq, occurred_us, leaf_hash, body, category, action, outcome, "
            "actor_type, actor_id) VALUES ('acme', 450, %s, '', '', 'system', 'a.b', 'success', 'user', 'u')",
            (time_us(when),),
        )
    events = [{**LOGIN, "occurred_at": when, "actor": {"type": "user", "id": f"u{i}"}} for i in range(500)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        log.record_many("acme", events)
    assert log.store.tree_size("acme") == 1
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM leaves WHERE tenant = 'acme'").fetchone() == (1,)
        conn.execute("DELETE FROM events WHERE tenant = 'acme' AND seq = 450")
    records = log.record_many("acme", events[:3])
    assert [r["seq"] for r in records] == [1, 2, 3]
    log.store.indexer.catch_up()  # type: ignore[attr-defined]
    found = log.search("acme", "actor:u*", order="asc").events
    assert [r["actor"]["id"] for r in found] == ["u0", "u1", "u2", "u1"]  # by time: the first is now
    assert log.verify("acme").intact


def test_a_record_row_deleted_by_hand_is_missing_though_its_leaf_remains(log: AuditLog, url: str) -> None:
    """Retention removes a record's row only before its mark, or with the month it dropped:
    any other row gone is a record removed, though its leaf still fits the tree."""
    log.record_many("acme", [{**LOGIN, "occurred_at": _in_month(1, day=day)} for day in range(1, 9)])
    assert log.verify("acme").intact
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM events WHERE tenant = 'acme' AND seq = 5")
    report = log.verify("acme")
    assert (report.intact, report.problem, report.first_bad_seq) == (False, Problem.MISSING_RECORD, 5)
    assert log.store.purge("acme", pg_store.month_start_us(_month_back(0))) == 7
    assert log.verify("acme").intact  # the purge covers it now


def test_a_search_walks_past_a_record_row_deleted_by_hand(log: AuditLog, url: str) -> None:
    """A page looks up the records of the search rows it keeps: one whose row is gone is
    skipped, and the page still holds as many records as a full page does, so the walk
    goes on to the next."""
    log.record_many("acme", [{**LOGIN, "description": f"visit {n}"} for n in range(9)])
    log.store.indexer.catch_up()  # type: ignore[attr-defined]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM events WHERE tenant = 'acme' AND seq = 6")
    for query in ("actor:u1", "visit"):
        seqs = [record["seq"] for record in log.iter_search("acme", log.filter(query), page_size=3)]
        assert seqs == [8, 7, 5, 4, 3, 2, 1, 0]


def test_a_target_row_changed_by_hand_is_a_changed_record(log: AuditLog, url: str) -> None:
    deal = {**LOGIN, "targets": [{"type": "deal", "id": "deal-1"}]}
    log.record_many("acme", [deal] * 4)
    assert log.verify("acme").intact
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE event_targets SET id = 'deal-9' WHERE tenant = 'acme' AND seq = 2")
    report = log.verify("acme")
    assert (report.intact, report.problem, report.first_bad_seq) == (False, Problem.CHANGED_RECORD, 2)


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ("UPDATE search_rows SET actor_id = 'u9' WHERE seq = 2", "column actor_id of record 2 is 'u1'"),
        ("DELETE FROM search_rows WHERE seq = 2", "record 2 is missing from the search rows"),
        (
            "UPDATE search_rows SET tsv = to_tsvector('simple', 'planted') WHERE seq = 2",
            "the words of record 2",
        ),
        ("UPDATE search_targets SET id = 'deal-9' WHERE seq = 2", "the targets of record 2 differ"),
        ("DELETE FROM search_targets WHERE seq = 2", "the targets of record 2 differ"),
    ],
)
def test_a_search_row_changed_by_hand_is_a_changed_record(
    log: AuditLog, url: str, change: str, found: str
) -> None:
    # What searches read below the index mark is checked against the records too: a changed
    # copy would hide a record from a search, or show it to one it does not match.
    deal = {"type": "deal", "id": "deal-1"}
    log.record_many("acme", [{**LOGIN, "description": f"call {n}", "targets": [deal]} for n in range(4)])
    log.store.indexer.catch_up()  # type: ignore[attr-defined]
    assert log.verify("acme").intact
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(change)
    report = log.verify("acme")
    assert (report.intact, report.problem, report.first_bad_seq) == (False, Problem.CHANGED_RECORD, 2)
    assert found in (report.message or "")


def test_a_purged_log_with_its_search_rows_verifies(log: AuditLog) -> None:
    log.record_many("acme", [{**LOGIN, "occurred_at": _in_month(3)}] * 3 + [LOGIN] * 3)
    log.checkpoint("acme")
    log.store.indexer.catch_up()  # type: ignore[attr-defined]
    log.store.purge("acme", pg_store.month_start_us(_month_back(2)))
    assert log.verify("acme").intact


def test_events_far_from_now_go_to_the_default_partition_and_are_found(log: AuditLog, url: str) -> None:
    record = log.record("acme", **LOGIN, occurred_at="2001-02-03T04:05:06Z")
    assert _partition_of(url, "acme", record["seq"]) == "events_default"
    assert log.search("acme", "before:2002-01-01").events == [record]


# -- how values are held --------------------------------------------------------------------------
@settings(max_examples=300)
@given(
    st.text(alphabet=st.sampled_from("\x00\x01\x02ab\u00e9"), max_size=8),
    st.text(alphabet=st.sampled_from("\x00\x01\x02ab\u00e9"), max_size=8),
)
def test_escaped_text_keeps_order_and_comes_back_unchanged(a: str, b: str) -> None:
    held_a, held_b = pg_store.column_text(a), pg_store.column_text(b)
    assert "\x00" not in held_a
    assert pg_store.text_from_column(held_a) == a
    assert (held_a < held_b) == (a < b)
    assert held_a.startswith(held_b) == a.startswith(b)


def _read_back(conn: psycopg.Connection[Any], text: str) -> dict[str, list[int]]:
    """The tsvector PostgreSQL reads from a record's words: lexeme -> positions."""
    words = pg_store.tsvector_text(text)
    if words is None:
        return {}
    rows = conn.execute("SELECT lexeme, positions FROM unnest(%s::tsvector)", (words.decode(),)).fetchall()
    return {lexeme: list(positions) for lexeme, positions in rows}


def _expected_places(text: str) -> dict[str, list[int]]:
    expected: dict[str, list[int]] = {}
    for position, word in enumerate(pg_store.words(text), start=1):
        if len(word.encode()) >= 2048:
            continue
        places = expected.setdefault(word, [])
        if len(places) < 256 and (not places or places[-1] < 16383):
            places.append(min(position, 16383))
    return expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["deal", "Déal", "risk", "x", "état", "ß", "日本", "1e5", "a1b2"]),
            st.text(alphabet=st.sampled_from("ab\u00e9 .-:'\\"), max_size=12),
            st.just("w" * 600),  # longer than a lexeme may be once more than 511 characters
            st.just("é" * 1100),  # 2,200 bytes: refused
        ),
        max_size=40,
    )
)
def test_a_tsvector_holds_each_word_once_with_its_places(database: str, parts: list[str]) -> None:
    with psycopg.connect(database) as conn:
        text = " ".join(parts)
        assert _read_back(conn, text) == _expected_places(text)


def test_a_tsvector_keeps_256_places_of_a_word_and_none_past_16383(database: str) -> None:
    text = "spam " * 300 + "filler " * 16_100 + "last"
    with psycopg.connect(database) as conn:
        assert _read_back(conn, text) == _expected_places(text)


def test_control_characters_in_searchable_fields_are_stored_exactly(log: AuditLog) -> None:
    actor = {"type": "user", "id": "a\x00b\x01c"}
    record = log.record(
        "acme",
        **{**LOGIN, "actor": actor},
        workflow={"run_id": "run\x00"},
        targets=[{"type": "doc", "id": "d\x00"}],
    )
    assert log.get("acme", record["id"]) == record
    counts = log.stats("acme", group_by="actor")["counts"]
    assert counts == [{"key": "a\x00b\x01c", "count": 1}]
    assert log.verify("acme").intact


TEXTS = [
    "Café owner logged in",
    "user@example.com reset a password",
    "a naïve x_y approach",
    "Straße 42 closed",
    # A word too long to index (2,100 bytes) is skipped; the rest of the text is not.
    "中" * 700 + " findme",
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cafe", ["t0"]),
        ('"CAFÉ OWNER"', ["t0"]),
        ('"logged in"', ["t0"]),
        ('"in logged"', []),
        ("example", ["t1"]),
        ('"example com"', ["t1"]),
        ("naive", ["t2"]),
        ('"x y"', ["t2"]),
        ("42 closed", ["t3"]),
        ("straße", ["t3"]),
        ("strasse", []),
        ("spam", ["spam"]),
        ("findme", ["t4"]),
        ("alpha", ["meta"]),
        ("120", ["meta"]),
        ('"!!!"', []),
    ],
)
def test_text_search_matches_what_the_sqlite_store_matches(
    url: str, tmp_path: Path, query: str, expected: list[str]
) -> None:
    events = [{**LOGIN, "id": f"t{n}", "description": text} for n, text in enumerate(TEXTS)]
    events.append({**LOGIN, "id": "meta", "metadata": {"records": 120, "deep": {"list": ["Alpha", "beta"]}}})
    # More places of one word than a tsvector keeps (256).
    events.append({**LOGIN, "id": "spam", "metadata": {"text": "spam " * 300}})
    found = []
    for store_url in (url, f"sqlite:///{tmp_path}/audit.db"):
        with AuditLog.open(store_url, key_dir=tmp_path / "keys") as log:
            log.record_many("acme", events)
            found.append(sorted(r["id"] for r in log.search("acme", query).events))
    assert found == [expected, expected]
