"""The PostgreSQL schema: versioned migrations, monthly partitions, and how values sit in it.

Layout, and why:

* ``leaves`` (tenant, seq, id, occurred_us, leaf_hash) is the log itself. It is never
  partitioned and never dropped, so ``(tenant, seq)`` and ``(tenant, id)`` can be unique, and
  a leaf hash outlives its record's body (CONTRACT section 3: retention keeps leaf hashes).
* ``events`` holds the bodies and the values search reads, partitioned by month of
  ``occurred_us`` so that retention can drop a month at once. A partitioned table's keys
  must hold the partition key, hence the primary key (tenant, occurred_us, seq), which is
  also the time index. ``event_targets`` is partitioned the same way.
* ``search_rows`` is derived: a copy of each record's values and words, partitioned in the
  same months, with an index for every filter; ``search_targets`` likewise holds a copy of
  the target rows, found by id and by type. Servers fill it after their appends commit
  (store/postgres/index.py), up to each tenant's ``index_marks`` row; searches read the
  records past the mark from ``events``, by seq.
* ``tiles``, ``heads``, ``checkpoints`` and the tenant's verifier key complete the tree.

The tenant column leads every key, so every table but ``api_keys`` (looked up by the key's
hash) distributes by tenant on a sharded PostgreSQL such as Citus. Every text column is
``COLLATE "C"``: the search code turns a prefix into a range (``>= 'auth.' AND < 'auth/'``),
which only holds under byte order, the order SQLite uses too.

Migrations run under a session advisory lock, so servers that start together apply each
version once; each version is one transaction, so a failed upgrade leaves the last one.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg.rows import TupleRow

from trailkeeper.errors import Unavailable

Connection = psycopg.Connection[TupleRow]

# Advisory lock keys, (class, object) pairs: the class keeps them apart from other users of
# the same database.
LOCK_CLASS = 0x746B  # "tk"
MIGRATION_LOCK = 1
PARTITION_LOCK = 2
CHECKPOINT_LOCK_CLASS = 0x746C  # one lock per tenant: (class, hashtext(tenant))

_TEXT = 'text COLLATE "C"'

_V1 = (
    f"""CREATE TABLE heads (
        tenant {_TEXT} PRIMARY KEY,
        tree_size bigint NOT NULL,
        root_hash bytea NOT NULL
    )""",
    f"""CREATE TABLE leaves (
        tenant {_TEXT} NOT NULL,
        seq bigint NOT NULL,
        id {_TEXT} NOT NULL,
        occurred_us bigint NOT NULL,
        leaf_hash bytea NOT NULL,
        PRIMARY KEY (tenant, seq),
        UNIQUE (tenant, id)
    )""",
    # `body` holds the leaf bytes (canonical JSON); `leaf_hash` repeats the leaves' column so
    # a page is read from one table. A purged record's row is deleted: its leaf stays.
    f"""CREATE TABLE events (
        tenant {_TEXT} NOT NULL,
        seq bigint NOT NULL,
        occurred_us bigint NOT NULL,
        leaf_hash bytea NOT NULL,
        body bytea NOT NULL,
        category {_TEXT} NOT NULL,
        action {_TEXT} NOT NULL,
        outcome {_TEXT} NOT NULL,
        actor_type {_TEXT} NOT NULL,
        actor_id {_TEXT} NOT NULL,
        integration {_TEXT},
        workflow_run {_TEXT},
        ip {_TEXT},
        tsv tsvector,
        PRIMARY KEY (tenant, occurred_us, seq)
    ) PARTITION BY RANGE (occurred_us)""",
    # Rows of a month without a partition land here rather than fail.
    "CREATE TABLE events_default PARTITION OF events DEFAULT",
    "CREATE INDEX events_seq ON events (tenant, seq)",
    # One index per filter of CONTRACT section 4, as in the SQLite store, each ending in the
    # result order, so that a filtered page is read in order and stops at the limit.
    "CREATE INDEX events_actor ON events (tenant, actor_id, occurred_us, seq)",
    "CREATE INDEX events_action ON events (tenant, action, occurred_us, seq)",
    "CREATE INDEX events_category ON events (tenant, category, occurred_us, seq)",
    "CREATE INDEX events_outcome ON events (tenant, outcome, occurred_us, seq)",
    "CREATE INDEX events_actor_type ON events (tenant, actor_type, occurred_us, seq)",
    "CREATE INDEX events_integration ON events (tenant, integration, occurred_us, seq) "
    "WHERE integration IS NOT NULL",
    "CREATE INDEX events_run ON events (tenant, workflow_run, occurred_us, seq) "
    "WHERE workflow_run IS NOT NULL",
    "CREATE INDEX events_ip ON events (tenant, ip, occurred_us, seq) WHERE ip IS NOT NULL",
    "CREATE INDEX events_text ON events USING gin (tsv)",
    f"""CREATE TABLE event_targets (
        tenant {_TEXT} NOT NULL,
        seq bigint NOT NULL,
        occurred_us bigint NOT NULL,
        type {_TEXT} NOT NULL,
        id {_TEXT} NOT NULL
    ) PARTITION BY RANGE (occurred_us)""",
    "CREATE TABLE event_targets_default PARTITION OF event_targets DEFAULT",
    "CREATE INDEX event_targets_id ON event_targets (tenant, id, seq)",
    "CREATE INDEX event_targets_type ON event_targets (tenant, type, seq)",
    f"""CREATE TABLE tiles (
        tenant {_TEXT} NOT NULL,
        level integer NOT NULL,
        idx bigint NOT NULL,
        hashes bytea NOT NULL,
        PRIMARY KEY (tenant, level, idx)
    )""",
    f"""CREATE TABLE checkpoints (
        tenant {_TEXT} NOT NULL,
        tree_size bigint NOT NULL,
        root_hash bytea NOT NULL,
        note text NOT NULL,
        created_at text NOT NULL,
        PRIMARY KEY (tenant, tree_size)
    )""",
    f"""CREATE TABLE tenant_keys (
        tenant {_TEXT} PRIMARY KEY,
        verifier_key text NOT NULL
    )""",
    f"""CREATE TABLE api_keys (
        id {_TEXT} PRIMARY KEY,
        tenant {_TEXT} NOT NULL,
        secret_hash bytea NOT NULL UNIQUE,
        scopes text NOT NULL,
        name text,
        created_at text NOT NULL,
        last_used_at text,
        revoked_at text
    )""",
    "CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at, id)",
    f"""CREATE TABLE retention (
        tenant {_TEXT} PRIMARY KEY,
        days integer NOT NULL CHECK (days > 0)
    )""",
)

_V2 = (
    # How far retention has purged each tenant: searches and counts stop at this mark, so a
    # late event from before it stays out of sight, as it does in the SQLite store.
    f"""CREATE TABLE purges (
        tenant {_TEXT} PRIMARY KEY,
        before_us bigint NOT NULL
    )""",
)

_V3 = (
    # How far dropping monthly partitions has removed the records of every tenant (one row):
    # verify accepts a leaf without its record before it. Unlike a purge mark, it does not
    # bound searches: the late events of a dropped month, kept in the default partition,
    # are still found.
    """CREATE TABLE partitions_dropped (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        before_us bigint NOT NULL
    )""",
)

_V4 = (
    # The targets of a range of records, as verify reads them to compare with the bodies.
    "CREATE INDEX event_targets_seq ON event_targets (tenant, seq)",
)

_SEARCH_COLUMNS = f"""
        category {_TEXT} NOT NULL,
        action {_TEXT} NOT NULL,
        outcome {_TEXT} NOT NULL,
        actor_type {_TEXT} NOT NULL,
        actor_id {_TEXT} NOT NULL,
        integration {_TEXT},
        workflow_run {_TEXT},
        ip {_TEXT},
        tsv tsvector"""

# A search row's columns, and what the indexer makes each of from the record's row of
# ``events``: the same values, and the words as a tsvector.
SEARCH_ROW_COLUMNS = (
    "tenant, occurred_us, seq, category, action, outcome, actor_type, actor_id, integration, "
    "workflow_run, ip, tsv"
)
SEARCH_ROW_VALUES = ", ".join(
    f"e.{name}" for name in SEARCH_ROW_COLUMNS.replace("tsv", "words::tsvector").split(", ")
)


# A migration's step: a statement, or Python that runs in its transaction.
Step = str | Callable[[Connection], None]


TARGET_COLUMNS = "tenant, seq, occurred_us, type, id"


def fill_search_rows(conn: Connection) -> None:
    """Version 5's data: a partition of ``search_rows`` and ``search_targets`` for each month
    ``events`` has one, then every record's search row and targets, and each tenant's mark
    at the end of its log."""
    months = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass "
        "AND c.relname <> 'events_default'"
    ).fetchall()
    for name, bound in months:
        for table in ("search_rows", "search_targets"):
            conn.execute(f"CREATE TABLE {table}{name.removeprefix('events')} PARTITION OF {table} {bound}")
    conn.execute(f"INSERT INTO search_rows ({SEARCH_ROW_COLUMNS}) SELECT {SEARCH_ROW_VALUES} FROM events e")
    conn.execute(f"INSERT INTO search_targets ({TARGET_COLUMNS}) SELECT {TARGET_COLUMNS} FROM event_targets")
    conn.execute("INSERT INTO index_marks (tenant, indexed_below) SELECT tenant, tree_size FROM heads")


_V5: tuple[Step, ...] = (
    # The value indexes and the text index move to a derived table, ``search_rows``, which
    # the servers fill from ``events`` after the append commits (store/postgres/index.py):
    # an append then writes the bodies with their primary key only, and the work of a dozen
    # index insertions per record moves off the acknowledged path. ``index_marks`` says how
    # far each tenant's log is copied; searches read the records past it from ``events``.
    f"""CREATE TABLE search_rows (
        tenant {_TEXT} NOT NULL,
        occurred_us bigint NOT NULL,
        seq bigint NOT NULL,{_SEARCH_COLUMNS},
        PRIMARY KEY (tenant, occurred_us, seq)
    ) PARTITION BY RANGE (occurred_us)""",
    "CREATE TABLE search_rows_default PARTITION OF search_rows DEFAULT",
    f"""CREATE TABLE index_marks (
        tenant {_TEXT} PRIMARY KEY,
        indexed_below bigint NOT NULL
    )""",
    # The targets go the same way: an append writes them found by seq only (for verify and
    # for the records past the mark), and the indexer copies them where a target search
    # finds them by id or type.
    f"""CREATE TABLE search_targets (
        tenant {_TEXT} NOT NULL,
        seq bigint NOT NULL,
        occurred_us bigint NOT NULL,
        type {_TEXT} NOT NULL,
        id {_TEXT} NOT NULL
    ) PARTITION BY RANGE (occurred_us)""",
    "CREATE TABLE search_targets_default PARTITION OF search_targets DEFAULT",
    # Records are found by seq through their leaves, whose key is (tenant, seq): an index of
    # events by seq cost every append a B-tree insertion for nothing else.
    "DROP INDEX events_seq",
    "DROP INDEX event_targets_id",
    "DROP INDEX event_targets_type",
    *(
        f"DROP INDEX {name}"
        for name in (
            "events_actor",
            "events_action",
            "events_category",
            "events_outcome",
            "events_actor_type",
            "events_integration",
            "events_run",
            "events_ip",
            "events_text",
        )
    ),
    # The words of a record, as the text form of a tsvector that the writer makes (cheaper
    # than the binary form) and the server reads when it copies the search row.
    "ALTER TABLE events RENAME COLUMN tsv TO words",
    "ALTER TABLE events ALTER COLUMN words TYPE text USING words::text",
    # A database of an earlier version gets its search rows here, once; their indexes are
    # made after, each built sorted rather than grown row by row.
    fill_search_rows,
    "CREATE INDEX search_actor ON search_rows (tenant, actor_id, occurred_us, seq)",
    "CREATE INDEX search_action ON search_rows (tenant, action, occurred_us, seq)",
    "CREATE INDEX search_category ON search_rows (tenant, category, occurred_us, seq)",
    # As in the SQLite store: most events succeed and most actors are people or agents, and
    # for those values the time order itself finds a page at once (see sql.PARTIAL_INDEXES).
    "CREATE INDEX search_outcome ON search_rows (tenant, outcome, occurred_us, seq) "
    "WHERE outcome <> 'success'",
    "CREATE INDEX search_actor_type ON search_rows (tenant, actor_type, occurred_us, seq) "
    "WHERE actor_type NOT IN ('user', 'agent')",
    "CREATE INDEX search_integration ON search_rows (tenant, integration, occurred_us, seq) "
    "WHERE integration IS NOT NULL",
    "CREATE INDEX search_run ON search_rows (tenant, workflow_run, occurred_us, seq) "
    "WHERE workflow_run IS NOT NULL",
    "CREATE INDEX search_ip ON search_rows (tenant, ip, occurred_us, seq) WHERE ip IS NOT NULL",
    "CREATE INDEX search_text ON search_rows USING gin (tsv)",
    # A target search finds seqs: their search rows are found by them.
    "CREATE INDEX search_seq ON search_rows (tenant, seq)",
    "CREATE INDEX search_targets_id ON search_targets (tenant, id, seq)",
    "CREATE INDEX search_targets_type ON search_targets (tenant, type, seq)",
    # What verify compares with the targets written with the records.
    "CREATE INDEX search_targets_seq ON search_targets (tenant, seq)",
)

_V6 = (
    # A target search finds its records' search rows by their primary key (tenant,
    # occurred_us, seq), which search_targets holds whole: the index by seq cost every
    # record the indexer copies a B-tree insertion, and nothing reads it now.
    "DROP INDEX search_seq",
)

MIGRATIONS: tuple[tuple[int, tuple[Step, ...]], ...] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
)
LATEST = MIGRATIONS[-1][0]


def apply_migrations(conn: psycopg.Connection[TupleRow]) -> int:
    """Bring the schema to :data:`LATEST`; return the version it is at.

    Safe when several servers start at once: the first to take the advisory lock migrates,
    the others wait for it and then find nothing left to do.
    """
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY)")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            with conn.transaction():
                for statement in statements:
                    if isinstance(statement, str):
                        conn.execute(statement)
                    else:
                        statement(conn)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            current = version
        return current
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))


def migrate(url: str) -> int:
    """Bring the database at ``url`` to the latest schema; return its version. What
    ``trailkeeper migrate`` runs, and every server on start-up."""
    try:
        with psycopg.connect(url, application_name="trailkeeper-migrate") as conn:
            return apply_migrations(conn)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unavailable(f"cannot reach PostgreSQL: {reason}") from exc
