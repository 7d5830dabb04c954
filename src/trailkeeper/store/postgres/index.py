"""The search rows of each tenant's log, copied from ``events`` after the appends commit,
and its target rows, copied from ``event_targets``.

An append writes a record's row with its primary key only; this copies the row's values and
words into ``search_rows``, whose dozen indexes then grow by a large batch at a time, on the
database server, while the appends go on. ``index_marks`` holds how far each tenant's log
is copied: searches read the records below the mark through ``search_rows`` and the few
above it from ``events`` by seq, so every acknowledged record is found at once.

Any server may copy any tenant's records, one at a time per tenant: a pass takes the
tenant's mark row ``FOR UPDATE SKIP LOCKED``, so a server finding it taken leaves that
tenant to the server holding it. The copy and the new mark commit together, so a server
that dies mid-pass leaves the mark where it was, and the next pass copies the same rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from trailkeeper.store.passes import PacedPasses
from trailkeeper.store.postgres.reads import EVENTS_BY_LEAF
from trailkeeper.store.postgres.schema import (
    LOCK_CLASS,
    PARTITION_LOCK,
    SEARCH_ROW_COLUMNS,
    SEARCH_ROW_VALUES,
    TARGET_COLUMNS,
    Connection,
)

# Records copied per transaction at most: large enough that the indexes take big sorted
# batches, small enough that a pass behind a large backlog commits every few seconds.
PASS_ROWS = 50_000

_BEHIND = (
    "SELECT h.tenant, h.tree_size FROM heads h LEFT JOIN index_marks m ON m.tenant = h.tenant "
    "WHERE h.tree_size > coalesce(m.indexed_below, 0) ORDER BY h.tenant"
)
_COPY = (
    f"INSERT INTO search_rows ({SEARCH_ROW_COLUMNS}) SELECT {SEARCH_ROW_VALUES} FROM {EVENTS_BY_LEAF} "
    "WHERE l.tenant = %s AND l.seq >= %s AND l.seq < %s"
)
_COPY_TARGETS = (
    f"INSERT INTO search_targets ({TARGET_COLUMNS}) SELECT {TARGET_COLUMNS} FROM event_targets "
    "WHERE tenant = %s AND seq >= %s AND seq < %s"
)


def index_pass(conn: Connection, rows: int = PASS_ROWS) -> tuple[int, bool]:
    """Copy the search rows of every tenant's records past its mark, at most ``rows`` per
    tenant, one transaction per tenant. Returns how many records the marks moved by, and
    whether a tenant has more to copy."""
    moved = 0
    more = False
    behind = conn.execute(_BEHIND).fetchall()
    conn.commit()  # each tenant's copy is a transaction of its own
    for tenant, size in behind:
        with conn.transaction():
            # Partitions are made and dropped under this lock, held exclusively: without it,
            # a new month's partitions (events first, search_rows last) and this copy (into
            # search_rows, from events) would lock the two tables in opposite orders.
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", (LOCK_CLASS, PARTITION_LOCK))
            mark = lock_mark(conn, tenant, wait=False)
            if mark is None or mark >= size:
                continue  # another server holds the tenant, or has just copied it
            end = min(int(size), mark + rows)
            # Every seq below the head's size is committed: the head moves in the
            # transaction that inserts the rows. A seq without a row (its month dropped, or
            # purged) has nothing to copy.
            conn.execute(_COPY, (tenant, mark, end))
            conn.execute(_COPY_TARGETS, (tenant, mark, end))
            conn.execute("UPDATE index_marks SET indexed_below = %s WHERE tenant = %s", (end, tenant))
        moved += end - mark
        more = more or end < size
    return moved, more


def lock_mark(conn: Connection, tenant: str, *, wait: bool) -> int | None:
    """Lock the tenant's mark row until the transaction ends, making it if need be; the
    mark, or None if another transaction holds it and ``wait`` is false. A purge takes it
    too, so that no copy can bring back the search row of a record it deletes."""
    conn.execute(
        "INSERT INTO index_marks (tenant, indexed_below) VALUES (%s, 0) ON CONFLICT (tenant) DO NOTHING",
        (tenant,),
    )
    skip = "" if wait else " SKIP LOCKED"
    row = conn.execute(
        f"SELECT indexed_below FROM index_marks WHERE tenant = %s FOR UPDATE{skip}", (tenant,)
    ).fetchone()
    return None if row is None else int(row[0])


def indexed_below(conn: Connection, tenant: str) -> int:
    """The tenant's mark: every record below this seq has its search row."""
    row = conn.execute("SELECT indexed_below FROM index_marks WHERE tenant = %s", (tenant,)).fetchone()
    return int(row[0]) if row else 0


# Seconds between passes under load. Every search reads the records past the mark by seq,
# so the mark's lag is what a search under load pays: with one pass a second, one producer
# on two cores left 16,000-17,000 records behind it and a search by one actor took 117-128
# ms; with four, 6,000-9,000 and 41-59 ms; with ten, 6,000 and 31-36 ms, the appends no
# slower (`python -m bench pg-load`, and `python -m bench pg` without searches). Passes
# then follow each other nearly at once: what is left behind is what one pass takes to copy.
PASS_INTERVAL = 0.1


class Indexer:
    """Runs passes on a thread of its own, at most one per ``interval`` seconds once woken,
    so that under load each pass copies a batch; ``catch_up`` runs them until none is left,
    for the owner that wants every record indexed now."""

    def __init__(
        self, connection: Callable[[], AbstractContextManager[Connection]], *, interval: float = PASS_INTERVAL
    ) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._passes = PacedPasses(
            self._pass, name="trailkeeper-pg-index", interval=interval, failure="copying search rows failed"
        )

    def notify(self) -> None:
        """New records were committed."""
        self._passes.notify()

    def catch_up(self) -> int:
        """Copy until every committed record has its search row; how many were copied."""
        total = 0
        with self._lock, self._connection() as conn:
            while True:
                done, more = index_pass(conn)
                total += done
                if not more:
                    return total

    def pause(self) -> None:
        """Stop copying in the background (searches then read the records past the mark
        from ``events``)."""
        self._passes.stop()

    close = pause

    def _pass(self) -> bool:
        """One pass; whether it left a backlog."""
        with self._lock, self._connection() as conn:
            return index_pass(conn)[1]
