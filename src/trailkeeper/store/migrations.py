"""Versioned schema migrations for the SQLite store.

Each entry is (version, statements); a file records the versions applied in
``schema_version`` and an older file is brought up to date in place when it is opened, in
one transaction, so a failed upgrade leaves it as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from trailkeeper.store.base import with_leaf_hash
from trailkeeper.store.sql import search_text

_V1 = (
    """CREATE TABLE heads (
        tenant TEXT PRIMARY KEY,
        tree_size INTEGER NOT NULL,
        root_hash BLOB NOT NULL
    ) WITHOUT ROWID""",
    # `row` is the rowid the full-text index points at; (tenant, seq) is the record's place
    # in its tenant's log. `body` holds the leaf bytes (canonical JSON), NULL once purged.
    """CREATE TABLE events (
        row INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        leaf_hash BLOB NOT NULL,
        body BLOB,
        occurred_us INTEGER NOT NULL,
        category TEXT NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        actor_type TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        integration TEXT,
        workflow_run TEXT,
        ip TEXT
    )""",
    "CREATE UNIQUE INDEX events_seq ON events (tenant, seq)",
    "CREATE UNIQUE INDEX events_id ON events (tenant, id)",
    # One index per filter of CONTRACT section 4, each ending in the result order, so that a
    # filtered page is read in order from one index and stops at the limit.
    "CREATE INDEX events_time ON events (tenant, occurred_us, seq)",
    "CREATE INDEX events_actor ON events (tenant, actor_id, occurred_us, seq)",
    "CREATE INDEX events_action ON events (tenant, action, occurred_us, seq)",
    "CREATE INDEX events_category ON events (tenant, category, occurred_us, seq)",
    # Most events succeed and most actors are people or agents: for those values the time
    # order itself finds a page of matches at once, so these indexes hold only the rest,
    # and cost an insert only for the events they serve (see sql.PARTIAL_INDEXES).
    "CREATE INDEX events_outcome ON events (tenant, outcome, occurred_us, seq) WHERE outcome <> 'success'",
    "CREATE INDEX events_actor_type ON events (tenant, actor_type, occurred_us, seq) "
    "WHERE actor_type NOT IN ('user', 'agent')",
    "CREATE INDEX events_integration ON events (tenant, integration, occurred_us, seq) "
    "WHERE integration IS NOT NULL",
    "CREATE INDEX events_run ON events (tenant, workflow_run, occurred_us, seq) "
    "WHERE workflow_run IS NOT NULL",
    "CREATE INDEX events_ip ON events (tenant, ip, occurred_us, seq) WHERE ip IS NOT NULL",
    """CREATE TABLE event_targets (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        PRIMARY KEY (tenant, id, seq, type)
    ) WITHOUT ROWID""",
    "CREATE INDEX event_targets_type ON event_targets (tenant, type, seq)",
    # Contentless: the text lives in the bodies; the index keeps only what it needs to match.
    "CREATE VIRTUAL TABLE events_fts USING fts5 (text, content='', tokenize='unicode61 remove_diacritics 2')",
    """CREATE TABLE tiles (
        tenant TEXT NOT NULL,
        level INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hashes BLOB NOT NULL,
        PRIMARY KEY (tenant, level, idx)
    ) WITHOUT ROWID""",
    """CREATE TABLE checkpoints (
        tenant TEXT NOT NULL,
        tree_size INTEGER NOT NULL,
        root_hash BLOB NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (tenant, tree_size)
    ) WITHOUT ROWID""",
    """CREATE TABLE tenant_keys (
        tenant TEXT PRIMARY KEY,
        verifier_key TEXT NOT NULL
    )""",
)

_V2 = (
    """CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        secret_hash BLOB NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        name TEXT,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
    )""",
    "CREATE INDEX api_keys_tenant ON api_keys (tenant)",
    """CREATE TABLE retention (
        tenant TEXT PRIMARY KEY,
        days INTEGER NOT NULL CHECK (days > 0)
    )""",
)

_V3 = (
    # How far retention has purged each tenant: every record before it has lost its body.
    """CREATE TABLE purges (
        tenant TEXT PRIMARY KEY,
        before_us INTEGER NOT NULL
    )""",
)

_V4 = (
    # The targets of a range of records, as verify reads them to compare with the bodies.
    "CREATE INDEX event_targets_seq ON event_targets (tenant, seq)",
)

_V5 = (
    # The value-keyed indexes and the targets move to the derived search index beside the
    # file (store/search_index.py), which is built from the events when first opened.
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
        )
    ),
    "DROP TABLE event_targets",
)

_V6 = (
    # The full-text index moves to the search index file too: the writer stores each
    # record's search text beside it (NULL when it has none, or once purged), and the
    # index's thread tokenizes it after the commit. fill_search_text gives the records of
    # an older file theirs.
    "ALTER TABLE events ADD COLUMN text TEXT",
    "DROP TABLE events_fts",
)

SQLITE_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
)
LATEST = SQLITE_MIGRATIONS[-1][0]


def fill_search_text(conn: sqlite3.Connection) -> None:
    """Version 6's data: the search text of every record that still has its body."""
    last = -1
    while rows := conn.execute(
        "SELECT row, body FROM events WHERE row > ? AND body IS NOT NULL ORDER BY row LIMIT 10000", (last,)
    ).fetchall():
        conn.executemany(
            "UPDATE events SET text = ? WHERE row = ?",
            [(search_text(with_leaf_hash(body, b"")) or None, row) for row, body in rows],
        )
        last = rows[-1][0]


# Steps in Python that follow a version's statements, in the same transaction.
SQLITE_DATA_STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {6: fill_search_text}
