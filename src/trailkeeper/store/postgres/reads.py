"""What reads and searches share: the SQL dialect of :mod:`trailkeeper.store.sql`, the
queries that find a record's row, and the purge mark that bounds every search."""

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
from trailkeeper.store.sql import TABLE, Dialect, Source, count_sql, page_sql

DIALECT = Dialect(
    placeholder="%s",
    # NULL (a term without a word) matches nothing.
    text_clause="e.tsv @@ ?::tsquery",
    text_query=tsquery_text,
    distinct="IS DISTINCT FROM",
)

# A record's row is found through its leaf, which knows the partition (occurred_us).
RECORD_BY_LEAF = (
    "SELECT e.body, e.leaf_hash FROM leaves l JOIN events e "
    "ON e.tenant = l.tenant AND e.occurred_us = l.occurred_us AND e.seq = l.seq "
    "WHERE l.tenant = %s AND "
)
RECORDS_SINCE_SEQ = "SELECT body, leaf_hash FROM events WHERE tenant = %s AND seq >= %s ORDER BY seq LIMIT %s"


# The records below a tenant's index mark: their search rows, each joined to its body.
INDEXED = Source(
    rows="search_rows e JOIN events m "
    "ON m.tenant = e.tenant AND m.occurred_us = e.occurred_us AND m.seq = e.seq",
    record="m",
)
# What a count needs of them: the search rows alone.
INDEXED_COLUMNS = Source(rows="search_rows e")


def page_statements(query: PageQuery, mark: int) -> list[tuple[str, list[Any]]]:
    """The statements whose rows, merged in order, make a page, given the tenant's index
    mark: the records below it through their search rows, those above it (the last second
    or so of appends) read from ``events`` by seq, their matches found and sorted."""
    if not query.filter.terms and not query.filter.text:
        # Time alone: the events table's own primary key.
        return [for_psycopg(*page_sql(query, DIALECT))]
    statements = []
    if mark > 0:
        indexed = dataclasses.replace(INDEXED, below_seq=mark)
        statements.append(for_psycopg(*page_sql(query, DIALECT, source=indexed)))
    unindexed = dataclasses.replace(TABLE, min_seq=mark)
    statements.append(for_psycopg(*page_sql(query, DIALECT, sort_after=True, source=unindexed)))
    return statements


def count_statement(query_filter: Filter, tenant: str, group_by: str, mark: int) -> tuple[str, list[Any]]:
    """Counts of the records below the mark and of those above it, added up."""
    sources = (dataclasses.replace(INDEXED_COLUMNS, below_seq=mark), dataclasses.replace(TABLE, min_seq=mark))
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


def unpurged(conn: Connection, tenant: str, query_filter: Filter) -> Filter:
    """The filter, bounded below by the tenant's purge mark: nothing before it is shown."""
    mark = purge_mark(conn, tenant)
    return query_filter if mark is None else query_filter.merge(Filter(after_us=mark))
