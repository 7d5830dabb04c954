"""PostgreSQL ingest and search: ``python -m bench pg [--events N] [--producers N]``.

The log appends N generated events through ``AuditLog.record_many`` in batches of 1,000 (tree
on); the floor copies the very rows it stored (events, leaves, targets, and their copies for
search) with ``COPY`` into a fresh database with the same schema, in the same batches, in the
same run. Each database is created for the run and dropped after it.
"""

from __future__ import annotations

import gc
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from bench.events import generate
from trailkeeper import AuditLog
from trailkeeper.store import open_store

BATCH = 1000
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Copied in this order, each filtered to one batch of seqs: what an append writes, then what
# the indexer copies after it.
TABLES = ("leaves", "events", "event_targets", "search_rows", "search_targets")


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    name = f"tk_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _batches(events: int) -> list[list[dict[str, Any]]]:
    batches = [generate(start, min(BATCH, events - start), events) for start in range(0, events, BATCH)]
    gc.freeze()  # the harness's input, out of the collector's reach (see bench.__main__.ingest)
    return batches


def _open(url: str) -> AuditLog:
    return AuditLog.open(url, key_dir=f"/tmp/{url.rsplit('/', 1)[1]}-keys")


def _wait_until_indexed(log: AuditLog, events: int) -> None:
    """The search rows are copied in the background: wait until the last one is."""
    while log.store.indexed_below("bench") < events:  # type: ignore[attr-defined]
        time.sleep(0.01)


def pg_bench(events: int, producers: int = 1, admin_url: str = ADMIN_URL) -> dict[str, float]:
    batches = _batches(events)
    with database(admin_url) as source_url, database(admin_url) as floor_url:
        with _open(source_url) as log:
            # Each producer appends its share of the batches in order, each call waiting for
            # its commit; with several, the writer commits their batches together.
            def produce(mine: list[list[dict[str, Any]]]) -> None:
                for batch in mine:
                    log.record_many("bench", batch)

            threads = [
                threading.Thread(target=produce, args=(batches[i::producers],)) for i in range(producers)
            ]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
            rate = events / elapsed
            # Searches read the records past the mark from the events table meanwhile.
            _wait_until_indexed(log, events)
            indexed = events / (time.perf_counter() - began)
            # The planner needs the new partitions' statistics to tell a rare filter from a
            # common one. A server with autovacuum on (the default) gathers them within a
            # minute of such a load; this machine's runs with it off, so gather them here.
            with psycopg.connect(source_url, autocommit=True) as conn:
                conn.execute("ANALYZE")
            medians = {name: _median_ms(log, query) for name, query in SEARCHES.items()}
            # Under load the newest records (those appended since the last copy) are past
            # the index mark, and a search reads those within its time bounds by seq: a
            # batch held back from it, and a search without bounds.
            log.store.indexer.pause()  # type: ignore[attr-defined]
            log.record_many("bench", generate(events, BATCH, events))
            medians[f"one actor, all time, the last {BATCH:,} not yet copied"] = _median_ms(
                log, SEARCHES["one actor, all time"]
            )
        floor = raw_copy(source_url, floor_url, events)
    print(
        f"postgresql ingest: {events:,} events = {rate:,.0f} events/s "
        f"(batches of {BATCH}, {producers} producer(s), tree on)"
    )
    print(f"                   all indexed = {indexed:,.0f} events/s sustained")
    print(f"floor: the same rows COPY'd raw = {floor:,.0f} events/s; ratio {rate / floor:.2f}")
    for name, median in medians.items():
        verdict = "meets" if median < 20 else "MISSES"
        print(f"postgresql search, {name}: median {median:.2f} ms ({verdict} the 20 ms target)")
    return {
        "pg_ingest": rate,
        "pg_indexed": indexed,
        "pg_floor": floor,
        "pg_search_ms": medians["one actor and one day"],
    }


# The searches timed on the million, as `bench search` times them on SQLite, and filters
# that many records match (a category, a target type), which a page reads in time order.
SEARCHES = {
    "one actor and one day": "actor:user-0042 after:2026-10-07 before:2026-10-08",
    "one actor, all time": "actor:user-0042",
    "a text term (one deal's name)": "deal01234",
    "a category (a quarter of all events)": "category:authentication",
    "a target type (a third)": "target_type:deal",
    "first page, no filter": "",
}


