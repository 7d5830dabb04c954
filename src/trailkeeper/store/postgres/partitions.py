"""Monthly partitions of ``events``, ``event_targets`` and their derived copies: the months,
their names, and their creation on demand."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow

from trailkeeper.store.base import AppendRequest
from trailkeeper.store.postgres.schema import LOCK_CLASS, PARTITION_LOCK

log = logging.getLogger("trailkeeper.store.postgres")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PARTITIONED = ("events", "event_targets", "search_rows", "search_targets")
Month = tuple[int, int]


def month_start_us(month: Month) -> int:
    """Microseconds since the epoch at 00:00 UTC on the first day of (year, month)."""
    year, number = month
    moment = datetime(year, number, 1, tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000


def next_month(month: Month) -> Month:
    year, number = month
    return (year + 1, 1) if number == 12 else (year, number + 1)


def month_of(occurred_us: int) -> Month:
    # Integer arithmetic: a float timestamp can round across midnight of the first.
    moment = _EPOCH + timedelta(microseconds=occurred_us)
    return (moment.year, moment.month)


def partition_name(table: str, month: Month) -> str:
    return f"{table}_{month[0]:04d}_{month[1]:02d}"


_PARTITION_NAME = re.compile(r"(?:events|event_targets|search_rows|search_targets)_(\d{4})_(\d{2})")


def month_of_partition(name: str) -> Month | None:
    """The month a partition holds, from its name; None for the default partitions."""
    match = _PARTITION_NAME.fullmatch(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def create_partition_sql(table: str, month: Month) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(table, month)} PARTITION OF {table} "
        f"FOR VALUES FROM ({month_start_us(month)}) TO ({month_start_us(next_month(month))})"
    )


def add_months(month: Month, count: int) -> Month:
    index = month[0] * 12 + month[1] - 1 + count
    return (index // 12, index % 12 + 1)


def existing_months(conn: psycopg.Connection[TupleRow]) -> set[Month]:
    """The months that have their own partition."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    return {m for (name,) in rows if (m := month_of_partition(name)) is not None}


class Partitions:
    """The monthly partitions one process knows to exist, and their creation on demand.

    Only months from ``past`` months ago to ``ahead`` months on get a partition: rows of
    other months go to the default partition rather than let a producer's clock create
    tables without end. Creating a partition takes a strong lock on its parent, so it waits
    at most ``lock_timeout``; a month that cannot have its partition (rows of it already sit
    in the default partition, or readers hold the table) stays in the default partition.
    """

    def __init__(self, past: int, ahead: int, lock_timeout: str) -> None:
        self.past = past
        self.ahead = ahead
        self.lock_timeout = lock_timeout
        self.known: set[Month] = set()
        self.refused: set[Month] = set()

    def wanted(self, months: set[Month], now: datetime) -> set[Month]:
        """The months among ``months`` that should get a partition this process has not seen."""
        first = add_months((now.year, now.month), -self.past)
        last = add_months((now.year, now.month), self.ahead)
        return {m for m in months if first <= m <= last} - self.known - self.refused

    def create(self, conn: psycopg.Connection[TupleRow], months: set[Month]) -> None:
        """Create the partitions of ``months`` that do not exist yet, one server at a time."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, PARTITION_LOCK))
            # Only the DDL has a timeout: the advisory lock is held briefly.
            conn.execute(f"SET LOCAL lock_timeout = '{self.lock_timeout}'")
            self.known |= existing_months(conn)
            for month in sorted(months - self.known):
                try:
                    with conn.transaction():
                        for table in PARTITIONED:
                            conn.execute(create_partition_sql(table, month))
                except (psycopg.errors.CheckViolation, psycopg.errors.LockNotAvailable) as exc:
                    log.warning("no partition for %04d-%02d, using the default one: %s", *month, exc)
                    self.refused.add(month)
                else:
                    self.known.add(month)

    def drop_before(self, conn: psycopg.Connection[TupleRow], before_us: int, lock_timeout: str) -> list[str]:
        """Drop, in the caller's transaction, every month's partitions that end at or before
        ``before_us``, one server at a time; return the names of the tables dropped."""
        dropped: list[str] = []
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, PARTITION_LOCK))
        # Past this, the drop fails (503, to be retried) rather than stall every append.
        conn.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
        for month in sorted(existing_months(conn)):
            if month_start_us(next_month(month)) > before_us:
                continue
            for table in PARTITIONED:
                name = partition_name(table, month)
                conn.execute(f"DROP TABLE IF EXISTS {name}")
                dropped.append(name)
            self.known.discard(month)
            # A month gone stays gone: late rows of it go to the default partition.
            self.refused.add(month)
        return dropped


def dropped_until(names: Sequence[str]) -> int:
    """The end of the last month among the partitions named: every record before it is gone."""
    ends = [
        month_start_us(next_month((int(match[1]), int(match[2]))))
        for name in names
        if (match := _PARTITION_NAME.fullmatch(name)) is not None
    ]
    return max(ends)


def months(requests: Sequence[AppendRequest]) -> set[Month]:
    # Stored times are UTC text, YYYY-MM-DDTHH:MM:SS.ffffffZ: the month is in the text.
    stamps = {prepared.record["occurred_at"][:7] for request in requests for prepared in request.events}
    return {(int(stamp[:4]), int(stamp[5:7])) for stamp in stamps}
