"""The PostgreSQL store: several servers, on several hosts, appending to one database.

Each process still appends through its facade's one writer thread; what keeps a tenant's
``seq`` gap-free across processes is the database. An append transaction first locks the
head row of every tenant it writes (in tenant order, so that two groups never wait on each
other), reads the tree's right edge as committed by whoever appended last, assigns seqs,
copies the rows in (COPY: one round trip per table), writes the tiles covering them and
the new head, and commits. The next appender to that tenant waits on the row lock and then
reads what this one committed: READ COMMITTED gives every statement a fresh snapshot.

Searches read what :mod:`.index` copies into ``search_rows`` after the appends commit, and
the newest records from ``events``. Reads go through a connection pool. Layout and
migrations: :mod:`.schema`.
"""

from __future__ import annotations

from trailkeeper.store.postgres.index import Indexer, index_pass, indexed_below
from trailkeeper.store.postgres.partitions import (
    PARTITIONED,
    Month,
    Partitions,
    add_months,
    month_of,
    month_start_us,
    next_month,
    partition_name,
)
from trailkeeper.store.postgres.reads import (
    DIALECT,
    RECORD_BY_LEAF,
    RECORDS_SINCE_SEQ,
    count_statement,
    for_psycopg,
    page_statement,
    page_statements,
)
from trailkeeper.store.postgres.schema import (
    LATEST,
    LOCK_CLASS,
    MIGRATIONS,
    PARTITION_LOCK,
    SEARCH_ROW_COLUMNS,
    SEARCH_ROW_VALUES,
    TARGET_COLUMNS,
    Connection,
    apply_migrations,
    migrate,
)
from trailkeeper.store.postgres.store import (
    DROP_LOCK_TIMEOUT,
    FUTURE_MONTHS,
    PARTITION_LOCK_TIMEOUT,
    PAST_MONTHS,
    PostgresStore,
    open_postgres,
)
from trailkeeper.store.postgres.text import (
    column_text,
    text_from_column,
    tsquery_text,
    tsvector_text,
    words,
)

__all__ = [
    "DIALECT",
    "DROP_LOCK_TIMEOUT",
    "FUTURE_MONTHS",
    "LATEST",
    "LOCK_CLASS",
    "MIGRATIONS",
    "PARTITIONED",
    "PARTITION_LOCK",
    "PARTITION_LOCK_TIMEOUT",
    "PAST_MONTHS",
    "RECORDS_SINCE_SEQ",
    "RECORD_BY_LEAF",
    "SEARCH_ROW_COLUMNS",
    "SEARCH_ROW_VALUES",
    "TARGET_COLUMNS",
    "Connection",
    "Indexer",
    "Month",
    "Partitions",
    "PostgresStore",
    "add_months",
    "apply_migrations",
    "column_text",
    "count_statement",
    "for_psycopg",
    "index_pass",
    "indexed_below",
    "migrate",
    "month_of",
    "month_start_us",
    "next_month",
    "open_postgres",
    "page_statement",
    "page_statements",
    "partition_name",
    "text_from_column",
    "tsquery_text",
    "tsvector_text",
    "words",
]
