"""Benchmarks: ``python -m bench ingest|search|proofs|verify|console|http|pg|pg-load|all [--events N]``.

Each prints its figure and, where the issue asks for one, a ratio against a floor measured in
the same run on the same machine: for ingest, the very rows the log stored, inserted raw (no
validation, no hashing, no tree) into a fresh copy of the same schema, with the same batch
size and the same durable commits.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from bench.events import generate
from trailkeeper import AuditLog
from trailkeeper.store.search_index import connect_index, index_path
from trailkeeper.store.sqlite import SQLiteStore

BATCH = 1000


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def ingest(workdir: Path, events: int, producers: int, queued: int = 0) -> tuple[Path, dict[str, float]]:
    print(f"generating {events:,} events ...", flush=True)
    batches = [generate(start, min(BATCH, events - start)) for start in range(0, events, BATCH)]
    # The million input events are the harness's, not the log's: kept out of the cyclic
    # collector's reach, they no longer make each of its full passes walk millions of
    # objects that a producer sending its events over the network would not hold.
    gc.freeze()
    db = workdir / "bench.db"
    log = AuditLog.open(f"sqlite:///{db}", key_dir=workdir / "keys")
    index = log.store.search_index  # type: ignore[attr-defined]
    passes: list[int] = []
    pass_rows = index._pass

    def counted_pass() -> int:
        done = pass_rows()
        if done:
            passes.append(done)
        return done

    index._pass = counted_pass
    started = time.perf_counter()

    # Each producer appends its share of the batches in order, each call waiting for its
    # commit; with several producers the writer commits their batches together. With
    # ``queued``, a producer keeps that many batches queued (record_later) instead.
    def produce(mine: list[list[dict[str, Any]]]) -> None:
        waiting: deque[Future[Any]] = deque()
        for batch in mine:
            if not queued:
                log.record_many("bench", batch)
                continue
            waiting.append(log.record_later("bench", batch))
            while len(waiting) > queued:
                waiting.popleft().result()
        for future in waiting:
            future.result()

    threads = [threading.Thread(target=produce, args=(batches[i::producers],)) for i in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    # The search index catches up in the background: searches see every record at once, but
    # read the unindexed ones by scanning; the log is fully indexed when its watermark
    # reaches the tree size.
    while log.store.indexed_below("bench") < events:  # type: ignore[attr-defined]
        time.sleep(0.01)
    indexed = time.perf_counter() - started
    commits = log._writer.commits
    log.close()
    rate = events / elapsed
    indexed_rate = events / indexed
    print(
        f"ingest: {events:,} events acknowledged in {elapsed:.1f} s = {rate:,.0f} events/s "
        f"(batches of {BATCH}, {producers} producer(s), {queued} queued, {commits} commits)"
    )
    per_pass = sum(passes) // max(len(passes), 1)
    print(
        f"        all indexed {indexed - elapsed:.1f} s later = {indexed_rate:,.0f} events/s sustained "
        f"({len(passes)} index passes, {per_pass:,} records each on average)"
    )
    # The floor commits as many rows at a time as the log did, on average: the same rows,
    # the same schema, the same durable commits; then the same search index rows, as many
    # per transaction as the log's passes took.
    per_commit = max(BATCH, events // max(commits, 1) // BATCH * BATCH)
    log_floor, index_floor = raw_floor(db, workdir / "floor.db", events, per_commit, max(per_pass, 1))
    # The floor is every row the log stores for these events, inserted raw into the same
    # schema: the records' rows, as many per commit as the log committed, then their search
    # index rows, as many per transaction as its passes took. The first part alone is also
    # printed: it is the share of the floor that the acknowledgement waits for.
    floor = events / (events / log_floor + events / index_floor)
    print(
        f"floor:  every row stored for them inserted raw into the same schema, one table after "
        f"another = {floor:,.0f} events/s (the records' rows, {per_commit:,} per commit, then "
        f"their search index rows, {per_pass:,} per transaction)"
    )
    print(f"        the records' rows alone, what an acknowledgement waits for = {log_floor:,.0f} events/s")
    print(
        f"ratio:  acknowledged {rate / floor:.2f} of the floor, indexed {indexed_rate / floor:.2f}; "
        f"acknowledged {rate / log_floor:.2f} of the records' rows alone"
    )
    return db, {"ingest": rate, "indexed": indexed_rate, "floor": floor, "ratio": rate / floor}


def raw_floor(
    source: Path, target: Path, events: int, per_commit: int = BATCH, per_pass: int = BATCH
) -> tuple[float, float]:
    """Insert the rows the log stored into a fresh copy of the schema, timing only inserts:
    the events into the log's file (the rate returned first), then their search index rows,
    targets and words into the index file (the rate returned second)."""
    # The store itself makes the schema and the connections, so the floor runs with the very
    # settings (WAL, synchronous, cache, checkpoint interval) the log runs with.
    store = SQLiteStore(f"sqlite:///{target}", str(target))
    store.search_index.pause()
    conn = store._writer
    index = connect_index(index_path(str(target)))
    src = sqlite3.connect(source)
    src.execute("ATTACH DATABASE ? AS ix", (index_path(str(source)),))
    columns = [row[1] for row in src.execute("PRAGMA table_info(events)")]
    marks = ", ".join("?" for _ in columns)
    insert = f"INSERT INTO events ({', '.join(columns)}) VALUES ({marks})"
    search_columns = [row[1] for row in src.execute("PRAGMA ix.table_info(search_rows)")]
    insert_search = (
        f"INSERT INTO search_rows ({', '.join(search_columns)}) "
        f"VALUES ({', '.join('?' for _ in search_columns)})"
    )
    log_elapsed = index_elapsed = 0.0
    for start in range(0, events, per_commit):
        rows = src.execute(
            f"SELECT {', '.join(columns)} FROM events "
            "WHERE tenant = 'bench' AND seq >= ? AND seq < ? ORDER BY seq",
            (start, start + per_commit),
        ).fetchall()
        log_elapsed += _timed_transaction(conn, (insert, rows))
    for start in range(0, events, per_pass):
        rows = src.execute(
            f"SELECT {', '.join(search_columns)} FROM ix.search_rows "
            "WHERE tenant = 'bench' AND seq >= ? AND seq < ? ORDER BY seq",
            (start, start + per_pass),
        ).fetchall()
        targets = src.execute(
            "SELECT tenant, id, seq, type FROM ix.event_targets "
            "WHERE tenant = 'bench' AND seq >= ? AND seq < ?",
            (start, start + per_pass),
        ).fetchall()
        texts = src.execute(
            "SELECT row, text FROM events "
            "WHERE tenant = 'bench' AND seq >= ? AND seq < ? AND text IS NOT NULL",
            (start, start + per_pass),
        ).fetchall()
        index_elapsed += _timed_transaction(
            index,
            (insert_search, rows),
            ("INSERT INTO event_targets (tenant, id, seq, type) VALUES (?, ?, ?, ?)", targets),
            ("INSERT INTO events_fts (rowid, text) VALUES (?, ?)", texts),
        )
    index.close()
    store.close()
    src.close()
    return events / log_elapsed, events / index_elapsed


def _timed_transaction(conn: sqlite3.Connection, *inserts: tuple[str, list[Any]]) -> float:
    """Seconds to run the inserts in one transaction, its commit included."""
    begin = time.perf_counter()
    conn.execute("BEGIN")
    for statement, rows in inserts:
        conn.executemany(statement, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - begin


def timed(call: Callable[[], Any], runs: int) -> list[float]:
    call()  # warm the caches once
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        call()
        samples.append((time.perf_counter() - begin) * 1000)
    return samples


def report(name: str, samples: list[float], target_ms: float | None) -> float:
    median = statistics.median(samples)
    p99 = sorted(samples)[int(len(samples) * 0.99) - 1]
    verdict = (
        ""
        if target_ms is None
        else f" ({'meets' if median < target_ms else 'MISSES'} the {target_ms:g} ms target)"
    )
    print(f"{name}: median {median:.2f} ms, p99 {p99:.2f} ms{verdict}")
    return median


def search(db: Path, workdir: Path) -> dict[str, float]:
    log = AuditLog.open(f"sqlite:///{db}", key_dir=workdir / "keys")
    try:
        figures = {
            "search_actor_day": report(
                "search, one actor and one day",
                timed(lambda: log.search("bench", "actor:user-0042 after:2026-10-07 before:2026-10-08"), 200),
                10,
            ),
            "search_text": report(
                "search, a text term (one deal's name)",
                timed(lambda: log.search("bench", "deal01234"), 200),
                10,
            ),
            "search_common_phrase": report(
                "search, a phrase of two common words (a third of all events)",
                timed(lambda: log.search("bench", '"renewal risk"'), 50),
                None,
            ),
            "search_first_page": report(
                "search, first page, no filter", timed(lambda: log.search("bench"), 200), 10
            ),
        }
    finally:
        log.close()
    return figures


def proofs(db: Path, workdir: Path) -> dict[str, float]:
    import random

    log = AuditLog.open(f"sqlite:///{db}", key_dir=workdir / "keys")
    try:
        size = log.tree_size("bench")
        rng = random.Random(1)
        median = report(
            f"inclusion proof at {size:,} leaves",
            timed(lambda: log.inclusion_proof("bench", rng.randrange(size), size), 1000),
            1,
        )
    finally:
        log.close()
    return {"inclusion_proof": median}


def verify(db: Path, workdir: Path) -> dict[str, float]:
    log = AuditLog.open(f"sqlite:///{db}", key_dir=workdir / "keys")
    try:
        begin = time.perf_counter()
        result = log.verify("bench")
        elapsed = time.perf_counter() - begin
    finally:
        log.close()
    rate = result.leaves_checked / elapsed
    print(f"verify: {result.leaves_checked:,} leaves in {elapsed:.1f} s = {rate:,.0f}/s, ok={result.intact}")
    return {"verify": rate}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "what", choices=["ingest", "search", "proofs", "verify", "console", "http", "pg", "pg-load", "all"]
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the database in this directory")
    parser.add_argument("--producers", type=int, default=1, help="threads appending at once")
    parser.add_argument("--queued", type=int, default=0, help="batches a producer keeps queued")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="trailkeeper-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.what == "pg":
            from bench.pg import pg_bench

            pg_bench(args.events, args.producers)
            return
        if args.what == "pg-load":
            from bench.pg import pg_load_bench

            pg_load_bench(args.events)
            return
        if args.what == "http":
            from bench.http import http_ingest

            http_ingest(workdir, min(args.events, 200_000))
            return
        db = workdir / "bench.db"
        if args.what in ("ingest", "all") or not db.exists():
            for stale in workdir.glob("*.db*"):
                stale.unlink() if stale.is_file() else shutil.rmtree(stale)
            db, _ = ingest(workdir, args.events, args.producers, args.queued)
        if args.what in ("search", "all"):
            search(db, workdir)
        if args.what in ("proofs", "all"):
            proofs(db, workdir)
        if args.what in ("console", "all"):
            from bench.console import console

            console(db, workdir)
        if args.what in ("verify", "all"):
            verify(db, workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
