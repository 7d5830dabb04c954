"""The PostgreSQL schema: versioned migrations, monthly partitions, and how values sit in it.

Layout, and why:

* ``leaves`` (tenant, seq, id, occurred_us, leaf_hash) is the log itself. It is never
  partitioned and never dropped, so ``(tenant, seq)`` and ``(tenant, id)`` can be unique, and
  a leaf hash outlives its record's body (CONTRACT section 3: retention keeps leaf hashes).
* ``events`` holds the bodies and what search reads, partitioned by month of
  ``occurred_us`` so that retention can drop a month at once. A partitioned table's keys
  must hold the partition key, hence the primary key (tenant, occurred_us, seq), which is
  also the time index. ``event_targets`` is partitioned the same way.
* ``tiles``, ``heads``, ``checkpoints`` and the tenant's verifier key complete the tree.

The tenant column leads every key, so every table but ``api_keys`` (looked up by the key's
hash) distributes by tenant on a sharded PostgreSQL such as Citus. Every text column is
``COLLATE "C"``: the search code turns a prefix into a range (``>= 'auth.' AND < 'auth/'``),
which only holds under byte order, the order SQLite uses too.

Migrations run under a session advisory lock, so servers that start together apply each
version once; each version is one transaction, so a failed upgrade leaves the last one.
"""

from __future__ import annotations

import logging
import re
import struct
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow

log = logging.getLogger("trailkeeper.store.postgres")

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

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = ((1, _V1), (2, _V2))
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
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            current = version
        return current
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))


# -- monthly partitions --------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PARTITIONED = ("events", "event_targets")
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


_PARTITION_NAME = re.compile(r"(?:events|event_targets)_(\d{4})_(\d{2})")


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


# -- how values are held -------------------------------------------------------------------
# PostgreSQL text cannot hold U+0000, yet a producer's strings are stored exactly as sent
# (CONTRACT section 2). Searchable text columns therefore escape it: U+0001 becomes
# U+0001 U+0002 and U+0000 becomes U+0001 U+0001. The codes are prefix-free and keep the
# order of the characters they stand for, so byte order, equality and prefix ranges hold
# on the escaped text exactly as on the original.
_ESCAPED = re.compile("[\x00\x01]")
_ESCAPE = {"\x00": "\x01\x01", "\x01": "\x01\x02"}
_UNESCAPED = re.compile("\x01[\x01\x02]")
_UNESCAPE = {"\x01\x01": "\x00", "\x01\x02": "\x01"}


def column_text(value: str) -> str:
    """A string as a text column holds it (see above)."""
    if "\x00" in value or "\x01" in value:
        return _ESCAPED.sub(lambda m: _ESCAPE[m.group()], value)
    return value


def text_from_column(value: str) -> str:
    if "\x01" in value:
        return _UNESCAPED.sub(lambda m: _UNESCAPE[m.group()], value)
    return value


# Free text is matched word by word, the way SQLite's FTS5 ``unicode61 remove_diacritics 2``
# tokenizer does: words are runs of letters and digits, lowercased, without diacritics. The
# words are made here, for both the stored ``tsvector`` and the query, so the two agree by
# construction and PostgreSQL's own parser (which keeps e-mail addresses and host names
# whole) never sees user text.
_WORD = re.compile(r"[^\W_]+")
# tsvector and tsquery refuse a lexeme of 2048 bytes or more (a word of 512 characters may
# be that long in UTF-8), a position past 16383, and more than 256 positions of one lexeme.
_MAX_LEXEME_BYTES = 2047
_MAX_POSITION = 16383
_MAX_POSITIONS = 256
_SHORT_WORD = _MAX_LEXEME_BYTES // 4


def words(text: str) -> list[str]:
    """The words free-text search sees in ``text``."""
    text = text.lower()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _WORD.findall(text)


def _fits(word: str) -> bool:
    return len(word) <= _SHORT_WORD or len(word.encode()) <= _MAX_LEXEME_BYTES


def tsvector_binary(text: str) -> bytes | None:
    """A record's search text as a ``tsvector`` in PostgreSQL's binary form (what COPY
    BINARY takes; quicker for the server to read than the text form): the count of
    lexemes, then each lexeme, NUL-terminated, with its count of positions and the
    positions, ascending, as 16-bit integers. Positions let a phrase match only its words
    in order. None when there are no words."""
    positions: dict[str, list[int]] = {}
    for position, word in enumerate(words(text), start=1):
        at = positions.setdefault(word, [])
        # Positions stop at 16383 and each must be larger than the one before.
        if len(at) < _MAX_POSITIONS and (not at or at[-1] < _MAX_POSITION):
            at.append(min(position, _MAX_POSITION))
    check = len(text) > _SHORT_WORD  # else no word can be too long
    entries = [
        word.encode() + b"\0" + struct.pack(f"!H{len(at)}H", len(at), *at)
        for word, at in positions.items()
        if not check or _fits(word)
    ]
    return struct.pack("!i", len(entries)) + b"".join(entries) if entries else None


def tsquery_text(terms: Sequence[str]) -> str | None:
    """The ``tsquery`` literal that holds when every term matches as a phrase; None (which
    matches nothing, as an empty FTS5 phrase does) when a term has no word to match."""
    phrases: list[str] = []
    for term in terms:
        found = words(term)
        if not found or not all(_fits(w) for w in found):
            return None
        phrases.append("(" + " <-> ".join(f"'{w}'" for w in found) + ")")
    return " & ".join(phrases) if phrases else None
