"""What reads and searches share: the SQL dialect of :mod:`trailkeeper.store.sql`, the
queries that find a record's row, the purge mark that bounds every search, and how a search
reads the records on either side of the index mark (:mod:`.index`)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import Any

from trailkeeper.query import Filter
from trailkeeper.store.base import PageQuery
from trailkeeper.store.postgres.schema import Connection
from trailkeeper.store.postgres.text import column_text, tsquery_text
from trailkeeper.store.sql import TABLE, Dialect, Source, count_sql, order_by, page_sql

DIALECT = Dialect(
    placeholder="%s",
    # NULL (a term without a word) matches nothing.
    text_clause="e.tsv @@ ?::tsquery",
    text_query=tsquery_text,
    distinct="IS DISTINCT FROM",
)


def same_record(a: str, b: str) -> str:
    """That the rows of aliases ``a`` and ``b`` are of one record: its full key, with the
    time that says which partition holds it."""
    return f"{a}.tenant = {b}.tenant AND {a}.occurred_us = {b}.occurred_us AND {a}.seq = {b}.seq"


# A record's row is found through its leaf, which knows the partition (occurred_us).
RECORD_BY_LEAF = (
    f"SELECT e.body, e.leaf_hash FROM leaves l JOIN events e ON {same_record('e', 'l')} "
    "WHERE l.tenant = %s AND "
)


def row_of(outer: str, alias: str, *, keep_missing: bool = False) -> str:
    """A join that looks up, on its own, the row in ``events`` (as ``alias``) of each row
    of ``outer``; with ``keep_missing``, a row of ``outer`` without one is kept, its columns
    NULL. OFFSET 0 keeps the planner from making the lookups one join of whole tables: it
    would take each key column's equality for an independent filter, expect a handful of
    rows, and join every row of the two tables to sort what a page needs."""
    lookup = f"LATERAL (SELECT * FROM events x WHERE {same_record('x', outer)} OFFSET 0) {alias}"
    return f"LEFT JOIN {lookup} ON true" if keep_missing else f"CROSS JOIN {lookup}"


# Records by seq are found through their leaves too (events has no index by seq, which every
# append would have to keep up), each leaf's row looked up on its own, for a range of seqs
# that is short, or read in order and cut off.
EVENTS_BY_LEAF = f"leaves l {row_of('l', 'e')}"
RECORDS_SINCE_SEQ = (
    f"SELECT e.body, e.leaf_hash FROM {EVENTS_BY_LEAF} WHERE l.tenant = %s AND l.seq >= %s "
    "ORDER BY l.seq LIMIT %s"
)


# The records below a tenant's index mark: their search rows, each with its body looked up
# on its own (as a plain join, 150-800 ms on 200,000 records for a filter a tenth of them
# match, where walking the time order fills a page in 2 ms). A target search finds its
# records' search rows by their primary key, which a target row holds whole: an index of
# search rows by seq would cost every record copied one more B-tree insertion.
#
# A page chooses its rows from the search rows alone and looks up the bodies of those it
# returns only: joined before the limit, every match was looked up before the sort (a word
# 1,138 of a million records hold: 46 ms, walking the time order, the planner counting the
# lookups into the sort's cost; an IP prefix 3,940 records have: 80 ms).
INDEXED = Source(
    rows="search_rows e",
    record="m",
    targets="search_targets",
    target_key=("occurred_us", "seq"),
    anti_join=True,
    lookup=row_of("k", "m", keep_missing=True),
)
# A record whose row was removed by hand (verify reports it) leaves its page a row short
# read that way, which would end a walk of the pages; such a page is read again with each
# search row joined to its record before the limit, and the gap skipped.
INDEXED_JOINED = dataclasses.replace(INDEXED, rows=f"search_rows e {row_of('e', 'm')}", lookup=None)
# What a count needs of them: the search rows alone, their targets found the same way.
INDEXED_COLUMNS = dataclasses.replace(INDEXED, record="e", lookup=None)


def page_statements(query: PageQuery, mark: int, *, joined: bool = False) -> list[tuple[str, list[Any]]]:
    """The statements whose rows, merged in order, make a page, given the tenant's index
    mark: the records below it through their search rows (``joined``: each joined to its
    record before the limit, see INDEXED_JOINED), those above it (the last second or so of
    appends) read from ``events`` by seq, their matches found and sorted."""
    if not query.filter.terms and not query.filter.text:
        # Time alone: the events table's own primary key.
        return [for_psycopg(*page_sql(query, DIALECT))]
    statements = []
    if mark > 0:
        indexed = dataclasses.replace(INDEXED_JOINED if joined else INDEXED, below_seq=mark)
        statements.append(for_psycopg(*page_sql(query, DIALECT, source=indexed)))
    # A page never reads past the log's size when it began: nothing to read above the mark
    # once the mark has reached it.
    if not statements or query.below_seq is None or mark < query.below_seq:
        statements.append(for_psycopg(*page_sql(query, DIALECT, sort_after=True, source=unindexed(mark))))
    return statements


def unindexed(mark: int) -> Source:
    """The records at or above the mark, found by seq through their leaves, their words made
    into a tsvector as they are read, and their targets from ``event_targets``, by seq too."""
    return dataclasses.replace(
        TABLE,
        rows=EVENTS_BY_LEAF,
        min_seq=mark,
        seq_from="l",
        by_seq=True,
        text_clause="e.words::tsvector @@ ?::tsquery",
    )


def page_statement(query: PageQuery, mark: int, *, joined: bool = False) -> tuple[str, list[Any]]:
    """The page in one statement: those of :func:`page_statements`, merged by the server
    when there are two (one round trip instead of two, and no merge here)."""
    statements = page_statements(query, mark, joined=joined)
    if len(statements) == 1:
        return statements[0]
    sql = (
        "SELECT * FROM (" + " UNION ALL ".join(f"({sql})" for sql, _ in statements) + ") AS page "
        f"ORDER BY {order_by(query.order, alias='page')} LIMIT %s"
    )
    return sql, [value for _, params in statements for value in params] + [query.limit]


def count_statement(query_filter: Filter, tenant: str, group_by: str, mark: int) -> tuple[str, list[Any]]:
    """Counts of the records below the mark and of those above it, added up."""
    sources = (dataclasses.replace(INDEXED_COLUMNS, below_seq=mark), unindexed(mark))
    return for_psycopg(
        *count_sql(query_filter, tenant, group_by, DIALECT, sources if mark > 0 else sources[1:])
    )


def for_psycopg(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A query of :mod:`.sql` as psycopg takes it: modulo signs doubled (psycopg reads
    ``%`` as a placeholder) and text values as the columns hold them."""
    return re.sub(r"%(?!s)", "%%", sql), [column_text(p) if isinstance(p, str) else p for p in params]