def _median_ms(log: AuditLog, query: str) -> float:
    samples = []
    for _ in range(101):
        started = time.perf_counter()
        log.search("bench", query)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[1:])  # the first plans the statement


def raw_copy(source_url: str, target_url: str, events: int) -> float:
    open_store(target_url).close()  # the same schema, made by the store's own migrations
    elapsed = 0.0
    with psycopg.connect(source_url) as source, psycopg.connect(target_url) as target:
        for start in range(0, events, BATCH):
            chunks: list[tuple[str, list[bytes]]] = []
            for table in TABLES:
                data: list[bytes] = []
                # Each table's rows of a batch of seqs, looked up through their leaves (not
                # every table has an index by seq: the store reads them that way too).
                query = sql.SQL(
                    "COPY (SELECT t.* FROM leaves l CROSS JOIN LATERAL (SELECT * FROM {} x "
                    "WHERE x.tenant = l.tenant AND x.seq = l.seq AND x.occurred_us = l.occurred_us "
                    "OFFSET 0) t "
                    "WHERE l.tenant = 'bench' AND l.seq >= {} AND l.seq < {}) TO STDOUT (FORMAT binary)"
                )
                with source.cursor().copy(
                    query.format(sql.Identifier(table), sql.Literal(start), sql.Literal(start + BATCH))
                ) as copy:
                    data.extend(bytes(chunk) for chunk in copy)
                chunks.append((table, data))
            began = time.perf_counter()
            with target.transaction():
                for table, data in chunks:
                    with target.cursor().copy(
                        sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(table))
                    ) as copy:
                        for chunk in data:
                            copy.write(chunk)
            elapsed += time.perf_counter() - began
    return events / elapsed


# What pg-load searches during the burst: a day long past, whose bounds the records past the
# mark (the newest) fall outside of, and one actor over the whole log, which must look each
# of them up.
LOAD_SEARCHES = {name: SEARCHES[name] for name in ("one actor and one day", "one actor, all time")}


def pg_load_bench(events: int, admin_url: str = ADMIN_URL) -> dict[str, float]:
    """Searches while one producer appends: ``python -m bench pg-load [--events N]``; what an
    administrator sees during a burst.

    Every 100 ms a thread runs one of :data:`LOAD_SEARCHES` in turn and notes how many
    records were past the index mark (found by seq, not through the search rows) when it
    began.
    """
    batches = _batches(events)
    latencies: dict[str, list[float]] = {name: [] for name in LOAD_SEARCHES}
    behind: list[int] = []
    with database(admin_url) as url, _open(url) as log:
        store: Any = log.store
        done = threading.Event()

        def search() -> None:
            while not done.is_set():
                for name, query in LOAD_SEARCHES.items():
                    behind.append(store.tree_size("bench") - store.indexed_below("bench"))
                    started = time.perf_counter()
                    log.search("bench", query)
                    latencies[name].append((time.perf_counter() - started) * 1000)
                    time.sleep(0.1)

        log.record_many("bench", batches[0])  # the tenant exists before the searches start
        searcher = threading.Thread(target=search)
        began = time.perf_counter()
        searcher.start()
        for batch in batches[1:]:
            log.record_many("bench", batch)
        rate = (events - len(batches[0])) / (time.perf_counter() - began)
        done.set()
        searcher.join()
        # The floor: the same searches once every record is copied, none read by seq.
        _wait_until_indexed(log, events)
        at_rest = {name: _median_ms(log, query) for name, query in LOAD_SEARCHES.items()}
    print(f"postgresql ingest with searches every 100 ms: {events:,} events = {rate:,.0f} events/s")
    print(
        f"records past the index mark when a search began: median {statistics.median(behind):,.0f}, "
        f"most {max(behind):,}"
    )
    result = {"pg_load_ingest": rate}
    for name, samples in latencies.items():
        samples.sort()
        median, p90 = statistics.median(samples), samples[int(len(samples) * 0.9)]
        print(
            f"search while appending, {name}: median {median:.1f} ms, p90 {p90:.1f} ms ({len(samples)} "
            f"searches); floor, every record copied: median {at_rest[name]:.2f} ms; ratio "
            f"{median / at_rest[name]:.1f}"
        )
        result[f"pg_load_search_ms {name}"] = median
    return result