def hash_to_verify(body: bytes | None, tree_hash: bytes, row_hash: bytes | None) -> bytes:
    """The leaf hash `leaves()` reports. Each record carries a copy of its leaf hash beside
    the tree's; when the two differ, report the one its body does not hash to, so that
    verification stops at this seq whichever of the three was changed."""
    if body is None or row_hash is None or row_hash == tree_hash:
        return tree_hash
    if hashlib.sha256(b"\x00" + body).digest() == tree_hash:
        return row_hash
    return tree_hash


def purge_mark(conn: Connection, tenant: str) -> int | None:
    row = conn.execute("SELECT before_us FROM purges WHERE tenant = %s", (tenant,)).fetchone()
    return int(row[0]) if row else None


def bounded(query_filter: Filter, purged_before: int | None) -> Filter:
    """The filter, bounded below by the tenant's purge mark: nothing before it is shown."""
    return query_filter if purged_before is None else query_filter.merge(Filter(after_us=purged_before))


def read_marks(conn: Connection, tenant: str, *, for_page: bool = False) -> tuple[int | None, int]:
    """The tenant's purge mark and index mark, in one round trip: what every search needs.

    ``for_page`` also turns parallel plans off until the transaction ends. A page stops at
    its limit after a few rows; the planner, counting the rows a filter matches, would
    start two workers for some (a rare word on a million records: 13 ms with them, 5 ms
    without), and on a server whose cores the appends keep busy they only wait their turn.
    """
    serial = "set_config('max_parallel_workers_per_gather', '0', true), " if for_page else ""
    row = conn.execute(
        f"SELECT {serial}(SELECT before_us FROM purges WHERE tenant = %s), "
        "(SELECT indexed_below FROM index_marks WHERE tenant = %s)",
        (tenant, tenant),
    ).fetchone()
    assert row is not None  # a SELECT without FROM gives one row
    before, mark = row[-2:]
    return (None if before is None else int(before)), int(mark or 0)
